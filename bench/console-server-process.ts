/**
 * The console service alone in a process, as the daemon runs it (src/parts/console.ts): both
 * listeners from `startConsoleServers`, and the daemon's backend (`metalApiConsoleBackend`) with
 * a lookup that takes the machine id for the BMC address instead of asking metal-api, over
 * `connectOutband(...).openConsole({takeOver: true})`. Run by bench/console-streaming.ts in a
 * child process, so that the proxy's resident memory and CPU can be read from /proc alone.
 *
 * Talks to its parent over the IPC channel: sends `{type: 'ready', wsPort}` once listening,
 * answers `{type: 'stats', gc?: boolean}` with the hub's counts and the V8 heap (after a full
 * garbage collection with `gc: true` when run with --expose-gc), and `{type: 'close'}` with
 * `{type: 'closed', ms}` after a graceful close (every client told, every SOL payload
 * deactivated), then exits. SIGTERM closes the same way.
 */
import { parseArgs } from 'node:util';
import { startConsoleServers } from '../src/console/index.js';
import { applyHeapGrowth, DEFAULT_HEAP_GROWTH_PCT } from '../src/heap-growth.js';
import { createLogger } from '../src/log.js';
import { closeOnParentWord, collectFully, FLEET_ARGS, fleetBackendOptions, fleetConsoleBackend } from './console-child.js';

export interface ConsoleServerStats {
  type: 'stats';
  sessions: number;
  clients: number;
  heapUsedMiB: number;
  externalMiB: number;
  arrayBuffersMiB: number;
}

// the daemon's process setting (`metal-bmc serve`, METAL_BMC_HEAP_GROWTH by default)
applyHeapGrowth(DEFAULT_HEAP_GROWTH_PCT);
const { values } = parseArgs({
  options: {
    ...FLEET_ARGS,
    protocol: { type: 'string', default: 'ipmi' },
    token: { type: 'string' },
  },
  strict: true,
});

const logger = createLogger({ level: 'warn' });
const openBackend = fleetConsoleBackend(fleetBackendOptions(values, logger));

const servers = await startConsoleServers({
  host: '127.0.0.1',
  port: 0,
  wsPort: 0,
  caCertFile: values.ca!,
  certFile: values.cert!,
  keyFile: values.key!,
  ...(values.token ? { token: values.token } : {}),
  // every benchmark client connects from this one machine: the per-address bound of a real
  // deployment (32) would cut the benchmark, not measure the proxy
  connectionLimits: { perSource: 10_000, total: 10_000 },
  maxSessions: 10_000,
  openBackend,
  logger,
});

const close = closeOnParentWord(() => servers.close(), 15_000);

process.on('message', (msg: { type?: string; gc?: boolean }) => {
  if (msg.type === 'close') void close();
  if (msg.type === 'stats') {
    if (msg.gc) collectFully();
    const m = process.memoryUsage();
    const stats: ConsoleServerStats = {
      type: 'stats',
      sessions: servers.hub.sessionCount(),
      clients: servers.hub.clientCount(),
      heapUsedMiB: m.heapUsed / 2 ** 20,
      externalMiB: m.external / 2 ** 20,
      arrayBuffersMiB: m.arrayBuffers / 2 ** 20,
    };
    process.send?.(stats);
  }
});
process.send?.({ type: 'ready', wsPort: servers.wsPort });
