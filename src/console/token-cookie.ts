/**
 * Token mode's browser login: the page URL carries `?token=` once; a valid token is exchanged
 * for a random session id in an HttpOnly, Secure, SameSite=Strict cookie, and the browser is
 * sent to the same URL without the token, so the token does not stay in history, bookmarks or
 * proxy logs. The WebSocket upgrade from that page carries the cookie. Sessions expire after
 * `ttlMs` and at most `max` are kept (the oldest goes first).
 */
import { randomBytes } from 'node:crypto';
import type { IncomingMessage } from 'node:http';

export const COOKIE_NAME = 'metal_bmc_console';

export interface CookieSessions {
  /** a new session id and its Set-Cookie header value */
  issue(): { id: string; setCookie: string };
  /** whether the request carries a live session cookie */
  valid(req: IncomingMessage): boolean;
}

export function cookieValue(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

export function createCookieSessions(options: { ttlMs: number; max: number; now?: () => number }): CookieSessions {
  const now = options.now ?? Date.now;
  const expiries = new Map<string, number>();
  return {
    issue() {
      const id = randomBytes(32).toString('base64url');
      expiries.set(id, now() + options.ttlMs);
      if (expiries.size > options.max) expiries.delete(expiries.keys().next().value as string);
      const maxAge = Math.floor(options.ttlMs / 1000);
      return { id, setCookie: `${COOKIE_NAME}=${id}; Path=/; Max-Age=${maxAge}; HttpOnly; Secure; SameSite=Strict` };
    },
    valid(req) {
      const id = cookieValue(req.headers.cookie, COOKIE_NAME);
      if (id === undefined) return false;
      const expiry = expiries.get(id);
      if (expiry === undefined) return false;
      if (expiry <= now()) {
        expiries.delete(id);
        return false;
      }
      return true;
    },
  };
}
