/**
 * Reading captured console output back (layout: capture-files.ts): a cursor that walks a
 * machine's segments from the oldest and returns what was appended since its last call, so one
 * code path serves a whole read, `--since`, and `--follow` (poll again). A segment rotated away
 * under a cursor is skipped with a gap. Also the tail for a new viewer's scrollback, the gap
 * markers shown to humans, and `grep`.
 */
import { open, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { stripEscapes } from './capture-plain.js';
import { listMachines, listSegments, machineDir, parseIndexLine, segmentName } from './capture-files.js';

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

export function historyCursor(dir: string, machineId: string, options: { sinceMs?: number } = {}): HistoryCursor {
  const folder = machineDir(dir, machineId);
  const since = options.sinceMs ?? 0;
  let seq: number | undefined;
  let idxPos = 0;

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
      idxPos += Buffer.byteLength(text.slice(0, end + 1));
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

/** How a gap is shown between the bytes of a history, on a line of its own. */
export function gapMarker(e: HistoryEvent & { kind: 'gap' }): string {
  const at = new Date(e.t).toISOString();
  const what =
    e.what === 'start' ? `capture gap: ${e.reason}` : e.what === 'end' ? 'capture resumed' : e.what === 'dropped' ? `${e.bytes} bytes dropped: the disk did not keep up` : 'older output was rotated away while reading';
  return `\r\n[metal-bmc ${at}: ${what}]\r\n`;
}

export function renderEvent(e: HistoryEvent): Buffer {
  return e.kind === 'data' ? e.data : Buffer.from(gapMarker(e), 'latin1');
}

export interface GrepMatch {
  machineId: string;
  /** when the line's first byte arrived (ms since the epoch) */
  t: number;
  line: string;
}

/**
 * Lines (plain text) that contain `pattern`, per machine, oldest first; at most `maxMatches`
 * per machine. `machines` limits the search (the caller's authorisation); default every machine.
 */
export async function grepHistory(dir: string, pattern: string, options: { sinceMs?: number; mayOpen?: (id: string) => boolean; maxMatches?: number } = {}): Promise<GrepMatch[]> {
  const maxMatches = options.maxMatches ?? 1000;
  const out: GrepMatch[] = [];
  for (const machineId of await listMachines(dir)) {
    if (options.mayOpen && !options.mayOpen(machineId)) continue;
    let line = '';
    let lineAt: number | undefined;
    let found = 0;
    const finish = () => {
      const plain = stripEscapes(line).replace(/\r/g, '');
      if (plain.includes(pattern) && found < maxMatches && lineAt !== undefined) {
        out.push({ machineId, t: lineAt, line: plain });
        found++;
      }
      line = '';
      lineAt = undefined;
    };
    const cursor = historyCursor(dir, machineId, options.sinceMs === undefined ? {} : { sinceMs: options.sinceMs });
    for (let batch = await cursor.next(); batch.length > 0; batch = await cursor.next()) for (const e of batch) {
      if (e.kind !== 'data') {
        if (line) finish();
        continue;
      }
      const text = e.data.toString('latin1');
      let from = 0;
      for (let nl = text.indexOf('\n'); nl >= 0; nl = text.indexOf('\n', from)) {
        lineAt ??= e.t;
        line += text.slice(from, nl);
        finish();
        from = nl + 1;
      }
      if (from < text.length) {
        lineAt ??= e.t;
        line += text.slice(from);
        if (line.length > 64 * 1024) finish(); // a line without end is searched in pieces
      }
    }
    if (line) finish();
  }
  return out;
}
