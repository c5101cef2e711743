/**
 * Which machines and BMCs a firmware job of another instance holds now: a watch over the
 * partition's claims bucket `<durable>-firmware` (firmware-claims.ts), so that a power command
 * reaching this instance is not executed on a machine another instance is flashing. A flash is not
 * cut off when the partition's lead moves, and with `METAL_BMC_COMMAND_LEADER_LEASE=0` every
 * instance takes events: without this view, a RESET taken by the new leader (or any instance)
 * landed in the other's BIOS flash, which can leave the board unbootable.
 *
 * The view is kept from the watch (every key's entry first, then each change), so the runner asks
 * it synchronously, without a round trip per command:
 * - a claim counts while it is live: renewed (a new revision seen here, every 15 s from a running
 *   job) within the lease (90 s). A claim whose holder stopped renewing it (its instance died mid-
 *   update) stops counting after its lease, as firmware-claims.ts then lets a new job take it over;
 *   its server stamp shortens that at the first sighting where the server's time is measured.
 *   A claim whose update may still flash the BMC carries a hold (`holdMs`, firmware-claims.ts
 *   claimLeaseMs) and counts that long instead: an instance gone mid-update (its host lost, a
 *   restart longer than the lease) does not free its machine for a RESET here while the BMC flashes.
 *   The lease's end is confirmed by reading the key: a watch that stalled (this instance cut off
 *   from NATS) sees no renewals either, and a claim that cannot be read stays held.
 *   The same revision delivered again (a watch started again) is no renewal.
 * - a bucket made again numbers its revisions from 1, below a watch's place: the view watches anew
 *   when this instance made it (`restart`, from kv.ts onRemade) or finds the bucket's last revision
 *   below what it saw (checked every 15 s: another instance made it).
 * - claims of this process are not in it: the runner knows this instance's jobs already, and a
 *   claim released here must not hold the machine until the watch delivers the delete.
 * - a key's `ended` settles when it no longer holds that job's claim (deleted, stale, taken by
 *   another job: the runner looks again then).
 * - at most `maxKeys` keys are kept (each running job holds two; a flood of foreign keys drops
 *   the one seen longest ago, with a warning).
 *
 * `start` resolves once the watch delivered the bucket as it was when it started (so that no
 * event is taken before a running job's claim is known); past `readyWithinMs` it rejects
 * UNAVAILABLE and the command service's start is tried again.
 * Watch changes land within milliseconds of their write, while a job claims its keys before it
 * sends the BMC anything, and its upload takes seconds before a flash begins.
 */
import { performance } from 'node:perf_hooks';
import { endedWithin } from '../deadline.js';
import { BmcError } from '../errors.js';
import type { Logger } from '../log.js';
import { claimKeys, claimLeaseMs, parseClaim, type ClaimValue } from './firmware-claims.js';
import { keepWatching, type KvBucket, type KvEntry } from './kv.js';
import { parsePowerMark, POWER_MARK_PREFIX, type PowerMark } from './power-marks.js';

/** Another process's firmware claim on a machine or its BMC. */
export interface ClaimHeldElsewhere {
  claim: ClaimValue;
  /** the claim is on the machine's key, or on its BMC (a job of another machine key on the same BMC) */
  on: 'machine' | 'bmc';
  /** settles once the key no longer holds this job's claim */
  ended: Promise<void>;
}

export interface FirmwareClaimView {
  /** starts the watch; resolves once the bucket's keys as they were are known; rejects (UNAVAILABLE) when that takes longer than `readyWithinMs` */
  start(): Promise<void>;
  /** the bucket was made again (kv.ts onRemade): a new watch, numbering from its start */
  restart(): void;
  /**
   * Resolves true once the watch delivered every write the bucket held when it was asked (a claim
   * acknowledged to another instance a moment ago is known then); false when that took longer than
   * `withinMs` or the bucket could not be asked (NATS away): the view as it is then.
   */
  caughtUp(withinMs: number): Promise<boolean>;
  /** another process's live claim on the machine key or on the BMC (`host:port`, empty for none), the machine's first */
  heldElsewhere(subject: { machineKey: string; bmc: string }): ClaimHeldElsewhere | undefined;
  /** a power step another process runs on the machine or its BMC (its mark, power-marks.ts), and when it ends */
  powerElsewhere(subject: { machineKey: string; bmc: string }): { mark: PowerMark; ended: Promise<void> } | undefined;
  close(): void;
}

