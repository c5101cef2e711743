/**
 * The daemon's SSH console backend (outband/ssh-console.ts, chosen by the vendor table for Dell)
 * against the simulator's iDRAC-like BMC instead of a stand-in: the facade finds the vendor over
 * Redfish, opens `console com2` on the BMC's SSH port (the daemon's METAL_BMC_BMC_SSH_PORT, the
 * CLI's --ssh-port) and carries bytes both ways; trust on first use records the host key, and a
 * fleet restarted with the same TLS file presents the same key, so the console opens again.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect } from 'vitest';
import { isBmcError } from '../../src/errors.js';
import { connectOutband, type ConnectOptions } from '../../src/outband/connect.js';
import { createDaemonTrust } from '../../src/daemon.js';
import { openSshConsole } from '../../src/outband/ssh-console.js';
import { createBmcTrust, openTrustStore, TRUST_FILE, type BmcTrust } from '../../src/outband/trust.js';
import type { Fleet, FleetOptions } from '../../src/sim/fleet.js';
import { runCli, spawnCli } from '../helpers/cli.js';
import { startTestFleet } from '../helpers/fleet.js';
import { withPeers } from '../helpers/peers.js';
import { waitFor } from '../helpers/wait.js';

const { describe, it } = withPeers('openssl');

let dir: string;
const fleets: Fleet[] = [];

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'metal-bmc-outband-sim-ssh-'));
});

afterAll(async () => {
  await Promise.all(fleets.map((f) => f.close()));
  rmSync(dir, { recursive: true, force: true });
});

/** A fleet of one Dell-like machine, running, with its SSH console on a free port. */
async function dellFleet(o: Partial<FleetOptions> = {}): Promise<Fleet> {
  const fleet = await startTestFleet({ count: 1, variants: ['dell'], ...o });
  fleets.push(fleet);
  const m = fleet.machines[0]!;
  if (m.state.power === 'off') m.setPower('on', 'on');
  return fleet;
}

function trustIn(stateDir: string): BmcTrust {
  return createBmcTrust({ store: openTrustStore({ file: join(stateDir, TRUST_FILE) }) });
}

/** Opens the console through the facade, as the daemon's console part does, and checks both directions. */
async function consoleRoundTrip(fleet: Fleet, trust: BmcTrust, typed: string, extra: Partial<ConnectOptions> = {}): Promise<void> {
  const m = fleet.machines[0]!.state;
  const bmc = await connectOutband({
    host: m.address,
    user: fleet.user,
    password: fleet.password,
    ipmiPort: fleet.ipmiPort,
    redfishPort: fleet.redfishPort,
    sshPort: fleet.sshPort,
    trust: trust.forBmc({ ip: m.address, mac: m.mac }),
    timeoutMs: 8000,
    ...extra,
  });
  try {
    expect(bmc.vendor).toBe('dell');
    const line = await bmc.openConsole();
    let seen = '';
    line.on('data', (d: Buffer) => (seen += d.toString('latin1')));
    await waitFor(() => seen.includes(`System UUID ${m.uuid}`) && seen.includes('login: '), 20_000, 'the boot log and login prompt');
    // iDRAC's "leave" key (Ctrl+\) typed mid-word by a viewer: dropped, the shared console stays
    line.write(`${typed.slice(0, 2)}\x1c${typed.slice(2)}\r`);
    await waitFor(() => seen.includes(typed), 10_000, 'the echo of what was typed');
    expect(fleet.ssh!.consoleSessions(m.index)).toBe(1);
    line.end();
    await waitFor(() => fleet.ssh!.consoleSessions(m.index) === 0, 10_000, 'the BMC to see the console closed');
  } finally {
    await bmc.close();
  }
}

