/**
 * One owner per console (src/bus/console-owners.ts) over the in-memory store with the KV's CAS
 * semantics: first claim wins, no steady writes, a dead instance's machines taken over, a cut-off
 * instance fenced before anyone may take over, re-assertion after a lease gap, graceful handover,
 * free machines spread over the live instances (fair share at once, the rest after a lease time).
 */
import fc from 'fast-check';
import { describe, expect, it, vi } from 'vitest';
import { claimKey, createConsoleOwnership, decodeOwner, encodeOwner, isValidInstanceId } from '../../src/bus/console-owners.js';
import { manualClock } from '../helpers/manual-clock.js';
import { captureLog } from '../helpers/log.js';
import { createMemoryKv, type MemoryKv, type MemoryKvClient } from '../helpers/memory-kv.js';

const LEASE = 30_000;
const HEARTBEAT = 5000;
const settle = () => new Promise((resolve) => setImmediate(resolve));

const clock = manualClock;

async function instance(kv: MemoryKv, id: string, now: () => number, changes: Array<Set<string>> = []) {
  const client: MemoryKvClient = kv.client();
  const log = captureLog('info');
  const own = createConsoleOwnership({ kv: client, instanceId: id, leaseMs: LEASE, heartbeatMs: HEARTBEAT, logger: log.logger, now, onChange: (s) => changes.push(new Set(s)) });
  await own.start({ timer: false });
  return { own, client, log, changes };
}

/** one heartbeat period for everyone: time passes, each renews and claims, the watches deliver */
async function period(c: ReturnType<typeof clock>, ...xs: Array<{ own: { tick(): Promise<void> } }>) {
  c.advance(HEARTBEAT);
  for (const x of xs) await x.own.tick();
  await settle();
}

describe('owner values', () => {
  it('decodes what it encodes, and nothing else', () => {
    fc.assert(
      fc.property(fc.stringMatching(/^[A-Za-z0-9_-]{1,64}$/), (id) => {
        expect(isValidInstanceId(id)).toBe(true);
        expect(decodeOwner(encodeOwner(id))).toBe(id);
      }),
    );
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        const d = decodeOwner(bytes);
        if (d !== undefined) expect(Buffer.from(encodeOwner(d))).toEqual(Buffer.from(bytes));
      }),
    );
    for (const bad of ['', 'a.b', 'a b', 'x'.repeat(65), 'é']) expect(decodeOwner(Buffer.from(bad))).toBeUndefined();
  });
});

