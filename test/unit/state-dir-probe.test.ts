/**
 * The probe of the folders `serve` writes, before it starts (config/state-dir.ts): the state
 * folder, and with console capture on the capture folder. A missing folder is created, as the
 * writes into it created it, and the probe leaves nothing in it; a folder that cannot be written
 * fails with one line naming its variable, it and the code: an invalid configuration (exit 2), or
 * for a full disk a start failure (exit 1, systemd starts it again).
 */
import { mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { loadConfig } from '../../src/config/config.js';
import { ConfigError } from '../../src/config/error.js';
import { probeDir, probeWrittenDirs } from '../../src/config/state-dir.js';
import { BmcError } from '../../src/errors.js';

// a full disk cannot be had as root without a mount: node:fs's writeSync answers ENOSPC when asked
const fault = vi.hoisted(() => ({ write: undefined as string | undefined }));
vi.mock('node:fs', async (importOriginal) => {
  const fs = await importOriginal<typeof import('node:fs')>();
  const writeSync = ((...args: Parameters<typeof fs.writeSync>) => {
    if (fault.write !== undefined) throw Object.assign(new Error(`${fault.write}: write`), { code: fault.write });
    return (fs.writeSync as (...a: unknown[]) => number)(...args);
  }) as typeof fs.writeSync;
  return { ...fs, writeSync, default: { ...fs, writeSync } };
});

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'state-dir-probe-'));
  fault.write = undefined;
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const required = { METAL_BMC_PARTITION_ID: 'p', METAL_BMC_METAL_API_URL: 'http://metal-api:8080', METAL_BMC_METAL_API_HMAC_KEY: 'k' };
const probeStateDir = (state: string) => probeDir(state, 'METAL_BMC_STATE_DIR');

/** what the probe threw, or undefined */
function thrownBy(probe: () => void): unknown {
  try {
    probe();
  } catch (e) {
    return e;
  }
  return undefined;
}

describe('the state folder', () => {
  it('a missing folder is created; the probe leaves it empty', () => {
    const state = join(dir, 'var', 'lib', 'metal-bmc');
    probeStateDir(state);
    expect(statSync(state).isDirectory()).toBe(true);
    expect(readdirSync(state)).toEqual([]);
  });

  it('a folder under a regular file fails with a ConfigError naming the variable, the folder and the code', () => {
    writeFileSync(join(dir, 'file'), '');
    const state = join(dir, 'file', 'state');
    let err: unknown;
    try {
      probeStateDir(state);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).message).toBe(`METAL_BMC_STATE_DIR: ${JSON.stringify(state)} cannot be written (ENOTDIR: a part of the path is not a folder)`);
  });

  it('a full disk is no invalid configuration: a start failure a later start may get past (UNAVAILABLE, exit 1), the probe file removed', () => {
    fault.write = 'ENOSPC';
    let err: unknown;
    try {
      probeStateDir(dir);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(BmcError);
    expect(err).not.toBeInstanceOf(ConfigError);
    expect((err as BmcError).code).toBe('UNAVAILABLE');
    expect((err as BmcError).message).toBe(`METAL_BMC_STATE_DIR: ${JSON.stringify(dir)} cannot be written (ENOSPC: no space left on the device)`);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('must be absolute (a relative path is taken from the working folder, / under systemd)', () => {
    expect(() => loadConfig({ ...required, METAL_BMC_STATE_DIR: 'state' })).toThrow(/^METAL_BMC_STATE_DIR: "state" is not an absolute path/);
    expect(() => loadConfig({ ...required, METAL_BMC_STATE_DIR: './var/lib/metal-bmc' })).toThrow(ConfigError);
    expect(loadConfig({ ...required, METAL_BMC_STATE_DIR: '/srv/state' }).stateDir).toBe('/srv/state');
  });
});

describe('the console capture folder', () => {
  // the listeners' files are only named here: the probe runs before anything reads them
  const listeners = { caCertFile: '/etc/metal-bmc/ca.pem', certFile: '/etc/metal-bmc/cert.pem', keyFile: '/etc/metal-bmc/key.pem' };
  const dirs = (logDir: string, capture: 'off' | 'all' = 'all', files: Partial<typeof listeners> = listeners) => ({ stateDir: join(dir, 'state'), console: { capture, logDir, ...files } });

  it('with capture on, a missing folder is created and left empty, beside the state folder', () => {
    const logDir = join(dir, 'srv', 'consoles');
    probeWrittenDirs(dirs(logDir));
    expect(readdirSync(logDir)).toEqual([]);
    expect(readdirSync(join(dir, 'state'))).toEqual([]);
  });

  it('with capture on, a folder that cannot be written fails with a ConfigError naming METAL_BMC_CONSOLE_LOG_DIR (exit 2)', () => {
    writeFileSync(join(dir, 'file'), '');
    const logDir = join(dir, 'file', 'consoles');
    const err = thrownBy(() => probeWrittenDirs(dirs(logDir)));
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).message).toBe(`METAL_BMC_CONSOLE_LOG_DIR: ${JSON.stringify(logDir)} cannot be written (ENOTDIR: a part of the path is not a folder)`);
  });

  it('a full disk under it is a start failure (UNAVAILABLE, exit 1) naming METAL_BMC_CONSOLE_LOG_DIR', () => {
    fault.write = 'ENOSPC';
    const err = thrownBy(() => probeDir(dir, 'METAL_BMC_CONSOLE_LOG_DIR'));
    expect(err).not.toBeInstanceOf(ConfigError);
    expect(err).toMatchObject({ code: 'UNAVAILABLE', message: `METAL_BMC_CONSOLE_LOG_DIR: ${JSON.stringify(dir)} cannot be written (ENOSPC: no space left on the device)` });
  });

  it('with capture off, or on without the console listeners it needs (so off), nothing writes it: not probed, not created', () => {
    writeFileSync(join(dir, 'file'), '');
    probeWrittenDirs(dirs(join(dir, 'file', 'consoles'), 'off'));
    probeWrittenDirs(dirs(join(dir, 'never'), 'off'));
    probeWrittenDirs(dirs(join(dir, 'file', 'consoles'), 'all', {}));
    probeWrittenDirs(dirs(join(dir, 'never'), 'all', { caCertFile: listeners.caCertFile }));
    expect(readdirSync(dir).sort()).toEqual(['file', 'state']);
  });

  it('must be absolute; by default the console folder under METAL_BMC_STATE_DIR', () => {
    expect(() => loadConfig({ ...required, METAL_BMC_CONSOLE_LOG_DIR: 'consoles' })).toThrow(/^METAL_BMC_CONSOLE_LOG_DIR: "consoles" is not an absolute path/);
    expect(loadConfig({ ...required, METAL_BMC_STATE_DIR: '/srv/state' }).console.logDir).toBe('/srv/state/console');
  });
});
