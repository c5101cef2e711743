/**
 * Bounds on what the network can make a listener hold: open connections per source address and
 * in total, counted on the raw TCP socket before any other work (TLS, HTTP parsing), and for plain
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
 * The source a connection counts against: its IPv4 address, or an IPv6 address's /64 (one host
 * usually holds a whole /64, so per address it could open the per-source bound once per address).
 */
export function sourceOf(address: string): string {
  const bare = address.split('%')[0]!;
  if (!bare.includes(':') || /^::ffff:\d+\.\d+\.\d+\.\d+$/i.test(bare)) return bare;
  const [head = '', tail] = bare.split('::');
  const front = head === '' ? [] : head.split(':');
  const back = tail === undefined || tail === '' ? [] : tail.split(':');
  const groups = tail === undefined ? front : [...front, ...new Array<string>(Math.max(0, 8 - front.length - back.length)).fill('0'), ...back];
  return `${groups
    .slice(0, 4)
    .map((g) => (parseInt(g, 16) || 0).toString(16))
    .join(':')}::/64`;
}

/** Refuses (destroys) a new connection beyond the limits; `onRefused` is told why. */
export function limitConnections(server: Server, limits: ConnectionLimits, onRefused: (socket: Socket, why: ConnectionRefusal) => void): { open(): number } {
  const bySource = new Map<string, number>();
  let total = 0;
  server.prependListener('connection', (socket: Socket) => {
    const source = sourceOf(socket.remoteAddress ?? 'unknown');
    const fromSource = bySource.get(source) ?? 0;
    const why: ConnectionRefusal | undefined = total >= limits.total ? 'total' : fromSource >= limits.perSource ? 'per-source' : undefined;
    if (why) {
      onRefused(socket, why);
      socket.destroy();
      return;
    }
    total += 1;
    bySource.set(source, fromSource + 1);
    socket.once('close', () => {
      total -= 1;
      const left = (bySource.get(source) ?? 1) - 1;
      if (left <= 0) bySource.delete(source);
      else bySource.set(source, left);
    });
  });
  return { open: () => total };
}

/**
 * Closes a connection whose first request has not arrived `timeoutMs` after it was accepted, and
 * bounds the time a request's headers and the whole request may take; after the first request
 * Node's keepAliveTimeout bounds the idle time between requests.
 */
export function requireFirstRequestWithin(server: HttpServer, timeoutMs: number, onSilent: (socket: Socket) => void = () => undefined): void {
  server.headersTimeout = timeoutMs;
  server.requestTimeout = Math.max(timeoutMs, 30_000);
  const waiting = new WeakMap<Socket, NodeJS.Timeout>();
  const started = (socket: Socket) => {
    clearTimeout(waiting.get(socket));
    waiting.delete(socket);
  };
  server.on('connection', (socket: Socket) => {
    const timer = setTimeout(() => {
      onSilent(socket);
      socket.destroy();
    }, timeoutMs);
    timer.unref();
    waiting.set(socket, timer);
    socket.once('close', () => started(socket));
  });
  server.on('request', (req: { socket: Socket }) => started(req.socket));
}
