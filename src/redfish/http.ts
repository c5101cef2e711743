/**
 * The HTTP transport to one BMC: keep-alive HTTP/1.1 connections of our own (h1-connection.ts; at most
 * `connections` requests in flight, a further connection only for a request held up by a slow
 * answer: connections.ts), a TLS policy, one deadline per request combined
 * with the caller's signal, retries for idempotent GETs, same-origin redirects for GETs,
 * Redfish error bodies turned into BmcErrors. Knows nothing about authentication:
 * the session layer passes headers and registers the secrets to scrub.
 */
import { Socket } from 'node:net';
import type { Readable } from 'node:stream';
import { errors, type buildConnector, type Dispatcher } from 'undici';
import { BmcError, abortError, isBmcError } from '../errors.js';
import { checkCount, checkMs, deadline, endedWithin, sleep } from '../deadline.js';
import { Connections } from './connections.js';
import type { SecondConnectionSwitch } from './second-connection.js';
import { H1Connection, type SentHeedingHandler } from './h1-connection.js';
import { httpError, isRetryableNetworkError, isUnreachable, scrub, transportError } from './http-errors.js';
import { shortened } from './text.js';
import { tlsConnector, tlsPolicy, type TlsOptions } from './tls.js';
import { MAX_ODATA_ID } from './json.js';
import { decodeJsonBody, MAX_JSON_CONTAINERS, MAX_JSON_DEPTH, parseRetryAfter } from './wire.js';

export type HttpMethod = 'GET' | 'POST' | 'PATCH' | 'PUT' | 'DELETE';

export interface TransportOptions extends TlsOptions {
  host: string;
  port?: number;
  /** Deadline of one request (all retries and redirects included). Default 10 000. */
  timeoutMs?: number;
  /** TCP connect plus TLS handshake. Default: timeoutMs. */
  connectTimeoutMs?: number;
  /** Concurrent requests (connections) to this BMC. Default 2. */
  connections?: number;
  /**
   * A request that waited this long for a busy connection opens another (up to `connections`);
   * 0 opens them as requests come. Default 1000: most BMC answers come sooner, so most reads need
   * one TLS handshake, and a slow answer holds the requests behind it up by this much at most
   * (bench report-latency at 1,000 BMCs, p50 150 ms: 1.4 connections per BMC instead of 2, ~10 %
   * less of our CPU per BMC and ~15 % less of the simulator's; 250 ms still made 1.9).
   */
  openConnectionAfterMs?: number;
  /** While on, a request waiting for a busy connection opens another at once (second-connection.ts: a report cycle's, once every BMC has started). */
  secondConnection?: SecondConnectionSwitch;
  /** Extra attempts for GETs after a network error or 502/503/504. Default 2. */
  retries?: number;
  /** First retry delay, doubled per attempt. Default 200. */
  retryBackoffMs?: number;
  /**
   * Longest `Retry-After` honoured on a 503/429 (a BMC restarting its web server), per wait;
   * a longer one, or one past the request's deadline, fails at once. Default 30 000.
   */
  maxRetryAfterMs?: number;
  /** Largest response body accepted. Default 2 MiB (the largest resource metal-bmc reads is a few KiB; a BMC answering more is broken or hostile). */
  maxResponseBytes?: number;
  /**
   * The most all answers of this transport (one BMC read, one command) may bring together, default
   * 16 MiB: each answer is bounded, but a read follows collections, pages and members, and keeps
   * what it read until it ends. Real reads bring tens to hundreds of KiB.
   */
  maxTotalResponseBytes?: number;
  /**
   * Hedged GETs (report reads; default none): a GET that has had no answer for `afterMs` is sent
   * once more, on another connection, and the first answer is taken (the other copy is cut off,
   * its connection closed). Real BMCs are slow mostly as a whole or on one resource every time,
   * where a second copy only adds load, so a hedge goes only to a BMC that answered another request
   * of this transport within `afterMs`, at most one per transport, and never for a path in
   * `slowPaths`: a path whose first copy went past `afterMs` joins it, one answered within it leaves.
   */
  hedge?: RedfishHedge;
  /** Called for the first connection's TCP connection made and TLS handshake completed, and every response head (whatever its status) and piece of a body the BMC sends: a sign of life of the BMC (a report read's deadline, report/loop-clock.ts). */
  onAnswer?: () => void;
}

