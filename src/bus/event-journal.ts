/**
 * The partition's event journal: one key per non-idempotent step of a machine event (a RESET, a
 * CYCLE, a firmware update) in the key-value bucket `<durable>-events` (kv.ts), so that a step is
 * sent at most once whatever the event's deliveries. The server's delivery count cannot tell an
 * event handed back unrun (a shutdown, a lost lead) from one whose ack was lost after it ran (a
 * crash, NATS cut off): the journal can, step by step.
 *
 * - **Key:** `ev.<stream tag>.<stream sequence>.<step>`: the tag is a hash of the stream's name and
 *   creation time, so a stream deleted and created again (its sequences start over) never meets
 *   the old stream's keys.
 * - **Claim** before the step is sent: `create`; a key that exists is `seen` with what it holds,
 *   unless it says `released` (an earlier delivery claimed it and provably did not send it), which
 *   is taken by compare-and-set. A create whose answer was lost is recognised by the claim's token.
 * - **Release** after a failure that proves the step was not sent, **done** after it was answered:
 *   compare-and-set on the claim's revision, best effort (a failure is logged; the key then stays
 *   `claimed`, and a later delivery does not send the step but says it may have happened).
 * - **Skipped**: a step left out on purpose (a late delete's RESET with a newer event of the
 *   machine pending) is created `skipped`, so a later delivery, which may find nothing newer
 *   pending, leaves it out too. Best effort.
 * - **Settled:** `ev.<stream tag>.<stream sequence>.settled` is written (put) before an event's
 *   ack or term, so a delivery after that ack was lost (a NATS node gone, a process killed first)
 *   is acknowledged again, not run again behind the machine's later events: its boot device would
 *   override theirs. Best effort: unwritten, the step keys still keep each RESET to one sending.
 * - Keys are never deleted: the bucket's max age (the stream's retention, plus ack_wait and a
 *   margin) lets them expire after the event itself is gone from the stream.
 * - **Failures:** a claim that cannot be written or read rejects (UNAVAILABLE): the step is not
 *   sent blind; the command path hands the event back.
 */
import { createHash, randomBytes } from 'node:crypto';
import { BmcError } from '../errors.js';
import type { Logger } from '../log.js';
import { sanitizeName } from './jetstream.js';
import type { KvBucket } from './kv.js';
import type { StreamIdentity } from './shared-position.js';

export type JournalState = 'claimed' | 'released' | 'done' | 'skipped';

/** A step's key value. */
export interface JournalRecord {
  state: JournalState;
  instance: string;
  /** ISO 8601, by the writer's clock */
  at: string;
  /** the claim's own token: a claim whose answer was lost is recognised as ours */
  token: string;
}

export interface JournalHold {
  release(): Promise<void>;
  done(): Promise<void>;
}

export type JournalClaim = { go: JournalHold } | { seen: Omit<JournalRecord, 'token'> };

export interface EventJournal {
  /** `provablyUnsent`: the caller's word that a `claimed` record sent nothing (commands/step-journal.ts) */
  claim(eventId: string, step: number, provablyUnsent?: (seen: { state: JournalState; instance: string; at: string }) => boolean): Promise<JournalClaim>;
  /** counts a run of the event starting; resolves to its runs that did not end handed back, this one included */
  started(eventId: string): Promise<number>;
  /** the event's run ended handed back (it comes again by choice): not a run that never settled; whether it was counted (never rejects) */
  handedBack(eventId: string): Promise<boolean>;
  /** the step was left out on purpose; a later delivery leaves it out too (never rejects; a key already there is kept) */
  skipped(eventId: string, step: number): Promise<void>;
  /** the event settled (ack or term): whether that was written (never rejects) */
  settled(eventId: string): Promise<boolean>;
  /** who settled the event when, if anyone did; rejects (UNAVAILABLE) when the bucket cannot be read */
  settledBefore(eventId: string): Promise<SettledRecord | undefined>;
}

