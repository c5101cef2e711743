/**
 * One leader among a partition's metal-bmc instances for one job (the machine events' consumer),
 * decided by a single key in a JetStream key-value bucket (kv.ts) whose value names the holder.
 *
 * - **Taking it:** an instance writes the key when it is absent or deleted (compare-and-set, so of
 *   two only one wins), or when the holder left it unchanged for `leaseMs` (timed on this
 *   instance's own clock from when it saw that revision: no clock is compared across hosts),
 *   by compare-and-set on that revision, so a renewal that arrived meanwhile wins.
 * - **Holding it:** the holder rewrites the key every `heartbeatMs` by compare-and-set on its own
 *   last revision. It leads only while its last successful renewal was *sent* less than `fenceMs`
 *   (< leaseMs) ago: a holder cut off from NATS stops leading before any other instance may take
 *   over, since they time the lease from when they *saw* that renewal, later than it was sent.
 * - **Giving it up:** `close()` deletes the key, and an instance waiting for it takes it at once.
 * - **A restart:** a process that finds the key naming its own instance id (an earlier run) takes
 *   it once it saw it unchanged for `fenceMs`, by when that run, if still alive but cut off, has
 *   stopped leading; not the whole lease.
 * - **The same instance id twice:** each process writes its own token beside the id, so a renewal
 *   of ours whose answer was lost is told from another process's write; a write by another process
 *   under our id makes this one stay off for a lease time, instead of taking turns with it.
 * - **Clocks:** every time is from a monotonic clock (a wall-clock step stretches nothing).
 */
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { BmcError } from '../errors.js';
import type { Logger } from '../log.js';
import { isValidInstanceId } from './console-owners.js';
import { keepWatching, type KvBucket, type KvEntry } from './kv.js';

/** The key's value: the holder's instance id and the token of the process that wrote it. */
export interface Holder {
  instance: string;
  token: string;
}

const HOLDER_RE = /^([A-Za-z0-9_-]{1,64})\.([0-9a-f]{16})$/;

export function encodeHolder(h: Holder): Uint8Array {
  return Buffer.from(`${h.instance}.${h.token}`, 'latin1');
}

/** The holder a value names, or undefined for anything else (bounded, never throws). */
export function decodeHolder(value: Uint8Array): Holder | undefined {
  if (value.length === 0 || value.length > 81) return undefined;
  const m = HOLDER_RE.exec(Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('latin1'));
  return m ? { instance: m[1]!, token: m[2]! } : undefined;
}

export interface LeadershipOptions {
  kv: KvBucket;
  /** the key the leader writes */
  key: string;
  instanceId: string;
  /** what is led, for the log: "machine events" */
  what: string;
  /** the holder is gone for the others when it left the key unchanged this long (default 15 s) */
  leaseMs?: number;
  /** renewal interval, default leaseMs / 6 */
  heartbeatMs?: number;
  /** stop leading after this long without a successful renewal, default leaseMs * 2/3 */
  fenceMs?: number;
  logger: Logger;
  /** told each change of `leading()` */
  onChange?: (leading: boolean) => void;
  /** a monotonic clock (default performance.now: a wall-clock step must not stretch the fence or shorten the lease) */
  now?: () => number;
}

export interface Leadership {
  readonly instanceId: string;
  /** this instance holds the key and renewed it in time */
  leading(): boolean;
  /** the instance the key names now, as this one last saw it (undefined: none) */
  holder(): string | undefined;
  /** some instance leads: this one, or the holder renewed the key within the lease as seen here */
  someoneLeads(): boolean;
  /** listens to changes of `leading()`; returns the function that stops listening */
  subscribe(listener: (leading: boolean) => void): () => void;
  /** one round: renew, or take the key when free or left for a lease time (the timer runs it; tests call it) */
  tick(): Promise<void>;
  start(options?: { timer?: boolean }): Promise<void>;
  /** stops leading; gives the key up (deleted) so another instance leads at once, unless `giveUp` is false (then the others wait the lease out) */
  close(o?: { giveUp?: boolean }): Promise<void>;
}

interface KeyView {
  revision: number;
  holder: Holder | undefined;
  deleted: boolean;
  /** local time this revision was first seen */
  seenAt: number;
}

