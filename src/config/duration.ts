/**
 * Go's time.ParseDuration, faithfully: a signed sequence of decimal numbers, each with an
 * optional fraction and a unit (`ns`, `us`/`µs`/`μs`, `ms`, `s`, `m`, `h`), e.g. `300ms`,
 * `-1.5h`, `2h45m`; `0` alone needs no unit. Computed in integer nanoseconds like Go
 * (fractions as Go does: `float64(f) * (float64(unit) / scale)`, truncated), then returned
 * in milliseconds. Pure and total: a number or a ConfigError.
 */
import { ConfigError } from './error.js';

const NS_PER_MS = 1_000_000;
const MAX_NS = (1n << 63n) - 1n;
const OVERFLOW_LIMIT = 1n << 63n;

const UNITS: ReadonlyMap<string, bigint> = new Map([
  ['ns', 1n],
  ['us', 1_000n],
  ['\u00b5s', 1_000n], // U+00B5 micro sign
  ['\u03bcs', 1_000n], // U+03BC Greek mu
  ['ms', 1_000_000n],
  ['s', 1_000_000_000n],
  ['m', 60_000_000_000n],
  ['h', 3_600_000_000_000n],
]);

function isDigit(c: string | undefined): boolean {
  return c !== undefined && c >= '0' && c <= '9';
}

function fail(text: string, why: string): ConfigError {
  return new ConfigError(`${JSON.stringify(text.length > 64 ? `${text.slice(0, 64)}...` : text)} is not a duration: ${why}`);
}

/** Parses a Go duration into nanoseconds (a bigint, exact). */
export function parseGoDurationNs(text: string): bigint {
  if (typeof text !== 'string') throw fail(String(text), 'not a string');
  let s = text;
  let negative = false;
  if (s.startsWith('-') || s.startsWith('+')) {
    negative = s.startsWith('-');
    s = s.slice(1);
  }
  if (s === '0') return 0n;
  if (s === '') throw fail(text, 'empty');
  let total = 0n;
  let i = 0;
  while (i < s.length) {
    if (!(s[i] === '.' || isDigit(s[i]))) throw fail(text, 'expected a number');
    // integer part
    const intStart = i;
    while (isDigit(s[i])) i++;
    const pre = i > intStart;
    let value = pre ? BigInt(s.slice(intStart, i)) : 0n;
    if (value > OVERFLOW_LIMIT) throw fail(text, 'out of range');
    // fraction, accumulated as Go's leadingFraction does (digits past int64 are dropped)
    let fraction = 0n;
    let scale = 1;
    let post = false;
    if (s[i] === '.') {
      i++;
      const fracStart = i;
      let overflow = false;
      while (isDigit(s[i])) {
        if (!overflow) {
          const next = fraction * 10n + BigInt(s.charCodeAt(i) - 48);
          if (fraction > MAX_NS / 10n || next > OVERFLOW_LIMIT) overflow = true;
          else {
            fraction = next;
            scale *= 10;
          }
        }
        i++;
      }
      post = i > fracStart;
    }
    if (!pre && !post) throw fail(text, 'a number needs digits');
    // unit: everything up to the next digit or dot
    const unitStart = i;
    while (i < s.length && s[i] !== '.' && !isDigit(s[i])) i++;
    if (i === unitStart) throw fail(text, 'missing unit');
    const unitText = s.slice(unitStart, i);
    const unit = UNITS.get(unitText);
    if (unit === undefined) throw fail(text, `unknown unit ${JSON.stringify(unitText)}`);
    if (value > OVERFLOW_LIMIT / unit) throw fail(text, 'out of range');
    value *= unit;
    if (fraction > 0n) {
      value += BigInt(Math.trunc(Number(fraction) * (Number(unit) / scale)));
      if (value > OVERFLOW_LIMIT) throw fail(text, 'out of range');
    }
    total += value;
    if (total > OVERFLOW_LIMIT) throw fail(text, 'out of range');
  }
  if (negative) return -total;
  if (total > MAX_NS) throw fail(text, 'out of range');
  return total;
}

/** Parses a Go duration (`5m`, `1h30m`, `300ms`, `1.5s`) into milliseconds (fractional below 1 ms). */
export function parseGoDuration(text: string): number {
  const ns = parseGoDurationNs(text);
  const whole = ns / BigInt(NS_PER_MS);
  return Number(whole) + Number(ns - whole * BigInt(NS_PER_MS)) / NS_PER_MS;
}

/** Formats milliseconds the way Go's Duration.String does for whole units: `1h30m0s`, `300ms`, `0s`. */
export function formatDuration(ms: number): string {
  if (ms === 0) return '0s';
  const sign = ms < 0 ? '-' : '';
  let rest = Math.abs(ms);
  if (rest < 1000) return `${sign}${rest}ms`;
  const h = Math.floor(rest / 3_600_000);
  rest -= h * 3_600_000;
  const m = Math.floor(rest / 60_000);
  rest -= m * 60_000;
  const s = rest / 1000;
  return `${sign}${h > 0 ? `${h}h` : ''}${h > 0 || m > 0 ? `${m}m` : ''}${s}s`;
}
