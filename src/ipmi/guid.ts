/**
 * The 16 bytes of IPMI "Get System GUID" and the textual SMBIOS system UUID (the machine id
 * in metal-api) — BMCs put the same bytes in different orders, so the decoding order is a
 * per-vendor choice:
 *
 *  - 'rfc4122': the bytes in textual order.
 *  - 'ipmi':    all 16 bytes reversed (what ipmitool 1.8.19 `mc guid ipmi` prints; by default it guesses the order from the version digit).
 *  - 'smbios':  SMBIOS table order: the first three fields (4, 2, 2 bytes) little-endian,
 *               the last 8 bytes in order (what `dmidecode -s system-uuid` prints for them).
 *
 * Measured vector: ipmi_sim sends a1 23 45 67 89 ab cd ef a1 23 45 67 89 ab cd ef and ipmitool
 * prints efcdab89-6745-23a1-efcd-ab89674523a1 ('ipmi').
 */
import { DecodeError } from '../errors.js';

export type GuidEncoding = 'smbios' | 'ipmi' | 'rfc4122';

const GUID_LENGTH = 16;

/** For each encoding: byte i of the textual UUID is byte TEXT_ORDER[i] of the GUID as sent. */
const TEXT_ORDER: Record<GuidEncoding, readonly number[]> = {
  rfc4122: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15],
  ipmi: [15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0],
  smbios: [3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15],
};

/** Byte order that reverses the first three fields: mixed-endian ↔ textual order. */
const MIXED_ENDIAN_ORDER = TEXT_ORDER.smbios;

const DASHED_UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const PLAIN_UUID = /^[0-9a-f]{32}$/i;

/**
 * System UUIDs that name no machine, as the 16 bytes: all 0x00, SMBIOS 7.2.1's "ID not present"
 * (boards after AC loss before the first POST, DMI never programmed), all 0xFF, its "not set",
 * and AMI's BIOS default, 00 02 00 03 … 00 09 (dmidecode prints 03000200-0400-0500-0006-000700080009),
 * which boards keep when their maker writes no UUID (oshi/oshi#2417, timmo001/system-bridge#3532:
 * several machines, one UUID). Whole values only: Supermicro's real UUIDs are ten zero bytes and a MAC.
 */
const PLACEHOLDER_BYTES: readonly Buffer[] = [Buffer.alloc(16, 0x00), Buffer.alloc(16, 0xff), Buffer.from('00020003000400050006000700080009', 'hex')];

/** Milliseconds between the UUID epoch (1582-10-15 00:00 UTC) and the Unix epoch. */
const UUID_EPOCH_OFFSET_MS = 12_219_292_800_000;
const PLAUSIBLE_PAST_YEARS = 30;

function checkLength(bytes: Buffer, what: string): void {
  if (bytes.length !== GUID_LENGTH) throw new DecodeError(`${what}: expected ${GUID_LENGTH} bytes, got ${bytes.length}`);
}

/** result[i] = source[order[i]] */
function gather(source: Buffer, order: readonly number[]): Buffer {
  return Buffer.from(order.map((from) => source[from] ?? 0));
}

/** result[order[i]] = source[i] (the inverse of gather) */
function scatter(source: Buffer, order: readonly number[]): Buffer {
  const result = Buffer.alloc(GUID_LENGTH);
  order.forEach((to, i) => {
    result[to] = source[i] ?? 0;
  });
  return result;
}

