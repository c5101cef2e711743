/**
 * The downtime drill of issue 9: `metal-bmc serve` (a child process, as systemd runs it) against
 * a real nats-server with JetStream and the simulated fleet. metal-bmc is stopped; while it is
 * away for twice the topic TTL, metal-api publishes `create` for machine A, `delete` for B and
 * `OFF` for C. After the restart A boots from disk, B boots PXE and was reset, C is still on
 * (its OFF expired), and /metrics counts the late lifecycle events and the stale command. A fourth
 * machine D gets `delete` and then `create` while metal-bmc is away: the late delete sets PXE but
 * skips its reset, because the newer create is already pending; D ends booting from disk, untouched.
 * The TTL is 2 s here so the drill takes seconds; the rules are the same at 30 s.
 */
import { jetstream } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect } from 'vitest';
import { startNatsServer, type NatsServer } from '../../src/lab/nats-server.js';
import { startMetalApiStandIn, type MetalApiStandIn } from '../../src/metalapi/standin.js';
import type { Fleet } from '../../src/sim/fleet.js';
import type { SimEvent } from '../../src/sim/machine.js';
import { spawnCli } from '../helpers/cli.js';
import { startTestFleet } from '../helpers/fleet.js';
import { withPeers } from '../helpers/peers.js';

const { describe, it } = withPeers('nats-server', 'openssl');

const HMAC = 'downtime-test-hmac';
const TTL_MS = 2000;
let fleet: Fleet;
let nats: NatsServer;
let api: MetalApiStandIn;
let nc: NatsConnection;
let dir: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'daemon-downtime-'));
  fleet = await startTestFleet({ count: 4, leaseFile: join(dir, 'dhcpd.leases') });
  nats = await startNatsServer({ jetstream: true, storeDir: join(dir, 'nats') });
  api = await startMetalApiStandIn({ hmacKey: HMAC });
  nc = await connect({ servers: nats.url });
});
afterAll(async () => {
  await nc?.close();
  await Promise.all([fleet?.close(), nats?.stop(), api?.close()]);
  rmSync(dir, { recursive: true, force: true });
});

function env(): NodeJS.ProcessEnv {
  return {
    METAL_BMC_PARTITION_ID: 'drill',
    METAL_BMC_METAL_API_URL: api.url,
    METAL_BMC_METAL_API_HMAC_KEY: HMAC,
    METAL_BMC_LEASE_FILE: join(dir, 'dhcpd.leases'),
    METAL_BMC_IPMI_PORT: String(fleet.ipmiPort),
    METAL_BMC_REDFISH_PORT: String(fleet.redfishPort),
    METAL_BMC_IPMI_USER: fleet.user,
    METAL_BMC_IPMI_PASSWORD: fleet.password,
    METAL_BMC_MQ_ADDRESS: nats.url,
    METAL_BMC_MACHINE_TOPIC_TTL: `${TTL_MS}ms`,
    METAL_BMC_HTTP_ADDRESS: '127.0.0.1:0',
    METAL_BMC_STATE_DIR: join(dir, 'state'),
    METAL_BMC_LOG_LEVEL: 'debug',
  };
}

/** A running daemon: its log so far, a wait on it, its ops port once known. */
function serve() {
  const child = spawnCli(['serve'], env());
  let log = '';
  child.stdout.on('data', (d) => (log += d));
  child.stderr.on('data', (d) => (log += d));
  const until = async (check: () => boolean, what: string, ms = 30_000) => {
    const deadline = Date.now() + ms;
    while (!check()) {
      if (Date.now() > deadline || child.exitCode !== null) throw new Error(`${what}: ${log.slice(-3000)}`);
      await new Promise((r) => setTimeout(r, 25));
    }
  };
  const opsPort = () => Number(/"ops":"127\.0\.0\.1:(\d+)"/.exec(log)?.[1]);
  const stop = async () => {
    const closed = new Promise((r) => child.on('close', r));
    child.kill('SIGTERM');
    return closed;
  };
  return { child, log: () => log, until, opsPort, stop };
}

const ipmiOf = (k: number) => ({ address: `${fleet.machines[k]!.state.address}:${fleet.ipmiPort}`, user: fleet.user, password: fleet.password });

