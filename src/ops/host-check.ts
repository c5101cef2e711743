/**
 * Which Host headers the operations listener answers. It has no authentication, so a web page in
 * an operator's browser could read it through DNS rebinding: the page's own name made to resolve
 * to 127.0.0.1 (or to the management address) is same-origin for the browser, which sends that
 * name as Host. An IP literal or `localhost` cannot be rebound, nor can a name the operator chose:
 * this host's own name (what Prometheus often scrapes by), the host part of
 * METAL_BMC_HTTP_ADDRESS, and METAL_BMC_HTTP_ALLOWED_HOSTS (`*`: any Host, the check off).
 */
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
