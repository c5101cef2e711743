/**
 * The command path end to end: events published as metal-api does (JSON on `<partition>-machine`)
 * into a real nats-server, consumed by the command service, executed over IPMI on ipmi_sim,
 * results read back from the result subject.
 */
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect, nanos, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import { Registry } from 'prom-client';
import { afterAll, afterEach, beforeAll, expect } from 'vitest';
import { connectBus, type BusConnection } from '../../src/bus/connection.js';
import { streamNameFor } from '../../src/bus/jetstream.js';
import { openKvBucket } from '../../src/bus/kv.js';
import { createCommandMetrics } from '../../src/commands/metrics.js';
import type { CommandResult } from '../../src/commands/runner.js';
import { startCommandService, type CommandService } from '../../src/parts/commands.js';
import { ipmiOutband } from '../../src/outband/ipmi.js';
import { startIpmiSim, type IpmiSim } from '../helpers/ipmisim.js';
import { startUdpProxy } from '../helpers/udp-proxy.js';
import { captureLog, type CapturedLog } from '../helpers/log.js';
import { consumerSettled, startTestNatsServer, type TestNatsServer } from '../helpers/nats-server.js';
import { waitFor } from '../helpers/wait.js';
import { withPeers } from '../helpers/peers.js';

const { describe, it } = withPeers('ipmi_sim', 'ipmitool', 'nats-server');

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const enc = (v: unknown) => new TextEncoder().encode(typeof v === 'string' ? v : JSON.stringify(v));

const until = (what: string, check: () => boolean, ms = 10_000) => waitFor(check, ms, what, 25);

let sim: IpmiSim;
let partitionSeq = 0;
const cleanup: Array<() => Promise<unknown>> = [];

beforeAll(async () => {
  sim = await startIpmiSim();
});
afterAll(async () => {
  await sim?.stop();
});
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c().catch(() => undefined);
});

/** The event metal-api publishes for a machine whose BMC is the ipmi_sim. */
function event(type: 'create' | 'delete' | 'update' | 'command', machine: string, cmd?: string, extra: object = {}) {
  return {
    type,
    ...(type === 'delete' ? { old: machine } : { new: machine }),
    cmd: { target: machine, ...(cmd ? { cmd } : {}), ipmi: { address: `${sim.host}:${sim.port}`, user: sim.user, password: sim.password, interface: 'lanplus', mac: 'ac:1f:6b:35:ac:62' }, ...extra },
  };
}

interface Instance {
  service: CommandService;
  log: CapturedLog;
  registry: Registry;
  bus: BusConnection;
}

async function instance(server: TestNatsServer, partition: string, o: { concurrency?: number; ttlMs?: number; mode?: 'auto' | 'core'; leader?: { instanceId: string; leaseMs: number }; maxInFlight?: number; hostClock?: () => number } = {}): Promise<Instance> {
  const log = captureLog();
  const registry = new Registry();
  const metrics = createCommandMetrics(registry);
  const bus = await connectBus({ servers: [server.url], logger: log.logger, name: `metal-bmc-${partition}`, metrics, reconnectTimeWaitMs: 200 });
  const service = await startCommandService({
    nc: bus.nc,
    subject: `${partition}-machine`,
    resultSubject: `${partition}-machine-result`,
    ttlMs: o.ttlMs ?? 30_000,
    durableName: `metal-bmc-${partition}`,
    ...(o.mode ? { mode: o.mode } : {}),
    ...(o.leader ? { leader: o.leader } : {}),
    ...(o.maxInFlight !== undefined ? { maxInFlight: o.maxInFlight } : {}),
    ...(o.hostClock ? { hostClock: o.hostClock } : {}),
    connect: (ipmi) => ipmiOutband({ host: ipmi.host, port: ipmi.port, user: ipmi.user ?? '', password: ipmi.password ?? '', cipherSuite: 3, retry: { deadlineMs: 5000 } }),
    concurrency: o.concurrency ?? 4,
    timeoutMs: 10_000,
    logger: log.logger,
    metrics,
  });
  cleanup.push(async () => {
    await service.stop(2000);
    await bus.close(1000);
  });
  return { service, log, registry, bus };
}

