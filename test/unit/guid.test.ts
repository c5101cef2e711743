import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DecodeError } from '../../src/errors.js';
import {
  formatUuid,
  guidToUuid,
  isImplausibleV1Timestamp,
  isPlaceholderUuid,
  isV4Uuid,
  parseUuid,
  swapMixedEndian,
  uuidToGuid,
  type GuidEncoding,
} from '../../src/ipmi/guid.js';

// Measured: ipmi_sim with `guid a123456789abcdefa123456789abcdef` sends these bytes,
// and ipmitool 1.8.19 `mc guid` printed efcdab89-6745-23a1-efcd-ab89674523a1.
const SIM_GUID = Buffer.from('a123456789abcdefa123456789abcdef', 'hex');
const SIM_VECTORS: Record<GuidEncoding, string> = {
  ipmi: 'efcdab89-6745-23a1-efcd-ab89674523a1',
  smbios: '674523a1-ab89-efcd-a123-456789abcdef',
  rfc4122: 'a1234567-89ab-cdef-a123-456789abcdef',
};
const ENCODINGS = Object.keys(SIM_VECTORS) as GuidEncoding[];

// A Dell-style SMBIOS UUID ("DELL" in ASCII, version nibble 3) and its mixed-endian form,
// whose version nibble happens to be 1 with a timestamp in the 17th century.
const DELL_UUID = '4c4c4544-0039-3510-8051-b4c04f4e4d32';
const DELL_MIXED = '44454c4c-3900-1035-8051-b4c04f4e4d32';

// RFC 9562 appendix A.1: a version-1 UUID made at 2022-02-22 19:22:22 UTC.
const RFC_V1 = 'c232ab00-9414-11ec-b3c8-9f6bdeced846';
const RFC_V1_TIME = Date.parse('2022-02-22T19:22:22Z');

const uuidText = fc.uint8Array({ minLength: 16, maxLength: 16 }).map((bytes) => formatUuid(Buffer.from(bytes)));

describe('guidToUuid', () => {
  it.each(ENCODINGS)('decodes the measured ipmi_sim GUID as %s', (encoding) => {
    expect(guidToUuid(SIM_GUID, encoding)).toBe(SIM_VECTORS[encoding]);
  });

  it('does not change its input', () => {
    const bytes = Buffer.from(SIM_GUID);
    guidToUuid(bytes, 'ipmi');
    expect(bytes).toEqual(SIM_GUID);
  });

  it('rejects anything but 16 bytes', () => {
    expect(() => guidToUuid(Buffer.alloc(15), 'smbios')).toThrow(DecodeError);
    expect(() => guidToUuid(Buffer.alloc(17), 'ipmi')).toThrow(/expected 16 bytes, got 17/);
  });
});

describe('uuidToGuid', () => {
  it.each(ENCODINGS)('encodes the measured %s vector back to the bytes ipmi_sim sends', (encoding) => {
    expect(uuidToGuid(SIM_VECTORS[encoding], encoding)).toEqual(SIM_GUID);
  });

  it('round-trips every encoding both ways', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 16, maxLength: 16 }), fc.constantFrom(...ENCODINGS), (raw, encoding) => {
        const bytes = Buffer.from(raw);
        expect(uuidToGuid(guidToUuid(bytes, encoding), encoding)).toEqual(bytes);
      }),
    );
    fc.assert(
      fc.property(uuidText, fc.constantFrom(...ENCODINGS), (uuid, encoding) => {
        expect(guidToUuid(uuidToGuid(uuid, encoding), encoding)).toBe(uuid);
      }),
    );
  });
});

describe('parseUuid and formatUuid', () => {
  it('accepts either case, with or without dashes', () => {
    const expected = Buffer.from('a123456789abcdefa123456789abcdef', 'hex');
    expect(parseUuid('a1234567-89ab-cdef-a123-456789abcdef')).toEqual(expected);
    expect(parseUuid('A1234567-89AB-CDEF-A123-456789ABCDEF')).toEqual(expected);
    expect(parseUuid('a123456789ABCDEFa123456789abcdef')).toEqual(expected);
  });

  it.each([
    '',
    'a1234567-89ab-cdef-a123-456789abcde', // one digit short
    'a1234567-89ab-cdef-a123-456789abcdef0',
    'a1234567-89ab-cdef-a123-456789abcdeg',
    'a123456789ab-cdef-a123-456789abcdef', // dash missing
    'a1234567-89abc-def-a123-456789abcdef', // dash misplaced
    '{a1234567-89ab-cdef-a123-456789abcdef}',
    ' a1234567-89ab-cdef-a123-456789abcdef',
  ])('rejects %j with DecodeError', (text) => {
    expect(() => parseUuid(text)).toThrow(DecodeError);
  });

  it('formats 16 bytes as lowercase 8-4-4-4-12 and rejects other lengths', () => {
    expect(formatUuid(Buffer.from('A123456789ABCDEFA123456789ABCDEF', 'hex'))).toBe('a1234567-89ab-cdef-a123-456789abcdef');
    expect(() => formatUuid(Buffer.alloc(8))).toThrow(DecodeError);
  });

  it('parse and format are inverse', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 16, maxLength: 16 }), (raw) => {
        const bytes = Buffer.from(raw);
        const text = formatUuid(bytes);
        expect(text).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
        expect(parseUuid(text)).toEqual(bytes);
        expect(parseUuid(text.toUpperCase().replaceAll('-', ''))).toEqual(bytes);
      }),
    );
  });
});

