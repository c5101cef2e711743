import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BmcError } from '../../src/errors.js';
import { isIP, isIPv6 } from 'node:net';
import { ANY_IPV4, cidrContains, ipFamily, cidrSize, formatIpv4, formatIpv6, ipv6ToBigInt, isIpv6Cidr, nthHost, parseCidr, parseIpCidr, parseIpv4, parseIpv6Cidr } from '../../src/net/cidr.js';

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

describe('IPv6 (accepted in METAL_BMC_ALLOWED_CIDRS as the Go metal-bmc does)', () => {
  // WHATWG URL serialisation of an IPv6 host: lower case, no leading zeros, longest zero run as ::
  const whatwg = (text: string) => new URL(`http://[${text}]/`).hostname.slice(1, -1);

  it('vectors', () => {
    expect(ipv6ToBigInt('::')).toBe(0n);
    expect(ipv6ToBigInt('::1')).toBe(1n);
    expect(ipv6ToBigInt('2001:DB8::1')).toBe(0x20010db8000000000000000000000001n);
    expect(ipv6ToBigInt('::ffff:10.0.0.1')).toBe(0xffff0a000001n);
    for (const bad of ['', ':', ':::', '1::2::3', '1:2:3:4:5:6:7:8:9', '1:2:3:4:5:6:7', '12345::', 'g::', '::1.2.3', '1.2.3.4::', 'fe80::1%eth0', '[::1]', '1:2:3:4:5:6:7::8'])
      expect(ipv6ToBigInt(bad), bad).toBeUndefined();
    expect(formatIpv6(0n)).toBe('::');
    expect(formatIpv6(0x20010db8000000010000000000000001n)).toBe('2001:db8:0:1::1');
    expect(parseIpv6Cidr('2001:db8::1/32')).toEqual({ family: 6, network: 0x20010db8n << 96n, prefix: 32, text: '2001:db8::/32' });
    expect(parseIpv6Cidr('::1').text).toBe('::1/128');
    expect(parseIpv6Cidr('::/0').text).toBe('::/0');
    for (const bad of ['::/129', '::/01', '::/', '::/-1', 'x/64']) expect(() => parseIpv6Cidr(bad), bad).toThrow(BmcError);
    expect(isIpv6Cidr(parseIpCidr('2001:db8::/32'))).toBe(true);
    expect(isIpv6Cidr(parseIpCidr('10.0.0.0/8'))).toBe(false);
  });

  it('property: every IPv6 address parses, and formats as the WHATWG URL parser does', () => {
    fc.assert(
      fc.property(fc.ipV6(), (ip) => {
        const value = ipv6ToBigInt(ip);
        if (value === undefined) return false;
        const text = formatIpv6(value);
        return ipv6ToBigInt(text) === value && (ip.includes('.') || text === whatwg(ip));
      }),
    );
  });

  it('property: accepts exactly what node:net accepts as IPv6 (zones aside)', () => {
    const chars = fc.constantFrom(...'0123456789abcdefABCDEF:.');
    fc.assert(
      fc.property(fc.oneof(fc.string({ unit: chars, maxLength: 45 }), fc.ipV6()), (text) => (ipv6ToBigInt(text) !== undefined) === isIPv6(text)),
      { numRuns: 2000 },
    );
  });

  it('property: the canonical network of a block lies in it and has no host bits', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: (1n << 128n) - 1n }), fc.integer({ min: 0, max: 128 }), (value, prefix) => {
        const c = parseIpv6Cidr(`${formatIpv6(value)}/${prefix}`);
        const host = prefix === 128 ? 0n : (1n << BigInt(128 - prefix)) - 1n;
        return (c.network & host) === 0n && (value & ~host & ((1n << 128n) - 1n)) === c.network && parseIpv6Cidr(c.text).network === c.network;
      }),
    );
  });
});

describe('ipFamily (node:net isIP without loading node:net)', () => {
  it('vectors', () => {
    for (const [text, family] of [
      ['10.0.0.1', 4],
      ['010.0.0.1', 0],
      ['::1', 6],
      ['fe80::1%eth0', 6],
      ['fe80::1%', 0],
      ['fe80::1%eth 0', 0],
      ['10.0.0.1%eth0', 0],
      ['bmc-1.example', 0],
      ['', 0],
    ] as const)
      expect(ipFamily(text), text).toBe(family);
  });

  it('property: answers what node:net isIP answers, zones and IPv4 included', () => {
    const chars = fc.constantFrom(...'0123456789abcdefABCDEF:.%-ez');
    const zone = fc.string({ unit: fc.constantFrom(...'0123456789azAZ-.:% _/'), maxLength: 6 });
    fc.assert(
      fc.property(
        fc.oneof(fc.string({ unit: chars, maxLength: 50 }), fc.ipV4(), fc.ipV4Extended(), fc.ipV6(), fc.tuple(fc.ipV6(), zone).map(([ip, z]) => `${ip}%${z}`)),
        (text) => ipFamily(text) === isIP(text),
      ),
      { numRuns: 3000 },
    );
  });
});
