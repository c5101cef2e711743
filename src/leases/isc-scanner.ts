/**
 * The tokenizer of ISC dhcpd's configuration language as written to dhcpd.leases:
 * words, quoted strings (with dhcpd's escapes, on one line), `;`, `{`, `}` and `#` comments.
 * A character-level state machine with no I/O and no allocation beyond token text.
 */
import { LeaseParseError } from './types.js';

export const TOKEN_EOF = 0;
export const TOKEN_WORD = 1;
export const TOKEN_STRING = 2;
export const TOKEN_SEMI = 3;
export const TOKEN_OPEN = 4;
export const TOKEN_CLOSE = 5;
export type TokenKind = typeof TOKEN_EOF | typeof TOKEN_WORD | typeof TOKEN_STRING | typeof TOKEN_SEMI | typeof TOKEN_OPEN | typeof TOKEN_CLOSE;

// character classes of the 7-bit range; everything else (and every other control character) is a word character
const WORD = 0;
const SPACE = 1;
const NEWLINE = 2;
const SEMI = 3;
const OPEN = 4;
const CLOSE = 5;
const QUOTE = 6;
const HASH = 7;

const CLASS = new Uint8Array(128);
for (const [chars, cls] of [
  [' \t\r\f\v', SPACE],
  ['\n', NEWLINE],
  [';', SEMI],
  ['{', OPEN],
  ['}', CLOSE],
  ['"', QUOTE],
  ['#', HASH],
] as const) {
  for (const ch of chars) CLASS[ch.charCodeAt(0)] = cls;
}

const PUNCTUATION: Record<number, TokenKind> = { [SEMI]: TOKEN_SEMI, [OPEN]: TOKEN_OPEN, [CLOSE]: TOKEN_CLOSE };

/** dhcpd's single-character escapes (conflex.c); any other escaped character stands for itself. */
const SIMPLE_ESCAPES: Record<string, string> = { t: '\t', r: '\r', n: '\n', b: '\b' };