/** 16 bytes → lowercase 8-4-4-4-12 text, bytes in order. */
export function formatUuid(bytes: Buffer): string {
  checkLength(bytes, 'formatUuid');
  const hex = bytes.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** UUID text (either case, 8-4-4-4-12 or 32 plain hex digits) → its 16 bytes in textual order. */
export function parseUuid(text: string): Buffer {
  if (!DASHED_UUID.test(text) && !PLAIN_UUID.test(text)) throw new DecodeError(`not a UUID: ${JSON.stringify(text)}`);
  return Buffer.from(text.replaceAll('-', ''), 'hex');
}

/** The Get System GUID bytes as a UUID string, in the given encoding. */
export function guidToUuid(bytes: Buffer, encoding: GuidEncoding): string {
  checkLength(bytes, 'guidToUuid');
  return formatUuid(gather(bytes, TEXT_ORDER[encoding]));
}

/** The inverse of guidToUuid: the bytes a BMC using `encoding` sends for this UUID. */
export function uuidToGuid(uuid: string, encoding: GuidEncoding): Buffer {
  return scatter(parseUuid(uuid), TEXT_ORDER[encoding]);
}

/** Reverses the byte order of the first three fields (mixed-endian ↔ textual); applying it twice is a no-op. */
export function swapMixedEndian(uuid: string): string {
  return formatUuid(gather(parseUuid(uuid), MIXED_ENDIAN_ORDER));
}

/** The time a version-1 UUID claims to be made at, in ms since the Unix epoch; undefined for other versions. */
function v1TimestampMs(bytes: Buffer): number | undefined {
  const timeHiAndVersion = bytes.readUInt16BE(6);
  if (timeHiAndVersion >> 12 !== 1) return undefined;
  const intervals = (BigInt(timeHiAndVersion & 0x0fff) << 48n) | (BigInt(bytes.readUInt16BE(4)) << 32n) | BigInt(bytes.readUInt32BE(0));
  return Number(intervals / 10_000n) - UUID_EPOCH_OFFSET_MS;
}

/**
 * True for a version-1 UUID whose embedded timestamp lies after `now` or more than 30 years
 * before it — a sign that the UUID is really mixed-endian (go-hal swaps such Redfish UUIDs).
 * False for every other version. Throws DecodeError for text that is not a UUID.
 */
export function isImplausibleV1Timestamp(uuid: string, now: Date): boolean {
  const createdMs = v1TimestampMs(parseUuid(uuid));
  if (createdMs === undefined) return false;
  const earliest = new Date(now.getTime());
  earliest.setUTCFullYear(earliest.getUTCFullYear() - PLAUSIBLE_PAST_YEARS);
  return createdMs > now.getTime() || createdMs < earliest.getTime();
}

/** True for a version-4 (random) UUID of the RFC 4122 variant; throws DecodeError for text that is not a UUID. */
export function isV4Uuid(uuid: string): boolean {
  const bytes = parseUuid(uuid);
  return (bytes[6] ?? 0) >> 4 === 4 && ((bytes[8] ?? 0) & 0xc0) === 0x80;
}

/** True for a version-1 UUID whose timestamp is plausible (isImplausibleV1Timestamp false); false for other versions. */
export function isPlausibleV1Uuid(uuid: string, now: Date): boolean {
  return v1TimestampMs(parseUuid(uuid)) !== undefined && !isImplausibleV1Timestamp(uuid, now);
}

/** Every text `start` becomes by reversing its bytes and swapping its first three fields, in any sequence: each order a BMC may send it in, read in each encoding. */
function byteOrdersOf(start: string): string[] {
  const seen = new Set([start]);
  for (const text of seen) {
    for (const next of [swapMixedEndian(text), formatUuid(Buffer.from(parseUuid(text)).reverse())]) seen.add(next);
  }
  return [...seen];
}

/** The placeholders as text, in every byte order. */
const PLACEHOLDER_UUIDS: ReadonlySet<string> = new Set(PLACEHOLDER_BYTES.flatMap((bytes) => byteOrdersOf(formatUuid(bytes))));

/** True for a UUID that names no machine (all zero, all FF, AMI's default, in any byte order); throws DecodeError for text that is not a UUID. */
export function isPlaceholderUuid(uuid: string): boolean {
  return PLACEHOLDER_UUIDS.has(formatUuid(parseUuid(uuid)));
}
