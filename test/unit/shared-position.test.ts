/**
 * The partition's position in the machine-event stream, shared through the leader's bucket
 * (src/bus/shared-position.ts), over the in-memory store with the KV's compare-and-set semantics:
 * its value's decoder, the newest position of a stream, writes once per delay that never move the
 * bucket's position back, a write that fails kept and tried again, `close()` writing what is
 * pending, and a bucket's position above the consumer's ack floor written over.
 */
import fc from 'fast-check';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { StreamPosition } from '../../src/bus/jetstream.js';
import { decodePosition, encodePosition, newestOf, POSITION_KEY, sharedPosition, type PositionStore } from '../../src/bus/shared-position.js';
import { captureLog } from '../helpers/log.js';
import { waitFor } from '../helpers/wait.js';
import { createMemoryKv } from '../helpers/memory-kv.js';

const S = { stream: 'metal-bmc-p1-machine', created: '2026-12-05T08:00:00.000Z' };
const at = (seq: number, stream = S): StreamPosition => ({ ...stream, seq });
const settle = async () => {
  for (let k = 0; k < 5; k++) await new Promise((resolve) => setImmediate(resolve));
};

function fileStore(start?: StreamPosition): PositionStore & { saved: StreamPosition[] } {
  let p = start;
  const saved: StreamPosition[] = [];
  return { saved, load: () => p, save: (x) => void (saved.push(x), (p = x)) };
}

afterEach(() => {
  vi.useRealTimers();
});

describe('the shared position\'s value', () => {
  it('decodes what it encodes', () => {
    fc.assert(
      fc.property(fc.string({ minLength: 1, maxLength: 256 }), fc.string({ minLength: 1, maxLength: 64 }), fc.nat(), (stream, created, seq) => {
        expect(decodePosition(encodePosition({ stream, created, seq }))).toEqual({ stream, created, seq });
      }),
    );
  });

  it('never throws on other bytes, and gives only well-formed positions', () => {
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 1200 }), fc.json().map((j) => Buffer.from(j)), fc.anything().map((v) => Buffer.from(JSON.stringify(v ?? null) ?? 'null'))), (bytes) => {
        const p = decodePosition(bytes);
        if (p !== undefined) {
          expect(Number.isSafeInteger(p.seq) && p.seq >= 0).toBe(true);
          expect(p.stream.length >= 1 && p.stream.length <= 256 && p.created.length >= 1 && p.created.length <= 64).toBe(true);
        }
      }),
    );
    for (const bad of ['', '{}', '{"stream":"s","created":"c","seq":-1}', '{"stream":"s","created":"c","seq":1.5}', '{"stream":"","created":"c","seq":1}', 'null', `{"stream":"${'s'.repeat(2000)}","created":"c","seq":1}`]) {
      expect(decodePosition(Buffer.from(bad)), bad).toBeUndefined();
    }
  });

  it('the newest of a stream: the highest sequence of that stream, never another stream\'s', () => {
    const other = { stream: S.stream, created: '2026-12-06T00:00:00.000Z' };
    expect(newestOf(S, at(3), at(7), at(9, other), undefined)).toEqual(at(7));
    expect(newestOf(S, at(9, other))).toBeUndefined();
    expect(newestOf(undefined, undefined, at(2))).toEqual(at(2));
  });
});

