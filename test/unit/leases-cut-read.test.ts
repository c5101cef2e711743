import { appendFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CutReadHold } from '../../src/leases/cut-read.js';
import { parseIscDeclarations } from '../../src/leases/isc.js';
import { parseKeaFile } from '../../src/leases/kea.js';
import { renderIscLeases, renderKeaLeases, type IscLeaseInput, type KeaLeaseInput } from '../../src/leases/render.js';
import { activeLeases } from '../../src/leases/select.js';
import type { IscLease, ParsedLeases } from '../../src/leases/types.js';
import { createLeaseReader } from '../../src/leases/watch.js';

const NOW = new Date('2026-01-01T00:00:00Z');
const HOLD_MS = 10_000;

let dir: string;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'metal-bmc-cut-read-'));
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const IPS = Array.from({ length: 12 }, (_, i) => `10.0.0.${i + 1}`);
const MACS = Array.from({ length: 8 }, (_, i) => `00:00:00:00:00:${(i + 1).toString(16).padStart(2, '0')}`);
const around = (minutes: number) => new Date(Math.floor(NOW.getTime() / 60_000 + minutes) * 60_000);

/** Per address its last entry, in the order of those entries: what the readers give of a file. */
function lastPerAddress<L extends { ip: string }>(leases: readonly L[]): L[] {
  const byIp = new Map<string, L>();
  for (const l of leases) {
    byIp.delete(l.ip);
    byIp.set(l.ip, l);
  }
  return [...byIp.values()];
}

describe('CutReadHold', () => {
  const entry = fc.record({ ip: fc.constantFrom(...IPS), line: fc.nat(1000) }).map(({ ip, line }): IscLease => ({ ip, ends: undefined, line }));
  const read = fc.record({ leases: fc.array(entry, { maxLength: 8 }).map(lastPerAddress), cut: fc.boolean(), after: fc.integer({ min: 0, max: 6000 }), release: fc.boolean() });

  it('a read that ends cleanly gives what it read; one that ends inside an entry gives the view before it with the addresses new in it added, until HOLD_MS after the first of such reads in a row; then what it read, and release gives the last held read alone once', () => {
    fc.assert(
      fc.property(fc.array(read, { minLength: 1, maxLength: 20 }), (reads) => {
        let t = 0;
        const hold = new CutReadHold(HOLD_MS, () => t);
        let given: ParsedLeases | undefined;
        let since: number | undefined;
        /** what the last read read alone, when it gave the view before it */
        let held: ParsedLeases | undefined;
        for (const r of reads) {
          t += r.after;
          const parsed: ParsedLeases = { format: 'isc', leases: r.leases };
          const got = hold.take(parsed, r.cut);
          if (r.cut) since ??= t;
          else since = undefined;
          if (!r.cut || given === undefined || t - (since as number) >= HOLD_MS) {
            expect(got).toBe(parsed);
            held = undefined;
          } else {
            const before = given.leases;
            expect(got.leases).toEqual([...before, ...r.leases.filter((l) => !before.some((b) => b.ip === l.ip))]);
            held = parsed;
          }
          given = got;
          if (r.release) {
            t += r.after;
            const released = hold.release();
            if (held !== undefined && t - (since as number) >= HOLD_MS) {
              expect(released).toBe(held);
              given = held;
              held = undefined;
            } else {
              expect(released).toBeUndefined();
            }
          }
        }
      }),
      { numRuns: 1000 },
    );
  });
});

