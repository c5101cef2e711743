/**
 * IPv4 addresses as unsigned 32-bit numbers and CIDR blocks over them.
 * Pure functions; invalid input raises BmcError 'INVALID_ARGUMENT' naming the text.
 */
import { BmcError } from '../errors.js';

export interface Cidr {
  /** network address (host bits cleared), unsigned */
  readonly network: number;
  /** prefix length 0..32 */
  readonly prefix: number;
  /** netmask, unsigned */
  readonly mask: number;
  /** canonical text, e.g. `10.0.0.0/8` */
  readonly text: string;
}

const DOT = 0x2e;
const ZERO = 0x30;
const NINE = 0x39;

/**
 * The address as an unsigned number, or -1 when `text` is not a dotted quad of decimal
 * octets 0..255 without leading zeros. The hot path of the lease parsers: no allocation.
 */
export function ipv4ToNumber(text: string): number {
  const n = text.length;
  if (n < 7 || n > 15) return -1;
  let value = 0;
  let octet = 0;
  let digits = 0;
  let dots = 0;
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c >= ZERO && c <= NINE) {
      if (digits === 1 && octet === 0) return -1; // leading zero
      octet = octet * 10 + (c - ZERO);
      if (octet > 255) return -1;
      digits++;
    } else if (c === DOT) {
      if (digits === 0 || ++dots > 3) return -1;
      value = value * 256 + octet;
      octet = 0;
      digits = 0;
    } else {
      return -1;
    }
  }
  if (dots !== 3 || digits === 0) return -1;
  return value * 256 + octet;
}

/** Parses a dotted-quad IPv4 address into an unsigned 32-bit number. */
export function parseIpv4(text: string): number {
  const value = ipv4ToNumber(text);
  if (value < 0) throw new BmcError('INVALID_ARGUMENT', `invalid IPv4 address ${JSON.stringify(text)}`);
  return value;
}

/** Formats an unsigned 32-bit number as a dotted quad. */
export function formatIpv4(value: number): string {
  if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) {
    throw new BmcError('INVALID_ARGUMENT', `not an IPv4 address number: ${value}`);
  }
  return `${value >>> 24}.${(value >>> 16) & 0xff}.${(value >>> 8) & 0xff}.${value & 0xff}`;
}

function maskOf(prefix: number): number {
  return prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
}

/**
 * Parses `a.b.c.d/n`; a bare address means /32. Host bits are cleared, so
 * `10.1.2.3/8` is the block `10.0.0.0/8`.
 */
export function parseCidr(text: string): Cidr {
  const invalid = (why: string): BmcError => new BmcError('INVALID_ARGUMENT', `invalid IPv4 CIDR ${JSON.stringify(text)}: ${why}`);
  const slash = text.indexOf('/');
  const addressText = slash < 0 ? text : text.slice(0, slash);
  const address = ipv4ToNumber(addressText);
  if (address < 0) throw invalid('bad address');
  let prefix = 32;
  if (slash >= 0) {
    const prefixText = text.slice(slash + 1);
    if (!/^(?:[0-9]|[12][0-9]|3[0-2])$/.test(prefixText)) throw invalid('prefix must be 0..32');
    prefix = Number(prefixText);
  }
  const mask = maskOf(prefix);
  const network = (address & mask) >>> 0;
  return { network, prefix, mask, text: `${formatIpv4(network)}/${prefix}` };
}

/** Whether the block holds the address (text or number); an invalid address is never contained. */
export function cidrContains(cidr: Cidr, ip: string | number): boolean {
  const value = typeof ip === 'number' ? ip : ipv4ToNumber(ip);
  if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) return false;
  return ((value & cidr.mask) >>> 0) === cidr.network;
}

/** Number of addresses in the block (2^(32-prefix)). */
export function cidrSize(cidr: Cidr): number {
  return 2 ** (32 - cidr.prefix);
}

/**
 * The address `n` steps above the network address: `nthHost(10.0.0.0/24, 1)` is `10.0.0.1`.
 * n = 0 is the network address itself; n must stay inside the block.
 */
export function nthHost(cidr: Cidr, n: number): string {
  if (!Number.isInteger(n) || n < 0 || n >= cidrSize(cidr)) {
    throw new BmcError('INVALID_ARGUMENT', `host index ${n} is outside ${cidr.text} (0..${cidrSize(cidr) - 1})`);
  }
  return formatIpv4(cidr.network + n);
}

/** The block that holds every address. */
export const ANY_IPV4: Cidr = Object.freeze(parseCidr('0.0.0.0/0'));

/** An IPv6 block: the network as a 128-bit unsigned bigint (host bits cleared). */
export interface Ipv6Cidr {
  readonly family: 6;
  readonly network: bigint;
  /** prefix length 0..128 */
  readonly prefix: number;
  /** canonical text (RFC 5952 compressed), e.g. `2001:db8::/32` */
  readonly text: string;
}

