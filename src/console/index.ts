/**
 * The console service: the hub plus its two listeners, SSH over mutual TLS for metal-console
 * (ssh-server.ts) and HTTPS/WebSocket with the browser page (ws-server.ts, page.ts). Each
 * listener documents its authentication at the top of its file.
 *
 * A CRL file is watched and reloaded into both listeners when it changes; each listener then ends
 * its open connections whose client certificate the new CRL revokes (the handshake alone would
 * only keep such a certificate out of new connections).
 *
 * `close()` is graceful: stop accepting, tell every client and close every BMC session through
 * the hub, then disconnect what is left.
 */
import { unwatchFile, watchFile } from 'node:fs';
import type { Registry } from 'prom-client';
import { checkDuration } from '../deadline.js';
import type { Logger } from '../log.js';
import type { AuthzRule } from './access.js';
import type { ConnectionLimits } from './limits.js';
import { deriveHostKey } from './host-key.js';
import { createConsoleHub, type ConsoleHub, type HubOptions } from './hub.js';
import { watchCrlExpiry } from './crl-expiry.js';
import { createConsoleMetrics } from './metrics.js';
import { startSshConsoleServer, type SshConsoleServer } from './ssh-server.js';
import { loadConsoleTls, withReloadedCrl, type ConsoleTls } from './tls.js';
import type { HubEvent, OpenBackend } from './types.js';
import type { ViewerRoutes } from './viewer-routes.js';
import { startWsConsoleServer, type WsConsoleServer } from './ws-server.js';

export interface ConsoleServersOptions {
  /** SSH-over-TLS port (metal-console), default 3333; 0 picks a free port */
  port?: number;
  /** WebSocket/HTTPS port, default 3334; 0 picks a free port; null disables the listener */
  wsPort?: number | null;
  host?: string;
  caCertFile?: string;
  certFile?: string;
  keyFile?: string;
  /** PEM CRL(s) of the console CA: revoked client certificates are refused; reloaded when the file changes, which ends the open connections of newly revoked certificates */
  crlFile?: string;
  /** bearer token of the WebSocket listener; it replaces client certificates when set */
  token?: string;
  /** who may open which machine (access.ts), default every certificate every machine */
  authz?: readonly AuthzRule[];
  /** browser origins allowed besides the WebSocket listener's own */
  allowedOrigins?: readonly string[];
  /** per listener, default 32 per source address and 1024 in total */
  connectionLimits?: ConnectionLimits;
  /** TLS handshakes (and the SSH login) must finish within this; default 10 s (WebSocket) and 20 s (SSH) */
  handshakeTimeoutMs?: number;
  /** how long an SSH session channel metal-bmc ended waits for the client's close before its connection is dropped; default 30 s */
  sshCloseAnswerMs?: number;
  /** BMC console sessions open at once, default 1000 */
  maxSessions?: number;
  /** how often the CRL file is checked for changes, default 30 s */
  crlPollMs?: number;
  scrollbackBytes?: number;
  idleTimeoutMs?: number;
  openBackend: OpenBackend;
  logger: Logger;
  registry?: Registry;
  /** finer hub settings (timeouts, reconnect backoff, queue bounds) */
  hub?: Omit<HubOptions, 'openBackend' | 'logger' | 'scrollbackBytes' | 'idleTimeoutMs' | 'onEvent'>;
  /** WebSocket ping interval, default 15 s */
  pingIntervalMs?: number;
  /** how long close() waits for clients to go before cutting them off, default 2 s */
  closeGraceMs?: number;
  /** more routes on the WebSocket/HTTPS listener behind its authentication (the status page) */
  viewerRoutes?: ViewerRoutes;
}

export interface ConsoleServers {
  readonly sshPort: number;
  /** undefined when the WebSocket listener is disabled */
  readonly wsPort: number | undefined;
  /** OpenSSH public key line of the SSH host key (what metal-console pins) */
  readonly hostKey: string;
  readonly hub: ConsoleHub;
  close(): Promise<void>;
}

