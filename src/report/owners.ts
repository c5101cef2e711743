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
 */
import { setNewest } from '../net/newest-map.js';

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

export function createUuidOwners(max = 100_000): UuidOwners {
  const owners = new Map<string, UuidOwner>();
  return {
    get: (uuid) => owners.get(uuid),
    set(uuid, owner) {
      // a fleet cannot have more machines than this; the oldest entries go first
      setNewest(owners, uuid, owner, max);
    },
    prune(isLeased) {
      for (const [uuid, owner] of owners) if (!isLeased(owner.ip)) owners.delete(uuid);
    },
    get size() {
      return owners.size;
    },
  };
}
