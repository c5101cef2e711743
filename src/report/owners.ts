/**
 * Which BMC (IP address) reports which machine UUID, across report cycles. A second BMC that
 * reports a UUID the known one still holds is not taken: a device on the BMC network could
 * otherwise claim any machine and receive its consoles and commands. The known BMC (its address
 * and MAC) keeps the UUID while its address is leased to the same MAC (body.ts); when the lease is
 * gone (a replaced BMC) or the address went to another MAC (DHCP swapped or reassigned the
 * addresses: the BMC, and its machine, are elsewhere now) the newcomer takes over. What a BMC
 * reports cannot move a UUID, so a device on the network gains nothing from one odd read of the
 * known BMC.
 * Bounded: at most `max` entries (the oldest go first), and an entry whose BMC has had no lease
 * for `graceMs` (a day) is dropped: not at once, or a start before the lease file could be read (no
 * leases at all) would forget every known BMC.
 *
 * Kept over restarts (`openUuidOwnersFile`, the state folder): held in memory only, the first
 * cycle after every start let whichever device answered first for a UUID take it, a device on the
 * BMC network that claims another machine's UUID included. The operator's `metal-bmc bmc owners
 * --reset` (cli/bmc-owners.ts) forgets owners in that file while the daemon runs: a BMC that moved
 * to another NIC, or a wrong owner, would otherwise keep the real BMC's machine out of every report
 * until the old lease expired plus a day. Both write under the file's lock, and the daemon reads
 * the file again before each cycle's body when it was replaced, as with the BMC trust file.
 */
import { stat } from 'node:fs/promises';
import { isIP } from 'node:net';
import { normalizeMac } from '../leases/mac.js';
import type { Logger } from '../log.js';
import { withFileLock } from '../outband/file-lock.js';
import { burstWriter, contentUnknown, fileStamp, asideCopy, KEPT_ASIDE, readStateFile, setAsideUnparsable, stampOf, unreadableEpisode, writePrivateFile, type UnreadableFile } from '../outband/private-file.js';
import { stateWriteEpisodes } from '../outband/state-write-failures.js';

/** The BMC known for a machine UUID: its address and, when the lease named one, its MAC. */
export interface UuidOwner {
  ip: string;
  mac?: string;
}

/** An owner as kept: with when that BMC took the UUID (ISO 8601; unknown for entries kept before this was recorded). */
export interface UuidOwnerRecord extends UuidOwner {
  since?: string;
}

export interface UuidOwners {
  /** the BMC that holds `uuid`, if any */
  get(uuid: string): UuidOwner | undefined;
  set(uuid: string, owner: UuidOwner): void;
  /** drops entries whose BMC holds no lease */
  prune(isLeased: (ip: string) => boolean): void;
  /** takes what another process (`bmc owners --reset`) changed in the file; a cycle calls it before it builds the body */
  refresh?(): void;
  /**
   * the file that may name owners this memory does not know, while it cannot be read or while the
   * copy of it that did not parse is kept aside (`keptAs`, code `KEPT_ASIDE`): a UUID without a
   * known owner gets none meanwhile (its claimant is left out of the report), for the file may
   * name another BMC for it; undefined when owners can be taken
   */
  newOwnersHeld?(): NewOwnersHeld | undefined;
  readonly size: number;
}

/** Why a UUID without a known owner gets none now: the owners file and its error code; `keptAs`, the copy of a file that did not parse (`KEPT_ASIDE`). */
export interface NewOwnersHeld {
  file: string;
  code: string;
  keptAs?: string;
}

export interface UuidOwnersOptions {
  /** entries at most (default 100,000: more than a fleet has machines) */
  max?: number;
  /** how long a BMC without a lease keeps its entry (default a day) */
  graceMs?: number;
  /** after a call that changed the entry of `uuid` (set to another BMC, or dropped) */
  onChange?: (uuid: string) => void;
  now?: () => number;
}

