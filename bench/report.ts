/** Shared output for benchmarks: our figure beside the reference measured in the same run. */
export interface Stats {
  n: number;
  totalMs: number;
  meanMs: number;
  p50Ms: number;
  p99Ms: number;
}

export function stats(samples: number[]): Stats {
  const sorted = [...samples].sort((a, b) => a - b);
  const pick = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;
  const totalMs = samples.reduce((a, b) => a + b, 0);
  return { n: samples.length, totalMs, meanMs: totalMs / samples.length, p50Ms: pick(0.5), p99Ms: pick(0.99) };
}

export async function timeEach(n: number, fn: (i: number) => Promise<unknown>): Promise<number[]> {
  const samples: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await fn(i);
    samples.push(performance.now() - t);
  }
  return samples;
}

const fmt = (ms: number) => (ms >= 100 ? ms.toFixed(0) : ms >= 10 ? ms.toFixed(1) : ms.toFixed(3));

export function printTable(title: string, rows: Array<{ name: string; s: Stats }>, reference: string): void {
  const ref = rows.find((r) => r.name === reference);
  console.log(`\n${title}`);
  console.log(`${'scenario'.padEnd(44)} ${'n'.padStart(5)} ${'mean ms'.padStart(9)} ${'p50 ms'.padStart(9)} ${'p99 ms'.padStart(9)} ${'vs ' + reference}`);
  for (const { name, s } of rows) {
    const ratio = ref ? ref.s.meanMs / s.meanMs : NaN;
    console.log(`${name.padEnd(44)} ${String(s.n).padStart(5)} ${fmt(s.meanMs).padStart(9)} ${fmt(s.p50Ms).padStart(9)} ${fmt(s.p99Ms).padStart(9)} ${name === reference ? '1.0x (reference)' : ratio >= 1 ? `${ratio.toFixed(1)}x faster` : `${(1 / ratio).toFixed(1)}x slower`}`);
  }
}
