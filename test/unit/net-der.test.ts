/** src/net/der.ts: the header of one DER element, shared by the console's CRL reader and the TLS session trimmer. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { derElementAt } from '../../src/net/der.js';

describe('derElementAt', () => {
  it('reads short and long definite lengths', () => {
    expect(derElementAt(Buffer.from([0x02, 0x01, 0x05]), 0)).toEqual({ tag: 0x02, start: 0, body: 2, end: 3 });
    const long = Buffer.concat([Buffer.from([0x04, 0x81, 0x80]), Buffer.alloc(0x80)]);
    expect(derElementAt(long, 0)).toEqual({ tag: 0x04, start: 0, body: 3, end: 0x83 });
    expect(derElementAt(Buffer.from([0xff, 0x02, 0x30, 0x00]), 2)).toEqual({ tag: 0x30, start: 2, body: 4, end: 4 });
  });

  it('refuses what X.509 and SSL_SESSION do not use, and what runs past the limit', () => {
    expect(derElementAt(Buffer.from([0x1f, 0x01, 0x00]), 0)).toBeUndefined(); // high tag number
    expect(derElementAt(Buffer.from([0x30, 0x80, 0x00, 0x00]), 0)).toBeUndefined(); // indefinite length
    expect(derElementAt(Buffer.from([0x04, 0x85, 1, 0, 0, 0, 0]), 0)).toBeUndefined(); // five length bytes
    expect(derElementAt(Buffer.from([0x02, 0x02, 0x05]), 0)).toBeUndefined(); // past the end
    expect(derElementAt(Buffer.from([0x02, 0x01, 0x05]), 0, 2)).toBeUndefined(); // past the limit
    expect(derElementAt(Buffer.from([0x02]), 0)).toBeUndefined();
  });

  it('never throws, and an element it returns lies within the limit (property)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 40 }), fc.nat(), fc.nat(), (bytes, a, l) => {
        const buf = Buffer.from(bytes);
        const at = a % (buf.length + 1);
        const limit = at + (l % (buf.length - at + 1));
        const e = derElementAt(buf, at, limit);
        if (e === undefined) return;
        expect(e.start).toBe(at);
        expect(e.body).toBeGreaterThan(at);
        expect(e.end).toBeGreaterThanOrEqual(e.body);
        expect(e.end).toBeLessThanOrEqual(limit);
      }),
      { numRuns: 2000 },
    );
  });
});
