/**
 * Which Host headers the operations listener answers. It has no authentication, so a web page in
 * an operator's browser could read it through DNS rebinding: the page's own name made to resolve
 * to 127.0.0.1 (or to the management address) is same-origin for the browser, which sends that
 * name as Host. An IP literal or `localhost` cannot be rebound, nor can a name the operator chose:
 * this host's own name and the full names /etc/hosts gives it (what Prometheus often scrapes by), the host part of
 * METAL_BMC_HTTP_ADDRESS, and METAL_BMC_HTTP_ALLOWED_HOSTS (`*`: any Host, the check off).
 */
import { closeSync, openSync, readSync } from 'node:fs';
import { isIP } from 'node:net';
import { hostname } from 'node:os';

/** `name` lower-cased and without its one trailing dot (`Metal-BMC.example.` is `metal-bmc.example`) */
const normal = (name: string): string => name.toLowerCase().replace(/\.$/, '');

/** This host's names as os.hostname() gives them: the whole, and its first label when that is a dotted name. */
export function ownHostNames(name = hostname()): string[] {
  const whole = normal(name);
  if (whole === '') return [];
  const first = whole.split('.')[0]!;
  return first !== whole && isIP(whole) === 0 ? [whole, first] : [whole];
}

/**
 * The names /etc/hosts gives this host: every name on a line that names it (by its whole name or
 * its first label). On Debian, os.hostname() is the short name and /etc/hosts holds the full one
 * (`127.0.1.1 mgmt01.site.example mgmt01`), which `hostname -f` prints and Prometheus targets use.
 */
export function hostsFileNames(text: string, own: readonly string[]): string[] {
  const mine = new Set(own.map(normal));
  const found = new Set<string>();
  for (const raw of text.split('\n')) {
    const names = (raw.split('#')[0] ?? '').trim().split(/\s+/).slice(1).map(normal).filter((n) => n !== '' && n.length <= 253);
    if (names.some((n) => mine.has(n))) for (const n of names) found.add(n);
  }
  return [...found];
}

/** This host's names from os.hostname() and /etc/hosts (read once, at most 64 KiB; unreadable: none from it). */
export function ownHostNamesWithAliases(hostsFile = '/etc/hosts'): string[] {
  const own = ownHostNames();
  let text = '';
  try {
    const fd = openSync(hostsFile, 'r');
    try {
      const buf = Buffer.alloc(64 * 1024);
      text = buf.subarray(0, readSync(fd, buf, 0, buf.length, 0)).toString('utf8');
    } finally {
      closeSync(fd);
    }
  } catch {
    // no /etc/hosts (a minimal container): the host's own name only
  }
  return [...new Set([...own, ...hostsFileNames(text, own)])];
}

/** The name of a Host header without its port, or undefined when it is no host[:port] at all. */
function hostOf(header: string): { name: string; literal: boolean } | undefined {
  const bracketed = /^\[([0-9a-fA-F:.]+)\](?::\d{1,5})?$/.exec(header);
  if (bracketed) return isIP(bracketed[1]!) === 6 ? { name: bracketed[1]!, literal: true } : undefined;
  const m = /^([^:[\]\s]+)(?::\d{1,5})?$/.exec(header);
  if (!m) return undefined;
  return { name: normal(m[1]!), literal: isIP(m[1]!) === 4 };
}

/**
 * A check of a request's Host header: true when it may be answered. No Host header at all (an
 * HTTP/1.0 health check; browsers always send one) is answered. `names`: the names allowed
 * besides IP literals and localhost.
 */
export function hostCheck(names: readonly string[]): (header: string | undefined) => boolean {
  const allowed = new Set(['localhost', ...names.map(normal)]);
  if (allowed.has('*')) return () => true;
  return (header) => {
    if (header === undefined) return true;
    const host = hostOf(header);
    return host !== undefined && (host.literal || allowed.has(host.name));
  };
}
