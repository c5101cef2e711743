/**
 * Per-vendor choices of the out-of-band facade, as data: which protocol performs each action,
 * which protocol is authoritative for each report field, which console backend to use, how
 * firmware is delivered, and how the vendor encodes UUIDs. Detection is by the Redfish System's
 * Manufacturer, else by the IPMI manufacturer id (IANA).
 */
import type { VendorName } from '../config/guid-orders.js';
import { BOOT_DEVICE_BYTE } from '../ipmi/boot.js';
import type { GuidEncoding } from '../ipmi/guid.js';
import { FRU_KEYS } from '../metalapi/types.js';
import type { MetalFru } from './types.js';

/** the names are the configuration's (METAL_BMC_GUID_ENCODING takes them), the profiles below are for each */
export type Vendor = VendorName;
export type ActionProtocol = 'redfish' | 'ipmi';

/** The report fields that both protocols can deliver: the BMC firmware version and the eight FRU fields. */
export type ReportField = 'bmcVersion' | keyof MetalFru;
export const REPORT_FIELDS: readonly ReportField[] = ['bmcVersion', ...FRU_KEYS];
/** Per field, the protocol whose value is sent; the other one only fills a field the first left empty. */
export type ReportSources = Readonly<Record<ReportField, ActionProtocol>>;

function allFrom(protocol: ActionProtocol): ReportSources {
  return Object.freeze(Object.fromEntries(REPORT_FIELDS.map((f) => [f, protocol])) as Record<ReportField, ActionProtocol>);
}
/** Redfish values first, IPMI fills gaps. */
export const REDFISH_FIRST: ReportSources = allFrom('redfish');
/** IPMI values first (FRU, Get Device ID firmware revision as ipmitool prints it, e.g. `1.74`), Redfish fills gaps. */
export const IPMI_FIRST: ReportSources = allFrom('ipmi');

export interface VendorProfile {
  vendor: Vendor;
  /** preferred protocol per action; the other one is the fallback when the first is absent or refuses */
  power: ActionProtocol;
  boot: ActionProtocol;
  identify: ActionProtocol;
  /** serial console backend: IPMI SOL, or SSH to the BMC running `sshConsoleCommand` */
  console: 'ipmi-sol' | 'ssh';
  sshConsoleCommand?: string;
  /**
   * the byte the BMC's console command takes as "leave" (iDRAC's `console com2`: Ctrl+\, 0x1c):
   * dropped from what is typed, since the session is shared (viewers, the capture) and one
   * viewer's keystroke would end it for all; the host never gets that byte from the BMC anyway
   */
  sshConsoleDetachByte?: number;
  /** firmware delivery: the BMC fetches the URL (SimpleUpdate) or we stream it (multipart push) */
  firmware: 'simple-update' | 'multipart-push';
  /** byte order of IPMI Get System GUID */
  guidEncoding: GuidEncoding;
  /**
   * `guidEncoding` is proven on this vendor's BMCs (their GUID against dmidecode in-band): a UUID
   * from the GUID alone is then reported when Redfish fails, without an earlier read confirming it
   * (uuid.ts). No vendor yet: 'smbios' is the common order, not a measured one.
   */
  guidEncodingProven?: boolean;
  /** without a confirming IPMI GUID, swap every Redfish UUID but a plausible version-1 one, as go-hal does for Supermicro (uuid.ts) */
  swapRedfishUuidUnlessV1?: boolean;
  /** IPMI boot flags data byte 2 for "boot from disk" (go-hal: 0x24 on Supermicro and Novarion, 0x08 elsewhere) */
  ipmiDiskDevice: number;
  /**
   * Redfish `Continuous` overrides survive one reboot only on systems whose BIOS version is at or
   * below this (Dell iDRAC defect 159467, fixed with 2.75.75.75); there the persistent boot device
   * is set through the System's `BootOrder` instead, as go-hal does.
   */
  bootOrderUpToBios?: string;
  /** which protocol fills BMCVersion and each FRU field of the report */
  reportSources: ReportSources;
}

const BASE: Omit<VendorProfile, 'vendor'> = {
  power: 'redfish',
  boot: 'redfish',
  identify: 'redfish',
  console: 'ipmi-sol',
  firmware: 'simple-update',
  guidEncoding: 'smbios',
  ipmiDiskDevice: BOOT_DEVICE_BYTE.disk,
  reportSources: REDFISH_FIRST,
};

/**
 * Why these choices: Supermicro X11/X12 BMCs apply Redfish boot overrides unreliably and reject
 * SimpleUpdate for BIOS images, so boot and power go over IPMI and firmware is pushed; Dell iDRAC
 * serves the host serial console over SSH (`console com2`), not over SOL by default; Gigabyte
 * BMCs often omit PowerCycle (a cycle is then a ForceRestart, as go-hal sends, or ForceOff and On
 * where that is missing too), push firmware, and boot over Redfish as go-hal's gigabyte.BootFrom
 * does (IPMI only as the fallback: MegaRAC's persistent IPMI boot flag is not proven).
 */