describe('console ownership', () => {
  it('gives each of 1,000 machines to exactly one of two instances: one write per machine, then only heartbeats', async () => {
    const kv = createMemoryKv();
    const c = clock();
    const a = await instance(kv, 'a', c.now);
    const b = await instance(kv, 'b', c.now);
    const machines = Array.from({ length: 1000 }, (_, i) => `m${i}`);
    a.own.setWanted(machines);
    b.own.setWanted(machines);
    await Promise.all([a.own.tick(), b.own.tick()]);
    await settle();
    // two leases and one claim per machine (a lost create is no write)
    expect(kv.writes()).toBe(2 + 1000);
    const owned = [...a.own.owned(), ...b.own.owned()].sort();
    expect(owned).toEqual([...machines].sort());
    for (const m of machines) expect(a.own.ownerOf(m)).toBe(b.own.ownerOf(m));
    const before = kv.writes();
    for (let i = 0; i < 10; i++) await period(c, a, b);
    // only the two heartbeats per period
    expect(kv.writes() - before).toBe(20);
    expect([...a.own.owned(), ...b.own.owned()].sort()).toEqual([...machines].sort());
  });

  it('takes over the machines of an instance that stopped renewing, after the lease time and not before', async () => {
    const kv = createMemoryKv();
    const c = clock();
    const a = await instance(kv, 'a', c.now);
    a.own.setWanted(['m1', 'm2']);
    await a.own.tick();
    await settle();
    const b = await instance(kv, 'b', c.now);
    b.own.setWanted(['m1', 'm2']);
    await period(c, a, b);
    expect([...a.own.owned()].sort()).toEqual(['m1', 'm2']);
    expect(b.own.owned().size).toBe(0);
    expect(b.own.ownerOf('m1')).toBe('a');
    // a dies (no more renewals, nothing released)
    a.client.down = true;
    let waited = 0;
    while (b.own.owned().size === 0) {
      await period(c, b);
      waited += HEARTBEAT;
      if (waited > LEASE) {
        // a fenced itself before b took over
        expect(a.own.owned().size).toBe(0);
      }
      expect(waited).toBeLessThanOrEqual(LEASE + 2 * HEARTBEAT);
    }
    expect(waited).toBeGreaterThan(LEASE);
    expect([...b.own.owned()].sort()).toEqual(['m1', 'm2']);
    expect(b.log.find('console taken over from a dead instance')).toHaveLength(2);
  });

  it('an instance cut off from NATS holds nothing before the others may take over', async () => {
    const kv = createMemoryKv();
    const c = clock();
    const a = await instance(kv, 'a', c.now);
    a.own.setWanted(['m1']);
    await a.own.tick();
    await settle();
    expect([...a.own.owned()]).toEqual(['m1']);
    a.client.down = true;
    let t = 0;
    while (a.own.owned().size > 0) {
      c.advance(1000);
      t += 1000;
      await a.own.tick();
    }
    // fenced at 2/3 of the lease, before anyone could call it dead
    expect(t).toBeLessThan(LEASE);
    expect(a.changes.at(-1)).toEqual(new Set());
    expect(a.own.live()).toBe(false);
    expect(a.own.ownerOf('m1')).toBeUndefined();
  });

  it('1,100 instances that started and left (their lease keys delete markers) do not keep a new one out of the view', async () => {
    const kv = createMemoryKv();
    const c = clock();
    const a = await instance(kv, 'a', c.now);
    const writer = kv.client();
    for (let i = 0; i < 1100; i++) {
      const key = `lease.old-${i}`;
      await writer.create(key, encodeOwner(`old-${i}`));
      await writer.delete(key);
    }
    await settle();
    const fresh = await instance(kv, 'fresh', c.now);
    await period(c, a, fresh);
    expect(a.own.liveInstances()).toBe(2);
    expect(a.log.find('console ownership bucket holds more keys than expected; the rest is ignored')).toEqual([]);
  });

  it("an instance whose watch stalled (its renewals still go through) says its view is not current: it does not take the others' consoles for free, and keeps its own", async () => {
    const kv = createMemoryKv();
    const c = clock();
    const a = await instance(kv, 'a', c.now);
    const b = await instance(kv, 'b', c.now);
    b.own.setWanted(['m1']);
    await period(c, a, b);
    await period(c, a, b);
    a.own.setWanted(['m2']);
    await period(c, a, b);
    expect(a.own.ownerOf('m1')).toBe('b');
    expect([...a.own.owned()]).toEqual(['m2']);
    expect(a.own.viewCurrent()).toBe(true);
    a.client.watchStalled = true;
    for (let t = 0; t < 2 * LEASE; t += HEARTBEAT) await period(c, a, b);
    // its view of b's lease is two lease times old: b reads as dead, which the stall check says not to trust
    expect(a.own.viewCurrent()).toBe(false);
    expect(a.own.live()).toBe(true);
    expect([...a.own.owned()]).toEqual(['m2']); // what it holds it still holds
    a.client.watchStalled = false;
    await period(c, a, b);
    await period(c, a, b);
    expect(a.own.viewCurrent()).toBe(true);
    expect(a.own.ownerOf('m1')).toBe('b');
  });

  it('the default clock is monotonic: a cut-off owner whose wall clock steps back an hour is fenced all the same', async () => {
    const kv = createMemoryKv();
    const client = kv.client();
    const own = createConsoleOwnership({ kv: client, instanceId: 'a', leaseMs: 600, heartbeatMs: 50, logger: captureLog('info').logger });
    await own.start({ timer: false });
    own.setWanted(['m1']);
    await own.tick();
    await settle();
    expect([...own.owned()]).toEqual(['m1']);
    client.down = true;
    const wall = Date.now.bind(Date);
    vi.spyOn(Date, 'now').mockImplementation(() => wall() - 3_600_000);
    const until = performance.now() + 5000; // this test's own deadline: Date.now is stepped back
    let held: number;
    let live: boolean;
    try {
      while (own.owned().size > 0 && performance.now() < until) {
        await own.tick();
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      // read while the wall clock is still stepped back
      [held, live] = [own.owned().size, own.live()];
    } finally {
      vi.restoreAllMocks();
    }
    expect(held).toBe(0);
    expect(live).toBe(false);
    await own.close();
  });

  it('after a lease gap nobody used, the instance re-asserts its claims by CAS and holds them again', async () => {
    const kv = createMemoryKv();
    const c = clock();
    const a = await instance(kv, 'a', c.now);
    a.own.setWanted(['m1']);
    await a.own.tick();
    await settle();
    const revision = kv.entries().get(claimKey('m1'))!.revision;
    a.client.down = true;
    c.advance(25_000);
    await a.own.tick();
    expect(a.own.owned().size).toBe(0);
    a.client.down = false;
    await period(c, a);
    expect([...a.own.owned()]).toEqual(['m1']);
    expect(kv.entries().get(claimKey('m1'))!.revision).toBeGreaterThan(revision);
  });

  it('a claim taken over while the owner was cut off is lost by the owner, not fought for', async () => {
    const kv = createMemoryKv();
    const c = clock();
    const a = await instance(kv, 'a', c.now);
    const b = await instance(kv, 'b', c.now);
    a.own.setWanted(['m1']);
    await a.own.tick();
    b.own.setWanted(['m1']);
    await period(c, a, b);
    a.client.down = true;
    for (let i = 0; i < 8 && b.own.owned().size === 0; i++) await period(c, b);
    expect([...b.own.owned()]).toEqual(['m1']);
    a.client.down = false;
    // a's watch missed b's takeover while it was cut off; its CAS re-assertion fails
    await period(c, a, b);
    await period(c, a, b);
    expect(a.own.owned().size).toBe(0);
    expect([...b.own.owned()]).toEqual(['m1']);
  });

  it('spreads free machines over the live instances: the first to look takes its fair share and leaves the rest to the other', async () => {
    const kv = createMemoryKv();
    const c = clock();
    const a = await instance(kv, 'a', c.now);
    const b = await instance(kv, 'b', c.now);
    // both live, each has seen the other's lease
    await period(c, a, b);
    const machines = Array.from({ length: 100 }, (_, i) => `m${i}`);
    a.own.setWanted(machines);
    await a.own.tick();
    await settle();
    expect(a.own.owned().size).toBe(50);
    b.own.setWanted(machines);
    await b.own.tick();
    await settle();
    expect(b.own.owned().size).toBe(50);
    expect([...a.own.owned(), ...b.own.owned()].sort()).toEqual([...machines].sort());
    // past the lease time nothing moves: a machine a live instance holds is never taken
    const writes = kv.writes();
    for (let i = 0; i < 8; i++) await period(c, a, b);
    expect(a.own.owned().size).toBe(50);
    expect(b.own.owned().size).toBe(50);
    expect(kv.writes() - writes).toBe(16);
  });

  it('claims a free machine past its fair share after one lease time when no other instance took it', async () => {
    const kv = createMemoryKv();
    const c = clock();
    const a = await instance(kv, 'a', c.now);
    // b is live but reports no machine (it does not see them, or not yet)
    const b = await instance(kv, 'b', c.now);
    await period(c, a, b);
    a.own.setWanted(['m0', 'm1', 'm2', 'm3']);
    await a.own.tick();
    expect(a.own.owned().size).toBe(2);
    // not before the lease time: b might have taken them
    for (let waited = HEARTBEAT; waited < LEASE; waited += HEARTBEAT) {
      await period(c, a, b);
      expect(a.own.owned().size).toBe(2);
    }
    await period(c, a, b);
    expect([...a.own.owned()].sort()).toEqual(['m0', 'm1', 'm2', 'm3']);
  });

  it('close() hands its machines over at once', async () => {
    const kv = createMemoryKv();
    const c = clock();
    const a = await instance(kv, 'a', c.now);
    const b = await instance(kv, 'b', c.now);
    a.own.setWanted(['m1', 'm2']);
    await a.own.tick();
    b.own.setWanted(['m1', 'm2']);
    await period(c, a, b);
    expect(b.own.owned().size).toBe(0);
    await a.own.close();
    await settle();
    await b.own.tick();
    expect([...b.own.owned()].sort()).toEqual(['m1', 'm2']);
  });

  it('releases a machine it no longer reports, so the other may take it', async () => {
    const kv = createMemoryKv();
    const c = clock();
    const a = await instance(kv, 'a', c.now);
    a.own.setWanted(['m1', 'm2']);
    await a.own.tick();
    a.own.setWanted(['m2']);
    await a.own.tick();
    expect([...a.own.owned()]).toEqual(['m2']);
    expect(kv.entries().get(claimKey('m1'))!.deleted).toBe(true);
  });

  it('refuses machine ids that cannot be keys, once', async () => {
    const kv = createMemoryKv();
    const c = clock();
    const a = await instance(kv, 'a', c.now);
    a.own.setWanted(['bad.id', 'm1']);
    a.own.setWanted(['bad.id', 'm1']);
    await a.own.tick();
    expect([...a.own.owned()]).toEqual(['m1']);
    expect(a.log.find(/cannot name a console claim/)).toHaveLength(1);
  });

  it('a second process with the same instance id: the one that notices stays off for a lease time', async () => {
    const kv = createMemoryKv();
    const c = clock();
    const a1 = await instance(kv, 'a', c.now);
    await a1.own.tick();
    const a2 = await instance(kv, 'a', c.now);
    await a2.own.tick();
    await period(c, a1, a2);
    // a1's renewal found a2's revision: a1 stops renewing, a2 goes on alone
    for (let i = 0; i < 5; i++) await period(c, a1, a2);
    expect(a1.own.live()).toBe(false);
    expect(a2.own.live()).toBe(true);
  });

  it('the bucket made again (every key gone, revisions from 1): both start over, claim again, and no machine has two holders', async () => {
    for (const firstAfter of ['a', 'b'] as const) {
      const kv = createMemoryKv();
      const c = clock();
      const a = await instance(kv, 'a', c.now);
      const b = await instance(kv, 'b', c.now);
      const machines = Array.from({ length: 20 }, (_, i) => `m${i}`);
      a.own.setWanted(machines);
      b.own.setWanted(machines);
      for (let i = 0; i < 30; i++) await period(c, a, b);
      kv.remake();
      const order = firstAfter === 'a' ? [a, b] : [b, a];
      for (let i = 0; i < 12; i++) {
        c.advance(HEARTBEAT);
        // after each instance's round, not only each period's: the first to notice must not claim what the other still holds
        for (const x of order) {
          await x.own.tick();
          await settle();
          const held = [...a.own.owned(), ...b.own.owned()];
          expect(new Set(held).size, 'a machine held by both').toBe(held.length);
        }
      }
      // every machine held again, each by the instance its claim in the new bucket names
      expect([...a.own.owned(), ...b.own.owned()].sort()).toEqual([...machines].sort());
      for (const x of [a, b]) {
        for (const m of x.own.owned()) expect(decodeOwner(kv.entries().get(claimKey(m))!.value)).toBe(x.own.instanceId);
        expect(x.own.live()).toBe(true);
        // not mistaken for a second process under the same id
        expect(x.log.find(/share METAL_BMC_INSTANCE_ID/)).toHaveLength(0);
      }
      expect([a, b].some((x) => x.log.find(/bucket was made again/).length > 0)).toBe(true);
    }
  });

  it('a claim round running as the bucket is made again writes no claim after it, and confirms none', async () => {
    const kv = createMemoryKv();
    const c = clock();
    const a = await instance(kv, 'a', c.now);
    await period(c, a);
    // 100 machines, 32 claims at a time: the round is still running when the bucket goes
    a.own.setWanted(Array.from({ length: 100 }, (_, i) => `m${i}`));
    kv.remake();
    a.own.bucketRemade();
    await a.own.tick();
    await settle();
    expect([...a.own.owned()]).toEqual([]);
    const claimed = [...kv.entries().keys()].filter((k) => k.startsWith('claim.'));
    expect(claimed.length).toBeLessThanOrEqual(32);
  });

  it('a claim an earlier run under the same id left for a machine not wanted for a lease time is released, so another instance may take it', async () => {
    const kv = createMemoryKv();
    const c = clock();
    const a1 = await instance(kv, 'a', c.now);
    a1.own.setWanted(['m1', 'm2']);
    await period(c, a1);
    expect([...a1.own.owned()].sort()).toEqual(['m1', 'm2']);
    // a1 crashes (no close: its claims stay); its restart reports m2 only; b reports m1
    a1.client.down = true;
    const a2 = await instance(kv, 'a', c.now);
    const b = await instance(kv, 'b', c.now);
    a2.own.setWanted(['m2']);
    b.own.setWanted(['m1']);
    // kept for a lease time (a restart's first report may not list it yet) ...
    for (let i = 0; i < 5; i++) {
      await period(c, a2, b);
      expect(decodeOwner(kv.entries().get(claimKey('m1'))!.value)).toBe('a');
      expect([...b.own.owned()]).toEqual([]);
    }
    // ... then released, and b takes it
    for (let i = 0; i < 3; i++) await period(c, a2, b);
    expect([...a2.own.owned()]).toEqual(['m2']);
    expect([...b.own.owned()]).toEqual(['m1']);
  });

  it('bucketRemade() (its own read or write made the bucket again): holds nothing at once, then claims again', async () => {
    const kv = createMemoryKv();
    const c = clock();
    const changes: Array<Set<string>> = [];
    const a = await instance(kv, 'a', c.now, changes);
    a.own.setWanted(['m1', 'm2']);
    await period(c, a);
    expect([...a.own.owned()].sort()).toEqual(['m1', 'm2']);
    kv.remake();
    a.own.bucketRemade();
    expect([...a.own.owned()]).toEqual([]);
    expect(changes.at(-1)).toEqual(new Set());
    // no claim for a lease time (30 s): another instance may still hold the old bucket's claims;
    // and no holder known meanwhile (not live: a console is not opened as "free")
    for (let i = 0; i < 5; i++) {
      await period(c, a);
      expect([...a.own.owned()]).toEqual([]);
      expect(a.own.live()).toBe(false);
    }
    for (let i = 0; i < 2; i++) await period(c, a);
    expect(a.own.live()).toBe(true);
    expect([...a.own.owned()].sort()).toEqual(['m1', 'm2']);
    expect(decodeOwner(kv.entries().get(claimKey('m1'))!.value)).toBe('a');
  });

  it('notices a second process with the same instance id and holds nothing', async () => {
    const kv = createMemoryKv();
    const c = clock();
    const a1 = await instance(kv, 'a', c.now);
    a1.own.setWanted(['m1']);
    await a1.own.tick();
    const a2 = await instance(kv, 'a', c.now);
    await a2.own.tick();
    c.advance(HEARTBEAT);
    await a1.own.tick();
    expect(a1.log.find(/share METAL_BMC_INSTANCE_ID/)).toHaveLength(1);
  });
});