/** The owners in memory. */
export interface UuidOwnersMemory extends UuidOwners {
  /** every owner, oldest first */
  entries(): [string, UuidOwnerRecord][];
  /** the record of `uuid`, `since` included */
  record(uuid: string): UuidOwnerRecord | undefined;
  /** forgets `uuid`; false when nobody held it */
  forget(uuid: string): boolean;
  /** puts `record` (or, with undefined, nothing) under `uuid` as it is, `since` included; no onChange: what a file held */
  put(uuid: string, record: UuidOwnerRecord | undefined): void;
  /** holds `records` (a file read again) instead of what it held, without onChange */
  replace(records: Iterable<[string, UuidOwnerRecord]>): void;
}

const sameBmc = (a: UuidOwner | undefined, b: UuidOwner | undefined): boolean => a?.ip === b?.ip && a?.mac === b?.mac;

export function createUuidOwners(o: UuidOwnersOptions = {}): UuidOwnersMemory {
  const max = o.max ?? 100_000;
  const graceMs = o.graceMs ?? 86_400_000;
  const now = o.now ?? Date.now;
  const owners = new Map<string, UuidOwnerRecord>();
  /** when prune() first saw an entry's BMC without a lease (memory only: a restart starts it again) */
  const unleasedSince = new Map<string, number>();
  /** sets `uuid` as the newest entry; a fleet cannot have more machines than `max`: the oldest go first */
  function putNewest(uuid: string, record: UuidOwnerRecord, tell: boolean): void {
    owners.delete(uuid);
    owners.set(uuid, record);
    while (owners.size > max) {
      const oldest = owners.keys().next().value as string;
      owners.delete(oldest);
      unleasedSince.delete(oldest);
      if (tell) o.onChange?.(oldest);
    }
  }
  return {
    get(uuid) {
      const r = owners.get(uuid);
      return r && { ip: r.ip, ...(r.mac !== undefined ? { mac: r.mac } : {}) };
    },
    set(uuid, owner) {
      const known = owners.get(uuid);
      const changed = !sameBmc(known, owner);
      // the same BMC keeps the time it took the UUID
      const since = changed ? new Date(now()).toISOString() : known!.since;
      putNewest(uuid, { ip: owner.ip, ...(owner.mac !== undefined ? { mac: owner.mac } : {}), ...(since !== undefined ? { since } : {}) }, true);
      unleasedSince.delete(uuid);
      if (changed) o.onChange?.(uuid);
    },
    prune(isLeased) {
      const at = now();
      for (const [uuid, owner] of owners) {
        if (isLeased(owner.ip)) unleasedSince.delete(uuid);
        else if (!unleasedSince.has(uuid)) unleasedSince.set(uuid, at);
        else if (at - unleasedSince.get(uuid)! >= graceMs) {
          owners.delete(uuid);
          unleasedSince.delete(uuid);
          o.onChange?.(uuid);
        }
      }
      for (const uuid of unleasedSince.keys()) if (!owners.has(uuid)) unleasedSince.delete(uuid);
    },
    get size() {
      return owners.size;
    },
    entries: () => [...owners],
    record: (uuid) => owners.get(uuid),
    forget(uuid) {
      if (!owners.delete(uuid)) return false;
      unleasedSince.delete(uuid);
      o.onChange?.(uuid);
      return true;
    },
    put(uuid, record) {
      // a BMC's unleased time stays while the file names the same BMC (it is about that BMC's lease)
      if (!sameBmc(owners.get(uuid), record)) unleasedSince.delete(uuid);
      if (record === undefined) owners.delete(uuid);
      else putNewest(uuid, record, false);
    },
    replace(records) {
      const next = new Map(records);
      for (const [uuid, record] of owners) if (!sameBmc(record, next.get(uuid))) unleasedSince.delete(uuid);
      owners.clear();
      for (const [uuid, record] of next) putNewest(uuid, record, false);
    },
  };
}