async function results(nc: NatsConnection, partition: string): Promise<CommandResult[]> {
  const seen: CommandResult[] = [];
  const sub: Subscription = nc.subscribe(`${partition}-machine-result`, { callback: (_err, m) => void seen.push(m.json<CommandResult>()) });
  await nc.flush();
  cleanup.push(async () => sub.unsubscribe());
  return seen;
}

/**
 * Every event of partition `p` is acked or terminated (server's consumer info), and every result
 * published before those acks has reached `nc`'s subscription: nothing more can happen.
 */
async function settled(nc: NatsConnection, p: string, stream = streamNameFor(`${p}-machine`)) {
  const info = await consumerSettled(nc, stream, `metal-bmc-${p}`);
  await nc.flush();
  return info;
}

function newLines(before: number): string[] {
  return sim.chassisLog().slice(before);
}

/** A JetStream nats-server and metal-api's connection to it, for the describe block that calls it. */
function withJetStream(): { readonly server: TestNatsServer; readonly metalApi: NatsConnection } {
  const peers = {} as { server: TestNatsServer; metalApi: NatsConnection };
  beforeAll(async () => {
    peers.server = await startTestNatsServer({ jetstream: true });
    peers.metalApi = await connect({ servers: peers.server.url, maxReconnectAttempts: -1, reconnectTimeWait: 100 });
  });
  afterAll(async () => {
    await peers.metalApi?.close();
    await peers.server?.dispose();
  });
  return peers;
}

/** Commands an instance ran to an ok end, from its metric. */
async function executed(i: Instance): Promise<number> {
  return [...(await i.registry.getSingleMetricAsString('metal_bmc_commands_total')).matchAll(/outcome="ok"\} (\d+)/g)].reduce((sum, m) => sum + Number(m[1]), 0);
}

