/**
 * Bounds on what the network can make a listener hold: open connections per source address (and
 * per IPv6 /64) and in total, counted on the raw TCP socket before any other work (TLS, HTTP parsing), and for plain
 * HTTP listeners a first request within a time (Node starts its header and request timeouts only
 * with a request's first byte, so a peer that connects and sends nothing would otherwise hold its
 * connection for ever), and for every HTTP listener an answer that must keep going out
 * (`boundWriteStalls`: a peer that asks and never reads would otherwise hold its connection for ever).
 */
import type { IncomingMessage, Server as HttpServer, ServerResponse } from 'node:http';
import type { Server, Socket } from 'node:net';
import { BmcError } from '../errors.js';

export interface ConnectionLimits {
  /** open connections from one address */
  perSource: number;
  /** open connections from one IPv6 /64; default PREFIX64_SOURCES times `perSource` */
  perPrefix64?: number;
  /** open connections on the listener */
  total: number;
}

export type ConnectionRefusal = 'per-source' | 'total';

export const DEFAULT_CONNECTION_LIMITS: ConnectionLimits = { perSource: 32, total: 1024 };

export function checkConnectionLimits(limits: ConnectionLimits, where: string): ConnectionLimits {
  for (const [name, value] of Object.entries(limits)) {
    if (!Number.isInteger(value) || value < 1) throw new BmcError('INVALID_ARGUMENT', `${where}: connection limit ${name} must be an integer >= 1, got ${String(value)}`);
  }
  return limits;
}

/**
 * An IPv6 address's /64 (`2001:db8:1:2::/64`), which one host may hold whole; undefined for an
 * IPv4 address (plain or IPv4-mapped).
 */
export function prefix64Of(address: string): string | undefined {
  const bare = address.split('%')[0]!;
  if (!bare.includes(':') || /^::ffff:\d+\.\d+\.\d+\.\d+$/i.test(bare)) return undefined;
  const [head = '', tail] = bare.split('::');
  const front = head === '' ? [] : head.split(':');
  const back = tail === undefined || tail === '' ? [] : tail.split(':');
  const groups = tail === undefined ? front : [...front, ...new Array<string>(Math.max(0, 8 - front.length - back.length)).fill('0'), ...back];
  return `${groups
    .slice(0, 4)
    .map((g) => (parseInt(g, 16) || 0).toString(16))
    .join(':')}::/64`;
}

/**
 * An IPv6 /64 may hold this many times the per-source bound: one host holding a whole /64 could
 * otherwise open the per-source bound once per address, while several clients on one /64 (a LAN,
 * metal-console's pods) must not share one address's bound.
 */
export const PREFIX64_SOURCES = 8;

/**
 * Refuses (destroys) a new connection beyond the limits (per address, per IPv6 /64 at
 * `perPrefix64`, by default PREFIX64_SOURCES times the address's, in total); `onRefused` is told why.
 */
export function limitConnections(server: Server, limits: ConnectionLimits, onRefused: (socket: Socket, why: ConnectionRefusal) => void): { open(): number } {
  const open = new Map<string, number>();
  const count = (key: string | undefined, by: number) => {
    if (key === undefined) return;
    const n = (open.get(key) ?? 0) + by;
    if (n <= 0) open.delete(key);
    else open.set(key, n);
  };
  let total = 0;
  const perPrefix64 = limits.perPrefix64 ?? limits.perSource * PREFIX64_SOURCES;
  server.prependListener('connection', (socket: Socket) => {
    const address = (socket.remoteAddress ?? 'unknown').split('%')[0]!;
    const prefix = prefix64Of(address);
    const overSource = (open.get(address) ?? 0) >= limits.perSource || (prefix !== undefined && (open.get(prefix) ?? 0) >= perPrefix64);
    const why: ConnectionRefusal | undefined = total >= limits.total ? 'total' : overSource ? 'per-source' : undefined;
    if (why) {
      onRefused(socket, why);
      socket.destroy();
      return;
    }
    total += 1;
    count(address, 1);
    count(prefix, 1);
    socket.once('close', () => {
      total -= 1;
      count(address, -1);
      count(prefix, -1);
    });
  });
  return { open: () => total };
}