export const UUID_OWNERS_FILE = 'uuid-owners.json';

export interface UuidOwnersFile extends UuidOwners {
  readonly file: string;
  refresh(): void;
  /** every owner, oldest first, with `since` */
  entries(): [string, UuidOwnerRecord][];
  /** forgets `uuid` (written like any change); false when nobody held it */
  forget(uuid: string): boolean;
  /** writes what changed since the last write */
  flush(): Promise<void>;
  /** flushes; later changes are written at once */
  close(): Promise<void>;
  /** changes not on disk because their last write failed (kept for the next write), with that failure */
  unwritten(): { changes: number; error: string } | undefined;
  /** why the file, which is there, could not be read at the last refresh or write: while so it is not written (changes wait in `unwritten`) */
  unreadable(): UnreadableFile | undefined;
  /** the copy of a file that did not parse, moved aside by this process, while it is still there */
  keptAside(): string | undefined;
  newOwnersHeld(): NewOwnersHeld | undefined;
}

/** An entry as the file may hold it; anything else in the file is dropped, with a count. */
function validOwner(uuid: string, v: unknown): v is UuidOwnerRecord {
  if (uuid.length === 0 || uuid.length > 64 || typeof v !== 'object' || v === null) return false;
  const { ip, mac, since } = v as Record<string, unknown>;
  // a MAC as the lease parser gives it (normalised, 1 to 20 octets: InfiniBand's too)
  return (
    typeof ip === 'string' &&
    isIP(ip) !== 0 &&
    (mac === undefined || (typeof mac === 'string' && normalizeMac(mac) === mac.toLowerCase())) &&
    (since === undefined || (typeof since === 'string' && since.length <= 40 && !Number.isNaN(Date.parse(since))))
  );
}

/** What an owners file holds: its valid entries in file order, and how many it dropped. */
export interface OwnersFileContent {
  owners: Map<string, UuidOwnerRecord>;
  dropped: number;
}

/**
 * Reads an owners file `{ version: 1, owners: { uuid: { ip, mac?, since? } } }`: a missing file is
 * an empty one; an unreadable or foreign one throws (its message says why).
 */
export function readUuidOwnersFile(file: string): OwnersFileContent {
  const read = readStateFile(file);
  if (read.kind === 'missing') return { owners: new Map(), dropped: 0 };
  if (read.kind === 'unreadable') throw Object.assign(new Error(read.error), { code: read.code });
  return parseUuidOwners(read.text);
}

/** An owners file's text as `OwnersFileContent`; throws when it is not a version 1 owners file. */
export function parseUuidOwners(text: string): OwnersFileContent {
  const parsed = JSON.parse(text) as Record<string, unknown> | null;
  const entries = parsed?.owners;
  if (parsed?.version !== 1 || typeof entries !== 'object' || entries === null || Array.isArray(entries)) throw new Error('not a version 1 file with owners');
  const owners = new Map<string, UuidOwnerRecord>();
  let dropped = 0;
  for (const [uuid, v] of Object.entries(entries)) {
    if (validOwner(uuid, v)) owners.set(uuid, { ip: v.ip, ...(v.mac !== undefined ? { mac: v.mac } : {}), ...(v.since !== undefined ? { since: v.since } : {}) });
    else dropped++;
  }
  return { owners, dropped };
}

/** The file's text: compact JSON, version 1, the owners oldest first (the daemon's and the CLI's alike). */
function ownersText(entries: Iterable<[string, UuidOwnerRecord]>): string {
  return JSON.stringify({ version: 1, owners: Object.fromEntries(entries) });
}

/** A change not yet on disk: the new record, or undefined for a dropped entry. */
type Change = UuidOwnerRecord | undefined;

