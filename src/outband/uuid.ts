/**
 * Which UUID identifies the machine. metal-api's machine id is the SMBIOS UUID the machine
 * reports in-band. Redfish usually returns it in textual form, but some BMCs return the
 * mixed-endian form (first three fields byte-swapped). The rule, by evidence first:
 * 1. Redfish UUID and IPMI GUID both known: the IPMI GUID decoded in SMBIOS order is the SMBIOS
 *    UUID's bytes. If the Redfish UUID equals it, it stands; if its byte-swapped form equals it,
 *    Redfish is mixed-endian and the swapped form is used — unless the swapped form is an
 *    implausible version-1 UUID and the Redfish one is not, which means the IPMI GUID was sent in
 *    RFC 4122 order. If it equals the all-reversed decoding, Redfish stands.
 * 2. Redfish alone: a version-1 UUID whose timestamp is implausible (in the future or more than
 *    30 years from now) is taken as mixed-endian and swapped; for vendors whose profile says
 *    `swapRedfishUuidUnlessV1` (Supermicro, Novarion) every UUID but a plausible version-1 one is
 *    swapped, as go-hal's supermicro.UUID does (uuid-endianness Convert), so that a partition
 *    read without IPMI reports the UUIDs the Go daemon reported.
 * 3. IPMI alone: the GUID in the vendor's encoding (SMBIOS order unless the vendor table says otherwise).
 * A fixed rule can be configured per vendor or site instead of `auto`.
 */
import { guidToUuid, isImplausibleV1Timestamp, isPlausibleV1Uuid, swapMixedEndian, type GuidEncoding } from '../ipmi/guid.js';

export type UuidRule = 'auto' | 'redfish' | 'redfish-swapped' | 'ipmi';

export interface UuidEvidence {
  redfishUuid?: string;
  ipmiGuid?: Buffer;
  guidEncoding: GuidEncoding;
  rule: UuidRule;
  now: Date;
  /** without a confirming IPMI GUID, swap every Redfish UUID but a plausible version-1 one (go-hal's Supermicro rule) */
  swapRedfishUuidUnlessV1?: boolean;
}

/** What the decision rests on, as a value to compare; `basis` is the same in words, for logs. */
export type UuidBasisKind =
  | 'configured-redfish'
  | 'configured-redfish-swapped'
  | 'configured-ipmi'
  | 'redfish-confirmed'
  | 'ipmi-guid-rfc4122'
  | 'redfish-mixed-endian'
  | 'ipmi-guid-reversed'
  | 'redfish-swapped-heuristic'
  | 'redfish'
  | 'ipmi';

/** Decisions where the IPMI GUID matched the Redfish UUID in one of its byte orders: the GUID is evidence worth keeping (guid-memory.ts). */
export const GUID_CONFIRMED_BASES: ReadonlySet<UuidBasisKind> = new Set(['redfish-confirmed', 'redfish-mixed-endian', 'ipmi-guid-rfc4122', 'ipmi-guid-reversed']);

/** Decisions that are the normal case: nothing worth a log line. */
export const ROUTINE_UUID_BASES: ReadonlySet<UuidBasisKind> = new Set(['redfish-confirmed', 'redfish']);

export interface UuidDecision {
  uuid: string;
  kind: UuidBasisKind;
  basis: string;
}

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

function normalize(text: string | undefined): string | undefined {
  const t = text?.trim().toLowerCase();
  return t && UUID_RE.test(t) ? t : undefined;
}

export function decideUuid(e: UuidEvidence): UuidDecision | undefined {
  const redfish = normalize(e.redfishUuid);
  const fromIpmi = e.ipmiGuid && e.ipmiGuid.length === 16 ? guidToUuid(e.ipmiGuid, e.guidEncoding) : undefined;
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
  if (redfish && e.ipmiGuid && e.ipmiGuid.length === 16) {
    const smbios = guidToUuid(e.ipmiGuid, 'smbios');
    if (redfish === smbios) return { uuid: redfish, kind: 'redfish-confirmed', basis: 'Redfish UUID, confirmed by the IPMI GUID' };
    const swapped = swapMixedEndian(redfish);
    if (swapped === smbios) {
      // Either Redfish is mixed-endian, or the BMC sends its IPMI GUID in RFC 4122 order: the bytes
      // alone cannot tell. A version-1 timestamp that is implausible marks the wrong form.
      if (isImplausibleV1Timestamp(swapped, e.now) && !isImplausibleV1Timestamp(redfish, e.now)) {
        return { uuid: redfish, kind: 'ipmi-guid-rfc4122', basis: 'Redfish UUID; the IPMI GUID is in RFC 4122 byte order' };
      }
      return { uuid: swapped, kind: 'redfish-mixed-endian', basis: 'Redfish UUID is mixed-endian: swapped to match the IPMI GUID' };
    }
    if (redfish === guidToUuid(e.ipmiGuid, 'ipmi')) return { uuid: redfish, kind: 'ipmi-guid-reversed', basis: 'Redfish UUID; the IPMI GUID is in reversed byte order' };
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
