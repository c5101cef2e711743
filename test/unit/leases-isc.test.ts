import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DecodeError } from '../../src/errors.js';
import { parseIscDeclarations, parseIscLeases } from '../../src/leases/isc.js';
import { quoteIsc, renderIscLeases, type IscLeaseInput } from '../../src/leases/render.js';
import { activeLeases } from '../../src/leases/select.js';
import { LeaseParseError, type IscLease, type LeaseProblem } from '../../src/leases/types.js';

const fixture = (name: string): string => readFileSync(new URL(`../fixtures/leases/${name}`, import.meta.url), 'utf8');
const SMALL = fixture('dhcpd.leases');
const BIG = fixture('dhcpd.test.leases');

const active = (leases: IscLease[], now: string, ignoreMacs: string[] = []) =>
  activeLeases({ format: 'isc', leases }, { now: new Date(now), ignoreMacs }).map((l) => `${l.ip} ${l.mac}`);

/** The one problem a text has: the declaration left out, the one it stops inside, or the error that fails it whole. */
function problemOf(text: string): LeaseParseError {
  let found: LeaseParseError[];
  try {
    const d = parseIscDeclarations(text);
    found = [...d.skipped, ...(d.cut === undefined ? [] : [d.cut])];
  } catch (err) {
    expect(err).toBeInstanceOf(LeaseParseError);
    return err as LeaseParseError;
  }
  expect(found).toHaveLength(1);
  return found[0] as LeaseParseError;
}

/** Parses, and lets nothing but a LeaseParseError escape; every error, thrown or naming a declaration left out or cut short, with a sane line named in the message. */
function parseOrLeaseError(text: string): void {
  const lines = text.split('\n').length;
  const sane = (err: unknown): void => {
    if (!(err instanceof LeaseParseError)) throw err;
    if (!(err.line >= 1 && err.line <= lines && err.message.includes(`line ${err.line}:`))) throw err;
  };
  try {
    const d = parseIscDeclarations(text);
    for (const err of [...d.skipped, ...(d.cut === undefined ? [] : [d.cut])]) sane(err);
    expect(d.skipped.every((err) => err.problem !== 'structure')).toBe(true);
  } catch (err) {
    sane(err);
  }
}

