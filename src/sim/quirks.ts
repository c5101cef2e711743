/**
 * The simulator's quirk catalogue: behaviours of real BMCs that bend the IPMI and Redfish
 * specifications. A quirk is switched on per machine (`metal-bmc sim --quirks A,B
 * [--quirks-share S]`, the control API's POST /quirks, or a vendor variant that is known for it)
 * and read by the protocol servers on every request, so tests may flip it at any time.
 * A quirk enters the catalogue only with a test that shows a real client (ipmitool, FreeIPMI or
 * curl) surviving it on the simulator: what no real client survives is a simulator bug.
 */
import { BmcError } from '../errors.js';
import type { SimQuirkInfo } from './quirk-info.js';
import type { SimVariantName } from './machine.js';
import { IPMI_QUIRKS, IPMI_VARIANT_QUIRKS } from './quirks-ipmi.js';
import { REDFISH_QUIRKS, REDFISH_VARIANT_QUIRKS } from './quirks-redfish.js';

export type { SimQuirkInfo } from './quirk-info.js';

export const SIM_QUIRKS: Readonly<Record<SimQuirkName, SimQuirkInfo>> = { ...IPMI_QUIRKS, ...REDFISH_QUIRKS };

export type SimQuirkName = keyof typeof IPMI_QUIRKS | keyof typeof REDFISH_QUIRKS;

export function isSimQuirk(name: string): name is SimQuirkName {
  return Object.hasOwn(SIM_QUIRKS, name);
}

/** Quirk names from a comma-separated list; unknown names are an error that lists the known ones. */
export function parseQuirkList(list: string): SimQuirkName[] {
  const names = list.split(',').map((q) => q.trim()).filter((q) => q !== '');
  const unknown = names.find((q) => !isSimQuirk(q));
  if (unknown !== undefined) throw new BmcError('INVALID_ARGUMENT', `unknown quirk ${JSON.stringify(unknown)} (known: ${Object.keys(SIM_QUIRKS).join(', ') || 'none'})`);
  return names as SimQuirkName[];
}

/** The quirks a vendor variant shows by default (IPMI and Redfish), as its real counterpart is known to. */
export function quirksOfVariant(name: SimVariantName): SimQuirkName[] {
  return [...(IPMI_VARIANT_QUIRKS[name] ?? []), ...(REDFISH_VARIANT_QUIRKS[name] ?? [])];
}