describe('SSH console backend against the simulated iDRAC', () => {
  it('opens console com2 on the configured SSH port, bytes both ways; the host key is recorded on first use and still matches after a restart with the same TLS file', async () => {
    const tlsFile = join(dir, 'fleet-tls.json');
    const stateDir = mkdtempSync(join(dir, 'state-'));
    const first = await dellFleet({ tlsFile });
    const { mac, address } = first.machines[0]!.state;
    expect(first.sshPort).not.toBe(22);
    const trust = trustIn(stateDir);
    await consoleRoundTrip(first, trust, 'root-first');
    const recorded = trust.store.get(`mac:${mac}`)?.sshSha256;
    expect(recorded).toBe(first.ssh!.hostKeySha256);

    // the lab restarts its fleet: same addresses and TLS file, new ports
    await first.close();
    fleets.splice(fleets.indexOf(first), 1);
    const cidr = `${address.split('.').slice(0, 2).join('.')}.0.0/16`;
    const again = await dellFleet({ tlsFile, cidr });
    expect(again.ssh!.hostKeySha256).toBe(recorded);
    await consoleRoundTrip(again, trust, 'root-again');
    expect(trust.store.get(`mac:${mac}`)?.sshSha256).toBe(recorded);

    // a fleet with another TLS file has another host key: refused before the password is sent
    await again.close();
    fleets.splice(fleets.indexOf(again), 1);
    const other = await dellFleet({ tlsFile: join(dir, 'other-tls.json'), cidr });
    expect(other.ssh!.hostKeySha256).not.toBe(recorded);
    const checkHostKey = await trust.forBmc({ ip: address, mac }).sshHostKeyCheck({ host: address, proofTimeoutMs: 1000 });
    const err = await openSshConsole({ host: address, port: other.sshPort, user: other.user, password: other.password, command: 'console com2', checkHostKey }).catch((e: unknown) => e);
    expect(isBmcError(err, 'UNTRUSTED')).toBe(true);
  });

  it('metal-bmc bmc console reaches it with --ssh-port', async () => {
    const fleet = await dellFleet();
    const m = fleet.machines[0]!.state;
    const stateDir = mkdtempSync(join(dir, 'cli-state-'));
    const child = spawnCli(['bmc', 'console', '--address', `${m.address}:${fleet.ipmiPort}`, '--redfish-port', String(fleet.redfishPort), '--ssh-port', String(fleet.sshPort), '--password', fleet.password, '--state-dir', stateDir]);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString('latin1')));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString('latin1')));
    const until = (check: () => boolean, what: string) => waitFor(check, 30_000, `${what}; stdout=${stdout.slice(-300)} stderr=${stderr}`);
    await until(() => stdout.includes('login: '), 'the login prompt');
    child.stdin.write('cli-user\r');
    await until(() => stdout.includes('cli-user'), 'the echo');
    child.stdin.write('~.');
    expect(await new Promise((resolve) => child.on('close', resolve))).toBe(0);
  });

  it('with a CA verifying Redfish (the daemon\'s trust), the SSH host key is still pinned: recorded on first contact, proven over IPMI, no certificate recorded; another host key is refused UNTRUSTED before the password', async () => {
    const tlsFile = join(dir, 'ca-fleet-tls.json');
    const stateDir = mkdtempSync(join(dir, 'ca-state-'));
    const first = await dellFleet({ tlsFile });
    const { mac, address, index } = first.machines[0]!.state;
    // the fleet's self-signed certificate as the CA, as bmc-trust.test.ts does
    const caFile = join(stateDir, 'ca.pem');
    writeFileSync(caFile, first.redfish!.cert);
    const trust = createDaemonTrust({ stateDir, redfish: { insecure: true, caFile }, trust: { requireProof: false } });
    expect(trust.redfishVerified).toBe(true);
    await consoleRoundTrip(first, trust, 'root-ca', { redfishInsecure: true, redfishCa: first.redfish!.cert });
    expect(trust.store.get(`mac:${mac}`)).toMatchObject({ sshSha256: first.ssh!.hostKeySha256, proof: 'ipmi', ip: address });
    expect(trust.store.get(`mac:${mac}`)?.redfishSha256).toBeUndefined();

    // another TLS file: another host key (and certificate, which the CA bundle vouches for as well)
    await first.close();
    fleets.splice(fleets.indexOf(first), 1);
    const other = await dellFleet({ tlsFile: join(dir, 'ca-other-tls.json'), cidr: `${address.split('.').slice(0, 2).join('.')}.0.0/16` });
    const bmc = await connectOutband({ host: address, user: other.user, password: other.password, ipmiPort: other.ipmiPort, redfishPort: other.redfishPort, sshPort: other.sshPort, redfishInsecure: true, redfishCa: `${first.redfish!.cert}${other.redfish!.cert}`, trust: trust.forBmc({ ip: address, mac }), timeoutMs: 8000 });
    try {
      expect(bmc.protocols.redfish).toBe(true); // verified by the CA: only the host key differs
      const err = await bmc.openConsole().catch((e: unknown) => e);
      expect(isBmcError(err, 'UNTRUSTED')).toBe(true);
      expect((err as Error).message).not.toContain(other.password);
      expect(other.ssh!.passwordsOffered(index)).toBe(0);
    } finally {
      await bmc.close();
    }
    expect(trust.store.get(`mac:${mac}`)?.sshSha256).toBe(first.ssh!.hostKeySha256);
    await trust.store.close();
  });

  it('metal-bmc bmc console with METAL_BMC_REDFISH_CA_FILE: without a state directory the console has a trust file of its own for the run (its first contact proven over IPMI, nothing kept); with one its host key is recorded on first contact (no certificate)', async () => {
    const fleet = await dellFleet();
    const m = fleet.machines[0]!.state;
    const stateDir = mkdtempSync(join(dir, 'cli-ca-'));
    const caFile = join(stateDir, 'ca.pem');
    writeFileSync(caFile, fleet.redfish!.cert);
    const args = ['bmc', 'console', '--address', `${m.address}:${fleet.ipmiPort}`, '--redfish-port', String(fleet.redfishPort), '--ssh-port', String(fleet.sshPort), '--password', fleet.password];
    // without a state directory (undefined: not passed on, should the test's own environment name one), proof
    // required and the BMC's IPMI silent (another port): the run's own trust gate refuses before the password
    const silentIpmi = ['bmc', 'console', '--address', `${m.address}:1`, ...args.slice(4)];
    const refused = await runCli(silentIpmi, { env: { METAL_BMC_STATE_DIR: undefined, METAL_BMC_REDFISH_CA_FILE: caFile, METAL_BMC_TRUST_REQUIRE_PROOF: 'true' } });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('[UNTRUSTED]');
    expect(fleet.ssh!.passwordsOffered(m.index)).toBe(0);
    // the same without a CA (certificates trusted on first use): the run's own trust file, no usage error
    const withoutCa = await runCli(silentIpmi, { env: { METAL_BMC_STATE_DIR: undefined, METAL_BMC_TRUST_REQUIRE_PROOF: 'true' } });
    expect(withoutCa.code, withoutCa.stderr).toBe(1);
    expect(withoutCa.stderr).toContain('[UNTRUSTED]');
    expect(fleet.ssh!.passwordsOffered(m.index)).toBe(0);
    // ... and with IPMI answering, the console opens
    const stateless = spawnCli(args, { METAL_BMC_STATE_DIR: undefined as unknown as string, METAL_BMC_REDFISH_CA_FILE: caFile });
    let shown = '';
    stateless.stdout.on('data', (d: Buffer) => (shown += d.toString('latin1')));
    await waitFor(() => shown.includes('login: '), 30_000, 'the login prompt without a state directory');
    stateless.stdin.write('~.');
    expect(await new Promise((resolve) => stateless.on('close', resolve))).toBe(0);

    const child = spawnCli([...args, '--state-dir', stateDir], { METAL_BMC_REDFISH_CA_FILE: caFile });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString('latin1')));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString('latin1')));
    await waitFor(() => stdout.includes('login: '), 30_000, `the login prompt; stderr=${stderr}`);
    child.stdin.write('~.');
    expect(await new Promise((resolve) => child.on('close', resolve))).toBe(0);
    const written = (JSON.parse(readFileSync(join(stateDir, TRUST_FILE), 'utf8')) as { bmcs: Record<string, { sshSha256?: string; redfishSha256?: string; proof?: string }> }).bmcs;
    expect(Object.values(written)).toEqual([expect.objectContaining({ sshSha256: fleet.ssh!.hostKeySha256, proof: 'ipmi' })]);
    expect(Object.values(written)[0]?.redfishSha256).toBeUndefined();
  });
});
