import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { BmcError } from '../../src/errors.js';
import { ConfigError } from '../../src/config/error.js';
import { formatDuration, parseGoDuration, parseGoDurationNs } from '../../src/config/duration.js';

// Nanoseconds per unit, as in Go's time package.
const UNIT_NS: Record<string, bigint> = {
  ns: 1n,
  us: 1_000n,
  'µs': 1_000n,
  'μs': 1_000n,
  ms: 1_000_000n,
  s: 1_000_000_000n,
  m: 60_000_000_000n,
  h: 3_600_000_000_000n,
};
const MAX_INT64 = (1n << 63n) - 1n;

describe('parseGoDuration examples (from Go time.ParseDuration tests)', () => {
  it.each([
    ['0', 0],
    ['-0', 0],
    ['+0', 0],
    ['5s', 5000],
    ['30s', 30_000],
    ['1478s', 1_478_000],
    ['-5s', -5000],
    ['+5s', 5000],
    ['-0s', 0],
    ['5.0s', 5000],
    ['5.6s', 5600],
    ['5.s', 5000],
    ['.5s', 500],
    ['1.0s', 1000],
    ['1.00s', 1000],
    ['1.004s', 1004],
    ['1.0040s', 1004],
    ['100.00100s', 100_001],
    ['10ns', 0.00001],
    ['11us', 0.011],
    ['12µs', 0.012],
    ['12μs', 0.012],
    ['13ms', 13],
    ['300ms', 300],
    ['14s', 14_000],
    ['15m', 900_000],
    ['5m', 300_000],
    ['16h', 57_600_000],
    ['3h30m', 12_600_000],
    ['1h30m', 5_400_000],
    ['10.5s4m', 250_500],
    ['-2m3.4s', -123_400],
    ['1h2m3s4ms5us6ns', 3_723_004.005006],
    ['39h9m14.425s', 140_954_425],
    ['52763797000ns', 52_763.797],
    ['0.3333333333333333333h', 1_200_000],
    ['9007199254740993ns', 9_007_199_254.740993],
    ['0.100000000000000000000h', 360_000],
    ['0.830103483285477580700h', 2_988_372.539827], // Go: 49m48s + 372539827ns,
  ])('%s → %d ms', (text, ms) => {
    expect(parseGoDuration(text)).toBeCloseTo(ms, 6);
  });

  it('is exact in nanoseconds at the int64 edges', () => {
    expect(parseGoDurationNs('9223372036854775807ns')).toBe(MAX_INT64);
    expect(parseGoDurationNs('-9223372036854775808ns')).toBe(-(1n << 63n));
    expect(parseGoDurationNs('9223372036.854775807s')).toBe(MAX_INT64);
    expect(parseGoDurationNs('2562047h47m16.854775807s')).toBe(MAX_INT64);
    // Go's float step for long fractions, to the nanosecond (values from Go's own tests)
    expect(parseGoDurationNs('0.3333333333333333333h')).toBe(20n * 60_000_000_000n);
    expect(parseGoDurationNs('0.100000000000000000000h')).toBe(6n * 60_000_000_000n);
    expect(parseGoDurationNs('0.830103483285477580700h')).toBe(49n * 60_000_000_000n + 48_000_000_000n + 372_539_827n);
    expect(parseGoDurationNs('0.9223372036854775807h')).toBe(55n * 60_000_000_000n + 20_000_000_000n + 413_933_267n);
  });

  it.each(['', '3', '-', 's', '.', '.s', '+.s', '1d', '5x', '1.2.3s', ' 5s', '5s ', '5 s', '1e3s', '3000000h', '9223372036854775808ns', '9223372036854775.808us', '-9223372036854775809ns', 'x5s', '5s-3s', '\u00b5s'])(
    'rejects %j with a ConfigError',
    (text) => {
      expect(() => parseGoDuration(text)).toThrow(ConfigError);
      try {
        parseGoDuration(text);
      } catch (err) {
        expect((err as ConfigError).code).toBe('CONFIG');
        expect((err as Error).message).toMatch(/is not a duration/);
        expect((err as Error).message).not.toMatch(/\n/);
      }
    },
  );

  it('formats milliseconds for messages', () => {
    expect(formatDuration(0)).toBe('0s');
    expect(formatDuration(300)).toBe('300ms');
    expect(formatDuration(5_400_000)).toBe('1h30m0s');
    expect(formatDuration(2_147_483_647)).toBe('596h31m23.647s');
  });
});

