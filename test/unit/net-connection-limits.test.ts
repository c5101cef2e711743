import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { sourceOf } from '../../src/net/connection-limits.js';

const hextet = fc.integer({ min: 0, max: 0xffff }).map((n) => n.toString(16));

describe('the source a connection counts against', () => {
  it('is an IPv4 address (plain or IPv4-mapped) as it is', () => {
    expect(sourceOf('10.0.0.1')).toBe('10.0.0.1');
    expect(sourceOf('::ffff:10.0.0.1')).toBe('::ffff:10.0.0.1');
  });

  it("is an IPv6 address's /64, whatever the rest, the zone or the form (compressed or not)", () => {
    expect(sourceOf('2001:db8:1:2:3:4:5:6')).toBe('2001:db8:1:2::/64');
    expect(sourceOf('2001:db8:1:2::7')).toBe('2001:db8:1:2::/64');
    expect(sourceOf('fe80::1%eth0')).toBe('fe80:0:0:0::/64');
    fc.assert(
      fc.property(fc.array(hextet, { minLength: 8, maxLength: 8 }), fc.array(hextet, { minLength: 4, maxLength: 4 }), (a, rest) => {
        const full = a.join(':');
        const sibling = [...a.slice(0, 4), ...rest].join(':');
        expect(sourceOf(full)).toBe(sourceOf(sibling));
        // the same address compressed (a zero run written as ::) counts the same
        const zeros = [...a.slice(0, 4), '0', '0', ...a.slice(6)];
        expect(sourceOf(zeros.join(':'))).toBe(sourceOf(`${a.slice(0, 4).join(':')}::${a.slice(6).join(':')}`));
      }),
    );
  });
});
