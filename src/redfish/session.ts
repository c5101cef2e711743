/**
 * A Redfish client with authentication: a SessionService session (X-Auth-Token) or
 * HTTP Basic, chosen by `authMode`. The client owns its session and its connection
 * pool; `close()` deletes the session (best effort, short deadline) and never throws.
 * An expired session (401 after a good login) is replaced once, transparently. A session can
 * outlive its client: `close({ keepSession: true })` leaves it open on the BMC, and a later client
 * of the same BMC and user adopts it (`resumeSession`) instead of logging in; a kept session past
 * its use is deleted by the next client (`retireSession`).
 */
import type { Readable } from 'node:stream';
import { abortError, BmcError, isBmcError } from '../errors.js';
import type { Logger } from '../log.js';
import { checkCount, checkMs, raceAbort } from '../deadline.js';
import { createTransport, type HttpMethod, type HttpResponse, type HttpTransport, type TransportOptions } from './http.js';
import { odataId, str } from './json.js';
import { loginBudgetKey, loginHold, processLoginBudget, type LoginBudget, type LoginPolicy } from './login-budget.js';
import { basicRefusedToo, fullSlotsWarnings, sessionLimitMessageId, sessionSlotsTaken } from './session-limit.js';
import { sessionLocation } from './wire.js';

export type AuthMode = 'session' | 'basic' | 'auto';

export interface RedfishOptions extends TransportOptions {
  user: string;
  password: string;
  /** Default 'auto': a session when the BMC offers one, else Basic. */
  authMode?: AuthMode;
  /** Bounds opening (login and credential check). */
  signal?: AbortSignal;
  /** Deadline of the session DELETE in close(). Default 3000. */
  closeTimeoutMs?: number;
  logger?: Logger;
  /**
   * GET the service root beside the login (DSP0266: it answers without authentication), so a
   * reader that starts there pays no round trip of its own for it. See `serviceRootAtLogin`.
   */
  serviceRootAtLogin?: boolean;
  /**
   * A session an earlier client of this BMC and user kept open: used instead of a login (no
   * request at open). The BMC may have dropped it (idle timeout, reboot): the first 401 logs in
   * again, once, as for any expired session.
   */
  resumeSession?: RedfishSessionHandle;
  /** A kept session not to be used any more: deleted beside the client's work, awaited by close(). */
  retireSession?: RedfishSessionHandle;
  /** New logins after the BMC went away that it may refuse before a refusal is final, and the least time between them: RELOGIN_AFTER_RESTART. */
  reloginAfterRestart?: { refusals?: number; everyMs?: number };
  /**
   * The refused logins of every client of this BMC and user (login-budget.ts): default the
   * process's (`processLoginBudget`); a report worker passes the one its read brought.
   */
  loginBudget?: LoginBudget;
}

/**
 * A BMC back from a restart (a firmware update's) may answer before it can check a password: OpenBMC's
 * bmcweb fails authorization until phosphor-user-manager is up (ibm-openbmc/bmcweb#222;
 * openbmc/openbmc#2974), so the login that replaces the session the restart ended is refused 401,
 * and a client keeping that refusal for good fails the firmware job's wait for the new version at
 * once. After the BMC went away, a refused new login may therefore be sent again: at most
 * `refusals` refused logins in all, at least `everyMs` apart. The threshold assumed: a BMC locks an
 * account after 5 failed logins in a row at the fewest, and counts failures over no less than a
 * minute; 3 refusals a minute apart leave 2 to spare and put at most one in any minute. A BMC that
 * never went away refuses for its credentials: its first refusal is final, as before. The count is
 * kept per BMC and user for every client of the process (login-budget.ts), first logins included:
 * the report reads' and the commands' clients of one BMC share it.
 */
export const RELOGIN_AFTER_RESTART = { refusals: 3, everyMs: 60_000 } as const;

/**
 * A new login the BMC refused (401/403) after it went away, while another may still be sent from
 * `retryAt` (RELOGIN_AFTER_RESTART): code AUTH_FAILED and the refusal's status, as the refusal, but
 * a failure worth waiting through (task.ts isTransient), not a final one.
 */
