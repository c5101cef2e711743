/**
 * The identify LED a report sends for a BMC that cannot tell it, wired through the whole daemon:
 * OpenIPMI's ipmi_sim accepts Chassis Identify but its Get Chassis Status leaves the optional
 * identify state out (as many IPMI-only BMCs do), so a read gives no LED state. metal-api sets
 * LED-ON itself for `metalctl machine identify on`; the next report must not undo it with the
 * default LED-OFF while the LED is lit. The memory is fed by the commands part (an accepted
 * identify command) and read by the reporter: this test fails when `startDaemon` gives them
 * different memories or none (parts/commands.ts rememberIdentify, report/led-memory.ts).
 */
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect } from 'vitest';
import { loadConfig } from '../../src/config/config.js';
import { startDaemon, type Daemon } from '../../src/daemon.js';
import { renderIscLeases } from '../../src/leases/index.js';
import { startMetalApiStandIn, type MetalApiStandIn } from '../../src/metalapi/standin.js';
import { commandsPart } from '../../src/parts/commands.js';
import { startIpmiSim, type IpmiSim } from '../helpers/ipmisim.js';
import { captureLog, type CapturedLog } from '../helpers/log.js';
import { startTestNatsServer, type TestNatsServer } from '../helpers/nats-server.js';
import { withPeers } from '../helpers/peers.js';
import { waitFor } from '../helpers/wait.js';

const { describe, it } = withPeers('ipmi_sim', 'ipmitool', 'nats-server');

const HMAC = 'led-memory-hmac';
const PARTITION = 'led';
let sim: IpmiSim;
let nats: TestNatsServer;
let api: MetalApiStandIn;
let daemon: Daemon;
let log: CapturedLog;
let nc: NatsConnection;
let dir: string;
const results: Array<Record<string, unknown>> = [];

/** The LED state of `uuid` in the first report metal-api accepted after `after` reports. */
async function ledReportedAfter(uuid: string, after: number, what: string): Promise<string> {
  await waitFor(() => api.reports.slice(after).some((r) => r.reports[uuid] !== undefined), 20_000, what);
  return api.reports.slice(after).find((r) => r.reports[uuid] !== undefined)!.reports[uuid]!.IndicatorLEDState;
}

async function identify(uuid: string, cmd: 'LED-ON' | 'LED-OFF'): Promise<void> {
  const before = results.length;
  const event = { type: 'command', cmd: { target: uuid, cmd, ipmi: { address: `${sim.host}:${sim.port}`, user: sim.user, password: sim.password } } };
  nc.publish(`${PARTITION}-machine`, JSON.stringify(event));
  await waitFor(() => results.length > before, 20_000, `${cmd} result`);
  expect(results[before]).toMatchObject({ machineId: uuid, command: cmd, ok: true });
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'daemon-led-'));
  [sim, nats, api] = await Promise.all([startIpmiSim(), startTestNatsServer({ jetstream: true }), startMetalApiStandIn({ hmacKey: HMAC })]);
  const now = Date.now();
  writeFileSync(
    join(dir, 'dhcpd.leases'),
    renderIscLeases([{ ip: sim.host, mac: '02:00:00:00:00:01', starts: new Date(now - 60_000), ends: new Date(now + 3600_000), bindingState: 'active', nextBindingState: 'free', hostname: 'bmc-led' }]),
  );
  nc = await connect({ servers: nats.url });
  nc.subscribe(`${PARTITION}-machine-result`, { callback: (_e, m) => void results.push(m.json()) });
  await nc.flush();
  log = captureLog();
  const config = loadConfig({
    METAL_BMC_PARTITION_ID: PARTITION,
    METAL_BMC_METAL_API_URL: api.url,
    METAL_BMC_METAL_API_HMAC_KEY: HMAC,
    METAL_BMC_LEASE_FILE: join(dir, 'dhcpd.leases'),
    METAL_BMC_STATE_DIR: join(dir, 'state'),
    // a cycle every second (the least allowed): each report after a command shows what the daemon remembers
    METAL_BMC_REPORT_INTERVAL: '1s',
    METAL_BMC_PROTOCOL: 'ipmi',
    METAL_BMC_IPMI_PORT: String(sim.port),
    METAL_BMC_IPMI_USER: sim.user,
    METAL_BMC_IPMI_PASSWORD: sim.password,
    METAL_BMC_BMC_TIMEOUT: '5s',
    METAL_BMC_MQ_ADDRESS: nats.url,
    METAL_BMC_HTTP_ADDRESS: '127.0.0.1:0',
  });
  // the commands part as `metal-bmc serve` starts it (cli/serve.ts DEFAULT_PARTS)
  daemon = await startDaemon(config, log.logger, [commandsPart]);
});

afterAll(async () => {
  await daemon?.stop();
  await nc?.close();
  await Promise.all([sim?.stop(), nats?.dispose(), api?.close()]);
  rmSync(dir, { recursive: true, force: true });
});

describe('identify LED of a BMC that cannot tell it, through the daemon', () => {
  it('reports LED-OFF until an identify command is accepted, then the commanded state, cycle after cycle', async () => {
    await waitFor(() => api.reports.some((r) => Object.keys(r.reports).length > 0), 20_000, 'first report');
    const uuid = Object.keys(api.reports.find((r) => Object.keys(r.reports).length > 0)!.reports)[0]!;
    // ipmi_sim's Chassis Status has no identify state: nothing read, nothing commanded → the Go daemon's LED-OFF
    expect((await sim.ipmitool(['chassis', 'status'])).stdout).not.toMatch(/identify/i);
    expect(await ledReportedAfter(uuid, 0, 'report before any command')).toBe('LED-OFF');

    await identify(uuid, 'LED-ON');
    expect(sim.chassisLog().join('\n')).toMatch(/identify/);
    // the first report that starts after the result; one already under way may have read before it
    const afterOn = api.reports.length + 1;
    expect(await ledReportedAfter(uuid, afterOn, 'report after LED-ON')).toBe('LED-ON');
    expect(await ledReportedAfter(uuid, afterOn + 1, 'the next report')).toBe('LED-ON');
    expect(api.ledStates.get(uuid)).toBe('LED-ON');

    await identify(uuid, 'LED-OFF');
    const afterOff = api.reports.length + 1;
    expect(await ledReportedAfter(uuid, afterOff, 'report after LED-OFF')).toBe('LED-OFF');
    expect(log.text()).not.toContain(sim.password);
  });
});
