import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BmcError, DecodeError } from '../../src/errors.js';
import { decodeSixBitAscii, encodeFru, fruBytesNeeded, parseFru, type FruInfo } from '../../src/ipmi/fru.js';
import { fruToMetalApi } from '../../src/outband/ipmi-report.js';

const FRU_EPOCH_MS = Date.UTC(1996, 0, 1);

// A hand-built image: header, internal use area (skipped), chassis, board and product areas.
// Offsets: internal use 8, chassis 16 (16 bytes), board 32 (40 bytes), product 72 (40 bytes).
const HEADER = [0x01, 0x01, 0x02, 0x04, 0x09, 0x00, 0x00, 0xef];
const INTERNAL_USE = [0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
const CHASSIS = [
  0x01, 0x02, 0x17, // version, 2 blocks, type 0x17 rack mount
  0x43, 0x12, 0xb3, 0x45, // BCD plus, 3 bytes: "12-345"
  0x83, 0x29, 0xdc, 0xa6, // 6-bit ASCII, 3 bytes: "IPMI" (the spec's example)
  0xc1, 0x00, 0x00, 0x00, 0xaa, // end, padding, checksum
];
const BOARD = [
  0x01, 0x05, 0x00, // version, 5 blocks, language English
  0x38, 0xbd, 0xe0, // 0xe0bd38 = 14728504 minutes after 1996-01-01 = 2024-01-02 03:04 UTC
  0xc4, 0x41, 0x43, 0x4d, 0x45, // "ACME"
  0xc5, 0x42, 0x6f, 0x61, 0x72, 0x64, // "Board"
  0x86, 0xb3, 0xdb, 0x50, 0x57, 0x14, 0x01, // 6-bit ASCII, 6 bytes: "SN-4711 " (trailing space trimmed)
  0xc5, 0x50, 0x2d, 0x31, 0x20, 0x00, // "P-1 \0" (trailing space and NUL trimmed)
  0xc0, // empty FRU file id
  0x02, 0xde, 0xad, // custom binary field, shown as hex
  0xc1, 0x00, 0x00, 0x00, 0x00, 0x2d, // end, padding, checksum
];
const PRODUCT = [
  0x01, 0x05, 0x00, // version, 5 blocks, language English
  0xc4, 0x41, 0x43, 0x4d, 0x45, // "ACME"
  0xcc, 0x4d, 0x65, 0x74, 0x61, 0x6c, 0x20, 0x53, 0x65, 0x72, 0x76, 0x65, 0x72, // "Metal Server"
  0xc4, 0x4d, 0x53, 0x2d, 0x31, // "MS-1"
  0xc3, 0x31, 0x2e, 0x30, // "1.0"
  0x43, 0x1c, 0x2b, 0x34, // BCD plus: "1.2-34"
  0xc0, 0xc0, // empty asset tag and FRU file id
  0xc1, 0x00, 0x00, 0xb7, // end, padding, checksum
];
const CHASSIS_AT = 16;
const BOARD_AT = 32;
const PRODUCT_AT = 72;

function handImage(): Buffer {
  return Buffer.from([...HEADER, ...INTERNAL_USE, ...CHASSIS, ...BOARD, ...PRODUCT]);
}

const HAND_IMAGE_INFO: FruInfo = {
  chassis: { type: 0x17, partNumber: '12-345', serial: 'IPMI', extra: [] },
  board: {
    mfgDate: new Date('2024-01-02T03:04:00Z'),
    manufacturer: 'ACME',
    product: 'Board',
    serial: 'SN-4711',
    partNumber: 'P-1',
    fruFileId: '',
    extra: ['dead'],
  },
  product: { manufacturer: 'ACME', name: 'Metal Server', partNumber: 'MS-1', version: '1.0', serial: '1.2-34', assetTag: '', fruFileId: '', extra: [] },
  problems: [],
};

/** Rewrites the checksum byte of the area at `start` after a test changed it. */
function fixChecksum(image: Buffer, start: number): void {
  const end = start + (image[start + 1] ?? 0) * 8 - 1;
  let total = 0;
  for (let i = start; i < end; i++) total += image[i] ?? 0;
  image[end] = (0x100 - (total & 0xff)) & 0xff;
}

/** parseFru, asserting that the only exception it may raise is a DecodeError. */
function parseOrDecodeError(data: Buffer): FruInfo | undefined {
  try {
    return parseFru(data);
  } catch (error) {
    expect(error).toBeInstanceOf(DecodeError);
    return undefined;
  }
}

function expectThrowsCode(fn: () => unknown, code: string, message: RegExp): void {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(BmcError);
    expect((error as BmcError).code).toBe(code);
    expect((error as BmcError).message).toMatch(message);
    return;
  }
  expect.fail('expected an exception');
}

