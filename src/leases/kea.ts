/**
 * Kea's memfile lease file (kea-leases4.csv) → KeaLease rows, in file order.
 * Pure and total: any text gives the rows and the rows left out (each a LeaseParseError naming its
 * line), or a LeaseParseError for a file that cannot be read as a whole (its header).
 *
 * A row that cannot be read is left out and the next one read, as Kea's own loader does
 * (LeaseFileLoader::load logs and discards it; max-row-errors, 0 by default, sets no limit): after a
 * power loss Kea appends to a file whose last row was cut short, so the cut row and the next one
 * merge into one bad row, and the whole file failing for it would take every lease until the next
 * lease file cleanup (an hour by default, never with lfc-interval 0).
 *
 * The first line names the columns; columns are found by name, so files of older and
 * newer Kea versions (with or without `pool_id`, ...) read alike. Kea quotes nothing:
 * it escapes commas (and other special characters) in hostname and user_context as
 * `&#x2c`. A user_context JSON with raw commas (written by another tool) is re-joined.
 */
import { ipv4ToNumber } from '../net/cidr.js';
import { normalizeMac } from './mac.js';
import { KEA_INFINITE_LIFETIME, LeaseParseError, type KeaLease } from './types.js';

const REQUIRED = ['address', 'hwaddr', 'valid_lifetime', 'expire'] as const;
const COLUMNS = [...REQUIRED, 'client_id', 'subnet_id', 'hostname', 'state', 'user_context', 'pool_id'] as const;
type ColumnName = (typeof COLUMNS)[number];
const ESCAPE = /&#x([0-9a-fA-F]{2})/g;

type Columns = Map<string, number>;

/** Kea's CSVRow::unescapeCharacters: `&#xHH` → the character HH. */
export function keaUnescape(text: string): string {
  return text.includes('&#x') ? text.replace(ESCAPE, (_m, hex: string) => String.fromCharCode(parseInt(hex, 16))) : text;
}

/** Kea's CSVRow::escapeCharacters for the comma delimiter (and the escape tag's `&`). */
export function keaEscape(text: string): string {
  return text.replace(/[,&]/g, (ch) => `&#x${ch.charCodeAt(0).toString(16)}`);
}

/** Columns only Kea's DHCPv6 lease file has (CSVLeaseFile6): its rows name IPv6 addresses, none of them a DHCPv4 lease. */
const V6_COLUMNS = ['duid', 'lease_type', 'iaid', 'prefix_len'];

function parseHeader(line: string): Columns {
  const columns: Columns = new Map();
  line.split(',').forEach((name, i) => columns.set(name.trim(), i));
  // every row of it would be left out one by one: the file is the wrong one
  const v6 = V6_COLUMNS.find((name) => columns.has(name));
  if (v6 !== undefined) throw new LeaseParseError(1, `a Kea DHCPv6 lease file (its header has the '${v6}' column), not the DHCPv4 one (kea-leases4.csv) BMCs lease from: ${JSON.stringify(line.slice(0, 120))}`, { problem: 'structure' });
  for (const name of REQUIRED) {
    if (!columns.has(name)) throw new LeaseParseError(1, `Kea lease file header lacks the '${name}' column: ${JSON.stringify(line.slice(0, 120))}`, { problem: 'structure' });
  }
  return columns;
}

/** Where a JSON text stands after some of it: how many `{`/`[` are open, and whether inside a string (after a backslash: `escaped`). */
interface JsonScan {
  depth: number;
  inString: boolean;
  escaped: boolean;
}

/** The scan carried on over `text` (each field of a row is scanned once, so a row costs its length). */
function scanJson(scan: JsonScan, text: string): JsonScan {
  let { depth, inString, escaped } = scan;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (escaped) escaped = false;
    else if (inString) {
      if (c === '\\') escaped = true;
      else if (c === '"') inString = false;
    } else if (c === '"') inString = true;
    else if (c === '{' || c === '[') depth++;
    else if (c === '}' || c === ']') depth--;
  }
  return { depth, inString, escaped };
}

