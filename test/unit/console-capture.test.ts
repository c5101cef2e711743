import fc from 'fast-check';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { newestOf } from '../../src/cli/console-history.js';
import { parseLogSize } from '../../src/config/console-capture.js';
import { isSafeMachineId, parseIndexLine } from '../../src/console/capture-files.js';
import { stripEscapes } from '../../src/console/capture-plain.js';
import { gapMarker, grepHistory, grepLine, grepMatches, historyCursor, readHistory, renderEvent, tailBytes, type GrepMatch, type GrepOptions } from '../../src/console/capture-read.js';
import { openMachineLog } from '../../src/console/capture-store.js';
import { captureLog } from '../helpers/log.js';

const ESC = '\x1b';

describe('METAL_BMC_CONSOLE_LOG_SIZE', () => {
  it('reads <size> x <files> with binary units', () => {
    expect(parseLogSize('8MiB x 4')).toEqual({ fileBytes: 8 << 20, files: 4 });
    expect(parseLogSize('512KiB×2')).toEqual({ fileBytes: 512 * 1024, files: 2 });
    expect(parseLogSize('1048576 x 3')).toEqual({ fileBytes: 1 << 20, files: 3 });
    expect(parseLogSize('1g x 1')).toEqual({ fileBytes: 1 << 30, files: 1 });
  });

  it('says what is wrong with a bad value', () => {
    expect(parseLogSize('8MiB')).toMatch(/is not <size> x <files>/);
    expect(parseLogSize('8PiB x 2')).toMatch(/unknown unit/);
    expect(parseLogSize('1KiB x 2')).toMatch(/4KiB to 1GiB/);
    expect(parseLogSize('8MiB x 0')).toMatch(/1 to 1000 files/);
  });

  it('never throws and gives sizes within the bounds (property)', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 40 }), (text) => {
        const r = parseLogSize(text);
        if (typeof r !== 'string') expect(r.fileBytes >= 4096 && r.fileBytes <= 1 << 30 && r.files >= 1 && r.files <= 1000).toBe(true);
      }),
    );
    fc.assert(fc.property(fc.integer({ min: 4, max: 1 << 20 }), fc.integer({ min: 1, max: 1000 }), (kib, files) => {
      expect(parseLogSize(`${kib}KiB x ${files}`)).toEqual({ fileBytes: kib * 1024, files });
    }));
  });

  it("console log --newest takes a size as this setting does: the same units, the same bytes (property)", () => {
    const units = ['', 'B', 'k', 'kB', 'KiB', 'M', 'mb', 'MiB', 'G', 'GB', 'gib'];
    fc.assert(
      fc.property(fc.integer({ min: 4, max: 1024 }), fc.constantFrom(...units), (n, unit) => {
        const setting = parseLogSize(`${n}${unit} x 1`);
        if (typeof setting === 'string') return; // a file under 4 KiB or over 1 GiB: outside the setting's bounds
        expect(newestOf(`${n}${unit}`)).toBe(setting.fileBytes);
      }),
    );
    expect(newestOf('4M')).toBe(4 << 20);
    expect(() => newestOf('4PiB')).toThrow(/is not a size/);
  });
});

