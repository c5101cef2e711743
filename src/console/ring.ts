/**
 * The scrollback of a console: the last `capacity` bytes of output, replayed to each new
 * client. A fixed buffer written circularly; `snapshot()` copies it out in order.
 */
export interface Ring {
  readonly capacity: number;
  /** bytes currently held (at most capacity) */
  readonly size: number;
  push(data: Buffer): void;
  snapshot(): Buffer;
  clear(): void;
}

export function createRing(capacity: number): Ring {
  if (!Number.isInteger(capacity) || capacity < 0) throw new RangeError(`ring capacity must be a non-negative integer, got ${String(capacity)}`);
  const buffer = Buffer.alloc(capacity);
  let start = 0; // index of the oldest byte
  let size = 0;

  return {
    capacity,
    get size() {
      return size;
    },
    push(data) {
      if (capacity === 0 || data.length === 0) return;
      if (data.length >= capacity) {
        data.copy(buffer, 0, data.length - capacity);
        start = 0;
        size = capacity;
        return;
      }
      const end = (start + size) % capacity;
      const first = Math.min(data.length, capacity - end);
      data.copy(buffer, end, 0, first);
      if (first < data.length) data.copy(buffer, 0, first);
      const overflow = Math.max(0, size + data.length - capacity);
      size = Math.min(capacity, size + data.length);
      start = (start + overflow) % capacity;
    },
    snapshot() {
      if (size === 0) return Buffer.alloc(0);
      const tail = Math.min(size, capacity - start);
      return Buffer.concat([buffer.subarray(start, start + tail), buffer.subarray(0, size - tail)]);
    },
    clear() {
      start = 0;
      size = 0;
    },
  };
}
