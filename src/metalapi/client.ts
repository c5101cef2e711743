/**
 * The two metal-api endpoints metal-bmc calls, HMAC-signed, with a deadline per attempt and
 * retries with capped exponential backoff on network errors, timeouts, 5xx and 429, after at
 * least the answer's Retry-After where it fits the call's time budget (else none, and report
 * POSTs are held back for it, MAX_REPORT_HOLD_MS at most). A POST that
 * metal-api may have got (a timeout, a connection lost after it was sent, a proxy's 502 or 504) is
 * not retried; one whose connection was refused, timed out connecting or found no address is. 4xx answers are final,
 * and so are redirects, never followed (the HMAC headers would go along): the error names the Location.
 * Errors name the request, never the HMAC key or a password.
 */
import { setTimeout as delay } from 'node:timers/promises';
import { Agent, request, type Dispatcher } from 'undici';
import { deadline } from '../deadline.js';
import { BmcError, abortError } from '../errors.js';
import { retryAfterMs } from '../net/retry-after.js';
import { redactSecrets } from '../secret-text.js';
import { TERMINAL_CONTROLS } from '../terminal-text.js';
import { signHeaders } from './hmac.js';
import type { MachineIpmi, MachineIpmiReportResponse, MachineIpmiReports, MetalFru } from './types.js';

export interface MetalApiClientOptions {
  /** e.g. `http://metal-api:8080/metal`; the `/v1/...` paths are appended. */
  baseUrl: string;
  hmacKey: string;
  /** deadline of one attempt (connect, send, answer, body), default 10000 */
  timeoutMs?: number;
  /**
   * deadline of one attempt of a GET (a machine's BMC lookup as a console opens), default the
   * smaller of `timeoutMs` and 10000: a small answer, worth a second try within a console's open
   * window where a report POST gets the whole `timeoutMs`
   */
  getTimeoutMs?: number;
  /** further attempts after the first, default 3; a call's time budget is (retries + 1) attempt deadlines */
  retries?: number;
  /** first backoff, doubled per retry, with jitter; default 500 */
  backoffMs?: number;
  /** upper bound of one backoff, default 10000; a Retry-After is waited out whole, within the call's budget */
  maxBackoffMs?: number;
  dispatcher?: Dispatcher;
  /**
   * PEM certificates an https metal-api's chain must end in, in place of the CAs Node.js ships
   * (METAL_BMC_METAL_API_CA_FILE: a partition's private CA); not with `dispatcher`
   */
  ca?: string;
  userAgent?: string;
  /**
   * told how each attempt ended (for metrics): `outcome` is the HTTP status as a string, or
   * `timeout`, `closed` (no answer: refused, reset, TLS failed) or `aborted` (the caller gave up);
   * `serverDate` is the answer's Date header, metal-api's clock
   */
  onAttemptEnd?: (info: AttemptEnd) => void;
  /** told about each retry (for logs and metrics) */
  onRetry?: (info: { what: string; attempt: number; delayMs: number; error: BmcError }) => void;
}

export type TransportOutcome = 'timeout' | 'closed' | 'aborted';

export interface AttemptEnd {
  outcome: string;
  serverDate?: string;
}

export interface CallOptions {
  signal?: AbortSignal;
}

export interface MetalApiClient {
  readonly baseUrl: string;
  ipmiReport(body: MachineIpmiReports, options?: CallOptions): Promise<MachineIpmiReportResponse>;
  findIpmiMachine(id: string, options?: CallOptions): Promise<MachineIpmi>;
}

const MAX_TIMER_MS = 2_147_483_647;
/**
 * The longest a Retry-After that ended a report POST holds the next ones back: a cycle that a
 * lease change starts a few seconds later must not send what metal-api just asked to wait for,
 * but a proxy asking for days (or a misread date) must not silence the partition's reports.
 */
