/**
 * One leader per partition for the machine events (src/bus/leader.ts), over the in-memory store
 * with the KV's compare-and-set semantics: one of two leads, only it writes; a holder cut off stops
 * leading before another may take over, which happens after the lease time and not before; a
 * graceful close hands over at once; a restart continues its own lease; a renewal whose answer
 * was lost is not mistaken for a second process; two processes under one id do not take turns;
 * and, over random schedules, never two leaders at once.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createLeadership, type Leadership } from '../../src/bus/leader.js';
import type { KvBucket } from '../../src/bus/kv.js';
import { manualClock } from '../helpers/manual-clock.js';
import { captureLog, type CapturedLog } from '../helpers/log.js';
import { createMemoryKv, type MemoryKv, type MemoryKvClient } from '../helpers/memory-kv.js';

const LEASE = 15_000;
const HEARTBEAT = 2500;
const FENCE = 10_000;
const settle = () => new Promise((resolve) => setImmediate(resolve));

const clock = manualClock;

interface Instance {
  lead: Leadership;
  client: MemoryKvClient;
  log: CapturedLog;
  changes: boolean[];
}

async function instance(kv: MemoryKv, id: string, now: () => number, wrap: (c: MemoryKvClient) => KvBucket = (c) => c): Promise<Instance> {
  const client = kv.client();
  const log = captureLog('info');
  const changes: boolean[] = [];
  const lead = createLeadership({ kv: wrap(client), key: 'leader', instanceId: id, what: 'machine events', leaseMs: LEASE, heartbeatMs: HEARTBEAT, fenceMs: FENCE, logger: log.logger, now, onChange: (l) => changes.push(l) });
  await lead.start({ timer: false });
  await settle();
  return { lead, client, log, changes };
}

/** one heartbeat for everyone: time passes, each runs its round, the watches deliver */
async function period(c: ReturnType<typeof clock>, ...xs: Instance[]) {
  c.advance(HEARTBEAT);
  for (const x of xs) await x.lead.tick();
  await settle();
}

const leaders = (...xs: Instance[]) => xs.filter((x) => x.lead.leading()).map((x) => x.lead.instanceId);