/** Who settled an event, and when (by the writer's clock). */
export interface SettledRecord {
  instance: string;
  at: string;
}

/** The key saying an event settled. */
export function settledKey(eventId: string): string {
  return `ev.${eventId}.settled`;
}

/** The key counting an event's runs. */
export function runsKey(eventId: string): string {
  return `ev.${eventId}.runs`;
}

/** What an event's runs key holds: runs started, and those that ended handed back. */
interface RunCount {
  starts: number;
  handedBack: number;
}

/** far beyond the 15 deliveries an event gets: a count above it was not written by this journal */
const MAX_RUN_COUNT = 1_000_000;

/** how much of a value that is not what it should be a warning quotes */
const QUOTED_CHARS = 64;

/** A key's value as a warning quotes it: its first QUOTED_CHARS characters, and `…` when there were more. */
export function quoteValue(bytes: Uint8Array): string {
  const text = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8');
  return text.length > QUOTED_CHARS ? `${text.slice(0, QUOTED_CHARS)}…` : text;
}

/**
 * An event's run count from its key's value, or why the value is not one (never throws): both
 * counts whole numbers from 0 to MAX_RUN_COUNT, and no more runs handed back than started. The
 * check matters because the count decides whether an event runs: a negative `starts` or a
 * `handedBack` above it would lift the limit of runs that never settled, a `handedBack` turned
 * into nothing would refuse an event early.
 */
export function parseRuns(bytes: Uint8Array): RunCount | { invalid: string } {
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'));
  } catch {
    return { invalid: 'not JSON' };
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return { invalid: 'not an object' };
  const { starts, handedBack } = v as Record<string, unknown>;
  const count = (x: unknown) => Number.isSafeInteger(x) && (x as number) >= 0 && (x as number) <= MAX_RUN_COUNT;
  if (!count(starts)) return { invalid: `starts is not a whole number from 0 to ${MAX_RUN_COUNT}` };
  if (!count(handedBack)) return { invalid: `handedBack is not a whole number from 0 to ${MAX_RUN_COUNT}` };
  if ((handedBack as number) > (starts as number)) return { invalid: 'handedBack is greater than starts' };
  return { starts: starts as number, handedBack: handedBack as number };
}

/** claims this process knows sent nothing although their key may say claimed: at most this many kept */
const MAX_UNSENT_HERE = 4096;

/** how long a key outlives the retention: an event delivered just before it left the stream may run for ack_wait */
const MARGIN_MS = 600_000;
const STATES: readonly JournalState[] = ['claimed', 'released', 'done', 'skipped'];

/** the key-value bucket of the partition's event journal: `<durable>-events` */
export function eventJournalBucketName(durableName: string): string {
  return `${sanitizeName(durableName)}-events`;
}

/** the bucket's max age: the stream's retention, plus ack_wait and a margin */
export function eventJournalMaxAgeMs(retentionMs: number, ackWaitMs: number): number {
  return retentionMs + ackWaitMs + MARGIN_MS;
}

/** An event's id in the journal: a tag of its stream (name and creation time) and its stream sequence. */
export function journalEventId(stream: StreamIdentity, seq: number): string {
  const tag = createHash('sha256').update(`${stream.stream}@${stream.created}`, 'utf8').digest('base64url').slice(0, 12);
  return `${tag}.${seq}`;
}

export function stepKey(eventId: string, step: number): string {
  return `ev.${eventId}.${step}`;
}

/** what a record's `instance` may be: an instance id or a host name, no control characters (it is quoted in results and logs) */
const RECORD_INSTANCE = /^[^\p{Cc}]{1,128}$/u;
/** a record's `at`: an ISO 8601 time as `toISOString` writes it */
const RECORD_AT = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,3})?Z$/;
const RECORD_TOKEN = /^[A-Za-z0-9_-]{1,64}$/;

