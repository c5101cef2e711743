/**
 * One machine's captured console output on disk (layout: capture-files.ts). `append()` never
 * waits and never throws: bytes wait in a bounded buffer and are written by one flush at a time,
 * at most every `flushMs` (250 ms: at a boot storm's line speed that is ~2.9 KiB per write, and a
 * write through Node's thread pool costs ~10-30 µs of CPU whatever its size), so a slow disk never
 * holds up the BMC session that feeds it. What does
 * not fit in the buffer is dropped, and the drop is written to the index as a gap with its byte
 * count. A write error (disk full) drops that batch the same way and is logged once per streak.
 */
import { mkdir, open, rm, stat, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { BmcError } from '../errors.js';
import type { Logger } from '../log.js';
import { isSafeMachineId, listSegments, machineDir, segmentName, type IndexRecord } from './capture-files.js';

export interface MachineLogOptions {
  dir: string;
  machineId: string;
  fileBytes: number;
  files: number;
  logger: Logger;
  /** bytes waiting for the disk before output is dropped, default 1 MiB */
  maxBufferBytes?: number;
  /** how often waiting output is written, default 100 ms */
  flushMs?: number;
  now?: () => number;
  /** bytes written (counted once on disk) and dropped, for the metrics */
  onWritten?: (bytes: number) => void;
  onDropped?: (bytes: number) => void;
  /** test hook: runs before every disk write (a slow disk) */
  beforeWrite?: () => Promise<void>;
}

export interface MachineLog {
  readonly machineId: string;
  /** bytes of this machine's files on disk */
  readonly diskBytes: number;
  append(data: Buffer): void;
  /** nothing is captured from now on, because of `reason`; a second start without an end is ignored */
  gapStart(reason: string): void;
  /** capture resumes; the gap's length in seconds, 0 when there was none */
  gapEnd(): number;
  /** everything appended so far is on disk */
  flush(): Promise<void>;
  close(): Promise<void>;
}

type Op = { kind: 'data'; t: number; data: Buffer } | { kind: 'record'; record: IndexRecord };

interface Segment {
  seq: number;
  log: FileHandle;
  idx: FileHandle;
  size: number;
}

export async function openMachineLog(o: MachineLogOptions): Promise<MachineLog> {
  if (!isSafeMachineId(o.machineId)) throw new BmcError('INVALID_ARGUMENT', `machine id ${JSON.stringify(o.machineId.slice(0, 140))} cannot name a console log folder`);
  const now = o.now ?? Date.now;
  const maxBuffer = o.maxBufferBytes ?? 1 << 20;
  const flushMs = o.flushMs ?? 250;
  const log = o.logger.child({ module: 'console-capture', machineId: o.machineId });
  const folder = machineDir(o.dir, o.machineId);
  await mkdir(folder, { recursive: true, mode: 0o750 });
  const sizes = new Map<number, number>();
  for (const seq of await listSegments(o.dir, o.machineId)) sizes.set(seq, await fileSize(join(folder, segmentName(seq, 'log'))) + (await fileSize(join(folder, segmentName(seq, 'idx')))));
  const last = [...sizes.keys()].pop() ?? 0;
  let segment: Segment = await openSegment(folder, Math.max(1, last));
  let ops: Op[] = [];
  let buffered = 0;
  let dropped = 0;
  let gapSince: number | undefined;
  let timer: NodeJS.Timeout | undefined;
  let flushing: Promise<void> | undefined;
  let failing = false;
  let closed = false;

  function schedule(): void {
    if (timer || flushing || closed) return;
    timer = setTimeout(() => {
      timer = undefined;
      void flush();
    }, flushMs);
  }

  function push(op: Op): void {
    if (dropped > 0) {
      ops.push({ kind: 'record', record: { t: now(), gap: 'dropped', n: dropped } });
      dropped = 0;
    }
    ops.push(op);
    schedule();
  }

  function drop(bytes: number): void {
    dropped += bytes;
    o.onDropped?.(bytes);
  }

  async function writeOps(batch: Op[]): Promise<void> {
    let i = 0;
    while (i < batch.length) {
      const op = batch[i]!;
      if (op.kind === 'record') {
        await writeRecord(op.record);
        i++;
        continue;
      }
      // consecutive data ops go out as one write with the time of the first
      const parts: Buffer[] = [];
      for (; i < batch.length && batch[i]!.kind === 'data'; i++) parts.push((batch[i] as Op & { kind: 'data' }).data);
      await writeData(op.t, parts.length === 1 ? parts[0]! : Buffer.concat(parts));
    }
  }

  async function writeData(t: number, data: Buffer): Promise<void> {
    let at = 0;
    while (at < data.length) {
      if (segment.size >= o.fileBytes) await rotate();
      const take = Math.min(data.length - at, o.fileBytes - segment.size);
      await o.beforeWrite?.();
      await segment.log.write(data, at, take);
      const record: IndexRecord = { t, o: segment.size, n: take };
      segment.size += take;
      grow(take);
      o.onWritten?.(take);
      await writeRecord(record);
      at += take;
    }
  }

  async function writeRecord(record: IndexRecord): Promise<void> {
    const line = Buffer.from(`${JSON.stringify(record)}\n`);
    await segment.idx.write(line);
    grow(line.length);
  }

  function grow(bytes: number): void {
    sizes.set(segment.seq, (sizes.get(segment.seq) ?? 0) + bytes);
  }

  async function rotate(): Promise<void> {
    await Promise.all([segment.log.close(), segment.idx.close()]);
    segment = await openSegment(folder, segment.seq + 1);
    for (const seq of [...sizes.keys()]) {
      if (seq > segment.seq - o.files) continue;
      sizes.delete(seq);
      await Promise.all(['log', 'idx'].map((ext) => rm(join(folder, segmentName(seq, ext as 'log' | 'idx')), { force: true })));
    }
  }

  async function openSegment(into: string, seq: number): Promise<Segment> {
    const logFile = await open(join(into, segmentName(seq, 'log')), 'a', 0o640);
    const idxFile = await open(join(into, segmentName(seq, 'idx')), 'a', 0o640);
    const size = (await logFile.stat()).size;
    if (!sizes.has(seq)) sizes.set(seq, 0);
    return { seq, log: logFile, idx: idxFile, size };
  }

  function flush(): Promise<void> {
    if (timer) {
      clearTimeout(timer);
      timer = undefined;
    }
    flushing ??= (async () => {
      while (ops.length > 0 || dropped > 0) {
        if (ops.length === 0) {
          ops.push({ kind: 'record', record: { t: now(), gap: 'dropped', n: dropped } });
          dropped = 0;
        }
        const batch = ops;
        ops = [];
        const bytes = batch.reduce((n, op) => n + (op.kind === 'data' ? op.data.length : 0), 0);
        try {
          await writeOps(batch);
          if (failing) log.info('console log writable again');
          failing = false;
        } catch (err) {
          if (!failing) log.error({ err }, 'console log write failed; output is dropped until writes succeed');
          failing = true;
          drop(bytes);
          buffered -= bytes;
          break;
        }
        buffered -= bytes;
      }
    })().finally(() => {
      flushing = undefined;
      if (ops.length > 0) schedule();
    });
    return flushing;
  }

  return {
    machineId: o.machineId,
    get diskBytes() {
      let n = 0;
      for (const v of sizes.values()) n += v;
      return n;
    },
    append(data) {
      if (closed || data.length === 0) return;
      if (buffered + data.length > maxBuffer) {
        drop(data.length);
        return;
      }
      buffered += data.length;
      push({ kind: 'data', t: now(), data });
    },
    gapStart(reason) {
      if (closed || gapSince !== undefined) return;
      gapSince = now();
      push({ kind: 'record', record: { t: gapSince, gap: 'start', reason: reason.slice(0, 300) } });
    },
    gapEnd() {
      if (closed || gapSince === undefined) return 0;
      const t = now();
      const seconds = (t - gapSince) / 1000;
      gapSince = undefined;
      push({ kind: 'record', record: { t, gap: 'end' } });
      return seconds;
    },
    async flush() {
      while (flushing || ops.length > 0 || dropped > 0) await flush();
    },
    async close() {
      if (closed) return;
      while (flushing || ops.length > 0) await flush();
      closed = true;
      if (timer) clearTimeout(timer);
      await Promise.all([segment.log.close(), segment.idx.close()]);
    },
  };
}

async function fileSize(path: string): Promise<number> {
  try {
    return (await stat(path)).size;
  } catch {
    return 0;
  }
}
