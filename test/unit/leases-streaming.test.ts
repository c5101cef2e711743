/**
 * A full read of a lease file reduces per address as it parses: the memory of the read follows
 * the addresses, not the renewals the file holds (dhcpd appends every renewal until its hourly
 * rewrite; Kea with lease file cleanup off keeps every one, ~1.5 M rows in 150 MiB). The choice of
 * lease per address and per MAC must stay what parsing every entry and selecting gives.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { parseIscDeclarations } from '../../src/leases/isc.js';
import { parseKeaFile } from '../../src/leases/kea.js';
import { renderIscLeases, renderKeaLeases, type IscLeaseInput, type KeaLeaseInput } from '../../src/leases/render.js';
import { activeLeases, parseLeases } from '../../src/leases/select.js';
import { KEA_INFINITE_LIFETIME, type KeaLease } from '../../src/leases/types.js';
import { createLeaseReader, readLeasesOnce } from '../../src/leases/watch.js';

const run = promisify(execFile);
const dir = mkdtempSync(join(tmpdir(), 'metal-bmc-leases-streaming-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const NOW = new Date('2026-03-01T12:00:00Z');
const at = (minutes: number): Date => new Date(NOW.getTime() + minutes * 60_000);

// few addresses and MACs, many entries: renewals per address, MACs over several addresses, ties in start times
const ip = fc.constantFrom('10.0.0.1', '10.0.0.2', '10.0.0.3', '10.0.1.1', '192.168.0.1');
const mac = fc.option(fc.constantFrom('00:00:00:00:00:01', '00:00:00:00:00:02', '00:00:00:00:00:03'), { nil: undefined });
const minute = fc.integer({ min: -3, max: 3 });

const iscEntry: fc.Arbitrary<IscLeaseInput> = fc.record({
  ip,
  mac,
  starts: fc.option(minute.map((m) => at(m - 60)), { nil: undefined }),
  ends: fc.constantFrom<Date | 'never' | undefined>(at(-10), at(30), at(60), 'never', undefined),
  bindingState: fc.constantFrom('active', 'active', 'free', 'abandoned', undefined),
});

/** a declaration dhcpd would skip (onSkipped) */
const BAD_ISC = 'lease 10.0.0.2 {\n  hardware ethernet zz:zz;\n}';

/** the declarations of `entries` with `bad` declarations put in before the entries of those indexes */
function iscText(entries: readonly IscLeaseInput[], bad: readonly number[]): string {
  const [header, ...blocks] = renderIscLeases(entries).split(/\n(?=lease )/);
  const withBad = blocks.flatMap((block, i) => (bad.includes(i) ? [BAD_ISC, block] : [block]));
  return [header, ...withBad].join('\n') + (blocks.length === 0 ? '' : '\n');
}

const keaEntry: fc.Arbitrary<KeaLeaseInput> = fc.record({
  ip,
  mac,
  validLifetime: fc.constantFrom(0, 600, 3600),
  expire: fc.oneof(minute.map((m) => at(m * 10)), fc.constant<'never'>('never')),
  state: fc.constantFrom(0, 0, 0, 1, 2, 3),
}).map((l) => (l.expire === 'never' ? { ...l, validLifetime: KEA_INFINITE_LIFETIME } : l));

const BAD_KEA = '10.0.0.3,00:00:00:00:00:01,,3600,not-a-time,1,0,0,,0,,';

function keaText(entries: readonly KeaLeaseInput[], bad: readonly number[], newlineAtEnd: boolean): string {
  const [header, ...rows] = renderKeaLeases(entries).trimEnd().split('\n');
  const withBad = rows.flatMap((row, i) => (bad.includes(i) ? [BAD_KEA, row] : [row]));
  return [header, ...withBad].join('\n') + (newlineAtEnd ? '\n' : '');
}

let fileNumber = 0;
function writeFiles(files: Record<string, string>): string {
  const path = join(dir, `leases-${++fileNumber}`);
  for (const [suffix, text] of Object.entries(files)) writeFileSync(path + suffix, text);
  return path;
}

const options = { now: NOW };
const lines = (errors: readonly { line: number }[]): number[] => errors.map((e) => e.line);

