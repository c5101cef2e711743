/**
 * A one-shot `metal-bmc bmc command` over IPMI loads only what it uses: no npm package at all
 * (the daemon's NATS, metrics, logging and console servers, and Redfish's undici, are imported
 * per command and per backend). A module-loading hook lists every module the process loads.
 * The bundle keeps everything but that path compressed: a run over IPMI never opens the store
 * (no node:zlib) nor loads Node's HTTP or TLS modules, nor node:module (Node's own modules are
 * taken with process.getBuiltinModule).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { bundle } from '../../scripts/bundle.js';
import { REPO_ROOT } from '../helpers/cli.js';
import { startIpmiSim, type IpmiSim } from '../helpers/ipmisim.js';

// Reports every module URL loaded through the ES module loader (npm packages' entry points included) on stderr.
const HOOKS = `export async function load(url, context, next) { process.stderr.write('loaded-module ' + url + '\\n'); return next(url, context); }`;
const REGISTER = `import { register } from 'node:module'; register(${JSON.stringify(`data:text/javascript,${encodeURIComponent(HOOKS)}`)});`;

let sim: IpmiSim;
let buildDir: string;
let bundleFile: string;
beforeAll(async () => {
  sim = await startIpmiSim();
  buildDir = mkdtempSync(join(tmpdir(), 'cli-startup-bundle-'));
  bundleFile = (await bundle(join(buildDir, 'metal-bmc.mjs'))).outfile;
}, 120_000);
afterAll(async () => {
  await sim?.stop();
  if (buildDir) rmSync(buildDir, { recursive: true, force: true });
});

/** Node's own modules the process loaded (process.moduleLoadList at exit), e.g. "zlib", "vm", "http". */
async function bundleBuiltins(args: string[]): Promise<{ code: number | null; stdout: string; builtins: Set<string> }> {
  // the list is taken before process.stderr is touched: building it on a pipe loads node:net
  const hook = `process.on('exit', () => { const list = process.moduleLoadList.filter((m) => m.startsWith('NativeModule ')).map((m) => m.slice(13)).join(','); process.stderr.write('builtins ' + list + '\\n'); });`;
  const child = spawn(process.execPath, ['--import', `data:text/javascript,${encodeURIComponent(hook)}`, bundleFile, ...args], {
    cwd: buildDir,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', IPMI_PASSWORD: sim.password, XDG_CACHE_HOME: buildDir },
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  const line = /^builtins (.*)$/m.exec(stderr);
  if (!line) throw new Error(`no module list from the hook; stderr: ${stderr.slice(0, 500)}`);
  return { code, stdout, builtins: new Set(line[1]!.split(',')) };
}

async function loadedPackages(args: string[]): Promise<{ code: number | null; stdout: string; packages: string[] }> {
  const child = spawn(process.execPath, ['--import', 'tsx', '--import', `data:text/javascript,${encodeURIComponent(REGISTER)}`, 'src/cli/main.ts', ...args], {
    cwd: REPO_ROOT,
    env: { ...process.env, IPMI_PASSWORD: sim.password },
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  const packages = new Set<string>();
  for (const [, url] of stderr.matchAll(/^loaded-module (\S+)$/gm)) {
    const m = /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url!);
    if (m && m[1] !== 'tsx') packages.add(m[1]!);
  }
  return { code, stdout, packages: [...packages].sort() };
}

it('bmc command ON --protocol ipmi powers the BMC on and loads no npm package', async () => {
  const r = await loadedPackages(['bmc', 'command', 'ON', '--protocol', 'ipmi', '--address', `${sim.host}:${sim.port}`, '--user', sim.user, '--cipher-suite', '3']);
  expect(r.stdout).toContain('ON: done');
  expect(r.code).toBe(0);
  expect(sim.chassisLog()).toContain('set power 1');
  expect(r.packages).toEqual([]);
}, 60_000);

it('the hook sees npm packages: bmc command with --protocol auto tries Redfish and loads undici', async () => {
  // Redfish on a closed port: refused at once, IPMI does the work; undici was loaded to try.
  const r = await loadedPackages(['bmc', 'command', 'ON', '--protocol', 'auto', '--redfish-port', '1', '--address', `${sim.host}:${sim.port}`, '--user', sim.user, '--cipher-suite', '3']);
  expect(r.stdout).toContain('ON: done');
  expect(r.packages).toEqual(['undici']);
}, 60_000);

it('the bundle: bmc command ON --protocol ipmi runs from plain code, never opening the compressed store nor loading HTTP/TLS', async () => {
  const r = await bundleBuiltins(['bmc', 'command', 'ON', '--protocol', 'ipmi', '--address', `${sim.host}:${sim.port}`, '--user', sim.user, '--cipher-suite', '3']);
  expect(r.stdout).toContain('ON: done');
  expect(r.code).toBe(0);
  expect(r.builtins.has('dgram')).toBe(true);
  // node:vm compiles the hot chunks (with the code cache); node:module only for a require of a file, which this path never does
  for (const name of ['zlib', 'module', 'http', 'https', 'tls', 'worker_threads']) expect(r.builtins.has(name), name).toBe(false);
  // nor cluster (dgram's bind, skipped by bindEphemeral), net (net.isIP, process.stdout on this pipe) or what they pull in
  for (const name of ['cluster', 'child_process', 'net']) expect(r.builtins.has(name), name).toBe(false);
}, 60_000);

it('the bundle: --protocol auto opens the store for Redfish (the hook sees it), then IPMI does the work', async () => {
  const r = await bundleBuiltins(['bmc', 'command', 'ON', '--protocol', 'auto', '--redfish-port', '1', '--address', `${sim.host}:${sim.port}`, '--user', sim.user, '--cipher-suite', '3']);
  expect(r.stdout).toContain('ON: done');
  expect(r.code).toBe(0);
  for (const name of ['zlib', 'vm', 'http']) expect(r.builtins.has(name), name).toBe(true);
}, 60_000);