const HEX_GROUP = /^[0-9a-fA-F]{1,4}$/;
const ALL_ONES_128 = (1n << 128n) - 1n;

function ipv6Groups(part: string, allowIpv4Tail: boolean): number[] | undefined {
  if (part === '') return [];
  const fields = part.split(':');
  const groups: number[] = [];
  for (let i = 0; i < fields.length; i++) {
    const f = fields[i]!;
    if (allowIpv4Tail && i === fields.length - 1 && f.includes('.')) {
      const v4 = ipv4ToNumber(f);
      if (v4 < 0) return undefined;
      groups.push(Math.floor(v4 / 0x10000), v4 % 0x10000);
    } else if (HEX_GROUP.test(f)) {
      groups.push(parseInt(f, 16));
    } else {
      return undefined;
    }
  }
  return groups;
}

/**
 * An IPv6 address (`2001:db8::1`, `::`, `::ffff:10.0.0.1`) as a 128-bit unsigned bigint, or
 * undefined when `text` is not one. Zones (`%eth0`) and brackets are not addresses here.
 */
export function ipv6ToBigInt(text: string): bigint | undefined {
  if (text.length < 2 || text.length > 45) return undefined;
  const ellipsis = text.indexOf('::');
  let groups: number[] | undefined;
  if (ellipsis < 0) {
    groups = ipv6Groups(text, true);
    if (groups?.length !== 8) return undefined;
  } else {
    if (text.indexOf('::', ellipsis + 1) >= 0) return undefined;
    const head = ipv6Groups(text.slice(0, ellipsis), false);
    const tail = ipv6Groups(text.slice(ellipsis + 2), true);
    // the ellipsis stands for at least one group of zeros
    if (head === undefined || tail === undefined || head.length + tail.length > 7) return undefined;
    groups = [...head, ...Array<number>(8 - head.length - tail.length).fill(0), ...tail];
  }
  return groups.reduce((value, g) => (value << 16n) | BigInt(g), 0n);
}

/**
 * 4 for an IPv4 dotted quad, 6 for an IPv6 address (with a zone such as `%eth0` or not), else 0:
 * what node:net's `isIP` answers, without loading node:net. A one-shot `metal-bmc bmc` command
 * would otherwise load net and the streams at start for this check alone (scripts/bundle.ts).
 */
export function ipFamily(text: string): 0 | 4 | 6 {
  if (ipv4ToNumber(text) >= 0) return 4;
  const zone = text.indexOf('%');
  if (zone < 0) return ipv6ToBigInt(text) === undefined ? 0 : 6;
  return ZONE_ID.test(text.slice(zone + 1)) && ipv6ToBigInt(text.slice(0, zone)) !== undefined ? 6 : 0;
}

/** The characters node:net allows in an IPv6 zone id. */
const ZONE_ID = /^[0-9a-zA-Z.:-]+$/;

/** RFC 5952 text: lower case, no leading zeros, the longest run (2+) of zero groups as `::`. */
export function formatIpv6(value: bigint): string {
  if (value < 0n || value > ALL_ONES_128) throw new BmcError('INVALID_ARGUMENT', `not an IPv6 address number: ${value}`);
  const groups = Array.from({ length: 8 }, (_, i) => Number((value >> BigInt(112 - 16 * i)) & 0xffffn));
  let best = { start: -1, length: 0 };
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > best.length) best = { start: i, length: j - i };
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (best.length < 2) return hex.join(':');
  return `${hex.slice(0, best.start).join(':')}::${hex.slice(best.start + best.length).join(':')}`;
}

/** Parses `2001:db8::/32`; a bare address means /128. Host bits are cleared. */
export function parseIpv6Cidr(text: string): Ipv6Cidr {
  const invalid = (why: string): BmcError => new BmcError('INVALID_ARGUMENT', `invalid IPv6 CIDR ${JSON.stringify(text)}: ${why}`);
  const slash = text.indexOf('/');
  const address = ipv6ToBigInt(slash < 0 ? text : text.slice(0, slash));
  if (address === undefined) throw invalid('bad address');
  let prefix = 128;
  if (slash >= 0) {
    const prefixText = text.slice(slash + 1);
    if (!/^(?:[0-9]|[1-9][0-9]|1[01][0-9]|12[0-8])$/.test(prefixText)) throw invalid('prefix must be 0..128');
    prefix = Number(prefixText);
  }
  const mask = prefix === 0 ? 0n : (ALL_ONES_128 << BigInt(128 - prefix)) & ALL_ONES_128;
  const network = address & mask;
  return { family: 6, network, prefix, text: `${formatIpv6(network)}/${prefix}` };
}

/** An IPv4 block, or an IPv6 block when the text holds a colon. */
export function parseIpCidr(text: string): Cidr | Ipv6Cidr {
  return text.includes(':') ? parseIpv6Cidr(text) : parseCidr(text);
}

export function isIpv6Cidr(cidr: Cidr | Ipv6Cidr): cidr is Ipv6Cidr {
  return 'family' in cidr && cidr.family === 6;
}
