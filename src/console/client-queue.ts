/**
 * One console client's output queue. Output goes straight to the client while its port takes
 * it; once `send` says the port is full, output waits here until the port has `drain`ed, at
 * most `maxBytes` of it. Past that the client is too slow: `push` says so and the session drops
 * the client, so one slow reader never holds up the others or grows memory without bound.
 */
export interface ClientQueue {
  /** bytes waiting for the port */
  readonly queuedBytes: number;
  /** the port said it is full and has not drained since */
  readonly blocked: boolean;
  /** Sends `data` or queues it; false when the queue now holds more than `maxBytes` (data is kept until `clear`). */
  push(data: Buffer): boolean;
  /** The port can take data again: sends what waits, in order, until the port is full again. */
  drain(): void;
  /** Forgets what waits (the client is gone). */
  clear(): void;
}

/** `send` returns false when the port is full (as `Writable.write` does); the data it was given is taken either way. */
export function createClientQueue(send: (data: Buffer) => boolean, maxBytes: number): ClientQueue {
  if (!Number.isInteger(maxBytes) || maxBytes < 0) throw new RangeError(`client queue limit must be a non-negative integer, got ${String(maxBytes)}`);
  let waiting: Buffer[] = [];
  let head = 0; // index of the oldest waiting chunk; the array is compacted when drained
  let queuedBytes = 0;
  let blocked = false;

  return {
    get queuedBytes() {
      return queuedBytes;
    },
    get blocked() {
      return blocked;
    },
    push(data) {
      if (!blocked) {
        if (!send(data)) blocked = true;
        return true;
      }
      waiting.push(data);
      queuedBytes += data.length;
      return queuedBytes <= maxBytes;
    },
    drain() {
      blocked = false;
      while (!blocked && head < waiting.length) {
        const next = waiting[head]!;
        head++;
        queuedBytes -= next.length;
        if (!send(next)) blocked = true;
      }
      if (head === waiting.length) {
        waiting = [];
        head = 0;
      }
    },
    clear() {
      waiting = [];
      head = 0;
      queuedBytes = 0;
    },
  };
}