describe('the shared position', () => {
  it('is written a delay after the events settle, once for a burst, and read by another instance before it creates a consumer', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const kv = createMemoryKv();
    const mine = sharedPosition({ local: fileStore(), kv: kv.client(), logger: captureLog().logger, writeDelayMs: 1000 });
    for (let seq = 1; seq <= 5; seq++) mine.save(at(seq));
    await settle();
    expect(kv.entries().get(POSITION_KEY)).toBeUndefined();
    await vi.advanceTimersByTimeAsync(1000);
    await settle();
    expect(decodePosition(kv.entries().get(POSITION_KEY)!.value)).toEqual(at(5));
    expect(kv.writes()).toBe(1);
    // the other instance: its own file is behind (it led before), the bucket is not
    const theirs = sharedPosition({ local: fileStore(at(2)), kv: kv.client(), logger: captureLog().logger });
    expect(theirs.load(S)).toEqual(at(2));
    await theirs.refresh();
    expect(theirs.load(S)).toEqual(at(5));
    // a stream created again: neither position counts for it
    expect(theirs.load({ ...S, created: 'later' })).toBeUndefined();
  });

  it('never moves the bucket\'s position back: a former leader settling what it ran writes nothing lower', async () => {
    const kv = createMemoryKv();
    const leader = sharedPosition({ local: undefined, kv: kv.client(), logger: captureLog().logger, writeDelayMs: 1 });
    const former = sharedPosition({ local: undefined, kv: kv.client(), logger: captureLog().logger, writeDelayMs: 1 });
    leader.save(at(10));
    await leader.close();
    former.save(at(4));
    await former.close();
    expect(decodePosition(kv.entries().get(POSITION_KEY)!.value)).toEqual(at(10));
    expect(former.load(S)).toEqual(at(10));
  });

  it('keeps a position it could not write and writes it when the bucket is back; close() writes what is pending', async () => {
    const kv = createMemoryKv();
    const client = kv.client();
    const log = captureLog();
    const store = sharedPosition({ local: fileStore(), kv: client, logger: log.logger, writeDelayMs: 5 });
    client.down = true;
    store.save(at(3));
    await new Promise((resolve) => setTimeout(resolve, 30));
    expect(log.lines.filter((l) => l.msg === 'shared machine event position not written; tried again every second (logged again when it works)')).toHaveLength(1);
    client.down = false;
    await store.close();
    expect(decodePosition(kv.entries().get(POSITION_KEY)!.value)).toEqual(at(3));
  });

  it('never keeps a position past the consumer\'s ack floor: an event another instance still runs is not skipped', async () => {
    const kv = createMemoryKv();
    const file = fileStore();
    let floor: number | undefined = 9;
    const store = sharedPosition({ local: file, kv: kv.client(), logger: captureLog().logger, ackFloor: async () => floor, writeDelayMs: 1 });
    // settled here up to 20, while event 10 still runs on the instance that led before
    store.save(at(20));
    await store.close();
    expect(decodePosition(kv.entries().get(POSITION_KEY)!.value)).toEqual(at(9));
    expect(file.saved).toEqual([at(9)]);
    // the event that held the floor settles (anywhere): the position settled here follows, with no newer event here
    const same = sharedPosition({ local: file, kv: kv.client(), logger: captureLog().logger, ackFloor: async () => floor, writeDelayMs: 1, floorRetryMs: 5 });
    floor = 11;
    same.save(at(30));
    await waitFor(() => decodePosition(kv.entries().get(POSITION_KEY)!.value)?.seq === 11, 5000, 'held at the floor');
    floor = 30;
    await waitFor(() => decodePosition(kv.entries().get(POSITION_KEY)!.value)?.seq === 30, 5000, 'the rest once the floor moved on');
    expect(file.saved.at(-1)).toEqual(at(30));
    await same.close();
    // the floor cannot be read (the consumer gone): nothing is written, the position waits
    const later = sharedPosition({ local: file, kv: kv.client(), logger: captureLog().logger, ackFloor: async () => floor, writeDelayMs: 1 });
    floor = undefined;
    later.save(at(35));
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(decodePosition(kv.entries().get(POSITION_KEY)!.value)).toEqual(at(30));
    floor = 35;
    await later.close();
    expect(decodePosition(kv.entries().get(POSITION_KEY)!.value)).toEqual(at(35));
    expect(file.saved.at(-1)).toEqual(at(35));
  });

  it('writes over a key above the consumer\'s ack floor, as read after the key (never settled): the state file is saved and the key follows, one warning', async () => {
    const kv = createMemoryKv();
    const client = kv.client();
    const file = fileStore(at(4));
    const log = captureLog();
    // within the stream (its last sequence 10), so load() has nothing against it; the consumer's ack floor is 5
    await client.create(POSITION_KEY, encodePosition(at(8)));
    const store = sharedPosition({ local: file, kv: client, logger: log.logger, ackFloor: async () => 5, writeDelayMs: 1 });
    await store.refresh();
    expect(store.load(S, 10)).toEqual(at(8));
    // not taken as covering what settles here, as refresh() read it: the state file is saved
    store.save(at(5));
    await store.close();
    expect(file.saved).toEqual([at(5)]);
    expect(decodePosition(kv.entries().get(POSITION_KEY)!.value)).toEqual(at(5));
    expect(log.find(/^machine event position refused/)).toEqual([expect.objectContaining({ positionKey: POSITION_KEY, seq: 8, ackFloor: 5 })]);
  });

  it('at a setup, refuses a key or a state file above an existing consumer\'s ack floor (one warning each); a consumer created now starts after the higher of the two', async () => {
    const kv = createMemoryKv();
    const client = kv.client();
    const log = captureLog();
    await client.create(POSITION_KEY, encodePosition(at(8)));
    const store = sharedPosition({ local: fileStore(at(7)), kv: client, logger: log.logger, ackFloor: async () => 6, writeDelayMs: 1 });
    await store.refresh();
    // within the stream (its last sequence 10), both above the floor 6
    expect(store.load(S, 10, { exists: true, ackFloor: 6 })).toBeUndefined();
    expect(store.load(S, 10, { exists: true, ackFloor: 6 })).toBeUndefined();
    expect(log.find(/^machine event position refused/).map((l) => [l.positionFrom, l.seq, l.ackFloor])).toEqual([['state file', 7, 6], [`key ${POSITION_KEY}`, 8, 6]]);
    // at or below the floor, the higher of the two
    expect(store.load(S, 10, { exists: true, ackFloor: 7 })).toEqual(at(7));
    // the refused key is not taken as covering: written over as events settle
    store.save(at(6));
    await store.close();
    expect(decodePosition(kv.entries().get(POSITION_KEY)!.value)).toEqual(at(6));
    // no consumer: no floor to check against, the higher of the two as before
    await client.put(POSITION_KEY, encodePosition(at(9)));
    const next = sharedPosition({ local: fileStore(at(7)), kv: client, logger: captureLog().logger, writeDelayMs: 1 });
    await next.refresh();
    expect(next.load(S, 10, { exists: false })).toEqual(at(9));
  });

  it('takes a key above the ack floor it read before the key when the floor read again covers it: a leader wrote it from a newer floor', async () => {
    const kv = createMemoryKv();
    const client = kv.client();
    const log = captureLog();
    const floors = [5, 9];
    const store = sharedPosition({ local: fileStore(), kv: client, logger: log.logger, ackFloor: async () => floors.shift() ?? 9, writeDelayMs: 1 });
    // written by the other instance between this one's floor and key reads
    await client.create(POSITION_KEY, encodePosition(at(9)));
    store.save(at(7));
    await store.close();
    expect(decodePosition(kv.entries().get(POSITION_KEY)!.value)).toEqual(at(9));
    expect(kv.writes()).toBe(1);
    expect(log.find(/^machine event position refused/)).toEqual([]);
  });

  it('an unreadable value in the bucket is logged once and written over', async () => {
    const kv = createMemoryKv();
    const client = kv.client();
    await client.create(POSITION_KEY, Buffer.from('not json'));
    const log = captureLog();
    const store = sharedPosition({ local: undefined, kv: client, logger: log.logger, writeDelayMs: 1 });
    await store.refresh();
    expect(store.load(S)).toBeUndefined();
    store.save(at(1));
    await store.close();
    expect(decodePosition(kv.entries().get(POSITION_KEY)!.value)).toEqual(at(1));
    expect(log.lines.filter((l) => l.level === 50)).toHaveLength(1);
  });
});