const SUPERMICRO: VendorProfile = {
  ...BASE,
  vendor: 'supermicro',
  swapRedfishUuidUnlessV1: true,
  power: 'ipmi',
  boot: 'ipmi',
  identify: 'ipmi',
  firmware: 'multipart-push',
  reportSources: IPMI_FIRST,
  ipmiDiskDevice: BOOT_DEVICE_BYTE.supermicroDisk,
};

/*
 * Report sources: metal-api finds firmware for a machine by the FRU's board_mfg and
 * board_part_number, and metalctl compares BMCVersion with the firmware it offers. For
 * Supermicro (and Novarion, Supermicro boards inside) the Go metal-bmc takes all eight FRU
 * fields from `ipmitool fru` and BMCVersion from `ipmitool bmc info` ("1.74"), so those are
 * the values metal-api already holds; Redfish says "1.74.11" and names the board differently.
 * Other vendors: Redfish first (the Go daemon sends Redfish values or nothing for them).
 */
export const VENDOR_PROFILES: Record<Vendor, VendorProfile> = {
  supermicro: SUPERMICRO,
  novarion: { ...SUPERMICRO, vendor: 'novarion' },
  dell: { ...BASE, vendor: 'dell', console: 'ssh', sshConsoleCommand: 'console com2', sshConsoleDetachByte: 0x1c, bootOrderUpToBios: '2.75.75' },
  lenovo: { ...BASE, vendor: 'lenovo' },
  gigabyte: { ...BASE, vendor: 'gigabyte', firmware: 'multipart-push' },
  hpe: { ...BASE, vendor: 'hpe' },
  virtual: { ...BASE, vendor: 'virtual' },
  unknown: { ...BASE, vendor: 'unknown' },
};

/**
 * Redfish System (or service root) Manufacturer → vendor, first match wins. The strings are the
 * ones real BMCs send: "Supermicro", "Novarion-Systems", "Dell Inc.", "Lenovo", "GIGABYTE" and,
 * since the 2023 spin-off, "Giga Computing", "HPE". Virtual machines: "Vagrant" (go-hal's
 * name for metal-stack's mini-lab VMs), QEMU's SMBIOS default "QEMU", RHEL's qemu-kvm "Red Hat",
 * VirtualBox "innotek GmbH" (Vagrant's default provider), sushy-tools' Redfish emulator
 * "Sushy Emulator", and the DMTF mockup's "Contoso".
 */
const MANUFACTURER_PATTERNS: ReadonlyArray<readonly [RegExp, Vendor]> = [
  [/novarion/i, 'novarion'],
  [/supermicro|super micro/i, 'supermicro'],
  [/\bdell\b/i, 'dell'],
  [/lenovo|\bibm\b/i, 'lenovo'],
  [/giga-?byte|giga computing/i, 'gigabyte'],
  [/\bhpe?\b|hewlett/i, 'hpe'],
  [/vagrant|contoso|qemu|red hat|innotek|sushy|virtual|openbmc-sim|simulat|montavista/i, 'virtual'],
];

/**
 * IANA private enterprise numbers as BMCs report them in Get Device ID (used when there is no
 * Redfish). Novarion BMCs are Supermicro BMCs and say 10876. 4753 is MontaVista, the default of
 * OpenIPMI's ipmi_sim, which is the BMC of mini-lab's virtual machines. 0 ("reserved", e.g.
 * virtualbmc) names no vendor.
 */
const IANA_VENDORS: Readonly<Record<number, Vendor>> = { 10876: 'supermicro', 674: 'dell', 19046: 'lenovo', 20301: 'lenovo', 2: 'lenovo', 15370: 'gigabyte', 11: 'hpe', 47196: 'hpe', 4753: 'virtual' };
/** the manufacturer ids the table knows; exported for the test that every vendor METAL_BMC_GUID_ENCODING takes is one of theirs */
export const IANA_IDS: readonly number[] = Object.keys(IANA_VENDORS).map(Number);

export function vendorOfManufacturer(manufacturer: string | undefined): Vendor {
  if (!manufacturer) return 'unknown';
  return MANUFACTURER_PATTERNS.find(([re]) => re.test(manufacturer))?.[1] ?? 'unknown';
}

export function vendorOfIana(manufacturerId: number | undefined): Vendor {
  return manufacturerId === undefined ? 'unknown' : (IANA_VENDORS[manufacturerId] ?? 'unknown');
}
