/**
 * What a simulated BMC says about itself: Get Device ID, Get System GUID, the FRU image.
 * Pure functions of the machine state, shared by the IPMI command table and its tests.
 */
import { createHash } from 'node:crypto';
import { encodeFru } from '../ipmi/fru.js';
import { guidToUuid, uuidToGuid } from '../ipmi/guid.js';
import type { SimMachineState } from './machine.js';

/** IANA enterprise numbers (Get Device ID manufacturer id) and a plausible product id per vendor. */
export const VENDOR_IDS: Readonly<Record<string, { manufacturerId: number; productId: number }>> = {
  Supermicro: { manufacturerId: 10876, productId: 0x1b32 },
  // Novarion servers are Supermicro boards: the BMC says Supermicro, Redfish says Novarion-Systems
  'Novarion-Systems': { manufacturerId: 10876, productId: 0x1b32 },
  Lenovo: { manufacturerId: 19046, productId: 0x0200 },
  Gigabyte: { manufacturerId: 15370, productId: 0x0c47 },
  'Dell Inc.': { manufacturerId: 674, productId: 0x0100 },
};

/** Manufacturer id 0x0000 and product 0 stand for "unknown vendor". */
const UNKNOWN_VENDOR = { manufacturerId: 0, productId: 0 };
/** What a BMC with `ipmi-sol-ack-zero` names itself: Intel (IANA 343), the maker whose BMCs do that */
const INTEL_BMC = { manufacturerId: 343, productId: 0x0100 };

export interface FirmwareRevision {
  /** 7-bit binary major revision */
  major: number;
  /** BCD-encoded minor revision: "74" → 0x74 */
  minorBcd: number;
  /** further version components, one byte each, for the auxiliary firmware revision */
  aux: number[];
}

/**
 * Splits a firmware version such as "1.74.11" into IPMI's major (binary, 7 bits) and minor (two
 * BCD digits) revision. "8.40" → 8 / 0x40; "12.61.21" → 12 / 0x61, aux [21]. A minor of one digit
 * is read as a number ("1.5" → 0x05), as ipmitool prints it back with `%u.%02x`.
 */
export function encodeFirmwareRevision(version: string): FirmwareRevision {
  const parts = version.split('.').map((p) => p.match(/^\d+/)?.[0] ?? '0');
  const major = Math.min(Number(parts[0] ?? '0'), 0x7f);
  const minorDigits = (parts[1] ?? '0').slice(-2).padStart(2, '0');
  const minorBcd = (Number(minorDigits[0]) << 4) | Number(minorDigits[1]);
  const aux = parts.slice(2, 6).map((p) => Math.min(Number(p), 0xff));
  return { major, minorBcd, aux };
}

/** Get Device ID response data (IPMI 2.0 section 20.1), without the completion code. */
export function deviceIdData(state: SimMachineState): Buffer {
  const { major, minorBcd, aux } = encodeFirmwareRevision(state.bmcVersion);
  const vendor = state.quirks.has('ipmi-sol-ack-zero') ? INTEL_BMC : (VENDOR_IDS[state.manufacturer] ?? UNKNOWN_VENDOR);
  const d = Buffer.alloc(15);
  d[0] = 0x20; // device id
  d[1] = 0x01; // device revision 1, no device SDRs
  d[2] = major & 0x7f; // bit 7 clear: normal operation
  d[3] = minorBcd;
  d[4] = 0x02; // IPMI version 2.0
  d[5] = 0x88; // additional device support: chassis device, FRU inventory device
  d.writeUIntLE(vendor.manufacturerId, 6, 3);
  d.writeUInt16LE(vendor.productId, 9);
  aux.forEach((b, i) => (d[11 + i] = b));
  return d;
}

/**
 * Get System GUID: the SMBIOS UUID in SMBIOS byte order, as most real BMCs send it; in textual
 * (RFC 4122) order with `ipmi-guid-rfc4122`; the BMC's own GUID with `ipmi-guid-unrelated`.
 */
export function systemGuid(state: Pick<SimMachineState, 'uuid' | 'quirks'>): Buffer {
  if (state.quirks.has('ipmi-guid-unrelated')) return uuidToGuid(bmcOwnUuid(state.uuid), 'smbios');
  return uuidToGuid(state.uuid, state.quirks.has('ipmi-guid-rfc4122') ? 'rfc4122' : 'smbios');
}

/** A BMC's own identity, as a name-based version-3 UUID (RFC 4122 section 4.3) of its host's: stable, and the host's in no byte order. */
export function bmcOwnUuid(hostUuid: string): string {
  const h = createHash('md5').update(`Unique BMC Identifier ${hostUuid}`).digest();
  h[6] = (h[6]! & 0x0f) | 0x30;
  h[8] = (h[8]! & 0x3f) | 0x80;
  return guidToUuid(h, 'rfc4122');
}

const RACK_MOUNT_CHASSIS = 0x17;

/** The FRU inventory image of FRU device 0. */
export function fruImage(state: SimMachineState): Buffer {
  const f = state.fru;
  return encodeFru({
    chassis: { type: RACK_MOUNT_CHASSIS, partNumber: f.chassisPartNumber, serial: f.chassisSerial, extra: [] },
    board: { manufacturer: f.boardManufacturer, product: f.boardProduct, serial: f.boardSerial, partNumber: f.boardPartNumber, fruFileId: '', extra: [] },
    product: {
      manufacturer: f.productManufacturer,
      name: f.productName,
      partNumber: f.productPartNumber,
      version: '1.0',
      serial: f.productSerial,
      assetTag: '',
      fruFileId: '',
      extra: [],
    },
  });
}
