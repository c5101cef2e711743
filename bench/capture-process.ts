/**
 * The console capture alone in a process, wired as `metal-bmc serve` wires it with
 * METAL_BMC_CONSOLE_CAPTURE=all (src/parts/console.ts): `startConsoleServers` with the hub's
 * scrollback seeded from the capture log, the daemon's backend (`metalApiConsoleBackend` over
 * `connectOutband`, with the machine id standing for the BMC address instead of a metal-api
 * lookup), IPMI SOL in console worker threads (`createConsoleWorkerPool`, METAL_BMC_CONSOLE_WORKERS;
 * 0 runs SOL in this thread), and `createConsoleCapture` writing every console to a log folder.
 * Run by bench/console-idle.ts in a child process, so that its resident memory and CPU can be
 * read from /proc alone, without the benchmark harness's.
 *
 * Talks to its parent over the IPC channel: sends `{type: 'ready', threadsBeforePool}` once listening, takes
 * `{type: 'hold', ids}` (the machines to capture, as the report cycle's machines are given),
 * answers `{type: 'stats', gc?: boolean}` with the capture's counts and this thread's memory
 * (after a full garbage collection with `gc: true`, run with --expose-gc), and `{type: 'close'}`
 * with `{type: 'closed', ms}` after a graceful close, then exits; `{type: 'snapshot', file}` writes a V8
 * heap snapshot of its main thread there. SIGTERM closes the same way.
 */
import { parseArgs } from 'node:util';
import { getHeapStatistics, writeHeapSnapshot } from 'node:v8';
import { createConsoleCapture } from '../src/console/capture.js';
import { NO_CAPTURE_METRICS } from '../src/console/capture-metrics.js';
import { tailBytes } from '../src/console/capture-read.js';
import { startConsoleServers } from '../src/console/index.js';
import { createConsoleWorkerPool } from '../src/console/worker-pool.js';
import { applyHeapGrowth, DEFAULT_HEAP_GROWTH_PCT } from '../src/heap-growth.js';
import { createLogger } from '../src/log.js';
import { closeOnParentWord, collectFully, FLEET_ARGS, fleetBackendOptions, fleetConsoleBackend } from './console-child.js';
import { threadCpuSeconds } from './fleet-process.js';

export interface CaptureProcessStats {
  type: 'stats';
  held: number;
  sessions: number;
  /** bytes the capture received */
  captured: number;
  heapUsedMiB: number;
  heapTotalMiB: number;
  externalMiB: number;
  arrayBuffersMiB: number;
  /** V8's malloced memory outside the heap (compiled code, zones) */
  mallocedMiB: number;
}

// the daemon's process setting (`metal-bmc serve`, METAL_BMC_HEAP_GROWTH by default)
applyHeapGrowth(DEFAULT_HEAP_GROWTH_PCT);
const { values } = parseArgs({
  options: {
    ...FLEET_ARGS,
    protocol: { type: 'string', default: 'auto' },
    workers: { type: 'string', default: '1' },
    // consoles opened at once by the capture; default the capture's own
    'max-opening': { type: 'string' },
    dir: { type: 'string' },
  },
  strict: true,
});

const workerCount = Number(values.workers);
const dir = values.dir!;
const logger = createLogger({ level: 'warn' });
// the threads before the pool starts: the parent tells the pool's worker threads from Node's helpers by them
const threadsBeforePool = [...threadCpuSeconds().keys()];
const workers = workerCount > 0 ? createConsoleWorkerPool({ workers: workerCount, logger }) : undefined;
const openBackend = fleetConsoleBackend({
  ...fleetBackendOptions(values, logger),
  ...(workers ? { openSol: (target, signal, takeOver) => workers.open(target, signal, takeOver) } : {}),
});

const scrollbackBytes = 65_536;
const servers = await startConsoleServers({
  host: '127.0.0.1',
  port: 0,
  wsPort: 0,
  caCertFile: values.ca!,
  certFile: values.cert!,
  keyFile: values.key!,
  maxSessions: 10_000,
  scrollbackBytes,
  openBackend,
  logger,
  hub: { seedScrollback: (id) => tailBytes(dir, id, scrollbackBytes) },
});
let captured = 0;
// the daemon's capture log: 4 files x 8 MiB per machine (METAL_BMC_CONSOLE_LOG_SIZE's default)
const maxOpening = values['max-opening'] ? { maxOpening: Number(values['max-opening']) } : {};
const capture = createConsoleCapture({ hub: servers.hub, dir, fileBytes: 8 << 20, files: 4, logger, ...maxOpening, metrics: { ...NO_CAPTURE_METRICS, captured: (b) => (captured += b) } });

const close = closeOnParentWord(async () => {
  await capture.close();
  await servers.close();
  await workers?.close();
}, 20_000);

process.on('message', (msg: { type?: string; gc?: boolean; ids?: string[]; file?: string }) => {
  if (msg.type === 'close') void close();
  // where the memory goes (BENCH_IDLE_HEAP_SNAPSHOT): this thread's heap, after a full GC
  if (msg.type === 'snapshot' && msg.file) process.send?.({ type: 'snapshot', file: writeHeapSnapshot(msg.file) });
  if (msg.type === 'hold') capture.setMachines(msg.ids ?? []);
  if (msg.type === 'stats') {
    if (msg.gc) collectFully();
    const m = process.memoryUsage();
    const MiB = 2 ** 20;
    const stats: CaptureProcessStats = {
      type: 'stats',
      held: capture.held(),
      sessions: servers.hub.sessionCount(),
      captured,
      heapUsedMiB: m.heapUsed / MiB,
      heapTotalMiB: m.heapTotal / MiB,
      externalMiB: m.external / MiB,
      arrayBuffersMiB: m.arrayBuffers / MiB,
      mallocedMiB: getHeapStatistics().malloced_memory / MiB,
    };
    process.send?.(stats);
  }
});
process.send?.({ type: 'ready', threadsBeforePool });
