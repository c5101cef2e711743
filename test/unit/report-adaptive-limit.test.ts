import { describe, expect, it } from 'vitest';
import { fdBound, forEachAdaptive, nextLimit, WORKER_HEAP_ALLOWANCE } from '../../src/report/adaptive-limit.js';

const o = { min: 4, lagLowMs: 10, lagHighMs: 50, heapBudgetBytes: 100, ceiling: 500, busyLowPct: 75, busyHighPct: 92 };

describe('adaptive concurrency', () => {
  it('grows while the loop has time to spare and the limit is used, shrinks when it is full, falls behind or memory runs out', () => {
    expect(nextLimit(32, { lagMs: 5, busy: 0.6, heapBytes: 10, inUse: 32 }, o)).toBe(40);
    expect(nextLimit(32, { lagMs: 5, busy: 0.3, heapBytes: 10, inUse: 32 }, o)).toBe(48); // less than half busy: the bigger step
    expect(nextLimit(32, { lagMs: 5, busy: 0.6, heapBytes: 10, inUse: 3 }, o)).toBe(32); // not in use: no reason to grow
    expect(nextLimit(32, { lagMs: 5, busy: 0.8, heapBytes: 10, inUse: 32 }, o)).toBe(32); // busy enough: stays
    expect(nextLimit(100, { lagMs: 5, busy: 0.95, heapBytes: 10, inUse: 100 }, o)).toBe(90); // about full, whatever the delay says
    expect(nextLimit(400, { lagMs: 5, busy: 0.6, heapBytes: 10, inUse: 400 }, o)).toBe(500); // the ceiling
    expect(nextLimit(32, { lagMs: 80, busy: 0.6, heapBytes: 10, inUse: 32 }, o)).toBe(22);
    expect(nextLimit(32, { lagMs: 5, busy: 0.6, heapBytes: 1000, inUse: 32 }, o)).toBe(22);
    expect(nextLimit(5, { lagMs: 150, busy: 1, heapBytes: 10, inUse: 5 }, o)).toBe(4); // the floor
    expect(nextLimit(32, { lagMs: 30, busy: 0.6, heapBytes: 10, inUse: 32 }, o)).toBe(32);
  });

  it('holds for BMCs that ran late while the loop was busy, steps back only when it is swamped', () => {
    expect(nextLimit(100, { lagMs: 5, busy: 0.6, heapBytes: 10, inUse: 100, late: 1 }, o)).toBe(100);
    expect(nextLimit(100, { lagMs: 80, busy: 0.6, heapBytes: 10, inUse: 100, late: 1 }, o)).toBe(70); // swamped: the big step
  });

  it('climbs back from its floor once the loop is idle, though BMCs started in the swamp keep finishing late', () => {
    // report-latency, before the busy share: every sample had a late BMC, so the limit sat at 4 for 25 s
    let limit = 4;
    for (let sample = 0; sample < 10; sample++) limit = nextLimit(limit, { lagMs: 1, busy: 0.15, heapBytes: 10, inUse: limit, late: 3 }, o);
    expect(limit).toBeGreaterThanOrEqual(100);
  });

  it('leaves file descriptors for everything else', () => {
    expect(fdBound(1024, 4)).toBe(192);
    expect(fdBound(undefined, 4)).toBe(Number.POSITIVE_INFINITY);
  });

  it('records what each sample saw beside the limit: the loop, the items running and queued', async () => {
    let samples = 0;
    let release!: () => void;
    const sampled = new Promise<void>((r) => (release = r));
    // the items hold until the limiter has sampled three times (its load() is called once per sample)
    const load = () => {
      if (++samples === 3) release();
      return { busy: 0, heapBytes: 0 };
    };
    const trace = await forEachAdaptive(Array.from({ length: 30 }, (_, i) => i), { max: 8, initial: 8, sampleMs: 5, load }, () => sampled);
    expect(trace.seen).toHaveLength(trace.samples.length);
    expect(trace.seen.slice(0, 3).map((s) => [s.running, s.queued])).toEqual([
      [8, 22],
      [8, 22],
      [8, 22],
    ]);
    for (const s of trace.seen) expect(s.busyPct).toBeGreaterThanOrEqual(0);
  });

  it('runs every item once, requeued ones twice, never more at once than the upper bound', async () => {
    let running = 0;
    let most = 0;
    const seen: number[] = [];
    const items = Array.from({ length: 60 }, (_, i) => i);
    const trace = await forEachAdaptive(items, { max: 7, initial: 7, sampleMs: 5 }, async (i, requeue) => {
      running++;
      most = Math.max(most, running);
      await new Promise<void>((r) => setImmediate(r));
      seen.push(i);
      if (i % 10 === 0 && seen.filter((x) => x === i).length === 1) requeue(i);
      running--;
    });
    expect(most).toBeLessThanOrEqual(7);
    expect(trace.peak).toBeLessThanOrEqual(7);
    expect(seen).toHaveLength(66);
    expect(new Set(seen).size).toBe(60);
  });

  it('follows the load of the threads the items run on (report workers), not only its own idle loop', async () => {
    /** items hold until the limiter has sampled this often, so every sample sees them all in use */
    const run = async (load: () => { busy: number; heapBytes: number; threads?: number }) => {
      let samples = 0;
      let release!: () => void;
      const held = new Promise<void>((r) => (release = r));
      const sampled = () => {
        const l = load();
        if (++samples === 6) release();
        return l;
      };
      return forEachAdaptive(Array.from({ length: 200 }, (_, i) => i), { max: 200, min: 2, initial: 16, sampleMs: 5, load: sampled }, () => held);
    };
    // this thread is idle in both runs: the limit grows while the workers have room...
    const idle = await run(() => ({ busy: 0.1, heapBytes: 0 }));
    expect(idle.samples.slice(0, 5).at(-1)).toBeGreaterThan(16);
    // ...and steps back while the busiest worker is full, or the workers' heaps pass the budget
    const busy = await run(() => ({ busy: 0.99, heapBytes: 0 }));
    expect(busy.samples.slice(0, 5).at(-1)).toBeLessThan(16);
    const heavy = await run(() => ({ busy: 0.1, heapBytes: 1 << 30 }));
    expect(heavy.samples.slice(0, 5).at(-1)).toBeLessThan(16);
    // ten workers at rest (~19 MiB of heap each, measured) are not over the budget: it grows by WORKER_HEAP_ALLOWANCE per thread
    const resting = await run(() => ({ busy: 0.1, heapBytes: 10 * 19 * 2 ** 20, threads: 10 }));
    expect(resting.samples.slice(0, 5).at(-1)).toBeGreaterThan(16);
    expect(WORKER_HEAP_ALLOWANCE).toBeGreaterThan(19 * 2 ** 20);
  });

  it('an empty list finishes at once; a failing item fails the run', async () => {
    await expect(forEachAdaptive([], { max: 3 }, async () => undefined)).resolves.toMatchObject({ peak: expect.any(Number) });
    await expect(forEachAdaptive([1, 2], { max: 3 }, async () => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
  });

  it('a failing item fails the run only once the items running beside it have ended, and starts no more', async () => {
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    const started: number[] = [];
    let running = 0;
    let settled = false;
    const run = forEachAdaptive([1, 2, 3, 4, 5], { max: 3, min: 3, initial: 3 }, async (i) => {
      started.push(i);
      if (i === 1) throw new Error('boom');
      running++;
      await held;
      running--;
    }).finally(() => (settled = true));
    await new Promise((r) => setImmediate(r));
    expect(settled).toBe(false);
    expect(running).toBe(2);
    release();
    await expect(run).rejects.toThrow('boom');
    expect(running).toBe(0);
    expect(started).toEqual([1, 2, 3]);
  });

  it('tells when every item has started and one ends with none waiting, again after a requeued one started, never while items wait to start', async () => {
    const releases: Array<() => void> = [];
    const started: number[] = [];
    /** the items started each time it was told */
    const told: number[][] = [];
    const run = forEachAdaptive([1, 2, 3, 4, 5], { max: 2, min: 2, initial: 2, onAllStarted: () => told.push([...started]) }, async (i, requeue) => {
      started.push(i);
      await new Promise<void>((r) => releases.push(r));
      if (i === 5 && started.filter((s) => s === 5).length === 1) requeue(5);
    });
    const turn = () => new Promise((r) => setImmediate(r));
    const end = async (n: number) => {
      releases[n]!();
      await turn();
    };
    await turn();
    // two at a time: each end starts the next
    await end(0);
    await end(1);
    expect(started).toEqual([1, 2, 3, 4]);
    expect(told).toEqual([]);
    // the end that starts the last item
    await end(2);
    expect(started).toEqual([1, 2, 3, 4, 5]);
    expect(told).toEqual([[1, 2, 3, 4, 5]]);
    // item 5 asked again as it ends: it starts again, told with it
    await end(4);
    expect(started).toEqual([1, 2, 3, 4, 5, 5]);
    expect(told.at(-1)).toEqual([1, 2, 3, 4, 5, 5]);
    // never while one waited: every time told, all six starts had been made or were the last
    for (const t of told) expect(t.length).toBeGreaterThanOrEqual(5);
    await end(3);
    await end(5);
    await run;
  });

  it('items that all start at once (no more than the limit) are not told before the first of them ends', async () => {
    const releases: Array<() => void> = [];
    let told = 0;
    const run = forEachAdaptive([1, 2, 3], { max: 8, min: 8, initial: 8, onAllStarted: () => told++ }, async () => {
      await new Promise<void>((r) => releases.push(r));
    });
    const turn = () => new Promise((r) => setImmediate(r));
    await turn();
    expect(releases).toHaveLength(3);
    expect(told).toBe(0);
    releases[0]!();
    await turn();
    expect(told).toBe(1);
    releases[1]!();
    releases[2]!();
    await run;
  });
});
