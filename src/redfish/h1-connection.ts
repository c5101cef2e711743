/**
 * One keep-alive HTTP/1.1 connection to a BMC, of our own: the request written in one piece, the
 * answer read by h1-parse.ts, one request at a time (no pipelining). It takes the place of an undici
 * Client in connections.ts and speaks the same dispatch interface (options, a handler, a controller
 * that aborts), so the transport above it is unchanged; what it leaves out is what a BMC read never
 * needs (pipelining, HTTP/2, upgrades, proxies, redirects, timers beyond its idle one: the
 * transport's deadline bounds every request). It reads answers whose lines end in LF alone, as Go's net/http
 * (the Go metal-bmc's client) does and undici does not; a read costs the same CPU through either
 * (docs/performance.md, "An HTTP/1.1 client of our own in place of undici").
 *
 * The connection opens with the first request through the transport's connector (TLS policy,
 * session resumption, connect deadline: tls.ts), and again after the BMC closed it. After an answer
 * it stays open if both sides may go on (`Connection`, HTTP/1.0, bytes beyond the answer, a body
 * read to the connection's end) for `keepAliveMs`, or what the BMC's `Keep-Alive: timeout=` allows
 * less two seconds; a kept connection is used a turn of the loop after the request came (a close the
 * BMC sent with its answer is seen by then), and a BMC that closed it while idle gets a new
 * connection on the next request.
 */
import type { Socket } from 'node:net';
import type { Readable } from 'node:stream';
import type { buildConnector, Dispatcher } from 'undici';
import { DECIMAL, FIELD_VALUE, ResponseParser, TOKEN, type H1Error, type H1Limits } from './h1-parse.js';

/** A dispatch handler that may also hear when its request went on the wire (a hedge's time counts from then: http.ts). */
export type SentHeedingHandler = Dispatcher.DispatchHandler & { onRequestSent?: () => void };

/** What connections.ts asks of a connection: undici's Client interface, with whether it holds a socket and when a request went out. */
export interface Connection {
  readonly destroyed: boolean;
  /** holds an open socket (an idle one without it reconnects for its next request: a TLS handshake) */
  readonly connected: boolean;
  dispatch(options: Dispatcher.DispatchOptions, handler: SentHeedingHandler): unknown;
  close(): Promise<void>;
  destroy(reason: Error): Promise<void>;
}

export interface H1ConnectionOptions {
  /** `https://host[:port]` (brackets around an IPv6 address) */
  origin: string;
  connect: buildConnector.connector;
  /** How long an idle connection is kept. Default 4 000 (BMC web servers close idle ones after 5 s or so, often without a Keep-Alive hint). */
  keepAliveMs?: number;
  /** The longest a BMC's `Keep-Alive: timeout=` may keep it. Default 60 000. */
  keepAliveMaxMs?: number;
  limits?: Partial<H1Limits>;
}

/** A request line's target as it may go on the wire (a header's name and value: h1-parse.ts TOKEN, FIELD_VALUE). */
const TARGET = /^[\x21-\x7e]+$/;
/** headers the connection writes itself */
const OWN_HEADERS = new Set(['host', 'connection', 'content-length', 'transfer-encoding', 'keep-alive', 'upgrade', 'te']);
/** methods whose request has a body by definition: an empty one is sent as `content-length: 0` (BMCs answer 411 without) */
const PAYLOAD_METHODS = new Set(['POST', 'PUT', 'PATCH']);
/** what the BMC's `Keep-Alive: timeout=` is shortened by, for a request sent as it closes (undici's margin) */
const KEEP_ALIVE_MARGIN_MS = 2000;
/** bytes up to this size are sent with the head in one write (one TLS record) */
const ONE_WRITE_BYTES = 16384;

