/**
 * The WebSocket console listener (HTTPS, its own port) for browsers and tools, and the page
 * of page.ts on the same server.
 *
 * Authentication and authorisation (http-auth.ts): TLS 1.3 only. Without a configured token, a
 * client certificate that chains to the console CA (and is not revoked, with a CRL) is required
 * in the handshake. With a token (token mode, for browsers without client certificates), the
 * token replaces the certificate: certificates are still requested and verified but not
 * required, and a request is let in with a verified certificate, with
 * `Authorization: Bearer <token>`, or with the session cookie that the page's one-time
 * `?token=` was exchanged for. Wrong tokens are throttled per source address. A browser
 * request from a foreign `Origin` gets 403; a principal that may not open the machine
 * (`METAL_BMC_CONSOLE_AUTHZ`) gets 403; anything unauthenticated 401 - all before the upgrade.
 * Identity in logs: the certificate subject, or `bearer-token`.
 *
 * Revocation: a reloaded CRL ends every open connection whose verified certificate it revokes,
 * whatever it carries: a console WebSocket gets `{"type":"closed",...}` and close code 1008, any
 * other connection (a `console/log?follow=1` stream, the page, keep-alive) is destroyed. Each is
 * counted as refused (`revoked`). Connections let in by the token or the cookie are not affected.
 *
 * Bounds: TLS handshakes must finish within `handshakeTimeoutMs` (else the connection is closed
 * and counted as refused, `tls-handshake`, as any failed handshake), and the first request (or
 * upgrade) within the same time after it (else `handshake-timeout`); between requests Node's `keepAliveTimeout` (5 s) bounds an
 * idle connection, after an upgrade the pings do; an answer (the page's ~489 KB xterm.js, served
 * without authentication in token mode, the status) none of which the peer takes for
 * `writeStallMs` ends the connection (`write-stall`). Open connections are capped per source
 * address and in total.
 *
 * Protocol on /v1/machine/{id}/console: binary frames carry terminal bytes both ways; text
 * frames carry JSON control messages, up `{"type":"resize","cols":..,"rows":..}`,
 * `{"type":"takeover"}` and `{"type":"break"}` (a serial break, the keyboard holder's only), down `{"type":"status",...}`, `{"type":"error","message":..}` and
 * `{"type":"closed","message":..,"error":..}` before the server closes. Invalid JSON or an
 * unknown message is answered with an error (after 20 of them the socket is closed with 1008);
 * frames over 64 KiB close it with 1009. The server pings every 15 s and terminates peers that
 * did not answer the previous ping. Only a pong carrying that ping's payload (random per ping)
 * answers it: RFC 6455 allows unsolicited pongs, and a client that keeps sending them but no
 * longer reads (a stuck viewer with a full receive window) would otherwise be held forever.
 */
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { IncomingMessage } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { randomBytes } from 'node:crypto';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import { checkDuration, MAX_TIMER_MS } from '../deadline.js';
import { BmcError } from '../errors.js';
import type { Logger } from '../log.js';
import { validMachineId, type AuthzRule } from './access.js';
import { createHttpAuth, type Refusal } from './http-auth.js';
import type { ConsoleHub } from './hub.js';
import { createThrottle, DEFAULT_CONNECTION_LIMITS, guardTlsListener, type ConnectionLimits, type ListenerRefusal } from './limits.js';
import { crlExpiredNote } from './crl-expiry.js';
import { createPageRoutes } from './page.js';
import { trackCertifiedConnections } from './crl.js';
import { remoteOf } from './remote.js';
import { secureContextOptions, serverTlsOptions, verifiedSubject, type ConsoleTls } from './tls.js';
import { createCookieSessions } from './token-cookie.js';
import type { ClientIdentity, ClientPort, ConsoleHandle } from './types.js';
import { guardViewerRoutes, type ViewerRoutes } from './viewer-routes.js';
import { boundWriteStalls, closeSilentConnections, WRITE_STALL_MS } from '../net/connection-limits.js';
import { requestUrl } from '../net/request-url.js';
import { publicText } from '../net/public-text.js';

