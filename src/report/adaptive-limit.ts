/**
 * How many BMCs to read at once, fitted to what this machine carries: reading a BMC is mostly
 * waiting, so the limit grows while the event loop has time to spare and memory and file
 * descriptors allow, and shrinks when the loop is full (TLS handshakes and crypto are what load
 * it). `max` (METAL_BMC_REPORT_CONCURRENCY) is the upper bound; the limit starts at `initial` and
 * changes once per `sampleMs`, from the loop's busy share over the sample (event-loop
 * utilisation), its delay, the heap and the BMCs that ran late:
 *  - delay (mean over the sample) above `lagHighMs`, or the JavaScript heap in use above
 *    `heapBudgetBytes`: ×0.7 (not below `min`). The heap in use, not the resident size: RSS hardly
 *    ever shrinks once grown, so a limit tied to it would stay at `min` for good after one peak;
 *    the heap in use drops with every garbage collection;
 *  - busy share above `busyHighPct`: ×0.9, the loop is about full;
 *  - busy share below `busyLowPct`, delay below `lagLowMs` and the limit in use: ×1.25 (×1.5 while
 *    the loop is less than half busy), unless a BMC ran late (`'late'`: past its deadline because
 *    the loop was busy with other BMCs) in a sample where the loop was past half busy;
 *  - else the limit stays;
 *  - never above what the file-descriptor limit leaves for `fdsPerItem` descriptors each.
 * Why the busy share and not the delay or late BMCs alone: a BMC's CPU (its handshakes) comes a
 * little after it starts, so while the delay still looked low the limit overshot to 835 and then
 * swamped the loop; and BMCs started in that swamp finish late for seconds after it, so a limit
 * that stepped back for every late BMC sat at its floor of 4 for 25 s while the loop was idle
 * (report-latency, one cycle of 36 s instead of 14). A late BMC is history, the busy share is now.
 */
import { readFileSync } from 'node:fs';
import { monitorEventLoopDelay, performance, type EventLoopUtilization } from 'node:perf_hooks';
import { getHeapStatistics } from 'node:v8';

export interface AdaptiveLimitOptions {
  max: number;
  min?: number;
  initial?: number;
  sampleMs?: number;
  lagLowMs?: number;
  lagHighMs?: number;
  /** the loop's busy share (percent) below which the limit may grow (default 75) */
  busyLowPct?: number;
  /** the loop's busy share (percent) above which the limit steps back (default 92) */
  busyHighPct?: number;
  /** JavaScript heap in use above which the limit shrinks (default 192 MiB, and WORKER_HEAP_ALLOWANCE more per thread `load` reports) */
  heapBudgetBytes?: number;
  /** descriptors one item may hold at once (a BMC: three TLS connections and an IPMI socket) */
  fdsPerItem?: number;
  /** descriptors this process may open; default the soft RLIMIT_NOFILE from /proc/self/limits */
  fdLimit?: number;
  /**
   * The other threads the items run on (report workers), sampled with this thread: the busy share
   * is the busiest thread's, the heap the sum of all.
   */
  load?: () => ThreadsLoad;
  /**
   * told at each item's end while no item waits to start: once the last has started (again after a
   * requeued one started). Not as the first items start: a run whose items all start at once (no
   * more than its limit) is told at the end of its first item, after the burst it started with
   */
  onAllStarted?: () => void;
}

/** What other threads carry, since the last call: their busiest one's busy share (0..1) and their heaps in use. */
export interface ThreadsLoad {
  busy: number;
  heapBytes: number;
  /** the threads whose heaps `heapBytes` sums: each adds WORKER_HEAP_ALLOWANCE to the budget */
  threads?: number;
}

/**
 * What one more thread's heap holds before it reads a BMC (its code, TLS contexts, memories:
 * ~19 MiB measured for a report worker of the bundle): the heap budget grows by this much per
 * worker, so that workers at rest do not hold the limit at its minimum.
 */
export const WORKER_HEAP_ALLOWANCE = 32 * 2 ** 20;

export interface LimitTrace {
  /** the highest limit reached */
  peak: number;
  /** the limit at each sample */
  samples: number[];
  /** what each sample saw: the loop's busy share (%), its mean delay (ms), items running and queued */
  seen: SampleSeen[];
  /** the limit when the last item was started (the queue ran out): what the machine carried under full load */
  settled: number;
}

export interface SampleSeen {
  busyPct: number;
  lagMs: number;
  running: number;
  queued: number;
}

/**
 * Where a report cycle's limit starts: where the last cycle's stood when it had started all its
 * BMCs. From `initial` (16) the limit needs ~1 s of samples to reach the ~200–300 a two-core
 * machine carries at 1,000 BMCs, with the loop under a quarter busy all that time
 * (report-latency); the machine and the fleet are the same a cycle later. The reporter keeps one.
 */
export interface LimitMemory {
  start(): number | undefined;
  record(trace: LimitTrace): void;
}

export function createLimitMemory(): LimitMemory {
  let settled: number | undefined;
  return {
    start: () => settled,
    record(trace) {
      settled = trace.settled;
    },
  };
}