/** A key's value as a JSON object (1 to 1024 bytes), or why it is not one (never throws). */
function jsonObjectOf(bytes: Uint8Array): { value: Record<string, unknown> } | { invalid: string } {
  if (bytes.length === 0 || bytes.length > 1024) return { invalid: `${bytes.length} bytes (a record has 1 to 1024)` };
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'));
  } catch {
    return { invalid: 'not JSON' };
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return { invalid: 'not an object' };
  return { value: v as Record<string, unknown> };
}

/** Why a record's `instance` and `at` are not what every record holds, or undefined when they are. */
function stampProblem(r: Record<string, unknown>): string | undefined {
  if (typeof r.instance !== 'string' || !RECORD_INSTANCE.test(r.instance)) return 'instance is not 1 to 128 characters without control characters';
  if (typeof r.at !== 'string' || !RECORD_AT.test(r.at) || Number.isNaN(Date.parse(r.at))) return 'at is not an ISO 8601 time';
  return undefined;
}

/** The record in a key's value, or why the value is not one (never throws). */
export function recordOf(bytes: Uint8Array): JournalRecord | { invalid: string } {
  const o = jsonObjectOf(bytes);
  if ('invalid' in o) return o;
  const r = o.value;
  if (!STATES.includes(r.state as JournalState)) return { invalid: `state is not one of ${STATES.join(', ')}` };
  const problem = stampProblem(r);
  if (problem !== undefined) return { invalid: problem };
  if (typeof r.token !== 'string' || !RECORD_TOKEN.test(r.token)) return { invalid: 'token is not 1 to 64 base64url characters' };
  return { state: r.state as JournalState, instance: r.instance as string, at: r.at as string, token: r.token };
}

/** The record in an event's settled key, or why the value is not one (never throws). */
export function settledRecordOf(bytes: Uint8Array): SettledRecord | { invalid: string } {
  const o = jsonObjectOf(bytes);
  if ('invalid' in o) return o;
  const problem = stampProblem(o.value);
  return problem !== undefined ? { invalid: problem } : { instance: o.value.instance as string, at: o.value.at as string };
}

/** The record in a key's value, or undefined for anything else (never throws). */
export function parseRecord(bytes: Uint8Array): JournalRecord | undefined {
  const r = recordOf(bytes);
  return 'invalid' in r ? undefined : r;
}

const encode = (r: JournalRecord) => Buffer.from(JSON.stringify(r), 'utf8');

