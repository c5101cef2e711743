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
 *   the other instance and job), unless that claim is stale: not renewed for `leaseMs` by the
 *   wall clock its holder wrote (`renewedAt`). A stale claim (its instance died during a job) is
 *   taken over by compare-and-set on its revision, with one warning. Instances compare wall
 *   clocks here, unlike the leader's lease: the check runs once per update, with nothing to watch
 *   for a lease time, so clocks must agree within `leaseMs` less `renewMs` (75 s by default; NTP
 *   keeps management servers far closer).
 * - **Holding them:** the job's instance rewrites both every `renewMs` on their last revision. A
 *   write of ours whose answer was lost (told by token and job) is continued from its revision; a
 *   key gone (its bucket made again) is written again; one that holds another job's claim (this
 *   one taken over as stale, e.g. after a NATS outage longer than the lease) is one error line,
 *   and the update runs on: the BMC decides.
 * - **Giving them up:** when the job ends, both are deleted on their last revision (or on the one
 *   a write of ours whose answer was lost left).
 * - **Failures:** a claim that cannot be written or read (NATS down) refuses the job
 *   (UNAVAILABLE): an update is not started without knowing that no other instance runs one.
 */
import { createHash, randomBytes } from 'node:crypto';
import { BmcError } from '../errors.js';
import type { Logger } from '../log.js';
import { sanitizeName } from './jetstream.js';
import type { KvBucket } from './kv.js';

/** What a job claims: its machine's key (machine id or BMC address) and its BMC's address. */
export interface FirmwareClaimSubject {
  jobId: string;
  kind: string;
  machineKey: string;
  /** the BMC's address; empty when the event named none */
  bmc: string;
}

export interface HeldClaim {
  /** deletes the job's keys (waits for it; never rejects) */
  release(): Promise<void>;
}

export type ClaimOutcome = { held: HeldClaim } | { busy: string };

export interface FirmwareClaims {
  /** takes the job's keys; `busy` describes the other instance's job; rejects (UNAVAILABLE) when the bucket cannot be used */
  claim(subject: FirmwareClaimSubject): Promise<ClaimOutcome>;
  /** stops the renewals of claims still held (their keys turn stale after `leaseMs`) */
  close(): void;
}

/** The value of a claim key. */
export interface ClaimValue {
  instance: string;
  /** this process's token: a restarted instance's old claims are not taken for its own */
  token: string;
  job: string;
  kind: string;
  /** ms since the epoch, by the holder's clock */
  renewedAt: number;
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
    return strings && typeof v.renewedAt === 'number' && Number.isFinite(v.renewedAt) ? (v as ClaimValue) : undefined;
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
  /** the wall clock (tests) */
  now?: () => number;
}

