/**
 * The key-value layer (src/bus/kv.ts) against a real nats-server with JetStream: the bucket's
 * stream as NATS KV lays it out, compare-and-set create/update/delete, the watch, and a bucket
 * whose stream is gone: made again only when it really is, and watched again.
 */
import { jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect } from 'vitest';
import { keepWatching, openKvBucket, type KeptWatch, type KvEntry } from '../../src/bus/kv.js';
import { startTestNatsServer, type TestNatsServer } from '../helpers/nats-server.js';
import { withPeers } from '../helpers/peers.js';
import { waitFor } from '../helpers/wait.js';

const { it } = withPeers('nats-server');

let server: TestNatsServer;
let nc: NatsConnection;
const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder().decode(b);

beforeAll(async () => {
  server = await startTestNatsServer({ jetstream: true });
  nc = await connect({ servers: server.url });
}, 30_000);

afterAll(async () => {
  await nc?.close();
  await server?.dispose();
});

it('lays the bucket out as NATS KV does: KV_<bucket>, history 1, roll-up allowed, deletes denied', async () => {
  const jsm = await jetstreamManager(nc);
  await openKvBucket(nc, jsm, 'layout');
  const info = await jsm.streams.info('KV_layout');
  expect(info.config).toMatchObject({ subjects: ['$KV.layout.>'], max_msgs_per_subject: 1, allow_rollup_hdrs: true, deny_delete: true });
  // opening it again uses the stream as it is
  await openKvBucket(nc, jsm, 'layout');
});

it('creates a key once: a second create loses, an update needs the current revision', async () => {
  const kv = await openKvBucket(nc, await jetstreamManager(nc), 'cas');
  const r1 = await kv.create('claim.m1', enc('a'));
  expect(r1).toBeGreaterThan(0);
  expect(await kv.create('claim.m1', enc('b'))).toBeUndefined();
  expect(dec((await kv.get('claim.m1'))!.value)).toBe('a');
  const r2 = await kv.update('claim.m1', enc('b'), r1!);
  expect(r2).toBeGreaterThan(r1!);
  // the old revision no longer counts: a racing writer that read r1 is refused
  expect(await kv.update('claim.m1', enc('c'), r1!)).toBeUndefined();
  expect(dec((await kv.get('claim.m1'))!.value)).toBe('b');
  // a delete with a stale revision is refused, with the current one it leaves a marker
  expect(await kv.delete('claim.m1', r1!)).toBe(false);
  expect(await kv.delete('claim.m1', r2!)).toBe(true);
  expect((await kv.get('claim.m1'))!.deleted).toBe(true);
  // a deleted key can be created again, once
  const [x, y] = await Promise.all([kv.create('claim.m1', enc('x')), kv.create('claim.m1', enc('y'))]);
  expect([x, y].filter((r) => r !== undefined)).toHaveLength(1);
  expect(await kv.get('claim.unknown')).toBeUndefined();
  await expect(kv.get('bad key')).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
});

it("puts a key whatever it holds, and says when the server stored each entry, by the server's clock (read and watched)", async () => {
  const kv = await openKvBucket(nc, await jetstreamManager(nc), 'put');
  const before = Date.now();
  const r1 = await kv.put('clock.a', enc('1'));
  const r2 = await kv.put('clock.a', enc('2'));
  const after = Date.now();
  expect(r2).toBeGreaterThan(r1);
  const e = (await kv.get('clock.a'))!;
  expect(e).toMatchObject({ revision: r2, deleted: false });
  expect(dec(e.value)).toBe('2');
  // the test's nats-server runs on this host's clock
  expect(e.createdMs).toBeGreaterThanOrEqual(before - 5);
  expect(e.createdMs).toBeLessThanOrEqual(after + 5);
  const w = await kv.watch('clock');
  const first = (await w[Symbol.asyncIterator]().next()).value as KvEntry;
  w.stop();
  expect(first).toMatchObject({ key: 'clock.a', revision: r2, createdMs: e.createdMs });
});

it('of many racing creates of one key exactly one wins', async () => {
  const kv = await openKvBucket(nc, await jetstreamManager(nc), 'race');
  const results = await Promise.all(Array.from({ length: 20 }, (_, i) => kv.create('claim.m', enc(`i${i}`))));
  expect(results.filter((r) => r !== undefined)).toHaveLength(1);
});

it('watches the current entries under a prefix, then every change', async () => {
  const kv = await openKvBucket(nc, await jetstreamManager(nc), 'watch');
  await kv.create('lease.a', enc('1'));
  await kv.create('lease.b', enc('1'));
  await kv.create('claim.m', enc('a'));
  const w = await kv.watch('lease');
  const seen: KvEntry[] = [];
  void (async () => {
    for await (const e of w) seen.push(e);
  })();
  await waitFor(() => seen.length === 2, 10_000, 'the two current leases');
  expect(seen.map((e) => e.key).sort()).toEqual(['lease.a', 'lease.b']);
  const a = await kv.get('lease.a');
  await kv.update('lease.a', enc('2'), a!.revision);
  await kv.delete('lease.b');
  await waitFor(() => seen.length === 4, 10_000, 'the update and the delete');
  expect(seen[2]).toMatchObject({ key: 'lease.a', deleted: false });
  expect(dec(seen[2]!.value)).toBe('2');
  expect(seen[3]).toMatchObject({ key: 'lease.b', deleted: true });
  w.stop();
});