/** How a transport hedges its GETs (TransportOptions.hedge). */
export interface RedfishHedge {
  afterMs: number;
  /**
   * This BMC's paths that went without an answer past `afterMs` when last asked, kept between its
   * reads (outband/hedge-memory.ts): slow twice in a row is slow every time, not a straggler. At
   * most MAX_SLOW_PATHS.
   */
  slowPaths: Set<string>;
  /** each hedge sent: `won` (its answer taken), `lost` (the first copy answered first), `failed` (no answer from it) */
  onOutcome?: (outcome: HedgeOutcome) => void;
}

export type HedgeOutcome = 'won' | 'lost' | 'failed';

/** The slow paths of one BMC that are remembered (the one marked longest ago goes first); a longer path than MAX_ODATA_ID is never marked, nor hedged. */
export const MAX_SLOW_PATHS = 16;

export interface HttpRequest {
  method: HttpMethod;
  /** `/redfish/v1/...`, or an absolute URL of the same origin; a `#fragment` is dropped. */
  path: string;
  headers?: Record<string, string>;
  /** Sent as application/json. */
  json?: unknown;
  /** A streamed body (never retried); set `headers['content-type']` yourself. */
  stream?: Readable;
  signal?: AbortSignal;
  /** Overrides the transport's deadline for this request (uploads). */
  timeoutMs?: number;
  /** a 2xx answer whose body is not JSON gives `body: undefined` instead of DECODE: its headers are what counts (a login's token and Location) */
  bodyOptional?: boolean;
  /** never sent a second time by a hedge: a request that checks credentials (a BMC counts each refused one towards locking the account out) */
  once?: boolean;
}

export interface HttpResponse {
  status: number;
  /** Lower-case names; repeated headers joined with ", ". */
  headers: Record<string, string>;
  /** Parsed JSON, or undefined for an empty body. */
  body: unknown;
}

export interface HttpTransport {
  readonly origin: string;
  readonly timeoutMs: number;
  /**
   * Signs so far that the BMC went away: connections refused, reset or unreachable, and answers
   * 502, 503 or 504 (a web server restarting), those retried within a request included. The session
   * layer tells a login refused by a BMC back from a restart from one refused by a BMC that never left.
   */
  readonly outages: number;
  request(req: HttpRequest): Promise<HttpResponse>;
  /** Strings that must never appear in an error message (password, token). */
  addSecret(secret: string): void;
  /** `text` (a BMC's message quoted in an error) with every secret added replaced by `[redacted]`, bounded. */
  scrub(text: string): string;
  /** Graceful close, then destroy after `graceMs`. Never throws. */
  close(graceMs?: number): Promise<void>;
}

/** Why an idle client's connections close: one instance, not a new error (and stack trace) per connection. */
const IDLE_CLOSE = new BmcError('CLOSED', 'Redfish client closed');

const MAX_REDIRECTS = 3;
const RETRY_STATUSES = new Set([502, 503, 504]);
/** Statuses whose `Retry-After` says the request was not processed: any method may be sent again. */
const RETRY_AFTER_STATUSES = new Set([429, 503]);
/** Waits for `Retry-After` within one request; the deadline bounds them too. */
const MAX_RETRY_AFTER_WAITS = 10;
/**
 * The same for a request that changes something (POST, PATCH, DELETE): a 503 or 429 with
 * `Retry-After` says it was not processed (RFC 9110 §15.6.4), but a BMC whose front end answers
 * so after its back end acted would turn one ForceRestart into a reset per resend; two resends at
 * most keep a busy BMC's action going without letting such firmware reset a host ten times.
 */
const MAX_RETRY_AFTER_WAITS_CHANGE = 2;

export function originOf(host: string, port: number): string {
  const h = host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
  return port === 443 ? `https://${h}` : `https://${h}:${port}`;
}