/** An error with an HTTP-layer code the transport classifies (http-errors.ts). */
class H1RequestError extends Error {
  constructor(
    /**
     * `HTTP_STALE_CONNECTION`: a kept-alive connection the BMC closed or reset before answering the
     * request sent on it (an idle close crossing the request, or the BMC restarting)
     */
    readonly code: 'HTTP_BAD_REQUEST' | 'HTTP_BODY_LENGTH' | 'HTTP_CONNECTION_CLOSED' | 'HTTP_BUSY' | 'HTTP_STALE_CONNECTION',
    message: string,
  ) {
    super(message);
    this.name = 'H1RequestError';
  }
}

class Controller implements Dispatcher.DispatchController {
  aborted = false;
  paused = false;
  reason: Error | null = null;
  constructor(private readonly onAbort: (reason: Error) => void) {}
  abort(reason: Error): void {
    if (this.aborted) return;
    this.aborted = true;
    this.reason = reason;
    this.onAbort(reason);
  }
  pause(): void {}
  resume(): void {}
}

/** A request ready to go on the wire: its head, and its body as bytes or a stream. */
interface Prepared {
  head: string;
  bytes: Uint8Array | undefined;
  stream: Readable | undefined;
  /** the stream's declared length; undefined: sent in chunks */
  declared: number | undefined;
}

interface InFlight {
  handler: SentHeedingHandler;
  controller: Controller;
  parser: ResponseParser;
  /** the socket it was sent on, once it was */
  socket: Socket | undefined;
  /** sent on a connection kept alive from an earlier answer */
  reused: boolean;
  /** the answer ended or the request failed: nothing more goes to the handler */
  over: boolean;
  /** a streamed body, destroyed if the request ends before all of it went out */
  stream: Readable | undefined;
  /** the answer came before its streamed body was sent: the connection is not used again */
  bodyUnsent: boolean;
  stopBody: (() => void) | undefined;
  /** how long the connection may idle after this answer */
  keepAliveMs: number;
}

/** Host and port the connector is given, in undici's form (the hostname without brackets); `host` is also the Host header. */
function target(origin: string): { hostname: string; host: string; port: string } {
  const url = new URL(origin);
  const hostname = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  return { hostname, host: url.host, port: url.port === '' ? '443' : url.port };
}

/** The request as it goes on the wire, or an H1RequestError naming what may not be sent. */
function prepare(options: Dispatcher.DispatchOptions, hostHeader: string): Prepared {
  const method = options.method;
  if (!TOKEN.test(method)) throw new H1RequestError('HTTP_BAD_REQUEST', `method ${JSON.stringify(method.slice(0, 20))} is not a token`);
  if (!TARGET.test(options.path)) throw new H1RequestError('HTTP_BAD_REQUEST', 'request target holds spaces or control characters');
  const body = options.body;
  const bytes = typeof body === 'string' ? Buffer.from(body, 'utf8') : body instanceof Uint8Array ? body : undefined;
  const stream = body != null && bytes === undefined && typeof (body as Readable).pipe === 'function' ? (body as Readable) : undefined;
  if (body != null && bytes === undefined && stream === undefined) throw new H1RequestError('HTTP_BAD_REQUEST', 'request body is neither bytes nor a stream');
  let head = `${method} ${options.path} HTTP/1.1\r\nhost: ${hostHeader}\r\nconnection: keep-alive\r\n`;
  const headers = (options.headers ?? {}) as Record<string, string | string[] | undefined>;
  let declared: string | undefined;
  for (const name of Object.keys(headers)) {
    const value = headers[name];
    if (value === undefined) continue;
    const lower = name.toLowerCase();
    if (!TOKEN.test(name)) throw new H1RequestError('HTTP_BAD_REQUEST', 'a header name is not a token');
    for (const v of Array.isArray(value) ? value : [value]) {
      if (!FIELD_VALUE.test(v)) throw new H1RequestError('HTTP_BAD_REQUEST', `header ${lower}: value holds a line end or control character`);
      if (lower === 'content-length') {
        if (!DECIMAL.test(v) || (declared !== undefined && declared !== v)) throw new H1RequestError('HTTP_BAD_REQUEST', 'content-length is not one decimal length');
        declared = v;
      } else if (!OWN_HEADERS.has(lower)) head += `${lower}: ${v}\r\n`;
    }
  }
  if (bytes !== undefined) head += `content-length: ${bytes.length}\r\n`;
  else if (stream !== undefined) head += declared === undefined ? 'transfer-encoding: chunked\r\n' : `content-length: ${declared}\r\n`;
  else if (PAYLOAD_METHODS.has(method)) head += 'content-length: 0\r\n';
  return { head: `${head}\r\n`, bytes, stream, declared: stream === undefined || declared === undefined ? undefined : Number(declared) };
}

