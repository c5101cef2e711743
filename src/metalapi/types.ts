/**
 * metal-api request and response bodies, named after the swagger definitions in
 * src/metalapi/metal-api.swagger.json. Field names and casing are the wire names.
 */

/** v1.MachineFru: metal-api's FRU field names. Absent fields are omitted. */
export interface MetalFru {
  board_mfg?: string;
  board_mfg_serial?: string;
  board_part_number?: string;
  chassis_part_number?: string;
  chassis_part_serial?: string;
  product_manufacturer?: string;
  product_part_number?: string;
  product_serial?: string;
}

/** v1.PowerMetric */
export interface PowerMetric {
  averageconsumedwatts: number;
  intervalinmin: number;
  maxconsumedwatts: number;
  minconsumedwatts: number;
}

/** v1.PowerSupply */
export interface PowerSupply {
  status: { health: string; state: string };
}

/**
 * v1.MachineIpmiReport. Every field is `required` in the swagger. metal-api's Go type
 * holds `PowerMetric` as a pointer, so the Go metal-bmc sends `"PowerMetric": null` when it
 * has no reading; we do the same (omitting it would break the swagger's `required`).
 */
export interface MachineIpmiReport {
  BMCIp: string;
  BMCVersion: string;
  BIOSVersion: string;
  FRU: MetalFru;
  PowerState: string;
  IndicatorLEDState: string;
  PowerMetric: PowerMetric | null;
  PowerSupplies: PowerSupply[];
}

/** v1.MachineIpmiReports: the body of POST /v1/machine/ipmi, keyed by machine uuid. */
export interface MachineIpmiReports {
  partitionid: string;
  reports: Record<string, MachineIpmiReport>;
}

/**
 * v1.MachineIpmiReportResponse: the machines metal-api created or updated. An entry it took but
 * did not apply (a machine of another partition, a create or update that failed: its log only)
 * is in neither list. metal-api may send `null` for an empty list; the client normalises to [].
 */
export interface MachineIpmiReportResponse {
  created: string[];
  updated: string[];
  /** the answer named neither list (an empty body, an older metal-api): which entries were applied is unknown */
  unlisted?: true;
}

/** v1.MachineIPMI: a machine's BMC connection data, as GET /v1/machine/{id}/ipmi returns it. */
export interface MachineIpmi {
  /** `host:port`, e.g. `10.1.0.17:623` */
  address: string;
  user: string;
  password: string;
  interface: string;
  mac: string;
  fru: MetalFru;
  bmcversion: string;
  powerstate: string;
  powermetric?: PowerMetric | null;
  powersupplies?: PowerSupply[];
  last_updated?: string;
}

/** The parts of v1.MachineIPMIResponse that metal-bmc reads; the rest is ignored. */
export interface MachineIpmiResponse {
  id: string;
  ipmi: MachineIpmi;
  [extra: string]: unknown;
}

/** httperrors.HTTPErrorResponse: what metal-api answers with on errors. */
export interface HttpErrorResponse {
  statuscode: number;
  message: string;
}

/** metal-api's eight FRU field names, in swagger order */
export const FRU_KEYS: readonly (keyof MetalFru)[] = [
  'board_mfg',
  'board_mfg_serial',
  'board_part_number',
  'chassis_part_number',
  'chassis_part_serial',
  'product_manufacturer',
  'product_part_number',
  'product_serial',
];

/** Copies only the eight metal-api FRU fields, dropping empty ones. */
export function toMetalFru(fru: MetalFru): MetalFru {
  const out: MetalFru = {};
  for (const k of FRU_KEYS) {
    const v = fru[k];
    if (typeof v === 'string' && v !== '') out[k] = v;
  }
  return out;
}