export function createFirmwareClaims(o: FirmwareClaimsOptions): FirmwareClaims {
  const leaseMs = o.leaseMs ?? 90_000;
  const renewMs = o.renewMs ?? 15_000;
  if (!(renewMs > 0 && leaseMs > renewMs)) throw new BmcError('INVALID_ARGUMENT', `firmware claims: renewMs (${renewMs}) must be positive and below leaseMs (${leaseMs})`);
  const now = o.now ?? Date.now;
  const token = randomBytes(8).toString('hex');
  const renewals = new Set<NodeJS.Timeout>();
  const encode = (s: FirmwareClaimSubject): Uint8Array => Buffer.from(JSON.stringify({ instance: o.instanceId, token, job: s.jobId, kind: s.kind, renewedAt: now() } satisfies ClaimValue));
  const unavailable = (err: unknown) => new BmcError('UNAVAILABLE', `cannot claim the firmware update in the partition's key-value bucket ${o.kv.bucket}: ${(err as Error).message}`, { cause: err });

  /** a claim of this process for job `s` (one whose write's answer was lost is still ours) */
  const ours = (bytes: Uint8Array, s: FirmwareClaimSubject): boolean => {
    const v = parseClaim(bytes);
    return v !== undefined && v.token === token && v.instance === o.instanceId && v.job === s.jobId;
  };
  /** the key's revision if it holds our claim for `s` now */
  async function ourRevision(key: string, s: FirmwareClaimSubject): Promise<number | undefined> {
    const entry = await o.kv.get(key);
    return entry && !entry.deleted && ours(entry.value, s) ? entry.revision : undefined;
  }

  /** one key: its new revision, or the other job's description */
  async function take(key: string, s: FirmwareClaimSubject): Promise<number | string> {
    for (let attempt = 0; attempt < 3; attempt++) {
      const created = await o.kv.create(key, encode(s));
      if (created !== undefined) return created;
      const entry = await o.kv.get(key);
      if (entry === undefined || entry.deleted) continue; // released meanwhile: create again
      if (ours(entry.value, s)) return entry.revision; // our own write, its answer lost on the way
      const other = parseClaim(entry.value);
      const age = other ? now() - other.renewedAt : Infinity;
      if (other && age < leaseMs) {
        const earlierRun = other.instance === o.instanceId && other.token !== token ? `, an earlier run of this instance: free once not renewed for ${Math.round(leaseMs / 1000)} s` : '';
        return `job ${other.job} (${other.kind}) on instance ${other.instance}, renewed ${Math.max(0, Math.round(age / 1000))} s ago${earlierRun}`;
      }
      const taken = await o.kv.update(key, encode(s), entry.revision);
      if (taken === undefined) continue; // renewed or taken meanwhile: look again
      o.logger.warn({ key, job: s.jobId, staleJob: other?.job, staleInstance: other?.instance, renewedAt: other ? new Date(other.renewedAt).toISOString() : undefined }, 'firmware claim of another job not renewed for its lease (its instance stopped during the update?); taken over');
      return taken;
    }
    return 'a claim that changed three times while it was read';
  }

  /** deletes our claim of `s` at `key` (at `revision`, or at the one it has now if still ours) */
  async function drop(key: string, revision: number | undefined, s: FirmwareClaimSubject): Promise<void> {
    try {
      if (revision !== undefined && (await o.kv.delete(key, revision))) return;
      // a renewal (or the claim itself) stored although its answer was lost: its revision is newer
      const current = await ourRevision(key, s);
      if (current !== undefined) await o.kv.delete(key, current);
    } catch (err) {
      o.logger.warn({ err, key }, 'cannot delete a firmware claim; it turns stale after its lease');
    }
  }

  return {
    async claim(s) {
      const keys = claimKeys(s);
      const revisions = new Map<string, number>();
      try {
        for (const key of keys) {
          const got = await take(key, s);
          if (typeof got === 'string') {
            await Promise.all([...revisions].map(([k, r]) => drop(k, r, s)));
            return { busy: got };
          }
          revisions.set(key, got);
        }
      } catch (err) {
        // every key, also one whose write failed in transport after the server stored it
        await Promise.all(keys.map((k) => drop(k, revisions.get(k), s)));
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
                o.logger.warn({ key, job: s.jobId }, 'firmware claim was gone from its bucket (made again?); written again');
                continue;
              }
            }
            o.logger.error({ key, job: s.jobId }, 'firmware claim taken by another instance while the update runs here (not renewed for its lease); the update goes on');
            revisions.delete(key);
          } catch (err) {
            o.logger.warn({ err, key, job: s.jobId }, 'cannot renew a firmware claim; trying again');
          }
        }
      };
      // one renewal at a time; a release waits for the one under way, whose revision it deletes
      let renewing: Promise<void> | undefined;
      const timer = setInterval(() => {
        renewing ??= renew().finally(() => (renewing = undefined));
      }, renewMs);
      timer.unref();
      renewals.add(timer);
      return {
        held: {
          async release() {
            released = true;
            clearInterval(timer);
            renewals.delete(timer);
            await renewing;
            await Promise.all([...revisions].map(([k, r]) => drop(k, r, s)));
          },
        },
      };
    },
    close() {
      for (const timer of renewals) clearInterval(timer);
      renewals.clear();
    },
  };
}
