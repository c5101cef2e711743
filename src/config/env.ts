/**
 * Typed readers over one environment variable each. An unset or blank variable takes the
 * default; every invalid value raises a ConfigError naming the variable. Readers marked
 * secret never put the value into a message.
 */
import { X509Certificate } from 'node:crypto';
import { accessSync, constants, readFileSync, statSync } from 'node:fs';
import { ConfigError } from './error.js';
import { parseGoDuration, formatDuration } from './duration.js';

export type Env = Record<string, string | undefined>;

export const MAX_TIMER_MS = 2_147_483_647; // setTimeout's limit, about 24.8 days

/** A value for a message: quoted, one line, shortened; URL credentials removed. */
export function show(value: string): string {
  // up to the last '@': a password may hold '/' or '@' itself, and the first '@' or '/' would leave its tail in the message
  const cleaned = value.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^]*@/i, '$1[redacted]@').replace(/[\r\n]+/g, ' ');
  return JSON.stringify(cleaned.length > 80 ? `${cleaned.slice(0, 80)}...` : cleaned);
}

/** The trimmed value, or undefined when unset or blank. */
export function text(env: Env, name: string): string | undefined {
  const v = env[name];
  if (v === undefined) return undefined;
  const t = v.trim();
  return t === '' ? undefined : t;
}

/** A secret as given (not trimmed, bytes matter), or undefined when unset or blank. */
export function secret(env: Env, name: string): string | undefined {
  const v = env[name];
  return v === undefined || v.trim() === '' ? undefined : v;
}

export function required(value: string | undefined, name: string): string {
  if (value === undefined) throw new ConfigError('is required but not set', name);
  return value;
}

export function int(env: Env, name: string, fallback: number, min: number, max: number): number {
  const v = text(env, name);
  if (v === undefined) return fallback;
  if (!/^[+-]?\d+$/.test(v)) throw new ConfigError(`${show(v)} is not an integer`, name);
  const n = Number(v);
  if (n < min || n > max) throw new ConfigError(`${show(v)} is out of range (${min}..${max})`, name);
  return n;
}

export function port(env: Env, name: string, fallback: number, allowZero = false): number {
  const v = text(env, name);
  if (v !== undefined && !/^\d+$/.test(v)) throw new ConfigError(`${show(v)} is not a port number`, name);
  return int(env, name, fallback, allowZero ? 0 : 1, 65535);
}

const TRUE = new Set(['true', '1', 'yes']);
const FALSE = new Set(['false', '0', 'no']);

export function bool(env: Env, name: string, fallback: boolean): boolean {
  const v = text(env, name);
  if (v === undefined) return fallback;
  const lower = v.toLowerCase();
  if (TRUE.has(lower)) return true;
  if (FALSE.has(lower)) return false;
  throw new ConfigError(`${show(v)} is not a boolean (use true/false, 1/0, yes/no)`, name);
}

export function oneOf<T extends string>(env: Env, name: string, values: readonly T[], fallback: T): T {
  const v = text(env, name);
  if (v === undefined) return fallback;
  const lower = v.toLowerCase();
  const found = values.find((x) => x === lower);
  if (found === undefined) throw new ConfigError(`${show(v)} is not one of ${values.join(', ')}`, name);
  return found;
}

/** A Go duration in milliseconds, at least `minMs` (0 allowed only when minMs is 0) and within setTimeout's range. */
/**
 * A duration in whole milliseconds (`2.0005s` is 2001 ms: the timers and clients that take these
 * want integers, and one refused a fraction at start-up without naming the variable).
 */
export function duration(env: Env, name: string, fallback: string, minMs = 1, maxMs = MAX_TIMER_MS): number {
  const v = text(env, name) ?? fallback;
  let ms: number;
  try {
    ms = Math.round(parseGoDuration(v));
  } catch {
    throw new ConfigError(`${show(v)} is not a duration (examples: 30s, 5m, 1h30m)`, name);
  }
  if (ms < minMs) throw new ConfigError(`${show(v)} is too short (minimum ${formatDuration(minMs)})`, name);
  if (ms > maxMs) throw new ConfigError(`${show(v)} is too long (maximum ${formatDuration(maxMs)})`, name);
  return ms;
}

/** Comma separated, items trimmed, empty items dropped. */
export function list(env: Env, name: string, fallback: string[] = []): string[] {
  const v = text(env, name);
  if (v === undefined) return [...fallback];
  return v
    .split(',')
    .map((x) => x.trim())
    .filter((x) => x !== '');
}

/** A path that must name a readable regular file when set. */
export function readableFile(env: Env, name: string): string | undefined {
  const path = text(env, name);
  if (path === undefined) return undefined;
  try {
    if (!statSync(path).isFile()) throw new ConfigError(`${show(path)} is not a regular file`, name);
    accessSync(path, constants.R_OK);
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    const code = (err as NodeJS.ErrnoException).code ?? 'error';
    throw new ConfigError(`${show(path)} is not readable (${code})`, name);
  }
  return path;
}

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g;

/**
 * A readable PEM bundle holding at least one certificate that parses: a key file or a DER file
 * given by mistake would otherwise pass as "readable" and every TLS connection fail on it later,
 * with an error that does not name the variable.
 */
export function certificateFile(env: Env, name: string): string | undefined {
  const path = readableFile(env, name);
  if (path === undefined) return undefined;
  const blocks = readFileSync(path, 'latin1').match(PEM_CERTIFICATE) ?? [];
  const parses = (pem: string): boolean => {
    try {
      return new X509Certificate(pem).subject !== undefined;
    } catch {
      return false;
    }
  };
  if (!blocks.some(parses)) throw new ConfigError(`${show(path)} holds no PEM certificate (-----BEGIN CERTIFICATE-----)`, name);
  return path;
}

/** `host:port`, `[v6]:port` or `:port` (all interfaces); the port may be 0 (any free port). */
export function hostPort(env: Env, name: string, fallback: string): { host: string; port: number } {
  const v = text(env, name) ?? fallback;
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]\s]*)):(\d{1,5})$/.exec(v);
  const p = Number(m?.[3]);
  if (!m || p > 65535) throw new ConfigError(`${show(v)} is not host:port (examples: 127.0.0.1:2112, :2112, [::1]:2112)`, name);
  const host = m[1] ?? m[2] ?? '';
  return { host: host === '' ? '0.0.0.0' : host, port: p };
}
