/** sleep (src/deadline.ts): waits, gives way to its signal with a BmcError, and leaves no listener behind. */
import { getEventListeners } from 'node:events';
import { afterEach, beforeEach, expect, it, vi } from 'vitest';
import { sleep } from '../../src/deadline.js';
import { BmcError } from '../../src/errors.js';

beforeEach(() => vi.useFakeTimers());
afterEach(() => vi.useRealTimers());

it('resolves after the time, not before, and removes its abort listener', async () => {
  const caller = new AbortController();
  let done = false;
  const waiting = sleep(1000, caller.signal, 'a wait').then(() => (done = true));
  await vi.advanceTimersByTimeAsync(999);
  expect(done).toBe(false);
  expect(getEventListeners(caller.signal, 'abort')).toHaveLength(1);
  await vi.advanceTimersByTimeAsync(1);
  await waiting;
  expect(done).toBe(true);
  expect(getEventListeners(caller.signal, 'abort')).toHaveLength(0);
});

it('a signal firing first rejects with ABORTED naming the wait, and its timer is cleared', async () => {
  const caller = new AbortController();
  const waiting = sleep(60_000, caller.signal, 'the retry back-off');
  caller.abort();
  await expect(waiting).rejects.toMatchObject({ code: 'ABORTED', message: 'the retry back-off: aborted' });
  expect(vi.getTimerCount()).toBe(0);
});

it('a deadline firing first rejects with TIMEOUT; an aborted signal rejects at once', async () => {
  const waiting = sleep(60_000, AbortSignal.timeout(10), 'a wait');
  const check = expect(waiting).rejects.toMatchObject({ code: 'TIMEOUT' });
  await vi.advanceTimersByTimeAsync(10);
  await check;
  await expect(sleep(10, AbortSignal.abort(), 'a wait')).rejects.toBeInstanceOf(BmcError);
});

it('without a signal it only waits', async () => {
  const waiting = sleep(50, undefined, 'a wait');
  await vi.advanceTimersByTimeAsync(50);
  await expect(waiting).resolves.toBeUndefined();
});