export const MAX_REPORT_HOLD_MS = 10 * 60_000;
const MAX_MESSAGE = 200;
/** Why a report POST that may have reached metal-api (a timeout, a proxy's 502 or 504) is not retried. */
const NOT_SENT_AGAIN = 'not sent again: metal-api may still be applying it';

function invalid(option: string, problem: string): BmcError {
  return new BmcError('INVALID_ARGUMENT', `createMetalApiClient: option ${option} ${problem}`);
}

function intOption(name: string, value: number | undefined, fallback: number, min: number, max: number): number {
  const v = value ?? fallback;
  if (!Number.isInteger(v) || v < min || v > max) throw invalid(name, `must be an integer from ${min} to ${max}, got ${String(v)}`);
  return v;
}

function normaliseBaseUrl(raw: unknown): { base: string; display: string } {
  if (typeof raw !== 'string' || raw === '') throw invalid('baseUrl', 'must be a non-empty http(s) URL');
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw invalid('baseUrl', 'is not a URL');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw invalid('baseUrl', `must use http or https, not ${url.protocol}`);
  if (url.search !== '' || url.hash !== '') throw invalid('baseUrl', 'must not carry a query or fragment');
  const base = url.href.replace(/\/+$/, '');
  url.username = '';
  url.password = '';
  return { base, display: url.href.replace(/\/+$/, '') };
}

/** The `message` of metal-api's error body, or the start of the text; one line, key scrubbed. */
function serverMessage(text: string, secret: string): string {
  let message = text;
  try {
    const parsed: unknown = JSON.parse(text);
    if (parsed !== null && typeof parsed === 'object' && typeof (parsed as { message?: unknown }).message === 'string') {
      message = (parsed as { message: string }).message;
    }
  } catch {
    // not JSON: keep the text
  }
  message = redactSecrets(message, [secret]).replace(/[\r\n\t]+/g, ' ').trim();
  return message.length > MAX_MESSAGE ? `${message.slice(0, MAX_MESSAGE)}...` : message;
}

/** HTTP's redirects: followed, the HMAC headers would travel along to wherever the Location names. */
const REDIRECTS: ReadonlySet<number> = new Set([301, 302, 303, 307, 308]);
const MAX_LOCATION = 200;

/**
 * Where a redirect points, as a value for METAL_BMC_METAL_API_URL: resolved against the request,
 * the endpoint's path taken off again (an ingress sends http://host/metal/v1/machine/ipmi to
 * https://host/metal/v1/machine/ipmi), no user or password, control characters removed, bounded.
 */
function redirectTarget(header: string | string[] | undefined, requestUrl: string, path: string, secret: string): string | undefined {
  const raw = Array.isArray(header) ? header[0] : header;
  if (raw === undefined || raw.trim() === '') return undefined;
  let target = raw;
  try {
    const url = new URL(raw, requestUrl);
    url.username = '';
    url.password = '';
    target = url.href;
    if (url.search === '' && url.hash === '' && url.pathname.endsWith(path)) target = `${url.origin}${url.pathname.slice(0, -path.length)}`;
  } catch {
    // not a URL: shown as it came, cleaned
  }
  target = redactSecrets(target.replace(TERMINAL_CONTROLS, ''), [secret]);
  return target.length > MAX_LOCATION ? `${target.slice(0, MAX_LOCATION)}...` : target;
}

/** A redirect as the final error: what to set instead of following it. */
function redirectError(label: string, status: number, target: string | undefined): BmcError {
  const text = target === undefined ? `metal-api redirects without a Location; check METAL_BMC_METAL_API_URL` : `metal-api redirects to ${target}; set METAL_BMC_METAL_API_URL to it`;
  return new BmcError('HTTP', `${label}: HTTP ${status}: ${text}`, { httpStatus: status });
}

/**
 * metal-api's `Retry-After` as milliseconds from now (net/retry-after.ts): over 31 years is
 * Infinity, a wait no call's budget holds, not a malformed value to retry after our own backoff.
 */
