import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BmcError } from '../../src/errors.js';
import { ANY_IPV4, cidrContains, cidrSize, formatIpv4, nthHost, parseCidr, parseIpv4 } from '../../src/net/cidr.js';

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  throw new Error('expected a throw');
}

describe('parseIpv4 / formatIpv4', () => {
  it('reads dotted quads as unsigned numbers', () => {
    expect(parseIpv4('0.0.0.0')).toBe(0);
    expect(parseIpv4('10.0.0.1')).toBe(0x0a000001);
    expect(parseIpv4('192.168.2.27')).toBe(0xc0a8021b);
    expect(parseIpv4('255.255.255.255')).toBe(0xffffffff);
  });

  it.each(['', '1.2.3', '1.2.3.4.5', '256.1.1.1', '1.2.3.-4', '01.2.3.4', '1.2.3.04', ' 1.2.3.4', '1.2.3.4 ', '1..3.4', 'a.b.c.d', '::1', '1.2.3.4/32'])(
    'rejects %j with INVALID_ARGUMENT naming it',
    (text) => {
      const err = thrown(() => parseIpv4(text));
      expect(err).toBeInstanceOf(BmcError);
      expect((err as BmcError).code).toBe('INVALID_ARGUMENT');
      expect((err as BmcError).message).toContain(JSON.stringify(text));
    },
  );

  it('formats numbers and rejects non-addresses', () => {
    expect(formatIpv4(0x0a000001)).toBe('10.0.0.1');
    expect(formatIpv4(0xffffffff)).toBe('255.255.255.255');
    for (const bad of [-1, 2 ** 32, 1.5, NaN]) expect(() => formatIpv4(bad)).toThrow(BmcError);
  });

  it('round-trips every address (property)', () => {
    fc.assert(fc.property(fc.ipV4(), (ip) => formatIpv4(parseIpv4(ip)) === ip));
    fc.assert(fc.property(fc.integer({ min: 0, max: 0xffffffff }), (n) => parseIpv4(formatIpv4(n)) === n));
  });
});

describe('parseCidr', () => {
  it('reads a block and clears host bits', () => {
    expect(parseCidr('10.0.0.0/8')).toEqual({ network: 0x0a000000, prefix: 8, mask: 0xff000000, text: '10.0.0.0/8' });
    expect(parseCidr('192.168.2.27/24').text).toBe('192.168.2.0/24');
    expect(parseCidr('0.0.0.0/0')).toEqual({ network: 0, prefix: 0, mask: 0, text: '0.0.0.0/0' });
  });

  it('takes a bare address as /32', () => {
    expect(parseCidr('10.1.2.3')).toEqual({ network: 0x0a010203, prefix: 32, mask: 0xffffffff, text: '10.1.2.3/32' });
  });

  it.each(['10.0.0.0/33', '10.0.0.0/', '10.0.0.0/-1', '10.0.0.0/08', '10.0.0.0/8/8', '300.0.0.0/8', '10.0.0/8', '', 'any', '10.0.0.0 /8'])(
    'rejects %j with INVALID_ARGUMENT naming it',
    (text) => {
      const err = thrown(() => parseCidr(text));
      expect(err).toBeInstanceOf(BmcError);
      expect((err as BmcError).code).toBe('INVALID_ARGUMENT');
      expect((err as BmcError).message).toContain(JSON.stringify(text));
    },
  );
});

describe('cidrContains', () => {
  const net = parseCidr('192.168.2.0/24');

  it('holds exactly the addresses of the block', () => {
    expect(cidrContains(net, '192.168.2.0')).toBe(true);
    expect(cidrContains(net, '192.168.2.255')).toBe(true);
    expect(cidrContains(net, '192.168.1.255')).toBe(false);
    expect(cidrContains(net, '192.168.3.0')).toBe(false);
    expect(cidrContains(parseCidr('10.0.0.1'), '10.0.0.1')).toBe(true);
    expect(cidrContains(parseCidr('10.0.0.1'), '10.0.0.2')).toBe(false);
  });

  it('/0 holds everything, an invalid address nothing', () => {
    expect(cidrContains(ANY_IPV4, '255.255.255.255')).toBe(true);
    expect(cidrContains(ANY_IPV4, '0.0.0.0')).toBe(true);
    expect(cidrContains(ANY_IPV4, 'not-an-ip')).toBe(false);
    expect(cidrContains(ANY_IPV4, 2 ** 32)).toBe(false);
  });

  it('agrees with a string-prefix model for octet-aligned blocks (property)', () => {
    fc.assert(
      fc.property(fc.ipV4(), fc.ipV4(), fc.constantFrom(8, 16, 24), (a, b, prefix) => {
        const octets = prefix / 8;
        const same = a.split('.').slice(0, octets).join('.') === b.split('.').slice(0, octets).join('.');
        return cidrContains(parseCidr(`${a}/${prefix}`), b) === same;
      }),
    );
  });
});

describe('nthHost', () => {
  it('counts from the network address', () => {
    const net = parseCidr('10.0.0.0/24');
    expect(nthHost(net, 0)).toBe('10.0.0.0');
    expect(nthHost(net, 1)).toBe('10.0.0.1');
    expect(nthHost(net, 255)).toBe('10.0.0.255');
    expect(nthHost(parseCidr('10.0.0.0/23'), 256)).toBe('10.0.1.0');
    expect(nthHost(parseCidr('10.9.8.7'), 0)).toBe('10.9.8.7');
  });

  it('refuses indexes outside the block', () => {
    const net = parseCidr('10.0.0.0/24');
    for (const n of [-1, 256, 1.5]) {
      const err = thrown(() => nthHost(net, n));
      expect((err as BmcError).code).toBe('INVALID_ARGUMENT');
      expect((err as BmcError).message).toContain('10.0.0.0/24');
    }
  });

  it('stays inside the block (property)', () => {
    fc.assert(
      fc.property(fc.ipV4(), fc.integer({ min: 0, max: 32 }), fc.double({ min: 0, max: 1, noNaN: true, maxExcluded: true }), (ip, prefix, f) => {
        const net = parseCidr(`${ip}/${prefix}`);
        const n = Math.floor(f * cidrSize(net));
        const host = nthHost(net, n);
        return cidrContains(net, host) && parseIpv4(host) - net.network === n;
      }),
    );
  });
});
