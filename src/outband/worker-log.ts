/**
 * Log lines of worker threads (console/worker-thread.ts, report/worker-thread.ts), forwarded to
 * the main thread's logger as structured records over the worker's port: the IPMI workarounds of
 * a session opened in a worker (SOL port byte order, sequence restart, cipher-suite fallback)
 * reach the daemon's log as they do from the main thread, once per BMC and quirk.
 *
 * Every record is bounded (message, field count, key and value sizes) on both sides, and the
 * worker sends at most `perSecond` records a second (a burst of `burst`): a hostile BMC that
 * makes its session produce event after event costs the main thread nothing beyond that; what is
 * held back is counted and said in one record when the rate allows again.
 */
import type { Logger } from '../log.js';
import { logQuirk } from './connect.js';
import { createTokenBucket } from '../net/token-bucket.js';

export type WorkerLogLevel = 'debug' | 'info' | 'warn' | 'error';
export type WorkerLogValue = string | number | boolean;

/** one log line of a worker; `id` is the console it is about, if any */
export interface WorkerLogRecord {
  type: 'log';
  id?: number;
  level: WorkerLogLevel;
  msg: string;
  fields: Record<string, WorkerLogValue>;
}

/** records the worker held back over the rate since it last said so */
export interface WorkerLogHeld {
  type: 'log-held';
  count: number;
}

export const WORKER_LOG_BOUNDS = {
  msgChars: 512,
  fields: 8,
  keyChars: 32,
  valueChars: 256,
  perSecond: 10,
  burst: 20,
} as const;

const LEVELS: ReadonlySet<string> = new Set<WorkerLogLevel>(['debug', 'info', 'warn', 'error']);
const KEY_RE = /^[A-Za-z][A-Za-z0-9_]*$/;
/** field names the main thread sets itself: a record cannot pose as another worker or machine */
const RESERVED = new Set(['worker', 'threadId', 'machineId', 'module', 'level', 'msg', 'time', 'service', 'pid', 'hostname']);
/** a quirk name as the IPMI client gives it (IpmiEvent.kind) */
const QUIRK_RE = /^[a-z0-9-]{1,40}$/;

function boundValue(v: unknown): WorkerLogValue | undefined {
  if (typeof v === 'string') return v.slice(0, WORKER_LOG_BOUNDS.valueChars);
  if (typeof v === 'boolean') return v;
  if (typeof v === 'number' && Number.isFinite(v)) return v;
  return undefined;
}

/**
 * The record, cut to the bounds, or undefined when it is not one (wrong level, no message, not
 * an object). Fields of another type, with a reserved or malformed name, or past the count are
 * left out. Pure; never throws. The worker cuts what it sends, the main thread what it takes.
 */
export function boundWorkerLog(value: unknown): WorkerLogRecord | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const { id, level, msg, fields } = value as Record<string, unknown>;
  if (typeof level !== 'string' || !LEVELS.has(level)) return undefined;
  if (typeof msg !== 'string' || msg.length === 0) return undefined;
  if (id !== undefined && !(Number.isSafeInteger(id) && (id as number) > 0)) return undefined;
  const out: Record<string, WorkerLogValue> = {};
  let n = 0;
  if (typeof fields === 'object' && fields !== null && !Array.isArray(fields)) {
    for (const [k, v] of Object.entries(fields as Record<string, unknown>)) {
      if (n >= WORKER_LOG_BOUNDS.fields) break;
      if (k.length > WORKER_LOG_BOUNDS.keyChars || !KEY_RE.test(k) || RESERVED.has(k)) continue;
      const bounded = boundValue(v);
      if (bounded === undefined) continue;
      out[k] = bounded;
      n++;
    }
  }
  return { type: 'log', ...(id === undefined ? {} : { id: id as number }), level: level as WorkerLogLevel, msg: msg.slice(0, WORKER_LOG_BOUNDS.msgChars), fields: out };
}

export interface WorkerLogSender {
  /** sends the record now, or counts it when over the rate */
  log(record: Omit<WorkerLogRecord, 'type'>): void;
  /** an IPMI workaround of a session (of console `id`, if any): one record per BMC and quirk in this worker */
  quirk(id: number | undefined, bmc: string, event: { kind: string; message: string }): void;
  /** records held back so far */
  readonly suppressed: number;
}

/** quirks already sent by this worker; bounded like the main thread's (outband/connect.ts) */
const QUIRKS_SENT_LIMIT = 10_000;

/**
 * The worker's side: bounded, rate-limited records to `post`. `rate` overrides the default of
 * WORKER_LOG_BOUNDS for a worker whose every task may say a line (a report worker's first
 * contacts with a thousand BMCs).
 */
export function createWorkerLogSender(post: (message: WorkerLogRecord | WorkerLogHeld) => void, now: () => number = Date.now, rate: { perSecond: number; burst: number } = WORKER_LOG_BOUNDS): WorkerLogSender {
  const bucket = createTokenBucket(rate.perSecond, rate.burst, now);
  let held = 0;
  let heldTotal = 0;
  const quirksSent = new Set<string>();

  function log(record: Omit<WorkerLogRecord, 'type'>): void {
    if (!bucket.take()) {
      held++;
      heldTotal++;
      return;
    }
    if (held > 0 && bucket.take()) {
      post({ type: 'log-held', count: held });
      held = 0;
    }
    const bounded = boundWorkerLog(record);
    if (bounded) post(bounded);
  }

  return {
    log,
    quirk(id, bmc, event) {
      const key = `${bmc}\u0000${event.kind}`;
      if (quirksSent.has(key)) return;
      if (quirksSent.size >= QUIRKS_SENT_LIMIT) quirksSent.clear();
      quirksSent.add(key);
      log({ ...(id === undefined ? {} : { id }), level: 'warn', msg: event.message, fields: { bmc, quirk: event.kind } });
    },
    get suppressed() {
      return heldTotal;
    },
  };
}

/** who a record is about, as the main thread knows it */
export interface WorkerLogContext {
  worker: number;
  threadId: number;
  machineId?: string;
}

/**
 * The main thread's side: logs a record from a worker with the worker's slot, thread id and the
 * console's machine id. A quirk record goes through the same once-per-BMC-and-quirk rule as the
 * main thread's own sessions (outband/connect.ts `logQuirk`). False when it was not a record.
 */
export function logWorkerRecord(log: Logger, value: unknown, context: WorkerLogContext): boolean {
  const record = boundWorkerLog(value);
  if (!record) return false;
  const child = log.child({ worker: context.worker, threadId: context.threadId, ...(context.machineId ? { machineId: context.machineId } : {}) });
  const { bmc, quirk } = record.fields;
  if (typeof bmc === 'string' && typeof quirk === 'string' && QUIRK_RE.test(quirk)) {
    logQuirk(child, bmc, { kind: quirk, message: record.msg });
    return true;
  }
  child[record.level](record.fields, record.msg);
  return true;
}
