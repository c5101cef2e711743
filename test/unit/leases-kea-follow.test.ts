import { appendFileSync, existsSync, readFileSync, renameSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MARK_BYTES, MAX_INCOMPLETE_BYTES } from '../../src/leases/follow.js';
import { parseKeaFile } from '../../src/leases/kea.js';
import { KEA_HEADER, renderKeaLeases, type KeaLeaseInput } from '../../src/leases/render.js';
import { activeLeases } from '../../src/leases/select.js';
import type { KeaLease } from '../../src/leases/types.js';
import { createLeaseReader, readKea, readLeasesOnce } from '../../src/leases/watch.js';

const NOW = new Date('2026-01-01T00:00:00Z');

let dir: string;
let path: string;
let tmpFiles = 0;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'metal-bmc-kea-follow-'));
  path = join(dir, 'kea-leases4.csv');
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** How Kea and kea-lfc put a file in place: written beside it, renamed over it (another inode). */
function replace(file: string, data: string | Buffer): void {
  const tmp = join(dir, `tmp${tmpFiles++}`);
  writeFileSync(tmp, data);
  renameSync(tmp, file);
}

const IPS = ['10.0.0.1', '10.0.0.2', '10.0.0.3', '10.0.0.4', '10.0.0.5'];
const MACS = ['00:00:00:00:00:0a', '00:00:00:00:00:0b', '00:00:00:00:00:0c'];
const maybe = <T>(arb: fc.Arbitrary<T>) => fc.option(arb, { nil: undefined });
const around = (minutes: number) => new Date(Math.floor(NOW.getTime() / 1000 + minutes * 60) * 1000);
// commas and `&` (Kea escapes them), multi-byte UTF-8 (a cut can fall inside a character)
const tricky = fc.string({ unit: fc.constantFrom('a', 'Z', ' ', ',', '&', '#', 'é', '✓'), minLength: 1, maxLength: 8 });
const leaseArb: fc.Arbitrary<KeaLeaseInput> = fc
  .record({
    ip: fc.constantFrom(...IPS),
    mac: maybe(fc.constantFrom(...MACS)),
    // 0: Kea's deleted lease
    validLifetime: fc.constantFrom(0, 3600, 7200),
    expire: fc.oneof({ weight: 6, arbitrary: fc.integer({ min: -60, max: 600 }).map(around) }, { weight: 1, arbitrary: fc.constant('never' as const) }),
    subnetId: maybe(fc.integer({ min: 1, max: 3 })),
    hostname: maybe(tricky),
    state: fc.constantFrom(0, 0, 0, 1, 2, 3),
    userContext: maybe(fc.constantFrom('{"a":1}', '{"b":"x,y é"}')),
    poolId: maybe(fc.integer({ min: 0, max: 999 })),
  })
  .map((l) => {
    const lease: KeaLeaseInput = { ip: l.ip, validLifetime: l.expire === 'never' ? 0xffffffff : l.validLifetime, expire: l.expire, state: l.state };
    for (const key of ['mac', 'subnetId', 'hostname', 'userContext', 'poolId'] as const) if (l[key] !== undefined) Object.assign(lease, { [key]: l[key] });
    return lease;
  });
const row = (lease: KeaLeaseInput): string => renderKeaLeases([lease]).slice(KEA_HEADER.length + 1);
const rowArb: fc.Arbitrary<string> = fc.oneof(
  { weight: 10, arbitrary: leaseArb.map(row) },
  // a CRLF row, a blank line, a user_context with raw commas (written by another tool)
  { weight: 1, arbitrary: leaseArb.map((l) => row(l).replace('\n', '\r\n')) },
  { weight: 1, arbitrary: fc.constantFrom('\n', '10.0.0.2,00:00:00:00:00:0b,,3600,1767229200,1,0,0,raw,0,{"k":[1,2],"s":"a,b"},5\n') },
);
const rowsArb = fc.array(rowArb, { maxLength: 14 });
const cleanupArb = fc.array(leaseArb, { maxLength: 6 }).map((leases) => renderKeaLeases(leases));

