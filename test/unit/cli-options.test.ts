/**
 * `parseOptions` (src/cli/args.ts): the CLI's own strict option parser, in place of node:util's
 * `parseArgs`, whose first use costs a one-shot command ~2 ms of start-up. It must give what
 * parseArgs gives for every argument list parseArgs accepts and a UsageError wherever parseArgs
 * throws. Each vector states the outcome and checks that parseArgs agrees; the properties compare
 * the two on argument lists built from bmc's option table and from random tables. No error
 * message may carry the value given to --password.
 */
import fc from 'fast-check';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { describe, expect, expectTypeOf, it } from 'vitest';
import { parseOptions, UsageError, type OptionTable } from '../../src/cli/args.js';
import { COMMON_OPTIONS } from '../../src/cli/bmc.js';

/** The features the CLI's tables use: string and boolean, `short`, `default`, `multiple`. */
const OPTIONS = {
  user: { type: 'string', default: 'ADMIN' },
  password: { type: 'string' },
  json: { type: 'boolean', default: false },
  follow: { type: 'boolean', short: 'f' },
  help: { type: 'boolean', short: 'h', default: false },
  latency: { type: 'string', multiple: true, default: [] },
} as const;

type Outcome = { result: unknown } | { error: Error & { code?: string } };

function attempt(run: () => unknown): Outcome {
  try {
    return { result: run() };
  } catch (err) {
    return { error: err as Error };
  }
}

/** Both parsers on the same config: equal results, or a UsageError where parseArgs throws one of its own. */
function expectSameOutcome(config: { args: string[]; options: OptionTable; allowPositionals: boolean }): Outcome {
  // (parseArgs's types want mutable default arrays; the table is the same)
  const expected = attempt(() => parseArgs({ ...config, options: config.options as ParseArgsConfig['options'], strict: true }));
  const actual = attempt(() => parseOptions({ ...config, strict: true }));
  if ('error' in expected) {
    expect(expected.error.code).toMatch(/^ERR_PARSE_ARGS_/);
    expect('error' in actual && actual.error).toBeInstanceOf(UsageError);
  } else {
    expect('result' in actual && actual.result).toStrictEqual(expected.result);
  }
  if ('error' in actual) expect(actual.error.message).not.toContain('\n');
  return actual;
}

function parsed(args: string[], allowPositionals = true): { values: Record<string, unknown>; positionals: string[] } {
  const outcome = expectSameOutcome({ args, options: OPTIONS, allowPositionals });
  if ('error' in outcome) throw outcome.error;
  return outcome.result as { values: Record<string, unknown>; positionals: string[] };
}

function refusal(args: string[], allowPositionals = true): string {
  const outcome = expectSameOutcome({ args, options: OPTIONS, allowPositionals });
  if (!('error' in outcome)) throw new Error(`${JSON.stringify(args)} was accepted`);
  return outcome.error.message;
}

const DEFAULTS = { user: 'ADMIN', json: false, help: false, latency: [] };

