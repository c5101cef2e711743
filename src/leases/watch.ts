/**
 * Follows a lease file: `fs.watch` on its directory (DHCP servers replace the file by
 * rename, which a watch on the file itself would miss) plus a stat poll as fallback,
 * debounced. The file is followed: after a full read, a change is read from where the last read
 * stopped (createLeaseReader, follow.ts, isc-follow.ts, kea-follow.ts); a declaration dhcpd or a row
 * Kea is still writing waits for the next read, and is reported once it stays cut short for a
 * poll interval with the file unchanged; a read that ends inside an entry keeps the view before it for
 * a while (cut-read.ts: a file copied over in place, read mid-copy). A Kea lease file is read whole with the files of
 * Kea's lease file cleanup before it (KEA_CLEANUP_SUFFIXES), as Kea loads them, then followed
 * while those files stay as they are. A file that cannot be read or parsed keeps the last good view and is
 * reported to onError once per distinct error; nothing is ever thrown out of a timer. A directory
 * watch that fails is no error of the file: told apart (onWatchError) and tried again with growing
 * waits, the poll reading the changes meanwhile.
 */
import { watch as fsWatch, type BigIntStats, type FSWatcher, type Stats } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { BmcError } from '../errors.js';
import type { Cidr } from '../net/cidr.js';
import { CUT_READ_HOLD_MS, CutReadHold } from './cut-read.js';
import { IscLeaseFollower } from './isc-follow.js';
import { KeaLeaseFollower, type KeaFullRead } from './kea-follow.js';
import { normalizeMacSet } from './mac.js';
import { SkippedOnce } from './skipped.js';
import { absorbOne } from './follow.js';
import { dhcpv6File, parseIscDeclarations } from './isc.js';
import { activeLeases, detectLeaseFormat, type LeaseFormatOption } from './select.js';
import { parseKeaFile, type KeaRows } from './kea.js';
import { LeaseParseError, type FileIdentity, type IscLease, type KeaLease, type Lease, type ParsedLeases, type SkippedEntry } from './types.js';

export interface LeaseDiff {
  /** MACs that hold a lease now and did not before */
  added: Lease[];
  /** leases (as they were) whose MAC no longer holds one */
  removed: Lease[];
  /** MACs whose IP or hostname changed; a renewal that only moves the expiry is no change */
  changed: Lease[];
}

export interface LeaseView extends LeaseDiff {
  leases: Lease[];
}

export interface ReadLeasesOptions {
  format?: LeaseFormatOption;
  allowedCidrs?: readonly Cidr[];
  ignoreMacs?: Iterable<string>;
}

export interface WatchLeasesOptions extends ReadLeasesOptions {
  now?: () => Date;
  /** quiet time after the last change event before the file is read; default 200 */
  debounceMs?: number;
  /** the longest a change waits for its read while changes keep coming (a busy server appending every few ms); default 2000 */
  maxWaitMs?: number;
  /** stat interval of the fallback poll, which also re-evaluates expiry; default 2000 */
  pollMs?: number;
  /**
   * the longest reads that end inside an entry (a file copied in place, read mid-copy) keep the
   * addresses they did not reach from the view before; default CUT_READ_HOLD_MS (cut-read.ts)
   */
  cutHoldMs?: number;
  /** watch the directory with fs.watch besides polling; default true (false for file systems without inotify) */
  fsWatch?: boolean;
  /** the directory watch; default fs.watch (tests give one that fails as fs.watch does once the inotify limits are reached) */
  watchDirectory?: (dir: string, listener: (event: string, filename: string | null) => void) => FSWatcher;
  /** called after the first successful read, then whenever the view changes */
  onChange: (view: LeaseView) => void;
  /** called after each read of the lease file: whole, or only what dhcpd or Kea appended since the last one */
  onRead?: (read: LeaseRead) => void;
  onError?: (err: BmcError) => void;
  /**
   * The error told last through onError ended: a read was good again (the file written whole, back
   * under MAX_LEASE_FILE_BYTES, ...). Told once per error, after which onChange gives the view.
   */
  onRecovered?: (ended: BmcError) => void;
  /**
   * Entries of the lease files (an ISC lease declaration, a Kea row) that cannot be read: left out
   * and the rest read, as dhcpd and Kea skip them. Each names its file and line and is told once
   * per file (path and inode) and line, however often the file is read. No error: the view holds
   * every other lease.
   */
  onSkipped?: (entries: LeaseParseError[]) => void;
  /**
   * The directory watch failed (ENOSPC: the inotify limits reached, a directory gone): told once
   * until a watch works again, never through onError (it is no error of the lease file: the poll
   * reads every change, at most pollMs later). It is tried again after pollMs, then after twice as
   * long each time, up to MAX_WATCH_RETRY_MS.
   */
  onWatchError?: (err: BmcError) => void;
  signal?: AbortSignal;
}

