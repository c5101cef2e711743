/**
 * Bounds on what the network can make a listener hold: open connections per source address (and
 * per IPv6 /64) and in total, counted on the raw TCP socket before any other work (TLS, HTTP parsing), and for plain
 * HTTP listeners a first request within a time (Node starts its header and request timeouts only
 * with a request's first byte, so a peer that connects and sends nothing would otherwise hold its
 * connection for ever).
 */
import type { Server as HttpServer } from 'node:http';
import type { Server, Socket } from 'node:net';
import { BmcError } from '../errors.js';

export interface ConnectionLimits {
  /** open connections from one address */
  perSource: number;
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
 * PREFIX64_SOURCES times that, in total); `onRefused` is told why.
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
  server.prependListener('connection', (socket: Socket) => {
    const address = (socket.remoteAddress ?? 'unknown').split('%')[0]!;
    const prefix = prefix64Of(address);
    const overSource = (open.get(address) ?? 0) >= limits.perSource || (prefix !== undefined && (open.get(prefix) ?? 0) >= limits.perSource * PREFIX64_SOURCES);
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