describe('metal-bmc stopped for twice the TTL while lifecycle events and a command are published', () => {
  it('after the restart: A boots from disk, B is PXE and was reset, C is still on; the metrics say so', async () => {
    const [A, B, C, D] = fleet.machines as [(typeof fleet.machines)[0], (typeof fleet.machines)[0], (typeof fleet.machines)[0], (typeof fleet.machines)[0]];
    const first = serve();
    await first.until(() => first.log().includes('consuming machine events from JetStream'), 'first start consumes');
    expect(await first.stop()).toBe(0);

    // the machines before the outage: no boot override, all powered on
    for (const m of [A, B, C, D]) Object.assign(m.state, { boot: 'none', power: 'on' });
    const changes = new Map<string, SimEvent[]>([['A', []], ['B', []], ['C', []], ['D', []]]);
    for (const [name, m] of [['A', A], ['B', B], ['C', C], ['D', D]] as const) m.on('change', (e) => changes.get(name)!.push(e));

    const js = jetstream(nc);
    await js.publish('drill-machine', JSON.stringify({ type: 'create', new: 'machine-a', cmd: { target: 'machine-a', ipmi: ipmiOf(0) } }));
    await js.publish('drill-machine', JSON.stringify({ type: 'delete', old: 'machine-b', cmd: { target: 'machine-b', ipmi: ipmiOf(1) } }));
    await js.publish('drill-machine', JSON.stringify({ type: 'command', cmd: { target: 'machine-c', cmd: 'OFF', ipmi: ipmiOf(2) } }));
    await js.publish('drill-machine', JSON.stringify({ type: 'delete', old: 'machine-d', cmd: { target: 'machine-d', ipmi: ipmiOf(3) } }));
    const last = await js.publish('drill-machine', JSON.stringify({ type: 'create', new: 'machine-d', cmd: { target: 'machine-d', ipmi: ipmiOf(3) } }));
    expect(last.seq).toBeGreaterThanOrEqual(5);
    // the outage itself: metal-bmc stays away for twice the TTL (this wait is the drill, not a settle delay)
    await new Promise((r) => setTimeout(r, 2 * TTL_MS + 200));

    const results: Array<Record<string, unknown>> = [];
    const sub = nc.subscribe('drill-machine-result', { callback: (_e, m) => void results.push(m.json()) });
    await nc.flush();
    const second = serve();
    await second.until(() => results.length >= 4 && second.log().includes('stale machine event dropped'), 'late events ran, the stale command was dropped');
    sub.unsubscribe();

    // different machines run in parallel: compare in machine order
    expect(results.map((r) => [r.machineId, r.type, r.ok, r.late]).sort(), JSON.stringify(results)).toEqual([
      ['machine-a', 'create', true, true],
      ['machine-b', 'delete', true, true],
      ['machine-d', 'create', true, true],
      ['machine-d', 'delete', true, true],
    ]);
    // D: in order, delete first (PXE, reset skipped), then create (disk)
    expect(results.filter((r) => r.machineId === 'machine-d').map((r) => [r.type, r.skipped])).toEqual([
      ['delete', ['RESET']],
      ['create', undefined],
    ]);
    expect(results.find((r) => r.machineId === 'machine-b')!.skipped).toBeUndefined();
    expect(D.state.boot).toBe('disk');
    expect(changes.get('D')!.filter((e) => e.kind === 'power')).toEqual([]);
    const bootsD = changes.get('D')!.flatMap((e) => (e.kind === 'boot' ? [e.boot] : []));
    expect(bootsD.indexOf('pxe')).toBeGreaterThanOrEqual(0);
    expect(bootsD.at(-1)).toBe('disk');
    expect(A.state.boot).toBe('disk');
    expect(B.state.boot).toBe('pxe');
    expect(changes.get('B')!.filter((e) => e.kind === 'power')).not.toHaveLength(0);
    expect(B.state.power).toBe('on');
    expect(changes.get('C')!.filter((e) => e.kind === 'power')).toEqual([]);
    expect(C.state.power).toBe('on');

    await second.until(() => second.opsPort() > 0, 'ops port');
    const metrics = await (await fetch(`http://127.0.0.1:${second.opsPort()}/metrics`)).text();
    expect(metrics).toMatch(/^metal_bmc_events_late_total\{type="create"\} 2$/m);
    expect(metrics).toMatch(/^metal_bmc_events_late_total\{type="delete"\} 2$/m);
    expect(metrics).toMatch(/^metal_bmc_power_steps_skipped_total\{type="delete"\} 1$/m);
    expect(metrics).toMatch(/^metal_bmc_events_stale_total 1$/m);
    expect(metrics).not.toMatch(/^metal_bmc_commands_total\{command="OFF"/m);
    expect(await second.stop()).toBe(0);
    expect(second.log()).not.toContain(fleet.password);
  }, 90_000);
});
