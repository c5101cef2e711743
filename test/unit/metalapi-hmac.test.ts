import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { formatXDate, randomSalt, signHeaders, verifyHeaders } from '../../src/metalapi/hmac.js';

const KEY = 'metal-test-key';
const NOW = new Date('2026-11-23T18:44:45.678Z');
const SALT = 'abcdefghijklmnopqrstuVWX';

describe('signHeaders', () => {
  it('matches a vector computed with openssl over X-Date + method + salt', () => {
    // printf '%s' '2026-11-23T18:44:45ZPOSTabcdefghijklmnopqrstuVWX' | openssl dgst -sha256 -hmac 'metal-test-key'
    const h = signHeaders(KEY, 'POST', NOW, SALT);
    expect(h).toEqual({
      'X-Date': '2026-11-23T18:44:45Z',
      'X-Data-Salt': SALT,
      Authorization: 'Metal-Edit 10d09ad4b8fafb8fd42e89ea60d2154e7d67462fdd3e7a24cc6f31d9e4524eb0',
    });
  });

  it('matches node:crypto over the documented concatenation for any key, method and date', () => {
    fc.assert(
      fc.property(
        fc.string({ minLength: 1 }),
        fc.constantFrom('GET', 'POST', 'PUT', 'DELETE'),
        fc.date({ min: new Date('1970-01-01T00:00:00Z'), max: new Date('2999-12-31T23:59:59Z'), noInvalidDate: true }),
        (key, method, date) => {
          const h = signHeaders(key, method, date);
          const xdate = h['X-Date'] ?? '';
          const salt = h['X-Data-Salt'] ?? '';
          expect(xdate).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/);
          expect(Date.parse(xdate)).toBe(Math.floor(date.getTime() / 1000) * 1000);
          const expected = createHmac('sha256', key).update(`${xdate}${method}${salt}`).digest('hex');
          expect(h.Authorization).toBe(`Metal-Edit ${expected}`);
        },
      ),
    );
  });

  it('uses a fresh salt of 24 ASCII letters per call', () => {
    const salts = new Set<string>();
    for (let i = 0; i < 200; i++) {
      const s = randomSalt();
      expect(s).toMatch(/^[a-zA-Z]{24}$/);
      salts.add(s);
    }
    expect(salts.size).toBe(200);
    expect(signHeaders(KEY, 'GET')['X-Data-Salt']).not.toBe(signHeaders(KEY, 'GET')['X-Data-Salt']);
  });

  it('formats RFC 3339 UTC without fractions', () => {
    expect(formatXDate(new Date('2026-01-02T03:04:05.999Z'))).toBe('2026-01-02T03:04:05Z');
    expect(() => formatXDate(new Date(NaN))).toThrow(/invalid/);
  });

  it('rejects an empty key without showing anything secret', () => {
    expect(() => signHeaders('', 'GET')).toThrow(/key must be a non-empty string/);
  });
});

describe('verifyHeaders', () => {
  it('accepts what signHeaders produced (round trip), header names in any case', () => {
    const h = signHeaders(KEY, 'GET', NOW);
    expect(verifyHeaders(KEY, 'GET', h, NOW)).toEqual({ ok: true });
    const lower = Object.fromEntries(Object.entries(h).map(([k, v]) => [k.toLowerCase(), v]));
    expect(verifyHeaders(KEY, 'GET', lower, new Date(NOW.getTime() + 10_000))).toEqual({ ok: true });
  });

  it('rejects a wrong key, method, salt or MAC', () => {
    const h = signHeaders(KEY, 'POST', NOW);
    expect(verifyHeaders('other', 'POST', h, NOW)).toEqual({ ok: false, guest: false, reason: 'Wrong HMAC found' });
    expect(verifyHeaders(KEY, 'GET', h, NOW)).toEqual({ ok: false, guest: false, reason: 'Wrong HMAC found' });
    expect(verifyHeaders(KEY, 'POST', { ...h, 'X-Data-Salt': 'x' }, NOW)).toEqual({ ok: false, guest: false, reason: 'Wrong HMAC found' });
    expect(verifyHeaders(KEY, 'POST', { ...h, Authorization: 'Metal-Edit 00' }, NOW)).toEqual({ ok: false, guest: false, reason: 'Wrong HMAC found' });
  });

  it("rejects a date older than metal-api's hmac-edit-lifetime (30 s) with security's text; a future date never", () => {
    const h = signHeaders(KEY, 'GET', NOW);
    expect(verifyHeaders(KEY, 'GET', h, new Date(NOW.getTime() + 29_000))).toEqual({ ok: true });
    expect(verifyHeaders(KEY, 'GET', h, new Date(NOW.getTime() + 31_000))).toEqual({
      ok: false,
      guest: false,
      reason: `the timestamp in your header is too old: "${formatXDate(NOW)}", please check if you have time synchronization activated`,
    });
    // metal-stack/security checks only time.Since(ts) > Lifetime: a client clock hours ahead still signs valid requests
    expect(verifyHeaders(KEY, 'GET', h, new Date(NOW.getTime() - 16_000))).toEqual({ ok: true });
    expect(verifyHeaders(KEY, 'GET', h, new Date(NOW.getTime() - 86_400_000))).toEqual({ ok: true });
    expect(verifyHeaders(KEY, 'GET', h, new Date(NOW.getTime() + 60_000), 120)).toEqual({ ok: true });
    expect(verifyHeaders(KEY, 'GET', h, new Date(NOW.getTime() + 86_400_000), 0)).toEqual({ ok: true });
  });

  it('rejects missing or malformed headers', () => {
    const h = signHeaders(KEY, 'GET', NOW);
    // no header, or one of another shape or scheme: the guest (refused by metal-api's role check)
    expect(verifyHeaders(KEY, 'GET', {}, NOW)).toEqual({ ok: false, guest: true, reason: 'no auth found' });
    expect(verifyHeaders(KEY, 'GET', { ...h, Authorization: 'Metal-Edit a b' }, NOW)).toEqual({ ok: false, guest: true, reason: 'illegal auth found' });
    expect(verifyHeaders(KEY, 'GET', { ...h, Authorization: 'Metal-View abc' }, NOW)).toEqual({ ok: false, guest: true, reason: 'unknown authtype found' });
    expect(verifyHeaders(KEY, 'GET', { ...h, 'X-Date': 'yesterday' }, NOW)).toMatchObject({ ok: false, guest: false, reason: /^unknown timestamp "yesterday" in "X-Date" header, use RFC3339/ });
  });

  it('canonicalises X-Date like metal-stack/security (an offset form of the same second verifies)', () => {
    const h = signHeaders(KEY, 'GET', NOW);
    expect(verifyHeaders(KEY, 'GET', { ...h, 'X-Date': '2026-11-23T20:44:45+02:00' }, NOW)).toEqual({ ok: true });
  });
});
