/**
 * The on-disk layout of captured console output, shared by the writer (capture-store.ts) and
 * the readers (capture-read.ts):
 *
 *   <dir>/<machine id>/00000001.log   raw bytes as the BMC sent them, never changed
 *   <dir>/<machine id>/00000001.idx   NDJSON, one line per flush (at most every 100 ms):
 *       {"t":1764731234567,"o":0,"n":512}               n bytes at byte offset o of the .log, received at t (ms since the epoch)
 *       {"t":...,"gap":"start","reason":"BMC connection lost"}   nothing is captured from t on
 *       {"t":...,"gap":"end"}                           capture resumed at t
 *       {"t":...,"gap":"dropped","n":4096}              n bytes were dropped (the disk did not keep up)
 *
 * Segments are numbered upwards; the writer keeps the newest `files` of them. The index line of
 * a write is appended after its bytes, so a reader that sees an index line can read its bytes.
 */
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * Set (to `none`) on the listener's 404 for the history of a machine it holds no capture of, so
 * that `console log --address` tells that apart from a listener without history routes (capture off).
 */
export const NO_CAPTURE_HEADER = 'x-metal-bmc-capture';

/** Machine ids as file names: what a UUID, a host name or a metal-api id needs, nothing that walks paths. */
const SAFE_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;

export function isSafeMachineId(id: string): boolean {
  return SAFE_ID.test(id) && !id.includes('..');
}

export type IndexRecord =
  | { t: number; o: number; n: number }
  | { t: number; gap: 'start'; reason: string }
  | { t: number; gap: 'end' }
  | { t: number; gap: 'dropped'; n: number };

export const segmentName = (seq: number, ext: 'log' | 'idx') => `${String(seq).padStart(8, '0')}.${ext}`;

export function machineDir(dir: string, machineId: string): string {
  return join(dir, machineId);
}

/** Segment numbers of a machine's folder, oldest first; none when the folder does not exist. */
export async function listSegments(dir: string, machineId: string): Promise<number[]> {
  let names: string[];
  try {
    names = await readdir(machineDir(dir, machineId));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  return names
    .map((n) => /^(\d{8})\.log$/.exec(n)?.[1])
    .filter((n): n is string => n !== undefined)
    .map(Number)
    .sort((a, b) => a - b);
}

/** Machine ids with captured output under `dir`. */
export async function listMachines(dir: string): Promise<string[]> {
  try {
    const entries = await readdir(dir, { withFileTypes: true });
    return entries.filter((e) => e.isDirectory() && isSafeMachineId(e.name)).map((e) => e.name).sort();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}

/** One index line, or undefined when it is not one (a torn or foreign line is skipped, not fatal). */
export function parseIndexLine(line: string): IndexRecord | undefined {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    return undefined;
  }
  if (typeof v !== 'object' || v === null) return undefined;
  const r = v as Record<string, unknown>;
  const int = (x: unknown) => typeof x === 'number' && Number.isSafeInteger(x) && x >= 0;
  if (!int(r.t)) return undefined;
  const t = r.t as number;
  if (r.gap === undefined) return int(r.o) && int(r.n) ? { t, o: r.o as number, n: r.n as number } : undefined;
  if (r.gap === 'start') return { t, gap: 'start', reason: typeof r.reason === 'string' ? r.reason : 'unknown' };
  if (r.gap === 'end') return { t, gap: 'end' };
  if (r.gap === 'dropped' && int(r.n)) return { t, gap: 'dropped', n: r.n as number };
  return undefined;
}
