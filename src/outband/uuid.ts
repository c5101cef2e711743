/**
 * Which UUID identifies the machine. metal-api's machine id is the SMBIOS UUID the machine
 * reports in-band. Redfish usually returns it in textual form, but some BMCs return the
 * mixed-endian form (first three fields byte-swapped). The rule, by evidence first:
 * 1. Redfish UUID and IPMI GUID both known: the IPMI GUID decoded in SMBIOS order is the SMBIOS
 *    UUID's bytes. If the Redfish UUID equals it, it stands. If its byte-swapped form equals it,
 *    the bytes cannot tell a mixed-endian Redfish from a BMC that sends its GUID in RFC 4122 order
 *    (ipmitool#239 shows one: "GUID Encoding : RFC4122"); the two forms' own fields decide
 *    (`formEvidence`: a version-1 timestamp, version 4). Vendors whose Redfish UUIDs go-hal swaps
 *    (`swapRedfishUuidUnlessV1`: Supermicro, Novarion) take the swapped form unless it is an
 *    implausible version-1 UUID and the Redfish one is not; every other vendor keeps the Redfish
 *    UUID, as the Go daemon reports it, unless the swapped form is the more plausible one (the
 *    Redfish form an implausible version-1 UUID, or the swapped form a plausible version-1 or a
 *    version-4 UUID and the Redfish form neither). Where neither says more, the Redfish UUID is
 *    kept and the ambiguity named (`redfish-ambiguous`). If it equals the all-reversed decoding,
 *    Redfish stands.
 * 2. Redfish alone: a version-1 UUID whose timestamp is implausible (in the future or more than
 *    30 years from now) is taken as mixed-endian and swapped; for vendors whose profile says
 *    `swapRedfishUuidUnlessV1` (Supermicro, Novarion) every UUID but a plausible version-1 one is
 *    swapped, as go-hal's supermicro.UUID does (uuid-endianness Convert), so that a partition
 *    read without IPMI reports the UUIDs the Go daemon reported.
 * 3. IPMI alone: the GUID in the vendor's encoding (SMBIOS order unless the vendor table says otherwise).
 *    Where Redfish was tried (`ipmiAlone`), that UUID is reported only when confirmed: the GUID is
 *    the one an earlier read with Redfish decided a UUID for (guid-memory.ts), or its byte order is
 *    configured for the BMC or proven for its vendor. Otherwise it is a gap, `unconfirmed-ipmi-uuid`:
 *    a GUID in another order than assumed would make metal-api create a phantom machine, and the
 *    Go daemon never reported a BMC whose Redfish read failed.
 * A fixed rule can be configured per vendor or site instead of `auto`.
 * A placeholder (all zero, all FF, AMI's default: isPlaceholderUuid) is no UUID, from either
 * protocol: the other protocol's real one decides, else there is none (`machineUuid`: the gap).
 */
import { guidToUuid, isImplausibleV1Timestamp, isPlaceholderUuid, isPlausibleV1Uuid, isV4Uuid, swapMixedEndian, type GuidEncoding } from '../ipmi/guid.js';
import { listedVendor, type GuidOrdersByVendor } from '../config/guid-orders.js';
import type { UuidGap } from './types.js';
import type { Vendor } from './vendors.js';

export type UuidRule = 'auto' | 'redfish' | 'redfish-swapped' | 'ipmi';

export interface UuidEvidence {
  redfishUuid?: string;
  ipmiGuid?: Buffer;
  guidEncoding: GuidEncoding;
  rule: UuidRule;
  now: Date;
  /** without a confirming IPMI GUID, swap every Redfish UUID but a plausible version-1 one (go-hal's Supermicro rule) */
  swapRedfishUuidUnlessV1?: boolean;
  /** present where Redfish was tried (protocol auto): a UUID from the IPMI GUID alone must be confirmed (`machineUuid`) */
  ipmiAlone?: IpmiAloneCheck;
  /**
   * `guidEncoding` is the operator's, checked in-band (METAL_BMC_GUID_ENCODING): it settles a GUID
   * that matches the Redfish UUID byte-swapped where neither form's fields do (`redfish-ambiguous`;
   * smbios: Redfish is mixed-endian, rfc4122: the GUID is in textual order). Where the fields do,
   * they decide, and an order saying otherwise is the connection's warning.
   */
  guidOrderListed?: boolean;
}

