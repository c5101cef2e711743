import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MIN_REDACTED_SECRET_CHARS, redactSecrets } from '../../src/secret-text.js';

/** characters that are not in `[redacted]`, so a secret built from them cannot appear in the marker */
const SECRET_CHARS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-';
const secretChar = fc.constantFrom(...SECRET_CHARS);
const secret = fc.array(secretChar, { minLength: MIN_REDACTED_SECRET_CHARS, maxLength: 12 }).map((cs) => cs.join(''));
/** text around the secrets: any characters, secret characters included, so places overlap and touch */
const filler = fc.string({ unit: fc.oneof(fc.constantFrom(...SECRET_CHARS), fc.string({ unit: 'binary', minLength: 1, maxLength: 1 })), maxLength: 20 });

describe('redactSecrets', () => {
  it('leaves no secret in the text, whatever the secrets share or where they sit', () => {
    fc.assert(
      fc.property(fc.array(secret, { minLength: 1, maxLength: 4 }), fc.array(fc.tuple(filler, fc.nat()), { maxLength: 6 }), filler, (secrets, pieces, tail) => {
        const text = pieces.map(([f, i]) => f + secrets[i % secrets.length]!).join('') + tail;
        const out = redactSecrets(text, secrets);
        for (const s of secrets) expect(out).not.toContain(s);
      }),
    );
  });

  it('changes only the places a secret covers: the text between them stays, in order (touching places are one: the abcabc case below)', () => {
    fc.assert(
      fc.property(secret, fc.array(fc.string({ unit: fc.constantFrom('a', 'b', ' ', ':'), minLength: 1, maxLength: 10 }), { minLength: 1, maxLength: 6 }), (s, parts) => {
        expect(redactSecrets(parts.join(s), [s])).toBe(parts.join('[redacted]'));
      }),
    );
  });

  it('takes a secret inside or overlapping another as one place, with nothing of either left', () => {
    expect(redactSecrets('user compass-word end', ['pass', 'compass-word'])).toBe('user [redacted] end');
    expect(redactSecrets('xx abcdef yy', ['abcd', 'cdef'])).toBe('xx [redacted] yy');
    expect(redactSecrets('abcabc', ['abc'])).toBe('[redacted]');
    expect(redactSecrets('aaaa', ['aaa'])).toBe('[redacted]');
  });

  it('leaves text without a secret, and secrets too short to be told from text, alone', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 40 }), fc.array(fc.string({ maxLength: MIN_REDACTED_SECRET_CHARS - 1 })), (text, short) => {
        expect(redactSecrets(text, short)).toBe(text);
      }),
    );
    expect(redactSecrets('no secret here', ['hunter2'])).toBe('no secret here');
  });
});
