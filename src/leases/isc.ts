/**
 * ISC dhcpd.leases (dhcpd.leases(5)) → IscLease records, in file order.
 * Pure and total: any text gives the leases and the lease declarations left out (each a
 * LeaseParseError naming its line), or a LeaseParseError for a file that cannot be read as a whole.
 *
 * The file is a list of statements; a statement is words and strings ended by `;`
 * or by a `{ ... }` block. Only `lease <ip> { ... }` blocks are read; every other
 * top-level statement (authoring-byte-order, server-duid, failover peer, host, class,
 * ia-na, ...) and every unknown statement inside a lease is skipped.
 *
 * A lease declaration holding a statement that cannot be read (a bad date, a hardware address that
 * is none) is left out and the next one read, as dhcpd reads its own file (lease_file_subparse:
 * "possibly corrupt lease file", then on): one bad entry must not take every lease with it. Only a
 * `}` that closes nothing, and a DHCPv6 lease file (dhcpv6File), fail the whole text.
 */
import { ipv4ToNumber } from '../net/cidr.js';
import { IscScanner, TOKEN_CLOSE, TOKEN_EOF, TOKEN_OPEN, TOKEN_SEMI, TOKEN_STRING, TOKEN_WORD, type TokenKind } from './isc-scanner.js';
import { normalizeMac } from './mac.js';
import { LeaseParseError, type IscLease } from './types.js';

/** The words of one statement; the arrays are reused, only the first `count` entries are current. */
interface Statement {
  words: string[];
  quoted: boolean[];
  /** each word's line, and its index in the text */
  lines: number[];
  offsets: number[];
  count: number;
  line: number;
  /** the index in the text of its first token */
  offset: number;
}

/** Takes a statement into the lease; the error when it cannot be read. */
type Handler = (lease: IscLease, st: Statement) => LeaseParseError | undefined;

function preview(st: Statement): string {
  const text = st.words.slice(0, st.count).join(' ');
  return JSON.stringify(text.length > 60 ? `${text.slice(0, 57)}...` : text);
}

function malformed(st: Statement): LeaseParseError {
  return new LeaseParseError(st.line, `malformed '${st.words[0] ?? ''}' statement ${preview(st)}`);
}

/** Reads words and strings up to the token that ends the statement, and returns that token. */
function readStatement(s: IscScanner, st: Statement): TokenKind {
  let count = 0;
  let kind = s.next();
  st.line = s.tokenLine;
  st.offset = s.tokenOffset;
  while (kind === TOKEN_WORD || kind === TOKEN_STRING) {
    st.words[count] = s.value;
    st.quoted[count] = kind === TOKEN_STRING;
    st.lines[count] = s.tokenLine;
    st.offsets[count] = s.tokenOffset;
    count++;
    kind = s.next();
  }
  st.count = count;
  return kind;
}

/**
 * How a block ended: at its `}`, or where a lease declaration starts inside it (`st` then holds its
 * `lease <ip>`). dhcpd never writes one inside another: the block is one dhcpd stopped writing (a
 * full disk) and appended after, and read as nested in it, every lease appended after it would be
 * lost, and the block reported anew with each append, its end moving with the file's.
 */
type BlockEnd = 'closed' | 'lease';

const LEASE = 'lease';

/** A statement that begins with the `lease` keyword. */
function isLeaseStatement(st: Statement): boolean {
  return st.count > 0 && st.words[0] === LEASE && st.quoted[0] === false;
}

/**
 * Where a lease declaration starts in a statement ended by `{`: `lease <ip> {` (0), or a statement
 * its writer stopped inside, the next declaration written right after it (dhcpd writes
 * `lease <ip> {` with nothing before it: `ends 4 2026/0lease 10.0.0.3 {`): the index of the word
 * that ends in `lease`. -1 for none.
 */
function leaseStartIn(st: Statement): number {
  const at = st.count - 2;
  const word = st.words[at];
  const ip = st.words[at + 1];
  if (at >= 0 && word !== undefined && ip !== undefined && st.quoted[at] === false && st.quoted[at + 1] === false && word.endsWith(LEASE) && ipv4ToNumber(ip) >= 0) return at;
  return isLeaseStatement(st) ? 0 : -1;
}

