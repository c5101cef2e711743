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
 * whole file. A declaration the appended bytes stop inside (dhcpd writing it) is left for the next
 * read, no error. A read that cannot continue where the last one stopped (another inode, a shorter
 * file, other bytes before the offset, an error in what was appended) says so, and the caller
 * reads the file whole, as before: a full read takes no declaration cut short.
 */
import type { BigIntStats } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { ipv4ToNumber } from '../net/cidr.js';
import { parseIscDeclarations, parseIscLeases } from './isc.js';
import { LeaseParseError, type IscLease, type ParsedLeases } from './types.js';

/** how many bytes before the offset must be unchanged for a read to continue there */
export const ISC_MARK_BYTES = 4096;
/** the tail is read in parts of this size */
export const ISC_TAIL_CHUNK_BYTES = 1 << 20;
/**
 * The longest declaration at the end of what was appended taken for one dhcpd is still writing: a
 * lease declaration is a few hundred bytes, dhcpd writes through a stdio buffer of a few KiB. A
 * longer one (a block never closed) is a full read, which reports it.
 */
export const ISC_MAX_INCOMPLETE_BYTES = 64 * 1024;

export type FileIdentity = Pick<BigIntStats, 'dev' | 'ino'>;

interface Followed {
  dev: bigint;
  ino: bigint;
  /** the bytes up to the end of the last complete declaration, which are taken in */
  offset: number;
  /** the line at `offset` */
  line: number;
  /** the (up to ISC_MARK_BYTES) bytes before `offset`, as read */
  mark: Buffer;
  /** the last declaration of each address (by number), in the order of those declarations */
  byIp: Map<number, IscLease>;
  /** the bytes after `offset` when they are a declaration cut short */
  incomplete: Buffer | undefined;
}

/** The bytes `text` was decoded from; undefined where decoding replaced invalid UTF-8 (its bytes are not known). */
function byteLengthOf(text: string): number | undefined {
  return text.includes('\uFFFD') ? undefined : Buffer.byteLength(text);
}

/** The last ISC_MARK_BYTES of `before` followed by `added`, copied (never a view of a file's whole buffer). */
function markAfter(before: Buffer, added: Buffer): Buffer {
  if (added.length >= ISC_MARK_BYTES) return Buffer.from(added.subarray(added.length - ISC_MARK_BYTES));
  return Buffer.concat([before.subarray(Math.max(0, before.length - (ISC_MARK_BYTES - added.length))), added]);
}

/** The text holds a whole first line before `end`: what it says (ISC or Kea) cannot change by appending. */
function firstLineBefore(text: string, end: number): boolean {
  const start = text.search(/\S/);
  if (start < 0 || start >= end) return false;
  const eol = text.indexOf('\n', start);
  return eol >= 0 && eol < end;
}

export class IscLeaseFollower {
  private followed: Followed | undefined;

  /** `chunkBytes`: the size of the parts the tail is read in (tests read in small parts) */
  constructor(private readonly chunkBytes = ISC_TAIL_CHUNK_BYTES) {}

  /** Forgets what was read: the next read is a full one. */
  reset(): void {
    this.followed = undefined;
  }

  /** The leases taken in so far: per address its last declaration, in file order. */
  parsed(): ParsedLeases {
    return { format: 'isc', leases: [...(this.followed?.byIp.values() ?? [])] };
  }

  /** Where the declaration the file stops inside begins, when it does. */
  incompleteAt(): number | undefined {
    return this.followed?.incomplete === undefined ? undefined : this.followed.offset;
  }

  /** The error a full parse gives for the declaration the file stops inside (for one that stays so). */
  incompleteError(): LeaseParseError | undefined {
    const f = this.followed;
    if (f?.incomplete === undefined) return undefined;
    try {
      parseIscLeases(f.incomplete.toString('utf8'), f.line);
    } catch (err) {
      if (err instanceof LeaseParseError) return err;
    }
    return undefined;
  }

