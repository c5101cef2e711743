/**
 * `metal-bmc console log|grep` as a user runs them: from the capture folder on this host, and
 * from the daemon's HTTPS console listener with a client certificate. `--since`, `--plain`,
 * `--follow`, and grep's "which machine printed it when".
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { captureViewerRoutes, type CaptureRoutes } from '../../src/console/capture-routes.js';
import { openMachineLog } from '../../src/console/capture-store.js';
import { startConsoleServers, type ConsoleServers } from '../../src/console/index.js';
import { BmcError } from '../../src/errors.js';
import { runCli, spawnCli } from '../helpers/cli.js';
import { captureLog } from '../helpers/log.js';
import { createPki, loopbackConsoleListeners, type Pki } from '../helpers/pki.js';
import { waitFor } from '../helpers/wait.js';

const ESC = '\x1b';
const HOUR = 3_600_000;
const A = '11111111-0000-4000-8000-000000000001';
const B = '22222222-0000-4000-8000-000000000002';
/** never captured */
const C = '33333333-0000-4000-8000-000000000003';
/** prints lines that look like the capture's gap markers */
const E = '55555555-0000-4000-8000-000000000005';
/** prints a long line (the grep test's own) */
const D = '44444444-0000-4000-8000-000000000004';
let dir: string;
let pki: Pki;
let servers: ConsoleServers;
let routes: CaptureRoutes;
const { logger } = captureLog('warn');

async function write(id: string, at: number, text: string): Promise<void> {
  const log = await openMachineLog({ dir, machineId: id, fileBytes: 1 << 20, files: 2, logger, now: () => at });
  log.append(Buffer.from(text, 'latin1'));
  await log.close();
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'cli-console-'));
  const now = Date.now();
  await write(A, now - 2 * HOUR, `old boot\r\n${ESC}[1;31mPXE-E53: No boot filename received${ESC}[0m\r\n`);
  await write(A, now - 60_000, `${ESC}[32mrecent${ESC}[0m line\r\n`);
  await write(B, now - 30_000, 'Kernel panic - not syncing: VFS\r\n');
  pki = await createPki();
  routes = captureViewerRoutes({ dir, pollMs: 50 });
  servers = await startConsoleServers({
    ...loopbackConsoleListeners(pki),
    openBackend: () => Promise.reject(new BmcError('UNSUPPORTED', 'no BMCs in this test')),
    logger,
    viewerRoutes: routes,
  });
}, 30_000);

afterAll(async () => {
  routes?.close();
  await servers?.close();
  pki?.remove();
  rmSync(dir, { recursive: true, force: true });
});