export class ReloginPendingError extends BmcError {
  readonly retryAt: number;
  constructor(refusal: BmcError, retryAt: number) {
    super('AUTH_FAILED', `${refusal.message} (the BMC came back from a restart and may not check passwords yet; the next login not before ${new Date(retryAt).toISOString()})`, {
      cause: refusal,
      ...(refusal.httpStatus !== undefined ? { httpStatus: refusal.httpStatus } : {}),
    });
    this.name = 'ReloginPendingError';
    this.retryAt = retryAt;
  }
}

/** What identifies a Redfish session to its BMC: the token (a secret) and where to DELETE it. */
export interface RedfishSessionHandle {
  token: string;
  location: string | undefined;
}

export interface RequestOptions {
  signal?: AbortSignal;
  timeoutMs?: number;
  headers?: Record<string, string>;
}

export interface PatchOptions extends RequestOptions {
  etag?: string | null;
}

export type RedfishReply = HttpResponse;

export interface RedfishClient {
  readonly origin: string;
  /** The authentication in use after `auto` resolved. */
  readonly auth: 'session' | 'basic';
  /** the service root's body read beside the login (`serviceRootAtLogin`), else undefined */
  readonly serviceRootAtLogin?: Promise<unknown>;
  get<T = unknown>(path: string, options?: RequestOptions): Promise<T>;
  /** GET with status and headers (ETag, Location). */
  getReply(path: string, options?: RequestOptions): Promise<RedfishReply>;
  post(path: string, body: unknown, options?: RequestOptions): Promise<RedfishReply>;
  /**
   * Sends If-Match when the resource carries an ETag (header or `@odata.etag`). `etag` skips the
   * lookup GET (`null`: known to have none). Retries once with a fresh ETag on 412/428.
   */
  patch(path: string, body: unknown, options?: PatchOptions): Promise<RedfishReply>;
  delete(path: string, options?: RequestOptions): Promise<RedfishReply>;
  /** POST of a streamed body (multipart uploads); never retried. */
  upload(path: string, stream: Readable, options: RequestOptions & { contentType: string; contentLength?: number }): Promise<RedfishReply>;
  /**
   * The session in use and whether it is the one `resumeSession` gave; undefined with Basic, and
   * after the BMC refused the session and a new login failed. `refused`: the resumed session got
   * error answers from the BMC and no success (a session the BMC no longer honours, whatever
   * status it answers with): not worth keeping.
   */
  session(): (RedfishSessionHandle & { resumed: boolean; refused?: boolean }) | undefined;
  /** Deletes the session (unless `keepSession`: it stays open for a later client) and closes the connections. */
  close(options?: { keepSession?: boolean }): Promise<void>;
  /**
   * `text` with the client's secrets (password, Basic credentials, session tokens) replaced by
   * `[redacted]`: for a BMC's words quoted from a 2xx answer, which the transport does not turn
   * into an error itself (a PATCH's message annotations).
   */
  scrub(text: string): string;
}

export const SESSIONS_PATH = '/redfish/v1/SessionService/Sessions';
/** A resource that needs authentication, read to check Basic credentials at open. */
const CREDENTIAL_CHECK_PATH = '/redfish/v1/Systems';
/**
 * Answers to the session POST that mean "no sessions here, use Basic": 404/405/501, and 400 as
 * iDRAC 7/8 answer it (dell/iDRAC-Redfish-Scripting#219). Basic is then checked on its own.
 */
const SESSION_UNSUPPORTED = new Set([400, 404, 405, 501]);

type Auth = { kind: 'basic'; header: string } | { kind: 'session'; token: string; location: string | undefined; resumed?: boolean };

interface Req {
  method: HttpMethod;
  path: string;
  json?: unknown;
  stream?: Readable;
  options?: RequestOptions;
}