/** The words before the lease declaration that starts at word `at` (leaseStartIn), as text; empty for none. */
function before(st: Statement, at: number): string {
  return [...st.words.slice(0, at), (st.words[at] as string).slice(0, -LEASE.length)].join(' ').trim();
}

/** Makes `st` the `lease ...` that starts at word `at` (leaseStartIn), with the keyword's line and index. */
function leaseFrom(st: Statement, at: number): void {
  const word = st.words[at] as string;
  st.line = st.lines[at] as number;
  st.offset = (st.offsets[at] as number) + word.length - LEASE.length;
  st.words.copyWithin(0, at, st.count);
  st.quoted.copyWithin(0, at, st.count);
  st.lines.copyWithin(0, at, st.count);
  st.offsets.copyWithin(0, at, st.count);
  st.count -= at;
  st.words[0] = LEASE;
}

/** Whether a statement ended by `{` starts a lease declaration, `st` then made that declaration's `lease ...` (leaseStartIn). */
function startsLease(st: Statement): boolean {
  const at = leaseStartIn(st);
  if (at >= 0) leaseFrom(st, at);
  return at >= 0;
}

/**
 * At the top level, whether a statement ended by `{` starts a lease declaration (`st` then made its
 * `lease ...`); a statement its writer stopped inside, the declaration written right after it, is
 * left out into `skipped`.
 */
function topLevelLease(st: Statement, skipped: LeaseParseError[]): boolean {
  const at = leaseStartIn(st);
  if (at < 0) return false;
  const cut = before(st, at);
  const cutLine = st.line;
  leaseFrom(st, at);
  if (cut !== '') skipped.push(new LeaseParseError(cutLine, `statement ${JSON.stringify(cut.slice(0, 60))} not finished before the lease declaration on line ${st.line} (its writer stopped inside it)`, { problem: 'cut-short' }));
  return true;
}

/** Skips a `{ ... }` block whose `{` (on `openLine`) was just read, nested blocks included, to its `}` or to a lease declaration starting inside it. */
function skipBlock(s: IscScanner, st: Statement, openLine: number): BlockEnd {
  let depth = 1;
  for (;;) {
    const kind = readStatement(s, st);
    if (kind === TOKEN_OPEN) {
      if (startsLease(st)) return 'lease';
      depth++;
    } else if (kind === TOKEN_CLOSE && --depth === 0) {
      return 'closed';
    } else if (kind === TOKEN_EOF) {
      throw new LeaseParseError(openLine, `unterminated block (end of file at line ${s.line})`, { problem: 'cut-short' });
    }
  }
}

/** The error for a declaration a lease declaration starts inside of (BlockEnd). */
function notClosed(line: number, what: string, leaseLine: number): LeaseParseError {
  return new LeaseParseError(line, `${what} not closed before the lease declaration on line ${leaseLine} (its writer stopped inside it)`, { problem: 'cut-short' });
}

const DATE = /^(\d{4})\/(\d{1,2})\/(\d{1,2})$/;
const TIME = /^(\d{1,2}):(\d{2}):(\d{2})$/;
const WEEKDAY = /^[0-6]$/;
const EPOCH = /^\d{1,12}$/;

/** The decimal number in text[from, to), or -1 if any character is not a digit. */
function digitsAt(text: string, from: number, to: number): number {
  let n = 0;
  for (let i = from; i < to; i++) {
    const d = text.charCodeAt(i) - 0x30;
    if (d < 0 || d > 9) return -1;
    n = n * 10 + d;
  }
  return n;
}

/** `yyyy/mm/dd` and `hh:mm:ss` as numbers; the fixed-width form dhcpd writes is read without a regex. */
function dateParts(date: string, time: string): number[] | undefined {
  if (date.length === 10 && time.length === 8 && date[4] === '/' && date[7] === '/' && time[2] === ':' && time[5] === ':') {
    const parts = [digitsAt(date, 0, 4), digitsAt(date, 5, 7), digitsAt(date, 8, 10), digitsAt(time, 0, 2), digitsAt(time, 3, 5), digitsAt(time, 6, 8)];
    return parts.includes(-1) ? undefined : parts;
  }
  const d = DATE.exec(date);
  const t = TIME.exec(time);
  return d === null || t === null ? undefined : [d[1], d[2], d[3], t[1], t[2], t[3]].map(Number);
}

