import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BmcError } from '../../src/errors.js';
import { normalizeMac } from '../../src/leases/mac.js';
import { renderIscLeases, renderKeaLeases, type IscLeaseInput, type KeaLeaseInput } from '../../src/leases/render.js';
import { activeLeases, detectLeaseFormat, parseLeases } from '../../src/leases/select.js';
import type { ParsedLeases } from '../../src/leases/types.js';
import { cidrContains, parseCidr, parseIpv4 } from '../../src/net/cidr.js';

const fixture = (name: string): string => readFileSync(new URL(`../fixtures/leases/${name}`, import.meta.url), 'utf8');
const NOW = new Date('2026-01-01T00:00:00Z');
const LATER = new Date('2026-06-01T00:00:00Z');

const isc = (ip: string, mac: string | undefined, extra: Partial<IscLeaseInput> = {}): IscLeaseInput => ({ ip, mac, ends: LATER, bindingState: 'active', ...extra });
const iscFile = (...leases: IscLeaseInput[]): ParsedLeases => parseLeases(renderIscLeases(leases), 'isc');
const kea = (ip: string, mac: string | undefined, extra: Partial<KeaLeaseInput> = {}): KeaLeaseInput => ({ ip, mac, validLifetime: 3600, expire: LATER, state: 0, ...extra });
const keaFile = (...leases: KeaLeaseInput[]): ParsedLeases => parseLeases(renderKeaLeases(leases), 'kea');
const pairs = (parsed: ParsedLeases, options: Partial<Parameters<typeof activeLeases>[1]> = {}) =>
  activeLeases(parsed, { now: NOW, ...options }).map((l) => `${l.ip} ${l.mac}`);

describe('detectLeaseFormat / parseLeases', () => {
  it('tells Kea CSV from ISC dhcpd text', () => {
    expect(detectLeaseFormat(fixture('kea-leases4.csv'))).toBe('kea');
    expect(detectLeaseFormat(fixture('dhcpd.leases'))).toBe('isc');
    expect(detectLeaseFormat(fixture('dhcpd.test.leases'))).toBe('isc');
    expect(detectLeaseFormat('\n  address,hwaddr,valid_lifetime,expire\n')).toBe('kea');
    expect(detectLeaseFormat('')).toBe('isc');
    expect(detectLeaseFormat('# address,hwaddr\nlease 10.0.0.1 {\n}\n')).toBe('isc');
  });

  it('parses with the detected or the given format', () => {
    expect(parseLeases(fixture('kea-leases4.csv')).format).toBe('kea');
    expect(parseLeases(fixture('dhcpd.leases')).leases).toHaveLength(2);
    expect(parseLeases(fixture('dhcpd.leases'), 'auto').format).toBe('isc');
    // forcing the wrong format is a parse error, not a silent empty list
    expect(() => parseLeases(fixture('dhcpd.leases'), 'kea')).toThrow(/line 1:/);
  });
});

