/**
 * A BMC's IPMI GUID, kept from one report cycle to the next so that a BMC whose report comes
 * wholly from Redfish needs no IPMI session every cycle. The GUID is only the evidence for the
 * byte order of the Redfish UUID (uuid.ts); it is kept only when it confirmed that UUID (one of
 * `GUID_CONFIRMED_BASES`), and used again only while it confirms the UUID Redfish reports now. A
 * remembered GUID therefore never decides a UUID the BMC's own GUID would not: another BMC at the
 * same address, or the same one with another UUID, does not match it and is read over IPMI
 * again. `maxAgeMs` bounds how long one read serves, so IPMI (and a wrong IPMI password) is
 * still seen every so often. BMC IPMI session slots are few (one taken by a serial console's
 * SOL; OpenBMC answers "insufficient resources for session" beyond them): a report that needs no
 * session leaves them to the console and the commands.
 *
 * For a BMC whose report fields come from IPMI (the vendor table: Supermicro, Novarion) the
 * identity read beside the GUID is kept with it: Get Device ID's firmware revision and the FRU.
 * It is used again only with the GUID, and only while Redfish names the same Manager
 * FirmwareVersion it named when the identity was read: a firmware update changes both, a FRU
 * changes with the board, and with it the BMC and its UUID.
 */
import type { MetalFru } from '../metalapi/types.js';
import { setNewest } from '../net/newest-map.js';

/** What IPMI said about a BMC's identity, and the Redfish Manager FirmwareVersion beside it then. */
export interface RememberedIdentity {
  bmcVersion: string;
  fru: MetalFru;
  managerFirmware: string;
}

export interface GuidMemory {
  /** the GUID read from `host` within the last `maxAgeMs`, or undefined */
  get(host: string): Buffer | undefined;
  /** the identity kept with the GUID `get(host)` gives, or undefined */
  identity(host: string): RememberedIdentity | undefined;
  /** `guid` (and `identity`, when read beside it) was read from `host` and confirmed its Redfish UUID */
  remember(host: string, guid: Buffer, identity?: RememberedIdentity): void;
  /** what `host` answered no longer confirms its Redfish UUID */
  forget(host: string): void;
  readonly size: number;
}

export interface GuidMemoryOptions {
  maxAgeMs: number;
  /** BMCs remembered at most; the ones remembered longest ago go first (default 100,000) */
  maxEntries?: number;
  now?: () => number;
}

export function createGuidMemory(o: GuidMemoryOptions): GuidMemory {
  const now = o.now ?? Date.now;
  const max = o.maxEntries ?? 100_000;
  const entries = new Map<string, { guid: Buffer; identity?: RememberedIdentity; at: number }>();
  const current = (host: string) => {
    const entry = entries.get(host);
    if (entry === undefined || now() - entry.at < o.maxAgeMs) return entry;
    entries.delete(host);
    return undefined;
  };
  return {
    get: (host) => current(host)?.guid,
    identity: (host) => current(host)?.identity,
    remember(host, guid, identity) {
      if (guid.length !== 16) return;
      setNewest(entries, host, { guid: Buffer.from(guid), ...(identity ? { identity: { ...identity, fru: { ...identity.fru } } } : {}), at: now() }, max);
    },
    forget(host) {
      entries.delete(host);
    },
    get size() {
      return entries.size;
    },
  };
}
