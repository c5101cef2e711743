/**
 * Schedules report cycles: a full cycle at start and every interval, and a quick cycle for
 * BMCs whose lease is new or changed. Cycles never overlap: requests that arrive during a
 * cycle are merged and run right after it.
 */
import { setMaxListeners } from 'node:events';
import { checkDuration, MAX_TIMER_MS } from '../deadline.js';
import type { Lease } from '../leases/types.js';
import { createLimitMemory } from './adaptive-limit.js';
import { createBmcConditions } from './bmc-conditions.js';
import { runReportCycle, type CycleDeps } from './cycle.js';
import { createLedMemory } from './led-memory.js';
import { createUuidOwners } from './owners.js';
import { createReadOrder } from './read-order.js';

export interface ReporterOptions extends CycleDeps {
  intervalMs: number;
  /** the current view of active leases */
  leases: () => readonly Lease[];
  /** how long a BMC's lasting failure or skip goes without another log line (METAL_BMC_REPORT_REPEAT_LOG_INTERVAL); 0: logged every cycle; default 1h */
  repeatLogIntervalMs?: number;
}

export interface Reporter {
  start(): void;
  /** BMCs that appeared or changed: read and report them within seconds */
  leasesChanged(leases: readonly Lease[]): void;
  /** resolves when no cycle is running and none is pending */
  idle(): Promise<void>;
  /** stops scheduling, aborts the running cycle, and waits for it */
  stop(): Promise<void>;
  readonly cyclesRun: number;
}

/** The most machine uuids a "report cycle done" line names: the line is written every interval. */
export const CYCLE_UUIDS_NAMED = 5;

/**
 * What metal-api applied, as counts and the first few new machines: its whole lists (36
 * characters a uuid, every machine of the partition updated each interval) made this line tens of
 * kilobytes every cycle. New machines are the ones worth a name; an update is the usual case.
 */
function appliedCounts(r: { created: readonly string[]; updated: readonly string[] }): Record<string, unknown> {
  return { created: r.created.length, updated: r.updated.length, ...(r.created.length > 0 ? { createdUuids: r.created.slice(0, CYCLE_UUIDS_NAMED) } : {}) };
}

export function createReporter(o: ReporterOptions): Reporter {
  checkDuration('createReporter: intervalMs', o.intervalMs, 0, MAX_TIMER_MS);
  checkDuration('createReporter: bmcTimeoutMs', o.bmcTimeoutMs, 0, MAX_TIMER_MS);
  // one LED memory for the reporter's lifetime: an unreadable LED is reported as last seen;
  // a cycle may take up to one interval, so a timed-out BMC is retried when twice its deadline fits in what is left of it
  const deps: CycleDeps = {
    ...o,
    cycleBudgetMs: o.cycleBudgetMs ?? o.intervalMs,
    ledMemory: o.ledMemory ?? createLedMemory(),
    // kept in the state folder by the daemon (openUuidOwnersFile), else for this reporter's life
    owners: o.owners ?? createUuidOwners(),
    readOrder: createReadOrder(),
    limitMemory: createLimitMemory(),
    leaseView: o.leases,
    leftBehind: new Set(),
    // in this thread, where every read ends, the report workers' included
    conditions: o.conditions ?? createBmcConditions(o.repeatLogIntervalMs === undefined ? {} : { repeatIntervalMs: o.repeatLogIntervalMs }),
  };
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;
  let pendingFull = false;
  const pendingLeases = new Map<string, Lease>();
  let stopped = false;
  let cyclesRun = 0;
  const abort = new AbortController();
  // every BMC read in flight listens to it (up to METAL_BMC_REPORT_CONCURRENCY): not a leak
  setMaxListeners(0, abort.signal);
  const idleWaiters: Array<() => void> = [];

  function kick(): void {
    if (running || stopped) return;
    if (!pendingFull && pendingLeases.size === 0) {
      for (const w of idleWaiters.splice(0)) w();
      return;
    }
    const trigger = pendingFull ? 'interval' : 'leases';
    const subset = pendingFull ? [...o.leases()] : [...pendingLeases.values()];
    pendingFull = false;
    pendingLeases.clear();
    running = runOne(trigger, subset).finally(() => {
      running = undefined;
      kick();
    });
  }

  async function runOne(trigger: 'interval' | 'leases', leases: Lease[]): Promise<void> {
    const end = o.metrics?.cycleSeconds.startTimer({ trigger });
    cyclesRun++;
    try {
      const r = await runReportCycle(deps, leases, abort.signal);
      const outcome = r.failed === 0 ? 'ok' : 'partial';
      o.metrics?.cycles.inc({ trigger, outcome });
      if (trigger === 'interval') o.metrics?.bmcsReachable.set(r.read);
      o.metrics?.concurrencyLimit.set(r.limitSettled);
      o.logger.info({ trigger, bmcs: leases.length, read: r.read, failed: r.failed, reported: r.reported, ...appliedCounts(r), ...(r.notApplied.length > 0 ? { notApplied: r.notApplied.length } : {}), durationMs: r.durationMs }, 'report cycle done');
    } catch (err) {
      o.metrics?.cycles.inc({ trigger, outcome: 'failed' });
      if (!stopped) o.logger.error({ trigger, bmcs: leases.length, err }, 'report cycle failed; the next cycle tries again');
    } finally {
      end?.();
    }
  }

  return {
    get cyclesRun() {
      return cyclesRun;
    },
    start() {
      pendingFull = true;
      kick();
      timer = setInterval(() => {
        pendingFull = true;
        kick();
      }, o.intervalMs);
      timer.unref();
    },
    leasesChanged(leases) {
      for (const l of leases) pendingLeases.set(l.mac, l);
      kick();
    },
    idle() {
      if (!running && !pendingFull && pendingLeases.size === 0) return Promise.resolve();
      return new Promise((resolve) => idleWaiters.push(resolve));
    },
    async stop() {
      stopped = true;
      clearInterval(timer);
      abort.abort(new Error('metal-bmc is shutting down'));
      await running;
      for (const w of idleWaiters.splice(0)) w();
    },
  };
}
