/**
 * The small units of an RMCP+ session, without sockets: the inbound replay window, the request
 * sequence numbers, the keepalive (vitest fake timers) and the checks of the session's options.
 */
import fc from 'fast-check';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { BmcError } from '../../src/errors.js';
import { InboundWindow } from '../../src/ipmi/inbound-window.js';
import { createKeepalive } from '../../src/ipmi/keepalive.js';
import { RqSeqAllocator } from '../../src/ipmi/rq-seq.js';
import { sessionSettings } from '../../src/ipmi/session.js';

describe('InboundWindow', () => {
  it('accepts the first number, then anything ahead, and refuses 0 and non-numbers', () => {
    const w = new InboundWindow();
    expect(w.check(0)).toBe('invalid');
    expect(w.check(5)).toBe('accepted');
    expect(w.check(6)).toBe('accepted');
    expect(w.check(1000)).toBe('accepted'); // a jump ahead beyond the window is fine
    expect(w.check(-1)).toBe('invalid');
    expect(w.check(2 ** 32)).toBe('invalid');
    expect(w.check(1.5)).toBe('invalid');
  });

  it('refuses duplicates, accepts late packets within the window once, refuses those beyond it', () => {
    const w = new InboundWindow(16);
    for (const s of [10, 12, 11]) expect(w.check(s)).toBe('accepted'); // 11 out of order, within
    expect(w.check(12)).toBe('duplicate');
    expect(w.check(11)).toBe('duplicate');
    expect(w.check(30)).toBe('accepted');
    expect(w.check(15)).toBe('accepted'); // 15 behind: still inside a window of 16
    expect(w.check(15)).toBe('duplicate');
    expect(w.check(14)).toBe('too-old'); // 16 behind: outside
  });

  it('wraps from 0xffffffff to 1 as a step forward', () => {
    const w = new InboundWindow();
    expect(w.check(0xfffffffe)).toBe('accepted');
    expect(w.check(0xffffffff)).toBe('accepted');
    expect(w.check(1)).toBe('accepted');
    expect(w.check(0xffffffff)).toBe('duplicate');
    expect(w.check(0xfffffffe)).toBe('duplicate');
    expect(w.check(2)).toBe('accepted');
  });

  it('follows a BMC that restarts its numbers: two consecutive old numbers, not one', () => {
    const w = new InboundWindow();
    for (let s = 1; s <= 40; s++) w.check(s);
    expect(w.check(1)).toBe('too-old'); // a lone old number could be a replay
    expect(w.check(5)).toBe('too-old');
    expect(w.restarts).toBe(0);
    expect(w.check(6)).toBe('restarted'); // 5 then 6: the BMC counts again from low numbers
    expect(w.restarts).toBe(1);
    expect(w.check(7)).toBe('accepted');
    expect(w.check(6)).toBe('duplicate');
    expect(w.check(40)).toBe('accepted'); // the old high numbers are ahead again (mod 2^32)
  });

  it('a pair of consecutive numbers from the middle of the session is no restart (a replay of two recorded packets): refused', () => {
    const w = new InboundWindow();
    for (let s = 1; s <= 200; s++) w.check(s);
    expect(w.check(100)).toBe('too-old');
    expect(w.check(101)).toBe('too-old');
    expect(w.restarts).toBe(0);
    expect(w.check(33)).toBe('too-old');
    expect(w.check(34)).toBe('too-old'); // above the highest number a restart goes back to (32)
    expect(w.check(31)).toBe('too-old');
    expect(w.check(32)).toBe('restarted');
  });

  it('accepts each number at most once and never one more than 15 behind the highest, for any arrival order (fast-check)', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 60 }), { maxLength: 200 }), (seqs) => {
        const w = new InboundWindow(16);
        const accepted = new Set<number>();
        let highest = 0;
        let candidate: number | undefined;
        for (const s of seqs) {
          const v = w.check(s);
          // reference model of the window (numbers stay far from the wrap here)
          let expected: string;
          if (highest === 0 || s > highest) expected = 'accepted';
          else if (highest - s >= 16) expected = candidate !== undefined && s === candidate + 1 && s <= 32 ? 'restarted' : 'too-old';
          else expected = accepted.has(s) ? 'duplicate' : 'accepted';
          expect(v).toBe(expected);
          if (expected === 'restarted') {
            accepted.clear();
            highest = s;
            candidate = undefined;
            accepted.add(s);
          } else if (expected === 'too-old') candidate = s;
          else if (expected === 'accepted') {
            if (s > highest) {
              candidate = undefined;
              for (const a of [...accepted]) if (s - a >= 16) accepted.delete(a);
              highest = s;
            }
            accepted.add(s);
          }
        }
      }),
    );
  });
});

