/**
 * The kept watch of src/bus/kv.ts (`keepWatching`), which the leader and the console ownership use:
 * started again after it ends, one watch at a time, what a stopped or replaced watch still hands
 * over is dropped, and nothing starts once its owner is closed.
 */
import { describe, expect, it, vi } from 'vitest';
import { keepWatching, type KvBucket, type KvEntry, type KvWatch } from '../../src/bus/kv.js';
import { createMemoryKv } from '../helpers/memory-kv.js';
import { waitFor } from '../helpers/wait.js';

const enc = (s: string) => new TextEncoder().encode(s);

/** A watch the test feeds and ends by hand; stop() ends it without delivering what is queued. */
function handWatch(): KvWatch & { push(e: KvEntry): void; end(err?: Error): void; stopped: boolean } {
  const queue: KvEntry[] = [];
  let wake: (() => void) | undefined;
  let ended: Error | 'done' | undefined;
  const w = {
    stopped: false,
    push(e: KvEntry) {
      queue.push(e);
      wake?.();
    },
    end(err?: Error) {
      ended = err ?? 'done';
      wake?.();
    },
    stop() {
      w.stopped = true;
      w.end();
    },
    async *[Symbol.asyncIterator]() {
      for (;;) {
        const e = queue.shift();
        if (e) {
          yield e;
          continue;
        }
        if (ended === 'done') return;
        if (ended) throw ended;
        await new Promise<void>((resolve) => (wake = resolve));
      }
    },
  };
  return w;
}

/** A bucket whose watches are hand watches, handed out in order; `failNext` makes the next watch() calls reject. */
function bucketOfHandWatches() {
  const watches: Array<ReturnType<typeof handWatch>> = [];
  let failNext = 0;
  const kv = {
    ...createMemoryKv().client(),
    async watch() {
      if (failNext > 0) {
        failNext--;
        throw new Error('JetStream not there yet (test)');
      }
      const w = handWatch();
      watches.push(w);
      return w;
    },
  } as KvBucket;
  return { kv, watches, failWatches: (n: number) => void (failNext = n) };
}

const entry = (key: string, revision: number): KvEntry => ({ key, value: enc('v'), revision, deleted: false });

describe('keepWatching', () => {
  it('starts the watch again after it ends (and after a failure to start), every retry interval, and delivers what the new one brings', async () => {
    const { kv, watches, failWatches } = bucketOfHandWatches();
    const seen: number[] = [];
    const ended: unknown[] = [];
    const kept = keepWatching({ kv, onEntry: (e) => seen.push(e.revision), onEnded: (err) => ended.push(err), closed: () => false, retryMs: 10 });
    await kept.start();
    watches[0]!.push(entry('a', 1));
    await waitFor(() => seen.length === 1, 2000, 'the first entry');
    // the watch fails (a server restarted); the next two starts fail too, the third works
    failWatches(2);
    watches[0]!.end(new Error('consumer gone (test)'));
    await waitFor(() => watches.length === 2, 2000, 'a new watch');
    expect(ended).toHaveLength(1);
    watches[1]!.push(entry('a', 2));
    await waitFor(() => seen.length === 2, 2000, 'the new watch delivering');
    expect(seen).toEqual([1, 2]);
    kept.stop();
  });

  it('restart() replaces the watch: what the old one still hands over is dropped, and one watch runs', async () => {
    const { kv, watches } = bucketOfHandWatches();
    const seen: number[] = [];
    const kept = keepWatching({ kv, onEntry: (e) => seen.push(e.revision), onEnded: () => undefined, closed: () => false, retryMs: 10 });
    await kept.start();
    const old = watches[0]!;
    // an entry the old one has queued (the old bucket's) when it is replaced: it still hands it over, not to be seen
    old.push(entry('a', 99));
    kept.restart();
    await waitFor(() => watches.length === 2, 2000, 'the new watch');
    expect(old.stopped).toBe(true);
    watches[1]!.push(entry('a', 1));
    await waitFor(() => seen.length >= 1, 2000, 'the new watch delivering');
    expect(seen).toEqual([1]);
    kept.stop();
    expect(watches[1]!.stopped).toBe(true);
  });

  it('starts nothing once its owner is closed: a watch that ends then is not started again', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    try {
      const { kv, watches } = bucketOfHandWatches();
      let closed = false;
      const kept = keepWatching({ kv, onEntry: () => undefined, onEnded: () => undefined, closed: () => closed, retryMs: 10 });
      await kept.start();
      // while open, an ended watch is started again after the retry interval
      watches[0]!.end();
      await vi.advanceTimersByTimeAsync(10);
      expect(watches).toHaveLength(2);
      closed = true;
      watches[1]!.end();
      await kept.start();
      kept.restart();
      await vi.advanceTimersByTimeAsync(1000);
      expect(watches).toHaveLength(2);
    } finally {
      vi.useRealTimers();
    }
  });
});
