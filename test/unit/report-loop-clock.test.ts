/** A BMC's deadline counts the BMC's time: what its answers waited for the event loop is given back, bounded. */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { nextLimit } from '../../src/report/adaptive-limit.js';
import { acquireLoopClock, bmcDeadline } from '../../src/report/loop-clock.js';

afterEach(() => {
  vi.useRealTimers();
});

/** timers faked, the turn of the loop after its I/O (setImmediate) real: a test acts between the deadline's timer and that turn */
const fakeTimersOnly = () => vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
/** that turn: the deadline's own check, queued first, runs before this resolves */
const ioTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * a loop clock whose stall the test sets: `stall` in all, `recent` its recent stall (the clock's
 * last ticks; by default all of it: the whole stall just happened)
 */
const fakeClock = () => ({
  stall: 0,
  recent: undefined as number | undefined,
  stalledMs() {
    return this.stall;
  },
  recentStallMs() {
    return this.recent ?? this.stall;
  },
});

describe('loop clock', () => {
  it('counts the time the event loop was blocked', async () => {
    const clock = acquireLoopClock();
    try {
      const before = clock.stalledMs();
      const until = performance.now() + 150;
      while (performance.now() < until); // the loop busy with "other BMCs" for 150 ms
      // read at once: the interval has not run yet, the clock counts its lateness as it stands
      expect(clock.stalledMs() - before).toBeGreaterThanOrEqual(100);
      await new Promise<void>((resolve) => setImmediate(resolve));
      expect(clock.stalledMs() - before).toBeGreaterThanOrEqual(100);
      // as recent stall too, until the loop has ticked twice freely since
      expect(clock.recentStallMs()).toBeGreaterThanOrEqual(100);
      const blocked = clock.stalledMs();
      await vi.waitFor(() => expect(clock.recentStallMs()).toBeLessThan(50), { timeout: 2000, interval: 10 });
      // the stall in all is not forgotten
      expect(clock.stalledMs()).toBeGreaterThanOrEqual(blocked);
    } finally {
      clock.release();
    }
  });
});

describe('loop clock, recent stall', () => {
  it('starts over when the clock is acquired again after its last user released it: an old stall is not recent', async () => {
    const first = acquireLoopClock();
    const until = performance.now() + 150;
    while (performance.now() < until); // the loop busy for 150 ms
    // the interval's tick, overdue, runs before this timer: the stall is counted
    await new Promise<void>((resolve) => setTimeout(resolve, 0));
    expect(first.stalledMs()).toBeGreaterThanOrEqual(100);
    expect(first.recentStallMs()).toBeGreaterThanOrEqual(100);
    first.release(); // the last user: the clock stops
    const again = acquireLoopClock();
    try {
      // the stall counted before is history now, not what an answer read from here on waited
      expect(again.recentStallMs()).toBeLessThan(50);
      expect(again.stalledMs()).toBeGreaterThanOrEqual(100);
    } finally {
      again.release();
    }
  });
});

