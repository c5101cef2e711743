/**
 * A deadline combined with the caller's AbortSignal. Like
 * `AbortSignal.any([caller, AbortSignal.timeout(ms)])`, but the timer and the listener on
 * the (possibly long-lived) caller signal are released by `dispose()`, so thousands of
 * requests under one daemon-wide signal leave nothing behind.
 */
import { BmcError, abortError } from './errors.js';

export interface Deadline {
  readonly signal: AbortSignal;
  dispose(): void;
}

export function deadline(ms: number, what: string, caller?: AbortSignal): Deadline {
  const controller = new AbortController();
  if (caller?.aborted) {
    controller.abort(caller.reason);
    return { signal: controller.signal, dispose: () => undefined };
  }
  const timer = setTimeout(() => controller.abort(new BmcError('TIMEOUT', `${what}: no answer within ${ms} ms`)), ms);
  timer.unref();
  const onAbort = (): void => controller.abort(caller?.reason);
  caller?.addEventListener('abort', onAbort, { once: true });
  return {
    signal: controller.signal,
    dispose: () => {
      clearTimeout(timer);
      caller?.removeEventListener('abort', onAbort);
    },
  };
}

/** Throws the BmcError for an aborted signal (TIMEOUT for deadlines, ABORTED for the caller). */
export function throwIfAborted(signal: AbortSignal | undefined, what: string): void {
  if (signal?.aborted) throw abortError(signal, what);
}

/**
 * Waits `ms`, rejecting with a BmcError when `signal` fires first. A timer of its own rather than
 * node:timers/promises, which a one-shot `metal-bmc bmc` command would load for this alone.
 */
export async function sleep(ms: number, signal: AbortSignal | undefined, what: string): Promise<void> {
  throwIfAborted(signal, what);
  await new Promise<void>((resolve, reject) => {
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(abortError(signal!, what));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** setTimeout's limit (about 24.8 days): a longer delay fires at once. */
export const MAX_TIMER_MS = 2_147_483_647;

/**
 * Validates a named duration option once, when an object is built: a finite number of
 * milliseconds above 0 and up to `max` (fractions allowed: a Go duration from the configuration
 * can have them). `name` says whose option it is, e.g. `connectBus: reconnectTimeWaitMs`.
 */
export function checkDuration(name: string, value: number | undefined, fallback: number, max: number): number {
  const v = value ?? fallback;
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0 || v > max) {
    throw new BmcError('INVALID_ARGUMENT', `${name} must be a number of milliseconds above 0 and up to ${max}, got ${String(value)}`);
  }
  return v;
}

/** Validates a named timeout once, when an object is built: a positive integer up to `max`. */
export function checkMs(name: string, value: number | undefined, fallback: number, max = 24 * 3600_000): number {
  const v = value ?? fallback;
  if (!Number.isInteger(v) || v <= 0 || v > max) {
    throw new BmcError('INVALID_ARGUMENT', `${name} must be an integer between 1 and ${max} ms, got ${String(value)}`);
  }
  return v;
}

export function checkCount(name: string, value: number | undefined, fallback: number, min: number, max: number): number {
  const v = value ?? fallback;
  if (!Number.isInteger(v) || v < min || v > max) {
    throw new BmcError('INVALID_ARGUMENT', `${name} must be an integer between ${min} and ${max}, got ${String(value)}`);
  }
  return v;
}

export interface RaceAbortOptions<T> {
  /** what to reject with when the signal fires; default the signal's reason */
  reason?: (signal: AbortSignal) => unknown;
  /** releases a value that arrives after the abort (a connection, a response body, a stream) */
  late?: (value: T) => void;
}

/**
 * Waits for `work` at most `ms`: true when it ended in time, false when the time ran out first;
 * the timer is cleared either way. Whether `work` was fulfilled or rejected is the caller's (await
 * it again after a true to have its value or its error): a shutdown's bounded wait, for instance,
 * goes on either way.
 */
export async function endedWithin(work: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([work.then(ended, ended), new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

const ended = (): true => true;

/**
 * Settles with `pending`, or rejects as soon as `signal` fires, without waiting for `pending`:
 * some operations (a request queued for a connection, a NATS connect) settle only much later.
 * What `pending` yields after the abort goes to `late`, so nothing is left open.
 */
export function raceAbort<T>(pending: Promise<T>, signal: AbortSignal | undefined, options: RaceAbortOptions<T> = {}): Promise<T> {
  if (!signal) return pending;
  const reason = options.reason ?? ((s: AbortSignal) => s.reason);
  return new Promise<T>((resolve, reject) => {
    let aborted = false;
    const onAbort = (): void => {
      aborted = true;
      reject(reason(signal));
    };
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
    pending.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        if (aborted) options.late?.(value);
        else resolve(value);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        if (!aborted) reject(err);
      },
    );
  });
}