/** `lease <ip> {` at the end of a line, as dhcpd starts a lease declaration */
const LEASE_AT_LINE_END = /lease \d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3} \{[ \t\r]*$/;

const BACKSLASH = 0x5c;
const DQUOTE = 0x22;
const LF = 0x0a;

function classOf(c: number): number {
  return c < 128 ? (CLASS[c] as number) : WORD;
}

function digitValue(c: number, radix: 8 | 16): number {
  let v = -1;
  if (c >= 0x30 && c <= 0x39) v = c - 0x30;
  else if (c >= 0x61 && c <= 0x66) v = c - 0x61 + 10;
  else if (c >= 0x41 && c <= 0x46) v = c - 0x41 + 10;
  return v < radix ? v : -1;
}

export class IscScanner {
  /** text of the last WORD or STRING token (escapes decoded, one char per byte value) */
  value = '';
  /** 1-based line on which the last token started */
  tokenLine = 1;
  /** the index in the text where the last token started */
  tokenOffset = 0;
  /** current 1-based line */
  line: number;
  /** the end of the text was reached (an error thrown then means the text stops inside a statement) */
  reachedEnd = false;
  /**
   * A string the text broke off at a newline before its closing quote (the first since the caller
   * last cleared it): the error naming its line. dhcpd writes every string on one line (its
   * quotify_string and quotify_buf write a newline as `\012`, client-hostname only when printable),
   * so a newline inside one is where a writer stopped mid-string and the file goes on with other
   * text; read to the next `"` instead, the string would swallow the declarations after it.
   */
  brokenString: LeaseParseError | undefined = undefined;
  private pos = 0;

  /** `line`: the line `text` starts on, when it is a part of a file */
  constructor(
    private readonly text: string,
    line = 1,
  ) {
    this.line = line;
    this.tokenLine = line;
  }

  /** the index in the text after the last token */
  get offset(): number {
    return this.pos;
  }

  next(): TokenKind {
    const text = this.text;
    const n = text.length;
    let pos = this.pos;
    for (;;) {
      if (pos >= n) {
        this.reachedEnd = true;
        this.pos = pos;
        this.tokenLine = this.line;
        this.tokenOffset = pos;
        return TOKEN_EOF;
      }
      const cls = classOf(text.charCodeAt(pos));
      if (cls === SPACE) {
        pos++;
      } else if (cls === NEWLINE) {
        pos++;
        this.line++;
      } else if (cls === HASH) {
        const eol = text.indexOf('\n', pos);
        if (eol < 0) {
          // dhcpd ends every line it writes, comments too: a comment the text ends inside is a
          // file being written (copied in place: its header read before its first newline), not
          // a file of no leases
          this.reachedEnd = true;
          this.pos = n;
          throw new LeaseParseError(this.line, 'comment not ended by a newline at end of file', { problem: 'cut-short' });
        }
        pos = eol;
      } else if (cls === QUOTE) {
        this.tokenLine = this.line;
        this.tokenOffset = pos;
        this.pos = this.readString(pos + 1);
        return TOKEN_STRING;
      } else if (cls === WORD) {
        const start = pos;
        while (++pos < n && classOf(text.charCodeAt(pos)) === WORD);
        this.tokenLine = this.line;
        this.tokenOffset = start;
        this.value = text.slice(start, pos);
        this.pos = pos;
        return TOKEN_WORD;
      } else {
        this.tokenLine = this.line;
        this.tokenOffset = pos;
        this.pos = pos + 1;
        return PUNCTUATION[cls] as TokenKind;
      }
    }
  }

  /** Reads a string body starting after the opening quote; returns the position after the closing quote. */
  private readString(start: number): number {
    const text = this.text;
    const n = text.length;
    let pos = start;
    for (; pos < n; pos++) {
      const c = text.charCodeAt(pos);
      if (c === DQUOTE) {
        this.value = text.slice(start, pos);
        return pos + 1;
      }
      if (c === BACKSLASH) return this.readEscapedString(start, pos);
      if (c === LF) return this.breakString(start, pos, text.slice(start, pos));
    }
    this.reachedEnd = true;
    throw new LeaseParseError(this.tokenLine, 'unterminated string', { problem: 'cut-short' });
  }

  /**
   * Ends a string at the newline at `pos` (left for the scanner: the next token starts on the next
   * line), its text so far as its value, and notes it in `brokenString`. When its line ends in
   * `lease <ip> {`, the string ends before that: its writer stopped inside it and the next lease
   * declaration was written right after (dhcpd writes `lease <ip> {` with nothing before it, on a
   * line of its own), which the parser then reads as it reads one after a cut statement.
   */
  private breakString(start: number, pos: number, value: string): number {
    const raw = this.text.slice(start, pos);
    const lease = LEASE_AT_LINE_END.exec(raw);
    const end = lease === null ? pos : start + lease.index;
    this.value = lease === null ? value : raw.slice(0, lease.index);
    this.brokenString ??= new LeaseParseError(this.tokenLine, `unterminated string ${JSON.stringify(this.text.slice(start - 1, Math.min(end, start + 39)))} (a newline before its closing quote: dhcpd writes every string on one line)`);
    return end;
  }

  /** The slow path: the string holds at least one backslash, at `pos`. */
  private readEscapedString(start: number, pos: number): number {
    const text = this.text;
    const n = text.length;
    let out = text.slice(start, pos);
    while (pos < n) {
      const c = text.charCodeAt(pos);
      if (c === DQUOTE) {
        this.value = out;
        return pos + 1;
      }
      if (c === LF) return this.breakString(start, pos, out);
      if (c !== BACKSLASH) {
        out += text[pos];
        pos++;
        continue;
      }
      if (++pos >= n) break;
      const e = text.charCodeAt(pos);
      // an escaped newline is a newline inside the string all the same (dhcpd writes `\012`)
      if (e === LF) return this.breakString(start, pos, out);
      const radix = digitValue(e, 8) >= 0 ? 8 : e === 0x78 /* x */ ? 16 : 0;
      if (radix === 0) {
        const ch = text[pos] as string;
        out += SIMPLE_ESCAPES[ch] ?? ch;
        pos++;
        continue;
      }
      // octal: up to three digits starting here; hex: up to two digits after the x
      let i = radix === 8 ? pos : pos + 1;
      const limit = Math.min(n, i + (radix === 8 ? 3 : 2));
      let value = 0;
      let digits = 0;
      for (; i < limit; i++) {
        const d = digitValue(text.charCodeAt(i), radix);
        if (d < 0) break;
        value = value * radix + d;
        digits++;
      }
      if (digits === 0) {
        out += 'x'; // `\x` without hex digits stands for x
        pos++;
      } else {
        out += String.fromCharCode(value & 0xff);
        pos = i;
      }
    }
    this.reachedEnd = true;
    throw new LeaseParseError(this.tokenLine, 'unterminated string', { problem: 'cut-short' });
  }
}
