/**
 * The NATS address: one or more comma separated servers, each a URL (`nats://`, `tls://`,
 * `ws://`, `wss://`) or a bare `host:port` (taken as `nats://`). Credentials may ride in the
 * URL as `user:password@` or as a token `token@`; they are split off so the server list is
 * safe to log, and messages show the address with them redacted.
 */
import { ConfigError } from './error.js';

export const DEFAULT_NATS_PORT = 4222;
const SCHEMES = new Set(['nats:', 'tls:', 'ws:', 'wss:']);
const REDACTED = '[redacted]';

export interface MqAddress {
  /** server URLs without credentials, e.g. `nats://nats.example:4222` */
  servers: string[];
  user?: string;
  password?: string;
  token?: string;
}

/** The address with every password or token replaced by `[redacted]` (user names stay). */
export function redactMqAddress(address: string): string {
  return address
    .split(',')
    .map((part) => {
      const schemeEnd = part.indexOf('://');
      const start = schemeEnd < 0 ? 0 : schemeEnd + 3;
      // NATS addresses have no path, so the last '@' ends the credentials even when they are malformed.
      const at = part.lastIndexOf('@');
      if (at < start) return part;
      const userinfo = part.slice(start, at);
      const colon = userinfo.indexOf(':');
      const safe = colon < 0 ? REDACTED : `${userinfo.slice(0, colon)}:${REDACTED}`;
      return `${part.slice(0, start)}${safe}${part.slice(at)}`;
    })
    .join(',');
}

function decode(value: string, variable: string, shown: string): string {
  try {
    return decodeURIComponent(value);
  } catch {
    throw new ConfigError(`${shown} has badly percent-encoded credentials`, variable);
  }
}

function sameOrUnset(a: string | undefined, b: string | undefined): boolean {
  return a === undefined || b === undefined || a === b;
}

export function parseMqAddress(address: string, variable: string): MqAddress {
  const parts = address
    .split(',')
    .map((p) => p.trim())
    .filter((p) => p !== '');
  if (parts.length === 0) throw new ConfigError('is empty', variable);
  const result: MqAddress = { servers: [] };
  // with credentials in the address, a message names the server by its place and quotes nothing:
  // a ',' or '@' inside a password splits it where no redaction can tell its parts from a host
  const withCredentials = address.includes('@');
  let previousHadCredentials = true;
  for (const [i, part] of parts.entries()) {
    const shown = withCredentials ? `server ${i + 1} of ${parts.length}` : JSON.stringify(part);
    const hasScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(part);
    const withScheme = hasScheme ? part : `nats://${part}`;
    let url: URL;
    try {
      url = new URL(withScheme);
    } catch {
      throw new ConfigError(`${shown} is not a NATS URL or host:port`, variable);
    }
    if (!SCHEMES.has(url.protocol)) throw new ConfigError(`${shown} has scheme ${url.protocol} (use nats://, tls://, ws:// or wss://)`, variable);
    if (url.hostname === '') throw new ConfigError(`${shown} has no host`, variable);
    if ((url.pathname !== '' && url.pathname !== '/') || url.search !== '' || url.hash !== '') {
      throw new ConfigError(`${shown} must not have a path, query or fragment`, variable);
    }
    const port = url.port !== '' ? url.port : url.protocol === 'nats:' || url.protocol === 'tls:' ? String(DEFAULT_NATS_PORT) : '';
    result.servers.push(`${url.protocol}//${url.hostname}${port === '' ? '' : `:${port}`}`);

    const user = url.username === '' ? undefined : decode(url.username, variable, shown);
    const password = url.password === '' ? undefined : decode(url.password, variable, shown);
    let next: Pick<MqAddress, 'user' | 'password' | 'token'> = {};
    if (user !== undefined && password !== undefined) next = { user, password };
    else if (user !== undefined) next = { token: user };
    else if (password !== undefined) throw new ConfigError(`${shown} has a password but no user`, variable);
    // `nats://tok,en123@nats` reads as server `tok` and token `en123` at `nats`: half the token in the
    // log and in a DNS lookup. Credentials on a bare server after one without any are taken for that.
    const hasCredentials = user !== undefined;
    if (hasCredentials && !hasScheme && !previousHadCredentials) {
      throw new ConfigError(`${shown} carries credentials that the server before it does not: a ',' inside a password or token? Write it percent-encoded as %2C (or give every server its scheme)`, variable);
    }
    previousHadCredentials = hasCredentials;
    if (!sameOrUnset(result.user, next.user) || !sameOrUnset(result.password, next.password) || !sameOrUnset(result.token, next.token)) {
      throw new ConfigError('the servers carry different credentials', variable);
    }
    Object.assign(result, next);
  }
  if (result.token !== undefined && result.user !== undefined) throw new ConfigError('mixes a token with user:password', variable);
  return result;
}