describe('activeLeases', () => {
  it('returns the common shape, hostname only when known', () => {
    const leases = activeLeases(iscFile(isc('10.0.0.1', '00:00:00:00:00:01', { hostname: 'bmc1' }), isc('10.0.0.2', '00:00:00:00:00:02', { ends: 'never' })), { now: NOW });
    expect(leases).toEqual([
      { ip: '10.0.0.1', mac: '00:00:00:00:00:01', hostname: 'bmc1', expires: LATER },
      { ip: '10.0.0.2', mac: '00:00:00:00:00:02', expires: 'never' },
    ]);
  });

  it('ISC: only binding state active with ends in the future or never', () => {
    const parsed = iscFile(
      isc('10.0.0.1', '00:00:00:00:00:01'),
      isc('10.0.0.2', '00:00:00:00:00:02', { bindingState: 'free' }),
      isc('10.0.0.3', '00:00:00:00:00:03', { bindingState: undefined }),
      isc('10.0.0.4', '00:00:00:00:00:04', { ends: NOW }), // ends exactly now: over
      isc('10.0.0.5', '00:00:00:00:00:05', { ends: undefined }),
      isc('10.0.0.6', '00:00:00:00:00:06', { ends: 'never' }),
      isc('10.0.0.7', undefined),
    );
    expect(pairs(parsed)).toEqual(['10.0.0.1 00:00:00:00:00:01', '10.0.0.6 00:00:00:00:00:06']);
  });

  it('Kea: state 0, valid_lifetime not 0, expire in the future or infinite', () => {
    const parsed = keaFile(
      kea('10.0.0.1', '00:00:00:00:00:01'),
      kea('10.0.0.2', '00:00:00:00:00:02', { state: 1 }),
      kea('10.0.0.3', '00:00:00:00:00:03', { state: 2 }),
      kea('10.0.0.4', '00:00:00:00:00:04', { validLifetime: 0 }),
      kea('10.0.0.5', '00:00:00:00:00:05', { expire: NOW }),
      kea('10.0.0.6', '00:00:00:00:00:06', { expire: 'never', validLifetime: 4294967295 }),
      kea('10.0.0.7', undefined),
    );
    expect(pairs(parsed)).toEqual(['10.0.0.1 00:00:00:00:00:01', '10.0.0.6 00:00:00:00:00:06']);
  });

  it('latest entry per MAC wins by file order, not by the later ends', () => {
    const parsed = iscFile(isc('10.0.0.1', '00:00:00:00:00:01', { ends: 'never' }), isc('10.0.0.2', '00:00:00:00:00:01', { ends: LATER }));
    expect(pairs(parsed)).toEqual(['10.0.0.2 00:00:00:00:00:01']);
    const k = keaFile(kea('10.0.0.1', '00:00:00:00:00:01', { expire: 'never', validLifetime: 4294967295 }), kea('10.0.0.2', '00:00:00:00:00:01'));
    expect(pairs(k)).toEqual(['10.0.0.2 00:00:00:00:00:01']);
  });

  it('where the records tell when each lease began, the MAC keeps the one begun last, wherever it stands in the file', () => {
    // dhcpd's rewrite lists pools in configuration order: the BMC's new lease in the first pool, its old one (still active) after it
    const rewritten = iscFile(
      isc('10.0.1.5', '00:00:00:00:00:01', { starts: new Date('2025-12-31T23:00:00Z') }),
      isc('10.0.0.5', '00:00:00:00:00:01', { starts: new Date('2025-12-31T10:00:00Z') }),
    );
    expect(pairs(rewritten)).toEqual(['10.0.1.5 00:00:00:00:00:01']);
    // Kea's cleanup file is in address order; the client was last heard at expire - valid_lifetime
    const cleaned = keaFile(
      kea('10.0.0.5', '00:00:00:00:00:01', { expire: new Date('2026-01-02T00:00:00Z'), validLifetime: 3600 }),
      kea('10.0.1.5', '00:00:00:00:00:01', { expire: new Date('2026-01-01T12:00:00Z'), validLifetime: 3600 }),
    );
    expect(pairs(cleaned)).toEqual(['10.0.0.5 00:00:00:00:00:01']);
    // one record without a start: file order decides
    expect(pairs(iscFile(isc('10.0.1.5', '00:00:00:00:00:01', { starts: LATER }), isc('10.0.0.5', '00:00:00:00:00:01')))).toEqual(['10.0.0.5 00:00:00:00:00:01']);
  });

  it('a later inactive entry for the same address ends its lease', () => {
    expect(pairs(iscFile(isc('10.0.0.1', '00:00:00:00:00:01'), isc('10.0.0.1', '00:00:00:00:00:01', { bindingState: 'free' })))).toEqual([]);
    expect(pairs(keaFile(kea('10.0.0.1', '00:00:00:00:00:01'), kea('10.0.0.1', '00:00:00:00:00:01', { validLifetime: 0 })))).toEqual([]);
  });

  it('a later entry the server no longer holds, for another address of the MAC, leaves its lease alone', () => {
    // dhcpd after a new client-id (a reflashed BMC): the old address expires later and is appended;
    // and its rewrite of the file puts each pool's free and expired leases after the active ones
    expect(pairs(iscFile(isc('10.0.0.1', '00:00:00:00:00:01'), isc('10.0.0.9', '00:00:00:00:00:01', { bindingState: 'released' })))).toEqual(['10.0.0.1 00:00:00:00:00:01']);
    expect(pairs(iscFile(isc('10.0.0.1', '00:00:00:00:00:01'), isc('10.0.0.9', '00:00:00:00:00:01', { bindingState: 'free', ends: NOW })))).toEqual(['10.0.0.1 00:00:00:00:00:01']);
    expect(pairs(iscFile(isc('10.0.0.1', '00:00:00:00:00:01'), isc('10.0.0.9', '00:00:00:00:00:01', { ends: new Date('2025-01-01T00:00:00Z') })))).toEqual(['10.0.0.1 00:00:00:00:00:01']);
    // Kea: a reclaimed (state 2) or deleted row of the old address after the active one
    expect(pairs(keaFile(kea('10.0.0.1', '00:00:00:00:00:01'), kea('10.0.0.9', '00:00:00:00:00:01', { state: 2 })))).toEqual(['10.0.0.1 00:00:00:00:00:01']);
    expect(pairs(keaFile(kea('10.0.0.1', '00:00:00:00:00:01'), kea('10.0.0.9', '00:00:00:00:00:01', { validLifetime: 0 })))).toEqual(['10.0.0.1 00:00:00:00:00:01']);
  });

  it('one IP for two MACs: only the later holds it', () => {
    expect(pairs(iscFile(isc('10.0.0.1', '00:00:00:00:00:01'), isc('10.0.0.1', '00:00:00:00:00:02')))).toEqual(['10.0.0.1 00:00:00:00:00:02']);
    expect(pairs(keaFile(kea('10.0.0.1', '00:00:00:00:00:01'), kea('10.0.0.1', '00:00:00:00:00:02')))).toEqual(['10.0.0.1 00:00:00:00:00:02']);
    // a later entry without a MAC (abandoned) also takes the IP away
    expect(pairs(iscFile(isc('10.0.0.1', '00:00:00:00:00:01'), isc('10.0.0.1', undefined, { bindingState: 'abandoned' })))).toEqual([]);
  });

  it('filters by allowed CIDRs (default everything)', () => {
    const parsed = iscFile(isc('10.0.0.1', '00:00:00:00:00:01'), isc('10.1.0.1', '00:00:00:00:00:02'), isc('192.168.2.27', '00:00:00:00:00:03'));
    expect(pairs(parsed)).toHaveLength(3);
    expect(pairs(parsed, { allowedCidrs: [parseCidr('10.0.0.0/16')] })).toEqual(['10.0.0.1 00:00:00:00:00:01']);
    expect(pairs(parsed, { allowedCidrs: [parseCidr('10.1.0.0/16'), parseCidr('192.168.2.27')] })).toEqual(['10.1.0.1 00:00:00:00:00:02', '192.168.2.27 00:00:00:00:00:03']);
    expect(pairs(parsed, { allowedCidrs: [] })).toEqual([]);
  });

  it('ignores MACs in any case and spelling', () => {
    const parsed = iscFile(isc('10.0.0.1', 'ac:1f:6b:35:ac:62'), isc('10.0.0.2', 'ac:1f:6b:35:ab:2d'), isc('10.0.0.3', '00:00:00:00:00:01'));
    for (const spelling of ['AC:1F:6B:35:AC:62', 'ac-1f-6b-35-ac-62', 'ac1f.6b35.ac62', 'AC1F6B35AC62']) {
      expect(pairs(parsed, { ignoreMacs: [spelling, '0:0:0:0:0:1'] })).toEqual(['10.0.0.2 ac:1f:6b:35:ab:2d']);
    }
    expect(() => pairs(parsed, { ignoreMacs: ['not-a-mac'] })).toThrow(BmcError);
    try {
      pairs(parsed, { ignoreMacs: ['not-a-mac'] });
    } catch (err) {
      expect((err as BmcError).code).toBe('INVALID_ARGUMENT');
      expect((err as BmcError).message).toContain('not-a-mac');
    }
  });

  it('sorts by IP numerically', () => {
    const parsed = iscFile(isc('10.0.0.10', '00:00:00:00:00:01'), isc('10.0.0.9', '00:00:00:00:00:02'), isc('9.255.0.1', '00:00:00:00:00:03'), isc('10.0.0.100', '00:00:00:00:00:04'));
    expect(activeLeases(parsed, { now: NOW }).map((l) => l.ip)).toEqual(['9.255.0.1', '10.0.0.9', '10.0.0.10', '10.0.0.100']);
  });
});