/**
 * The owners, kept in `file` (mode 0600, replaced atomically, written `writeDelayMs` after a change
 * and at close): loaded at start, so a restart keeps each UUID with its known BMC. A file that is
 * not an owners file (a bad edit, a power loss on a file system without ordered writes) is moved
 * aside as `<file>.unreadable-<ms>` with one error line naming both, as the BMC trust file is, and
 * memory kept (empty at start); while that copy is there a UUID without a known owner gets none
 * (`newOwnersHeld`), for the copy may name its BMC: put back fixed, its owners are used; removed,
 * the loss is accepted and owners are taken again. A write that fails is logged and tried again
 * with the next change.
 *
 * Shared with the operator's CLI as the BMC trust file is (outband/trust.ts): `refresh()` reads
 * the file again when it was replaced (inode, mtime or size) and lays this process's unwritten
 * changes over it; a write holds `<file>.lock` and refreshes under it first, so neither the
 * daemon's write brings back an owner the CLI forgot, nor the CLI's drops one the daemon recorded
 * meanwhile. A file that is there but cannot be read (EACCES: root's, after `sudo metal-bmc bmc
 * owners --reset` by an older CLI; EIO) is never written over: changes wait in memory, and it is
 * read again at each refresh and write until it can be (`unreadable()`).
 * `keepAsideUnparsable` false (the CLI): a file that is not an owners file is left where it is and
 * taken as unreadable (`NOT_PARSED`): the daemon keeps it aside itself, and counts it.
 */