export function createLeadership(o: LeadershipOptions): Leadership {
  if (!isValidInstanceId(o.instanceId)) throw new BmcError('INVALID_ARGUMENT', 'createLeadership: instance id must be letters, digits, - and _ (at most 64)');
  const me = o.instanceId;
  /** this process among those that ever ran under this instance id */
  const token = randomBytes(8).toString('hex');
  const value = encodeHolder({ instance: me, token });
  const ours = (h: Holder | undefined) => h?.token === token;
  const leaseMs = o.leaseMs ?? 15_000;
  const heartbeatMs = o.heartbeatMs ?? Math.max(50, Math.floor(leaseMs / 6));
  const fenceMs = o.fenceMs ?? Math.floor((leaseMs * 2) / 3);
  if (!(heartbeatMs * 2 < fenceMs && fenceMs < leaseMs)) throw new BmcError('INVALID_ARGUMENT', 'createLeadership: need heartbeatMs * 2 < fenceMs < leaseMs');
  const now = o.now ?? (() => performance.now());
  // not `key`: the logger redacts fields of that name
  const log = o.logger.child({ module: 'leader', instance: me, leaderKey: o.key });
  const listeners = new Set<(leading: boolean) => void>();
  if (o.onChange) listeners.add(o.onChange);
  let view: KeyView | undefined;
  /** the revision this instance wrote last, while it holds the key */
  let mine: number | undefined;
  /** when the last successful write of ours was sent */
  let renewedAt: number | undefined;
  /** this process never held the key: one naming this instance is an earlier run's */
  let neverHeld = true;
  let conflictUntil = 0;
  /** the last round failed (NATS away): its failures are logged once */
  let failing = false;
  /** a change seen during a round that needs another round at once (the key given up) */
  let again = false;
  /** fires at the fence: the holder stops leading exactly then, not at the next watchdog tick */
  let fenceTimer: NodeJS.Timeout | undefined;
  let closed = false;
  let was = false;
  let round: Promise<void> | undefined;
  let timer: NodeJS.Timeout | undefined;
  let watchdog: NodeJS.Timeout | undefined;

  /** this instance holds the key and its last renewal was sent within the fence time */
  const heldInTime = () => mine !== undefined && renewedAt !== undefined && now() - renewedAt <= fenceMs;
  const leading = () => !closed && heldInTime();
  /** how long the key may stay unchanged before this instance takes it: its own earlier run's only the fence time, by which that run, if still alive but cut off, stopped leading */
  const patience = () => (neverHeld && view?.holder?.instance === me ? fenceMs : leaseMs);

  function emit(): void {
    const is = leading();
    if (is === was) return;
    was = is;
    if (is) log.info({ leaseMs }, `leading: this instance takes the ${o.what}`);
    else if (closed) log.info(`stopped leading: this instance stops (the ${o.what} go to another instance)`);
    else log.warn({ sinceRenewalMs: renewedAt === undefined ? undefined : now() - renewedAt, holder: view?.holder?.instance }, `not leading any more: this instance stops taking the ${o.what}`);
    for (const listener of [...listeners]) {
      try {
        listener(is);
      } catch (err) {
        log.error({ err }, 'a listener of the leadership failed');
      }
    }
  }

  function seen(e: KvEntry): void {
    if (e.key !== o.key || (view && e.revision <= view.revision)) return;
    view = { revision: e.revision, holder: e.deleted ? undefined : decodeHolder(e.value), deleted: e.deleted, seenAt: now() };
    // closed: our own delete coming back, or whatever follows, is nobody's business here
    if (closed) return;
    // a write of ours whose answer has not come yet (or was lost): ours all the same
    if (ours(view.holder)) return void (mine = Math.max(mine ?? 0, e.revision));
    if (mine !== undefined && e.revision > mine) {
      // written after our last write by someone else
      mine = undefined;
      if (view.holder?.instance === me) sameId();
      else log.warn({ holder: view.holder?.instance }, `the ${o.what} lease was taken by another instance`);
      emit();
    }
    // a holder that gave the key up: take it now rather than at the next heartbeat
    if (e.deleted && mine === undefined && !closed) {
      if (round) again = true;
      else void tick();
    }
  }

  /**
   * What a read found: a key older than the one seen (or none where one was: a key is never
   * removed, only marked deleted) means its bucket was made again, its revisions counting from 1.
   */
  function observed(current: KvEntry | undefined, seenBefore: number | undefined): void {
    // compared with what was seen when the read was sent: the watch may bring a newer write meanwhile
    if (seenBefore !== undefined && (current === undefined || current.revision < seenBefore)) remade();
    if (current) seen(current);
  }

  /** reads the key, and what the read says of the bucket */
  async function read(): Promise<KvEntry | undefined> {
    const seenBefore = view?.revision;
    const current = await o.kv.get(o.key);
    observed(current, seenBefore);
    return current;
  }

  /** The bucket was made again: what was seen of it is gone; the watch starts over on the new one. */
  function remade(): void {
    log.warn({ seenRevision: view?.revision }, `the ${o.what} lease's bucket was made again; starting over on it`);
    view = undefined;
    if (mine !== undefined) {
      mine = undefined;
      renewedAt = undefined;
      emit();
    }
    watch.restart();
  }

  /** our own write: the view follows it (the watch may bring it later, or not at all while down) */
  function wrote(revision: number, sentAt: number): void {
    // the watch already brought a later change (a delete by hand, another's write): not ours any more
    if (view && view.revision > revision && !ours(view.holder)) return;
    mine = Math.max(mine ?? 0, revision);
    renewedAt = sentAt;
    neverHeld = false;
    if (!view || view.revision < revision) view = { revision, holder: { instance: me, token }, deleted: false, seenAt: now() };
    clearTimeout(fenceTimer);
    if (!closed) {
      fenceTimer = setTimeout(emit, Math.max(0, sentAt + fenceMs + 1 - now()));
      fenceTimer.unref();
    }
  }

  /** another process wrote the key under this instance's id while this one held it */
  function sameId(): void {
    log.error({ instance: me }, `another process holds the ${o.what} lease under this instance id: two metal-bmc instances share METAL_BMC_INSTANCE_ID; staying off for a lease time`);
    conflictUntil = now() + leaseMs;
  }

  async function takeOver(expected: KvEntry | undefined, sentAt: number): Promise<void> {
    // close() began while this round read the key: a key found free stays free for the others
    if (closed) return;
    const revision = expected === undefined ? await o.kv.create(o.key, value) : await o.kv.update(o.key, value, expected.revision);
    if (revision !== undefined) {
      if (expected && !expected.deleted) log.info({ from: decodeHolder(expected.value)?.instance }, `${o.what} lease taken over`);
      wrote(revision, sentAt);
      return;
    }
    // someone wrote first: read what is there now, so the lease is timed from it
    await read();
  }

  async function once(): Promise<void> {
    if (closed || now() < conflictUntil) return;
    const sentAt = now();
    if (mine !== undefined) {
      const revision = await o.kv.update(o.key, value, mine);
      if (revision !== undefined) return wrote(revision, sentAt);
      // refused: written since, by another process or by a write of ours whose answer was lost
      const current = await read();
      if (current && !current.deleted && ours(decodeHolder(current.value))) {
        mine = current.revision;
        return once();
      }
      if (mine !== undefined) {
        mine = undefined;
        emit();
      }
      return;
    }
    if (view !== undefined && !view.deleted && now() - view.seenAt <= patience()) return;
    // the key as the server has it now: the watch's view may lag behind it
    const current = await read();
    if (current === undefined || current.deleted) return takeOver(current, sentAt);
    if (view?.revision !== current.revision) return;
    if (now() - view.seenAt > patience()) return takeOver(current, sentAt);
  }

  /** The watch over the key, started again a second after it ends (a bucket lost and made again, a server restarted). */
  const watch = keepWatching({ kv: o.kv, onEntry: (e) => seen(e), onEnded: (err) => log.warn({ err }, `${o.what} lease watch ended; starting it again`), closed: () => closed });

  async function tick(): Promise<void> {
    round ??= once()
      .then(
        () => {
          if (failing) log.info(`${o.what} lease reached again`);
          failing = false;
        },
        (err: unknown) => {
          // once per outage, not every heartbeat while NATS is away
          if (!failing) log.warn({ err }, `${o.what} lease not read or written; trying every heartbeat (logged again when it works)`);
          failing = true;
        },
      )
      .finally(() => {
        round = undefined;
        emit();
        if (again && !closed) {
          again = false;
          void tick();
        }
      });
    await round;
  }

  return {
    instanceId: me,
    leading,
    holder: () => (leading() ? me : view?.deleted ? undefined : view?.holder?.instance),
    // a heartbeat beyond the lease: a view kept fresh only by reads (the watch down) is read once a lease has passed
    someoneLeads: () => leading() || (view !== undefined && !view.deleted && view.holder !== undefined && now() - view.seenAt <= leaseMs + heartbeatMs),
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    tick,
    async start(options = {}) {
      await watch.start();
      await tick();
      if (options.timer === false || closed) return;
      const loop = async () => {
        await tick();
        if (!closed) timer = setTimeout(() => void loop(), heartbeatMs);
      };
      timer = setTimeout(() => void loop(), heartbeatMs);
      // the fence timer tells the fence itself; this tells, within a second, any change no path
      // announced (a lost write of ours brought back by the watch between rounds)
      watchdog = setInterval(() => emit(), Math.min(1000, heartbeatMs));
      watchdog.unref();
    },
    async close({ giveUp = true } = {}) {
      // closed first: a round started from now on (a watched delete) writes nothing
      closed = true;
      clearTimeout(timer);
      clearInterval(watchdog);
      while (round) await round;
      clearTimeout(timer);
      clearTimeout(fenceTimer);
      const held = giveUp && heldInTime() ? mine : undefined;
      mine = undefined;
      emit();
      if (held !== undefined) await o.kv.delete(o.key, held).catch((err: unknown) => log.warn({ err }, `${o.what} lease not given up; another instance takes it after the lease time`));
      watch.stop();
    },
  };
}