describe('parseIscLeases on the reference files', () => {
  it('reads both leases of dhcpd.leases with every field', () => {
    const leases = parseIscLeases(SMALL);
    expect(leases).toEqual([
      {
        ip: '192.168.2.27',
        mac: 'ac:1f:6b:35:ac:62',
        starts: new Date('2019-06-27T06:40:21Z'),
        ends: new Date('2020-06-27T06:50:21Z'),
        bindingState: 'active',
        nextBindingState: 'free',
        uid: '\x01\xac\x1fk5\xacb',
        vars: { 'vendor-class-identifier': 'udhcp 1.23.1' },
        line: 1,
      },
      {
        ip: '192.168.2.30',
        mac: 'ac:1f:6b:35:ab:2d',
        starts: new Date('2019-06-27T06:40:06Z'),
        ends: new Date('2020-06-27T06:50:06Z'),
        bindingState: 'active',
        nextBindingState: 'free',
        uid: '\x01\xac\x1fk5\xab-',
        vars: { 'vendor-class-identifier': 'udhcp 1.23.1' },
        line: 12,
      },
    ]);
  });

  it('drops each lease of dhcpd.leases once its ends has passed', () => {
    const leases = parseIscLeases(SMALL);
    expect(active(leases, '2020-01-01T00:00:00Z')).toEqual(['192.168.2.27 ac:1f:6b:35:ac:62', '192.168.2.30 ac:1f:6b:35:ab:2d']);
    // 192.168.2.30 ends at 06:50:06, 192.168.2.27 at 06:50:21
    expect(active(leases, '2020-06-27T06:50:10Z')).toEqual(['192.168.2.27 ac:1f:6b:35:ac:62']);
    expect(active(leases, '2020-06-27T06:50:21Z')).toEqual([]);
  });

  it('reads all 124 blocks of dhcpd.test.leases past the authoring-byte-order header', () => {
    const leases = parseIscLeases(BIG);
    expect(leases).toHaveLength(124);
    expect(leases[0]).toMatchObject({ ip: '192.168.1.248', mac: '00:00:00:00:00:00', bindingState: 'free', line: 7 });
    expect(leases.filter((l) => l.bindingState === 'active').map((l) => l.ip)).toEqual(['192.168.2.174', '192.168.2.174', '192.168.1.254', '192.168.1.229', '10.0.0.1']);
    expect(leases.filter((l) => l.bindingState === 'abandoned').map((l) => [l.ip, l.mac])).toEqual([
      ['10.0.0.128', undefined],
      ['10.0.0.129', undefined],
      ['10.0.0.130', undefined],
    ]);
    expect(leases.find((l) => l.hostname !== undefined)).toMatchObject({ ip: '192.168.2.174', hostname: 'storage01' });
    // `uid "\001P|o\"\221\356";` holds an escaped quote
    expect(leases.find((l) => l.ip === '192.168.1.247')?.uid).toBe('\x01P|o"\x91\xee');
    const last = leases.at(-1);
    expect(last).toMatchObject({ ip: '10.0.0.1', mac: '00:00:00:00:00:01', ends: new Date('2080-01-10T14:44:02Z'), line: 1017 });
    expect(last?.uid).toBe('\x01<\xec\xef\x82\x06 ');
  });

  it('keeps only the latest entry per MAC and drops expired ones (dhcpd.test.leases)', () => {
    const leases = parseIscLeases(BIG);
    // 192.168.2.174 (twice) and 192.168.1.254 are active for 00:00:00:00:00:00 too, but 192.168.1.229 comes later
    expect(active(leases, '2026-01-09T00:00:00Z')).toEqual(['10.0.0.1 00:00:00:00:00:01', '192.168.1.229 00:00:00:00:00:00']);
    // 192.168.1.229 ends 2026/01/10 14:39:27
    expect(active(leases, '2026-01-10T14:39:28Z')).toEqual(['10.0.0.1 00:00:00:00:00:01']);
    expect(active(leases, '2080-01-10T14:44:02Z')).toEqual([]);
    expect(active(leases, '2026-01-09T00:00:00Z', ['00:00:00:00:00:01'])).toEqual(['192.168.1.229 00:00:00:00:00:00']);
  });

  it('lets a later inactive entry for the same address end its lease, not one for another address of the MAC', () => {
    // 192.168.1.229 freed: the MAC's other active lease in the file (192.168.1.254, until 2026-01-10) is its lease now
    const released = `${BIG}lease 192.168.1.229 {\n  binding state free;\n  hardware ethernet 00:00:00:00:00:00;\n}\n`;
    expect(active(parseIscLeases(released), '2026-01-09T00:00:00Z')).toEqual(['10.0.0.1 00:00:00:00:00:01', '192.168.1.254 00:00:00:00:00:00']);
    // dhcpd keeps the hardware address on a released lease of another address: the MAC keeps its own
    const elsewhere = `${BIG}lease 192.168.9.9 {\n  ends never;\n  binding state released;\n  hardware ethernet 00:00:00:00:00:00;\n}\n`;
    expect(active(parseIscLeases(elsewhere), '2026-01-09T00:00:00Z')).toEqual(['10.0.0.1 00:00:00:00:00:01', '192.168.1.229 00:00:00:00:00:00']);
  });

  it('a truncated copy gives the leases before the one it ends in, and names that one with its line', () => {
    const leases = parseIscLeases(BIG);
    for (const [i, lease] of leases.entries()) {
      if (i % 10 !== 3) continue;
      const lines = BIG.split('\n');
      const d = parseIscDeclarations(lines.slice(0, lease.line + 2).join('\n')); // the lease line and two statements
      expect(d.leases).toEqual(leases.slice(0, i));
      expect(d.cut?.line).toBe(lease.line);
      expect(d.cut?.message).toContain(`line ${lease.line}:`);
      expect(d.cut?.message).toContain(lease.ip);
      expect(d.cut?.problem).toBe('cut-short');
    }
  });
});

const TRICKY = `# leading comment with "quote and { brace
authoring-byte-order little-endian;
server-duid "\\000\\001\\000\\001%\\304\\"\\327\\000\\014)\\022\\"\\177";

failover peer "dhcp-failover" state {
  my state normal at 4 2026/01/08 14:44:02;
  partner state normal at 4 2026/01/08 14:44:02;
}

host bmc-fixed {
  dynamic;
  hardware ethernet 0c:c4:7a:00:00:01;
  fixed-address 10.0.0.99;
}

lease 10.0.0.2 { # comment after the brace }
  starts 4 2026/01/08 14:44:02;
  ends never;
  tstp 4 2026/01/08 14:44:02;
  cltt 4 2026/01/08 14:44:02;
  binding state active;
  next binding state free;
  rewind binding state free;
  hardware ethernet 0C:C4:7A:0:a:1;
  uid "\\001\\014\\304z\\000\\012\\x41\\t";
  set vendor-class-identifier = "weird; value } with { braces # and hash";
  set ddns-fwd-name = "say \\"hi\\"\\\\";
  option agent.circuit-id "eth0;1";
  option agent.remote-id 0:1:2:3;
  client-hostname "bmc;}{\\"x\\"";
  on expiry {
    set foo = "bar;}";
  }
}
class "vendor" { match option vendor-class-identifier; }
subclass "vendor" "udhcp";
lease 10.0.0.3 {
  starts epoch 1767225600; # Thu Jan 01 00:00:00 2026
  ends epoch 1767312000; # Fri Jan 02 00:00:00 2026
  binding state active;
  hardware ethernet 0c:c4:7a:00:00:03;
  uid 01:0c:c4:7a:00:00:03;
}
ia-na "\\001\\000\\000\\000" {
  cltt 4 2026/01/08 14:44:02;
  iaaddr 2001:db8::1 {
    binding state active;
  }
}
`;