/** Splits a row; a user_context JSON that holds raw commas takes the fields it spans. */
function splitRow(text: string, contextAt: number, headerLength: number): string[] {
  const fields = text.split(',');
  if (contextAt < 0 || fields.length <= headerLength || !(fields[contextAt] ?? '').startsWith('{')) return fields;
  let end = contextAt + 1;
  let scan = scanJson({ depth: 0, inString: false, escaped: false }, fields[contextAt] as string);
  // the comma between two fields is part of the JSON text: inside a string it is a character
  while (end < fields.length && scan.depth > 0) scan = scanJson(scanJson(scan, ','), fields[end++] as string);
  return [...fields.slice(0, contextAt), fields.slice(contextAt, end).join(','), ...fields.slice(end)];
}

/** The decimal integer in `text`, -1 when empty, -2 when not a number of at most 15 digits. */
function integerOf(text: string): number {
  const n = text.length;
  if (n === 0) return -1;
  if (n > 15) return -2;
  let value = 0;
  for (let i = 0; i < n; i++) {
    const d = text.charCodeAt(i) - 0x30;
    if (d < 0 || d > 9) return -2;
    value = value * 10 + d;
  }
  return value;
}

/** Reads data rows of a file whose header mapped column names to field indexes. */
class RowReader {
  private fields: string[] = [];
  private line = 0;
  /** field index per column name, -1 for a column the header lacks */
  private readonly index: Record<ColumnName, number>;

  constructor(
    at: Columns,
    private readonly headerLength: number,
  ) {
    this.index = Object.fromEntries(COLUMNS.map((name) => [name, at.get(name) ?? -1])) as Record<ColumnName, number>;
  }

  /** how many fields `text` holds (a user_context with raw commas counts as one) */
  fieldCount(text: string): number {
    return splitRow(text, this.index.user_context, this.headerLength).length;
  }

  /** whether `text` has a field for every column of the header */
  complete(text: string): boolean {
    return this.fieldCount(text) >= this.headerLength;
  }

  /** the header's number of columns */
  columns(): number {
    return this.headerLength;
  }

  read(text: string, line: number): KeaLease {
    this.fields = splitRow(text, this.index.user_context, this.headerLength);
    this.line = line;
    const ip = this.field('address');
    if (ipv4ToNumber(ip) < 0) throw this.bad('address', 'invalid IPv4');
    const hwaddr = this.field('hwaddr');
    const mac = hwaddr === '' ? undefined : normalizeMac(hwaddr);
    if (hwaddr !== '' && mac === undefined) throw this.bad('hwaddr', 'invalid');
    const validLifetime = this.integer('valid_lifetime', true);
    if (validLifetime > KEA_INFINITE_LIFETIME) throw this.bad('valid_lifetime', 'out of range');
    const expireSeconds = this.integer('expire', true);
    if (expireSeconds > 8.64e12) throw this.bad('expire', 'out of range');
    const state = this.integer('state', false);

    const lease: KeaLease = {
      ip,
      validLifetime,
      expire: validLifetime === KEA_INFINITE_LIFETIME ? 'never' : new Date(expireSeconds * 1000),
      state: state < 0 ? 0 : state,
      line,
    };
    const clientId = this.field('client_id');
    const hostname = keaUnescape(this.field('hostname'));
    const userContext = keaUnescape(this.field('user_context'));
    const subnetId = this.integer('subnet_id', false);
    const poolId = this.integer('pool_id', false);
    if (mac !== undefined) lease.mac = mac;
    if (clientId !== '') lease.clientId = clientId;
    if (subnetId >= 0) lease.subnetId = subnetId;
    if (hostname !== '') lease.hostname = hostname;
    if (userContext !== '') lease.userContext = userContext;
    if (poolId >= 0) lease.poolId = poolId;
    return lease;
  }

  private field(name: ColumnName): string {
    const i = this.index[name];
    const value = i < 0 ? undefined : this.fields[i];
    return value === undefined ? '' : value.trim();
  }

  /** The column as an integer; -1 when empty and optional. */
  private integer(name: ColumnName, required: boolean): number {
    const value = integerOf(this.field(name));
    if (value === -2 || (value === -1 && required)) throw this.bad(name, value === -1 ? 'missing' : 'invalid');
    return value;
  }

  private bad(name: ColumnName, why: string): LeaseParseError {
    return new LeaseParseError(this.line, `${why} ${name} ${JSON.stringify(this.field(name).slice(0, 60))}`);
  }
}

