/** A console client's output queue: straight through while the port takes data, bounded while it is full, in order when it drains. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createClientQueue } from '../../src/console/client-queue.js';

/** A port that takes `room` chunks, then says it is full until the test makes room again. */
function port(room: number) {
  const got: string[] = [];
  return {
    got,
    room,
    send(data: Buffer): boolean {
      got.push(data.toString());
      this.room--;
      return this.room > 0;
    },
  };
}

describe('console client queue', () => {
  it('sends straight through while the port takes data', () => {
    const p = port(100);
    const q = createClientQueue((d) => p.send(d), 10);
    for (const s of ['a', 'b', 'c']) expect(q.push(Buffer.from(s))).toBe(true);
    expect(p.got).toEqual(['a', 'b', 'c']);
    expect([q.blocked, q.queuedBytes]).toEqual([false, 0]);
  });

  it('queues once the port is full and sends in order when it drains, until it is full again', () => {
    const p = port(1);
    const q = createClientQueue((d) => p.send(d), 100);
    q.push(Buffer.from('1')); // taken, but the port is now full
    expect(q.blocked).toBe(true);
    q.push(Buffer.from('22'));
    q.push(Buffer.from('333'));
    q.push(Buffer.from('4444'));
    expect(p.got).toEqual(['1']);
    expect(q.queuedBytes).toBe(9);
    p.room = 2;
    q.drain();
    expect(p.got).toEqual(['1', '22', '333']);
    expect([q.blocked, q.queuedBytes]).toEqual([true, 4]);
    p.room = 10;
    q.drain();
    expect(p.got).toEqual(['1', '22', '333', '4444']);
    expect([q.blocked, q.queuedBytes]).toEqual([false, 0]);
  });

  it('says the client is too slow once more than maxBytes wait', () => {
    const p = port(1);
    const q = createClientQueue((d) => p.send(d), 5);
    q.push(Buffer.from('x'));
    expect(q.push(Buffer.from('12345'))).toBe(true); // exactly the limit
    expect(q.push(Buffer.from('6'))).toBe(false);
    expect(q.queuedBytes).toBe(6);
    q.clear();
    expect(q.queuedBytes).toBe(0);
    p.room = 10;
    q.drain();
    expect(p.got).toEqual(['x']);
  });

  it('never loses, reorders or duplicates output, whatever the port does', () => {
    fc.assert(
      fc.property(fc.array(fc.oneof(fc.record({ data: fc.string({ minLength: 1, maxLength: 8 }) }), fc.record({ room: fc.integer({ min: 0, max: 4 }) })), { maxLength: 80 }), (steps) => {
        let room = 1;
        const got: string[] = [];
        const sent: string[] = [];
        const q = createClientQueue((d) => {
          got.push(d.toString());
          room = Math.max(0, room - 1);
          return room > 0;
        }, 1_000_000);
        for (const step of steps) {
          if ('data' in step) {
            sent.push(step.data);
            expect(q.push(Buffer.from(step.data))).toBe(true);
          } else {
            room = step.room;
            if (room > 0) q.drain();
          }
        }
        expect(got).toEqual(sent.slice(0, got.length));
        expect(q.queuedBytes).toBe(Buffer.byteLength(sent.slice(got.length).join('')));
      }),
    );
  });

  it('refuses an unusable limit', () => {
    expect(() => createClientQueue(() => true, -1)).toThrow(RangeError);
    expect(() => createClientQueue(() => true, 1.5)).toThrow(RangeError);
  });
});