describe('stripEscapes', () => {
  it('removes colours, cursor moves, titles and charset switches', () => {
    const text = `${ESC}[1;32mOK${ESC}[0m boot\r\n${ESC}]0;title${'\x07'}${ESC}(Bdone${ESC}[2J${ESC}[H\r\n`;
    expect(stripEscapes(text)).toBe('OK boot\ndone\n');
  });

  it('leaves plain text alone, leaves no escape behind, and is idempotent (property)', () => {
    const plain = fc.stringMatching(/^[ -~\t\n]*$/);
    fc.assert(fc.property(plain, (text) => {
      expect(stripEscapes(text)).toBe(text);
    }));
    const bytes = fc.uint8Array({ maxLength: 200 }).map((a) => Buffer.from(a).toString('latin1'));
    fc.assert(
      fc.property(bytes, (text) => {
        const once = stripEscapes(text);
        expect([...once].every((ch) => ch === '\t' || ch === '\n' || ch === '\r' || (ch >= ' ' && ch < '\x7f') || ch >= '\xa0')).toBe(true);
        expect(stripEscapes(once)).toBe(once);
      }),
    );
  });

  it('keeps the text around any escape sequence (property)', () => {
    const word = fc.stringMatching(/^[a-z ]{0,20}$/);
    const sequence = fc.constantFrom(`${ESC}[0m`, `${ESC}[38;5;196m`, `${ESC}[?25l`, `${ESC}]2;x\x07`, `${ESC}P1$r${ESC}\\`, `${ESC}7`, `${ESC}(0`);
    fc.assert(fc.property(word, sequence, word, (a, s, b) => {
      expect(stripEscapes(a + s + b)).toBe(a + b);
    }));
  });
});

describe('machine ids as folder names', () => {
  it('takes UUIDs and host names, refuses anything that walks paths', () => {
    for (const ok of ['00000000-0000-0000-0000-000000000001', 'machine-1', 'a.b_c:d']) expect(isSafeMachineId(ok), ok).toBe(true);
    for (const bad of ['', '..', '../etc', 'a/b', 'a\\b', '.hidden', 'x'.repeat(129), 'a..b', 'a\0b']) expect(isSafeMachineId(bad), bad).toBe(false);
  });

  it('never lets a name leave its folder (property)', () => {
    fc.assert(fc.property(fc.string({ maxLength: 40 }), (id) => {
      if (isSafeMachineId(id)) expect(id.includes('/') || id.includes('\\') || id.startsWith('.') || id.includes('..')).toBe(false);
    }));
  });
});

describe('index lines', () => {
  it('parses what the writer writes and skips anything else (property)', () => {
    expect(parseIndexLine('{"t":5,"o":0,"n":3}')).toEqual({ t: 5, o: 0, n: 3 });
    expect(parseIndexLine('{"t":5,"gap":"start","reason":"x"}')).toEqual({ t: 5, gap: 'start', reason: 'x' });
    expect(parseIndexLine('{"t":5,"o":-1,"n":3}')).toBeUndefined();
    expect(parseIndexLine('{"t":5,"o":')).toBeUndefined();
    fc.assert(fc.property(fc.string(), (line) => void parseIndexLine(line)));
    fc.assert(fc.property(fc.jsonValue(), (v) => void parseIndexLine(JSON.stringify(v))));
  });
});

