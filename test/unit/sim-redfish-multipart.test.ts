import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isBmcError } from '../../src/errors.js';
import { multipartBoundary, multipartReader } from '../../src/sim/redfish/multipart.js';

interface Part {
  name: string;
  filename?: string;
  body: Buffer;
}

function encode(boundary: string, parts: readonly Part[], preamble = ''): Buffer {
  const chunks: Buffer[] = [Buffer.from(preamble)];
  for (const part of parts) {
    const disposition = `form-data; name="${part.name}"${part.filename === undefined ? '' : `; filename="${part.filename}"`}`;
    chunks.push(Buffer.from(`--${boundary}\r\nContent-Disposition: ${disposition}\r\nContent-Type: application/octet-stream\r\n\r\n`), part.body, Buffer.from('\r\n'));
  }
  chunks.push(Buffer.from(`--${boundary}--\r\n`));
  return Buffer.concat(chunks);
}

/** Feeds `data` split at `cuts` (sorted offsets). */
function feed(boundary: string, data: Buffer, cuts: number[]) {
  const reader = multipartReader(boundary, (p) => p.name === 'UpdateParameters');
  let at = 0;
  for (const cut of [...cuts, data.length]) {
    reader.write(data.subarray(at, cut));
    at = cut;
  }
  return reader.end();
}

describe('multipartBoundary', () => {
  it('reads plain and quoted boundaries, only from multipart/form-data', () => {
    expect(multipartBoundary('multipart/form-data; boundary=abc-123')).toBe('abc-123');
    expect(multipartBoundary('Multipart/Form-Data; charset=utf-8; boundary="a b"')).toBe('a b');
    expect(multipartBoundary('application/json')).toBeUndefined();
    expect(multipartBoundary('multipart/form-data')).toBeUndefined();
    expect(multipartBoundary(undefined)).toBeUndefined();
  });
});

describe('multipartReader', () => {
  it('counts the file part and keeps UpdateParameters', () => {
    const params = Buffer.from('{"Targets":["/redfish/v1/UpdateService/FirmwareInventory/BMC"]}');
    const data = encode('XyZ', [
      { name: 'UpdateParameters', body: params },
      { name: 'UpdateFile', filename: 'bmc.bin', body: Buffer.alloc(100_000, 0x2d) },
    ]);
    const parts = feed('XyZ', data, [10, 200, 5000]);
    expect(parts).toEqual([
      { name: 'UpdateParameters', contentType: 'application/octet-stream', bytes: params.length, text: params.toString() },
      { name: 'UpdateFile', filename: 'bmc.bin', contentType: 'application/octet-stream', bytes: 100_000 },
    ]);
  });

  it('gives the same parts however the body is split', () => {
    const boundaryArb = fc.stringMatching(/^[A-Za-z0-9'()+_,.-]{1,40}$/);
    const partArb = fc.record({
      name: fc.constantFrom('UpdateParameters', 'UpdateFile', 'Other'),
      filename: fc.option(fc.constantFrom('a.bin', 'firmware image.img'), { nil: undefined }),
      body: fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a)),
    });
    fc.assert(
      fc.property(boundaryArb, fc.array(partArb, { maxLength: 4 }), fc.array(fc.nat(), { maxLength: 8 }), (boundary, parts, rawCuts) => {
        // a body must not contain its own delimiter
        fc.pre(parts.every((p) => !Buffer.concat([Buffer.from('\r\n'), p.body, Buffer.from('\r\n')]).includes(`\r\n--${boundary}`)));
        const data = encode(boundary, parts, 'preamble text\r\n');
        const cuts = [...new Set(rawCuts.map((c) => c % (data.length + 1)))].sort((a, b) => a - b);
        const got = feed(boundary, data, cuts);
        expect(got.map((p) => [p.name, p.filename, p.bytes])).toEqual(parts.map((p) => [p.name, p.filename, p.body.length]));
        for (const [i, p] of got.entries()) if (p.name === 'UpdateParameters') expect(p.text).toBe(parts[i]?.body.toString('utf8'));
      }),
      { numRuns: 300 },
    );
  });

  it('throws DecodeError for a truncated body or a part without a name', () => {
    const data = encode('b', [{ name: 'UpdateFile', filename: 'x', body: Buffer.from('abc') }]);
    expect(() => feed('b', data.subarray(0, data.length - 6), [])).toThrow(/closing boundary/);
    const noName = Buffer.from('--b\r\nContent-Type: text/plain\r\n\r\nabc\r\n--b--\r\n');
    try {
      feed('b', noName, []);
      expect.unreachable();
    } catch (err) {
      expect(isBmcError(err, 'DECODE')).toBe(true);
    }
  });

  it('limits kept parts and header size', () => {
    const big = encode('b', [{ name: 'UpdateParameters', body: Buffer.alloc(70_000, 0x20) }]);
    expect(() => feed('b', big, [])).toThrow(/larger than/);
    const longHeaders = Buffer.concat([Buffer.from('--b\r\nX: '), Buffer.alloc(20_000, 0x41)]);
    expect(() => feed('b', longHeaders, [])).toThrow(/headers longer/);
  });
});
