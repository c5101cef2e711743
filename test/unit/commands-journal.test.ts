/**
 * The event journal: each non-idempotent step of an event is sent at most once whatever its
 * deliveries. The journal itself (src/bus/event-journal.ts) on the in-memory bucket (the
 * compare-and-set rules of kv.ts, checked against nats-server in bus-kv.test.ts), and the runner
 * with it, two runners standing for two instances that get deliveries of the same event. The path
 * through nats-server and the simulated fleet is in test/integration/commands-journal.test.ts.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createEventJournal, journalEventId, parseRecord, recordOf, settledRecordOf, runsKey, settledKey, stepKey, type JournalClaim } from '../../src/bus/event-journal.js';
import { isValidKey, type KvBucket } from '../../src/bus/kv.js';
import type { Plan } from '../../src/commands/event.js';
import { dispositionOf } from '../../src/commands/handler.js';
import { createCommandMetrics } from '../../src/commands/metrics.js';
import { createCommandRunner, type CommandRunnerOptions } from '../../src/commands/runner.js';
import type { StepJournal } from '../../src/commands/step-journal.js';
import { endedWithin } from '../../src/deadline.js';
import { Registry } from 'prom-client';
import { waitFor } from '../helpers/wait.js';
import { BmcError, isBmcError } from '../../src/errors.js';
import type { Outband } from '../../src/outband/types.js';
import { captureLog } from '../helpers/log.js';
import { createMemoryKv, type MemoryKvClient } from '../helpers/memory-kv.js';

const EVENT = journalEventId({ stream: 'METAL_BMC_P-MACHINE', created: '2026-01-01T00:00:00Z' }, 7);

function journalOf(kv: KvBucket, instanceId: string) {
  const log = captureLog();
  return { journal: createEventJournal({ kv, instanceId, logger: log.logger, now: () => Date.parse('2026-01-02T03:04:05Z') }), log };
}

const seen = (c: JournalClaim) => {
  if (!('seen' in c)) throw new Error('expected seen, got go');
  return c.seen;
};
const go = (c: JournalClaim) => {
  if (!('go' in c)) throw new Error(`expected go, got seen ${JSON.stringify(c.seen)}`);
  return c.go;
};

describe('event journal', () => {
  it('gives a step to the first delivery that claims it; a later one sees who claimed it and when', async () => {
    const store = createMemoryKv('p-events');
    const a = journalOf(store.client(), 'a').journal;
    const b = journalOf(store.client(), 'b').journal;
    go(await a.claim(EVENT, 1));
    expect(seen(await b.claim(EVENT, 1))).toEqual({ state: 'claimed', instance: 'a', at: '2026-01-02T03:04:05.000Z' });
    // another step of the same event, and the same step of another event, are keys of their own
    go(await b.claim(EVENT, 0));
    go(await b.claim(journalEventId({ stream: 'METAL_BMC_P-MACHINE', created: '2026-01-01T00:00:00Z' }, 8), 1));
    expect([...store.entries().keys()].sort()).toEqual([stepKey(EVENT, 0), stepKey(EVENT, 1), stepKey(journalEventId({ stream: 'METAL_BMC_P-MACHINE', created: '2026-01-01T00:00:00Z' }, 8), 1)].sort());
  });

  it('a step released (provably not sent) is taken by the next delivery; one done is seen done', async () => {
    const store = createMemoryKv('p-events');
    const a = journalOf(store.client(), 'a').journal;
    const b = journalOf(store.client(), 'b').journal;
    await go(await a.claim(EVENT, 1)).release();
    const taken = go(await b.claim(EVENT, 1));
    expect(seen(await a.claim(EVENT, 1))).toMatchObject({ state: 'claimed', instance: 'b' });
    await taken.done();
    expect(seen(await a.claim(EVENT, 1))).toMatchObject({ state: 'done', instance: 'b' });
  });

  it('a stream created again (same name, sequences from 1 again) has other keys than the old one', () => {
    const old = journalEventId({ stream: 'S', created: '2026-01-01T00:00:00Z' }, 1);
    const again = journalEventId({ stream: 'S', created: '2026-01-05T00:00:00Z' }, 1);
    expect(old).not.toBe(again);
    expect(isValidKey(stepKey(old, 3))).toBe(true);
  });

  it('a claim whose answer was lost after the write is recognised as its own', async () => {
    const store = createMemoryKv('p-events');
    const kv = store.client();
    // the write is stored, its answer never comes
    const lossy: KvBucket = { ...kv, create: async (key, value) => (await kv.create(key, value), Promise.reject(new BmcError('TIMEOUT', 'no answer (test)'))) };
    go(await journalOf(lossy, 'a').journal.claim(EVENT, 1));
    expect(seen(await journalOf(store.client(), 'b').journal.claim(EVENT, 1))).toMatchObject({ state: 'claimed', instance: 'a' });
  });

  it('rejects (UNAVAILABLE) when the bucket cannot be used; a release or done that cannot be written is logged, never thrown', async () => {
    const store = createMemoryKv('p-events');
    const kv: MemoryKvClient = store.client();
    const { journal, log } = journalOf(kv, 'a');
    kv.down = true;
    const err = await journal.claim(EVENT, 1).catch((e: unknown) => e);
    expect(isBmcError(err, 'UNAVAILABLE')).toBe(true);
    expect((err as Error).message).toMatch(/event journal \(key-value bucket p-events, key ev\..*\.7\.1\)/);
    kv.down = false;
    const hold = go(await journal.claim(EVENT, 1));
    kv.down = true;
    await hold.release();
    expect(log.find(/cannot mark the step released/)).toHaveLength(1);
  });

  it('this process\'s own claim that sent nothing is taken again here, not seen as an earlier delivery\'s: a create stored whose answer and read-back failed, a release not written', async () => {
    const store = createMemoryKv('p-events');
    const kv: MemoryKvClient = store.client();
    let glitches = 1;
    // once: the create is stored, its answer lost, and the read-back fails too (a NATS leader election)
    const glitchy: KvBucket = {
      ...kv,
      create: async (key, value) => {
        const revision = await kv.create(key, value);
        if (glitches > 0) throw new BmcError('TIMEOUT', 'no answer (test)');
        return revision;
      },
      get: async (key) => (glitches-- > 0 ? Promise.reject(new BmcError('TIMEOUT', 'no answer (test)')) : kv.get(key)),
    };
    const { journal } = journalOf(glitchy, 'a');
    expect(isBmcError(await journal.claim(EVENT, 1).catch((e: unknown) => e), 'UNAVAILABLE')).toBe(true);
    // the runner's next attempt in this process: its own earlier claim, known to have sent nothing
    const hold = go(await journal.claim(EVENT, 1));
    // another instance still sees it claimed (it cannot know), never free
    expect(seen(await journalOf(store.client(), 'b').journal.claim(EVENT, 1))).toMatchObject({ state: 'claimed', instance: 'a' });
    // a release that cannot be written: known here as not sent, taken by this process's next claim
    kv.down = true;
    await hold.release();
    kv.down = false;
    go(await journal.claim(EVENT, 1));
  });

  it('a step record with a control character in its instance, or an at that is no time, is no record: the step is taken as claimed, with one warning', async () => {
    for (const [record, problem] of [
      [{ state: 'released', instance: 'a\nforged line', at: '2026-01-02T03:04:05.000Z', token: 't' }, /^instance /],
      [{ state: 'released', instance: 'a', at: 'yesterday, honestly', token: 't' }, /^at /],
      [{ state: 'released', instance: 'a', at: '2026-01-02T03:04:05.000Z', token: '' }, /^token /],
    ] as const) {
      const store = createMemoryKv('p-events');
      await store.client().create(stepKey(EVENT, 1), new TextEncoder().encode(JSON.stringify(record)));
      const { journal, log } = journalOf(store.client(), 'b');
      expect(seen(await journal.claim(EVENT, 1))).toEqual({ state: 'claimed', instance: 'unknown (the key holds no journal record)', at: 'unknown' });
      const warnings = log.find(/the step's key holds no valid journal record/);
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toMatchObject({ journalKey: stepKey(EVENT, 1), problem: expect.stringMatching(problem) });
    }
    // what this journal writes is a record
    const store = createMemoryKv('p-events');
    await go(await journalOf(store.client(), 'host.example-1').journal.claim(EVENT, 1)).release();
    expect(parseRecord(store.entries().get(stepKey(EVENT, 1))!.value)).toMatchObject({ state: 'released', instance: 'host.example-1' });
  });

  it('an event written settled is seen settled by every instance, naming who and when; a step written skipped is seen skipped and a claim already there is kept', async () => {
    const store = createMemoryKv('p-events');
    const a = journalOf(store.client(), 'a').journal;
    const b = journalOf(store.client(), 'b').journal;
    expect(await b.settledBefore(EVENT)).toBeUndefined();
    expect(await a.settled(EVENT)).toBe(true);
    expect(await b.settledBefore(EVENT)).toEqual({ instance: 'a', at: '2026-01-02T03:04:05.000Z' });
    await a.skipped(EVENT, 1);
    expect(seen(await b.claim(EVENT, 1))).toEqual({ state: 'skipped', instance: 'a', at: '2026-01-02T03:04:05.000Z' });
    go(await a.claim(EVENT, 2));
    await b.skipped(EVENT, 2);
    expect(seen(await b.claim(EVENT, 2))).toMatchObject({ state: 'claimed', instance: 'a' });
  });

  it('a settled key that holds no record is taken as settled, with one warning; a bucket that cannot be read rejects, a write that fails is logged and not thrown', async () => {
    const store = createMemoryKv('p-events');
    const kv: MemoryKvClient = store.client();
    await kv.create(settledKey(EVENT), new TextEncoder().encode(JSON.stringify({ instance: 'a\nforged line', at: '2026-01-02T03:04:05.000Z' })));
    const { journal, log } = journalOf(kv, 'b');
    expect(await journal.settledBefore(EVENT)).toEqual({ instance: 'unknown (the key holds no settled record)', at: 'unknown' });
    expect(log.find("event journal: the event's settled key holds no valid record; taken as settled")).toMatchObject([{ journalKey: settledKey(EVENT), problem: expect.stringMatching(/^instance /) }]);
    kv.down = true;
    expect(isBmcError(await journal.settledBefore(EVENT).catch((e: unknown) => e), 'UNAVAILABLE')).toBe(true);
    expect(await journal.settled(EVENT)).toBe(false);
    await journal.skipped(EVENT, 1);
    expect(log.find(/an event settled not written as such/)).toHaveLength(1);
    expect(log.find(/a step left out not written as skipped/)).toHaveLength(1);
  });

  it('a key that holds no journal record is taken as claimed: the step is not sent blind', async () => {
    const store = createMemoryKv('p-events');
    await store.client().create(stepKey(EVENT, 1), new TextEncoder().encode('{"not":"ours"}'));
    expect(seen(await journalOf(store.client(), 'a').journal.claim(EVENT, 1))).toMatchObject({ state: 'claimed' });
    expect(parseRecord(new TextEncoder().encode('[]'))).toBeUndefined();
  });
});

/** A BMC whose RESET does what `reset` says; every action is recorded. */
function bmcWith(sent: string[], reset: () => Promise<void>): Outband {
  const act = (name: string) => async () => void sent.push(name);
  return {
    address: 'm',
    vendor: 'fake',
    info: () => Promise.reject(new BmcError('UNSUPPORTED', 'fake')),
    powerOn: act('ON'),
    powerOff: act('OFF'),
    powerReset: async () => (sent.push('RESET'), reset()),
    powerCycle: act('CYCLE'),
    bootFrom: async (target) => void sent.push(target),
    bootOverride: () => Promise.reject(new BmcError('UNSUPPORTED', 'fake')),
    identify: async (on) => void sent.push(on ? 'LED-ON' : 'LED-OFF'),
    openConsole: () => Promise.reject(new BmcError('UNSUPPORTED', 'fake')),
    updateFirmware: act('FW'),
    watchFirmware: act('FW-WATCH'),
    close: async () => undefined,
  };
}

