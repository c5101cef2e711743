/**
 * The lease file entries a reader left out (they cannot be read), each told once: a file is read
 * again on every change and whole after each of dhcpd's or Kea's cleanups, and an entry left out
 * the same way on every read of the same file would be logged and counted on every read.
 */
import type { LeaseParseError, SkippedEntry } from './types.js';

/** The same entry: the same file (path and inode where known) and line. */
function keyOf(entry: SkippedEntry): string {
  const file = entry.file === undefined ? '' : `${entry.file.dev}:${entry.file.ino}`;
  return `${entry.error.source ?? ''}\0${file}\0${entry.error.line}`;
}

/**
 * Which entries were told. A full read's entries are all the files hold now: they replace what is
 * kept (an entry gone from the files is forgotten, so this holds no more than the files' entries
 * left out); a tail read's are added to it.
 */
export class SkippedOnce {
  private told = new Set<string>();

  /** The entries of a read not told before (in the order given); `full`: the read took in the whole files. */
  fresh(entries: readonly SkippedEntry[], full: boolean): LeaseParseError[] {
    const keys = entries.map(keyOf);
    const fresh = entries.filter((_entry, i) => !this.told.has(keys[i] as string)).map((entry) => entry.error);
    if (full) this.told = new Set(keys);
    else for (const key of keys) this.told.add(key);
    return fresh;
  }
}