describe('parseOptions: what parseArgs accepts', () => {
  it('--name value, --name=value, -s for a boolean, short groups', () => {
    expect(parsed(['--user', 'bob']).values).toEqual({ ...DEFAULTS, user: 'bob' });
    expect(parsed(['--user=bob']).values).toEqual({ ...DEFAULTS, user: 'bob' });
    expect(parsed(['--user=a=b']).values).toEqual({ ...DEFAULTS, user: 'a=b' });
    expect(parsed(['--user', '']).values).toEqual({ ...DEFAULTS, user: '' });
    expect(parsed(['--user=']).values).toEqual({ ...DEFAULTS, user: '' });
    expect(parsed(['-h']).values).toEqual({ ...DEFAULTS, help: true });
    expect(parsed(['-fh']).values).toEqual({ ...DEFAULTS, follow: true, help: true });
    expect(parsed(['--json', '--follow']).values).toEqual({ ...DEFAULTS, json: true, follow: true });
  });

  it('applies defaults; an option without one and not given is absent', () => {
    const { values, positionals } = parsed([]);
    expect(values).toEqual(DEFAULTS);
    expect('follow' in values || 'password' in values).toBe(false);
    expect(positionals).toEqual([]);
  });

  it('a default array is a copy: changing the result leaves the table alone', () => {
    const { values } = parseOptions({ args: [], options: OPTIONS, strict: true });
    values.latency.push('x');
    expect(OPTIONS.latency.default).toEqual([]);
  });

  it('a repeated option: the last wins, a multiple one collects every value', () => {
    expect(parsed(['--user', 'a', '--user=b']).values.user).toBe('b');
    expect(parsed(['--json', '--json']).values.json).toBe(true);
    expect(parsed(['--latency', 'a', '--latency=b']).values.latency).toEqual(['a', 'b']);
  });

  it('"--" ends the options; a lone "-" is a positional, or a string option\'s value', () => {
    expect(parsed(['info', '--', '--user', 'x', '--']).positionals).toEqual(['info', '--user', 'x', '--']);
    expect(parsed(['--', '--user', 'x']).values).toEqual(DEFAULTS);
    expect(parsed(['-']).positionals).toEqual(['-']);
    expect(parsed(['--user', '-']).values.user).toBe('-');
    expect(parsed(['--'], false).positionals).toEqual([]);
  });

  it('a value starting with "-" is given inline', () => {
    expect(parsed(['--user=-x']).values.user).toBe('-x');
    expect(parsed(['--password=--']).values.password).toBe('--');
  });

  it('a group "-h-" expands to -h and "--": the options end there (as in parseArgs)', () => {
    expect(parsed(['-h-', '--json'])).toEqual({ values: { ...DEFAULTS, help: true }, positionals: ['--json'] });
  });

  it('--no-NAME is no negation: it is an option of that name', () => {
    expect(refusal(['--no-json'])).toBe('unknown option "--no-json"');
    const table = { 'no-redfish': { type: 'boolean', default: false } } as const;
    expect(expectSameOutcome({ args: ['--no-redfish'], options: table, allowPositionals: false })).toEqual({ result: { values: { 'no-redfish': true }, positionals: [] } });
  });
});

describe('parseOptions: what parseArgs refuses, as a UsageError naming the option', () => {
  it('a string option without its value', () => {
    expect(refusal(['--user'])).toBe('--user needs a value');
    expect(refusal(['--json', '--password'])).toBe('--password needs a value');
  });

  it('a boolean option with "=value"', () => {
    expect(refusal(['--json=yes'])).toBe('--json does not take a value');
    expect(refusal(['--help='])).toBe('--help does not take a value');
  });

  it('an unknown option, long or short, alone or in a group', () => {
    expect(refusal(['--nope'])).toBe('unknown option "--nope"');
    expect(refusal(['--nope=1'])).toBe('unknown option "--nope"');
    expect(refusal(['-x'])).toBe('unknown option "-x"');
    expect(refusal(['-hx'])).toBe('unknown option "-x"');
    expect(refusal(['-h='])).toBe('unknown option "-="');
    expect(refusal(['---'])).toBe('unknown option "---"');
    expect(refusal(['--constructor'])).toBe('unknown option "--constructor"');
    expect(refusal(['--__proto__'])).toBe('unknown option "--__proto__"');
    expect(refusal(['--toString=1'])).toBe('unknown option "--toString"');
  });

  it('a positional where the command takes none', () => {
    expect(refusal(['info'], false)).toBe('unexpected argument "info": this command takes options only');
    expect(refusal(['-'], false)).toMatch(/unexpected argument "-"/);
    expect(refusal(['--', '--user'], false)).toMatch(/unexpected argument "--user"/);
    expect(refusal(['--user', 'a', 'b'], false)).toMatch(/unexpected argument "b"/);
    // what follows an "=" may be a value: not shown
    expect(refusal(['--', '--password=hunter2'], false)).toBe('unexpected argument "--password=...": this command takes options only');
    expect(refusal(['--=hunter2'])).toBe('unknown option "--=..."');
  });

  it('a string option followed by an option-like argument (parseArgs: "ambiguous")', () => {
    expect(refusal(['--user', '-x'])).toBe('--user needs a value (one that starts with "-" is written --user=VALUE)');
    expect(refusal(['--user', '--'])).toMatch(/^--user needs a value/);
    expect(refusal(['--user', '--json'])).toMatch(/^--user needs a value/);
    expect(refusal(['--password', '-s3cret'])).not.toContain('s3cret');
  });

  it('the first mistake in the order of the arguments', () => {
    expect(refusal(['info', '--nope'], false)).toMatch(/unexpected argument "info"/);
    expect(refusal(['--nope', 'info'], false)).toBe('unknown option "--nope"');
    expect(refusal(['--json=1', '--user'])).toBe('--json does not take a value');
  });

  it('short string options: -uVALUE, -u VALUE, a group ending in one, and -u without a value', () => {
    const table = { user: { type: 'string', short: 'u' }, help: { type: 'boolean', short: 'h' } } as const;
    const run = (args: string[]) => expectSameOutcome({ args, options: table, allowPositionals: false });
    expect(run(['-ubob'])).toEqual({ result: { values: { user: 'bob' }, positionals: [] } });
    expect(run(['-u', 'bob'])).toEqual({ result: { values: { user: 'bob' }, positionals: [] } });
    expect(run(['-hubob'])).toEqual({ result: { values: { help: true, user: 'bob' }, positionals: [] } });
    expect(run(['-hu', '-'])).toEqual({ result: { values: { help: true, user: '-' }, positionals: [] } });
    expect(run(['-u-x'])).toEqual({ result: { values: { user: '-x' }, positionals: [] } });
    expect(run(['-u'])).toEqual({ error: new UsageError('-u (--user) needs a value') });
    expect(run(['-hu', '-x'])).toEqual({ error: new UsageError('-u (--user) needs a value (one that starts with "-" is written --user=VALUE)') });
  });
});

