/**
 * METAL_BMC_GUID_ENCODING: the byte order in which a vendor's BMCs send Get System GUID, set by
 * the operator, who checked it on one machine (the in-band SMBIOS UUID, `dmidecode -s
 * system-uuid`, against `metal-bmc bmc info --address BMC --protocol ipmi --guid-encoding ORDER`
 * for each order). With it, a BMC of that vendor read over IPMI alone (no Redfish, Redfish failing
 * at login, or giving no UUID) is reported with the GUID in that order as
 * its machine UUID; without it such a BMC is left out, since a GUID decoded in the wrong order
 * would make metal-api create a phantom machine (src/outband/uuid.ts). The vendor is the one
 * detected: by the manufacturer id over IPMI where Redfish cannot be reached, else by Redfish's
 * Manufacturer. A BMC whose vendor could not be read, or is not in the vendor table, is decoded in
 * no listed order.
 */
import { ConfigError } from './error.js';
import { show, text, type Env } from './env.js';

/** The vendors of the out-of-band vendor table (src/outband/vendors.ts), by the names an operator writes. */
export const VENDOR_NAMES = ['supermicro', 'novarion', 'dell', 'lenovo', 'gigabyte', 'hpe', 'virtual', 'unknown'] as const;
export type VendorName = (typeof VENDOR_NAMES)[number];

/** Get System GUID's byte orders: src/ipmi/guid.ts GuidEncoding's (assigned to it in src/outband and src/cli, and the unit test checks the other way). */
export const GUID_ORDERS = ['smbios', 'rfc4122', 'ipmi'] as const;
export type GuidOrder = (typeof GUID_ORDERS)[number];

export type GuidOrdersByVendor = Readonly<Partial<Record<VendorName, GuidOrder>>>;

/**
 * Vendors whose BMCs name another vendor over IPMI (the manufacturer id of Get Device ID), where
 * a BMC without Redfish is told apart: Novarion's boards are Supermicro's. They are listed under
 * that name and refused as keys.
 */
const LISTED_AS: Readonly<Partial<Record<VendorName, VendorName>>> = { novarion: 'supermicro' };

/**
 * The key of METAL_BMC_GUID_ENCODING a BMC of `vendor` is listed under; none for `unknown`, which
 * is every BMC whose manufacturer id the vendor table lacks, whatever its maker: an order checked
 * on one of them says nothing of the next.
 */
export function listedVendor(vendor: VendorName): VendorName | undefined {
  return vendor === 'unknown' ? undefined : (LISTED_AS[vendor] ?? vendor);
}

/** The vendor names METAL_BMC_GUID_ENCODING takes. */
export const LISTABLE_VENDORS: readonly VendorName[] = VENDOR_NAMES.filter((v) => listedVendor(v) === v);

const isVendorName = (v: string): v is VendorName => (VENDOR_NAMES as readonly string[]).includes(v);
const isGuidOrder = (v: string): v is GuidOrder => (GUID_ORDERS as readonly string[]).includes(v);

/** `vendor=order` pairs, comma-separated (`supermicro=smbios,dell=rfc4122`); blank is none. */
export function parseGuidOrders(value: string, variable: string): GuidOrdersByVendor {
  const orders: Partial<Record<VendorName, GuidOrder>> = {};
  for (const item of value.split(',')) {
    const pair = item.trim();
    if (pair === '') continue;
    const eq = pair.indexOf('=');
    if (eq < 0) throw new ConfigError(`${show(pair)} is not vendor=order`, variable);
    const vendor = pair.slice(0, eq).trim().toLowerCase();
    const order = pair.slice(eq + 1).trim().toLowerCase();
    if (!isVendorName(vendor)) throw new ConfigError(`${show(vendor)} is not a vendor: one of ${LISTABLE_VENDORS.join(', ')}`, variable);
    const key = listedVendor(vendor);
    if (key === undefined) throw new ConfigError(`unknown is any BMC whose manufacturer id the vendor table lacks, whatever its maker, so no one GUID order holds for it: read such BMCs with METAL_BMC_PROTOCOL=ipmi`, variable);
    if (key !== vendor) throw new ConfigError(`${vendor} BMCs name themselves ${key} over IPMI (their manufacturer id): list them as ${key}`, variable);
    if (!isGuidOrder(order)) throw new ConfigError(`${show(order)} (for ${vendor}) is not a GUID byte order: one of ${GUID_ORDERS.join(', ')}`, variable);
    if (orders[vendor] !== undefined) throw new ConfigError(`${vendor} is given twice`, variable);
    orders[vendor] = order;
  }
  return Object.freeze(orders);
}

export function guidOrders(env: Env, name: string): GuidOrdersByVendor {
  return parseGuidOrders(text(env, name) ?? '', name);
}
