/**
 * A one-shot `metal-bmc bmc command` over IPMI loads only what it uses: no npm package at all
 * (the daemon's NATS, metrics, logging and console servers, and Redfish's undici, are imported
 * per command and per backend). A module-loading hook lists every module the process loads.
 */
import { spawn } from 'node:child_process';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { REPO_ROOT } from '../helpers/cli.js';
import { startIpmiSim, type IpmiSim } from '../helpers/ipmisim.js';

// Reports every module URL loaded through the ES module loader (npm packages' entry points included) on stderr.
const HOOKS = `export async function load(url, context, next) { process.stderr.write('loaded-module ' + url + '\\n'); return next(url, context); }`;
const REGISTER = `import { register } from 'node:module'; register(${JSON.stringify(`data:text/javascript,${encodeURIComponent(HOOKS)}`)});`;

let sim: IpmiSim;
beforeAll(async () => {
  sim = await startIpmiSim();
});
afterAll(async () => {
  await sim?.stop();
});

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
