/**
 * From parsed lease records to the leases held now: format detection, the
 * latest-entry-wins rules, expiry, and the CIDR / ignored-MAC filters.
 */
import { ANY_IPV4, cidrContains, ipv4ToNumber, type Cidr } from '../net/cidr.js';
import { parseIscLeases } from './isc.js';
import { parseKeaLeases } from './kea.js';
import { normalizeMacSet } from './mac.js';
import { KEA_INFINITE_LIFETIME, KEA_STATE, type IscLease, type KeaLease, type Lease, type LeaseFormat, type ParsedLeases } from './types.js';

export type LeaseFormatOption = LeaseFormat | 'auto';

export interface ActiveLeaseOptions {
  now: Date;
  /** only leases inside one of these blocks; default 0.0.0.0/0 */
  allowedCidrs?: readonly Cidr[];
  /** MACs to drop, in any case and with any separator */
  ignoreMacs?: Iterable<string>;
}

/** A Kea memfile starts with its column header; everything else is taken for ISC dhcpd. */
export function detectLeaseFormat(text: string): LeaseFormat {
  const start = text.search(/\S/);
  if (start < 0) return 'isc';
  const eol = text.indexOf('\n', start);
  const first = text.slice(start, eol < 0 ? text.length : eol);
  return /^address\s*,/.test(first) && first.includes('hwaddr') ? 'kea' : 'isc';
}

/** Parses a lease file of the given (or detected) format; throws only LeaseParseError. */
export function parseLeases(text: string, format: LeaseFormatOption = 'auto'): ParsedLeases {
  const actual = format === 'auto' ? detectLeaseFormat(text) : format;
  return actual === 'kea' ? { format: 'kea', leases: parseKeaLeases(text) } : { format: 'isc', leases: parseIscLeases(text) };
}

/** One record in the terms the selection rules need, whatever the format. */
interface Entry {
  ipNum: number;
  ip: string;
  mac: string | undefined;
  hostname: string | undefined;
  expires: Date | 'never' | undefined;
  /** the server considers the address handed out (before looking at the time) */
  assigned: boolean;
  /** when the lease (or its last renewal) began, ms since the epoch, when the record tells */
  startedAt: number | undefined;
}

const TO_ENTRY = {
  isc: (l: IscLease): Entry => ({
    ipNum: ipv4ToNumber(l.ip),
    ip: l.ip,
    mac: l.mac,
    hostname: l.hostname,
    expires: l.ends,
    assigned: l.bindingState === 'active',
    startedAt: l.starts?.getTime(),
  }),
  // valid_lifetime 0 is how Kea records a deleted lease (Memfile_LeaseMgr::deleteLease)
  kea: (l: KeaLease): Entry => ({
    ipNum: ipv4ToNumber(l.ip),
    ip: l.ip,
    mac: l.mac,
    hostname: l.hostname,
    expires: l.expire,
    assigned: l.state === KEA_STATE.DEFAULT && l.validLifetime !== 0,
    // Kea's cltt (the last time the client was heard) is expire - valid_lifetime
    startedAt: l.expire instanceof Date && l.validLifetime !== KEA_INFINITE_LIFETIME ? l.expire.getTime() - l.validLifetime * 1000 : undefined,
  }),
};

function toEntries(parsed: ParsedLeases): Entry[] {
  return parsed.format === 'kea' ? parsed.leases.map(TO_ENTRY.kea) : parsed.leases.map(TO_ENTRY.isc);
}

/**
 * The leases held at `now`, sorted by IP:
 * - an address's state is its last entry in the file (a later entry for the same IP replaces
 *   it, whatever its MAC): dhcpd and Kea keep leases per address;
 * - that entry is held when it has a MAC and, for ISC, `binding state active` and `ends` in the
 *   future or `never`; for Kea, state 0, valid_lifetime not 0 (deleted) and expire in the future
 *   (or infinite lifetime);
 * - only addresses inside the allowed CIDRs, and no ignored MAC;
 * - a MAC holding several of those addresses keeps the one begun last (ISC `starts`, Kea's
 *   expire - valid_lifetime), the one written last where a record does not tell. An entry the server no
 *   longer holds (freed, expired, reclaimed) for another address does not take the MAC's lease
 *   away: both servers leave the hardware address on such entries, and dhcpd's rewrite of the
 *   file puts them after active ones.
 * Throws BmcError INVALID_ARGUMENT for an ignored MAC that is not a hardware address.
 */
export function activeLeases(parsed: ParsedLeases, options: ActiveLeaseOptions): Lease[] {
  const now = options.now.getTime();
  const cidrs = options.allowedCidrs ?? [ANY_IPV4];
  const ignore = normalizeMacSet(options.ignoreMacs ?? []);
  const entries = toEntries(parsed);

  const lastByIp = new Map<number, number>();
  entries.forEach((e, i) => lastByIp.set(e.ipNum, i));
  const heldNow = (e: Entry, i: number): e is Entry & { mac: string } =>
    lastByIp.get(e.ipNum) === i && e.mac !== undefined && e.assigned && e.expires !== undefined && (e.expires === 'never' || e.expires.getTime() > now);

  // the newest held entry of each MAC, among the allowed addresses: the one begun last where both
  // records tell (a rewritten file lists pools in configuration order, a Kea cleanup file by
  // address), else the one written last
  const byMac = new Map<string, Entry & { mac: string }>();
  entries.forEach((e, i) => {
    if (!heldNow(e, i) || ignore.has(e.mac) || !cidrs.some((c) => cidrContains(c, e.ipNum))) return;
    const before = byMac.get(e.mac);
    const older = before?.startedAt !== undefined && e.startedAt !== undefined && e.startedAt < before.startedAt;
    if (!older) byMac.set(e.mac, e);
  });
  const held = [...byMac.values()].sort((a, b) => a.ipNum - b.ipNum);

  return held.map((e) => {
    const lease: Lease = { ip: e.ip, mac: e.mac, expires: e.expires as Date | 'never' };
    if (e.hostname !== undefined) lease.hostname = e.hostname;
    return lease;
  });
}
