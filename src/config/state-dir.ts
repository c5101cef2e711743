/**
 * The folders the daemon writes, tried before it starts: the state folder (METAL_BMC_STATE_DIR)
 * and, with console capture on, the capture folder (METAL_BMC_CONSOLE_LOG_DIR). A folder it cannot
 * write (another folder than the unit's StateDirectory under ProtectSystem=strict, a full disk)
 * used to show only as an error line per burst of writes, with the BMC trust pins in memory alone,
 * so a restart met every BMC as on first contact; a capture folder only when the first console
 * was captured. The probe writes a file as the state files are written (created, written, synced,
 * renamed, then removed).
 */
import { closeSync, fsyncSync, mkdirSync, openSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { BmcError } from '../errors.js';
import { consoleCaptured, type Config } from './config.js';
import { ConfigError } from './error.js';
import { show } from './env.js';

/**
 * Codes of a folder that a later start may find writable without a change of configuration (space
 * freed, a disk back): the start fails (exit 1, systemd starts it again); any other code is an
 * invalid configuration (exit 2, not restarted).
 */
const PASSING = new Set(['ENOSPC', 'EDQUOT', 'EIO', 'EMFILE', 'ENFILE', 'EAGAIN', 'EBUSY']);

/** what the codes an operator meets mean here */
const MEANING: Record<string, string> = {
  EROFS: 'read-only file system; under the systemd unit (ProtectSystem=strict) only its StateDirectory, /var/lib/metal-bmc, can be written',
  EACCES: 'permission denied to the user metal-bmc runs as',
  EPERM: 'operation not permitted',
  ENOTDIR: 'a part of the path is not a folder',
  EEXIST: 'a file, not a folder, is in its place',
  ENOSPC: 'no space left on the device',
  EDQUOT: 'disk quota exceeded',
  EIO: 'input/output error',
};

/** What `serve` writes into; the capture folder only while consoles are captured (nothing writes it otherwise). */
export interface WrittenDirs {
  stateDir: string;
  console: Pick<Config['console'], 'capture' | 'logDir' | 'caCertFile' | 'certFile' | 'keyFile'>;
}

/** Probes each folder the configuration writes (`probeDir`), the state folder first. */
export function probeWrittenDirs(config: WrittenDirs): void {
  probeDir(config.stateDir, 'METAL_BMC_STATE_DIR');
  if (consoleCaptured(config.console)) probeDir(config.console.logDir, 'METAL_BMC_CONSOLE_LOG_DIR');
}

/**
 * Creates the folder when it is missing (as the writes into it did), then writes, syncs, renames
 * and removes a file in it. Throws a ConfigError, or a BmcError (UNAVAILABLE) for a code a later
 * start may not meet; the message is one line naming `variable`, the folder and the code.
 */
export function probeDir(dir: string, variable: string): void {
  const probe = join(dir, `.metal-bmc-probe.${process.pid}.tmp`);
  const renamed = join(dir, `.metal-bmc-probe.${process.pid}`);
  try {
    mkdirSync(dir, { recursive: true });
    const fd = openSync(probe, 'w', 0o600);
    try {
      writeSync(fd, 'metal-bmc state folder probe\n');
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(probe, renamed);
    unlinkSync(renamed);
  } catch (err) {
    for (const left of [probe, renamed]) removeQuietly(left);
    const code = (err as NodeJS.ErrnoException).code ?? 'error';
    const message = `${show(dir)} cannot be written (${code}${MEANING[code] ? `: ${MEANING[code]}` : ''})`;
    if (PASSING.has(code)) throw new BmcError('UNAVAILABLE', `${variable}: ${message}`, { cause: err });
    throw new ConfigError(message, variable, { cause: err });
  }
}

function removeQuietly(file: string): void {
  try {
    unlinkSync(file);
  } catch {
    // not there
  }
}
