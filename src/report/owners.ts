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
 * BMC network that claims another machine's UUID included.
 */
import { isIP } from 'node:net';
import { normalizeMac } from '../leases/mac.js';
import type { Logger } from '../log.js';
import { setNewest } from '../net/newest-map.js';
import { loadStateEntries, stateFileWriter } from '../outband/private-file.js';

/** The BMC known for a machine UUID: its address and, when the lease named one, its MAC. */
export interface UuidOwner {
  ip: string;
  mac?: string;
}

export interface UuidOwners {
  /** the BMC that holds `uuid`, if any */
  get(uuid: string): UuidOwner | undefined;
  set(uuid: string, owner: UuidOwner): void;
  /** drops entries whose BMC holds no lease */
  prune(isLeased: (ip: string) => boolean): void;
  readonly size: number;
}

export interface UuidOwnersOptions {
  /** entries at most (default 100,000: more than a fleet has machines) */
  max?: number;
  /** how long a BMC without a lease keeps its entry (default a day) */
  graceMs?: number;
  /** after a call that changed what is held */
  onChange?: () => void;
  now?: () => number;
}

/** The owners in memory. */
export function createUuidOwners(o: UuidOwnersOptions = {}): UuidOwners & { entries(): [string, UuidOwner][] } {
  const max = o.max ?? 100_000;
  const graceMs = o.graceMs ?? 86_400_000;
  const now = o.now ?? Date.now;
  const owners = new Map<string, UuidOwner>();
  /** when prune() first saw an entry's BMC without a lease (memory only: a restart starts it again) */
  const unleasedSince = new Map<string, number>();
  return {
    get: (uuid) => owners.get(uuid),
    set(uuid, owner) {
      const known = owners.get(uuid);
      // a fleet cannot have more machines than this; the oldest entries go first
      setNewest(owners, uuid, owner, max);
      unleasedSince.delete(uuid);
      if (known?.ip !== owner.ip || known.mac !== owner.mac) o.onChange?.();
    },
    prune(isLeased) {
      const before = owners.size;
      const at = now();
      for (const [uuid, owner] of owners) {
        if (isLeased(owner.ip)) unleasedSince.delete(uuid);
        else if (!unleasedSince.has(uuid)) unleasedSince.set(uuid, at);
        else if (at - unleasedSince.get(uuid)! >= graceMs) {
          owners.delete(uuid);
          unleasedSince.delete(uuid);
        }
      }
      for (const uuid of unleasedSince.keys()) if (!owners.has(uuid)) unleasedSince.delete(uuid);
      if (owners.size !== before) o.onChange?.();
    },
    get size() {
      return owners.size;
    },
    entries: () => [...owners],
  };
}

export const UUID_OWNERS_FILE = 'uuid-owners.json';

export interface UuidOwnersFile extends UuidOwners {
  /** writes what changed since the last write */
  flush(): Promise<void>;
  /** flushes; later changes are written at once */
  close(): Promise<void>;
}

/** An entry as the file may hold it; anything else in the file is dropped, with a count. */
function validOwner(uuid: string, v: unknown): v is UuidOwner {
  if (uuid.length === 0 || uuid.length > 64 || typeof v !== 'object' || v === null) return false;
  const { ip, mac } = v as Record<string, unknown>;
  // a MAC as the lease parser gives it (normalised, 1 to 20 octets: InfiniBand's too)
  return typeof ip === 'string' && isIP(ip) !== 0 && (mac === undefined || (typeof mac === 'string' && normalizeMac(mac) === mac.toLowerCase()));
}

/**
 * The owners, kept in `file` (mode 0600, replaced atomically, written `writeDelayMs` after a change
 * and at close): loaded at start, so a restart keeps each UUID with its known BMC. An unreadable or
 * foreign file is logged and starts empty (as before the file existed); a write that fails is
 * logged and tried again with the next change.
 */
export function openUuidOwnersFile(o: { file: string; logger?: Logger; writeDelayMs?: number } & Omit<UuidOwnersOptions, 'onChange'>): UuidOwnersFile {
  const writer = stateFileWriter({
    file: o.file,
    delayMs: o.writeDelayMs ?? 2000,
    text: () => JSON.stringify({ version: 1, owners: Object.fromEntries(owners.entries()) }),
    onWriteError: (err) => o.logger?.error({ file: o.file, err: err.message }, 'cannot write the UUID owners file; known BMCs are kept in memory'),
  });
  const owners = createUuidOwners({ ...o, onChange: () => writer.changed() });
  const { dropped } = loadStateEntries({
    file: o.file,
    key: 'owners',
    what: 'UUID owners file; starting without known BMCs for machine UUIDs',
    writer,
    ...(o.logger ? { logger: o.logger } : {}),
    take: (uuid, owner) => {
      if (!validOwner(uuid, owner)) return false;
      owners.set(uuid, { ip: owner.ip, ...(owner.mac !== undefined ? { mac: owner.mac } : {}) });
      return true;
    },
  });
  o.logger?.info({ file: o.file, owners: owners.size, dropped }, 'known BMCs of machine UUIDs kept from the last run');

  return {
    get: owners.get,
    set: owners.set,
    prune: owners.prune,
    get size() {
      return owners.size;
    },
    flush: writer.flush,
    close: writer.close,
  };
}