/** Kea's header with two columns of the same length swapped: the same size, other meanings (hostnames read from fqdn_fwd). */
const otherHeader = (header: string): string => (header === KEA_HEADER ? KEA_HEADER.replace('fqdn_fwd', '@').replace('hostname', 'fqdn_fwd').replace('@', 'hostname') : KEA_HEADER);

const step = fc.oneof(
  { weight: 8, arbitrary: fc.record({ kind: fc.constant('append' as const), bytes: fc.integer({ min: 0, max: 300 }) }) },
  // a new lease file renamed over it (Kea restarted with a rewritten file), or written again in place
  { weight: 1, arbitrary: fc.record({ kind: fc.constantFrom('rename' as const, 'in-place' as const), rows: rowsArb, cut: fc.double({ min: 0, max: 1, noNaN: true }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('truncate' as const), bytes: fc.integer({ min: 1, max: 300 }) }) },
  // a row already written given another address, in place: the file's size stays
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('edit' as const), which: fc.nat(), ip: fc.constantFrom(...IPS) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('header' as const) }) },
  // a cleanup file appears, is replaced or goes
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('cleanup' as const), suffix: fc.constantFrom('.completed', '.2', '.1'), text: fc.option(cleanupArb, { nil: undefined }) }) },
  // kea-lfc's cycle: Kea moves its lease file to .1 and starts a new one with the header; kea-lfc merges .2 and .1 into .completed and renames it to .2
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('lfc-start' as const), rows: rowsArb }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('lfc-end' as const) }) },
);

/** Per address its last row, in the order of those rows: what the selection reads of the files. */
function lastPerAddress(leases: readonly KeaLease[]): KeaLease[] {
  const byIp = new Map<string, KeaLease>();
  for (const l of leases) {
    byIp.delete(l.ip);
    byIp.set(l.ip, l);
  }
  return [...byIp.values()];
}

const stampOf = (): string =>
  ['.completed', '.2', '.1']
    .map((suffix) => {
      if (!existsSync(`${path}${suffix}`)) return '-';
      const s = statSync(`${path}${suffix}`);
      return `${s.ino}:${s.size}:${s.mtimeMs}`;
    })
    .join('|');

