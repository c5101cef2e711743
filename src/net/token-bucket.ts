/**
 * A token bucket: `perSecond` takes a second on average, up to `burst` at once. Full at the
 * start. For bounding how often a peer or a thread may make us do something (log records of a
 * console worker, notices relayed from another instance).
 */
export interface TokenBucket {
  /** true and one token spent, or false when none is left */
  take(): boolean;
}

export function createTokenBucket(perSecond: number, burst: number, now: () => number = Date.now): TokenBucket {
  let tokens = burst;
  let at = now();
  return {
    take() {
      const t = now();
      tokens = Math.min(burst, tokens + ((t - at) * perSecond) / 1000);
      at = t;
      if (tokens < 1) return false;
      tokens -= 1;
      return true;
    },
  };
}
