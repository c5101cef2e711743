/**
 * `GET /v1/status` (the StatusDocument as JSON) and `GET /v1/status/events` (server-sent
 * events: one `status` event with the document at once and after every change, checked every
 * `pollMs`; a comment line every 15 s keeps proxies from closing the stream). Served by the
 * operations listener (everything) and by the console listener behind its authentication (the
 * machines the client may open). At most `maxStreams` event streams at once (503 beyond), and
 * at most `maxStreamsPerSource` of them from one remote address (429 beyond): one client cannot
 * take every stream and leave the other operators without live updates. The address, not the
 * authenticated identity: in token mode every client of the console listener is the same one.
 * The document is built and serialised once per store revision and reused for `cacheMs` at most,
 * by every request and stream, with a view or without: at 5,000 BMCs it is ~2.8 MB of JSON and
 * ~60 ms to build, and built per client and change, 64 streams took the whole main thread. A
 * request without a view (the operations listener, and a console client that may open every
 * machine) gets the cached bytes themselves; a view's JSON is joined from rows serialised once
 * (serialised.ts). A stream writes the cached bytes between the event's prefix and suffix, with
 * no copy of its own.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { StatusStore, StatusView } from './store.js';
import { serialiseDocument, type SerialisedDocument } from './serialised.js';
import { remoteOf } from '../console/remote.js';
import { BmcError } from '../errors.js';
import { keepsOwnStallBound, watchWriteProgress } from '../net/connection-limits.js';
import { requestUrl } from '../net/request-url.js';

/** why an event stream was refused: the listener's streams are all taken, or those of the client's address */
export type StreamRefusal = 'total' | 'per-source';

export interface StatusHttpOptions {
  /** how often an event stream looks for changes, default 1 s */
  pollMs?: number;
  /** event streams open at once, default 64 */
  maxStreams?: number;
  /** event streams open at once from one remote address, default 8 */
  maxStreamsPerSource?: number;
  /** told of each stream refused (for a log line and a metric; `remote` as logs name it) */
  onRefused?: (why: StreamRefusal, remote: string) => void;
  /** longest reuse of a serialised document with no change in the store, default 1 s (its lease ages are in seconds) */
  cacheMs?: number;
  /** an event stream whose client has taken none of what it was sent for this long is closed (its slot freed), default 60 s; a client that keeps reading is not cut */
  stallMs?: number;
}

export interface StatusHttp {
  /** answers the request when its path is one of ours; false otherwise */
  handle(req: IncomingMessage, res: ServerResponse, view?: StatusView): boolean;
  /** ends every event stream */
  close(): void;
}

