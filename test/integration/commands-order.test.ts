/**
 * A machine's commands keep their order and run once, with a real nats-server and a recording
 * fake BMC: a command that fails once is tried again before the commands queued behind it for
 * the same machine (a nak brought it back behind them), and a durable consumer created again
 * after a restart starts after the last event settled here (the position file) instead of
 * running every create and delete of the retention again.
 */
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, expect } from 'vitest';
import { streamNameFor } from '../../src/bus/jetstream.js';
import { createEventJournal, eventJournalBucketName } from '../../src/bus/event-journal.js';
import { openKvBucket } from '../../src/bus/kv.js';
import type { CommandResult, ConnectBmc } from '../../src/commands/runner.js';
import type { StepJournal } from '../../src/commands/step-journal.js';
import { BmcError } from '../../src/errors.js';
import type { Outband } from '../../src/outband/types.js';
import { startCommandService, type CommandService } from '../../src/parts/commands.js';
import { captureLog, type CapturedLog } from '../helpers/log.js';
import { consumerSettled, startTestNatsServer, type TestNatsServer } from '../helpers/nats-server.js';
import { withPeers } from '../helpers/peers.js';
import { waitFor } from '../helpers/wait.js';

const { describe, it } = withPeers('nats-server');

const enc = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));
const until = (what: string, check: () => boolean, ms = 15_000) => waitFor(check, ms, what, 25);

let server: TestNatsServer;
let metalApi: NatsConnection;
let seq = 0;
const cleanup: Array<() => Promise<unknown>> = [];

beforeAll(async () => {
  server = await startTestNatsServer({ jetstream: true });
  metalApi = await connect({ servers: server.url });
});
afterAll(async () => {
  await metalApi?.close();
  await server?.dispose();
});
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c().catch(() => undefined);
});

/**
 * BMCs that record what they are told, per machine address, and keep its power state. An action
 * named in `failing` fails with HTTP 503 as often as it says, after `gate` (when given) resolves.
 */
function fakeBmcs() {
  const actions: string[] = [];
  const power = new Map<string, 'on' | 'off'>();
  const failing = new Map<string, number>();
  let gate: Promise<void> | undefined;
  const connectBmc: ConnectBmc = (ipmi) => {
    const act = (name: string, effect?: () => void) => async () => {
      const left = failing.get(name) ?? 0;
      if (left > 0) {
        failing.set(name, left - 1);
        await gate;
        actions.push(`${name} -> HTTP 503`);
        throw new BmcError('HTTP', `${name}: HTTP 503 Service Unavailable`, { httpStatus: 503 });
      }
      actions.push(name);
      effect?.();
    };
    return {
      address: ipmi.host,
      vendor: 'fake',
      powerOn: act('ON', () => power.set(ipmi.host, 'on')),
      powerOff: act('OFF', () => power.set(ipmi.host, 'off')),
      powerReset: act('RESET', () => power.set(ipmi.host, 'on')),
      powerCycle: act('CYCLE', () => power.set(ipmi.host, 'on')),
      bootFrom: (device: string, o: { persistent: boolean }) => act(`boot ${device}${o.persistent ? '' : ' once'}`)(),
      identify: (on: boolean) => act(on ? 'LED-ON' : 'LED-OFF')(),
      close: async () => undefined,
    } as unknown as Outband;
  };
  return { actions, power, failing, connectBmc, hold: (until: Promise<void>) => void (gate = until) };
}

interface Instance {
  service: CommandService;
  log: CapturedLog;
  /** stops the service and closes its connection (once; the cleanup does it otherwise) */
  stop(): Promise<void>;
}

