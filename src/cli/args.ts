/** Shared argument handling for the CLI: usage errors, BMC addresses and credentials. */
import { readFileSync } from 'node:fs';
import { BmcError } from '../errors.js';
import { ipFamily } from '../net/cidr.js';

/** A mistake in how the command was called: exit code 2 with one line on stderr. */
export class UsageError extends Error {
  override name = 'UsageError';
}

export interface HostPort {
  host: string;
  port: number;
}

/** An IPv6 literal has two colons or more; "host:port" is not one. */
function isIPv6Literal(text: string): boolean {
  return text.indexOf(':') !== text.lastIndexOf(':') && ipFamily(text) === 6;
}

/** HOST, HOST:PORT, IPv6 literal, or [IPv6]:PORT. */
export function parseAddress(text: string | undefined, defaultPort: number, option = '--address'): HostPort {
  if (!text) throw new UsageError(`${option} is required (HOST or HOST:PORT)`);
  let host = text;
  let portText: string | undefined;
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(text);
  if (bracketed) {
    host = bracketed[1]!;
    portText = bracketed[2];
  } else if (!isIPv6Literal(text)) {
    const i = text.lastIndexOf(':');
    if (i >= 0) {
      host = text.slice(0, i);
      portText = text.slice(i + 1);
    }
  }
  const hostOk = ipFamily(host) !== 0 || /^[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}))*$/.test(host);
  if (!hostOk) throw new UsageError(`${option} ${JSON.stringify(text)} is not a valid host name or IP address`);
  const port = portText === undefined ? defaultPort : Number(portText);
  if (portText !== undefined && !/^\d+$/.test(portText)) throw new UsageError(`${option} ${JSON.stringify(text)} has an invalid port`);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new UsageError(`${option} ${JSON.stringify(text)}: port must be 1-65535`);
  return { host, port };
}

/** The BMC password from --password, --password-file, or the IPMI_PASSWORD environment variable (as ipmitool -E). */
export function resolvePassword(values: { password?: string | undefined; 'password-file'?: string | undefined }, env: NodeJS.ProcessEnv): string {
  if (values.password !== undefined) return values.password;
  const file = values['password-file'];
  if (file !== undefined) {
    try {
      return readFileSync(file, 'utf8').replace(/\r?\n$/, '');
    } catch (err) {
      throw new UsageError(`--password-file ${file}: ${(err as NodeJS.ErrnoException).code ?? 'unreadable'}`);
    }
  }
  if (env.IPMI_PASSWORD !== undefined) return env.IPMI_PASSWORD;
  throw new UsageError('a BMC password is required: --password, --password-file or IPMI_PASSWORD');
}

export function requireOption(value: string | undefined, name: string): string {
  if (value === undefined || value === '') throw new UsageError(`${name} is required`);
  return value;
}

export function parseIntegerOption(value: string | undefined, name: string, min: number, max: number): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!/^-?\d+$/.test(value) || n < min || n > max) throw new UsageError(`${name} must be an integer from ${min} to ${max}, got ${JSON.stringify(value)}`);
  return n;
}

/** One line for stderr: the message and, for a BmcError, its code. */
export function describeError(err: unknown): string {
  if (err instanceof BmcError) return `${err.message} [${err.code}]`;
  if (err instanceof Error) return err.message;
  return String(err);
}
