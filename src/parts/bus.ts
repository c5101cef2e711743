/**
 * One NATS connection per daemon, shared by the parts that use NATS (commands, and the console
 * ownership when capture is on). The first part to ask connects (in the background, retrying
 * until a server answers); the connection is drained and closed when the last part lets go.
 */
import { connectBus, type BusConnection, type BusConnectionMetrics } from '../bus/connection.js';
import type { DaemonContext } from '../daemon.js';
import { abortError } from '../errors.js';

interface Shared {
  users: number;
  aborter: AbortController;
  connecting: Promise<BusConnection>;
}

const shared = new WeakMap<DaemonContext, Shared>();

export interface BusLease {
  /** the connection; rejects with ABORTED when `signal` fires first */
  connection(signal?: AbortSignal): Promise<BusConnection>;
  /** this part no longer uses the connection; the last one closes it */
  release(): Promise<void>;
}

function connectFrom(ctx: DaemonContext, signal: AbortSignal, metrics?: BusConnectionMetrics): Promise<BusConnection> {
  const { config, logger } = ctx;
  return connectBus({
    servers: config.mq.servers,
    ...(config.mq.user !== undefined ? { user: config.mq.user } : {}),
    ...(config.mq.password !== undefined ? { password: config.mq.password } : {}),
    ...(config.mq.token !== undefined ? { token: config.mq.token } : {}),
    tls: {
      ...(config.mq.caCertFile ? { caFile: config.mq.caCertFile } : {}),
      ...(config.mq.clientCertFile ? { certFile: config.mq.clientCertFile } : {}),
      ...(config.mq.clientKeyFile ? { keyFile: config.mq.clientKeyFile } : {}),
    },
    logger,
    name: `metal-bmc-${config.partitionId}`,
    ...(metrics ? { metrics } : {}),
    // the daemon's owner stops it gracefully (consoles, IPMI sessions, firmware jobs closed) before exiting
    ...(ctx.onFatal ? { onLost: () => ctx.onFatal!('the NATS connection closed for good: nats.js will not reconnect it') } : {}),
    signal,
  });
}

/** The daemon's NATS connection for one part; `metrics` (the connected gauge) is used by the part that connects. */
export function acquireBus(ctx: DaemonContext, metrics?: BusConnectionMetrics): BusLease {
  let s = shared.get(ctx);
  if (!s) {
    const aborter = new AbortController();
    const connecting = connectFrom(ctx, aborter.signal, metrics);
    connecting.catch(() => undefined);
    s = { users: 0, aborter, connecting };
    shared.set(ctx, s);
  }
  const mine = s;
  mine.users++;
  let released = false;
  return {
    connection(signal) {
      if (!signal) return mine.connecting;
      if (signal.aborted) return Promise.reject(abortError(signal, 'connecting to NATS'));
      return new Promise<BusConnection>((resolve, reject) => {
        const onAbort = () => reject(abortError(signal, 'connecting to NATS'));
        signal.addEventListener('abort', onAbort, { once: true });
        mine.connecting.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
      });
    },
    async release() {
      if (released) return;
      released = true;
      if (--mine.users > 0) return;
      if (shared.get(ctx) === mine) shared.delete(ctx);
      mine.aborter.abort();
      const bus = await mine.connecting.catch(() => undefined);
      await bus?.close();
    },
  };
}