describe('swapMixedEndian', () => {
  it('reverses the first three fields only', () => {
    expect(swapMixedEndian(DELL_UUID)).toBe(DELL_MIXED);
    expect(swapMixedEndian('A1234567-89AB-CDEF-A123-456789ABCDEF')).toBe('674523a1-ab89-efcd-a123-456789abcdef');
  });

  it('relates the smbios and rfc4122 encodings', () => {
    expect(swapMixedEndian(guidToUuid(SIM_GUID, 'rfc4122'))).toBe(guidToUuid(SIM_GUID, 'smbios'));
  });

  it('is an involution', () => {
    fc.assert(
      fc.property(uuidText, (uuid) => {
        expect(swapMixedEndian(swapMixedEndian(uuid))).toBe(uuid);
      }),
    );
  });

  it('rejects text that is not a UUID', () => {
    expect(() => swapMixedEndian('not-a-uuid')).toThrow(DecodeError);
  });
});

describe('isPlaceholderUuid', () => {
  // SMBIOS 7.2.1: all zero "ID not present", all FF "not set"; AMI's BIOS default as dmidecode prints it
  const AMI = '03000200-0400-0500-0006-000700080009';

  it('knows the placeholders in every byte order and either case', () => {
    for (const uuid of ['00000000-0000-0000-0000-000000000000', 'FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF', 'ffffffffffffffffffffffffffffffff', AMI, AMI.toUpperCase()]) {
      expect(isPlaceholderUuid(uuid), uuid).toBe(true);
    }
    // the AMI default's bytes as a BMC may send them, decoded in each order
    for (const sent of ENCODINGS) for (const read of ENCODINGS) expect(isPlaceholderUuid(guidToUuid(uuidToGuid(AMI, sent), read)), `${sent}/${read}`).toBe(true);
    expect(isPlaceholderUuid(swapMixedEndian(AMI))).toBe(true);
  });

  it('matches whole values only: Supermicro\'s UUIDs (ten zero bytes and a MAC) are real', () => {
    for (const uuid of ['00000000-0000-0000-0000-ac1f6b4f2b10', '00000000-0000-0000-0000-002590c7c000', '00000000-0000-0000-0000-000000000001', 'ffffffff-ffff-ffff-ffff-fffffffffffe', '03000200-0400-0500-0006-00070008000a', RFC_V1, DELL_UUID]) {
      expect(isPlaceholderUuid(uuid), uuid).toBe(false);
    }
    fc.assert(
      fc.property(fc.uuid(), (uuid) => {
        expect(isPlaceholderUuid(uuid)).toBe(false);
      }),
    );
  });

  it('rejects text that is not a UUID', () => {
    expect(() => isPlaceholderUuid('0')).toThrow(DecodeError);
  });
});

describe('isV4Uuid', () => {
  it('is version digit 4 with the RFC 4122 variant', () => {
    expect(isV4Uuid('3f2504e0-4f89-41d3-9a0c-0305e82c3301')).toBe(true);
    expect(isV4Uuid('3F2504E0-4F89-41D3-9A0C-0305E82C3301')).toBe(true);
    expect(isV4Uuid('3f2504e0-4f89-41d3-da0c-0305e82c3301')).toBe(false); // another variant
    expect(isV4Uuid(RFC_V1)).toBe(false);
    expect(isV4Uuid(DELL_UUID)).toBe(false);
    fc.assert(
      fc.property(fc.uuid({ version: 4 }), (uuid) => {
        expect(isV4Uuid(uuid)).toBe(true);
      }),
    );
  });
});

describe('isImplausibleV1Timestamp', () => {
  const now = new Date('2025-06-01T00:00:00Z');

  it('accepts a real version-1 UUID from the past', () => {
    expect(isImplausibleV1Timestamp(RFC_V1, now)).toBe(false);
  });

  it('flags a timestamp in the future', () => {
    expect(isImplausibleV1Timestamp(RFC_V1, new Date(RFC_V1_TIME - 1000))).toBe(true);
    expect(isImplausibleV1Timestamp(RFC_V1, new Date(RFC_V1_TIME + 1000))).toBe(false);
  });

  it('flags a timestamp more than 30 years before now', () => {
    expect(isImplausibleV1Timestamp(RFC_V1, new Date('2052-02-22T19:22:21Z'))).toBe(false);
    expect(isImplausibleV1Timestamp(RFC_V1, new Date('2052-02-22T19:22:23Z'))).toBe(true);
  });

  it('detects the mixed-endian form of a Dell UUID but not the UUID itself', () => {
    expect(isImplausibleV1Timestamp(DELL_MIXED, now)).toBe(true);
    expect(isImplausibleV1Timestamp(DELL_UUID, now)).toBe(false); // version 3: no timestamp
  });

  it('ignores every version but 1', () => {
    // same timestamp bits as RFC_V1, version nibble 4 instead of 1
    expect(isImplausibleV1Timestamp('c232ab00-9414-41ec-b3c8-9f6bdeced846', new Date(RFC_V1_TIME - 1000))).toBe(false);
    fc.assert(
      fc.property(uuidText, (uuid) => {
        fc.pre(uuid.charAt(14) !== '1');
        expect(isImplausibleV1Timestamp(uuid, now)).toBe(false);
      }),
    );
  });

  it('rejects text that is not a UUID', () => {
    expect(() => isImplausibleV1Timestamp('xyz', now)).toThrow(DecodeError);
  });
});
