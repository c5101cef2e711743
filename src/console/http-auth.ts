/**
 * Authentication and authorisation of the HTTPS/WebSocket console listener, per request:
 *   - Origin: a browser request whose `Origin` is neither this listener's own origin nor one of
 *     the allowed origins is refused (403), so a web page cannot open a console with the
 *     operator's client certificate (cross-site WebSocket hijacking).
 *   - Who: a verified client certificate; in token mode also `Authorization: Bearer <token>` or
 *     the session cookie that the page's one-time `?token=` was exchanged for (token-cookie.ts).
 *     Wrong tokens are throttled per source address (429 while blocked, even for the right one).
 *   - What: `mayOpen()` of access.ts for the machine.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { normalOrigin } from '../config/console-access.js';
import { mayOpen, type AuthzRule, type Principal } from './access.js';
import type { Throttle } from './limits.js';
import { verifiedPrincipal } from './tls.js';
import type { CookieSessions } from './token-cookie.js';
import { requestUrl } from '../net/request-url.js';

export type Refusal = 'origin' | 'unauthenticated' | 'forbidden' | 'throttled';

export type AuthOutcome = { ok: true; principal: Principal; subject: string } | { ok: false; status: 401 | 403 | 429; reason: Refusal; message: string };

export interface HttpAuthOptions {
  /** token mode when set */
  token?: string;
  rules: readonly AuthzRule[];
  /** origins allowed besides the listener's own, e.g. https://console.example.com */
  allowedOrigins: readonly string[];
  throttle: Throttle;
  cookies: CookieSessions;
}

export interface HttpAuth {
  readonly tokenMode: boolean;
  checkOrigin(req: IncomingMessage): AuthOutcome | undefined;
  /** who the request is, or why not */
  authenticate(req: IncomingMessage): AuthOutcome;
  /** authenticate, then may this principal open `machineId` */
  authorize(req: IncomingMessage, machineId: string): AuthOutcome;
  /** `?token=` of a page request: undefined without one; a cookie to set, or the refusal */
  exchangeToken(req: IncomingMessage): { setCookie: string } | (AuthOutcome & { ok: false }) | undefined;
}

function digest(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

/** Constant-time comparison (over digests, so the length does not leak either). */
export function tokenMatches(presented: string | undefined, expected: string): boolean {
  if (presented === undefined) return false;
  return timingSafeEqual(digest(presented), digest(expected));
}

export function bearerToken(req: IncomingMessage): string | undefined {
  const header = req.headers.authorization;
  const m = header ? /^Bearer\s+(\S+)\s*$/i.exec(header) : null;
  return m?.[1];
}

const refuse = (status: 401 | 403 | 429, reason: Refusal, message: string): AuthOutcome & { ok: false } => ({ ok: false, status, reason, message });

export function createHttpAuth(options: HttpAuthOptions): HttpAuth {
  const tokenMode = options.token !== undefined && options.token !== '';
  const allowed = new Set(options.allowedOrigins.map((o) => normalOrigin(o)).filter((o): o is string => o !== undefined));
  const sourceOf = (req: IncomingMessage) => req.socket.remoteAddress ?? 'unknown';

  const checkToken = (req: IncomingMessage, presented: string): AuthOutcome => {
    const source = sourceOf(req);
    if (options.throttle.blocked(source)) return refuse(429, 'throttled', 'too many wrong tokens from this address; try again later');
    if (tokenMatches(presented, options.token as string)) return { ok: true, principal: { kind: 'token' }, subject: 'bearer-token' };
    options.throttle.failure(source);
    return refuse(401, 'unauthenticated', 'wrong token');
  };

  const authenticate = (req: IncomingMessage): AuthOutcome => {
    const socket = req.socket as TLSSocket;
    const verified = verifiedPrincipal(socket);
    if (verified) return { ok: true, principal: verified.principal, subject: verified.subject };
    if (tokenMode) {
      const presented = bearerToken(req);
      if (presented !== undefined) return checkToken(req, presented);
      if (options.cookies.valid(req)) return { ok: true, principal: { kind: 'token' }, subject: 'bearer-token' };
    }
    return refuse(401, 'unauthenticated', tokenMode ? 'a client certificate or a valid token is required' : 'a client certificate is required');
  };

  /**
   * A request without an Origin: a tool (no fetch metadata), an operator's own navigation, or a
   * browser request another site started (an <img>, a frame, a link), which carries the operator's
   * client certificate all the same (SameSite does not apply to certificates). Another site may
   * link to a page (an operator's dashboard opening a console: a top-level navigation); the API
   * (`/v1/`: console logs, grep, status) and everything else it starts are refused, so no page the
   * operator visits can make the daemon read its logs or hold its streams.
   */
  function checkFetchSite(req: IncomingMessage): AuthOutcome | undefined {
    const site = req.headers['sec-fetch-site'];
    if (site === undefined || site === 'none' || site === 'same-origin') return undefined;
    const navigation = req.headers['sec-fetch-mode'] === 'navigate' && req.headers['sec-fetch-dest'] === 'document';
    if (navigation && !requestUrl(req.url).pathname.startsWith('/v1/')) return undefined;
    return refuse(403, 'origin', `a request another site started (Sec-Fetch-Site: ${String(site).slice(0, 20)}) is refused; open this address directly`);
  }

  return {
    tokenMode,
    checkOrigin(req) {
      const origin = req.headers.origin;
      if (origin === undefined) return checkFetchSite(req);
      const own = req.headers.host ? normalOrigin(`https://${req.headers.host}`) : undefined;
      const presented = normalOrigin(origin);
      if (presented !== undefined && (presented === own || allowed.has(presented))) return undefined;
      return refuse(403, 'origin', `origin ${origin.slice(0, 100)} is not allowed`);
    },
    authenticate,
    authorize(req, machineId) {
      const who = authenticate(req);
      if (!who.ok) return who;
      if (mayOpen(options.rules, who.principal, machineId)) return who;
      return refuse(403, 'forbidden', `${who.subject} may not open the console of machine ${machineId}`);
    },
    exchangeToken(req) {
      if (!tokenMode) return undefined;
      const presented = requestUrl(req.url).searchParams.get('token');
      if (presented === null) return undefined;
      // only a navigation of the operator's (typed, a bookmark, this site's own link), or a client
      // that sends no fetch metadata: an image or frame of another site with wrong tokens in it
      // would otherwise spend the address's token failures and lock the operator out
      const site = req.headers['sec-fetch-site'];
      if (site !== undefined && site !== 'none' && site !== 'same-origin') return refuse(403, 'origin', `a token is exchanged only on a navigation of this site, not from ${String(site).slice(0, 20)}`);
      const outcome = checkToken(req, presented);
      if (!outcome.ok) return outcome;
      return { setCookie: options.cookies.issue().setCookie };
    },
  };
}
