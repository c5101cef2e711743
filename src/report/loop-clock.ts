/**
 * A BMC's deadline should measure the BMC, not this process's event loop. While a report cycle
 * runs many BMCs at once, an answer that arrived waits until the loop has finished what it is
 * doing for other BMCs (TLS handshakes, JSON, IPMI crypto); a plain timer counts that wait
 * against the BMC. The loop clock measures it: a timer every `resolutionMs` adds how late it
 * fired to `stalledMs()`, so the stall between two readings is the time the loop was not free
 * to serve anyone. `bmcDeadline` gives a BMC back the stall of its own lifetime when its time is
 * up, up to `maxExtraMs`, and only then aborts: a BMC that does not answer still fails, a BMC that
 * answered while we were busy does not. Only a BMC that answered something in its read (`heard`:
 * an HTTP response, an IPMI datagram) is given anything back: a stall cannot have hidden answers
 * of a BMC that sent none, so a dead BMC costs its deadline however busy the loop was (one turn
 * of the loop's I/O is still waited for, in case its first answer is there, unread). The
 * extension is bounded because the cycle's length is wall time: the limiter (adaptive-limit.ts)
 * is what keeps the stall small, by starting fewer BMCs when the loop falls behind or deadlines
 * needed extensions.
 */
import { BmcError } from '../errors.js';
import type { Deadline } from '../deadline.js';

export interface LoopClock {
  /** ms the event loop was busy elsewhere since the clock started (timers fired this much late in all) */
  stalledMs(): number;
  /** stops the clock when its last user is done */
  release(): void;
}

const RESOLUTION_MS = 20;

let users = 0;
let timer: NodeJS.Timeout | undefined;
let stalled = 0;
let lastTick = 0;

function tick(): void {
  const now = performance.now();
  stalled += Math.max(0, now - lastTick - RESOLUTION_MS);
  lastTick = now;
}

/** The process's loop clock, started on first use and shared by everyone who acquires it. */
export function acquireLoopClock(): LoopClock {
  if (users++ === 0) {
    lastTick = performance.now();
    timer = setInterval(tick, RESOLUTION_MS);
    timer.unref();
  }
  let released = false;
  return {
    // what the running interval has not counted yet: it is late right now by this much
    stalledMs: () => stalled + Math.max(0, performance.now() - lastTick - RESOLUTION_MS),
    release() {
      if (released) return;
      released = true;
      if (--users === 0) clearInterval(timer);
    },
  };
}

export interface BmcDeadline extends Deadline {
  /** ms the deadline was moved out for the event loop's stall so far */
  readonly extendedMs: number;
  /** the BMC answered something (an HTTP response, an IPMI datagram): from now on the loop's stall is given back */
  heard(): void;
}

/**
 * A deadline of `ms` of the BMC's own time: when it is up, the loop's stall since the start is
 * added (at most `maxExtraMs` in all) and the timer set again for what is owed; it aborts once
 * nothing more is owed. The caller's signal aborts at once, as with `deadline()`.
 */
export function bmcDeadline(ms: number, what: string, clock: Pick<LoopClock, 'stalledMs'>, maxExtraMs: number, caller?: AbortSignal): BmcDeadline {
  const controller = new AbortController();
  let extendedMs = 0;
  let heard = false;
  if (caller?.aborted) {
    controller.abort(caller.reason);
    return { signal: controller.signal, extendedMs, heard: () => undefined, dispose: () => undefined };
  }
  const start = clock.stalledMs();
  let timer: NodeJS.Timeout;
  let ioTurn: NodeJS.Immediate | undefined;
  const expire = (): void => {
    if (!heard && ioTurn === undefined && clock.stalledMs() - start >= 5) {
      // timers run before the loop's I/O: an answer that came during the stall is read in this turn
      ioTurn = setImmediate(expire);
      ioTurn.unref();
      return;
    }
    // under 5 ms owed is timer noise, not a stall worth a new timer; nothing is owed a BMC that never answered
    const owed = heard ? Math.min(clock.stalledMs() - start, maxExtraMs) - extendedMs : 0;
    if (owed >= 5) {
      extendedMs += owed;
      timer = setTimeout(expire, owed);
      timer.unref();
      return;
    }
    const busy = extendedMs > 0 ? ` (and ${Math.round(extendedMs)} ms more while this process was busy with other BMCs)` : '';
    controller.abort(new BmcError('TIMEOUT', `${what}: no answer within ${ms} ms${busy}`));
  };
  timer = setTimeout(expire, ms);
  timer.unref();
  const onAbort = (): void => controller.abort(caller?.reason);
  caller?.addEventListener('abort', onAbort, { once: true });
  return {
    signal: controller.signal,
    get extendedMs() {
      return extendedMs;
    },
    heard: () => {
      heard = true;
    },
    dispose: () => {
      clearTimeout(timer);
      if (ioTurn !== undefined) clearImmediate(ioTurn);
      caller?.removeEventListener('abort', onAbort);
    },
  };
}
