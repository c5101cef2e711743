/**
 * The partition's position in the machine-event stream, shared by its instances through the
 * leader's key-value bucket (key `machine-events-position`), beside each instance's own state file.
 *
 * With one leader at a time, each instance's file knows only the events it settled itself: after
 * a change of leader, the file of an instance that led before is behind. A durable consumer it
 * has to create (deleted by hand, lost with a server's state) would then start at its own old
 * position and run again every create and delete the other instance settled since, resetting
 * those machines once more. The shared position is the highest sequence settled by any leader of
 * the same stream (name and creation time), so the consumer starts after it. At a setup (`load`),
 * a key (or state file) beyond the stream's last sequence, or above an existing consumer's ack
 * floor, cannot have been settled and is refused; for a consumer created now there is no floor to
 * check the key against (see `load`).
 *
 * Writes follow the events as they settle, once per `writeDelayMs` at most (read, then
 * compare-and-set; a position the bucket already holds or passed is not written, unless it is
 * above the consumer's ack floor: see `settledOrNot`); `refresh()` reads it before a consumer is
 * created; `close()` writes what is pending.
 */
import type { Logger } from '../log.js';
import type { StreamPosition } from './jetstream.js';
import type { KvBucket } from './kv.js';

export const POSITION_KEY = 'machine-events-position';

/** the most a stored position may take: a stream name (≤ 256) and a timestamp, with room */
const MAX_BYTES = 1024;

/** The stream a position belongs to: its name and creation time (a stream deleted and created again under the same name has another). */
export interface StreamIdentity {
  stream: string;
  created: string;
}

/**
 * The partition's durable consumer as a setup found it, read after the shared key: its ack floor
 * (ConsumerInfo.ack_floor.stream_seq) when it exists, or none (a consumer is created now).
 */
export type ConsumerAtSetup = { exists: true; ackFloor: number } | { exists: false };

/** Where an instance keeps its position (the state file), as the subscription uses it. */
export interface PositionStore {
  /**
   * the position to start after: with `identity`, the highest known for that stream; with
   * `lastSeq` too (the stream's last sequence as it reports it), none beyond it (`impossibleIn`);
   * with `consumer` (the durable consumer as setup found it), none above its ack floor. A store
   * of one instance's own (the state file alone) may ignore `consumer`.
   */
  load(identity?: StreamIdentity, lastSeq?: number, consumer?: ConsumerAtSetup): StreamPosition | undefined;
  save(position: StreamPosition): void;
}

/**
 * Why position `p` cannot be where stream `identity` got to, or undefined when it can be: a
 * sequence beyond the stream's last one (`lastSeq`, as the stream reports it) was never settled.
 * Taken, it would make a consumer created now start past events nobody ran, and it would stop the
 * position from being saved again until the stream reached it. With `ackFloor` (an existing
 * consumer's, read after the position), a sequence above it cannot be a settled one either:
 * positions are written at or below the floor of their time (`bounded`) and a consumer's floor
 * only grows. A position of another stream (or of this one before it was created again) is not
 * impossible here: it is simply not this stream's.
 */
export function impossibleIn(identity: StreamIdentity, lastSeq: number, p: StreamPosition | undefined, ackFloor?: number): string | undefined {
  if (p === undefined || !sameStream(p, identity)) return undefined;
  if (p.seq > lastSeq) return `sequence ${p.seq} is beyond the stream's last, ${lastSeq}`;
  if (ackFloor !== undefined && p.seq > ackFloor) return `sequence ${p.seq} is above the consumer's ack floor, ${ackFloor}, so not every event up to it was settled`;
  return undefined;
}

/**
 * `p` unless it is impossible for the stream (`impossibleIn`): then one warning naming `source`
 * (once per value: a consumer set up again every second says it once) and undefined, as if no
 * position were stored there.
 */