/**
 * One read of the lease file: `tail` read only the bytes from where the last read stopped (a file
 * dhcpd or Kea appended to), `full` the whole file. `bytes`: of the lease file, read from disk.
 */
export interface LeaseRead {
  mode: 'tail' | 'full';
  bytes: number;
}

export interface LeaseWatcher {
  /** the last good view (empty before the first successful read) */
  current(): Lease[];
  /** how many times the file has been read so far (successfully or not): lets a caller see that a change was looked at */
  reads(): number;
  close(): void;
}

export function diffLeases(before: readonly Lease[], after: readonly Lease[]): LeaseDiff {
  const old = new Map(before.map((l) => [l.mac, l]));
  const now = new Set(after.map((l) => l.mac));
  const added: Lease[] = [];
  const changed: Lease[] = [];
  for (const lease of after) {
    const prev = old.get(lease.mac);
    if (prev === undefined) added.push(lease);
    else if (prev.ip !== lease.ip || prev.hostname !== lease.hostname) changed.push(lease);
  }
  return { added, removed: before.filter((l) => !now.has(l.mac)), changed };
}

function readError(path: string, err: unknown, what = 'read lease file'): BmcError {
  // an error that names its file (a Kea cleanup file beside the lease file) keeps it
  if (err instanceof LeaseParseError) return err.source === undefined ? err.withSource(path) : err;
  if (err instanceof BmcError) return err;
  const why = err instanceof Error ? err.message : String(err);
  return new BmcError('CONFIG', `cannot ${what} ${path}: ${why}`, { cause: err });
}

/**
 * The most a lease file (or one of Kea's cleanup files) may hold: far above a partition's (a few
 * thousand leases of ~300 bytes, rewritten hourly by dhcpd and kea-lfc), and below what would
 * make one read take the heap and the event loop with it (a file that grew without cleanup).
 */
export const MAX_LEASE_FILE_BYTES = 256 * 2 ** 20;

/** The whole file as read, and which file it was; refused beyond MAX_LEASE_FILE_BYTES before anything is read. */
async function readLeaseFile(path: string): Promise<{ bytes: Buffer; id: BigIntStats }> {
  const file = await open(path, 'r');
  try {
    const id = await file.stat({ bigint: true });
    checkSize(path, Number(id.size));
    return { bytes: await file.readFile(), id };
  } finally {
    await file.close();
  }
}

/** A lease file (or one of Kea's cleanup files) beyond MAX_LEASE_FILE_BYTES, not read. */
export class LeaseFileTooLargeError extends BmcError {
  constructor(
    readonly file: string,
    readonly size: number,
  ) {
    super('CONFIG', `lease file ${file} holds ${size} bytes, more than the ${MAX_LEASE_FILE_BYTES} a lease file may hold; not read (does its DHCP server clean it up?)`);
    this.name = 'LeaseFileTooLargeError';
  }
}

function checkSize(path: string, size: number): void {
  if (size > MAX_LEASE_FILE_BYTES) throw new LeaseFileTooLargeError(path, size);
}

/** The whole file as text, refused beyond MAX_LEASE_FILE_BYTES before anything is read. */
async function readLeaseText(path: string): Promise<string> {
  return (await readLeaseFile(path)).bytes.toString('utf8');
}