/**
 * Whether a GET may go to `path` (resolved, dot segments gone): the Redfish tree only. Links a BMC
 * names (`@odata.id`, `Members@odata.nextLink`, a redirect) are followed with the session's token;
 * `/redfish/v1/../../admin` resolves to `/admin` on the same host, which no read needs. Actions and
 * uploads may go elsewhere on the BMC (HPE iLO's HttpPushUri is `/cgi-bin/uploadFile`).
 */
export function mayGet(path: string): boolean {
  return path === '/redfish' || path.startsWith('/redfish/') || path.startsWith('/redfish?');
}

/** Path (with query, without fragment) of `pathOrUrl` if it belongs to `origin`. */
export function resolvePath(origin: string, pathOrUrl: string, base?: string): string | undefined {
  if (base === undefined && !pathOrUrl.startsWith('/') && !/^https?:\/\//i.test(pathOrUrl)) return undefined;
  let url: URL;
  try {
    url = new URL(pathOrUrl, base === undefined ? origin : new URL(base, origin));
  } catch {
    return undefined;
  }
  return url.origin === new URL(origin).origin ? url.pathname + url.search : undefined;
}

/** What all answers of a transport may still bring (maxTotalResponseBytes less what came). */
interface ByteBudget {
  left: number;
  readonly total: number;
}

function overBudget(what: string, budget: ByteBudget): BmcError {
  return new BmcError('DECODE', `${what}: the answers of this BMC read passed ${budget.total} bytes in all; nothing more is read from it`);
}

/** What a hedge needs to know of the exchange it may copy, and how to cut that exchange off. */
interface ExchangeProbe {
  /** performance.now() when it went on the wire, or undefined: time queued behind another request or in a TLS handshake says nothing of the BMC's answer */
  sentAt: number | undefined;
  /** an answer's head came */
  answering: boolean;
  cancel: (reason: Error) => void;
}

/** Marks `path` slow for the BMC's next read, the path marked longest ago forgotten beyond MAX_SLOW_PATHS. */
function markSlow(slowPaths: Set<string>, path: string): void {
  slowPaths.delete(path);
  slowPaths.add(path);
  while (slowPaths.size > MAX_SLOW_PATHS) slowPaths.delete(slowPaths.values().next().value as string);
}

/** Why the copy of a hedged GET that did not answer first is cut off: one instance, no stack trace per hedge. */
const HEDGE_CUT = new BmcError('ABORTED', 'the other copy of this hedged request answered first');

/** One answer, its body read whole (at most the transport's maxResponseBytes). */
interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
}

/**
 * One request through the connections with a dispatch handler of our own that collects the body as it
 * arrives, at most `maxBytes` and what `budget` has left (a larger declared or received body aborts the request). undici's
 * `request()` wraps each answer in an AsyncResource and a Readable stream, read here through an
 * async iterator: machinery a report cycle paid for every one of its ~10 requests per BMC. The
 * signal settles the promise at once; a request waiting for a connection leaves the queue
 * (connections.ts), one handed to a connection still being made is aborted as the connection starts
 * it, and an answer on its way is cut off (its connection closed).
 */
