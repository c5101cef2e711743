/**
 * IPMI FRU inventory images (Platform Management FRU Information Storage Definition v1.0):
 * decoding the chassis, board and product info areas and encoding them for the simulator. Pure:
 * bytes in, values out (metal-api's names for them are in src/outband/ipmi-report.ts).
 *
 * Image layout: an 8-byte common header holds the offset (in 8-byte blocks, 0 = absent) of
 * each area. Every info area starts with its format version and length (in 8-byte blocks),
 * has a few fixed bytes, then a list of type/length-prefixed text fields ended by 0xC1,
 * zero padding, and a checksum byte that makes the sum of the whole area 0 (mod 256).
 */
import { BmcError, DecodeError } from '../errors.js';

export interface FruChassis {
  /** SMBIOS chassis type, e.g. 0x17 = rack mount chassis */
  type: number;
  partNumber: string;
  serial: string;
  /** custom fields after the defined ones */
  extra: string[];
}

export interface FruBoard {
  /** absent when the image says "unspecified" (0) */
  mfgDate?: Date;
  manufacturer: string;
  product: string;
  serial: string;
  partNumber: string;
  fruFileId: string;
  extra: string[];
}

export interface FruProduct {
  manufacturer: string;
  name: string;
  partNumber: string;
  version: string;
  serial: string;
  assetTag: string;
  fruFileId: string;
  extra: string[];
}

export interface FruInfo {
  chassis?: FruChassis;
  board?: FruBoard;
  product?: FruProduct;
  /** why an area was left out or cut short; empty for a clean image */
  problems: string[];
  /**
   * defects decoded past, as ipmitool does (it prints the fields and marks the checksum INVALID):
   * a bad checksum of the header or an area (shipped by Dell R610/R710, Inventec and ASRock Rack
   * firmware, per FreeIPMI's skipchecks and kontron/python-ipmi#186). Absent when there are none.
   */
  tolerated?: string[];
}

const BLOCK_SIZE = 8; // offsets and area lengths count 8-byte blocks
const HEADER_SIZE = 8;
const FORMAT_VERSION = 0x01;
const END_OF_FIELDS = 0xc1;
const MAX_FIELD_LENGTH = 0x3f; // 6-bit length in the type/length byte
const LANGUAGE_ENGLISH = 0x00;
const FRU_EPOCH_MS = Date.UTC(1996, 0, 1); // board manufacturing date counts minutes from here
const MINUTE_MS = 60_000;

type AreaName = 'chassis' | 'board' | 'product';

/** Where each info area's offset sits in the common header, and how many bytes precede its fields. */
const AREA_LAYOUT: Record<AreaName, { headerIndex: number; fixedBytes: number }> = {
  chassis: { headerIndex: 2, fixedBytes: 3 }, // version, length, chassis type
  board: { headerIndex: 3, fixedBytes: 6 }, // version, length, language, 3-byte mfg date
  product: { headerIndex: 4, fixedBytes: 3 }, // version, length, language
};

/** Characters of the BCD plus encoding, indexed by nibble (0xD-0xF are reserved). */
const BCD_PLUS_CHARS = '0123456789 -.???';

/** Field decoders indexed by the type code in bits 7:6 of the type/length byte. */
const FIELD_DECODERS: readonly [(b: Buffer) => string, (b: Buffer) => string, (b: Buffer) => string, (b: Buffer) => string] = [
  (bytes) => bytes.toString('hex'), // 00: binary or unspecified
  decodeBcdPlus, // 01
  decodeSixBitAscii, // 10
  (bytes) => bytes.toString('latin1'), // 11: 8-bit ASCII + Latin-1 (English language code)
];

function sum(bytes: Buffer): number {
  let total = 0;
  for (const byte of bytes) total = (total + byte) & 0xff;
  return total;
}

function hexByte(value: number): string {
  return `0x${value.toString(16).padStart(2, '0')}`;
}

function decodeBcdPlus(bytes: Buffer): string {
  let text = '';
  for (const byte of bytes) text += BCD_PLUS_CHARS.charAt(byte >> 4) + BCD_PLUS_CHARS.charAt(byte & 0x0f);
  return text;
}