describe('parseOptions: types', () => {
  it('types each value as parseArgs does, without casts at the call site', () => {
    const { values, positionals } = parseOptions({ args: [], options: OPTIONS, strict: true });
    expectTypeOf(values.user).toEqualTypeOf<string>();
    expectTypeOf(values.password).toEqualTypeOf<string | undefined>();
    expectTypeOf(values.json).toEqualTypeOf<boolean>();
    expectTypeOf(values.follow).toEqualTypeOf<boolean | undefined>();
    expectTypeOf(values.latency).toEqualTypeOf<string[]>();
    expectTypeOf(positionals).toEqualTypeOf<string[]>();
    // a table written inline, as lab.ts and sim.ts do
    const inline = parseOptions({ args: [], options: { n: { type: 'string', multiple: true }, v: { type: 'boolean', default: false } }, strict: true });
    expectTypeOf(inline.values.n).toEqualTypeOf<string[] | undefined>();
    expectTypeOf(inline.values.v).toEqualTypeOf<boolean>();
    const bmc = parseOptions({ args: [], options: COMMON_OPTIONS, allowPositionals: true, strict: true });
    expectTypeOf(bmc.values).toEqualTypeOf<ReturnType<typeof parseArgs<{ args: string[]; options: typeof COMMON_OPTIONS; allowPositionals: true; strict: true }>>['values']>();
  });
});

// ---- properties ----

const BMC_NAMES = Object.keys(COMMON_OPTIONS);
/** values a user might give: empty, dashes, option-like, "=", and anything */
const value = fc.oneof(fc.constantFrom('', '-', '--', '-x', '--json', '-h', 'ADMIN', '=', 'a=b', '10.0.0.1:623'), fc.string({ maxLength: 6 }));
/** arguments that are not options of bmc's table, or are tricky for a parser */
const ODD_ARGS = ['--', '-', '-h', '-hh', '-hx', '-h-', '-h=', '-x', '-xh', '--nope', '--no-json', '--constructor', '--__proto__', '---', '--=x', '--=a=b', 'info', 'command', 'ON'];

