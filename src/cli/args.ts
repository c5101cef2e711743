/** Shared argument handling for the CLI: usage errors, BMC addresses and credentials. */
import { terminalSafe } from '../terminal-text.js';
import { readFileSync } from 'node:fs';
import { BmcError } from '../errors.js';
import { ipFamily } from '../net/cidr.js';

/** A mistake in how the command was called: exit code 2 with one line on stderr. */
export class UsageError extends Error {
  override name = 'UsageError';
}

/** One option of a command: a string or a flag, as node:util's parseArgs takes it. */
export interface OptionSpec {
  readonly type: 'string' | 'boolean';
  /** one character: `-h` for `--help` */
  readonly short?: string;
  /** the value when the option is not given */
  readonly default?: string | boolean | readonly string[] | readonly boolean[];
  /** every use adds to an array; without it the last use wins */
  readonly multiple?: boolean;
}

export type OptionTable = Readonly<Record<string, OptionSpec>>;

export interface OptionsConfig<T extends OptionTable> {
  args: readonly string[];
  options: T;
  /** arguments that are not options (else each one is a usage error) */
  allowPositionals?: boolean;
  /** the only mode there is: unknown options and misused values are usage errors */
  strict: true;
}

type OneValue<S extends OptionSpec> = S['type'] extends 'string' ? string : boolean;
type OptionValue<S extends OptionSpec> = S['multiple'] extends true ? OneValue<S>[] : OneValue<S>;
/** Every option's value, typed as parseArgs types it: present for sure only when it has a default. */
export type OptionValues<T extends OptionTable> = (
  & { -readonly [K in keyof T]?: OptionValue<T[K]> }
  & { -readonly [K in keyof T as T[K]['default'] extends string | boolean | readonly unknown[] ? K : never]: OptionValue<T[K]> }
) extends infer V ? { [K in keyof V]: V[K] } : never;

export interface ParsedOptions<T extends OptionTable> {
  values: OptionValues<T>;
  positionals: string[];
}

/** One use of an option: its name in the table, how it was written, and its value if it came with one. */
interface OptionUse {
  name: string;
  written: string;
  value: string | undefined;
  /** the value was part of the same argument (`--user=U`, `-uU`), not the next one */
  inline: boolean;
}

function specOf(options: OptionTable, name: string): OptionSpec | undefined {
  return Object.hasOwn(options, name) ? options[name] : undefined;
}

/** The option that `-c` stands for; a letter no option claims names the option of that name, as in parseArgs. */
function nameOfShort(options: OptionTable, letter: string): string {
  for (const [name, spec] of Object.entries(options)) {
    if (spec.short === letter) return name;
  }
  return letter;
}

/** A string option takes the next argument, whatever it is (checked later); anything else takes none. */
function takeNext(options: OptionTable, name: string, written: string, rest: string[]): OptionUse {
  const value = specOf(options, name)?.type === 'string' ? rest.shift() : undefined;
  return { name, written, value, inline: false };
}

/** `--name`, `--name VALUE` or `--name=VALUE` (an "=" counts from the name's second character on). */
function longOption(options: OptionTable, arg: string, rest: string[]): OptionUse {
  if (!arg.includes('=', 3)) return takeNext(options, arg.slice(2), arg, rest);
  const name = arg.slice(2, arg.indexOf('='));
  return { name, written: `--${name}`, value: arg.slice(arg.indexOf('=') + 1), inline: true };
}

/** `-abc` as `-a -b -c`; a string option inside the group takes the rest as its value: `-abfFILE` is `-a -b -fFILE`. */
function expandGroup(options: OptionTable, arg: string): string[] {
  const expanded: string[] = [];
  for (let i = 1; i < arg.length; i++) {
    const letter = arg.charAt(i);
    if (specOf(options, nameOfShort(options, letter))?.type === 'string' && i < arg.length - 1) {
      expanded.push(`-${arg.slice(i)}`);
      break;
    }
    expanded.push(`-${letter}`);
  }
  return expanded;
}