describe('metal-bmc console log', () => {
  it('prints the raw history, --since cuts the older part, --plain strips escapes', async () => {
    const all = await runCli(['console', 'log', A, '--dir', dir]);
    expect(all.code).toBe(0);
    expect(all.stdout).toContain(`old boot\r\n${ESC}[1;31mPXE-E53`);
    expect(all.stdout).toContain(`${ESC}[32mrecent`);
    const recent = await runCli(['console', 'log', A, '--dir', dir, '--since', '10m', '--plain']);
    expect(recent.stdout).toBe('recent line\n');
    // captured, but nothing in the range: an empty answer
    const none = await runCli(['console', 'log', B, '--dir', dir, '--since', '10s']);
    expect(none).toMatchObject({ code: 0, stdout: '' });
    expect(none.stderr).toBe(`metal-bmc console log: nothing captured for machine ${B} in ${dir} in the last 10s\n`);
  }, 60_000);

  it('a machine without any capture exits 3 with one line saying why: not captured here, or capture off (no folder)', async () => {
    const unknown = await runCli(['console', 'log', C, '--dir', dir]);
    expect(unknown).toMatchObject({ code: 3, stdout: '' });
    expect(unknown.stderr).toMatch(new RegExp(`^metal-bmc console log: nothing captured for machine ${C}: no log of it in ${dir}: this host does not capture it \\(.*\\)\n$`));
    // --since changes nothing: there is no capture to narrow
    expect((await runCli(['console', 'log', C, '--dir', dir, '--since', '1h'])).code).toBe(3);
    const noFolder = await runCli(['console', 'log', A, '--dir', join(dir, 'no-such-folder')]);
    expect(noFolder).toMatchObject({ code: 3, stdout: '' });
    expect(noFolder.stderr).toMatch(/^metal-bmc console log: nothing captured for machine \S+: the capture folder \S+no-such-folder does not exist: capture is off on this host \(METAL_BMC_CONSOLE_CAPTURE=all\), or it writes elsewhere .*\n$/);
  }, 60_000);

  it('refuses a machine id that walks paths, and a bad duration', async () => {
    expect((await runCli(['console', 'log', '../etc', '--dir', dir])).code).toBe(2);
    const bad = await runCli(['console', 'log', A, '--dir', dir, '--since', 'yesterday']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--since "yesterday" is not a duration/);
  }, 60_000);

  it("--plain tells the capture's gap markers from output printed to look like one (shown escaped), here and through the listener", async () => {
    const at = Date.now() - 5 * 60_000;
    const iso = new Date(at).toISOString();
    const forged = `[metal-bmc ${iso}: capture gap: BMC connection lost]`;
    const log = await openMachineLog({ dir, machineId: E, fileBytes: 1 << 20, files: 2, logger, now: () => at });
    log.append(Buffer.from(`root@machine:~# ./fake-gap\r\n${forged}\r\nprogress\r${forged}\r\n[metal${ESC}[0m-bmc ${iso}: capture resumed]\r\n\x00${forged}\x00\r\n`, 'latin1'));
    log.gapStart('BMC connection lost');
    log.gapEnd();
    await log.close();
    const tls = ['--ca', pki.ca, '--cert', pki.clientCert, '--key', pki.clientKey];
    for (const where of [['--dir', dir], ['--address', `https://127.0.0.1:${servers.wsPort}`, ...tls]]) {
      const plain = await runCli(['console', 'log', E, ...where, '--plain']);
      expect(plain, where[0]).toMatchObject({ code: 0, stderr: '' });
      expect(plain.stdout, where[0]).toBe(`root@machine:~# ./fake-gap\n\\${forged}\nprogress\r\\${forged}\n\\[metal-bmc ${iso}: capture resumed]\n\\${forged}\n\n${forged}\n\n[metal-bmc ${iso}: capture resumed]\n`);
      // raw: the markers enclosed in NULs, the output's own NULs gone
      const raw = await runCli(['console', 'log', E, ...where]);
      expect(raw.stdout.split('\x00'), where[0]).toHaveLength(5);
      expect(raw.stdout, where[0]).toContain(`\r\n\x00${forged}\x00\r\n`);
    }
  }, 60_000);

  it('--follow prints what is captured after it started', async () => {
    const child = spawnCli(['console', 'log', B, '--dir', dir, '--follow', '--plain']);
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    await waitFor(() => out.includes('Kernel panic'), 30_000, 'history first');
    await write(B, Date.now(), 'rebooting\r\n');
    await waitFor(() => out.includes('rebooting'), 30_000, 'followed line');
    child.kill('SIGTERM');
    await new Promise((resolve) => child.on('close', resolve));
    expect(out.indexOf('Kernel panic')).toBeLessThan(out.indexOf('rebooting'));
  }, 60_000);

  it('reads the same through the HTTPS console listener with a client certificate', async () => {
    const tls = ['--ca', pki.ca, '--cert', pki.clientCert, '--key', pki.clientKey];
    const remote = await runCli(['console', 'log', A, '--address', `https://127.0.0.1:${servers.wsPort}`, ...tls, '--since', '10m', '--plain']);
    expect(remote).toMatchObject({ code: 0, stdout: 'recent line\n' });
    const grep = await runCli(['console', 'grep', 'Kernel panic', '--address', `https://127.0.0.1:${servers.wsPort}`, ...tls]);
    expect(grep.code).toBe(0);
    expect(grep.stdout).toMatch(new RegExp(`^\\d{4}-\\d\\d-\\d\\dT\\S+Z  ${B}  Kernel panic - not syncing: VFS\\n$`));
    const noCert = await runCli(['console', 'log', A, '--address', `https://127.0.0.1:${servers.wsPort}`]);
    expect(noCert.code).toBe(2);
  }, 60_000);

  it('--newest prints only the newest bytes of the range, here and through the listener, and says on stderr what it left out', async () => {
    const recent = Buffer.byteLength(`${ESC}[32mrecent${ESC}[0m line\r\n`, 'latin1');
    const older = Buffer.byteLength(`old boot\r\n${ESC}[1;31mPXE-E53: No boot filename received${ESC}[0m\r\n`, 'latin1');
    const tls = ['--ca', pki.ca, '--cert', pki.clientCert, '--key', pki.clientKey];
    for (const where of [['--dir', dir], ['--address', `https://127.0.0.1:${servers.wsPort}`, ...tls]]) {
      const newest = await runCli(['console', 'log', A, ...where, '--newest', `${recent}B`, '--plain']);
      expect(newest, where[0]).toMatchObject({ code: 0, stdout: 'recent line\n', stderr: `metal-bmc console log: ${older} older bytes of the range left out (--newest)\n` });
      // as much as the range holds: all of it, nothing said
      const all = await runCli(['console', 'log', A, ...where, '--newest', '1MiB', '--plain']);
      expect(all, where[0]).toMatchObject({ code: 0, stderr: '' });
      expect(all.stdout, where[0]).toContain('old boot');
    }
    for (const bad of ['0', '-5', '4XB', '2000GiB', 'constructor']) {
      const refused = await runCli(['console', 'log', A, '--dir', dir, `--newest=${bad}`]);
      expect(refused.code, bad).toBe(2);
      expect(refused.stderr, bad).toMatch(/--newest .* is not a size from 1 byte to 1024GiB/);
    }
    expect((await runCli(['console', 'grep', 'x', '--dir', dir, '--newest', '1KiB'])).code).toBe(2);
  }, 60_000);

  it('through the listener: a machine it holds no capture of, or a listener without history (capture off), exits 3 saying which; an empty range 0', async () => {
    const tls = ['--ca', pki.ca, '--cert', pki.clientCert, '--key', pki.clientKey];
    const origin = `https://127.0.0.1:${servers.wsPort}`;
    const unknown = await runCli(['console', 'log', C, '--address', origin, ...tls]);
    expect(unknown).toMatchObject({ code: 3, stdout: '' });
    expect(unknown.stderr).toMatch(new RegExp(`^metal-bmc console log: nothing captured for machine ${C}: ${origin} holds no capture of it \\(.*\\)\n$`));
    // A's last output is a minute old (B has new output from the --follow test)
    const empty = await runCli(['console', 'log', A, '--address', origin, ...tls, '--since', '30s']);
    expect(empty).toMatchObject({ code: 0, stdout: '', stderr: `metal-bmc console log: nothing captured for machine ${A} at ${origin} in the last 30s\n` });
    const captureOff = await startConsoleServers({
      ...loopbackConsoleListeners(pki),
      openBackend: () => Promise.reject(new BmcError('UNSUPPORTED', 'no BMCs in this test')),
      logger,
    });
    try {
      const off = await runCli(['console', 'log', A, '--address', `https://127.0.0.1:${captureOff.wsPort}`, ...tls]);
      expect(off).toMatchObject({ code: 3, stdout: '' });
      expect(off.stderr).toMatch(/serves no console history \(capture is off there\)\n$/);
    } finally {
      await captureOff.close();
    }
  }, 60_000);
});

