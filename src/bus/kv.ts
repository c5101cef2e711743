/**
 * A small key-value bucket on a JetStream stream, as NATS's KV layout defines it (there is no
 * `@nats-io/kv` package here): stream `KV_<bucket>` with subjects `$KV.<bucket>.>`, one message
 * kept per subject (history 1), roll-up headers allowed, message deletes denied. A key is the
 * subject `$KV.<bucket>.<key>`; its revision is the stream sequence of its last message.
 *
 * Writes are compare-and-set through `Nats-Expected-Last-Subject-Sequence`: `create` expects no
 * message (0) or a delete marker, `update` the revision read before. A refused CAS resolves to
 * `undefined`, any other failure rejects. A delete is a message with `KV-Operation: DEL` (what
 * NATS's own KV clients write), so watchers see it.
 *
 * `watch` is an ordered consumer with deliver policy "last per subject": first every key's current
 * entry, then each change as it is stored (how NATS's KV watch works), so an instance keeps a view
 * of 1,000 keys without reading them one by one.
 */
import { DeliverPolicy, DiscardPolicy, jetstream, JetStreamApiError, RetentionPolicy, StorageType, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import { headers, nanos, type NatsConnection } from '@nats-io/transport-node';
import { BmcError } from '../errors.js';

/** NATS KV's key rule: letters, digits and `-/_=.`, no leading or trailing dot, no empty token */
const KEY_RE = /^[-/_=a-zA-Z0-9]+(\.[-/_=a-zA-Z0-9]+)*$/;
const BUCKET_RE = /^[-_a-zA-Z0-9]+$/;
/** the JetStream error code of a refused `Nats-Expected-Last-Subject-Sequence` */
const WRONG_LAST_SEQUENCE = 10071;
const OPERATION = 'KV-Operation';

export function isValidKey(key: string): boolean {
  return key.length > 0 && key.length <= 256 && KEY_RE.test(key);
}

export function kvStreamName(bucket: string): string {
  return `KV_${bucket}`;
}

export interface KvEntry {
  key: string;
  value: Uint8Array;
  /** the stream sequence of the key's last message */
  revision: number;
  /** a delete marker (`KV-Operation: DEL` or `PURGE`) */
  deleted: boolean;
  /** when the server stored it, by the server's clock (ms since the epoch) */
  createdMs?: number;
}

export interface KvWatch {
  /** every current entry first, then changes; ends when stopped or the connection closes */
  [Symbol.asyncIterator](): AsyncIterator<KvEntry>;
  stop(): void;
}

export interface KvBucket {
  readonly bucket: string;
  get(key: string): Promise<KvEntry | undefined>;
  /** writes `value` if the key has no value (absent or deleted); the new revision, or undefined when it has one */
  create(key: string, value: Uint8Array): Promise<number | undefined>;
  /** writes `value` if the key's revision is still `revision`; the new revision, or undefined when it moved on */
  update(key: string, value: Uint8Array, revision: number): Promise<number | undefined>;
  /** writes `value` whatever the key holds (a key only this process writes); the new revision */
  put(key: string, value: Uint8Array): Promise<number>;
  /** a delete marker, if the key's revision is still `revision` (when given); false when it moved on */
  delete(key: string, revision?: number): Promise<boolean>;
  /** entries under `prefix.` (or all keys without a prefix) */
  watch(prefix?: string): Promise<KvWatch>;
  /**
   * the revision of the bucket's last stored message, 0 when it holds none: a watch started after
   * this has delivered every key's entry as it was by then once it delivered this revision or a later one
   */
  lastRevision(): Promise<number>;
}

export interface KvBucketOptions {
  /** num_replicas of the stream (METAL_BMC_STREAM_REPLICAS) */
  replicas?: number;
  /** how long the pub ack may take, default 5 s */
  timeoutMs?: number;
  /**
   * max_age of the bucket's stream: a key's value expires this long after its last write (none by
   * default); an existing bucket's is brought in line
   */
  maxAgeMs?: number;
  /**
   * With it, a read or write that finds the bucket's stream gone (deleted by hand, lost with a
   * server's state) makes it again, empty, tells this, and tries once more; without it, it fails
   */
  onRemade?: () => void;
}

function checkKey(key: string): void {
  if (!isValidKey(key)) throw new BmcError('INVALID_ARGUMENT', `not a valid key-value key: ${JSON.stringify(key.slice(0, 80))}`);
}

function isWrongLastSequence(err: unknown): boolean {
  return err instanceof JetStreamApiError && err.code === WRONG_LAST_SEQUENCE;
}

/** the bucket's stream is not there: a read names it missing, a write finds no stream for its subject */
function isStreamGone(err: unknown): boolean {
  const name = (err as Error | undefined)?.name;
  return name === 'StreamNotFoundError' || name === 'JetStreamNotEnabled';
}

/** the bucket's age limits: max_age (0 = none) and the duplicate window, which may not exceed it */
function ageLimits(o: KvBucketOptions): { max_age: number; duplicate_window: number } {
  const maxAgeMs = o.maxAgeMs ?? 0;
  return { max_age: nanos(maxAgeMs), duplicate_window: nanos(maxAgeMs > 0 ? Math.min(maxAgeMs, 120_000) : 120_000) };
}

/** Creates the bucket's stream when it is missing; an existing one is used as it is, but for its max age (`maxAgeMs`, when given). */
export async function ensureKvStream(jsm: JetStreamManager, bucket: string, o: KvBucketOptions = {}): Promise<string> {
  if (!BUCKET_RE.test(bucket)) throw new BmcError('INVALID_ARGUMENT', `not a valid bucket name: ${JSON.stringify(bucket)}`);
  const name = kvStreamName(bucket);
  const ages = ageLimits(o);
  try {
    const info = await jsm.streams.info(name);
    if (o.maxAgeMs !== undefined && (info.config.max_age !== ages.max_age || info.config.duplicate_window !== ages.duplicate_window)) await jsm.streams.update(name, ages);
    return name;
  } catch (err) {
    if ((err as Error).name !== 'StreamNotFoundError') throw err;
  }
  await jsm.streams.add({
    name,
    subjects: [`$KV.${bucket}.>`],
    retention: RetentionPolicy.Limits,
    storage: StorageType.File,
    discard: DiscardPolicy.New,
    max_msgs_per_subject: 1,
    allow_rollup_hdrs: true,
    deny_delete: true,
    allow_direct: true,
    ...ages,
    num_replicas: o.replicas ?? 1,
  });
  return name;
}

/** The bucket (its stream created when missing) on a connection with JetStream. */
export async function openKvBucket(nc: NatsConnection, jsm: JetStreamManager, bucket: string, o: KvBucketOptions = {}): Promise<KvBucket> {
  const stream = await ensureKvStream(jsm, bucket, o);
  const js: JetStreamClient = jetstream(nc, { timeout: o.timeoutMs ?? 5000 });
  const prefix = `$KV.${bucket}.`;
  const entryOf = (subject: string, seq: number, data: Uint8Array, op: string | undefined, createdMs: number): KvEntry => ({
    key: subject.slice(prefix.length),
    value: data,
    revision: seq,
    deleted: op === 'DEL' || op === 'PURGE',
    createdMs,
  });

  /** runs `op`, and once more after making the stream again when it is gone (the whole state is lost then: every key is absent) */
  async function remaking<T>(op: () => Promise<T>): Promise<T> {
    try {
      return await op();
    } catch (err) {
      if (!o.onRemade || !isStreamGone(err)) throw err;
      // a write without responders reads as JetStream missing: only a stream really gone is made again
      try {
        await jsm.streams.info(stream);
        throw err;
      } catch (infoErr) {
        if (infoErr === err || (infoErr as Error).name !== 'StreamNotFoundError') throw err;
      }
      await ensureKvStream(jsm, bucket, o);
      o.onRemade();
      return await op();
    }
  }

  async function get(key: string): Promise<KvEntry | undefined> {
    checkKey(key);
    const m = await remaking(() => jsm.streams.getMessage(stream, { last_by_subj: prefix + key }));
    if (!m) return undefined;
    return entryOf(m.subject, m.seq, m.data, m.header?.get(OPERATION) || undefined, m.time.getTime());
  }

  async function put(key: string, value: Uint8Array, expected: number, op?: 'DEL'): Promise<number | undefined> {
    checkKey(key);
    const h = op ? headers() : undefined;
    if (h && op) h.set(OPERATION, op);
    try {
      const ack = await remaking(() => js.publish(prefix + key, value, { expect: { lastSubjectSequence: expected, streamName: stream }, ...(h ? { headers: h } : {}) }));
      return ack.seq;
    } catch (err) {
      if (isWrongLastSequence(err)) return undefined;
      throw err;
    }
  }

  return {
    bucket,
    get,
    async create(key, value) {
      const first = await put(key, value, 0);
      if (first !== undefined) return first;
      // a deleted key keeps its marker: creating it again means updating the marker
      const current = await get(key);
      return current?.deleted ? put(key, value, current.revision) : undefined;
    },
    update: (key, value, revision) => put(key, value, revision),
    async put(key, value) {
      checkKey(key);
      return (await remaking(() => js.publish(prefix + key, value, { expect: { streamName: stream } }))).seq;
    },
    async delete(key, revision) {
      const expected = revision ?? (await get(key))?.revision ?? 0;
      return (await put(key, new Uint8Array(0), expected, 'DEL')) !== undefined;
    },
    async lastRevision() {
      const { state } = await remaking(() => jsm.streams.info(stream));
      return state.messages === 0 ? 0 : state.last_seq;
    },
    async watch(keyPrefix) {
      if (keyPrefix !== undefined) checkKey(keyPrefix);
      const consumer = await js.consumers.get(stream, {
        filter_subjects: keyPrefix === undefined ? `${prefix}>` : `${prefix}${keyPrefix}.>`,
        deliver_policy: DeliverPolicy.LastPerSubject,
      });
      const messages = await consumer.consume();
      return {
        async *[Symbol.asyncIterator]() {
          for await (const m of messages) yield entryOf(m.subject, m.seq, m.data, m.headers?.get(OPERATION) || undefined, Number(BigInt(m.timestampNanos) / 1_000_000n));
        },
        stop: () => void messages.stop(),
      };
    },
  };
}

/** A watch kept running over a bucket (keepWatching). */
export interface KeptWatch {
  /** starts the first watch (rejects when it cannot start) */
  start(): Promise<void>;
  /** stops the watch there is and starts a new one (a bucket made again), retried every second until one starts */
  restart(): void;
  /** stops the watch there is (call once the owner is closed) */
  stop(): void;
}

/**
 * A watch over the bucket that is started again a second after it ends (a bucket lost and made
 * again, a server restarted), every second until one starts, and that stays one: a restart racing
 * another stops the older. What a stopped or replaced watch still hands over (it may have entries
 * queued: the old bucket's) is dropped. `closed` is the owner's: once it says so, nothing starts.
 */
export function keepWatching(o: { kv: KvBucket; prefix?: string; onEntry: (e: KvEntry) => void; onEnded: (err: unknown) => void; closed: () => boolean; retryMs?: number }): KeptWatch {
  let current: KvWatch | undefined;
  async function start(): Promise<void> {
    if (o.closed()) return;
    const w = await o.kv.watch(o.prefix);
    if (o.closed()) return w.stop();
    const previous = current;
    current = w;
    if (previous && previous !== w) previous.stop();
    void (async () => {
      for await (const e of w) if (current === w) o.onEntry(e);
    })()
      .catch((err: unknown) => {
        if (!o.closed()) o.onEnded(err);
      })
      .finally(() => {
        if (o.closed() || current !== w) return;
        soon();
      });
  }
  function soon(): void {
    if (o.closed()) return;
    const retry = setTimeout(() => void start().catch(() => o.closed() || retry.refresh()), o.retryMs ?? 1000);
    retry.unref();
  }
  return {
    start,
    restart() {
      const old = current;
      current = undefined;
      old?.stop();
      void start().catch(() => soon());
    },
    stop: () => current?.stop(),
  };
}
