/**
 * METAL_BMC_HEAP_GROWTH set at run time (v8.setFlagsFromString after start) must change when V8
 * collects: the same churn (a live set, then objects that outlive young collections and die in the
 * old generation, as a report cycle's BMCs do) peaks lower with the default (100 %) than with 400 %,
 * and lower still with 50 %. The reference is an explicit setting, not V8's own factor: that one
 * follows the speeds V8 measures for the program and its collector (from 1.1x up to 4x), and a
 * loaded runner moves them; in one CI run it peaked at 50 MB where it peaks at ~150 MB here.
 * Each in a fresh process: a V8 flag is the process's.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { applyHeapGrowth, DEFAULT_HEAP_GROWTH_PCT, MAX_HEAP_GROWTH_PCT } from '../../src/heap-growth.js';

const run = promisify(execFile);

const CHURN = `
const { applyHeapGrowth } = await import(process.env.MODULE);
applyHeapGrowth(Number(process.env.GROWTH));
const live = Array.from({ length: 300_000 }, (_, i) => ({ i, s: 'live-' + i }));
const ring = new Array(20_000);
let peak = 0;
for (let round = 0; round < 400; round++) {
  for (let j = 0; j < 2_000; j++) ring[(round * 2_000 + j) % ring.length] = { round, j, payload: new Array(16).fill(round), text: 'x' + round + '-' + j };
  if (round % 4 === 0) await new Promise((r) => setImmediate(r));
  peak = Math.max(peak, process.memoryUsage().heapUsed);
}
console.log(JSON.stringify({ peak, live: live.length }));
`;

async function peakHeap(growth: number): Promise<number> {
  const { stdout } = await run(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', CHURN], {
    env: { ...process.env, MODULE: new URL('../../src/heap-growth.ts', import.meta.url).href, GROWTH: String(growth) },
    timeout: 60_000,
  });
  return (JSON.parse(stdout) as { peak: number }).peak;
}

describe('heap growth', () => {
  it('keeps the heap of a churning process lower, the lower the growth set at run time', async () => {
    const [wide, byDefault, fifty] = await Promise.all([peakHeap(MAX_HEAP_GROWTH_PCT), peakHeap(DEFAULT_HEAP_GROWTH_PCT), peakHeap(50)]);
    expect(byDefault).toBeLessThan(wide * 0.8);
    expect(fifty).toBeLessThan(byDefault * 0.9);
  }, 120_000);

  it('refuses what V8 would not take as a percentage', () => {
    expect(() => applyHeapGrowth(-1)).toThrow(/0 to 400/);
    expect(() => applyHeapGrowth(401)).toThrow(/0 to 400/);
    expect(() => applyHeapGrowth(12.5)).toThrow(/whole percentage/);
  });
});
