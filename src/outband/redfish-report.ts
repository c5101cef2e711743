/**
 * Redfish inventory → the report fields metal-api wants. Pure: one place that knows how Redfish
 * words map to metal-api's (On → ON, Lit → LED-ON, PowerControl metrics → PowerMetric, ...).
 */
import type { RedfishInventory } from '../redfish/inventory.js';
import type { LedReading, LedState, MetalFru, PowerMetric, PowerState, PowerSupply } from './types.js';

const POWER_STATES: Record<string, PowerState> = { On: 'ON', Off: 'OFF' };
const LED_STATES: Record<string, LedState> = { Lit: 'LED-ON', Blinking: 'LED-ON', Off: 'LED-OFF' };

/** An own key only: a BMC's `"PowerState": "constructor"` must not reach the prototype (a function in the report failed the cycle). */
export function powerStateOf(redfish: string | undefined): PowerState {
  return redfish !== undefined && Object.hasOwn(POWER_STATES, redfish) ? POWER_STATES[redfish]! : 'UNKNOWN';
}

/**
 * LocationIndicatorActive when the BMC has it, else IndicatorLED (Lit and Blinking are on, Off
 * is off); UNKNOWN when neither is there or IndicatorLED holds another word.
 */
export function ledStateOf(inv: Pick<RedfishInventory, 'system' | 'chassis'>): LedReading {
  const active = inv.system?.locationIndicatorActive ?? inv.chassis?.locationIndicatorActive;
  if (active !== undefined) return active ? 'LED-ON' : 'LED-OFF';
  const led = inv.system?.indicatorLED ?? inv.chassis?.indicatorLED;
  return (led !== undefined && Object.hasOwn(LED_STATES, led) ? LED_STATES[led] : undefined) ?? 'UNKNOWN';
}

/** The first value that is a non-blank string. */
function firstText(...values: Array<string | undefined>): string | undefined {
  return values.find((v) => typeof v === 'string' && v.trim() !== '');
}

/**
 * FRU fields as go-hal's redfish BMC() maps them: board from the chassis, product from the
 * system. metal-api overwrites every FRU field a report carries (updateFru), so a field the BMC
 * does not have is left out, and metal-api keeps what metal-hammer registered in-band (in protocol
 * auto IPMI's FRU fills it: report-merge.ts). No stand-in from another property: System Model or
 * SKU for product_part_number (HPE and Lenovo have no System PartNumber) replaced the in-band FRU
 * part number with "ProLiant DL325 Gen10 Plus" every cycle, and System Manufacturer for board_mfg
 * may name the maker otherwise than the board's FRU, by whose lower-cased board_mfg metal-api looks
 * firmware up. board_part_number (chassis Model) is never sent from Redfish (report/body.ts).
 */
export function fruOf(inv: Pick<RedfishInventory, 'system' | 'chassis'>): MetalFru {
  const { system, chassis } = inv;
  const fru: MetalFru = {
    board_mfg: firstText(chassis?.manufacturer),
    board_mfg_serial: firstText(chassis?.serialNumber),
    board_part_number: firstText(chassis?.model, chassis?.partNumber),
    chassis_part_number: firstText(chassis?.partNumber),
    chassis_part_serial: firstText(chassis?.serialNumber),
    product_manufacturer: firstText(system?.manufacturer),
    product_part_number: firstText(system?.partNumber),
    product_serial: firstText(system?.serialNumber),
  };
  return Object.fromEntries(Object.entries(fru).filter(([, v]) => v !== undefined)) as MetalFru;
}

/**
 * The power metric: PowerControl's PowerMetrics, the average falling back to the current reading
 * (PowerConsumedWatts, or PowerSubsystem's) where the BMC keeps no statistics. A minimum, maximum
 * or interval the BMC does not give is 0, "not known", as the Go metal-bmc sends it: filled in from
 * the average, it would claim a range over an interval nobody measured.
 */
export function powerMetricOf(inv: Pick<RedfishInventory, 'powerMetric' | 'consumedWatts' | 'powerWatts'>): PowerMetric | undefined {
  const m = inv.powerMetric;
  const average = m?.averageConsumedWatts ?? inv.consumedWatts ?? inv.powerWatts;
  if (average === undefined) return undefined;
  return {
    averageconsumedwatts: average,
    minconsumedwatts: m?.minConsumedWatts ?? 0,
    maxconsumedwatts: m?.maxConsumedWatts ?? 0,
    intervalinmin: m?.intervalInMin ?? 0,
  };
}

export function powerSuppliesOf(inv: Pick<RedfishInventory, 'powerSupplies'>): PowerSupply[] {
  return (inv.powerSupplies ?? []).map((p) => ({ status: { health: p.health ?? '', state: p.state ?? '' } }));
}
