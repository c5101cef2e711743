/**
 * A BMC's deadline should measure the BMC, not this process's event loop. While a report cycle
 * runs many BMCs at once, an answer that arrived waits until the loop has finished what it is
 * doing for other BMCs (TLS handshakes, JSON, IPMI crypto); a plain timer counts that wait
 * against the BMC. The loop clock measures it: a timer every `resolutionMs` adds how late it
 * fired to `stalledMs()`, so the stall between two readings is the time the loop was not free
 * to serve anyone. `bmcDeadline` gives a BMC back, when its time is up, what its answers waited
 * for the loop, up to `maxExtraMs`, and only then aborts: a BMC that does not answer still fails,
 * a BMC that answered while we were busy does not. Each sign of life of the BMC in its read
 * (`heard`: each Redfish connection's TCP connect and TLS handshake, the certificate probe's, an
 * HTTP response's head or a piece of its body, an IPMI datagram) is owed the stall it can have
 * waited through: the loop's stall over its last three ticks (`recentStallMs`: the busy turn in
 * which an answer that arrived is read, the one it arrived in, and a step of ours from a later
 * turn), never more than the stall since the BMC's previous sign of life. Not the whole stall of
 * its read: while the BMC itself was working on an answer (a slow BMC's seconds), the loop's
 * stall kept nothing of it unread, and giving that back (as this did before, up to a second per
 * BMC in a busy cycle) let a BMC that answers every request in seconds outlive its deadline by as
 * much, setting the cycle's end. So a BMC that says nothing at all costs its deadline however busy
 * the loop was, one that accepts connections but never answers gets back only what its
 * connections waited, and a live one is not charged for our slowness.
 * Before failing, one turn of the loop's I/O is waited for wherever the loop stalled since that
 * sign of life, in case something the BMC sent is there, unread. The extension is bounded (at
 * most `maxExtraMs`, and a turn of I/O per extension) because the cycle's length is wall time:
 * the limiter (adaptive-limit.ts) is what keeps the stall small, by starting fewer BMCs when the
 * loop falls behind or deadlines needed extensions.
 */
import { BmcError } from '../errors.js';
import type { Deadline } from '../deadline.js';

export interface LoopClock {
  /** ms the event loop was busy elsewhere since the clock started (timers fired this much late in all) */
  stalledMs(): number;
  /**
   * the stall over the clock's last few ticks and since (how late the loop has been lately): about
   * as long as an answer read now can have waited for the loop, whenever in that turn it arrived
   */
  recentStallMs(): number;
  /** stops the clock when its last user is done */
  release(): void;
}

/** What a BMC's deadline reads of the loop clock. */
export type LoopStall = Pick<LoopClock, 'stalledMs' | 'recentStallMs'>;

const RESOLUTION_MS = 20;

let users = 0;
let timer: NodeJS.Timeout | undefined;
let stalled = 0;
let lastTick = 0;
/**
 * the ticks an answer is owed the stall of (`recentStallMs`): the turn it was read in, the one it
 * arrived in, and one more for a step of ours between two answers (a request sent from a later
 * turn: a connection's queue, a decision taken after the turn's I/O)
 */
const RECENT_TICKS = 3;
/** `stalled` as each of the last RECENT_TICKS ticks left it, oldest first */
const stalledAtTicks: number[] = new Array<number>(RECENT_TICKS).fill(0);

function tick(): void {
  const now = performance.now();
  stalled += Math.max(0, now - lastTick - RESOLUTION_MS);
  lastTick = now;
  stalledAtTicks.shift();
  stalledAtTicks.push(stalled);
}

/** the stall counted so far, with how late the running interval is right now */
function stalledNow(): number {
  return stalled + Math.max(0, performance.now() - lastTick - RESOLUTION_MS);
}

/** The process's loop clock, started on first use and shared by everyone who acquires it. */
export function acquireLoopClock(): LoopClock {
  if (users++ === 0) {
    lastTick = performance.now();
    stalledAtTicks.fill(stalled);
    timer = setInterval(tick, RESOLUTION_MS);
    timer.unref();
  }
  let released = false;
  return {
    // what the running interval has not counted yet: it is late right now by this much
    stalledMs: stalledNow,
    recentStallMs: () => stalledNow() - stalledAtTicks[0]!,
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
  /** a sign of life of the BMC (a connection made, an HTTP response or a piece of one, an IPMI datagram): what it can have waited for the loop is owed to it */
  heard(): void;
}

/**
 * A deadline of `ms` of the BMC's own time: when it is up, what its signs of life were owed for
 * the loop's stall is added (at most `maxExtraMs` in all) and the timer set again for it; it
 * aborts once nothing more is owed. The caller's signal aborts at once, as with `deadline()`.
 */
export function bmcDeadline(ms: number, what: string, clock: LoopStall, maxExtraMs: number, caller?: AbortSignal): BmcDeadline {
  const controller = new AbortController();
  let extendedMs = 0;
  if (caller?.aborted) {
    controller.abort(caller.reason);
    return { signal: controller.signal, extendedMs, heard: () => undefined, dispose: () => undefined };
  }
  /** the loop's stall at the BMC's latest sign of life (or the deadline's start) */
  let stallAtLife = clock.stalledMs();
  /** what the BMC's signs of life waited for the loop, in all */
  let owedMs = 0;
  let timer: NodeJS.Timeout;
  let ioTurn: NodeJS.Immediate | undefined;
  const expire = (): void => {
    if (controller.signal.aborted) return;
    if (ioTurn === undefined && clock.stalledMs() - stallAtLife >= 5) {
      // timers run before the loop's I/O: what the BMC sent during the stall is read in this turn
      ioTurn = setImmediate(() => {
        expire();
        ioTurn = undefined;
      });
      ioTurn.unref();
      return;
    }
    // under 5 ms owed is timer noise, not a stall worth a new timer
    const owed = Math.min(owedMs, maxExtraMs) - extendedMs;
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
      const now = clock.stalledMs();
      // never negative: a clock released and acquired again meanwhile starts its count over
      owedMs += Math.max(0, Math.min(now - stallAtLife, clock.recentStallMs()));
      stallAtLife = now;
    },
    dispose: () => {
      clearTimeout(timer);
      if (ioTurn !== undefined) clearImmediate(ioTurn);
      caller?.removeEventListener('abort', onAbort);
    },
  };
}
