/**
 * How far V8 lets the JavaScript heap grow past what survived the last full garbage collection
 * before it collects again (V8's `--heap-growing-percent`). V8's own factor goes up to 4x: during a
 * report cycle over 1,000 BMCs the heap in use climbed to ~145 MiB while ~35 MiB was alive, the
 * rest garbage of BMCs read seconds before (what lives through one BMC's read outlives two young
 * collections, is promoted, and dies in the old generation). At 50 % the heap peaked at ~80 MiB
 * and the process's peak RSS 233–235 MiB instead of 278–299, with CPU per BMC within the runs'
 * noise (report-latency, compiled, two runs each; 2026-12-03, at ~8 ms CPU per BMC). At the
 * ~3 ms per BMC of 2026-12-07, 50 % cost a full collection about every 12 MiB promoted (half of
 * the ~24 MiB that survives), and the collections' threads took the cores the report's main
 * thread waits for: 100 % (Go's GOGC) gave cycles of 6.42–6.79 s against 6.87–7.02 s, 2.88–3.42
 * against 3.44–3.60 ms CPU per BMC, Node's helper threads 0.86–1.07 against 1.20–1.25 ms, at a
 * peak RSS of 219–233 against 209–220 MiB (interleaved runs, four and three, two disturbed ones
 * left out; docs/performance.md "Heap growth at 100 %"); idle consoles held their memory as
 * before. A setting of the process: console worker threads share it.
 */
import { setFlagsFromString } from 'node:v8';

export const DEFAULT_HEAP_GROWTH_PCT = 100;
export const MAX_HEAP_GROWTH_PCT = 400;

/** Sets the heap's growth between full collections; 0 gives V8 back its own (adaptive, up to 4x). */
export function applyHeapGrowth(percent: number): void {
  if (!Number.isInteger(percent) || percent < 0 || percent > MAX_HEAP_GROWTH_PCT) {
    throw new RangeError(`heap growth must be a whole percentage from 0 to ${MAX_HEAP_GROWTH_PCT}, got ${percent}`);
  }
  setFlagsFromString(`--heap-growing-percent=${percent}`);
}