export interface FirmwareClaimViewOptions {
  kv: KvBucket;
  /** a claim this process wrote (FirmwareClaims.isOwn) */
  isOwn: (claim: ClaimValue) => boolean;
  /** a power step's mark this process wrote (PowerMarks.isOwn): none of them are in the view */
  isOwnMark?: (mark: PowerMark) => boolean;
  logger: Logger;
  /** a claim not renewed for this long no longer counts (firmware-claims.ts `leaseMs`, default 90 s) */
  leaseMs?: number;
  /** the NATS server's time now (ms since the epoch), undefined while not measured (server-clock.ts) */
  serverNow?: () => number | undefined;
  monotonicNow?: () => number;
  /** how long `start` waits for the bucket's keys (default 10 s) */
  readyWithinMs?: number;
  maxKeys?: number;
  /** how often a claim whose read failed at its stale time is read again, and the bucket checked for a remake (default 15 s) */
  recheckMs?: number;
}

/** a key holding another process's live claim, and who waits for it to end */
interface Held {
  claim: ClaimValue;
  revision: number;
  /** when it stops counting unless renewed (monotonic ms): then the bucket is asked (atStaleTime) */
  staleAt: number;
  timer: NodeJS.Timeout | undefined;
  /** a read of the key under way at its stale time */
  confirming: boolean;
  ended: Promise<void>;
  end: () => void;
}

const sameJob = (a: ClaimValue, b: ClaimValue) => a.instance === b.instance && a.token === b.token && a.job === b.job;

/** another process's power step running, by its mark's key: it counts until deleted or `holdMs` after its write */
interface Marked {
  mark: PowerMark;
  /** the write it was seen at: a step after it writes the same key again (power-marks.ts) */
  revision: number;
  timer: NodeJS.Timeout;
  ended: Promise<void>;
  end: () => void;
}

/** how often a key whose stale time came but whose read failed is read again, and how often the bucket is checked for a remake (a firmware claim's renewal period) */
const RECHECK_MS = 15_000;

/** Drops `key` from `entries`, stops its timer and tells who waits for its end. */
function endEntry(entries: Map<string, { timer: NodeJS.Timeout | undefined; end: () => void }>, key: string): void {
  const entry = entries.get(key);
  if (!entry) return;
  entries.delete(key);
  clearTimeout(entry.timer);
  entry.end();
}

