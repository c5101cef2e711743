/**
 * State files only this user may read (mode 0600), replaced atomically: written to a temporary
 * file beside it, then renamed over it, so a reader (or a crash) never sees half of it; and
 * written once per burst of changes (`burstWriter`), never on the event loop's hot path.
 */
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';

export async function writePrivateFile(file: string, text: string): Promise<void> {
  const tmp = `${file}.${process.pid}.tmp`;
  await mkdir(dirname(file), { recursive: true });
  await writeFile(tmp, text, { mode: 0o600 });
  await rename(tmp, file);
}

export interface BurstWriter {
  /** something changed: `write` runs `delayMs` later, once for every change until then (at once with 0, or after close) */
  changed(): void;
  /** writes what is pending now, after the write in flight; one write at a time */
  flush(): Promise<void>;
  /** flushes and stops the timer; later changes are written at once */
  close(): Promise<void>;
}

/** Schedules `write` for a burst of changes; it runs only while `pending()` says there is something to write. */
export function burstWriter(o: { delayMs: number; pending: () => boolean; write: () => Promise<void> }): BurstWriter {
  let timer: NodeJS.Timeout | undefined;
  let inFlight: Promise<void> | undefined;
  let closed = false;
  function flush(): Promise<void> {
    clearTimeout(timer);
    timer = undefined;
    const next = (async () => {
      await inFlight;
      if (o.pending()) await o.write();
    })();
    inFlight = next;
    return next;
  }
  return {
    changed() {
      if (closed || o.delayMs === 0) void flush();
      else timer ??= setTimeout(() => void flush(), o.delayMs);
    },
    flush,
    async close() {
      closed = true;
      await flush();
    },
  };
}
