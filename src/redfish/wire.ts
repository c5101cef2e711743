/**
 * Decoders for what real BMCs put on the wire beside the specification: JSON bodies with a
 * UTF-8 byte-order mark or bytes after the document, `Retry-After` in either of its two HTTP
 * forms, and session `Location` headers that are relative, absolute, or name another host.
 * Pure functions; none of them throws, whatever the input.
 */
import { retryAfterMs } from '../net/retry-after.js';

/** U+FEFF, the byte-order mark, as it decodes from EF BB BF. */
const BOM = '\uFEFF';

/**
 * How deep a BMC's JSON may nest, and how many objects and arrays one answer may hold, before it
 * is refused unparsed. Redfish resources nest a handful of levels (an `$expand`ed collection's
 * member's Oem block: ~8) and hold hundreds to a few thousand containers (an iDRAC
 * FirmwareInventory expanded: ~2,000). Parsed, JSON costs far more than its bytes: 2 MiB of `[{},
 * {},...]` became ~45 MiB of heap, 2 MiB of `[[[...]]]` ~58 MiB and ~0.9 s of CPU, so one hostile
 * answer could hold a report cycle's memory goal on its own.
 */
export const MAX_JSON_DEPTH = 64;
export const MAX_JSON_CONTAINERS = 65_536;

/**
 * One pass over `text` from `start` (the first `{` or `[`): the end (exclusive) of the first JSON
 * value there, by bracket depth outside of strings (undefined when it never closes), and whether
 * the text's brackets pass MAX_JSON_DEPTH or MAX_JSON_CONTAINERS before it ends.
 */
function scanValue(text: string, start: number): { end: number | undefined; tooComplex: boolean } {
  let depth = 0;
  let containers = 0;
  let inString = false;
  for (let i = start; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) {
      inString = true;
    } else if (c === 0x7b || c === 0x5b) {
      depth++;
      containers++;
      if (depth > MAX_JSON_DEPTH || containers > MAX_JSON_CONTAINERS) return { end: undefined, tooComplex: true };
    } else if (c === 0x7d || c === 0x5d) {
      depth--;
      if (depth === 0) return { end: i + 1, tooComplex: false };
      if (depth < 0) return { end: undefined, tooComplex: false };
    }
  }
  return { end: undefined, tooComplex: false };
}

export type JsonDecode =
  | { ok: true; value: unknown; empty: boolean; lenient?: 'bom' | 'trailing' | 'bom+trailing' }
  | { ok: false; tooComplex?: true };

/**
 * A response body as JSON. An empty (or whitespace-only) body is `empty`. A leading byte-order
 * mark (RFC 8259 §8.1 lets a parser ignore it) and bytes after a complete top-level object or
 * array (NULs, whitespace, or garbage a BMC's HTTP server leaves there) are tolerated and named in
 * `lenient`; anything else that is not JSON is `ok: false`, and so, unparsed, is a document whose
 * brackets nest deeper than MAX_JSON_DEPTH or number more than MAX_JSON_CONTAINERS (`tooComplex`).
 */
export function decodeJsonBody(raw: string): JsonDecode {
  const bom = raw.startsWith(BOM);
  const text = bom ? raw.slice(1) : raw;
  if (text.trim() === '') return { ok: true, value: undefined, empty: true, ...(bom ? { lenient: 'bom' as const } : {}) };
  const start = text.length - text.trimStart().length;
  const first = text[start];
  // a scalar document (a bare string or number) has no brackets to count
  const scan = first === '{' || first === '[' ? scanValue(text, start) : undefined;
  if (scan?.tooComplex) return { ok: false, tooComplex: true };
  try {
    return { ok: true, value: JSON.parse(text) as unknown, empty: false, ...(bom ? { lenient: 'bom' as const } : {}) };
  } catch {
    // fall through: maybe a complete document followed by noise
  }
  const end = scan?.end;
  if (end === undefined) return { ok: false };
  try {
    return { ok: true, value: JSON.parse(text.slice(start, end)) as unknown, empty: false, lenient: bom ? 'bom+trailing' : 'trailing' };
  } catch {
    return { ok: false };
  }
}

/**
 * A BMC's `Retry-After` as milliseconds from `nowMs` (net/retry-after.ts); undefined when absent,
 * malformed, or over 31 years (the BMC's own backoff applies then, as to a malformed one).
 */
export function parseRetryAfter(value: string | undefined, nowMs: number): number | undefined {
  const ms = retryAfterMs(value, nowMs);
  return ms === Infinity ? undefined : ms;
}

export type SessionLocation = { path: string; via: 'same-origin' | 'path-of-foreign-url' | 'odata-id' } | undefined;

/** True for `/redfish/v1/...` paths: where a session can live. */
export function isRedfishPath(path: string): boolean {
  return path.startsWith('/redfish/v1/') && !path.includes('..');
}

/**
 * Where to DELETE a new session: the `Location` header resolved against `origin` (relative or an
 * absolute URL of the same origin); an absolute URL naming another host or scheme (a BMC that
 * prints its own host name, or `http://` behind its TLS proxy) contributes only its path, and only
 * when it is a Redfish path; else the session body's `@odata.id`. Credentials go only to `origin`.
 */
export function sessionLocation(origin: string, location: string | undefined, odataId: string | undefined): SessionLocation {
  const base = new URL(origin);
  for (const [candidate, fromHeader] of [
    [location, true],
    [odataId, false],
  ] as const) {
    if (candidate === undefined || candidate.trim() === '') continue;
    let url: URL;
    try {
      url = new URL(candidate.trim(), base);
    } catch {
      continue;
    }
    const path = url.pathname + url.search;
    if (!isRedfishPath(url.pathname)) continue;
    if (url.origin === base.origin) return { path, via: fromHeader ? 'same-origin' : 'odata-id' };
    if (fromHeader) return { path, via: 'path-of-foreign-url' };
  }
  return undefined;
}
