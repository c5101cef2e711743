/**
 * Follows a Kea memfile lease file as Kea writes it. Kea's memfile backend appends one CSV row per
 * lease change; kea-lfc (every lfc-interval, an hour by default) moves the lease file to `.1`,
 * starts a new one with only the header and merges `.2` and `.1` into `.2` (watch.ts
 * KEA_CLEANUP_SUFFIXES). Between cleanups the lease file only grows by rows and the cleanup files
 * stay as they are, so once all of them were read whole, a change is taken in by reading and
 * parsing only the rows appended to the lease file since (follow.ts reads them).
 *
 * What it keeps, besides what follow.ts keeps of the lease file (its header among it): the
 * cleanup files' stamp of that full read, and per address its last row in Kea's load order
 * (cleanup files, then the lease file): an address's state is its last entry and only those
 * entries take part in the selection (select.ts), so `activeLeases` over them is `activeLeases`
 * over all the files. A last row without its newline is left for the next read; one with all its
 * fields is taken in for this read only, as a full read takes it (parseKeaLeases); one short of
 * fields is kept as the row the file stops inside, which watch.ts reports when it stays so (Kea
 * stopped mid-row: its lease would be missing without a word). A change of a
 * cleanup file, another inode, a shorter file, other bytes before the offset or in the header, or
 * anything in the new rows that fails the file as a whole, is a full read; a row that cannot be
 * read is left out, as a full read leaves it out.
 */
import type { FileHandle } from 'node:fs/promises';
import { ipv4ToNumber } from '../net/cidr.js';
import { absorb, FileFollower, MAX_INCOMPLETE_BYTES, TAIL_CHUNK_BYTES, type FileIdentity, type TailFormat } from './follow.js';
import { KeaRowParser, type KeaRows } from './kea.js';
import { LeaseParseError, type KeaLease, type ParsedLeases, type SkippedEntry } from './types.js';

/** A full read of a Kea lease file and its cleanup files (watch.ts readKeaFiles). */
export interface KeaFullRead {
  /** each address's last row in the cleanup files, in Kea's load order (absorb) */
  cleanup: KeaLease[];
  /** the rows the cleanup files left out, each naming its file */
  cleanupSkipped: SkippedEntry[];
  /**
   * the rows of the lease file (parseKeaFile of `text`), reduced as they are read: each address's
   * last row before the file's last row (absorb), then the file's last row, which full() may keep
   * apart (a row without its newline); the same leases full() takes from every row
   */
  current: KeaRows;
  /** the lease file as read: its text, and its bytes and identity where known */
  text: string;
  bytes?: Buffer;
  id?: FileIdentity;
  /** the cleanup files' stamp, the same before and after they were read; undefined when they changed meanwhile */
  stamp: string | undefined;
}

export class KeaLeaseFollower {
  private readonly file: FileFollower;
  /** the last row of each address (by number), in the order of those rows */
  private byIp = new Map<number, KeaLease>();
  /** the rows after the header, by the header of the full read */
  private rows: KeaRowParser | undefined;
  /** the cleanup files' stamp of the full read */
  private stamp: string | undefined;
  /** the last row, without its newline but with all its fields: read as a full read reads it, and again with the bytes after it */
  private unterminated: KeaLease | undefined;
  /** the rows a tail read left out (they cannot be read) */
  private skipped: LeaseParseError[] = [];
  /** the full read found the header line not whole: being written (by Kea, or a copy) */
  private headerCut = false;
  /** the appended rows go into byIp; one without its newline into `unterminated`, or, short of fields, left as incomplete */
  private readonly format: TailFormat = {
    lineEnded: true,
    take: (text, line, last) => {
      const rows = (this.rows as KeaRowParser).parse(text, line);
      const end = text.lastIndexOf('\n') + 1;
      const unterminated = last && rows.rest === 'row' && rows.leases.at(-1)?.line === rows.nextLine ? rows.leases.pop() : undefined;
      if (unterminated !== undefined) this.unterminated = unterminated;
      absorb(this.byIp, rows.leases);
      // a row without its newline left out here is read again with the bytes after it (the reader tells it once)
      this.skipped.push(...rows.skipped);
      return { end, endLine: rows.nextLine, incomplete: last && rows.rest === 'cut' };
    },
  };

  /** `chunkBytes`: the size of the parts the tail is read in (tests read in small parts) */
  constructor(chunkBytes = TAIL_CHUNK_BYTES) {
    this.file = new FileFollower(chunkBytes);
  }

  /** Forgets what was read: the next read is a full one. */
  reset(): void {
    this.file.reset();
    this.byIp = new Map();
    this.rows = undefined;
    this.stamp = undefined;
    this.unterminated = undefined;
    this.headerCut = false;
  }

  /** A read can continue where the last one stopped (a tail read is worth trying). */
  following(): boolean {
    return this.file.following();
  }

