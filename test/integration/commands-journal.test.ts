/**
 * The event journal with a real nats-server and the simulated fleet: a RESET whose instance lost
 * NATS before its ack reached the server is redelivered to another instance, which does not send
 * it again; an event settled and delivered again (its ack lost, its consumer created again) is
 * acknowledged again, not run; with the journal unreachable a RESET is not sent, its event goes
 * back and runs once the journal works. The journal's rules one by one are in
 * test/unit/commands-journal.test.ts.
 */
import { jetstreamManager } from '@nats-io/jetstream';
import { connect, nanos, type NatsConnection } from '@nats-io/transport-node';
import { expect } from 'vitest';
import { connectBus, type BusConnection } from '../../src/bus/connection.js';
import { createEventJournal, eventJournalBucketName } from '../../src/bus/event-journal.js';
import { streamNameFor } from '../../src/bus/jetstream.js';
import { kvStreamName, openKvBucket } from '../../src/bus/kv.js';
import { createEventHandler } from '../../src/commands/handler.js';
import { createCommandMetrics } from '../../src/commands/metrics.js';
import { createCommandRunner, type CommandResult, type ConnectBmc } from '../../src/commands/runner.js';
import { createEventJournal as journalOn, journalEventId, settledKey } from '../../src/bus/event-journal.js';
import type { KvBucket } from '../../src/bus/kv.js';
import type { SimMachine } from '../../src/sim/machine.js';
import { Registry } from 'prom-client';
import type { StepJournal } from '../../src/commands/step-journal.js';
import { BmcError } from '../../src/errors.js';
import { connectOutband } from '../../src/outband/connect.js';
import { startCommandService, type CommandService } from '../../src/parts/commands.js';
import type { Fleet } from '../../src/sim/fleet.js';
import { commandPeers, redfishPowered as redfishPoweredOf } from '../helpers/command-peers.js';
import { captureLog } from '../helpers/log.js';
import { consumerSettled, type TestNatsServer } from '../helpers/nats-server.js';
import { withPeers } from '../helpers/peers.js';
import { waitFor } from '../helpers/wait.js';

const { describe, it } = withPeers('nats-server', 'openssl');

const enc = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));
const until = (what: string, check: () => boolean, ms = 20_000) => waitFor(check, ms, what, 25);
const ACK_WAIT_MS = 2000;

let fleet: Fleet;
let server: TestNatsServer;
let metalApi: NatsConnection;
let seq = 0;
const cleanup = commandPeers(2, (p) => ({ fleet, server, metalApi } = p));

const redfishPowered = () => redfishPoweredOf(fleet);

function resetEvent(i: number) {
  const m = fleet.machines[i]!.state;
  return { type: 'command', new: `machine-${i}`, cmd: { target: `machine-${i}`, cmd: 'RESET', ipmi: { address: `${m.address}:${fleet.ipmiPort}`, user: fleet.user, password: fleet.password, mac: m.mac } } };
}

/** metal-api's create or delete of machine `i`. */
function lifecycleEvent(i: number, type: 'create' | 'delete') {
  const m = fleet.machines[i]!.state;
  return { type, ...(type === 'delete' ? { old: `machine-${i}` } : { new: `machine-${i}` }), cmd: { target: `machine-${i}`, ipmi: { address: `${m.address}:${fleet.ipmiPort}`, user: fleet.user, password: fleet.password, mac: m.mac } } };
}

/** What the machine's BMC was told to do from now on (boot devices, power), until the test ends. */
function changesOf(machine: SimMachine): string[] {
  const changes: string[] = [];
  const listen = (c: { kind: string; boot?: string; action?: string }) => void (['boot', 'power'].includes(c.kind) && changes.push(`${c.kind} ${c.boot ?? c.action ?? ''}`));
  machine.on('change', listen);
  cleanup.push(async () => machine.off('change', listen));
  return changes;
}

/** The simulated fleet's BMC behind an event's address. */
const connectSim: ConnectBmc = (ipmi, { signal }) => connectOutband({ host: ipmi.host, user: ipmi.user ?? '', password: ipmi.password ?? '', ipmiPort: ipmi.port, redfishPort: fleet.redfishPort, timeoutMs: 5000, signal });