export function possibleOrWarn(logger: Logger, source: string, identity: StreamIdentity | undefined, lastSeq: number | undefined, p: StreamPosition | undefined, warned: Set<string>, ackFloor?: number): StreamPosition | undefined {
  if (identity === undefined || lastSeq === undefined) return p;
  const why = impossibleIn(identity, lastSeq, p, ackFloor);
  if (why === undefined) return p;
  const said = `${source} ${p!.stream}@${p!.created}#${p!.seq}/${ackFloor ?? ''}`;
  if (!warned.has(said)) {
    if (warned.size >= 16) warned.clear();
    warned.add(said);
    logger.warn({ stream: identity.stream, positionFrom: source, seq: p!.seq, lastSeq, ...(ackFloor !== undefined ? { ackFloor } : {}) }, `machine event position refused: ${why}; taken as no position stored there`);
  }
  return undefined;
}

export interface SharedPosition extends PositionStore {
  /** reads the bucket's position (before a consumer is created) */
  refresh(): Promise<void>;
  /** writes what is pending */
  close(): Promise<void>;
}

export function encodePosition(p: StreamPosition): Uint8Array {
  return Buffer.from(JSON.stringify({ stream: p.stream, created: p.created, seq: p.seq }), 'utf8');
}

/** The position a value holds, or undefined for anything else (bounded, never throws). */
export function decodePosition(value: Uint8Array): StreamPosition | undefined {
  if (value.length === 0 || value.length > MAX_BYTES) return undefined;
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('utf8'));
  } catch {
    return undefined;
  }
  const p = v as Partial<StreamPosition> | null;
  if (typeof p !== 'object' || p === null || typeof p.stream !== 'string' || typeof p.created !== 'string' || !Number.isSafeInteger(p.seq) || p.seq! < 0) return undefined;
  if (p.stream.length === 0 || p.stream.length > 256 || p.created.length === 0 || p.created.length > 64) return undefined;
  return { stream: p.stream, created: p.created, seq: p.seq! };
}

const sameStream = (a: StreamIdentity | undefined, b: StreamIdentity | undefined) => a !== undefined && b !== undefined && a.stream === b.stream && a.created === b.created;

/** `a` is at or past `b` in the same stream: writing `b` over it would move the position back */
const covers = (a: StreamPosition | undefined, b: StreamPosition) => a !== undefined && sameStream(a, b) && a.seq >= b.seq;

/** Of the positions, the highest one of stream `identity`; without one, the first known. */
export function newestOf(identity: StreamIdentity | undefined, ...positions: Array<StreamPosition | undefined>): StreamPosition | undefined {
  if (identity === undefined) return positions.find((p) => p !== undefined);
  let best: StreamPosition | undefined;
  for (const p of positions) if (p && sameStream(p, identity) && (!best || p.seq > best.seq)) best = p;
  return best;
}

export interface SharedPositionOptions {
  /** this instance's state file: written with the same position as the key, when the key is */
  local: PositionStore | undefined;
  kv: KvBucket;
  logger: Logger;
  /**
   * the consumer's ack floor (every event up to it acknowledged or terminated), undefined when it
   * cannot be read: a position settled here may be past an event another instance still runs,
   * or one nak'ed for another instance; what is kept is never past the ack floor
   */
  ackFloor?: () => Promise<number | undefined>;
  writeDelayMs?: number;
  /** while a position waits for the ack floor to reach it, how often it is tried again (default 5 s) */
  floorRetryMs?: number;
}

