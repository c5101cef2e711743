/** Pure IPMI codecs: round trips, known bytes, and fuzzing that only DecodeError escapes. */
import { createCipheriv } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DecodeError } from '../../src/errors.js';
import { aesDecrypt, aesEncrypt, cipherSuite, deriveKeys } from '../../src/ipmi/cipher.js';
import { decodeBootFlags, decodeBootOptionsResponse, decodeChassisStatus, decodeDeviceId, encodeBootFlags } from '../../src/ipmi/commands.js';
import { decodePowerReading } from '../../src/ipmi/dcmi.js';
import { powerMetricOfDcmi } from '../../src/outband/ipmi-report.js';
import { parseCipherSuiteRecords } from '../../src/ipmi/handshake.js';
import { datagramKind, decodeV15, decodeV2, encodeV15, encodeV2, PayloadType, type SessionKeys } from '../../src/ipmi/lan.js';
import { checksum, decodeRequest, decodeResponse, encodeRequest, encodeResponse } from '../../src/ipmi/message.js';
import {
  decodeOpenSessionRequest,
  decodeOpenSessionResponse,
  decodeRakp1,
  decodeRakp2,
  decodeRakpCode,
  encodeOpenSessionRequest,
  encodeOpenSessionResponse,
  encodeRakp1,
  encodeRakp2,
  encodeRakpCode,
  rakp2Code,
  rakp3Code,
  rakp4Icv,
  sessionIntegrityKey,
  passwordKey,
  type HandshakeParameters,
} from '../../src/ipmi/rakp.js';
import { decodePresencePong, decodeRmcp, encodePresencePing, encodePresencePong, isPresencePing } from '../../src/ipmi/rmcp.js';
import { decodeActivateSolResponse, decodeSolPacket, encodeSolPacket } from '../../src/ipmi/sol-packet.js';

const keysFor = (suiteId: number): SessionKeys => {
  const suite = cipherSuite(suiteId);
  const { k1, k2 } = deriveKeys(suite.auth, Buffer.alloc(suite.auth === 'hmac-sha256' ? 32 : 20, 7));
  return { integrity: suite.integrity, confidentiality: suite.confidentiality, k1, k2 };
};

/** Only DecodeError may escape a decoder. */
function onlyDecodeErrors(decode: (b: Buffer) => unknown) {
  return fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
    try {
      decode(Buffer.from(bytes));
    } catch (err) {
      if (!(err instanceof DecodeError)) throw err;
    }
  });
}

describe('IPMI message framing', () => {
  it('encodes Get Device ID exactly as the spec lays it out', () => {
    // rsAddr 0x20, netFn 6 << 2, 0x100 - (0x20 + 0x18) = 0xc8; rqAddr 0x81, seq 5 << 2, cmd 1, 0x100 - 0x96 = 0x6a
    expect(encodeRequest({ netFn: 0x06, cmd: 0x01, seq: 5, data: Buffer.alloc(0) }).toString('hex')).toBe('2018c88114016a');
  });

  it('round-trips request and response, and the checksums sum to zero', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0x3e }), fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 63 }), fc.uint8Array({ maxLength: 40 }), fc.integer({ min: 0, max: 255 }), (netFn, cmd, seq, data, cc) => {
        const reqBytes = encodeRequest({ netFn: netFn & 0x3e, cmd, seq, data: Buffer.from(data) });
        expect(checksum(reqBytes, 0, 3)).toBe(0);
        const req = decodeRequest(reqBytes);
        expect([req.netFn, req.cmd, req.seq, [...req.data]]).toEqual([netFn & 0x3e, cmd, seq, [...data]]);
        const res = decodeResponse(encodeResponse(req, cc, Buffer.from(data)));
        expect([res.netFn, res.cmd, res.seq, res.completionCode, [...res.data]]).toEqual([(netFn & 0x3e) | 1, cmd, seq, cc, [...data]]);
      }),
    );
  });

  it('rejects a flipped byte through the checksums', () => {
    const bytes = encodeResponse(decodeRequest(encodeRequest({ netFn: 6, cmd: 1, seq: 1, data: Buffer.alloc(0) })), 0, Buffer.from([1, 2, 3]));
    bytes[8] = bytes[8]! ^ 0x40;
    expect(() => decodeResponse(bytes)).toThrow(DecodeError);
  });

  it('decoders throw only DecodeError on arbitrary bytes', () => {
    for (const d of [decodeResponse, decodeRequest, decodeRmcp, decodePresencePong, decodeV15, (b: Buffer) => decodeV2(b), (b: Buffer) => decodeV2(b, keysFor(3)), (b: Buffer) => decodeV2(b, keysFor(17))]) {
      fc.assert(onlyDecodeErrors(d), { numRuns: 300 });
    }
  });
});

