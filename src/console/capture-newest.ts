/**
 * Where the newest N bytes of a machine's captured output begin (layout: capture-files.ts), so
 * that a reader that shows only them (the history page) is sent only them: the segment is found
 * from the `.log` files' sizes, newest first, and the index record from that one segment's index
 * lines. The data of older segments is never read; their indexes only when a `since` falls in
 * them (to count what is left out of that range), and then only up to where it falls.
 */
import { open, stat, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { listSegments, machineDir, parseIndexLine, segmentName, type IndexRecord } from './capture-files.js';

/** A position in a machine's capture at which a history cursor can start: an index line of a segment. */
export interface HistoryStart {
  seq: number;
  /** byte offset of the index line in the segment's `.idx` (0 or just after a line feed) */
  idxPos: number;
}

export interface NewestStart {
  /** where a cursor starts for the newest bytes; undefined when the capture holds fewer (a cursor starts at the oldest) */
  from?: HistoryStart;
  /** bytes of output in the range (since `sinceMs`, if given) before `from`: what a reader starting there leaves out */
  leftOutBytes: number;
}

/** the most `newest` asks for: more than a machine keeps at most (1 GiB x 1000), so any larger is the whole range anyway */
export const MAX_NEWEST = 2 ** 40;

/** index bytes read at once: an index line is ~40 bytes, and a scan mostly stops within the first read */
const INDEX_CHUNK = 64 * 1024;

/**
 * Which segment the newest `newest` bytes begin in, and at which byte offset of its `.log`, given
 * the segments' sizes oldest first; undefined when all of them together hold fewer.
 */
export function cutOf(sizes: readonly number[], newest: number): { index: number; offset: number } | undefined {
  let need = newest;
  for (let i = sizes.length - 1; i >= 0; i--) {
    if (sizes[i]! >= need) return { index: i, offset: sizes[i]! - need };
    need -= sizes[i]!;
  }
  return undefined;
}

/**
 * Where a reader starts for the newest `newestBytes` of a machine's capture (at `sinceMs` when
 * that is later: the cursor skips what is older), and how much of the range it leaves out.
 * The start is the index line after the last data record that ends at or before the cut, so the
 * data from it covers the newest bytes (the record holding the cut is sent whole: at most one
 * flush more). Bytes in a `.log` without an index line (a write cut off by a crash, or one whose
 * line is still being written) count as covered, so the reader may get that much less.
 */
export async function newestStart(dir: string, machineId: string, newestBytes: number, sinceMs?: number): Promise<NewestStart> {
  const folder = machineDir(dir, machineId);
  const segments = await listSegments(dir, machineId);
  const sizes = await Promise.all(segments.map((s) => fileSize(join(folder, segmentName(s, 'log')))));
  const cut = cutOf(sizes, newestBytes);
  if (cut === undefined) return { leftOutBytes: 0 };
  const idx = (i: number) => join(folder, segmentName(segments[i]!, 'idx'));
  const start = await startBefore(idx(cut.index), cut.offset);
  const from = { seq: segments[cut.index]!, idxPos: start.idxPos };
  if (sinceMs === undefined) return { from, leftOutBytes: sizes.slice(0, cut.index).reduce((a, b) => a + b, 0) + start.offset };
  // the range's part before the start, walking back from it until the segment `since` falls in
  let leftOutBytes = 0;
  for (let i = cut.index; i >= 0; i--) {
    const limit = i === cut.index ? start.offset : sizes[i]!;
    const found = await firstSince(idx(i), sinceMs, limit);
    leftOutBytes += limit - found.offset;
    if (!found.whole) break;
  }
  return { from, leftOutBytes };
}

/** The index line after the last data record that ends at or before `cut`, and the `.log` offset where that record ends (0, 0: none). */
async function startBefore(idxPath: string, cut: number): Promise<{ idxPos: number; offset: number }> {
  let idxPos = 0;
  let offset = 0;
  for await (const line of indexLines(idxPath)) {
    const r = line.record;
    if (!r || 'gap' in r) continue;
    // records are in offset order: the first that reaches past the cut ends the search
    if (r.o + r.n > cut) break;
    idxPos = line.next;
    offset = r.o + r.n;
  }
  return { idxPos, offset };
}

/**
 * Where the data at or after `since` begins in a segment's `.log` before `limit` (`limit` when
 * none does), and whether all of its data before `limit` is in the range (whole: the range may
 * begin in the segment before).
 */
async function firstSince(idxPath: string, since: number, limit: number): Promise<{ offset: number; whole: boolean }> {
  let older = false;
  for await (const { record: r } of indexLines(idxPath)) {
    if (!r || 'gap' in r) continue;
    if (r.o >= limit) break;
    if (r.t >= since) return { offset: r.o, whole: !older };
    older = true;
  }
  return { offset: limit, whole: !older };
}

/** A segment's whole index lines from its start, each with the offset of the line after it; none when the index is gone. */
async function* indexLines(path: string): AsyncGenerator<{ record: IndexRecord | undefined; next: number }> {
  let fh: FileHandle;
  try {
    fh = await open(path, 'r');
  } catch {
    return; // rotated away: the cursor says so when it gets there
  }
  try {
    const buf = Buffer.alloc(INDEX_CHUNK);
    /** file offset of `rest`, the start of a line not yet whole */
    let at = 0;
    let rest = Buffer.alloc(0);
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, buf.length, at + rest.length);
      if (bytesRead === 0) return;
      const text = Buffer.concat([rest, buf.subarray(0, bytesRead)]);
      let from = 0;
      for (let nl = text.indexOf(10); nl >= 0; nl = text.indexOf(10, from)) {
        yield { record: parseIndexLine(text.toString('utf8', from, nl)), next: at + nl + 1 };
        from = nl + 1;
      }
      rest = text.subarray(from);
      at += from;
    }
  } finally {
    await fh.close();
  }
}

async function fileSize(path: string): Promise<number> {
  try {
    return (await stat(path)).size;
  } catch {
    return 0; // rotated away since the listing
  }
}