/** The soft limit on open files, or undefined where /proc is not there. */
export function openFileLimit(): number | undefined {
  try {
    const m = /Max open files\s+(\d+)/.exec(readFileSync('/proc/self/limits', 'utf8'));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

/** A bound from the file-descriptor limit, keeping 256 for everything else. */
export function fdBound(fdLimit: number | undefined, fdsPerItem: number): number {
  return fdLimit === undefined ? Number.POSITIVE_INFINITY : Math.max(1, Math.floor((fdLimit - 256) / fdsPerItem));
}

/** What an item tells the limiter when it is done: `'late'` when it ran out of time because the loop was busy. */
export type ItemOutcome = 'ok' | 'late';

/** One sample of the loop and of the items, as `nextLimit` reads it. */
export interface LimitSample {
  /** mean event-loop delay over the sample, ms */
  lagMs: number;
  /** share of the sample the loop was busy, 0..1 (event-loop utilisation) */
  busy: number;
  heapBytes: number;
  /** items running at the end of the sample */
  inUse: number;
  /** items done late during the sample */
  late?: number;
}

type LimitSettings = Required<Pick<AdaptiveLimitOptions, 'min' | 'lagLowMs' | 'lagHighMs' | 'heapBudgetBytes' | 'busyLowPct' | 'busyHighPct'>> & { ceiling: number };

/** The next limit from one sample (pure). */
export function nextLimit(current: number, sample: LimitSample, o: LimitSettings): number {
  const busyPct = sample.busy * 100;
  if (sample.lagMs > o.lagHighMs || sample.heapBytes > o.heapBudgetBytes) return Math.max(o.min, Math.floor(current * 0.7));
  if (busyPct > o.busyHighPct) return Math.max(o.min, Math.floor(current * 0.9));
  const lateWhileBusy = (sample.late ?? 0) > 0 && busyPct >= 50;
  if (busyPct < o.busyLowPct && sample.lagMs < o.lagLowMs && sample.inUse >= current && !lateWhileBusy) {
    return Math.min(o.ceiling, Math.ceil(current * (busyPct < 50 ? 1.5 : 1.25)));
  }
  return Math.min(o.ceiling, current);
}

/**
 * Runs `fn` over `items`, at most the adaptive limit at once; `fn` may `requeue` an item once
 * more at the end of the queue (a retry). Resolves when every item (and requeued one) is done.
 * An item that fails starts no more items, and the run fails with it once the items running
 * have ended: failing at once left them running past the run (a report cycle's reads, whose
 * results landed nowhere while the next cycle started beside them).
 */
export async function forEachAdaptive<T>(items: readonly T[], o: AdaptiveLimitOptions, fn: (item: T, requeue: (again: T) => void) => Promise<ItemOutcome | void>): Promise<LimitTrace> {
  const min = Math.max(1, Math.min(o.min ?? 4, o.max));
  const ceiling = Math.max(min, Math.min(o.max, fdBound(o.fdLimit ?? openFileLimit(), o.fdsPerItem ?? 4)));
  const settings: LimitSettings = { min, ceiling, lagLowMs: o.lagLowMs ?? 10, lagHighMs: o.lagHighMs ?? 50, heapBudgetBytes: o.heapBudgetBytes ?? 192 * 2 ** 20, busyLowPct: o.busyLowPct ?? 75, busyHighPct: o.busyHighPct ?? 92 };
  let limit = Math.max(min, Math.min(ceiling, o.initial ?? 16));
  const trace: LimitTrace = { peak: limit, samples: [], seen: [], settled: limit };
  const queue = [...items];
  let running = 0;
  /** items done late since the last sample */
  let late = 0;
  const fixed = min === ceiling;
  const lag = monitorEventLoopDelay({ resolution: 10 });
  if (!fixed) lag.enable();
  let utilisation: EventLoopUtilization = performance.eventLoopUtilization();
  return new Promise<LimitTrace>((resolve, reject) => {
    /** the first item's failure, once one failed */
    let failed: { err: unknown } | undefined;
    const timer = setInterval(() => {
      if (fixed) return;
      const lagMs = Number.isFinite(lag.mean) ? lag.mean / 1e6 - 10 : 0; // the histogram counts the 10 ms resolution timer itself
      lag.reset();
      const now = performance.eventLoopUtilization();
      const others = o.load?.() ?? { busy: 0, heapBytes: 0 };
      const busy = Math.max(performance.eventLoopUtilization(now, utilisation).utilization, others.busy);
      utilisation = now;
      const budget = settings.heapBudgetBytes + (others.threads ?? 0) * WORKER_HEAP_ALLOWANCE;
      limit = nextLimit(limit, { lagMs, busy, heapBytes: getHeapStatistics().used_heap_size + others.heapBytes, inUse: running, late }, { ...settings, heapBudgetBytes: budget });
      late = 0;
      trace.peak = Math.max(trace.peak, limit);
      trace.samples.push(limit);
      trace.seen.push({ busyPct: Math.round(busy * 100), lagMs: Math.round(lagMs), running, queued: queue.length });
      pump();
    }, o.sampleMs ?? 200);
    timer.unref();
    const finish = () => {
      clearInterval(timer);
      if (!fixed) lag.disable();
      if (failed) reject(failed.err instanceof Error ? failed.err : new Error(String(failed.err)));
      else resolve(trace);
    };
    function pump(): void {
      if (failed) return;
      while (running < limit && queue.length > 0) {
        const item = queue.shift() as T;
        if (queue.length === 0) trace.settled = limit;
        running++;
        fn(item, (again) => queue.push(again)).then(
          (outcome) => {
            running--;
            if (outcome === 'late') late++;
            if ((failed || queue.length === 0) && running === 0) finish();
            else pump();
            if (queue.length === 0 && !failed) o.onAllStarted?.();
          },
          (err: unknown) => {
            running--;
            failed ??= { err };
            if (running === 0) finish();
          },
        );
      }
    }
    if (queue.length === 0) finish();
    else pump();
  });
}