/** One generated component: digits, optional fraction (only as many digits as keep the unit exact), unit. */
const component = fc
  .record({
    int: fc.bigInt({ min: 0n, max: 99_999n }),
    unit: fc.constantFrom(...Object.keys(UNIT_NS)),
    fracDigits: fc.integer({ min: 0, max: 11 }),
    fracSeed: fc.bigInt({ min: 0n, max: 99_999_999_999n }),
    style: fc.constantFrom('int', 'int.frac', '.frac', 'int.'),
  })
  .map(({ int, unit, fracDigits, fracSeed, style }) => {
    const unitNs = UNIT_NS[unit] ?? 1n;
    // Digits beyond log10(unit) would make Go's float step inexact; the reference stays exact.
    const maxDigits = unitNs.toString().length - 1;
    const digits = Math.min(fracDigits, maxDigits);
    const frac = digits === 0 ? '' : (fracSeed % 10n ** BigInt(digits)).toString().padStart(digits, '0');
    const useFrac = frac !== '' && style !== 'int' && style !== 'int.';
    const text = style === '.frac' && useFrac ? `.${frac}${unit}` : style === 'int.' ? `${int}.${unit}` : useFrac ? `${int}.${frac}${unit}` : `${int}${unit}`;
    const hasInt = !(style === '.frac' && useFrac);
    const ns = (hasInt ? int * unitNs : 0n) + (useFrac ? (BigInt(frac) * unitNs) / 10n ** BigInt(frac.length) : 0n);
    return { text, ns };
  });

describe('parseGoDuration properties', () => {
  it('matches an exact reference for generated valid durations', () => {
    fc.assert(
      fc.property(fc.constantFrom('', '-', '+'), fc.array(component, { minLength: 1, maxLength: 6 }), (sign, parts) => {
        const text = sign + parts.map((p) => p.text).join('');
        const total = parts.reduce((sum, p) => sum + p.ns, 0n);
        const expected = sign === '-' ? -total : total;
        expect(parseGoDurationNs(text)).toBe(expected);
        const ms = parseGoDuration(text);
        expect(Math.abs(ms - Number(expected) / 1e6)).toBeLessThanOrEqual(Math.abs(Number(expected) / 1e6) * 1e-12 + 1e-9);
      }),
      { numRuns: 2000 },
    );
  });

  it('throws only ConfigError (a BmcError with code CONFIG) on arbitrary text', () => {
    const durationish = fc.string({ unit: fc.constantFrom('0', '1', '5', '9', '.', '-', '+', 'n', 's', 'u', 'µ', 'm', 'h', 'x', ' '), maxLength: 12 });
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.string({ unit: 'binary' }), durationish), (text) => {
        try {
          const ms = parseGoDuration(text);
          expect(Number.isFinite(ms)).toBe(true);
        } catch (err) {
          expect(err).toBeInstanceOf(ConfigError);
          expect(err).toBeInstanceOf(BmcError);
          expect((err as BmcError).code).toBe('CONFIG');
        }
      }),
      { numRuns: 3000 },
    );
  });

  it('accepts exactly the Go grammar (when in range)', () => {
    const grammar = /^[-+]?(?:0|(?:(?:\d+\.?\d*|\.\d+)(?:ns|us|µs|μs|ms|s|m|h))+)$/u;
    const durationish = fc.string({ unit: fc.constantFrom('0', '1', '7', '.', '-', 'n', 's', 'u', 'µ', 'm', 'h', 'd'), maxLength: 10 });
    fc.assert(
      fc.property(durationish, (text) => {
        let ok = true;
        try {
          parseGoDurationNs(text);
        } catch {
          ok = false;
        }
        // Strings of at most 10 characters overflow int64 only with long digit runs in hours/minutes.
        const mayOverflow = /\d{7,}(?:\.\d*)?[hm]|\d{10,}/.test(text);
        if (!mayOverflow) expect(ok).toBe(grammar.test(text));
        else if (!grammar.test(text)) expect(ok).toBe(false);
      }),
      { numRuns: 3000 },
    );
  });
});
