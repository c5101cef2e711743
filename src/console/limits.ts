/**
 * Bounds on what the network can make the console listeners hold: open connections per
 * source address and in total (counted on the raw TCP socket, before any TLS work), and a
 * per-source throttle of failed token attempts.
 */
import type { Socket } from 'node:net';
import type { Server as TlsServer, TLSSocket } from 'node:tls';
import type { Logger } from '../log.js';
import { remoteOf } from './remote.js';
import { limitConnections, type ConnectionLimits, type ConnectionRefusal } from '../net/connection-limits.js';

export { checkConnectionLimits, DEFAULT_CONNECTION_LIMITS, limitConnections, type ConnectionLimits, type ConnectionRefusal } from '../net/connection-limits.js';

/** What a TLS listener's guard refuses: a connection beyond the limits, or a TLS handshake that failed (or timed out) */
export type ListenerRefusal = ConnectionRefusal | 'tls-handshake';

export interface ThrottleOptions {
  /** failures from one source within `windowMs` before it is refused until the window ends */
  maxFailures: number;
  windowMs: number;
  /** sources remembered at once; the oldest is forgotten beyond this */
  maxSources: number;
  now?: () => number;
}

export interface Throttle {
  /** true while `source` has used up its failures for the current window */
  blocked(source: string): boolean;
  failure(source: string): void;
}

export function createThrottle(options: ThrottleOptions): Throttle {
  const now = options.now ?? Date.now;
  const windows = new Map<string, { start: number; failures: number }>();
  const current = (source: string) => {
    const w = windows.get(source);
    if (w && now() - w.start < options.windowMs) return w;
    if (w) windows.delete(source);
    return undefined;
  };
  return {
    blocked: (source) => (current(source)?.failures ?? 0) >= options.maxFailures,
    failure(source) {
      const w = current(source);
      if (w) {
        w.failures += 1;
        return;
      }
      windows.set(source, { start: now(), failures: 1 });
      if (windows.size > options.maxSources) windows.delete(windows.keys().next().value as string);
    },
  };
}

/**
 * What both console listeners do before any console work: connections beyond `limits` are closed
 * at once, and a socket whose TLS handshake failed or timed out is closed (with a listener of its
 * own for `tlsClientError`, Node leaves that socket open). Each refusal is one log line, with what
 * `note` adds to it (a CRL past its nextUpdate: such a refusal reads only as a client that hung up).
 */
export function guardTlsListener(server: TlsServer, limits: ConnectionLimits, log: Logger, onRefused: (why: ListenerRefusal) => void, note: () => object | undefined = () => undefined): void {
  /** connections refused by the limits: their TLS socket, wrapped around them already, fails its handshake too, which is not a second refusal */
  const overLimit = new WeakSet<Socket>();
  limitConnections(server, limits, (socket, why) => {
    overLimit.add(socket);
    onRefused(why);
    log.info({ remote: remoteOf(socket), limit: why }, 'console connection refused: too many connections');
  });
  server.on('tlsClientError', (err, socket) => {
    // node:tls keeps the TCP socket a TLS socket wraps as `_parent`
    const tcp = (socket as TLSSocket & { _parent?: Socket })._parent;
    if (tcp !== undefined && overLimit.has(tcp)) return void socket.destroy();
    onRefused('tls-handshake');
    log.info({ remote: remoteOf(socket), err, ...note() }, 'console TLS handshake refused');
    socket.destroy();
  });
}