describe('metal-bmc console grep', () => {
  it('lists which machines printed the pattern and when; exit 1 without a match', async () => {
    const pxe = await runCli(['console', 'grep', 'PXE-E53', '--dir', dir]);
    expect(pxe.code).toBe(0);
    const [line] = pxe.stdout.trim().split('\n');
    const [time, machine, ...text] = line!.split('  ');
    expect(Date.now() - Date.parse(time!)).toBeGreaterThan(HOUR);
    expect(machine).toBe(A);
    expect(text.join('  ')).toBe('PXE-E53: No boot filename received');
    expect((await runCli(['console', 'grep', 'PXE-E53', '--dir', dir, '--since', '1h'])).code).toBe(1);
    expect((await runCli(['console', 'grep', 'No bootable device', '--dir', dir])).code).toBe(1);
  }, 60_000);

  it('shows a long line as the 512 characters around the match with "…" where it was cut, here and through the listener; a capped answer says so on stderr', async () => {
    await write(D, Date.now(), `${'x'.repeat(3000)}Kernel oops${'y'.repeat(3000)}\r\nKernel oops again\r\n`);
    const window = `…${'x'.repeat(250)}Kernel oops${'y'.repeat(251)}…`;
    const expected = new RegExp(`^\\S+Z  ${D}  ${window}\\n\\S+Z  ${D}  Kernel oops again\\n$`);
    const local = await runCli(['console', 'grep', 'Kernel oops', '--dir', dir]);
    expect(local).toMatchObject({ code: 0, stderr: '' });
    expect(local.stdout).toMatch(expected);
    const tls = ['--ca', pki.ca, '--cert', pki.clientCert, '--key', pki.clientKey];
    const remote = await runCli(['console', 'grep', 'Kernel oops', '--address', `https://127.0.0.1:${servers.wsPort}`, ...tls]);
    expect(remote).toMatchObject({ code: 0, stderr: '' });
    expect(remote.stdout).toMatch(expected);
    const cappedRoutes = captureViewerRoutes({ dir, grepLimits: { matches: 1 } });
    const capped = await startConsoleServers({
      ...loopbackConsoleListeners(pki),
      openBackend: () => Promise.reject(new BmcError('UNSUPPORTED', 'no BMCs in this test')),
      logger,
      viewerRoutes: cappedRoutes,
    });
    try {
      const first = await runCli(['console', 'grep', 'Kernel oops', '--address', `https://127.0.0.1:${capped.wsPort}`, ...tls]);
      expect(first.code).toBe(0);
      expect(first.stdout).toMatch(new RegExp(`^\\S+Z  ${D}  ${window}\\n$`));
      expect(first.stderr).toBe('metal-bmc console grep: grep stopped at 1 matches, the most one grep returns: more lines match; narrow the pattern or the time range\n');
    } finally {
      cappedRoutes.close();
      await capped.close();
    }
  }, 60_000);
});
