/**
 * Follows a lease file its DHCP server only appends to between its cleanups (dhcpd's hourly
 * rewrite, Kea's kea-lfc): once the file was read whole, a change is taken in by reading only the
 * bytes appended since. What the format does with those bytes (parse its entries, keep each
 * address's last one) is the format's (isc-follow.ts, kea-follow.ts); this is the file's side.
 *
 * What it keeps: the file's identity (device, inode), the offset after its last complete entry
 * (the bytes before it are taken in), the bytes just before that offset (a rewrite in place shows
 * there), optionally the bytes at the file's start (a header the entries are read by) and the
 * bytes after the offset when they are an entry cut short. A read that cannot continue where the
 * last one stopped (another inode, a shorter file, other bytes before the offset or at the start,
 * a file the appended bytes fail as a whole) says so, and the caller reads the file whole; an
 * entry in them that cannot be read is left out by the format, as a full read leaves it out.
 */
import type { FileHandle } from 'node:fs/promises';
import { ipv4ToNumber } from '../net/cidr.js';
import { LeaseParseError, type FileIdentity } from './types.js';

/** how many bytes before the offset must be unchanged for a read to continue there */
export const MARK_BYTES = 4096;
/** the tail is read in parts of this size */
export const TAIL_CHUNK_BYTES = 1 << 20;
/**
 * The longest entry at the end of what was appended taken for one the server is still writing: a
 * lease entry is a few hundred bytes, servers write through buffers of a few KiB. A longer one (a
 * block never closed) is a full read, which reports it.
 */
export const MAX_INCOMPLETE_BYTES = 64 * 1024;

export type { FileIdentity } from './types.js';

/** What a format took in of the text after the offset. */
export interface TakenTail {
  /** where the complete entries end in the text (what follows is taken in with the next bytes) */
  end: number;
  /** the line of `end` */
  endLine: number;
  /** the text after `end` is an entry cut short (rather than nothing, whitespace or comments) */
  incomplete: boolean;
}

/** A format's reading of the bytes appended to a followed file. */
export interface TailFormat {
  /**
   * Takes in the complete entries of `text`, the file from the offset on (`line`: the offset's
   * line). `last`: the text runs to the file's end; else it ends at a line's end and the entry
   * after its last complete one goes on in the next part. Throws LeaseParseError for what fails
   * the file as a whole (an entry that cannot be read is left out, not thrown).
   */
  take(text: string, line: number, last: boolean): TakenTail;
  /**
   * The entries end with a newline (a CSV row): the bytes after `end` are those after the last
   * newline, whatever characters they hold. Else they are counted from their text, which must then
   * be free of replacement characters (a file ending inside a UTF-8 character is read whole).
   */
  readonly lineEnded: boolean;
}

interface Followed {
  dev: bigint;
  ino: bigint;
  /** the bytes up to the end of the last complete entry, which are taken in */
  offset: number;
  /** the line at `offset` */
  line: number;
  /** the (up to MARK_BYTES) bytes before `offset`, as read */
  mark: Buffer;
  /** the bytes at the file's start that must stay as they were (a Kea header), empty for none */
  head: Buffer;
  /** the bytes after `offset` when they are an entry cut short */
  incomplete: Buffer | undefined;
}

/** The bytes `text` was decoded from; undefined where decoding replaced invalid UTF-8 (its bytes are not known). */
export function byteLengthOf(text: string): number | undefined {
  return text.includes('\uFFFD') ? undefined : Buffer.byteLength(text);
}

/** The bytes of `text.slice(end)`, `text` being `piece`'s first `cut` bytes decoded. */
function restBytes(text: string, end: number, piece: Buffer, cut: number, lineEnded: boolean): number | undefined {
  const rest = text.slice(end);
  const exact = byteLengthOf(rest);
  if (exact !== undefined || !lineEnded) return exact;
  // a rest that starts a line and holds no newline is the bytes after the last newline (one byte, 0x0a, in any decoding)
  if ((end > 0 && text[end - 1] !== '\n') || rest.includes('\n')) return undefined;
  return cut - (piece.lastIndexOf(0x0a, cut - 1) + 1);
}

/** The last MARK_BYTES of `before` followed by `added`, copied (never a view of a file's whole buffer). */
function markAfter(before: Buffer, added: Buffer): Buffer {
  if (added.length >= MARK_BYTES) return Buffer.from(added.subarray(added.length - MARK_BYTES));
  return Buffer.concat([before.subarray(Math.max(0, before.length - (MARK_BYTES - added.length))), added]);
}