  /** The leases taken in so far: per address its last row, in load order. */
  parsed(): ParsedLeases {
    const u = this.unterminated;
    if (u === undefined) return { format: 'kea', leases: [...this.byIp.values()] };
    // the row without its newline is its address's last, after every other
    const key = ipv4ToNumber(u.ip);
    const leases: KeaLease[] = [];
    for (const [ip, lease] of this.byIp) if (ip !== key) leases.push(lease);
    leases.push(u);
    return { format: 'kea', leases };
  }

  /** The last read ended inside a row: one short of fields, one with its fields but not yet its newline, or the header (Kea, or a copy, writing it). */
  endsInsideRow(): boolean {
    return this.headerCut || this.unterminated !== undefined || this.file.incomplete() !== undefined;
  }

  /** Where the row the file stops inside (short of fields, no newline) begins and how much of it there is, when it does. */
  incompleteAt(): { at: number; bytes: number } | undefined {
    const incomplete = this.file.incomplete();
    return incomplete === undefined ? undefined : { at: incomplete.at, bytes: incomplete.bytes.length };
  }

  /** The error for the row the file stops inside (for one that stays so). */
  incompleteError(): LeaseParseError | undefined {
    const incomplete = this.file.incomplete();
    if (incomplete === undefined || this.rows === undefined) return undefined;
    return this.rows.cutShort(incomplete.bytes.toString('utf8'), incomplete.line);
  }

  /**
   * Takes in a full read of the lease file and its cleanup files, and follows the lease file from
   * there when it can: its bytes and identity are known, the cleanup files did not change while
   * they were read, and its header line is whole (appending cannot change the columns).
   * `skipped`: the lease file's rows left out (they cannot be read).
   */
  full(read: KeaFullRead): { parsed: ParsedLeases; skipped: LeaseParseError[] } {
    this.reset();
    absorb(this.byIp, read.cleanup);
    const { bytes, id, stamp, text } = read;
    const header = text.slice(0, Math.max(0, text.indexOf('\n')));
    this.headerCut = /\S/.test(text) && !text.includes('\n');
    // a whole, not blank, first line: the rows were parsed by it (watch.ts skips a header still being written)
    const followable = bytes !== undefined && id !== undefined && stamp !== undefined && /\S/.test(header);
    const offset = bytes === undefined ? 0 : bytes.lastIndexOf(0x0a) + 1;
    const line = bytes === undefined ? 1 : newlines(bytes, offset) + 1;
    const current = [...read.current.leases];
    const skipped = [...read.current.skipped];
    // a last row without its newline is read again with what Kea writes after it
    if (bytes !== undefined && offset < bytes.length && current.at(-1)?.line === line) this.unterminated = current.pop();
    absorb(this.byIp, current);
    // a last row short of fields (left out of current) is the row the file stops inside, as a tail read finds it
    const cutShort = bytes !== undefined && read.current.rest === 'cut';
    // no row Kea writes is that long (a tail read gives up there too): the file ends in something
    // else (a power loss's zeros), left out at once instead of kept and parsed again every poll
    const notARow = cutShort && bytes.length - offset > MAX_INCOMPLETE_BYTES;
    if (notARow) skipped.push(new LeaseParseError(line, `${bytes.length - offset} bytes without a newline at the end of the file, more than a row holds (${MAX_INCOMPLETE_BYTES}): not a row Kea is writing`));
    if (followable) {
      this.rows = new KeaRowParser(header);
      this.stamp = stamp;
      this.file.start(bytes, id, offset, line, bytes.indexOf(0x0a) + 1, cutShort && !notARow);
    }
    return { parsed: this.parsed(), skipped };
  }

  /**
   * Takes in the rows appended to `file` (of size `size`) since the last read, when the cleanup
   * files' stamp is still `stamp`; undefined when the files have to be read whole, with what was
   * kept forgotten. `bytes`: how many bytes of the lease file were read; `skipped`: the appended
   * rows left out (they cannot be read).
   */
  async tail(file: FileHandle, id: FileIdentity, size: number, stamp: string): Promise<{ parsed: ParsedLeases; bytes: number; skipped: LeaseParseError[] } | undefined> {
    this.unterminated = undefined;
    this.skipped = [];
    const bytes = stamp === this.stamp ? await this.file.tail(file, id, size, this.format) : undefined;
    const skipped = this.skipped;
    this.skipped = [];
    if (bytes === undefined) {
      this.reset();
      return undefined;
    }
    return { parsed: this.parsed(), bytes, skipped };
  }
}

/** How many newlines the first `end` bytes hold. */
function newlines(bytes: Buffer, end: number): number {
  let count = 0;
  for (let at = bytes.indexOf(0x0a); at >= 0 && at < end; at = bytes.indexOf(0x0a, at + 1)) count++;
  return count;
}
