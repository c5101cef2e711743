/**
 * A token bucket: `perSecond` takes a second on average, up to `burst` at once. Full at the
 * start. For bounding how often a peer or a thread may make us do something (log records of a
 * console worker, notices relayed from another instance), or how much (the bytes a relayed
 * console's viewer may send).
 */
export interface TokenBucket {
  /** true and `n` tokens (default 1) spent, or false when fewer are left (then none is spent) */
  take(n?: number): boolean;
}

/** `now`: a monotonic clock by default, so that a step of the wall clock back does not stop the refill for as long */
export function createTokenBucket(perSecond: number, burst: number, now: () => number = () => performance.now()): TokenBucket {
  let tokens = burst;
  let at = now();
  return {
    take(n = 1) {
      const t = now();
      tokens = Math.min(burst, tokens + (Math.max(0, t - at) * perSecond) / 1000);
      at = t;
      if (tokens < n) return false;
      tokens -= n;
      return true;
    },
  };
}