/** How long the BMC lets an idle connection stay: its `Keep-Alive: timeout=` less a margin, else `fallback`. */
function keepAliveFor(header: string | undefined, fallback: number, max: number): number {
  const m = header === undefined ? null : /(?:^|[,\s])timeout\s*=\s*(\d{1,6})/i.exec(header);
  if (m === null) return fallback;
  return Math.min(Number(m[1]) * 1000 - KEEP_ALIVE_MARGIN_MS, max);
}

/** Whether `bytes` from `from` on are line ends only (what some servers send after an answer). */
function onlyLineEnds(bytes: Buffer, from: number): boolean {
  for (let i = from; i < bytes.length; i++) if (bytes[i] !== 0x0d && bytes[i] !== 0x0a) return false;
  return true;
}

/** Whether a socket may carry another request. */
const usable = (socket: Socket | undefined): socket is Socket => socket !== undefined && !socket.destroyed && !socket.readableEnded && socket.writable;

export class H1Connection implements Connection {
  private socket: Socket | undefined;
  private current: InFlight | undefined;
  private idleTimer: NodeJS.Timeout | undefined;
  private closed = false;
  private isDestroyed = false;
  private readonly where: ReturnType<typeof target>;
  private readonly keepAliveMs: number;
  private readonly keepAliveMaxMs: number;

  constructor(private readonly options: H1ConnectionOptions) {
    this.where = target(options.origin);
    this.keepAliveMs = options.keepAliveMs ?? 4000;
    this.keepAliveMaxMs = options.keepAliveMaxMs ?? 60_000;
  }

  get destroyed(): boolean {
    return this.isDestroyed;
  }

  get connected(): boolean {
    return usable(this.socket);
  }

  dispatch(options: Dispatcher.DispatchOptions, handler: SentHeedingHandler): boolean {
    const controller = new Controller((reason) => this.fail(request, reason));
    const request: InFlight = {
      handler,
      controller,
      parser: new ResponseParser(
        {
          interim: (status) => !request.over && handler.onResponseStart?.(controller, status, {}, ''),
          head: (status, headers) => {
            if (request.over) return;
            request.keepAliveMs = keepAliveFor(headers['keep-alive'], this.keepAliveMs, this.keepAliveMaxMs);
            handler.onResponseStart?.(controller, status, headers, '');
          },
          data: (chunk) => !request.over && handler.onResponseData?.(controller, chunk),
          end: (reusable) => this.answered(request, reusable),
        },
        options.method === 'HEAD',
        this.options.limits,
      ),
      socket: undefined,
      reused: false,
      over: false,
      stream: undefined,
      bodyUnsent: false,
      stopBody: undefined,
      keepAliveMs: this.keepAliveMs,
    };
    if (this.isDestroyed || this.closed || this.current !== undefined) {
      const busy = this.current !== undefined;
      this.fail(request, new H1RequestError(busy ? 'HTTP_BUSY' : 'HTTP_CONNECTION_CLOSED', busy ? 'a request is already running on this connection' : 'connection closed'));
      return false;
    }
    this.current = request;
    this.stopIdle();
    handler.onRequestStart?.(controller, {});
    if (request.over) return true;
    let prepared: Prepared;
    try {
      prepared = prepare(options, this.where.host);
    } catch (err) {
      // checked before a connection is opened or a kept one used: nothing went out
      this.fail(request, err as Error);
      return true;
    }
    request.stream = prepared.stream;
    if (!usable(this.socket)) {
      this.open(request, prepared);
      return true;
    }
    // a kept connection is used a turn of the loop later, as undici does: a close the BMC sent
    // with (or just after) its last answer is read by then, and the request goes on a new one
    const kept = this.socket;
    setImmediate(() => {
      if (request.over) return;
      if (this.socket === kept && usable(kept)) this.send(request, prepared, kept, true);
      else this.open(request, prepared);
    });
    return true;
  }