/** `<weekday> yyyy/mm/dd hh:mm:ss` (UTC), `epoch <seconds>` (db-time-format local) or `never`; undefined for anything else. */
function parseDate(st: Statement): Date | 'never' | undefined {
  const w = st.words;
  const n = st.count;
  if (n === 2 && w[1] === 'never') return 'never';
  if (n === 3 && w[1] === 'epoch' && EPOCH.test(w[2] as string)) return new Date(Number(w[2]) * 1000);
  const parts = n === 4 && WEEKDAY.test(w[1] as string) ? dateParts(w[2] as string, w[3] as string) : undefined;
  if (parts !== undefined) {
    const [year, month, day, hour, minute, second] = parts as [number, number, number, number, number, number];
    const date = new Date(Date.UTC(2000, month - 1, day, hour, minute, second));
    date.setUTCFullYear(year); // Date.UTC maps years 0..99 to 1900..1999
    if (month >= 1 && month <= 12 && date.getUTCDate() === day && hour < 24 && minute < 60 && second < 60) return date;
  }
  return undefined;
}

function badDate(st: Statement): LeaseParseError {
  return new LeaseParseError(st.line, `bad date in '${st.words[0]}' statement ${preview(st)}`);
}

/** `<word> state <state>` after `binding`, `next binding`, `rewind binding`; undefined when malformed. */
function bindingState(st: Statement, at: number): string | undefined {
  const w = st.words;
  return st.count !== at + 3 || w[at] !== 'binding' || w[at + 1] !== 'state' ? undefined : (w[at + 2] as string);
}

/** An unquoted colon-separated hex value (as dhcpd writes binary uids) as a binary string. */
function hexToBinary(text: string): string | undefined {
  const mac = normalizeMac(text);
  if (mac === undefined || !text.includes(':')) return undefined;
  return String.fromCharCode(...mac.split(':').map((h) => parseInt(h, 16)));
}

const LEASE_STATEMENTS = new Map<string, Handler>([
  ['starts', (lease, st) => {
    const date = parseDate(st);
    if (date === undefined) return badDate(st);
    if (date !== 'never') lease.starts = date;
    return undefined;
  }],
  ['ends', (lease, st) => {
    lease.ends = parseDate(st);
    return lease.ends === undefined ? badDate(st) : undefined;
  }],
  ['binding', (lease, st) => {
    lease.bindingState = bindingState(st, 0);
    return lease.bindingState === undefined ? malformed(st) : undefined;
  }],
  ['next', (lease, st) => {
    lease.nextBindingState = bindingState(st, 1);
    return lease.nextBindingState === undefined ? malformed(st) : undefined;
  }],
  ['hardware', (lease, st) => {
    // `hardware <type>;`: dhcpd writes it for a client whose chaddr has length 0 (InfiniBand,
    // RFC 4390; broken firmware) and reads it back (parse_hardware_param): a lease without a MAC
    if (st.count === 2 && st.quoted[1] !== true) return undefined;
    if (st.count !== 3 || st.quoted[2] === true) return malformed(st);
    lease.mac = normalizeMac(st.words[2] as string);
    return lease.mac === undefined ? new LeaseParseError(st.line, `invalid hardware address ${preview(st)}`) : undefined;
  }],
  ['uid', (lease, st) => {
    if (st.count !== 2) return malformed(st);
    const value = st.words[1] as string;
    lease.uid = st.quoted[1] === true ? value : (hexToBinary(value) ?? value);
    return undefined;
  }],
  ['client-hostname', (lease, st) => {
    if (st.count !== 2) return malformed(st);
    lease.hostname = st.words[1] as string;
    return undefined;
  }],
  ['set', (lease, st) => {
    if (st.count !== 4 || st.words[2] !== '=') return malformed(st);
    // a prototype-free record: `set __proto__ = ...;` is just a name
    (lease.vars ??= Object.create(null) as Record<string, string>)[st.words[1] as string] = st.words[3] as string;
    return undefined;
  }],
]);