describe('RMCP and ASF', () => {
  it('answers a presence ping with a pong that says IPMI is supported', () => {
    const ping = encodePresencePing(9);
    expect(isPresencePing(ping)).toBe(true);
    expect(decodePresencePong(encodePresencePong(9))).toEqual({ tag: 9, ipmiSupported: true });
  });
});

describe('RMCP+ session wrapper', () => {
  it('round-trips unauthenticated pre-session payloads and the IPMI 1.5 wrapper', () => {
    const payload = Buffer.from('hello');
    const v2 = decodeV2(encodeV2({ payloadType: PayloadType.openSessionRequest, sessionId: 0, seq: 0, payload }));
    expect(v2.payload.equals(payload)).toBe(true);
    expect(datagramKind(encodeV15(0, 0, payload))).toBe('v15');
    expect(decodeV15(encodeV15(0, 0, payload)).message.equals(payload)).toBe(true);
  });

  for (const suite of [2, 3, 16, 17]) {
    it(`suite ${suite}: authenticated (and encrypted) packets round-trip and tampering is detected`, () => {
      const keys = keysFor(suite);
      fc.assert(
        fc.property(fc.uint8Array({ minLength: 0, maxLength: 200 }), fc.integer({ min: 1, max: 0xffffffff }), fc.integer({ min: 0, max: 199 }), (data, seq, flip) => {
          const datagram = encodeV2({ payloadType: PayloadType.ipmi, sessionId: 0x1234, seq, payload: Buffer.from(data) }, keys);
          const p = decodeV2(datagram, keys);
          expect([...p.payload]).toEqual([...data]);
          expect(p.authenticated).toBe(true);
          expect(p.encrypted).toBe(keys.confidentiality !== 'none');
          const tampered = Buffer.from(datagram);
          const at = 16 + (flip % (tampered.length - 16));
          tampered[at] = tampered[at]! ^ 0x01;
          expect(() => decodeV2(tampered, keys)).toThrow(DecodeError);
        }),
        { numRuns: 100 },
      );
    });
  }

  it('refuses an unauthenticated packet inside an authenticated session', () => {
    const plain = encodeV2({ payloadType: PayloadType.ipmi, sessionId: 5, seq: 1, payload: Buffer.from([1]) });
    expect(() => decodeV2(plain, keysFor(3))).toThrow(/no integrity code/);
  });

  it('pads AES plaintext with 1,2,...,n and the pad length, to whole blocks', () => {
    const k2 = Buffer.alloc(20, 3);
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 100 }), (data) => {
        const enc = aesEncrypt(k2, Buffer.from(data));
        expect((enc.length - 16) % 16).toBe(0);
        expect([...aesDecrypt(k2, enc)]).toEqual([...data]);
      }),
    );
  });
  it("AES-CBC-128 matches OpenSSL's CBC for any key, IV and payload, call after call on one key", () => {
    // the session keeps one ECB context per key and chains the blocks itself; a context that kept
    // state between calls, or a wrong chaining, would differ from a fresh CBC context here
    const reference = (k2: Buffer, iv: Buffer, plain: Buffer) => {
      const c = createCipheriv('aes-128-cbc', k2.subarray(0, 16), iv).setAutoPadding(false);
      return Buffer.concat([iv, c.update(plain), c.final()]);
    };
    const keys = [Buffer.alloc(20, 7), Buffer.alloc(20, 9)];
    fc.assert(
      fc.property(fc.nat(1), fc.uint8Array({ minLength: 16, maxLength: 16 }), fc.uint8Array({ maxLength: 300 }), (k, ivBytes, data) => {
        const k2 = keys[k]!;
        const iv = Buffer.from(ivBytes);
        const payload = Buffer.from(data);
        const padLength = (16 - ((payload.length + 1) % 16)) % 16;
        const padded = Buffer.concat([payload, Buffer.from(Array.from({ length: padLength }, (_, i) => i + 1)), Buffer.from([padLength])]);
        const expected = reference(k2, iv, padded);
        expect(aesEncrypt(k2, payload, iv).equals(expected)).toBe(true);
        expect(aesDecrypt(k2, expected).equals(payload)).toBe(true);
      }),
      { numRuns: 300 },
    );
  });
});