/**
 * An ISC file's leases as the selection reads them: each address's last declaration, in the order
 * of those (absorb), taken as they are parsed so a file of many renewals is never held whole as
 * lease records. Throws as parseIscLeases.
 */
function parseIscFile(path: string, text: string): ParsedLeases {
  const byIp = new Map<number, IscLease>();
  try {
    const v6 = dhcpv6File(parseIscDeclarations(text, 1, (lease) => absorbOne(byIp, lease)), byIp.size);
    if (v6 !== undefined) throw v6;
  } catch (err) {
    throw readError(path, err);
  }
  return { format: 'isc', leases: [...byIp.values()] };
}

/** A file's text, and which file it was. */
export interface FileText {
  text: string;
  id: FileIdentity;
}

/** The file's text and identity, or undefined when it does not exist. */
export async function readIfThere(path: string): Promise<FileText | undefined> {
  try {
    const { bytes, id } = await readLeaseFile(path);
    return { text: bytes.toString('utf8'), id };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw readError(path, err);
  }
}

/**
 * The files Kea keeps beside its lease file for its lease file cleanup (kea-lfc, every
 * `lfc-interval`, an hour by default; kea-lfc(8): `-x` previous, `-i` copy, `-f` finish): `.2`
 * holds the last cleanup's result; a cleanup starts with Kea moving its lease file to `.1` (the
 * copy; not when a `.1` is left from a cleanup that did not finish) and starting a new one holding
 * only the header (Memfile_LeaseMgr::leaseFileCleanup); kea-lfc merges `.2` and `.1` into
 * `.completed`, removes `.2` and `.1`, and renames `.completed` to `.2`. Kea loads them oldest
 * first before the lease file (Memfile_LeaseMgr::loadLeasesFromFiles): `.completed` alone when it
 * exists, else `.2` then `.1`; a later row of an address wins.
 */
export const KEA_CLEANUP_SUFFIXES = ['.completed', '.1', '.2'] as const;

/** Each cleanup file's identity (inode, size, mtime) or absence: every step of kea-lfc changes it. */
async function cleanupStamp(path: string): Promise<string> {
  const parts = await Promise.all(
    KEA_CLEANUP_SUFFIXES.map(async (suffix) => {
      try {
        return signatureOf(await stat(`${path}${suffix}`));
      } catch {
        return '-';
      }
    }),
  );
  return parts.join('|');
}

/** reads of a Kea lease file and its cleanup files, the first included, while a cleanup runs */
const KEA_READS = 5;

/** The Kea lease file as read: its text, and its bytes and identity when read so. */
type KeaMain = Pick<KeaFullRead, 'text' | 'bytes' | 'id'>;

/**
 * A Kea lease file's rows with those of its cleanup files before them, in the order Kea loads
 * them, so a lease written before the last cleanup still counts: of each file, the rows the
 * selection reads (each address's last, KeaFullRead), the files' renewals never held all at once
 * (with lease file cleanup off Kea keeps every one). The lease file is read first:
 * a cleanup starting meanwhile moves what was read to `.1`, read after it. kea-lfc ending
 * between the reads of `.2` and `.1` (it removes both, then renames `.completed` to `.2`) can
 * leave a read with neither: when a cleanup file changed while they were read, all of them are
 * read again (the lease file too), up to KEA_READS times in all. `readFile` and `readCurrent`:
 * tests put a cleanup step between two reads.
 */
export async function readKea(path: string, text: string, readFile = readIfThere, readCurrent = readLeaseText): Promise<ParsedLeases> {
  const read = await readKeaFiles(path, { text }, readFile, async (file) => ({ text: await readCurrent(file) }));
  return { format: 'kea', leases: [...read.cleanup, ...read.current.leases] };
}

