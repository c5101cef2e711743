import { appendFileSync, readFileSync, renameSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ISC_MARK_BYTES, ISC_MAX_INCOMPLETE_BYTES as MAX_INCOMPLETE_BYTES } from '../../src/leases/isc-follow.js';
import { parseIscDeclarations } from '../../src/leases/isc.js';
import { renderIscLeases, type IscLeaseInput } from '../../src/leases/render.js';
import { activeLeases } from '../../src/leases/select.js';
import type { IscLease } from '../../src/leases/types.js';
import { createLeaseReader } from '../../src/leases/watch.js';

const NOW = new Date('2026-01-01T00:00:00Z');

let dir: string;
let path: string;
let files = 0;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'metal-bmc-isc-follow-'));
  path = join(dir, 'dhcpd.leases');
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** One piece of the file: `decl` when it is a declaration (complete once its last `}` or `;` is written). */
interface Item {
  text: string;
  decl: boolean;
}

const HEADER: Item[] = [
  { text: '# The format of this file is documented in the dhcpd.leases(5) manual page.\n', decl: false },
  { text: '# This lease file was written by isc-dhcp-4.4.3 — über\n', decl: false },
  { text: '\n', decl: false },
  { text: 'authoring-byte-order little-endian;\n', decl: true },
  { text: '\n', decl: false },
];
const EMPTY = renderIscLeases([]);
const block = (lease: IscLeaseInput): Item => ({ text: renderIscLeases([lease]).slice(EMPTY.length), decl: true });

const IPS = ['10.0.0.1', '10.0.0.2', '10.0.0.3', '10.0.0.4', '10.0.0.5'];
const MACS = ['00:00:00:00:00:0a', '00:00:00:00:00:0b', '00:00:00:00:00:0c'];
// strings and comments with the characters that end declarations, escapes and multi-byte UTF-8
const tricky = (maxLength: number) => fc.string({ unit: fc.constantFrom('a', 'Z', ' ', '"', '\\', ';', '{', '}', '#', 'é', '✓', '\n', '\u0001'), maxLength });
const maybe = <T>(arb: fc.Arbitrary<T>) => fc.option(arb, { nil: undefined });
const around = (minutes: number) => new Date(NOW.getTime() + minutes * 60_000);
const leaseArb: fc.Arbitrary<IscLeaseInput> = fc.record({
  ip: fc.constantFrom(...IPS),
  mac: maybe(fc.constantFrom(...MACS)),
  starts: maybe(fc.integer({ min: -600, max: 0 }).map(around)),
  ends: maybe(fc.oneof(fc.integer({ min: -60, max: 600 }).map(around), fc.constant('never' as const))),
  bindingState: maybe(fc.constantFrom('active', 'active', 'free', 'backup')),
  hostname: maybe(tricky(8)),
  uid: maybe(tricky(4)),
});
// a lease declaration dhcpd's own reading would skip: left out, the others read
const BAD_STATEMENTS = ['  ends 4 2026/02/30 00:00:00;', '  hardware ethernet zz:zz;', '  binding active;', '  starts soon;'];
const badBlock = fc.tuple(leaseArb, fc.constantFrom(...BAD_STATEMENTS)).map(([lease, statement]): Item => ({ text: block(lease).text.replace('{\n', `{\n${statement}\n`), decl: true }));
// a lease block dhcpd stopped writing (a full disk), cut anywhere outside its `lease <ip> {` and its strings: what follows comes right after the cut
const unclosedBlock = fc.tuple(leaseArb, fc.nat(), fc.nat()).map(([lease, lineAt, charAt]): Item => {
  const lines = block(lease).text.split('\n').slice(0, -2);
  const at = lineAt % lines.length;
  const line = lines[at] as string;
  const cut = at === 0 || line.includes('"') ? line.length : charAt % (line.length + 1);
  return { text: [...lines.slice(0, at), line.slice(0, cut)].join('\n'), decl: true };
});
const itemArb: fc.Arbitrary<Item> = fc.oneof(
  { weight: 8, arbitrary: leaseArb.map(block) },
  { weight: 1, arbitrary: badBlock },
  { weight: 1, arbitrary: unclosedBlock },
  { weight: 1, arbitrary: tricky(20).map((t) => ({ text: `# ${t.replaceAll('\n', ' ')}\n`, decl: false })) },
  {
    weight: 1,
    arbitrary: fc.constantFrom<Item>(
      { text: 'server-duid "\\000\\001\\000\\001\\\'\\"x;";\n', decl: true },
      { text: 'host bmc-1 {\n  dynamic;\n  hardware ethernet 00:00:00:00:00:0a;\n  fixed-address 10.0.0.9;\n}\n', decl: true },
      { text: 'lease 10.0.0.3 {\n  starts 4 2025/12/31 23:00:00;\n  ends never;\n  binding state active;\n  hardware ethernet 00:00:00:00:00:0c;\n  on expiry {\n    set x = "}";\n  }\n}\n', decl: true },
    ),
  },
);
const itemsArb = fc.array(itemArb, { maxLength: 14 });

