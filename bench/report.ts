/** Measuring helpers for benchmarks: sample statistics, timed loops that count failures apart. */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { collector, type Spread } from './results.js';

export interface Stats {
  n: number;
  totalMs: number;
  meanMs: number;
  p50Ms: number;
  p99Ms: number;
  minMs: number;
  maxMs: number;
}

/** Nearest-rank quantile of sorted samples. */
function pick(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;
}

export function stats(samples: number[]): Stats {
  const sorted = [...samples].sort((a, b) => a - b);
  const totalMs = samples.reduce((a, b) => a + b, 0);
  return { n: samples.length, totalMs, meanMs: totalMs / samples.length, p50Ms: pick(sorted, 0.5), p99Ms: pick(sorted, 0.99), minMs: sorted[0] ?? NaN, maxMs: sorted[sorted.length - 1] ?? NaN };
}

/** The spread of samples for a recorded figure; undefined without samples. */
export function spread(samples: number[]): Spread | undefined {
  if (samples.length === 0) return undefined;
  const s = stats(samples);
  return { n: s.n, mean: s.meanMs, p50: s.p50Ms, p99: s.p99Ms, min: s.minMs, max: s.maxMs };
}

/** Our side or the reference's of a latency figure: p50 of the samples with their spread, failures apart. */
export function latency(name: string, t: Timed, stat: 'p50' | 'mean' = 'p50'): { name: string; value: number | null; kind: 'measured'; spread?: Spread; failures?: number; stat: string } {
  const s = spread(t.samples);
  return { name, value: s ? s[stat] : null, kind: 'measured', stat, ...(s ? { spread: s } : {}), ...(t.failures ? { failures: t.failures } : {}) };
}

export interface Timed {
  /** ms of each call that succeeded */
  samples: number[];
  failures: number;
  firstError?: string;
}

/** ms of each of `n` sequential calls; the first call that throws stops the loop (see `timeCounting` to count failures instead). */
export async function timeEach(n: number, fn: (i: number) => Promise<unknown>): Promise<number[]> {
  const samples: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await fn(i);
    samples.push(performance.now() - t);
  }
  return samples;
}

/** Times `n` sequential calls; a call that throws is counted as a failure, not as a sample. */
export async function timeCounting(n: number, fn: (i: number) => Promise<unknown>): Promise<Timed> {
  const out: Timed = { samples: [], failures: 0 };
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    try {
      await fn(i);
      out.samples.push(performance.now() - t);
    } catch (err) {
      out.failures++;
      out.firstError ??= err instanceof Error ? err.message : String(err);
    }
  }
  return out;
}

/**
 * Rows of mean latencies in ms next to a reference row, recorded (and printed) as measured
 * figures of the running benchmark. For benchmarks that do not call `begin` themselves.
 */
export function printTable(title: string, rows: Array<{ name: string; s: Stats }>, reference: string): void {
  const out = collector.current(title);
  const ref = rows.find((r) => r.name === reference);
  const side = (name: string, s: Stats) => {
    if (s.n === 0) throw new Error(`${title}: row ${JSON.stringify(name)} has no samples`);
    return { name, value: s.meanMs, stat: 'mean', kind: 'measured' as const, spread: { n: s.n, mean: s.meanMs, p50: s.p50Ms, p99: s.p99Ms, min: s.minMs, max: s.maxMs } };
  };
  for (const { name, s } of rows) {
    out.record({ ...side(name, s), unit: 'ms', ...(ref && name !== reference ? { reference: side(ref.name, ref.s), better: 'lower' as const } : {}) });
  }
}

/** A full garbage collection in this process (V8's gc, exposed at run time), so that a heap figure shows what is still referenced. */
export function collectGarbage(): void {
  setFlagsFromString('--expose-gc');
  (runInNewContext('gc') as () => void)();
}
