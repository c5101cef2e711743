/**
 * Per-BMC metrics for alerting: `metal_bmc_bmc_up{ip,mac}` (1: the last read succeeded, 0: it
 * failed) and `metal_bmc_bmc_last_success_timestamp_seconds{ip,mac}`. The series are built from
 * the status store at each scrape, so there is exactly one per BMC of the current leases that
 * was read at least once (the bound on label cardinality: the lease count), and a BMC whose
 * lease is gone has none. `metal_bmc_status_streams_refused_total{listener,reason}`: status
 * event streams refused (http.ts' bounds), on the operations and the console listener.
 */
import { performance } from 'node:perf_hooks';
import { Counter, Gauge, type Registry } from 'prom-client';
import type { Logger } from '../log.js';
import type { StreamRefusal } from './http.js';
import type { StatusStore } from './store.js';

export function registerStatusMetrics(registry: Registry, store: Pick<StatusStore, 'liveEntries'>): void {
  const registers = [registry];
  new Gauge({
    name: 'metal_bmc_bmc_up',
    help: 'Per BMC of the current leases: 1 when its last read succeeded, 0 when it failed (absent before the first read)',
    labelNames: ['ip', 'mac'],
    registers,
    collect() {
      this.reset();
      for (const e of store.liveEntries()) if (e.up !== undefined) this.set({ ip: e.ip, mac: e.mac }, e.up ? 1 : 0);
    },
  });
  new Gauge({
    name: 'metal_bmc_bmc_last_success_timestamp_seconds',
    help: 'Per BMC of the current leases: Unix time of its last successful read',
    labelNames: ['ip', 'mac'],
    registers,
    collect() {
      this.reset();
      for (const e of store.liveEntries()) if (e.lastSuccessAt !== undefined) this.set({ ip: e.ip, mac: e.mac }, e.lastSuccessAt / 1000);
    },
  });
}

const STREAMS_REFUSED = 'metal_bmc_status_streams_refused_total';

/** One log line per reason at most this often; the refusals between are counted in the next. */
const REFUSAL_LOG_EVERY_MS = 60_000;

/**
 * What a listener does with a status event stream it refused (createStatusHttp's `onRefused`):
 * counts each in the metric, and logs one line per reason at most once a minute, naming the
 * refusals since the last line (a client looping on a refused stream costs one request each, and
 * must not cost a log line each). Both listeners count into one counter, registered by the first.
 */
export function statusStreamRefusals(registry: Registry, logger: Logger, listener: 'ops' | 'console', now: () => number = () => performance.now()): (why: StreamRefusal, remote: string) => void {
  const counter =
    (registry.getSingleMetric(STREAMS_REFUSED) as Counter<'listener' | 'reason'> | undefined) ??
    new Counter({ name: STREAMS_REFUSED, help: 'status event streams (GET /v1/status/events) refused, by listener (ops, console) and reason (total: the listener\'s streams all open; per-source: those of the client\'s address)', labelNames: ['listener', 'reason'], registers: [registry] });
  const lastLine = new Map<StreamRefusal, { at: number; since: number }>();
  return (why, remote) => {
    counter.inc({ listener, reason: why });
    const last = lastLine.get(why);
    if (last && now() - last.at < REFUSAL_LOG_EVERY_MS) {
      last.since++;
      return;
    }
    logger.info({ remote, listener, limit: why, ...(last && last.since > 0 ? { refusedSinceLastLine: last.since } : {}) }, 'status event stream refused: too many streams');
    lastLine.set(why, { at: now(), since: 0 });
  };
}