/** The error for a `lease` statement that names no IPv4 address, or undefined. */
function leaseAddressProblem(st: Statement): LeaseParseError | undefined {
  const ip = st.words[1];
  if (st.count < 2 || ip === undefined || st.quoted[1] === true) return new LeaseParseError(st.line, 'lease without an IP address');
  if (st.count > 2 || ipv4ToNumber(ip) < 0) return new LeaseParseError(st.line, `lease with an invalid IPv4 address ${preview(st)}`);
  return undefined;
}

/** A lease declaration read to its end, and the first thing in it that could not be read (it is then left out). */
interface ReadLease {
  lease: IscLease;
  problem: LeaseParseError | undefined;
  end: BlockEnd;
}

/** Reads the lease declaration whose `lease <ip> {` was just read, to its `}` or to a lease declaration starting inside it. */
function parseLease(s: IscScanner, st: Statement): ReadLease {
  const line = st.line;
  const ip = st.words[1] ?? '';
  let problem = leaseAddressProblem(st);
  const lease: IscLease = { ip, ends: undefined, line };
  // a string in it broken off at a newline (IscScanner.brokenString) is why what follows does not
  // fit: named before anything else read in it, unless a lease declaration starts after it
  s.brokenString = undefined;
  for (;;) {
    const end = readStatement(s, st);
    if (end === TOKEN_SEMI) {
      const first = st.count === 0 ? undefined : st.words[0];
      const handler = first === undefined || st.quoted[0] === true ? undefined : LEASE_STATEMENTS.get(first);
      if (handler !== undefined) problem ??= handler(lease, st);
    } else if (end === TOKEN_CLOSE) {
      if (st.count > 0) problem ??= new LeaseParseError(st.line, `missing ';' after ${preview(st)}`);
      return { lease, problem: s.brokenString ?? problem, end: 'closed' };
    } else if (end === TOKEN_OPEN) {
      // a nested block (`on expiry { ... }`), or the next lease declaration
      if (startsLease(st) || skipBlock(s, st, st.line) === 'lease') return { lease, problem: notClosed(line, `lease ${ip}`, st.line), end: 'lease' };
    } else {
      throw new LeaseParseError(line, `unterminated block of lease ${ip} (end of file at line ${s.line})`, { problem: 'cut-short' });
    }
  }
}

/**
 * The leases of a dhcpd.leases file, in file order (a lease declaration that cannot be read, and
 * one the text stops inside, left out: parseIscDeclarations); `startLine`: the line the text
 * starts on. Throws LeaseParseError only for a file that cannot be read as a whole.
 */
export function parseIscLeases(text: string, startLine = 1): IscLease[] {
  const d = parseIscDeclarations(text, startLine);
  const v6 = dhcpv6File(d);
  if (v6 !== undefined) throw v6;
  return d.leases;
}

/** What parseIscDeclarations took from a text. */
export interface IscDeclarations {
  /** the leases of the complete declarations, in file order */
  leases: IscLease[];
  /** the complete lease declarations left out, in file order: each the error for the first thing in it that could not be read */
  skipped: LeaseParseError[];
  /** the index after the last complete declaration: what follows it is whitespace, comments or the declaration `cut` names */
  end: number;
  /** the line of `end` */
  endLine: number;
  /** the text stops inside a declaration (dhcpd writing it): the error a full read of it gives; it is left out */
  cut: LeaseParseError | undefined;
  /** the line of the first DHCPv6 declaration (`ia-na`, `ia-ta`, `ia-pd`), when there is one (dhcpv6File) */
  dhcpv6Line: number | undefined;
}

/** The declarations only dhcpd in DHCPv6 mode writes (server/db.c write_ia), each an IPv6 client's addresses or prefixes. */
const IA_DECLARATIONS = new Set(['ia-na', 'ia-ta', 'ia-pd']);

function isIaDeclaration(st: Statement): boolean {
  return st.count > 0 && st.quoted[0] === false && IA_DECLARATIONS.has(st.words[0] as string);
}