describe('normalizeMac', () => {
  it.each([
    ['ac:1f:6b:35:ac:62', 'ac:1f:6b:35:ac:62'],
    ['AC:1F:6B:35:AC:62', 'ac:1f:6b:35:ac:62'],
    ['0:1:a:B:c:d', '00:01:0a:0b:0c:0d'],
    ['00-1A-2B-3C-4D-5E', '00:1a:2b:3c:4d:5e'],
    ['001a.2b3c.4d5e', '00:1a:2b:3c:4d:5e'],
    ['001A2B3C4D5E', '00:1a:2b:3c:4d:5e'],
    [' 00:1a:2b:3c:4d:5e ', '00:1a:2b:3c:4d:5e'],
  ])('%j → %j', (input, expected) => expect(normalizeMac(input)).toBe(expected));

  it.each(['', 'zz:00:00:00:00:00', '001:02:03', '0:1::2', '001a2', '00.1a.2b', 'a'.repeat(42)])('rejects %j', (input) => expect(normalizeMac(input)).toBeUndefined());
});

// ---- property: the rules hold on random append-only files ----

const mac = fc.constantFrom('00:00:00:00:00:01', '00:00:00:00:00:02', '00:00:00:00:00:03', '00:00:00:00:00:04');
const ip = fc.constantFrom('10.0.0.1', '10.0.0.2', '10.0.1.1', '192.168.0.1');
const entry: fc.Arbitrary<IscLeaseInput> = fc.record({
  ip,
  mac: fc.option(mac, { nil: undefined }),
  bindingState: fc.constantFrom('active', 'active', 'free', 'abandoned'),
  ends: fc.constantFrom(NOW, LATER, new Date('2025-01-01T00:00:00Z'), 'never' as const),
});