  /**
   * Takes in a whole file: `bytes` as read, `text` its decoding, `id` the file read.
   * `formatFixed`: the format was configured, not detected from the first line.
   * Throws LeaseParseError as parseIscLeases does, for a declaration the file stops inside too:
   * a file read whole is one dhcpd wrote whole (its rewrite), or one cut short in another way (a
   * truncation), whose leases are not taken for the last good view.
   */
  full(bytes: Buffer, text: string, id: FileIdentity, formatFixed: boolean): ParsedLeases {
    this.followed = undefined;
    const d = parseIscDeclarations(text);
    const rest = text.slice(d.end);
    if (d.incomplete) parseIscLeases(rest, d.endLine); // throws the error a full parse names
    const byIp = new Map<number, IscLease>();
    absorb(byIp, d.leases);
    const restBytes = byteLengthOf(rest);
    const parsed: ParsedLeases = { format: 'isc', leases: [...byIp.values()] };
    // followed only after a declaration, where the bytes after the offset are known and appending cannot change the detected format
    if (d.end === 0 || restBytes === undefined || !(formatFixed || firstLineBefore(text, d.end))) return parsed;
    const offset = bytes.length - restBytes;
    this.followed = {
      dev: id.dev,
      ino: id.ino,
      offset,
      line: d.endLine,
      mark: Buffer.from(bytes.subarray(Math.max(0, offset - ISC_MARK_BYTES), offset)),
      byIp,
      incomplete: undefined,
    };
    return parsed;
  }

  /**
   * Takes in what was appended to `file` (of size `size`) since the last read; undefined when the
   * file has to be read whole (nothing followed, another file, shorter, other bytes before the
   * offset, an error or too long a declaration in the new bytes), with what was kept forgotten.
   * `bytes`: how many bytes were read.
   */
  async tail(file: FileHandle, id: FileIdentity, size: number): Promise<{ parsed: ParsedLeases; bytes: number } | undefined> {
    const f = this.followed;
    this.followed = undefined; // until this read succeeds: a failure in the middle leaves nothing half taken in
    if (f === undefined || f.dev !== id.dev || f.ino !== id.ino || size < f.offset) return undefined;
    let position = f.offset - f.mark.length;
    // the first part holds the mark whole
    const buffer = Buffer.allocUnsafe(Math.min(Math.max(this.chunkBytes, f.mark.length + 1), size - position));
    let carry: Buffer | undefined;
    let first = true;
    let bytes = 0;
    try {
      while (position < size) {
        const { bytesRead } = await file.read(buffer, 0, Math.min(buffer.length, size - position), position);
        if (bytesRead === 0) return undefined; // shorter than its size a moment ago: rewritten
        position += bytesRead;
        bytes += bytesRead;
        let piece = buffer.subarray(0, bytesRead);
        if (first) {
          if (!piece.subarray(0, f.mark.length).equals(f.mark)) return undefined;
          piece = piece.subarray(f.mark.length);
          first = false;
        }
        if (carry !== undefined) piece = Buffer.concat([carry, piece]);
        // decoded up to a line's end unless this is the last part: a part may end inside a character
        const last = position >= size;
        const cut = last ? piece.length : piece.lastIndexOf(0x0a) + 1;
        const text = piece.toString('utf8', 0, cut);
        const d = parseIscDeclarations(text, f.line);
        absorb(f.byIp, d.leases);
        const restBytes = byteLengthOf(text.slice(d.end));
        if (restBytes === undefined) return undefined;
        const consumed = cut - restBytes;
        f.mark = markAfter(f.mark, piece.subarray(0, consumed));
        f.offset += consumed;
        f.line = d.endLine;
        carry = Buffer.from(piece.subarray(consumed));
        if (carry.length > ISC_MAX_INCOMPLETE_BYTES) return undefined;
        f.incomplete = last && d.incomplete ? carry : undefined;
      }
    } catch (err) {
      if (err instanceof LeaseParseError) return undefined; // the full read reports it, with its line
      throw err;
    }
    this.followed = f;
    return { parsed: this.parsed(), bytes };
  }
}

/** Each lease replaces its address's earlier one and moves to the end: the order of last declarations is file order. */
function absorb(byIp: Map<number, IscLease>, leases: readonly IscLease[]): void {
  for (const lease of leases) {
    const key = ipv4ToNumber(lease.ip);
    byIp.delete(key);
    byIp.set(key, lease);
  }
}
