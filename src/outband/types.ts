/**
 * The one interface over Redfish and IPMI that the daemon, the command runner and the
 * console hub use. Field names of `BmcReport` follow metal-api's v1.MachineIpmiReport
 * where they end up there (metal-api's swagger: src/metalapi/metal-api.swagger.json).
 */
import type { Duplex } from 'node:stream';

export type PowerState = 'ON' | 'OFF' | 'UNKNOWN';
/** metal-api's two identify LED states; it rejects anything else (an empty string included). */
export type LedState = 'LED-ON' | 'LED-OFF';
/** What a BMC read says about its identify LED: a state, or UNKNOWN when it could not be read. */
export type LedReading = LedState | 'UNKNOWN';
export type BootTarget = 'PXE' | 'DISK' | 'BIOS';
export type FirmwareKind = 'bios' | 'bmc';

/** metal-api's FRU field names (v1.MachineFru). Absent fields are omitted. */
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

export interface PowerMetric {
  averageconsumedwatts: number;
  intervalinmin: number;
  maxconsumedwatts: number;
  minconsumedwatts: number;
}

export interface PowerSupply {
  status: { health: string; state: string };
}

export interface BmcReport {
  uuid: string;
  bmcVersion: string;
  biosVersion: string;
  fru: MetalFru;
  powerState: PowerState;
  /** UNKNOWN when no protocol could read it; the reporter then sends the last known state */
  indicatorLED: LedReading;
  powerMetric?: PowerMetric;
  powerSupplies: PowerSupply[];
  /** Which protocol delivered the report, and what could not be read (never fatal). */
  source: 'redfish' | 'ipmi' | 'redfish+ipmi';
  /** per report field (bmcVersion, FRU fields), the protocol its value came from */
  fieldSources?: Partial<Record<'bmcVersion' | keyof MetalFru, 'redfish' | 'ipmi'>>;
  missing: string[];
}

export interface Credentials {
  user: string;
  password: string;
}

export interface OperationOptions {
  signal?: AbortSignal;
}

export interface FirmwareProgress {
  state: string;
  percent?: number;
  message?: string;
}

/** A connected BMC. `close()` releases every session it holds; it never throws. */
export interface Outband {
  readonly address: string;
  readonly vendor: string;
  info(options?: OperationOptions): Promise<BmcReport>;
  powerOn(options?: OperationOptions): Promise<void>;
  powerOff(options?: OperationOptions): Promise<void>;
  powerReset(options?: OperationOptions): Promise<void>;
  powerCycle(options?: OperationOptions): Promise<void>;
  bootFrom(target: BootTarget, options?: OperationOptions & { persistent?: boolean; uefi?: boolean }): Promise<void>;
  identify(on: boolean, options?: OperationOptions): Promise<void>;
  openConsole(options?: OperationOptions & { takeOver?: boolean }): Promise<Duplex>;
  updateFirmware(kind: FirmwareKind, url: string, options?: OperationOptions & { onProgress?: (p: FirmwareProgress) => void }): Promise<void>;
  close(): Promise<void>;
}