/** A BMC's GUID that confirmed its Redfish UUID, and the machine UUID decided with it (guid-memory.ts). */
export interface RememberedUuid {
  guid: Buffer;
  uuid: string;
}

/** What may confirm a UUID from the IPMI GUID alone. */
export interface IpmiAloneCheck {
  /** what an earlier read with Redfish decided for this BMC */
  remembered?: RememberedUuid;
  /** the GUID byte order is configured for this BMC, or proven for its vendor (the vendor table's guidEncodingProven) */
  encodingConfigured: boolean;
}

/** What the decision rests on, as a value to compare; `basis` is the same in words, for logs. */
export type UuidBasisKind =
  | 'configured-redfish'
  | 'configured-redfish-swapped'
  | 'configured-ipmi'
  | 'redfish-confirmed'
  | 'ipmi-guid-rfc4122'
  | 'redfish-mixed-endian'
  | 'redfish-ambiguous'
  | 'ipmi-guid-reversed'
  | 'redfish-swapped-heuristic'
  | 'redfish'
  | 'ipmi'
  | 'ipmi-remembered';

/** Decisions where the IPMI GUID matched the Redfish UUID in one of its byte orders: the GUID is evidence worth keeping (guid-memory.ts). */
export const GUID_CONFIRMED_BASES: ReadonlySet<UuidBasisKind> = new Set(['redfish-confirmed', 'redfish-mixed-endian', 'redfish-ambiguous', 'ipmi-guid-rfc4122', 'ipmi-guid-reversed']);

/**
 * The operator's GUID order for a BMC (METAL_BMC_GUID_ENCODING), by its detected vendor
 * (`listedVendor`: Novarion as Supermicro, as over IPMI); none where the vendor could not be read
 * (`detected` undefined: a deadline, a failed request) or the table lacks it (`unknown`).
 */
export function listedGuidOrder(detected: Vendor | undefined, byVendor: GuidOrdersByVendor | undefined): GuidEncoding | undefined {
  const key = detected === undefined ? undefined : listedVendor(detected);
  return key === undefined ? undefined : byVendor?.[key];
}

/** Decisions by the rule `auto` that rest on the Redfish UUID (with or without the GUID matching it): what a GUID order is checked against. */
export const REDFISH_BASES: ReadonlySet<UuidBasisKind> = new Set([...GUID_CONFIRMED_BASES, 'redfish', 'redfish-swapped-heuristic']);

/**
 * How a decision is told in the log: `none`, the normal case; `each-read`, an info line with every
 * read (a BMC whose UUID needed a rule); `once-per-bmc`, a warning the first time this process
 * decides it for a BMC (a guess the operator may want to check, or configure away), debug after.
 */
export const UUID_BASIS_LOGGED: Readonly<Record<UuidBasisKind, 'none' | 'each-read' | 'once-per-bmc'>> = {
  'configured-redfish': 'each-read',
  'configured-redfish-swapped': 'each-read',
  'configured-ipmi': 'each-read',
  'redfish-confirmed': 'none',
  'ipmi-guid-rfc4122': 'each-read',
  'redfish-mixed-endian': 'each-read',
  'redfish-ambiguous': 'once-per-bmc',
  'ipmi-guid-reversed': 'each-read',
  'redfish-swapped-heuristic': 'each-read',
  redfish: 'none',
  ipmi: 'each-read',
  'ipmi-remembered': 'each-read',
};

export interface UuidDecision {
  uuid: string;
  kind: UuidBasisKind;
  basis: string;
}

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** The Redfish UUID in lower case, if it is one (a placeholder included). */
function redfishText(text: string | undefined): string | undefined {
  const t = text?.trim().toLowerCase();
  return t && UUID_RE.test(t) ? t : undefined;
}

/** The IPMI GUID's bytes in textual order, if it is one (a placeholder included). */
function ipmiText(guid: Buffer | undefined, encoding: GuidEncoding): string | undefined {
  return guid && guid.length === 16 ? guidToUuid(guid, encoding) : undefined;
}

const real = (uuid: string | undefined): string | undefined => (uuid === undefined || isPlaceholderUuid(uuid) ? undefined : uuid);

