/**
 * One console client's output queue. Output goes straight to the client while its port takes
 * it; once `send` says the port is full, output waits here until the port has `drain`ed. What
 * waits here and what the transport holds unsent (`unsent`: an SSH channel whose window the client
 * never opens again, a WebSocket the peer does not read) count together against `maxBytes`; past
 * that the client is too slow: `push` says so and the session drops the client, so one slow
 * reader never holds up the others or grows memory without bound.
 *
 * The scrollback replayed to a joining client (`replay`) may be far larger than `maxBytes`
 * (METAL_BMC_CONSOLE_SCROLLBACK up to 1 GiB, the bound 1 MiB) and goes to the transport in one
 * send: it is granted on top of the bound until the client holds no more than `maxBytes` again,
 * so a client that reads it is not dropped on joining, and one that stops reading is dropped
 * once it holds more than the bound and the replay together.
 *
 * Items are output (Buffer) or anything else that has a size in bytes (a notice): a notice takes
 * its turn behind the output before it, and counts as output does.
 */
export interface ClientQueue<T extends { readonly length: number } = Buffer> {
  /** bytes waiting for the port */
  readonly queuedBytes: number;
  /** the port said it is full and has not drained since */
  readonly blocked: boolean;
  /** Sends `item` or queues it; false when the queue and the transport now hold more than `maxBytes` (the item is kept until `clear`). */
  push(item: T): boolean;
  /** As `push`, for the scrollback on joining: its bytes are allowed beyond `maxBytes` until the queue and the transport hold no more than `maxBytes` again. */
  replay(item: T): boolean;
  /** The port can take data again: sends what waits, in order, until the port is full again. */
  drain(): void;
  /** Forgets what waits (the client is gone). */
  clear(): void;
}

/**
 * `send` returns false when the port is full (as `Writable.write` does); the item it was given is
 * taken either way. `unsent`: bytes the transport was given and has not sent yet (0 when it does not tell).
 */
export function createClientQueue<T extends { readonly length: number } = Buffer>(send: (item: T) => boolean, maxBytes: number, unsent: () => number = () => 0): ClientQueue<T> {
  if (!Number.isInteger(maxBytes) || maxBytes < 0) throw new RangeError(`client queue limit must be a non-negative integer, got ${String(maxBytes)}`);
  let waiting: T[] = [];
  let head = 0; // index of the oldest waiting item; the array is compacted when drained
  let queuedBytes = 0;
  let blocked = false;
  /** bytes of a replayed scrollback still allowed beyond maxBytes; gone once the client held no more than maxBytes */
  let replayAllowance = 0;
  const withinBound = () => {
    const held = queuedBytes + unsent();
    if (held <= maxBytes) replayAllowance = 0;
    return held <= maxBytes + replayAllowance;
  };
  const push = (item: T) => {
    if (!blocked) {
      if (!send(item)) blocked = true;
      return withinBound();
    }
    waiting.push(item);
    queuedBytes += item.length;
    return withinBound();
  };

  return {
    get queuedBytes() {
      return queuedBytes;
    },
    get blocked() {
      return blocked;
    },
    push,
    replay(item) {
      replayAllowance = item.length;
      return push(item);
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
      withinBound(); // the replay's allowance ends once the client caught up
    },
    clear() {
      waiting = [];
      head = 0;
      queuedBytes = 0;
    },
  };
}