export class FileFollower {
  private followed: Followed | undefined;

  /** `chunkBytes`: the size of the parts the tail is read in (tests read in small parts) */
  constructor(private readonly chunkBytes = TAIL_CHUNK_BYTES) {}

  /** Forgets the file: the next read is a full one. */
  reset(): void {
    this.followed = undefined;
  }

  following(): boolean {
    return this.followed !== undefined;
  }

  /** The entry the file stops inside, when it does: where it starts, its line and its bytes. */
  incomplete(): { at: number; line: number; bytes: Buffer } | undefined {
    const f = this.followed;
    return f?.incomplete === undefined ? undefined : { at: f.offset, line: f.line, bytes: f.incomplete };
  }

  /**
   * Follows the file from a full read of it: `bytes` as read, `id` the file read, `offset` and
   * `line` where its complete entries end, `headBytes` how many bytes at its start must stay as
   * they are for a read to continue (a header before `offset`), `incomplete` whether the bytes
   * after `offset` are an entry cut short (as a tail read finds it: incomplete()).
   */
  start(bytes: Buffer, id: FileIdentity, offset: number, line: number, headBytes = 0, incomplete = false): void {
    this.followed = {
      dev: id.dev,
      ino: id.ino,
      offset,
      line,
      mark: Buffer.from(bytes.subarray(Math.max(0, offset - MARK_BYTES), offset)),
      head: Buffer.from(bytes.subarray(0, Math.min(headBytes, offset))),
      incomplete: incomplete ? Buffer.from(bytes.subarray(offset)) : undefined,
    };
  }

  /**
   * Reads what was appended to `file` (of size `size`) since the last read and hands it to
   * `format`; returns how many bytes were read, or undefined when the file has to be read whole
   * (nothing followed, another file, shorter, other bytes before the offset or at the start, an
   * error or too long an entry in the new bytes), with the file forgotten. `format` has then taken
   * in some of the new entries: the caller forgets them too.
   */
  async tail(file: FileHandle, id: FileIdentity, size: number, format: TailFormat): Promise<number | undefined> {
    const f = this.followed;
    this.followed = undefined; // until this read succeeds: a failure in the middle leaves nothing half taken in
    if (f === undefined || f.dev !== id.dev || f.ino !== id.ino || size < f.offset) return undefined;
    let position = f.offset - f.mark.length;
    let bytes = 0;
    if (f.head.length > 0 && position > 0) {
      // the head is not inside the mark: read on its own
      const head = Buffer.allocUnsafe(f.head.length);
      const { bytesRead } = await file.read(head, 0, head.length, 0);
      bytes += bytesRead;
      if (!head.subarray(0, bytesRead).equals(f.head)) return undefined;
    }
    // the first part holds the mark whole
    const buffer = Buffer.allocUnsafe(Math.min(Math.max(this.chunkBytes, f.mark.length + 1), size - position));
    let carry: Buffer | undefined;
    let first = true;
    // nothing after the offset unless the last part says so (a file cut back to the offset reads no part)
    f.incomplete = undefined;
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
        const taken = format.take(text, f.line, last);
        const rest = restBytes(text, taken.end, piece, cut, format.lineEnded);
        if (rest === undefined) return undefined;
        const consumed = cut - rest;
        f.mark = markAfter(f.mark, piece.subarray(0, consumed));
        f.offset += consumed;
        f.line = taken.endLine;
        carry = Buffer.from(piece.subarray(consumed));
        if (carry.length > MAX_INCOMPLETE_BYTES) return undefined;
        f.incomplete = last && taken.incomplete ? carry : undefined;
      }
    } catch (err) {
      if (err instanceof LeaseParseError) return undefined; // the full read reports it, with its line
      throw err;
    }
    this.followed = f;
    return bytes;
  }
}

/**
 * Each lease replaces its address's earlier one and moves to the end: the order of the last
 * entries is the order they were read in (file order; for Kea, load order).
 */
export function absorb<L extends { ip: string }>(byIp: Map<number, L>, leases: readonly L[]): void {
  for (const lease of leases) absorbOne(byIp, lease);
}

/**
 * One lease taken in as absorb takes it: a full read hands each entry here as it is parsed, so it
 * holds one entry per address instead of every renewal the file keeps (~1.5 M rows in a 150 MiB
 * Kea file with lease file cleanup off, for a few thousand addresses).
 */
export function absorbOne<L extends { ip: string }>(byIp: Map<number, L>, lease: L): void {
  const key = ipv4ToNumber(lease.ip);
  byIp.delete(key);
  byIp.set(key, lease);
}