/** The option that `arg` is (its value taken from `rest` when that is the next argument), or the arguments a short group stands for. */
function readOption(options: OptionTable, arg: string, rest: string[]): OptionUse | string[] {
  if (arg.startsWith('--')) return longOption(options, arg, rest);
  const name = nameOfShort(options, arg.charAt(1));
  if (arg.length === 2) return takeNext(options, name, arg, rest);
  if (specOf(options, name)?.type === 'string') return { name, written: arg.slice(0, 2), value: arg.slice(2), inline: true };
  return expandGroup(options, arg);
}

/** An argument quoted for a message, without what follows an "=": a value, maybe a password (`-- --password=P`). */
function quoted(arg: string): string {
  const eq = arg.indexOf('=');
  return JSON.stringify(eq < 0 || eq === arg.length - 1 ? arg : `${arg.slice(0, eq + 1)}...`);
}

/** The option as the user wrote it and, for a short one, its long name. */
function label(use: OptionUse): string {
  return use.written.startsWith('--') ? use.written : `${use.written} (--${use.name})`;
}

/** parseArgs's strict checks, in its order; a message names the option, never a value. */
function checkUse(options: OptionTable, use: OptionUse): OptionSpec {
  const spec = specOf(options, use.name);
  if (!spec) throw new UsageError(`unknown option ${quoted(use.written)}`);
  if (spec.type === 'string' && use.value === undefined) throw new UsageError(`${label(use)} needs a value`);
  if (spec.type === 'boolean' && use.value !== undefined) throw new UsageError(`${label(use)} does not take a value`);
  // `--user --json` is more likely a forgotten value than a user named "--json"
  if (!use.inline && use.value !== undefined && use.value.length > 1 && use.value.startsWith('-')) {
    throw new UsageError(`${label(use)} needs a value (one that starts with "-" is written --${use.name}=VALUE)`);
  }
  return spec;
}

function store(values: Record<string, unknown>, use: OptionUse, spec: OptionSpec): void {
  const value = use.value ?? true;
  if (spec.multiple) ((values[use.name] ??= []) as unknown[]).push(value);
  else values[use.name] = value;
}

function applyDefaults(values: Record<string, unknown>, options: OptionTable): void {
  for (const [name, spec] of Object.entries(options)) {
    if (spec.default === undefined || values[name] !== undefined) continue;
    // a copy: the caller's changes to values stay out of the table
    values[name] = Array.isArray(spec.default) ? [...(spec.default as readonly unknown[])] : spec.default;
  }
}

/**
 * The command line's options and positional arguments: node:util's `parseArgs` in strict mode,
 * with the same results for every argument list it accepts and a UsageError wherever it throws,
 * for the part of its config the CLI uses (types, `short`, `default`, `multiple`,
 * `allowPositionals`; no tokens, no `--no-` negation). Our own because parseArgs costs a one-shot
 * `bmc command` ~2 ms of start-up: Node compiles its internal parse_args modules on first use
 * (bench/cli-startup.ts). test/unit/cli-options.test.ts compares the two.
 */
export function parseOptions<T extends OptionTable>(config: OptionsConfig<T>): ParsedOptions<T> {
  const { options } = config;
  const values = Object.create(null) as Record<string, unknown>;
  const positionals: string[] = [];
  const positional = (arg: string) => {
    if (!config.allowPositionals) throw new UsageError(`unexpected argument ${quoted(arg)}: this command takes options only`);
    positionals.push(arg);
  };
  const rest = [...config.args];
  while (rest.length > 0) {
    const arg = rest.shift()!;
    if (arg === '--') {
      // everything after "--" is positional
      rest.splice(0).forEach(positional);
    } else if (arg === '-' || !arg.startsWith('-')) {
      positional(arg);
    } else {
      const read = readOption(options, arg, rest);
      if (Array.isArray(read)) rest.unshift(...read);
      else store(values, read, checkUse(options, read));
    }
  }
  applyDefaults(values, options);
  return { values: values as OptionValues<T>, positionals };
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
  // a BMC's own words travel in error messages (a Redfish @Message.ExtendedInfo): nothing in them acts in the terminal
  if (err instanceof BmcError) return `${terminalSafe(err.message)} [${err.code}]`;
  if (err instanceof Error) return terminalSafe(err.message);
  return terminalSafe(String(err));
}