/**
 * Closes a connection whose first request (or upgrade) has not arrived `timeoutMs` after it was
 * accepted (`'connection'`) or after its TLS handshake (`'secureConnection'`, on an HTTPS server).
 * Node starts `headersTimeout` and `requestTimeout` only with a request's first byte, and
 * `server.timeout` is 0, so without this a client that sends nothing holds its connection for
 * ever. After the first request Node's `keepAliveTimeout` bounds the idle time between requests
 * (and a WebSocket's pings an upgraded connection).
 */
export function closeSilentConnections<S extends Socket>(server: HttpServer, acceptedOn: 'connection' | 'secureConnection', timeoutMs: number, onSilent: (socket: S) => void, options: { upgrades?: boolean } = {}): void {
  const waiting = new WeakMap<Socket, NodeJS.Timeout>();
  const started = (socket: Socket) => {
    clearTimeout(waiting.get(socket));
    waiting.delete(socket);
  };
  server.on(acceptedOn, (socket: S) => {
    const timer = setTimeout(() => {
      onSilent(socket);
      socket.destroy();
    }, timeoutMs);
    timer.unref();
    waiting.set(socket, timer);
    socket.once('close', () => started(socket));
  });
  server.on('request', (req: { socket: Socket }) => started(req.socket));
  // only on a server that answers upgrades: a listener for 'upgrade' makes Node hand every request
  // with an Upgrade header (curl --http2 sends h2c) to it instead of answering it as a request
  if (options.upgrades === true) server.on('upgrade', (req: { socket: Socket }) => started(req.socket));
}

/** A plain HTTP listener's first request within `timeoutMs` (closeSilentConnections), and its headers and request within as long. */
export function requireFirstRequestWithin(server: HttpServer, timeoutMs: number, onSilent: (socket: Socket) => void = () => undefined): void {
  server.headersTimeout = timeoutMs;
  server.requestTimeout = Math.max(timeoutMs, 30_000);
  closeSilentConnections(server, 'connection', timeoutMs, onSilent);
}

/** how long an answer may have bytes waiting for its peer without any of them going out */
export const WRITE_STALL_MS = 30_000;

/**
 * Where Node does not say how much of a write the kernel took (see `kernelQueue`), an answer's
 * pending bytes get this much more time each, on top of the stall bound: a 1.8 MB status document
 * ~4 minutes. A slower peer is cut; an operator's browser over a slow VPN is far faster.
 */
export const WRITE_FLOOR_BYTES_PER_S = 8 * 1024;

/** the bytes of a socket's completed writes (Node counts a write in both until its callback) */
function bytesCompleted(socket: Socket): number {
  return socket.bytesWritten - socket.writableLength;
}

interface HandleWithQueue {
  writeQueueSize?: unknown;
  /** a TLS socket's handle (TLSWrap) sits on the TCP handle here (_tls_wrap.js) */
  _parent?: { writeQueueSize?: unknown };
}

/**
 * The bytes libuv still holds for the peer on the connection's TCP handle, or undefined where
 * Node does not expose them. `bytesWritten` and `writableLength` move only when a whole write
 * completes, and one answer is often one write (a 1.8 MB status document, the 489 KB xterm.js),
 * so they show no progress of a slow reader; libuv's `write_queue_size` shrinks with every part
 * the kernel takes (Node's own socket timeout reads it, net.js `_onTimeout`). On a TLS socket the
 * TLSWrap's own `writeQueueSize` does not move while the peer reads, the TCP handle's under it
 * does. Internal to Node, so read defensively; ops-listener (plain) and net-write-stall (TLS) pin both.
 */
function kernelQueue(socket: Socket): number | undefined {
  const handle = (socket as unknown as { _handle?: HandleWithQueue | null })._handle;
  const size = (handle?._parent ?? handle)?.writeQueueSize;
  return typeof size === 'number' ? size : undefined;
}

