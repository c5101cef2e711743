/**
 * What the benchmarks' console children (console-server-process.ts, capture-process.ts) share:
 * the daemon's console backend over the simulated fleet, a full garbage collection before memory
 * is read, and their close on the parent's word, SIGTERM or the parent's exit.
 */
import { metalApiConsoleBackend } from '../src/console/backend.js';
import type { Logger } from '../src/log.js';
import { connectOutband, type Protocol } from '../src/outband/connect.js';

export interface FleetBackendOptions {
  /** the fleet's shared IPMI port; the machine id is the BMC's address */
  ipmiPort: number;
  redfishPort: number;
  user: string;
  password: string;
  protocol: Protocol;
  logger: Logger;
  /** SOL in console worker threads, as the daemon opens it */
  openSol?: Parameters<typeof metalApiConsoleBackend>[0]['openSol'];
}

/** The command-line options both children take for the fleet and their listeners' certificates (parseArgs). */
export const FLEET_ARGS = {
  'ipmi-port': { type: 'string' },
  'redfish-port': { type: 'string', default: '443' },
  user: { type: 'string' },
  password: { type: 'string' },
  ca: { type: 'string' },
  cert: { type: 'string' },
  key: { type: 'string' },
} as const;

/** The backend's options from those arguments and a child's own `protocol`. */
export function fleetBackendOptions(values: { 'ipmi-port'?: string; 'redfish-port'?: string; user?: string; password?: string; protocol?: string }, logger: Logger): FleetBackendOptions {
  return {
    ipmiPort: Number(values['ipmi-port']),
    redfishPort: Number(values['redfish-port']),
    user: values.user!,
    password: values.password!,
    protocol: values.protocol as Protocol,
    logger,
  };
}

/** `metalApiConsoleBackend` as the daemon builds it, with the machine id taken for the BMC address instead of a metal-api lookup */
export function fleetConsoleBackend(o: FleetBackendOptions): ReturnType<typeof metalApiConsoleBackend> {
  return metalApiConsoleBackend({
    findIpmiMachine: async (id) => ({ address: `${id}:${o.ipmiPort}`, user: o.user, password: o.password, interface: 'lanplus', mac: '', fru: {}, bmcversion: '', powerstate: '' }),
    connect: (t) =>
      connectOutband({
        host: t.host,
        ipmiPort: t.port,
        redfishPort: o.redfishPort,
        user: t.user,
        password: t.password,
        protocol: o.protocol,
        timeoutMs: 20_000,
        logger: o.logger,
        signal: t.signal,
      }),
    ...(o.openSol ? { openSol: o.openSol } : {}),
  });
}

/**
 * With --expose-gc: collect, so the heap shows what is still referenced (twice: the backing stores
 * of Buffers whose owners died go with the second collection).
 */
export function collectFully(): void {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) return;
  gc();
  gc();
}

/**
 * Closes with `stop` (at most `graceMs`) on SIGTERM, on the parent's going away, or when called;
 * tells the parent `{type: 'closed', ms}` and exits. Returns the close to call on `{type: 'close'}`.
 */
export function closeOnParentWord(stop: () => Promise<unknown>, graceMs: number): () => Promise<void> {
  let closing: Promise<void> | undefined;
  const close = () => {
    closing ??= (async () => {
      const t = performance.now();
      await Promise.race([stop(), new Promise((r) => setTimeout(r, graceMs))]);
      if (process.send) process.send({ type: 'closed', ms: performance.now() - t });
      process.disconnect?.();
      process.exit(0);
    })();
    return closing;
  };
  process.on('SIGTERM', () => void close());
  process.on('disconnect', () => void close()); // the parent went away
  return close;
}
