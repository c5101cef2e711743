/**
 * An in-memory key-value store with the compare-and-set and watch semantics of src/bus/kv.ts
 * (checked against a real nats-server in test/integration/bus-kv.test.ts), for unit tests of
 * the layers above it. Each client can be cut off (`down`), as an instance that lost NATS.
 */
import { BmcError } from '../../src/errors.js';
import type { KvBucket, KvEntry, KvWatch } from '../../src/bus/kv.js';

export interface MemoryKvClient extends KvBucket {
  /** every call fails while true (NATS unreachable), and the watch delivers nothing */
  down: boolean;
  /** the watch delivers nothing while true, the other calls work (a watch that stalled) */
  watchStalled: boolean;
}

export interface MemoryKv {
  client(): MemoryKvClient;
  entries(): Map<string, KvEntry>;
  /** writes so far (puts and deletes that were stored) */
  writes(): number;
  /** the bucket deleted and made again: every key gone, revisions counting from 1 again (watches see only what comes after) */
  remake(): void;
}

/** `serverNow`: the "server's" clock the entries' createdMs come from (default Date.now) */
export function createMemoryKv(bucket = 'test', serverNow: () => number = Date.now): MemoryKv {
  const last = new Map<string, KvEntry>();
  let seq = 0;
  let writes = 0;
  const watchers = new Set<(e: KvEntry) => void>();

  function put(key: string, value: Uint8Array, expected: number | undefined, deleted: boolean): number | undefined {
    const current = last.get(key)?.revision ?? 0;
    if (expected !== undefined && current !== expected) return undefined;
    const entry: KvEntry = { key, value, revision: ++seq, deleted, createdMs: serverNow() };
    last.set(key, entry);
    writes++;
    for (const w of watchers) w(entry);
    return entry.revision;
  }

  return {
    entries: () => last,
    writes: () => writes,
    remake() {
      last.clear();
      seq = 0;
    },
    client() {
      const c: MemoryKvClient = {
        bucket,
        down: false,
        watchStalled: false,
        async get(key) {
          await check();
          return last.get(key);
        },
        async create(key, value) {
          await check();
          const e = last.get(key);
          return put(key, value, e?.deleted ? e.revision : 0, false);
        },
        async update(key, value, revision) {
          await check();
          return put(key, value, revision, false);
        },
        async put(key, value) {
          await check();
          return put(key, value, undefined, false)!;
        },
        async delete(key, revision) {
          await check();
          return put(key, new Uint8Array(0), revision ?? last.get(key)?.revision ?? 0, true) !== undefined;
        },
        async lastRevision() {
          await check();
          return last.size === 0 ? 0 : seq;
        },
        async watch(prefix) {
          await check();
          const queue: KvEntry[] = [...last.values()].filter((e) => prefix === undefined || e.key.startsWith(`${prefix}.`));
          let wake: (() => void) | undefined;
          let stopped = false;
          const listener = (e: KvEntry) => {
            if (c.down || c.watchStalled || (prefix !== undefined && !e.key.startsWith(`${prefix}.`))) return;
            queue.push(e);
            wake?.();
          };
          watchers.add(listener);
          const w: KvWatch = {
            async *[Symbol.asyncIterator]() {
              while (!stopped) {
                const e = queue.shift();
                if (e) yield e;
                else await new Promise<void>((resolve) => (wake = resolve));
              }
            },
            stop() {
              stopped = true;
              watchers.delete(listener);
              wake?.();
            },
          };
          return w;
        },
      };
      async function check(): Promise<void> {
        await Promise.resolve();
        if (c.down) throw new BmcError('CLOSED', 'NATS is unreachable (test)');
      }
      return c;
    },
  };
}

/** `client` with a watch whose every delivery first waits for `gate()`: a watch behind the bucket, let go by the test. */
export function watchBehind(client: KvBucket, gate: () => Promise<void>): KvBucket {
  return {
    ...client,
    watch: async (prefix) => {
      const w = await client.watch(prefix);
      return {
        async *[Symbol.asyncIterator]() {
          for await (const e of w) {
            await gate();
            yield e;
          }
        },
        stop: () => w.stop(),
      };
    },
  };
}
