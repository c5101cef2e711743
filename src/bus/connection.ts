/**
 * The NATS connection: reconnects forever, logs every status change and keeps a
 * connected gauge. Credentials go to the client, never into a log line. Should nats.js
 * close the connection by itself all the same, the daemon exits for a restart (`onLost`).
 */
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { checkDuration, endedWithin, raceAbort, sleep } from '../deadline.js';
import { abortError } from '../errors.js';
import type { Logger } from '../log.js';

export interface BusTls {
  caFile?: string;
  certFile?: string;
  keyFile?: string;
}

/** Structural, so the bus needs no knowledge of whose metrics these are. */
export interface BusConnectionMetrics {
  natsConnected?: { set(value: number): void };
}

export interface ConnectBusOptions {
  servers: string[];
  user?: string;
  password?: string;
  token?: string;
  tls?: BusTls;
  logger: Logger;
  /** connection name shown by the server (e.g. metal-bmc-<partition>) */
  name: string;
  metrics?: BusConnectionMetrics;
  /** pause between (re)connect attempts (default 2 s) */
  reconnectTimeWaitMs?: number;
  /** gives up waiting for the first connection */
  signal?: AbortSignal;
  /**
   * Told once when the connection closed without close() being called: nats.js has given up
   * on it and will not reconnect. Default: exitForRestart. Tests pass their own.
   */
  onLost?: (err: Error | undefined) => void;
}

export interface BusConnection {
  nc: NatsConnection;
  connected(): boolean;
  /** flushes pending publishes and acks (at most `deadlineMs`, default 5 s), then closes */
  close(deadlineMs?: number): Promise<void>;
}

/** The exit code when the connection is lost for good: not 2 (invalid configuration), so systemd's Restart=on-failure restarts the daemon. */
export const EXIT_BUS_LOST = 1;

/**
 * What the daemon does when nats.js closed its connection for good: exit, so that systemd starts
 * it afresh. Reconnecting here would not be enough: the machine event consumer and the console
 * ownership hold subscriptions, a JetStream consumer and KV watches on this very connection,
 * each of which would have to be rebuilt on a new one; a restart rebuilds them all. This exit is
 * abrupt; the daemon under `serve` passes `onLost` and stops gracefully first (consoles, IPMI
 * sessions and firmware jobs closed). Unacknowledged events are redelivered to the next instance.
 */
export function exitForRestart(): void {
  process.exit(EXIT_BUS_LOST);
}

/**
 * Connects, retrying until a server answers, and reconnects forever afterwards. Resolves with the
 * connection, or rejects with ABORTED when `signal` fires first (a late connection is closed).
 */
export async function connectBus(o: ConnectBusOptions): Promise<BusConnection> {
  const tls = o.tls && (o.tls.caFile || o.tls.certFile || o.tls.keyFile) ? { ...o.tls } : undefined;
  const waitMs = checkDuration('connectBus: reconnectTimeWaitMs', o.reconnectTimeWaitMs, 2000, 600_000);
  let connected: NatsConnection | undefined;
  for (let attempt = 1; !connected; attempt++) {
    if (o.signal?.aborted) throw abortError(o.signal, 'connecting to NATS');
    try {
      const attemptDone = connect({
        servers: o.servers,
        name: o.name,
        ...(o.user !== undefined ? { user: o.user } : {}),
        ...(o.password !== undefined ? { pass: o.password } : {}),
        ...(o.token !== undefined ? { token: o.token } : {}),
        ...(tls ? { tls } : {}),
        // one attempt may not outlast the pause between attempts by much (a TLS server that
        // refuses our certificate otherwise keeps the attempt open for nats.js's default 20 s)
        timeout: Math.max(waitMs, 5000),
        maxReconnectAttempts: -1,
        reconnectTimeWait: waitMs,
        // nats.js closes the connection for good after the second authorization error in a row;
        // a NATS configuration rollout may refuse our credentials for a moment, and a closed
        // connection would stop commands and console ownership until a restart
        ignoreAuthErrorAbort: true,
      });
      connected = await raceAbort(attemptDone, o.signal, { reason: (signal) => abortError(signal, 'connecting to NATS'), late: (nc) => void nc.close().catch(() => undefined) });
    } catch (err) {
      if (o.signal?.aborted) throw abortError(o.signal, 'connecting to NATS');
      if (attempt === 1 || attempt % 30 === 0) o.logger.warn({ servers: o.servers, attempt, err }, 'cannot connect to NATS; retrying');
      // the signal firing during the pause ends the wait with the loop's own ABORTED error
      await sleep(waitMs, o.signal, 'connecting to NATS');
    }
  }
  const nc = connected;
  let up = true;
  /** close() was called: the connection's end is ours, not nats.js giving up */
  let closing = false;
  o.metrics?.natsConnected?.set(1);
  o.logger.info({ server: nc.getServer(), name: o.name }, 'connected to NATS');

  // While the server refuses every attempt the same way (a configuration rollout refusing the
  // credentials: one error every reconnectTimeWait), the error is logged once and its repeats at
  // debug level, counted in the line of the reconnect.
  let lastError: string | undefined;
  let repeats = 0;
  void (async () => {
    for await (const s of nc.status()) {
      switch (s.type) {
        case 'disconnect':
          if (up) o.logger.warn({ server: s.server }, 'NATS disconnected');
          up = false;
          o.metrics?.natsConnected?.set(0);
          break;
        case 'reconnect':
          up = true;
          o.metrics?.natsConnected?.set(1);
          o.logger.info({ server: s.server, ...(repeats > 0 ? { errorRepeats: repeats } : {}) }, 'NATS reconnected');
          lastError = undefined;
          repeats = 0;
          break;
        case 'reconnecting':
          o.logger.debug('NATS reconnecting');
          break;
        case 'error': {
          const text = s.error instanceof Error ? s.error.message : String(s.error);
          if (text === lastError) {
            repeats++;
            o.logger.debug({ err: s.error, repeat: repeats }, 'NATS error');
            break;
          }
          lastError = text;
          repeats = 0;
          o.logger.error({ err: s.error }, 'NATS error');
          break;
        }
        case 'staleConnection':
          o.logger.warn('NATS connection stale');
          break;
        case 'slowConsumer':
          o.logger.warn({ subject: s.sub.getSubject(), pending: s.pending }, 'NATS slow consumer');
          break;
        case 'ldm':
          o.logger.info({ server: s.server }, 'NATS server entered lame duck mode');
          break;
        default:
          o.logger.debug({ status: s.type }, 'NATS status');
      }
    }
  })().catch(() => undefined);
  void nc.closed().then((err) => {
    up = false;
    o.metrics?.natsConnected?.set(0);
    if (closing) {
      if (err) o.logger.error({ err }, 'NATS connection closed with an error');
      else o.logger.info('NATS connection closed');
      return;
    }
    const lost = 'NATS connection closed for good: nats.js will not reconnect it';
    if (o.onLost) {
      o.logger.error({ err }, lost);
      o.onLost(err || undefined);
    } else {
      o.logger.error({ err, exitCode: EXIT_BUS_LOST }, `${lost}; exiting so that systemd restarts metal-bmc`);
      exitForRestart();
    }
  });

  return {
    nc,
    connected: () => up && !nc.isClosed(),
    async close(deadlineMs = 5000) {
      closing = true;
      if (nc.isClosed()) return;
      await endedWithin(nc.drain(), deadlineMs);
      if (!nc.isClosed()) await nc.close();
    },
  };
}
