/**
 * What a report cycle of `report-latency` can take at best, by its start phase: a model, not a
 * measurement (every figure it prints is an estimate). Each live BMC's read after the first cycle
 * is its dependent round trips one after the other, each as long as the slowest of the requests
 * it sends at once (README "Round trips per BMC", step 5, read through the kept layout): with
 * `$expand` two requests then one, without it three rounds of two. Each answer takes a draw from
 * the simulator's own latency model (src/sim/latency.ts, the benchmark's spec); a read past the
 * BMC's deadline is cut there. The BMCs start evenly over the start phase, as fast as the CPU lets
 * the cycle start them (the benchmark prints how long that took: "last BMC started after").
 *
 * It leaves out what the real cycle adds: answers waiting for a busy event loop, the deadline's
 * give-back of that wait, the slow and dead BMCs (started first, each ending at its deadline).
 * So it shows what the latency model alone allows: the cycle's end (the last start plus the
 * longest read among the BMCs started last) and the floor (the longest read that ended well,
 * anywhere in the cycle), and how often a cycle meets issue 15's goals (< 5 s, < 1.5x the floor)
 * for each start phase. Usage: npx tsx bench/cycle-model.ts [TRIALS]
 */
import { logNormalMs, mulberry32, parseLatencySpec } from '../src/sim/latency.js';
import { BMC_TIMEOUT_MS, LATENCY } from './report-latency.js';

/** round trips of one read through the layout, each as the number of requests sent at once */
const ROUNDS: Record<string, number[]> = { expand: [2, 1], plain: [2, 2, 2] };
/** the benchmark's fleet: two thirds answer `$expand` (Supermicro-, Lenovo-like), one third not (Gigabyte-like) */
const MIX = ['expand', 'expand', 'plain'] as const;
const LIVE_BMCS = 950;
const START_PHASES_S = [0.5, 1, 1.5, 2, 2.5, 3, 3.5, 4];

export interface ModelCycle {
  /** when the last read ended (a read cut at its deadline ends there), s */
  cycle: number;
  /** the longest read that ended within its deadline, s */
  floor: number;
}

/** One modelled cycle: `bmcs` live BMCs started evenly over `startPhaseS`. */
export function modelCycle(startPhaseS: number, bmcs: number, random: () => number): ModelCycle {
  const { redfish } = parseLatencySpec(LATENCY);
  if (redfish === undefined) throw new Error('cycle-model: the benchmark has no Redfish latency');
  const deadline = BMC_TIMEOUT_MS / 1000;
  let cycle = 0;
  let floor = 0;
  for (let i = 0; i < bmcs; i++) {
    const start = (startPhaseS * i) / Math.max(1, bmcs - 1);
    let read = 0;
    for (const requests of ROUNDS[MIX[i % MIX.length]!]!) {
      let round = 0;
      for (let r = 0; r < requests; r++) round = Math.max(round, logNormalMs(redfish, random) / 1000);
      read += round;
    }
    if (read > deadline) cycle = Math.max(cycle, start + deadline);
    else {
      cycle = Math.max(cycle, start + read);
      floor = Math.max(floor, read);
    }
  }
  return { cycle, floor };
}

const quantile = (sorted: readonly number[], q: number): number => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;

if (import.meta.url === `file://${process.argv[1]}`) {
  const trials = Number(process.argv[2] ?? 400);
  const random = mulberry32(15);
  console.log(`report-latency's model (${LATENCY}; ${LIVE_BMCS} live BMCs, ${BMC_TIMEOUT_MS} ms deadline), ${trials} modelled cycles per start phase; estimates, not measurements`);
  console.log('start phase | cycle, median (p10-p90) | floor, median | cycle / floor, median | cycles < 5 s | cycles < 1.5x the floor | both');
  for (const s of START_PHASES_S) {
    const runs = Array.from({ length: trials }, () => modelCycle(s, LIVE_BMCS, random));
    const cycles = runs.map((r) => r.cycle).sort((a, b) => a - b);
    const floors = runs.map((r) => r.floor).sort((a, b) => a - b);
    const ratios = runs.map((r) => r.cycle / r.floor).sort((a, b) => a - b);
    const share = (f: (r: ModelCycle) => boolean) => `${Math.round((100 * runs.filter(f).length) / trials)} %`;
    console.log(
      `${s.toFixed(1)} s | ${quantile(cycles, 0.5).toFixed(2)} s (${quantile(cycles, 0.1).toFixed(2)}-${quantile(cycles, 0.9).toFixed(2)}) | ${quantile(floors, 0.5).toFixed(2)} s | ${quantile(ratios, 0.5).toFixed(2)}x | ${share((r) => r.cycle < 5)} | ${share((r) => r.cycle / r.floor < 1.5)} | ${share((r) => r.cycle < 5 && r.cycle / r.floor < 1.5)}`,
    );
  }
}
