/**
 * Per-vendor choices of the out-of-band facade, as data: which protocol performs each action,
 * which console backend to use, how firmware is delivered, and how the vendor encodes UUIDs.
 * Detection is by the Redfish System's Manufacturer, else by the IPMI manufacturer id (IANA).
 */
import { BOOT_DEVICE_BYTE } from '../ipmi/boot.js';
import type { GuidEncoding } from '../ipmi/guid.js';

export type Vendor = 'supermicro' | 'dell' | 'lenovo' | 'gigabyte' | 'hpe' | 'virtual' | 'unknown';
export type ActionProtocol = 'redfish' | 'ipmi';

export interface VendorProfile {
  vendor: Vendor;
  /** preferred protocol per action; the other one is the fallback when the first is absent or refuses */
  power: ActionProtocol;
  boot: ActionProtocol;
  identify: ActionProtocol;
  /** serial console backend: IPMI SOL, or SSH to the BMC running `sshConsoleCommand` */
  console: 'ipmi-sol' | 'ssh';
  sshConsoleCommand?: string;
  /** firmware delivery: the BMC fetches the URL (SimpleUpdate) or we stream it (multipart push) */
  firmware: 'simple-update' | 'multipart-push';
  /** byte order of IPMI Get System GUID */
  guidEncoding: GuidEncoding;
  /** IPMI boot flags data byte 2 for "boot from disk" (go-hal: 0x24 on Supermicro and Novarion, 0x08 elsewhere) */
  ipmiDiskDevice: number;
  /**
   * Redfish `Continuous` overrides survive one reboot only on systems whose BIOS version is at or
   * below this (Dell iDRAC defect 159467, fixed with 2.75.75.75); there the persistent boot device
   * is set through the System's `BootOrder` instead, as go-hal does.
   */
  bootOrderUpToBios?: string;
}

const BASE: Omit<VendorProfile, 'vendor'> = {
  power: 'redfish',
  boot: 'redfish',
  identify: 'redfish',
  console: 'ipmi-sol',
  firmware: 'simple-update',
  guidEncoding: 'smbios',
  ipmiDiskDevice: BOOT_DEVICE_BYTE.disk,
};

/**
 * Why these choices: Supermicro X11/X12 BMCs apply Redfish boot overrides unreliably and reject
 * SimpleUpdate for BIOS images, so boot and power go over IPMI and firmware is pushed; Dell iDRAC
 * serves the host serial console over SSH (`console com2`), not over SOL by default; Gigabyte
 * BMCs often omit PowerCycle (the Redfish client then does ForceOff + On) and push firmware.
 */
export const VENDOR_PROFILES: Record<Vendor, VendorProfile> = {
  supermicro: { ...BASE, vendor: 'supermicro', power: 'ipmi', boot: 'ipmi', identify: 'ipmi', firmware: 'multipart-push', ipmiDiskDevice: BOOT_DEVICE_BYTE.supermicroDisk },
  dell: { ...BASE, vendor: 'dell', console: 'ssh', sshConsoleCommand: 'console com2', bootOrderUpToBios: '2.75.75' },
  lenovo: { ...BASE, vendor: 'lenovo' },
  gigabyte: { ...BASE, vendor: 'gigabyte', boot: 'ipmi', firmware: 'multipart-push' },
  hpe: { ...BASE, vendor: 'hpe' },
  virtual: { ...BASE, vendor: 'virtual' },
  unknown: { ...BASE, vendor: 'unknown' },
};

const MANUFACTURER_PATTERNS: Array<[RegExp, Vendor]> = [
  [/supermicro|super micro/i, 'supermicro'],
  [/\bdell\b/i, 'dell'],
  [/lenovo|\bibm\b/i, 'lenovo'],
  [/giga-?byte|giga computing/i, 'gigabyte'],
  [/\bhpe?\b|hewlett/i, 'hpe'],
  [/contoso|qemu|virtual|openbmc-sim|simulat|montavista/i, 'virtual'],
];

/** IANA private enterprise numbers as BMCs report them in Get Device ID. */
const IANA_VENDORS: Record<number, Vendor> = { 10876: 'supermicro', 674: 'dell', 19046: 'lenovo', 20301: 'lenovo', 2: 'lenovo', 15370: 'gigabyte', 11: 'hpe', 47196: 'hpe', 4753: 'virtual' };

export function vendorOfManufacturer(manufacturer: string | undefined): Vendor {
  if (!manufacturer) return 'unknown';
  return MANUFACTURER_PATTERNS.find(([re]) => re.test(manufacturer))?.[1] ?? 'unknown';
}

export function vendorOfIana(manufacturerId: number | undefined): Vendor {
  return manufacturerId === undefined ? 'unknown' : (IANA_VENDORS[manufacturerId] ?? 'unknown');
}