describe('decodeSixBitAscii', () => {
  it('unpacks the spec example and partial groups', () => {
    expect(decodeSixBitAscii(Buffer.from([0x29, 0xdc, 0xa6]))).toBe('IPMI');
    expect(decodeSixBitAscii(Buffer.from([0x29]))).toBe('I'); // 8 bits: one character
    expect(decodeSixBitAscii(Buffer.from([0x29, 0xdc]))).toBe('IP'); // 16 bits: two characters
    expect(decodeSixBitAscii(Buffer.from([0x00, 0x00, 0x00]))).toBe('    ');
  });
});

describe('parseFru', () => {
  it('decodes a hand-built image field by field', () => {
    expect(parseFru(handImage())).toEqual(HAND_IMAGE_INFO);
  });

  it('omits an unspecified (zero) manufacturing date', () => {
    const image = handImage();
    image.fill(0, BOARD_AT + 3, BOARD_AT + 6);
    fixChecksum(image, BOARD_AT);
    const info = parseFru(image);
    expect(info.problems).toEqual([]);
    expect(info.board).toBeDefined();
    expect(info.board && 'mfgDate' in info.board).toBe(false);
  });

  it('uses an area with a bad checksum, as ipmitool does, and names the defect apart from the problems', () => {
    const image = handImage();
    image[BOARD_AT + 7] = 0x61; // "ACME" -> "aCME" without fixing the checksum
    const info = parseFru(image);
    expect(info.board).toEqual({ ...HAND_IMAGE_INFO.board, manufacturer: 'aCME' });
    expect(info.chassis).toEqual(HAND_IMAGE_INFO.chassis);
    expect(info.product).toEqual(HAND_IMAGE_INFO.product);
    expect(info.problems).toEqual([]);
    expect(info.tolerated).toEqual(['board area at offset 32: bad checksum (bytes sum to 0x20, expected 0x00); its fields are used']);
  });

  it("ASRock Rack's board area with a wrong checksum (kontron/python-ipmi#186): its fields are used", () => {
    // the board area as that issue shows it: version 1, 3 blocks, English, a date, "ASRockRack", four empty fields, end marker, pad, wrong checksum
    const board = Buffer.from([0x01, 0x03, 0x00, 0x76, 0x71, 0xb4, 0xca, ...Buffer.from('ASRockRack'), 0xc0, 0xc0, 0xc0, 0xc0, 0xc1, 0x00, 0x1b]);
    const header = Buffer.from([0x01, 0, 0, 1, 0, 0, 0, 0]);
    header[7] = (0x100 - header.reduce((a, b) => a + b, 0)) & 0xff;
    const info = parseFru(Buffer.concat([header, board]));
    expect(info.board).toMatchObject({ manufacturer: 'ASRockRack', product: '', serial: '', partNumber: '' });
    expect(info.problems).toEqual([]);
    expect(info.tolerated).toEqual([expect.stringMatching(/^board area at offset 8: bad checksum/)]);
  });

  it('reads an area that runs past the data as far as it goes, with a problem', () => {
    const info = parseFru(handImage().subarray(0, 100));
    expect(info.board).toEqual(HAND_IMAGE_INFO.board);
    expect(info.product?.manufacturer).toBe(HAND_IMAGE_INFO.product!.manufacturer);
    expect(info.problems[0]).toBe('product area at offset 72 with length 40 runs past the end of the data (100 bytes); its fields are read as far as the data goes');
  });

  it('strips 0xFF padding at the end of a field (erased EEPROM bytes; pyghmi strips them too)', () => {
    const image = handImage();
    const at = BOARD_AT + 7; // "ACME"
    image[at + 2] = 0xff;
    image[at + 3] = 0xff;
    fixChecksum(image, BOARD_AT);
    expect(parseFru(image).board?.manufacturer).toBe('AC');
  });

  it('reads the format version from the low nibble (the high one is reserved)', () => {
    const image = handImage();
    image[CHASSIS_AT] = 0x11;
    fixChecksum(image, CHASSIS_AT);
    expect(parseFru(image).chassis).toEqual(HAND_IMAGE_INFO.chassis);
  });

  it('leaves out an area that starts past the data', () => {
    const info = parseFru(handImage().subarray(0, PRODUCT_AT));
    expect(info.product).toBeUndefined();
    expect(info.problems).toEqual(['product area at offset 72 starts past the end of the data (72 bytes)']);
  });

  it('leaves out an area with an unknown format version', () => {
    const image = handImage();
    image[CHASSIS_AT] = 0x02;
    fixChecksum(image, CHASSIS_AT);
    const info = parseFru(image);
    expect(info.chassis).toBeUndefined();
    expect(info.board).toEqual(HAND_IMAGE_INFO.board);
    expect(info.problems).toEqual(['chassis area at offset 16: unsupported format version 0x02']);
  });

  it('keeps the fields before a field that runs past its area', () => {
    const image = handImage();
    image[CHASSIS_AT + 7] = 0x8f; // serial claims 15 bytes in a 16-byte area
    fixChecksum(image, CHASSIS_AT);
    const info = parseFru(image);
    expect(info.chassis).toEqual({ type: 0x17, partNumber: '12-345', serial: '', extra: [] });
    expect(info.problems).toEqual(['chassis area: field 2 (15 bytes at area offset 7) runs past the end of the area']);
  });

  it('reports a field list without end marker', () => {
    const image = handImage();
    image[CHASSIS_AT + 11] = 0xc3; // the end marker becomes a 3-byte field ending at the checksum byte
    fixChecksum(image, CHASSIS_AT);
    const info = parseFru(image);
    expect(info.chassis).toEqual({ type: 0x17, partNumber: '12-345', serial: 'IPMI', extra: [''] });
    expect(info.problems).toEqual(['chassis area: field list has no end marker (0xC1) before the checksum byte']);
  });

  it('skips areas whose header offset is zero', () => {
    const image = handImage();
    image[2] = 0; // no chassis area
    image[7] = (image[7]! + 0x02) & 0xff;
    const info = parseFru(image);
    expect(info.chassis).toBeUndefined();
    expect(info.board).toEqual(HAND_IMAGE_INFO.board);
    expect(info.problems).toEqual([]);
  });

  it('rejects a short or broken common header with DecodeError', () => {
    expect(() => parseFru(Buffer.from(HEADER.slice(0, 7)))).toThrow(DecodeError);
    expect(() => parseFru(Buffer.from(HEADER.slice(0, 7)))).toThrow(/too short: 7 bytes/);
    const wrongVersion = handImage();
    wrongVersion[0] = 0x02;
    wrongVersion[7] = (wrongVersion[7]! - 1) & 0xff;
    expect(() => parseFru(wrongVersion)).toThrow(DecodeError);
    expect(() => parseFru(wrongVersion)).toThrow(/unsupported format version 0x02/);
    expect(() => parseFru(Buffer.alloc(64, 0xff))).toThrow(DecodeError); // erased EEPROM
  });

  it('uses a version-1 common header with a bad checksum, as ipmitool does, and names the defect', () => {
    const badChecksum = handImage();
    badChecksum[7] = (badChecksum[7]! + 1) & 0xff;
    const info = parseFru(badChecksum);
    expect({ ...info, tolerated: undefined }).toEqual({ ...HAND_IMAGE_INFO, tolerated: undefined });
    expect(info.tolerated).toEqual([expect.stringMatching(/^FRU common header: bad checksum/)]);
  });

  it('never throws anything but DecodeError for random bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        parseOrDecodeError(Buffer.from(bytes));
      }),
      { numRuns: 2000 },
    );
  });

  it('never throws for random bytes behind a valid header', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 8, maxLength: 300 }), (bytes) => {
        const data = Buffer.from(bytes);
        data[0] = 0x01;
        data[7] = 0;
        let total = 0;
        for (let i = 0; i < 7; i++) total += data[i]!;
        data[7] = (0x100 - (total & 0xff)) & 0xff;
        const info = parseFru(data);
        expect(Array.isArray(info.problems)).toBe(true);
      }),
      { numRuns: 2000 },
    );
  });

  it('parses every truncation of a valid image, reporting each lost area', () => {
    const image = handImage();
    fc.assert(
      fc.property(fc.integer({ min: 0, max: image.length }), (length) => {
        const info = parseOrDecodeError(image.subarray(0, length));
        if (length < 8) {
          expect(info).toBeUndefined();
          return;
        }
        expect(info).toBeDefined();
        // every area is there, whole or as far as the data goes, or named in a problem
        for (const name of ['chassis', 'board', 'product'] as const) {
          if (info?.[name] === undefined || info.problems.some((p) => p.startsWith(`${name} area`))) expect(info?.problems.some((p) => p.startsWith(`${name} area`))).toBe(true);
        }
        if (length >= image.length) expect(info).toEqual(HAND_IMAGE_INFO);
      }),
    );
  });

  it('never throws anything but DecodeError for corrupted images', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.nat(handImage().length - 1), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 8 }), (edits) => {
        const image = handImage();
        for (const [index, value] of edits) image[index] = value;
        parseOrDecodeError(image);
      }),
      { numRuns: 2000 },
    );
  });
});

