/**
 * Captured console output over the HTTPS console listener, behind its authentication and the
 * per-machine authorisation (viewer-routes.ts):
 *   GET /v1/machine/{id}/console/log?since=MS&newest=BYTES&follow=1
 *       the machine's output since MS (ms since the epoch; default all that is kept), gaps shown
 *       as marker lines enclosed in NULs (capture-read.ts `gapMarker`, capture-markers.ts); with
 *       follow=1 the response stays open and new output follows until the client goes. A machine this instance holds no capture of
 *       at all is a 404 (header `x-metal-bmc-capture: none`), not an empty 200: a script can
 *       tell it from a range with nothing in it. A follower waits up to FOLLOW_START_WAIT_MS for
 *       such a capture to begin (a machine just reported) before its 404. With newest=BYTES (1 to
 *       MAX_NEWEST) the range starts at the newest BYTES of the capture when that is later than
 *       MS (at the index record they begin in: a little more may come, capture-newest.ts), and
 *       the header `x-metal-bmc-left-out` says how many bytes of the range's output were left out
 *   GET /v1/console/grep?pattern=TEXT&since=MS
 *       NDJSON, one {"machineId","t","line"} per matching line as it is found, only machines the
 *       client may open; a line longer than 512 characters comes as the 512 around its first
 *       match, with "cut":{"before","after"} (characters left out); a grep ended by a cap of all
 *       machines ends with {"truncated":"why"}
 *   GET /history/{id}, /history/assets/history.js
 *       the browser's history view (capture-page.ts); it asks for the newest historyKeepBytes of
 *       a range (4 MiB) and holds no more, should more come
 * Bounds: the pattern is 1 to 200 characters; at most 1000 matches per machine, 10,000 and 4 MiB
 * of NDJSON per grep (capture-read.ts GREP_LIMITS); one grep at a time (it reads every kept log:
 * 429 while one runs), written as it goes at the client's pace and stopped when the client goes;
 * a follower polls every 250 ms and waits for the client to drain its buffer; a log or grep
 * client that takes nothing for 30 s (LOG_STALL_MS, GREP_STALL_MS) is dropped.
 */
import type { EventEmitter } from 'node:events';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { validMachineId } from './access.js';
import { isSafeMachineId, listSegments, NO_CAPTURE_HEADER } from './capture-files.js';
import { MAX_NEWEST, newestStart } from './capture-newest.js';
import { GREP_LIMITS, grepLine, grepMatches, historyCursor, renderEvent } from './capture-read.js';
import { HISTORY_KEEP_BYTES, HISTORY_LEFT_OUT_HEADER, HISTORY_SCRIPT, historyPage } from './capture-page.js';
import { CSP, SECURITY_HEADERS } from './page.js';
import type { Viewer, ViewerRoutes } from './viewer-routes.js';
import { requestUrl } from '../net/request-url.js';

const HEADERS = { 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' };
const LOG_PATH = /^\/v1\/machine\/([^/]+)\/console\/log$/;
const GREP_PATH = '/v1/console/grep';
const PAGE_PATH = /^\/history\/[^/]+$/;
const SCRIPT_PATH = '/history/assets/history.js';
const SCRIPT = Buffer.from(HISTORY_SCRIPT);
const MAX_PATTERN = 200;

export interface CaptureRoutesOptions {
  dir: string;
  /** follow poll interval, default 250 ms */
  pollMs?: number;
  /** a grep's bounds, default GREP_LIMITS (tests) */
  grepLimits?: Partial<typeof GREP_LIMITS>;
  /** how long a grep waits for its client to take what was written before giving up on it (default GREP_STALL_MS) */
  grepStallMs?: number;
  /** the same for a log read or follower (default LOG_STALL_MS) */
  logStallMs?: number;
  /** how long a follower waits for a capture that has not begun (default FOLLOW_START_WAIT_MS) */
  followStartWaitMs?: number;
  /** what the history page holds of a range at most, the newest bytes (default HISTORY_KEEP_BYTES; tests) */
  historyKeepBytes?: number;
}

/**
 * A grep's client that takes nothing for this long is dropped and its slot freed: a client whose
 * reader stopped (`metal-bmc console grep ... | less`, left open) would otherwise hold the one
 * grep slot, every other operator's grep refused until it went.
 */
export const GREP_STALL_MS = 30_000;

/**
 * The same for a log read: each follower holds one of the listener's connections (32 per
 * address, 1024 in all) for as long as it lasts, and one that stopped reading would hold it
 * forever.
 */
export const LOG_STALL_MS = 30_000;

/**
 * How long a follower of a machine with no capture at all waits for one before its 404. A machine
 * just reported has its log opened within seconds (the report cycle's ids reach the capture every
 * 5 s); any id the client may open would otherwise be polled for as long as the client stays.
 */
export const FOLLOW_START_WAIT_MS = 60_000;

function sinceOf(url: URL): number | undefined | 'bad' {
  const v = url.searchParams.get('since');
  if (v === null) return undefined;
  return /^\d{1,15}$/.test(v) ? Number(v) : 'bad';
}

/** `newest`: bytes from 1 to MAX_NEWEST, written as digits only */
function newestOf(url: URL): number | undefined | 'bad' {
  const v = url.searchParams.get('newest');
  if (v === null) return undefined;
  const n = /^\d{1,13}$/.test(v) ? Number(v) : 0;
  return n >= 1 && n <= MAX_NEWEST ? n : 'bad';
}

/**
 * Waits until `res` takes more output ('drain') or is gone ('close'), and takes both listeners
 * off whichever comes: a follower waits here at every backpressure, and a 'close' listener left
 * behind each time would pile up for the life of the stream.
 */
export function drainedOrClosed(res: EventEmitter): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.once('drain', done);
    res.once('close', done);
  });
}