describe('incremental reading of a Kea lease file', () => {
  it('after every append (cut anywhere: mid-row, mid-field, mid-character), rewrite, truncation, in-place edit and cleanup step gives what a full read of the files gives, tail reads where only rows were appended', async () => {
    await fc.assert(
      fc.asyncProperty(rowsArb, fc.array(step, { minLength: 1, maxLength: 14 }), fc.integer({ min: 1, max: 400 }), fc.constantFrom('auto' as const, 'kea' as const), async (initial, steps, chunk, format) => {
        for (const suffix of ['.completed', '.2', '.1']) rmSync(`${path}${suffix}`, { force: true });
        // (no hold of the addresses a read ending inside a row did not reach: what the reads take in, as they take it)
        const reader = createLeaseReader(path, format, chunk, Date.now, 0);
        let header = KEA_HEADER;
        let rows = initial;
        // the file's intended bytes: the header line, then the rows (each with its newline)
        const intended = (): Buffer => Buffer.from(`${header}\n${rows.join('')}`);
        let file = intended();
        let cut = 0;
        writeFileSync(path, '');
        /** the last read took the files in as Kea's with a whole header line: a read can continue after it */
        let followed = false;
        for (const s of [{ kind: 'append' as const, bytes: 0 }, ...steps]) {
          const stampBefore = stampOf();
          if (s.kind === 'append') {
            const next = Math.min(file.length, cut + s.bytes);
            appendFileSync(path, file.subarray(cut, next));
            cut = next;
          } else if (s.kind === 'truncate') {
            cut = Math.max(0, cut - s.bytes);
            truncateSync(path, cut);
          } else if (s.kind === 'edit') {
            const candidates = rows.flatMap((r, i) => {
              const start = Buffer.byteLength(`${header}\n${rows.slice(0, i).join('')}`);
              return r.startsWith('10.0.0.') && start + 8 <= cut ? [i] : [];
            });
            if (candidates.length > 0) {
              const i = candidates[s.which % candidates.length] as number;
              rows = rows.map((r, j) => (j === i ? s.ip + r.slice(8) : r));
              file = intended();
              writeFileSync(path, file.subarray(0, cut)); // the same inode, the same size
            }
          } else if (s.kind === 'header') {
            header = otherHeader(header);
            file = intended();
            writeFileSync(path, file.subarray(0, cut)); // the same inode, the same size
          } else if (s.kind === 'rename' || s.kind === 'in-place') {
            rows = s.rows;
            file = intended();
            cut = Math.floor(s.cut * file.length);
            if (s.kind === 'rename') replace(path, file.subarray(0, cut));
            else writeFileSync(path, file.subarray(0, cut));
          } else if (s.kind === 'cleanup') {
            if (s.text === undefined) rmSync(`${path}${s.suffix}`, { force: true });
            else replace(`${path}${s.suffix}`, s.text);
          } else if (s.kind === 'lfc-start') {
            // Kea does not move its lease file while a .1 is left from a cleanup that did not finish
            if (!existsSync(`${path}.1`)) {
              renameSync(path, `${path}.1`);
              rows = s.rows;
              file = intended();
              cut = Buffer.byteLength(`${header}\n`);
              writeFileSync(path, file.subarray(0, cut));
            }
          } else {
            const merged = ['.2', '.1'].flatMap((suffix) => (existsSync(`${path}${suffix}`) ? [readFileSync(`${path}${suffix}`, 'utf8')] : []));
            if (merged.length > 0) {
              // kea-lfc keeps each address's last lease; the rows of both, in load order, read alike
              writeFileSync(`${path}.completed`, merged.map((t, i) => (i === 0 ? t : t.slice(t.indexOf('\n') + 1))).join(''));
              rmSync(`${path}.2`, { force: true });
              rmSync(`${path}.1`, { force: true });
              renameSync(`${path}.completed`, `${path}.2`);
            }
          }
          const written = readFileSync(path);
          const read = await reader.read().catch((err: unknown) => err as Error);
          const reference = await readLeasesOnce(path, { now: NOW, format }).catch((err: unknown) => err as Error);
          const canContinue = followed;
          const cleanupChanged = stampOf() !== stampBefore;
          followed = !(read instanceof Error) && read.parsed.format === 'kea' && written.includes(0x0a);
          if (read instanceof Error || reference instanceof Error) {
            expect(read instanceof Error ? read.message : 'read', `step ${s.kind}`).toBe(reference instanceof Error ? reference.message : 'read');
            continue;
          }
          expect(activeLeases(read.parsed, { now: NOW })).toEqual(reference);
          if (read.parsed.format === 'kea') expect(read.parsed.leases).toEqual(lastPerAddress((await readKea(path, written.toString('utf8'))).leases as KeaLease[]));
          if (followed) {
            // the file stops inside a row (something after the last newline that a full parse does not take): that row is the one cut short
            const text = written.toString('utf8');
            const lastLine = text.split('\n').length;
            // (neither read nor left out as a row that cannot be read)
            const whole = parseKeaFile(text);
            const cutShort = /\S/.test(text.slice(text.lastIndexOf('\n') + 1)) && whole.leases.at(-1)?.line !== lastLine && whole.skipped.at(-1)?.line !== lastLine;
            const stuck = reader.stuckIncomplete(0);
            expect(stuck?.line, `step ${s.kind}`).toBe(cutShort ? lastLine : undefined);
          }
          if (s.kind === 'append') expect(read.mode).toBe(canContinue ? 'tail' : 'full');
          if (cleanupChanged || s.kind === 'rename' || s.kind === 'header') expect(read.mode).toBe('full');
          if (read.mode === 'full') expect(read.bytes).toBe(written.length);
          else expect(read.bytes).toBeLessThanOrEqual(written.length);
        }
      }),
      { numRuns: 150 },
    );
  });
});