export async function openRedfish(options: RedfishOptions): Promise<RedfishClient> {
  const mode = options.authMode ?? 'auto';
  if (!['session', 'basic', 'auto'].includes(mode)) throw new BmcError('INVALID_ARGUMENT', `authMode must be session, basic or auto, got ${String(mode)}`);
  if (typeof options.user !== 'string' || options.user === '') throw new BmcError('INVALID_ARGUMENT', 'user must be a non-empty string');
  if (typeof options.password !== 'string') throw new BmcError('INVALID_ARGUMENT', 'password must be a string');
  const closeTimeoutMs = checkMs('closeTimeoutMs', options.closeTimeoutMs, 3000, 60_000);
  const relogins: LoginPolicy = {
    refusals: checkCount('reloginAfterRestart.refusals', options.reloginAfterRestart?.refusals, RELOGIN_AFTER_RESTART.refusals, 1, 10),
    everyMs: checkMs('reloginAfterRestart.everyMs', options.reloginAfterRestart?.everyMs, RELOGIN_AFTER_RESTART.everyMs),
  };
  const transport = createTransport(options);
  transport.addSecret(options.password);
  const basic = Buffer.from(`${options.user}:${options.password}`, 'utf8').toString('base64');
  transport.addSecret(basic);
  const log = options.logger;
  const budget = options.loginBudget ?? processLoginBudget;
  const budgetKey = loginBudgetKey(options.host, options.port ?? 443, options.user, options.password);

  /** The budget's record of this BMC and user now, and what it holds back under `relogins`. */
  function standingHold(now = Date.now()): { record: ReturnType<LoginBudget['get']>; hold: ReturnType<typeof loginHold> } {
    const record = budget.get(budgetKey, now);
    return { record, hold: loginHold(record, relogins, now, budget.windowMs) };
  }

  /**
   * Why no login of this user is sent to this BMC now (refusals of any client of the process
   * stand: login-budget.ts), as the error the caller hears, or undefined when one may go. Pending
   * (ReloginPendingError) where the BMC went away, for the caller or for the client refused last.
   */
  function heldLogin(away: boolean): BmcError | undefined {
    const { record, hold } = standingHold();
    if (hold === undefined || record === undefined) return undefined;
    const until = new Date(hold.until).toISOString();
    const why = hold.spent ? `${record.count} logins of this user refused by the BMC, none sent before ${until}` : `a login of this user refused by the BMC at ${new Date(record.lastAt).toISOString()}, the next not before ${until}`;
    // a Basic refused after the session slots were all taken is no wrong password: heard as it was told
    const refusal = new BmcError(record.slotsTaken ? 'NO_SESSION_SLOTS' : 'AUTH_FAILED', `POST ${SESSIONS_PATH}: login not sent (${why}); the refusal: ${record.message}`, { httpStatus: record.status });
    return !hold.spent && (away || record.away) ? new ReloginPendingError(refusal, hold.until) : refusal;
  }

  /**
   * A login (session POST, Basic check) within the budget: not sent while refusals stand, its
   * refusal counted, its success clearing them. `refusedAs`: the error a refusal is heard (and
   * remembered in the budget) as, when it means more than a wrong password.
   */
  async function withinBudget(attempt: () => Promise<Auth>, away: boolean, refusedAs?: (refusal: BmcError) => BmcError): Promise<Auth> {
    const held = heldLogin(away);
    if (held !== undefined) throw held;
    try {
      const auth = await attempt();
      budget.taken(budgetKey);
      return auth;
    } catch (err) {
      // a refusal of the password; not a TLS refusal (AUTH_FAILED without a status): nothing was checked
      if (!isBmcError(err, 'AUTH_FAILED') || (err.httpStatus !== 401 && err.httpStatus !== 403)) throw err;
      // a session refused for want of a slot, answered 401 or 403 (bmcweb forks, others): no verdict
      // on the password, and counting it would hold back the Basic login that follows
      if (sessionLimitMessageId(err) !== undefined) throw err;
      const heard = refusedAs?.(err) ?? err;
      budget.refused(budgetKey, { status: err.httpStatus, message: heard.message, away, ...(heard.code === 'NO_SESSION_SLOTS' ? { slotsTaken: true as const } : {}) });
      throw heard;
    }
  }

  const login = (signal: AbortSignal | undefined, away: boolean): Promise<Auth> => withinBudget(() => postLogin(signal), away);

  async function postLogin(signal: AbortSignal | undefined): Promise<Auth> {
    const res = await transport.request({
      method: 'POST',
      path: SESSIONS_PATH,
      json: { UserName: options.user, Password: options.password },
      // a session the BMC made is ours to delete, whatever the body it wrote beside its token
      bodyOptional: true,
      signal,
    });
    // header names arrive lower-cased, whatever letter case the BMC used (X-Auth-Token, x-auth-token, X-AUTH-TOKEN)
    const token = res.headers['x-auth-token']?.trim();
    if (token === undefined || token === '') throw new BmcError('PROTOCOL', `POST ${SESSIONS_PATH}: no X-Auth-Token in the answer (HTTP ${res.status})`);
    transport.addSecret(token);
    // 201 is the standard answer; 200 (OpenBMC before 2019, some AMI builds) carries the same session
    const where = sessionLocation(transport.origin, res.headers.location, odataId(res.body));
    if (where === undefined) log?.warn({ origin: transport.origin }, 'redfish session without Location: it cannot be deleted on close');
    else if (where.via !== 'same-origin') log?.debug({ origin: transport.origin, via: where.via }, 'redfish session location taken from a foreign URL or the body');
    return { kind: 'session', token, location: where?.path };
  }

  /** set when the caller gave up on the first login: the login finishes in the background, deletes its session and closes the transport */
  let loginAbandoned = false;

  /**
   * The first login, not cut off by the caller's abort: once it is sent, the BMC may have created
   * the session, and only its answer names it. A session nobody can name stays on the BMC until
   * its idle timeout, in one of its few slots. The caller hears at once (ABORTED, or its deadline's
   * TIMEOUT); the login runs on to its own deadline, then its session is deleted.
   */
  async function firstLogin(signal: AbortSignal | undefined): Promise<Auth> {
    if (signal?.aborted) throw abortError(signal, `POST ${SESSIONS_PATH}`);
    const pending = login(undefined, transport.outages > 0);
    try {
      return await raceAbort(pending, signal, { reason: (s) => abortError(s, `POST ${SESSIONS_PATH}`) });
    } catch (err) {
      if (signal?.aborted) {
        loginAbandoned = true;
        void pending
          .then((a) => deleteSessionOf(transport, a, closeTimeoutMs, log), () => undefined)
          .finally(() => transport.close());
      }
      throw err;
    }
  }

  /** Basic credentials, checked on CREDENTIAL_CHECK_PATH before use; `away` and `refusedAs` as for withinBudget. */
  function checkBasic(signal: AbortSignal | undefined, away: boolean, refusedAs?: (refusal: BmcError) => BmcError): Promise<Auth> {
    const auth: Auth = { kind: 'basic', header: `Basic ${basic}` };
    return withinBudget(
      async () => {
        await transport.request({ method: 'GET', path: CREDENTIAL_CHECK_PATH, headers: { authorization: auth.header }, signal, once: true });
        return auth;
      },
      away,
      refusedAs,
    );
  }

  /**
   * A session login the BMC refused for want of a free slot (`refusal` carries its session-limit
   * MessageId), the first or a new one in place of an expired session; undefined for any other
   * failure. Session mode fails NO_SESSION_SLOTS; auto mode logs in with HTTP Basic instead (basic
   * mode sends no session login). The MessageId is the BMC's words, scrubbed before it is quoted.
   * A refusal of Basic then counts in the login budget as any refused login does: many BMCs count
   * a 401 to Basic credentials as a failed login on the account's lockout counter (iDRAC's IP
   * blocking and user lockout, pam_faillock on OpenBMC), and the password may be wrong after all;
   * the budget holds back later logins of this user instead of locking the account out. It is
   * heard (and remembered) as the session limit's NO_SESSION_SLOTS, not AUTH_FAILED. `signal` and
   * `away` as for checkBasic: the callers differ in them.
   */
  function loginForFullSlots(refusal: unknown, signal: AbortSignal | undefined, away: boolean): Promise<Auth> | undefined {
    const found = sessionLimitMessageId(refusal);
    if (found === undefined || !isBmcError(refusal)) return undefined;
    const limit = transport.scrub(found);
    if (mode === 'session') return Promise.reject(sessionSlotsTaken(transport.origin, limit, refusal));
    // once per BMC and hour: a fleet whose slots an exporter leaks would say it every cycle for every BMC
    if (fullSlotsWarnings.due(transport.origin)) log?.warn({ origin: transport.origin, messageId: limit }, 'redfish session slots of the BMC all taken; using HTTP Basic for its connections (said once an hour per BMC)');
    else log?.debug({ origin: transport.origin, messageId: limit }, 'redfish session slots of the BMC all taken; using HTTP Basic for this connection');
    return checkBasic(signal, away, (basicRefusal) => basicRefusedToo(transport.origin, limit, refusal, basicRefusal));
  }

  const rootAhead = options.serviceRootAtLogin ? transport.request({ method: 'GET', path: '/redfish/v1/', signal: options.signal }).then((r) => r.body) : undefined;
  rootAhead?.catch(() => undefined); // observed by whoever uses it
  let auth: Auth;
  const resume = mode === 'basic' ? undefined : options.resumeSession;
  for (const kept of [resume, options.retireSession]) if (kept) transport.addSecret(kept.token);
  try {
    if (resume) {
      auth = { kind: 'session', token: resume.token, location: resume.location, resumed: true };
    } else if (mode === 'basic') {
      auth = await checkBasic(options.signal, transport.outages > 0);
    } else {
      // the BMC seen away before the login: the login's own answer (a 503 for want of a slot) is no sign of a restart
      const away = transport.outages > 0;
      try {
        auth = await firstLogin(options.signal);
      } catch (err) {
        if (!isBmcError(err) || err.httpStatus === undefined) throw err;
        // any status: iDRAC answers 503 (not retried: a POST is sent again only on a Retry-After, which it does not send), others 400 or 403
        const instead = loginForFullSlots(err, options.signal, away);
        if (instead !== undefined) {
          auth = await instead;
        } else {
          if (!SESSION_UNSUPPORTED.has(err.httpStatus)) throw err;
          if (mode === 'session') throw new BmcError('UNSUPPORTED', `${transport.origin}: session login not supported (HTTP ${err.httpStatus})`, { cause: err });
          log?.debug({ origin: transport.origin, status: err.httpStatus }, 'redfish sessions unsupported, using basic auth');
          auth = await checkBasic(options.signal, away);
        }
      }
    }
  } catch (err) {
    if (!loginAbandoned) await transport.close();
    throw err;
  }
  // a new login in place of an expired session refused for want of a slot: as the first login's refusal
  const slotsTaken = (err: unknown): Promise<Auth> | undefined => loginForFullSlots(err, undefined, transport.outages > 0);
  const client = sessionClient(transport, auth, login, { closeTimeoutMs, refusalHold: () => standingHold().hold, slotsTaken }, log, rootAhead);
  if (options.retireSession) client.retire(options.retireSession);
  return client;
}