/** idle time before TCP keepalive probes a console listener's connection (then ~1 probe a second, libuv's) */
const KEEPALIVE_IDLE_MS = 60_000;

export interface WsConsoleServerOptions {
  tls: ConsoleTls;
  hub: ConsoleHub;
  logger: Logger;
  /** 0 picks a free port */
  port: number;
  host?: string;
  /** bearer token; when set, client certificates become optional */
  token?: string;
  /** who may open which machine, default every certificate every machine */
  authz?: readonly AuthzRule[];
  /** origins allowed besides the listener's own */
  allowedOrigins?: readonly string[];
  /** the TLS handshake must finish within this, and the first request arrive within this after it; default 10 s */
  handshakeTimeoutMs?: number;
  /** default 32 per source address, 1024 in total */
  connectionLimits?: ConnectionLimits;
  /** wrong tokens from one address per minute before it is refused for the rest of the minute, default 10 */
  maxTokenFailures?: number;
  /** lifetime of the page's session cookie, default 1 h */
  cookieTtlMs?: number;
  /** an answer none of which the peer takes for this long ends its connection; default 30 s (WRITE_STALL_MS) */
  writeStallMs?: number;
  /** a refusal, for the metrics */
  onRefused?: (reason: Refusal | ListenerRefusal | 'handshake-timeout' | 'revoked' | 'write-stall') => void;
  /** default 15 s */
  pingIntervalMs?: number;
  /** largest accepted frame, default 64 KiB */
  maxFrameBytes?: number;
  /** more routes behind the same authentication (the status page, viewer-routes.ts) */
  viewerRoutes?: ViewerRoutes;
}

export interface WsConsoleServer {
  readonly port: number;
  readonly server: HttpsServer;
  stopAccepting(): void;
  /** new TLS material (a reloaded CRL) for new connections; open connections whose certificate it revokes are ended; returns how many */
  setTls(tls: ConsoleTls): number;
  /** terminate what is still connected after `graceMs` and wait for the listener to close */
  disconnectAll(graceMs: number): Promise<void>;
}

const PATH = /^\/v1\/machine\/([^/]+)\/console$/;
const MAX_BAD_MESSAGES = 20;
const MIN_TOKEN_BYTES = 32;
const STATUS_TEXT = { 401: 'Unauthorized', 403: 'Forbidden', 429: 'Too Many Requests' } as const;
/** bytes handed to a socket but not yet written out, above which the hub holds back output */
const HIGH_WATER = 256 * 1024;
const LOW_WATER = 64 * 1024;
/** WebSocket close code 1008: policy violation */
const POLICY_VIOLATION = 1008;
const REVOKED_MESSAGE = 'your client certificate was revoked';

/** A close reason fits in 123 bytes. */
function closeReason(text: string): string {
  let out = text;
  while (Buffer.byteLength(out) > 123) out = out.slice(0, -1);
  return out;
}

function reject(socket: Socket, status: number, text: string): void {
  socket.end(`HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(text) + 1}\r\n\r\n${text}\n`);
  socket.destroySoon?.();
}

