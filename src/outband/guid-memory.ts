/**
 * What report reads learnt of a BMC's IPMI GUID, kept from one report cycle to the next.
 *
 * The decision: the GUID that confirmed the BMC's Redfish UUID (one of `GUID_CONFIRMED_BASES`)
 * and the machine UUID decided with it. A read over IPMI alone (Redfish failed in this cycle: a
 * session limit, a 503) reports its GUID's UUID only when the GUID is this one (uuid.ts,
 * `IpmiAloneCheck`): the byte order a BMC sends its GUID in is known only from a read that had
 * Redfish beside it, and a GUID decoded in another order would make metal-api create a phantom
 * machine. The decision has no age: the same 16 bytes from the same address are the same board
 * (another BMC at the address, or the same one with another UUID, does not match and is read with
 * Redfish again), and a BMC whose Redfish fails for hours keeps its UUID. It goes when a read
 * contradicts it, or with the oldest beyond `maxEntries`.
 *
 * The spare: the same GUID standing in for the next reads' IPMI session, for a BMC whose report
 * needs nothing else from IPMI, while it still confirms the UUID Redfish reports now. `maxAgeMs`
 * bounds how long one read serves, so IPMI (and a wrong IPMI password) is still seen every so
 * often. BMC IPMI session slots are few (one taken by a serial console's SOL; OpenBMC answers
 * "insufficient resources for session" beyond them): a report that needs no session leaves them
 * to the console and the commands.
 *
 * For a BMC whose report fields come from IPMI (the vendor table: Supermicro, Novarion) the
 * identity read beside the GUID is kept with the spare: Get Device ID's firmware revision and the
 * FRU. It is used again only with the GUID, and only while Redfish names the same Manager
 * FirmwareVersion it named when the identity was read: a firmware update changes both, a FRU
 * changes with the board, and with it the BMC and its UUID.
 */
import type { MetalFru } from '../metalapi/types.js';
import { setNewest } from '../net/newest-map.js';
import type { RememberedUuid } from './uuid.js';

/** What IPMI said about a BMC's identity, and the Redfish Manager FirmwareVersion beside it then. */
export interface RememberedIdentity {
  bmcVersion: string;
  fru: MetalFru;
  managerFirmware: string;
}

export interface GuidMemory {
  /** the GUID read from `host` within the last `maxAgeMs` to stand in for the next read's IPMI session, or undefined */
  get(host: string): Buffer | undefined;
  /** the identity kept with the GUID `get(host)` gives, or undefined */
  identity(host: string): RememberedIdentity | undefined;
  /** the GUID that last confirmed `host`'s Redfish UUID and the UUID decided with it, whatever its age */
  decided(host: string): RememberedUuid | undefined;
  /**
   * `decided.guid` was read from `host` and confirmed `decided.uuid`; with `spare`, it stands in for
   * the next reads' IPMI session (with the identity read beside it, if any) for `maxAgeMs`
   */
  remember(host: string, decided: RememberedUuid, spare?: { identity?: RememberedIdentity }): void;
  /** what `host` answered no longer confirms what was decided */
  forget(host: string): void;
  readonly size: number;
}

export interface GuidMemoryOptions {
  /** how long a read's GUID stands in for an IPMI session (0: never; the decision is kept all the same) */
  maxAgeMs: number;
  /** BMCs remembered at most; the ones remembered longest ago go first (default 100,000) */
  maxEntries?: number;
  now?: () => number;
}

interface Entry {
  decided: RememberedUuid;
  spare?: { at: number; identity?: RememberedIdentity };
}

export function createGuidMemory(o: GuidMemoryOptions): GuidMemory {
  const now = o.now ?? Date.now;
  const max = o.maxEntries ?? 100_000;
  const entries = new Map<string, Entry>();
  const spare = (host: string) => {
    const s = entries.get(host)?.spare;
    return s !== undefined && now() - s.at < o.maxAgeMs ? s : undefined;
  };
  return {
    get: (host) => (spare(host) ? entries.get(host)!.decided.guid : undefined),
    identity: (host) => spare(host)?.identity,
    decided: (host) => entries.get(host)?.decided,
    remember(host, decided, kept) {
      if (decided.guid.length !== 16) return;
      const identity = kept?.identity ? { identity: { ...kept.identity, fru: { ...kept.identity.fru } } } : {};
      setNewest(entries, host, { decided: { guid: Buffer.from(decided.guid), uuid: decided.uuid }, ...(kept ? { spare: { at: now(), ...identity } } : {}) }, max);
    },
    forget(host) {
      entries.delete(host);
    },
    get size() {
      return entries.size;
    },
  };
}
