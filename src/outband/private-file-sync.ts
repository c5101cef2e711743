/**
 * `writePrivateFile` for a caller that must know the file is on disk before it goes on (the
 * firmware job file before an update starts): the same temporary file beside it, synced before it
 * is renamed over the file, and the folder synced after, but synchronously.
 */
import { closeSync, fchmodSync, fsyncSync, mkdirSync, openSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

/**
 * Writes `text` to `file` (mode 0600) whole or not at all: a power loss leaves the old file or the
 * new one, never an empty or partial one (the rename alone may reach the disk before the data).
 * A write that fails leaves the old file as it was and no temporary file; throws.
 */
export function writePrivateFileSync(file: string, text: string): void {
  const tmp = `${file}.${process.pid}.tmp`;
  const folder = dirname(file);
  mkdirSync(folder, { recursive: true });
  try {
    const fd = openSync(tmp, 'w', 0o600);
    try {
      // a temporary file left by an earlier process of the same pid keeps its mode through 'w'
      fchmodSync(fd, 0o600);
      writeFileSync(fd, text);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, file);
  } catch (err) {
    try {
      unlinkSync(tmp);
    } catch {
      // never created
    }
    throw err;
  }
  syncFolder(folder);
}

function syncFolder(folder: string): void {
  let fd: number;
  try {
    fd = openSync(folder, 'r');
  } catch {
    return;
  }
  try {
    fsyncSync(fd);
  } catch {
    // some file systems cannot sync a folder; the data itself is on disk
  } finally {
    closeSync(fd);
  }
}
