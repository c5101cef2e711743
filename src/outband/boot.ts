/**
 * Boot devices as metal-stack sets them, as pure functions: the IPMI boot flags per target and
 * vendor, what IPMI and Redfish report back, whether a BIOS needs the BootOrder path, and the
 * BootOrder that path writes. Used by the IPMI outband and the facade.
 */
import { BmcError } from '../errors.js';
import { BOOT_DEVICE_BYTE, encodeBootFlagsParam, type BootFlagsParam } from '../ipmi/boot.js';
import type { BootOptionInfo } from '../redfish/parse.js';
import type { BootOverride, BootTarget } from './types.js';

/**
 * Parameter 5 for a target: PXE and disk valid + persistent + EFI (0xE0) unless `persistent` is
 * false (0xA0); BIOS setup always next boot only (0xA0 0x18), as go-hal sends them.
 */
export function ipmiBootFlags(target: BootTarget, o: { persistent: boolean; uefi: boolean; diskDevice: number }): Buffer {
  const device = { PXE: BOOT_DEVICE_BYTE.pxe, DISK: o.diskDevice, BIOS: BOOT_DEVICE_BYTE.bios }[target];
  return encodeBootFlagsParam({ persistent: target !== 'BIOS' && o.persistent, uefi: o.uefi, device });
}

/** What parameter 5 says the next boot does; `diskDevice` is the vendor's disk byte (0x24 reads as disk on Supermicro). */
export function bootOverrideOfIpmi(f: BootFlagsParam, diskDevice: number): BootOverride {
  const detail = `boot flags ${[f.valid ? 0x80 : 0, f.persistent ? 0x40 : 0, f.uefi ? 0x20 : 0].reduce((a, b) => a | b, 0).toString(16).padStart(2, '0')} ${f.device.toString(16).padStart(2, '0')}`;
  const base = { persistent: f.persistent, uefi: f.uefi, source: 'ipmi' as const, detail };
  if (!f.valid || f.selector === 0) return { ...base, target: 'NONE' };
  if (f.selector === 1) return { ...base, target: 'PXE' };
  if (f.selector === 2 || f.device === diskDevice) return { ...base, target: 'DISK' };
  if (f.selector === 6) return { ...base, target: 'BIOS' };
  return { ...base, target: 'OTHER' };
}

const REDFISH_TARGETS: Record<string, BootTarget> = { Pxe: 'PXE', Hdd: 'DISK', BiosSetup: 'BIOS' };

/** What the System's Boot says; an override that is Disabled (or targets None) leaves the boot to BootOrder. */
export function bootOverrideOfRedfish(boot: { overrideEnabled?: string; overrideTarget?: string; overrideMode?: string; bootOrder?: string[] } | undefined): BootOverride {
  const enabled = boot?.overrideEnabled ?? 'Disabled';
  const target = boot?.overrideTarget ?? 'None';
  const detail = `BootSourceOverrideEnabled ${enabled}, Target ${target}, Mode ${boot?.overrideMode ?? '(not exposed)'}`;
  const base = {
    persistent: enabled === 'Continuous',
    uefi: boot?.overrideMode !== 'Legacy',
    source: 'redfish' as const,
    detail,
    ...(boot?.bootOrder ? { bootOrder: boot.bootOrder } : {}),
  };
  if (enabled === 'Disabled' || target === 'None') return { ...base, persistent: false, target: 'NONE' };
  return { ...base, target: Object.hasOwn(REDFISH_TARGETS, target) ? REDFISH_TARGETS[target]! : 'OTHER' };
}

/** Numeric parts of a version, at most three ("2.75.75.75" → [2, 75, 75]); undefined when it is not dotted numbers. */
function versionParts(version: string): number[] | undefined {
  const m = /^v?(\d+)(?:\.(\d+))?(?:\.(\d+))?(?:[.\-+].*)?$/.exec(version.trim());
  if (!m) return undefined;
  return [Number(m[1]), Number(m[2] ?? 0), Number(m[3] ?? 0)];
}

/**
 * True when a BIOS version is at or below `limit`, compared on its first three numbers as go-hal
 * does (it cuts "2.75.75.75" to "2.75.75" and takes the override only for "> 2.75.75"). A version
 * that cannot be read counts as old, as in go-hal: the BootOrder path works on every BIOS.
 */
export function biosAtOrBelow(version: string | undefined, limit: string): boolean {
  const v = version === undefined ? undefined : versionParts(version);
  const l = versionParts(limit);
  if (l === undefined) throw new BmcError('INVALID_ARGUMENT', `BIOS version limit ${JSON.stringify(limit)} is not a version`);
  if (v === undefined) return true;
  for (let i = 0; i < 3; i++) if (v[i]! !== l[i]!) return v[i]! < l[i]!;
  return true;
}

/** Disk: a UEFI device path on a partition (`HD(`); PXE: a display name that names a NIC or PXE (go-hal's rules). */
export function bootOptionMatches(target: 'PXE' | 'DISK', o: BootOptionInfo): boolean {
  if (target === 'DISK') return (o.uefiDevicePath ?? '').startsWith('HD(');
  const name = o.displayName ?? '';
  return name.includes('NIC') || name.includes('PXE');
}

/**
 * The BootOrder that makes `target` boot first: the matching options (in their current order),
 * then the rest of the current order, so that nothing is dropped from it (go-hal writes only the
 * matching ones). Throws UNSUPPORTED when no option matches.
 */
export function bootOrderFor(target: 'PXE' | 'DISK', options: readonly BootOptionInfo[], currentOrder: readonly string[]): string[] {
  const ref = (o: BootOptionInfo) => o.reference ?? o.id;
  const matching = options.filter((o) => bootOptionMatches(target, o)).map(ref).filter((r): r is string => r !== undefined);
  if (matching.length === 0) {
    throw new BmcError('UNSUPPORTED', `no ${target === 'DISK' ? 'hard disk (UefiDevicePath HD(...))' : 'PXE (DisplayName with NIC or PXE)'} boot option among ${options.length}`);
  }
  const rank = (r: string) => (currentOrder.includes(r) ? currentOrder.indexOf(r) : currentOrder.length);
  const first = [...matching].sort((a, b) => rank(a) - rank(b));
  return [...first, ...currentOrder.filter((r) => !first.includes(r))];
}
