/**
 * Hostile or broken BMC data stops at the report: every string of an entry is cut to
 * `MAX_STRING` characters (control characters removed), at most `MAX_POWER_SUPPLIES` supplies
 * are kept, a power reading that is not a number metal-api takes (finite, within float32) is
 * dropped, a field that is no string is emptied, and a FRU field left empty is left out (metal-api
 * would store the ""). Real values are far
 * inside these bounds (FRU fields and versions are tens of characters, servers have 1 to 16
 * supplies), so a bounded entry is always a sign of a BMC to look at: `boundEntry` says what
 * it cut.
 */
import { TERMINAL_CONTROLS } from '../terminal-text.js';
import type { MachineIpmiReport, MetalFru, PowerMetric } from '../metalapi/types.js';

export const MAX_STRING = 256;
export const MAX_POWER_SUPPLIES = 32;
/**
 * metal-api's PowerMetric fields are float32: a reading beyond its range (a BMC's 1e300) gets the
 * whole report a 400, split in halves again every cycle to find it; such a metric is dropped here
 */
export const MAX_FLOAT32 = 3.4028234663852886e38;

/** A BMC's text as the report and the status keep it: control characters (C0, DEL, C1, bidirectional overrides: terminal-text.ts) removed, at most MAX_STRING characters; undefined for no string. */
export function boundedText(value: unknown): string | undefined {
  return typeof value === 'string' ? value.replace(TERMINAL_CONTROLS, '').slice(0, MAX_STRING) : undefined;
}

export interface Bounded {
  entry: MachineIpmiReport;
  /** the fields that were cut or dropped; empty for a normal entry */
  cut: string[];
}

export function boundEntry(entry: MachineIpmiReport): Bounded {
  const cut: string[] = [];
  const str = (field: string, value: unknown, instead = ''): string => {
    // a value that is no string (a BMC's word looked up where it reached the prototype, a bug) is
    // dropped here instead of failing the whole report's assembly on `replace`
    if (typeof value !== 'string') {
      cut.push(field);
      return instead;
    }
    const clean = value.replace(TERMINAL_CONTROLS, '');
    if (clean.length <= MAX_STRING && clean === value) return value;
    cut.push(field);
    return clean.slice(0, MAX_STRING);
  };
  const fru: MetalFru = {};
  for (const [key, value] of Object.entries(entry.FRU) as Array<[keyof MetalFru, string | undefined]>) {
    if (value === undefined) continue;
    const clean = str(`FRU.${key}`, value);
    // metal-api's updateFru stores a field sent as "" and keeps the old value only for one left
    // out: a field that is only control characters (or empty) must not blank the in-band value
    if (clean !== '') fru[key] = clean;
  }
  let supplies = entry.PowerSupplies;
  if (supplies.length > MAX_POWER_SUPPLIES) {
    cut.push(`PowerSupplies (${supplies.length})`);
    supplies = supplies.slice(0, MAX_POWER_SUPPLIES);
  }
  let metric: PowerMetric | null = entry.PowerMetric;
  if (metric && !Object.values(metric).every((v) => typeof v === 'number' && Math.abs(v) <= MAX_FLOAT32)) {
    cut.push('PowerMetric');
    metric = null;
  }
  return {
    entry: {
      BMCIp: entry.BMCIp,
      BMCVersion: str('BMCVersion', entry.BMCVersion),
      BIOSVersion: str('BIOSVersion', entry.BIOSVersion),
      FRU: fru,
      // the two words metal-api reads as states: one that is no string says UNKNOWN, as a state not read does
      PowerState: str('PowerState', entry.PowerState, 'UNKNOWN'),
      IndicatorLEDState: str('IndicatorLEDState', entry.IndicatorLEDState, 'UNKNOWN'),
      PowerMetric: metric,
      PowerSupplies: supplies.map((p, i) => ({ status: { health: str(`PowerSupplies[${i}].health`, p.status.health), state: str(`PowerSupplies[${i}].state`, p.status.state) } })),
    },
    cut,
  };
}