describe('Kea lease file tail reads', () => {
  const lease = (i: number, extra: Partial<KeaLeaseInput> = {}): KeaLeaseInput => ({
    ip: `10.0.1.${i}`,
    mac: `00:00:00:00:01:${i.toString(16).padStart(2, '0')}`,
    validLifetime: 3600,
    expire: new Date('2026-06-01T00:00:00Z'),
    state: 0,
    hostname: `bmc-${i}`,
    ...extra,
  });
  const many = Array.from({ length: 200 }, (_, i) => lease(i + 1));
  const ips = (leases: readonly { ip: string }[]): string[] => leases.map((l) => l.ip);

  it('reads the header, the mark before the offset and the appended rows; a header changed in place (same size, beyond the mark) is a full read', async () => {
    const text = renderKeaLeases(many);
    expect(Buffer.byteLength(text)).toBeGreaterThan(2 * MARK_BYTES);
    writeFileSync(path, text);
    const reader = createLeaseReader(path, 'auto');
    expect(await reader.read()).toMatchObject({ mode: 'full', bytes: Buffer.byteLength(text) });

    const renewal = row(lease(1, { expire: new Date('2026-07-01T00:00:00Z') }));
    appendFileSync(path, renewal);
    const read = await reader.read();
    expect(read).toMatchObject({ mode: 'tail', bytes: KEA_HEADER.length + 1 + MARK_BYTES + Buffer.byteLength(renewal) });
    expect(read.parsed.leases).toHaveLength(200);
    expect(read.parsed.leases.at(-1)).toMatchObject({ ip: '10.0.1.1', expire: new Date('2026-07-01T00:00:00Z'), line: 202 });

    // hostname and fqdn_fwd swapped in the header, in place: every hostname reads otherwise
    writeFileSync(path, readFileSync(path, 'utf8').replace(KEA_HEADER, otherHeader(KEA_HEADER)));
    const again = await reader.read();
    expect(again.mode).toBe('full');
    expect(again.parsed.leases.at(-1)).toMatchObject({ ip: '10.0.1.1', hostname: '0' });
  });

  it('a last row without its newline is taken when it has all its fields, as a full read takes it, and dropped again when the file is cut back inside it', async () => {
    writeFileSync(path, renderKeaLeases(many.slice(0, 3)));
    // (no hold of the addresses a read ending inside a row did not reach: what the reads take in)
    const reader = createLeaseReader(path, 'kea', undefined, Date.now, 0);
    await reader.read();
    const last = row(lease(9));
    // Kea writing the row: short of fields, nothing yet
    appendFileSync(path, last.slice(0, 20));
    expect(await reader.read()).toMatchObject({ mode: 'tail', parsed: { leases: [{ ip: '10.0.1.1' }, { ip: '10.0.1.2' }, { ip: '10.0.1.3' }] } });
    // every field, no newline yet
    appendFileSync(path, last.slice(20, -1));
    const whole = await reader.read();
    expect(whole.mode).toBe('tail');
    expect(ips(whole.parsed.leases)).toEqual(['10.0.1.1', '10.0.1.2', '10.0.1.3', '10.0.1.9']);
    // cut back inside it (the same inode, not shorter than where the complete rows end)
    truncateSync(path, readFileSync(path).length - 30);
    const cut = await reader.read();
    expect(cut.mode).toBe('tail');
    expect(ips(cut.parsed.leases)).toEqual(['10.0.1.1', '10.0.1.2', '10.0.1.3']);
    expect(ips(activeLeases(cut.parsed, { now: NOW }))).toEqual(ips(await readLeasesOnce(path, { now: NOW })));
  });

  it('a row the file stops inside (short of fields, no newline) counts as stuck only once it stays unchanged for the time given; once Kea finishes it, it is taken and nothing is stuck', async () => {
    writeFileSync(path, renderKeaLeases(many.slice(0, 3)));
    let t = 0;
    const reader = createLeaseReader(path, 'auto', undefined, () => t);
    await reader.read();
    const last = row(lease(9));
    appendFileSync(path, last.slice(0, 20));
    await reader.read();
    t += 1500;
    // written on slowly: more of the same row, still short of fields
    appendFileSync(path, last.slice(20, 40));
    expect(await reader.read()).toMatchObject({ mode: 'tail', parsed: { leases: [{ ip: '10.0.1.1' }, { ip: '10.0.1.2' }, { ip: '10.0.1.3' }] } });
    t += 1500;
    expect(reader.stuckIncomplete(2000)).toBeUndefined(); // 3 s since it began, 1.5 s since it last grew
    t += 600;
    // the header, three rows, then this one: line 5
    expect(reader.stuckIncomplete(2000)).toMatchObject({ line: 5, message: `${path} line 5: unterminated row (5 of the header's 12 fields, no newline at the end of the file): "10.0.1.9,00:00:00:00:01:09,,3600,1780272"` });
    expect(reader.incompleteReported()).toBe(true);

    // Kea finishes the row: taken as any appended row, nothing cut short any more
    appendFileSync(path, last.slice(40));
    const done = await reader.read();
    expect(done.mode).toBe('tail');
    expect(ips(done.parsed.leases)).toEqual(['10.0.1.1', '10.0.1.2', '10.0.1.3', '10.0.1.9']);
    expect(reader.incompleteReported()).toBe(false);
    t += 5000;
    expect(reader.stuckIncomplete(2000)).toBeUndefined();
  });

  it('a full read of a file that stops inside a row (a daemon started on it) counts it as cut short too, timed from that read', async () => {
    writeFileSync(path, renderKeaLeases(many.slice(0, 3)) + row(lease(9)).slice(0, 30));
    let t = 0;
    const reader = createLeaseReader(path, 'kea', undefined, () => t);
    const read = await reader.read();
    expect(read.mode).toBe('full');
    expect(ips(read.parsed.leases)).toEqual(['10.0.1.1', '10.0.1.2', '10.0.1.3']);
    t += 1999;
    expect(reader.stuckIncomplete(2000)).toBeUndefined();
    t += 1;
    expect(reader.stuckIncomplete(2000)?.message).toBe(`${path} line 5: unterminated row (4 of the header's 12 fields, no newline at the end of the file): "10.0.1.9,00:00:00:00:01:09,,36"`);
    // a last row with all its fields but no newline is taken, not cut short; blanks after the last newline are nothing
    writeFileSync(path, `${renderKeaLeases(many.slice(0, 3))}  \n \t`);
    const blanks = createLeaseReader(path, 'kea', undefined, () => t);
    await blanks.read();
    t += 5000;
    expect(blanks.stuckIncomplete(2000)).toBeUndefined();
    writeFileSync(path, renderKeaLeases(many.slice(0, 3)) + row(lease(9)).slice(0, -1));
    const whole = createLeaseReader(path, 'kea', undefined, () => t);
    expect(ips((await whole.read()).parsed.leases)).toEqual(['10.0.1.1', '10.0.1.2', '10.0.1.3', '10.0.1.9']);
    t += 5000;
    expect(whole.stuckIncomplete(2000)).toBeUndefined();
  });

  it('a file that ends in more than a row holds without a newline (a power loss\'s zeros) has it left out at once (told once), not a row kept and parsed again every poll; the rows before it read', async () => {
    writeFileSync(path, renderKeaLeases(many.slice(0, 3)) + '\0'.repeat(MAX_INCOMPLETE_BYTES + 1));
    let t = 0;
    const reader = createLeaseReader(path, 'kea', undefined, () => t);
    const read = await reader.read();
    expect(ips(read.parsed.leases)).toEqual(['10.0.1.1', '10.0.1.2', '10.0.1.3']);
    expect(read.skipped.map((e) => e.message)).toEqual([`${path} line 5: ${MAX_INCOMPLETE_BYTES + 1} bytes without a newline at the end of the file, more than a row holds (${MAX_INCOMPLETE_BYTES}): not a row Kea is writing`]);
    t += 5000;
    expect(reader.stuckIncomplete(2000)).toBeUndefined();
    // read again (a change): not told again
    expect((await reader.read()).skipped).toEqual([]);
    // as much as a row may hold is still a row being written
    writeFileSync(path, renderKeaLeases(many.slice(0, 3)) + '\0'.repeat(MAX_INCOMPLETE_BYTES));
    const writing = await createLeaseReader(path, 'kea').read();
    expect(ips(writing.parsed.leases)).toEqual(['10.0.1.1', '10.0.1.2', '10.0.1.3']);
    expect(writing.skipped).toEqual([]);
  });

  it('a row of an address appended later wins, a deleted lease (valid_lifetime 0) or a released one (state 3) takes the address away', async () => {
    writeFileSync(path, renderKeaLeases(many.slice(0, 3)));
    const reader = createLeaseReader(path, 'auto');
    await reader.read();
    appendFileSync(path, row(lease(1, { validLifetime: 0 })) + row(lease(2, { state: 3 })) + row(lease(3, { mac: '00:00:00:00:02:03' })));
    const read = await reader.read();
    expect(read.mode).toBe('tail');
    expect(activeLeases(read.parsed, { now: NOW })).toEqual([{ ip: '10.0.1.3', mac: '00:00:00:00:02:03', hostname: 'bmc-3', expires: new Date('2026-06-01T00:00:00Z') }]);
    expect(activeLeases(read.parsed, { now: NOW })).toEqual(await readLeasesOnce(path, { now: NOW }));
  });

  it('an appended row that cannot be read is left out by the tail read and told once with its line; the rows around it read; a full read of the same file does not tell it again, one of a new file (kea-lfc\'s) does', async () => {
    writeFileSync(path, renderKeaLeases(many.slice(0, 3)));
    const reader = createLeaseReader(path, 'auto');
    await reader.read();
    // a power loss cut the last row short; Kea, restarted, appends after it: the two rows merge
    appendFileSync(path, `${row(lease(4))}10.0.1.5,00:00:00:00:01:${row(lease(6))}`);
    const read = await reader.read();
    expect(read.mode).toBe('tail');
    expect(ips(read.parsed.leases)).toEqual(['10.0.1.1', '10.0.1.2', '10.0.1.3', '10.0.1.4']);
    expect(read.skipped.map((e) => e.message)).toEqual([`${path} line 6: invalid hwaddr "00:00:00:00:01:10.0.1.6"`]);
    expect(read.skipped[0]?.problem).toBe('malformed');
    appendFileSync(path, row(lease(7)));
    const next = await reader.read();
    expect(next.mode).toBe('tail');
    expect(ips(next.parsed.leases)).toEqual(['10.0.1.1', '10.0.1.2', '10.0.1.3', '10.0.1.4', '10.0.1.7']);
    expect(next.skipped).toEqual([]);
    // a full read of the same file (a fresh reader would tell it: this one told it already)
    writeFileSync(path, readFileSync(path, 'utf8').replace(',bmc-1,', ',bmc-X,')); // a change in place: the same inode
    const again = await reader.read();
    expect(again.mode).toBe('full');
    expect(again.skipped).toEqual([]);
    expect(ips(activeLeases(again.parsed, { now: NOW }))).toEqual(ips(await readLeasesOnce(path, { now: NOW })));
    // the same rows in a new file: told again
    replace(path, readFileSync(path));
    expect((await reader.read()).skipped.map((e) => e.line)).toEqual([6]);
  });

  it('a row that cannot be read in a cleanup file is told once, naming that file', async () => {
    writeFileSync(`${path}.2`, `${renderKeaLeases(many.slice(0, 2))}10.0.1.9,00:00:00:00:01:09,,3600,soon,1,0,0,,0,,\n`);
    writeFileSync(path, renderKeaLeases(many.slice(2, 3)));
    const reader = createLeaseReader(path, 'auto');
    const read = await reader.read();
    expect(ips(read.parsed.leases)).toEqual(['10.0.1.1', '10.0.1.2', '10.0.1.3']);
    expect(read.skipped.map((e) => e.message)).toEqual([`${path}.2 line 4: invalid expire "soon"`]);
    // a cleanup file changing is a full read: the one in .2 (the same file) not told again
    writeFileSync(`${path}.1`, renderKeaLeases(many.slice(3, 4)));
    const again = await reader.read();
    expect(again.mode).toBe('full');
    expect(again.skipped).toEqual([]);
  });
});
