/**
 * A turn taken one at a time, first come, first served (the report workers' suspects,
 * worker-pool.ts). A release hands the turn straight to the first waiter: it stays taken while
 * that waiter resumes. Freeing it and waking the waiter instead let a take that arrived in
 * between (before the woken one's continuation ran) find it free and take it, and the woken one
 * went to the back of the line: a waiter could be passed over again and again.
 */
export interface Turn {
  /**
   * The turn's release once it is the caller's (at once when free); undefined when `signal`
   * aborts first or the turn is closed. A waiter that gives up leaves the line; the turn was
   * never its own, so there is nothing to pass on.
   */
  take(signal?: AbortSignal): Promise<(() => void) | undefined>;
  /** ends every waiter (undefined) and refuses every later take; the holder's release stays harmless */
  close(): void;
}

interface Waiter {
  /** the turn is the waiter's: resolves its take with the release */
  grant(): void;
  /** the turn will not come: resolves its take with undefined */
  end(): void;
}

export function createTurn(): Turn {
  let taken = false;
  let closed = false;
  /** in arrival order (a Set keeps insertion order) */
  const waiters = new Set<Waiter>();

  /** the turn to the first waiter, still taken; free when none waits */
  function handOn(): void {
    const next = waiters.values().next().value;
    if (next === undefined) {
      taken = false;
      return;
    }
    waiters.delete(next);
    next.grant();
  }

  /** a release that hands the turn on once, however often it is called (a read's finally and its abort) */
  function releaseOnce(): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      handOn();
    };
  }

  return {
    take(signal) {
      if (closed || signal?.aborted) return Promise.resolve(undefined);
      if (!taken) {
        taken = true;
        return Promise.resolve(releaseOnce());
      }
      return new Promise((resolve) => {
        const settle = (release: (() => void) | undefined) => {
          waiters.delete(waiter);
          signal?.removeEventListener('abort', end);
          resolve(release);
        };
        const end = () => settle(undefined);
        const waiter: Waiter = { grant: () => settle(releaseOnce()), end };
        waiters.add(waiter);
        signal?.addEventListener('abort', end, { once: true });
      });
    },
    close() {
      closed = true;
      for (const waiter of [...waiters]) waiter.end();
    },
  };
}