const TRICKY_LEASES = [
  {
    ip: '10.0.0.2',
    starts: new Date('2026-01-08T14:44:02Z'),
    ends: 'never',
    bindingState: 'active',
    nextBindingState: 'free',
    mac: '0c:c4:7a:00:0a:01',
    uid: '\x01\x0c\xc4z\x00\x0aA\t',
    vars: { 'vendor-class-identifier': 'weird; value } with { braces # and hash', 'ddns-fwd-name': 'say "hi"\\' },
    hostname: 'bmc;}{"x"',
    line: 16,
  },
  {
    ip: '10.0.0.3',
    starts: new Date('2026-01-01T00:00:00Z'),
    ends: new Date('2026-01-02T00:00:00Z'),
    bindingState: 'active',
    mac: '0c:c4:7a:00:00:03',
    uid: '\x01\x0c\xc4\x7a\x00\x00\x03',
    line: 37,
  },
];

describe('parseIscLeases on tricky syntax', () => {
  it('handles comments, quotes with ; { } #, escapes, other blocks, ends never and epoch dates', () => {
    expect(parseIscLeases(TRICKY)).toEqual(TRICKY_LEASES);
  });

  it('reads the same with CRLF line endings and tabs', () => {
    const crlf = TRICKY.replace(/\n/g, '\r\n').replace(/ {2}/g, '\t');
    expect(parseIscLeases(crlf)).toEqual(TRICKY_LEASES);
  });

  it('gives no leases for an empty file or one with only header statements', () => {
    expect(parseIscLeases('')).toEqual([]);
    expect(parseIscLeases('# nothing\nauthoring-byte-order little-endian;\nserver-duid "x;y";\n')).toEqual([]);
  });

  it('reads `hardware <type>;` without an address (dhcpd writes it for a chaddr of length 0) as a lease without a MAC, which is not held', () => {
    // dhcpd's write_lease prints `hardware %s %s;` with an empty address, and reads it back
    const text = `${renderIscLeases([{ ip: '10.0.0.1', mac: '00:00:00:00:00:01', ends: 'never', bindingState: 'active' }])}lease 10.0.0.2 {\n  ends never;\n  binding state active;\n  hardware ethernet ;\n}\nlease 10.0.0.3 {\n  hardware infiniband;\n}\n`;
    const leases = parseIscLeases(text);
    expect(leases.slice(1)).toEqual([
      { ip: '10.0.0.2', ends: 'never', bindingState: 'active', line: 12 },
      { ip: '10.0.0.3', ends: undefined, line: 17 },
    ]);
    expect(active(leases, '2026-01-01T00:00:00Z')).toEqual(['10.0.0.1 00:00:00:00:00:01']);
  });

  it('keeps statements it does not know out of the record', () => {
    const [lease] = parseIscLeases('lease 10.0.0.4 {\n  future-statement 1 2 "3";\n  binding state backup;\n}\n');
    expect(lease).toEqual({ ip: '10.0.0.4', ends: undefined, bindingState: 'backup', line: 1 });
  });
});

