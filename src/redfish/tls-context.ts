/**
 * One TLS connector per distinct TLS option set, shared by every BMC connection of the process:
 *  - one `SecureContext` (`tls.createSecureContext` once, not per connection: building one parses
 *    the CA bundle and sets up an OpenSSL context, a quarter millisecond or more each time);
 *  - one session cache with strong references, keyed by BMC address and port, so the next
 *    connection to a BMC — in this cycle or the next — resumes its TLS session where the BMC
 *    offers it (session tickets or ids) instead of a full handshake. undici's own cache holds
 *    sessions by WeakRef, which the next garbage collection clears; across report cycles minutes
 *    apart nothing would be left.
 * Where Node does not verify the certificate (`rejectUnauthorized: false`: none, or a pin checked
 * by us), a session is kept without the server's certificate (tls-session-der.ts): decoding it
 * again is most of a resumed connection's client CPU, and a resumed connection shows none anyway.
 * `maxCachedSessions: 0` turns resumption off. A pinned certificate cannot be checked on a resumed
 * session (Node shows no peer certificate then), so pinned connections use `scoped()`: their
 * sessions live under the pin's own key and are stored only after the connection passed the pin
 * check; a resumed one proves the server holds a session that was made with the pinned certificate.
 */
import { isIP, type Socket } from 'node:net';
import { connect, createSecureContext, type ConnectionOptions, type SecureContext, type TLSSocket } from 'node:tls';
import type { buildConnector } from 'undici';
import { setNewest } from '../net/newest-map.js';
import { withoutPeerCertificate } from './tls-session-der.js';

export interface SharedConnectorOptions extends Omit<ConnectionOptions, 'secureContext' | 'session' | 'host' | 'port' | 'servername' | 'socket' | 'timeout'> {
  /** TLS sessions kept for resumption, one per BMC (default 4096; 0: no resumption) */
  maxCachedSessions?: number;
  /** accepted for buildConnector compatibility and ignored: the caller bounds connect time itself */
  timeout?: number;
  keepAlive?: boolean;
  keepAliveInitialDelay?: number;
}

/**
 * A TLS session larger than this is not kept. A session holds the server's certificate (Node 22
 * and later keep it whole: tls-session-der.ts), 1–4 KiB for a BMC's; a device on the BMC network
 * could present one near OpenSSL's 100 KiB limit at every address it leases.
 */
export const MAX_SESSION_BYTES = 16 * 1024;

/** A bounded least-recently-used map of TLS sessions, each at most MAX_SESSION_BYTES. */
export class TlsSessionCache {
  private readonly sessions = new Map<string, Buffer>();
  constructor(readonly max: number) {}
  get(key: string): Buffer | undefined {
    const s = this.sessions.get(key);
    if (s !== undefined) {
      this.sessions.delete(key);
      this.sessions.set(key, s);
    }
    return s;
  }
  set(key: string, session: Buffer): void {
    if (this.max === 0) return;
    // a session too large for the cache: the connection after it does a full handshake
    if (session.length > MAX_SESSION_BYTES) return void this.sessions.delete(key);
    setNewest(this.sessions, key, session, this.max);
  }
  delete(key: string): void {
    this.sessions.delete(key);
  }
  get size(): number {
    return this.sessions.size;
  }
}

/** A check of each new connection before it is used: an error refuses it. */
export type AcceptConnection = (socket: TLSSocket) => Error | undefined;

export interface SharedConnector {
  connector: buildConnector.connector;
  /**
   * The same connector with sessions kept apart under `scope` (e.g. a certificate pin) and stored
   * only from connections `accept` let through; `accept` sees every connection, resumed or not.
   */
  scoped(scope: string, accept: AcceptConnection): buildConnector.connector;
  context: SecureContext;
  sessions: TlsSessionCache;
  /**
   * Keeps `session` for the next connection to `host`:`port` under `scope`, as a connection of
   * `scoped(scope, ...)` that passed its check would: for a session whose connection showed what
   * the scope requires (e.g. a certificate probe that saw the pinned certificate).
   */
  keep(scope: string, host: string, port: number, session: Buffer): void;
  /** connections made, and how many of them resumed a session */
  stats: { connections: number; resumed: number };
}

const shared = new Map<string, SharedConnector>();

