/**
 * The identify LED state metal-api gets when a BMC read could not tell it: metal-api accepts
 * only LED-ON and LED-OFF (anything else, "" included, is logged as an error and dropped every
 * cycle). An unreadable LED is reported as the last state read for that machine, across
 * cycles, or as the last identify command its BMC accepted, whichever came last; a machine never
 * read with a known LED nor commanded gets LED-OFF, as the Go metal-bmc sends. The command counts
 * because metal-api sets LED-ON itself for `metalctl machine identify on` before the command
 * runs: the report's LED-OFF would undo it while the LED is lit.
 */
import type { LedReading, LedState } from '../outband/types.js';
import { setNewest } from '../net/newest-map.js';

export const DEFAULT_LED_STATE: LedState = 'LED-OFF';

export interface LedMemory {
  /** the state to report for `uuid`, remembering a known reading */
  resolve(uuid: string, reading: LedReading): LedState;
  /** an identify command the machine's BMC accepted: the state it set, until a read tells one */
  commanded(uuid: string, state: LedState): void;
  readonly size: number;
}

/**
 * `maxEntries` bounds the memory (one entry per machine UUID; the least recently read is
 * forgotten first), so a lease file full of churn cannot grow it without limit.
 */
export function createLedMemory(maxEntries = 100_000): LedMemory {
  const known = new Map<string, LedState>();
  return {
    resolve(uuid, reading) {
      if (reading === 'UNKNOWN') return known.get(uuid) ?? DEFAULT_LED_STATE;
      setNewest(known, uuid, reading, maxEntries);
      return reading;
    },
    commanded(uuid, state) {
      setNewest(known, uuid, state, maxEntries);
    },
    get size() {
      return known.size;
    },
  };
}