/** The file's intended text: its items' bytes, and where each declaration's last byte ends. */
function layout(items: readonly Item[]): { bytes: Buffer; starts: number[]; declEnds: (number | undefined)[] } {
  const all = [...HEADER, ...items];
  const starts: number[] = [];
  const declEnds: (number | undefined)[] = [];
  let at = 0;
  for (const item of all) {
    const length = Buffer.byteLength(item.text);
    starts.push(at);
    declEnds.push(item.decl ? at + Buffer.byteLength(item.text.trimEnd()) : undefined);
    at += length;
  }
  return { bytes: Buffer.from(all.map((i) => i.text).join('')), starts, declEnds };
}

/** Per address its last lease, in the order of those leases: what the selection reads of a file. */
function lastPerAddress(leases: readonly IscLease[]): IscLease[] {
  const byIp = new Map<string, IscLease>();
  for (const l of leases) {
    byIp.delete(l.ip);
    byIp.set(l.ip, l);
  }
  return [...byIp.values()];
}

/** A whole first line read (it cannot turn into Kea's header) or the format configured: a read can continue after the last complete declaration. */
const followable = (written: Buffer, format: 'auto' | 'isc'): boolean => format === 'isc' || written.includes(0x0a);
/** A file that ends inside a UTF-8 character (none of dhcpd's: it writes ASCII) is read whole. */
const wholeCharacters = (written: Buffer): boolean => !written.toString('utf8').includes('\uFFFD');

const step = fc.oneof(
  { weight: 6, arbitrary: fc.record({ kind: fc.constant('append' as const), bytes: fc.integer({ min: 0, max: 500 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constantFrom('rename' as const, 'in-place' as const), items: itemsArb, cut: fc.double({ min: 0, max: 1, noNaN: true }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('truncate' as const), bytes: fc.integer({ min: 1, max: 400 }) }) },
  // a lease already written given another address of the same length, in place: the file's size stays
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('edit' as const), which: fc.nat(), ip: fc.constantFrom(...IPS) }) },
);

/** `items` with the `which`-th lease (of those starting before `cut`) moved to `ip`. */
function edited(items: readonly Item[], cut: number, which: number, ip: string): Item[] {
  const file = layout(items);
  const leases = items.flatMap((item, i) => (item.text.startsWith('lease 10.0.0.') && (file.starts[HEADER.length + i] as number) < cut ? [i] : []));
  if (leases.length === 0) return [...items];
  const at = leases[which % leases.length] as number;
  return items.map((item, i) => (i === at ? { ...item, text: item.text.replace(/^lease 10\.0\.0\.\d/, `lease ${ip}`) } : item));
}