/** readKea's reads, with the lease file as read and the cleanup files' stamp when it held over them (a Kea lease follower starts from there). */
async function readKeaFiles(path: string, main: KeaMain, readFile: (file: string) => Promise<FileText | undefined>, readCurrent: (file: string) => Promise<KeaMain>): Promise<KeaFullRead> {
  for (let attempt = 1; ; attempt++) {
    const before = await cleanupStamp(path);
    const rows = await readKeaOnce(path, main.text, readFile);
    if ((await cleanupStamp(path)) === before) return { ...rows, ...main, stamp: before };
    if (attempt === KEA_READS) return { ...rows, ...main, stamp: undefined };
    await new Promise((resolve) => setTimeout(resolve, 20 * attempt));
    try {
      main = await readCurrent(path);
    } catch {
      // the lease file between Kea's rename and its new one: the read made is used
      return { ...rows, ...main, stamp: undefined };
    }
  }
}

async function readKeaOnce(path: string, text: string, readFile: (file: string) => Promise<FileText | undefined>): Promise<Pick<KeaFullRead, 'cleanup' | 'cleanupSkipped' | 'current'>> {
  // every row goes into a map of each address's last as it is parsed: with lease file cleanup off
  // Kea keeps every renewal, millions of rows for a few thousand addresses
  const rows = (file: string, t: string, onLease: (lease: KeaLease) => void): KeaRows => {
    try {
      return parseKeaFile(t, onLease);
    } catch (err) {
      throw readError(file, err);
    }
  };
  // the lease file's last row a step behind the others: KeaLeaseFollower.full keeps a last row without its newline apart
  const latest = new Map<number, KeaLease>();
  let last: KeaLease | undefined;
  const lastApart = (lease: KeaLease): void => {
    if (last !== undefined) absorbOne(latest, last);
    last = lease;
  };
  // Kea's new lease file before its header is whole: no rows yet
  const own = keaHeaderSoFar(text) ? parseKeaFile('') : rows(path, text, lastApart);
  const current: KeaRows = { ...own, leases: last === undefined ? [...latest.values()] : [...latest.values(), last] };
  const cleanupByIp = new Map<number, KeaLease>();
  const cleanupSkipped: SkippedEntry[] = [];
  const take = (file: string, read: FileText | undefined): void => {
    if (read === undefined) return;
    const r = rows(file, read.text, (lease) => absorbOne(cleanupByIp, lease));
    cleanupSkipped.push(...r.skipped.map((err) => ({ error: err.withSource(file), file: read.id })));
  };
  const done = (): Pick<KeaFullRead, 'cleanup' | 'cleanupSkipped' | 'current'> => ({ cleanup: [...cleanupByIp.values()], cleanupSkipped, current });
  const completed = await readFile(`${path}.completed`);
  if (completed !== undefined) {
    take(`${path}.completed`, completed);
    return done();
  }
  // oldest first, as Kea loads them: a later row of an address (a lease moved to another MAC since
  // the last cleanup, or released) wins over the older one
  const previous = await readFile(`${path}.2`);
  const copy = await readFile(`${path}.1`);
  take(`${path}.2`, previous);
  take(`${path}.1`, copy);
  return done();
}

/** The start of a Kea lease file's header, every column Kea has written in it. */
const KEA_HEADER_START = 'address,hwaddr';

/** A file without a whole first line yet: nothing, or a start of Kea's header (Kea writing it). */
function keaHeaderSoFar(text: string): boolean {
  const rest = text.trimStart();
  if (rest.includes('\n')) return false;
  const partial = rest.trimEnd();
  return KEA_HEADER_START.startsWith(partial) || partial.startsWith(KEA_HEADER_START);
}

/**
 * `auto` for a file read on disk: what its first line says, and Kea for a file without a whole
 * first line yet (Kea between starting its new lease file for a cleanup and writing its header)
 * when Kea's cleanup files are beside it. Taken for ISC, it read as no leases at all, every BMC gone
 * for a moment (the last view kept only for an error, not for an empty file).
 */
