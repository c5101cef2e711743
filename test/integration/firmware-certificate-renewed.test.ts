/**
 * A BMC image after which the BMC comes back with another TLS certificate
 * (redfish-certificate-renewed-after-update), through the facade as a firmware job runs it, with the
 * trust file pinning the first certificate: the trust gate still refuses the new one (nothing is
 * sent to it), and the update's result says its outcome is unknown, with the new certificate's
 * fingerprint and the command that accepts it, instead of failing with the pin's refusal.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect } from 'vitest';
import { connectOutband } from '../../src/outband/connect.js';
import { createBmcTrust, openTrustStore, TRUST_FILE } from '../../src/outband/trust.js';
import { probeCertificate } from '../../src/redfish/tls.js';
import type { Fleet } from '../../src/sim/fleet.js';
import { startImageServer } from '../helpers/firmware.js';
import { startTestFleet } from '../helpers/fleet.js';
import { withPeers } from '../helpers/peers.js';

const { describe, it } = withPeers('openssl');

let fleet: Fleet;
let images: Awaited<ReturnType<typeof startImageServer>>;
let dir: string;

beforeAll(async () => {
  fleet = await startTestFleet({ count: 1, variants: ['lenovo'] });
  images = await startImageServer();
  dir = mkdtempSync(join(tmpdir(), 'metal-bmc-cert-renewed-'));
});
afterAll(async () => {
  await images?.close();
  await fleet?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('a BMC back from its firmware update with another certificate', () => {
  it('the update ends OUTCOME_UNKNOWN naming the new certificate and the trust reset; the pin still refuses it', async () => {
    const m = fleet.machines[0]!;
    const host = m.state.address;
    const mac = m.state.mac;
    fleet.setQuirks([0], ['redfish-bmc-reboot-after-update', 'redfish-certificate-renewed-after-update'], true);
    const trust = createBmcTrust({ store: openTrustStore({ file: join(dir, TRUST_FILE) }), resetHint: true });
    const connect = () =>
      connectOutband({ host, user: fleet.user, password: fleet.password, ipmiPort: fleet.ipmiPort, redfishPort: fleet.redfishPort, timeoutMs: 10_000, mac, trust: trust.forBmc({ ip: host, mac }) });
    const first = await probeCertificate({ host, port: fleet.redfishPort, timeoutMs: 5000 });

    const bmc = await connect(); // trust on first use: the first certificate is pinned
    const failure = await bmc.updateFirmware('bmc', `${images.base}/bmc-7.1.2.bin`, { signal: AbortSignal.timeout(20_000) }).then(
      () => undefined,
      (err: unknown) => err as { code?: string; message: string },
    );
    await bmc.close();

    const renewed = await probeCertificate({ host, port: fleet.redfishPort, timeoutMs: 5000 });
    expect(renewed).not.toBe(first);
    expect(m.state.bmcVersion).toBe('7.1.2'); // the update did apply
    expect(failure).toMatchObject({ code: 'OUTCOME_UNKNOWN' });
    expect(failure!.message).toContain('outcome unknown');
    expect(failure!.message).toContain(`another TLS certificate (sha256 ${renewed.slice(0, 16)}`);
    expect(failure!.message).toContain('probably applied');
    expect(failure!.message).toContain(`metal-bmc bmc trust --mac ${mac} --reset`);

    // the gate is unchanged: the new certificate is refused before any credential
    const sessionsBefore = fleet.redfish!.openSessions(0);
    await expect(connect()).rejects.toMatchObject({ code: 'UNTRUSTED' });
    expect(fleet.redfish!.openSessions(0)).toBe(sessionsBefore);
  }, 40_000);
});