export function createEventJournal(o: { kv: KvBucket; instanceId: string; logger: Logger; now?: () => number }): EventJournal {
  const now = o.now ?? Date.now;
  const record = (state: JournalState, token: string): JournalRecord => ({ state, instance: o.instanceId, at: new Date(now()).toISOString(), token });
  const unavailable = (key: string, err: unknown) =>
    new BmcError('UNAVAILABLE', `cannot use the event journal (key-value bucket ${o.kv.bucket}, key ${key}): ${(err as Error).message}`, { cause: err });
  /**
   * Keys whose claim by this process sent nothing but may be stored as `claimed`: a create or
   * update whose answer was lost and could not be read back, a release that could not be written.
   * A later claim in this process (the runner's next attempt, a redelivery here) that finds one of
   * these tokens takes the step as if released, instead of taking its own claim for an earlier
   * delivery's and ending "outcome unknown" with nothing sent.
   */
  const unsentHere = new Map<string, Set<string>>();
  const rememberUnsent = (key: string, token: string): void => {
    const tokens = unsentHere.get(key) ?? new Set<string>();
    tokens.add(token);
    unsentHere.delete(key);
    unsentHere.set(key, tokens);
    if (unsentHere.size > MAX_UNSENT_HERE) unsentHere.delete(unsentHere.keys().next().value!);
  };

  function hold(key: string, revision: number, token: string): JournalHold {
    let at = revision;
    const write = async (state: 'released' | 'done') => {
      try {
        const next = await o.kv.update(key, encode(record(state, token)), at);
        if (next !== undefined) {
          at = next;
          return;
        }
        o.logger.error({ bucket: o.kv.bucket, journalKey: key, state }, 'event journal: the step\'s key changed under its claim; not marked');
      } catch (err) {
        // released but not written: a later delivery elsewhere finds it claimed and does not send it
        // (says it may have happened); here, it is known as not sent
        if (state === 'released') rememberUnsent(key, token);
        const level = state === 'released' ? 'error' : 'warn';
        o.logger[level]({ err, bucket: o.kv.bucket, journalKey: key, state }, `event journal: cannot mark the step ${state}; a later delivery of the event will take it as possibly sent`);
      }
    };
    return { release: () => write('released'), done: () => write('done') };
  }

  /** the step is ours now: what this process knew of earlier unsent claims of it is done with */
  function taken(key: string, revision: number, token: string): JournalHold {
    unsentHere.delete(key);
    return hold(key, revision, token);
  }

  /** after a write whose answer did not come: the key holds our claim (the write happened) or not */
  async function ours(key: string, token: string): Promise<number | undefined> {
    const e = await o.kv.get(key).catch(() => undefined);
    return e && !e.deleted && parseRecord(e.value)?.token === token ? e.revision : undefined;
  }

  /**
   * The run count a key holds. A value that is not one (a bug of another version, a write by
   * hand) is taken as no count: the count starts again from this run and the value is overwritten.
   * That is the side of running the event. Refusing it (the other side) would lose the command
   * to whatever wrote the key, and running it sends no non-idempotent step twice: each RESET,
   * CYCLE or firmware step is still claimed on its own key first, and one an earlier delivery
   * claimed is not sent again. What the count guards against, an event that ends the process at
   * every run, is bounded again from here on. The same side as a count that cannot be written
   * (the runner lets that run go on).
   */
  function runCountOf(key: string, value: Uint8Array): RunCount {
    const c = parseRuns(value);
    if (!('invalid' in c)) return c;
    o.logger.warn({ bucket: o.kv.bucket, journalKey: key, problem: c.invalid, value: quoteValue(value) }, 'event journal: the key holds no valid run count; counting the event\'s runs again from this one');
    return { starts: 0, handedBack: 0 };
  }

  /** `change` applied to the event's run count by compare-and-set, a few rounds; the count written */
  async function countRuns(eventId: string, change: (c: RunCount) => RunCount): Promise<RunCount> {
    const key = runsKey(eventId);
    for (let round = 0; round < 3; round++) {
      const e = await o.kv.get(key);
      const next = change(e && !e.deleted ? runCountOf(key, e.value) : { starts: 0, handedBack: 0 });
      const value = Buffer.from(JSON.stringify(next), 'utf8');
      const written = e === undefined ? await o.kv.create(key, value) : await o.kv.update(key, value, e.revision);
      if (written !== undefined) return next;
    }
    throw new Error('the key kept changing');
  }

  return {
    async skipped(eventId, step) {
      const key = stepKey(eventId, step);
      try {
        // a key already there (an earlier delivery claimed the step) keeps what it says
        await o.kv.create(key, encode(record('skipped', randomBytes(9).toString('base64url'))));
      } catch (err) {
        o.logger.warn({ err, bucket: o.kv.bucket, journalKey: key }, 'event journal: a step left out not written as skipped; a later delivery with nothing newer pending would send it');
      }
    },
    async settled(eventId) {
      const key = settledKey(eventId);
      const value: SettledRecord = { instance: o.instanceId, at: new Date(now()).toISOString() };
      try {
        await o.kv.put(key, Buffer.from(JSON.stringify(value), 'utf8'));
        return true;
      } catch (err) {
        o.logger.warn({ err, bucket: o.kv.bucket, journalKey: key }, 'event journal: an event settled not written as such; a delivery after a lost ack would run it again');
        return false;
      }
    },
    async settledBefore(eventId) {
      const key = settledKey(eventId);
      let e;
      try {
        e = await o.kv.get(key);
      } catch (err) {
        throw unavailable(key, err);
      }
      if (!e || e.deleted) return undefined;
      const seen = settledRecordOf(e.value);
      if (!('invalid' in seen)) return seen;
      // the key's name says the event settled; only its details cannot be read
      o.logger.warn({ bucket: o.kv.bucket, journalKey: key, problem: seen.invalid, value: quoteValue(e.value) }, 'event journal: the event\'s settled key holds no valid record; taken as settled');
      return { instance: 'unknown (the key holds no settled record)', at: 'unknown' };
    },
    async started(eventId) {
      try {
        const c = await countRuns(eventId, (r) => ({ ...r, starts: r.starts + 1 }));
        return c.starts - c.handedBack;
      } catch (err) {
        throw unavailable(runsKey(eventId), err);
      }
    },
    async handedBack(eventId) {
      try {
        // never more than started: a run whose start count was lost (a value that was no count) is not counted twice
        await countRuns(eventId, (r) => ({ ...r, handedBack: Math.min(r.starts, r.handedBack + 1) }));
        return true;
      } catch (err) {
        o.logger.warn({ err, bucket: o.kv.bucket, journalKey: runsKey(eventId) }, 'event journal: a hand-back not counted; a later delivery counts this run as one that never settled');
        return false;
      }
    },
    async claim(eventId, step, provablyUnsent) {
      const key = stepKey(eventId, step);
      const token = randomBytes(9).toString('base64url');
      const mine = encode(record('claimed', token));
      // a few rounds: the key may expire or be released between our reads and writes
      for (let round = 0; round < 3; round++) {
        let revision: number | undefined;
        try {
          revision = await o.kv.create(key, mine);
        } catch (err) {
          const lost = await ours(key, token);
          if (lost === undefined) {
            rememberUnsent(key, token);
            throw unavailable(key, err);
          }
          revision = lost;
        }
        if (revision !== undefined) return { go: taken(key, revision, token) };
        let e;
        try {
          e = await o.kv.get(key);
        } catch (err) {
          throw unavailable(key, err);
        }
        if (!e || e.deleted) continue;
        const seen = recordOf(e.value);
        // a value that is not ours to read: someone holds the step, and it is not sent blind
        if ('invalid' in seen) {
          o.logger.warn({ bucket: o.kv.bucket, journalKey: key, problem: seen.invalid, value: quoteValue(e.value) }, 'event journal: the step\'s key holds no valid journal record; the step is taken as claimed and not sent');
          return { seen: { state: 'claimed', instance: 'unknown (the key holds no journal record)', at: 'unknown' } };
        }
        const record = { state: seen.state, instance: seen.instance, at: seen.at };
        const unsentByUs = seen.state === 'claimed' && unsentHere.get(key)?.has(seen.token) === true;
        const unsentByCaller = seen.state === 'claimed' && !unsentByUs && provablyUnsent?.(record) === true;
        if (seen.state !== 'released' && !unsentByUs && !unsentByCaller) return { seen: record };
        if (unsentByCaller) o.logger.warn({ bucket: o.kv.bucket, journalKey: key, claimedBy: seen.instance, claimedAt: seen.at }, 'event journal: a step this instance claimed before a restart, which left no trace of having begun it, is taken again');
        let revisionTaken: number | undefined;
        try {
          revisionTaken = await o.kv.update(key, mine, e.revision);
        } catch (err) {
          revisionTaken = await ours(key, token);
          if (revisionTaken === undefined) {
            rememberUnsent(key, token);
            throw unavailable(key, err);
          }
        }
        if (revisionTaken !== undefined) return { go: taken(key, revisionTaken, token) };
      }
      throw unavailable(key, new Error('the key kept changing while it was claimed'));
    },
  };
}
