/**
 * Which BMC (IP address) reports which machine UUID, across report cycles. A second BMC that
 * reports a UUID the known one still holds is not taken: a device on the BMC network could
 * otherwise claim any machine and receive its consoles and commands. The known BMC (its address
 * and MAC) keeps the UUID while its address is leased to the same MAC (body.ts); when the lease is
 * gone (a replaced BMC) or the address went to another MAC (DHCP swapped or reassigned the
 * addresses: the BMC, and its machine, are elsewhere now) the newcomer takes over. What a BMC
 * reports cannot move a UUID, so a device on the network gains nothing from one odd read of the
 * known BMC.
 * Bounded: entries whose BMC has no lease any more are pruned once they exceed `max`.
 *
 * Kept over restarts (`openUuidOwnersFile`, the state folder): held in memory only, the first
 * cycle after every start let whichever device answered first for a UUID take it, a device on the
 * BMC network that claims another machine's UUID included.
 */
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import type { Logger } from '../log.js';
import { setNewest } from '../net/newest-map.js';
import { burstWriter, writePrivateFile } from '../outband/private-file.js';

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

/** The newest `max` entries, in memory; `onChange` after a call that changed what is held. */
export function createUuidOwners(max = 100_000, onChange?: () => void): UuidOwners & { entries(): [string, UuidOwner][] } {
  const owners = new Map<string, UuidOwner>();
  return {
    get: (uuid) => owners.get(uuid),
    set(uuid, owner) {
      const known = owners.get(uuid);
      // a fleet cannot have more machines than this; the oldest entries go first
      setNewest(owners, uuid, owner, max);
      if (known?.ip !== owner.ip || known.mac !== owner.mac) onChange?.();
    },
    prune(isLeased) {
      const before = owners.size;
      for (const [uuid, owner] of owners) if (!isLeased(owner.ip)) owners.delete(uuid);
      if (owners.size !== before) onChange?.();
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

const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i;

/** An entry as the file may hold it; anything else in the file is dropped, with a count. */
function validOwner(uuid: string, v: unknown): v is UuidOwner {
  if (uuid.length === 0 || uuid.length > 64 || typeof v !== 'object' || v === null) return false;
  const { ip, mac } = v as Record<string, unknown>;
  return typeof ip === 'string' && isIP(ip) !== 0 && (mac === undefined || (typeof mac === 'string' && MAC.test(mac)));
}

/**
 * The owners, kept in `file` (mode 0600, replaced atomically, written `writeDelayMs` after a change
 * and at close): loaded at start, so a restart keeps each UUID with its known BMC. An unreadable or
 * foreign file is logged and starts empty (as before the file existed); a write that fails is
 * logged and tried again with the next change.
 */
export function openUuidOwnersFile(o: { file: string; logger?: Logger; max?: number; writeDelayMs?: number }): UuidOwnersFile {
  let dirty = false;
  let loading = true;
  const writer = burstWriter({ delayMs: o.writeDelayMs ?? 2000, pending: () => dirty, write });
  const owners = createUuidOwners(o.max, () => {
    if (loading) return;
    dirty = true;
    writer.changed();
  });
  load();
  loading = false;
  if (dirty) writer.changed();

  function load(): void {
    let text: string;
    try {
      text = readFileSync(o.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') o.logger?.error({ file: o.file, err: (err as Error).message }, 'cannot read the UUID owners file; starting without known BMCs for machine UUIDs');
      return;
    }
    let dropped = 0;
    try {
      const parsed = JSON.parse(text) as { version?: unknown; owners?: unknown };
      if (parsed.version !== 1 || typeof parsed.owners !== 'object' || parsed.owners === null || Array.isArray(parsed.owners)) throw new Error('not a version 1 UUID owners file');
      for (const [uuid, owner] of Object.entries(parsed.owners)) {
        if (validOwner(uuid, owner)) owners.set(uuid, { ip: owner.ip, ...(owner.mac !== undefined ? { mac: owner.mac } : {}) });
        else dropped++;
      }
    } catch (err) {
      o.logger?.error({ file: o.file, err: (err as Error).message }, 'cannot use the UUID owners file; starting without known BMCs for machine UUIDs');
    }
    // what was loaded is on disk already; only a file with entries dropped is written again
    dirty = dropped > 0;
    o.logger?.info({ file: o.file, owners: owners.size, dropped }, 'known BMCs of machine UUIDs kept from the last run');
  }

  async function write(): Promise<void> {
    dirty = false;
    try {
      await writePrivateFile(o.file, JSON.stringify({ version: 1, owners: Object.fromEntries(owners.entries()) }));
    } catch (err) {
      dirty = true; // written with the next change, or at close
      o.logger?.error({ file: o.file, err: (err as Error).message }, 'cannot write the UUID owners file; known BMCs are kept in memory');
    }
  }

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