const HEADERS = { 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' };
const HEARTBEAT_MS = 15_000;
/** a `status` event is these around the document's JSON (which has no newline) */
const EVENT_PREFIX = Buffer.from('event: status\ndata: ');
const EVENT_SUFFIX = Buffer.from('\n\n');

export function createStatusHttp(store: Pick<StatusStore, 'document' | 'revision'>, o: StatusHttpOptions = {}): StatusHttp {
  const pollMs = o.pollMs ?? 1000;
  const maxStreams = o.maxStreams ?? 64;
  const maxPerSource = o.maxStreamsPerSource ?? 8;
  for (const [name, value] of Object.entries({ maxStreams, maxStreamsPerSource: maxPerSource })) {
    if (!Number.isInteger(value) || value < 1) throw new BmcError('INVALID_ARGUMENT', `createStatusHttp: option ${name} must be an integer >= 1, got ${String(value)}`);
  }
  const onRefused = o.onRefused ?? (() => undefined);
  const cacheMs = o.cacheMs ?? 1000;
  const stallMs = o.stallMs ?? 60_000;
  const streams = new Set<ServerResponse>();
  /** open event streams per remote address */
  const bySource = new Map<string, number>();
  /** how each stream stops its timer */
  const enders = new Map<ServerResponse, () => void>();
  let cached: { revision: string; at: number; document: SerialisedDocument } | undefined;

  /** the document as JSON, built from the store once while its revision stands: the cached bytes themselves without a view */
  function body(view: StatusView | undefined): Buffer {
    const revision = store.revision();
    const at = Date.now();
    if (cached === undefined || cached.revision !== revision || at - cached.at >= cacheMs) {
      cached = { revision, at, document: serialiseDocument(store.document()) };
    }
    return view?.mayView === undefined ? cached.document.whole : cached.document.view(view.mayView);
  }

  function stream(req: IncomingMessage, res: ServerResponse, view: StatusView | undefined): void {
    const source = req.socket.remoteAddress ?? 'unknown';
    const fromSource = bySource.get(source) ?? 0;
    if (fromSource >= maxPerSource) {
      onRefused('per-source', remoteOf(req.socket));
      // closed after it: the client does not keep a connection for a stream it cannot have
      res.writeHead(429, { 'content-type': 'text/plain', 'retry-after': '10', connection: 'close', ...HEADERS }).end(`too many status streams from this address (at most ${maxPerSource} at once); close one first\n`);
      return;
    }
    if (streams.size >= maxStreams) {
      onRefused('total', remoteOf(req.socket));
      res.writeHead(503, { 'content-type': 'text/plain', 'retry-after': '10', connection: 'close', ...HEADERS }).end('too many status streams\n');
      return;
    }
    streams.add(res);
    bySource.set(source, fromSource + 1);
    // the stream's own bound (stallMs) governs a client that stops reading, not the listener's shorter one
    keepsOwnStallBound(res);
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', connection: 'keep-alive', ...HEADERS });
    let last = '';
    let quiet = 0;
    /** whether the client took any of what it was sent lately: a slow reader is not cut, however long one document takes it */
    const progress = watchWriteProgress(res.socket ?? req.socket);
    const push = () => {
      if (res.writableEnded || res.destroyed) return end();
      const stalled = progress.overdue(stallMs);
      // a client that does not read gets nothing more until it has (then the newest document):
      // each document is the whole status, ~600 KB at 1,000 BMCs, and would pile up in memory
      if (res.writableNeedDrain) {
        if (stalled) res.destroy();
        return;
      }
      const rev = store.revision();
      if (rev === last) {
        quiet += pollMs;
        if (quiet >= HEARTBEAT_MS) {
          quiet = 0;
          res.write(': keepalive\n\n');
        }
        return;
      }
      last = rev;
      quiet = 0;
      // one chunk on the wire (corked), and the document's bytes are the cache's, not a copy per stream
      res.cork();
      res.write(EVENT_PREFIX);
      res.write(body(view));
      res.write(EVENT_SUFFIX);
      res.uncork();
    };
    const end = () => {
      clearInterval(timer);
      enders.delete(res);
      // told several times (the request's close, the response's, a poll): the source's count once
      if (!streams.delete(res)) return;
      const left = (bySource.get(source) ?? 1) - 1;
      if (left <= 0) bySource.delete(source);
      else bySource.set(source, left);
    };
    const timer = setInterval(push, pollMs);
    push();
    enders.set(res, end);
    req.on('close', end);
    res.on('close', end);
    res.on('error', () => undefined);
  }

  return {
    handle(req, res, view) {
      const path = requestUrl(req.url).pathname;
      if (path !== '/v1/status' && path !== '/v1/status/events') return false;
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.writeHead(405, { allow: 'GET, HEAD', ...HEADERS }).end();
        return true;
      }
      if (path === '/v1/status/events') {
        stream(req, res, view);
        return true;
      }
      const json = body(view);
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': json.length, ...HEADERS });
      res.end(req.method === 'HEAD' ? undefined : json);
      return true;
    },
    close() {
      // each stream's timer stops here (a client that does not read never closes its end, and a
      // write after end() has no listener for its error: it ended the process), then its socket goes
      for (const res of [...streams]) {
        enders.get(res)?.();
        res.end();
        res.destroy();
      }
      streams.clear();
      bySource.clear();
    },
  };
}
