/**
 * `metal-bmc serve` with a state folder it cannot keep its state in. Under the unit's
 * ProtectSystem=strict any folder but /var/lib/metal-bmc, and a relative path (the working folder
 * is /), failed every write with EROFS while the daemon ran on: an error line per burst, the BMC
 * trust pins in memory only, so a restart met every BMC as on first contact. The start now stops
 * with one line and exit code 2 (invalid configuration: systemd does not restart it). A folder
 * that fails even root (a path under a regular file: ENOTDIR) stands for the read-only one; the
 * start is stopped before anything starts, so metal-api and NATS are closed ports. The console
 * capture folder (METAL_BMC_CONSOLE_LOG_DIR, with capture on) is probed the same way.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { freeTcpPort } from '../helpers/ports.js';

let dir: string;
let closedPort: number;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'serve-state-dir-'));
  writeFileSync(join(dir, 'dhcpd.leases'), '');
  closedPort = await freeTcpPort();
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function serve(stateDir: string, extra: Record<string, string> = {}) {
  return runCli(['serve'], {
    timeoutMs: 20_000,
    env: {
      METAL_BMC_PARTITION_ID: 'state-dir',
      METAL_BMC_METAL_API_URL: `http://127.0.0.1:${closedPort}`,
      METAL_BMC_METAL_API_HMAC_KEY: 'state-dir-hmac',
      METAL_BMC_LEASE_FILE: join(dir, 'dhcpd.leases'),
      METAL_BMC_STATE_DIR: stateDir,
      METAL_BMC_HTTP_ADDRESS: '127.0.0.1:0',
      METAL_BMC_MQ_ADDRESS: `nats://127.0.0.1:${closedPort}`,
      METAL_BMC_SHUTDOWN_TIMEOUT: '5s',
      ...extra,
    },
  });
}

describe('metal-bmc serve, the state folder', () => {
  it('a relative path is an invalid configuration: one line naming the variable, exit code 2, nothing started', async () => {
    const r = await serve('metal-bmc-state');
    expect(r.code, r.stdout.slice(-2000) + r.stderr).toBe(2);
    expect(r.stderr.trim().split('\n')).toEqual([expect.stringMatching(/^metal-bmc serve: invalid configuration: METAL_BMC_STATE_DIR: "metal-bmc-state" is not an absolute path/)]);
    expect(r.stdout).not.toContain('metal-bmc starting');
  });

  it('a folder that cannot be written (under a regular file: ENOTDIR, as root too): one line naming the folder and the code, exit code 2, nothing started', async () => {
    const file = join(dir, 'a-file');
    writeFileSync(file, '');
    const stateDir = join(file, 'state');
    const r = await serve(stateDir);
    expect(r.code, r.stdout.slice(-2000) + r.stderr).toBe(2);
    expect(r.stderr.trim().split('\n')).toEqual([`metal-bmc serve: invalid configuration: METAL_BMC_STATE_DIR: ${JSON.stringify(stateDir)} cannot be written (ENOTDIR: a part of the path is not a folder)`]);
    expect(r.stdout).not.toContain('metal-bmc starting');
  });

  it('with console capture on, a capture folder that cannot be written stops the start the same way, naming METAL_BMC_CONSOLE_LOG_DIR; it was found only at the first captured console', async () => {
    const file = join(dir, 'another-file');
    writeFileSync(file, '');
    const logDir = join(file, 'console');
    // the listeners capture needs: files that are there (the start stops before anything reads them)
    const pem = join(dir, 'listener.pem');
    writeFileSync(pem, '');
    const listeners = { METAL_BMC_CONSOLE_CA_CERT_FILE: pem, METAL_BMC_CONSOLE_CERT_FILE: pem, METAL_BMC_CONSOLE_KEY_FILE: pem };
    const r = await serve(join(dir, 'state'), { ...listeners, METAL_BMC_CONSOLE_CAPTURE: 'all', METAL_BMC_CONSOLE_LOG_DIR: logDir });
    expect(r.code, r.stdout.slice(-2000) + r.stderr).toBe(2);
    expect(r.stderr.trim().split('\n')).toEqual([`metal-bmc serve: invalid configuration: METAL_BMC_CONSOLE_LOG_DIR: ${JSON.stringify(logDir)} cannot be written (ENOTDIR: a part of the path is not a folder)`]);
    expect(r.stdout).not.toContain('metal-bmc starting');
  });
});
