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
import { BMC_TIMEOUT_MS, LATENCY } from './latency-fleet.js';

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

export interface ModelStats {
  /** modelled cycles, s: median, p10, p90 */
  cycle: { p50: number; p10: number; p90: number };
  /** modelled floors, s: median */
  floor: number;
  /** cycle / floor, median */
  ratio: number;
  /** shares of the modelled cycles, %: under 5 s, under 1.5x their floor, both */
  under5s: number;
  under1_5x: number;
  both: number;
}

/** `trials` modelled cycles of `liveBmcs` live BMCs (default the benchmark's 950 of 1,000) started evenly over `startPhaseS`. */
export function modelCycles(startPhaseS: number, trials: number, random: () => number, liveBmcs = LIVE_BMCS): ModelStats {
  const runs = Array.from({ length: trials }, () => modelCycle(startPhaseS, liveBmcs, random));
  const cycles = runs.map((r) => r.cycle).sort((a, b) => a - b);
  const share = (f: (r: ModelCycle) => boolean) => (100 * runs.filter(f).length) / trials;
  return {
    cycle: { p50: quantile(cycles, 0.5), p10: quantile(cycles, 0.1), p90: quantile(cycles, 0.9) },
    floor: quantile(runs.map((r) => r.floor).sort((a, b) => a - b), 0.5),
    ratio: quantile(runs.map((r) => r.cycle / r.floor).sort((a, b) => a - b), 0.5),
    under5s: share((r) => r.cycle < 5),
    under1_5x: share((r) => r.cycle / r.floor < 1.5),
    both: share((r) => r.cycle < 5 && r.cycle / r.floor < 1.5),
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const trials = Number(process.argv[2] ?? 400);
  const random = mulberry32(15);
  console.log(`report-latency's model (${LATENCY}; ${LIVE_BMCS} live BMCs, ${BMC_TIMEOUT_MS} ms deadline), ${trials} modelled cycles per start phase; estimates, not measurements`);
  console.log('start phase | cycle, median (p10-p90) | floor, median | cycle / floor, median | cycles < 5 s | cycles < 1.5x the floor | both');
  const pct = (x: number) => `${Math.round(x)} %`;
  for (const s of START_PHASES_S) {
    const m = modelCycles(s, trials, random);
    console.log(`${s.toFixed(1)} s | ${m.cycle.p50.toFixed(2)} s (${m.cycle.p10.toFixed(2)}-${m.cycle.p90.toFixed(2)}) | ${m.floor.toFixed(2)} s | ${m.ratio.toFixed(2)}x | ${pct(m.under5s)} | ${pct(m.under1_5x)} | ${pct(m.both)}`);
  }
}