/** 6-bit packed ASCII: a little-endian bit stream of 6-bit values, character = value + 0x20. */
export function decodeSixBitAscii(bytes: Buffer): string {
  let text = '';
  let bits = 0;
  let bitCount = 0;
  for (const byte of bytes) {
    bits |= byte << bitCount;
    bitCount += 8;
    while (bitCount >= 6) {
      text += String.fromCharCode((bits & 0x3f) + 0x20);
      bits >>= 6;
      bitCount -= 6;
    }
  }
  return text;
}

/** Trailing spaces, NULs and 0xFF padding (erased EEPROM bytes some BMCs leave in a field, contrary to the spec; pyghmi strips them too). */
function trimTrailing(text: string): string {
  return text.replace(/[ \0\xff]+$/, '');
}

/** The format version of the header and the areas: the low nibble (the high one is reserved; pyghmi masks it too). */
const formatVersion = (byte: number | undefined): number => (byte ?? 0) & 0x0f;

/** Decodes the field list of one area; stops at 0xC1, or at the area's end with a problem. */
function readFields(area: Buffer, start: number, name: AreaName, problems: string[], whole = true): string[] {
  const fields: string[] = [];
  const end = whole ? area.length - 1 : area.length; // the last byte of a whole area is its checksum
  let pos = start;
  for (;;) {
    const typeLength = area[pos];
    if (pos >= end || typeLength === undefined) {
      problems.push(`${name} area: field list has no end marker (0xC1) before the checksum byte`);
      return fields;
    }
    if (typeLength === END_OF_FIELDS) return fields;
    const length = typeLength & MAX_FIELD_LENGTH;
    if (pos + 1 + length > end) {
      problems.push(`${name} area: field ${fields.length + 1} (${length} bytes at area offset ${pos}) runs past the end of the area`);
      return fields;
    }
    const decode = FIELD_DECODERS[(typeLength >> 6) as 0 | 1 | 2 | 3];
    fields.push(trimTrailing(decode(area.subarray(pos + 1, pos + 1 + length))));
    pos += 1 + length;
  }
}

/**
 * The bytes of one info area, or undefined (with a problem) when absent or unusable. An area that
 * runs past the data (a device size reported too small, a read cut short) comes back as far as it
 * goes, with a problem (`whole` false); a bad checksum is tolerated (`tolerated`).
 */
function locateArea(data: Buffer, name: AreaName, problems: string[], tolerated: string[]): { area: Buffer; whole: boolean } | undefined {
  const offset = (data[AREA_LAYOUT[name].headerIndex] ?? 0) * BLOCK_SIZE;
  if (offset === 0) return undefined;
  const lengthByte = data[offset + 1];
  if (lengthByte === undefined) {
    problems.push(`${name} area at offset ${offset} starts past the end of the data (${data.length} bytes)`);
    return undefined;
  }
  const length = lengthByte * BLOCK_SIZE;
  if (length === 0) {
    problems.push(`${name} area at offset ${offset} declares length 0`);
    return undefined;
  }
  if (formatVersion(data[offset]) !== FORMAT_VERSION) {
    problems.push(`${name} area at offset ${offset}: unsupported format version ${hexByte(data[offset] ?? 0)}`);
    return undefined;
  }
  if (length < AREA_LAYOUT[name].fixedBytes + 1) {
    problems.push(`${name} area at offset ${offset}: length ${length} is too short for its fixed fields`);
    return undefined;
  }
  if (offset + length > data.length) {
    problems.push(`${name} area at offset ${offset} with length ${length} runs past the end of the data (${data.length} bytes); its fields are read as far as the data goes`);
    const part = data.subarray(offset);
    return part.length > AREA_LAYOUT[name].fixedBytes ? { area: part, whole: false } : undefined;
  }
  const area = data.subarray(offset, offset + length);
  const checksum = sum(area);
  if (checksum !== 0) tolerated.push(`${name} area at offset ${offset}: bad checksum (bytes sum to ${hexByte(checksum)}, expected 0x00); its fields are used`);
  return { area, whole: true };
}

function decodeMfgDate(area: Buffer): Date | undefined {
  const minutes = area.readUIntLE(3, 3);
  return minutes === 0 ? undefined : new Date(FRU_EPOCH_MS + minutes * MINUTE_MS);
}

