import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { deriveSessionKeys, SequenceWindow, SessionTable, type ServerSession } from '../../src/sim/ipmi-session.js';
import { cipherSuite } from '../../src/ipmi/cipher.js';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');

describe('deriveSessionKeys', () => {
  // Captured from `ipmitool -C 17 -vvvv` 1.8.19: its session integrity key and the K1/K2 it derived.
  it('derives K1/K2 for HMAC-SHA256 from a 20-byte constant, as ipmitool does', () => {
    const sik = hex('72e0ebc3bf7da7233c97295209c526c04770c216d513263a675d93a074c785ad');
    const { k1, k2 } = deriveSessionKeys('hmac-sha256', sik);
    expect(k1).toEqual(hex('cc3ab190f160bf5527c060f99e201164deb07d2db723d182a2351eb95c5ed08a'));
    expect(k2).toEqual(hex('fef55277c22a218836d09ba94e90cdf39032920b1eabd47a64404f59fefa7d18'));
  });

  it('gives 20-byte keys for HMAC-SHA1', () => {
    const { k1, k2 } = deriveSessionKeys('hmac-sha1', Buffer.alloc(20, 7));
    expect(k1.length).toBe(20);
    expect(k2.length).toBe(20);
    expect(k1.equals(k2)).toBe(false);
  });
});

describe('SequenceWindow', () => {
  it('accepts rising numbers and rejects 0 and replays', () => {
    const w = new SequenceWindow();
    expect(w.accept(0)).toBe(false);
    expect(w.accept(5)).toBe(true);
    expect(w.accept(6)).toBe(true);
    expect(w.accept(6)).toBe(false);
    expect(w.accept(5)).toBe(false);
  });

  it('accepts late packets inside the window once, and nothing older', () => {
    const w = new SequenceWindow(16);
    expect(w.accept(100)).toBe(true);
    expect(w.accept(103)).toBe(true);
    expect(w.accept(101)).toBe(true);
    expect(w.accept(101)).toBe(false);
    expect(w.accept(88)).toBe(true); // 103 - 15
    expect(w.accept(87)).toBe(false); // 103 - 16: too old
  });

  it('rejects jumps further ahead than the window', () => {
    const w = new SequenceWindow(16);
    w.accept(10);
    expect(w.accept(27)).toBe(false);
    expect(w.accept(26)).toBe(true);
  });

  it('wraps at 2^32', () => {
    const w = new SequenceWindow();
    expect(w.accept(0xfffffffe)).toBe(true);
    expect(w.accept(0xffffffff)).toBe(true);
    expect(w.accept(3)).toBe(true);
    expect(w.accept(0xffffffff)).toBe(false);
  });

  it('never accepts a number twice within the window', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 1000 }), fc.array(fc.integer({ min: -20, max: 20 }), { maxLength: 200 }), (start, steps) => {
        const w = new SequenceWindow(16);
        const accepted = new Set<number>();
        let at = start;
        for (const step of steps) {
          at = Math.max(1, at + step);
          if (w.accept(at)) {
            expect(accepted.has(at)).toBe(false);
            accepted.add(at);
          }
        }
      }),
    );
  });
});

describe('SessionTable', () => {
  const session = (id: number, kind: 'opened' | 'active' = 'opened'): ServerSession => ({
    bmcSessionId: id,
    consoleSessionId: id + 1000,
    suite: cipherSuite(3),
    tag: 0,
    requestedPrivilege: 4,
    remote: { address: '127.0.0.1', port: 9000 },
    lastActivity: 0,
    phase: kind === 'opened' ? { kind } : ({ kind } as unknown as ServerSession['phase']),
  });

  it('is full at maxSessions and counts by phase', () => {
    const t = new SessionTable(2);
    t.add(session(1));
    expect(t.full).toBe(false);
    t.add(session(2, 'active'));
    expect(t.full).toBe(true);
    expect([t.count(), t.count('active'), t.count('opened')]).toEqual([2, 1, 1]);
    t.delete(1);
    expect(t.full).toBe(false);
  });

  it('finds a half-open session again by console id and address', () => {
    const t = new SessionTable(4);
    t.add(session(1));
    expect(t.findHalfOpen(1001, { address: '127.0.0.1', port: 9000 })?.bmcSessionId).toBe(1);
    expect(t.findHalfOpen(1001, { address: '127.0.0.1', port: 9001 })).toBeUndefined();
  });

  it('hands out non-zero ids that are not in use', () => {
    const t = new SessionTable(4);
    t.add(session(7));
    const values = [0, 7, 9];
    expect(t.newId(() => values.shift()!)).toBe(9);
  });
});