/** An instance's runner and handler on the partition's event journal (no NATS consumer: the test delivers), and the results it tells. */
function runnerOn(kv: KvBucket, instanceId: string) {
  const log = captureLog();
  const registry = new Registry();
  const metrics = createCommandMetrics(registry);
  const journal = journalOn({ kv, instanceId, logger: log.logger });
  const told: CommandResult[] = [];
  const runner = createCommandRunner({ connect: connectSim, concurrency: 4, timeoutMs: 10_000, ttlMs: 30_000, logger: log.logger, metrics, journal, onResult: (r) => void told.push(r) });
  cleanup.push(() => runner.drain(2000));
  return { handler: createEventHandler({ runner, ttlMs: 30_000, logger: log.logger, metrics, journal }), told, registry, log };
}

/** A partition: its subjects, and the results metal-api sees. */
async function partition(): Promise<{ name: string; results: CommandResult[] }> {
  const name = `journal${++seq}`;
  const results: CommandResult[] = [];
  const sub = metalApi.subscribe(`${name}-machine-result`, { callback: (_e, m) => void results.push(m.json<CommandResult>()) });
  cleanup.push(async () => sub.unsubscribe());
  await metalApi.flush();
  return { name, results };
}

/** An instance of the partition on its own NATS connection. */
async function instance(p: string, instanceId: string, o: { journal?: StepJournal; connect?: ConnectBmc } = {}): Promise<{ bus: BusConnection; svc: CommandService }> {
  const log = captureLog();
  // a test closes the connection under an instance to play one that lost NATS: not a reason to exit
  const bus = await connectBus({ servers: [server.url], logger: log.logger, name: instanceId, reconnectTimeWaitMs: 200, onLost: () => undefined });
  const svc = await startCommandService({
    nc: bus.nc,
    subject: `${p}-machine`,
    resultSubject: `${p}-machine-result`,
    ttlMs: 60_000,
    durableName: `metal-bmc-${p}`,
    ackWaitMs: ACK_WAIT_MS,
    instanceId,
    ...(o.journal ? { journal: o.journal } : {}),
    connect: o.connect ?? ((ipmi, { signal }) => connectOutband({ host: ipmi.host, user: ipmi.user ?? '', password: ipmi.password ?? '', ipmiPort: ipmi.port, redfishPort: fleet.redfishPort, timeoutMs: 5000, signal })),
    concurrency: 4,
    timeoutMs: 10_000,
    logger: log.logger,
  });
  cleanup.push(async () => {
    await svc.stop(2000);
    await bus.close(1000);
  });
  return { bus, svc };
}