it("names its last revision (0 while empty): a watch started after it has delivered the bucket as it was once it delivered that revision", async () => {
  const kv = await openKvBucket(nc, await jetstreamManager(nc), 'last');
  expect(await kv.lastRevision()).toBe(0);
  const a = (await kv.create('a', new TextEncoder().encode('1')))!;
  const b = await kv.put('b', new TextEncoder().encode('2'));
  expect(await kv.lastRevision()).toBe(b);
  // a later write of a supersedes its first: the watch delivers the later one, at or past the last revision
  const a2 = (await kv.update('a', new TextEncoder().encode('3'), a))!;
  expect(await kv.delete('b')).toBe(true);
  const upTo = await kv.lastRevision();
  expect(upTo).toBeGreaterThan(a2);
  const w = await kv.watch();
  const seen: Array<{ key: string; revision: number; deleted: boolean }> = [];
  for await (const e of w) {
    seen.push({ key: e.key, revision: e.revision, deleted: e.deleted });
    if (e.revision >= upTo) break;
  }
  w.stop();
  expect(seen).toEqual([
    { key: 'a', revision: a2, deleted: false },
    { key: 'b', revision: upTo, deleted: true },
  ]);
});

describe('a bucket whose stream is gone', () => {
  it('is made again, empty, by the next write, which is told once; a watch from before misses what the new bucket numbers below its place, a new one sees it all', async () => {
    const jsm = await jetstreamManager(nc);
    let remade = 0;
    const kv = await openKvBucket(nc, jsm, 'remade', { onRemade: () => remade++ });
    for (const k of ['k.1', 'k.2', 'k.3']) await kv.create(k, enc('old'));
    const before = await kv.watch();
    const seenBefore: KvEntry[] = [];
    void (async () => {
      for await (const e of before) seenBefore.push(e);
    })();
    await waitFor(() => seenBefore.length === 3, 10_000, 'the old bucket seen');
    await jsm.streams.delete('KV_remade');
    expect(await kv.create('n.1', enc('new'))).toBe(1);
    expect(remade).toBe(1);
    expect(await kv.get('k.1')).toBeUndefined();
    for (const k of ['n.2', 'n.3']) await kv.create(k, enc('new'));
    expect(remade).toBe(1);
    const after = await kv.watch();
    const seenAfter: KvEntry[] = [];
    void (async () => {
      for await (const e of after) seenAfter.push(e);
    })();
    await waitFor(() => seenAfter.length === 3, 10_000, 'the new bucket seen by a new watch');
    expect(seenAfter.map((e) => e.key)).toEqual(['n.1', 'n.2', 'n.3']);
    // NATS's ordered consumer keeps its place in the deleted stream (3): the new bucket's entries,
    // numbered from 1 again, lie at or below it and never reach it (later ones would, only once the
    // consumer is made again after its missed heartbeats, ~45 s). Why keepWatching restarts the
    // watch on every remake.
    expect(seenBefore.map((e) => e.key)).toEqual(['k.1', 'k.2', 'k.3']);
    before.stop();
    after.stop();
  });

  it('a kept watch restarted on the remake sees the new bucket', async () => {
    const jsm = await jetstreamManager(nc);
    const late: { kept?: KeptWatch } = {};
    const kv = await openKvBucket(nc, jsm, 'kept', { onRemade: () => late.kept?.restart() });
    for (const k of ['k.1', 'k.2', 'k.3']) await kv.create(k, enc('old'));
    const seen: string[] = [];
    let closed = false;
    const kept = (late.kept = keepWatching({ kv, onEntry: (e) => seen.push(e.key), onEnded: () => undefined, closed: () => closed }));
    await kept.start();
    await waitFor(() => seen.length === 3, 10_000, 'the old bucket seen');
    await jsm.streams.delete('KV_kept');
    for (const k of ['n.1', 'n.2']) await kv.create(k, enc('new'));
    await waitFor(() => seen.includes('n.1') && seen.includes('n.2'), 10_000, 'the new bucket seen by the restarted watch');
    closed = true;
    kept.stop();
  });

  it('is not made again when a write finds no stream for its subject but the stream is there', async () => {
    const jsm = await jetstreamManager(nc);
    let remade = 0;
    const kv = await openKvBucket(nc, jsm, 'moved', { onRemade: () => remade++ });
    await kv.create('k.1', enc('v'));
    // the stream no longer takes the bucket's subjects (edited by hand; a cluster between stream leaders answers the same way)
    const { config } = await jsm.streams.info('KV_moved');
    await jsm.streams.update('KV_moved', { ...config, subjects: ['elsewhere.>'] });
    await expect(kv.create('k.2', enc('v'))).rejects.toThrow();
    expect(remade).toBe(0);
    expect((await jsm.streams.info('KV_moved')).state.messages).toBe(1);
  });
});