function keyOf({ timeout: _timeout, ...o }: SharedConnectorOptions): string {
  return JSON.stringify(o, (_k, v: unknown) => (Buffer.isBuffer(v) ? v.toString('base64') : v));
}

/** Connections made by every shared connector of this thread, and how many of them resumed a session. */
export function sharedTlsStats(): { connections: number; resumed: number } {
  const total = { connections: 0, resumed: 0 };
  for (const { stats } of shared.values()) {
    total.connections += stats.connections;
    total.resumed += stats.resumed;
  }
  return total;
}

/** The connector for this option set, built on first use and shared from then on. */
export function sharedConnector(options: SharedConnectorOptions): SharedConnector {
  const key = keyOf(options);
  let entry = shared.get(key);
  if (entry === undefined) {
    entry = buildShared(options);
    shared.set(key, entry);
  }
  return entry;
}

function buildShared(options: SharedConnectorOptions): SharedConnector {
  const { maxCachedSessions, timeout: _timeout, keepAlive, keepAliveInitialDelay, ...tlsOptions } = options;
  const context = createSecureContext(tlsOptions);
  const sessions = new TlsSessionCache(maxCachedSessions ?? 4096);
  // Node's own verification of a resumed session needs the certificate in it (TLS 1.2)
  const toKeep = tlsOptions.rejectUnauthorized === false ? withoutPeerCertificate : (s: Buffer) => s;
  const stats = { connections: 0, resumed: 0 };
  const open = (o: buildConnector.Options, callback: buildConnector.Callback, scope?: { key: string; accept: AcceptConnection }): Socket => {
    const port = Number(o.port) || 443;
    const sessionKey = scope ? `${scope.key}|${o.hostname}:${port}` : `${o.hostname}:${port}`;
    const servername = isIP(o.hostname) === 0 ? (o.servername ?? o.hostname) : undefined;
    const session = sessions.get(sessionKey);
    const socket = connect({
      ...tlsOptions,
      secureContext: context,
      host: o.hostname,
      port,
      ...(servername ? { servername } : {}),
      ...(o.localAddress ? { localAddress: o.localAddress } : {}),
      ALPNProtocols: ['http/1.1'],
    });
    // set here, not as connect()'s `session` option: Node 20 applies that option twice (in the
    // socket's _init and again in connect()), and each time OpenSSL decodes the session's DER with
    // the peer certificate in it (tls-resume: 0.93 ms per resumed connection against 1.10 ms);
    // the handshake starts only once TCP is connected
    // (`TLSSocket.prototype.setSession`, which Node's own connect() calls, is not declared in @types/node 20)
    if (session) (socket as TLSSocket & { setSession(session: Buffer): void }).setSession(session);
    socket.setNoDelay(true);
    if (keepAlive ?? true) socket.setKeepAlive(true, keepAliveInitialDelay ?? 60_000);
    // a scoped session is kept only once its connection was accepted (TLS 1.2 may send it before)
    let accepted = scope === undefined;
    let pending: Buffer | undefined;
    socket.on('session', (s: Buffer) => {
      if (accepted) sessions.set(sessionKey, toKeep(s));
      else pending = toKeep(s);
    });
    let settled = false;
    const onError = (err: Error): void => {
      if (settled) return;
      settled = true;
      // a session the BMC no longer accepts must not fail the next connection too
      if (session) sessions.delete(sessionKey);
      callback(err, null);
    };
    socket.once('error', onError);
    socket.once('secureConnect', () => {
      if (settled) return;
      settled = true;
      socket.off('error', onError);
      if (scope) {
        const refusal = scope.accept(socket);
        if (refusal) {
          if (session) sessions.delete(sessionKey);
          socket.destroy();
          callback(refusal, null);
          return;
        }
        accepted = true;
        if (pending) sessions.set(sessionKey, pending);
      }
      stats.connections++;
      if (socket.isSessionReused()) stats.resumed++;
      callback(null, socket as Socket);
    });
    return socket;
  };
  const connector: buildConnector.connector = (o, callback) => open(o, callback);
  const scoped = (key: string, accept: AcceptConnection): buildConnector.connector => (o, callback) => open(o, callback, { key, accept });
  const keep = (scope: string, host: string, port: number, session: Buffer): void => sessions.set(`${scope}|${host}:${port}`, toKeep(session));
  return { connector, scoped, context, sessions, stats, keep };
}
