import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createTokenBucket } from '../../src/net/token-bucket.js';

describe('token bucket', () => {
  it('takes n tokens at once, none when fewer are left, and refills at its rate up to its burst', () => {
    let t = 0;
    const bucket = createTokenBucket(1024, 1024, () => t);
    expect(bucket.take(1000)).toBe(true);
    expect(bucket.take(100)).toBe(false);
    expect(bucket.take(24)).toBe(true); // the refused take spent nothing
    t += 100; // 102.4 tokens
    expect(bucket.take(100)).toBe(true);
    expect(bucket.take(3)).toBe(false);
    t += 60_000;
    expect(bucket.take(1024)).toBe(true); // never more than the burst
    expect(bucket.take(1)).toBe(false);
  });

  it('a clock that goes back refills nothing and does not hold the refill back afterwards', () => {
    let t = 100_000;
    const bucket = createTokenBucket(1000, 1000, () => t);
    expect(bucket.take(1000)).toBe(true);
    t -= 60_000;
    expect(bucket.take(1)).toBe(false);
    t += 1000;
    expect(bucket.take(1000)).toBe(true);
  });

  it('over any run of takes, what was taken is at most the burst plus the rate times the time', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.integer({ min: 0, max: 500 }), fc.integer({ min: 1, max: 4096 })), { maxLength: 200 }), (steps) => {
        let t = 0;
        const bucket = createTokenBucket(8192, 8192, () => t);
        let taken = 0;
        for (const [waitMs, n] of steps) {
          t += waitMs;
          if (bucket.take(n)) taken += n;
        }
        expect(taken).toBeLessThanOrEqual(8192 + (8192 * t) / 1000 + 1e-6);
      }),
    );
  });
});
