/**
 * Where firmware images may come from. UPDATE-FIRMWARE carries a URL that metal-bmc downloads
 * itself (multipart push) or hands to the BMC (SimpleUpdate); whoever may publish machine events
 * could otherwise make the daemon fetch internal URLs (loopback, link-local metadata, metal-api).
 *
 * - The URL must be http(s) without credentials and match `METAL_BMC_FIRMWARE_URL_ALLOW`: an
 *   entry with a scheme is a URL prefix (same scheme, host and port, the path at or below the
 *   entry's at a segment boundary), one without is a host name matched exactly; an empty list
 *   refuses every firmware update.
 * - Its host must not be metal-api's host, nor a loopback, link-local or unspecified address.
 * - metal-bmc's own download resolves the name when it connects and refuses such addresses
 *   there too (`guardedLookup`), so DNS cannot turn an allowed name into a forbidden address.
 *   Redirects are not followed at all: an image server that answers 3xx fails the update.
 */
import { lookup as dnsLookup, type LookupAddress, type LookupOptions } from 'node:dns';
import { isIP } from 'node:net';
import { BmcError } from '../errors.js';
import { urlPrefixEntry } from '../config/url-prefix.js';

export interface FirmwareUrlPolicyOptions {
  /** host names and URL prefixes */
  allow: readonly string[];
  /** metal-api's host: never an image source */
  metalApiHost: string;
  /** labs and tests serve images on loopback; never in production */
  allowLoopback?: boolean;
}

const LOOPBACK_V4 = /^127\./;
const LINK_LOCAL_V4 = /^169\.254\./;

/**
 * An IPv4-mapped IPv6 address in the hex form the URL parser writes it in (`[::ffff:127.0.0.1]`
 * becomes `::ffff:7f00:1`) as its IPv4 address; anything else as it is.
 */
function mappedV4(address: string): string {
  const m = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(address);
  if (!m) return address;
  const hi = parseInt(m[1]!, 16);
  const lo = parseInt(m[2]!, 16);
  return `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
}

/** Why an address may not be an image source, or undefined when it may. */
export function forbiddenAddress(address: string, allowLoopback = false): string | undefined {
  const a = mappedV4(address.toLowerCase().replace(/^::ffff:(?=\d+\.)/, ''));
  if (a === '0.0.0.0' || a === '::') return 'the unspecified address';
  if (!allowLoopback && (LOOPBACK_V4.test(a) || a === '::1')) return 'a loopback address';
  if (LINK_LOCAL_V4.test(a) || /^fe[89ab][0-9a-f]:/.test(a)) return 'a link-local address';
  return undefined;
}

function forbidden(message: string): BmcError {
  return new BmcError('FORBIDDEN', message);
}

/**
 * Whether `url` lies under a URL-prefix entry: the same scheme, host and port, and a path that is
 * the entry's or below it at a segment boundary. `https://images.example.com` does not let in
 * `https://images.example.com.evil.net/` nor another port, and `/firmware` not `/firmware-old/`.
 * Both are parsed as URLs, so case, default ports and dot segments do not tell them apart.
 */
function underUrlPrefix(entry: string, url: URL): boolean {
  const base = urlPrefixEntry(entry);
  if (typeof base === 'string' || base.protocol !== url.protocol || base.host !== url.host) return false;
  const path = base.pathname;
  return path === '/' || url.pathname === path || url.pathname.startsWith(path.endsWith('/') ? path : `${path}/`);
}

/** Checks an image URL before anything is fetched; throws FORBIDDEN saying why (without the query string). */
export function checkFirmwareUrl(text: string, o: FirmwareUrlPolicyOptions): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw forbidden('the firmware URL is not a URL');
  }
  const shown = `${url.protocol}//${url.host}${url.pathname}`;
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw forbidden(`firmware URL ${url.protocol} is not http or https`);
  if (url.username !== '' || url.password !== '') throw forbidden(`firmware URL ${shown} carries credentials`);
  if (o.allow.length === 0) throw forbidden('firmware updates are off: METAL_BMC_FIRMWARE_URL_ALLOW is empty');
  // a trailing dot names the same host (a fully qualified name)
  const host = url.hostname.replace(/^\[|\]$/g, '').toLowerCase().replace(/\.$/, '');
  const allowed = o.allow.some((entry) => (entry.includes('://') ? underUrlPrefix(entry, url) : host === entry.toLowerCase()));
  if (!allowed) throw forbidden(`firmware URL ${shown} is not in METAL_BMC_FIRMWARE_URL_ALLOW`);
  if (host === o.metalApiHost.toLowerCase().replace(/\.$/, '')) throw forbidden(`firmware URL ${shown} points at metal-api`);
  if (isIP(host) !== 0) {
    const why = forbiddenAddress(host, o.allowLoopback);
    if (why) throw forbidden(`firmware URL ${shown} points at ${why}`);
  }
  return url;
}

type LookupCallback = (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void;

/** `dns.lookup` that fails a connection whose name resolves to a forbidden address. */
export function guardedLookup(allowLoopback = false) {
  return (hostname: string, options: LookupOptions, callback: LookupCallback): void => {
    dnsLookup(hostname, { ...options, all: true }, (err, addresses) => {
      if (err) return callback(err, []);
      const list = addresses as LookupAddress[];
      const bad = list.map((a) => forbiddenAddress(a.address, allowLoopback)).find((why) => why !== undefined);
      if (bad) return callback(Object.assign(new Error(`firmware image host ${hostname} resolves to ${bad}`), { code: 'EFORBIDDEN' }), []);
      if (options.all) return callback(null, list);
      const first = list[0];
      if (!first) return callback(Object.assign(new Error(`firmware image host ${hostname} has no address`), { code: 'ENOTFOUND' }), []);
      callback(null, first.address, first.family);
    });
  };
}