export function decideUuid(e: UuidEvidence): UuidDecision | undefined {
  const redfish = real(redfishText(e.redfishUuid));
  const ipmiGuid = real(ipmiText(e.ipmiGuid, 'smbios')) === undefined ? undefined : e.ipmiGuid;
  const fromIpmi = ipmiText(ipmiGuid, e.guidEncoding);
  switch (e.rule) {
    case 'redfish':
      return redfish ? { uuid: redfish, kind: 'configured-redfish', basis: 'Redfish UUID (configured)' } : undefined;
    case 'redfish-swapped':
      return redfish ? { uuid: swapMixedEndian(redfish), kind: 'configured-redfish-swapped', basis: 'Redfish UUID byte-swapped (configured)' } : undefined;
    case 'ipmi':
      return fromIpmi ? { uuid: fromIpmi, kind: 'configured-ipmi', basis: `IPMI GUID in ${e.guidEncoding} order (configured)` } : undefined;
    case 'auto':
      break;
  }
  if (redfish && ipmiGuid) {
    const smbios = guidToUuid(ipmiGuid, 'smbios');
    if (redfish === smbios) return { uuid: redfish, kind: 'redfish-confirmed', basis: 'Redfish UUID, confirmed by the IPMI GUID' };
    const swapped = swapMixedEndian(redfish);
    // Either Redfish is mixed-endian, or the BMC sends its IPMI GUID in RFC 4122 order: the bytes alone cannot tell
    if (swapped === smbios) {
      const choice = e.swapRedfishUuidUnlessV1 === true ? swappingVendorChoice(redfish, swapped, e.now) : keepingVendorChoice(redfish, swapped, e.now);
      return choice.kind === 'redfish-ambiguous' && e.guidOrderListed === true && e.guidEncoding !== 'ipmi' ? listedOrderChoice(redfish, swapped, e.guidEncoding) : choice;
    }
    if (redfish === guidToUuid(ipmiGuid, 'ipmi')) return { uuid: redfish, kind: 'ipmi-guid-reversed', basis: 'Redfish UUID; the IPMI GUID is in reversed byte order' };
  }
  if (redfish) {
    if (e.swapRedfishUuidUnlessV1 === true && !isPlausibleV1Uuid(redfish, e.now)) {
      return { uuid: swapMixedEndian(redfish), kind: 'redfish-swapped-heuristic', basis: 'Redfish UUID swapped: not a plausible version-1 UUID (go-hal\'s rule for this vendor)' };
    }
    if (isImplausibleV1Timestamp(redfish, e.now)) {
      return { uuid: swapMixedEndian(redfish), kind: 'redfish-swapped-heuristic', basis: 'Redfish UUID swapped: implausible version-1 timestamp (mixed-endian heuristic)' };
    }
    return { uuid: redfish, kind: 'redfish', basis: 'Redfish UUID' };
  }
  if (fromIpmi) return { uuid: fromIpmi, kind: 'ipmi', basis: `IPMI GUID in ${e.guidEncoding} order` };
  return undefined;
}

/** The machine UUID, or why there is none: what the report says (`uuid`, else `uuidGap` and the `missing` line `detail`). */
export type UuidOutcome = { ok: true; decision: UuidDecision } | { ok: false; gap: UuidGap; detail: string };

export function machineUuid(e: UuidEvidence): UuidOutcome {
  const decision = decideUuid(e);
  if (decision?.kind === 'ipmi' && e.ipmiAlone && e.ipmiGuid) return confirmedIpmiAlone(decision, e.ipmiGuid, e.guidEncoding, e.ipmiAlone);
  if (decision) return { ok: true, decision };
  const placeholders = [redfishText(e.redfishUuid), ipmiText(e.ipmiGuid, e.guidEncoding)].filter((u): u is string => u !== undefined && isPlaceholderUuid(u));
  if (placeholders.length > 0) {
    return { ok: false, gap: 'placeholder-uuid', detail: `UUID: only a placeholder, no machine's id (${[...new Set(placeholders)].join(', ')}: all zero, all FF or a BIOS default; not set before the first POST after power loss, or DMI never programmed)` };
  }
  return { ok: false, gap: 'no-uuid', detail: `UUID: no usable system UUID over Redfish${e.ipmiGuid ? '' : ' and none over IPMI'}` };
}