/** A delete event's plan (PXE, then RESET: the RESET is step 1), delivered as event `eventId`. */
function deletePlan(eventId?: string): Plan {
  return {
    machineId: 'm',
    key: 'm',
    type: 'delete',
    command: 'delete',
    ipmi: { address: 'm:623', host: 'm', port: 623 },
    actions: [
      { kind: 'command', command: 'PXE' },
      { kind: 'command', command: 'RESET' },
    ],
    ...(eventId !== undefined ? { eventId } : {}),
  };
}

/** An OFF for the same machine, delivered as event `seq` of the stream. */
function offPlan(seq: number): Plan {
  return { ...deletePlan(journalEventId({ stream: 'METAL_BMC_P-MACHINE', created: '2026-01-01T00:00:00Z' }, seq)), type: 'command', command: 'OFF', actions: [{ kind: 'command', command: 'OFF' }] };
}

/** An instance: a runner with its own journal client on the shared bucket. */
function instance(store: ReturnType<typeof createMemoryKv>, name: string, reset: () => Promise<void> = async () => undefined, more: Partial<CommandRunnerOptions> = {}) {
  const sent: string[] = [];
  const kv = store.client();
  const log = captureLog();
  const runner = createCommandRunner({
    connect: () => bmcWith(sent, reset),
    concurrency: 1,
    timeoutMs: 5000,
    retryDelayMs: 1,
    logger: log.logger,
    journal: createEventJournal({ kv, instanceId: name, logger: log.logger }),
    ...more,
  });
  return { runner, sent, kv, log, journal: createEventJournal({ kv, instanceId: name, logger: log.logger }) };
}

