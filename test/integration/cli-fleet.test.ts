/** `metal-bmc bmc` against the simulated fleet: the full Redfish+IPMI report and firmware updates. */
import { afterAll, beforeAll, expect } from 'vitest';
import type { Fleet } from '../../src/sim/fleet.js';
import { runCli } from '../helpers/cli.js';
import { startTestFleet } from '../helpers/fleet.js';
import { withPeers } from '../helpers/peers.js';

const { describe, it } = withPeers('openssl');

let fleet: Fleet;
const target = (i: number) => ['--address', `${fleet.machines[i]!.state.address}:${fleet.ipmiPort}`, '--redfish-port', String(fleet.redfishPort), '--user', fleet.user, '--password', fleet.password];

beforeAll(async () => {
  fleet = await startTestFleet({ count: 4 });
});
afterAll(async () => {
  await fleet?.close();
});

describe('metal-bmc bmc against the simulated fleet', () => {
  it('info prints the full report: versions, LED, FRU, power metric and supplies', async () => {
    const s = fleet.machines[0]!.state;
    const r = await runCli(['bmc', 'info', ...target(0), '--json']);
    expect(r.stderr).toBe('');
    const report = JSON.parse(r.stdout);
    expect(report).toMatchObject({
      uuid: s.uuid,
      powerState: s.power === 'on' ? 'ON' : 'OFF',
      bmcVersion: s.bmcVersion,
      biosVersion: s.biosVersion,
      indicatorLED: 'LED-OFF',
      fru: { product_serial: s.fru.productSerial },
      powerMetric: { averageconsumedwatts: s.powerWatts.average },
      source: 'redfish+ipmi',
    });
    expect(report.powerSupplies).toHaveLength(2);
  });

  it('--protocol ipmi reads over IPMI only', async () => {
    const r = await runCli(['bmc', 'info', ...target(1), '--protocol', 'ipmi', '--json']);
    expect(JSON.parse(r.stdout)).toMatchObject({ uuid: fleet.machines[1]!.state.uuid, source: 'ipmi' });
  });

  it('firmware bios shows progress and completes', async () => {
    const i = fleet.machines.findIndex((m) => m.state.manufacturer === 'Lenovo');
    expect(i).toBeGreaterThanOrEqual(0);
    const r = await runCli(['bmc', 'firmware', 'bios', ...target(i), '--url', 'http://images.invalid/bios.bin']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/bios firmware: Completed/);
    expect(r.stdout).toMatch(/update done/);
  });

  it('command PXE sets it persistently, --once for the next boot only; info shows the override read back from the BMC', async () => {
    const m = fleet.machines[2]!;
    expect((await runCli(['bmc', 'command', 'DISK', ...target(2)])).code).toBe(0);
    expect(m.state).toMatchObject({ boot: 'disk', bootPersistent: true, bootUefi: true });
    let info = await runCli(['bmc', 'info', ...target(2)]);
    expect(info.stdout).toMatch(/bootOverride\s+DISK, persistent \(all future boots\), UEFI/);
    expect((await runCli(['bmc', 'command', 'PXE', '--once', ...target(2)])).code).toBe(0);
    expect(m.state).toMatchObject({ boot: 'pxe', bootPersistent: false });
    info = await runCli(['bmc', 'info', ...target(2), '--protocol', 'ipmi', '--json']);
    expect(JSON.parse(info.stdout).bootOverride).toMatchObject({ target: 'PXE', persistent: false, uefi: true, source: 'ipmi' });
    const refused = await runCli(['bmc', 'command', 'ON', '--once', ...target(2)]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/--once applies to PXE, DISK, REINSTALL/);
  }, 120_000); // five CLI processes, each loading TypeScript through tsx
});