describe('leadership of the machine events', () => {
  it('of two instances one leads and only it writes: one write per heartbeat', async () => {
    const kv = createMemoryKv();
    const c = clock();
    const a = await instance(kv, 'a', c.now);
    const b = await instance(kv, 'b', c.now);
    expect(leaders(a, b)).toEqual(['a']);
    expect(b.lead.holder()).toBe('a');
    const before = kv.writes();
    for (let k = 0; k < 10; k++) await period(c, a, b);
    expect(leaders(a, b)).toEqual(['a']);
    expect(kv.writes() - before).toBe(10);
    expect(a.changes).toEqual([true]);
    expect(b.changes).toEqual([]);
  });

  it('a leader cut off stops leading before the other takes over, which waits the whole lease', async () => {
    const kv = createMemoryKv();
    const c = clock();
    const a = await instance(kv, 'a', c.now);
    const b = await instance(kv, 'b', c.now);
    a.client.down = true;
    let aStoppedAt: number | undefined;
    let bLedAt: number | undefined;
    const start = c.now();
    for (let k = 0; k < 10; k++) {
      await period(c, a, b);
      if (aStoppedAt === undefined && !a.lead.leading()) aStoppedAt = c.now() - start;
      if (bLedAt === undefined && b.lead.leading()) bLedAt = c.now() - start;
      expect(leaders(a, b).length).toBeLessThanOrEqual(1);
    }
    // a's last renewal was at `start`: fenced once FENCE passed, b waits LEASE from when it saw it
    expect(aStoppedAt).toBe(Math.ceil((FENCE + 1) / HEARTBEAT) * HEARTBEAT);
    // between a's lease running out and b's takeover, nobody leads, and both can tell
    expect(b.lead.someoneLeads()).toBe(true);
    expect(bLedAt).toBe(Math.ceil((LEASE + 1) / HEARTBEAT) * HEARTBEAT);
    expect(a.changes).toEqual([true, false]);
    expect(b.log.lines.some((l) => l.msg === 'machine events lease taken over' && l.from === 'a')).toBe(true);
    // ten failed rounds, one warning
    expect(a.log.lines.filter((l) => /lease not read or written/.test(String(l.msg)))).toHaveLength(1);
    // a back: it finds the key taken and follows, without fighting for it
    a.client.down = false;
    for (let k = 0; k < 3; k++) await period(c, a, b);
    expect(leaders(a, b)).toEqual(['b']);
    expect(a.lead.holder()).toBe('b');
  });

  it('tells when nobody leads: the holder cut off for a lease time and no other instance taking over', async () => {
    const kv = createMemoryKv();
    const c = clock();
    const a = await instance(kv, 'a', c.now);
    const b = await instance(kv, 'b', c.now);
    expect([a.lead.someoneLeads(), b.lead.someoneLeads()]).toEqual([true, true]);
    a.client.down = true;
    b.client.down = true;
    // a heartbeat's grace beyond the lease: a view kept by reads alone is read once the lease passed
    c.advance(LEASE + HEARTBEAT);
    expect([a.lead.someoneLeads(), b.lead.someoneLeads()]).toEqual([true, true]);
    c.advance(1);
    expect([a.lead.someoneLeads(), b.lead.someoneLeads()]).toEqual([false, false]);
    b.client.down = false;
    await period(c, a, b);
    expect(b.lead.someoneLeads()).toBe(true);
    expect(leaders(a, b)).toEqual(['b']);
  });

  it('the bucket made again (revisions from 1): a leader again, and it is still taken over when cut off', async () => {
    for (const cutFirst of ['leader', 'follower'] as const) {
      const kv = createMemoryKv();
      const c = clock();
      const a = await instance(kv, 'a', c.now);
      const b = await instance(kv, 'b', c.now);
      for (let k = 0; k < 30; k++) await period(c, a, b);
      kv.remake();
      // the follower first (its view is the old bucket's, far ahead), or the leader first
      const order = cutFirst === 'leader' ? [a, b] : [b, a];
      for (let k = 0; k < 12; k++) {
        await period(c, ...order);
        expect(leaders(a, b).length).toBeLessThanOrEqual(1);
      }
      expect(leaders(a, b)).toHaveLength(1);
      const [holder, other] = a.lead.leading() ? [a, b] : [b, a];
      holder.client.down = true;
      for (let k = 0; k < 8; k++) {
        await period(c, a, b);
        expect(leaders(a, b).length).toBeLessThanOrEqual(1);
      }
      expect(other.lead.leading()).toBe(true);
      expect([a, b].some((x) => x.log.lines.some((l) => /bucket was made again/.test(String(l.msg))))).toBe(true);
      for (const x of [a, b]) await x.lead.close();
    }
  });

  it('close() hands over at once: the other leads without waiting for the lease', async () => {
    const kv = createMemoryKv();
    const c = clock();
    const a = await instance(kv, 'a', c.now);
    const b = await instance(kv, 'b', c.now);
    await a.lead.close();
    await settle();
    await settle();
    expect(leaders(a, b)).toEqual(['b']);
    expect(a.changes).toEqual([true, false]);
  });

  it('close() during a round: the key given up meanwhile is not taken, nothing is written, and it never leads', async () => {
    const kv = createMemoryKv();
    const c = clock();
    const b = await instance(kv, 'b', c.now);
    let gate: Promise<void> = Promise.resolve();
    let reads = 0;
    const a = await instance(kv, 'a', c.now, (client) => ({
      ...client,
      get: async (key: string) => {
        reads++;
        await gate;
        return client.get(key);
      },
    }));
    expect(leaders(a, b)).toEqual(['b']);
    let release!: () => void;
    gate = new Promise<void>((r) => (release = r));
    // b's renewals stop: a's next round reads the key to take it over, and its read is held
    c.advance(LEASE + 1);
    const readsBefore = reads;
    const round = a.lead.tick();
    await settle();
    expect(reads).toBe(readsBefore + 1);
    const closing = a.lead.close();
    // the key given up while a's close waits for its round (b's last run, stopped): a's watch sees the delete
    await b.lead.close({ giveUp: false });
    expect(await b.client.delete('leader')).toBe(true);
    const writesAfterGiveUp = kv.writes();
    release();
    await round;
    await closing;
    await settle();
    expect(kv.writes()).toBe(writesAfterGiveUp);
    expect(kv.entries().get('leader')?.deleted).toBe(true);
    expect(a.changes).toEqual([]);
  });

  it('a restart under the same id continues its own lease after the fence time, not the whole lease', async () => {
    const kv = createMemoryKv();
    const c = clock();
    const a = await instance(kv, 'a', c.now);
    const b = await instance(kv, 'b', c.now);
    // a crashes: no close, its key stays; a new process with the same id starts a heartbeat later
    a.client.down = true;
    c.advance(HEARTBEAT);
    const again = await instance(kv, 'a', c.now);
    const start = c.now();
    let ledAt: number | undefined;
    for (let k = 0; k < 8; k++) {
      await period(c, again, b);
      if (ledAt === undefined && again.lead.leading()) ledAt = c.now() - start;
      expect(leaders(again, b, a).length).toBeLessThanOrEqual(1);
    }
    expect(ledAt).toBe(Math.ceil((FENCE + 1) / HEARTBEAT) * HEARTBEAT);
    expect(ledAt!).toBeLessThan(LEASE);
    expect(leaders(again, b)).toEqual(['a']);
  });

  it('a renewal whose answer was lost is taken back, not mistaken for a second process', async () => {
    const kv = createMemoryKv();
    const c = clock();
    let loseNext = false;
    /** revisions whose answer was lost: the watch does not bring them either (it may lag behind) */
    const lost = new Set<number>();
    const losing = (client: MemoryKvClient): KvBucket => ({
      ...client,
      async update(key, value, revision) {
        const r = await client.update(key, value, revision);
        if (loseNext && r !== undefined) {
          loseNext = false;
          lost.add(r);
          throw new Error('timeout waiting for the ack (test)');
        }
        return r;
      },
      async watch(prefix) {
        const w = await client.watch(prefix);
        return {
          async *[Symbol.asyncIterator]() {
            for await (const e of w) if (!lost.has(e.revision)) yield e;
          },
          stop: () => w.stop(),
        };
      },
    });
    const a = await instance(kv, 'a', c.now, losing);
    const b = await instance(kv, 'b', c.now);
    loseNext = true;
    for (let k = 0; k < 6; k++) await period(c, a, b);
    expect(leaders(a, b)).toEqual(['a']);
    expect(lost.size).toBe(1);
    // one warning for the failed round, one line when it works again: not one per heartbeat
    expect(a.log.lines.filter((l) => /lease not read or written/.test(String(l.msg)))).toHaveLength(1);
    expect(a.log.lines.some((l) => /share METAL_BMC_INSTANCE_ID/.test(String(l.msg)))).toBe(false);
  });

  it('two processes under one id: the second follows a live first; the first, back from a cut-off, finds the second\'s write and stays off', async () => {
    const kv = createMemoryKv();
    const c = clock();
    const first = await instance(kv, 'a', c.now);
    const second = await instance(kv, 'a', c.now);
    for (let k = 0; k < 8; k++) {
      await period(c, first, second);
      expect(leaders(first, second)).toHaveLength(1);
    }
    expect(first.lead.leading()).toBe(true);
    first.client.down = true;
    for (let k = 0; k < 6; k++) {
      await period(c, first, second);
      expect(leaders(first, second).length).toBeLessThanOrEqual(1);
    }
    expect(second.lead.leading()).toBe(true);
    first.client.down = false;
    for (let k = 0; k < 4; k++) await period(c, first, second);
    expect(first.log.lines.some((l) => l.level === 50 && /share METAL_BMC_INSTANCE_ID/.test(String(l.msg)))).toBe(true);
    expect(first.lead.leading()).toBe(false);
    expect(second.lead.leading()).toBe(true);
  });

  it('never two leaders at once, whatever instances are cut off, come back, restart or stop', async () => {
    type Step = { kind: 'time'; ms: number } | { kind: 'tick'; who: number } | { kind: 'down'; who: number; down: boolean } | { kind: 'close'; who: number } | { kind: 'restart'; who: number };
    const who = fc.integer({ min: 0, max: 2 });
    const step: fc.Arbitrary<Step> = fc.oneof(
      { weight: 3, arbitrary: fc.record({ kind: fc.constant('time' as const), ms: fc.integer({ min: 1, max: 8000 }) }) },
      { weight: 4, arbitrary: fc.record({ kind: fc.constant('tick' as const), who }) },
      { weight: 2, arbitrary: fc.record({ kind: fc.constant('down' as const), who, down: fc.boolean() }) },
      { weight: 1, arbitrary: fc.record({ kind: fc.constant('close' as const), who }) },
      { weight: 1, arbitrary: fc.record({ kind: fc.constant('restart' as const), who }) },
    );
    await fc.assert(
      fc.asyncProperty(fc.array(step, { minLength: 1, maxLength: 60 }), async (steps) => {
        const kv = createMemoryKv();
        const c = clock();
        const xs: Instance[] = [];
        /** processes replaced by a restart: cut off for good, still leading until their fence */
        const zombies: Instance[] = [];
        for (const id of ['a', 'b', 'c']) xs.push(await instance(kv, id, c.now));
        for (const s of steps) {
          if (s.kind === 'time') c.advance(s.ms);
          else if (s.kind === 'tick') await xs[s.who]!.lead.tick();
          else if (s.kind === 'down') xs[s.who]!.client.down = s.down;
          else if (s.kind === 'close') await xs[s.who]!.lead.close();
          else {
            // the old process is cut off for good (a crash, or alive without NATS) and a new one starts under the same id
            const old = xs[s.who]!;
            old.client.down = true;
            zombies.push(old);
            xs[s.who] = await instance(kv, old.lead.instanceId, c.now);
          }
          await settle();
          expect(leaders(...xs, ...zombies).length).toBeLessThanOrEqual(1);
        }
        for (const x of [...xs, ...zombies]) await x.lead.close();
      }),
      { numRuns: 300 },
    );
  });
});