function exchange(connections: Connections, options: Dispatcher.DispatchOptions, signal: AbortSignal, maxBytes: number, budget: ByteBudget, what: string, onAnswer: (() => void) | undefined, probe?: ExchangeProbe, urgent = false): Promise<RawResponse> {
  return new Promise<RawResponse>((resolve, reject) => {
    let controller: Dispatcher.DispatchController | undefined;
    let settled = false;
    let status = 0;
    let headers: Record<string, string> = {};
    const chunks: Buffer[] = [];
    let size = 0;
    const settle = (fn: () => void): void => {
      if (settled) return;
      settled = true;
      signal.removeEventListener('abort', onAbort);
      fn();
    };
    const fail = (err: unknown): void => {
      controller?.abort(err instanceof Error ? err : new Error(String(err)));
      settle(() => reject(err));
    };
    function onAbort(): void {
      fail(signal.reason);
    }
    if (signal.aborted) return reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    if (probe) probe.cancel = fail;
    const handler: SentHeedingHandler = {
      onRequestStart(c) {
        controller = c;
        if (settled) c.abort(signal.reason instanceof Error ? signal.reason : new Error('aborted'));
      },
      onRequestSent() {
        if (probe) probe.sentAt = performance.now();
      },
      onResponseStart(_c, statusCode, responseHeaders) {
        onAnswer?.();
        if (probe) probe.answering = true;
        if (statusCode < 200) return; // 1xx: the answer is still to come
        status = statusCode;
        // as h1-parse.ts hands them, the only parser behind these connections: names lower-case,
        // a repeated header's values joined with ", "
        headers = responseHeaders as Record<string, string>;
        const declared = Number(headers['content-length']);
        if (Number.isFinite(declared) && declared > maxBytes) fail(new BmcError('DECODE', `${what}: response of ${declared} bytes is larger than ${maxBytes} bytes`));
        else if (Number.isFinite(declared) && declared > budget.left) {
          budget.left = -1;
          fail(overBudget(what, budget));
        }
      },
      onResponseData(_c, chunk) {
        onAnswer?.();
        if (settled) return;
        size += chunk.length;
        budget.left -= chunk.length;
        if (size > maxBytes) return fail(new BmcError('DECODE', `${what}: response larger than ${maxBytes} bytes`));
        if (budget.left < 0) return fail(overBudget(what, budget));
        chunks.push(chunk);
      },
      onResponseEnd() {
        settle(() => resolve({ status, headers, body: chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size) }));
      },
      onResponseError(_c, err) {
        settle(() => reject(err));
      },
    };
    connections.dispatch(options, handler, signal, urgent);
  });
}

/** `connector`, telling `onAnswer` of each TCP connection it made and each TLS handshake it completed (tlsConnector returns its socket). */
function heedingConnects(connector: buildConnector.connector, onAnswer: (() => void) | undefined): buildConnector.connector {
  if (onAnswer === undefined) return connector;
  return (o, callback) => {
    const socket = (connector as (o: buildConnector.Options, cb: buildConnector.Callback) => unknown)(o, (...args) => {
      try {
        if (args[0] === null) onAnswer();
      } finally {
        callback(...args);
      }
    });
    if (socket instanceof Socket) socket.once('connect', onAnswer);
  };
}