async function formatOnDisk(path: string, text: string): Promise<'isc' | 'kea'> {
  const detected = detectLeaseFormat(text);
  if (detected === 'kea' || !keaHeaderSoFar(text)) return detected;
  return (await cleanupStamp(path)) === KEA_CLEANUP_SUFFIXES.map(() => '-').join('|') ? detected : 'kea';
}

async function readParsed(path: string, format: LeaseFormatOption): Promise<ParsedLeases> {
  let text: string;
  try {
    text = await readLeaseText(path);
  } catch (err) {
    throw readError(path, err);
  }
  return (format === 'auto' ? await formatOnDisk(path, text) : format) === 'kea' ? readKea(path, text) : parseIscFile(path, text);
}

/** What a reader's read took in: the leases, and the entries left out that no read told before. */
export interface ReaderRead extends LeaseRead {
  parsed: ParsedLeases;
  /** entries (an ISC lease declaration, a Kea row) that cannot be read, each naming its file and line, told once per file (path and inode) and line */
  skipped: LeaseParseError[];
}

export interface LeaseReader {
  /** Reads the file (only what was appended, where it can) and parses it. Throws LeaseParseError (naming the file and line) or BmcError. */
  read(): Promise<ReaderRead>;
  /**
   * The error for the entry the file stops inside (an ISC declaration: the error a full parse
   * gives; a Kea row short of fields and without its newline), when the reads found it cut short
   * for `ms` or longer; it then counts as reported (see incompleteReported).
   */
  stuckIncomplete(ms: number): LeaseParseError | undefined;
  /** The last read found the entry stuckIncomplete gave still cut short. */
  incompleteReported(): boolean;
  /**
   * After reads that ended inside an entry kept the addresses they did not reach (cut-read.ts):
   * once that hold is over with no read since, what the last read read alone (once); else undefined.
   */
  releaseHeld(): ParsedLeases | undefined;
}

/**
 * The lease file's reader for a watcher. The file is followed (isc-follow.ts, kea-follow.ts):
 * after a full read, a change is read from where the last read stopped, as long as the file is
 * the same inode, not shorter and unchanged before that point (and, for Kea, its header and its
 * cleanup files unchanged); anything else is a full read.
 */
