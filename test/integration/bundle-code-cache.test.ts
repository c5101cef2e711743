/**
 * The bundle's V8 code cache for its hot chunks (scripts/bundle-code-cache.ts): written after a
 * successful run into a folder of ours closed to others, one file per kind of run, taken by the
 * next run (V8 rejecting it would make that run write it again), replaced when V8 rejects it, never
 * written after a failed run, nor into a folder others can write to, nor with
 * NODE_DISABLE_COMPILE_CACHE; and whatever the cache's state, the command works.
 */
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, expect, it } from 'vitest';
import { bundle } from '../../scripts/bundle.js';

let buildDir: string;
let bundleFile: string;
let cacheHome: string;
let runs = 0;

beforeAll(async () => {
  buildDir = mkdtempSync(join(tmpdir(), 'bundle-code-cache-'));
  bundleFile = (await bundle(join(buildDir, 'metal-bmc.mjs'))).outfile;
}, 120_000);
afterAll(() => {
  if (buildDir) rmSync(buildDir, { recursive: true, force: true });
});
beforeEach(() => {
  cacheHome = join(buildDir, `cache-${++runs}`);
});

function run(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [bundleFile, ...args], { cwd: buildDir, env: { PATH: process.env.PATH ?? '/usr/bin:/bin', XDG_CACHE_HOME: cacheHome, ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

const cacheDir = () => join(cacheHome, 'metal-bmc');
const cacheFiles = () => (existsSync(cacheDir()) ? readdirSync(cacheDir()).sort() : []);
const HELP = ['bmc', 'command', '--help'];

it('a successful run leaves a cache file for its kind of run in a folder only its user may enter; the next run takes it', async () => {
  const first = await run(HELP);
  expect(first.code).toBe(0);
  expect(first.stdout).toMatch(/^usage: metal-bmc bmc /);
  const files = cacheFiles();
  expect(files).toHaveLength(1);
  expect(files[0]).toMatch(new RegExp(`^[0-9a-f]{24}-${process.version.replace(/\./g, '\\.')}-${process.arch}-bmc-command-help\\.v8$`));
  expect(statSync(cacheDir()).mode & 0o777).toBe(0o700);
  const file = join(cacheDir(), files[0]!);
  const written = statSync(file);
  expect(written.mode & 0o777).toBe(0o600);
  expect(written.size).toBeGreaterThan(10_000);

  // V8 took it: a rejected cache would be written again (a new file renamed over it)
  const second = await run(HELP);
  expect(second.code).toBe(0);
  expect(second.stdout).toBe(first.stdout);
  const after = statSync(file);
  expect([after.ino, after.mtimeMs]).toEqual([written.ino, written.mtimeMs]);
  expect(cacheFiles()).toEqual(files);

  // another kind of run gets its own file
  expect((await run(['--help'])).code).toBe(0);
  expect(cacheFiles()).toHaveLength(2);
}, 60_000);

it('a cache V8 rejects is replaced, and the command works', async () => {
  expect((await run(HELP)).code).toBe(0);
  const [name] = cacheFiles();
  const file = join(cacheDir(), name!);
  const good = readFileSync(file);
  writeFileSync(file, Buffer.alloc(good.length, 0x5a), { mode: 0o600 });
  const r = await run(HELP);
  expect(r.code).toBe(0);
  expect(r.stdout).toMatch(/^usage: metal-bmc bmc /);
  expect(readFileSync(file).equals(Buffer.alloc(good.length, 0x5a))).toBe(false);
  expect(readFileSync(file).length).toBeGreaterThan(10_000);
}, 60_000);

it('a failed run writes no cache', async () => {
  const r = await run(['bmc', 'command', 'NOSUCH', '--address', '127.0.0.1'], { IPMI_PASSWORD: 'x' });
  expect(r.code).toBe(2);
  expect(r.stderr).toContain('unsupported command');
  expect(cacheFiles()).toEqual([]);
}, 60_000);

it('a cache folder others may write to is not used, and the command works', async () => {
  mkdirSync(cacheDir(), { recursive: true });
  chmodSync(cacheDir(), 0o777);
  const r = await run(HELP);
  expect(r.code).toBe(0);
  expect(r.stdout).toMatch(/^usage: metal-bmc bmc /);
  expect(cacheFiles()).toEqual([]);
}, 60_000);

it('NODE_DISABLE_COMPILE_CACHE turns the cache off; an unwritable place costs only the cache', async () => {
  const off = await run(HELP, { NODE_DISABLE_COMPILE_CACHE: '1' });
  expect(off.code).toBe(0);
  expect(existsSync(cacheHome)).toBe(false);

  writeFileSync(cacheHome, 'a file where the cache folder would be');
  const blocked = await run(HELP);
  expect(blocked.code).toBe(0);
  expect(blocked.stdout).toMatch(/^usage: metal-bmc bmc /);
  expect(blocked.stderr).toBe('');
}, 60_000);