function retryAfterOf(header: string | string[] | undefined): number | undefined {
  return retryAfterMs(Array.isArray(header) ? header[0] : header, Date.now());
}

/** A Retry-After wait in whole seconds (rounded up), for an error message. */
function waitText(ms: number): string {
  return Number.isFinite(ms) ? `${Math.ceil(ms / 1000)} s` : 'more than 999999999 s';
}

/**
 * One of the answer's lists, of the machine uuids posted only, each once: metal-api names only
 * entries of the request, and a list bounded by the report keeps whatever an answer of up to
 * MAX_ANSWER_BYTES carries out of the cycle's results and its log. undefined for no list of strings.
 */
function postedList(value: unknown, posted: ReadonlySet<string>): string[] | undefined {
  if (value === null || value === undefined) return [];
  if (!Array.isArray(value) || !value.every((v) => typeof v === 'string')) return undefined;
  const named = new Set<string>();
  for (const uuid of value as string[]) if (posted.has(uuid)) named.add(uuid);
  return [...named];
}

/** `ECONNREFUSED: connect ECONNREFUSED 127.0.0.1:8080`, from undici's or node's error (and its cause). */
function networkReason(err: unknown): string {
  const e = err as { message?: unknown; cause?: { message?: unknown } } | undefined;
  const code = transportCode(err);
  const message = typeof e?.message === 'string' && e.message !== '' ? e.message : typeof e?.cause?.message === 'string' ? e.cause.message : String(err);
  return code === '' || message.includes(code) ? message : `${code}: ${message}`;
}

/**
 * Transport failures that end an attempt before the request went out: the connection refused or
 * not made in time, the host not resolved. Only these are tried again for a POST: after a reset
 * (UND_ERR_SOCKET, ECONNRESET, EPIPE) metal-api may have read the body and be applying it, and a
 * second POST then races its own first in updateEntity's optimistic lock (metal-api
 * datastore/rethinkdb.go 480-494): entries the first applied come back as not applied.
 */
const NEVER_SENT_CODES: ReadonlySet<string> = new Set(['ECONNREFUSED', 'UND_ERR_CONNECT_TIMEOUT', 'ENOTFOUND', 'EAI_AGAIN', 'EAI_FAIL']);

/** The error's code, or its cause's (undici wraps some). */
function transportCode(err: unknown): string {
  const e = err as { code?: unknown; cause?: { code?: unknown } } | undefined;
  return typeof e?.code === 'string' ? e.code : typeof e?.cause?.code === 'string' ? e.cause.code : '';
}

function str(value: unknown): string {
  return typeof value === 'string' ? value : '';
}

/** The most of an answer metal-api's client reads: its answers are lists of machine ids (~80 KB for 1,000 machines). */
export const MAX_ANSWER_BYTES = 16 * 2 ** 20;