describe('RqSeqAllocator', () => {
  const GET_DEVICE_ID = [0x06, 0x01] as const;
  const READ_FRU_DATA = [0x0a, 0x11] as const;

  it('hands out the next free number after the last, wrapping at 64, skipping those in flight', () => {
    const a = new RqSeqAllocator(62);
    expect([a.allocate(...GET_DEVICE_ID), a.allocate(...GET_DEVICE_ID), a.allocate(...GET_DEVICE_ID)]).toEqual([63, 0, 1]);
    a.release(0);
    expect(a.inFlight).toBe(2);
    expect(a.allocate(...GET_DEVICE_ID)).toBe(2);
  });

  it('refuses a 65th request in flight with PROTOCOL, and has room again after a release', () => {
    const a = new RqSeqAllocator(0, () => 'session with 192.0.2.1:623');
    const seqs = Array.from({ length: 64 }, () => a.allocate(...GET_DEVICE_ID));
    expect(new Set(seqs).size).toBe(64);
    expect(() => a.allocate(...GET_DEVICE_ID)).toThrow(expect.objectContaining({ code: 'PROTOCOL', message: expect.stringMatching(/more than 63 requests outstanding on session with 192\.0\.2\.1:623/) }));
    a.release(17);
    expect(a.allocate(...READ_FRU_DATA)).toBe(17);
  });

  it('keeps a number from the same netFn and command until the retention after its last transmission has passed; another command takes it at once', () => {
    let now = 1_000_000;
    const a = new RqSeqAllocator(63, undefined, 6000, () => now);
    // a burst of 64 of one command, each answered at once: every number used within a second
    for (let i = 0; i < 64; i++) {
      const seq = a.allocate(...READ_FRU_DATA)!;
      expect(seq).toBe(i);
      now += 10;
      a.release(seq);
    }
    expect(a.allocate(...READ_FRU_DATA)).toBeUndefined(); // the 65th would reuse 0, which the BMC still remembers
    expect(a.freeInMs(...READ_FRU_DATA)).toBe(6000 - 640);
    expect(a.allocate(...GET_DEVICE_ID)).toBe(0); // another command: its answers differ in netFn/command
    now += 6000 - 630; // 1 went out 10 ms after 0
    expect(a.allocate(...READ_FRU_DATA)).toBe(1); // the oldest Read FRU Data of the burst is past its retention
  });

  it('keeps a number from a command that used it within the retention even after another command used it since', () => {
    let now = 1_000_000;
    const a = new RqSeqAllocator(63, undefined, 6000, () => now);
    // Read FRU Data uses all 64 numbers within a second; its 65th waits
    for (let i = 0; i < 64; i++) {
      a.release(a.allocate(...READ_FRU_DATA)!);
      now += 10;
    }
    expect(a.allocate(...READ_FRU_DATA)).toBeUndefined();
    // Get Device ID takes 0 (last used by Read FRU Data 640 ms ago) and is answered
    const taken = a.allocate(...GET_DEVICE_ID)!;
    expect(taken).toBe(0);
    now += 300;
    a.release(taken);
    // the BMC still remembers Read FRU Data under 0 (sent at +0 ms): the number stays away from it
    expect(a.allocate(...READ_FRU_DATA)).toBeUndefined();
    expect(a.freeInMs(...READ_FRU_DATA)).toBe(6000 - 940);
    // and 0 stays away from Get Device ID for its own retention too
    expect(a.allocate(...GET_DEVICE_ID)).toBe(1);
    now += 6000 - 940;
    expect(a.allocate(...READ_FRU_DATA)).toBe(0);
  });

  it('counts the retention from the last transmission: a number whose request was resent stays away longer', () => {
    let now = 0;
    const a = new RqSeqAllocator(0, undefined, 6000, () => now);
    const first = a.allocate(...READ_FRU_DATA)!;
    now = 2000;
    a.sent(first); // resent after 2 s, then answered
    a.release(first);
    for (let seq = 2; seq < 64; seq++) a.release(a.allocate(...READ_FRU_DATA)!);
    a.release(a.allocate(...READ_FRU_DATA)!); // 0
    now = 7000;
    expect(a.allocate(...READ_FRU_DATA)).toBeUndefined(); // 1 was last sent at 2 s: kept until 8 s
    expect(a.freeInMs(...READ_FRU_DATA)).toBe(1000);
    now = 8000;
    expect(a.allocate(...READ_FRU_DATA)).toBe(first);
  });

  it('acquire waits for a number the BMC no longer remembers, or for a release of another command\'s, and gives up when aborted', async () => {
    const a = new RqSeqAllocator(63, undefined, 6000, () => 0); // the clock stands: only a release frees a number
    for (let i = 0; i < 63; i++) a.release(a.allocate(...READ_FRU_DATA)!);
    const held = a.allocate(...GET_DEVICE_ID)!; // 63, in flight for another command
    const waiting = a.acquire(...READ_FRU_DATA, undefined, () => 'Read FRU Data');
    a.release(held); // frees 63 for Read FRU Data: no wait for the retention
    await expect(waiting).resolves.toEqual({ seq: 63, waitedMs: 0 });
    const aborted = new AbortController();
    const never = a.acquire(...READ_FRU_DATA, aborted.signal, () => 'Read FRU Data');
    aborted.abort();
    await expect(never).rejects.toMatchObject({ code: 'ABORTED' });
  });

  it('rejects a start outside 0..63', () => {
    expect(() => new RqSeqAllocator(64)).toThrow(RangeError);
  });
});