async function instance(partition: string, connectBmc: ConnectBmc, o: { positionFile?: string; leader?: string; journal?: StepJournal } = {}): Promise<Instance> {
  const log = captureLog();
  const nc = await connect({ servers: server.url });
  const service = await startCommandService({
    nc,
    subject: `${partition}-machine`,
    resultSubject: `${partition}-machine-result`,
    ttlMs: 30_000,
    durableName: `metal-bmc-${partition}`,
    connect: connectBmc,
    concurrency: 4,
    timeoutMs: 5000,
    logger: log.logger,
    ...(o.positionFile ? { positionFile: o.positionFile } : {}),
    ...(o.leader ? { leader: { instanceId: o.leader, leaseMs: 15_000 } } : {}),
    ...(o.journal ? { journal: o.journal } : {}),
  });
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    await service.stop(2000);
    await nc.close();
  };
  cleanup.push(stop);
  return { service, log, stop };
}

async function results(partition: string): Promise<CommandResult[]> {
  const seen: CommandResult[] = [];
  const sub = metalApi.subscribe(`${partition}-machine-result`, { callback: (_err, m) => void seen.push(m.json<CommandResult>()) });
  await metalApi.flush();
  cleanup.push(async () => sub.unsubscribe());
  return seen;
}

const command = (machine: string, cmd: string) => ({ type: 'command', new: machine, cmd: { target: machine, cmd, ipmi: { address: `${machine}.bmc:623`, password: 'pw' } } });
const deletion = (machine: string) => ({ type: 'delete', old: machine, cmd: { target: machine, ipmi: { address: `${machine}.bmc:623`, password: 'pw' } } });

/** Both events are with the instance (delivered, neither settled): the second one is queued behind the first. */
async function bothDelivered(p: string): Promise<void> {
  const jsm = await jetstreamManager(metalApi);
  await waitFor(async () => {
    const ci = await jsm.consumers.info(streamNameFor(`${p}-machine`), `metal-bmc-${p}`);
    return ci.delivered.stream_seq === 2 && ci.num_ack_pending === 2;
  }, 10_000, 'both events delivered', 25);
}

