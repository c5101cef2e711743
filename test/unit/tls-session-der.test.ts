/**
 * The TLS session without its peer certificate (src/redfish/tls-session-der.ts), over generated
 * DER: the `peer` field ([3], tag 0xa3) goes, every other field stays byte for byte in order, and
 * anything that is not one whole DER SEQUENCE comes back unchanged. Real sessions from Node's TLS
 * are in test/integration/redfish-tls-context.test.ts.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { withoutPeerCertificate } from '../../src/redfish/tls-session-der.js';

/** a DER length field (definite, minimal) */
function lengthOf(n: number): number[] {
  if (n < 0x80) return [n];
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return [0x80 | bytes.length, ...bytes];
}

const tlv = (tag: number, body: Uint8Array) => Buffer.from([tag, ...lengthOf(body.length), ...body]);
const sequence = (elements: Buffer[]) => tlv(0x30, Buffer.concat(elements));

/** tags SSL_SESSION uses: INTEGER, OCTET STRING and context-specific [0]..[20], never [3] */
const otherTag = fc.oneof(fc.constantFrom(0x02, 0x04), fc.integer({ min: 0, max: 20 }).filter((n) => n !== 3).map((n) => 0xa0 | n));
/** contents up to 300 bytes: long-form lengths too */
const element = fc.tuple(otherTag, fc.uint8Array({ maxLength: 300 })).map(([tag, body]) => tlv(tag, body));
/** a certificate-sized peer field (one or two length bytes) */
const peer = fc.uint8Array({ minLength: 1, maxLength: 1200 }).map((body) => tlv(0xa3, tlv(0x30, body)));

describe('withoutPeerCertificate', () => {
  it('drops the peer field and keeps every other field in order', () => {
    fc.assert(
      fc.property(fc.array(element, { maxLength: 12 }), peer, fc.nat(), (fields, cert, at) => {
        const i = at % (fields.length + 1);
        const session = sequence([...fields.slice(0, i), cert, ...fields.slice(i)]);
        expect(withoutPeerCertificate(session)).toEqual(sequence(fields));
      }),
    );
  });

  it('gives back the session itself when it has no peer field, and is idempotent', () => {
    fc.assert(
      fc.property(fc.array(element, { maxLength: 12 }), (fields) => {
        const session = sequence(fields);
        expect(withoutPeerCertificate(session)).toBe(session);
      }),
    );
    fc.assert(
      fc.property(fc.array(element, { maxLength: 8 }), peer, (fields, cert) => {
        const once = withoutPeerCertificate(sequence([cert, ...fields]));
        expect(withoutPeerCertificate(once)).toBe(once);
      }),
    );
  });

  it('leaves anything that is not one whole DER SEQUENCE unchanged: truncated, extended, another tag, indefinite length', () => {
    fc.assert(
      fc.property(fc.array(element, { maxLength: 6 }), peer, fc.nat(), (fields, cert, cut) => {
        const session = sequence([cert, ...fields]);
        const truncated = session.subarray(0, cut % session.length);
        expect(withoutPeerCertificate(truncated)).toBe(truncated);
        const extended = Buffer.concat([session, Buffer.from([0])]);
        expect(withoutPeerCertificate(extended)).toBe(extended);
        const set = Buffer.from(session);
        set[0] = 0x31;
        expect(withoutPeerCertificate(set)).toBe(set);
      }),
    );
    const indefinite = Buffer.from([0x30, 0x80, 0xa3, 0x02, 0x04, 0x00, 0x00, 0x00]);
    expect(withoutPeerCertificate(indefinite)).toBe(indefinite);
    // a field whose length runs past the sequence's end
    const overrun = Buffer.from([0x30, 0x04, 0xa3, 0x05, 0x04, 0x00]);
    expect(withoutPeerCertificate(overrun)).toBe(overrun);
  });

  it('never throws on arbitrary bytes and never grows them', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2000 }), (bytes) => {
        const input = Buffer.from(bytes);
        expect(withoutPeerCertificate(input).length).toBeLessThanOrEqual(input.length);
      }),
    );
  });
});