describe('RAKP', () => {
  const params: HandshakeParameters = {
    auth: 'hmac-sha1',
    consoleSessionId: 0xa0a2a3a4,
    bmcSessionId: 0x02000001,
    consoleRandom: Buffer.alloc(16, 0x11),
    bmcRandom: Buffer.alloc(16, 0x22),
    bmcGuid: Buffer.alloc(16, 0x33),
    role: 0x14,
    username: Buffer.from('ADMIN'),
  };

  it('messages round-trip', () => {
    const open = { tag: 1, privilege: 4, consoleSessionId: 0xdeadbeef, auth: 1, integrity: 1, confidentiality: 1 };
    expect(decodeOpenSessionRequest(encodeOpenSessionRequest(open))).toEqual(open);
    const resp = { ...open, status: 0, bmcSessionId: 77 };
    expect(decodeOpenSessionResponse(encodeOpenSessionResponse(resp))).toEqual(resp);
    const r1 = { tag: 2, bmcSessionId: 77, consoleRandom: Buffer.alloc(16, 9), role: 0x14, username: Buffer.from('ADMIN') };
    expect(decodeRakp1(encodeRakp1(r1))).toEqual(r1);
    const r2 = { tag: 2, status: 0, consoleSessionId: 5, bmcRandom: Buffer.alloc(16, 1), bmcGuid: Buffer.alloc(16, 2), keyExchangeCode: Buffer.alloc(20, 3) };
    expect(decodeRakp2(encodeRakp2(r2))).toEqual(r2);
    const r3 = { tag: 3, status: 0, sessionId: 9, code: Buffer.alloc(12, 4) };
    expect(decodeRakpCode(encodeRakpCode(r3), 'RAKP 3')).toEqual(r3);
  });

  it('the RAKP codes depend on every input, and the password key is zero-padded to 20 bytes', () => {
    const kuid = passwordKey('secret');
    expect(kuid.length).toBe(20);
    expect(kuid.subarray(6).every((b) => b === 0)).toBe(true);
    const base = rakp2Code(params, kuid).toString('hex');
    expect(rakp2Code({ ...params, role: 0x04 }, kuid).toString('hex')).not.toBe(base);
    expect(rakp2Code(params, passwordKey('Secret')).toString('hex')).not.toBe(base);
    expect(rakp3Code(params, kuid).length).toBe(20);
    const sik = sessionIntegrityKey(params, kuid);
    expect(rakp4Icv(params, sik).length).toBe(12);
    expect(rakp4Icv({ ...params, auth: 'hmac-sha256' }, sessionIntegrityKey({ ...params, auth: 'hmac-sha256' }, kuid)).length).toBe(16);
  });

  it('decoders throw only DecodeError on arbitrary bytes', () => {
    for (const d of [decodeOpenSessionRequest, decodeOpenSessionResponse, decodeRakp1, decodeRakp2, (b: Buffer) => decodeRakpCode(b, 'RAKP 4')]) {
      fc.assert(onlyDecodeErrors(d), { numRuns: 300 });
    }
  });
});

