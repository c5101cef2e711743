/**
 * The one interface over Redfish and IPMI that the daemon, the command runner and the
 * console hub use. Field names of `BmcReport` follow metal-api's v1.MachineIpmiReport
 * where they end up there (metal-api's swagger: src/metalapi/metal-api.swagger.json).
 */
import type { Dispatcher } from 'undici';
import type { Duplex } from 'node:stream';
import type { Protocol } from '../config/config.js';
import type { MetalFru, PowerMetric, PowerSupply } from '../metalapi/types.js';
import type { HedgeOutcome } from '../redfish/http.js';

/** metal-api's shapes, defined in src/metalapi/types.ts; re-exported for the facade's users. */
export type { MetalFru, PowerMetric, PowerSupply };
/** the protocol choice, defined once beside the configuration that reads it */
export type { Protocol };

export type PowerState = 'ON' | 'OFF' | 'UNKNOWN';
/** metal-api's two identify LED states; it rejects anything else (an empty string included). */
export type LedState = 'LED-ON' | 'LED-OFF';
/** What a BMC read says about its identify LED: a state, or UNKNOWN when it could not be read. */
export type LedReading = LedState | 'UNKNOWN';
export type BootTarget = 'PXE' | 'DISK' | 'BIOS';
export type FirmwareKind = 'bios' | 'bmc';

/**
 * Why a report has no machine UUID (`uuid` empty), which the report cycle counts the BMC's skip by:
 * `no-uuid`, neither protocol gave one; `placeholder-uuid`, only values that name no machine (all
 * zero, all FF, a BIOS default: ipmi/guid.ts isPlaceholderUuid); `unconfirmed-ipmi-uuid`, Redfish
 * failed and the IPMI GUID alone is not known to be in the order it is decoded in (uuid.ts).
 */
export type UuidGap = 'no-uuid' | 'placeholder-uuid' | 'unconfirmed-ipmi-uuid';

export interface BmcReport {
  /** the machine UUID; empty when there is none to report (`uuidGap` says why) */
  uuid: string;
  uuidGap?: UuidGap;
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
  /** auto mode only: why Redfish was not used and the report came over IPMI (typed, for the status page) */
  redfishProblem?: RedfishProblem;
  /** the order METAL_BMC_GUID_ENCODING lists for the BMC's vendor decodes its GUID to another UUID than the one decided from Redfish (counted by the report cycle) */
  guidOrderContradicted?: true;
  /** the hedged Redfish GETs of the read (ConnectOptions.redfishHedge), by outcome, where there were any (counted by the report cycle) */
  redfishHedges?: Record<HedgeOutcome, number>;
}

/** A Redfish failure that made the facade fall back to IPMI: the BmcError's code and detail, no secrets. */
export interface RedfishProblem {
  code: string;
  httpStatus?: number;
  /** the transport's own code (a TLS verification code such as DEPTH_ZERO_SELF_SIGNED_CERT), when there is one */
  causeCode?: string;
  message: string;
}

/** The boot override a BMC holds now, as read back (`metal-bmc bmc info`). */
export interface BootOverride {
  /** the device of the next boot(s); NONE: no override, the BIOS boot order decides; OTHER: a device metal-bmc does not set */
  target: BootTarget | 'NONE' | 'OTHER';
  /** applies to all future boots (IPMI persistent flag, Redfish Continuous), else to the next boot only */
  persistent: boolean;
  /** UEFI (EFI boot), else legacy BIOS boot */
  uefi: boolean;
  source: 'redfish' | 'ipmi';
  /** the raw words or bytes it was read from */
  detail: string;
  /** Redfish BootOrder (BootOptionReference values), when the System has one */
  bootOrder?: string[];
}

export interface BootOptions extends OperationOptions {
  /** all future boots (default) or the next boot only; BIOS setup is always next boot only */
  persistent?: boolean;
  /** UEFI (default) or legacy boot */
  uefi?: boolean;
}

export interface Credentials {
  user: string;
  password: string;
}

export interface OperationOptions {
  signal?: AbortSignal;
  /**
   * When the caller's deadline ends (Date.now() scale), if it has one: an action of several steps
   * that must not stop half-way (a power cycle through ForceOff and On) keeps room for its last.
   */
  deadlineAt?: number;
}

export interface FirmwareProgress {
  state: string;
  percent?: number;
  message?: string;
  /** an upload of unknown length (no Content-Length): the image's bytes the BMC took so far */
  sentBytes?: number;
}

/**
 * What an update under way leaves to watch it again from another connection (a firmware job
 * resumed after a restart of metal-bmc): told as it becomes known, each field once.
 */
export interface FirmwareWatch {
  /** the Task or task monitor of the update, as the BMC named it (for a staged push: the one StartUpdate started) */
  taskUri?: string;
  /** the resource the image applies to: the Manager for a BMC image, the System for a BIOS image */
  target?: string;
  /** its version before the update: the Manager's FirmwareVersion, the System's BiosVersion */
  versionBefore?: string;
  /** the BMC (HPE iLO) named no task: the flash is followed through its UpdateService's Oem.Hpe.State (outband/hpe-flash.ts) */
  hpeFlash?: true;
  /** iLO's state before the update was sent: its Complete or Error is the last flash's, not this one's, also when followed again after a restart */
  hpeFlashBefore?: { state: string; resultMessageId?: string };
  /** iLO was seen flashing this update (a running Oem.Hpe.State): from then on its Complete, Error or Idle is this flash's end */
  hpeFlashStarted?: true;
}

/** What updateFirmware and watchFirmware are told besides the signal. */
export interface FirmwareOptions extends OperationOptions {
  onProgress?: (p: FirmwareProgress) => void;
  /** told what the update leaves to watch it again (FirmwareWatch) */
  onWatch?: (learned: FirmwareWatch) => void;
  /**
   * watchFirmware: how often the update is asked how it goes while the BMC answers (its task, iLO's
   * Oem.Hpe.State; a BMC image's FirmwareVersion no more often than configured); default each
   * poll's own (2 s for a task). A hold after an outcome unknown asks a BMC busy flashing less often.
   */
  pollMs?: number;
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
  /** PXE and DISK persistently unless `persistent: false`; BIOS for the next boot only */
  bootFrom(target: BootTarget, options?: BootOptions): Promise<void>;
  /** reads the boot override back from the BMC */
  bootOverride(options?: OperationOptions): Promise<BootOverride>;
  identify(on: boolean, options?: OperationOptions): Promise<void>;
  openConsole(options?: OperationOptions & { takeOver?: boolean }): Promise<Duplex>;
  /** `dispatcher`: what metal-bmc downloads a pushed image with (default undici's global one) */
  updateFirmware(kind: FirmwareKind, url: string, options?: FirmwareOptions & { dispatcher?: Dispatcher }): Promise<void>;
  /**
   * Follows an update another connection started, to the same end updateFirmware would have told:
   * its task when `watch.taskUri` is known, else iLO's UpdateService Oem.Hpe.State when `watch.hpeFlash`
   * (a BMC image inside the version rule), else (a BMC image) the Manager's FirmwareVersion until it
   * is no longer `watch.versionBefore`. Rejects UNSUPPORTED when none can be watched.
   */
  watchFirmware(kind: FirmwareKind, watch: FirmwareWatch, options?: FirmwareOptions): Promise<void>;
  close(): Promise<void>;
}