describe('machine commands over NATS JetStream to ipmi_sim', () => {
  const peers = withJetStream();

  it('powers the machine on for a command ON and publishes the result', async () => {
    const p = `p${++partitionSeq}`;
    const i = await instance(peers.server, p);
    const seen = await results(peers.metalApi, p);
    const before = sim.chassisLog().length;
    peers.metalApi.publish(`${p}-machine`, enc(event('command', 'm-on', 'ON')));
    await until('result', () => seen.length === 1);
    expect(seen[0]).toMatchObject({ machineId: 'm-on', type: 'command', command: 'ON', ok: true });
    expect(newLines(before)).toContain('set power 1');
    expect(await i.registry.getSingleMetricAsString('metal_bmc_commands_total')).toContain('metal_bmc_commands_total{command="ON",outcome="ok"} 1');
    expect(i.log.text()).not.toContain(sim.password);
  });

  it('sets boot from disk on create, and boot PXE then a reset on delete', async () => {
    const p = `p${++partitionSeq}`;
    await instance(peers.server, p);
    const seen = await results(peers.metalApi, p);
    let before = sim.chassisLog().length;
    peers.metalApi.publish(`${p}-machine`, enc(event('create', 'm-life')));
    await until('create', () => seen.length === 1);
    expect(seen[0]).toMatchObject({ machineId: 'm-life', type: 'create', command: 'create', ok: true });
    expect(newLines(before)).toEqual(['set boot default']);

    before = sim.chassisLog().length;
    peers.metalApi.publish(`${p}-machine`, enc(event('delete', 'm-life')));
    await until('delete', () => seen.length === 2);
    expect(seen[1]).toMatchObject({ machineId: 'm-life', type: 'delete', ok: true });
    const lines = newLines(before);
    expect(lines[0]).toBe('set boot pxe');
    expect(lines.slice(1).some((l) => /^set reset 1$/.test(l))).toBe(true);
  });

  it('terminates malformed events, which do not block the next valid one', async () => {
    const p = `p${++partitionSeq}`;
    const i = await instance(peers.server, p);
    const seen = await results(peers.metalApi, p);
    const before = sim.chassisLog().length;
    peers.metalApi.publish(`${p}-machine`, enc('{"type": "command", "cmd": '));
    peers.metalApi.publish(`${p}-machine`, enc({ type: 'command', cmd: { target: 'm-bad', cmd: 'ON' } }));
    peers.metalApi.publish(`${p}-machine`, enc(event('command', 'm-bad', 'SELF-DESTRUCT')));
    peers.metalApi.publish(`${p}-machine`, enc(event('command', 'm-good', 'LED-ON')));
    await until('valid command', () => seen.length === 1);
    expect(seen[0]).toMatchObject({ machineId: 'm-good', command: 'LED-ON', ok: true });
    expect(newLines(before)).toEqual(['set identify 0 1']);
    expect(i.log.find('machine event rejected').map((l) => l.reason)).toEqual(['not-json', 'missing-ipmi', 'unknown-command']);
    const rejected = await i.registry.getSingleMetricAsString('metal_bmc_events_rejected_total');
    for (const reason of ['not-json', 'missing-ipmi', 'unknown-command']) expect(rejected).toContain(`reason="${reason}"} 1`);
    const ci = await settled(peers.metalApi, p);
    expect(ci.num_ack_pending).toBe(0);
    expect(ci.num_redelivered).toBe(0);
    expect(ci.delivered.stream_seq).toBe(4);
    expect(i.log.text()).not.toContain(sim.password);
  });

  it('does not execute an event older than the TTL: dropped, logged, counted', async () => {
    const p = `p${++partitionSeq}`;
    // an operator's stream keeps events longer than metal-bmc's TTL; metal-bmc must still refuse old ones
    await (await jetstreamManager(peers.metalApi)).streams.add({ name: `OPS_${p}`, subjects: [`${p}-machine`], max_age: nanos(600_000) });
    await jetstream(peers.metalApi).publish(`${p}-machine`, enc(event('command', 'm-stale', 'OFF')));
    // the stimulus: the event must be older than the 1 s TTL when it is consumed (time is the subject)
    await sleep(1300);
    const before = sim.chassisLog().length;
    const i = await instance(peers.server, p, { ttlMs: 1000 });
    const seen = await results(peers.metalApi, p);
    await until('stale log line', () => i.log.find('stale machine event dropped').length === 1);
    await settled(peers.metalApi, p, `OPS_${p}`);
    expect(seen).toEqual([]);
    expect(newLines(before)).toEqual([]);
    expect(await i.registry.getSingleMetricAsString('metal_bmc_events_stale_total')).toMatch(/metal_bmc_events_stale_total 1$/m);
    expect(await i.registry.getSingleMetricAsString('metal_bmc_commands_total')).not.toMatch(/command="OFF"/);
  });

  it("a host clock a minute ahead of the NATS server's, past the 30 s TTL: a fresh command still runs, its age taken on the server's clock as measured; the offset is logged and in the metric", async () => {
    const p = `p${++partitionSeq}`;
    const i = await instance(peers.server, p, { hostClock: () => Date.now() + 60_000 });
    const seen = await results(peers.metalApi, p);
    // measured at the start, from a key written to the event journal's bucket
    expect(i.log.find(/this host's clock is 6\d\.\d s ahead of the NATS server's/)).toHaveLength(1);
    const offset = Number(/^metal_bmc_nats_clock_offset_seconds (\S+)$/m.exec(await i.registry.getSingleMetricAsString('metal_bmc_nats_clock_offset_seconds'))?.[1]);
    expect(offset).toBeGreaterThan(-61);
    expect(offset).toBeLessThan(-59);
    const before = sim.chassisLog().length;
    await jetstream(peers.metalApi).publish(`${p}-machine`, enc(event('command', 'm-clock', 'LED-ON')));
    await until('the command run', () => seen.length === 1);
    expect(seen[0]).toMatchObject({ machineId: 'm-clock', command: 'LED-ON', ok: true });
    expect(newLines(before)).toEqual(['set identify 0 1']);
    expect(i.log.find('stale machine event dropped')).toEqual([]);
  });

  it('two instances on one durable execute N commands exactly once in total', async () => {
    const p = `p${++partitionSeq}`;
    const a = await instance(peers.server, p, { concurrency: 2 });
    const b = await instance(peers.server, p, { concurrency: 2 });
    const seen = await results(peers.metalApi, p);
    const before = sim.chassisLog().length;
    const n = 8;
    for (let k = 0; k < n; k++) peers.metalApi.publish(`${p}-machine`, enc(event('command', `m-${k}`, k % 2 === 0 ? 'LED-ON' : 'LED-OFF')));
    await until('all results', () => seen.length >= n, 20_000);
    await settled(peers.metalApi, p);
    expect(seen.map((r) => r.machineId).sort()).toEqual(Array.from({ length: n }, (_, k) => `m-${k}`).sort());
    expect(seen.every((r) => r.ok)).toBe(true);
    expect(newLines(before).filter((l) => l.startsWith('set identify'))).toHaveLength(n);
    expect((await executed(a)) + (await executed(b))).toBe(n);
  });

  it('does not run a settled event again when the consumer delivers it as new (its state lost, created again)', async () => {
    const p = `p${++partitionSeq}`;
    const i = await instance(peers.server, p);
    const seen = await results(peers.metalApi, p);
    const before = sim.chassisLog().length;
    peers.metalApi.publish(`${p}-machine`, enc(event('command', 'm-c1', 'LED-ON')));
    await until('the command ran', () => seen.length === 1);
    await settled(peers.metalApi, p);
    // what a nats-server restarted before it wrote the consumer's state does: the event comes back
    // with delivery count 1. Here the consumer is deleted; the instance creates it again and the
    // stream (limits retention) delivers everything it keeps from the start.
    const jsm = await jetstreamManager(peers.metalApi);
    await jsm.consumers.delete(streamNameFor(`${p}-machine`), `metal-bmc-${p}`);
    await until('the redelivery seen and not run', () => i.log.find('redelivered machine event already settled here; acknowledged again, not run twice').length === 1, 20_000);
    await settled(peers.metalApi, p);
    expect(newLines(before)).toEqual(['set identify 0 1']);
    expect(seen.map((r) => `${r.machineId}:${r.command}:${r.ok}`)).toEqual(['m-c1:LED-ON:true']);
  });

  it('runs commands published before and after a nats-server restart exactly once', async () => {
    const own = await startTestNatsServer({ jetstream: true });
    cleanup.push(() => own.dispose());
    const api = await connect({ servers: own.url, maxReconnectAttempts: -1, reconnectTimeWait: 100 });
    cleanup.push(() => api.close());
    const p = `p${++partitionSeq}`;
    const i = await instance(own, p);
    const seen = await results(api, p);
    const before = sim.chassisLog().length;
    api.publish(`${p}-machine`, enc(event('command', 'm-r1', 'LED-ON')));
    await until('before', () => seen.length === 1);
    await own.stop();
    await until('the instance to notice the outage', () => !i.bus.connected());
    await own.restart();
    // metal-api retries a publish until JetStream stored it
    for (const deadline = Date.now() + 15_000; ; ) {
      try {
        await jetstream(api, { timeout: 2000 }).publish(`${p}-machine`, enc(event('command', 'm-r2', 'LED-OFF')), { msgID: 'm-r2' });
        break;
      } catch (err) {
        if (Date.now() > deadline) throw err;
        await sleep(200); // pause between publish attempts while the server comes back (not before an assertion)
      }
    }
    await until('after', () => seen.length >= 2, 15_000);
    await settled(api, p);
    expect({ results: seen.map((r) => `${r.machineId}:${r.command}:${r.ok}`), chassis: newLines(before) }).toEqual({ results: ['m-r1:LED-ON:true', 'm-r2:LED-OFF:true'], chassis: ['set identify 0 1', 'set identify 0 0'] });
  });
});