export function createLeaseReader(path: string, format: LeaseFormatOption, tailChunkBytes?: number, now: () => number = Date.now, cutHoldMs = CUT_READ_HOLD_MS): LeaseReader {
  const isc = new IscLeaseFollower(tailChunkBytes);
  const kea = new KeaLeaseFollower(tailChunkBytes);
  const hold = new CutReadHold(cutHoldMs, now);
  /** the declaration or row the file stops inside, by where it starts and how much of it there is, since when unchanged */
  let incomplete: { at: number; bytes: number; since: number; reported: boolean } | undefined;
  const noteIncomplete = (): void => {
    // only the follower of the file's format follows it (a full read resets both)
    const cut = isc.incompleteAt() ?? kea.incompleteAt();
    if (cut === undefined) incomplete = undefined;
    // still growing (written slowly): cut short only once it stays as it is
    else if (incomplete?.at !== cut.at || incomplete.bytes !== cut.bytes) incomplete = { ...cut, since: now(), reported: false };
  };
  const told = new SkippedOnce();
  const named = (errors: readonly LeaseParseError[], id: FileIdentity | undefined): SkippedEntry[] => errors.map((err) => ({ error: err.withSource(path), file: id }));
  /** `size`: the lease file's, as read */
  type Taken = LeaseRead & { parsed: ParsedLeases; skipped: SkippedEntry[]; size: number };
  const tail = async (): Promise<Taken | undefined> => {
    if (!isc.following() && !kea.following()) return undefined;
    // the cleanup files before the lease file: a cleanup starting after this moves the lease file
    // away, and what is read of it is what Kea wrote before the cleanup (the next read is full)
    const stamp = kea.following() ? await cleanupStamp(path) : undefined;
    const file = await open(path, 'r');
    try {
      const id = await file.stat({ bigint: true });
      const size = Number(id.size);
      checkSize(path, size);
      const read = stamp === undefined ? await isc.tail(file, id, size) : await kea.tail(file, id, size, stamp);
      return read && { mode: 'tail', bytes: read.bytes, parsed: read.parsed, skipped: named(read.skipped, id), size };
    } finally {
      await file.close();
    }
  };
  const readMain = async (file: string): Promise<KeaMain> => {
    const { bytes, id } = await readLeaseFile(file);
    return { text: bytes.toString('utf8'), bytes, id };
  };
  const full = async (): Promise<Taken> => {
    isc.reset();
    kea.reset();
    const { bytes, id } = await readLeaseFile(path);
    const text = bytes.toString('utf8');
    const actual = format === 'auto' ? await formatOnDisk(path, text) : format;
    if (actual === 'isc') {
      const { parsed, skipped } = isc.full(bytes, text, id, format === 'isc');
      return { mode: 'full', bytes: bytes.length, parsed, skipped: named(skipped, id), size: bytes.length };
    }
    const files = await readKeaFiles(path, { text, bytes, id }, readIfThere, readMain);
    const { parsed, skipped } = kea.full(files);
    // the lease file as last read (read again when a cleanup file changed meanwhile)
    return { mode: 'full', bytes: bytes.length, parsed, skipped: [...files.cleanupSkipped, ...named(skipped, files.id)], size: files.bytes?.length ?? bytes.length };
  };
  return {
    read: async () => {
      try {
        const read = (await tail()) ?? (await full());
        noteIncomplete();
        // a read that ends inside an entry keeps the addresses it did not reach (a file copied in place,
        // read mid-copy; an empty file is one a copy has just truncated: no DHCP server leaves its file so)
        const parsed = hold.take(read.parsed, read.size === 0 || isc.endsInsideDeclaration() || kea.endsInsideRow());
        return { mode: read.mode, bytes: read.bytes, parsed, skipped: told.fresh(read.skipped, read.mode === 'full') };
      } catch (err) {
        isc.reset();
        kea.reset();
        incomplete = undefined;
        throw readError(path, err);
      }
    },
    stuckIncomplete: (ms) => {
      if (incomplete === undefined || now() - incomplete.since < ms) return undefined;
      const err = (isc.incompleteError() ?? kea.incompleteError())?.withSource(path);
      if (err !== undefined) incomplete.reported = true;
      return err;
    },
    incompleteReported: () => incomplete?.reported === true,
    releaseHeld: () => hold.release(),
  };
}

/** Reads, parses and selects once. Throws LeaseParseError (naming the file and line) or BmcError. */
export async function readLeasesOnce(path: string, options: ReadLeasesOptions & { now?: Date } = {}): Promise<Lease[]> {
  const parsed = await readParsed(path, options.format ?? 'auto');
  return activeLeases(parsed, { now: options.now ?? new Date(), allowedCidrs: options.allowedCidrs, ignoreMacs: options.ignoreMacs });
}

function checkMs(name: string, value: number | undefined, fallback: number, min: number): number {
  const ms = value ?? fallback;
  if (!Number.isInteger(ms) || ms < min || ms > 3_600_000) {
    throw new BmcError('INVALID_ARGUMENT', `watchLeases: ${name} must be an integer from ${min} to 3600000, got ${value}`);
  }
  return ms;
}

/** the longest wait before a failed directory watch is tried again */
export const MAX_WATCH_RETRY_MS = 5 * 60_000;

const signatureOf = (s: Stats): string => `${s.ino}:${s.size}:${s.mtimeMs}`;
const errorSignature = (err: unknown): string => `error:${(err as NodeJS.ErrnoException | undefined)?.code ?? 'unknown'}`;

/**
 * Which error it is, for reporting each once: a lease file's by its file, line and problem, since
 * its text may name where the file ends now (a block never closed), which moves with every append;
 * a file too large by the file alone, since its text names its size, which grows with every write
 * (each change of a file that stays too large was told anew); any other by its text.
 */
export function errorKey(err: BmcError): string {
  if (err instanceof LeaseParseError) return `${err.source ?? ''}\0${err.line}\0${err.problem}`;
  if (err instanceof LeaseFileTooLargeError) return `${err.file}\0too large`;
  return err.message;
}

