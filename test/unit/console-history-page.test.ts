/**
 * The history page's bounded read of a range (capture-page.ts HISTORY_TAIL_SOURCE): whatever the
 * range holds, the page holds under twice its cap while reading, shows the newest cap bytes from
 * their first line start, and its state line says what was left out.
 *
 * The history page's escape stripping (capture-page.ts HISTORY_STRIP_SOURCE, the function the
 * page's script runs on the whole log it shows). A tenant can print `ESC ]` without an end as
 * often as it likes; stripping must stay linear in the text, or the operator's tab freezes. The
 * function runs in a worker thread, so a stripping that never finishes in reasonable time ends
 * the test as a failure (the worker is stopped) instead of hanging it; the bound is generous,
 * far beyond what a linear pass over 1 MB needs.
 */
import fc from 'fast-check';
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { HISTORY_LEFT_OUT_HEADER, HISTORY_SCRIPT, HISTORY_STRIP_SOURCE, HISTORY_TAIL_SOURCE } from '../../src/console/capture-page.js';

const ESC = '\x1b';
const BEL = '\x07';
/** the bound on one stripping in the worker: a linear pass over 1 MB takes milliseconds */
const GIVE_UP_MS = 30_000;

/** The page's function applied to `text` in a worker thread; rejects if it has not finished after GIVE_UP_MS. */
function stripInWorker(text: string): Promise<string> {
  const worker = new Worker(`const { parentPort, workerData } = require('node:worker_threads'); parentPort.postMessage((${HISTORY_STRIP_SOURCE})(workerData));`, { eval: true, workerData: text });
  return new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the page's stripping of ${text.length} characters did not finish in ${GIVE_UP_MS} ms`)), GIVE_UP_MS);
    worker.once('message', (out: string) => {
      clearTimeout(timer);
      resolve(out);
    });
    worker.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  }).finally(() => void worker.terminate());
}

/** the same function in this thread, for inputs small enough for any stripping */
const strip = new Function(`return (${HISTORY_STRIP_SOURCE});`)() as (text: string) => string;

/** what the page stripped with before: the reference for well-formed input */
// eslint-disable-next-line no-control-regex -- escapes and control characters are what is removed
const BEFORE = /\x1b\[[\x20-\x3f]*[\x40-\x7e]|\x1b[\]PX^_][\s\S]*?(?:\x07|\x1b\\)|\x1b[\x20-\x2f]?[\x30-\x7e]|[\x00-\x08\x0b-\x1f\x7f]/g;

describe('history page escape stripping', () => {
  it('is the function the page script runs', () => {
    expect(HISTORY_SCRIPT).toContain(HISTORY_STRIP_SOURCE);
    expect(HISTORY_SCRIPT).not.toContain('[\\s\\S]*?');
  });

  it('strips 1 MB of ESC ] without an end, and the text around it stays', async () => {
    const hostile = `${ESC}]`.repeat(256 * 1024); // twice: 1 MiB
    const text = `login: ${hostile}${ESC}]0;title${BEL}${ESC}[1mroot${ESC}[0m\n${hostile}Kernel panic\n`;
    expect(await stripInWorker(text)).toBe('login: root\nKernel panic\n');
  }, GIVE_UP_MS + 10_000);

  it('strips 1 MB of unterminated DCS, SOS, PM and APC strings with text between them', async () => {
    const intros = ['P', 'X', '^', '_', ']'];
    const text = Array.from({ length: 350_000 }, (_, i) => `${ESC}${intros[i % intros.length]}x`).join('');
    expect(await stripInWorker(text)).toBe('x'.repeat(350_000));
  }, GIVE_UP_MS + 10_000);

  it('shows well-formed output as it did before (property)', () => {
    const plain = fc.stringMatching(/^[ -~\t\n]{0,20}$/);
    const stringBody = fc.stringMatching(/^[ -~]{0,20}$/);
    const sequence = fc.oneof(
      fc.tuple(fc.stringMatching(/^[0-9;?]{0,6}$/), fc.constantFrom('m', 'H', 'J', 'K', 'h', 'l')).map(([params, final]) => `${ESC}[${params}${final}`),
      fc.tuple(fc.constantFrom(']', 'P', 'X', '^', '_'), stringBody, fc.constantFrom(BEL, `${ESC}\\`)).map(([intro, body, end]) => `${ESC}${intro}${body}${end}`),
      fc.constantFrom(`${ESC}(B`, `${ESC}=`, `${ESC}>`, `${ESC}7`, `${ESC}8`, '\r', '\x08', '\x7f'),
    );
    fc.assert(
      fc.property(fc.array(fc.oneof(plain, sequence), { maxLength: 20 }), (pieces) => {
        const text = pieces.join('');
        expect(strip(text)).toBe(text.replace(BEFORE, ''));
      }),
      { numRuns: 500 },
    );
  });
});