describe('one leader per partition takes the machine events (METAL_BMC_COMMAND_LEADER_LEASE)', () => {
  const peers = withJetStream();

  const gauge = async (i: Instance) => (await i.registry.getSingleMetricAsString('metal_bmc_commands_leading')).match(/^metal_bmc_commands_leading (\d)$/m)?.[1];

  it('two instances: each machine\'s commands run in order, all on the leader, although the first of each is slow', async () => {
    const p = `p${++partitionSeq}`;
    const a = await instance(peers.server, p, { concurrency: 8, leader: { instanceId: 'mgmt-a', leaseMs: 15_000 } });
    const b = await instance(peers.server, p, { concurrency: 8, leader: { instanceId: 'mgmt-b', leaseMs: 15_000 } });
    expect([a.service.subscription.leading(), b.service.subscription.leading()]).toEqual([true, false]);
    expect([await gauge(a), await gauge(b)]).toEqual(['1', '0']);
    // the first command of each machine goes to a BMC that holds each answer 250 ms, the second to the same BMC directly
    const slow = await startUdpProxy(sim.host, sim.port);
    slow.delayMs = 250;
    cleanup.push(() => slow.close());
    const seen = await results(peers.metalApi, p);
    const machines = Array.from({ length: 6 }, (_, k) => `m-${k}`);
    for (const m of machines) {
      const first = event('command', m, 'LED-ON');
      first.cmd.ipmi.address = `${sim.host}:${slow.port}`;
      peers.metalApi.publish(`${p}-machine`, enc(first));
      peers.metalApi.publish(`${p}-machine`, enc(event('command', m, 'LED-OFF')));
    }
    await until('all results', () => seen.length >= 2 * machines.length, 30_000);
    await settled(peers.metalApi, p);
    for (const m of machines) expect(seen.filter((r) => r.machineId === m).map((r) => r.command), m).toEqual(['LED-ON', 'LED-OFF']);
    expect(seen.every((r) => r.ok)).toBe(true);
    expect([await executed(a), await executed(b)]).toEqual([2 * machines.length, 0]);
  });

  it('a leader that stops hands over at once; one cut off from NATS stops taking events before the other takes over', async () => {
    const p = `p${++partitionSeq}`;
    const lease = 3000;
    const a = await instance(peers.server, p, { leader: { instanceId: 'mgmt-a', leaseMs: lease } });
    const b = await instance(peers.server, p, { leader: { instanceId: 'mgmt-b', leaseMs: lease } });
    const c = await instance(peers.server, p, { leader: { instanceId: 'mgmt-c', leaseMs: lease } });
    expect([a, b, c].map((i) => i.service.subscription.leading())).toEqual([true, false, false]);
    const seen = await results(peers.metalApi, p);

    // a stops (SIGTERM): b or c leads well before a lease time, and runs what comes next
    const stoppedAt = Date.now();
    await a.service.stop(2000);
    await until('a new leader', () => b.service.subscription.leading() || c.service.subscription.leading(), lease);
    expect(Date.now() - stoppedAt).toBeLessThan(lease);
    const [next, other] = b.service.subscription.leading() ? [b, c] : [c, b];
    peers.metalApi.publish(`${p}-machine`, enc(event('command', 'm-1', 'LED-ON')));
    await until('its result', () => seen.length >= 1);
    // its ack follows the result (after the event journal's write): cut off before it, the event
    // would come back to the other only after the ack wait (60 s), and run there again
    await settled(peers.metalApi, p);
    expect([await executed(next), await executed(other)]).toEqual([1, 0]);

    // the new leader loses NATS: it stops leading first, then the other takes over
    const changes: Array<{ who: string; leading: boolean; at: number }> = [];
    next.service.subscription.onLeading((leading) => changes.push({ who: 'cut off', leading, at: Date.now() }));
    other.service.subscription.onLeading((leading) => changes.push({ who: 'other', leading, at: Date.now() }));
    await next.bus.close(0);
    await until('the other leads', () => other.service.subscription.leading(), 4 * lease);
    expect(changes.map((x) => `${x.who} ${x.leading}`)).toEqual(['cut off false', 'other true']);
    expect(next.log.lines.some((l) => /not leading any more/.test(String(l.msg)))).toBe(true);
    peers.metalApi.publish(`${p}-machine`, enc(event('command', 'm-2', 'LED-OFF')));
    await until('its result', () => seen.length >= 2);
    await settled(peers.metalApi, p);
    expect(await executed(other)).toBe(1);
    expect(await gauge(other)).toBe('1');
  });

  it('the leader\'s bucket deleted while events flow: it is made again, a leader takes over, no event is lost', async () => {
    const p = `p${++partitionSeq}`;
    const lease = 3000;
    const a = await instance(peers.server, p, { concurrency: 8, leader: { instanceId: 'mgmt-a', leaseMs: lease } });
    const b = await instance(peers.server, p, { concurrency: 8, leader: { instanceId: 'mgmt-b', leaseMs: lease } });
    const seen = await results(peers.metalApi, p);
    const jsm = await jetstreamManager(peers.metalApi);
    const n = 40;
    for (let k = 0; k < n; k++) {
      peers.metalApi.publish(`${p}-machine`, enc(event('command', `m-${k}`, k % 2 === 0 ? 'LED-ON' : 'LED-OFF')));
      if (k === 10) await jsm.streams.delete(`KV_metal-bmc-${p}-leader`);
      await sleep(100);
    }
    // an event running when the bucket went may be aborted with the lead (an ABORTED result) and
    // run again once a leader holds it: every machine ends with a result that is ok
    const done = () => new Set(seen.filter((r) => r.ok).map((r) => r.machineId));
    await until('every event run', () => done().size === n, 30_000);
    await settled(peers.metalApi, p);
    expect(done().size).toBe(n);
    expect(seen.filter((r) => !r.ok).map((r) => r.code)).toEqual(seen.filter((r) => !r.ok).map(() => 'ABORTED'));
    await until('a leader', () => a.service.subscription.leading() !== b.service.subscription.leading(), 4 * lease);
    expect([a, b].some((i) => i.log.lines.some((l) => /key-value bucket was gone/.test(String(l.msg))))).toBe(true);
    expect((await jsm.streams.info(`KV_metal-bmc-${p}-leader`)).state.messages).toBeGreaterThan(0);
  });

  it('the lead lost while a command runs: it is aborted and goes back, and runs on the new leader before the machine\'s next, none on the old', async () => {
    const p = `p${++partitionSeq}`;
    const lease = 3000;
    const a = await instance(peers.server, p, { maxInFlight: 1, leader: { instanceId: 'mgmt-a', leaseMs: lease } });
    const b = await instance(peers.server, p, { maxInFlight: 1, leader: { instanceId: 'mgmt-b', leaseMs: lease } });
    expect(a.service.subscription.leading()).toBe(true);
    const seen = await results(peers.metalApi, p);
    const slow = await startUdpProxy(sim.host, sim.port);
    slow.delayMs = 400;
    cleanup.push(() => slow.close());
    const first = event('command', 'm-1', 'LED-ON');
    first.cmd.ipmi.address = `${sim.host}:${slow.port}`;
    peers.metalApi.publish(`${p}-machine`, enc(first));
    peers.metalApi.publish(`${p}-machine`, enc(event('command', 'm-1', 'LED-OFF')));
    // a runs the first (slowly); with its one slot busy, the second stays on the server
    const jsm = await jetstreamManager(peers.metalApi);
    await waitFor(async () => {
      const ci = await jsm.consumers.info(streamNameFor(`${p}-machine`), `metal-bmc-${p}`);
      return ci.num_ack_pending === 1 && ci.num_pending === 1;
    }, 10_000, 'the first with a, the second on the server', 25);
    // another holder writes the key (as a third instance that then goes quiet): a loses the lead at once
    const kv = await openKvBucket(peers.metalApi, jsm, `metal-bmc-${p}-leader`);
    const key = await kv.get('machine-events');
    expect(await kv.update('machine-events', Buffer.from('mgmt-x.0123456789abcdef'), key!.revision)).toBeDefined();
    await until('the first aborted on a', () => seen.some((r) => r.command === 'LED-ON' && r.code === 'ABORTED'));
    // a stops, so that b is the one to take over once the third holder's lease ran out
    await a.service.stop(2000);
    await until('both run', () => seen.filter((r) => r.ok).length === 2, 20_000);
    await settled(peers.metalApi, p);
    expect(seen.filter((r) => r.ok).map((r) => r.command)).toEqual(['LED-ON', 'LED-OFF']);
    expect([await executed(a), await executed(b)]).toEqual([0, 2]);
  });

  it('without a leader (lease 0) both instances take events, as before', async () => {
    const p = `p${++partitionSeq}`;
    const a = await instance(peers.server, p, { concurrency: 2 });
    const b = await instance(peers.server, p, { concurrency: 2 });
    expect([a.service.subscription.leading(), b.service.subscription.leading()]).toEqual([true, true]);
  });
});

describe('machine commands over core NATS (server without JetStream)', () => {
  it('falls back to a queue subscription and powers the machine on', async () => {
    const server = await startTestNatsServer({ jetstream: false });
    cleanup.push(() => server.dispose());
    const api = await connect({ servers: server.url });
    cleanup.push(() => api.close());
    const p = `p${++partitionSeq}`;
    const i = await instance(server, p);
    expect(i.service.subscription.mode).toBe('core');
    const seen = await results(api, p);
    await i.bus.nc.flush();
    const before = sim.chassisLog().length;
    api.publish(`${p}-machine`, enc(event('command', 'm-core', 'ON')));
    await until('result', () => seen.length === 1);
    expect(seen[0]).toMatchObject({ machineId: 'm-core', command: 'ON', ok: true });
    expect(newLines(before)).toContain('set power 1');
  });
});
