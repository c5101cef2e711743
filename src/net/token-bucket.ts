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

export function createTokenBucket(perSecond: number, burst: number, now: () => number = Date.now): TokenBucket {
  let tokens = burst;
  let at = now();
  return {
    take(n = 1) {
      const t = now();
      tokens = Math.min(burst, tokens + ((t - at) * perSecond) / 1000);
      at = t;
      if (tokens < n) return false;
      tokens -= n;
      return true;
    },
  };
}
