/**
 * Address ranges that never hold a BMC: the unspecified ("this network") addresses, loopback,
 * link-local, multicast and the limited broadcast address, in IPv4 and IPv6, and the IPv4 ones
 * in their IPv4-mapped IPv6 form (`::ffff:127.0.0.1`, `::ffff:7f00:1`). A connection to one of
 * them reaches this host (0.0.0.0 and loopback), whatever answers on the local link, or a group.
 * Pure functions over cidr.ts; a host that is not an address literal (a name) is in none.
 */
import { cidrContains, ipv4ToNumber, ipv6ToBigInt, parseCidr, parseIpv6Cidr, type Cidr, type Ipv6Cidr } from './cidr.js';

export interface SpecialRange {
  /** what the range is, to follow "is": `a loopback address` */
  what: string;
  /** the IPv4 block, or the IPv6 one */
  block: Cidr | Ipv6Cidr;
  /** the host is the IPv4-mapped IPv6 form of an address of the IPv4 block */
  mapped: boolean;
}

const V4: ReadonlyArray<{ what: string; block: Cidr }> = [
  { what: 'an unspecified ("this network") address', block: parseCidr('0.0.0.0/8') },
  { what: 'a loopback address', block: parseCidr('127.0.0.0/8') },
  { what: 'a link-local address', block: parseCidr('169.254.0.0/16') },
  { what: 'a multicast address', block: parseCidr('224.0.0.0/4') },
  { what: 'the limited broadcast address', block: parseCidr('255.255.255.255/32') },
];

const V6: ReadonlyArray<{ what: string; block: Ipv6Cidr }> = [
  { what: 'the unspecified address', block: parseIpv6Cidr('::/128') },
  { what: 'a loopback address', block: parseIpv6Cidr('::1/128') },
  { what: 'a link-local address', block: parseIpv6Cidr('fe80::/10') },
  { what: 'a multicast address', block: parseIpv6Cidr('ff00::/8') },
];

const MAPPED = parseIpv6Cidr('::ffff:0:0/96');

function ipv6Contains(block: Ipv6Cidr, value: bigint): boolean {
  const hostBits = BigInt(128 - block.prefix);
  return value >> hostBits === block.network >> hostBits;
}

/** The special range an address literal lies in (an IPv6 one with or without a zone such as `%eth0`), or undefined. */
export function specialRange(host: string): SpecialRange | undefined {
  const v4 = ipv4ToNumber(host);
  if (v4 >= 0) {
    const r = V4.find((range) => cidrContains(range.block, v4));
    return r && { ...r, mapped: false };
  }
  const zone = host.indexOf('%');
  const v6 = ipv6ToBigInt(zone < 0 ? host : host.slice(0, zone));
  if (v6 === undefined) return undefined;
  if (ipv6Contains(MAPPED, v6)) {
    const embedded = Number(v6 & 0xffffffffn);
    const r = V4.find((range) => cidrContains(range.block, embedded));
    return r && { ...r, mapped: true };
  }
  const r = V6.find((range) => ipv6Contains(range.block, v6));
  return r && { ...r, mapped: false };
}

