/**
 * Follows an ISC dhcpd.leases file as dhcpd writes it. Between its rewrites (a new file renamed
 * over the old one, hourly) dhcpd only appends lease declarations, so once the file was read whole,
 * a change is taken in by reading and parsing only the bytes appended since: with 2,000 BMCs
 * renewing every 5 min the file holds ~24,000 declarations before a rewrite, and parsing it whole
 * blocked the event loop for ~200 ms on every change.
 *
 * What it keeps: the file's identity (device, inode), the offset after its last complete
 * declaration, the bytes just before that offset (a rewrite in place shows there) and, per address,
 * its last declaration in file order: an address's state is its last entry and only those entries
 * take part in the selection (select.ts), so `activeLeases` over them is `activeLeases` over the
 * whole file. A declaration the file stops inside (dhcpd writing it) is left for the next read, no
 * error, whether the read was a tail or a full one (dhcpd may be mid-write when the daemon starts).
 * A read that cannot continue where the last one stopped (another inode, a shorter file, other
 * bytes before the offset, a `}` closing nothing in what was appended) says so, and the caller
 * reads the file whole. The file's side (identity, offset, mark, reading the tail in parts) is
 * follow.ts's, shared with Kea's follower.
 */
import type { FileHandle } from 'node:fs/promises';
import { absorb, absorbOne, byteLengthOf, FileFollower, MARK_BYTES, MAX_INCOMPLETE_BYTES, TAIL_CHUNK_BYTES, type FileIdentity, type TailFormat } from './follow.js';
import { dhcpv6File, parseIscDeclarations } from './isc.js';
import { LeaseParseError, type IscLease, type ParsedLeases } from './types.js';

/** how many bytes before the offset must be unchanged for a read to continue there */
export const ISC_MARK_BYTES = MARK_BYTES;
/** the tail is read in parts of this size */
export const ISC_TAIL_CHUNK_BYTES = TAIL_CHUNK_BYTES;
/** the longest declaration at the end of what was appended taken for one dhcpd is still writing (follow.ts) */
export const ISC_MAX_INCOMPLETE_BYTES = MAX_INCOMPLETE_BYTES;

export type { FileIdentity } from './follow.js';

/** The text holds a whole first line: what it says (ISC or Kea) cannot change by appending. */
function firstLineWhole(text: string): boolean {
  const start = text.search(/\S/);
  return start >= 0 && text.indexOf('\n', start) >= 0;
}

/** The index in `bytes` of `end` in `text` (their decoding), where the bytes on one side of it decode exactly. */
function byteOffsetOf(bytes: Buffer, text: string, end: number): number | undefined {
  const rest = byteLengthOf(text.slice(end));
  return rest !== undefined ? bytes.length - rest : byteLengthOf(text.slice(0, end));
}

export class IscLeaseFollower {
  private readonly file: FileFollower;
  /** the last declaration of each address (by number), in the order of those declarations */
  private byIp = new Map<number, IscLease>();
  /** the declarations a tail read left out (they cannot be read) */
  private skipped: LeaseParseError[] = [];
  /** the last full read ended inside a declaration it could not wait for (a file not followed: its first line not whole yet) */
  private cutUnfollowed = false;
  /** the appended bytes' declarations go into byIp, those that cannot be read into `skipped` */
  private readonly format: TailFormat = {
    lineEnded: false,
    take: (text, line) => {
      const d = parseIscDeclarations(text, line);
      // (the full read it falls back to reports it)
      const v6 = dhcpv6File(d, this.byIp.size);
      if (v6 !== undefined) throw v6;
      absorb(this.byIp, d.leases);
      this.skipped.push(...d.skipped);
      return { end: d.end, endLine: d.endLine, incomplete: d.cut !== undefined };
    },
  };

  /** `chunkBytes`: the size of the parts the tail is read in (tests read in small parts) */
  constructor(chunkBytes = ISC_TAIL_CHUNK_BYTES) {
    this.file = new FileFollower(chunkBytes);
  }