describe('a lease file copied in place (cp, rsync --inplace), read mid-copy', () => {
  const iscLease: fc.Arbitrary<IscLeaseInput> = fc.record({
    ip: fc.constantFrom(...IPS),
    mac: fc.constantFrom(...MACS),
    starts: fc.integer({ min: -600, max: 0 }).map(around),
    ends: fc.integer({ min: -60, max: 600 }).map(around),
    bindingState: fc.constantFrom('active', 'active', 'active', 'free'),
    hostname: fc.option(fc.string({ unit: fc.constantFrom('a', 'b', '"', ';', '{', '}', '\n'), maxLength: 6 }), { nil: undefined }),
  });
  const keaLease: fc.Arbitrary<KeaLeaseInput> = fc.record({
    ip: fc.constantFrom(...IPS),
    mac: fc.constantFrom(...MACS),
    validLifetime: fc.constant(3600),
    expire: fc.integer({ min: -60, max: 600 }).map(around),
    state: fc.constantFrom(0, 0, 0, 3),
    hostname: fc.option(fc.string({ unit: fc.constantFrom('a', 'b', ',', '&'), maxLength: 6 }), { nil: undefined }),
  });
  /** a file, and the one copied over it: the same entries with more appended (renewals, new BMCs, releases) */
  const files = fc.oneof(
    fc.tuple(fc.array(iscLease, { minLength: 1, maxLength: 24 }), fc.array(iscLease, { maxLength: 8 })).map(([before, more]) => ({ format: 'isc' as const, before: renderIscLeases(before), copied: renderIscLeases([...before, ...more]) })),
    fc.tuple(fc.array(keaLease, { minLength: 1, maxLength: 24 }), fc.array(keaLease, { maxLength: 8 })).map(([before, more]) => ({ format: 'kea' as const, before: renderKeaLeases(before), copied: renderKeaLeases([...before, ...more]) })),
  );

  /** The entries a full parse of `text` gives, per address its last, and whether the text ends inside an entry. */
  function parse(format: 'isc' | 'kea', text: string): { parsed: ParsedLeases; cut: boolean } {
    if (format === 'isc') {
      const d = parseIscDeclarations(text);
      return { parsed: { format, leases: lastPerAddress(d.leases) }, cut: d.cut !== undefined };
    }
    // (a header not whole yet: no rows, being written)
    if (!text.includes('\n')) return { parsed: { format, leases: [] }, cut: text.length > 0 };
    const rows = parseKeaFile(text);
    return { parsed: { format, leases: lastPerAddress(rows.leases) }, cut: rows.rest !== 'none' };
  }
  const view = (parsed: ParsedLeases) => activeLeases(parsed, { now: NOW });
  const macs = (parsed: ParsedLeases) => new Set(view(parsed).map((l) => l.mac));

  it('a read that ends inside an entry keeps every BMC of the view before the copy, the BMCs new in what it read added; the copy finished, the view is the new file\'s', async () => {
    let run = 0;
    await fc.assert(
      fc.asyncProperty(files, fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 6 }), async ({ format, before, copied }, fronts) => {
        const path = join(dir, `leases-${run++}`);
        writeFileSync(path, before);
        const reader = createLeaseReader(path, format, undefined, Date.now, 3_600_000);
        const first = await reader.read();
        const kept = parse(format, before).parsed;
        expect(view(first.parsed)).toEqual(view(kept));
        // the copy: the file truncated, then written in parts from its start, read at each copy front
        const bytes = Buffer.from(copied);
        const ends = [0, ...fronts.map((f) => Math.floor(f * bytes.length)).sort((a, b) => a - b)];
        writeFileSync(path, '');
        let written = 0;
        let given = kept;
        for (const end of ends) {
          appendFileSync(path, bytes.subarray(written, end));
          written = end;
          const text = bytes.subarray(0, end).toString('utf8');
          const read = await reader.read();
          const part = parse(format, text);
          if (end === 0 || part.cut) {
            // the view before with the addresses new in the part read
            const known = new Set(given.leases.map((l) => l.ip));
            const expected = { format, leases: [...given.leases, ...part.parsed.leases.filter((l) => !known.has(l.ip))] } as ParsedLeases;
            expect(view(read.parsed)).toEqual(view(expected));
            for (const mac of macs(kept)) expect(macs(read.parsed).has(mac), `${mac} kept at ${end} of ${bytes.length}`).toBe(true);
          } else if (part.parsed.leases.length > 0) {
            // a copy front between two entries: what the part holds (cannot be told from a whole file)
            expect(view(read.parsed)).toEqual(view(part.parsed));
          }
          given = read.parsed;
        }
        appendFileSync(path, bytes.subarray(written));
        const whole = await reader.read();
        expect(view(whole.parsed)).toEqual(view(parse(format, copied).parsed));
      }),
      { numRuns: 200 },
    );
  });

  it('left cut for good, the file converges: a read once the hold is over gives what the file holds, and so does release with no read', async () => {
    const path = join(dir, 'dhcpd.leases');
    const leases = IPS.map((ip, i): IscLeaseInput => ({ ip, mac: MACS[i % MACS.length] as string, starts: around(-i), ends: around(60), bindingState: 'active' }));
    const text = renderIscLeases(leases);
    writeFileSync(path, text);
    let t = 0;
    const reader = createLeaseReader(path, 'isc', undefined, () => t, HOLD_MS);
    const whole = view((await reader.read()).parsed);
    const cut = text.slice(0, text.indexOf('ends', text.indexOf('lease 10.0.0.5 ')) + 10);
    writeFileSync(path, cut);
    expect(view((await reader.read()).parsed)).toEqual(whole);
    expect(reader.releaseHeld()).toBeUndefined();
    t += HOLD_MS - 1;
    appendFileSync(path, ' '); // still cut, still changing (a copy going on)
    expect(view((await reader.read()).parsed)).toEqual(whole);
    expect(reader.releaseHeld()).toBeUndefined();
    t += 1;
    const released = reader.releaseHeld();
    expect(released?.leases.map((l) => l.ip)).toEqual(['10.0.0.1', '10.0.0.2', '10.0.0.3', '10.0.0.4']);
    expect(reader.releaseHeld()).toBeUndefined();
    // a later read of it, still cut: what it holds
    appendFileSync(path, ' ');
    expect((await reader.read()).parsed.leases.map((l) => l.ip)).toEqual(['10.0.0.1', '10.0.0.2', '10.0.0.3', '10.0.0.4']);
    // written whole, then cut again: held again from then on
    writeFileSync(path, text);
    expect(view((await reader.read()).parsed)).toEqual(whole);
    writeFileSync(path, cut);
    expect(view((await reader.read()).parsed)).toEqual(whole);
  });
});