describe('parseIscLeases errors', () => {
  it.each<[string, number, RegExp, LeaseProblem]>([
    ['lease 10.0.0.1 {\n  starts 4 2026/01/08 14:44:02;\n', 1, /unterminated block of lease 10\.0\.0\.1/, 'cut-short'],
    // a string never spans a newline in dhcpd's file: it ends there, the declaration is left out
    ['\n\nlease 10.0.0.1 {\n  uid "abc;\n}\n', 4, /unterminated string "\\"abc;" \(a newline before its closing quote/, 'malformed'],
    ['lease 10.0.0.1 {\n  uid "a\\"bc\\\n}\n', 2, /unterminated string/, 'malformed'],
    ['lease 10.0.0.1 {\n  uid "abc\\', 2, /unterminated string/, 'cut-short'],
    ['lease {\n}\n', 1, /without an IP address/, 'malformed'],
    ['lease "10.0.0.1" {\n}\n', 1, /without an IP address/, 'malformed'],
    ['lease 10.0.0.256 {\n}\n', 1, /invalid IPv4/, 'malformed'],
    ['lease 10.0.0.1;\n', 1, /without a block/, 'malformed'],
    ['lease 10.0.0.1 {\n  starts 4 2026/13/08 14:44:02;\n}\n', 2, /bad date in 'starts'/, 'malformed'],
    ['lease 10.0.0.1 {\n\n  ends 4 2026/02/30 14:44:02;\n}\n', 3, /bad date in 'ends'/, 'malformed'],
    ['lease 10.0.0.1 {\n  ends 4 2026/01/08 24:00:00;\n}\n', 2, /bad date/, 'malformed'],
    ['lease 10.0.0.1 {\n  ends 4 2026-01-08 10:00:00;\n}\n', 2, /bad date/, 'malformed'],
    ['lease 10.0.0.1 {\n  ends 2026/01/08 10:00:00;\n}\n', 2, /bad date/, 'malformed'],
    ['lease 10.0.0.1 {\n  ends soon;\n}\n', 2, /bad date/, 'malformed'],
    ['lease 10.0.0.1 {\n  binding state active\n}\n', 2, /missing ';'/, 'malformed'],
    ['lease 10.0.0.1 {\n  binding active;\n}\n', 2, /malformed 'binding'/, 'malformed'],
    ['lease 10.0.0.1 {\n  hardware ethernet zz:zz:zz;\n}\n', 2, /invalid hardware address/, 'malformed'],
    ['lease 10.0.0.1 {\n  hardware;\n}\n', 2, /malformed 'hardware'/, 'malformed'],
    ['# comment\n}\n', 2, /unexpected '}'/, 'structure'],
    ['authoring-byte-order little-endian', 1, /not ended by ';'/, 'cut-short'],
    ['failover peer "x" state {\n  my state normal;\n', 1, /unterminated block/, 'cut-short'],
  ])('%j: line %d', (text, line, message, problem) => {
    const err = problemOf(text);
    expect(err).toBeInstanceOf(DecodeError);
    expect(err.code).toBe('DECODE');
    expect(err.line).toBe(line);
    expect(err.message).toContain(`line ${line}:`);
    expect(err.message).toMatch(message);
    expect(err.problem).toBe(problem);
    // only a file that cannot be read as a whole fails parseIscLeases
    if (problem === 'structure') expect(() => parseIscLeases(text)).toThrow(err.message);
    else expect(parseIscLeases(text)).toEqual([]);
  });

  it('a block never closed (dhcpd stopped writing it: a full disk) ends where the next lease declaration starts: left out, named with its line, the leases appended after it read', () => {
    const lease = (i: number) => renderIscLeases([{ ip: `10.0.0.${i}`, mac: `00:00:00:00:00:0${i}`, ends: 'never', bindingState: 'active' }]).slice(renderIscLeases([]).length);
    const head = renderIscLeases([]) + lease(1);
    const at = (text: string, part: string) => text.slice(0, text.indexOf(part)).split('\n').length;
    const cases = [
      // cut after a statement; cut inside a nested block; a host declaration never closed; two in a row
      `${head}lease 10.0.0.8 {\n  starts 4 2026/01/08 14:44:02;\n${lease(2)}${lease(3)}`,
      `${head}lease 10.0.0.8 {\n  on expiry {\n    set x = "y";\n${lease(2)}${lease(3)}`,
      `${head}host bmc-8 {\n  hardware ethernet 00:00:00:00:00:08;\n${lease(2)}${lease(3)}`,
      `${head}lease 10.0.0.8 {\n  starts 4 2026/01/08 14:44:02;\nlease 10.0.0.9 {\n${lease(2)}${lease(3)}`,
      // cut inside a statement, the next lease written right after it (dhcpd writes `lease <ip> {` with nothing before it)
      `${head}lease 10.0.0.8 {\n  starts 4 2026/01/08 14:44:02;\n  ends 4 2026/0${lease(2)}${lease(3)}`,
      `${head}lease 10.0.0.8 {\n  on expiry {\n    set x = "y${'"'};\n  }\n  hardware ethernet 00:00:0${lease(2)}${lease(3)}`,
    ];
    for (const text of cases) {
      const d = parseIscDeclarations(text);
      expect(d.leases.map((l) => l.ip)).toEqual(['10.0.0.1', '10.0.0.2', '10.0.0.3']);
      expect(d.cut).toBeUndefined();
      expect(d.skipped.length).toBeGreaterThanOrEqual(1);
      expect(d.skipped[0]?.line).toBe(at(text, text.includes('host') ? 'host' : 'lease 10.0.0.8'));
      expect(d.skipped.at(-1)?.message).toContain(`not closed before the lease declaration on line ${at(text, 'lease 10.0.0.2')}`);
      expect(d.skipped.every((e) => e.problem === 'cut-short')).toBe(true);
    }
    expect(parseIscDeclarations(cases[0]!).skipped[0]?.message).toBe(`lease file line 12: lease 10.0.0.8 not closed before the lease declaration on line 14 (its writer stopped inside it)`);
    expect(parseIscDeclarations(cases[2]!).skipped[0]?.message).toBe(`lease file line 12: declaration "host bmc-8" not closed before the lease declaration on line 14 (its writer stopped inside it)`);
    // a lease declaration cut inside its `lease <ip> {`, the next one written right after it
    const header = parseIscDeclarations(`${head}lease 10.0.${lease(2)}`);
    expect(header.leases.map((l) => l.ip)).toEqual(['10.0.0.1', '10.0.0.2']);
    expect(header.skipped.map((e) => e.message)).toEqual(['lease file line 12: statement "lease 10.0." not finished before the lease declaration on line 12 (its writer stopped inside it)']);
    // a top-level statement cut short, the next lease written right after it: the statement is left out too
    const statement = parseIscDeclarations(`${head}authoring-byte-order little-en${lease(2)}`);
    expect(statement.leases.map((l) => l.ip)).toEqual(['10.0.0.1', '10.0.0.2']);
    expect(statement.skipped.map((e) => e.message)).toEqual(['lease file line 12: statement "authoring-byte-order little-en" not finished before the lease declaration on line 12 (its writer stopped inside it)']);
    // a block never closed at the end of the text is one still being written
    const open = `${head}lease 10.0.0.8 {\n  starts 4 2026/01/08 14:44:02;\n`;
    expect(parseIscDeclarations(open)).toMatchObject({ skipped: [], cut: { line: 12, problem: 'cut-short' }, end: head.length - 1 });
  });

  it('a comment the text ends inside (a file copied in place, read before its header\'s first newline) is a declaration cut short, not a file of no leases; one ended by its newline is nothing', () => {
    const header = '# The format of this file is documented in the dhcpd.leases(5) manual page.\n';
    for (const cut of ['#', '# The format', `${header}# This lease`]) {
      const d = parseIscDeclarations(cut);
      expect(d.leases).toEqual([]);
      expect(d.cut?.problem).toBe('cut-short');
      expect(d.cut?.message).toMatch(/comment not ended by a newline/);
    }
    expect(parseIscDeclarations(header).cut).toBeUndefined();
    const lease = 'lease 10.0.0.1 {\n  starts 4 2026/01/01 00:00:00;\n  ends never;\n  binding state active;\n  hardware ethernet 00:00:00:00:00:01;\n}\n';
    const d = parseIscDeclarations(`${header}${lease}# a comment of an ed`);
    expect(d.leases.map((l) => l.ip)).toEqual(['10.0.0.1']);
    expect(d.cut?.problem).toBe('cut-short');
    expect(d.end).toBe(header.length + lease.length - 1); // after its closing brace
  });

  it('a string broken off at a newline (its writer stopped inside it; dhcpd writes every string on one line) ends there: its declaration is left out, the declarations after it read', () => {
    const lease = (i: number) => renderIscLeases([{ ip: `10.0.0.${i}`, mac: `00:00:00:00:00:0${i}`, ends: 'never', bindingState: 'active', hostname: `bmc-${i}` }]).slice(renderIscLeases([]).length);
    const head = renderIscLeases([]) + lease(1);
    const cut = 'lease 10.0.0.8 {\n  starts 4 2026/01/08 14:44:02;\n  client-hostname "ab';
    const line = head.split('\n').length + 2;
    // the rest of the text came later: a file written in place over an older one, read mid-write (what follows the cut is the older text)
    const inPlace = parseIscDeclarations(`${head}${cut}\n  hardware ethernet 00:00:00:00:00:08;\n}\n${lease(2)}${lease(3)}`);
    expect(inPlace.leases.map((l) => [l.ip, l.hostname])).toEqual([['10.0.0.1', 'bmc-1'], ['10.0.0.2', 'bmc-2'], ['10.0.0.3', 'bmc-3']]);
    expect(inPlace.skipped.map((e) => [e.line, e.problem, e.detail])).toEqual([[line, 'malformed', 'unterminated string "\\"ab" (a newline before its closing quote: dhcpd writes every string on one line)']]);
    expect(inPlace.cut).toBeUndefined();
    // the next lease declaration written right after the cut, on the string's line
    const appended = parseIscDeclarations(`${head}${cut}${lease(2)}${lease(3)}`);
    expect(appended.leases.map((l) => l.ip)).toEqual(['10.0.0.1', '10.0.0.2', '10.0.0.3']);
    expect(appended.skipped.map((e) => [e.line, e.detail])).toEqual([[line - 2, `lease 10.0.0.8 not closed before the lease declaration on line ${line} (its writer stopped inside it)`]]);
    // cut inside an escape, in a `set` and in a `uid`, the next line a lease declaration of its own
    for (const broken of ['  set vendor-class-identifier = "a\\', '  uid "\\001\\00', '  client-hostname "a\\"b']) {
      const d = parseIscDeclarations(`${head}lease 10.0.0.8 {\n${broken}\n${lease(2)}${lease(3)}`);
      expect(d.leases.map((l) => l.ip)).toEqual(['10.0.0.1', '10.0.0.2', '10.0.0.3']);
      expect(d.skipped.map((e) => e.line)).toEqual([line - 2]);
    }
    // at the end of the text, no newline after it: the declaration being written, left for the next read
    expect(parseIscDeclarations(`${head}${cut}`)).toMatchObject({ skipped: [], cut: { line, problem: 'cut-short' } });
  });

  it("dhcpd's DHCPv6 lease file (dhcpd -6: ia-na, ia-ta, ia-pd declarations, no lease declaration) fails whole, naming its first DHCPv6 declaration, instead of reading as no leases", () => {
    const v6 = [
      '# The format of this file is documented in the dhcpd.leases(5) manual page.',
      '# This lease file was written by isc-dhcp-4.4.3-P1',
      '',
      '# authoring-byte-order entry is generated, DO NOT DELETE',
      'authoring-byte-order little-endian;',
      '',
      'server-duid "\\000\\001\\000\\001-\\3155\\365RT\\000\\022\\0044";',
      '',
      'ia-na "\\001\\000\\000\\000\\000\\001\\000\\001+\\2735\\230RT\\000\\022\\0044" {',
      '  cltt 4 2026/01/08 14:44:02;',
      '  iaaddr 2001:db8:0:1::107 {',
      '    binding state active;',
      '    preferred-life 375;',
      '    max-life 600;',
      '    ends 4 2026/01/08 14:54:02;',
      '  }',
      '}',
      'ia-pd "\\002\\000\\000\\000" {',
      '  cltt 4 2026/01/08 14:44:02;',
      '  iaprefix 2001:db8:1::/64 {',
      '    binding state active;',
      '  }',
      '}',
      '',
    ].join('\n');
    expect(parseIscDeclarations(v6)).toMatchObject({ leases: [], skipped: [], cut: undefined, dhcpv6Line: 9 });
    const message = "lease file line 9: an ISC dhcpd DHCPv6 lease file (dhcpd -6: an 'ia-*' declaration here and no lease declaration), not the DHCPv4 one BMCs lease from";
    expect(() => parseIscLeases(v6)).toThrow(expect.objectContaining({ name: 'LeaseParseError', line: 9, problem: 'structure', message }));
    // one cut short after its first ia-na, as dhcpd writes it
    expect(() => parseIscLeases(v6.slice(0, v6.indexOf('ia-pd') + 10))).toThrow(message);
    // `server-duid` alone tells nothing (dhcpd -4 writes it too), nor do a DHCPv4 file's leases beside an ia-na
    expect(parseIscLeases(v6.slice(0, v6.indexOf('ia-na')))).toEqual([]);
    expect(parseIscLeases(TRICKY)).toEqual(TRICKY_LEASES);
  });

  it('a lease declaration that cannot be read is left out, the ones before and after it read (as dhcpd reads its file)', () => {
    const text = `${renderIscLeases([{ ip: '10.0.0.1', mac: '00:00:00:00:00:01', ends: 'never', bindingState: 'active' }])}lease 10.0.0.2 {\n  ends 4 2026/02/30 00:00:00;\n  binding state active;\n  hardware ethernet 00:00:00:00:00:02;\n}\n${renderIscLeases([{ ip: '10.0.0.3', mac: '00:00:00:00:00:03', ends: 'never', bindingState: 'active' }]).slice(renderIscLeases([]).length)}`;
    const d = parseIscDeclarations(text);
    expect(d.leases.map((l) => l.ip)).toEqual(['10.0.0.1', '10.0.0.3']);
    expect(d.skipped.map((e) => e.message)).toEqual(['lease file line 13: bad date in \'ends\' statement "ends 4 2026/02/30 00:00:00"']);
    expect(d.cut).toBeUndefined();
    expect(active(d.leases, '2026-01-01T00:00:00Z')).toEqual(['10.0.0.1 00:00:00:00:00:01', '10.0.0.3 00:00:00:00:00:03']);
  });
});

// ---- properties ----

const SPECIAL = ['"', '{', '}', ';', '#', '\\', '\n', ' ', 'lease', 'lease 1.2.3.4 {', 'ends never;', '\\0', '\\x4'];

const mutation = fc.oneof(
  fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), length: fc.integer({ min: 1, max: 200 }) }),
  fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), text: fc.oneof(fc.constantFrom(...SPECIAL), fc.string({ maxLength: 8 })) }),
  fc.record({ kind: fc.constant('duplicate' as const), at: fc.nat(), length: fc.integer({ min: 1, max: 400 }) }),
);
type Mutation = typeof mutation extends fc.Arbitrary<infer T> ? T : never;