/** Deletes a session on the BMC, best effort within `closeTimeoutMs`; never throws. */
async function deleteSessionOf(transport: HttpTransport, a: Auth, closeTimeoutMs: number, log: Logger | undefined): Promise<void> {
  if (a.kind !== 'session' || a.location === undefined) return;
  try {
    await transport.request({ method: 'DELETE', path: a.location, headers: { 'x-auth-token': a.token }, timeoutMs: closeTimeoutMs });
  } catch (err) {
    log?.debug({ origin: transport.origin, err }, 'redfish session delete failed');
  }
}

function sessionClient(
  transport: HttpTransport,
  initial: Auth,
  login: (signal: AbortSignal | undefined, away: boolean) => Promise<Auth>,
  o: { closeTimeoutMs: number; refusalHold: () => ReturnType<typeof loginHold>; slotsTaken?: (refusal: unknown) => Promise<Auth> | undefined },
  log: Logger | undefined,
  rootAhead?: Promise<unknown>,
): RedfishClient & { retire(handle: RedfishSessionHandle): void } {
  const { closeTimeoutMs, refusalHold } = o;
  let auth: Auth = initial;
  /** the session the BMC answered 401 for, while no new login replaced it */
  let refused: Auth | undefined;
  let relogin: Promise<Auth> | undefined;
  /**
   * the new login the BMC refused (wrong credentials): every later 401 hears it again instead of
   * sending another (BMCs lock accounts out after a few), for good, or until `retryAt` when the BMC
   * had gone away before (RELOGIN_AFTER_RESTART). A login that failed otherwise (503 while the
   * BMC's session service starts after a reset, a timeout) is tried again by the next 401.
   */
  let reloginFailure: { err: unknown; retryAt?: number } | undefined;
  /** the transport's outages up to the last request the BMC answered with success since it was sent: more since means it went away */
  let outagesAnswered = transport.outages;
  const wentAway = (): boolean => transport.outages > outagesAnswered;
  /** a resumed session the BMC answered with success (it is honoured), or with an HTTP error only */
  let resumedAnswered: 'ok' | 'error' | undefined;
  let closing: Promise<void> | undefined;
  const drops = new Set<Promise<void>>();

  const authHeaders = (a: Auth): Record<string, string> => (a.kind === 'basic' ? { authorization: a.header } : { 'x-auth-token': a.token });
  const isResumed = (a: Auth): boolean => a.kind === 'session' && a.resumed === true;

  /**
   * A new login in place of `stale`, shared by every request that was refused with it. The login
   * is not cut off by the caller's abort (as the first login is not: once sent, only its answer
   * names the session the BMC made); the caller stops waiting at once, and the session lands in
   * `auth`, where close() deletes it or keeps it.
   */
  function renew(stale: Auth, signal: AbortSignal | undefined): Promise<Auth> {
    if (auth !== stale) return Promise.resolve(auth); // someone renewed already
    if (reloginFailure !== undefined) {
      if (reloginFailure.retryAt === undefined || Date.now() < reloginFailure.retryAt) return Promise.reject(reloginFailure.err);
      reloginFailure = undefined; // a BMC back from a restart: its time to be asked again has come
    }
    if (relogin === undefined) {
      log?.debug({ origin: transport.origin, resumed: isResumed(stale) }, 'redfish session expired, logging in again');
      refused = stale;
      relogin = login(undefined, wentAway())
        // the BMC's session slots all taken meanwhile: HTTP Basic from here (auto mode), or the refusal
        .catch((err: unknown) => o.slotsTaken?.(err) ?? Promise.reject(err))
        .then(
          (fresh) => {
            auth = fresh;
            refused = undefined;
            // The 401 may not have meant "expired": delete the old session too, so none is left behind.
            dropLater(stale);
            return fresh;
          },
          (err: unknown) => {
            if (!isBmcError(err, 'AUTH_FAILED')) throw err;
            reloginFailure = refusal(err);
            throw reloginFailure.err;
          },
        )
        .finally(() => {
          relogin = undefined;
        });
      relogin.catch(() => undefined); // heard by the callers below, or by close()
    }
    return raceAbort(relogin, signal, { reason: (s) => abortError(s, `POST ${SESSIONS_PATH}`) });
  }

  /**
   * What a refused (or held) new login leaves: final for a BMC that never went away (wrong
   * credentials), and for a TLS refusal (no password was checked); a 401/403 after it went away
   * (transport outages since its last success) is pending until the budget lets the next login go,
   * while fewer than `refusals` logins of this user were refused by the BMC (RELOGIN_AFTER_RESTART,
   * counted over every client of the process: login-budget.ts). One the budget held as pending
   * stays pending until its time.
   */
  function refusal(err: BmcError): { err: unknown; retryAt?: number } {
    if (err instanceof ReloginPendingError) return { err, retryAt: err.retryAt };
    const away = (err.httpStatus === 401 || err.httpStatus === 403) && wentAway();
    if (!away) return { err };
    const hold = refusalHold();
    if (hold?.spent === true) {
      log?.warn({ origin: transport.origin }, 'redfish login refused again after the BMC came back; not sent again');
      return { err };
    }
    const retryAt = hold?.until ?? Date.now();
    log?.warn({ origin: transport.origin, retryAt: new Date(retryAt).toISOString() }, 'redfish login refused after the BMC went away (its user service may still be starting); trying again later');
    return { err: new ReloginPendingError(err, retryAt), retryAt };
  }

  /**
   * The BMC's answer means the session is gone: 401, and for a resumed session nothing has
   * confirmed yet, 403 too (the status some BMCs give a token they no longer know). Uploads are
   * not sent twice.
   */
  function sessionGone(err: unknown, used: Auth, req: Req): boolean {
    if (!isBmcError(err) || used.kind !== 'session' || req.stream !== undefined) return false;
    return err.httpStatus === 401 || (err.httpStatus === 403 && isResumed(used) && resumedAnswered !== 'ok');
  }

  /** Deletes `a` beside the client's work; close() waits for it. */
  function dropLater(a: Auth): void {
    const drop = deleteSession(a).finally(() => drops.delete(drop));
    drops.add(drop);
  }

  /** Best effort, bounded by closeTimeoutMs; never throws. */
  const deleteSession = (a: Auth): Promise<void> => deleteSessionOf(transport, a, closeTimeoutMs, log);

  async function send(req: Req): Promise<HttpResponse> {
    if (closing !== undefined) throw new BmcError('CLOSED', `${req.method} ${req.path}: client closed`);
    const used = auth;
    const outagesBefore = transport.outages;
    const call = (a: Auth): Promise<HttpResponse> =>
      transport.request({
        method: req.method,
        path: req.path,
        json: req.json,
        stream: req.stream,
        signal: req.options?.signal,
        timeoutMs: req.options?.timeoutMs,
        headers: { ...req.options?.headers, ...authHeaders(a) },
      });
    try {
      const res = await call(used);
      if (isResumed(used)) resumedAnswered = 'ok';
      answered(outagesBefore);
      return res;
    } catch (err) {
      // an HTTP error, or a certificate other than the pinned one (checked only now: a resumed session sends nothing at open)
      if (isResumed(used) && resumedAnswered === undefined && isBmcError(err) && (err.httpStatus !== undefined || err.code === 'UNTRUSTED')) resumedAnswered = 'error';
      if (!sessionGone(err, used, req) || closing !== undefined) throw err;
      const fresh = await renew(used, req.options?.signal);
      const before = transport.outages;
      const res = await call(fresh);
      answered(before);
      return res;
    }
  }

  /**
   * The BMC answered with success a request sent when the transport had seen `outagesBefore`: it is
   * back and takes our credentials, so a later refusal of a login is its own, counted afresh. A
   * request sent before an outage says nothing of after it.
   */
  function answered(outagesBefore: number): void {
    if (outagesBefore > outagesAnswered) outagesAnswered = outagesBefore;
  }

  async function etagOf(path: string, options: RequestOptions | undefined): Promise<string | undefined> {
    const res = await send({ method: 'GET', path, options });
    return res.headers.etag ?? str(res.body, '@odata.etag');
  }

  async function patch(path: string, body: unknown, options?: PatchOptions): Promise<HttpResponse> {
    const withTag = (etag: string | undefined): RequestOptions => ({
      ...options,
      headers: { ...options?.headers, ...(etag === undefined ? {} : { 'if-match': etag }) },
    });
    const etag = options?.etag === undefined ? await etagOf(path, options) : (options.etag ?? undefined);
    try {
      return await send({ method: 'PATCH', path, json: body, options: withTag(etag) });
    } catch (err) {
      if (!isBmcError(err) || (err.httpStatus !== 412 && err.httpStatus !== 428)) throw err;
      // read again and retry once: a new ETag (the resource changed in between, or its ETag moves
      // with sensor readings); for 428 without one, `*`; for 412 with an unchanged tag or none,
      // no If-Match at all (BMCs that refuse `*` or their own tag: Lenovo XCC, community.general#11261)
      const fresh = await etagOf(path, options);
      const next = err.httpStatus === 428 ? (fresh ?? '*') : fresh !== undefined && fresh !== etag ? fresh : undefined;
      if (next === etag) throw err;
      log?.debug({ origin: transport.origin, path, status: err.httpStatus, ifMatch: next === undefined ? 'none' : next === '*' ? '*' : 'fresh' }, 'redfish PATCH precondition failed, retrying once');
      return send({ method: 'PATCH', path, json: body, options: withTag(next) });
    }
  }

  async function close(options?: { keepSession?: boolean }): Promise<void> {
    closing ??= (async () => {
      const current = await (relogin ?? Promise.resolve(auth)).catch(() => auth);
      await Promise.all([options?.keepSession && current !== refused ? undefined : deleteSession(current), ...drops]);
      await transport.close();
    })();
    return closing;
  }

  return {
    origin: transport.origin,
    get auth() {
      return auth.kind;
    },
    session() {
      if (auth.kind !== 'session' || auth === refused) return undefined;
      const resumed = auth.resumed === true;
      return { token: auth.token, location: auth.location, resumed, ...(resumed && resumedAnswered === 'error' ? { refused: true } : {}) };
    },
    retire(handle) {
      dropLater({ kind: 'session', ...handle });
    },
    ...(rootAhead ? { serviceRootAtLogin: rootAhead } : {}),
    get: async <T>(path: string, options?: RequestOptions) => (await send({ method: 'GET', path, options })).body as T,
    getReply: (path, options) => send({ method: 'GET', path, options }),
    post: (path, body, options) => send({ method: 'POST', path, json: body ?? {}, options }),
    patch,
    scrub: (text) => transport.scrub(text),
    delete: (path, options) => send({ method: 'DELETE', path, options }),
    upload: (path, stream, options) =>
      send({
        method: 'POST',
        path,
        stream,
        options: {
          ...options,
          headers: {
            ...options.headers,
            'content-type': options.contentType,
            ...(options.contentLength === undefined ? {} : { 'content-length': String(options.contentLength) }),
          },
        },
      }),
    close,
  };
}