describe('keepalive', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  function setup(over: { intervalMs?: number; ping?: () => Promise<unknown>; active?: () => boolean } = {}) {
    vi.useFakeTimers();
    const pings: number[] = [];
    const dead: string[] = [];
    const ref: { k?: ReturnType<typeof createKeepalive> } = {};
    const k = createKeepalive({
      intervalMs: over.intervalMs ?? 1000,
      active: over.active ?? (() => true),
      ping: () => {
        pings.push(Date.now());
        ref.k?.touch(); // the session's request counts as traffic, as the ping's datagram does
        return over.ping ? over.ping() : Promise.resolve();
      },
      onDead: (r) => dead.push(r),
    });
    ref.k = k;
    return { k, pings, dead };
  }

  it('pings after the idle interval, and traffic pushes the ping back', async () => {
    const { k, pings } = setup();
    const t0 = Date.now();
    k.start();
    await vi.advanceTimersByTimeAsync(600);
    k.touch();
    await vi.advanceTimersByTimeAsync(900);
    expect(pings).toEqual([]); // 900 ms since the traffic
    await vi.advanceTimersByTimeAsync(200);
    expect(pings).toEqual([t0 + 1600]);
    await vi.advanceTimersByTimeAsync(1000);
    expect(pings).toHaveLength(2);
    k.stop();
    await vi.advanceTimersByTimeAsync(5000);
    expect(pings).toHaveLength(2);
  });

  it('a ping that times out ends the session once; other failures keep it', async () => {
    let fail: BmcError = new BmcError('COMPLETION_CODE', 'busy');
    const { k, dead, pings } = setup({ ping: () => Promise.reject(fail) });
    k.start();
    await vi.advanceTimersByTimeAsync(1000);
    expect(pings).toHaveLength(1);
    expect(dead).toEqual([]);
    fail = new BmcError('TIMEOUT', 'no answer');
    await vi.advanceTimersByTimeAsync(1000);
    expect(dead).toEqual(['the BMC stopped answering (keepalive timed out)']);
    await vi.advanceTimersByTimeAsync(5000);
    expect(pings).toHaveLength(2);
  });

  it('does nothing when disabled (0) or once the session is no longer established', async () => {
    const off = setup({ intervalMs: 0 });
    off.k.start();
    await vi.advanceTimersByTimeAsync(10_000);
    expect(off.pings).toEqual([]);
    vi.useRealTimers();
    const closed = setup({ active: () => false });
    closed.k.start();
    await vi.advanceTimersByTimeAsync(10_000);
    expect(closed.pings).toEqual([]);
  });
});

describe('session options', () => {
  it('refuses unusable keepaliveMs, closeLingerMs and timeoutMs with INVALID_ARGUMENT naming the option', () => {
    for (const [option, value] of [
      ['keepaliveMs', -1],
      ['keepaliveMs', Number.NaN],
      ['closeLingerMs', Number.POSITIVE_INFINITY],
      ['closeLingerMs', -5],
      ['timeoutMs', 0],
      ['timeoutMs', Number.NaN],
    ] as const) {
      expect(() => sessionSettings({ [option]: value })).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT', message: expect.stringContaining(option) }));
    }
  });

  it('defaults, and timeoutMs sets the deadline of the handshake and of each command', () => {
    expect(sessionSettings({})).toMatchObject({ keepaliveMs: 25_000, lingerMs: 30_000, retry: { deadlineMs: 10_000 } });
    expect(sessionSettings({ timeoutMs: 3000, keepaliveMs: 0, closeLingerMs: 0 })).toMatchObject({ keepaliveMs: 0, lingerMs: 0, retry: { deadlineMs: 3000 } });
  });
});
