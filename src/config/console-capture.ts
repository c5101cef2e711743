/**
 * METAL_BMC_CONSOLE_LOG_SIZE: how much console history is kept per machine, as
 * `<size> x <files>` (`8MiB x 4`, `512KiB x 2`, `1048576 x 3`; `×` works as `x`). Units: B,
 * KiB, MiB, GiB (k, M, G as their binary multiples). A file is at least 4 KiB, at most 1 GiB;
 * 1 to 1000 files.
 */
export interface LogSize {
  fileBytes: number;
  files: number;
}

const UNITS: Record<string, number> = { '': 1, b: 1, k: 1024, kb: 1024, kib: 1024, m: 1 << 20, mb: 1 << 20, mib: 1 << 20, g: 1 << 30, gb: 1 << 30, gib: 1 << 30 };
export const MIN_LOG_FILE_BYTES = 4096;
export const MAX_LOG_FILE_BYTES = 1 << 30;
export const MAX_LOG_FILES = 1000;

/** Bytes of `digits` in `unit` (B, KiB, MiB, GiB; k, M, G and kB, MB, GB as their binary multiples), or undefined for an unknown unit. */
export function bytesOf(digits: string, unit: string): number | undefined {
  const lower = unit.toLowerCase();
  return Object.hasOwn(UNITS, lower) ? Number(digits) * UNITS[lower]! : undefined;
}

/** The size, or a sentence saying what is wrong. */
export function parseLogSize(value: string): LogSize | string {
  const m = /^\s*(\d{1,10})\s*([a-z]*)\s*[x×*]\s*(\d{1,4})\s*$/i.exec(value);
  if (!m) return `${JSON.stringify(value.slice(0, 60))} is not <size> x <files> (e.g. 8MiB x 4)`;
  const fileBytes = bytesOf(m[1]!, m[2]!);
  if (fileBytes === undefined) return `unknown unit ${JSON.stringify(m[2])} (B, KiB, MiB, GiB)`;
  const files = Number(m[3]);
  if (fileBytes < MIN_LOG_FILE_BYTES || fileBytes > MAX_LOG_FILE_BYTES) return `a file must hold 4KiB to 1GiB, got ${fileBytes} bytes`;
  if (files < 1 || files > MAX_LOG_FILES) return `1 to ${MAX_LOG_FILES} files, got ${files}`;
  return { fileBytes, files };
}