  /** Forgets what was read: the next read is a full one. */
  reset(): void {
    this.file.reset();
    this.byIp = new Map();
    this.cutUnfollowed = false;
  }

  /** The last read ended inside a declaration: one left for the next read, or one a file not followed stops inside. */
  endsInsideDeclaration(): boolean {
    return this.cutUnfollowed || this.file.incomplete() !== undefined;
  }

  /** A read can continue where the last one stopped (a tail read is worth trying). */
  following(): boolean {
    return this.file.following();
  }

  /** The leases taken in so far: per address its last declaration, in file order. */
  parsed(): ParsedLeases {
    return { format: 'isc', leases: [...this.byIp.values()] };
  }

  /** Where the declaration the file stops inside begins and how much of it there is, when it does. */
  incompleteAt(): { at: number; bytes: number } | undefined {
    const incomplete = this.file.incomplete();
    return incomplete === undefined ? undefined : { at: incomplete.at, bytes: incomplete.bytes.length };
  }

  /** The error a full parse gives for the declaration the file stops inside (for one that stays so). */
  incompleteError(): LeaseParseError | undefined {
    const incomplete = this.file.incomplete();
    if (incomplete === undefined) return undefined;
    try {
      return parseIscDeclarations(incomplete.bytes.toString('utf8'), incomplete.line).cut;
    } catch (err) {
      if (err instanceof LeaseParseError) return err;
      throw err;
    }
  }

  /**
   * Takes in a whole file: `bytes` as read, `text` its decoding, `id` the file read; `skipped`: the
   * lease declarations left out (they cannot be read).
   * `formatFixed`: the format was configured, not detected from the first line.
   * A declaration the file stops inside is left for the next read, as a tail read leaves it, and
   * reported by the reader once it stays so (stuckIncomplete): dhcpd may be writing it as the file is
   * read (at start, or just after its rewrite). One that cannot be waited for (the file cannot be
   * followed, or it is longer than any declaration being written) is left out at once.
   * Throws LeaseParseError only for a file that cannot be read as a whole.
   */
  full(bytes: Buffer, text: string, id: FileIdentity, formatFixed: boolean): { parsed: ParsedLeases; skipped: LeaseParseError[] } {
    this.reset();
    // each declaration into byIp as it is read: the file holds every renewal since dhcpd's last rewrite
    const d = parseIscDeclarations(text, 1, (lease) => absorbOne(this.byIp, lease));
    const v6 = dhcpv6File(d, this.byIp.size);
    if (v6 !== undefined) throw v6;
    const skipped = [...d.skipped];
    const offset = byteOffsetOf(bytes, text, d.end);
    // followed where the bytes after the offset are known and appending cannot change the detected format
    const followable = offset !== undefined && (formatFixed || firstLineWhole(text));
    const waiting = d.cut !== undefined && followable && bytes.length - offset <= MAX_INCOMPLETE_BYTES;
    if (d.cut !== undefined && !waiting) skipped.push(d.cut);
    this.cutUnfollowed = d.cut !== undefined && !followable;
    if (followable) this.file.start(bytes, id, offset, d.endLine, 0, waiting);
    return { parsed: this.parsed(), skipped };
  }

  /**
   * Takes in what was appended to `file` (of size `size`) since the last read; undefined when the
   * file has to be read whole (nothing followed, another file, shorter, other bytes before the
   * offset, a `}` closing nothing or too long a declaration in the new bytes), with what was kept
   * forgotten; a declaration that cannot be read is left out, as a full read leaves it out.
   * `bytes`: how many bytes were read; `skipped`: the appended lease declarations left out (they
   * cannot be read).
   */
  async tail(file: FileHandle, id: FileIdentity, size: number): Promise<{ parsed: ParsedLeases; bytes: number; skipped: LeaseParseError[] } | undefined> {
    this.skipped = [];
    const bytes = await this.file.tail(file, id, size, this.format);
    const skipped = this.skipped;
    this.skipped = [];
    if (bytes === undefined) {
      this.reset();
      return undefined;
    }
    return { parsed: this.parsed(), bytes, skipped };
  }
}