interface TailKeeper {
  add(chunk: Uint8Array): void;
  keptBytes(): number;
  totalBytes(): number;
  receivedBytes(): number;
  finish(): { bytes: Uint8Array; total: number };
}
/** the page's functions in this thread */
const tail = new Function(`${HISTORY_TAIL_SOURCE}\nreturn { tailKeeper, keptState };`)() as {
  tailKeeper(cap: number, leftOut?: number): TailKeeper;
  keptState(shown: number, total: number, rangeText: string): string;
};

/**
 * what the page should show of `all` (what came), the server having left out `leftOut` before it:
 * the newest `cap` bytes, from their first line start when older output was left out
 */
function expectedTail(all: Uint8Array, cap: number, leftOut = 0): Uint8Array {
  if (all.length <= cap && leftOut === 0) return all;
  const newest = all.subarray(Math.max(0, all.length - cap));
  if (all.length > cap && all[all.length - cap - 1] === 10) return newest;
  const nl = newest.indexOf(10);
  return nl < 0 ? newest : newest.subarray(nl + 1);
}

describe('history page bounded read', () => {
  it('is the function the page script runs, on the response read as a stream', () => {
    expect(HISTORY_SCRIPT).toContain(HISTORY_TAIL_SOURCE);
    expect(HISTORY_SCRIPT).toContain('res.body.getReader()');
    expect(HISTORY_SCRIPT).not.toContain('arrayBuffer()');
  });

  it('holds under twice the cap while reading and shows the newest cap bytes from a line start (property)', () => {
    const bytes = fc.uint8Array({ maxLength: 40 }).map((b) => b.map((x) => (x % 4 === 0 ? 10 : 97 + (x % 26))));
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 32 }), fc.array(bytes, { maxLength: 30 }), (cap, chunks) => {
        const keeper = tail.tailKeeper(cap);
        let total = 0;
        for (const chunk of chunks) {
          keeper.add(chunk);
          total += chunk.length;
          expect(keeper.keptBytes()).toBeLessThan(2 * cap);
          expect(keeper.keptBytes()).toBeGreaterThanOrEqual(Math.min(total, cap));
        }
        const all = new Uint8Array(total);
        chunks.reduce((at, c) => (all.set(c, at), at + c.length), 0);
        const done = keeper.finish();
        expect(done.total).toBe(total);
        expect(Buffer.from(done.bytes).toString('latin1')).toBe(Buffer.from(expectedTail(all, cap)).toString('latin1'));
      }),
      { numRuns: 1000 },
    );
  });

  it('counts what the server left out in the total, and shows what came from its first line start (property)', () => {
    const bytes = fc.uint8Array({ maxLength: 40 }).map((b) => b.map((x) => (x % 4 === 0 ? 10 : 97 + (x % 26))));
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 32 }), fc.integer({ min: 1, max: 1000 }), fc.array(bytes, { maxLength: 30 }), (cap, leftOut, chunks) => {
        const keeper = tail.tailKeeper(cap, leftOut);
        for (const chunk of chunks) keeper.add(chunk);
        const all = Buffer.concat(chunks);
        expect(keeper.receivedBytes()).toBe(all.length);
        const done = keeper.finish();
        expect(done.total).toBe(leftOut + all.length);
        // the server starts where the newest bytes begin, not at a line start: a cut line never shows
        expect(Buffer.from(done.bytes).toString('latin1')).toBe(Buffer.from(expectedTail(all, cap, leftOut)).toString('latin1'));
      }),
      { numRuns: 1000 },
    );
  });

  it('asks the server for the newest bytes it holds, and reads what the server left out', () => {
    expect(HISTORY_SCRIPT).toContain("'newest=' + keepBytes");
    expect(HISTORY_SCRIPT).toContain(`tailKeeper(keepBytes, Number(res.headers.get('${HISTORY_LEFT_OUT_HEADER}')) || 0)`);
  });

  it('keeps a bounded amount of a long range read in many chunks', () => {
    const keeper = tail.tailKeeper(16 * 1024);
    const line = Buffer.from(`${'y'.repeat(99)}\n`);
    for (let i = 0; i < 20_000; i++) keeper.add(line); // ~2 MB
    expect(keeper.keptBytes()).toBeLessThan(16 * 1024 + line.length);
    const done = keeper.finish();
    expect(done.total).toBe(20_000 * line.length);
    expect(done.bytes.length).toBe(Math.floor((16 * 1024) / line.length) * line.length);
  });

  it('says what the state line shows, and what was left out', () => {
    expect(tail.keptState(1234, 1234, 'last hour')).toBe('1234 bytes, last hour');
    expect(tail.keptState(4 * 1024 * 1024 - 80, 39_006_000, 'last 24 hours')).toBe('the last 4.0 MiB of 37.2 MiB, last 24 hours (older output: narrow the range, or metal-bmc console log / console grep)');
    expect(tail.keptState(65_500, 3 * 1024 ** 3, 'all that is kept')).toMatch(/^the last 64\.0 KiB of 3\.0 GiB, all that is kept /);
  });
});