export function createFirmwareClaimView(o: FirmwareClaimViewOptions): FirmwareClaimView {
  const leaseMs = o.leaseMs ?? 90_000;
  const maxKeys = o.maxKeys ?? 4096;
  const recheckMs = o.recheckMs ?? RECHECK_MS;
  const monotonicNow = o.monotonicNow ?? (() => performance.now());
  const held = new Map<string, Held>();
  const marks = new Map<string, Marked>();
  let closed = false;
  /** the highest revision the current watch delivered, and who waits for one */
  let seenRevision = 0;
  const onSeen = new Set<() => void>();

  /** true once the watch delivered revision `upTo`, false after `withinMs` */
  function deliveredUpTo(upTo: number, withinMs: number): Promise<boolean> {
    if (seenRevision >= upTo) return Promise.resolve(true);
    return new Promise<boolean>((resolve) => {
      const settle = (ok: boolean) => {
        clearTimeout(timer);
        onSeen.delete(check);
        resolve(ok);
      };
      const check = () => {
        if (seenRevision >= upTo) settle(true);
      };
      const timer = setTimeout(() => settle(false), withinMs);
      onSeen.add(check);
    });
  }

  /** a claim no longer held: out of the view, its waiters told */
  const free = (key: string): void => endEntry(held, key);

  /** how long ago the server stored `entry`, where its stamp and the server's time tell it; 0 otherwise */
  function writtenAgo(entry: KvEntry): number {
    const server = o.serverNow?.();
    const stamp = entry.createdMs;
    if (server === undefined || stamp === undefined || !Number.isFinite(stamp)) return 0;
    return Math.max(0, server - stamp);
  }

  function arm(key: string, h: Held, ms: number): void {
    clearTimeout(h.timer);
    h.timer = setTimeout(() => void atStaleTime(key, h), Math.max(1, ms));
    h.timer.unref();
  }

  /** its stale time came (no new revision seen for a lease): confirmed by a read, since a watch that stalled (NATS away) sees no renewals either */
  async function atStaleTime(key: string, h: Held): Promise<void> {
    if (held.get(key) !== h || closed || h.confirming) return;
    // a timer may fire a little early on the monotonic clock
    const wait = h.staleAt - monotonicNow();
    if (wait > 0) return arm(key, h, wait);
    const staleAt = h.staleAt;
    h.confirming = true;
    let entry: KvEntry | undefined;
    try {
      entry = await o.kv.get(key);
    } catch (err) {
      // not known to be stale: held on (power commands refused), asked again
      h.confirming = false;
      if (held.get(key) !== h || closed) return;
      o.logger.warn({ err, claimKey: key, firmwareJob: h.claim.job, instance: h.claim.instance }, "cannot read another instance's firmware claim at the end of its lease; its machine's power stays held, read again soon");
      return arm(key, h, recheckMs);
    }
    h.confirming = false;
    // renewed meanwhile through the watch: its timer runs again
    if (held.get(key) !== h || closed || h.staleAt !== staleAt) return;
    if (entry !== undefined && entry.revision !== h.revision) return seen(entry);
    o.logger.warn({ claimKey: key, firmwareJob: h.claim.job, firmwareKind: h.claim.kind, instance: h.claim.instance, leaseMs: claimLeaseMs(h.claim, leaseMs) }, "another instance's firmware claim was not renewed for its lease or hold (its instance stopped during the update?); power commands for its machine are no longer held for it");
    free(key);
  }

  /** a power step no longer running: out of the view, its waiters told */
  const unmark = (key: string): void => endEntry(marks, key);

  /** A power step's mark: counted from its write for its hold (it is not renewed), until deleted. */
  function seenMark(entry: KvEntry): void {
    const mark = entry.deleted ? undefined : parsePowerMark(entry.value);
    if (mark === undefined || o.isOwnMark?.(mark) === true) return unmark(entry.key);
    // delivered again (a watch started again): the same mark, its timer runs on; a new revision is
    // a new step of that instance on that machine (a crashed one's mark overwritten): timed anew
    if (marks.get(entry.key)?.revision === entry.revision) return;
    unmark(entry.key);
    const left = mark.holdMs - writtenAgo(entry);
    if (left <= 0) return;
    let end!: () => void;
    const ended = new Promise<void>((resolve) => (end = resolve));
    const timer = setTimeout(() => unmark(entry.key), left);
    timer.unref();
    marks.set(entry.key, { mark, revision: entry.revision, timer, ended, end });
    if (marks.size > maxKeys) {
      const oldest = marks.keys().next().value!;
      o.logger.warn({ markKey: oldest, marks: marks.size, maxKeys }, "firmware claims bucket holds more power steps' marks than expected; the one seen longest ago is forgotten");
      unmark(oldest);
    }
  }

  function seen(entry: KvEntry): void {
    if (entry.revision > seenRevision) seenRevision = entry.revision;
    for (const check of [...onSeen]) check();
    if (entry.key.startsWith(`${POWER_MARK_PREFIX}.`)) return seenMark(entry);
    const claim = entry.deleted ? undefined : parseClaim(entry.value);
    const before = held.get(entry.key);
    if (claim === undefined || o.isOwn(claim)) return free(entry.key);
    // the same revision again (a watch started again delivers every key): no renewal, its stale time stays
    if (before && before.revision === entry.revision) return;
    const left = claimLeaseMs(claim, leaseMs) - writtenAgo(entry);
    if (left <= 0) return free(entry.key);
    // another job's claim now: who waited for the old one looks again
    if (before && !sameJob(before.claim, claim)) free(entry.key);
    const current = held.get(entry.key);
    if (current) {
      current.claim = claim;
      current.revision = entry.revision;
      current.staleAt = monotonicNow() + left;
      arm(entry.key, current, left);
      return;
    }
    let end!: () => void;
    const ended = new Promise<void>((resolve) => (end = resolve));
    const h: Held = { claim, revision: entry.revision, staleAt: monotonicNow() + left, timer: undefined, confirming: false, ended, end };
    held.set(entry.key, h);
    arm(entry.key, h, left);
    if (held.size > maxKeys) {
      const oldest = held.keys().next().value!;
      o.logger.warn({ claimKey: oldest, keys: held.size, maxKeys }, 'firmware claims bucket holds more keys than expected; the one seen longest ago is forgotten (power commands for its machine are no longer held for it)');
      free(oldest);
    }
  }

  const watch = keepWatching({
    kv: o.kv,
    onEntry: seen,
    onEnded: (err) => o.logger.warn({ err, bucket: o.kv.bucket }, 'firmware claims watch ended; starting it again'),
    closed: () => closed,
  });

  /** A bucket made again numbers from 1: a watch from before would never deliver what it holds (kv.ts), so a new one starts; what is held stays until read again or stale. */
  function restart(): void {
    if (closed) return;
    seenRevision = 0;
    watch.restart();
  }

  /** The bucket made again by another instance (or lost with a server's state) shows a last revision below what the watch delivered. */
  const remakeCheck = setInterval(() => {
    void o.kv.lastRevision().then(
      (last) => {
        if (closed || last >= seenRevision) return;
        o.logger.warn({ bucket: o.kv.bucket, lastRevision: last, seenRevision }, "the firmware claims' key-value bucket was made again (its revisions start over); watching it anew");
        restart();
      },
      () => undefined, // NATS away: the next check
    );
  }, recheckMs);
  remakeCheck.unref();

  return {
    async start() {
      const upTo = await o.kv.lastRevision();
      await watch.start();
      if (seenRevision >= upTo) return;
      const readyWithinMs = o.readyWithinMs ?? 10_000;
      // no event is taken before running updates are known: the start fails and is tried again
      if (!(await deliveredUpTo(upTo, readyWithinMs))) throw new BmcError('UNAVAILABLE', `the firmware claims' key-value bucket ${o.kv.bucket} was not delivered within ${readyWithinMs} ms (revision ${seenRevision} of ${upTo}): another instance's running update would not be seen`);
    },
    restart,
    async caughtUp(withinMs) {
      const started = monotonicNow();
      // the question to the bucket within the bound too (a JetStream request's own timeout is 5 s)
      const asked = o.kv.lastRevision().catch(() => undefined);
      if (!(await endedWithin(asked, withinMs))) return false;
      const upTo = await asked;
      if (upTo === undefined) return false;
      // below what was seen: the bucket was made again, which the watch from before would never deliver
      if (upTo < seenRevision) {
        o.logger.warn({ bucket: o.kv.bucket, lastRevision: upTo, seenRevision }, "the firmware claims' key-value bucket was made again (its revisions start over); watching it anew");
        restart();
      }
      return deliveredUpTo(upTo, Math.max(0, withinMs - (monotonicNow() - started)));
    },
    powerElsewhere(subject) {
      const keys = claimKeys(subject);
      for (const m of marks.values()) if (keys.includes(m.mark.machine) || (m.mark.bmc !== '' && keys.includes(m.mark.bmc))) return { mark: m.mark, ended: m.ended };
      return undefined;
    },
    heldElsewhere(subject) {
      const [machineKey, bmcKey] = claimKeys(subject);
      for (const [key, on] of [[machineKey, 'machine'], [bmcKey, 'bmc']] as const) {
        const h = key === undefined ? undefined : held.get(key);
        if (h) return { claim: h.claim, on, ended: h.ended };
      }
      return undefined;
    },
    close() {
      closed = true;
      clearInterval(remakeCheck);
      watch.stop();
      for (const key of [...held.keys()]) free(key);
      for (const key of [...marks.keys()]) unmark(key);
    },
  };
}
