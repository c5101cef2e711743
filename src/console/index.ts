/**
 * The console service: the hub plus its two listeners, SSH over mutual TLS for metal-console
 * (ssh-server.ts) and HTTPS/WebSocket with the browser page (ws-server.ts, page.ts). Each
 * listener documents its authentication at the top of its file.
 *
 * `close()` is graceful: stop accepting, tell every client and close every BMC session through
 * the hub, then disconnect what is left.
 */
import type { Registry } from 'prom-client';
import type { Logger } from '../log.js';
import { deriveHostKey } from './host-key.js';
import { createConsoleHub, type ConsoleHub, type HubOptions } from './hub.js';
import { createConsoleMetrics } from './metrics.js';
import { startSshConsoleServer, type SshConsoleServer } from './ssh-server.js';
import { loadConsoleTls } from './tls.js';
import type { HubEvent, OpenBackend } from './types.js';
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
  /** bearer token of the WebSocket listener; client certificates become optional when set */
  token?: string;
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
  const tls = loadConsoleTls(options);
  const hostKey = deriveHostKey(tls.key, tls.keyFile);
  let onEvent: (event: HubEvent) => void = () => undefined;
  const hub = createConsoleHub({
    ...options.hub,
    openBackend: options.openBackend,
    logger: options.logger,
    ...(options.scrollbackBytes === undefined ? {} : { scrollbackBytes: options.scrollbackBytes }),
    ...(options.idleTimeoutMs === undefined ? {} : { idleTimeoutMs: options.idleTimeoutMs }),
    onEvent: (event) => onEvent(event),
  });
  if (options.registry) {
    const metrics = createConsoleMetrics(options.registry, { sessions: () => hub.sessionCount(), clients: () => hub.clientCount() });
    onEvent = metrics.event;
  }
  const host = options.host ?? '0.0.0.0';
  const ssh: SshConsoleServer = await startSshConsoleServer({ tls, hostKey, hub, logger: options.logger, port: options.port ?? 3333, host });
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
        ...(options.pingIntervalMs === undefined ? {} : { pingIntervalMs: options.pingIntervalMs }),
      });
    } catch (err) {
      ssh.stopAccepting();
      await ssh.disconnectAll(0);
      throw err;
    }
  }
  const graceMs = options.closeGraceMs ?? 2000;
  let closing: Promise<void> | undefined;
  return {
    sshPort: ssh.port,
    wsPort: ws?.port,
    hostKey: hostKey.publicKey,
    hub,
    close() {
      closing ??= (async () => {
        ssh.stopAccepting();
        ws?.stopAccepting();
        await hub.close();
        await Promise.all([ssh.disconnectAll(graceMs), ws?.disconnectAll(graceMs)]);
      })();
      return closing;
    },
  };
}

export { createConsoleHub, type ConsoleHub, type HubOptions } from './hub.js';
export { metalApiConsoleBackend, splitAddress, type BmcTarget, type MetalApiBackendOptions } from './backend.js';
export { deriveHostKey, type HostKey } from './host-key.js';
export type { ClientIdentity, ClientPort, ConsoleHandle, ConsoleNotice, EndReason, HubEvent, OpenBackend } from './types.js';