/** The body as text, refused (PROTOCOL, not retried) past MAX_ANSWER_BYTES: a broken proxy, or someone on a plain-http path, must not fill the heap. */
async function boundedText(body: Dispatcher.ResponseData['body'], label: string): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_ANSWER_BYTES) {
      body.destroy();
      throw new BmcError('PROTOCOL', `${label}: the answer is larger than ${MAX_ANSWER_BYTES} bytes; not read`);
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

export function createMetalApiClient(options: MetalApiClientOptions): MetalApiClient {
  if (options === null || typeof options !== 'object') throw invalid('options', 'must be an object');
  const { base, display } = normaliseBaseUrl(options.baseUrl);
  if (typeof options.hmacKey !== 'string' || options.hmacKey === '') throw invalid('hmacKey', 'must be a non-empty string');
  const hmacKey = options.hmacKey;
  const timeoutMs = intOption('timeoutMs', options.timeoutMs, 10_000, 1, MAX_TIMER_MS);
  const getTimeoutMs = intOption('getTimeoutMs', options.getTimeoutMs, Math.min(timeoutMs, 10_000), 1, MAX_TIMER_MS);
  const retries = intOption('retries', options.retries, 3, 0, 100);
  const backoffMs = intOption('backoffMs', options.backoffMs, 500, 0, MAX_TIMER_MS);
  const maxBackoffMs = intOption('maxBackoffMs', options.maxBackoffMs, Math.max(10_000, backoffMs), backoffMs, MAX_TIMER_MS);
  const userAgent = options.userAgent ?? 'metal-bmc';
  if (options.ca !== undefined && (typeof options.ca !== 'string' || options.ca === '')) throw invalid('ca', 'must be non-empty PEM text');
  if (options.ca !== undefined && options.dispatcher !== undefined) throw invalid('ca', 'cannot be given with a dispatcher (set the CA on it)');
  const { onRetry, onAttemptEnd } = options;
  const dispatcher = options.ca === undefined ? options.dispatcher : new Agent({ connect: { ca: options.ca } });
  /** Date.now() until which report POSTs are not sent: metal-api's Retry-After that ended the last one */
  let reportsHeldUntil = 0;
  let heldBy: BmcError | undefined;

  function backoff(attempt: number): number {
    const ceiling = Math.min(maxBackoffMs, backoffMs * 2 ** attempt);
    return Math.round(ceiling / 2 + Math.random() * (ceiling / 2));
  }

  /**
   * What one call's attempts may take, (retries + 1) attempt deadlines: a Retry-After wait must end
   * within what is left of it. metal-api asking for a longer wait is answered by giving up at once
   * (the next report cycle sends the report again), not by sending it sooner than asked.
   */
  function callBudgetMs(method: 'GET' | 'POST'): number {
    return Math.min(MAX_TIMER_MS, (retries + 1) * (method === 'GET' ? getTimeoutMs : timeoutMs));
  }

  /** One request with retries; resolves with the parsed JSON of a 2xx answer. */
  async function call(method: 'GET' | 'POST', path: string, body: unknown, what: string, callOptions: CallOptions, on404?: () => BmcError): Promise<unknown> {
    const caller = callOptions.signal;
    const label = `metal-api ${method} ${display}${path}`;
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const budgetEnds = Date.now() + callBudgetMs(method);
    if (method === 'POST') refuseWhileHeld(label);
    for (let attempt = 0; ; attempt++) {
      if (caller?.aborted) throw abortError(caller, what);
      // a timer of our own: AbortSignal.timeout() reachable only through AbortSignal.any() may be collected before it fires
      const attemptMs = method === 'GET' ? getTimeoutMs : timeoutMs;
      const attemptDeadline = deadline(attemptMs, label, caller);
      const signal = attemptDeadline.signal;
      let error: BmcError;
      let retryable: boolean;
      let retryAfter: number | undefined;
      let told = false;
      const tell = (outcome: AttemptEnd['outcome'], serverDate?: string | string[]): void => {
        told = true;
        const date = Array.isArray(serverDate) ? serverDate[0] : serverDate;
        onAttemptEnd?.(date === undefined ? { outcome } : { outcome, serverDate: date });
      };
      try {
        const headers: Record<string, string> = { ...signHeaders(hmacKey, method), accept: 'application/json', 'user-agent': userAgent };
        if (payload !== undefined) headers['content-type'] = 'application/json';
        const res = await request(`${base}${path}`, { method, headers, body: payload, signal, dispatcher });
        tell(`${res.statusCode}`, res.headers.date);
        const text = await boundedText(res.body, label);
        if (res.statusCode >= 200 && res.statusCode < 300) {
          try {
            return text === '' ? null : (JSON.parse(text) as unknown);
          } catch {
            // not the parser's error as the cause: Node's message quotes the text around the fault,
            // which in an IPMI answer may be the BMC password
            throw new BmcError('PROTOCOL', `${label}: HTTP ${res.statusCode} with a body of ${text.length} characters that is not JSON`);
          }
        }
        if (res.statusCode === 404 && on404) throw on404();
        // an ingress sending http to https answers with its HTML page: the Location is what to change
        if (REDIRECTS.has(res.statusCode)) throw redirectError(label, res.statusCode, redirectTarget(res.headers.location, `${base}${path}`, path, hmacKey));
        // a 502 or 504 to a POST comes from a proxy in front of metal-api (an ingress) that lost its
        // answer or stopped waiting for it: metal-api may have the report and still be applying it,
        // as after our own timeout below; a 503 or 429 says it was not taken, a GET changes nothing
        const mayBeApplying = method === 'POST' && (res.statusCode === 502 || res.statusCode === 504);
        retryable = !mayBeApplying && (res.statusCode >= 500 || res.statusCode === 429);
        retryAfter = retryable ? retryAfterOf(res.headers['retry-after']) : undefined;
        const message = serverMessage(text, hmacKey);
        const notSent = mayBeApplying ? ` (${NOT_SENT_AGAIN})` : '';
        error = new BmcError('HTTP', `${label}: HTTP ${res.statusCode}${message === '' ? '' : `: ${message}`}${notSent}`, { httpStatus: res.statusCode });
      } catch (err) {
        if (!told) tell(caller?.aborted ? 'aborted' : signal.aborted ? 'timeout' : 'closed');
        // our own errors pass through, except the attempt deadline's, which undici rethrows and we retry
        if (err instanceof BmcError && err !== signal.reason) throw err;
        if (caller?.aborted) throw abortError(caller, what);
        // a POST metal-api got and did not answer in time may still be applied: sending it again
        // adds the same work to a metal-api already slow with it (a partition's report is one
        // database update per machine); the next cycle reports again. The same after a connection
        // lost once the request may have gone out: only one never sent is sent again
        retryable = method !== 'POST' || (!signal.aborted && NEVER_SENT_CODES.has(transportCode(err)));
        const notSent = retryable ? '' : ` (${NOT_SENT_AGAIN})`;
        error = signal.aborted
          ? new BmcError('TIMEOUT', `${label}: no answer within ${attemptMs} ms${notSent}`, { cause: err })
          : new BmcError('CLOSED', `${label}: connection failed (${networkReason(err)})${notSent}`, { cause: err });
      } finally {
        attemptDeadline.dispose();
      }
      if (!retryable) throw error;
      if (attempt >= retries) {
        if (attempt > 0) error.message = `${error.message} (gave up after ${attempt + 1} attempts)`;
        // the last answer's wait holds the next reports back as one past the budget does
        if (method === 'POST' && retryAfter !== undefined && retryAfter > 0) {
          error.message = `${error.message} (metal-api asked to wait ${waitText(retryAfter)}: the next report goes out in ${waitText(holdReports(retryAfter, error))} at the earliest)`;
        }
        throw error;
      }
      const delayMs = Math.max(backoff(attempt), retryAfter ?? 0);
      const budgetLeft = budgetEnds - Date.now();
      if (retryAfter !== undefined && retryAfter >= budgetLeft) {
        const held = method === 'POST' ? holdReports(retryAfter, error) : 0;
        const next = method === 'POST' ? `; the next report goes out in ${waitText(held)} at the earliest` : '';
        error.message = `${error.message} (metal-api asked to wait ${waitText(retryAfter)}, more than the ${Math.max(0, Math.floor(budgetLeft / 1000))} s left of this call's time budget: not sent again${next})`;
        throw error;
      }
      onRetry?.({ what, attempt: attempt + 1, delayMs, error });
      try {
        await delay(delayMs, undefined, caller ? { signal: caller } : undefined);
      } catch {
        throw abortError(caller as AbortSignal, what);
      }
    }
  }

  /** Holds report POSTs back for metal-api's Retry-After, at most MAX_REPORT_HOLD_MS; returns the hold. */
  function holdReports(retryAfterMs: number, cause: BmcError): number {
    const held = Math.min(retryAfterMs, MAX_REPORT_HOLD_MS);
    reportsHeldUntil = Date.now() + held;
    heldBy = cause;
    return held;
  }

  /** A report POST while metal-api's last Retry-After runs is not sent (UNAVAILABLE; no httpStatus, which would read as metal-api refusing this body). */
  function refuseWhileHeld(label: string): void {
    const left = reportsHeldUntil - Date.now();
    if (left <= 0 || heldBy === undefined) return;
    throw new BmcError('UNAVAILABLE', `${label}: not sent: metal-api asked an earlier report to wait (HTTP ${heldBy.httpStatus ?? '?'} with Retry-After), ${waitText(left)} left`, { cause: heldBy });
  }

  async function ipmiReport(body: MachineIpmiReports, callOptions: CallOptions = {}): Promise<MachineIpmiReportResponse> {
    if (body === null || typeof body !== 'object' || typeof body.partitionid !== 'string' || body.partitionid === '') {
      throw new BmcError('INVALID_ARGUMENT', 'ipmiReport: body.partitionid must be a non-empty string');
    }
    if (body.reports === null || typeof body.reports !== 'object') throw new BmcError('INVALID_ARGUMENT', 'ipmiReport: body.reports must be an object');
    const answer = await call('POST', '/v1/machine/ipmi', body, 'metal-api ipmi report', callOptions);
    const a = (answer ?? {}) as { created?: unknown; updated?: unknown };
    const posted = new Set(Object.keys(body.reports));
    const created = postedList(a.created, posted);
    const updated = postedList(a.updated, posted);
    if (typeof answer !== 'object' || created === undefined || updated === undefined) {
      throw new BmcError('PROTOCOL', `metal-api POST ${display}/v1/machine/ipmi: the answer is not a v1.MachineIpmiReportResponse`);
    }
    // metal-api names both lists, null for an empty one (Go's nil slice); an answer naming neither
    // says nothing of which entries it applied, and must not read as "none"
    if (a.created === undefined && a.updated === undefined) return { created, updated, unlisted: true };
    return { created, updated };
  }

  async function findIpmiMachine(id: string, callOptions: CallOptions = {}): Promise<MachineIpmi> {
    if (typeof id !== 'string' || id === '') throw new BmcError('INVALID_ARGUMENT', 'findIpmiMachine: id must be a non-empty string');
    const path = `/v1/machine/${encodeURIComponent(id)}/ipmi`;
    const notFound = (): BmcError => new BmcError('HTTP', `machine ${id} not found at metal-api`, { httpStatus: 404 });
    const answer = await call('GET', path, undefined, `metal-api find ipmi of machine ${id}`, callOptions, notFound);
    const ipmi = (answer as { ipmi?: unknown } | null)?.ipmi as Record<string, unknown> | undefined;
    if (ipmi === null || typeof ipmi !== 'object' || typeof ipmi.address !== 'string') {
      // Never echo the body: it carries the BMC password.
      throw new BmcError('PROTOCOL', `metal-api GET ${display}${path}: the answer has no ipmi.address`);
    }
    const fru = ipmi.fru !== null && typeof ipmi.fru === 'object' ? (ipmi.fru as MetalFru) : {};
    const result: MachineIpmi = {
      address: ipmi.address,
      user: str(ipmi.user),
      password: str(ipmi.password),
      interface: str(ipmi.interface),
      mac: str(ipmi.mac),
      fru,
      bmcversion: str(ipmi.bmcversion),
      powerstate: str(ipmi.powerstate),
    };
    if (typeof ipmi.last_updated === 'string') result.last_updated = ipmi.last_updated;
    return result;
  }

  return { baseUrl: display, ipmiReport, findIpmiMachine };
}
