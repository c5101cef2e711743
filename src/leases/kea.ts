/**
 * Kea's memfile lease file (kea-leases4.csv) → KeaLease rows, in file order.
 * Pure and total: any text gives the rows or a LeaseParseError naming the line.
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

function parseHeader(line: string): Columns {
  const columns: Columns = new Map();
  line.split(',').forEach((name, i) => columns.set(name.trim(), i));
  for (const name of REQUIRED) {
    if (!columns.has(name)) throw new LeaseParseError(1, `Kea lease file header lacks the '${name}' column: ${JSON.stringify(line.slice(0, 120))}`);
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

/**
 * The data rows of a Kea lease file whose header line is `header` (without its newline), for a
 * file read whole or in parts (kea-follow.ts reads only the rows Kea appended). Throws
 * LeaseParseError (line 1) for a header that lacks a required column.
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
   * hand may lack the final newline.
   */
  parse(text: string, line: number, from = 0): { leases: KeaLease[]; nextLine: number } {
    const leases: KeaLease[] = [];
    let pos = from;
    while (pos < text.length) {
      const eol = text.indexOf('\n', pos);
      const end = eol < 0 ? text.length : eol;
      let row = text.slice(pos, end);
      pos = end + 1;
      if (row.endsWith('\r')) row = row.slice(0, -1);
      if (row.trim() !== '' && (eol >= 0 || this.reader.complete(row))) leases.push(this.reader.read(row, line));
      if (eol >= 0) line++;
    }
    return { leases, nextLine: line };
  }

  /**
   * The error for a last row parse() left for the next read (no newline, short of fields) that
   * stays so: Kea stopped writing it, and its lease is missing until someone looks. `text`: the
   * row, `line`: its line.
   */
  cutShort(text: string, line: number): LeaseParseError {
    const row = text.endsWith('\r') ? text.slice(0, -1) : text;
    const fields = this.reader.fieldCount(row);
    return new LeaseParseError(line, `unterminated row (${fields} of the header's ${this.reader.columns()} fields, no newline at the end of the file): ${JSON.stringify(row.slice(0, 120))}`);
  }
}

/** Parses the text of a Kea memfile lease file into its rows, in file order (a last row Kea is still writing left out: KeaRowParser.parse). */
export function parseKeaLeases(text: string): KeaLease[] {
  if (text.length === 0) return [];
  const eol = text.indexOf('\n');
  const rows = new KeaRowParser(eol < 0 ? text : text.slice(0, eol));
  return eol < 0 ? [] : rows.parse(text, 2, eol + 1).leases;
}
