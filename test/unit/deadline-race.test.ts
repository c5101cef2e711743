/** raceAbort: the one way every module stops waiting for an operation that settles late. */
import { describe, expect, it } from 'vitest';
import { raceAbort } from '../../src/deadline.js';

function deferred<T>() {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => ((resolve = res), (reject = rej)));
  return { promise, resolve, reject };
}

describe('raceAbort', () => {
  it('settles with the operation when no abort comes', async () => {
    const op = deferred<string>();
    const raced = raceAbort(op.promise, new AbortController().signal);
    op.resolve('done');
    await expect(raced).resolves.toBe('done');
    const failing = deferred<string>();
    const racedFailure = raceAbort(failing.promise, new AbortController().signal);
    failing.reject(new Error('refused'));
    await expect(racedFailure).rejects.toThrow('refused');
  });

  it('rejects at the abort without waiting, with the chosen reason, and hands a late value to late()', async () => {
    const op = deferred<string>();
    const ac = new AbortController();
    const late: string[] = [];
    const raced = raceAbort(op.promise, ac.signal, { reason: () => new Error('gave up'), late: (v) => late.push(v) });
    ac.abort();
    await expect(raced).rejects.toThrow('gave up');
    op.resolve('connection');
    await op.promise;
    await Promise.resolve();
    expect(late).toEqual(['connection']);
  });

  it('an already aborted signal rejects with its reason; no signal means no race', async () => {
    const ac = new AbortController();
    ac.abort(new Error('was aborted'));
    const op = deferred<number>();
    await expect(raceAbort(op.promise, ac.signal)).rejects.toThrow('was aborted');
    const plain = Promise.resolve(1);
    expect(raceAbort(plain, undefined)).toBe(plain);
  });
});
