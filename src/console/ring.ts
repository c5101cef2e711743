/**
 * The scrollback of a console: the last `capacity` bytes of output, replayed to each new
 * client. A buffer written circularly, grown as output arrives up to `capacity`; `snapshot()`
 * copies it out in order.
 */
export interface Ring {
  readonly capacity: number;
  /** bytes currently held (at most capacity) */
  readonly size: number;
  /** bytes of memory the ring holds now (grows with output, up to capacity) */
  readonly allocated: number;
  push(data: Buffer): void;
  snapshot(): Buffer;
  clear(): void;
}

export function createRing(capacity: number, minGrowth = MIN_GROWTH): Ring {
  if (!Number.isInteger(capacity) || capacity < 0) throw new RangeError(`ring capacity must be a non-negative integer, got ${String(capacity)}`);
  // grown as output arrives, up to capacity: a console that printed little holds little (1,000
  // idle held consoles would otherwise pin 64 KiB each, zero-filled, before a byte arrived)
  let buffer = Buffer.alloc(0);
  let start = 0; // index of the oldest byte
  let size = 0;

  function inOrder(): Buffer {
    if (size === 0) return Buffer.alloc(0);
    const tail = Math.min(size, buffer.length - start);
    return Buffer.concat([buffer.subarray(start, start + tail), buffer.subarray(0, size - tail)]);
  }

  function grow(needed: number): void {
    if (buffer.length >= capacity || needed <= buffer.length) return;
    // not from Node's shared 8 KiB pool: a small ring's slice would keep a whole pool alive
    const next = Buffer.allocUnsafeSlow(Math.min(capacity, Math.max(needed, 2 * buffer.length, minGrowth)));
    inOrder().copy(next, 0);
    buffer = next;
    start = 0;
  }

  return {
    capacity,
    get size() {
      return size;
    },
    get allocated() {
      return buffer.length;
    },
    push(data) {
      if (capacity === 0 || data.length === 0) return;
      if (data.length >= capacity) {
        if (buffer.length < capacity) buffer = Buffer.allocUnsafeSlow(capacity);
        data.copy(buffer, 0, data.length - capacity);
        start = 0;
        size = capacity;
        return;
      }
      grow(size + data.length);
      const room = buffer.length;
      const end = (start + size) % room;
      const first = Math.min(data.length, room - end);
      data.copy(buffer, end, 0, first);
      if (first < data.length) data.copy(buffer, 0, first);
      const overflow = Math.max(0, size + data.length - room);
      size = Math.min(room, size + data.length);
      start = (start + overflow) % room;
    },
    snapshot: inOrder,
    clear() {
      start = 0;
      size = 0;
    },
  };
}

/**
 * the smallest step a ring grows by: an idle console prints a prompt, not kilobytes (4 KiB
 * here held 4 MiB of rings for 1,000 idle held consoles of the simulator, each of which had
 * printed a short boot log and its login prompt)
 */
const MIN_GROWTH = 1024;
