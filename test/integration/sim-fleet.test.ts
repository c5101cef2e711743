/**
 * The fleet as a whole: the lease file names every BMC, IPMI and Redfish views of a machine agree,
 * state survives a restart, and the control API switches faults at runtime.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, expect } from 'vitest';
import { parseLeases, activeLeases } from '../../src/leases/select.js';
import { startControlServer } from '../../src/sim/control.js';
import { quirksOfVariant } from '../../src/sim/quirks.js';
import { spawnCli } from '../helpers/cli.js';
import { startTestFleet } from '../helpers/fleet.js';
import { freeTcpPort, freeUdpPort } from '../helpers/ports.js';
import { waitFor } from '../helpers/wait.js';
import { withPeers } from '../helpers/peers.js';

const { describe, it } = withPeers('ipmitool', 'curl', 'openssl');

const run = promisify(execFile);
const dir = mkdtempSync(join(tmpdir(), 'sim-fleet-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function ipmitool(host: string, port: number, args: string[]) {
  return run('ipmitool', ['-I', 'lanplus', '-C', '17', '-H', host, '-p', String(port), '-U', 'ADMIN', '-P', 'fleet-pass-1', '-N', '1', '-R', '2', ...args]);
}

async function redfishSystem(host: string, port: number): Promise<{ PowerState: string; UUID: string }> {
  const { stdout } = await run('curl', ['-sk', '-u', 'ADMIN:fleet-pass-1', `https://${host}:${port}/redfish/v1/Systems`]);
  const member = (JSON.parse(stdout) as { Members: Array<{ '@odata.id': string }> }).Members[0]!['@odata.id'];
  return JSON.parse((await run('curl', ['-sk', '-u', 'ADMIN:fleet-pass-1', `https://${host}:${port}${member}`])).stdout) as { PowerState: string; UUID: string };
}

describe('simulated fleet', () => {
  it('writes a dhcpd.leases file with one active lease per BMC', async () => {
    const leaseFile = join(dir, 'dhcpd.leases');
    const fleet = await startTestFleet({ count: 5, leaseFile, redfish: false });
    try {
      const leases = activeLeases(parseLeases(readFileSync(leaseFile, 'utf8')), { now: new Date() });
      expect(leases.map((l) => [l.ip, l.mac])).toEqual(fleet.machines.map((m) => [m.state.address, m.state.mac]));
    } finally {
      await fleet.close();
    }
  });

  it('IPMI and Redfish views agree: power off over IPMI reads Off in Redfish, and the UUIDs match', async () => {
    const fleet = await startTestFleet({ count: 2 });
    try {
      const { address } = fleet.machines[1]!.state;
      await ipmitool(address, fleet.ipmiPort, ['power', 'off']);
      expect((await redfishSystem(address, fleet.redfishPort)).PowerState).toBe('Off');
      await ipmitool(address, fleet.ipmiPort, ['power', 'on']);
      const system = await redfishSystem(address, fleet.redfishPort);
      expect(system.PowerState).toBe('On');
      const guid = (await ipmitool(address, fleet.ipmiPort, ['mc', 'guid'])).stdout;
      expect(guid).toContain(system.UUID.toLowerCase());
    } finally {
      await fleet.close();
    }
  });

  it('keeps power, boot and LED state across a restart with a state file', async () => {
    const stateFile = join(dir, 'state.json');
    const first = await startTestFleet({ count: 3, stateFile, redfish: false, seed: 'persist' });
    const { address } = first.machines[2]!.state;
    await ipmitool(address, first.ipmiPort, ['chassis', 'bootdev', 'pxe']);
    await ipmitool(address, first.ipmiPort, ['power', 'off']);
    const cidr = `${address.split('.').slice(0, 2).join('.')}.0.0/16`;
    // the last change is made right before close(): its debounced save is certainly still
    // pending, and close() must write it
    first.machines[2]!.setIdentify(true);
    await first.close();
    const second = await startTestFleet({ count: 3, stateFile, redfish: false, seed: 'persist', cidr });
    try {
      expect(second.machines[2]!.state).toMatchObject({ power: 'off', boot: 'pxe', identify: true });
    } finally {
      await second.close();
    }
  });

  it('metal-bmc sim serves the fleet until SIGTERM, writes its lease file, and saves the last change on SIGTERM', async () => {
    const ipmiPort = await freeUdpPort();
    const redfishPort = await freeTcpPort();
    const leaseFile = join(dir, 'cli.leases');
    const stateFile = join(dir, 'cli-state.json');
    const child = spawnCli(['sim', '--count', '3', '--cidr', '127.231.0.0/16', '--ipmi-port', String(ipmiPort), '--redfish-port', String(redfishPort), '--password', 'fleet-pass-1', '--lease-file', leaseFile, '--state-file', stateFile]);
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    const closed = new Promise((r) => child.on('close', r));
    await waitFor(() => out.includes('simulating') || child.exitCode !== null, 20_000, 'the simulator to start');
    expect(out).toContain('simulating 3 BMCs 127.231.0.1 .. 127.231.0.3');
    expect((await ipmitool('127.231.0.3', ipmiPort, ['power', 'status'])).stdout).toMatch(/Chassis Power is (on|off)/);
    expect(readFileSync(leaseFile, 'utf8')).toContain('lease 127.231.0.2 {');
    // SIGTERM right after the change, well within the 200 ms the save is debounced by
    await ipmitool('127.231.0.2', ipmiPort, ['chassis', 'identify', 'force']);
    child.kill('SIGTERM');
    expect(await closed).toBe(0);
    const saved = JSON.parse(readFileSync(stateFile, 'utf8')) as Array<{ identify: boolean }>;
    expect(saved.map((m) => m.identify)).toEqual([false, true, false]);
  });

  it('the control API switches faults at runtime', async () => {
    const fleet = await startTestFleet({ count: 4, redfish: false });
    const control = await startControlServer(fleet, 0);
    try {
      const base = `http://127.0.0.1:${control.port}`;
      const bad = await fetch(`${base}/faults`, { method: 'POST', body: JSON.stringify({ select: 'all', faults: { explode: true } }) });
      expect(bad.status).toBe(400);
      const ok = await fetch(`${base}/faults`, { method: 'POST', body: JSON.stringify({ select: { share: 0.5 }, faults: { wrongCredentials: true } }) });
      expect(await ok.json()).toEqual({ changed: 2 });
      const { address } = fleet.machines[0]!.state;
      await expect(ipmitool(address, fleet.ipmiPort, ['power', 'status'])).rejects.toThrow();
      await ipmitool(fleet.machines[3]!.state.address, fleet.ipmiPort, ['power', 'status']);
      await fetch(`${base}/faults`, { method: 'DELETE' });
      await ipmitool(address, fleet.ipmiPort, ['power', 'status']);
      // Chassis Control refused with a completion code, seen by ipmitool; a code that is not one is refused by the API
      expect((await fetch(`${base}/faults`, { method: 'POST', body: JSON.stringify({ select: [0], faults: { ipmiActRefused: 'd5' } }) })).status).toBe(400);
      await fetch(`${base}/faults`, { method: 'POST', body: JSON.stringify({ select: [0], faults: { ipmiActRefused: 0xd5 } }) });
      await expect(ipmitool(address, fleet.ipmiPort, ['power', 'reset'])).rejects.toThrow(/present state|0xd5/i);
      await fetch(`${base}/faults`, { method: 'DELETE' });
      const machines = (await (await fetch(`${base}/machines`)).json()) as Array<{ address: string }>;
      expect(machines.map((m) => m.address)).toEqual(fleet.machines.map((m) => m.state.address));

      expect((await fetch(`${base}/serial`, { method: 'POST', body: JSON.stringify({ select: [1, 2], stream: 'yes' }) })).status).toBe(400);
      const streaming = await fetch(`${base}/serial`, { method: 'POST', body: JSON.stringify({ select: [1, 2], stream: true }) });
      expect(await streaming.json()).toEqual({ changed: 2 });
      const before = fleet.serialStats().outputBytes;
      // streaming lines produce output on their own: wait until the two have printed a fifth of
      // a second's worth at 115200 baud, then check the API reports the same
      await waitFor(() => fleet.serialStats().outputBytes - before > 2 * 11_520 * 0.2, 10_000, 'two streaming serial lines to print');
      const serial = (await (await fetch(`${base}/serial`)).json()) as { machines: number; streaming: number; outputBytes: number; activeSol: number };
      expect(serial).toMatchObject({ machines: 4, streaming: 2, activeSol: 0 });
      expect(serial.outputBytes - before).toBeGreaterThan(2 * 11_520 * 0.2);
      expect(fleet.setSerialStream('all', false)).toBe(4);
      expect(fleet.serialStats().streaming).toBe(0);
    } finally {
      await control.close();
      await fleet.close();
    }
  });

  it('the control API switches quirks per machine, and DELETE /quirks returns each machine to its vendor variant\'s', async () => {
    const fleet = await startTestFleet({ count: 2, redfish: false, variants: ['supermicro', 'lenovo'] });
    const control = await startControlServer(fleet, 0);
    try {
      const base = `http://127.0.0.1:${control.port}`;
      const quirksOf = async () => ((await (await fetch(`${base}/machines`)).json()) as Array<{ quirks: string[] }>).map((m) => [...m.quirks].sort());
      const defaults = fleet.machines.map((m) => [...quirksOfVariant(m.state.variant)].sort());
      expect(await quirksOf()).toEqual(defaults);
      const unknown = await fetch(`${base}/quirks`, { method: 'POST', body: JSON.stringify({ select: 'all', quirks: ['no-such-quirk'], on: true }) });
      expect(unknown.status).toBe(400);
      const on = await fetch(`${base}/quirks`, { method: 'POST', body: JSON.stringify({ select: [0], quirks: ['redfish-bom'], on: true }) });
      expect(await on.json()).toEqual({ changed: 1 });
      expect((await quirksOf())[0]).toEqual([...defaults[0]!, 'redfish-bom'].sort());
      await fetch(`${base}/quirks`, { method: 'DELETE' });
      expect(await quirksOf()).toEqual(defaults);
    } finally {
      await control.close();
      await fleet.close();
    }
  });
});
