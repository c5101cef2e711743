/**
 * One owner per console across metal-bmc instances (issue 13, item 4), decided in a JetStream
 * key-value bucket (kv.ts) with two kinds of keys:
 *
 * - `lease.<instance>`: each instance's heartbeat, rewritten every `heartbeatMs` (compare-and-set
 *   on its own last revision, so a second process with the same instance id is noticed);
 * - `claim.<machine>`: the instance that holds the machine's console, created with CAS.
 *
 * Writes: one heartbeat per instance every few seconds, and one claim write per machine when
 * it is first claimed, taken over or released; 1,000 machines cost no steady writes at all.
 * Reads: one watch over the bucket keeps a local view of every key.
 *
 * An instance is dead for the others when they saw no renewal of its lease for `leaseMs`
 * (timed on their own clock: no clock is compared across hosts), or its lease was deleted.
 * Claims naming a dead instance are taken over by CAS on the claim's revision, so of two
 * survivors one wins. An instance whose last successful renewal was sent more than `fenceMs`
 * (< leaseMs) ago holds nothing any more ("fenced") before the others may take over; after it
 * renews again it re-asserts each claim by CAS before holding it (one taken over meanwhile is lost).
 * An instance holds exactly the claims it wrote (or re-asserted) in its current lease.
 *
 * Spread: an instance claims a machine nobody holds at once only while it holds fewer than its
 * fair share (its wanted machines / the live instances, from the lease keys, rounded up); past it,
 * it waits one lease time for the machine (another instance under its share takes it first),
 * then claims it if it is still free. A live owner's claim is never taken.
 *
 * The bucket made again (deleted by hand, lost with a server's state; kv.ts makes it again, empty,
 * when opened with `onRemade`): every key is gone and revisions count from 1. An instance that
 * made it (`bucketRemade()`), or whose renewal finds its lease key gone or older than its own last
 * write, starts over: it holds no console, forgets its view, watches the new bucket, and claims its
 * machines again once `leaseMs` has passed (by then every other instance noticed too, at its next
 * renewal, or is fenced: none still holds a claim of the old bucket); until then it is not live (it
 * knows no holder, so no console is opened as "free"). The watch is started again every second
 * after it ends.
 */
import { performance } from 'node:perf_hooks';
import { BmcError } from '../errors.js';
import type { Logger } from '../log.js';
import { keepWatching, type KvBucket, type KvEntry } from './kv.js';

/** what an instance id and a claim's value may be: also a NATS subject token */
const INSTANCE_RE = /^[A-Za-z0-9_-]{1,64}$/;
/** machine ids that fit a key (metal-stack's are UUIDs) */
const MACHINE_RE = /^[A-Za-z0-9_-]{1,128}$/;
/** bounds of the local view of the bucket (a partition has a few instances and at most thousands of machines) */
const MAX_INSTANCES = 1024;
const MAX_CLAIMS = 100_000;

export function isValidInstanceId(id: string): boolean {
  return INSTANCE_RE.test(id);
}

export function encodeOwner(instance: string): Uint8Array {
  return Buffer.from(instance, 'utf8');
}

/** The instance a claim or lease value names, or undefined for anything else (bounded, never throws). */
export function decodeOwner(value: Uint8Array): string | undefined {
  if (value.length === 0 || value.length > 64) return undefined;
  const text = Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('latin1');
  return INSTANCE_RE.test(text) ? text : undefined;
}

export const claimKey = (machine: string) => `claim.${machine}`;
export const leaseKey = (instance: string) => `lease.${instance}`;

export interface OwnershipOptions {
  kv: KvBucket;
  instanceId: string;
  /** an instance without a renewal for this long is dead (default 30 s) */
  leaseMs?: number;
  /** renewal interval, default leaseMs / 6 */
  heartbeatMs?: number;
  /** stop holding after this long without a successful renewal, default leaseMs * 2/3 */
  fenceMs?: number;
  logger: Logger;
  /** told the set of machines this instance holds whenever it changes */
  onChange?: (owned: ReadonlySet<string>) => void;
  /** claim writes at once, default 32 */
  concurrency?: number;
  /** a monotonic clock in ms (tests); default performance.now */
  now?: () => number;
}