export async function startWsConsoleServer(options: WsConsoleServerOptions): Promise<WsConsoleServer> {
  const { hub } = options;
  if (options.token && Buffer.byteLength(options.token) < MIN_TOKEN_BYTES) {
    throw new BmcError('INVALID_ARGUMENT', `startWsConsoleServer: the token must have at least ${MIN_TOKEN_BYTES} bytes`);
  }
  const log = options.logger.child({ module: 'console-ws' });
  const pingIntervalMs = checkDuration('startWsConsoleServer: pingIntervalMs', options.pingIntervalMs, 15_000, 3600_000);
  const handshakeTimeoutMs = checkDuration('startWsConsoleServer: handshakeTimeoutMs', options.handshakeTimeoutMs, 10_000, 600_000);
  const cookieTtlMs = checkDuration('startWsConsoleServer: cookieTtlMs', options.cookieTtlMs, 3_600_000, MAX_TIMER_MS);
  const onRefused = options.onRefused ?? (() => undefined);
  /** WebSocket → the payload of its latest ping not answered yet; absent once answered (and before the first ping) */
  const awaitedPong = new WeakMap<WebSocket, Buffer>();
  /** WebSocket → what its log line names when it is closed for not answering a ping */
  const viewers = new WeakMap<WebSocket, { machineId: string; identity: ClientIdentity }>();
  const auth = createHttpAuth({
    ...(options.token ? { token: options.token } : {}),
    rules: options.authz ?? [{ kind: 'any' }],
    allowedOrigins: options.allowedOrigins ?? [],
    throttle: createThrottle({ maxFailures: options.maxTokenFailures ?? 10, windowMs: 60_000, maxSources: 10_000 }),
    cookies: createCookieSessions({ ttlMs: cookieTtlMs, max: 10_000 }),
  });
  const refused = (req: IncomingMessage, reason: Refusal, message: string, machineId?: string) => {
    onRefused(reason);
    log.info({ remote: remoteOf(req.socket), machineId, reason, detail: message }, 'console request refused');
  };

  const pages = createPageRoutes(auth, (req, reason, message) => refused(req, reason, message));
  const extra = options.viewerRoutes ? guardViewerRoutes(options.viewerRoutes, auth, options.authz ?? [{ kind: 'any' }], (req, reason, message) => refused(req, reason, message)) : undefined;
  const server = createHttpsServer({ ...serverTlsOptions(options.tls, !auth.tokenMode), handshakeTimeout: handshakeTimeoutMs }, (req, res) => {
    if (pages(req, res) || extra?.(req, res)) return;
    // closed after it: a client probing paths does not hold its connection with requests that lead nowhere
    res.writeHead(404, { 'content-type': 'text/plain', connection: 'close' }).end('not found\n');
  });
  server.headersTimeout = handshakeTimeoutMs;
  server.requestTimeout = handshakeTimeoutMs * 3;
  /** the earliest nextUpdate of the CRL in force: a handshake refused past it is noted as such */
  let crlNextUpdate = options.tls.crlNextUpdate;
  guardTlsListener(server, options.connectionLimits ?? DEFAULT_CONNECTION_LIMITS, log, onRefused, () => crlExpiredNote(crlNextUpdate));
  closeSilentConnections<TLSSocket>(server, 'secureConnection', handshakeTimeoutMs, (socket) => {
    onRefused('handshake-timeout');
    log.info({ remote: remoteOf(socket), timeoutMs: handshakeTimeoutMs, reason: 'handshake-timeout' }, 'console connection closed: no request within the handshake timeout');
  }, { upgrades: true });
  const writeStallMs = options.writeStallMs ?? WRITE_STALL_MS;
  boundWriteStalls(server, writeStallMs, (socket) => {
    onRefused('write-stall');
    log.info({ remote: remoteOf(socket), stallMs: writeStallMs, reason: 'write-stall' }, 'console listener connection closed: the client took none of an answer within the stall bound');
  });
  const wss = new WebSocketServer({ noServer: true, maxPayload: options.maxFrameBytes ?? 64 * 1024, perMessageDeflate: false });
  /** sockets upgraded to a console WebSocket → how that console is closed for a revoked certificate */
  const consoles = new WeakMap<Socket, () => void>();
  const certified = trackCertifiedConnections(options.tls.revocations, ({ remote, subject, serial }) => {
    onRefused('revoked');
    log.warn({ remote, client: subject, serial, reason: 'revoked' }, 'console connection ended: client certificate revoked');
  });
  /** A connection whose certificate was revoked: its console WebSocket is closed with a notice; anything else (a follow stream, keep-alive) is destroyed. */
  const endRevoked = (socket: TLSSocket) => {
    const closeConsole = consoles.get(socket);
    if (closeConsole) closeConsole();
    else socket.destroy();
  };
  server.on('secureConnection', (socket: TLSSocket) => {
    // a history follower of a quiet machine writes nothing, so no stall bound notices a peer gone
    // without a word (a laptop suspended, a VPN dropped): TCP keepalive does, and frees its slot
    socket.setKeepAlive(true, KEEPALIVE_IDLE_MS);
    // only certificate-authenticated connections: without a verified certificate (token mode) `authorized` is false
    const subject = verifiedSubject(socket);
    if (subject !== undefined) certified.add(socket, subject, () => endRevoked(socket));
  });

  server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
    socket.on('error', () => undefined);
    const path = requestUrl(req.url).pathname;
    const m = PATH.exec(path);
    let machineId = '';
    try {
      machineId = decodeURIComponent(m?.[1] ?? '');
    } catch {
      machineId = '';
    }
    if (!m || !validMachineId(machineId)) return reject(socket, 404, 'Not Found');
    const outcome = auth.checkOrigin(req) ?? auth.authorize(req, machineId);
    if (!outcome.ok) {
      refused(req, outcome.reason, outcome.message, machineId);
      return reject(socket, outcome.status, STATUS_TEXT[outcome.status]);
    }
    const identity: ClientIdentity = { subject: outcome.subject, remote: remoteOf(socket), transport: 'ws' };
    wss.handleUpgrade(req, socket, head, (ws) => serveClient(ws, socket, machineId, identity));
  });

  function serveClient(ws: WebSocket, socket: Socket, machineId: string, identity: ClientIdentity): void {
    let handle: ConsoleHandle | undefined;
    let inFlight = 0;
    let blocked = false;
    let bad = 0;
    let ended = false;
    const abort = new AbortController();
    viewers.set(ws, { machineId, identity });
    const sendJson = (message: unknown) => {
      if (ws.readyState === ws.OPEN) ws.send(JSON.stringify(message));
    };
    const error = (message: string) => {
      sendJson({ type: 'error', message });
      if (++bad >= MAX_BAD_MESSAGES) ws.close(1008, 'too many invalid messages');
    };
    const port: ClientPort = {
      identity,
      send(data) {
        if (ws.readyState !== ws.OPEN) return true;
        inFlight += data.length;
        ws.send(data, { binary: true }, () => {
          inFlight -= data.length;
          if (blocked && inFlight <= LOW_WATER) {
            blocked = false;
            handle?.drained();
          }
        });
        if (inFlight > HIGH_WATER) blocked = true;
        return !blocked;
      },
      notify: (notice) => sendJson(notice),
      // notices and output alike, in ws's queue and the socket's buffer
      unsentBytes: () => ws.bufferedAmount,
      end(reason) {
        ended = true;
        sendJson({ type: 'closed', message: reason.message, error: reason.error });
        ws.close(reason.error ? 1011 : 1000, closeReason(reason.message));
      },
    };
    // leaving the hub at once, not on 'close': not one more keystroke reaches the BMC
    consoles.set(socket, () => {
      ended = true;
      abort.abort();
      handle?.leave();
      sendJson({ type: 'closed', message: REVOKED_MESSAGE, error: true });
      ws.close(POLICY_VIOLATION, REVOKED_MESSAGE);
    });
    // an unsolicited pong, or one answering an older ping, proves nothing about reading now
    ws.on('pong', (data: Buffer) => {
      if (awaitedPong.get(ws)?.equals(data)) awaitedPong.delete(ws);
    });
    ws.on('error', (err) => log.debug({ machineId, client: identity.subject, err }, 'console WebSocket error'));
    ws.on('close', () => {
      ended = true;
      abort.abort();
      handle?.leave();
    });
    ws.on('message', (data: RawData, isBinary: boolean) => {
      // nothing a client sends may leave this handler as an exception: it would end the process
      try {
        onMessage(data, isBinary);
      } catch (err) {
        log.warn({ machineId, client: identity.subject, err }, 'console WebSocket message failed; the connection is closed');
        ws.terminate();
      }
    });
    const onMessage = (data: RawData, isBinary: boolean): void => {
      const bytes = Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data);
      if (isBinary) {
        handle?.input(bytes);
        return;
      }
      let msg: unknown;
      try {
        msg = JSON.parse(bytes.toString('utf8'));
      } catch {
        return error('invalid control message: not JSON');
      }
      const type = msg !== null && typeof msg === 'object' ? (msg as { type?: unknown }).type : undefined;
      if (type === 'takeover') {
        if (handle) handle.takeover();
        else error('takeover: the console is not connected yet');
        return;
      }
      if (type === 'break') {
        // a serial break (magic SysRq) after the keystrokes sent before it, as SSH's break request
        if (!handle) error('break: the console is not connected yet');
        else if (!handle.sendBreak()) error('break not sent: only the keyboard holder sends a break, on a connected SOL console');
        return;
      }
      if (type === 'resize') {
        const { cols, rows } = msg as { cols?: unknown; rows?: unknown };
        const ok = (v: unknown) => Number.isInteger(v) && (v as number) > 0 && (v as number) <= 10_000;
        if (!ok(cols) || !ok(rows)) return error('resize: cols and rows must be integers from 1 to 10000');
        handle?.resize(cols as number, rows as number);
        return;
      }
      // a string's first characters, else only its kind: a deeply nested value does not survive JSON.stringify
      error(`unknown control message type ${typeof type === 'string' ? JSON.stringify(type.slice(0, 40)) : type === null ? 'null' : typeof type}`);
    };
    hub.join(machineId, port, { signal: abort.signal }).then(
      (h) => {
        if (ended) h.leave();
        else handle = h;
      },
      (err: unknown) => {
        log.info({ machineId, client: identity.subject, err }, 'console refused');
        sendJson({ type: 'error', message: `console of machine ${machineId} unavailable: ${publicText((err as Error).message)}` });
        ws.close(1011, closeReason('console unavailable'));
      },
    );
  }

  const pinger = setInterval(() => {
    for (const ws of wss.clients) {
      if (awaitedPong.has(ws)) {
        const viewer = viewers.get(ws);
        log.info({ machineId: viewer?.machineId, client: viewer?.identity.subject, remote: viewer?.identity.remote, pingIntervalMs }, 'console WebSocket closed: the viewer did not answer a ping');
        ws.terminate();
        continue;
      }
      const payload = randomBytes(8);
      awaitedPong.set(ws, payload);
      ws.ping(payload);
    }
  }, pingIntervalMs);
  pinger.unref();

  await new Promise<void>((resolve, reject_) => {
    server.once('error', reject_);
    server.listen(options.port, options.host ?? '0.0.0.0', () => {
      server.off('error', reject_);
      resolve();
    });
  });
  server.on('error', (err) => log.error({ err }, 'console WebSocket listener error'));
  const port = (server.address() as AddressInfo).port;
  log.info({ port, auth: auth.tokenMode ? 'client certificate or bearer token' : 'client certificate' }, 'console WebSocket listener started');
  let closed: Promise<void> | undefined;
  const stopAccepting = () => {
    closed ??= new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeIdleConnections();
  };

  return {
    port,
    server,
    stopAccepting,
    setTls(tls) {
      server.setSecureContext(secureContextOptions(tls));
      crlNextUpdate = tls.crlNextUpdate;
      return certified.applyRevocations(tls.revocations);
    },
    async disconnectAll(graceMs) {
      stopAccepting();
      clearInterval(pinger);
      const deadline = Date.now() + graceMs;
      while (wss.clients.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      for (const ws of wss.clients) ws.terminate();
      server.closeAllConnections();
      await closed;
    },
  };
}