  async close(): Promise<void> {
    this.closed = true;
    this.stopIdle();
    if (this.current === undefined) this.dropSocket();
  }

  async destroy(reason: Error): Promise<void> {
    this.isDestroyed = true;
    this.closed = true;
    this.stopIdle();
    const request = this.current;
    this.dropSocket();
    if (request !== undefined) this.fail(request, reason);
  }

  private open(request: InFlight, prepared: Prepared): void {
    this.dropSocket();
    const { hostname, host, port } = this.where;
    // no servername: the connector sends the host name as SNI, none for an address (tls-context.ts)
    this.options.connect({ hostname, host, port, protocol: 'https:' } as buildConnector.Options, (err, socket) => {
      if (err !== null || socket === null) {
        this.fail(request, err ?? new Error('connect failed'));
        return;
      }
      const s = socket as Socket;
      if (request.over || this.isDestroyed) {
        s.destroy();
        return;
      }
      this.socket = s;
      this.watch(s);
      this.send(request, prepared, s, false);
    });
  }

  /** The socket's events for the requests it carries and for its idle time. */
  private watch(socket: Socket): void {
    socket.on('data', (chunk: Buffer) => {
      const request = this.current;
      if (request === undefined || request.socket !== socket) {
        // line ends after an answer are harmless; other bytes nobody asked for leave the
        // connection's state unknown
        if (!onlyLineEnds(chunk, 0)) socket.destroy();
        return;
      }
      try {
        const used = request.parser.feed(chunk);
        if (used < chunk.length && request.parser.done && !onlyLineEnds(chunk, used)) socket.destroy();
      } catch (err) {
        this.fail(request, err as Error);
        socket.destroy();
      }
    });
    socket.on('error', (err: Error & { code?: string }) => {
      const request = this.current;
      if (request === undefined || request.socket !== socket) return;
      // a body that runs to the connection's end may end with a reset (undici takes it so too)
      if (err.code === 'ECONNRESET' && request.parser.endsWithConnection) return this.finish(request);
      this.fail(request, this.staleOr(request, err));
    });
    socket.on('end', () => socket.destroy());
    socket.on('close', () => {
      if (this.socket === socket) this.socket = undefined;
      const request = this.current;
      if (request !== undefined && request.socket === socket) this.finish(request);
    });
  }

  /** The connection ended under `request`: its answer ends there, or it failed. */
  private finish(request: InFlight): void {
    if (request.over) return;
    try {
      request.parser.finish();
    } catch (err) {
      this.fail(request, this.staleOr(request, err as H1Error));
    }
  }

  /** `err`, or HTTP_STALE_CONNECTION where a kept connection ended before any byte of an answer. */
  private staleOr(request: InFlight, err: Error & { code?: string }): Error {
    if (!request.reused || !request.parser.nothingReceived) return err;
    if (err.code !== 'HTTP_NO_ANSWER' && err.code !== 'ECONNRESET' && err.code !== 'EPIPE') return err;
    return new H1RequestError('HTTP_STALE_CONNECTION', `the BMC closed the kept-alive connection before answering (${err.code})`);
  }