export async function startConsoleServers(options: ConsoleServersOptions): Promise<ConsoleServers> {
  // the servers and the hub check the options they take; these two are used here
  const graceMs = checkDuration('startConsoleServers: closeGraceMs', options.closeGraceMs, 2000, 600_000);
  const crlPollMs = checkDuration('startConsoleServers: crlPollMs', options.crlPollMs, 30_000, 24 * 3600_000);
  const tls = loadConsoleTls(options);
  const hostKey = deriveHostKey(tls.key, tls.keyFile);
  let onEvent: (event: HubEvent) => void = () => undefined;
  const hub = createConsoleHub({
    ...options.hub,
    openBackend: options.openBackend,
    logger: options.logger,
    ...(options.scrollbackBytes === undefined ? {} : { scrollbackBytes: options.scrollbackBytes }),
    ...(options.idleTimeoutMs === undefined ? {} : { idleTimeoutMs: options.idleTimeoutMs }),
    ...(options.maxSessions === undefined ? {} : { maxSessions: options.maxSessions }),
    onEvent: (event) => onEvent(event),
  });
  let refused: (listener: 'ssh' | 'ws', reason: string) => void = () => undefined;
  const crlExpiry = options.crlFile ? watchCrlExpiry({ crlFile: options.crlFile, logger: options.logger.child({ module: 'console' }) }) : undefined;
  if (options.registry) {
    const metrics = createConsoleMetrics(options.registry, { sessions: () => hub.sessionCount(), clients: () => hub.clientCount(), ...(crlExpiry ? { crlNextUpdate: () => crlExpiry.nextUpdate() } : {}) });
    onEvent = metrics.event;
    refused = metrics.refused;
  }
  const host = options.host ?? '0.0.0.0';
  const bounds = {
    ...(options.authz ? { authz: options.authz } : {}),
    ...(options.connectionLimits ? { connectionLimits: options.connectionLimits } : {}),
    ...(options.handshakeTimeoutMs === undefined ? {} : { handshakeTimeoutMs: options.handshakeTimeoutMs }),
  };
  const ssh: SshConsoleServer = await startSshConsoleServer({
    tls,
    hostKey,
    hub,
    logger: options.logger,
    port: options.port ?? 3333,
    host,
    ...bounds,
    ...(options.sshCloseAnswerMs === undefined ? {} : { closeAnswerMs: options.sshCloseAnswerMs }),
    onRefused: (reason) => refused('ssh', reason),
  });
  let ws: WsConsoleServer | undefined;
  if (options.wsPort !== null) {
    try {
      ws = await startWsConsoleServer({
        tls,
        hub,
        logger: options.logger,
        port: options.wsPort ?? 3334,
        host,
        ...(options.token ? { token: options.token } : {}),
        ...bounds,
        ...(options.allowedOrigins ? { allowedOrigins: options.allowedOrigins } : {}),
        onRefused: (reason) => refused('ws', reason),
        ...(options.pingIntervalMs === undefined ? {} : { pingIntervalMs: options.pingIntervalMs }),
        ...(options.viewerRoutes ? { viewerRoutes: options.viewerRoutes } : {}),
      });
    } catch (err) {
      ssh.stopAccepting();
      await ssh.disconnectAll(0);
      throw err;
    }
  }
  // armed once both listeners are up: a console that failed to start tells nothing later
  crlExpiry?.loaded(tls.crlNextUpdate);
  const stopWatchingCrl = watchCrl(options, tls, crlPollMs, (next) => {
    const ended = ssh.setTls(next) + (ws?.setTls(next) ?? 0);
    crlExpiry?.loaded(next.crlNextUpdate);
    return ended;
  });
  let closing: Promise<void> | undefined;
  return {
    sshPort: ssh.port,
    wsPort: ws?.port,
    hostKey: hostKey.publicKey,
    hub,
    close() {
      closing ??= (async () => {
        stopWatchingCrl();
        crlExpiry?.stop();
        ssh.stopAccepting();
        ws?.stopAccepting();
        await hub.close();
        await Promise.all([ssh.disconnectAll(graceMs), ws?.disconnectAll(graceMs)]);
      })();
      return closing;
    },
  };
}

/**
 * Reloads the CRL (only it: withReloadedCrl) when its file changes; `apply` returns how many open connections
 * the new CRL ended. A CRL that cannot be read keeps the last one (logged), for new and open
 * connections alike.
 */
function watchCrl(options: ConsoleServersOptions, started: ConsoleTls, crlPollMs: number, apply: (tls: ConsoleTls) => number): () => void {
  const { crlFile } = options;
  if (!crlFile) return () => undefined;
  const log = options.logger.child({ module: 'console' });
  const onChange = () => {
    try {
      const ended = apply(withReloadedCrl(started, crlFile));
      log.info({ crlFile, endedConnections: ended }, 'console CRL reloaded');
    } catch (err) {
      log.error({ err, crlFile }, 'console CRL not reloaded; the previous one stays in force');
    }
  };
  watchFile(crlFile, { interval: crlPollMs, persistent: false }, onChange);
  return () => unwatchFile(crlFile, onChange);
}

export { createConsoleHub, type ConsoleHub, type HubOptions } from './hub.js';
export { metalApiConsoleBackend, splitAddress, type BmcTarget, type MetalApiBackendOptions } from './backend.js';
export { deriveHostKey, type HostKey } from './host-key.js';
export type { Viewer, ViewerRoutes } from './viewer-routes.js';
export type { ClientIdentity, ClientPort, ConsoleHandle, ConsoleNotice, EndReason, HubEvent, OpenBackend } from './types.js';
