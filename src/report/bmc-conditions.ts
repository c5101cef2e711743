/**
 * The lasting conditions of BMCs that report cycles warn of, across cycles: a read that failed (by
 * error code) or a BMC left out for want of a machine UUID (by reason). A partition with 50 dead or
 * IPMI-only BMCs logged 50 warnings every cycle for as long as they stayed so, which buried real
 * events; now a condition is logged when a BMC first meets it, when it changes, and as a reminder
 * at most once per `repeatIntervalMs` (with the cycles it was not logged in), and the BMC's return
 * once. Only the log lines are held back: the cycle's metrics count every occurrence.
 *
 * Kept by the reporter in the main thread, where every read of a BMC ends (the report workers'
 * reads come back there and are logged there), keyed by the BMC as the report knows it: its
 * address and MAC. A BMC whose lease is gone is forgotten (`forget`), and at most `max` BMCs are
 * kept (the one met longest ago goes first), so the memory does not grow with lease churn.
 */
import { setNewest } from '../net/newest-map.js';
import type { UuidGap } from '../outband/types.js';

/** How often a condition that lasts is logged again, by default (METAL_BMC_REPORT_REPEAT_LOG_INTERVAL). */
export const REPEAT_LOG_INTERVAL_MS = 3_600_000;

/** A BMC as the report cycle knows it: its lease address and MAC. */
export interface ConditionBmc {
  ip: string;
  mac: string;
}

/** What a report cycle warns of for one BMC: its read failed with `code`, or it was read but left out for want of a UUID. */
export type BmcCondition = { kind: 'read-failed'; code: string } | { kind: 'skipped'; reason: UuidGap };

/** What to do with this occurrence of a condition. */
export type ConditionLine =
  /** not logged: the same condition was logged less than the repeat interval ago */
  | { kind: 'quiet' }
  /** logged: the BMC's first condition (since this process started, or since it was last read) */
  | { kind: 'new' }
  /** logged: the BMC was in another condition (`previous`) until now */
  | { kind: 'changed'; previous: BmcCondition }
  /** logged again: the condition held `forMs`, and `quietCycles` cycles met it without a line since its last */
  | { kind: 'reminder'; quietCycles: number; forMs: number };

/** A BMC read again (with a UUID) after a condition: which it was, since when it failed or was skipped, in how many cycles. */
export interface Recovery {
  condition: BmcCondition;
  forMs: number;
  cycles: number;
  /** the condition began in the same cycle (a timed-out read whose retry succeeded): no news worth a line of its own */
  sameCycle: boolean;
}

export interface BmcConditions {
  /** a report cycle starts: the occurrences until the next call are one cycle's */
  beginCycle(): void;
  /** `bmc` meets `condition` in this cycle: whether and how to log it */
  met(bmc: ConditionBmc, condition: BmcCondition): ConditionLine;
  /** `bmc` was read with a machine UUID: the condition it leaves, if it was in one */
  cleared(bmc: ConditionBmc): Recovery | undefined;
  /** forgets the BMCs `keep` says no */
  forget(keep: (bmc: ConditionBmc) => boolean): void;
  readonly size: number;
}

export interface BmcConditionsOptions {
  /** how long a condition that lasts goes without a line; 0: every occurrence is logged, as before de-duplication */
  repeatIntervalMs?: number;
  /** at most this many BMCs are kept */
  max?: number;
  now?: () => number;
}

interface Held {
  bmc: ConditionBmc;
  condition: BmcCondition;
  /** when the BMC's first condition in a row began (a change of condition keeps it) */
  failingSince: number;
  /** when this condition began */
  since: number;
  /** when this condition was last logged */
  loggedAt: number;
  /** the cycle of its first occurrence, of its last occurrence, and the cycles it was met in */
  firstCycle: number;
  lastCycle: number;
  cycles: number;
  /** cycles that met the condition without a line since the last one */
  quietCycles: number;
}

/** The condition as a log field: `TIMEOUT`, `skipped: placeholder-uuid`. */
export function conditionName(c: BmcCondition): string {
  return c.kind === 'read-failed' ? c.code : `skipped: ${c.reason}`;
}

function sameCondition(a: BmcCondition, b: BmcCondition): boolean {
  return conditionName(a) === conditionName(b);
}

/** The fields a logged occurrence adds to the cycle's line for it (a first one adds none: the line is as it always was). */
export function conditionLineFields(line: ConditionLine): Record<string, unknown> {
  switch (line.kind) {
    case 'quiet':
    case 'new':
      return {};
    case 'changed':
      return { previous: conditionName(line.previous) };
    case 'reminder':
      return { repeated: true, quietCycles: line.quietCycles, forMs: line.forMs };
  }
}

const keyOf = (bmc: ConditionBmc): string => `${bmc.ip} ${bmc.mac.toLowerCase()}`;

export function createBmcConditions(o: BmcConditionsOptions = {}): BmcConditions {
  const repeatMs = o.repeatIntervalMs ?? REPEAT_LOG_INTERVAL_MS;
  const max = o.max ?? 100_000;
  const now = o.now ?? Date.now;
  const held = new Map<string, Held>();
  let cycle = 0;
  return {
    beginCycle() {
      cycle++;
    },
    met(bmc, condition) {
      const key = keyOf(bmc);
      const t = now();
      const was = held.get(key);
      const fresh = (): Held => ({ bmc: { ip: bmc.ip, mac: bmc.mac }, condition, failingSince: was?.failingSince ?? t, since: t, loggedAt: t, firstCycle: was?.firstCycle ?? cycle, lastCycle: cycle, cycles: (was?.cycles ?? 0) + (was?.lastCycle === cycle ? 0 : 1), quietCycles: 0 });
      if (was === undefined || !sameCondition(was.condition, condition)) {
        setNewest(held, key, fresh(), max);
        return was === undefined ? { kind: 'new' } : { kind: 'changed', previous: was.condition };
      }
      const newCycle = was.lastCycle !== cycle;
      const next: Held = { ...was, lastCycle: cycle, cycles: was.cycles + (newCycle ? 1 : 0) };
      if (t - was.loggedAt < repeatMs) {
        setNewest(held, key, { ...next, quietCycles: was.quietCycles + (newCycle ? 1 : 0) }, max);
        return { kind: 'quiet' };
      }
      setNewest(held, key, { ...next, loggedAt: t, quietCycles: 0 }, max);
      return { kind: 'reminder', quietCycles: was.quietCycles, forMs: t - was.since };
    },
    cleared(bmc) {
      const key = keyOf(bmc);
      const was = held.get(key);
      if (was === undefined) return undefined;
      held.delete(key);
      return { condition: was.condition, forMs: now() - was.failingSince, cycles: was.cycles, sameCycle: was.firstCycle === cycle };
    },
    forget(keep) {
      for (const [key, h] of held) if (!keep(h.bmc)) held.delete(key);
    },
    get size() {
      return held.size;
    },
  };
}
