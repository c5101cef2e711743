/**
 * Text that leaves metal-bmc for other parties (result events on NATS, console clients) carries
 * no internal URLs and no query strings: a URL is cut to scheme and host, and a query (`?a=b`,
 * where image tokens and signatures live) is dropped wherever it appears. Logs keep their detail
 * (they are the operator's, and the logger redacts credentials).
 */

// the scheme bounded (RFC 3986 puts no bound, real ones are short): unbounded, a text like
// `a.a.a.a…` (a machine id from an event) was tried from every word boundary to its end, quadratic
// (200 KB blocked the event loop 12 s)
const URL_RE = /\b([a-z][a-z0-9+.-]{0,31}):\/\/([^\s/?#"<>]+)([^\s"<>]*)/gi;
const QUERY_RE = /\?[^\s"<>=?&#]+=[^\s"<>]*/g;
/** URL_RE and QUERY_RE as source and flags (a test runs them in a worker thread on hostile text) */
export const PUBLIC_TEXT_PATTERNS = (): Array<[string, string]> => [
  [URL_RE.source, URL_RE.flags],
  [QUERY_RE.source, QUERY_RE.flags],
];
/** punctuation that ends a sentence rather than a URL */
const TRAILING = /[:,.;)\]]+$/;

/** `https://user:pw@host:8443/path?token=x` → `https://host:8443`; `POST /a?b=c` → `POST /a`. */
export function publicText(text: string): string {
  return text
    .replace(URL_RE, (_m, scheme: string, authority: string, rest: string) => {
      const tail = (rest === '' ? authority : rest).match(TRAILING)?.[0] ?? '';
      const host = authority.slice(authority.lastIndexOf('@') + 1);
      return `${scheme.toLowerCase()}://${rest === '' && tail ? host.slice(0, -tail.length) : host}${tail}`;
    })
    .replace(QUERY_RE, '');
}

/** A URL without its query and fragment (`https://images/bios.bin?sig=x` → `https://images/bios.bin`). */
export function withoutQuery(url: string): string {
  return url.replace(/[?#][^]*$/, '');
}

/**
 * `publicText` applied to every string of a JSON-like value (a copy; the input is unchanged).
 * Strings under a key of `keepPath` (a firmware job's `image`: the operator's own choice) keep
 * their path and lose only the query.
 */
export function publicValue<T>(value: T, keepPath: ReadonlySet<string> = new Set(), key = '', depth = 0): T {
  if (typeof value === 'string') return (keepPath.has(key) ? withoutQuery(value) : publicText(value)) as T;
  if (depth > 8 || typeof value !== 'object' || value === null) return value;
  if (Array.isArray(value)) return value.map((v: unknown) => publicValue(v, keepPath, key, depth + 1)) as T;
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, publicValue(v as unknown, keepPath, k, depth + 1)])) as T;
}