function mutate(text: string, m: Mutation): string {
  const at = m.at % (text.length + 1);
  switch (m.kind) {
    case 'truncate':
      return text.slice(0, at);
    case 'delete':
      return text.slice(0, at) + text.slice(at + m.length);
    case 'insert':
      return text.slice(0, at) + m.text + text.slice(at);
    case 'duplicate':
      return text.slice(0, at) + text.slice(at, at + m.length) + text.slice(at);
  }
}

const byteString = (maxLength: number) => fc.string({ unit: fc.integer({ min: 0, max: 255 }).map((c) => String.fromCharCode(c)), maxLength });
const second = fc.integer({ min: 0, max: Date.UTC(9999, 11, 31, 23, 59, 59) / 1000 }).map((s) => new Date(s * 1000));
const mac = fc.uint8Array({ minLength: 6, maxLength: 6 }).map((b) => [...b].map((x) => x.toString(16).padStart(2, '0')).join(':'));
const maybe = <T>(arb: fc.Arbitrary<T>) => fc.option(arb, { nil: undefined });
const leaseInput: fc.Arbitrary<IscLeaseInput> = fc.record({
  ip: fc.ipV4(),
  mac: maybe(mac),
  starts: maybe(second),
  ends: maybe(fc.oneof(second, fc.constant('never' as const))),
  bindingState: maybe(fc.constantFrom('active', 'free', 'backup', 'abandoned', 'expired', 'released')),
  nextBindingState: maybe(fc.constantFrom('free', 'backup')),
  hostname: maybe(byteString(30)),
  uid: maybe(byteString(20)),
  vars: maybe(fc.dictionary(fc.stringMatching(/^[a-z][a-z0-9-]{0,15}$/), byteString(20), { minKeys: 1, maxKeys: 3 })),
});

