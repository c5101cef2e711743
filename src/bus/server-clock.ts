/**
 * How far the NATS server's clock is from this host's. A machine event's age is the server's
 * timestamp (when the stream stored it) against "now": a host clock ahead of the server's by
 * more than the topic TTL (30 s by default) would drop every power command as stale, one behind
 * would run stale ones. The offset is measured by writing a key of this instance in a bucket and
 * reading back when the server stored it: that moment lies between the write's start and its
 * acknowledgement, so the offset is known to within half that round trip. A measurement whose
 * round trip is too long to say much (a loaded server) is not used; the last good one stays.
 *
 * Measured at the start and every `intervalMs` (a failed or imprecise measurement is tried again
 * after `retryMs`, doubling up to the interval); logged when the offset passes `warnAboveMs` (and
 * again when it changes by as much, or after `warnEveryMs`), so that an operator fixes NTP;
 * meanwhile event ages are taken on the server's clock (`now()`), which is what the TTL means.
 * `now()` runs on this host's monotonic clock from the last measurement, not on its wall clock:
 * a step of the wall clock (NTP correcting it) does not move the server's time; where the two
 * clocks part (that step, or a suspend, which stops the monotonic clock), it measures again at once.
 *
 * The server measured is the one that stores the key (the bucket's stream leader in a cluster);
 * the events are stamped by their stream's leader, which may be another node: nodes out of step
 * with each other show as events from the future or the past by as much.
 */
import type { Logger } from '../log.js';
import type { KvBucket } from './kv.js';

export interface ClockMeasurement {
  /** the server's clock minus this host's (ms) */
  offsetMs: number;
  /** half the write's round trip: the offset lies within ± this */
  uncertaintyMs: number;
}

export interface ServerClock {
  /** this host's clock corrected by the latest good measurement (ms since the epoch): the server's time now */
  now(): number;
  /** the latest good measurement's offset, 0 before one */
  offsetMs(): number;
  /** a good measurement was made: now() is the server's time, not this host's */
  measured(): boolean;
  /** measures once; the measurement, or undefined when it failed or was too imprecise to use */
  measure(): Promise<ClockMeasurement | undefined>;
  /** the first measurement, started with the clock (never rejects) */
  readonly first: Promise<ClockMeasurement | undefined>;
  close(): void;
}

export interface ServerClockOptions {
  kv: KvBucket;
  /** a key only this instance writes */
  key: string;
  logger: Logger;
  /** default 5 min */
  intervalMs?: number;
  /** a measurement less precise than this is not used (default 1 s) */
  maxUncertaintyMs?: number;
  /** an offset beyond this is logged (default 2 s) */
  warnAboveMs?: number;
  /** how often a lasting offset is logged again (default 1 h) */
  warnEveryMs?: number;
  /** the first wait before a failed or imprecise measurement is tried again (default 10 s; doubling up to intervalMs) */
  retryMs?: number;
  /** told each good measurement's offset (a metric) */
  onOffset?: (offsetMs: number) => void;
  /** this host's wall clock (tests) */
  hostNow?: () => number;
  /** this host's monotonic clock in ms (tests); default performance.now */
  monotonicNow?: () => number;
}

/** how often the clocks parting starts a measurement at most */
const PARTED_REMEASURE_MS = 10_000;