describe('activeLeases properties', () => {
  it('each result is the last entry of its IP, held, the last held one of its MAC, allowed and not ignored', () => {
    fc.assert(
      fc.property(fc.array(entry, { maxLength: 25 }), fc.constantFrom('0.0.0.0/0', '10.0.0.0/16', '10.0.0.0/24'), fc.subarray(['00:00:00:00:00:01', '00:00:00:00:00:03']), (entries, cidr, ignored) => {
        const allowed = parseCidr(cidr);
        const result = activeLeases(iscFile(...entries), { now: NOW, allowedCidrs: [allowed], ignoreMacs: ignored });
        const lastIndex = (pred: (e: IscLeaseInput, i: number) => boolean) => entries.map(pred).lastIndexOf(true);
        // held: the last entry of its address, with a MAC, active and not over, allowed and not ignored
        const held = (e: IscLeaseInput, i: number) =>
          e.mac !== undefined && i === lastIndex((x) => x.ip === e.ip) && e.bindingState === 'active' && (e.ends === 'never' || (e.ends as Date) > NOW) && cidrContains(allowed, e.ip) && !ignored.includes(e.mac);
        for (const lease of result) {
          const i = lastIndex((e, j) => e.mac === lease.mac && held(e, j));
          const e = entries[i] as IscLeaseInput;
          expect(i).toBe(lastIndex((x) => x.ip === lease.ip));
          expect(e.ip).toBe(lease.ip);
          expect(e.bindingState).toBe('active');
          expect(e.ends === 'never' || (e.ends as Date) > NOW).toBe(true);
          expect(cidrContains(allowed, lease.ip) && !ignored.includes(lease.mac)).toBe(true);
        }
        // and nothing that qualifies is missing: every MAC with a held entry
        const qualifying = new Set(entries.filter(held).map((e) => e.mac));
        expect(new Set(result.map((l) => l.mac))).toEqual(qualifying);
        // an entry that is not held, appended for another address of a MAC, takes nothing away
        const extra = result[0];
        if (extra !== undefined) {
          const other = ['10.0.0.1', '10.0.0.2', '10.0.1.1', '192.168.0.1'].find((a) => a !== extra.ip && !entries.some((x) => x.ip === a));
          if (other !== undefined) {
            const after = activeLeases(iscFile(...entries, { ip: other, mac: extra.mac, bindingState: 'free', ends: LATER }), { now: NOW, allowedCidrs: [allowed], ignoreMacs: ignored });
            expect(after).toEqual(result);
          }
        }
        const ips = result.map((l) => parseIpv4(l.ip));
        expect(ips).toEqual([...ips].sort((a, b) => a - b));
      }),
      { numRuns: 500 },
    );
  });
});