export interface ConsoleOwnership {
  readonly instanceId: string;
  /** the machines this instance should hold when nobody else does (its reported machines) */
  setWanted(ids: Iterable<string>): void;
  /** the machines this instance holds now (empty while fenced) */
  owned(): ReadonlySet<string>;
  /** the live instance holding the machine (this one included), undefined when none is known */
  ownerOf(machine: string): string | undefined;
  /** false while this instance cannot renew its lease, and while it starts over on a bucket made again (it knows no holder then) */
  live(): boolean;
  /**
   * whether this instance's view of the others is current: its own heartbeats come back through its
   * watch. A stalled watch sees every other lease grow old, and would call their consoles free.
   */
  viewCurrent(): boolean;
  /** the instances whose lease is live as this one sees them, itself included (the fair share's divisor) */
  liveInstances(): number;
  /** one renewal and one claim round (the timer runs them; tests call it directly) */
  tick(): Promise<void>;
  /** the bucket was made again by this instance's own read or write (kv.ts `onRemade`): start over on it */
  bucketRemade(): void;
  /** gives up every claim and the lease, so another instance takes over at once */
  close(): Promise<void>;
}

interface LeaseView {
  revision: number;
  deleted: boolean;
  /** local time the revision was first seen */
  seenAt: number;
}

interface ClaimView {
  owner: string | undefined;
  revision: number;
  deleted: boolean;
}

