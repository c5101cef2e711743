/** The scrollback ring: always the last `capacity` bytes, in order, whatever the chunking. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createRing } from '../../src/console/ring.js';

describe('scrollback ring', () => {
  /** pushes `chunks` one by one; after each, the ring holds exactly the tail of all of them */
  function holdsTheTail(capacity: number, chunks: Uint8Array[], ring = createRing(capacity)): void {
    let all = Buffer.alloc(0);
    for (const c of chunks) {
      ring.push(Buffer.from(c));
      all = Buffer.concat([all, c]);
      const expected = all.subarray(Math.max(0, all.length - capacity));
      expect(ring.snapshot().equals(expected)).toBe(true);
      expect(ring.size).toBe(expected.length);
      expect(ring.allocated).toBeLessThanOrEqual(capacity);
      expect(ring.allocated).toBeGreaterThanOrEqual(ring.size);
    }
  }

  it('holds exactly the tail of everything pushed', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 64 }), fc.array(fc.uint8Array({ maxLength: 100 }), { maxLength: 30 }), (capacity, chunks) => holdsTheTail(capacity, chunks)),
    );
  });

  it('holds exactly the tail while it grows in small steps up to its capacity', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 300 }), fc.integer({ min: 1, max: 16 }), fc.array(fc.uint8Array({ maxLength: 100 }), { maxLength: 40 }), (capacity, step, chunks) =>
        holdsTheTail(capacity, chunks, createRing(capacity, step)),
      ),
    );
  });

  it('holds no memory before output arrives, and little for a little output', () => {
    const ring = createRing(64 * 1024);
    expect(ring.allocated).toBe(0);
    ring.push(Buffer.from('machine-7 login: '));
    expect(ring.allocated).toBe(1024);
    ring.push(Buffer.alloc(100_000, 0x41));
    expect(ring.allocated).toBe(64 * 1024);
  });

  it('clear() empties it and a zero capacity keeps nothing', () => {
    const ring = createRing(4);
    ring.push(Buffer.from('abcdef'));
    expect(ring.snapshot().toString()).toBe('cdef');
    ring.clear();
    expect(ring.snapshot().length).toBe(0);
    const none = createRing(0);
    none.push(Buffer.from('x'));
    expect(none.snapshot().length).toBe(0);
    expect(() => createRing(-1)).toThrow(RangeError);
  });
});