  private send(request: InFlight, prepared: Prepared, socket: Socket, reused: boolean): void {
    request.socket = socket;
    request.reused = reused;
    request.handler.onRequestSent?.();
    const { head, bytes, stream } = prepared;
    if (bytes !== undefined && bytes.length <= ONE_WRITE_BYTES) {
      socket.write(Buffer.concat([Buffer.from(head, 'latin1'), bytes]));
      return;
    }
    socket.write(head, 'latin1');
    if (bytes !== undefined) socket.write(bytes);
    else if (stream !== undefined) this.stream(request, stream, socket, prepared.declared);
  }

  /** Sends a streamed body: as it is, checked against its declared length, or in chunks. */
  private stream(request: InFlight, body: Readable, socket: Socket, declared: number | undefined): void {
    let sent = 0;
    const onData = (chunk: Buffer): void => {
      if (chunk.length === 0) return;
      sent += chunk.length;
      if (declared !== undefined && sent > declared) return stop(new H1RequestError('HTTP_BODY_LENGTH', `request body longer than its content-length ${declared}`));
      if (declared === undefined) {
        socket.write(`${chunk.length.toString(16)}\r\n`);
        socket.write(chunk);
      }
      if (!socket.write(declared === undefined ? '\r\n' : chunk)) body.pause();
    };
    const onDrain = (): void => void body.resume();
    const onEnd = (): void => {
      cleanup();
      request.bodyUnsent = false;
      if (declared !== undefined && sent !== declared) return this.fail(request, new H1RequestError('HTTP_BODY_LENGTH', `request body of ${sent} bytes, its content-length says ${declared}`));
      if (declared === undefined) socket.write('0\r\n\r\n');
    };
    const onError = (err: Error): void => stop(err);
    const cleanup = (): void => {
      body.off('data', onData);
      body.off('end', onEnd);
      body.off('error', onError);
      socket.off('drain', onDrain);
      request.stopBody = undefined;
    };
    const stop = (err: Error | undefined): void => {
      cleanup();
      body.destroy();
      if (err !== undefined) this.fail(request, err);
    };
    request.bodyUnsent = true;
    request.stopBody = () => stop(undefined);
    body.on('data', onData);
    body.once('end', onEnd);
    body.once('error', onError);
    socket.on('drain', onDrain);
  }

  /** The answer ended: the handler told, the connection kept for the next request or closed. */
  private answered(request: InFlight, reusable: boolean): void {
    if (request.over) return;
    request.over = true;
    const socket = request.socket;
    const keep = reusable && !request.bodyUnsent && !this.closed && request.keepAliveMs > 0;
    request.stopBody?.();
    this.current = undefined;
    if (!keep) {
      if (this.socket === socket) this.dropSocket();
      else socket?.destroy();
    } else {
      this.startIdle(request.keepAliveMs);
    }
    request.handler.onResponseEnd?.(request.controller, {});
  }

  /** The request failed (once): its connection is not used again, its body is dropped, the handler is told. */
  private fail(request: InFlight, err: Error): void {
    if (request.over) return;
    request.over = true;
    if (request.stopBody !== undefined) request.stopBody();
    else if (request.bodyUnsent || request.socket === undefined) request.stream?.destroy();
    if (this.current === request) {
      this.current = undefined;
      // a request that failed on its connection leaves it in an unknown state; one that failed
      // before it was sent leaves a kept connection as it was
      if (request.socket !== undefined && this.socket === request.socket) this.dropSocket();
      else if (usable(this.socket)) this.startIdle(this.keepAliveMs);
    }
    request.handler.onResponseError?.(request.controller, err);
  }

  private startIdle(ms: number): void {
    this.stopIdle();
    this.idleTimer = setTimeout(() => {
      this.idleTimer = undefined;
      if (this.current === undefined) this.dropSocket();
    }, ms);
    this.idleTimer.unref();
  }

  private stopIdle(): void {
    if (this.idleTimer !== undefined) clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
  }

  private dropSocket(): void {
    const socket = this.socket;
    this.socket = undefined;
    socket?.destroy();
  }
}