describe('encodeFru', () => {
  it('writes header, fields, padding and checksums byte by byte', () => {
    const image = encodeFru({ chassis: { type: 0x17, partNumber: 'A', serial: '', extra: [] } });
    expect([...image]).toEqual([
      0x01, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0xfe, // header: chassis at block 1
      0x01, 0x02, 0x17, // chassis: version, 2 blocks, type
      0xc2, 0x41, 0x20, // "A" padded to 2 bytes: 0xC1 would be the end marker
      0xc0, 0xc1, // empty serial, end
      0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x42, // padding, checksum
    ]);
  });

  it('round-trips the hand-built image', () => {
    const { problems: _problems, ...fields } = HAND_IMAGE_INFO;
    const encoded = encodeFru(fields);
    expect(encoded.length % 8).toBe(0);
    expect(parseFru(encoded)).toEqual(HAND_IMAGE_INFO);
  });

  it('encodes an empty FRU as a bare header', () => {
    expect([...encodeFru({})]).toEqual([0x01, 0, 0, 0, 0, 0, 0, 0xff]);
    expect(parseFru(encodeFru({}))).toEqual({ problems: [] });
  });

  it('rejects what the format cannot hold', () => {
    const chassis = { type: 1, partNumber: '', serial: '', extra: [] };
    expectThrowsCode(() => encodeFru({ chassis: { ...chassis, serial: 'x'.repeat(64) } }), 'INVALID_ARGUMENT', /longer than 63 bytes/);
    expectThrowsCode(() => encodeFru({ chassis: { ...chassis, serial: 'Zoë ☃' } }), 'INVALID_ARGUMENT', /outside Latin-1/);
    expectThrowsCode(() => encodeFru({ chassis: { ...chassis, type: 256 } }), 'INVALID_ARGUMENT', /not a byte/);
    const board = { manufacturer: '', product: '', serial: '', partNumber: '', fruFileId: '', extra: [] };
    expectThrowsCode(() => encodeFru({ board: { ...board, mfgDate: new Date(FRU_EPOCH_MS) } }), 'INVALID_ARGUMENT', /24-bit minute range/);
    expectThrowsCode(() => encodeFru({ board: { ...board, mfgDate: new Date('2030-01-01T00:00:00Z') } }), 'INVALID_ARGUMENT', /24-bit minute range/);
    expectThrowsCode(() => encodeFru({ board: { ...board, extra: Array.from({ length: 40 }, () => 'x'.repeat(63)) } }), 'INVALID_ARGUMENT', /1-byte length/);
  });

  it('round-trips arbitrary printable ASCII fields', () => {
    const text = fc
      .string({ unit: fc.integer({ min: 0x20, max: 0x7e }).map((code) => String.fromCharCode(code)), maxLength: 63 })
      .map((value) => value.trimEnd()); // the parser trims trailing spaces
    const extra = fc.array(text, { maxLength: 3 });
    const mfgDate = fc.option(
      fc.integer({ min: 1, max: 0xffffff }).map((minutes) => new Date(FRU_EPOCH_MS + minutes * 60_000)),
      { nil: undefined },
    );
    const chassis = fc.record({ type: fc.integer({ min: 0, max: 255 }), partNumber: text, serial: text, extra });
    const board = fc
      .record({ mfgDate, manufacturer: text, product: text, serial: text, partNumber: text, fruFileId: text, extra })
      .map(({ mfgDate: date, ...rest }) => (date ? { mfgDate: date, ...rest } : rest));
    const product = fc.record({ manufacturer: text, name: text, partNumber: text, version: text, serial: text, assetTag: text, fruFileId: text, extra });
    fc.assert(
      fc.property(fc.record({ chassis, board, product }, { requiredKeys: [] }), (info) => {
        expect(parseFru(encodeFru(info))).toEqual({ ...info, problems: [] });
      }),
      { numRuns: 500 },
    );
  });
});