/**
 * The error for a text that is dhcpd's DHCPv6 lease file (dhcpd -6): DHCPv6 declarations and no
 * lease read, in `d` nor in `leasesBefore` (what was read of the file before `d`'s text); else
 * undefined. Read as a DHCPv4 file it gives no lease, every declaration skipped in silence: the
 * daemon pointed at the wrong file would see no BMC and say nothing. dhcpd -4 writes no `ia-*`
 * (dhcpd reading one in DHCPv4 mode warns "IA_NA is only supported in DHCPv6 mode"); both write
 * `server-duid`, which tells nothing. A file with leases is read: its `ia-*` are skipped as before.
 */
export function dhcpv6File(d: IscDeclarations, leasesBefore = 0): LeaseParseError | undefined {
  if (d.dhcpv6Line === undefined || d.leases.length + leasesBefore > 0) return undefined;
  return new LeaseParseError(d.dhcpv6Line, "an ISC dhcpd DHCPv6 lease file (dhcpd -6: an 'ia-*' declaration here and no lease declaration), not the DHCPv4 one BMCs lease from", { problem: 'structure' });
}

/**
 * Parses the complete declarations of a part of a dhcpd.leases file that starts at a declaration
 * (on `startLine`). A declaration the text stops inside (a block, statement or string the end of
 * the text cuts short) is left out and named in `cut`: dhcpd appends to the file, a read can see
 * half of what it writes. Throws LeaseParseError (problem `structure`) only for a `}` that closes
 * nothing. `onLease`: each lease, in file order, as it is read, instead of into `leases` (then
 * empty): a caller keeping only each address's last entry holds that many, not every renewal
 * dhcpd appended since its last rewrite.
 */
export function parseIscDeclarations(text: string, startLine = 1, onLease?: (lease: IscLease) => void): IscDeclarations {
  const s = new IscScanner(text, startLine);
  const st: Statement = { words: [], quoted: [], lines: [], offsets: [], count: 0, line: startLine, offset: 0 };
  const leases: IscLease[] = [];
  const skipped: LeaseParseError[] = [];
  let end = 0;
  let endLine = startLine;
  /** `st` holds the `lease <ip>` of a lease declaration that started inside the declaration before it */
  let leaseStarted = false;
  let dhcpv6Line: number | undefined;
  try {
    for (;;) {
      const token = leaseStarted ? TOKEN_OPEN : readStatement(s, st);
      const isLease = leaseStarted || (token === TOKEN_OPEN ? topLevelLease(st, skipped) : isLeaseStatement(st));
      leaseStarted = false;
      if (token === TOKEN_EOF) {
        if (st.count > 0) throw new LeaseParseError(st.line, `statement ${preview(st)} not ended by ';' at end of file`, { problem: 'cut-short' });
        return { leases, skipped, end, endLine, cut: undefined, dhcpv6Line };
      }
      if (token === TOKEN_CLOSE) throw new LeaseParseError(s.tokenLine, "unexpected '}'", { problem: 'structure' });
      if (token === TOKEN_OPEN) {
        let ended: BlockEnd;
        if (isLease) {
          const read = parseLease(s, st);
          if (read.problem !== undefined) skipped.push(read.problem);
          else if (onLease !== undefined) onLease(read.lease);
          else leases.push(read.lease);
          ended = read.end;
        } else {
          if (dhcpv6Line === undefined && isIaDeclaration(st)) dhcpv6Line = st.line;
          const what = `declaration ${preview(st)}`;
          const line = st.line;
          ended = skipBlock(s, st, line);
          if (ended === 'lease') skipped.push(notClosed(line, what, st.line));
        }
        if (ended === 'lease') {
          // what came before the lease declaration is taken in; it is read next
          leaseStarted = true;
          end = st.offset;
          endLine = st.line;
          continue;
        }
      } else if (isLease) {
        skipped.push(new LeaseParseError(st.line, `lease statement without a block ${preview(st)}`));
      }
      end = s.offset;
      endLine = s.line;
    }
  } catch (err) {
    // every error once the end was reached is that end cutting a declaration short
    if (err instanceof LeaseParseError && s.reachedEnd) return { leases, skipped, end, endLine, cut: err, dhcpv6Line };
    throw err;
  }
}
