/**
 * Request/response over an unreliable datagram channel: send, wait for a datagram the
 * matcher accepts, retransmit with backoff, give up at the deadline or when the caller aborts.
 */
import { abortError, BmcError } from '../errors.js';
import type { DatagramChannel } from './transport.js';

export interface RetryPolicy {
  /** first wait for an answer before retransmitting */
  attemptMs: number;
  /** each further wait is multiplied by this, up to maxAttemptMs */
  backoff: number;
  maxAttemptMs: number;
  /** overall deadline for the exchange */
  deadlineMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { attemptMs: 1000, backoff: 1.5, maxAttemptMs: 3000, deadlineMs: 10_000 };

export function validateRetryPolicy(p: RetryPolicy, what = 'retry policy'): RetryPolicy {
  const positive = (n: number) => Number.isFinite(n) && n > 0;
  if (!positive(p.attemptMs)) throw new BmcError('INVALID_ARGUMENT', `${what}: attemptMs must be > 0, got ${p.attemptMs}`);
  if (!positive(p.deadlineMs)) throw new BmcError('INVALID_ARGUMENT', `${what}: deadlineMs must be > 0, got ${p.deadlineMs}`);
  if (!(p.backoff >= 1)) throw new BmcError('INVALID_ARGUMENT', `${what}: backoff must be >= 1, got ${p.backoff}`);
  if (!(p.maxAttemptMs >= p.attemptMs)) throw new BmcError('INVALID_ARGUMENT', `${what}: maxAttemptMs must be >= attemptMs`);
  return p;
}

/**
 * The matcher returns undefined to ignore a datagram (not ours), a value to finish,
 * or throws to fail the exchange (e.g. a protocol error in the matching answer).
 * `makeDatagram` is called for every (re)transmission, so each may carry a fresh sequence number.
 */
export function exchange<T>(
  channel: DatagramChannel,
  /** the datagram to send, or undefined to send nothing more and only listen until the deadline */
  makeDatagram: (attempt: number) => Buffer | undefined,
  match: (datagram: Buffer) => T | undefined,
  policy: RetryPolicy,
  describe: () => string,
  signal?: AbortSignal,
  subscribe: (handler: (datagram: Buffer) => void) => () => void = (h) => {
    channel.onDatagram(h);
    return () => channel.onDatagram(() => undefined);
  },
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    if (signal?.aborted) return reject(abortError(signal, describe()));
    let attempt = 0;
    let wait = policy.attemptMs;
    let timer: NodeJS.Timeout | undefined;
    const started = Date.now();
    const unsubscribe = subscribe((datagram) => {
      let value: T | undefined;
      try {
        value = match(datagram);
      } catch (err) {
        return finish(() => reject(err));
      }
      if (value !== undefined) finish(() => resolve(value));
    });
    const onAbort = () => finish(() => reject(abortError(signal!, describe())));
    signal?.addEventListener('abort', onAbort, { once: true });

    function finish(settle: () => void): void {
      clearTimeout(timer);
      unsubscribe();
      signal?.removeEventListener('abort', onAbort);
      settle();
    }

    function transmit(): void {
      const left = policy.deadlineMs - (Date.now() - started);
      if (left <= 0) {
        return finish(() => reject(new BmcError('TIMEOUT', `${describe()}: no answer within ${policy.deadlineMs} ms (${attempt} attempts)`)));
      }
      let datagram: Buffer | undefined;
      try {
        datagram = makeDatagram(attempt);
        if (datagram !== undefined) channel.send(datagram);
      } catch (err) {
        return finish(() => reject(err));
      }
      if (datagram === undefined) {
        // nothing more to send: the answers already sent are waited for until the deadline
        timer = setTimeout(transmit, left);
        return;
      }
      attempt++;
      timer = setTimeout(transmit, Math.min(wait, left));
      wait = Math.min(wait * policy.backoff, policy.maxAttemptMs);
    }
    transmit();
  });
}
