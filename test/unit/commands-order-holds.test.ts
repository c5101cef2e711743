/**
 * The line of a machine's events handed back (src/commands/order-holds.ts): while some are out in
 * the stream, a plan of the machine runs only when it leads the line, whatever order the
 * redeliveries come in; an event that never comes back stops holding after its time.
 */
import { describe, expect, it } from 'vitest';
import type { Plan } from '../../src/commands/event.js';
import { createOrderHolds } from '../../src/commands/order-holds.js';
import { captureLog } from '../helpers/log.js';

const plan = (seq: number, command = 'OFF', key = 'm'): Plan => ({ machineId: key, key, type: 'command', command, actions: [], eventId: `S.${seq}` });

function holds(holdMs = 60_000) {
  const clock = { at: 0 };
  const log = captureLog();
  return { clock, log, holds: createOrderHolds({ holdMs, logger: log.logger, now: () => clock.at }) };
}

describe('order holds', () => {
  it('a machine without events out runs what comes; other machines are never held', () => {
    const { holds: h } = holds();
    expect(h.check(plan(1))).toBeUndefined();
    h.handedBack([plan(2, 'CYCLE')]);
    expect(h.check(plan(3, 'ON', 'other'))).toBeUndefined();
  });

  it('events that come back in any order run in the order they went back, a new one behind them', () => {
    const { holds: h } = holds();
    // the CYCLE went back, the OFF queued behind it with it
    h.handedBack([plan(7, 'CYCLE'), plan(8, 'OFF')]);
    // the ON's first delivery, then the OFF's redelivery, come before the CYCLE's
    expect(h.check(plan(9, 'ON'))).toMatchObject({ eventId: 'S.7', command: 'CYCLE' });
    expect(h.check(plan(8))).toMatchObject({ eventId: 'S.7' });
    expect(h.check(plan(7, 'CYCLE'))).toBeUndefined();
    // the ON again (a shorter hand-back than the OFF's): still behind the OFF
    expect(h.check(plan(9, 'ON'))).toMatchObject({ eventId: 'S.8' });
    expect(h.check(plan(8))).toBeUndefined();
    expect(h.check(plan(9, 'ON'))).toBeUndefined();
    expect(h.check(plan(10))).toBeUndefined();
  });

  it('an event that ran and went back again leads the line again, before those that came behind it', () => {
    const { holds: h } = holds();
    h.handedBack([plan(7, 'CYCLE')]);
    expect(h.check(plan(8))).toBeDefined();
    expect(h.check(plan(7, 'CYCLE'))).toBeUndefined();
    // it runs, the journal is still unusable: back again
    h.handedBack([plan(7, 'CYCLE')]);
    expect(h.check(plan(8))).toMatchObject({ eventId: 'S.7' });
    expect(h.check(plan(7, 'CYCLE'))).toBeUndefined();
    expect(h.check(plan(8))).toBeUndefined();
  });

  it('an event that does not come back within its time, or settles unrun, no longer holds its machine (said once)', () => {
    const { holds: h, clock, log } = holds(1000);
    h.handedBack([plan(7, 'CYCLE'), plan(8)]);
    clock.at = 500;
    // the OFF keeps coming back: its time starts over each time
    expect(h.check(plan(8))).toMatchObject({ eventId: 'S.7' });
    clock.at = 1200;
    expect(h.check(plan(8))).toBeUndefined();
    expect(log.find(/no longer wait for its event that went back to the stream/)).toEqual([expect.objectContaining({ lostCommand: 'CYCLE', lostEventId: 'S.7', command: 'OFF' })]);
    h.handedBack([plan(20, 'CYCLE')]);
    expect(h.check(plan(21))).toBeDefined();
    h.passed(plan(20, 'CYCLE'));
    expect(h.check(plan(21))).toBeUndefined();
  });

  it('a lost lead clears every line; events without an id (core NATS) are never held', () => {
    const { holds: h } = holds();
    h.handedBack([plan(7, 'CYCLE')]);
    h.clear();
    expect(h.check(plan(8))).toBeUndefined();
    h.handedBack([{ ...plan(30), eventId: undefined } as unknown as Plan]);
    expect(h.check(plan(31))).toBeUndefined();
  });
});
