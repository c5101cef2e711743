/**
 * The HMAC scheme of metal-stack/security as metal-api expects it (metal-interfaces.md §1):
 * `X-Date` (RFC 3339 UTC, seconds), `X-Data-Salt` (24 random ASCII letters) and
 * `Authorization: <type> <hex HMAC-SHA256(key, xdate + method + salt)>`. The body is not signed.
 * The key never leaves this module: it is neither logged nor put into an error.
 */
import { createHmac, randomInt, timingSafeEqual } from 'node:crypto';
import { BmcError } from '../errors.js';

export const AUTH_TYPE = 'Metal-Edit';
export const HEADER_DATE = 'X-Date';
export const HEADER_SALT = 'X-Data-Salt';
export const HEADER_AUTHORIZATION = 'Authorization';
/**
 * metal-api's `hmac-edit-lifetime` (and `hmac-view-lifetime`) default, cmd/metal-api main.go: a
 * request whose X-Date is older is refused (403); metal-stack/security never refuses a future one.
 */
export const DEFAULT_HMAC_LIFETIME_SECONDS = 30;

const LETTERS = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ';
const SALT_LENGTH = 24;
// RFC 3339 date-time, as Go's time.Parse(time.RFC3339, ...) accepts it.
const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;

/** 24 random letters from a-z and A-Z (crypto.randomInt, no modulo bias). */
export function randomSalt(): string {
  let salt = '';
  for (let i = 0; i < SALT_LENGTH; i++) salt += LETTERS[randomInt(LETTERS.length)];
  return salt;
}

/** `2026-11-23T18:44:45Z`: UTC, whole seconds, as Go's `t.UTC().Format(time.RFC3339)`. */
export function formatXDate(date: Date): string {
  if (!Number.isFinite(date.getTime())) throw new BmcError('INVALID_ARGUMENT', 'hmac: the date is invalid');
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

function mac(key: string, xdate: string, method: string, salt: string): string {
  return createHmac('sha256', Buffer.from(key, 'utf8')).update(xdate).update(method).update(salt).digest('hex');
}

/** The three headers for one request; call it once per attempt (fresh salt and date). */
export function signHeaders(key: string, method: string, now: Date = new Date(), salt: string = randomSalt()): Record<string, string> {
  if (typeof key !== 'string' || key.length === 0) throw new BmcError('INVALID_ARGUMENT', 'hmac: the key must be a non-empty string');
  if (typeof method !== 'string' || method.length === 0) throw new BmcError('INVALID_ARGUMENT', 'hmac: the method must be a non-empty string');
  const xdate = formatXDate(now);
  return {
    [HEADER_DATE]: xdate,
    [HEADER_SALT]: salt,
    [HEADER_AUTHORIZATION]: `${AUTH_TYPE} ${mac(key, xdate, method.toUpperCase(), salt)}`,
  };
}

/**
 * `guest`: no Authorization header, or one of another scheme or shape. metal-stack/security then
 * takes the request as the guest user, whom metal-api's role check refuses; any other failure is
 * the HMAC user's own error, refused at once. Both are 403 (metal-lib's UserAuth, the route's oneOf).
 */
export type VerifyResult = { ok: true } | { ok: false; guest: boolean; reason: string };

type HeaderBag = Record<string, string | string[] | undefined>;

function header(headers: HeaderBag, name: string): string | undefined {
  const lower = name.toLowerCase();
  for (const [k, v] of Object.entries(headers)) {
    if (k.toLowerCase() === lower) return Array.isArray(v) ? v[0] : v;
  }
  return undefined;
}

/**
 * Server side, for the metal-api stand-in, as metal-stack/security's UserFromRequestData: it parses
 * `X-Date`, re-formats it as UTC seconds and signs that, so a date with an offset or fraction still
 * verifies when the client signed the canonical form. A date more than `lifetimeSeconds` in the
 * past is refused (0: no limit); one in the future never is. The reasons are security's texts.
 */
export function verifyHeaders(
  key: string,
  method: string,
  headers: HeaderBag,
  now: Date = new Date(),
  lifetimeSeconds: number = DEFAULT_HMAC_LIFETIME_SECONDS,
): VerifyResult {
  const auth = header(headers, HEADER_AUTHORIZATION);
  if (auth === undefined || auth === '') return { ok: false, guest: true, reason: 'no auth found' };
  const parts = auth.split(' ');
  if (parts.length !== 2) return { ok: false, guest: true, reason: 'illegal auth found' };
  const [type, given] = parts as [string, string];
  if (type.trim() !== AUTH_TYPE) return { ok: false, guest: true, reason: 'unknown authtype found' };

  const xdate = header(headers, HEADER_DATE) ?? '';
  const m = RFC3339.exec(xdate);
  const ts = m ? Date.parse(xdate.toUpperCase()) : NaN;
  if (!Number.isFinite(ts)) return { ok: false, guest: false, reason: `unknown timestamp ${JSON.stringify(xdate.slice(0, 40))} in "${HEADER_DATE}" header, use RFC3339` };
  if (lifetimeSeconds > 0 && (now.getTime() - ts) / 1000 > lifetimeSeconds) {
    return { ok: false, guest: false, reason: `the timestamp in your header is too old: ${JSON.stringify(xdate)}, please check if you have time synchronization activated` };
  }

  const salt = header(headers, HEADER_SALT) ?? '';
  const expected = Buffer.from(mac(key, formatXDate(new Date(Math.floor(ts / 1000) * 1000)), method.toUpperCase(), salt), 'utf8');
  const actual = Buffer.from(given.trim(), 'utf8');
  if (actual.length !== expected.length || !timingSafeEqual(actual, expected)) return { ok: false, guest: false, reason: 'Wrong HMAC found' };
  return { ok: true };
}
