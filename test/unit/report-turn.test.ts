/**
 * The one-at-a-time turn of the report workers' suspects (src/report/turn.ts): first come, first
 * served, also for a take that arrives while the turn is being handed to the next waiter; a
 * waiter that gives up leaves the line; close() ends every waiter.
 */
import { describe, expect, it } from 'vitest';
import { createTurn } from '../../src/report/turn.js';

/** every promise that can settle now has settled: what a take got, or that it still waits */
const settled = () => new Promise<void>((resolve) => setImmediate(resolve));

describe('a turn taken one at a time', () => {
  it('goes to the waiters in arrival order: one that arrives as the turn is released waits behind the one it is handed to', async () => {
    const turn = createTurn();
    const granted: string[] = [];
    const takeAs = async (name: string) => {
      const release = await turn.take();
      granted.push(name);
      return release!;
    };
    const a = await takeAs('a');
    const b = takeAs('b');
    a();
    // arrives after the release, before b has resumed: the turn is b's already
    const c = takeAs('c');
    await settled();
    expect(granted).toEqual(['a', 'b']);
    // and again: d arrives as b releases, c is next
    (await b)();
    const d = takeAs('d');
    await settled();
    expect(granted).toEqual(['a', 'b', 'c']);
    (await c)();
    (await d)();
    expect(granted).toEqual(['a', 'b', 'c', 'd']);
    // free again: taken at once
    expect(await turn.take()).toBeTypeOf('function');
  });

  it('a release given twice hands the turn on once', async () => {
    const turn = createTurn();
    const a = (await turn.take())!;
    let bGot = false;
    let cGot = false;
    void turn.take().then(() => (bGot = true));
    void turn.take().then(() => (cGot = true));
    a();
    a();
    await settled();
    expect([bGot, cGot]).toEqual([true, false]);
  });

  it('a waiter that gives up leaves the line at once, and the turn goes to the one after it', async () => {
    const turn = createTurn();
    const a = (await turn.take())!;
    const abort = new AbortController();
    const b = turn.take(abort.signal);
    let cGot = false;
    const c = turn.take().then((release) => {
      cGot = true;
      return release;
    });
    abort.abort(new Error('the cycle ends'));
    expect(await b).toBeUndefined();
    await settled();
    expect(cGot).toBe(false);
    a();
    expect(await c).toBeTypeOf('function');
    // one already aborted does not queue
    expect(await turn.take(AbortSignal.abort())).toBeUndefined();
  });

  it('close() ends every waiter and every later take; the holder releases as before', async () => {
    const turn = createTurn();
    const a = (await turn.take())!;
    const waiting = [turn.take(), turn.take()];
    turn.close();
    expect(await Promise.all(waiting)).toEqual([undefined, undefined]);
    expect(await turn.take()).toBeUndefined();
    a();
    expect(await turn.take()).toBeUndefined();
  });
});
