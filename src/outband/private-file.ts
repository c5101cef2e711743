/**
 * State files only this user may read (mode 0600), replaced atomically: written to a temporary
 * file beside it, then renamed over it, so a reader (or a crash) never sees half of it; and
 * written once per burst of changes (`burstWriter`; `stateFileWriter` for a file whose whole text
 * is rewritten), never on the event loop's hot path. Written by root into a folder another user
 * owns, a file gets the folder's owner (`ownLikeFolder`). A file that is there but cannot be read
 * (`readStateFile`) is not written over until it can be (`unreadableEpisode`).
 */
import { existsSync, readdirSync, readFileSync, renameSync, statSync } from 'node:fs';
import { mkdir, open, rename, stat, unlink, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { Logger } from '../log.js';
import { stateWriteEpisodes } from './state-write-failures.js';

/**
 * Gives a file that root creates in a state folder another user owns (`sudo metal-bmc bmc trust
 * --reset` in the daemon's folder) that folder's owner and group: left root's, at mode 0600, the
 * daemon (its own user) could no longer read it. Any other process keeps its own.
 */
export async function ownLikeFolder(handle: FileHandle, folder: string): Promise<void> {
  if (process.getuid?.() !== 0) return;
  const owner = await stat(folder);
  if (owner.uid !== 0) await handle.chown(owner.uid, owner.gid);
}

/**
 * Writes `text` to `file` (mode 0600) through a temporary file that is synced before it is renamed
 * over the file, and the folder synced after: a power loss leaves the old file or the new one,
 * never an empty or partial one (the rename alone may reach the disk before the data).
 */
export async function writePrivateFile(file: string, text: string): Promise<void> {
  const tmp = `${file}.${process.pid}.tmp`;
  const folder = dirname(file);
  await mkdir(folder, { recursive: true });
  const handle = await open(tmp, 'w', 0o600);
  try {
    try {
      await ownLikeFolder(handle, folder);
      await handle.writeFile(text);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(tmp, file);
  } catch (err) {
    // not left behind: it may hold what the file does (the Redfish session file's tokens)
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
  const dir = await open(folder, 'r').catch(() => undefined);
  try {
    await dir?.sync();
  } catch {
    // some file systems cannot sync a folder; the data itself is on disk
  } finally {
    await dir?.close();
  }
}

export interface BurstWriter {
  /** something changed: `write` runs `delayMs` later, once for every change until then (at once with 0, or after close) */
  changed(): void;
  /** writes what is pending now, after the write in flight; one write at a time */
  flush(): Promise<void>;
  /** flushes and stops the timer; later changes are written at once */
  close(): Promise<void>;
}

/** Schedules `write` for a burst of changes; it runs only while `pending()` says there is something to write. */
export function burstWriter(o: { delayMs: number; pending: () => boolean; write: () => Promise<void> }): BurstWriter {
  let timer: NodeJS.Timeout | undefined;
  let inFlight: Promise<void> | undefined;
  let closed = false;
  function flush(): Promise<void> {
    clearTimeout(timer);
    timer = undefined;
    const next = (async () => {
      await inFlight;
      if (o.pending()) await o.write();
    })();
    inFlight = next;
    return next;
  }
  return {
    changed() {
      if (closed || o.delayMs === 0) void flush();
      else timer ??= setTimeout(() => void flush(), o.delayMs);
    },
    flush,
    async close() {
      closed = true;
      await flush();
    },
  };
}

export interface StateFileWriter extends BurstWriter {
  /** nothing to write now: the file holds what is in memory (just loaded from it) */
  clean(): void;
}

/**
 * A state file rewritten after changes (`changed()`, through `burstWriter`): `text()` is what it
 * holds, asked at each write (undefined: nothing to write yet). A write that fails is counted and
 * logged once per episode (`failure`: the line's message, state-write-failures.ts) and done again
 * with the next change, or at close.
 */
export function stateFileWriter(o: { file: string; delayMs: number; text: () => string | undefined; failure: string; logger?: Pick<Logger, 'error' | 'info'> | undefined }): StateFileWriter {
  const episodes = stateWriteEpisodes(o);
  let dirty = false;
  const writer = burstWriter({
    delayMs: o.delayMs,
    pending: () => dirty,
    write: async () => {
      dirty = false;
      const text = o.text();
      if (text === undefined) return;
      try {
        await writePrivateFile(o.file, text);
        episodes.succeeded();
      } catch (err) {
        dirty = true;
        episodes.failed(err as Error);
      }
    },
  });
  return {
    changed() {
      dirty = true;
      writer.changed();
    },
    clean() {
      dirty = false;
    },
    flush: writer.flush,
    close: writer.close,
  };
}

/**
 * Loads a version 1 state file `{ version: 1, [key]: { name: entry, ... } }` into `take`, which
 * keeps an entry (true) or drops it (false: malformed, too old). A missing file is an empty one;
 * an unreadable or foreign one is logged (`what` names it and what starting without it means) and
 * read as empty. The file is written again after a load that dropped entries, and not otherwise
 * (it holds what memory does).
 */
export function loadStateEntries(o: { file: string; key: string; what: string; logger?: Pick<Logger, 'error'>; writer: StateFileWriter; take: (name: string, entry: unknown) => boolean }): { dropped: number } {
  let text: string;
  try {
    text = readFileSync(o.file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') o.logger?.error({ file: o.file, err: (err as Error).message }, `cannot read the ${o.what}`);
    o.writer.clean();
    return { dropped: 0 };
  }
  let dropped = 0;
  try {
    const parsed = JSON.parse(text) as Record<string, unknown>;
    const entries = parsed[o.key];
    if (parsed.version !== 1 || typeof entries !== 'object' || entries === null || Array.isArray(entries)) throw new Error(`not a version 1 file with ${o.key}`);
    for (const [name, entry] of Object.entries(entries)) if (!o.take(name, entry)) dropped++;
  } catch (err) {
    o.logger?.error({ file: o.file, err: (err as Error).message }, `cannot use the ${o.what}`);
  }
  if (dropped > 0) o.writer.changed();
  else o.writer.clean();
  return { dropped };
}

/**
 * A file's identity as another process's write changes it (inode, modification time, size): an
 * atomic replace (writePrivateFile) gives a new inode, so a reader tells "someone wrote it" by it.
 */
export function stampOf(st: { ino: number; mtimeMs: number; size: number }): string {
  return `${st.ino}:${st.mtimeMs}:${st.size}`;
}

/** The file's stamp now; '' when there is none. */
export function fileStamp(file: string): string {
  try {
    return stampOf(statSync(file));
  } catch {
    return '';
  }
}

/** A state file that cannot be used (it does not parse), kept aside for the operator. */
export interface AsideCopy {
  /**
   * Moves the file to `<file>.unreadable-<ms>`: the next write would replace everything it holds.
   * The new name, or undefined when it could not be moved (it stays where it is).
   */
  move(): string | undefined;
  /**
   * the last copy moved aside, while it is still there (the operator has not put it back or
   * removed it): this process's, or at start the newest an earlier run left, so a restart does not
   * forget that what the file held is not known
   */
  current(): string | undefined;
}

/** The newest `<file>.unreadable-<ms>` beside `file`, if any: a copy an earlier run kept aside. */
export function newestAsideCopy(file: string): string | undefined {
  const prefix = `${basename(file)}.unreadable-`;
  let names: string[];
  try {
    names = readdirSync(dirname(file));
  } catch {
    return undefined;
  }
  let newest: { ms: number; name: string } | undefined;
  for (const name of names) {
    if (!name.startsWith(prefix)) continue;
    const ms = name.slice(prefix.length);
    if (!/^\d{1,16}$/.test(ms)) continue;
    if (newest === undefined || Number(ms) > newest.ms) newest = { ms: Number(ms), name };
  }
  return newest === undefined ? undefined : join(dirname(file), newest.name);
}

export function asideCopy(file: string): AsideCopy {
  let last: string | undefined = newestAsideCopy(file);
  return {
    move() {
      const aside = `${file}.unreadable-${Date.now()}`;
      try {
        renameSync(file, aside);
      } catch {
        return undefined;
      }
      last = aside;
      return aside;
    },
    current() {
      if (last !== undefined && !existsSync(last)) last = undefined;
      return last;
    },
  };
}

/**
 * A state file that does not parse, met by a store that reads it: the daemon moves it aside
 * (`copy`) with one error line naming both paths (`line`: what the store does meanwhile); with
 * `keepAside` false (the CLI) it is left where it is and taken as unreadable (`NOT_PARSED`), for
 * the daemon keeps it aside itself and counts it. True when it was moved: the store reads its
 * path again once a file is there (the operator's put back, or its own next write).
 */
export function setAsideUnparsable(o: { file: string; keepAside: boolean; copy: AsideCopy; unreadable: UnreadableEpisode; logger?: Pick<Logger, 'error'> | undefined; line: string }, err: Error): boolean {
  if (!o.keepAside) {
    o.unreadable.saw({ kind: 'unreadable', code: NOT_PARSED, error: err.message });
    return false;
  }
  // left where it is when it cannot be moved: read again when it changes
  const aside = o.copy.move();
  o.logger?.error({ file: o.file, err: err.message, ...(aside !== undefined ? { keptAs: aside } : {}) }, o.line);
  return aside !== undefined;
}

/** The code of a state file that did not parse and whose copy is kept aside (the copy's path as the error). */
export const KEPT_ASIDE = 'KEPT_ASIDE';

/**
 * Why what a state file holds is not known now: it cannot be read, or it did not parse and the
 * copy this process moved aside is still there (`KEPT_ASIDE`). Either way it may name what a
 * newcomer claims (a BMC's pin, a machine UUID's BMC), so a store fails closed for newcomers until
 * the file can be read, or the operator put the copy back fixed or removed it (which accepts the
 * loss of what it held). Undefined when newcomers may go on.
 */
export function contentUnknown(store: { unreadable(): UnreadableFile | undefined; keptAside(): string | undefined }): UnreadableFile | undefined {
  const cannot = store.unreadable();
  if (cannot !== undefined) return { code: cannot.code, error: cannot.error };
  const copy = store.keptAside();
  return copy === undefined ? undefined : { code: KEPT_ASIDE, error: copy };
}

/** A state file's text; missing (ENOENT: read as an empty file); or unreadable, with the error's code (EACCES, EIO, EISDIR, ...). */
export type StateFileRead = { kind: 'text'; text: string } | { kind: 'missing' } | { kind: 'unreadable'; code: string; error: string };

/** Reads a state file as `StateFileRead`: only a missing file is an empty one. */
export function readStateFile(file: string): StateFileRead {
  try {
    return { kind: 'text', text: readFileSync(file, 'utf8') };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'UNKNOWN';
    return code === 'ENOENT' ? { kind: 'missing' } : { kind: 'unreadable', code, error: (err as Error).message };
  }
}

/**
 * The code of an `UnreadableFile` that was read but does not parse, in a process that leaves it
 * where it is (the CLI: the daemon keeps such a file aside itself, and counts it)
 */
export const NOT_PARSED = 'NOT_PARSED';

/** Why a state file cannot be read now: the code and message of the last read's error (`NOT_PARSED`: it does not parse). */
export interface UnreadableFile {
  code: string;
  error: string;
}

/**
 * Whether a state file could be read at its last read, and the two log lines of an episode in
 * which it cannot: one error line at the first failed read (the file, the error code, and
 * `consequence`: what the process does meanwhile), one info line when a read succeeds again.
 * The store that reads the file must not write it while `current()` is set: the rename would put
 * its memory in place of records it never read (another process's, or those of every earlier run).
 */
export interface UnreadableEpisode {
  /** the outcome of a read */
  saw(read: StateFileRead): void;
  /** the error of the read that failed last, while no read has succeeded since */
  current(): UnreadableFile | undefined;
}

export function unreadableEpisode(o: { file: string; what: string; consequence: string; logger?: Pick<Logger, 'error' | 'info'> | undefined }): UnreadableEpisode {
  let failing: UnreadableFile | undefined;
  return {
    saw(read) {
      if (read.kind === 'unreadable') {
        if (failing === undefined) o.logger?.error({ file: o.file, code: read.code, err: read.error }, `cannot read the ${o.what} (${read.code}); ${o.consequence}`);
        failing = { code: read.code, error: read.error };
      } else if (failing !== undefined) {
        o.logger?.info({ file: o.file, ended: failing.code }, read.kind === 'text' ? `the ${o.what} can be read again` : `the ${o.what} that could not be read is gone; it is written anew`);
        failing = undefined;
      }
    },
    current: () => failing,
  };
}