describe('an event handed back keeps its place among its machine\'s events', () => {
  it('an OFF published while the CYCLE before it waits out its hand-back (the event journal unreachable) runs after the CYCLE, not before', async () => {
    const p = `order${++seq}`;
    const bmcs = fakeBmcs();
    const seen = await results(p);
    const real = createEventJournal({ kv: await openKvBucket(metalApi, await jetstreamManager(metalApi), eventJournalBucketName(`metal-bmc-${p}`)), instanceId: 'order-a', logger: captureLog().logger });
    let down = true;
    // a JetStream leader election of the journal's bucket: the CYCLE cannot be claimed, the OFF needs no claim
    const journal: StepJournal = { claim: (eventId, step) => (down ? Promise.reject(new BmcError('UNAVAILABLE', 'the journal is down (test)')) : real.claim(eventId, step)) };
    const a = await instance(p, bmcs.connectBmc, { journal });
    metalApi.publish(`${p}-machine`, enc(command('m1', 'CYCLE')));
    // its second hand-back: the next delivery waits 500 ms, while a first delivery of the OFF would not wait at all
    await until('the CYCLE handed back twice', () => seen.filter((r) => r.command === 'CYCLE' && r.handedBack).length >= 2);
    metalApi.publish(`${p}-machine`, enc(command('m1', 'OFF')));
    await until('a result of the OFF', () => seen.some((r) => r.command === 'OFF'));
    down = false;
    await until('both run', () => seen.filter((r) => r.ok).length === 2);
    await consumerSettled(metalApi, streamNameFor(`${p}-machine`), `metal-bmc-${p}`);
    // metal-api's last word was OFF: the machine ends off
    expect(bmcs.actions).toEqual(['CYCLE', 'OFF']);
    expect(bmcs.power.get('m1.bmc')).toBe('off');
    expect(seen.find((r) => r.code === 'HELD_BEHIND')).toMatchObject({ ok: false, handedBack: true, error: expect.stringMatching(/^OFF not run yet: the machine's earlier CYCLE went back to the stream/) });
    expect(a.log.find(/handed back: an earlier event of its machine went back to the stream/).length).toBeGreaterThan(0);
  });
});

describe('a command that failed once keeps its place among its machine\'s commands', () => {
  it('a one-time BIOS boot that failed once runs again before the CYCLE meant to use it, not after', async () => {
    const p = `order${++seq}`;
    const bmcs = fakeBmcs();
    let release!: () => void;
    bmcs.hold(new Promise<void>((resolve) => (release = resolve)));
    bmcs.failing.set('boot BIOS once', 1);
    await instance(p, bmcs.connectBmc);
    const seen = await results(p);
    // the operator's "enter BIOS setup": boot BIOS once, then power cycle
    metalApi.publish(`${p}-machine`, enc(command('m1', 'BIOS')));
    metalApi.publish(`${p}-machine`, enc(command('m1', 'CYCLE')));
    await bothDelivered(p);
    release();
    await until('two results', () => seen.length >= 2);
    const ci = await consumerSettled(metalApi, streamNameFor(`${p}-machine`), `metal-bmc-${p}`);
    await metalApi.flush();
    expect(bmcs.actions).toEqual(['boot BIOS once -> HTTP 503', 'boot BIOS once', 'CYCLE']);
    expect(seen.map((r) => `${r.command}:${r.ok}:${r.attempts ?? 1}`)).toEqual(['BIOS:true:2', 'CYCLE:true:1']);
    expect(ci.num_redelivered).toBe(0);
  });

  it('an OFF that keeps failing ends failed (published, never redelivered) before the ON behind it: the machine ends on', async () => {
    const p = `order${++seq}`;
    const bmcs = fakeBmcs();
    let release!: () => void;
    bmcs.hold(new Promise<void>((resolve) => (release = resolve)));
    bmcs.failing.set('OFF', 2);
    await instance(p, bmcs.connectBmc);
    const seen = await results(p);
    metalApi.publish(`${p}-machine`, enc(command('m2', 'OFF')));
    metalApi.publish(`${p}-machine`, enc(command('m2', 'ON')));
    await bothDelivered(p);
    release();
    await until('two results', () => seen.length >= 2);
    const ci = await consumerSettled(metalApi, streamNameFor(`${p}-machine`), `metal-bmc-${p}`);
    await metalApi.flush();
    expect(bmcs.actions).toEqual(['OFF -> HTTP 503', 'OFF -> HTTP 503', 'ON']);
    expect(seen).toHaveLength(2);
    expect(seen[0]).toMatchObject({ command: 'OFF', ok: false, code: 'HTTP', attempts: 2 });
    expect(seen[1]).toMatchObject({ command: 'ON', ok: true });
    expect(bmcs.power.get('m2.bmc')).toBe('on');
    expect(ci.num_redelivered).toBe(0);
  });
});

describe('a durable consumer created again does not run the retention again', () => {
  it('deletes settled before a restart with the consumer lost run once; the one published while away runs', async () => {
    const p = `order${++seq}`;
    const dir = mkdtempSync(join(tmpdir(), 'metal-bmc-position-'));
    cleanup.push(async () => rmSync(dir, { recursive: true, force: true }));
    const positionFile = join(dir, 'machine-event-position.json');
    const stream = streamNameFor(`${p}-machine`);
    const bmcs = fakeBmcs();
    const seen = await results(p);
    const first = await instance(p, bmcs.connectBmc, { positionFile });
    for (let k = 0; k < 5; k++) metalApi.publish(`${p}-machine`, enc(deletion(`m${k}`)));
    await until('five deletes', () => seen.length === 5);
    await consumerSettled(metalApi, stream, `metal-bmc-${p}`);
    await first.stop();
    expect(bmcs.actions.filter((a) => a === 'RESET')).toHaveLength(5);

    // the consumer is lost while the daemon is away (by hand, or with a server's state); a delete comes meanwhile
    const jsm = await jetstreamManager(metalApi);
    await jsm.consumers.delete(stream, `metal-bmc-${p}`);
    await jetstream(metalApi).publish(`${p}-machine`, enc(deletion('m-away')));
    const before = bmcs.actions.length;
    const again = await instance(p, bmcs.connectBmc, { positionFile });
    await until('the delete published while away', () => seen.length >= 6);
    await consumerSettled(metalApi, stream, `metal-bmc-${p}`);
    await metalApi.flush();
    expect(bmcs.actions.slice(before)).toEqual(['boot PXE', 'RESET']);
    expect(seen.slice(5).map((r) => r.machineId)).toEqual(['m-away']);
    // the position file (written at the stop at the latest), a private state file
    await again.stop();
    expect(JSON.parse(readFileSync(positionFile, 'utf8'))).toMatchObject({ version: 1, stream, created: (await jsm.streams.info(stream)).created, seq: 6 });
    expect(statSync(positionFile).mode & 0o777).toBe(0o600);
    // one line per consumer created, naming where it starts
    expect(first.log.find('JetStream consumer created').map((l) => l.start)).toEqual(['the first event the stream holds (no position saved here)']);
    expect(again.log.find('JetStream consumer created').map((l) => l.start)).toEqual(['sequence 6, after the last event settled here']);
  });

  it('leaders taking turns: a consumer created again by the one that led first starts after what the other settled since', async () => {
    const p = `order${++seq}`;
    const dir = mkdtempSync(join(tmpdir(), 'metal-bmc-position-'));
    cleanup.push(async () => rmSync(dir, { recursive: true, force: true }));
    const fileA = join(dir, 'a.json');
    const fileB = join(dir, 'b.json');
    const stream = streamNameFor(`${p}-machine`);
    const bmcs = fakeBmcs();
    const seen = await results(p);
    const a = await instance(p, bmcs.connectBmc, { positionFile: fileA, leader: 'mgmt-a' });
    const b = await instance(p, bmcs.connectBmc, { positionFile: fileB, leader: 'mgmt-b' });
    expect([a.service.subscription.leading(), b.service.subscription.leading()]).toEqual([true, false]);
    for (let k = 0; k < 3; k++) metalApi.publish(`${p}-machine`, enc(deletion(`a${k}`)));
    await until('three deletes on a', () => seen.length === 3);
    await consumerSettled(metalApi, stream, `metal-bmc-${p}`);
    // a stops: b leads and settles three more, then stops too
    await a.stop();
    await until('b leads', () => b.service.subscription.leading());
    for (let k = 0; k < 3; k++) metalApi.publish(`${p}-machine`, enc(deletion(`b${k}`)));
    await until('three deletes on b', () => seen.length === 6);
    await consumerSettled(metalApi, stream, `metal-bmc-${p}`);
    await b.stop();
    expect(bmcs.actions.filter((x) => x === 'RESET')).toHaveLength(6);
    expect(JSON.parse(readFileSync(fileA, 'utf8'))).toMatchObject({ seq: 3 });

    // the consumer is lost while both are away; a delete comes meanwhile; a comes back first
    const jsm = await jetstreamManager(metalApi);
    await jsm.consumers.delete(stream, `metal-bmc-${p}`);
    await jetstream(metalApi).publish(`${p}-machine`, enc(deletion('m-away')));
    const before = bmcs.actions.length;
    const again = await instance(p, bmcs.connectBmc, { positionFile: fileA, leader: 'mgmt-a' });
    await until('the delete published while away', () => seen.length >= 7);
    await consumerSettled(metalApi, stream, `metal-bmc-${p}`);
    await metalApi.flush();
    // b's three deletes are not run again: the machines they freed are not reset a second time
    expect(bmcs.actions.slice(before)).toEqual(['boot PXE', 'RESET']);
    expect(seen.slice(6).map((r) => r.machineId)).toEqual(['m-away']);
    expect(again.log.find('JetStream consumer created').map((l) => l.start)).toEqual(['sequence 7, after the last event settled here']);
  });
});