/** One or two arguments: a known option in every form, an odd one, or a random word. */
const bmcArgument: fc.Arbitrary<string[]> = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(...BMC_NAMES).map((name) => [`--${name}`]) },
  { weight: 3, arbitrary: fc.tuple(fc.constantFrom(...BMC_NAMES), value).map(([name, v]) => [`--${name}`, v]) },
  { weight: 3, arbitrary: fc.tuple(fc.constantFrom(...BMC_NAMES), value).map(([name, v]) => [`--${name}=${v}`]) },
  { weight: 3, arbitrary: fc.constantFrom(...ODD_ARGS).map((arg) => [arg]) },
  { weight: 1, arbitrary: fc.tuple(fc.constantFrom('-', '--', '-h'), fc.string({ maxLength: 4 })).map(([dash, rest]) => [dash + rest]) },
  { weight: 1, arbitrary: value.map((v) => [v]) },
);
const bmcArgs = fc.array(bmcArgument, { maxLength: 8 }).map((parts) => parts.flat());

/** A random option table with the features the CLI uses, names and short letters that collide often. */
const LETTERS = ['a', 'h', 'u', 'x', '-', '='];
const optionSpec = fc
  .record({ type: fc.constantFrom('string' as const, 'boolean' as const), multiple: fc.boolean(), short: fc.option(fc.constantFrom(...LETTERS.slice(0, 4)), { nil: undefined }), withDefault: fc.boolean() })
  .chain(({ type, multiple, short, withDefault }) => {
    const one: fc.Arbitrary<string | boolean> = type === 'string' ? fc.string({ maxLength: 3 }) : fc.boolean();
    const fallback: fc.Arbitrary<unknown> = multiple ? fc.array(one, { maxLength: 2 }) : one;
    return fc.option(fallback, { nil: undefined }).map((d) => ({
      type,
      ...(multiple ? { multiple } : {}),
      ...(short !== undefined ? { short } : {}),
      ...(withDefault && d !== undefined ? { default: d } : {}),
    }));
  });
const optionTable = fc.dictionary(fc.constantFrom('a', 'u', 'x', 'user', 'json', 'ab', 'no-json'), optionSpec, { maxKeys: 5 }) as fc.Arbitrary<OptionTable>;
const anyArgument = fc.oneof(
  fc.array(fc.constantFrom(...LETTERS, 'b', 'v'), { minLength: 1, maxLength: 4 }).map((cs) => `-${cs.join('')}`),
  fc.tuple(fc.constantFrom('a', 'u', 'x', 'user', 'json', 'ab', 'nope', ''), fc.option(value, { nil: undefined })).map(([name, v]) => (v === undefined ? `--${name}` : `--${name}=${v}`)),
  fc.constantFrom('--', '-'),
  value,
);

describe('parseOptions against parseArgs', () => {
  it('bmc\'s option table: the same values and positionals, a UsageError exactly where parseArgs throws', () => {
    fc.assert(
      fc.property(bmcArgs, fc.boolean(), (args, allowPositionals) => {
        expectSameOutcome({ args, options: COMMON_OPTIONS, allowPositionals });
      }),
      { numRuns: 3000 },
    );
  });

  it('random option tables (short string options, one-letter names, multiple flags, defaults)', () => {
    fc.assert(
      fc.property(optionTable, fc.array(anyArgument, { maxLength: 8 }), fc.boolean(), (options, args, allowPositionals) => {
        expectSameOutcome({ args, options, allowPositionals });
      }),
      { numRuns: 2000 },
    );
  });

  it('no error message contains the value given to --password', () => {
    const secret = fc.tuple(fc.constantFrom('', '-', '--'), fc.stringMatching(/^[A-Za-z0-9]{4,10}$/)).map(([dash, core]) => `${dash}SECRET${core}`);
    const passwordArgs = fc.tuple(secret, fc.boolean()).map(([s, inline]) => ({ secret: s, args: inline ? [`--password=${s}`] : ['--password', s] }));
    fc.assert(
      fc.property(bmcArgs, passwordArgs, bmcArgs, fc.boolean(), (before, password, after, allowPositionals) => {
        fc.pre(![...before, ...after].some((arg) => arg.includes('SECRET')));
        const outcome = attempt(() => parseOptions({ args: [...before, ...password.args, ...after], options: COMMON_OPTIONS, allowPositionals, strict: true }));
        if ('error' in outcome) {
          expect(outcome.error).toBeInstanceOf(UsageError);
          expect(outcome.error.message).not.toContain(password.secret.replace(/^-+/, ''));
        }
      }),
      { numRuns: 2000 },
    );
  });
});
