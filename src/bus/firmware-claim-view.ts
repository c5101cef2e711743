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
 * - claims of this process are not in it: the runner knows this instance's jobs already, and a
 *   claim released here must not hold the machine until the watch delivers the delete.
 * - a key's `ended` settles when it no longer holds that job's claim (deleted, stale, taken by
 *   another job: the runner looks again then).
 * - at most `maxKeys` keys are kept (each running job holds two; a flood of foreign keys drops
 *   the one seen longest ago, with a warning).
 *
 * `start` resolves once the watch delivered the bucket as it was when it started (so that no
 * event is taken before a running job's claim is known), or after `readyWithinMs` with a warning.
 * Watch changes land within milliseconds of their write, while a job claims its keys before it
 * sends the BMC anything, and its upload takes seconds before a flash begins.
 */
import { performance } from 'node:perf_hooks';
import type { Logger } from '../log.js';
import { claimKeys, parseClaim, type ClaimValue } from './firmware-claims.js';
import { keepWatching, type KvBucket, type KvEntry } from './kv.js';

/** Another process's firmware claim on a machine or its BMC. */
export interface ClaimHeldElsewhere {
  claim: ClaimValue;
  /** the claim is on the machine's key, or on its BMC (a job of another machine key on the same BMC) */
  on: 'machine' | 'bmc';
  /** settles once the key no longer holds this job's claim */
  ended: Promise<void>;
}

export interface FirmwareClaimView {
  /** starts the watch; resolves once the bucket's keys as they were are known, or after `readyWithinMs` */
  start(): Promise<void>;
  /** another process's live claim on the machine key or on the BMC (`host:port`, empty for none), the machine's first */
  heldElsewhere(subject: { machineKey: string; bmc: string }): ClaimHeldElsewhere | undefined;
  close(): void;
}

export interface FirmwareClaimViewOptions {
  kv: KvBucket;
  /** a claim this process wrote (FirmwareClaims.isOwn) */
  isOwn: (claim: ClaimValue) => boolean;
  logger: Logger;
  /** a claim not renewed for this long no longer counts (firmware-claims.ts `leaseMs`, default 90 s) */
  leaseMs?: number;
  /** the NATS server's time now (ms since the epoch), undefined while not measured (server-clock.ts) */
  serverNow?: () => number | undefined;
  monotonicNow?: () => number;
  readyWithinMs?: number;
  maxKeys?: number;
}

/** a key holding another process's live claim, and who waits for it to end */
interface Held {
  claim: ClaimValue;
  revision: number;
  /** when it stops counting unless renewed (monotonic ms) */
  staleAt: number;
  timer: NodeJS.Timeout;
  ended: Promise<void>;
  end: () => void;
}

const sameJob = (a: ClaimValue, b: ClaimValue) => a.instance === b.instance && a.token === b.token && a.job === b.job;

export function createFirmwareClaimView(o: FirmwareClaimViewOptions): FirmwareClaimView {
  const leaseMs = o.leaseMs ?? 90_000;
  const maxKeys = o.maxKeys ?? 4096;
  const monotonicNow = o.monotonicNow ?? (() => performance.now());
  const held = new Map<string, Held>();
  let closed = false;
  /** the highest revision the watch delivered, and who waits for one */
  let seenRevision = 0;
  let onSeen: (() => void) | undefined;

  function free(key: string): void {
    const h = held.get(key);
    if (!h) return;
    held.delete(key);
    clearTimeout(h.timer);
    h.end();
  }

  function stale(key: string, h: Held): void {
    if (held.get(key) !== h) return;
    o.logger.warn({ claimKey: key, firmwareJob: h.claim.job, firmwareKind: h.claim.kind, instance: h.claim.instance, leaseMs }, "another instance's firmware claim was not renewed for its lease (its instance stopped during the update?); power commands for its machine are no longer held for it");
    free(key);
  }

  /** how long ago the server stored `entry`, where its stamp and the server's time tell it; 0 otherwise */
  function writtenAgo(entry: KvEntry): number {
    const server = o.serverNow?.();
    const stamp = entry.createdMs;
    if (server === undefined || stamp === undefined || !Number.isFinite(stamp)) return 0;
    return Math.max(0, server - stamp);
  }

  function seen(entry: KvEntry): void {
    seenRevision = Math.max(seenRevision, entry.revision);
    onSeen?.();
    const claim = entry.deleted ? undefined : parseClaim(entry.value);
    const before = held.get(entry.key);
    if (claim === undefined || o.isOwn(claim)) return free(entry.key);
    const left = leaseMs - writtenAgo(entry);
    if (left <= 0) return free(entry.key);
    // another job's claim now: who waited for the old one looks again
    if (before && !sameJob(before.claim, claim)) free(entry.key);
    const current = held.get(entry.key);
    if (current) {
      current.claim = claim;
      current.revision = entry.revision;
      // its timer looks at staleAt when it fires, and waits on
      current.staleAt = monotonicNow() + left;
      return;
    }
    let end!: () => void;
    const ended = new Promise<void>((resolve) => (end = resolve));
    const h: Held = { claim, revision: entry.revision, staleAt: monotonicNow() + left, timer: undefined as unknown as NodeJS.Timeout, ended, end };
    h.timer = setTimeout(function check() {
      const wait = h.staleAt - monotonicNow();
      if (wait > 0) {
        h.timer = setTimeout(check, wait);
        h.timer.unref();
        return;
      }
      stale(entry.key, h);
    }, left);
    h.timer.unref();
    held.set(entry.key, h);
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

  return {
    async start() {
      const upTo = await o.kv.lastRevision();
      await watch.start();
      if (seenRevision >= upTo) return;
      const readyWithinMs = o.readyWithinMs ?? 5000;
      const caughtUp = await new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => resolve(false), readyWithinMs);
        onSeen = () => {
          if (seenRevision < upTo) return;
          clearTimeout(timer);
          resolve(true);
        };
      });
      onSeen = undefined;
      if (!caughtUp) o.logger.warn({ bucket: o.kv.bucket, upTo, seen: seenRevision, readyWithinMs }, "firmware claims watch did not deliver the bucket's keys in time; events are taken meanwhile, and a power command may not yet see another instance's running update");
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
      watch.stop();
      for (const key of [...held.keys()]) free(key);
    },
  };
}
