/**
 * How many BMCs to read at once, fitted to what this machine carries: reading a BMC is mostly
 * waiting, so the limit grows while the event loop keeps up (its delay stays low) and memory and
 * file descriptors allow, and shrinks when the loop falls behind (TLS handshakes and crypto are
 * what load it). `max` (METAL_BMC_REPORT_CONCURRENCY) is the upper bound; the limit starts at
 * `initial` and changes once per `sampleMs`:
 *  - event-loop delay (mean over the sample) above `lagHighMs`, or the JavaScript heap in use above
 *    `heapBudgetBytes`: ×0.7 (not below `min`). The heap in use, not the resident size: RSS hardly
 *    ever shrinks once grown, so a limit tied to it would stay at `min` for good after one peak;
 *    the heap in use drops with every garbage collection;
 *  - else an item in the sample that reported `'late'` (a BMC past its deadline because the loop
 *    was busy with other BMCs: we started about as many as the loop carries, whatever the mean
 *    delay says): ×0.9. Gently: at ×0.7 for every late BMC the limit swung between 4 and 290 over a
 *    1,000-BMC cycle and the loop sat idle a third of it (report-latency);
 *  - delay below `lagLowMs`, no item late and the limit in use: ×1.25 (slowly: on a machine short of CPU, many
 *    BMCs started at once share it so thinly that every one runs into its deadline);
 *  - never above what the file-descriptor limit leaves for `fdsPerItem` descriptors each.
 */
import { readFileSync } from 'node:fs';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { getHeapStatistics } from 'node:v8';

export interface AdaptiveLimitOptions {
  max: number;
  min?: number;
  initial?: number;
  sampleMs?: number;
  lagLowMs?: number;
  lagHighMs?: number;
  /** JavaScript heap in use above which the limit shrinks (default 192 MiB) */
  heapBudgetBytes?: number;
  /** descriptors one item may hold at once (a BMC: three TLS connections and an IPMI socket) */
  fdsPerItem?: number;
  /** descriptors this process may open; default the soft RLIMIT_NOFILE from /proc/self/limits */
  fdLimit?: number;
}

export interface LimitTrace {
  /** the highest limit reached */
  peak: number;
  /** the limit at each sample */
  samples: number[];
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

/** The next limit from one sample (pure). */
export function nextLimit(current: number, sample: { lagMs: number; heapBytes: number; inUse: number; late?: number }, o: Required<Pick<AdaptiveLimitOptions, 'min' | 'lagLowMs' | 'lagHighMs' | 'heapBudgetBytes'>> & { ceiling: number }): number {
  const late = sample.late ?? 0;
  if (sample.lagMs > o.lagHighMs || sample.heapBytes > o.heapBudgetBytes) return Math.max(o.min, Math.floor(current * 0.7));
  // a late BMC says the loop is about full, not that it is swamped: a gentle step back
  if (late > 0) return Math.max(o.min, Math.floor(current * 0.9));
  if (sample.lagMs < o.lagLowMs && sample.inUse >= current) return Math.min(o.ceiling, Math.ceil(current * 1.25));
  return Math.min(o.ceiling, current);
}

/**
 * Runs `fn` over `items`, at most the adaptive limit at once; `fn` may `requeue` an item once
 * more at the end of the queue (a retry). Resolves when every item (and requeued one) is done.
 */
export async function forEachAdaptive<T>(items: readonly T[], o: AdaptiveLimitOptions, fn: (item: T, requeue: (again: T) => void) => Promise<ItemOutcome | void>): Promise<LimitTrace> {
  const min = Math.max(1, Math.min(o.min ?? 4, o.max));
  const ceiling = Math.max(min, Math.min(o.max, fdBound(o.fdLimit ?? openFileLimit(), o.fdsPerItem ?? 4)));
  const settings = { min, ceiling, lagLowMs: o.lagLowMs ?? 10, lagHighMs: o.lagHighMs ?? 50, heapBudgetBytes: o.heapBudgetBytes ?? 192 * 2 ** 20 };
  let limit = Math.max(min, Math.min(ceiling, o.initial ?? 16));
  const trace: LimitTrace = { peak: limit, samples: [] };
  const queue = [...items];
  let running = 0;
  /** items done late since the last sample */
  let late = 0;
  const fixed = min === ceiling;
  const lag = monitorEventLoopDelay({ resolution: 10 });
  if (!fixed) lag.enable();
  return new Promise<LimitTrace>((resolve, reject) => {
    let failed = false;
    const timer = setInterval(() => {
      if (fixed) return;
      const lagMs = Number.isFinite(lag.mean) ? lag.mean / 1e6 - 10 : 0; // the histogram counts the 10 ms resolution timer itself
      lag.reset();
      limit = nextLimit(limit, { lagMs, heapBytes: getHeapStatistics().used_heap_size, inUse: running, late }, settings);
      late = 0;
      trace.peak = Math.max(trace.peak, limit);
      trace.samples.push(limit);
      pump();
    }, o.sampleMs ?? 200);
    timer.unref();
    const finish = (err?: unknown) => {
      clearInterval(timer);
      if (!fixed) lag.disable();
      if (err !== undefined) reject(err instanceof Error ? err : new Error(String(err)));
      else resolve(trace);
    };
    function pump(): void {
      if (failed) return;
      while (running < limit && queue.length > 0) {
        const item = queue.shift() as T;
        running++;
        fn(item, (again) => queue.push(again)).then(
          (outcome) => {
            running--;
            if (outcome === 'late') late++;
            if (queue.length === 0 && running === 0) finish();
            else pump();
          },
          (err: unknown) => {
            failed = true;
            finish(err);
          },
        );
      }
    }
    if (queue.length === 0) finish();
    else pump();
  });
}