export function createTransport(options: TransportOptions): HttpTransport {
  if (typeof options.host !== 'string' || options.host === '' || /[/\s@]/.test(options.host)) {
    throw new BmcError('INVALID_ARGUMENT', `host must be a host name or IP address, got ${JSON.stringify(options.host)}`);
  }
  const port = checkCount('port', options.port, 443, 1, 65535);
  const timeoutMs = checkMs('timeoutMs', options.timeoutMs, 10_000);
  const connectTimeoutMs = checkMs('connectTimeoutMs', options.connectTimeoutMs, timeoutMs);
  const connections = checkCount('connections', options.connections, 2, 1, 64);
  const retries = checkCount('retries', options.retries, 2, 0, 10);
  const backoffMs = checkMs('retryBackoffMs', options.retryBackoffMs, 200, 60_000);
  const maxRetryAfterMs = checkCount('maxRetryAfterMs', options.maxRetryAfterMs, 30_000, 0, 600_000);
  const maxBytes = checkCount('maxResponseBytes', options.maxResponseBytes, 2 << 20, 1024, 1 << 30);
  const maxTotal = checkCount('maxTotalResponseBytes', options.maxTotalResponseBytes, 16 << 20, 1024, 2 ** 40);
  const budget: ByteBudget = { left: maxTotal, total: maxTotal };
  const origin = originOf(options.host, port);
  const openAfterMs = checkCount('openConnectionAfterMs', options.openConnectionAfterMs, 1000, 0, 600_000);
  const connect = tlsConnector(tlsPolicy(options), connectTimeoutMs, options.legacyTls === true);
  // Every connection's TCP connect and TLS handshake is a sign of life (report/loop-clock.ts): each
  // is owed only what it waited for the loop lately, so a BMC whose web server hangs but still
  // takes connections gets back a few ticks per connection, not the stall of its read. The
  // connections keep idle ones 4 s (BMC web servers close them early, lighttpd after 5 s, often
  // without a Keep-Alive hint, and a POST sent on one they are closing fails without being
  // retried); our deadline signal bounds every phase of a request, so they have no timers of their own.
  const heededConnect = heedingConnects(connect, options.onAnswer);
  const pool = new Connections(() => new H1Connection({ origin, connect: heededConnect }), connections, openAfterMs, { secondConnection: options.secondConnection });
  const secrets = new Set<string>();
  const hedge = options.hedge === undefined ? undefined : { ...options.hedge, afterMs: checkCount('hedge.afterMs', options.hedge.afterMs, 1000, 1, 600_000) };
  /** a request of this transport was answered within hedge.afterMs: the BMC is not slow as a whole */
  let answeredPromptly = false;
  let hedgesLeft = 1;
  /** hedges held back for want of a prompt answer, considered again when one comes */
  const awaitingPrompt = new Set<() => void>();
  /** the close under way or done (the first call's) */
  let closing: Promise<void> | undefined;
  let outages = 0;

  /** A request of this transport answered (not with a server error): within hedge.afterMs of going out, the BMC is not slow as a whole, nor on that path. */
  function notePrompt(probe: ExchangeProbe, path: string, status: number): void {
    if (hedge === undefined || status >= 500 || probe.sentAt === undefined || performance.now() - probe.sentAt > hedge.afterMs) return;
    hedge.slowPaths.delete(path);
    if (answeredPromptly) return;
    answeredPromptly = true;
    for (const consider of [...awaitingPrompt]) consider();
    awaitingPrompt.clear();
  }

  /**
   * A GET that may be hedged (TransportOptions.hedge): the first copy, and after `afterMs` without
   * an answer, where the BMC answered promptly before and no hedge of this transport went out yet,
   * a second on another connection. The first answer is taken and the other copy cut off. Where
   * one copy fails, the other's outcome is awaited; where both fail, the first copy's error counts.
   */
  function hedgedExchange(h: RedfishHedge, dispatch: Dispatcher.DispatchOptions, signal: AbortSignal, path: string, what: string, probe: ExchangeProbe): Promise<RawResponse> {
    const first = exchange(pool, dispatch, signal, maxBytes, budget, what, options.onAnswer, probe);
    return new Promise<RawResponse>((resolve, reject) => {
      let done = false;
      let second: { controller: AbortController; failed: boolean } | undefined;
      let firstError: { err: unknown } | undefined;
      // the decision waits for the loop's I/O phase: on a busy loop the timer comes due while an
      // answer already waits in the socket, and a hedge then would only add load (and be lost)
      const considerAfter = (ms: number): NodeJS.Timeout => setTimeout(() => setImmediate(consider), ms);
      let timer = considerAfter(h.afterMs);
      const finish = (settle: () => void): void => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        awaitingPrompt.delete(consider);
        settle();
      };
      /** whether the path was slow when last asked (read once, as its first copy goes past afterMs) */
      let slowBefore: boolean | undefined;
      first.then(
        (res) => {
          if (done) return;
          if (second !== undefined && !second.failed) {
            h.onOutcome?.('lost');
            second.controller.abort(HEDGE_CUT);
          }
          finish(() => resolve(res));
        },
        (err: unknown) => {
          if (second !== undefined && !second.failed && !done) firstError = { err };
          else finish(() => reject(err));
        },
      );
      function consider(): void {
        if (done || second !== undefined || probe.answering) return;
        // the time counts from going out on the wire: a request that waited in the queue behind
        // another, or for its connection's TLS handshake, has its whole time still to come
        const early = probe.sentAt !== undefined ? h.afterMs - (performance.now() - probe.sentAt) : h.afterMs;
        if (early > 0) {
          timer = considerAfter(Math.ceil(early));
          return;
        }
        if (path.length > MAX_ODATA_ID) return;
        if (slowBefore === undefined) {
          slowBefore = h.slowPaths.has(path);
          markSlow(h.slowPaths, path);
        }
        if (slowBefore || hedgesLeft === 0) return;
        if (!answeredPromptly) {
          awaitingPrompt.add(consider);
          return;
        }
        hedgesLeft -= 1;
        awaitingPrompt.delete(consider);
        const copy = { controller: new AbortController(), failed: false };
        second = copy;
        const copyFailed = (): void => {
          if (done) return;
          copy.failed = true;
          h.onOutcome?.('failed');
          if (firstError !== undefined) {
            const { err } = firstError;
            finish(() => reject(err));
          }
        };
        exchange(pool, dispatch, AbortSignal.any([signal, copy.controller.signal]), maxBytes, budget, what, options.onAnswer, undefined, true).then(
          (res) => {
            if (done) return;
            // a server error from the copy is no better than waiting for the first (a 503 may be the
            // BMC shedding load): the first copy goes on
            if (res.status >= 500 && firstError === undefined) return copyFailed();
            h.onOutcome?.('won');
            probe.cancel(HEDGE_CUT);
            finish(() => resolve(res));
          },
          copyFailed,
        );
      }
    });
  }

  async function request(req: HttpRequest): Promise<HttpResponse> {
    const firstPath = resolvePath(origin, req.path);
    if (firstPath === undefined) throw new BmcError('INVALID_ARGUMENT', `not a path of ${origin}: ${shortened(scrub(req.path, secrets), 300)}`);
    if (req.method === 'GET' && !mayGet(firstPath)) throw new BmcError('PROTOCOL', `GET ${shortened(firstPath, 300)}: outside the Redfish tree (/redfish), not followed`);
    // quoted in every error of this request: a path a BMC linked may be long (json.ts MAX_ODATA_ID, a Location header)
    const what = `${req.method} ${shortened(firstPath, 300)}`;
    if (closing) throw new BmcError('CLOSED', `${what}: client closed`);
    // a logout (DELETE of the session) still goes out: the session must not stay on the BMC
    if (budget.left < 0 && req.method !== 'DELETE') throw overBudget(what, budget);
    const idempotent = req.method === 'GET' && req.stream === undefined;
    const headers: Record<string, string> = { accept: 'application/json', 'odata-version': '4.0', ...req.headers };
    let payload: Buffer | Readable | undefined = req.stream;
    if (req.json !== undefined) {
      payload = Buffer.from(JSON.stringify(req.json), 'utf8');
      headers['content-type'] = 'application/json';
    }
    const ms = req.timeoutMs === undefined ? timeoutMs : checkMs('timeoutMs', req.timeoutMs, timeoutMs);
    const dl = deadline(ms, what, req.signal);
    const startedAt = Date.now();
    let path = firstPath;
    let attempt = 0;
    let retryAfterWaits = 0;
    let redirects = 0;
    try {
      for (;;) {
        let res: RawResponse;
        try {
          const dispatch: Dispatcher.DispatchOptions = { path, method: req.method, headers, body: payload ?? null };
          if (hedge === undefined) res = await exchange(pool, dispatch, dl.signal, maxBytes, budget, what, options.onAnswer);
          else {
            const probe: ExchangeProbe = { sentAt: undefined, answering: false, cancel: () => undefined };
            res = await (idempotent && req.once !== true ? hedgedExchange(hedge, dispatch, dl.signal, path, what, probe) : exchange(pool, dispatch, dl.signal, maxBytes, budget, what, options.onAnswer, probe));
            notePrompt(probe, path, res.status);
          }
        } catch (err) {
          // a BMC that stopped answering (no ICMP while its NIC is down, TLS not finished while its
          // web server starts) shows only deadlines: the request's own, or the connect timer's
          // TIMEOUT, count as the BMC gone as a refused connection does; a caller's abort does not
          const ownDeadline = dl.signal.aborted && req.signal?.aborted !== true;
          if (ownDeadline || (!dl.signal.aborted && (isUnreachable(err) || isBmcError(err, 'TIMEOUT')))) outages += 1;
          if (idempotent && attempt < retries && !dl.signal.aborted && isRetryableNetworkError(err)) {
            attempt += 1;
            await sleep(backoffMs * 2 ** (attempt - 1), dl.signal, what);
            continue;
          }
          throw err;
        }
        const status = res.status;
        const resHeaders = res.headers;
        if (RETRY_STATUSES.has(status)) outages += 1;
        if (status >= 300 && status < 400 && status !== 304) {
          if (!idempotent) throw new BmcError('PROTOCOL', `${what}: unexpected redirect (HTTP ${status})`, { httpStatus: status });
          redirects += 1;
          if (redirects > MAX_REDIRECTS) {
            throw new BmcError('PROTOCOL', `redirect loop at ${shortened(firstPath, 300)}: more than ${MAX_REDIRECTS} redirects`, { httpStatus: status });
          }
          const next = resHeaders.location === undefined ? undefined : resolvePath(origin, resHeaders.location, path);
          if (next === undefined) throw new BmcError('PROTOCOL', `${what}: redirect without a same-origin Location`, { httpStatus: status });
          if (!mayGet(next)) throw new BmcError('PROTOCOL', `${what}: redirect outside the Redfish tree (/redfish), not followed`, { httpStatus: status });
          path = next;
          continue;
        }
        const retryAfter = RETRY_AFTER_STATUSES.has(status) ? parseRetryAfter(resHeaders['retry-after'], Date.now()) : undefined;
        if (retryAfter !== undefined && req.stream === undefined && retryAfterWaits < (req.method === 'GET' ? MAX_RETRY_AFTER_WAITS : MAX_RETRY_AFTER_WAITS_CHANGE)) {
          // the BMC says it did not process the request (restarting, busy): come back when it says, within the deadline
          const left = ms - (Date.now() - startedAt);
          if (retryAfter <= maxRetryAfterMs && retryAfter < left) {
            retryAfterWaits += 1;
            await sleep(Math.max(retryAfter, 50), dl.signal, what);
            continue;
          }
        }
        // a Retry-After too long to wait for (or past the deadline) fails now: the BMC said when it
        // will answer, and asking sooner only adds load to a BMC that is restarting or busy
        if (idempotent && RETRY_STATUSES.has(status) && attempt < retries && retryAfter === undefined) {
          attempt += 1;
          await sleep(backoffMs * 2 ** (attempt - 1), dl.signal, what);
          continue;
        }
        const decoded = decodeJsonBody(res.body.toString('utf8'));
        const body = decoded.ok ? decoded.value : undefined;
        if (status >= 400) throw httpError(req.method, path, status, body, secrets);
        // an action or a change the BMC took (2xx) with a body that is not JSON (an HTML or text page,
        // some BMCs' 200 to a reset) is done: failing it would report a reset as failed, or repeat
        // a boot change over IPMI; what a GET answers must be JSON
        if (!decoded.ok && req.bodyOptional !== true && req.method === 'GET') {
          const why = decoded.tooComplex ? `JSON nested deeper than ${MAX_JSON_DEPTH} levels or with more than ${MAX_JSON_CONTAINERS} objects and arrays (refused unparsed)` : 'malformed JSON';
          throw new BmcError('DECODE', `${what}: ${why} in the response for ${shortened(path, 300)}`);
        }
        return { status, headers: resHeaders, body };
      }
    } catch (err) {
      if (err instanceof BmcError) throw err;
      if (dl.signal.aborted) throw abortError(dl.signal, what);
      throw transportError(what, err, secrets);
    } finally {
      dl.dispose();
    }
  }

  async function closeOnce(graceMs: number): Promise<void> {
    // nothing queued or running (a report read's end): close the connections at once. A graceful
    // close ends the same way, through destroy(), which then builds an error with a stack trace
    // for each connection (~3 % of a report cycle's CPU at 1,000 BMCs)
    if (pool.pending === 0) {
      await pool.destroy(IDLE_CLOSE);
      return;
    }
    const closing = pool.drained().then(() => pool.close());
    try {
      if (await endedWithin(closing, graceMs)) await closing;
      else await pool.destroy(new errors.ClientDestroyedError());
    } catch {
      await pool.destroy(IDLE_CLOSE);
    }
  }

  return {
    origin,
    timeoutMs,
    get outages() {
      return outages;
    },
    request,
    addSecret: (s) => {
      if (s !== '') secrets.add(s);
    },
    scrub: (text) => scrub(text, secrets),
    close: (graceMs = 1000) => (closing ??= closeOnce(graceMs)),
  };
}
