/** directStdout (src/cli/direct-stdout.ts): lines written straight to a descriptor, process.stdout's way when that fails. */
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { directStdout, type TextOutput } from '../../src/cli/direct-stdout.js';

let dir: string | undefined;
afterEach(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});

function capture(): TextOutput & { text: string } {
  const sink = { text: '', write: (chunk: string | Uint8Array) => ((sink.text += Buffer.from(chunk).toString()), true) };
  return sink;
}

it('writes strings and bytes to the descriptor in order, and never builds the fallback', () => {
  dir = mkdtempSync(join(tmpdir(), 'direct-stdout-'));
  const file = join(dir, 'out');
  const fd = openSync(file, 'w');
  let built = 0;
  const out = directStdout(fd, () => (built++, capture()));
  out.write('ON: done on 10.0.0.1\n');
  out.write(Buffer.from('ü\n'));
  closeSync(fd);
  expect(readFileSync(file, 'utf8')).toBe('ON: done on 10.0.0.1\nü\n');
  expect(built).toBe(0);
});

it('a descriptor that fails hands this write and every later one to the fallback, once built', () => {
  dir = mkdtempSync(join(tmpdir(), 'direct-stdout-'));
  const fd = openSync(join(dir, 'out'), 'w');
  closeSync(fd); // writes now fail with EBADF
  const sink = capture();
  let built = 0;
  const out = directStdout(fd, () => (built++, sink));
  out.write('first\n');
  out.write('second\n');
  expect(sink.text).toBe('first\nsecond\n');
  expect(built).toBe(1);
});