export function createServerClock(o: ServerClockOptions): ServerClock {
  const hostNow = o.hostNow ?? Date.now;
  const monotonicNow = o.monotonicNow ?? (() => performance.now());
  const maxUncertaintyMs = o.maxUncertaintyMs ?? 1000;
  const warnAboveMs = o.warnAboveMs ?? 2000;
  const warnEveryMs = o.warnEveryMs ?? 3_600_000;
  const intervalMs = o.intervalMs ?? 300_000;
  const retryMs = Math.min(o.retryMs ?? 10_000, intervalMs);
  /** the server's time at the last good measurement's midpoint, and this host's two clocks then (its offset: serverMs - hostMs) */
  let anchor: { serverMs: number; monotonicMs: number; hostMs: number } | undefined;
  /** measurements started so far, and the one the anchor is from: an older one never replaces the anchor of a newer one */
  let started = 0;
  let anchoredBy = 0;
  /** when a measurement was last started because the two clocks parted (monotonic ms) */
  let partedAt = -Infinity;
  let warned: { offsetMs: number; at: number } | undefined;
  let failureLogged = false;
  let closed = false;

  function tell(m: ClockMeasurement): void {
    const off = Math.abs(m.offsetMs) > warnAboveMs;
    if (!off) {
      if (warned) o.logger.info({ offsetMs: Math.round(m.offsetMs) }, "this host's clock is in step with the NATS server's again");
      warned = undefined;
      return;
    }
    const at = hostNow();
    if (warned && Math.abs(m.offsetMs - warned.offsetMs) <= warnAboveMs && at - warned.at < warnEveryMs) return;
    warned = { offsetMs: m.offsetMs, at };
    const seconds = Math.abs(m.offsetMs / 1000).toFixed(1);
    const side = m.offsetMs < 0 ? 'ahead of' : 'behind';
    o.logger.warn({ offsetMs: Math.round(m.offsetMs), uncertaintyMs: Math.round(m.uncertaintyMs) }, `this host's clock is ${seconds} s ${side} the NATS server's (keep both in step with NTP); machine event ages are taken on the server's clock meanwhile`);
  }

  async function measure(): Promise<ClockMeasurement | undefined> {
    const generation = ++started;
    try {
      const sentAt = hostNow();
      const sentMono = monotonicNow();
      const revision = await o.kv.put(o.key, new Uint8Array(0));
      const ackedAt = hostNow();
      const ackedMono = monotonicNow();
      const entry = await o.kv.get(o.key);
      if (entry?.revision !== revision || entry.createdMs === undefined) return undefined;
      const m = { offsetMs: entry.createdMs - (sentAt + ackedAt) / 2, uncertaintyMs: (ackedMono - sentMono) / 2 };
      if (m.uncertaintyMs > maxUncertaintyMs) return undefined;
      // the two clocks parted during the write (a suspend stops the monotonic one, a step moves the
      // wall clock): neither round trip can be trusted
      if (Math.abs(ackedAt - sentAt - (ackedMono - sentMono)) > maxUncertaintyMs) return undefined;
      if (generation < anchoredBy) return undefined;
      anchoredBy = generation;
      anchor = { serverMs: entry.createdMs, monotonicMs: (sentMono + ackedMono) / 2, hostMs: (sentAt + ackedAt) / 2 };
      failureLogged = false;
      o.onOffset?.(m.offsetMs);
      tell(m);
      return m;
    } catch (err) {
      if (!failureLogged && !closed) o.logger.warn({ err, clockKey: o.key }, "the NATS server's clock not measured; machine event ages keep the last offset measured, or none");
      failureLogged = true;
      return undefined;
    }
  }

  /** measures every intervalMs; after failures sooner, from retryMs doubling up to the interval */
  let timer: NodeJS.Timeout | undefined;
  let failuresInARow = 0;
  function next(m: ClockMeasurement | undefined): void {
    if (closed) return;
    failuresInARow = m ? 0 : failuresInARow + 1;
    const waitMs = m ? intervalMs : Math.min(intervalMs, retryMs * 2 ** Math.min(failuresInARow - 1, 20));
    timer = setTimeout(() => void measure().then(next), waitMs);
    timer.unref();
  }
  const first = measure();
  void first.then(next);

  /**
   * The server's time now, by the monotonic clock from the last measurement. Where this host's wall
   * clock has moved apart from it by more than a second since (a step by NTP, or a suspend, during
   * which the monotonic clock stands still while time goes on), which of the two is right is only
   * known by measuring again: started at once, at most every PARTED_REMEASURE_MS.
   */
  function serverNow(): number {
    if (!anchor) return hostNow();
    const mono = monotonicNow();
    const parted = Math.abs(hostNow() - anchor.hostMs - (mono - anchor.monotonicMs)) > 1000;
    if (parted && !closed && mono - partedAt >= PARTED_REMEASURE_MS) {
      partedAt = mono;
      void measure();
    }
    return anchor.serverMs + (mono - anchor.monotonicMs);
  }

  return {
    now: serverNow,
    offsetMs: () => (anchor ? anchor.serverMs - anchor.hostMs : 0),
    measured: () => anchor !== undefined,
    measure,
    first,
    close() {
      closed = true;
      clearTimeout(timer);
    },
  };
}
