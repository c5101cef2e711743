/**
 * The position this daemon got to in the machine-event stream, kept in a small state file
 * (`<state dir>/machine-event-position.json`) so that it outlives a restart. The bus reads it when
 * it has to create the durable consumer: a consumer created again (deleted by hand, lost with a
 * server's state) then starts after the last event settled here instead of delivering the whole
 * retention once more. The file is written as events settle, but once per burst of them
 * (temp file + rename, mode 0600: `stateFileWriter`), never synchronously per event; `close()` writes
 * what is pending. Structurally the bus's `PositionStore` (commands/ does not import bus/).
 */
import { readFileSync } from 'node:fs';
import type { Logger } from '../log.js';
import { stateFileWriter } from '../outband/private-file.js';

/** A stream sequence settled here, and which stream it belongs to (its name and creation time). */
export interface EventPosition {
  stream: string;
  created: string;
  seq: number;
}

interface PositionFile extends EventPosition {
  version: 1;
  /** when it was written (for the operator) */
  savedAt: string;
}

export interface EventPositionStore {
  readonly file: string;
  /** the position saved last: what the file held at open, then what `save` was told */
  load(): EventPosition | undefined;
  /** remembers the position at once and writes it with the next burst */
  save(position: EventPosition): void;
  /** writes what is pending now */
  flush(): Promise<void>;
  /** flushes; later saves are written at once */
  close(): Promise<void>;
}

export interface EventPositionOptions {
  file: string;
  logger: Logger;
  /** how long changes gather before one write (default 1 s) */
  writeDelayMs?: number;
}

function isPosition(v: unknown): v is EventPosition {
  const p = v as Partial<EventPosition> | null;
  return typeof p === 'object' && p !== null && typeof p.stream === 'string' && typeof p.created === 'string' && Number.isSafeInteger(p.seq) && p.seq! >= 0;
}

/** What the file holds; undefined when it is missing, or unreadable (logged: the consumer then starts from the stream's first event, as on a first start). */
function readPosition(file: string, logger: Logger): EventPosition | undefined {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') logger.error({ err, file }, 'cannot read the machine event position file; starting without it');
    return undefined;
  }
  try {
    const parsed = JSON.parse(text) as unknown;
    if (isPosition(parsed)) return { stream: parsed.stream, created: parsed.created, seq: parsed.seq };
  } catch {
    // reported below, as a file of the wrong shape
  }
  logger.error({ file, bytes: text.length }, 'machine event position file is not readable; starting without it (it is rewritten as events settle)');
  return undefined;
}

export function openEventPositionStore(o: EventPositionOptions): EventPositionStore {
  let position = readPosition(o.file, o.logger);
  const writer = stateFileWriter({
    file: o.file,
    delayMs: o.writeDelayMs ?? 1000,
    text: () => (position === undefined ? undefined : JSON.stringify({ version: 1, ...position, savedAt: new Date().toISOString() } satisfies PositionFile)),
    // kept in memory; written with the next change or at close
    failure: 'cannot write the machine event position file; the position is kept in memory',
    logger: o.logger,
  });

  return {
    file: o.file,
    load: () => position,
    save(next) {
      position = { stream: next.stream, created: next.created, seq: next.seq };
      writer.changed();
    },
    flush: () => writer.flush(),
    close: () => writer.close(),
  };
}