describe('a machine log', () => {
  let dir: string;
  let clock: number;
  const now = () => clock;
  const { logger } = captureLog();
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'capture-'));
    clock = 1_700_000_000_000;
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('keeps the bytes unchanged, with the time of each write and its gaps in the index', async () => {
    const log = await openMachineLog({ dir, machineId: 'm1', fileBytes: 1 << 20, files: 2, logger, now });
    log.gapStart('capture starting');
    clock += 2000;
    expect(log.gapEnd()).toBe(2);
    log.append(Buffer.from('first\r\n'));
    await log.flush();
    clock += 60_000;
    log.append(Buffer.from(`${ESC}[1msecond${ESC}[0m\r\n`));
    await log.close();
    expect(readFileSync(join(dir, 'm1', '00000001.log'), 'latin1')).toBe(`first\r\n${ESC}[1msecond${ESC}[0m\r\n`);
    const events = await readHistory(dir, 'm1');
    expect(events.map((e) => (e.kind === 'data' ? e.data.toString('latin1') : e.what))).toEqual(['start', 'end', 'first\r\n', `${ESC}[1msecond${ESC}[0m\r\n`]);
    // --since: only what came at or after the time
    const later = await readHistory(dir, 'm1', { sinceMs: clock - 1000 });
    expect(later.map((e) => e.kind === 'data' && e.data.toString('latin1'))).toEqual([`${ESC}[1msecond${ESC}[0m\r\n`]);
  });

  it('rotates at the size bound and keeps the newest files', async () => {
    const log = await openMachineLog({ dir, machineId: 'm2', fileBytes: 4096, files: 3, logger, now });
    const lines = Array.from({ length: 400 }, (_, i) => `line ${String(i).padStart(4, '0')} ${'x'.repeat(40)}\n`);
    for (const line of lines) {
      log.append(Buffer.from(line));
      if (lines.indexOf(line) % 50 === 0) await log.flush();
    }
    await log.close();
    const files = readdirSync(join(dir, 'm2')).sort();
    const logs = files.filter((f) => f.endsWith('.log'));
    expect(logs).toHaveLength(3);
    for (const f of logs.slice(0, -1)) expect(readFileSync(join(dir, 'm2', f)).length).toBe(4096);
    // what is kept is the end of what was written, in order, without a seam
    const kept = (await readHistory(dir, 'm2')).map((e) => (e.kind === 'data' ? e.data.toString() : '')).join('');
    const all = lines.join('');
    expect(kept.length).toBeGreaterThan(2 * 4096);
    expect(all.endsWith(kept)).toBe(true);
    expect((await tailBytes(dir, 'm2', 100)).toString()).toBe(all.slice(-100));
  });

  it('opens where it left off: a second writer (a restart) appends', async () => {
    const a = await openMachineLog({ dir, machineId: 'm3', fileBytes: 1 << 20, files: 2, logger, now });
    a.append(Buffer.from('before restart\n'));
    await a.close();
    const b = await openMachineLog({ dir, machineId: 'm3', fileBytes: 1 << 20, files: 2, logger, now });
    b.append(Buffer.from('after restart\n'));
    await b.close();
    expect((await tailBytes(dir, 'm3', 1000)).toString()).toBe('before restart\nafter restart\n');
  });

  it('drops what a slow disk cannot take, and says so in the index with the byte count', async () => {
    let release: () => void = () => undefined;
    let writes = 0;
    const blocked = new Promise<void>((resolve) => (release = resolve));
    const dropped: number[] = [];
    const log = await openMachineLog({
      dir,
      machineId: 'm4',
      fileBytes: 1 << 20,
      files: 2,
      logger,
      now,
      maxBufferBytes: 1000,
      flushMs: 1,
      onDropped: (n) => dropped.push(n),
      beforeWrite: async () => {
        if (writes++ === 0) await blocked;
      },
    });
    log.append(Buffer.alloc(600, 0x61)); // taken, its write hangs on the disk
    await new Promise<void>((resolve) => {
      const poll = () => (writes > 0 ? resolve() : setTimeout(poll, 1));
      poll();
    });
    log.append(Buffer.alloc(300, 0x62)); // fits in the buffer
    log.append(Buffer.alloc(500, 0x63)); // does not: dropped at once, append does not wait
    log.append(Buffer.alloc(50, 0x64)); // fits
    expect(dropped).toEqual([500]);
    release();
    await log.close();
    const events = await readHistory(dir, 'm4');
    expect(events.map((e) => (e.kind === 'data' ? `${e.data.length}` : `${e.what}:${'bytes' in e ? e.bytes : ''}`))).toEqual(['600', '300', 'dropped:500', '50']);
  });

  it('refuses a machine id that would leave the folder', async () => {
    await expect(openMachineLog({ dir, machineId: '../escape', fileBytes: 4096, files: 1, logger })).rejects.toThrow(/cannot name a console log folder/);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('a cursor returns only what came since its last call (follow)', async () => {
    const log = await openMachineLog({ dir, machineId: 'm5', fileBytes: 4096, files: 4, logger, now });
    const cursor = historyCursor(dir, 'm5');
    log.append(Buffer.from('one\n'));
    await log.flush();
    expect((await cursor.next()).map((e) => e.kind === 'data' && e.data.toString())).toEqual(['one\n']);
    expect(await cursor.next()).toEqual([]);
    log.append(Buffer.alloc(5000, 0x7a)); // crosses into the next segment
    await log.flush();
    const next = await cursor.next();
    expect(next.reduce((n, e) => n + (e.kind === 'data' ? e.data.length : 0), 0)).toBe(5000);
    await log.close();
  });

  it('a cursor takes about maxBytes of output a call, also within one read of the index, and the next call goes on where it stopped', async () => {
    const log = await openMachineLog({ dir, machineId: 'm7', fileBytes: 1 << 20, files: 2, logger, now });
    for (let i = 0; i < 200; i++) {
      log.append(Buffer.from(`line ${String(i).padStart(3, '0')} ${'x'.repeat(90)}\n`));
      await log.flush(); // one index record each
    }
    await log.close();
    const cursor = historyCursor(dir, 'm7');
    const sizes: number[] = [];
    let text = '';
    for (let batch = await cursor.next(1000); batch.length > 0; batch = await cursor.next(1000)) {
      const data = batch.flatMap((e) => (e.kind === 'data' ? [e.data] : []));
      sizes.push(data.reduce((n, d) => n + d.length, 0));
      text += Buffer.concat(data).toString();
    }
    // 100-byte records: ten a call (the one that reaches the bound is the last), nothing lost or repeated
    expect(Math.max(...sizes)).toBeLessThanOrEqual(1000 + 100);
    expect(text.split('\n').filter(Boolean).map((l) => l.slice(5, 8))).toEqual(Array.from({ length: 200 }, (_, i) => String(i).padStart(3, '0')));
  });

  it('a cursor whose segment was rotated away says so and goes on with the oldest kept', async () => {
    const log = await openMachineLog({ dir, machineId: 'm6', fileBytes: 4096, files: 2, logger, now });
    log.append(Buffer.alloc(100, 0x61));
    await log.flush();
    const cursor = historyCursor(dir, 'm6');
    expect((await cursor.next()).map((e) => e.kind)).toEqual(['data']);
    log.append(Buffer.alloc(3 * 4096, 0x62)); // segments 1 and 2 go; 3 and 4 stay
    await log.close();
    const events = await cursor.next(1 << 20);
    expect(events[0]).toMatchObject({ kind: 'gap', what: 'rotated' });
    const bytes = events.reduce((n, e) => n + (e.kind === 'data' ? e.data.length : 0), 0);
    expect(bytes).toBe(4096 + 100); // segment 3 is full, segment 4 holds the rest
  });

  it('grep finds the lines and says which machine printed them when', async () => {
    for (const [id, text] of [['a', 'ok\r\nKernel panic - not syncing\r\n'], ['b', `${ESC}[31mPXE-E53: No boot filename received${ESC}[0m\r\n`], ['c', 'all fine\r\n']] as const) {
      const log = await openMachineLog({ dir, machineId: id, fileBytes: 4096, files: 1, logger, now });
      log.append(Buffer.from(text));
      await log.close();
      clock += 1000;
    }
    expect(await grepHistory(dir, 'Kernel panic')).toEqual([{ machineId: 'a', t: 1_700_000_000_000, line: 'Kernel panic - not syncing' }]);
    expect(await grepHistory(dir, 'PXE-E53')).toEqual([{ machineId: 'b', t: 1_700_000_001_000, line: 'PXE-E53: No boot filename received' }]);
    expect(await grepHistory(dir, 'PXE-E53', { mayOpen: (id) => id !== 'b' })).toEqual([]);
    expect(await grepHistory(dir, 'PXE-E53', { sinceMs: 1_700_000_001_001 })).toEqual([]);
  });

  it('grep shows a long line as the 512 characters around its match, and says how much it left out', async () => {
    const log = await openMachineLog({ dir, machineId: 'long', fileBytes: 1 << 20, files: 1, logger, now });
    log.append(Buffer.from(`${'x'.repeat(3000)}Kernel panic${'y'.repeat(2000)}\r\nKernel panic near the start ${'z'.repeat(1000)}\r\n`));
    await log.close();
    const [middle, start] = await grepHistory(dir, 'Kernel panic');
    expect(middle!.line).toBe(`${'x'.repeat(250)}Kernel panic${'y'.repeat(250)}`);
    expect(middle!.cut).toEqual({ before: 2750, after: 1750 });
    expect(start!.line).toBe(`Kernel panic near the start ${'z'.repeat(512 - 28)}`);
    expect(start!.cut).toEqual({ before: 0, after: 1028 - 512 });
    expect((await grepHistory(dir, 'near the start', { limits: { window: 2000 } }))[0]).toEqual({ machineId: 'long', t: clock, line: `Kernel panic near the start ${'z'.repeat(1000)}` });
  });

  it('grep of a tenant\'s line without end full of the pattern: matches of at most 512 characters, one per 64 KiB', async () => {
    // 4 MiB of "error " without a newline, written the way the capture writes it, a record per flush
    const log = await openMachineLog({ dir, machineId: 'hostile', fileBytes: 8 << 20, files: 1, logger, now });
    const chunk = Buffer.from('error '.repeat(43_691)); // ~256 KiB
    for (let i = 0; i < 16; i++) {
      log.append(chunk);
      await log.flush();
    }
    await log.close();
    const matches = await grepHistory(dir, 'error');
    expect(matches.length).toBe(Math.ceil((16 * chunk.length) / (64 * 1024)));
    for (const [i, m] of matches.slice(0, -1).entries()) {
      expect(m.line.length).toBe(512);
      expect(m.line).toContain('error');
      // a piece after the first is searched with the previous one's last 4 characters
      expect(m.cut!.before + m.cut!.after + 512).toBe(64 * 1024 + (i === 0 ? 0 : 4));
    }
    expect(matches.at(-1)!.line.length).toBeLessThanOrEqual(512); // the line's rest
  });

  it('grep finds a pattern across two 64 KiB pieces of a line without end, once', async () => {
    const log = await openMachineLog({ dir, machineId: 'progress', fileBytes: 8 << 20, files: 1, logger, now });
    // a progress bar redrawn with \r only: 'Kernel panic' begins 5 characters before the first piece's end
    log.append(Buffer.from(`${'#'.repeat(64 * 1024 - 5)}Kernel panic${'#'.repeat(70_000)}\r`));
    await log.close();
    const matches = await grepHistory(dir, 'Kernel panic');
    expect(matches).toHaveLength(1);
    // found in the second piece, which begins with the first one's last 11 characters
    expect(matches[0]!.line).toBe(`${'#'.repeat(6)}Kernel panic${'#'.repeat(494)}`);
    expect(await grepHistory(dir, '#'.repeat(20))).toHaveLength(3); // one per piece, as before: the carry adds no match of its own
  });

  it('grep joins no piece across a capture gap: a line without end stops there', async () => {
    let t = clock;
    const log = await openMachineLog({ dir, machineId: 'cut', fileBytes: 8 << 20, files: 1, logger, now: () => t });
    // exactly one 64 KiB piece, ending in 'Kernel pa'; the connection is lost; the next output begins 'nic'
    log.append(Buffer.from(`${'#'.repeat(64 * 1024 - 9)}Kernel pa`));
    t += 1000;
    log.gapStart('BMC connection lost');
    t += 60_000;
    log.gapEnd();
    log.append(Buffer.from('nic-free output after the reconnect\r\n'));
    await log.close();
    expect(await grepHistory(dir, 'Kernel panic')).toEqual([]);
  });

  it('a gap reason beyond latin1 keeps its marker whole (no NUL from a character such as U+0100)', () => {
    const marker = gapMarker({ kind: 'gap', what: 'start', t: clock, reason: 'BMC said Ā 一 done' } as Parameters<typeof gapMarker>[0]);
    const bytes = renderEvent({ kind: 'gap', what: 'start', t: clock, reason: 'BMC said Ā 一 done' } as Parameters<typeof renderEvent>[0]);
    expect(marker).toContain('BMC said ? ? done');
    expect(bytes.filter((b) => b === 0).length).toBe(2); // the two delimiters only
  });

  it('grep stops at the caps of all machines and says why', async () => {
    for (const id of ['m1', 'm2', 'm3']) {
      const log = await openMachineLog({ dir, machineId: id, fileBytes: 1 << 20, files: 1, logger, now });
      log.append(Buffer.from('boot error\r\n'.repeat(50)));
      await log.close();
    }
    const drain = async (limits: GrepOptions['limits']) => {
      const it = grepMatches(dir, 'error', { limits });
      const got: GrepMatch[] = [];
      for (let r = await it.next(); ; r = await it.next()) {
        if (r.done) return { got, end: r.value };
        got.push(r.value);
      }
    };
    // the per-machine bound: each machine's first 10, and the end names the machines it cut
    const perMachine = await drain({ machineMatches: 10 });
    expect(perMachine.got.map((m) => m.machineId)).toEqual([...Array(10).fill('m1'), ...Array(10).fill('m2'), ...Array(10).fill('m3')]);
    expect(perMachine.end?.truncated).toBe('machines m1, m2, m3: 10 matching lines shown, the most one grep shows of a machine (more may match); narrow the pattern or the time range');
    expect((await drain({ machineMatches: 50 })).end?.truncated).toMatch(/^machines m1, m2, m3: 50 matching lines shown/);
    const byCount = await drain({ matches: 75 });
    expect(byCount.got.length).toBe(75);
    expect(byCount.end?.truncated).toMatch(/^grep stopped at 75 matches, the most one grep returns/);
    const lineBytes = Buffer.byteLength(grepLine(byCount.got[0]!));
    const byBytes = await drain({ bytes: 20 * lineBytes + 1 });
    expect(byBytes.got.length).toBe(20);
    expect(byBytes.end?.truncated).toMatch(new RegExp(`^grep stopped at ${20 * lineBytes + 1} bytes`));
    // exactly as many as the cap: nothing was left out, nothing to say
    expect((await drain({ matches: 150 })).end).toBeUndefined();
  });

  it('grep stops reading when its signal is aborted', async () => {
    for (const id of ['m1', 'm2']) {
      const log = await openMachineLog({ dir, machineId: id, fileBytes: 1 << 20, files: 1, logger, now });
      log.append(Buffer.from('boot error\r\n'.repeat(5)));
      await log.close();
    }
    const stop = new AbortController();
    const it = grepMatches(dir, 'error', { signal: stop.signal });
    expect((await it.next()).value).toMatchObject({ machineId: 'm1' });
    stop.abort();
    expect(await it.next()).toEqual({ done: true, value: undefined });
  });
});

