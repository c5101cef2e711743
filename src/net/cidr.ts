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