/** What KeaRowParser.parse took from a text. */
export interface KeaRows {
  /** the rows read, in file order (a last row without its newline among them when `rest` is `row` and it could be read) */
  leases: KeaLease[];
  /** the rows left out, in file order: each the error for the field that could not be read */
  skipped: LeaseParseError[];
  /** the line after the text's last newline */
  nextLine: number;
  /**
   * what follows the last newline: nothing but blanks, a row with every field of the header (read
   * or left out as any row), or one short of fields (Kea still writing it: left for the next read)
   */
  rest: 'none' | 'row' | 'cut';
}

/**
 * The data rows of a Kea lease file whose header line is `header` (without its newline), for a
 * file read whole or in parts (kea-follow.ts reads only the rows Kea appended). Throws
 * LeaseParseError (line 1, problem `structure`) for a header that lacks a required column or is
 * a DHCPv6 lease file's.
 */
export class KeaRowParser {
  private readonly reader: RowReader;

  constructor(header: string) {
    const line = header.endsWith('\r') ? header.slice(0, -1) : header;
    this.reader = new RowReader(parseHeader(line), line.split(',').length);
  }

  /**
   * The rows of `text` from `from` on, the file's lines from `line` on, and the line after its
   * last newline. Kea ends every row with a newline; a last row without one and with fewer fields
   * than the header is a row Kea is still writing (the file was read mid-append), and is left for
   * the next read. A last row with all its fields is read: only its last column (pool_id or
   * user_context, neither of which the selection uses) could be cut short, and a file written by
   * hand may lack the final newline. `onLease`: each row, in file order, as it is read, instead of
   * into `leases` (then empty): a caller keeping only each address's last row holds that many, not
   * every renewal Kea appended (with lease file cleanup off, every one since the file began).
   */
  parse(text: string, line: number, from = 0, onLease?: (lease: KeaLease) => void): KeaRows {
    const leases: KeaLease[] = [];
    const take = onLease ?? ((lease: KeaLease) => void leases.push(lease));
    const skipped: LeaseParseError[] = [];
    let rest: KeaRows['rest'] = 'none';
    let pos = from;
    while (pos < text.length) {
      const eol = text.indexOf('\n', pos);
      const end = eol < 0 ? text.length : eol;
      let row = text.slice(pos, end);
      pos = end + 1;
      if (row.endsWith('\r')) row = row.slice(0, -1);
      const blank = row.trim() === '';
      if (eol < 0 && !blank) rest = this.reader.complete(row) ? 'row' : 'cut';
      if (!blank && rest !== 'cut') {
        try {
          take(this.reader.read(row, line));
        } catch (err) {
          if (!(err instanceof LeaseParseError)) throw err;
          skipped.push(err);
        }
      }
      if (eol >= 0) line++;
    }
    return { leases, skipped, nextLine: line, rest };
  }

  /**
   * The error for a last row parse() left for the next read (no newline, short of fields) that
   * stays so: Kea stopped writing it, and its lease is missing until someone looks. `text`: the
   * row, `line`: its line.
   */
  cutShort(text: string, line: number): LeaseParseError {
    const row = text.endsWith('\r') ? text.slice(0, -1) : text;
    const fields = this.reader.fieldCount(row);
    return new LeaseParseError(line, `unterminated row (${fields} of the header's ${this.reader.columns()} fields, no newline at the end of the file): ${JSON.stringify(row.slice(0, 120))}`, { problem: 'cut-short' });
  }
}

/**
 * Parses the text of a Kea memfile lease file: its rows, in file order, and those left out (a last
 * row Kea is still writing left for the next read: KeaRowParser.parse); `onLease` as there.
 */
export function parseKeaFile(text: string, onLease?: (lease: KeaLease) => void): KeaRows {
  if (text.length === 0) return { leases: [], skipped: [], nextLine: 1, rest: 'none' };
  const eol = text.indexOf('\n');
  const rows = new KeaRowParser(eol < 0 ? text : text.slice(0, eol));
  return eol < 0 ? { leases: [], skipped: [], nextLine: 1, rest: 'none' } : rows.parse(text, 2, eol + 1, onLease);
}

/** The rows of a Kea memfile lease file that can be read, in file order (parseKeaFile). */
export function parseKeaLeases(text: string): KeaLease[] {
  return parseKeaFile(text).leases;
}
