/** Metrics of the console worker threads (worker-pool.ts), per worker slot. */
import { Gauge, type Registry } from 'prom-client';
import { counterOfTotals } from '../net/counter-of-totals.js';
import type { WorkerStats } from './worker-pool.js';

export function registerWorkerMetrics(registry: Registry, stats: () => WorkerStats[]): void {
  new Gauge({
    name: 'metal_bmc_console_worker_sessions',
    help: 'console sessions (IPMI SOL) each console worker thread holds',
    labelNames: ['worker', 'thread_id'],
    registers: [registry],
    collect() {
      this.reset();
      for (const s of stats()) this.set({ worker: String(s.worker), thread_id: String(s.threadId) }, s.sessions);
    },
  });
  /** a counter read from the pool's running totals: it grows by what is new since the last scrape */
  const total = (name: string, help: string, value: (s: WorkerStats) => number) => counterOfTotals(registry, { name, help, label: 'worker', rows: stats, labelOf: (s) => String(s.worker), value });
  total('metal_bmc_console_worker_bytes_total', 'console output bytes relayed from each console worker thread', (s) => s.bytes);
  total('metal_bmc_console_worker_dropped_bytes_total', 'console output bytes a worker dropped because the main thread did not take them fast enough', (s) => s.dropped);
  total('metal_bmc_console_worker_log_dropped_total', 'log records of a console worker thread held back over their rate (10 a second) or malformed', (s) => s.logDropped);
  total('metal_bmc_console_worker_restarts_total', 'console worker threads started again after they died', (s) => s.restarts);
}
