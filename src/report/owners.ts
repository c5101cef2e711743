/**
 * Which BMC (IP address) reports which machine UUID, across report cycles. A second BMC that
 * reports a UUID the known one still holds is not taken: a device on the BMC network could
 * otherwise claim any machine and receive its consoles and commands. The known BMC keeps the
 * UUID while its lease lasts and it does not report another machine (body.ts); when its lease is
 * gone the newcomer takes over (a replaced BMC), and when it reports another UUID the machine's
 * new address does (DHCP swapped or reassigned the addresses).
 * Bounded: entries whose BMC has no lease any more are pruned once they exceed `max`.
 */
import { setNewest } from '../net/newest-map.js';

export interface UuidOwners {
  /** the IP address that holds `uuid`, if any */
  get(uuid: string): string | undefined;
  set(uuid: string, ip: string): void;
  /** drops entries whose BMC holds no lease */
  prune(isLeased: (ip: string) => boolean): void;
  readonly size: number;
}

export function createUuidOwners(max = 100_000): UuidOwners {
  const owners = new Map<string, string>();
  return {
    get: (uuid) => owners.get(uuid),
    set(uuid, ip) {
      // a fleet cannot have more machines than this; the oldest entries go first
      setNewest(owners, uuid, ip, max);
    },
    prune(isLeased) {
      for (const [uuid, ip] of owners) if (!isLeased(ip)) owners.delete(uuid);
    },
    get size() {
      return owners.size;
    },
  };
}