/** Watches `path`; options are checked here (BmcError INVALID_ARGUMENT), never later. */
export function watchLeases(path: string, options: WatchLeasesOptions): LeaseWatcher {
  const debounceMs = checkMs('debounceMs', options.debounceMs, 200, 0);
  const maxWaitMs = checkMs('maxWaitMs', options.maxWaitMs, 2000, 0);
  const pollMs = checkMs('pollMs', options.pollMs, 2000, 10);
  const cutHoldMs = checkMs('cutHoldMs', options.cutHoldMs, CUT_READ_HOLD_MS, 0);
  const format = options.format ?? 'auto';
  const now = options.now ?? (() => new Date());
  const select = { allowedCidrs: options.allowedCidrs, ignoreMacs: normalizeMacSet(options.ignoreMacs ?? []) };
  const { onChange, onError, onRecovered, onSkipped, onWatchError, signal } = options;
  const useFsWatch = options.fsWatch ?? true;
  const watchDirectory = options.watchDirectory ?? ((d: string, listener: (event: string, filename: string | null) => void) => fsWatch(d, { persistent: false }, listener));
  const dir = dirname(path);
  const name = basename(path);
  // a Kea cleanup renames the lease file and writes its cleanup files: each is a change
  const names = new Set([name, ...KEA_CLEANUP_SUFFIXES.map((suffix) => name + suffix)]);
  const files = [...names].map((n) => join(dir, n));
  const signatureNow = async (): Promise<string> => (await Promise.all(files.map((f) => stat(f).then(signatureOf, errorSignature)))).join('|');

  const reader = createLeaseReader(path, format, undefined, Date.now, cutHoldMs);

  let closed = false;
  let parsed: ParsedLeases | undefined;
  let view: Lease[] = [];
  let published = false;
  /** the earliest expiry in the view: until then, time alone cannot change it (leases only drop out) */
  let nextExpiry = Infinity;
  let signature = '';
  /** the last error reported, until a good read ends it; one with the same errorKey is not told again */
  let lastReported: BmcError | undefined;
  let reading = false;
  let again = false;
  let reads = 0;
  let debounceTimer: NodeJS.Timeout | undefined;
  let watcher: FSWatcher | undefined;
  /** after a failed directory watch: when it may be tried again, the wait after the next failure, and whether the failure was told */
  let watchRetryAt = 0;
  let watchRetryMs = pollMs;
  let watchFailureTold = false;

  const report = (err: BmcError): void => {
    if (closed || (lastReported !== undefined && errorKey(err) === errorKey(lastReported))) return;
    lastReported = err;
    try {
      onError?.(err);
    } catch {
      // a failing error handler must not stop the watcher
    }
  };

  /** `recovered`: the first good read after an error is told even when nothing changed (the error's effects end with it) */
  const publish = (recovered = false): void => {
    if (parsed === undefined || closed) return;
    const next = activeLeases(parsed, { now: now(), ...select });
    const diff = diffLeases(view, next);
    view = next;
    nextExpiry = next.reduce((min, l) => (l.expires === 'never' ? min : Math.min(min, l.expires.getTime())), Infinity);
    if (published && !recovered && diff.added.length + diff.removed.length + diff.changed.length === 0) return;
    published = true;
    try {
      onChange({ leases: next, ...diff });
    } catch (err) {
      report(new BmcError('INVALID_ARGUMENT', `lease watcher onChange callback threw: ${err instanceof Error ? err.message : String(err)}`, { cause: err }));
    }
  };

  const loadOnce = async (): Promise<void> => {
    signature = await signatureNow();
    const result = await reader.read().catch((err: unknown) => readError(path, err));
    if (closed) return;
    reads++;
    if (result instanceof BmcError) return report(result);
    const tell = (observer: () => void): void => {
      try {
        observer();
      } catch {
        // an observer's failure is not the file's
      }
    };
    tell(() => options.onRead?.({ mode: result.mode, bytes: result.bytes }));
    if (result.skipped.length > 0) tell(() => onSkipped?.(result.skipped));
    parsed = result.parsed;
    // a read that finds the declaration or row reported as cut short still cut short ends no error
    if (reader.incompleteReported()) return publish();
    const ended = lastReported;
    lastReported = undefined;
    if (ended !== undefined) tell(() => onRecovered?.(ended));
    publish(ended !== undefined);
  };

  const load = async (): Promise<void> => {
    if (reading) {
      again = true;
      return;
    }
    reading = true;
    try {
      do {
        again = false;
        await loadOnce();
      } while (again && !closed);
    } catch (err) {
      report(readError(path, err));
    } finally {
      reading = false;
    }
  };

  /** when the first change not yet read came */
  let pendingSince: number | undefined;
  const schedule = (): void => {
    if (closed) return;
    const at = Date.now();
    pendingSince ??= at;
    clearTimeout(debounceTimer);
    // a quiet gap of debounceMs, but no later than maxWaitMs after the first change
    debounceTimer = setTimeout(
      () => {
        pendingSince = undefined;
        void load();
      },
      Math.min(debounceMs, Math.max(0, pendingSince + maxWaitMs - at)),
    );
    debounceTimer.unref();
  };

  // a failed watch is no error of the lease file: told through onError, each poll's new attempt told
  // it again after every good read (which ends an error), each counted as a lease file error and
  // ended by the next read as a recovery, with an onChange for no change
  const watchFailed = (err: unknown): void => {
    watcher?.close();
    watcher = undefined;
    watchRetryAt = Date.now() + watchRetryMs;
    watchRetryMs = Math.min(watchRetryMs * 2, MAX_WATCH_RETRY_MS);
    if (closed || watchFailureTold) return;
    watchFailureTold = true;
    try {
      onWatchError?.(readError(dir, err, 'watch directory'));
    } catch {
      // a failing handler must not stop the watcher
    }
  };

  const startWatcher = (): void => {
    try {
      watcher = watchDirectory(dir, (_event, filename) => {
        if (filename === null || names.has(filename)) schedule();
      });
      watcher.on('error', watchFailed);
    } catch (err) {
      watchFailed(err);
    }
  };

  /** The poll's look at the directory watch: one still running since the last poll works (a later failure is told again); a failed one is tried again once its wait is over. */
  const checkWatcher = (): void => {
    if (!useFsWatch) return;
    if (watcher !== undefined) {
      watchRetryMs = pollMs;
      watchFailureTold = false;
    } else if (Date.now() >= watchRetryAt) {
      startWatcher();
    }
  };

  const poll = async (): Promise<void> => {
    const current = await signatureNow();
    if (closed) return;
    checkWatcher();
    if (current !== signature) return schedule();
    // dhcpd finishes a declaration at once, Kea a row: one still cut short a poll interval later,
    // the file unchanged, is an error (the server stopped mid-write, a block never closed)
    const stuck = reading ? undefined : reader.stuckIncomplete(pollMs);
    if (stuck !== undefined) report(stuck);
    // a file left cut short for good converges: once the hold is over, what it holds is the view
    const released = reading ? undefined : reader.releaseHeld();
    if (released !== undefined) {
      parsed = released;
      publish();
    }
    if (!reading && now().getTime() >= nextExpiry) publish(); // leases expire while the file stands still
  };
  const pollTimer = setInterval(() => void poll().catch((err: unknown) => report(readError(path, err))), pollMs);
  pollTimer.unref();

  const close = (): void => {
    if (closed) return;
    closed = true;
    clearTimeout(debounceTimer);
    clearInterval(pollTimer);
    watcher?.close();
    watcher = undefined;
    signal?.removeEventListener('abort', close);
  };

  if (signal?.aborted) {
    close();
  } else {
    signal?.addEventListener('abort', close, { once: true });
    if (useFsWatch) startWatcher();
    void load();
  }

  return { current: () => [...view], reads: () => reads, close };
}