describe('createPlainFilter', () => {
  it('gives what stripEscapes gives the whole, wherever the chunks are cut (property)', async () => {
    const { createPlainFilter } = await import('../../src/console/capture-plain.js');
    const piece = fc.oneof(
      fc.stringMatching(/^[a-z \n]{0,12}$/),
      fc.constantFrom('\r\n', '\r', `${ESC}[0m`, `${ESC}[38;5;196m`, `${ESC}[?25l`, `${ESC}]2;title\x07`, `${ESC}]0;x${ESC}\\`, `${ESC}P1$r${ESC}\\`, `${ESC}7`, `${ESC}(B`, '\x9b1m'),
    );
    fc.assert(
      fc.property(fc.array(piece, { maxLength: 30 }), fc.array(fc.nat(), { maxLength: 10 }), (pieces, cuts) => {
        const text = pieces.join('');
        const points = [...new Set(cuts.map((c) => c % (text.length + 1)))].sort((a, b) => a - b);
        const filter = createPlainFilter();
        let out = '';
        let from = 0;
        for (const p of [...points, text.length]) {
          out += filter.push(text.slice(from, p));
          from = p;
        }
        out += filter.end();
        expect(out).toBe(stripEscapes(text));
      }),
      { numRuns: 500 },
    );
  });
});
