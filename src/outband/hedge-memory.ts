/**
 * The Redfish paths per BMC that went without an answer past the hedge time when last asked
 * (redfish/http.ts `RedfishHedge.slowPaths`), kept from one report read to the next: a resource
 * the BMC is slow on every time (an iDRAC's Power, say) gets a second copy in the first read
 * that finds it slow and none after it while it stays slow, since a second copy gains nothing
 * there; a path that answers in time again leaves the set, so a straggler once is hedged again
 * next time. Per BMC (the Redfish session key: address, port, MAC), the BMCs met most recently
 * kept, at most `maxBmcs` (a restarted daemon hedges each slow path once more).
 */
import { setNewest } from '../net/newest-map.js';

export interface HedgeMemory {
  /** the BMC's set of slow paths, the one its transport changes (created empty for a BMC not met before) */
  slowPathsOf(bmc: string): Set<string>;
}

export function createHedgeMemory(maxBmcs = 10_000): HedgeMemory {
  const byBmc = new Map<string, Set<string>>();
  return {
    slowPathsOf(bmc) {
      const paths = byBmc.get(bmc) ?? new Set<string>();
      setNewest(byBmc, bmc, paths, maxBmcs);
      return paths;
    },
  };
}
