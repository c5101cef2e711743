/**
 * The memory of BMCs' lasting conditions behind the report cycle's warnings (bmc-conditions.ts):
 * a condition logged once, again when it changes and at most once per repeat interval while it
 * lasts, the BMC's return told once; BMCs gone from the leases forgotten, at most `max` kept.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { conditionLineFields, createBmcConditions, type BmcCondition } from '../../src/report/bmc-conditions.js';
import { manualClock } from '../helpers/manual-clock.js';

const HOUR = 3_600_000;
const A = { ip: '10.0.0.1', mac: 'aa:bb:cc:00:00:01' };
const B = { ip: '10.0.0.2', mac: 'aa:bb:cc:00:00:02' };
const TIMEOUT: BmcCondition = { kind: 'read-failed', code: 'TIMEOUT' };
const AUTH: BmcCondition = { kind: 'read-failed', code: 'AUTH_FAILED' };
const PLACEHOLDER: BmcCondition = { kind: 'skipped', reason: 'placeholder-uuid' };

describe('BMC conditions across report cycles', () => {
  it('logs the first occurrence, then nothing until an hour after it, then a reminder naming the quiet cycles', () => {
    const clock = manualClock();
    const c = createBmcConditions({ now: clock.now });
    const kinds: string[] = [];
    for (let cycle = 0; cycle < 13; cycle++) {
      c.beginCycle();
      kinds.push(c.met(A, TIMEOUT).kind);
      clock.advance(5 * 60_000);
    }
    expect(kinds).toEqual(['new', ...Array<string>(11).fill('quiet'), 'reminder']);
    c.beginCycle();
    clock.advance(0);
    expect(c.met(A, TIMEOUT)).toEqual({ kind: 'quiet' });
  });

  it('the reminder counts cycles, not reads: a retry in the same cycle is no quiet cycle of its own', () => {
    const clock = manualClock();
    const c = createBmcConditions({ now: clock.now });
    c.beginCycle();
    c.met(A, TIMEOUT);
    expect(c.met(A, TIMEOUT).kind).toBe('quiet');
    c.beginCycle();
    c.met(A, TIMEOUT);
    c.met(A, TIMEOUT);
    clock.advance(HOUR);
    c.beginCycle();
    expect(c.met(A, TIMEOUT)).toEqual({ kind: 'reminder', quietCycles: 1, forMs: HOUR });
  });

  it('another error code or skip reason is logged at once, naming the one before', () => {
    const c = createBmcConditions();
    c.beginCycle();
    c.met(A, TIMEOUT);
    expect(c.met(A, AUTH)).toEqual({ kind: 'changed', previous: TIMEOUT });
    c.beginCycle();
    expect(c.met(A, PLACEHOLDER)).toEqual({ kind: 'changed', previous: AUTH });
    expect(conditionLineFields({ kind: 'changed', previous: PLACEHOLDER })).toEqual({ previous: 'skipped: placeholder-uuid' });
    expect(c.met(A, PLACEHOLDER).kind).toBe('quiet');
  });

  it("the BMC's return: what it was, since its first failure (across a change), in how many cycles; once", () => {
    const clock = manualClock();
    const c = createBmcConditions({ now: clock.now });
    c.beginCycle();
    c.met(A, TIMEOUT);
    clock.advance(300_000);
    c.beginCycle();
    c.met(A, AUTH);
    clock.advance(300_000);
    c.beginCycle();
    expect(c.cleared(A)).toEqual({ condition: AUTH, forMs: 600_000, cycles: 2, sameCycle: false });
    expect(c.cleared(A)).toBeUndefined();
    expect(c.met(A, AUTH).kind).toBe('new');
  });

  it('a failure whose retry succeeds in the same cycle is a return in the same cycle', () => {
    const c = createBmcConditions();
    c.beginCycle();
    c.met(A, TIMEOUT);
    expect(c.cleared(A)).toMatchObject({ sameCycle: true, cycles: 1 });
  });

  it('keys by address and MAC: the same address with another MAC is another BMC; MAC case does not matter', () => {
    const c = createBmcConditions();
    c.beginCycle();
    c.met(A, TIMEOUT);
    expect(c.met({ ...A, mac: A.mac.toUpperCase() }, TIMEOUT).kind).toBe('quiet');
    expect(c.met({ ...A, mac: 'aa:bb:cc:00:00:99' }, TIMEOUT).kind).toBe('new');
  });

  it('forgets BMCs whose lease is gone, and keeps at most max', () => {
    const c = createBmcConditions({ max: 2 });
    c.beginCycle();
    c.met(A, TIMEOUT);
    c.met(B, TIMEOUT);
    c.forget((b) => b.ip !== A.ip);
    expect(c.size).toBe(1);
    expect(c.met(A, TIMEOUT).kind).toBe('new');
    c.met({ ip: '10.0.0.3', mac: 'aa:bb:cc:00:00:03' }, TIMEOUT);
    expect(c.size).toBe(2);
    // B, met longest ago, went first
    expect(c.met(B, TIMEOUT).kind).toBe('new');
  });

  it('repeat interval 0: every occurrence is logged', () => {
    const c = createBmcConditions({ repeatIntervalMs: 0 });
    c.beginCycle();
    expect([c.met(A, TIMEOUT).kind, c.met(A, TIMEOUT).kind]).toEqual(['new', 'reminder']);
  });

  it('property: a lasting condition is logged at its first cycle and then exactly at each cycle an interval or more after its last line', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 10 * HOUR }), fc.array(fc.integer({ min: 0, max: 2 * HOUR }), { minLength: 1, maxLength: 60 }), (repeatIntervalMs, gaps) => {
        const clock = manualClock();
        const c = createBmcConditions({ repeatIntervalMs, now: clock.now });
        let lastLine: number | undefined;
        for (const gap of gaps) {
          clock.advance(gap);
          c.beginCycle();
          const due = lastLine === undefined || clock.now() - lastLine >= repeatIntervalMs;
          expect(c.met(A, TIMEOUT).kind !== 'quiet').toBe(due);
          if (due) lastLine = clock.now();
        }
      }),
    );
  });
});