describe('command runner with the event journal', () => {
  it('a RESET done by an earlier delivery (its ack lost) is not sent again: the later delivery ends ok and says why', async () => {
    const store = createMemoryKv('p-events');
    const a = instance(store, 'a');
    const b = instance(store, 'b');
    expect(await a.runner.submit(deletePlan(EVENT))).toMatchObject({ ok: true });
    const again = await b.runner.submit(deletePlan(EVENT));
    expect(again).toMatchObject({ ok: true });
    expect(again.skipped).toEqual([expect.stringMatching(/^RESET \(done by an earlier delivery: instance a at /)]);
    expect(dispositionOf(again)).toBe('ack');
    expect(a.sent).toEqual(['PXE', 'RESET']);
    // the idempotent PXE is set again, the RESET is not sent
    expect(b.sent).toEqual(['PXE']);
  });

  it('a RESET an earlier delivery sent without an answer is not sent again: OUTCOME_UNKNOWN naming that delivery, terminated', async () => {
    const store = createMemoryKv('p-events');
    // no answer that says the BMC did not act: it may have reset the machine
    const a = instance(store, 'a', () => Promise.reject(new BmcError('PROTOCOL', 'garbled answer (test)')));
    const b = instance(store, 'b');
    expect(await a.runner.submit(deletePlan(EVENT))).toMatchObject({ ok: false, code: 'OUTCOME_UNKNOWN' });
    const again = await b.runner.submit(deletePlan(EVENT));
    expect(again).toMatchObject({ ok: false, code: 'OUTCOME_UNKNOWN', outcomeUnknown: true });
    expect(again.error).toMatch(/^RESET of this event was claimed by an earlier delivery \(instance a at .*\), which may have sent it to the BMC; it is not sent again/);
    expect(again.attempts).toBeUndefined();
    expect(dispositionOf(again)).toBe('term');
    expect(b.sent).toEqual(['PXE']);
  });

  it('a RESET the BMC refused (provably not done) is released: the runner\'s next attempt, or a later delivery, sends it', async () => {
    const store = createMemoryKv('p-events');
    let refusals = 2;
    const a = instance(store, 'a', async () => {
      if (refusals-- > 0) throw new BmcError('HTTP', 'busy (test)', { httpStatus: 503 });
    });
    // both attempts of the first delivery refused
    expect(await a.runner.submit(deletePlan(EVENT))).toMatchObject({ ok: false, code: 'HTTP', attempts: 2 });
    const b = instance(store, 'b');
    expect(await b.runner.submit(deletePlan(EVENT))).toMatchObject({ ok: true });
    expect(b.sent).toEqual(['PXE', 'RESET']);
    expect(parseRecord(store.entries().get(stepKey(EVENT, 1))!.value)).toMatchObject({ state: 'done', instance: 'b' });
  });

  it('with the journal unreachable the RESET is not sent and the event goes back (nak); once it works the RESET runs, once', async () => {
    const store = createMemoryKv('p-events');
    const a = instance(store, 'a');
    a.kv.down = true;
    const first = await a.runner.submit(deletePlan(EVENT));
    expect(first).toMatchObject({ ok: false, code: 'UNAVAILABLE', handedBack: true, attempts: 2 });
    expect(first.outcomeUnknown).toBeUndefined();
    expect(first.error).toMatch(/^RESET not sent: the event journal cannot be used/);
    expect(dispositionOf(first)).toBe('nak');
    expect(a.sent.filter((s) => s === 'RESET')).toEqual([]);
    a.kv.down = false;
    expect(await a.runner.submit(deletePlan(EVENT))).toMatchObject({ ok: true });
    expect(a.sent.filter((s) => s === 'RESET')).toEqual(['RESET']);
  });

  it('an event handed back takes the machine\'s events queued behind it back too: none runs before it', async () => {
    const store = createMemoryKv('p-events');
    const a = instance(store, 'a');
    a.kv.down = true;
    const off: Plan = { ...deletePlan(journalEventId({ stream: 'METAL_BMC_P-MACHINE', created: '2026-01-01T00:00:00Z' }, 8)), type: 'command', command: 'OFF', actions: [{ kind: 'command', command: 'OFF' }] };
    const [first, next] = await Promise.all([a.runner.submit(deletePlan(EVENT)), a.runner.submit(off)]);
    expect(first).toMatchObject({ code: 'UNAVAILABLE', handedBack: true });
    expect(next).toMatchObject({ ok: false, code: 'ABORTED' });
    expect(next.error).toMatch(/handed back behind the machine's earlier delete/);
    expect(dispositionOf(next)).toBe('nak');
    expect(a.sent).not.toContain('OFF');
  });

  it('a later event of the machine that comes while the one handed back is out goes back too (published once however often it comes), and runs once that one came back', async () => {
    const store = createMemoryKv('p-events');
    const results: string[] = [];
    const a = instance(store, 'a', undefined, { onResult: (r) => results.push(`${r.command} ${r.code ?? 'ok'}`) });
    a.kv.down = true;
    // the delete handed back; the OFF after it is a first delivery, which comes back at once
    expect(await a.runner.submit(deletePlan(EVENT))).toMatchObject({ code: 'UNAVAILABLE', handedBack: true });
    // (its idempotent PXE went out before the RESET could not be claimed)
    a.sent.length = 0;
    a.kv.down = false;
    const held = await a.runner.submit(offPlan(8));
    expect(held).toMatchObject({ ok: false, code: 'HELD_BEHIND', handedBack: true, error: "OFF not run yet: the machine's earlier delete went back to the stream and has not come back; this one goes back too, to run after it" });
    expect(dispositionOf(held)).toBe('nak');
    // delivered again while the delete is still out: handed back each time, said and published once
    for (let again = 0; again < 3; again++) expect(await a.runner.submit(offPlan(8))).toMatchObject({ code: 'HELD_BEHIND', handedBack: true });
    expect(a.log.find("machine command handed back: an earlier event of its machine went back to the stream and has not come back yet")).toEqual([expect.objectContaining({ machineId: 'm', command: 'OFF', heldBehind: 'delete', heldEventId: EVENT })]);
    // another machine is not held
    expect(await a.runner.submit({ ...offPlan(9), machineId: 'other', key: 'other' })).toMatchObject({ ok: true });
    expect(a.sent).toEqual(['OFF']);
    // the delete comes back: it runs, and the OFF after it
    expect(await a.runner.submit(deletePlan(EVENT))).toMatchObject({ ok: true });
    expect(await a.runner.submit(offPlan(8))).toMatchObject({ ok: true });
    expect(a.sent).toEqual(['OFF', 'PXE', 'RESET', 'OFF']);
    expect(results).toEqual(['delete UNAVAILABLE', 'OFF HELD_BEHIND', 'OFF ok', 'delete ok', 'OFF ok']);
  });

  it('the hold ends when the event handed back never comes back in time (lost), or is settled without running (stale on its return)', async () => {
    const store = createMemoryKv('p-events');
    const a = instance(store, 'a', undefined, { orderHoldMs: 200 });
    a.kv.down = true;
    await a.runner.submit(deletePlan(EVENT));
    a.kv.down = false;
    expect(await a.runner.submit(offPlan(8))).toMatchObject({ code: 'HELD_BEHIND' });
    // its redelivery, as the bus would bring it, until the hold's time has passed
    let last;
    await waitFor(async () => (last = await a.runner.submit(offPlan(8))).ok, 5000, 'the OFF run after the hold ended');
    expect(last).toMatchObject({ ok: true });
    expect(a.log.find(/no longer wait for its event that went back to the stream: it did not come back in time/)).toEqual([expect.objectContaining({ command: 'OFF', lostCommand: 'delete', lostEventId: EVENT })]);

    const b = instance(store, 'b');
    b.kv.down = true;
    await b.runner.submit(deletePlan(EVENT));
    b.kv.down = false;
    expect(await b.runner.submit(offPlan(8))).toMatchObject({ code: 'HELD_BEHIND' });
    b.runner.passed?.(deletePlan(EVENT));
    expect(await b.runner.submit(offPlan(8))).toMatchObject({ ok: true });
  });

  it('an event aborted behind one handed back and dropped stale when its turn came leaves the line: the machine\'s later events are not held behind it', async () => {
    const store = createMemoryKv('p-events');
    let clock = 1_000_000;
    const sent: string[] = [];
    // the delete's run takes the OFF queued behind it past the TTL
    const a = instance(store, 'a', undefined, { ttlMs: 30_000, now: () => clock, attempts: 1, connect: () => ((clock += 40_000), bmcWith(sent, async () => undefined)) });
    a.kv.down = true;
    const published = { publishedAt: new Date(clock) };
    const [first, off] = await Promise.all([a.runner.submit({ ...deletePlan(EVENT), ...published }), a.runner.submit({ ...offPlan(8), ...published })]);
    expect(first).toMatchObject({ code: 'UNAVAILABLE', handedBack: true });
    expect(off).toMatchObject({ code: 'STALE', dropped: 'stale' });
    expect(dispositionOf(off)).toBe('term');
    a.kv.down = false;
    // the delete comes back and runs (late); the OFF never comes back: a new ON is not held behind it
    expect(await a.runner.submit({ ...deletePlan(EVENT), ...published })).toMatchObject({ ok: true, late: true });
    expect(await a.runner.submit({ ...offPlan(9), command: 'ON', actions: [{ kind: 'command', command: 'ON' }], publishedAt: new Date(clock) })).toMatchObject({ ok: true });
    expect(sent).toEqual(['PXE', 'PXE', 'RESET', 'ON']);
  });

  it('an event on its last delivery is never handed back nor put in a line: journal unusable or held behind, it is refused and says it does not come again', async () => {
    const store = createMemoryKv('p-events');
    const a = instance(store, 'a');
    a.kv.down = true;
    // the journal unusable on the delete's last delivery: refused, the OFF queued behind it runs
    const [lost, off] = await Promise.all([a.runner.submit({ ...deletePlan(EVENT), lastDelivery: true }), a.runner.submit(offPlan(8))]);
    expect(lost).toMatchObject({ ok: false, code: 'UNAVAILABLE' });
    expect(lost.handedBack).toBeUndefined();
    expect(lost.error).toMatch(/; but this was its last allowed delivery, so it does not go back to the stream and does not come again$/);
    expect(dispositionOf(lost)).toBe('term');
    expect(off).toMatchObject({ ok: true });
    // a delete handed back (not its last delivery); an OFF held behind it on its last delivery is refused and leaves no place in the line
    expect(await a.runner.submit(deletePlan(EVENT))).toMatchObject({ code: 'UNAVAILABLE', handedBack: true });
    a.kv.down = false;
    const held = await a.runner.submit({ ...offPlan(9), lastDelivery: true });
    expect(held).toMatchObject({ ok: false, code: 'HELD_BEHIND', error: "OFF not run: the machine's earlier delete went back to the stream and has not come back, and it may not run before it; this was its last allowed delivery, so it does not go back to the stream and does not come again; not executed" });
    expect(held.handedBack).toBeUndefined();
    expect(dispositionOf(held)).toBe('term');
    expect(await a.runner.submit(offPlan(10))).toMatchObject({ code: 'HELD_BEHIND', handedBack: true });
    expect(await a.runner.submit(deletePlan(EVENT))).toMatchObject({ ok: true });
    // the OFF after it is not held behind the one refused
    expect(await a.runner.submit(offPlan(10))).toMatchObject({ ok: true });
  });

  it('an event on its last delivery queued behind one handed back is refused there, not aborted into a hand-back it would not survive', async () => {
    const store = createMemoryKv('p-events');
    const a = instance(store, 'a');
    a.kv.down = true;
    // the delete (not its last delivery) goes back; the OFF queued behind it is on its last delivery
    const [first, off] = await Promise.all([a.runner.submit(deletePlan(EVENT)), a.runner.submit({ ...offPlan(8), lastDelivery: true })]);
    expect(first).toMatchObject({ code: 'UNAVAILABLE', handedBack: true });
    expect(off).toMatchObject({ ok: false, code: 'HELD_BEHIND' });
    expect(off.error).toMatch(/this was its last allowed delivery, so it does not go back to the stream and does not come again; not executed$/);
    expect(off.handedBack).toBeUndefined();
    expect(dispositionOf(off)).toBe('term');
    expect(a.sent).not.toContain('OFF');
  });

  it('an event whose earlier runs started and never settled (each crashed the daemon) is not run a fourth time: terminated, nothing sent', async () => {
    const store = createMemoryKv('p-events');
    const a = instance(store, 'a');
    // three earlier deliveries started running and never settled: the process ended each time
    for (let crash = 0; crash < 3; crash++) await a.journal.started(EVENT);
    const refused = await a.runner.submit(deletePlan(EVENT));
    expect(refused).toMatchObject({ ok: false, code: 'UNSETTLED_RUNS' });
    expect(refused.error).toMatch(/this event started 3 times before without its run settling/);
    expect(dispositionOf(refused)).toBe('term');
    expect(a.sent).toEqual([]);
    expect(a.log.find(/machine event not run again: its earlier runs started and never settled/)).toHaveLength(1);
  });

  it('runs handed back (nak\'ed by choice) are not runs that never settled: the event still runs after many', async () => {
    const store = createMemoryKv('p-events');
    const a = instance(store, 'a');
    for (let handBack = 0; handBack < 5; handBack++) {
      await a.journal.started(EVENT);
      await a.journal.handedBack(EVENT);
    }
    expect(await a.runner.submit(deletePlan(EVENT))).toMatchObject({ ok: true });
    expect(a.sent).toEqual(['PXE', 'RESET']);
  });

  it('a runs key that holds no valid count (negative, handed back more than started, not whole, huge, not JSON) is counted again from this run, with one warning quoting at most 64 characters', async () => {
    const cases: Array<[string, RegExp]> = [
      ['{"starts":-5,"handedBack":0}', /^starts is not a whole number/],
      ['{"starts":2,"handedBack":7}', /^handedBack is greater than starts$/],
      ['{"starts":1.5,"handedBack":0}', /^starts is not a whole number/],
      ['{"starts":1e300,"handedBack":0}', /^starts is not a whole number/],
      ['{"starts":2,"handedBack":"1"}', /^handedBack is not a whole number/],
      ['[3,1]', /^not an object$/],
      [`{"starts":1,"pad":"${'x'.repeat(2000)}"`, /^not JSON$/],
    ];
    for (const [value, problem] of cases) {
      const store = createMemoryKv('p-events');
      const { journal, log } = journalOf(store.client(), 'a');
      await store.client().create(runsKey(EVENT), new TextEncoder().encode(value));
      expect(await journal.started(EVENT), value).toBe(1);
      const warnings = log.find(/the key holds no valid run count/);
      expect(warnings, value).toHaveLength(1);
      expect(warnings[0]).toMatchObject({ level: 40, bucket: 'p-events', journalKey: runsKey(EVENT), problem: expect.stringMatching(problem) });
      expect((warnings[0]!.value as string).length).toBeLessThanOrEqual(64 + 1);
      expect(value.startsWith((warnings[0]!.value as string).replace(/…$/, ''))).toBe(true);
      // the value is a count again: the next run reads it without a warning
      expect(JSON.parse(new TextDecoder().decode(store.entries().get(runsKey(EVENT))!.value))).toEqual({ starts: 1, handedBack: 0 });
      await journal.handedBack(EVENT);
      expect(await journal.started(EVENT)).toBe(1);
      expect(log.find(/the key holds no valid run count/)).toHaveLength(1);
    }
  });

  it('a crafted runs key (more hand-backs than starts) does not lift the limit: after three runs that never settled the event is refused', async () => {
    const store = createMemoryKv('p-events');
    const a = instance(store, 'a');
    await store.client().create(runsKey(EVENT), new TextEncoder().encode('{"starts":3,"handedBack":9}'));
    for (let crash = 0; crash < 3; crash++) await a.journal.started(EVENT);
    expect(await a.runner.submit(deletePlan(EVENT))).toMatchObject({ ok: false, code: 'UNSETTLED_RUNS' });
    expect(a.sent).toEqual([]);
  });

  it('a hand-back never makes the count say more runs handed back than started', async () => {
    const store = createMemoryKv('p-events');
    const { journal, log } = journalOf(store.client(), 'a');
    await journal.handedBack(EVENT);
    expect(JSON.parse(new TextDecoder().decode(store.entries().get(runsKey(EVENT))!.value))).toEqual({ starts: 0, handedBack: 0 });
    expect(await journal.started(EVENT)).toBe(1);
    expect(log.find(/no valid run count/)).toEqual([]);
  });

  it('a run cut off by the shutdown is counted handed back while its BMC still closes, not after it (the forced exit comes as long after the deadline as a close may take)', async () => {
    const store = createMemoryKv('p-events');
    const sent: string[] = [];
    let closed!: () => void;
    const closing = new Promise<void>((resolve) => (closed = resolve));
    // the PXE step never answers; the BMC takes its time to close
    const bmc: Outband = { ...bmcWith(sent, async () => undefined), bootFrom: async (target) => (sent.push(target), new Promise<void>(() => undefined)), close: () => closing };
    const log = captureLog();
    const runner = createCommandRunner({ connect: () => bmc, concurrency: 1, timeoutMs: 30_000, closeTimeoutMs: 60_000, logger: log.logger, journal: createEventJournal({ kv: store.client(), instanceId: 'a', logger: log.logger }) });
    const running = runner.submit(deletePlan(EVENT));
    await waitFor(() => sent.includes('PXE'), 5000, 'the PXE step under way', 10);
    const draining = runner.drain(1);
    const runs = () => store.entries().get(runsKey(EVENT))?.value;
    await waitFor(() => runs() !== undefined && JSON.parse(new TextDecoder().decode(runs())).handedBack === 1, 5000, 'the hand-back counted while the BMC closes', 10);
    closed();
    expect(await draining).toBe(false);
    expect(await running).toMatchObject({ ok: false, code: 'ABORTED' });
    expect(JSON.parse(new TextDecoder().decode(runs()))).toEqual({ starts: 1, handedBack: 1 });
  });

  it('a hand-back count that does not answer holds the shutdown 2 s at most, and is counted in metal_bmc_event_handbacks_uncounted_total and logged', async () => {
    const store = createMemoryKv('p-events');
    const log = captureLog();
    const real = createEventJournal({ kv: store.client(), instanceId: 'a', logger: log.logger });
    // the journal takes the run's start, then its bucket stops answering
    const journal: StepJournal = { claim: (e, step) => real.claim(e, step), started: (e) => real.started(e), handedBack: () => new Promise<boolean>(() => undefined) };
    const registry = new Registry();
    const sent: string[] = [];
    const bmc: Outband = { ...bmcWith(sent, async () => undefined), bootFrom: async (target) => (sent.push(target), new Promise<void>(() => undefined)) };
    const runner = createCommandRunner({ connect: () => bmc, concurrency: 1, timeoutMs: 30_000, logger: log.logger, metrics: createCommandMetrics(registry), journal });
    const running = runner.submit(deletePlan(EVENT));
    await waitFor(() => sent.includes('PXE'), 5000, 'the PXE step under way', 10);
    expect(await endedWithin(runner.drain(1), 8000)).toBe(true);
    expect(await running).toMatchObject({ code: 'ABORTED' });
    expect(await registry.getSingleMetricAsString('metal_bmc_event_handbacks_uncounted_total')).toMatch(/^metal_bmc_event_handbacks_uncounted_total 1$/m);
    expect(log.find('event journal: a hand-back not counted in time; a later delivery counts this run as one that never settled')).toEqual([expect.objectContaining({ level: 40, eventId: EVENT, waitedMs: 2000 })]);
  });

  it('a late delete whose RESET gave way to a newer pending event writes the step skipped: a later delivery (its ack lost, its settled key not written) with nothing newer pending leaves the RESET out too', async () => {
    const store = createMemoryKv('p-events');
    const old = { publishedAt: new Date(Date.now() - 3600_000) };
    const a = instance(store, 'a', async () => undefined, { ttlMs: 30_000 });
    const b = instance(store, 'b', async () => undefined, { ttlMs: 30_000 });
    const create: Plan = { ...deletePlan(journalEventId({ stream: 'METAL_BMC_P-MACHINE', created: '2026-01-01T00:00:00Z' }, 8)), type: 'create', command: 'create', actions: [{ kind: 'command', command: 'DISK' }], ...old };
    const [first] = await Promise.all([a.runner.submit({ ...deletePlan(EVENT), ...old }), a.runner.submit(create)]);
    expect(first).toMatchObject({ ok: true, late: true, skipped: ['RESET'] });
    expect(a.sent).toEqual(['PXE', 'DISK']);
    const again = await b.runner.submit({ ...deletePlan(EVENT), ...old });
    expect(again).toMatchObject({ ok: true, skipped: [expect.stringMatching(/^RESET \(left out by an earlier delivery: instance a at /)] });
    expect(b.sent).toEqual(['PXE']);
  });

  it('an event settled by an earlier delivery is acknowledged again without running, told to no one and counted; one whose settled key cannot be read runs', async () => {
    const store = createMemoryKv('p-events');
    const registry = new Registry();
    const told: unknown[] = [];
    const a = instance(store, 'a');
    const b = instance(store, 'b', async () => undefined, { metrics: createCommandMetrics(registry), onResult: (r) => void told.push(r) });
    await a.journal.settled(EVENT);
    const again = await b.runner.submit(deletePlan(EVENT));
    expect(again).toMatchObject({ ok: true, settledBefore: expect.stringMatching(/^instance a at /) });
    expect(dispositionOf(again)).toBe('ack');
    expect(b.sent).toEqual([]);
    expect(told).toEqual([]);
    expect(await registry.getSingleMetricAsString('metal_bmc_events_settled_before_total')).toMatch(/^metal_bmc_events_settled_before_total\{seen="journal"\} 1$/m);
    expect(await registry.getSingleMetricAsString('metal_bmc_commands_total')).not.toMatch(/outcome=/);
    // unreadable: it runs (the RESET is still claimed first, and the claim works again here)
    const kv = store.client();
    const c = instance(store, 'c', async () => undefined, { journal: createEventJournal({ kv: { ...kv, get: (key) => (key === settledKey(EVENT) ? Promise.reject(new BmcError('TIMEOUT', 'no answer (test)')) : kv.get(key)) }, instanceId: 'c', logger: captureLog().logger }) });
    expect(await c.runner.submit(deletePlan(journalEventId({ stream: 'METAL_BMC_P-MACHINE', created: '2026-01-01T00:00:00Z' }, 9)))).toMatchObject({ ok: true });
    expect(c.sent).toEqual(['PXE', 'RESET']);
  });

  it('journals no idempotent step, and nothing without an event id (core NATS): sent as before', async () => {
    const store = createMemoryKv('p-events');
    const a = instance(store, 'a');
    const on: Plan = { ...deletePlan(EVENT), type: 'command', command: 'ON', actions: [{ kind: 'command', command: 'ON' }] };
    expect(await a.runner.submit(on)).toMatchObject({ ok: true });
    expect(await a.runner.submit(deletePlan())).toMatchObject({ ok: true });
    expect(await a.runner.submit(deletePlan())).toMatchObject({ ok: true });
    // no step key: only the ON event's run count
    expect([...store.entries().keys()]).toEqual([runsKey(EVENT)]);
    expect(a.sent).toEqual(['ON', 'PXE', 'RESET', 'PXE', 'RESET']);
  });
});

describe('journal records from the bucket (property)', () => {
  const encode = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));
  const instance = fc.stringMatching(/^[a-z0-9.-]{1,40}$/);
  const at = fc.integer({ min: 0, max: 4_102_444_800_000 }).map((ms) => new Date(ms).toISOString());

  it('any bytes: a record or a reason, never a throw', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 1100 }), (bytes) => {
        for (const r of [recordOf(bytes), settledRecordOf(bytes)]) expect(typeof r).toBe('object');
      }),
    );
  });

  it('a step record and a settled record written as the journal writes them read back the same; a field taken out or of another type is named', () => {
    fc.assert(
      fc.property(fc.constantFrom('claimed', 'released', 'done', 'skipped'), instance, at, fc.stringMatching(/^[A-Za-z0-9_-]{1,64}$/), fc.constantFrom('state', 'instance', 'at', 'token'), (state, who, when, token, broken) => {
        const record = { state, instance: who, at: when, token };
        expect(recordOf(encode(record))).toEqual(record);
        expect(settledRecordOf(encode({ instance: who, at: when }))).toEqual({ instance: who, at: when });
        const bad = recordOf(encode({ ...record, [broken]: 42 }));
        expect(bad).toMatchObject({ invalid: expect.stringMatching(new RegExp(`^${broken} `)) });
        if (broken === 'instance' || broken === 'at') expect(settledRecordOf(encode({ instance: who, at: when, [broken]: 42 }))).toMatchObject({ invalid: expect.stringMatching(new RegExp(`^${broken} `)) });
      }),
    );
  });
});