describe('full reads reduce per address as they parse', () => {
  it('give the leases of parsing every ISC declaration and selecting, and skip the same declarations', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(iscEntry, { maxLength: 40 }), fc.array(fc.nat(40), { maxLength: 3 }), async (entries, bad) => {
        const text = iscText(entries, bad);
        const expected = activeLeases(parseLeases(text, 'isc'), options);
        const path = writeFiles({ '': text });
        expect(await readLeasesOnce(path, { now: NOW })).toEqual(expected);
        const read = await createLeaseReader(path, 'auto').read();
        expect(activeLeases(read.parsed, options)).toEqual(expected);
        expect(lines(read.skipped)).toEqual(lines(parseIscDeclarations(text).skipped));
        rmSync(path);
      }),
      { numRuns: 150 },
    );
  });

  it('give the leases of parsing every Kea row of the lease file and its cleanup files and selecting, and skip the same rows', async () => {
    const file = fc.record({ entries: fc.array(keaEntry, { maxLength: 30 }), bad: fc.array(fc.nat(30), { maxLength: 2 }) });
    await fc.assert(
      fc.asyncProperty(file, fc.option(file, { nil: undefined }), fc.option(file, { nil: undefined }), fc.boolean(), async (main, previous, copy, newlineAtEnd) => {
        const files: Record<string, string> = { '': keaText(main.entries, main.bad, newlineAtEnd) };
        if (previous !== undefined) files['.2'] = keaText(previous.entries, previous.bad, true);
        if (copy !== undefined) files['.1'] = keaText(copy.entries, copy.bad, true);
        // Kea's load order: .2, .1, then the lease file
        const order = ['.2', '.1', ''].filter((suffix) => files[suffix] !== undefined);
        const rows: KeaLease[] = order.flatMap((suffix) => parseKeaFile(files[suffix] as string).leases);
        const expected = activeLeases({ format: 'kea', leases: rows }, options);
        const path = writeFiles(files);
        expect(await readLeasesOnce(path, { now: NOW })).toEqual(expected);
        const read = await createLeaseReader(path, 'auto').read();
        expect(activeLeases(read.parsed, options)).toEqual(expected);
        const skipped = order.flatMap((suffix) => lines(parseKeaFile(files[suffix] as string).skipped));
        expect(lines(read.skipped).sort()).toEqual(skipped.sort());
        for (const suffix of order) rmSync(path + suffix);
      }),
      { numRuns: 150 },
    );
  });

  it('hand each entry to onLease as it is read instead of keeping every one', () => {
    const entries = Array.from({ length: 600 }, (_, i) => ({ ip: `10.0.0.${i % 6}`, mac: '00:00:00:00:00:01', ends: at(60), starts: at(i - 600), bindingState: 'active' }));
    const iscSeen: string[] = [];
    const d = parseIscDeclarations(renderIscLeases(entries), 1, (lease) => iscSeen.push(lease.ip));
    expect(d.leases).toEqual([]);
    expect(iscSeen).toEqual(entries.map((e) => e.ip));
    const keaSeen: string[] = [];
    const rows = parseKeaFile(renderKeaLeases(entries.map((e) => ({ ip: e.ip, mac: e.mac, validLifetime: 3600, expire: at(60), state: 0 }))), (lease) => keaSeen.push(lease.ip));
    expect(rows.leases).toEqual([]);
    expect(keaSeen).toEqual(entries.map((e) => e.ip));
  });
});

/**
 * A full read in a process whose heap holds the file's text but not a record per entry: N
 * renewals of K addresses (~733 B per ISC record, ~377 B per Kea row). Before the reduction this
 * died out of memory at 96 MiB; after it, it passes at 64 MiB.
 */
const FULL_READ = `
const { createLeaseReader, readLeasesOnce } = await import(process.env.MODULE);
const now = new Date(process.env.NOW);
const read = await createLeaseReader(process.env.FILE, 'auto').read();
const once = await readLeasesOnce(process.env.FILE, { now });
console.log(JSON.stringify({ held: read.parsed.leases.length, leases: once.length }));
`;

async function fullReadUnderHeapLimit(path: string, heapMiB: number): Promise<{ held: number; leases: number }> {
  const { stdout } = await run(process.execPath, [`--max-old-space-size=${heapMiB}`, '--import', 'tsx', '--input-type=module', '-e', FULL_READ], {
    env: { ...process.env, MODULE: new URL('../../src/leases/watch.ts', import.meta.url).href, FILE: path, NOW: NOW.toISOString() },
    timeout: 90_000,
    maxBuffer: 1 << 20,
  });
  return JSON.parse(stdout) as { held: number; leases: number };
}

describe('the memory of a full read follows the addresses, not the entries', () => {
  const ADDRESSES = 50;
  const addressOf = (i: number): string => `10.0.0.${(i % ADDRESSES) + 1}`;
  const macOf = (i: number): string => `02:00:00:00:00:${((i % ADDRESSES) + 1).toString(16).padStart(2, '0')}`;

  it('reads an ISC file of 200,000 renewals of 50 addresses in a 96 MiB heap', async () => {
    const entries: IscLeaseInput[] = Array.from({ length: 200_000 }, (_, i) => ({ ip: addressOf(i), mac: macOf(i), starts: at(-i / 1000), ends: at(60), bindingState: 'active' }));
    const path = writeFiles({ '': renderIscLeases(entries) });
    const read = await fullReadUnderHeapLimit(path, 96);
    expect(read.leases).toBe(ADDRESSES);
    expect(read.held).toBe(ADDRESSES);
  }, 120_000);

  it('reads a Kea file and its cleanup file of 300,000 renewals each of 50 addresses in a 96 MiB heap', async () => {
    const rows = (offset: number): KeaLeaseInput[] => Array.from({ length: 300_000 }, (_, i) => ({ ip: addressOf(i), mac: macOf(i), validLifetime: 3600, expire: at(60 - offset), state: 0 }));
    const path = writeFiles({ '': renderKeaLeases(rows(0)), '.2': renderKeaLeases(rows(30)) });
    const read = await fullReadUnderHeapLimit(path, 96);
    expect(read.leases).toBe(ADDRESSES);
    // each address's last row of the cleanup file, then of the lease file
    expect(read.held).toBe(ADDRESSES);
  }, 120_000);
});
