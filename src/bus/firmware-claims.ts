/**
 * One firmware update per machine and per BMC across a partition's instances. A firmware job runs
 * for up to half an hour on the instance that accepted it, also after the partition's lead moved
 * to another instance (a flash is not cut off halfway); the new leader must not start a second
 * update on the same machine or BMC meanwhile. Each running job therefore holds two keys in the
 * partition's key-value bucket `<durable>-firmware` (kv.ts), `machine.<sha256 of the key>` and
 * `bmc.<sha256 of host:port>` (base64url: any machine id or IPv6 address gives a valid key), written
 * by compare-and-set:
 *
 * - **Taking them:** `create`; a key that holds another job's claim refuses this job (BUSY, naming
 *   the other instance and job), unless that claim is stale: not renewed for `leaseMs`. No
 *   holder's clock decides that (its `renewedAt` is only shown: a holder whose clock runs ahead, or
 *   a crafted value, would date its claim in the future, never stale, and every update of that
 *   machine would be refused BUSY forever once its holder died; one whose clock lags would look
 *   stale while it runs). A claim is stale when either
 *   1. the NATS server stored its last write `leaseMs` ago or longer: the write's server stamp
 *      (`KvEntry.createdMs`) against the server's time now as server-clock.ts measures it (to
 *      within a second; not before a measurement, since this host's clock may be far off and
 *      would take a live claim for a stale one): known at the first look, with no holder's clock
 *      in it; a stamp that is no time counts as none. A node of a JetStream cluster that stamps the bucket's writes must
 *      keep within `leaseMs` less `renewMs` (75 s by default) of the node measured, as NTP keeps
 *      them; or
 *   2. this instance has seen the key at the same revision for `leaseMs`, timed on its monotonic
 *      clock from when it first saw that revision (as leader.ts times its lease): right whatever
 *      any clock says, but only at a look a lease after the first. It covers a write dated ahead
 *      of the server's time as measured here (JetStream nodes out of step, a server clock stepped
 *      back, a clock not measured yet), which 1 would take for fresh until that time came; the BUSY
 *      message says the claim is dated ahead then. These sightings are a map of at most
 *      MAX_SIGHTINGS keys, dropped when their key turns out free or taken and oldest first past
 *      that bound.
 *   A stale claim (its instance died during a job) is taken over by compare-and-set on its
 *   revision, with one warning: a renewal that came meanwhile wins. A claim of this instance for
 *   the same job, left by a run that a restart ended, is taken back at once: the job is resumed
 *   (commands/firmware-jobs.ts recover), not a second one started.
 * - **Holding them:** the job's instance rewrites both every `renewMs` on their last revision. A
 *   write of ours whose answer was lost (told by token and job) is continued from its revision; a
 *   key gone (its bucket made again) is written again; one that holds another job's claim (this
 *   one taken over as stale, e.g. after a NATS outage longer than the lease) is one error line,
 *   and the update runs on: the BMC decides.
 * - **Giving them up:** when the job ends, both are deleted on their last revision (or on the one
 *   a write of ours whose answer was lost left). A delete that fails is tried again every
 *   `renewMs` for as long as the key could count elsewhere: the longer of the lease and the longest
 *   `holdMs` the claim wrote. `close()` stops the renewals and those retries, refuses new claims
 *   (UNAVAILABLE) and starts no renewal for a claim under way.
 * - **Outliving its instance:** a job that may have sent the BMC its image writes `holdMs` into
 *   its claim: how long the claim keeps counting after its last write, were its instance to stop
 *   renewing it (its host lost, a restart longer than the lease). That is the time the BMC may
 *   still be flashing, the hold the job's own instance would keep had it lost sight of the update
 *   (commands/firmware-jobs.ts: 15 minutes; a hold's remaining time). A claim is stale only after
 *   the longer of `leaseMs` and its `holdMs` (at most MAX_CLAIM_HOLD_MS, whatever a value says):
 *   a RESET on another instance no longer lands in a flash whose instance went away mid-update.
 *   Durations, not times: the server's stamp and this instance's sightings time them, as the lease.
 * - **Failures:** a claim that cannot be written or read (NATS down) refuses the job
 *   (UNAVAILABLE): an update is not started without knowing that no other instance runs one. The
 *   keys it wrote are deleted (also one whose write's answer was lost), except one this job held
 *   before the claim (taken back from its earlier run, or ours already): the BMC may still be
 *   flashing its update, so that key stays, and ages out after the longer of the lease and its
 *   `holdMs` unless a later claim of the job finds it ours. A claim refused BUSY on its second key
 *   deletes the first whatever it was: the job is left to the instance holding the other key.
 */