/**
 * Reads `device` as readFruData does (src/ipmi/commands.ts): `chunk` bytes at a time, exactly what
 * is left once `fruBytesNeeded` knows the end; returns what was read.
 */
function readLikeTheClient(device: Buffer, chunk: number): Buffer {
  let offset = 0;
  for (;;) {
    const need = fruBytesNeeded(device.subarray(0, offset), device.length);
    if (offset >= need.bytes) return device.subarray(0, offset);
    offset += Math.min(chunk, device.length - offset, need.known ? need.bytes - offset : chunk);
  }
}

/** What parseFru makes of `bytes`: its result, or the message it throws. */
function parsed(bytes: Buffer): FruInfo | string {
  try {
    return parseFru(bytes);
  } catch (err) {
    return (err as Error).message;
  }
}

describe('fruBytesNeeded', () => {
  it('stops a 2 KiB device at the end of its product area', () => {
    const device = Buffer.alloc(2048, 0xff);
    handImage().copy(device);
    const read = readLikeTheClient(device, 32);
    expect(read.length).toBe(PRODUCT_AT + PRODUCT.length);
    expect(parseFru(read)).toEqual(HAND_IMAGE_INFO);
  });

  it('needs the header first, then each area to its length byte', () => {
    const image = handImage();
    expect(fruBytesNeeded(Buffer.alloc(0), 2048)).toEqual({ bytes: 8, known: false });
    expect(fruBytesNeeded(image.subarray(0, 8), 2048)).toEqual({ bytes: PRODUCT_AT + 2, known: false });
    expect(fruBytesNeeded(image.subarray(0, PRODUCT_AT + 2), 2048)).toEqual({ bytes: PRODUCT_AT + PRODUCT.length, known: true });
    // a header parseFru refuses (it is refused on its own: nothing more), and a device of no more than a header: all of it
    expect(fruBytesNeeded(Buffer.from([0x02, 0, 0, 0, 0, 0, 0, 0xfe]), 2048)).toEqual({ bytes: 8, known: true });
    expect(fruBytesNeeded(Buffer.alloc(0), 6)).toEqual({ bytes: 6, known: true });
    // an area running past the device: all of it, so parseFru names the same length as before
    expect(fruBytesNeeded(image, 100)).toEqual({ bytes: 100, known: true });
  });

  it('reads what an encoded image holds and at most one chunk more, however large the device', () => {
    const text = fc.string({ unit: fc.integer({ min: 0x21, max: 0x7e }).map((c) => String.fromCharCode(c)), maxLength: 40 });
    const info = fc.record(
      {
        chassis: fc.record({ type: fc.integer({ min: 0, max: 255 }), partNumber: text, serial: text, extra: fc.constant<string[]>([]) }),
        board: fc.record({ manufacturer: text, product: text, serial: text, partNumber: text, fruFileId: text, extra: fc.constant<string[]>([]) }),
        product: fc.record({ manufacturer: text, name: text, partNumber: text, version: text, serial: text, assetTag: text, fruFileId: text, extra: fc.constant<string[]>([]) }),
      },
      { requiredKeys: [] },
    );
    fc.assert(
      fc.property(info, fc.integer({ min: 0, max: 4096 }), fc.integer({ min: 0, max: 255 }), fc.integer({ min: 8, max: 64 }), (i, spare, fill, chunk) => {
        const image = encodeFru(i);
        const device = Buffer.concat([image, Buffer.alloc(spare, fill)]);
        const read = readLikeTheClient(device, chunk);
        // what the areas hold, and at most the rest of a read that went out before an area's length was known
        expect(read.length).toBeGreaterThanOrEqual(Math.min(image.length, device.length));
        expect(read.length).toBeLessThan(Math.max(image.length, 8) + chunk);
        expect(parsed(read)).toEqual(parsed(device));
      }),
      { numRuns: 300 },
    );
  });

  it('never changes what parseFru makes of a device, whatever its bytes', () => {
    // a valid image with bytes changed (header offsets and area lengths among them), or any bytes
    const edited = fc
      .tuple(fc.array(fc.tuple(fc.nat(handImage().length - 1), fc.integer({ min: 0, max: 255 })), { maxLength: 6 }), fc.uint8Array({ maxLength: 600 }))
      .map(([edits, tail]) => {
        const bytes = Buffer.concat([handImage(), Buffer.from(tail)]);
        for (const [at, value] of edits) bytes[at] = value;
        return bytes;
      });
    const device = fc.oneof(edited, fc.uint8Array({ maxLength: 600 }).map((b) => Buffer.from(b)));
    fc.assert(
      fc.property(device, fc.integer({ min: 1, max: 64 }), (bytes, chunk) => {
        const read = readLikeTheClient(bytes, chunk);
        expect(read.length).toBeLessThanOrEqual(bytes.length);
        expect(parsed(read)).toEqual(parsed(bytes));
      }),
      { numRuns: 1000 },
    );
  });
});

describe('fruToMetalApi', () => {
  it("maps to metal-api's field names", () => {
    expect(fruToMetalApi(HAND_IMAGE_INFO)).toEqual({
      board_mfg: 'ACME',
      board_mfg_serial: 'SN-4711',
      board_part_number: 'P-1',
      chassis_part_number: '12-345',
      chassis_part_serial: 'IPMI',
      product_manufacturer: 'ACME',
      product_part_number: 'MS-1',
      product_serial: '1.2-34',
    });
  });

  it('omits empty and missing values', () => {
    const info: FruInfo = { ...HAND_IMAGE_INFO, chassis: undefined, product: { ...HAND_IMAGE_INFO.product!, serial: '', partNumber: '' } };
    expect(fruToMetalApi(info)).toStrictEqual({
      board_mfg: 'ACME',
      board_mfg_serial: 'SN-4711',
      board_part_number: 'P-1',
      product_manufacturer: 'ACME',
    });
    expect(Object.keys(fruToMetalApi({ problems: [] }))).toEqual([]);
  });
});