/** responses whose route bounds a peer that stops reading itself (a stream with a longer bound of its own) */
const ownStallBound = new WeakSet<ServerResponse>();

/** This answer is a stream that bounds a peer not reading itself: `boundWriteStalls` leaves it alone. */
export function keepsOwnStallBound(res: ServerResponse): void {
  ownStallBound.add(res);
}

/**
 * Destroys the connection of an answer that has bytes waiting for the peer and sent none of them
 * for `stallMs`. Node has no such bound: `server.timeout` is 0, `keepAliveTimeout` starts only
 * once an answer is out, and `requestTimeout` ends with the request; so a peer that sent a GET and
 * never read (a receive window of nothing) held its connection, one of the listener's capped
 * slots, for ever (32 such filled the operations listener's per-source bound). Progress is a
 * write completed or libuv's queue for the peer shrinking (`kernelQueue`): a slow peer that keeps
 * reading is never cut however large the one write. Where Node does not expose the queue, the
 * pending bytes at WRITE_FLOOR_BYTES_PER_S are added to `stallMs`. A stream waiting for news has
 * nothing waiting for its peer (not a stall); one marked `keepsOwnStallBound` is left to its own
 * bound. Checked a few times per `stallMs`, so a stall ends within 1.25 times it; `onStalled` is
 * told before the destroy.
 */
export function boundWriteStalls(server: HttpServer, stallMs: number, onStalled: (socket: Socket) => void = () => undefined): void {
  if (!Number.isInteger(stallMs) || stallMs < 1) throw new BmcError('INVALID_ARGUMENT', `boundWriteStalls: stallMs must be an integer >= 1, got ${String(stallMs)}`);
  server.on('request', (_req: IncomingMessage, res: ServerResponse) => {
    const socket = res.socket;
    if (!socket) return;
    const progress = watchWriteProgress(socket);
    const timer = setInterval(() => {
      if (ownStallBound.has(res)) return clearInterval(timer);
      if (!progress.overdue(stallMs)) return;
      clearInterval(timer);
      onStalled(socket);
      socket.destroy();
    }, Math.max(1, Math.floor(stallMs / 4)));
    timer.unref();
    // 'close': the answer went out whole, or the connection ended
    res.once('close', () => clearInterval(timer));
  });
}

/** Whether a socket's peer has taken nothing of what waits for it for too long; asked now and then. */
export interface WriteProgress {
  /**
   * true once bytes have waited for the peer and none of them went out for `stallMs` (plus the
   * pending bytes at WRITE_FLOOR_BYTES_PER_S where Node does not expose libuv's queue). Each call
   * also notes progress since the last one, so it is asked a few times per `stallMs`.
   */
  overdue(stallMs: number): boolean;
}

/**
 * Progress of what a socket writes, as `boundWriteStalls` counts it: a write completed, or libuv's
 * queue for the peer shrinking (`kernelQueue`), so a slow peer that keeps reading is never overdue
 * however large the one write. Also for a stream that keeps a longer bound of its own
 * (`keepsOwnStallBound`: the status event stream).
 */
export function watchWriteProgress(socket: Socket): WriteProgress {
  let completed = bytesCompleted(socket);
  let queued = kernelQueue(socket);
  let progressAt = performance.now();
  return {
    overdue(stallMs) {
      const nowCompleted = bytesCompleted(socket);
      const nowQueued = kernelQueue(socket);
      const moved = nowCompleted !== completed || (nowQueued !== undefined && queued !== undefined && nowQueued < queued);
      completed = nowCompleted;
      queued = nowQueued;
      if (socket.writableLength === 0 || moved) {
        progressAt = performance.now();
        return false;
      }
      const allowedMs = stallMs + (nowQueued === undefined ? (socket.writableLength * 1000) / WRITE_FLOOR_BYTES_PER_S : 0);
      return performance.now() - progressAt >= allowedMs;
    },
  };
}