describe('command payloads', () => {
  it('decodes Get Device ID: BCD minor revision, manufacturer and product', () => {
    const d = decodeDeviceId(Buffer.from([0x20, 0x01, 0x01, 0x74, 0x02, 0xbf, 0x7c, 0x2a, 0x00, 0x37, 0x09, 0, 0, 0, 0]));
    expect(d).toMatchObject({ firmwareRevision: '1.74', ipmiVersion: '2.0', manufacturerId: 10876, productId: 0x0937 });
  });

  it('decodes chassis status power and identify state', () => {
    expect(decodeChassisStatus(Buffer.from([0x01, 0x00, 0x60]))).toEqual({ power: 'on', powerFault: false, identify: 'on' });
    expect(decodeChassisStatus(Buffer.from([0x00, 0x00, 0x00]))).toMatchObject({ power: 'off', identify: 'unknown' });
  });

  it('encodes boot flags as ipmitool does (valid, persistent, EFI, selector)', () => {
    expect(encodeBootFlags({ device: 'pxe', persistent: false, uefi: true }).toString('hex')).toBe('a004000000');
    expect(encodeBootFlags({ device: 'disk', persistent: true, uefi: false }).toString('hex')).toBe('c008000000');
    expect(encodeBootFlags({ device: 'bios', persistent: false, uefi: false }).toString('hex')).toBe('8018000000');
    fc.assert(
      fc.property(fc.constantFrom('pxe', 'disk', 'bios', 'cdrom', 'none' as const), fc.boolean(), fc.boolean(), (device, persistent, uefi) => {
        expect(decodeBootFlags(encodeBootFlags({ device, persistent, uefi }))).toEqual({ valid: true, device, persistent, uefi });
      }),
    );
    expect(decodeBootOptionsResponse(Buffer.from([1, 5, 0xa0, 0x04, 0, 0, 0]))).toMatchObject({ device: 'pxe', uefi: true });
  });

  it('parses cipher suite records, standard and OEM', () => {
    const records = Buffer.from([0xc0, 0x03, 0x01, 0x41, 0x81, 0xc1, 0x80, 0x01, 0x02, 0x03, 0x01, 0x41, 0x81, 0xc0, 0x11, 0x03, 0x44, 0x81]);
    expect(parseCipherSuiteRecords(records)).toEqual([3, 0x80, 17]);
    fc.assert(fc.property(fc.uint8Array({ maxLength: 100 }), (b) => Array.isArray(parseCipherSuiteRecords(Buffer.from(b)))));
  });

  it('decodes a DCMI power reading', () => {
    const d = Buffer.alloc(18);
    d[0] = 0xdc;
    d.writeUInt16LE(220, 1);
    d.writeUInt16LE(180, 3);
    d.writeUInt16LE(290, 5);
    d.writeUInt16LE(212, 7);
    d.writeUInt32LE(60_000, 13);
    d[17] = 0x40;
    const reading = decodePowerReading(d);
    expect(reading).toEqual({ currentWatts: 220, minimumWatts: 180, maximumWatts: 290, averageWatts: 212, periodMs: 60_000, active: true });
    // metal-api's names for it come from the facade (src/outband/ipmi-report.ts)
    expect(powerMetricOfDcmi(reading)).toEqual({ averageconsumedwatts: 212, minconsumedwatts: 180, maxconsumedwatts: 290, intervalinmin: 1 });
    expect(powerMetricOfDcmi({ ...reading, periodMs: 0 }).intervalinmin).toBe(1);
    expect(powerMetricOfDcmi({ ...reading, periodMs: 3_600_000 }).intervalinmin).toBe(60);
  });

  it('SOL packets round-trip; decoders throw only DecodeError', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 15 }), fc.integer({ min: 0, max: 15 }), fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 255 }), fc.uint8Array({ maxLength: 200 }), (seq, ackSeq, acceptedChars, flags, data) => {
        const p = decodeSolPacket(encodeSolPacket({ seq, ackSeq, acceptedChars, flags, data: Buffer.from(data) }));
        expect([p.seq, p.ackSeq, p.acceptedChars, p.flags, [...p.data]]).toEqual([seq, ackSeq, acceptedChars, flags, [...data]]);
      }),
    );
    for (const d of [decodeSolPacket, decodeActivateSolResponse, decodeDeviceId, decodeChassisStatus, decodeBootOptionsResponse, decodePowerReading]) {
      fc.assert(onlyDecodeErrors(d), { numRuns: 300 });
    }
  });
});