describe('BMC deadline', () => {
  it('fires after its time when the loop was free', () => {
    vi.useFakeTimers();
    const clock = fakeClock();
    const d = bmcDeadline(100, 'reading BMC 10.0.0.1', clock, 100);
    vi.advanceTimersByTime(99);
    expect(d.signal.aborted).toBe(false);
    vi.advanceTimersByTime(1);
    expect(d.signal.aborted).toBe(true);
    expect(d.signal.reason).toMatchObject({ code: 'TIMEOUT', message: 'reading BMC 10.0.0.1: no answer within 100 ms' });
    expect(d.extendedMs).toBe(0);
    d.dispose();
  });

  it('gives back the stall its answers waited through, again for stall during the extension, then fires', () => {
    vi.useFakeTimers();
    const clock = fakeClock();
    const d = bmcDeadline(100, 'reading BMC 10.0.0.1', clock, 1000);
    clock.stall = 60; // the loop was busy elsewhere for 60 ms just now
    d.heard(); // an answer of the BMC read after that stall: it waited through it
    vi.advanceTimersByTime(100);
    expect(d.signal.aborted).toBe(false);
    expect(d.extendedMs).toBe(60);
    clock.stall = 80; // 20 ms more during the extension, and another answer after it
    d.heard();
    vi.advanceTimersByTime(60);
    expect(d.signal.aborted).toBe(false);
    vi.advanceTimersByTime(20);
    expect(d.signal.aborted).toBe(true);
    expect(d.extendedMs).toBe(80);
    expect((d.signal.reason as Error).message).toContain('and 80 ms more while this process was busy with other BMCs');
    d.dispose();
  });

  it('owes a BMC that was working on its answer only what the answer waited, not the stall of its whole read', () => {
    vi.useFakeTimers();
    const clock = fakeClock();
    const d = bmcDeadline(1000, 'reading BMC 10.0.0.3', clock, 1000);
    // a slow BMC: its answer took 900 ms, while the loop was busy with other BMCs for 400 ms of them;
    // the answer came in the last turn, whose stall (30 ms) is what it can have waited
    clock.stall = 400;
    clock.recent = 30;
    d.heard();
    vi.advanceTimersByTime(1000);
    expect(d.signal.aborted).toBe(false);
    expect(d.extendedMs).toBe(30);
    vi.advanceTimersByTime(30);
    expect(d.signal.aborted).toBe(true);
    expect(d.extendedMs).toBe(30);
    d.dispose();
  });

  it('never owes a sign of life more than the stall since the one before it', () => {
    vi.useFakeTimers();
    const clock = fakeClock();
    const d = bmcDeadline(100, 'x', clock, 1000);
    clock.stall = 40;
    clock.recent = 40;
    d.heard(); // its connection: waited 40 ms
    clock.stall = 45; // 5 ms more, inside the same recent ticks of stall
    d.heard(); // its TLS handshake right after: 5 ms more, not the 40 of the recent ticks again
    vi.advanceTimersByTime(100);
    expect(d.extendedMs).toBe(45);
    vi.advanceTimersByTime(45);
    expect(d.signal.aborted).toBe(true);
    d.dispose();
  });

  it('gives back at most maxExtraMs: a BMC that stops answering fails even on a loop that never rests', () => {
    vi.useFakeTimers();
    const clock = fakeClock();
    const d = bmcDeadline(100, 'x', clock, 150);
    clock.stall = 10_000;
    d.heard();
    vi.advanceTimersByTime(100 + 150);
    expect(d.signal.aborted).toBe(true);
    expect(d.extendedMs).toBe(150);
    d.dispose();
  });

  it('gives nothing back to a BMC that never answered: a dead BMC costs its deadline on a busy loop', async () => {
    fakeTimersOnly();
    const clock = fakeClock();
    const d = bmcDeadline(100, 'reading BMC 10.0.0.9', clock, 1000);
    clock.stall = 60;
    vi.advanceTimersByTime(100);
    // one turn of the loop's I/O first: its first answer could be there, unread
    expect(d.signal.aborted).toBe(false);
    await ioTurn();
    expect(d.signal.aborted).toBe(true);
    expect(d.extendedMs).toBe(0);
    expect((d.signal.reason as Error).message).toBe('reading BMC 10.0.0.9: no answer within 100 ms');
    d.dispose();
  });

  it('an answer read in that turn of I/O is owed the stall', async () => {
    fakeTimersOnly();
    const clock = fakeClock();
    const d = bmcDeadline(100, 'x', clock, 1000);
    clock.stall = 60;
    vi.advanceTimersByTime(100);
    d.heard(); // what the loop's I/O found once the timers had run
    await ioTurn();
    expect(d.signal.aborted).toBe(false);
    expect(d.extendedMs).toBe(60);
    vi.advanceTimersByTime(60);
    expect(d.signal.aborted).toBe(true);
    d.dispose();
  });

  it('a BMC that went quiet is owed the stall only up to its last sign of life', async () => {
    fakeTimersOnly();
    const clock = fakeClock();
    const d = bmcDeadline(100, 'x', clock, 1000);
    clock.stall = 30;
    d.heard(); // its connection made, after 30 ms of stall
    clock.stall = 90; // 60 ms more while it said nothing
    vi.advanceTimersByTime(100);
    await ioTurn();
    expect(d.extendedMs).toBe(30);
    expect(d.signal.aborted).toBe(false);
    vi.advanceTimersByTime(30);
    await ioTurn(); // the stall since its last sign of life: one more turn of I/O before it fails
    expect(d.signal.aborted).toBe(true);
    expect(d.extendedMs).toBe(30);
    d.dispose();
  });

  it('disposed while its turn of I/O is pending, it aborts nothing', async () => {
    fakeTimersOnly();
    const clock = fakeClock();
    const d = bmcDeadline(100, 'x', clock, 1000);
    clock.stall = 60;
    vi.advanceTimersByTime(100);
    d.dispose();
    await ioTurn();
    expect(d.signal.aborted).toBe(false);
  });

  it('on a loop that was free, a BMC that never answered fails at its deadline, without waiting a turn', () => {
    vi.useFakeTimers();
    const d = bmcDeadline(100, 'x', fakeClock(), 1000);
    vi.advanceTimersByTime(100);
    expect(d.signal.aborted).toBe(true);
    d.dispose();
  });

  it('the caller\'s abort ends it at once', () => {
    vi.useFakeTimers();
    const caller = new AbortController();
    const d = bmcDeadline(100, 'x', fakeClock(), 100, caller.signal);
    caller.abort(new Error('stopping'));
    expect(d.signal.aborted).toBe(true);
    expect((d.signal.reason as Error).message).toBe('stopping');
    d.dispose();
  });

  it('a BMC that ran late stops the concurrency limit growing while the loop is busy, even when the mean loop delay looks fine', () => {
    const o = { min: 4, lagLowMs: 10, lagHighMs: 50, heapBudgetBytes: 1e9, ceiling: 500, busyLowPct: 75, busyHighPct: 92 };
    expect(nextLimit(100, { lagMs: 5, busy: 0.6, heapBytes: 0, inUse: 100, late: 0 }, o)).toBe(125);
    expect(nextLimit(100, { lagMs: 5, busy: 0.6, heapBytes: 0, inUse: 100, late: 1 }, o)).toBe(100);
  });
});