/** drainedOrClosed within `ms`: false when neither came in time */
async function drainedOrClosedWithin(res: EventEmitter, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  try {
    return await Promise.race([drainedOrClosed(res).then(() => true as const), late]);
  } finally {
    clearTimeout(timer);
  }
}

const fail = (res: ServerResponse, status: number, message: string) => res.writeHead(status, { 'content-type': 'text/plain', ...HEADERS }).end(`${message}\n`);

export interface CaptureRoutes extends ViewerRoutes {
  /** ends every follower (shutdown) */
  close(): void;
}

export function captureViewerRoutes(o: CaptureRoutesOptions): CaptureRoutes {
  const pollMs = o.pollMs ?? 250;
  const logStallMs = o.logStallMs ?? LOG_STALL_MS;
  const startWaitMs = o.followStartWaitMs ?? FOLLOW_START_WAIT_MS;
  const keepBytes = o.historyKeepBytes ?? HISTORY_KEEP_BYTES;
  if (!Number.isSafeInteger(keepBytes) || keepBytes < 1) throw new RangeError(`historyKeepBytes must be a positive integer, not ${keepBytes}`);
  const page = Buffer.from(historyPage(keepBytes));
  const followers = new Set<ServerResponse>();
  let closed = false;
  /** the running grep's answer, ended at close(); set while a grep runs (one at a time) */
  let grepResponse: ServerResponse | undefined;

  /**
   * Whether the machine has a capture here; a follower waits up to followStartWaitMs for one to
   * begin. False as well when the client went or the routes closed while it waited.
   */
  async function captureBegun(machineId: string, follow: boolean, left: () => boolean): Promise<boolean> {
    const deadline = Date.now() + (follow ? startWaitMs : 0);
    for (;;) {
      if ((await listSegments(o.dir, machineId)).length > 0) return true;
      if (closed || left() || Date.now() >= deadline) return false;
      await new Promise((resolve) => setTimeout(resolve, pollMs));
    }
  }

  async function streamLog(req: IncomingMessage, res: ServerResponse, machineId: string, range: { since: number | undefined; newest: number | undefined }, follow: boolean): Promise<void> {
    let gone = false;
    res.on('close', () => {
      gone = true;
      followers.delete(res);
    });
    // close() answers a follower still waiting for the capture
    if (follow) followers.add(res);
    if (!(await captureBegun(machineId, follow, () => gone))) {
      followers.delete(res);
      // answered by close() while it waited, or nobody left to answer
      if (gone || res.headersSent) return;
      res.writeHead(404, { 'content-type': 'text/plain', [NO_CAPTURE_HEADER]: 'none', ...HEADERS }).end(`no console capture of machine ${machineId} on this metal-bmc instance\n`);
      return;
    }
    const { since, newest } = range;
    const start = newest === undefined ? undefined : await newestStart(o.dir, machineId, newest, since);
    const cursor = historyCursor(o.dir, machineId, { ...(since === undefined ? {} : { sinceMs: since }), ...(start?.from ? { from: start.from } : {}) });
    if (gone || res.headersSent) return;
    res.writeHead(200, { 'content-type': 'application/octet-stream', ...(start ? { [HISTORY_LEFT_OUT_HEADER]: String(start.leftOutBytes) } : {}), ...HEADERS });
    while (!closed) {
      const events = await cursor.next();
      for (const e of events) {
        if (gone) return;
        if (!res.write(renderEvent(e)) && !(await drainedOrClosedWithin(res, logStallMs))) {
          // the client stopped taking the output: dropped, so that its connection is free
          res.destroy();
          return;
        }
      }
      if (gone) return;
      if (events.length === 0) {
        if (!follow) break;
        await new Promise((resolve) => setTimeout(resolve, pollMs));
      }
    }
    followers.delete(res);
    res.end();
  }

  /**
   * The matches as they are found, each written when the client has taken the last: what the
   * grep holds is one match and one read of the log. The client going away stops the grep
   * (its slot is free for the next as soon as this returns).
   */
  async function streamGrep(res: ServerResponse, pattern: string, since: number | undefined, viewer: Viewer): Promise<void> {
    const gone = new AbortController();
    res.on('close', () => gone.abort());
    res.writeHead(200, { 'content-type': 'application/x-ndjson', ...HEADERS });
    const matches = grepMatches(o.dir, pattern, { ...(since === undefined ? {} : { sinceMs: since }), mayOpen: (id) => viewer.mayOpen(id), signal: gone.signal, ...(o.grepLimits ? { limits: o.grepLimits } : {}) });
    try {
      while (!gone.signal.aborted) {
        const r = await matches.next();
        if (gone.signal.aborted) return;
        if (r.done) {
          res.end(r.value ? `${JSON.stringify(r.value)}\n` : undefined);
          return;
        }
        if (!res.write(grepLine(r.value)) && !(await drainedOrClosedWithin(res, o.grepStallMs ?? GREP_STALL_MS))) {
          // the client stopped taking the answer: dropped, so that the slot is free for the next
          res.destroy();
          return;
        }
      }
    } finally {
      await matches.return(undefined);
    }
  }

  return {
    close() {
      closed = true;
      for (const res of followers) {
        if (res.headersSent) res.end();
        else fail(res, 503, 'metal-bmc is stopping');
      }
      followers.clear();
      // a grep running at the shutdown is cut off (its client sees the answer end early)
      grepResponse?.destroy();
    },
    owns: (path) => path === GREP_PATH || path === SCRIPT_PATH || LOG_PATH.test(path) || PAGE_PATH.test(path),
    handle(req, res, viewer) {
      if (req.method !== 'GET') return void res.writeHead(405, { allow: 'GET', ...HEADERS }).end();
      const url = requestUrl(req.url);
      if (url.pathname === SCRIPT_PATH) return void res.writeHead(200, { 'content-type': 'text/javascript; charset=utf-8', 'content-length': SCRIPT.length, ...SECURITY_HEADERS }).end(SCRIPT);
      if (PAGE_PATH.test(url.pathname)) return void res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'content-length': page.length, 'content-security-policy': CSP, ...SECURITY_HEADERS }).end(page);
      const since = sinceOf(url);
      if (since === 'bad') return fail(res, 400, 'since must be milliseconds since the epoch');
      const m = LOG_PATH.exec(url.pathname);
      const done = (err: unknown) => {
        if (!res.headersSent) fail(res, 500, 'console history cannot be read');
        else res.destroy(err instanceof Error ? err : undefined);
      };
      if (m) {
        let machineId: string;
        try {
          machineId = decodeURIComponent(m[1]!);
        } catch {
          return fail(res, 400, 'bad machine id');
        }
        if (!validMachineId(machineId) || !isSafeMachineId(machineId)) return fail(res, 400, 'bad machine id');
        if (!viewer.mayOpen(machineId)) return fail(res, 403, `${viewer.subject} may not open the console of machine ${machineId}`);
        const newest = newestOf(url);
        if (newest === 'bad') return fail(res, 400, `newest must be a byte count from 1 to ${MAX_NEWEST}`);
        streamLog(req, res, machineId, { since, newest }, url.searchParams.get('follow') === '1').catch(done);
        return;
      }
      const pattern = url.searchParams.get('pattern') ?? '';
      if (pattern.length < 1 || pattern.length > MAX_PATTERN) return fail(res, 400, `pattern must be 1 to ${MAX_PATTERN} characters`);
      if (closed) return fail(res, 503, 'metal-bmc is stopping');
      if (grepResponse !== undefined) return fail(res, 429, 'a console grep is running; try again when it is done');
      grepResponse = res;
      streamGrep(res, pattern, since, viewer)
        .catch(done)
        .finally(() => {
          grepResponse = undefined;
        });
    },
  };
}
