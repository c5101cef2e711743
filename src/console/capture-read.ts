/**
 * Reading captured console output back (layout: capture-files.ts): a cursor that walks a
 * machine's segments from the oldest and returns what was appended since its last call, so one
 * code path serves a whole read, `--since`, and `--follow` (poll again). A segment rotated away
 * under a cursor is skipped with a gap. Also the tail for a new viewer's scrollback, the gap
 * markers shown to humans, and `grep`.
 */
import { open, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { MARKER_DELIMITER, MARKER_PREFIX, withoutDelimiters } from './capture-markers.js';
import { stripEscapes } from './capture-plain.js';
import { listMachines, listSegments, machineDir, parseIndexLine, segmentName } from './capture-files.js';
import type { HistoryStart } from './capture-newest.js';

export type HistoryEvent =
  | { kind: 'data'; t: number; data: Buffer }
  | { kind: 'gap'; t: number; what: 'start'; reason: string }
  | { kind: 'gap'; t: number; what: 'end' }
  | { kind: 'gap'; t: number; what: 'dropped'; bytes: number }
  | { kind: 'gap'; t: number; what: 'rotated'; bytes: number };

export interface HistoryCursor {
  /** events appended since the last call (all of them the first time), oldest first, at most about `maxBytes` of data */
  next(maxBytes?: number): Promise<HistoryEvent[]>;
}

const MAX_INDEX_READ = 1 << 20;

/**
 * `from`: where to start instead of the oldest segment's first line (capture-newest.ts
 * `newestStart`); a segment rotated away by then is said as for any cursor.
 */
export function historyCursor(dir: string, machineId: string, options: { sinceMs?: number; from?: HistoryStart } = {}): HistoryCursor {
  const folder = machineDir(dir, machineId);
  const since = options.sinceMs ?? 0;
  let seq: number | undefined = options.from?.seq;
  let idxPos = options.from?.idxPos ?? 0;

  async function readIndex(): Promise<string[]> {
    const path = join(folder, segmentName(seq!, 'idx'));
    let fh;
    try {
      fh = await open(path, 'r');
    } catch {
      return [];
    }
    try {
      const size = (await fh.stat()).size;
      if (size <= idxPos) return [];
      const buf = Buffer.alloc(Math.min(size - idxPos, MAX_INDEX_READ));
      const { bytesRead } = await fh.read(buf, 0, buf.length, idxPos);
      const text = buf.subarray(0, bytesRead).toString('utf8');
      const end = text.lastIndexOf('\n');
      if (end < 0) return [];
      // idxPos moves as the caller takes each line: it may stop within these
      return text.slice(0, end).split('\n');
    } finally {
      await fh.close();
    }
  }

  async function readBytes(s: number, offset: number, length: number): Promise<Buffer | undefined> {
    try {
      const fh = await open(join(folder, segmentName(s, 'log')), 'r');
      try {
        const buf = Buffer.alloc(length);
        const { bytesRead } = await fh.read(buf, 0, length, offset);
        return bytesRead === length ? buf : undefined;
      } finally {
        await fh.close();
      }
    } catch {
      return undefined;
    }
  }

  return {
    async next(maxBytes = 4 << 20) {
      const events: HistoryEvent[] = [];
      let bytes = 0;
      const segments = await listSegments(dir, machineId);
      if (segments.length === 0) return events;
      if (seq === undefined) seq = segments[0]!;
      if (!segments.includes(seq)) {
        // rotated away under us: say so, go on with the oldest that is left
        const nextSeq = segments.find((s) => s > seq!) ?? segments[0]!;
        events.push({ kind: 'gap', t: Date.now(), what: 'rotated', bytes: 0 });
        seq = nextSeq;
        idxPos = 0;
      }
      for (;;) {
        const lines = await readIndex();
        for (const line of lines) {
          // the rest of the index is the next call's
          if (bytes >= maxBytes) return events;
          idxPos += Buffer.byteLength(line) + 1;
          const r = parseIndexLine(line);
          if (!r || r.t < since) continue;
          if (!('gap' in r)) {
            const data = await readBytes(seq, r.o, r.n);
            if (data) events.push({ kind: 'data', t: r.t, data });
            bytes += r.n;
          } else if (r.gap === 'start') events.push({ kind: 'gap', t: r.t, what: 'start', reason: r.reason });
          else if (r.gap === 'end') events.push({ kind: 'gap', t: r.t, what: 'end' });
          else events.push({ kind: 'gap', t: r.t, what: 'dropped', bytes: r.n });
        }
        if (bytes >= maxBytes) return events;
        if (lines.length > 0) continue; // more of this index may have come, or the read was capped
        const later = segments.find((s) => s > seq!);
        if (later === undefined) return events;
        seq = later;
        idxPos = 0;
      }
    },
  };
}

/** Every event since `sinceMs`, in memory (tests and small reads; streams use the cursor). */
export async function readHistory(dir: string, machineId: string, options: { sinceMs?: number } = {}): Promise<HistoryEvent[]> {
  const cursor = historyCursor(dir, machineId, options);
  const all: HistoryEvent[] = [];
  for (;;) {
    const batch = await cursor.next();
    if (batch.length === 0) return all;
    all.push(...batch);
  }
}

/** The last `maxBytes` of output on disk, for a new viewer's scrollback. */
export async function tailBytes(dir: string, machineId: string, maxBytes: number): Promise<Buffer> {
  const folder = machineDir(dir, machineId);
  const parts: Buffer[] = [];
  let left = maxBytes;
  const segments = await listSegments(dir, machineId);
  for (let i = segments.length - 1; i >= 0 && left > 0; i--) {
    const path = join(folder, segmentName(segments[i]!, 'log'));
    try {
      const size = (await stat(path)).size;
      const take = Math.min(size, left);
      const fh = await open(path, 'r');
      try {
        const buf = Buffer.alloc(take);
        const { bytesRead } = await fh.read(buf, 0, take, size - take);
        parts.unshift(buf.subarray(0, bytesRead));
        left -= bytesRead;
      } finally {
        await fh.close();
      }
    } catch {
      // a segment rotated away while we read: what we have is the tail
    }
  }
  return Buffer.concat(parts);
}

// eslint-disable-next-line no-control-regex -- control characters are what is removed
const CONTROLS = /[\x00-\x1f\x7f]+/g;

/**
 * How a gap is shown between the bytes of a history, on a line of its own, enclosed in NULs
 * (capture-markers.ts: output cannot pass for it); the reason on one line.
 */
/** characters a latin1 marker cannot hold: encoded, each would keep only its low byte (U+0100 a NUL, the markers' delimiter) */
const BEYOND_LATIN1 = /[\u0100-\u{10ffff}]/gu;

export function gapMarker(e: HistoryEvent & { kind: 'gap' }): string {
  const at = new Date(e.t).toISOString();
  const what =
    e.what === 'start' ? `capture gap: ${e.reason.replace(CONTROLS, ' ').replace(BEYOND_LATIN1, '?')}` : e.what === 'end' ? 'capture resumed' : e.what === 'dropped' ? `${e.bytes} bytes dropped: the disk did not keep up` : 'older output was rotated away while reading';
  return `\r\n${MARKER_DELIMITER}${MARKER_PREFIX}${at}: ${what}]${MARKER_DELIMITER}\r\n`;
}

/** An event as the bytes of a rendered history: output without NULs (they enclose the markers), a gap as its marker. */
export function renderEvent(e: HistoryEvent): Buffer {
  return e.kind === 'data' ? withoutDelimiters(e.data) : Buffer.from(gapMarker(e), 'latin1');
}

export interface GrepMatch {
  machineId: string;
  /** when the line's first byte arrived (ms since the epoch) */
  t: number;
  /** the line as plain text; a longer one only its window around the first match, see `cut` */
  line: string;
  /** only on a line cut to its window: the characters left out before and after it */
  cut?: { before: number; after: number };
}

/**
 * What one grep returns at most. A tenant decides what its machine prints: a line without end
 * full of a common word would otherwise come back whole, match after match, from every such
 * machine (the review measured a 67 MB answer and 192 MiB of heap for 8 machines of 8 MiB).
 */
export const GREP_LIMITS = {
  /** matches of one machine */
  machineMatches: 1000,
  /** matches of one grep, all machines */
  matches: 10_000,
  /** NDJSON bytes of one grep's matches (grepLine), all machines */
  bytes: 4 << 20,
  /** characters of a line shown around its first match; the rest is left out and counted in `cut` */
  window: 512,
};

/** characters of a line without end searched at once: such a line is searched in pieces, each its own line */
const MAX_PIECE = 64 * 1024;
/** bytes of log a grep reads at once (it holds them until it has searched them) */
const GREP_READ_BYTES = 1 << 20;

/** A match as one line of the NDJSON answer (GET /v1/console/grep), newline included. */
export function grepLine(m: GrepMatch): string {
  return `${JSON.stringify(m)}\n`;
}

/** Why a grep stopped before it had read everything: a cap of GREP_LIMITS was reached. */
export interface GrepTruncated {
  truncated: string;
}

/** `plain` as a match: the window of `window` characters around the first `pattern` when it is longer. */
function matchOf(machineId: string, t: number, plain: string, at: number, patternLength: number, window: number): GrepMatch {
  if (plain.length <= window) return { machineId, t, line: plain };
  const start = Math.max(0, Math.min(at - Math.floor((window - patternLength) / 2), plain.length - window));
  return { machineId, t, line: plain.slice(start, start + window), cut: { before: start, after: plain.length - start - window } };
}

export interface GrepOptions {
  sinceMs?: number;
  /** the caller's authorisation; default every machine */
  mayOpen?: (id: string) => boolean;
  /** the grep stops at the next read or line when this is aborted (the client went away) */
  signal?: AbortSignal;
  limits?: Partial<typeof GREP_LIMITS>;
}

/**
 * Lines (plain text) that contain `pattern`, per machine, oldest first, one at a time as they are
 * found, within GREP_LIMITS; returns why it stopped early when a cap of all machines ended it, or
 * which machines' matches reached the per-machine bound.
 */
export async function* grepMatches(dir: string, pattern: string, options: GrepOptions = {}): AsyncGenerator<GrepMatch, GrepTruncated | undefined> {
  const limits = { ...GREP_LIMITS, ...options.limits };
  const window = Math.max(limits.window, pattern.length);
  const aborted = () => options.signal?.aborted === true;
  let matches = 0;
  let bytes = 0;
  /** machines whose matches reached limits.machineMatches: told at the end */
  const capped: string[] = [];
  for (const machineId of await listMachines(dir)) {
    if (aborted()) return undefined;
    if (options.mayOpen && !options.mayOpen(machineId)) continue;
    let line = '';
    let lineAt: number | undefined;
    let found = 0;
    /** the last pattern.length - 1 characters of a line without end's piece, searched again with the next piece: a match across the two is found */
    let carry = '';
    /** the line so far (or a piece of a line without end) as a match, or undefined; starts the next line */
    const finish = (piece = false): GrepMatch | undefined => {
      const plain = carry + stripEscapes(line).replace(/\r/g, '');
      carry = piece ? plain.slice(plain.length - (pattern.length - 1)) : '';
      const at = plain.indexOf(pattern);
      const t = lineAt;
      line = '';
      lineAt = undefined;
      return at >= 0 && t !== undefined ? matchOf(machineId, t, plain, at, pattern.length, window) : undefined;
    };
    const cursor = historyCursor(dir, machineId, options.sinceMs === undefined ? {} : { sinceMs: options.sinceMs });
    const lines = async function* (): AsyncGenerator<GrepMatch> {
      for (let batch = await cursor.next(GREP_READ_BYTES); batch.length > 0 && !aborted(); batch = await cursor.next(GREP_READ_BYTES)) {
        for (const e of batch) {
          if (e.kind !== 'data') {
            const m = line ? finish() : undefined;
            // a line without end stops at a gap: its last piece's tail joins nothing after it
            carry = '';
            if (m) yield m;
            continue;
          }
          const text = e.data.toString('latin1');
          let from = 0;
          for (let nl = text.indexOf('\n'); nl >= 0; nl = text.indexOf('\n', from)) {
            lineAt ??= e.t;
            line += text.slice(from, nl);
            from = nl + 1;
            const m = finish();
            if (m) yield m;
          }
          // a line without end is searched in pieces of MAX_PIECE characters
          while (from < text.length) {
            lineAt ??= e.t;
            const take = Math.min(text.length - from, MAX_PIECE - line.length);
            line += text.slice(from, from + take);
            from += take;
            if (line.length < MAX_PIECE) continue;
            const m = finish(true);
            if (m) yield m;
          }
        }
      }
      const m = line && !aborted() ? finish() : undefined;
      if (m) yield m;
    };
    for await (const m of lines()) {
      if (aborted()) return undefined;
      const size = Buffer.byteLength(grepLine(m));
      if (matches >= limits.matches || bytes + size > limits.bytes) {
        const cap = matches >= limits.matches ? `${limits.matches} matches` : `${limits.bytes} bytes`;
        return { truncated: `grep stopped at ${cap}, the most one grep returns: more lines match; narrow the pattern or the time range` };
      }
      matches++;
      bytes += size;
      yield m;
      if (++found >= limits.machineMatches) {
        capped.push(machineId);
        break;
      }
    }
  }
  return capped.length === 0 ? undefined : { truncated: machinesCapped(capped, limits.machineMatches) };
}

/** What the end of a grep says of the machines whose matches reached the per-machine bound (at most ten named). */
function machinesCapped(machines: readonly string[], bound: number): string {
  const named = machines.slice(0, 10).join(', ') + (machines.length > 10 ? ` and ${machines.length - 10} more` : '');
  return `${machines.length === 1 ? 'machine' : 'machines'} ${named}: ${bound} matching lines shown, the most one grep shows of a machine (more may match); narrow the pattern or the time range`;
}

/** Every match of `grepMatches` in memory (tests). */
export async function grepHistory(dir: string, pattern: string, options: GrepOptions = {}): Promise<GrepMatch[]> {
  const out: GrepMatch[] = [];
  const it = grepMatches(dir, pattern, options);
  for (let r = await it.next(); !r.done; r = await it.next()) out.push(r.value);
  return out;
}