/** How much of a FRU device `fruBytesNeeded` asks for: at least `bytes`; exactly that when `known`. */
export interface FruBytesNeeded {
  bytes: number;
  known: boolean;
}

/**
 * How many bytes from the start of a FRU device of `size` bytes `parseFru` needs, judged from the
 * `prefix` read so far: the common header, then each info area to its end (an area's second byte
 * is its length). Get FRU Inventory Area Info reports the EEPROM's size (4,096 bytes is common)
 * while the areas fill a few hundred, so reading all of it costs a Read FRU Data round trip per
 * 32 unused bytes; ipmitool and FreeIPMI read area by area for that reason. `known` is false while
 * an area's length byte is still beyond `prefix`. A header `parseFru` refuses needs nothing more
 * (it is refused on its own); an area that runs past `size` needs the whole device.
 * `parseFru(device.subarray(0, n))` for any n from `bytes` to `size` equals `parseFru(device)`.
 */
export function fruBytesNeeded(prefix: Buffer, size: number): FruBytesNeeded {
  if (size <= HEADER_SIZE) return { bytes: size, known: true };
  if (prefix.length < HEADER_SIZE) return { bytes: HEADER_SIZE, known: false };
  const header = prefix.subarray(0, HEADER_SIZE);
  if (formatVersion(header[0]) !== FORMAT_VERSION) return { bytes: HEADER_SIZE, known: true };
  let bytes = HEADER_SIZE;
  let known = true;
  for (const { headerIndex } of Object.values(AREA_LAYOUT)) {
    const offset = header[headerIndex]! * BLOCK_SIZE;
    if (offset === 0) continue;
    const lengthByte = prefix[offset + 1];
    if (lengthByte === undefined) known = false;
    // an area of length 0 is refused by its first two bytes alone
    bytes = Math.max(bytes, offset + Math.max(2, (lengthByte ?? 0) * BLOCK_SIZE));
  }
  return bytes >= size ? { bytes: size, known: true } : { bytes, known };
}

/** Decodes a FRU image. Throws DecodeError only for an unusable common header. */
export function parseFru(data: Buffer): FruInfo {
  if (data.length < HEADER_SIZE) throw new DecodeError(`FRU data too short: ${data.length} bytes, the common header needs ${HEADER_SIZE}`);
  const header = data.subarray(0, HEADER_SIZE);
  if (formatVersion(header[0]) !== FORMAT_VERSION) throw new DecodeError(`FRU common header: unsupported format version ${hexByte(header[0] ?? 0)}`);
  const tolerated: string[] = [];
  const headerSum = sum(header);
  // ipmitool prints a FRU whose header has version 1 whatever its checksum; so do we
  if (headerSum !== 0) tolerated.push(`FRU common header: bad checksum (bytes sum to ${hexByte(headerSum)}, expected 0x00); its offsets are used`);

  const info: FruInfo = { problems: [] };
  const { problems } = info;

  const chassis = locateArea(data, 'chassis', problems, tolerated);
  if (chassis) {
    const [partNumber = '', serial = '', ...extra] = readFields(chassis.area, AREA_LAYOUT.chassis.fixedBytes, 'chassis', problems, chassis.whole);
    info.chassis = { type: chassis.area[2] ?? 0, partNumber, serial, extra };
  }

  const board = locateArea(data, 'board', problems, tolerated);
  if (board) {
    const [manufacturer = '', product = '', serial = '', partNumber = '', fruFileId = '', ...extra] = readFields(board.area, AREA_LAYOUT.board.fixedBytes, 'board', problems, board.whole);
    const mfgDate = decodeMfgDate(board.area);
    info.board = { ...(mfgDate ? { mfgDate } : {}), manufacturer, product, serial, partNumber, fruFileId, extra };
  }

  const product = locateArea(data, 'product', problems, tolerated);
  if (product) {
    const fields = readFields(product.area, AREA_LAYOUT.product.fixedBytes, 'product', problems, product.whole);
    const [manufacturer = '', name = '', partNumber = '', version = '', serial = '', assetTag = '', fruFileId = '', ...extra] = fields;
    info.product = { manufacturer, name, partNumber, version, serial, assetTag, fruFileId, extra };
  }
  if (tolerated.length > 0) info.tolerated = tolerated;
  return info;
}