export function sharedPosition(o: SharedPositionOptions): SharedPosition {
  const delayMs = o.writeDelayMs ?? 1000;
  const floorRetryMs = o.floorRetryMs ?? 5000;
  /** the last write was held at the ack floor: the position settled here waits for it */
  let heldAtFloor = false;
  /** the bucket's position as last read or written here */
  let shared: StreamPosition | undefined;
  /**
   * `shared` stands for what settles here (`save()` skips a position it covers, and with it the
   * state file's save): written here, or read by a write and found settled (`settledOrNot`); not
   * as `refresh()` reads it, checked by `load()` against the stream's last sequence only
   */
  let sharedSettled = false;
  let pending: StreamPosition | undefined;
  let timer: NodeJS.Timeout | undefined;
  let writing: Promise<void> | undefined;
  let failing = false;
  let closed = false;
  let badValueLogged = false;
  /** impossible positions warned about (possibleOrWarn) */
  const refused = new Set<string>();
  /**
   * the bucket's position as `load` refused it (impossible for the stream, or above the
   * consumer's ack floor): written over, never taken as covering (`settledOrNot`)
   */
  let refusedKey: StreamPosition | undefined;

  /** the next write `ms` from now, unless one is set already */
  function schedule(ms: number): void {
    if (timer !== undefined) return;
    timer = setTimeout(() => void flush(), ms);
    timer.unref();
  }

  function read(value: Uint8Array): StreamPosition | undefined {
    const p = decodePosition(value);
    if (p === undefined && !badValueLogged) {
      badValueLogged = true;
      o.logger.error({ positionKey: POSITION_KEY, bytes: value.length }, 'the shared machine event position is not readable; it is written again as events settle');
    }
    return p;
  }

  /**
   * `p` held at the consumer's ack floor, with the floor read (undefined without `ackFloor`);
   * undefined when the floor cannot be read (kept for later)
   */
  async function bounded(p: StreamPosition): Promise<{ position: StreamPosition; floor: number | undefined } | undefined> {
    if (!o.ackFloor) return { position: p, floor: undefined };
    const floor = await o.ackFloor();
    return floor === undefined ? undefined : { position: { ...p, seq: Math.min(p.seq, floor) }, floor };
  }

  const floorUnreadable = () => new Error('the consumer\'s ack floor cannot be read');

  /**
   * The bucket's position `stored` as a write here may take it (covering what it would write), or
   * undefined when it cannot have been settled, to be written over; `floor` is the consumer's ack
   * floor as read before the key. Every position is written at or below the ack floor of its time
   * (`bounded`) and the floor only grows, so one above the floor as read after the key was never
   * settled (a crafted key, another version's bug): taken, it would cover every position settled
   * here, and neither the key nor the state file would move again until the next setup. Only a
   * consumer created again further back puts a settled position above the floor (by hand, to run
   * events again; or by an instance that read the key just before a former leader's last write
   * landed): the floor's side is taken there too, since the consumer delivers those events again
   * whatever the key says, and a key written back to the floor only says so until they settle.
   * The value `load()` refused (beyond the stream's last sequence, or above the ack floor at
   * setup) is not taken either, with or without an ack floor, and not warned about twice.
   */
  async function settledOrNot(stored: StreamPosition | undefined, p: StreamPosition, floor: number | undefined): Promise<StreamPosition | undefined> {
    if (stored === undefined || !sameStream(stored, p)) return stored;
    if (floor !== undefined && stored.seq <= floor) return stored;
    if (refusedKey && sameStream(stored, refusedKey) && stored.seq === refusedKey.seq) return undefined;
    if (floor === undefined || !o.ackFloor) return stored;
    // read again after the key: a leader may have written it from a floor newer than ours
    const now = await o.ackFloor();
    if (now === undefined) throw floorUnreadable();
    if (stored.seq <= now) return stored;
    const said = `floor ${stored.stream}@${stored.created}#${stored.seq}`;
    if (!refused.has(said)) {
      if (refused.size >= 16) refused.clear();
      refused.add(said);
      o.logger.warn({ stream: stored.stream, positionKey: POSITION_KEY, seq: stored.seq, ackFloor: now }, `machine event position refused: the key's sequence ${stored.seq} is above the consumer's ack floor, ${now}, so was never settled; written over with this instance's position`);
    }
    return undefined;
  }

  async function writeOnce(p: StreamPosition, floor: number | undefined): Promise<void> {
    // a few rounds: another instance (a leader that lost the lead, settling what it ran) may write in between
    for (let round = 0; round < 3; round++) {
      const current = await o.kv.get(POSITION_KEY);
      const stored = current && !current.deleted ? read(current.value) : undefined;
      const there = await settledOrNot(stored, p, floor);
      if (covers(there, p)) {
        shared = there;
        sharedSettled = true;
        return;
      }
      const value = encodePosition(p);
      const revision = current === undefined ? await o.kv.create(POSITION_KEY, value) : await o.kv.update(POSITION_KEY, value, current.revision);
      if (revision !== undefined) {
        shared = p;
        sharedSettled = true;
        return;
      }
    }
  }

  async function write(): Promise<void> {
    timer = undefined;
    const p = pending;
    pending = undefined;
    if (p === undefined) return;
    try {
      const b = await bounded(p);
      if (b === undefined) throw floorUnreadable();
      const q = b.position;
      o.local?.save(q);
      await writeOnce(q, b.floor);
      // held below what settled here: the rest is written once the floor moved on (the event
      // that held it settled, wherever), not only when a newer event settles here
      heldAtFloor = q.seq < p.seq;
      // (a position saved during the write, the narrowing aside, may be there already)
      const saved = pending as StreamPosition | undefined;
      if (heldAtFloor && (saved === undefined || (sameStream(saved, p) && saved.seq < p.seq))) pending = p;
      if (failing) o.logger.info({ positionKey: POSITION_KEY, seq: p.seq }, 'shared machine event position written again');
      failing = false;
    } catch (err) {
      // kept for the next write, unless a newer position came meanwhile
      if (pending === undefined) pending = p;
      if (!failing) o.logger.warn({ err, positionKey: POSITION_KEY }, 'shared machine event position not written; tried again every second (logged again when it works)');
      failing = true;
    }
  }

  /** one write at a time; a position saved during it is written a delay after it */
  const flush = (): Promise<void> =>
    (writing ??= write().finally(() => {
      writing = undefined;
      if (pending !== undefined && !closed) schedule(heldAtFloor ? floorRetryMs : delayMs);
    }));

  return {
    // each source checked on its own: an impossible shared position must not displace this instance's own
    load(identity, lastSeq, consumer) {
      const floor = consumer?.exists === true ? consumer.ackFloor : undefined;
      const fromFile = possibleOrWarn(o.logger, 'state file', identity, lastSeq, o.local?.load(identity), refused, floor);
      const fromKey = possibleOrWarn(o.logger, `key ${POSITION_KEY}`, identity, lastSeq, shared, refused, floor);
      // A consumer created now (no floor) starts after the higher of the file's and the key's:
      // leaders taking turns do not run each other's settled events again. The key is then
      // checked against the stream's last sequence only; one written by hand within the stream
      // can skip events, as whoever may write the leader's bucket could take the lead anyway.
      if (fromKey === undefined && shared !== undefined && sameStream(shared, identity)) {
        // not taken, and not kept as what the bucket holds either: what settles here is written
        // over it (else no position would be saved, here or there, until the stream reached it)
        refusedKey = shared;
        shared = undefined;
      }
      return newestOf(identity, fromFile, fromKey);
    },
    save(position) {
      // after close (a handler that settled past the stop's deadline): the state file alone, as without a leader
      if (closed) return void o.local?.save(position);
      if (!o.ackFloor) o.local?.save(position);
      if (sharedSettled && covers(shared, position)) return;
      pending = position;
      schedule(delayMs);
    },
    async refresh() {
      const current = await o.kv.get(POSITION_KEY);
      const p = current && !current.deleted ? read(current.value) : undefined;
      if (p === undefined) return;
      shared = p;
      sharedSettled = false;
    },
    async close() {
      closed = true;
      clearTimeout(timer);
      timer = undefined;
      await writing;
      await flush();
    },
  };
}