/** A UUID from the IPMI GUID alone, where Redfish was tried: the remembered decision for the same GUID, the configured order's, or a gap. */
function confirmedIpmiAlone(decision: UuidDecision, guid: Buffer, encoding: GuidEncoding, check: IpmiAloneCheck): UuidOutcome {
  const { remembered } = check;
  if (remembered !== undefined && remembered.guid.equals(guid)) {
    return { ok: true, decision: { uuid: remembered.uuid, kind: 'ipmi-remembered', basis: 'IPMI GUID alone: the GUID an earlier read with Redfish decided this UUID for' } };
  }
  if (check.encodingConfigured) return { ok: true, decision: { ...decision, basis: `${decision.basis} (configured)` } };
  const why = remembered === undefined ? 'no earlier read with Redfish confirmed a UUID for this BMC' : `an earlier read with Redfish confirmed ${remembered.uuid} with another GUID`;
  return {
    ok: false,
    gap: 'unconfirmed-ipmi-uuid',
    detail: `UUID: over IPMI alone the GUID reads ${decision.uuid} in ${encoding} order, but ${why} and no GUID order is configured for it: a GUID in another order would be another machine's UUID`,
  };
}

const MIXED_ENDIAN: (uuid: string) => UuidDecision = (uuid) => ({ uuid, kind: 'redfish-mixed-endian', basis: 'Redfish UUID is mixed-endian: swapped to match the IPMI GUID' });
const GUID_RFC4122: (uuid: string) => UuidDecision = (uuid) => ({ uuid, kind: 'ipmi-guid-rfc4122', basis: 'Redfish UUID; the IPMI GUID is in RFC 4122 byte order' });

/**
 * What a UUID's own fields say about the byte order it is read in: 0, a version-1 timestamp that
 * is implausible (in the future or over 30 years ago: the fields are out of order); 2, a plausible
 * version-1 timestamp, or version 4 (the fields are in order); 1, nothing (other versions, e.g.
 * Dell's "DELL" UUIDs, and the odd version nibble that a mixed-endian read gives a random UUID).
 */
function formEvidence(uuid: string, now: Date): 0 | 1 | 2 {
  if (isImplausibleV1Timestamp(uuid, now)) return 0;
  return isPlausibleV1Uuid(uuid, now) || isV4Uuid(uuid) ? 2 : 1;
}

/** The operator's GUID order for the vendor says which form is the machine's: in SMBIOS order the GUID is the swapped form, in RFC 4122 order the Redfish one. */
function listedOrderChoice(redfish: string, swapped: string, order: 'smbios' | 'rfc4122'): UuidDecision {
  const d = order === 'smbios' ? MIXED_ENDIAN(swapped) : GUID_RFC4122(redfish);
  return { ...d, basis: `${d.basis} (as the GUID order configured for the vendor says)` };
}

/** go-hal swaps this vendor's Redfish UUIDs (Supermicro, Novarion): the swapped form unless its timestamp rules it out. */
function swappingVendorChoice(redfish: string, swapped: string, now: Date): UuidDecision {
  return isImplausibleV1Timestamp(swapped, now) && !isImplausibleV1Timestamp(redfish, now) ? GUID_RFC4122(redfish) : MIXED_ENDIAN(swapped);
}

/**
 * go-hal reports this vendor's Redfish UUID unchanged, and metal-api knows the machine by it: the
 * swapped form only where the fields positively say it is the right one, Redfish where they say
 * that is, and Redfish, named as a guess, where they say neither.
 */
function keepingVendorChoice(redfish: string, swapped: string, now: Date): UuidDecision {
  const forRedfish = formEvidence(redfish, now);
  const forSwapped = formEvidence(swapped, now);
  if (forSwapped > forRedfish) return MIXED_ENDIAN(swapped);
  if (forRedfish > forSwapped) return GUID_RFC4122(redfish);
  return {
    uuid: redfish,
    kind: 'redfish-ambiguous',
    basis: `Redfish UUID as it is: the IPMI GUID matches its byte-swapped form ${swapped}, and neither form's version or timestamp tells which is right (a BMC sending its GUID in RFC 4122 order, or a mixed-endian Redfish); kept as the Go daemon reports it (should the machine's dmidecode say ${swapped}, this BMC's Redfish is mixed-endian)`,
  };
}
