/**
 * Schedules report cycles: a full cycle at start and every interval, and a quick cycle for
 * BMCs whose lease is new or changed. Cycles never overlap: requests that arrive during a
 * cycle are merged and run right after it. A quick cycle that fails is run again for its BMCs
 * after a backoff, not left to the next full interval; one that made metal-api create machines is
 * followed by one more for their BMCs, since metal-api's create stores the BMC's address only.
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
  /** the first wait before a failed quick cycle's BMCs are read again, doubled for each failure in a row up to intervalMs; default QUICK_RETRY_MS */
  quickRetryMs?: number;
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

/** The first wait before the BMCs of a failed quick cycle are read again (then doubled, up to the interval). */
export const QUICK_RETRY_MS = 10_000;

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

export interface QuickRetry {
  /** a quick cycle over `leases` failed: they are handed back after the backoff; returns the wait */
  failed(leases: readonly Lease[]): number;
  /** a quick cycle got through: the next failure waits the first backoff again */
  succeeded(): void;
  /** a full cycle got through: every BMC was read and reported, nothing is left to retry */
  covered(): void;
  cancel(): void;
}

/** The backoff of failed quick cycles: one timer for all of them, doubling from `firstMs` up to `maxMs`. */
export function createQuickRetry(firstMs: number, maxMs: number, handBack: (leases: Lease[]) => void): QuickRetry {
  const waiting = new Map<string, Lease>();
  let timer: NodeJS.Timeout | undefined;
  let nextMs = firstMs;
  let dueAt = 0;
  const cancel = (): void => {
    clearTimeout(timer);
    timer = undefined;
    waiting.clear();
  };
  return {
    failed(leases) {
      for (const l of leases) waiting.set(l.mac, l);
      if (timer !== undefined) return Math.max(0, dueAt - Date.now());
      const wait = nextMs;
      nextMs = Math.min(nextMs * 2, maxMs);
      dueAt = Date.now() + wait;
      timer = setTimeout(() => {
        timer = undefined;
        const back = [...waiting.values()];
        waiting.clear();
        handBack(back);
      }, wait);
      timer.unref();
      return wait;
    },
    succeeded() {
      nextMs = firstMs;
    },
    covered() {
      cancel();
      nextMs = firstMs;
    },
    cancel,
  };
}

export function createReporter(o: ReporterOptions): Reporter {
  checkDuration('createReporter: intervalMs', o.intervalMs, 0, MAX_TIMER_MS);
  checkDuration('createReporter: bmcTimeoutMs', o.bmcTimeoutMs, 0, MAX_TIMER_MS);
  // a retry never waits longer than the full cycle that reads every BMC anyway
  const quickRetryMs = Math.min(checkDuration('createReporter: quickRetryMs', o.quickRetryMs, QUICK_RETRY_MS, MAX_TIMER_MS), o.intervalMs);
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
  /** MACs queued only as the follow-up of a create: their cycle schedules no further follow-up */
  const pendingFollowUps = new Set<string>();
  const retry = createQuickRetry(quickRetryMs, o.intervalMs, (leases) => {
    // a lease that went or moved since is not read again: its change, if any, queued its own cycle
    const current = new Map(o.leases().map((l) => [l.mac, l]));
    for (const l of leases) if (current.get(l.mac)?.ip === l.ip && !pendingLeases.has(l.mac)) pendingLeases.set(l.mac, l);
    kick();
  });
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
    const followUps = new Set(pendingFull ? [] : pendingFollowUps);
    pendingFull = false;
    pendingLeases.clear();
    pendingFollowUps.clear();
    running = runOne(trigger, subset, followUps).finally(() => {
      running = undefined;
      kick();
    });
  }

  async function runOne(trigger: 'interval' | 'leases', leases: Lease[], followUps: ReadonlySet<string>): Promise<void> {
    const end = o.metrics?.cycleSeconds.startTimer({ trigger });
    cyclesRun++;
    try {
      const r = await runReportCycle(deps, leases, abort.signal);
      const outcome = r.failed === 0 ? 'ok' : 'partial';
      o.metrics?.cycles.inc({ trigger, outcome });
      if (trigger === 'interval') o.metrics?.bmcsReachable.set(r.read);
      o.metrics?.concurrencyLimit.set(r.limitSettled);
      o.logger.info({ trigger, bmcs: leases.length, read: r.read, failed: r.failed, reported: r.reported, ...appliedCounts(r), ...(r.notApplied.length > 0 ? { notApplied: r.notApplied.length } : {}), durationMs: r.durationMs }, 'report cycle done');
      if (trigger === 'interval') retry.covered();
      else retry.succeeded();
      // a full cycle's creates too: the first cycle of a new partition creates every machine
      followUpCreated(r.created, leases, followUps);
    } catch (err) {
      o.metrics?.cycles.inc({ trigger, outcome: 'failed' });
      if (stopped) return;
      if (trigger === 'interval') o.logger.error({ trigger, bmcs: leases.length, err }, 'report cycle failed; the next cycle tries again');
      else o.logger.error({ trigger, bmcs: leases.length, retryInMs: retry.failed(leases), err }, 'report cycle failed; its BMCs are read again after the backoff');
    } finally {
      end?.();
    }
  }

  /**
   * The BMCs of machines metal-api just created (by a quick or a full cycle), queued once more: its
   * create stores only the BMC's address (machine-service.go 849-858), the FRU, versions and power
   * wait for the next report, which without this would be the next full interval. A follow-up's own
   * creates (metal-api lost the machine meanwhile) are not followed up again.
   */
  function followUpCreated(created: readonly string[], leases: readonly Lease[], followUps: ReadonlySet<string>): void {
    if (created.length === 0 || stopped) return;
    const owners = created.map((uuid) => deps.owners?.get(uuid)).filter((owner) => owner !== undefined);
    const again = leases.filter((l) => !followUps.has(l.mac) && owners.some((owner) => (owner.mac === undefined ? owner.ip === l.ip : owner.mac === l.mac)));
    for (const l of again) {
      if (pendingLeases.has(l.mac)) continue;
      pendingLeases.set(l.mac, l);
      pendingFollowUps.add(l.mac);
    }
    if (again.length > 0) o.logger.info({ bmcs: again.length, created: created.length }, "reporting the BMCs of machines metal-api created once more: its create stores only their address");
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
      retry.cancel();
      abort.abort(new Error('metal-bmc is shutting down'));
      await running;
      for (const w of idleWaiters.splice(0)) w();
    },
  };
}
