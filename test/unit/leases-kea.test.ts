import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DecodeError } from '../../src/errors.js';
import { keaEscape, keaUnescape, KeaRowParser, parseKeaFile, parseKeaLeases } from '../../src/leases/kea.js';
import { KEA_HEADER, renderKeaLeases, type KeaLeaseInput } from '../../src/leases/render.js';
import { activeLeases } from '../../src/leases/select.js';
import { LeaseParseError, type KeaLease } from '../../src/leases/types.js';

const FIXTURE = readFileSync(new URL('../fixtures/leases/kea-leases4.csv', import.meta.url), 'utf8');
const at = (unix: number): Date => new Date(unix * 1000);

const active = (leases: KeaLease[], now: string) => activeLeases({ format: 'kea', leases }, { now: new Date(now) }).map((l) => `${l.ip} ${l.mac}`);

function parseError(text: string): LeaseParseError {
  try {
    parseKeaLeases(text);
  } catch (err) {
    expect(err).toBeInstanceOf(LeaseParseError);
    return err as LeaseParseError;
  }
  throw new Error('expected a LeaseParseError');
}

describe('parseKeaLeases on the fixture', () => {
  const leases = parseKeaLeases(FIXTURE);

  it('reads every row with its line', () => {
    expect(leases).toHaveLength(10);
    expect(leases.map((l) => l.line)).toEqual([2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
    expect(leases[0]).toEqual({
      ip: '10.1.0.10',
      mac: 'ac:1f:6b:35:ac:62',
      clientId: '01:ac:1f:6b:35:ac:62',
      validLifetime: 86400,
      expire: at(1767312000),
      subnetId: 1,
      hostname: 'bmc-r01-01',
      state: 0,
      poolId: 0,
      line: 2,
    });
  });

  it('normalises the MAC and decodes &#x2c in hostname and user_context', () => {
    const row = leases[1] as KeaLease;
    expect(row.mac).toBe('ac:1f:6b:35:ab:2d');
    expect(row.hostname).toBe('bmc,r01,02');
    const context = JSON.parse(row.userContext ?? 'null') as { ISC: { 'relay-agent-info': { 'sub-options': string } }; note: string };
    expect(context.note).toBe('a,b');
    expect(context.ISC['relay-agent-info']['sub-options']).toBe('0104000000010206AABBCCDDEEFF');
    expect(row.poolId).toBe(0);
  });

  it('reads states, deletions, infinite lifetimes and rows without hwaddr', () => {
    expect(leases.map((l) => l.state)).toEqual([0, 0, 1, 2, 0, 0, 0, 0, 0, 0]);
    expect(leases[5]).toMatchObject({ ip: '10.1.0.14', validLifetime: 0 });
    expect(leases[6]).toMatchObject({ ip: '10.1.0.15', validLifetime: 4294967295, expire: 'never', hostname: 'static-bmc' });
    expect(leases[7]?.mac).toBeUndefined();
  });

  it('selects the leases held now: state 0, not deleted, not expired, latest per MAC', () => {
    // 10.1.0.10 moved to 10.1.0.20 (same MAC, later line); .12 declined; .13 reclaimed; .14 deleted; .16 without MAC; .17 expired
    expect(active(leases, '2026-01-01T12:00:00Z')).toEqual(['10.1.0.11 ac:1f:6b:35:ab:2d', '10.1.0.15 7c:c2:55:16:57:dd', '10.1.0.20 ac:1f:6b:35:ac:62']);
    expect(active(leases, '2025-12-31T12:00:00Z')).toContain('10.1.0.17 e8:eb:d3:c1:cc:38');
    expect(active(leases, '2026-01-02T00:00:00Z')).toEqual(['10.1.0.15 7c:c2:55:16:57:dd', '10.1.0.20 ac:1f:6b:35:ac:62']);
    expect(active(leases, '2100-01-01T00:00:00Z')).toEqual(['10.1.0.15 7c:c2:55:16:57:dd']);
  });
});

describe('parseKeaLeases format details', () => {
  it('finds columns by name, in any order, with older headers lacking state and pool_id', () => {
    const text = 'hwaddr,address,expire,valid_lifetime\n00:00:00:00:00:01,10.0.0.1,1767312000,3600\n';
    expect(parseKeaLeases(text)).toEqual([{ ip: '10.0.0.1', mac: '00:00:00:00:00:01', validLifetime: 3600, expire: at(1767312000), state: 0, line: 2 }]);
  });

  it('re-joins a user_context with raw commas and still finds the columns after it', () => {
    const text = `${KEA_HEADER}\n10.0.0.1,00:00:00:00:00:01,,3600,1767312000,1,0,0,h,0,{"a":1,"b":[1,2],"c":"x,y"},7\n`;
    const [row] = parseKeaLeases(text);
    expect(row?.userContext).toBe('{"a":1,"b":[1,2],"c":"x,y"}');
    expect(row?.poolId).toBe(7);
  });

  it('re-joins any JSON user_context with raw commas, escapes and brackets inside its strings included, and finds the column after it', () => {
    const context = fc.json().filter((j) => !/[\n\r]/.test(j) && j.startsWith('{'));
    fc.assert(
      fc.property(context, fc.nat(99), (json, pool) => {
        const [row] = parseKeaLeases(`${KEA_HEADER}\n10.0.0.1,00:00:00:00:00:01,,3600,1767312000,1,0,0,h,0,${json},${pool}\n`);
        expect(row?.userContext).toBe(json);
        expect(row?.poolId).toBe(pool);
      }),
      { numRuns: 500 },
    );
  });

  it('a user_context that never closes over a row of half a million commas is read in one pass over the row', () => {
    // each field was rescanned with all before it: ~10^11 steps for this row, the main thread stalled for minutes
    const row = `10.0.0.1,00:00:00:00:00:01,,3600,1767312000,1,0,0,h,0,{${',['.repeat(500_000)},7`;
    const [lease] = parseKeaLeases(`${KEA_HEADER}\n${row}\n`);
    expect(lease?.userContext?.length).toBe(1 + 2 * 500_000 + 2);
    expect(lease?.poolId).toBeUndefined();
  });

  it('accepts CRLF, blank lines, an empty file and a header-only file', () => {
    expect(parseKeaLeases('')).toEqual([]);
    expect(parseKeaLeases(`${KEA_HEADER}\n`)).toEqual([]);
    const rows = parseKeaLeases(`${KEA_HEADER}\r\n\r\n10.0.0.1,0:0:0:0:0:1,,3600,1767312000,1,0,0,,0,,0\r\n`);
    expect(rows).toEqual([expect.objectContaining({ ip: '10.0.0.1', mac: '00:00:00:00:00:01', line: 3, poolId: 0 })]);
  });

  it('unescapes &#xHH in both cases and leaves other ampersands alone', () => {
    expect(keaUnescape('a&#x2cb&#x2Cc & d &#xzz')).toBe('a,b,c & d &#xzz');
    expect(keaEscape('a,b&c')).toBe('a&#x2cb&#x26c');
  });
});

describe('parseKeaLeases errors', () => {
  it.each([
    ['address,hwaddr,valid_lifetime\n', 1, /lacks the 'expire' column/],
    // Kea's DHCPv6 lease file (CSVLeaseFile6): every row an IPv6 address, the file the wrong one
    ['address,duid,valid_lifetime,expire,subnet_id,pref_lifetime,lease_type,iaid,prefix_len,fqdn_fwd,fqdn_rev,hostname,hwaddr,state,user_context,hwtype,hwaddr_source,pool_id\n2001:db8::1,00:01,3600,1767312000,1,1800,0,1,128,0,0,,00:00:00:00:00:01,0,,1,0,0\n', 1, /a Kea DHCPv6 lease file \(its header has the 'duid' column\)/],
    ['address,duid,valid_lifetime,expire,subnet_id,pref_lifetime,lease_type,iaid,prefix_len,fqdn_fwd,fqdn_rev,hostname\n', 1, /DHCPv6/],
  ])('%j fails whole on line %d', (text, line, message) => {
    const err = parseError(text);
    expect(err).toBeInstanceOf(DecodeError);
    expect(err.line).toBe(line);
    expect(err.message).toContain(`line ${line}:`);
    expect(err.message).toMatch(message);
    expect(err.problem).toBe('structure');
  });

  it.each([
    [`${KEA_HEADER}\n10.0.0.1,00:00:00:00:00:01,,3600,1767312000,1,0,0,,0,,0\n10.0.0.300,00:00:00:00:00:02,,3600,1767312000,1,0,0,,0,,0\n`, 3, /invalid IPv4 address "10\.0\.0\.300"/],
    [`${KEA_HEADER}\n,00:00:00:00:00:02,,3600,1767312000,1,0,0,,0,,0\n`, 2, /invalid IPv4 address ""/],
    [`${KEA_HEADER}\n10.0.0.1,00:00:00:00:00:02,,3600,soon,1,0,0,,0,,0\n`, 2, /invalid expire "soon"/],
    [`${KEA_HEADER}\n10.0.0.1,00:00:00:00:00:02,,-1,1767312000,1,0,0,,0,,0\n`, 2, /invalid valid_lifetime/],
    [`${KEA_HEADER}\n10.0.0.1,00:00:00:00:00:02,,4294967296,1767312000,1,0,0,,0,,0\n`, 2, /valid_lifetime/],
    [`${KEA_HEADER}\n10.0.0.1,00:zz:00:00:00:02,,3600,1767312000,1,0,0,,0,,0\n`, 2, /invalid hwaddr/],
    [`${KEA_HEADER}\n10.0.0.1,00:00:00:00:00:02,,3600,1767312000,1,0,0,,x,,0\n`, 2, /invalid state/],
  ])('%j: the row on line %d is left out, named', (text, line, message) => {
    const rows = parseKeaFile(text);
    expect(rows.skipped).toHaveLength(1);
    const err = rows.skipped[0] as LeaseParseError;
    expect(err).toBeInstanceOf(DecodeError);
    expect(err.line).toBe(line);
    expect(err.message).toContain(`line ${line}:`);
    expect(err.message).toMatch(message);
    expect(err.problem).toBe('malformed');
    expect(rows.leases.map((l) => l.line)).not.toContain(line);
  });

  it('gives no rows for an empty file', () => {
    expect(parseKeaFile('')).toEqual({ leases: [], skipped: [], nextLine: 1, rest: 'none' });
  });

  it('a row cut short by a power loss and merged with the next one Kea appended is left out, the rows around it read (as Kea\'s loader discards it)', () => {
    const row = (ip: string, mac: string) => `${ip},${mac},,3600,1767312000,1,0,0,,0,,0`;
    // the file's last row was cut after `aa:bb:`; Kea, restarted, appends after it
    const text = `${KEA_HEADER}\n${row('10.0.0.1', '00:00:00:00:00:01')}\n10.0.0.2,aa:bb:${row('10.0.0.3', '00:00:00:00:00:03')}\n${row('10.0.0.4', '00:00:00:00:00:04')}\n`;
    const rows = parseKeaFile(text);
    expect(rows.leases.map((l) => l.ip)).toEqual(['10.0.0.1', '10.0.0.4']);
    expect(rows.skipped.map((e) => e.message)).toEqual(['lease file line 3: invalid hwaddr "aa:bb:10.0.0.3"']);
  });
});

describe('parseKeaLeases on a file Kea is still writing', () => {
  const ROW1 = '10.0.0.1,00:00:00:00:00:01,,3600,1767312000,1,0,0,,0,,0';
  const ROW2 = '10.0.0.2,00:00:00:00:00:02,,86400,1767956400,1,0,0,,0,,0';
  it('leaves a last row without its newline and short of fields for the next read', () => {
    // read mid-append: the row is cut inside expire, which would otherwise parse as 1970
    expect(parseKeaLeases(`${KEA_HEADER}\n${ROW1}\n${ROW2.slice(0, 36)}`).map((l) => l.ip)).toEqual(['10.0.0.1']);
    expect(parseKeaLeases(`${KEA_HEADER}\n${ROW1}\n10.0.0.2`).map((l) => l.ip)).toEqual(['10.0.0.1']);
    // the same cut followed by its newline is a real row, and a bad one: left out
    expect(parseKeaFile(`${KEA_HEADER}\n${ROW1}\n10.0.0.2,00:00:00:00:00:02,,36\n`).skipped.map((e) => e.message)).toEqual(['lease file line 3: missing expire ""']);
  });
  it('reads a last row with all its fields and no newline (a file written by hand)', () => {
    expect(parseKeaLeases(`${KEA_HEADER}\n${ROW1}\n${ROW2}`).map((l) => l.ip)).toEqual(['10.0.0.1', '10.0.0.2']);
  });
});

// ---- properties ----

function parseOrLeaseError(text: string): void {
  const lines = text.split('\n').length;
  const sane = (err: unknown): void => {
    if (!(err instanceof LeaseParseError) || !err.message.includes(`line ${err.line}:`) || err.line < 1 || err.line > lines) throw err;
  };
  try {
    parseKeaFile(text).skipped.forEach(sane);
  } catch (err) {
    sane(err);
  }
}

const second = fc.integer({ min: 0, max: 253402300799 }).map(at);
const mac = fc.uint8Array({ minLength: 6, maxLength: 6 }).map((b) => [...b].map((x) => x.toString(16).padStart(2, '0')).join(':'));
const maybe = <T>(arb: fc.Arbitrary<T>) => fc.option(arb, { nil: undefined });
const text = fc.string({ minLength: 1, maxLength: 30 }).filter((s) => !/[\n\r]/.test(s) && s.trim() === s);
const leaseInput: fc.Arbitrary<KeaLeaseInput> = fc
  .record({
    ip: fc.ipV4(),
    mac: maybe(mac),
    clientId: maybe(mac),
    validLifetime: fc.integer({ min: 0, max: 4294967294 }),
    expire: fc.oneof({ weight: 5, arbitrary: second }, { weight: 1, arbitrary: fc.constant('never' as const) }),
    subnetId: maybe(fc.nat()),
    hostname: maybe(text),
    state: fc.integer({ min: 0, max: 4 }),
    userContext: maybe(fc.json().filter((j) => !/[\n\r]/.test(j) && j.trim() === j && j !== '')),
    poolId: maybe(fc.nat()),
  })
  .map((l) => (l.expire === 'never' ? { ...l, validLifetime: 4294967295 } : l));

describe('parseKeaLeases properties', () => {
  it('random text gives rows or a LeaseParseError, nothing else', () => {
    fc.assert(fc.property(fc.string({ maxLength: 300 }), parseOrLeaseError), { numRuns: 2000 });
    fc.assert(fc.property(fc.string({ maxLength: 300 }), (s) => parseOrLeaseError(`${KEA_HEADER}\n${s}`)), { numRuns: 2000 });
  });

  it('mutated and truncated copies of the fixture give rows or a LeaseParseError', () => {
    const edit = fc.record({ at: fc.nat(), cut: fc.integer({ min: 0, max: 40 }), insert: fc.oneof(fc.constantFrom(',', '\n', '&#x', '{', '"', ''), fc.string({ maxLength: 6 })) });
    fc.assert(
      fc.property(fc.array(edit, { minLength: 1, maxLength: 4 }), (edits) => {
        const mutated = edits.reduce((t, e) => {
          const p = e.at % (t.length + 1);
          return t.slice(0, p) + e.insert + t.slice(p + e.cut);
        }, FIXTURE);
        parseOrLeaseError(mutated);
      }),
      { numRuns: 2000 },
    );
  });

  it('a file cut anywhere gives the rows of its whole lines, and at most the cut row with the fields selection uses intact', () => {
    fc.assert(
      fc.property(fc.array(leaseInput, { minLength: 1, maxLength: 8 }), fc.nat(), (inputs, at) => {
        const full = renderKeaLeases(inputs);
        // past the header, which Kea writes in one go when it starts a file
        const headerEnd = full.indexOf('\n') + 1;
        const cut = full.slice(0, headerEnd + (at % (full.length - headerEnd + 1)));
        const whole = parseKeaLeases(cut.slice(0, cut.lastIndexOf('\n') + 1));
        const rows = parseKeaLeases(cut);
        expect(rows.slice(0, whole.length)).toEqual(whole);
        expect(rows.length - whole.length).toBeLessThanOrEqual(1);
        if (rows.length > whole.length) {
          const pick = ({ ip, mac, validLifetime, expire, state }: (typeof rows)[number]) => ({ ip, mac, validLifetime, expire, state });
          expect(pick(rows[whole.length]!)).toEqual(pick(parseKeaLeases(full)[whole.length]!));
        }
        // a cut row left out is short of fields, and the error for it (once it stays so) names its line
        const rest = cut.slice(cut.lastIndexOf('\n') + 1);
        if (rows.length === whole.length && rest !== '') {
          const line = cut.split('\n').length;
          const err = new KeaRowParser(KEA_HEADER).cutShort(rest, line);
          expect(err.message).toMatch(new RegExp(`^lease file line ${line}: unterminated row \\(\\d+ of the header's ${KEA_HEADER.split(',').length} fields, no newline at the end of the file\\): `));
          expect(Number(/\((\d+) of/.exec(err.message)?.[1])).toBeLessThan(KEA_HEADER.split(',').length);
        }
      }),
      { numRuns: 1000 },
    );
  });

  it('a row that cannot be read is left out, named with its line, and the others read as if it were not there', () => {
    const bad = fc.constantFrom('10.0.0.300,00:00:00:00:00:01,,3600,1767312000,1,0,0,,0,,0', '10.0.0.2,aa:bb:10.0.0.3,00:00:00:00:00:03,,3600,1767312000,1,0,0,,0,,0', '10.0.0.1,00:00:00:00:00:01,,3600,soon,1,0,0,,0,,0', '\0\0\0\0', 'garbage');
    fc.assert(
      fc.property(fc.array(fc.oneof(leaseInput.map((l) => ({ good: l })), bad.map((b) => ({ bad: b }))), { maxLength: 12 }), (items) => {
        const rowOf = (item: (typeof items)[number]): string => ('good' in item ? renderKeaLeases([item.good]).slice(KEA_HEADER.length + 1) : `${item.bad}\n`);
        const rows = parseKeaFile(`${KEA_HEADER}\n${items.map(rowOf).join('')}`);
        const good = items.flatMap((item) => ('good' in item ? [item.good] : []));
        expect(rows.leases.map(({ line: _line, ...rest }) => rest)).toEqual(good);
        expect(rows.skipped.map((e) => e.line)).toEqual(items.flatMap((item, i) => ('bad' in item ? [i + 2] : [])));
        expect(rows.leases.map((l) => l.line)).toEqual(items.flatMap((item, i) => ('good' in item ? [i + 2] : [])));
      }),
      { numRuns: 300 },
    );
  });

  it('rendered rows parse back to the same records', () => {
    fc.assert(
      fc.property(fc.array(leaseInput, { maxLength: 12 }), (inputs) => {
        const parsed = parseKeaLeases(renderKeaLeases(inputs));
        expect(parsed.map(({ line: _line, ...rest }) => rest)).toEqual(inputs);
        expect(parsed.map((l) => l.line)).toEqual(inputs.map((_l, i) => i + 2));
      }),
      { numRuns: 300 },
    );
  });
});