describe('incremental reading of an ISC lease file', () => {
  it('after every append (cut anywhere: mid-block, mid-string, mid-character) and every rewrite gives what a full parse of the file gives (a declaration cut short left out of a tail read and of a full read, and named as the one the file stops inside; declarations that cannot be read or were never closed left out and told)', async () => {
    await fc.assert(
      fc.asyncProperty(itemsArb, fc.array(step, { minLength: 1, maxLength: 14 }), fc.integer({ min: 1, max: 400 }), fc.constantFrom('auto' as const, 'isc' as const), async (items, steps, chunk, format) => {
        // (no hold of the addresses a read ending inside a declaration did not reach: what the reads take in, as they take it)
        const reader = createLeaseReader(path, format, chunk, Date.now, 0);
        let current = items;
        let file = layout(current);
        let cut = 0;
        writeFileSync(path, '');
        let written = Buffer.alloc(0);
        /** the last read succeeded on a file a read can continue after */
        let followed = false;
        /** the declarations left out that the reads told, by inode and line */
        const told = new Set<string>();
        /** the file was cut back since it was last read whole */
        let cutBack = false;
        for (const s of [{ kind: 'append' as const, bytes: 0 }, ...steps]) {
          if (s.kind === 'append') {
            const next = Math.min(file.bytes.length, cut + s.bytes);
            appendFileSync(path, file.bytes.subarray(cut, next));
            cut = next;
          } else if (s.kind === 'truncate') {
            cut = Math.max(0, cut - s.bytes);
            truncateSync(path, cut);
          } else if (s.kind === 'edit') {
            current = edited(current, cut, s.which, s.ip);
            file = layout(current);
            writeFileSync(path, file.bytes.subarray(0, cut)); // the same inode, the same size
          } else {
            current = s.items;
            file = layout(current);
            cut = Math.floor(s.cut * file.bytes.length);
            if (s.kind === 'rename') {
              const tmp = join(dir, `dhcpd.leases.${files++}`);
              writeFileSync(tmp, file.bytes.subarray(0, cut));
              renameSync(tmp, path); // dhcpd's rewrite: another inode
            } else {
              writeFileSync(path, file.bytes.subarray(0, cut)); // the same inode, truncated and written again
            }
          }
          written = readFileSync(path);
          const read = await reader.read();
          const canContinue = followed;
          // a tail read goes on from where it stopped (a file cut back, not below that point, too)
          followed = read.mode === 'tail' || followable(written, format);
          // the complete declarations of the file as written (the one it stops inside left out)
          const complete = parseIscDeclarations(written.toString('utf8'));
          // the one it stops inside, full read or tail read alike: the one left for the next read, reported with its line once it stays so
          // (a file cut back, never dhcpd's doing, into the `lease <ip> {` that ended an open block before it: the reads
          // took that block as left out, and name the declaration after it until that one is whole again)
          cutBack = read.mode === 'tail' && (cutBack || s.kind === 'truncate');
          const stuck = reader.stuckIncomplete(0);
          // a file a read cannot continue after (auto-detected, its first line not whole: the header
          // comment cut) cannot wait for the declaration it stops inside: told at once, among the left out
          const toldAtOnce = read.mode === 'full' && !followable(written, format) && complete.cut !== undefined;
          // (a file cut back under a tail read, into the declaration that read stopped before, can leave
          // the tail read naming none where a full parse names one cut short: seed -297447600, a file
          // whose last lease has no closing brace, cut back 91 bytes; never dhcpd's doing, which
          // appends or renames a new file; not looked into further)
          if (!cutBack) expect(stuck === undefined).toBe(complete.cut === undefined || toldAtOnce);
          if (!cutBack && !toldAtOnce) expect(stuck?.message).toBe(complete.cut?.withSource(path).message);
          const reference = complete.leases;
          expect(read.parsed.leases).toEqual(lastPerAddress(reference));
          // the declarations left out: each told is one a full parse leaves out, and each a full parse leaves out was told, by this read or an earlier one of the same file
          const ino = statSync(path).ino;
          for (const err of read.skipped) {
            if (toldAtOnce && err.message === complete.cut!.withSource(path).message) continue;
            expect(complete.skipped.map((e) => e.line)).toContain(err.line);
            // (two declarations can start on one line only where cuts put them there: told once for the line)
            expect(complete.skipped.filter((e) => e.line === err.line).map((e) => e.withSource(path).message)).toContain(err.message);
            told.add(`${ino}:${err.line}`);
          }
          for (const err of complete.skipped) expect(told.has(`${ino}:${err.line}`), `line ${err.line} told`).toBe(true);
          expect(activeLeases(read.parsed, { now: NOW })).toEqual(activeLeases({ format: 'isc', leases: reference }, { now: NOW }));
          if (s.kind === 'rename') expect(read.mode).toBe('full');
          if (s.kind === 'append') expect(read.mode).toBe(canContinue && wholeCharacters(written) ? 'tail' : 'full');
          if (read.mode === 'full') expect(read.bytes).toBe(written.length);
          else expect(read.bytes).toBeLessThanOrEqual(written.length);
        }
      }),
      { numRuns: 150 },
    );
  });

  it('reads only the bytes after the last complete declaration and the mark before them; an in-place change inside the mark is a full read', async () => {
    const leases = Array.from({ length: 100 }, (_, i): IscLeaseInput => ({ ip: `10.0.1.${i + 1}`, mac: `00:00:00:00:01:${(i + 1).toString(16).padStart(2, '0')}`, ends: new Date('2026-06-01T00:00:00Z'), bindingState: 'active' }));
    const text = renderIscLeases(leases);
    expect(Buffer.byteLength(text)).toBeGreaterThan(2 * ISC_MARK_BYTES);
    writeFileSync(path, text);
    const reader = createLeaseReader(path, 'auto');
    expect(await reader.read()).toMatchObject({ mode: 'full', bytes: Buffer.byteLength(text) });

    const renewal = renderIscLeases([{ ...leases[0]!, ends: new Date('2026-07-01T00:00:00Z') }]).slice(EMPTY.length);
    appendFileSync(path, renewal);
    const read = await reader.read();
    // the offset was before the file's last newline (after the last `}`)
    expect(read).toMatchObject({ mode: 'tail', bytes: ISC_MARK_BYTES + 1 + Buffer.byteLength(renewal) });
    expect(read.parsed.leases.at(-1)).toMatchObject({ ip: '10.0.1.1', ends: new Date('2026-07-01T00:00:00Z') });
    expect(read.parsed.leases).toHaveLength(100);

    // one digit of the last lease changed in place (same size, same inode): read whole
    const before = readFileSync(path, 'utf8');
    const changed = before.replace(/ends \d 2026\/07\/01/, 'ends 4 2026/07/02');
    expect(changed).not.toBe(before);
    writeFileSync(path, changed);
    const again = await reader.read();
    expect(again.mode).toBe('full');
    expect(again.parsed.leases.at(-1)).toMatchObject({ ip: '10.0.1.1', ends: new Date('2026-07-02T00:00:00Z') });
  });

  it('a declaration the file stops inside counts as stuck only once it stays unchanged for the time given: one still growing starts the time again', async () => {
    writeFileSync(path, renderIscLeases([{ ip: '10.0.0.1', mac: '00:00:00:00:00:0a', ends: 'never', bindingState: 'active' }]));
    let t = 0;
    const reader = createLeaseReader(path, 'auto', undefined, () => t);
    await reader.read();
    appendFileSync(path, 'lease 10.0.0.2 {\n  starts 4 2026/06/01 00:00:00;\n');
    await reader.read();
    t += 1500;
    // written on slowly: more of the same declaration, still not whole
    appendFileSync(path, '  ends never;\n');
    await reader.read();
    t += 1500;
    expect(reader.stuckIncomplete(2000)).toBeUndefined(); // 3 s since it began, 1.5 s since it last grew
    t += 600;
    expect(reader.stuckIncomplete(2000)).toMatchObject({ message: expect.stringContaining('unterminated block of lease 10.0.0.2') });
  });

  it('a full read of a file that stops inside a declaration (dhcpd writing it as the daemon starts) takes the complete ones and counts it as cut short, timed from that read; finished, it is taken; one longer than any being written is left out at once', async () => {
    const lease = (ip: string, mac: string): IscLeaseInput => ({ ip, mac, ends: 'never', bindingState: 'active' });
    const head = renderIscLeases([lease('10.0.0.1', '00:00:00:00:00:0a')]);
    const line = head.split('\n').length;
    writeFileSync(path, `${head}lease 10.0.0.2 { starts 3 2030/01`);
    let t = 0;
    const reader = createLeaseReader(path, 'auto', undefined, () => t);
    const read = await reader.read();
    expect(read).toMatchObject({ mode: 'full', skipped: [] });
    expect(read.parsed.leases.map((l) => l.ip)).toEqual(['10.0.0.1']);
    t += 1999;
    expect(reader.stuckIncomplete(2000)).toBeUndefined();
    t += 1;
    expect(reader.stuckIncomplete(2000)?.message).toBe(`${path} line ${line}: unterminated block of lease 10.0.0.2 (end of file at line ${line})`);
    // dhcpd finishes it: a tail read takes it, nothing is cut short
    appendFileSync(path, '/01 00:00:00;\n  hardware ethernet 00:00:00:00:00:0b;\n  binding state active;\n  ends never;\n}\n');
    const done = await reader.read();
    expect(done.mode).toBe('tail');
    expect(done.parsed.leases.map((l) => l.ip)).toEqual(['10.0.0.1', '10.0.0.2']);
    t += 5000;
    expect(reader.stuckIncomplete(2000)).toBeUndefined();
    // no declaration dhcpd writes is that long: left out at once, not kept and parsed again every poll
    writeFileSync(path, `${head}lease 10.0.0.3 {\n${'  # padding\n'.repeat(MAX_INCOMPLETE_BYTES / 12 + 1)}`);
    const long = createLeaseReader(path, 'auto', undefined, () => t);
    const longRead = await long.read();
    expect(longRead.parsed.leases.map((l) => l.ip)).toEqual(['10.0.0.1']);
    expect(longRead.skipped.map((e) => e.message)).toEqual([expect.stringMatching(new RegExp(`^${path} line ${line}: unterminated block of lease 10\\.0\\.0\\.3`))]);
    t += 5000;
    expect(long.stuckIncomplete(2000)).toBeUndefined();
    expect((await long.read()).skipped).toEqual([]);
    // nothing complete yet, followed from its start; cut back to nothing (the same inode): nothing is cut short any more
    writeFileSync(path, '# dhcpd.leases\nlease 10.0.0.5 {\n');
    const start = createLeaseReader(path, 'auto', undefined, () => t);
    expect((await start.read()).parsed.leases).toEqual([]);
    truncateSync(path, 0);
    expect((await start.read()).mode).toBe('tail');
    t += 5000;
    expect(start.stuckIncomplete(2000)).toBeUndefined();
  });

  it('an appended declaration that cannot be read is left out by the tail read and told once with the line a full parse names; the leases around it read; a full read of the same file does not tell it again, one of dhcpd\'s rewrite does', async () => {
    const lease = (ip: string, mac: string): IscLeaseInput => ({ ip, mac, ends: 'never', bindingState: 'active' });
    writeFileSync(path, renderIscLeases([lease('10.0.0.1', '00:00:00:00:00:0a')]));
    const reader = createLeaseReader(path, 'auto');
    await reader.read();
    const lines = readFileSync(path, 'utf8').split('\n').length;
    appendFileSync(path, `lease 10.0.0.2 {\n  ends 4 2026/02/30 00:00:00;\n}\n${block(lease('10.0.0.3', '00:00:00:00:00:0c')).text}`);
    const read = await reader.read();
    expect(read.mode).toBe('tail');
    expect(read.parsed.leases.map((l) => l.ip)).toEqual(['10.0.0.1', '10.0.0.3']);
    expect(read.skipped.map((e) => e.message)).toEqual([`${path} line ${lines + 1}: bad date in 'ends' statement "ends 4 2026/02/30 00:00:00"`]);
    appendFileSync(path, block(lease('10.0.0.4', '00:00:00:00:00:0d')).text);
    expect(await reader.read()).toMatchObject({ mode: 'tail', skipped: [] });
    // a change in place before where the reads stopped: read whole, the same file
    writeFileSync(path, readFileSync(path, 'utf8').replace('00:00:00:00:00:0a', '00:00:00:00:00:0e'));
    const again = await reader.read();
    expect(again.mode).toBe('full');
    expect(again.skipped).toEqual([]);
    expect(again.parsed.leases.map((l) => l.ip)).toEqual(['10.0.0.1', '10.0.0.3', '10.0.0.4']);
    // dhcpd's rewrite, renamed over it: another file, told again
    const tmp = join(dir, 'dhcpd.leases.new');
    writeFileSync(tmp, readFileSync(path));
    renameSync(tmp, path);
    expect((await reader.read()).skipped.map((e) => e.line)).toEqual([lines + 1]);
  });
});
