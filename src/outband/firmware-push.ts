/**
 * What a firmware update names per vendor, as data: for a multipart push its `Targets`, apply
 * time, `Oem` options and parts of the vendor's own (the rules below, each with its source), and
 * whether SimpleUpdate names `Targets` at all (`SIMPLE_UPDATE_NAMES_TARGETS`).
 *
 * Supermicro (X11/X12/H12 Redfish, as bmclib's x12 provider, fwupd's redfish-smc plugin and
 * Supermicro's Redfish reference guide send it): the BIOS is targeted by the System's `Bios`
 * resource, the BMC by its Manager; `Oem.Supermicro.BIOS` / `Oem.Supermicro.BMC` carry the
 * Preserve* flags. metal-bmc keeps every setting, as the Go daemon's `sum UpdateBios
 * --preserve_setting` does: BIOS setup, its password, Secure Boot keys, boot configuration,
 * SMBIOS, OA keys, NVRAM and the ME region; BMC configuration, SDR and its TLS certificate.
 * Apply time `OnStartUpdateRequest` where the UpdateService offers `#UpdateService.StartUpdate`
 * (X12 and later; bmclib's x12 provider and fwupd's redfish-smc plugin both push so, then post
 * StartUpdate once the BMC's verify task is done: redfish/update.ts), else `Immediate`.
 */
import { ON_START_UPDATE_REQUEST, type OperationApplyTime } from '../redfish/apply-time.js';
import type { FirmwareKind } from './types.js';
import type { Vendor } from './vendors.js';

export interface PushPaths {
  system: string;
  /** the System's manager (`ManagedBy[0]`), if known */
  manager: string | undefined;
}

export interface PushParameters {
  targets: string[];
  applyTime?: OperationApplyTime;
  oem?: Record<string, unknown>;
  /** multipart parts of the vendor's own beside UpdateParameters, by name */
  oemParts?: Record<string, unknown>;
}

/** What the UpdateService offers beyond the push itself. */
export interface PushService {
  /** `#UpdateService.StartUpdate` is listed */
  startUpdate: boolean;
}

type PushRule = (kind: FirmwareKind, paths: PushPaths, service: PushService) => PushParameters;

const TARGET_ONLY: PushRule = (kind, p) => {
  const target = kind === 'bios' ? p.system : p.manager;
  return { targets: target ? [target] : [] };
};

export const SUPERMICRO_PRESERVE: Readonly<Record<FirmwareKind, Record<string, boolean>>> = {
  bios: {
    PreserveME: true,
    PreserveNVRAM: true,
    PreserveSMBIOS: true,
    PreserveOA: true,
    PreserveSETUPCONF: true,
    PreserveSETUPPWD: true,
    PreserveSECBOOTKEY: true,
    PreserveBOOTCONF: true,
  },
  bmc: { PreserveCfg: true, PreserveSdr: true, PreserveSsl: true },
};

const SUPERMICRO: PushRule = (kind, p, service) => {
  const target = kind === 'bios' ? `${p.system}/Bios` : p.manager;
  return {
    targets: target ? [target] : [],
    applyTime: service.startUpdate ? ON_START_UPDATE_REQUEST : 'Immediate',
    oem: { Supermicro: { [kind === 'bios' ? 'BIOS' : 'BMC']: { ...SUPERMICRO_PRESERVE[kind] } } },
  };
};

/**
 * AMI MegaRAC (Gigabyte): the push needs a JSON part `OemParameters` with the image type, beside
 * UpdateParameters, or the BMC refuses it with 400 (community.general#8825); no apply time, which
 * it refuses too (community.general#8824). The Targets stay the System or Manager, unverified on
 * real MegaRAC (community.general#8825's example names `.../FirmwareInventory/BMCImage1`).
 */
const AMI: PushRule = (kind, p, service) => ({ ...TARGET_ONLY(kind, p, service), oemParts: { OemParameters: { ImageType: kind === 'bios' ? 'BIOS' : 'BMC' } } });

/**
 * The package names its component, so Targets stays empty (DSP2062: the service picks the target).
 * Dell iDRAC: update packages (DUP); Dell's own MultipartUpload examples send `Targets: []`
 * (dell/iDRAC-Redfish-Scripting DeviceFirmwareMultipartUploadREDFISH.py). Lenovo XCC: its update
 * packages; "Targets is not needed" but for BMC-Backup (pubs.lenovo.com xcc-restapi, SimpleUpdate),
 * and lenovo/python-redfish-lenovo's HTTPPUSH sends none.
 */
const FROM_IMAGE: PushRule = () => ({ targets: [] });

export const PUSH_RULES: Record<Vendor, PushRule> = {
  supermicro: SUPERMICRO,
  // Novarion servers are Supermicro boards with Supermicro's BMC firmware and update service
  novarion: SUPERMICRO,
  dell: FROM_IMAGE,
  lenovo: FROM_IMAGE,
  gigabyte: AMI,
  hpe: TARGET_ONLY,
  virtual: TARGET_ONLY,
  unknown: TARGET_ONLY,
};

/**
 * Whether SimpleUpdate names the image's target (the System, the Manager) in `Targets`. Not for
 * iDRAC: "Targets parameter for SimpleUpdate action is not supported by iDRAC"
 * (dell/iDRAC-Redfish-Scripting#247); the Go daemon, too, posts ImageURI alone to Dell.
 */
export const SIMPLE_UPDATE_NAMES_TARGETS: Readonly<Record<Vendor, boolean>> = {
  supermicro: true,
  novarion: true,
  dell: false,
  lenovo: true,
  gigabyte: true,
  hpe: true,
  virtual: true,
  unknown: true,
};

export function pushParametersFor(vendor: Vendor, kind: FirmwareKind, paths: PushPaths, service: PushService): PushParameters {
  return PUSH_RULES[vendor](kind, paths, service);
}