function invalid(message: string): BmcError {
  return new BmcError('INVALID_ARGUMENT', `encodeFru: ${message}`);
}

/** One 8-bit ASCII/Latin-1 field. A 1-byte value gets a trailing space: 0xC1 would read as the end marker. */
function encodeField(text: string): Buffer {
  if (Buffer.from(text, 'latin1').toString('latin1') !== text) throw invalid(`field ${JSON.stringify(text)} has characters outside Latin-1`);
  const bytes = Buffer.from(text.length === 1 ? `${text} ` : text, 'latin1');
  if (bytes.length > MAX_FIELD_LENGTH) throw invalid(`field ${JSON.stringify(text)} is longer than ${MAX_FIELD_LENGTH} bytes`);
  return Buffer.concat([Buffer.from([0xc0 | bytes.length]), bytes]);
}

function encodeMfgDate(date: Date | undefined): Buffer {
  const bytes = Buffer.alloc(3);
  if (date === undefined) return bytes;
  const minutes = Math.floor((date.getTime() - FRU_EPOCH_MS) / MINUTE_MS);
  if (!(minutes >= 1 && minutes <= 0xffffff)) throw invalid(`board mfgDate ${String(date)} is outside the 24-bit minute range (1996-01-01 00:01 UTC to late 2027)`);
  bytes.writeUIntLE(minutes, 0, 3);
  return bytes;
}

/** Version, length, fixed bytes, fields, end marker, zero padding and checksum: one complete area. */
function encodeArea(fixed: number[] | Buffer, fields: string[]): Buffer {
  const body = Buffer.concat([Buffer.from([FORMAT_VERSION, 0]), Buffer.from(fixed), ...fields.map(encodeField), Buffer.from([END_OF_FIELDS])]);
  const blocks = Math.ceil((body.length + 1) / BLOCK_SIZE);
  if (blocks > 0xff) throw invalid(`an area of ${body.length} bytes does not fit the 1-byte length`);
  const area = Buffer.alloc(blocks * BLOCK_SIZE);
  body.copy(area);
  area[1] = blocks;
  area[area.length - 1] = (0x100 - sum(area)) & 0xff;
  return area;
}

function boardFields(board: FruBoard): string[] {
  return [board.manufacturer, board.product, board.serial, board.partNumber, board.fruFileId, ...board.extra];
}

function productFields(product: FruProduct): string[] {
  const { manufacturer, name, partNumber, version, serial, assetTag, fruFileId, extra } = product;
  return [manufacturer, name, partNumber, version, serial, assetTag, fruFileId, ...extra];
}

/** Writes a valid FRU image with 8-bit ASCII fields; throws BmcError INVALID_ARGUMENT for unencodable input. */
export function encodeFru(info: Omit<FruInfo, 'problems' | 'tolerated'>): Buffer {
  const { chassis, board, product } = info;
  if (chassis && !(Number.isInteger(chassis.type) && chassis.type >= 0 && chassis.type <= 0xff)) throw invalid(`chassis type ${chassis.type} is not a byte`);
  const areas: Record<AreaName, Buffer | undefined> = {
    chassis: chassis && encodeArea([chassis.type], [chassis.partNumber, chassis.serial, ...chassis.extra]),
    board: board && encodeArea(Buffer.concat([Buffer.from([LANGUAGE_ENGLISH]), encodeMfgDate(board.mfgDate)]), boardFields(board)),
    product: product && encodeArea([LANGUAGE_ENGLISH], productFields(product)),
  };

  const header = Buffer.alloc(HEADER_SIZE);
  header[0] = FORMAT_VERSION;
  const parts: Buffer[] = [header];
  let nextBlock = 1;
  for (const name of ['chassis', 'board', 'product'] as const) {
    const area = areas[name];
    if (!area) continue;
    if (nextBlock > 0xff) throw invalid(`the ${name} area starts beyond the 1-byte offset range`);
    header[AREA_LAYOUT[name].headerIndex] = nextBlock;
    parts.push(area);
    nextBlock += area.length / BLOCK_SIZE;
  }
  header[HEADER_SIZE - 1] = (0x100 - sum(header)) & 0xff;
  return Buffer.concat(parts);
}
