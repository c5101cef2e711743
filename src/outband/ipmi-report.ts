/**
 * IPMI values → the report fields metal-api wants, beside `redfish-report.ts` for Redfish. Pure:
 * the one place that knows how IPMI's FRU areas, DCMI power reading and chassis identify state
 * map to metal-api's names; the codecs in `src/ipmi` keep IPMI's own words.
 */
import type { IdentifyState } from '../ipmi/commands.js';
import type { DcmiPowerReading } from '../ipmi/dcmi.js';
import type { FruInfo } from '../ipmi/fru.js';
import type { LedReading, MetalFru, PowerMetric } from './types.js';

/** metal-api FRU field ← where it comes from in the FRU. */
const METAL_FRU_SOURCES: ReadonlyArray<readonly [keyof MetalFru, (info: FruInfo) => string | undefined]> = [
  ['board_mfg', (info) => info.board?.manufacturer],
  ['board_mfg_serial', (info) => info.board?.serial],
  ['board_part_number', (info) => info.board?.partNumber],
  ['chassis_part_number', (info) => info.chassis?.partNumber],
  ['chassis_part_serial', (info) => info.chassis?.serial],
  ['product_manufacturer', (info) => info.product?.manufacturer],
  ['product_part_number', (info) => info.product?.partNumber],
  ['product_serial', (info) => info.product?.serial],
];

/** The FRU in metal-api's v1.MachineFru shape; empty or missing values are omitted. */
export function fruToMetalApi(info: FruInfo): MetalFru {
  const fru: MetalFru = {};
  for (const [key, source] of METAL_FRU_SOURCES) {
    const value = source(info);
    if (value) fru[key] = value;
  }
  return fru;
}

const MINUTE_MS = 60_000;

/** DCMI's statistics become metal-api's PowerMetric; the period is counted in whole minutes, at least one. */
export function powerMetricOfDcmi(reading: DcmiPowerReading): PowerMetric {
  return {
    averageconsumedwatts: reading.averageWatts,
    intervalinmin: Math.max(1, Math.round(reading.periodMs / MINUTE_MS)),
    maxconsumedwatts: reading.maximumWatts,
    minconsumedwatts: reading.minimumWatts,
  };
}

/** Get Chassis Status's identify state; "unknown" is what BMCs without identify support answer. */
export const LED_OF_IDENTIFY: Readonly<Record<IdentifyState, LedReading>> = { on: 'LED-ON', temporary: 'LED-ON', off: 'LED-OFF', unknown: 'UNKNOWN' };