import { createHash, randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { BmcError } from '../errors.js';
import type { Logger } from '../log.js';
import { sanitizeName } from './jetstream.js';
import type { KvBucket, KvEntry } from './kv.js';

/** What a job claims: its machine's key (machine id or BMC address) and its BMC's address. */
export interface FirmwareClaimSubject {
  jobId: string;
  kind: string;
  machineKey: string;
  /** the BMC's address; empty when the event named none */
  bmc: string;
  /** ISO 8601: when the job was accepted (shown to other instances that hold power commands for it) */
  since?: string;
  /**
   * how long the claim keeps counting after a write not followed by another (its instance gone
   * while the BMC may still flash), asked at every write; 0 or absent: the lease alone
   */
  holdMs?: () => number;
}

export interface HeldClaim {
  /** deletes the job's keys (waits for it; never rejects) */
  release(): Promise<void>;
  /**
   * writes the claim again now, not at the next renewal: what `holdMs` says changed (the job began
   * to send the BMC its update). Settles once a write begun after the call ended, written or not
   * (a failed write is logged; never rejects), or at the release.
   */
  rewrite(): Promise<void>;
}

export type ClaimOutcome = { held: HeldClaim } | { busy: string };

export interface FirmwareClaims {
  /** takes the job's keys; `busy` describes the other instance's job; rejects (UNAVAILABLE) when the bucket cannot be used */
  claim(subject: FirmwareClaimSubject): Promise<ClaimOutcome>;
  /** a claim this process wrote (firmware-claim-view.ts leaves them to this instance's own jobs) */
  isOwn(claim: ClaimValue): boolean;
  /** stops the renewals of claims still held (their keys turn stale after `leaseMs`); a claim under way then starts none, a new one is refused UNAVAILABLE */
  close(): void;
}

/** The value of a claim key. */
export interface ClaimValue {
  instance: string;
  /** this process's token: a restarted instance's old claims are not taken for its own */
  token: string;
  job: string;
  kind: string;
  /** ms since the epoch, by the holder's clock: shown, never compared (see the header) */
  renewedAt: number;
  /** ISO 8601, by the holder's clock: when the job was accepted (absent from claims of earlier versions) */
  since?: string;
  /** ms: the claim counts this long after its last write even when not renewed (its update may still flash the BMC); see claimLeaseMs */
  holdMs?: number;
}

/** the longest a claim's `holdMs` keeps it counting: a day, the longest hold an instance may be configured for */
export const MAX_CLAIM_HOLD_MS = 24 * 3600_000;

/** How long after its last write a claim stops counting when not renewed: the lease, or its hold where that is longer (bounded). */
export function claimLeaseMs(claim: Pick<ClaimValue, 'holdMs'> | undefined, leaseMs: number): number {
  return Math.max(leaseMs, Math.min(claim?.holdMs ?? 0, MAX_CLAIM_HOLD_MS));
}

/** the key-value bucket of the partition's firmware claims: `<durable>-firmware` */
export function firmwareBucketName(durableName: string): string {
  return `${sanitizeName(durableName)}-firmware`;
}

/** `machine.<sha256>` and `bmc.<sha256>` (base64url): a valid key whatever the id's length and characters */
export function claimKeys(subject: Pick<FirmwareClaimSubject, 'machineKey' | 'bmc'>): string[] {
  const key = (what: string, value: string) => `${what}.${createHash('sha256').update(value, 'utf8').digest('base64url')}`;
  return [key('machine', subject.machineKey), ...(subject.bmc === '' ? [] : [key('bmc', subject.bmc)])];
}

/** The claim in a key's value, or undefined for anything else (a value that is not one is stale). */
export function parseClaim(bytes: Uint8Array): ClaimValue | undefined {
  if (bytes.length > 1024) return undefined;
  try {
    const v = JSON.parse(Buffer.from(bytes).toString('utf8')) as Partial<ClaimValue>;
    const strings = [v.instance, v.token, v.job, v.kind].every((s) => typeof s === 'string' && s.length <= 128);
    const since = v.since === undefined || (typeof v.since === 'string' && v.since.length <= 64);
    if (!(strings && since && typeof v.renewedAt === 'number' && Number.isFinite(v.renewedAt))) return undefined;
    // a hold that is no duration counts as none, the claim as held for its lease (a later version's
    // other form must not free a machine at once); a longer one than the bound is cut by claimLeaseMs
    const { holdMs, ...claim } = v as ClaimValue;
    return typeof holdMs === 'number' && Number.isFinite(holdMs) && holdMs >= 0 ? { ...claim, holdMs } : claim;
  } catch {
    return undefined;
  }
}

export interface FirmwareClaimsOptions {
  kv: KvBucket;
  instanceId: string;
  logger: Logger;
  /** a claim not renewed for this long is stale (default 90 s) */
  leaseMs?: number;
  /** how often a held claim is renewed (default 15 s) */
  renewMs?: number;
  /** the holder's wall clock written as `renewedAt` (tests) */
  now?: () => number;
  /**
   * the NATS server's time now, in ms since the epoch, or undefined while it is not measured
   * (server-clock.ts); default none: then only a lease of sightings here makes a claim stale (this
   * host's unmeasured clock, ahead of the server's, would take a live claim for a stale one)
   */
  serverNow?: () => number | undefined;
  /** a monotonic clock in ms for the sightings (default performance.now: a wall-clock step must not shorten a lease) */
  monotonicNow?: () => number;
}

/** how many keys held by other jobs this instance remembers having seen, and since when */
export const MAX_SIGHTINGS = 1024;
/**
 * A write stamped this far beyond the server's time as measured here is "dated ahead" in the BUSY
 * message; less is the measurement's own uncertainty (server-clock.ts uses one of at most 1 s)
 */
const DATED_AHEAD_MS = 2000;

/** a duration as an operator reads it: seconds up to two minutes, minutes beyond */
function spoken(ms: number): string {
  return ms < 120_000 ? `${Math.round(ms / 1000)} s` : `${Math.round(ms / 60_000)} min`;
}

/** an instant for the log; a holder's `renewedAt` may be beyond what a Date holds (toISOString would throw) */
function isoTime(ms: number): string {
  const d = new Date(ms);
  return Number.isNaN(d.getTime()) ? String(ms) : d.toISOString();
}

/** A key seen holding another job's claim: its revision and server stamp then, and when this instance first saw that (monotonic ms). */
interface Sighting {
  revision: number;
  createdMs: number | undefined;
  firstSeen: number;
}

export function createFirmwareClaims(o: FirmwareClaimsOptions): FirmwareClaims {
  const leaseMs = o.leaseMs ?? 90_000;
  const renewMs = o.renewMs ?? 15_000;
  if (!(renewMs > 0 && leaseMs > renewMs)) throw new BmcError('INVALID_ARGUMENT', `firmware claims: renewMs (${renewMs}) must be positive and below leaseMs (${leaseMs})`);
  const now = o.now ?? Date.now;
  const serverNow = o.serverNow ?? (() => undefined);
  const monotonicNow = o.monotonicNow ?? (() => performance.now());
  const token = randomBytes(8).toString('hex');
  const renewals = new Set<NodeJS.Timeout>();
  /** jobs of this process whose claims were released (the last MAX_SIGHTINGS): a claim of theirs left behind is no other job's */
  const releasedJobs = new Set<string>();
  /** the longest hold each claim's subject has written: how long a key left by a failed delete may still count elsewhere */
  const longestWritten = new WeakMap<FirmwareClaimSubject, number>();
  const encode = (s: FirmwareClaimSubject): Uint8Array => {
    const holdMs = Math.min(MAX_CLAIM_HOLD_MS, Math.max(0, Math.round(s.holdMs?.() ?? 0)));
    longestWritten.set(s, Math.max(holdMs, longestWritten.get(s) ?? 0));
    return Buffer.from(JSON.stringify({ instance: o.instanceId, token, job: s.jobId, kind: s.kind, renewedAt: now(), ...(s.since !== undefined ? { since: s.since } : {}), ...(holdMs > 0 ? { holdMs } : {}) } satisfies ClaimValue));
  };
  /** close() was called: no new claim, no renewal starts */
  let closed = false;
  const unavailable = (err: unknown) => new BmcError('UNAVAILABLE', `cannot claim the firmware update in the partition's key-value bucket ${o.kv.bucket}: ${(err as Error).message}`, { cause: err });

  /** a claim this process wrote */
  const ofThisProcess = (claim: ClaimValue): boolean => claim.token === token && claim.instance === o.instanceId;
  /** a claim of this process for job `s` (one whose write's answer was lost is still ours) */
  const ours = (bytes: Uint8Array, s: FirmwareClaimSubject): boolean => {
    const v = parseClaim(bytes);
    return v !== undefined && ofThisProcess(v) && v.job === s.jobId;
  };
  /** the key's revision if it holds our claim for `s` now */
  async function ourRevision(key: string, s: FirmwareClaimSubject): Promise<number | undefined> {
    const entry = await o.kv.get(key);
    return entry && !entry.deleted && ours(entry.value, s) ? entry.revision : undefined;
  }

  /** keys seen holding another job's claim, in the order their revision was first seen (the oldest first) */
  const sightings = new Map<string, Sighting>();
  /** how long this instance has seen `entry` unchanged (0 at its first sighting, which is remembered) */
  function unchangedFor(key: string, entry: KvEntry, stamp: number | undefined): number {
    const t = monotonicNow();
    const seen = sightings.get(key);
    if (seen && seen.revision === entry.revision && seen.createdMs === stamp) return t - seen.firstSeen;
    sightings.delete(key);
    sightings.set(key, { revision: entry.revision, createdMs: stamp, firstSeen: t });
    for (const oldest of sightings.keys()) {
      if (sightings.size <= MAX_SIGHTINGS) break;
      sightings.delete(oldest);
    }
    return 0;
  }

  /**
   * The BUSY text for another job's claim, its last write `writtenAgoMs` ago by the server's clock
   * (negative: dated ahead), and seen unchanged here for `unchangedMs`.
   */
  function describe(other: ClaimValue, writtenAgoMs: number | undefined, unchangedMs: number): string {
    const claimLease = claimLeaseMs(other, leaseMs);
    const lease = Math.round(claimLease / 1000);
    const holding = claimLease > leaseMs ? `; its update may still be flashing the BMC, so the claim counts ${spoken(claimLease)} past its last write even if its instance is gone` : '';
    const datedAhead = writtenAgoMs !== undefined && writtenAgoMs < -DATED_AHEAD_MS;
    const when =
      writtenAgoMs === undefined
        ? ', written at a time not known here (no server stamp, or the NATS server\'s clock not measured yet)'
        : datedAhead
          ? `, dated ${Math.round(-writtenAgoMs / 1000)} s ahead of the NATS server's clock as measured here (clocks out of step?)`
          : `, renewed ${Math.max(0, Math.round(writtenAgoMs / 1000))} s ago`;
    const earlierRun = other.instance === o.instanceId && other.token !== token ? ', an earlier run of this instance' : '';
    // where the server's stamp does not tell when the claim turns stale, its lease is timed here from the first look
    if (writtenAgoMs === undefined || datedAhead) return `job ${other.job} (${other.kind}) on instance ${other.instance}${when}${earlierRun}${holding}: free once seen unchanged for ${lease} s (${Math.floor(unchangedMs / 1000)} s so far)`;
    return `job ${other.job} (${other.kind}) on instance ${other.instance}${when}${earlierRun}${holding}${earlierRun ? `: free once not renewed for ${lease} s` : ''}`;
  }

  /**
   * One key: its new revision, or the other job's description. A key that this job held before
   * this claim (this job's own claim, left by the run of this instance that a restart ended, or
   * ours already from an earlier attempt) goes into `kept`, also when the write that takes it back
   * fails in transport (the server may have stored it): the machine may be mid-flash, so a failed
   * claim must not delete it (see `claim`).
   */
  async function take(key: string, s: FirmwareClaimSubject, kept: Set<string>): Promise<number | string> {
    for (let attempt = 0; attempt < 3; attempt++) {
      const created = await o.kv.create(key, encode(s));
      if (created !== undefined) return forget(key, created);
      const entry = await o.kv.get(key);
      if (entry === undefined || entry.deleted) {
        sightings.delete(key); // released meanwhile: create again
        continue;
      }
      if (ours(entry.value, s)) {
        // our own write, its answer lost on the way, or left by an earlier attempt of this job (a
        // claim that failed keeps what it took back): held before this claim, kept as it was
        kept.add(key);
        return forget(key, entry.revision);
      }
      const other = parseClaim(entry.value);
      // a job of this process that ended, whose delete did not reach the bucket (NATS away): nothing holds the machine
      if (other && ofThisProcess(other) && releasedJobs.has(other.job)) {
        const after = await o.kv.update(key, encode(s), entry.revision);
        if (after === undefined) continue;
        return forget(key, after);
      }
      // this job's own claim, left by the run of this instance that a restart ended: the job is resumed here
      if (other && other.instance === o.instanceId && other.job === s.jobId) {
        kept.add(key); // before the write: one whose answer is lost may be stored, and is still this job's hold
        const resumed = await o.kv.update(key, encode(s), entry.revision);
        if (resumed === undefined) {
          kept.delete(key); // changed meanwhile: look again
          continue;
        }
        return forget(key, resumed);
      }
      // a stamp that is no time (a header missing or malformed) tells nothing: NaN would compare as stale
      const stamp = entry.createdMs !== undefined && Number.isFinite(entry.createdMs) ? entry.createdMs : undefined;
      const serverTime = serverNow();
      const writtenAgoMs = stamp === undefined || serverTime === undefined ? undefined : serverTime - stamp;
      const unchangedMs = unchangedFor(key, entry, stamp);
      const otherLease = claimLeaseMs(other, leaseMs);
      if (other && (writtenAgoMs === undefined || writtenAgoMs < otherLease) && unchangedMs < otherLease) return describe(other, writtenAgoMs, unchangedMs);
      const taken = await o.kv.update(key, encode(s), entry.revision);
      if (taken === undefined) continue; // renewed or taken meanwhile: look again
      o.logger.warn(
        { claimKey: key, job: s.jobId, staleJob: other?.job, staleInstance: other?.instance, renewedAt: other ? isoTime(other.renewedAt) : undefined, writtenAgoMs: writtenAgoMs === undefined ? undefined : Math.round(writtenAgoMs), unchangedHereMs: Math.round(unchangedMs) },
        'firmware claim of another job not renewed for its lease (its instance stopped during the update?); taken over',
      );
      return forget(key, taken);
    }
    return 'a claim that changed three times while it was read';
  }

  /** a key taken: what was seen of another job's claim there is over */
  function forget(key: string, revision: number): number {
    sightings.delete(key);
    return revision;
  }

  /** deletes our claim of `s` at `key` (at `revision`, or at the one it has now if still ours) */
  async function drop(key: string, revision: number | undefined, s: FirmwareClaimSubject): Promise<void> {
    try {
      if (revision !== undefined && (await o.kv.delete(key, revision))) return;
      // a renewal (or the claim itself) stored although its answer was lost: its revision is newer
      const current = await ourRevision(key, s);
      if (current !== undefined) await o.kv.delete(key, current);
    } catch (err) {
      o.logger.warn({ err, claimKey: key, job: s.jobId }, 'cannot delete a firmware claim (NATS away?); tried again every renewal period, meanwhile other instances hold its machine');
      // as long as the longest hold it wrote counts: the job may say less now (its update did not begin after all)
      const written = longestWritten.get(s) ?? 0;
      dropLater(key, s, monotonicNow() + claimLeaseMs(written > 0 ? { holdMs: written } : undefined, leaseMs));
    }
  }

  /** deletes left behind by an outage: tried again every renewMs while the claim could still hold its machine elsewhere */
  const laterDrops = new Set<NodeJS.Timeout>();
  function dropLater(key: string, s: FirmwareClaimSubject, until: number): void {
    const timer = setTimeout(() => {
      laterDrops.delete(timer);
      void (async () => {
        try {
          const current = await ourRevision(key, s);
          if (current !== undefined) await o.kv.delete(key, current);
        } catch {
          if (monotonicNow() < until) dropLater(key, s, until);
        }
      })();
    }, renewMs);
    timer.unref();
    laterDrops.add(timer);
  }

  return {
    async claim(s) {
      if (closed) throw unavailable(new Error('the claims are closed (metal-bmc is stopping)'));
      const keys = claimKeys(s);
      const revisions = new Map<string, number>();
      /** keys this job held before this claim (`take`) */
      const kept = new Set<string>();
      try {
        for (const key of keys) {
          const got = await take(key, s, kept);
          if (typeof got === 'string') {
            // every key taken, also one taken back from this job's earlier run: the job is left to
            // the other instance, which holds its BMC (the caller ends it here, commands/firmware-jobs.ts claimAgain)
            await Promise.all([...revisions].map(([k, r]) => drop(k, r, s)));
            return { busy: got };
          }
          revisions.set(key, got);
        }
      } catch (err) {
        // every key this claim wrote, also one whose write failed in transport after the server
        // stored it; not one this job held before (taken back from its earlier run): its update may
        // still flash the BMC, so the key stays until it ages out, max(lease, its holdMs) after its
        // write, or a later claim of the job finds it ours
        await Promise.all(keys.filter((k) => !kept.has(k)).map((k) => drop(k, revisions.get(k), s)));
        throw unavailable(err);
      }
      let released = false;
      const renew = async () => {
        for (const [key, revision] of revisions) {
          if (released) return;
          try {
            const next = await o.kv.update(key, encode(s), revision);
            if (next !== undefined) {
              revisions.set(key, next);
              continue;
            }
            if (released) return;
            const entry = await o.kv.get(key);
            if (entry && !entry.deleted && ours(entry.value, s)) {
              // an earlier renewal stored although its answer was lost: renewed from its revision next time
              revisions.set(key, entry.revision);
              continue;
            }
            if (entry === undefined || entry.deleted) {
              // gone (its bucket made again, emptied): claimed again
              const again = await o.kv.create(key, encode(s));
              if (again !== undefined) {
                revisions.set(key, again);
                o.logger.warn({ claimKey: key, job: s.jobId }, 'firmware claim was gone from its bucket (made again?); written again');
                continue;
              }
            }
            o.logger.error({ claimKey: key, job: s.jobId }, 'firmware claim taken by another instance while the update runs here (not renewed for its lease); the update goes on');
            revisions.delete(key);
          } catch (err) {
            o.logger.warn({ err, claimKey: key, job: s.jobId }, 'cannot renew a firmware claim; trying again');
          }
        }
      };
      // one renewal at a time; a release waits for the one under way, whose revision it deletes
      let renewing: Promise<void> | undefined;
      /** asked for while one ran: it ran with what was true before */
      let again = false;
      /** rewrites waiting for a renewal that begins after they asked (`rewrite`) */
      let waiting: Array<() => void> = [];
      const renewOnce = (): void => {
        if (renewing) {
          again = true;
          return;
        }
        const served = waiting;
        waiting = [];
        renewing = renew().finally(() => {
          renewing = undefined;
          for (const done of served) done();
          if (again && !released) {
            again = false;
            renewOnce();
          }
        });
      };
      // none once closed (a claim that was under way at the close): its keys turn stale as the others' do
      const timer = closed
        ? undefined
        : setInterval(() => {
            if (!renewing) renewOnce();
          }, renewMs);
      timer?.unref();
      if (timer) renewals.add(timer);
      return {
        held: {
          async release() {
            released = true;
            releasedJobs.add(s.jobId);
            if (releasedJobs.size > MAX_SIGHTINGS) releasedJobs.delete(releasedJobs.values().next().value!);
            if (timer) {
              clearInterval(timer);
              renewals.delete(timer);
            }
            // a renewal asked for again after the one under way starts from its finally: waited for too
            while (renewing) await renewing;
            for (const done of waiting.splice(0)) done();
            await Promise.all([...revisions].map(([k, r]) => drop(k, r, s)));
          },
          rewrite() {
            if (released) return Promise.resolve();
            const written = new Promise<void>((resolve) => waiting.push(resolve));
            renewOnce();
            return written;
          },
        },
      };
    },
    isOwn: ofThisProcess,
    close() {
      closed = true;
      for (const timer of renewals) clearInterval(timer);
      renewals.clear();
      for (const timer of laterDrops) clearTimeout(timer);
      laterDrops.clear();
    },
  };
}
