/**
 * The deployable build: dist/metal-bmc.mjs, built from the current sources, copied alone into an
 * empty folder (no node_modules, no repository above it), runs the lab end to end and tells its
 * version. Runs with whatever `node` runs the tests (.ci/run repeats it on Node 20, 22 and 24).
 */
import { spawn } from 'node:child_process';
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { bundle } from '../../scripts/bundle.js';
import { freeTcpPort, freeUdpPort } from '../../src/net/ports.js';
import { REPO_ROOT } from '../helpers/cli.js';

let buildDir: string;
let runDir: string;

beforeAll(async () => {
  buildDir = mkdtempSync(join(tmpdir(), 'bundle-build-'));
  const { outfile } = await bundle(join(buildDir, 'metal-bmc.mjs'));
  // /tmp has no package.json or node_modules above it; the folder holds the bundle and nothing else
  runDir = mkdtempSync(join(tmpdir(), 'bundle-run-'));
  copyFileSync(outfile, join(runDir, 'metal-bmc.mjs'));
}, 120_000);

afterAll(() => {
  for (const dir of [buildDir, runDir]) if (dir) rmSync(dir, { recursive: true, force: true });
});

function runBundle(args: string[], timeoutMs: number): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['metal-bmc.mjs', ...args], { cwd: runDir, env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: runDir, XDG_CACHE_HOME: buildDir } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

it('the folder holds only the bundle', () => {
  expect(readdirSync(runDir)).toEqual(['metal-bmc.mjs']);
});

it('a bundle whose compressed store does not match the code it started with refuses with a clear message', async () => {
  // as if the file were replaced by another build between the start and the store's first use
  const text = readFileSync(join(runDir, 'metal-bmc.mjs'), 'utf8');
  const changed = join(buildDir, 'changed.mjs');
  writeFileSync(changed, text.replace(/\*\/\n$/, 'AAAA*/\n'));
  const r = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
    const child = spawn(process.execPath, [changed, '--version'], { cwd: buildDir });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (code) => resolve({ code, stderr }));
  });
  expect(r.stderr).toContain('is not the file this process started from');
  expect(r.code).toBe(1);
}, 30_000);

it('metal-bmc --version prints the package version and the git commit it was built from', async () => {
  const { version } = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string };
  const r = await runBundle(['--version'], 30_000);
  expect(r.stderr).toBe('');
  expect(r.stdout).toMatch(new RegExp(`^metal-bmc ${version.replaceAll('.', '\\.')} \\(commit ([0-9a-f]{12}(-dirty)?|unknown)\\)\\n$`));
  expect(r.code).toBe(0);
});

it(`lab --once from the bundle alone on Node ${process.version}: fleet reported to the metal-api stand-in, LED-ON and console demos succeed`, async () => {
  // ports of its own, so that it can run beside test/integration/lab.test.ts
  const ports = ['--ipmi-port', String(await freeUdpPort()), '--redfish-port', String(await freeTcpPort()), '--console-port', String(await freeTcpPort()), '--console-ws-port', String(await freeTcpPort())];
  const r = await runBundle(['lab', '--count', '3', '--once', '--dir', join(runDir, 'lab'), '--cidr', '127.12.0.0/16', ...ports], 90_000);
  const context = `stdout:\n${r.stdout}\nstderr (last 2000):\n${r.stderr.slice(-2000)}`;
  expect(r.stdout, context).toContain('lab is up');
  expect(r.stdout, context).toMatch(/one BMC +node \S+metal-bmc\.mjs bmc info --address 127\.12\.0\.1:/);
  expect(r.stdout, context).toMatch(/metal-api stand-in: report with 3 machines/);
  expect(r.stdout, context).toMatch(/demo: result \{.*"command":"LED-ON","ok":true/);
  expect(r.stdout, context).toContain('identify LED is now on');
  expect(r.stdout, context).toMatch(/demo: console shows the login prompt: "machine-1 login: "/);
  // the console's SOL session (and the capture's) ran in a worker thread started from the bundle itself
  expect(r.stdout, context).toMatch(/demo: [1-9]\d* console SOL sessions run in [1-9]\d* worker thread\(s\) \(thread ids [1-9][\d, ]*\)/);
  // and the report's BMC reads in a report worker started from the bundle too
  expect(r.stdout, context).toMatch(/demo: [3-9]\d* BMC reads ran in 1 report worker thread\(s\) \(thread ids [1-9]\d*\)/);
  expect(r.code, context).toBe(0);
}, 120_000);