describe('parseIscLeases properties', () => {
  it('random text gives leases or a LeaseParseError, nothing else', () => {
    fc.assert(fc.property(fc.string({ maxLength: 300 }), parseOrLeaseError), { numRuns: 2000 });
    const tokens = fc.array(fc.constantFrom(...SPECIAL, 'starts', '4', '2026/01/08', '14:44:02', 'hardware ethernet', '0:1:2:3:4:5', 'binding state active'), { maxLength: 60 });
    fc.assert(fc.property(tokens, (parts) => parseOrLeaseError(parts.join(' '))), { numRuns: 2000 });
  });

  it('mutated and truncated copies of the reference file give leases or a LeaseParseError', () => {
    fc.assert(fc.property(fc.array(mutation, { minLength: 1, maxLength: 4 }), (ms) => parseOrLeaseError(ms.reduce(mutate, BIG))), { numRuns: 1000 });
    fc.assert(fc.property(fc.array(mutation, { minLength: 1, maxLength: 4 }), (ms) => parseOrLeaseError(ms.reduce(mutate, TRICKY))), { numRuns: 1000 });
  });

  it('a lease declaration with a statement that cannot be read is left out, named with its line, and the others read as if it were not there', () => {
    const bad = fc.constantFrom('  ends 4 2026/02/30 00:00:00;', '  starts soon;', '  hardware ethernet zz:zz;', '  binding active;', '  uid;', '  next binding state;', '  client-hostname;', '  set x;', '  ends never');
    fc.assert(
      fc.property(fc.array(fc.tuple(leaseInput, fc.option(bad, { nil: undefined })), { maxLength: 10 }), (pairs) => {
        const blocks = pairs.map(([input, statement]) => {
          const block = renderIscLeases([input]).slice(renderIscLeases([]).length);
          // the bad statement after the `lease` line; `ends never` without its `;` before the `}`
          return statement === undefined ? block : block.replace('{\n', `{\n${statement}\n`);
        });
        const text = renderIscLeases([]) + blocks.join('');
        const d = parseIscDeclarations(text);
        const good = renderIscLeases([]) + blocks.filter((_b, i) => pairs[i]![1] === undefined).join('');
        expect(d.leases.map(({ line: _line, ...l }) => l)).toEqual(parseIscLeases(good).map(({ line: _line, ...l }) => l));
        const lines = text.split('\n');
        const badLines = lines.flatMap((l, i) => (l.startsWith('lease ') && pairs[lines.slice(0, i).filter((x) => x.startsWith('lease ')).length]![1] !== undefined ? [i + 1] : []));
        // each named with the line of its bad statement (the one after `lease`), or of its `}` for a missing `;`
        expect(d.skipped.map((e) => e.line)).toEqual(badLines.map((l, k) => (d.skipped[k]!.detail.startsWith("missing ';'") ? lines.indexOf('}', l) + 1 : l + 1)));
        expect(d.cut).toBeUndefined();
      }),
      { numRuns: 300 },
    );
  });

  it('a lease block never closed (cut anywhere, inside its strings too), followed by lease declarations written right after it, is left out with the line it starts on and the others read as if it were not there; one at the end is the declaration the text stops inside', () => {
    /** The text ends inside a string (dhcpd's escapes: a `"` after a backslash is in the string). */
    const insideString = (text: string): boolean => {
      let inside = false;
      for (let i = 0; i < text.length; i++) {
        if (inside && text[i] === '\\') i++;
        else if (text[i] === '"') inside = !inside;
      }
      return inside;
    };
    fc.assert(
      fc.property(fc.array(fc.tuple(leaseInput, fc.option(fc.tuple(fc.nat(), fc.nat()), { nil: undefined })), { maxLength: 10 }), (pairs) => {
        /** for the last block, when it is cut inside a string: that string's line in the block */
        let stringLine: number | undefined;
        const blocks = pairs.map(([input, keep], i) => {
          const block = renderIscLeases([input]).slice(renderIscLeases([]).length);
          if (keep === undefined) return block;
          // its `}` never written, nor what follows the cut: the next declaration comes right after it
          const lines = block.split('\n').slice(0, -2);
          const at = keep[0] % lines.length;
          const line = lines[at] as string;
          // (its `lease <ip> {` whole, with its newline, as dhcpd writes it: a cut inside it is a statement of its own, in the tests of the rule,
          // and a string cut short followed by `lease <ip> {` without the newline at the end of the text may still be a string being written)
          if (at === 0) return `${line}\n`;
          const cut = keep[1] % (line.length + 1);
          if (i === pairs.length - 1 && insideString(line.slice(0, cut))) stringLine = at;
          return [...lines.slice(0, at), line.slice(0, cut)].join('\n');
        });
        const head = renderIscLeases([]);
        const text = head + blocks.join('');
        const d = parseIscDeclarations(text);
        const closed = pairs.map(([, keep]) => keep === undefined);
        const good = head + blocks.filter((_b, i) => closed[i]).join('');
        expect(d.leases.map(({ line: _line, ...l }) => l)).toEqual(parseIscLeases(good).map(({ line: _line, ...l }) => l));
        const startLine = (i: number): number => (head + blocks.slice(0, i).join('')).split('\n').length;
        const unclosed = closed.flatMap((c, i) => (c ? [] : [i]));
        // the last block, never closed, takes the rest of the text: the one the text stops inside (named by its string's line when cut inside one)
        const last = closed.length - 1;
        expect(d.skipped.map((e) => e.line)).toEqual(unclosed.filter((i) => i !== last).map(startLine));
        expect(d.cut?.line).toBe(closed[last] === false ? startLine(last) + (stringLine ?? 0) : undefined);
      }),
      { numRuns: 1000 },
    );
  });

  it('DHCPv6 declarations (ia-na, ia-ta, ia-pd) among lease declarations are skipped; with no lease read, the file fails whole at the first of them', () => {
    const ia = fc.tuple(fc.constantFrom('ia-na', 'ia-ta', 'ia-pd'), byteString(8)).map(([kind, id]) => `${kind} ${quoteIsc(id)} {\n  cltt 4 2026/01/08 14:44:02;\n  iaaddr 2001:db8::1 {\n    binding state active;\n  }\n}\n`);
    const item = fc.oneof(leaseInput.map((l) => ({ lease: l, text: renderIscLeases([l]).slice(renderIscLeases([]).length) })), ia.map((text) => ({ lease: undefined, text })));
    fc.assert(
      fc.property(fc.array(item, { maxLength: 8 }), (items) => {
        const head = renderIscLeases([]);
        const text = head + items.map((i) => i.text).join('');
        const leases = items.flatMap((i) => (i.lease === undefined ? [] : [i.lease]));
        const firstIa = items.findIndex((i) => i.lease === undefined);
        if (leases.length > 0 || firstIa < 0) {
          expect(parseIscLeases(text).map(({ line: _line, ...l }) => ({ ...l, vars: l.vars === undefined ? undefined : { ...l.vars } }))).toEqual(leases);
        } else {
          const line = (head + items.slice(0, firstIa).map((i) => i.text).join('')).split('\n').length;
          expect(() => parseIscLeases(text)).toThrow(expect.objectContaining({ line, problem: 'structure' }));
        }
      }),
      { numRuns: 300 },
    );
  });

  it('rendered leases parse back to the same records, with the line of each block', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(leaseInput, fc.constantFrom('ethernet', 'infiniband', 'unknown-32')), { maxLength: 12 }), (pairs) => {
        const inputs = pairs.map(([input]) => input);
        // a lease without a MAC written as dhcpd writes one whose chaddr has length 0: `hardware <type> ;`
        const text = renderIscLeases(inputs).replace(/^lease [^\n]*\{\n/gm, (line) => {
          const [input, type] = pairs.shift()!;
          return input.mac === undefined ? `${line}  hardware ${type} ;\n` : line;
        });
        const parsed = parseIscLeases(text);
        expect(parsed.map(({ line: _line, ...rest }) => ({ ...rest, vars: rest.vars === undefined ? undefined : { ...rest.vars } }))).toEqual(inputs);
        const lines = text.split('\n');
        for (const lease of parsed) expect(lines[lease.line - 1]).toBe(`lease ${lease.ip} {`);
      }),
      { numRuns: 300 },
    );
  });
});
