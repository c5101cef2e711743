/**
 * METAL_BMC_GUID_ENCODING end to end: the daemon, configured from its environment, reads BMCs
 * whose Redfish fails in a report worker thread, and reports over IPMI alone only the one whose
 * vendor's GUID order the operator listed, with the UUID that order gives; the other is left out
 * with its reason, as without the setting.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/config.js';
import { startDaemon, type Daemon } from '../../src/daemon.js';
import { startMetalApiStandIn, type MetalApiStandIn } from '../../src/metalapi/standin.js';
import { renderFleetLeases, type Fleet } from '../../src/sim/fleet.js';
import { fleetDaemonEnv, startTestFleet } from '../helpers/fleet.js';
import { captureLog, type CapturedLog } from '../helpers/log.js';
import { waitFor } from '../helpers/wait.js';

const HMAC_KEY = 'guid-encoding-test-hmac-key';
let fleet: Fleet;
let api: MetalApiStandIn;
let daemon: Daemon | undefined;
let log: CapturedLog;
let dir: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'daemon-guid-encoding-'));
  fleet = await startTestFleet({ count: 2, variants: ['gigabyte', 'lenovo'], seed: 'daemon-guid-encoding' });
  api = await startMetalApiStandIn({ hmacKey: HMAC_KEY });
});

afterAll(async () => {
  await daemon?.stop();
  await api?.close();
  await fleet?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('METAL_BMC_GUID_ENCODING in the daemon', () => {
  it('a BMC of a listed vendor whose Redfish fails is reported with its GUID in the listed order; one of a vendor not listed is left out', async () => {
    const gigabyte = fleet.machines.find((m) => m.state.variant === 'gigabyte')!.state;
    const lenovo = fleet.machines.find((m) => m.state.variant === 'lenovo')!.state;
    // the Gigabyte BMC sends its GUID in RFC 4122 order: the vendor table's SMBIOS order would be another machine
    fleet.setQuirks([fleet.machines.findIndex((m) => m.state === gigabyte)], ['ipmi-guid-rfc4122'], true);
    fleet.setFaults([0, 1], { redfishStatus: 503 });
    const leaseFile = join(dir, 'dhcpd.leases');
    writeFileSync(leaseFile, renderFleetLeases(fleet.machines));
    log = captureLog();
    const config = loadConfig({
      ...fleetDaemonEnv(fleet, { dir, metalApiUrl: api.url, hmacKey: HMAC_KEY }),
      METAL_BMC_BMC_TIMEOUT: '5s',
      METAL_BMC_REPORT_WORKERS: '1',
      METAL_BMC_GUID_ENCODING: 'Gigabyte=RFC4122',
    });
    daemon = await startDaemon(config, log.logger);
    // the cycle's end: the Lenovo BMC's skip is logged after its read, the report posted after all reads
    await waitFor(() => log.find('BMC read over IPMI alone gives a machine UUID no earlier read confirmed, skipped in this report').length > 0, 20_000, 'the Lenovo BMC skipped');
    await waitFor(() => api.reports.length > 0, 20_000, 'the report');
    const reported = api.reports.flatMap((r) => Object.keys(r.reports));
    // its own UUID, not the one the vendor table's SMBIOS order gives
    expect(reported).toEqual([gigabyte.uuid]);
    expect(log.find('BMC read over IPMI alone gives a machine UUID no earlier read confirmed, skipped in this report').map((l) => l.bmc)).toEqual([lenovo.address]);
  });
});