export function openUuidOwnersFile(o: { file: string; logger?: Logger; writeDelayMs?: number; lockTimeoutMs?: number; keepAsideUnparsable?: boolean } & Omit<UuidOwnersOptions, 'onChange'>): UuidOwnersFile {
  /** changes since the last write started, and those of the write in flight */
  let dirty = new Map<string, Change>();
  let writing = new Map<string, Change>();
  /** the whole file is to be written again (a load dropped malformed entries) */
  let rewrite = false;
  let lastWriteError: string | undefined;
  /** what identified the file at the last read or write: a write renames a new file over it (a new inode) */
  let loadedStamp = stamp();
  /** a file that did not parse, moved aside for the operator */
  const keptCopy = asideCopy(o.file);
  /** UUIDs changed while the file could not be read: such a change never replaces the owner the file names once it is read */
  let blind = new Set<string>();
  const owners = createUuidOwners({
    ...o,
    onChange: (uuid) => {
      dirty.set(uuid, owners.record(uuid));
      if (unreadable.current() !== undefined) blind.add(uuid);
      writer.changed();
    },
  });
  const unreadable = unreadableEpisode({
    file: o.file,
    what: 'UUID owners file',
    consequence: 'it is not written over until it can be read: the known BMCs in memory are used (none after a start) and changes kept there (lost if the process stops first), and it is read again before each report cycle and write',
    logger: o.logger,
  });

  function stamp(): string {
    return fileStamp(o.file);
  }

  /** lays `changes` over the file's `owners` just read; one made while the file could not be read gives way to the owner the file names (and is dropped) */
  function overlay(changes: Map<string, Change>, read: ReadonlyMap<string, UuidOwnerRecord>): void {
    for (const [uuid, record] of changes) {
      if (blind.has(uuid) && read.has(uuid)) changes.delete(uuid);
      else owners.put(uuid, record);
    }
  }

  /** The file's owners; undefined when it cannot be used now (unreadable: left as it is; not an owners file: kept aside). */
  function load(): OwnersFileContent | undefined {
    const read = readStateFile(o.file);
    unreadable.saw(read);
    if (read.kind === 'unreadable') return undefined;
    if (read.kind === 'missing') return { owners: new Map(), dropped: 0 };
    try {
      return parseUuidOwners(read.text);
    } catch (err) {
      // kept for the operator: the next write would replace every owner it holds
      const moved = setAsideUnparsable(
        {
          file: o.file,
          keepAside: o.keepAsideUnparsable !== false,
          copy: keptCopy,
          unreadable,
          logger: o.logger,
          line: 'cannot use the UUID owners file; it is kept aside: the known BMCs in memory are used (none after a start), and a machine UUID none of them holds is given to no BMC until the copy is put back fixed or removed',
        },
        err as Error,
      );
      if (moved) loadedStamp = '';
      return undefined;
    }
  }

  /** Reads the file again when another process replaced it since this one last read or wrote it, or it could not be read then. */
  function refresh(): void {
    const now = stamp();
    if (now === loadedStamp && unreadable.current() === undefined) return;
    loadedStamp = now;
    const wasUnreadable = unreadable.current() !== undefined;
    const content = load();
    if (content === undefined) return;
    owners.replace(content.owners);
    overlay(writing, content.owners);
    overlay(dirty, content.owners);
    blind = new Set();
    o.logger?.info({ file: o.file, owners: owners.size, dropped: content.dropped }, 'UUID owners file changed on disk (bmc owners --reset); read again');
    // what waited for the file goes to it now, not with the next change
    if (wasUnreadable && (dirty.size > 0 || rewrite)) writer.changed();
  }

  // a failed write counted, and logged once until a write succeeds
  const writes = stateWriteEpisodes({ file: o.file, failure: 'cannot write the UUID owners file; known BMCs are kept in memory', logger: o.logger });
  async function write(): Promise<void> {
    writing = dirty;
    dirty = new Map();
    const whole = rewrite;
    rewrite = false;
    /** the changes of a write that did not reach the file, kept in memory and written with the next change (or at close) */
    const keep = (why: string) => {
      for (const [uuid, record] of writing) if (!dirty.has(uuid)) dirty.set(uuid, record);
      writing = new Map();
      rewrite ||= whole;
      lastWriteError = why;
    };
    try {
      // under the lock the CLI takes too: its changes are read first and ours laid over them
      const held = await withFileLock(
        `${o.file}.lock`,
        async () => {
          refresh();
          const cannotRead = unreadable.current();
          if (cannotRead) return cannotRead;
          await writePrivateFile(o.file, ownersText(owners.entries()));
          loadedStamp = stampOf(await stat(o.file));
          return undefined;
        },
        { timeoutMs: o.lockTimeoutMs ?? 5000 },
      );
      if (held) {
        // not written over (its episode's one line told it); written once it can be read
        keep(`cannot read ${o.file} (${held.code}); not written over`);
        return;
      }
      writing = new Map();
      lastWriteError = undefined;
      writes.succeeded();
    } catch (err) {
      keep((err as Error).message);
      writes.failed(err as Error);
    }
  }
  const writer = burstWriter({ delayMs: o.writeDelayMs ?? 2000, pending: () => dirty.size > 0 || rewrite, write });

  const loaded = load();
  if (loaded) {
    owners.replace(loaded.owners);
    // written again without what it dropped
    if (loaded.dropped > 0) {
      rewrite = true;
      writer.changed();
    }
    o.logger?.info({ file: o.file, owners: owners.size, dropped: loaded.dropped }, 'known BMCs of machine UUIDs kept from the last run');
  }

  return {
    file: o.file,
    get: owners.get,
    set: owners.set,
    prune: owners.prune,
    refresh,
    newOwnersHeld() {
      // the refresh before the cycle's body read the file; whether the copy is still there is asked here
      const cannot = contentUnknown({ unreadable: unreadable.current, keptAside: keptCopy.current });
      if (cannot === undefined) return undefined;
      return { file: o.file, code: cannot.code, ...(cannot.code === KEPT_ASIDE ? { keptAs: cannot.error } : {}) };
    },
    entries: owners.entries,
    forget: owners.forget,
    get size() {
      return owners.size;
    },
    flush: writer.flush,
    close: writer.close,
    unwritten: () => (lastWriteError !== undefined && (dirty.size > 0 || rewrite) ? { changes: dirty.size, error: lastWriteError } : undefined),
    unreadable: unreadable.current,
    keptAside: () => keptCopy.current(),
  };
}