async function eachLimited<T>(items: readonly T[], limit: number, run: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await run(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

export interface StartOptions {
  /** run the renewal round every heartbeatMs (default true; unit tests call tick() themselves) */
  timer?: boolean;
}

export function createConsoleOwnership(o: OwnershipOptions): ConsoleOwnership & { start(options?: StartOptions): Promise<void> } {
  if (!isValidInstanceId(o.instanceId)) throw new BmcError('INVALID_ARGUMENT', `createConsoleOwnership: instance id must match ${INSTANCE_RE.source}`);
  const me = o.instanceId;
  const leaseMs = o.leaseMs ?? 30_000;
  const heartbeatMs = o.heartbeatMs ?? Math.max(50, Math.floor(leaseMs / 6));
  const fenceMs = o.fenceMs ?? Math.floor((leaseMs * 2) / 3);
  if (!(heartbeatMs * 2 < fenceMs && fenceMs < leaseMs)) throw new BmcError('INVALID_ARGUMENT', 'createConsoleOwnership: need heartbeatMs * 2 < fenceMs < leaseMs');
  // a monotonic clock, as the leader's: a wall-clock step back would stretch a cut-off owner's fence past the others' takeover
  const now = o.now ?? (() => performance.now());
  const log = o.logger.child({ module: 'console-owners', instance: me });
  const limit = o.concurrency ?? 32;
  const leases = new Map<string, LeaseView>();
  const claims = new Map<string, ClaimView>();
  /** claims this instance wrote in its current lease: machine → revision */
  const confirmed = new Map<string, number>();
  const refused = new Set<string>();
  let wanted = new Set<string>();
  let ownRevision: number | undefined;
  let renewedAt: number | undefined;
  let watchingSince = now();
  let timer: NodeJS.Timeout | undefined;
  let closed = false;
  let fencedLogged = false;
  let lastOwned = new Set<string>();
  let renewing: Promise<void> | undefined;
  let claiming: Promise<void> | undefined;
  let watchdog: NodeJS.Timeout | undefined;
  let conflictUntil = 0;
  /** free machines this instance left to the others because it held its fair share: since when */
  const deferred = new Map<string, number>();
  /** claims of free machines under way (they count towards the share before they are confirmed) */
  let freshClaims = 0;
  /** counts the bucket's remakes seen: a write answered after one belongs to the old bucket's view */
  let generation = 0;
  /** after a remake, no claim before this time: another instance may still hold the old bucket's claims until it notices or is fenced */
  let claimsFrom = 0;
  /** when the last remake was taken in: the writes in flight as the bucket went each find it gone, one warning for all */
  let remadeAt: number | undefined;
  /** claims naming this instance that it neither holds nor wants: since when (released after a lease time) */
  const staleSince = new Map<string, number>();
  /** the highest revision of our lease key we wrote (kept across a conflict): a lease key found older, or gone, means a remade bucket */
  let leaseWritten: number | undefined;

  let boundLogged = false;
  /** a bucket with more keys than any partition has: someone else writes into it; the rest is ignored */
  function bounded(what: 'instances' | 'claims'): void {
    if (boundLogged) return;
    boundLogged = true;
    log.error({ what, max: what === 'claims' ? MAX_CLAIMS : MAX_INSTANCES }, 'console ownership bucket holds more keys than expected; the rest is ignored');
  }

  const fenced = () => renewedAt === undefined || now() - renewedAt > fenceMs;

  function emit(): void {
    const owned = fenced() ? new Set<string>() : new Set(confirmed.keys());
    if (owned.size === lastOwned.size && [...owned].every((id) => lastOwned.has(id))) return;
    lastOwned = owned;
    o.onChange?.(owned);
  }

  /** our own heartbeats come back through the watch: without that, our view of the others is stale */
  function viewFresh(): boolean {
    const mine = leases.get(me);
    return mine !== undefined && !mine.deleted && now() - mine.seenAt <= Math.max(2 * heartbeatMs, fenceMs / 2);
  }

  function dead(instance: string | undefined): boolean {
    if (instance === undefined) return true;
    if (instance === me) return false;
    const lease = leases.get(instance);
    if (lease?.deleted) return true;
    return now() - (lease?.seenAt ?? watchingSince) > leaseMs;
  }

  /**
   * forgets one instance that left (its lease deleted); false when none did. Not one merely dead by
   * time: forgotten, it would count as alive again for a lease time after a restarted watch.
   */
  function evictGoneInstance(): boolean {
    for (const [instance, lease] of leases) {
      if (instance !== me && lease.deleted) {
        leases.delete(instance);
        return true;
      }
    }
    return false;
  }

  function seen(e: KvEntry): void {
    if (e.key.startsWith('lease.')) {
      const instance = e.key.slice(6);
      const before = leases.get(instance);
      // a lease key stays in the bucket as a delete marker after its instance left: with an id per
      // start (host names in containers) they pile up, so a gone instance makes room for a new one
      if (!before && leases.size >= MAX_INSTANCES && !evictGoneInstance()) return bounded('instances');
      if (!before || e.revision > before.revision) leases.set(instance, { revision: e.revision, deleted: e.deleted, seenAt: now() });
      return;
    }
    if (!e.key.startsWith('claim.')) return;
    const machine = e.key.slice(6);
    const before = claims.get(machine);
    if (before && e.revision <= before.revision) return;
    if (!before && claims.size >= MAX_CLAIMS) return bounded('claims');
    const owner = e.deleted ? undefined : decodeOwner(e.value);
    claims.set(machine, { owner, revision: e.revision, deleted: e.deleted });
    const mine = confirmed.get(machine);
    if (mine !== undefined && e.revision > mine && owner !== me) {
      confirmed.delete(machine);
      log.warn({ machineId: machine, owner }, 'console claim taken by another instance');
      emit();
    }
  }

  /** instances whose lease is live, this one included */
  function liveInstances(): number {
    let n = 1;
    for (const [instance, lease] of leases) if (instance !== me && !lease.deleted && !dead(instance)) n++;
    return n;
  }

  /** whether a free machine is this instance's to claim now (see "Spread" above) */
  function mayClaimFree(machine: string): boolean {
    const share = Math.ceil(wanted.size / liveInstances());
    if (confirmed.size + freshClaims < share) return true;
    const since = deferred.get(machine);
    if (since === undefined) {
      deferred.set(machine, now());
      return false;
    }
    return now() - since >= leaseMs;
  }

  /** our lease key absent, or older than our last write (a key is never removed, only marked deleted): the bucket was made again */
  const leaseLost = (current: KvEntry | undefined, written: number) => current === undefined || current.revision < written;

  /** A refused renewal: the bucket made again (by another instance) starts this one over. */
  async function leaseGone(expected: number, before: number): Promise<boolean> {
    const current = await o.kv.get(leaseKey(me));
    if (generation !== before) return true;
    if (!leaseLost(current, expected)) return false;
    remade();
    return true;
  }

  /** The bucket was made again: nothing seen of it holds, no claim of ours is in it; start over on it. */
  function remade(): void {
    // told once for the writes in flight as the bucket went (each finds it gone); each still starts over, a second remake may follow
    if (remadeAt === undefined || now() - remadeAt >= heartbeatMs) log.warn({ claims: confirmed.size }, 'the console ownership bucket was made again (deleted, or lost with a server\'s state); holding no console until this instance has claimed again');
    remadeAt = now();
    generation++;
    leases.clear();
    claims.clear();
    confirmed.clear();
    deferred.clear();
    staleSince.clear();
    ownRevision = undefined;
    leaseWritten = undefined;
    watchingSince = now();
    // a lease time, as a takeover waits: an instance cut off just before the remake is fenced well before it
    claimsFrom = now() + leaseMs;
    emit();
    watch.restart();
  }

  /** The watch over the bucket, started again a second after it ends (the bucket made again, a server restarted). */
  const watch = keepWatching({ kv: o.kv, onEntry: (e) => seen(e), onEnded: (err) => log.warn({ err }, 'console ownership watch ended; starting it again'), closed: () => closed });

  async function renew(): Promise<void> {
    if (now() < conflictUntil) return;
    const sentAt = now();
    const value = encodeOwner(me);
    let revision: number | undefined;
    const before = generation;
    if (ownRevision === undefined) {
      // our lease from an earlier run (same instance id) is ours to continue
      const current = await o.kv.get(leaseKey(me));
      if (generation !== before) return;
      if (leaseWritten !== undefined && leaseLost(current, leaseWritten)) return remade();
      revision = current && !current.deleted ? await o.kv.update(leaseKey(me), value, current.revision) : await o.kv.create(leaseKey(me), value);
      if (generation !== before) return;
    } else {
      const expected = ownRevision;
      revision = await o.kv.update(leaseKey(me), value, expected);
      if (generation !== before) return;
      if (revision === undefined && (await leaseGone(expected, before))) return;
      if (revision === undefined) {
        log.error({ instance: me }, 'another process renews this instance\'s lease: two metal-bmc instances share METAL_BMC_INSTANCE_ID; holding no console for a lease time, then trying again');
        ownRevision = undefined;
        // not renewing for a lease time lets the other process go on alone instead of taking turns with it
        conflictUntil = now() + leaseMs;
        return;
      }
    }
    if (revision === undefined) return;
    ownRevision = revision;
    leaseWritten = Math.max(leaseWritten ?? 0, revision);
    if (fenced()) confirmed.clear();
    renewedAt = sentAt;
    fencedLogged = false;
  }

  async function claim(machine: string): Promise<void> {
    // a round running as the bucket was made again claims nothing more until the others let go
    if (now() < claimsFrom) return;
    const before = generation;
    const key = claimKey(machine);
    const c = claims.get(machine);
    const mine = confirmed.get(machine);
    let revision: number | undefined;
    if (!c || c.deleted) {
      if (!mayClaimFree(machine)) return;
      freshClaims++;
      try {
        revision = c ? await o.kv.update(key, encodeOwner(me), c.revision) : await o.kv.create(key, encodeOwner(me));
      } finally {
        freshClaims--;
      }
      deferred.delete(machine);
    } else if (c.owner === me) {
      if (mine === c.revision) return;
      // written in an earlier lease of ours: re-assert before holding it
      revision = await o.kv.update(key, encodeOwner(me), c.revision);
    } else if (dead(c.owner) && viewFresh()) {
      revision = await o.kv.update(key, encodeOwner(me), c.revision);
      if (revision !== undefined) log.info({ machineId: machine, from: c.owner }, 'console taken over from a dead instance');
    } else {
      return;
    }
    // a write across a remake is re-asserted in the next round, against the new bucket's view
    if (revision === undefined || fenced() || closed || generation !== before) return;
    confirmed.set(machine, revision);
    const latest = claims.get(machine);
    if (!latest || latest.revision < revision) claims.set(machine, { owner: me, revision, deleted: false });
  }

  async function release(machine: string): Promise<void> {
    const revision = confirmed.get(machine);
    confirmed.delete(machine);
    if (revision === undefined) return;
    // not stale for releaseStale: it is being released here
    const c = claims.get(machine);
    if (c && c.revision === revision) claims.set(machine, { ...c, deleted: true });
    await o.kv.delete(claimKey(machine), revision).catch((err: unknown) => log.warn({ err, machineId: machine }, 'console claim not released'));
  }

  /**
   * Claims naming this instance that it does not hold and has not wanted for a lease time: written
   * by an earlier run under this id (a crash, no release) for a machine no longer reported, or by a
   * write answered across a remake. The others take a live instance's claim never, so left alone
   * such a machine's console would have no holder. A lease time, so that a restart's first report,
   * still listing its machines, does not give away what it will claim again.
   */
  async function releaseStale(): Promise<void> {
    const before = generation;
    const isStale = (machine: string, c: ClaimView) => c.owner === me && !c.deleted && !confirmed.has(machine) && !wanted.has(machine);
    const due: Array<[string, ClaimView]> = [];
    for (const [machine, c] of claims) {
      if (!isStale(machine, c)) continue;
      const since = staleSince.get(machine) ?? now();
      staleSince.set(machine, since);
      if (now() - since >= leaseMs) due.push([machine, c]);
    }
    for (const machine of [...staleSince.keys()]) {
      const c = claims.get(machine);
      if (!c || !isStale(machine, c)) staleSince.delete(machine);
    }
    await eachLimited(due, limit, async ([machine, c]) => {
      // looked at again just before: wanted again, or held, or the bucket made again since
      if (generation !== before || fenced() || closed || !isStale(machine, claims.get(machine) ?? c)) return;
      staleSince.delete(machine);
      await o.kv.delete(claimKey(machine), c.revision).catch((err: unknown) => log.warn({ err, machineId: machine }, 'stale console claim not released'));
    });
  }

  async function renewSafely(): Promise<void> {
    try {
      await renew();
    } catch (err) {
      log.warn({ err }, 'console lease not renewed');
    }
  }

  async function claimAll(): Promise<void> {
    if (fenced()) {
      if (confirmed.size > 0 || !fencedLogged) {
        if (renewedAt !== undefined) log.warn({ sinceMs: now() - renewedAt }, 'console lease not renewed in time: holding no console until it is');
        fencedLogged = true;
      }
      confirmed.clear();
      emit();
      return;
    }
    for (const machine of [...confirmed.keys()]) if (!wanted.has(machine)) await release(machine);
    await releaseStale();
    if (now() < claimsFrom) return emit();
    // a machine waited for that someone else took, or no longer reported, is waited for afresh next time
    for (const machine of [...deferred.keys()]) {
      const c = claims.get(machine);
      if (!wanted.has(machine) || (c && !c.deleted)) deferred.delete(machine);
    }
    await eachLimited([...wanted], limit, async (machine) => {
      try {
        await claim(machine);
      } catch (err) {
        log.warn({ err, machineId: machine }, 'console claim not written');
      }
    });
    emit();
  }

  /** renewals never wait for a claim round (1,000 claim writes must not delay the heartbeat into the fence) */
  const renewRound = () => (renewing ??= renewSafely().finally(() => (renewing = undefined)));
  const claimRound = () => (claiming ??= claimAll().finally(() => (claiming = undefined)));

  async function tick(): Promise<void> {
    await renewRound();
    await claimRound();
  }

  return {
    instanceId: me,
    async start(options = {}) {
      await watch.start();
      watchingSince = now();
      const loop = async () => {
        if (closed) return;
        await renewRound();
        void claimRound();
        if (!closed) timer = setTimeout(() => void loop(), heartbeatMs);
      };
      if (options.timer !== false) {
        void loop();
        // a renewal that hangs (NATS gone, the ack's timeout running) must not delay the fence
        watchdog = setInterval(() => emit(), Math.min(1000, heartbeatMs));
        watchdog.unref();
      }
    },
    setWanted(ids) {
      const next = new Set<string>();
      for (const id of ids) {
        if (MACHINE_RE.test(id)) next.add(id);
        else if (!refused.has(id) && refused.size < 10_000) {
          refused.add(id);
          log.warn({ machineId: id.slice(0, 140) }, 'machine id cannot name a console claim; its console is not held');
        }
      }
      const changed = next.size !== wanted.size || [...next].some((id) => !wanted.has(id));
      wanted = next;
      if (changed && !closed) void claimRound();
    },
    owned: () => (fenced() ? new Set<string>() : new Set(confirmed.keys())),
    ownerOf(machine) {
      if (confirmed.has(machine) && !fenced()) return me;
      const c = claims.get(machine);
      if (!c || c.deleted || c.owner === me || dead(c.owner)) return undefined;
      return c.owner;
    },
    live: () => !fenced() && now() >= claimsFrom,
    viewCurrent: viewFresh,
    liveInstances,
    tick,
    bucketRemade: remade,
    async close() {
      closed = true;
      clearTimeout(timer);
      clearInterval(watchdog);
      await Promise.all([renewing, claiming]);
      // without a live lease the claims are not ours to release (and NATS is likely gone)
      if (!fenced()) {
        await eachLimited([...confirmed.keys()], limit, release);
        if (ownRevision !== undefined) await o.kv.delete(leaseKey(me), ownRevision).catch(() => undefined);
      }
      confirmed.clear();
      watch.stop();
      lastOwned = new Set();
    },
  };
}
