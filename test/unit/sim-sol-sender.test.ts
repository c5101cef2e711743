import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { SolSender } from '../../src/sim/sol-sender.js';

const bytes = (text: string) => Buffer.from(text, 'latin1');

function sender(over: Partial<ConstructorParameters<typeof SolSender>[0]> = {}): SolSender {
  return new SolSender({ maxChars: 4, maxAttempts: 3, maxBuffered: 1024, ...over });
}

describe('SolSender', () => {
  it('keeps one packet in flight and numbers packets 1..15, then 1 again', () => {
    const s = sender({ maxChars: 1 });
    s.push(bytes('abcdefghijklmnopq'));
    const seqs: number[] = [];
    for (let i = 0; i < 17; i++) {
      const p = s.next()!;
      expect(s.next()).toBeUndefined(); // busy until acknowledged
      seqs.push(p.seq);
      expect(s.ack(p.seq, 1, false)).toBe(true);
    }
    expect(seqs).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 1, 2]);
    expect(s.idle).toBe(true);
  });

  it('splits output into packets of at most maxChars', () => {
    const s = sender();
    s.push(bytes('hello world'));
    const out: string[] = [];
    for (let p = s.next(); p; p = s.next()) {
      out.push(p.data.toString('latin1'));
      s.ack(p.seq, p.data.length, false);
    }
    expect(out).toEqual(['hell', 'o wo', 'rld']);
  });

  it('ignores an acknowledgement of another sequence number', () => {
    const s = sender();
    s.push(bytes('ab'));
    const p = s.next()!;
    expect(s.ack(p.seq + 1, 2, false)).toBe(false);
    expect(s.awaitingAck).toBe(true);
  });

  it('resends the unaccepted rest of a partial acknowledgement under a new sequence number', () => {
    const s = sender();
    s.push(bytes('abcdef'));
    const first = s.next()!;
    expect(first.data.toString()).toBe('abcd');
    s.ack(first.seq, 1, false);
    const second = s.next()!;
    expect(second.seq).toBe(first.seq + 1);
    expect(second.data.toString()).toBe('bcde');
  });

  it('retransmits the same packet after a NACK or a timeout, then gives up and counts the loss', () => {
    const s = sender();
    s.push(bytes('abcdef'));
    const p = s.next()!;
    expect(s.ack(p.seq, 0, true)).toBe(true);
    expect(s.retry()).toEqual(p); // attempt 2
    expect(s.retry()).toEqual(p); // attempt 3 = maxAttempts
    expect(s.retry()).toBeUndefined();
    expect(s.lost).toBe(4);
    expect(s.next()!.data.toString()).toBe('ef');
  });

  it('drops the oldest output beyond maxBuffered, and everything on flush', () => {
    const s = sender({ maxBuffered: 5 });
    s.push(bytes('abc'));
    s.push(bytes('defg'));
    expect(s.lost).toBe(2);
    expect(s.next()!.data.toString()).toBe('cdef');
    s.flush();
    expect(s.idle).toBe(true);
    expect(s.next()).toBeUndefined();
  });

  it('delivers every byte in order whatever the console acknowledges, given enough retries', () => {
    type Reply = { kind: 'ack'; share: number } | { kind: 'nack' } | { kind: 'lost' };
    const reply = fc.oneof(
      fc.record({ kind: fc.constant('ack' as const), share: fc.double({ min: 0, max: 1, noNaN: true }) }),
      fc.constant<Reply>({ kind: 'nack' }),
      fc.constant<Reply>({ kind: 'lost' }),
    );
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ minLength: 1, maxLength: 40 }), { maxLength: 8 }), fc.infiniteStream(reply), (chunks, replies) => {
        const s = new SolSender({ maxChars: 16, maxAttempts: 1_000_000, maxBuffered: 1 << 20 });
        const received: number[] = [];
        for (const c of chunks) s.push(Buffer.from(c));
        const it = replies[Symbol.iterator]();
        let packet = s.next();
        for (let steps = 0; packet && steps < 10_000; steps++) {
          const r = it.next().value as Reply;
          if (r.kind === 'lost') {
            packet = s.retry();
            continue;
          }
          if (r.kind === 'nack') {
            s.ack(packet.seq, 0, true);
            packet = s.retry();
            continue;
          }
          const accepted = Math.max(1, Math.round(r.share * packet.data.length));
          received.push(...packet.data.subarray(0, accepted));
          s.ack(packet.seq, accepted, false);
          packet = s.next();
        }
        expect(Buffer.from(received)).toEqual(Buffer.concat(chunks.map((c) => Buffer.from(c))));
        expect(s.lost).toBe(0);
      }),
    );
  });
});
