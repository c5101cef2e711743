/**
 * In which order a cycle starts its BMCs: those that took longest in the last cycle first, BMCs
 * not seen before ahead of all (their first contact is the longest: certificate probe, IPMI proof).
 * A cycle ends with its last BMC; a slow or dead one started at the end adds its whole deadline
 * to the cycle, started at the beginning its wait overlaps everyone else's reads (longest
 * processing time first). Ties keep the lease order.
 */
import { setNewest } from '../net/newest-map.js';

export interface ReadOrder {
  /** indices into `ips`, in the order to start them */
  order(ips: readonly string[]): number[];
  /** how long a BMC's read took this cycle (a failed one too: its deadline is what it costs) */
  record(ip: string, ms: number): void;
}

/** Remembers at most `max` BMCs (the ones recorded longest ago are forgotten first). */
export function createReadOrder(max = 100_000): ReadOrder {
  const lastMs = new Map<string, number>();
  return {
    order(ips) {
      const cost = (ip: string) => lastMs.get(ip) ?? Number.POSITIVE_INFINITY;
      return ips.map((ip, i) => ({ i, c: cost(ip) })).sort((a, b) => (b.c === a.c ? a.i - b.i : b.c > a.c ? 1 : -1)).map((x) => x.i);
    },
    record(ip, ms) {
      setNewest(lastMs, ip, ms, max);
    },
  };
}