describe('the event journal: a RESET is sent at most once whatever its deliveries', () => {
  it('a RESET whose instance lost NATS before its ack reached the server is not sent again by the instance that gets the redelivery: OUTCOME_UNKNOWN naming the first', async () => {
    const machine = redfishPowered()[0]!;
    const i = machine.state.index;
    const resets: string[] = [];
    const p = await partition();
    const a = await instance(p.name, 'instance-a');
    // the BMC acts, and at that moment instance a loses NATS: its ack (and the journal's "done") never reach the server
    machine.on('change', (c: { kind: string; action?: string }) => {
      if (c.kind !== 'power') return;
      resets.push(c.action ?? '');
      if (resets.length === 1) void a.bus.nc.close();
    });
    metalApi.publish(`${p.name}-machine`, enc(resetEvent(i)));
    await until('the reset on instance a', () => resets.length === 1);
    await instance(p.name, 'instance-b');
    await until('the result of the redelivery', () => p.results.length === 1);
    const info = await consumerSettled(metalApi, streamNameFor(`${p.name}-machine`), `metal-bmc-${p.name}`);
    expect(p.results[0]).toMatchObject({ command: 'RESET', ok: false, code: 'OUTCOME_UNKNOWN', outcomeUnknown: true });
    expect(p.results[0]!.error).toMatch(/^RESET of this event was claimed by an earlier delivery \(instance instance-a at \d{4}-.*\), which may have sent it to the BMC; it is not sent again/);
    expect(info.delivered.consumer_seq).toBe(2);
    expect(resets).toHaveLength(1);
    // the journal's keys outlive the event in the stream: retention (24 h) + ack_wait + 10 min
    const bucket = await (await jetstreamManager(metalApi)).streams.info(kvStreamName(eventJournalBucketName(`metal-bmc-${p.name}`)));
    expect(bucket.config.max_age).toBe(nanos(86_400_000 + ACK_WAIT_MS + 600_000));
  });

  it('a RESET cut off by the stop of its service four times (rolling restarts during one event) runs on the next: each hand-back counted, never refused as a run that never settled', async () => {
    const machine = redfishPowered()[0]!;
    const i = machine.state.index;
    const resets: string[] = [];
    machine.on('change', (c: { kind: string; action?: string }) => void (c.kind === 'power' && resets.push(c.action ?? '')));
    const p = await partition();
    let connects = 0;
    // a BMC that does not answer while these instances run the event: each stop cuts the run off
    const hanging: ConnectBmc = (_ipmi, { signal }) => (connects++, new Promise((_resolve, reject) => signal.addEventListener('abort', () => reject(signal.reason as Error), { once: true })));
    for (let restart = 1; restart <= 4; restart++) {
      const a = await instance(p.name, `instance-r${restart}`, { connect: hanging });
      // published once the stream is there (the first instance makes it)
      if (restart === 1) metalApi.publish(`${p.name}-machine`, enc(resetEvent(i)));
      await until(`delivery ${restart} running`, () => connects === restart);
      await a.svc.stop(300);
      await a.bus.close(1000);
    }
    await instance(p.name, 'instance-last');
    await until('the RESET run', () => p.results.some((r) => r.ok));
    await consumerSettled(metalApi, streamNameFor(`${p.name}-machine`), `metal-bmc-${p.name}`);
    expect(p.results.map((r) => r.code ?? 'ok')).toEqual(['ABORTED', 'ABORTED', 'ABORTED', 'ABORTED', 'ok']);
    expect(resets).toHaveLength(1);
  });

  it('a late delete whose RESET gave way to the newer create, delivered again on another instance after its ack was lost (nothing newer pending there), is acknowledged again and not run: the machine keeps DISK and is not reset', async () => {
    const machine = redfishPowered()[0]!;
    const i = machine.state.index;
    const p = await partition();
    const nc = await connect({ servers: server.url });
    cleanup.push(() => nc.close());
    const kv = await openKvBucket(nc, await jetstreamManager(nc), eventJournalBucketName(`metal-bmc-${p.name}`));
    const a = runnerOn(kv, 'instance-a');
    const b = runnerOn(kv, 'instance-b');
    const stream = { stream: `METAL_BMC_${p.name}-MACHINE`, created: new Date().toISOString() };
    const [deleted, created] = [journalEventId(stream, 1), journalEventId(stream, 2)];
    // published while metal-bmc was down: both are late, the create an hour after the delete
    const at = Date.now() - 2 * 3600_000;
    const deleteMeta = { publishedAt: new Date(at), deliveryCount: 1, eventId: deleted };
    const changes = changesOf(machine);
    const first = await Promise.all([
      a.handler(enc(lifecycleEvent(i, 'delete')), deleteMeta),
      a.handler(enc(lifecycleEvent(i, 'create')), { publishedAt: new Date(at + 3600_000), deliveryCount: 1, eventId: created }),
    ]);
    expect(first).toEqual(['ack', 'ack']);
    expect(a.told).toMatchObject([
      { type: 'delete', ok: true, late: true, skipped: ['RESET'] },
      { type: 'create', ok: true, late: true },
    ]);
    const settledOnce = [...changes];
    expect(settledOnce).toEqual(['boot pxe', 'boot disk']);
    // its ack never reached the server: the delete comes again, to another instance, alone
    expect(await b.handler(enc(lifecycleEvent(i, 'delete')), { ...deleteMeta, deliveryCount: 2 })).toBe('ack');
    expect(changes).toEqual(settledOnce);
    expect(b.told).toEqual([]);
    expect((await kv.get(settledKey(deleted)))?.value).toBeDefined();
    expect(await b.registry.getSingleMetricAsString('metal_bmc_events_settled_before_total')).toContain('metal_bmc_events_settled_before_total{seen="journal"} 1');
    expect(b.log.find('machine event settled by an earlier delivery (its ack was lost); acknowledged again, not run')).toMatchObject([{ eventId: deleted, settledBy: expect.stringMatching(/^instance instance-a at /) }]);
  });

  it('events settled by one instance and delivered again by their consumer created anew (delivery count 1) are acknowledged again by another instance, not run: no boot device set again, no second result', async () => {
    const machine = redfishPowered()[1]!;
    const i = machine.state.index;
    const p = await partition();
    const a = await instance(p.name, 'instance-a');
    const changes = changesOf(machine);
    metalApi.publish(`${p.name}-machine`, enc(lifecycleEvent(i, 'delete')));
    metalApi.publish(`${p.name}-machine`, enc(lifecycleEvent(i, 'create')));
    const stream = streamNameFor(`${p.name}-machine`);
    await until('both results', () => p.results.length === 2);
    await consumerSettled(metalApi, stream, `metal-bmc-${p.name}`);
    expect(p.results).toMatchObject([{ type: 'delete', ok: true }, { type: 'create', ok: true }]);
    await a.svc.stop(2000);
    await a.bus.close(1000);
    const settledOnce = [...changes];
    expect(settledOnce.filter((c) => c.startsWith('boot'))).toEqual(['boot pxe', 'boot disk']);
    expect(settledOnce.filter((c) => c.startsWith('power'))).toHaveLength(1);
    // the consumer lost (deleted by hand, a server's state gone): made again, it starts at the stream's first event
    await (await jetstreamManager(metalApi)).consumers.delete(stream, `metal-bmc-${p.name}`);
    const b = await instance(p.name, 'instance-b');
    const info = await consumerSettled(metalApi, stream, `metal-bmc-${p.name}`);
    expect(info.delivered.stream_seq).toBe(2);
    await metalApi.flush();
    expect(p.results).toHaveLength(2);
    expect(changes).toEqual(settledOnce);
    expect(b.svc.runner.pending).toBe(0);
  });

  it('ack_wait lies beyond the topic TTL also when the TTL is longer than the command deadline: a command whose ack was lost comes back stale, never to run after the machine\'s later commands', async () => {
    const p = await partition();
    const log = captureLog();
    const bus = await connectBus({ servers: [server.url], logger: log.logger, name: 'instance-ttl', reconnectTimeWaitMs: 200 });
    const svc = await startCommandService({ nc: bus.nc, subject: `${p.name}-machine`, resultSubject: `${p.name}-machine-result`, ttlMs: 30_000, durableName: `metal-bmc-${p.name}`, instanceId: 'instance-ttl', connect: connectSim, concurrency: 1, timeoutMs: 5000, logger: log.logger });
    cleanup.push(async () => {
      await svc.stop(2000);
      await bus.close(1000);
    });
    const info = await (await jetstreamManager(metalApi)).consumers.info(streamNameFor(`${p.name}-machine`), `metal-bmc-${p.name}`);
    expect(info.config.ack_wait).toBe(nanos(40_000));
  });

  it('with the journal unreachable the RESET is not sent and its event goes back; once the journal works it runs, once', async () => {
    const machine = redfishPowered()[1]!;
    const i = machine.state.index;
    const resets: string[] = [];
    machine.on('change', (c: { kind: string; action?: string }) => void (c.kind === 'power' && resets.push(c.action ?? '')));
    const p = await partition();
    const nc = await connect({ servers: server.url });
    cleanup.push(() => nc.close());
    const real = createEventJournal({ kv: await openKvBucket(nc, await jetstreamManager(nc), eventJournalBucketName(`metal-bmc-${p.name}`)), instanceId: 'instance-c', logger: captureLog().logger });
    let down = true;
    const journal: StepJournal = { claim: (eventId, step) => (down ? Promise.reject(new BmcError('UNAVAILABLE', 'the journal is down (test)')) : real.claim(eventId, step)) };
    await instance(p.name, 'instance-c', { journal });
    metalApi.publish(`${p.name}-machine`, enc(resetEvent(i)));
    await until('a result while the journal is down', () => p.results.length >= 1);
    expect(p.results[0]).toMatchObject({ command: 'RESET', ok: false, code: 'UNAVAILABLE', handedBack: true });
    expect(p.results[0]!.error).toMatch(/^RESET not sent: the event journal cannot be used/);
    expect(resets).toEqual([]);
    down = false;
    await until('the RESET run', () => p.results.some((r) => r.ok));
    await consumerSettled(metalApi, streamNameFor(`${p.name}-machine`), `metal-bmc-${p.name}`);
    expect(p.results.filter((r) => r.ok)).toHaveLength(1);
    expect(p.results.filter((r) => !r.ok).every((r) => r.code === 'UNAVAILABLE')).toBe(true);
    expect(resets).toHaveLength(1);
  });
});
