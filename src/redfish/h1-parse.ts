/**
 * An HTTP/1.1 response parser (RFC 9112) for what a BMC answers on one connection: fed the bytes
 * as they arrive, it hands the final response's status and headers, the body's bytes (Content-Length,
 * chunked, or up to the connection's end) and the end of the answer to a sink, and says whether
 * the connection may carry another request. Every part is bounded (head, header count, chunk lines,
 * trailers, interim answers); whatever does not follow the grammar throws an H1Error naming what,
 * never anything else. It takes what Go's net/http (the Go metal-bmc's client) and curl take beside
 * the grammar and RFC 9112 lets a client accept: LF without CR as a line end, a status line without
 * a reason, folded header lines (joined with a space), line ends before an answer. No I/O: it sees
 * only the bytes it is fed.
 */

/** `HTTP_MALFORMED`: the bytes are not an HTTP/1.x answer; `HTTP_CLOSED_EARLY`: the connection ended before the answer did; `HTTP_NO_ANSWER`: it ended before any byte of one. */
export type H1ErrorCode = 'HTTP_MALFORMED' | 'HTTP_CLOSED_EARLY' | 'HTTP_NO_ANSWER';

export class H1Error extends Error {
  constructor(
    readonly code: H1ErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'H1Error';
  }
}

export interface H1Limits {
  /** Status line and headers together, line ends included. Default 32 KiB (Node's server accepts 16). */
  maxHeadBytes: number;
  /** Header lines of one answer. Default 256. */
  maxHeaders: number;
  /** One chunk-size line with its extensions. Default 4 KiB. */
  maxChunkLineBytes: number;
  /** The trailer section of a chunked body. Default 16 KiB. */
  maxTrailerBytes: number;
  /** 1xx answers before the final one. Default 8. */
  maxInterim: number;
}

const DEFAULT_H1_LIMITS: Readonly<H1Limits> = Object.freeze({
  maxHeadBytes: 32 << 10,
  maxHeaders: 256,
  maxChunkLineBytes: 4 << 10,
  maxTrailerBytes: 16 << 10,
  maxInterim: 8,
});

export interface H1Sink {
  /** A 1xx answer came (the final one is still to come): a sign of life. */
  interim?(status: number): void;
  /** The final answer's status and headers (names lower-case, repeated ones joined with ", "). */
  head(status: number, headers: Record<string, string>): void;
  /** Bytes of the body, in order (views of the fed buffers). */
  data(chunk: Buffer): void;
  /** The answer ended; `reusable`: the connection may carry another request. */
  end(reusable: boolean): void;
}

type State = 'head' | 'length' | 'chunk-size' | 'chunk-data' | 'chunk-cr' | 'chunk-lf' | 'trailers' | 'until-close' | 'done';

const LF = 0x0a;
const CR = 0x0d;
/** a character of a token, such as a header name or a method (RFC 9110 §5.6.2 tchar) */
const TOKEN_CHAR = "[!#$%&'*+\\-.^_`|~0-9A-Za-z]";
/** a character of a field value, a reason phrase or a chunk extension: tab, visible ASCII, space, obs-text (RFC 9110 §5.5) */
const TEXT_CHAR = '[\\t\\x20-\\x7e\\x80-\\xff]';
/** a token, shared with the requests h1-connection.ts writes */
export const TOKEN = new RegExp(`^${TOKEN_CHAR}+$`);
/** a whole field value, shared with the requests h1-connection.ts writes: no line end, no other control character */
export const FIELD_VALUE = new RegExp(`^${TEXT_CHAR}*$`);
/** a length: at most 15 digits, exact as a JavaScript number */
export const DECIMAL = /^\d{1,15}$/;
const STATUS_LINE = new RegExp(`^HTTP/1\\.(\\d) (\\d{3})(?: ${TEXT_CHAR}*)?$`);
// No two quantified parts of a line's pattern match the same characters: blanks before and after a
// value are trimmed in code (withoutBlanks). `:[ \t]*(value)` or a lazy value before `[ \t]*$`
// backtracks quadratically over a long run of blanks that ends in a byte the value refuses (a
// 32 KiB line: ~0.5 s of the event loop).
const HEADER_LINE = new RegExp(`^(${TOKEN_CHAR}+):(${TEXT_CHAR}*)$`);
const FOLDED_LINE = new RegExp(`^[ \\t](${TEXT_CHAR}*)$`);
const CHUNK_SIZE_LINE = new RegExp(`^0*([0-9A-Fa-f]{1,12})[ \\t]*(?:;${TEXT_CHAR}*)?$`);

const malformed = (what: string): H1Error => new H1Error('HTTP_MALFORMED', what);
/** line ends skipped before an answer's status line */
const MAX_LEADING_LINE_ENDS = 64;

const isBlank = (code: number): boolean => code === 0x20 || code === 0x09;

/** `text` without the spaces and tabs at its ends (String.trim would take more: NBSP, line ends). */
function withoutBlanks(text: string): string {
  let start = 0;
  let end = text.length;
  while (start < end && isBlank(text.charCodeAt(start))) start++;
  while (end > start && isBlank(text.charCodeAt(end - 1))) end--;
  return start === 0 && end === text.length ? text : text.slice(start, end);
}

/** A header's comma-separated tokens, trimmed and lower-cased. */
function tokens(value: string | undefined): string[] {
  return value === undefined ? [] : value.split(',').map((t) => t.trim().toLowerCase());
}

/** The one length a Content-Length header states (repeated equal values are one, RFC 9110 §8.6). */
function contentLength(value: string): number {
  const values = new Set(value.split(',').map((v) => v.trim()));
  const [only] = values;
  if (values.size !== 1 || only === undefined || !DECIMAL.test(only)) throw malformed('Content-Length is not one decimal length');
  return Number(only);
}

/** The head's lines (without line ends) from its bytes, the empty line that ends it left out. */
function headLines(bytes: Buffer): string[] {
  const lines = bytes.toString('latin1').split('\n');
  lines.length -= 2; // the empty line's and the end's
  return lines.map((l) => (l.endsWith('\r') ? l.slice(0, -1) : l));
}

/** Status and headers of a head, or an H1Error. */
function parseHead(bytes: Buffer, maxHeaders: number): { status: number; minor: number; headers: Record<string, string> } {
  const lines = headLines(bytes);
  const statusLine = STATUS_LINE.exec(lines[0]!);
  if (statusLine === null) throw malformed('the answer does not begin with an HTTP/1.x status line');
  if (lines.length - 1 > maxHeaders) throw malformed(`more than ${maxHeaders} header lines`);
  const headers: Record<string, string> = Object.create(null) as Record<string, string>;
  let last: string | undefined;
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!;
    const header = HEADER_LINE.exec(line);
    if (header !== null) {
      const name = header[1]!.toLowerCase();
      const value = withoutBlanks(header[2]!);
      headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`;
      last = name;
      continue;
    }
    const folded = FOLDED_LINE.exec(line);
    // the line is not quoted: it may carry a session token not yet known as a secret
    if (folded === null || last === undefined) throw malformed(`header line ${i} is not a header line`);
    const more = withoutBlanks(folded[1]!);
    if (more !== '') headers[last] = headers[last] === '' ? more : `${headers[last]} ${more}`;
  }
  return { status: Number(statusLine[2]), minor: Number(statusLine[1]), headers };
}

/** Where the head ends in `buf` (the index after its empty line), searching from `from`; -1 if not yet. */
function headEnd(buf: Buffer, from: number): number {
  for (let i = buf.indexOf(LF, from); i >= 0; i = buf.indexOf(LF, i + 1)) {
    if (buf[i + 1] === LF) return i + 2;
    if (buf[i + 1] === CR && buf[i + 2] === LF) return i + 3;
  }
  return -1;
}

/**
 * Bytes collected across chunks (a head or a line split by the network), in a buffer that doubles
 * as it fills: a BMC sending its head a byte at a time costs linear time, not quadratic.
 */
class Collected {
  private buf = Buffer.alloc(0);
  private used = 0;

  get length(): number {
    return this.used;
  }

  /** `bytes` appended; returns a view of everything collected (valid until the next call). */
  append(bytes: Buffer): Buffer {
    if (this.used + bytes.length > this.buf.length) {
      const grown = Buffer.allocUnsafe(Math.max(256, 2 * (this.used + bytes.length)));
      this.buf.copy(grown, 0, 0, this.used);
      this.buf = grown;
    }
    bytes.copy(this.buf, this.used);
    this.used += bytes.length;
    return this.buf.subarray(0, this.used);
  }

  clear(): void {
    this.used = 0;
  }
}

/** One HTTP/1.x answer to one request. Feed it bytes with `feed`, and `finish` when the connection ends. */
export class ResponseParser {
  private state: State = 'head';
  /** a head or line begun in an earlier chunk */
  private readonly collected = new Collected();
  private remaining = 0;
  private trailerBytes = 0;
  private interims = 0;
  private reusable = false;
  private received = 0;
  private leadingLineEnds = 0;
  private readonly limits: H1Limits;

  constructor(
    private readonly sink: H1Sink,
    /** the request was HEAD, or another whose answer has no body whatever it declares */
    private readonly noBody = false,
    limits: Partial<H1Limits> = {},
  ) {
    this.limits = { ...DEFAULT_H1_LIMITS, ...limits };
  }

  /** Whether the answer has ended (the sink's `end` was called). */
  get done(): boolean {
    return this.state === 'done';
  }

  /** Whether no byte came yet (line ends before an answer are not counted as one). */
  get nothingReceived(): boolean {
    return this.received === 0;
  }

  /** Whether the body runs until the connection ends. */
  get endsWithConnection(): boolean {
    return this.state === 'until-close';
  }

  /**
   * Parses `chunk`; returns how many of its bytes belong to this answer (fewer than its length once
   * the answer ended inside it: bytes a BMC sent beyond its answer). Throws an H1Error.
   */
  feed(chunk: Buffer): number {
    let at = 0;
    // line ends before an answer: what a server that ends its answers with an extra CRLF leaves
    // before the next one (undici's parser skips them too), bounded
    while (this.received === 0 && at < chunk.length && (chunk[at] === CR || chunk[at] === LF)) {
      at++;
      if (++this.leadingLineEnds > MAX_LEADING_LINE_ENDS) throw malformed(`more than ${MAX_LEADING_LINE_ENDS} line ends before an answer`);
    }
    this.received += chunk.length - at;
    while (at < chunk.length && this.state !== 'done') at = this.step(chunk, at);
    return at;
  }

  /** The connection ended: ends an answer that runs until then, throws an H1Error for one cut short. */
  finish(): void {
    if (this.state === 'done') return;
    if (this.state === 'until-close') {
      this.state = 'done';
      this.sink.end(false);
      return;
    }
    if (this.received === 0) throw new H1Error('HTTP_NO_ANSWER', 'the BMC closed the connection before answering');
    throw new H1Error('HTTP_CLOSED_EARLY', 'the BMC closed the connection in the middle of its answer');
  }

  /** Parses from `at` in the current state; returns where the next step starts. */
  private step(chunk: Buffer, at: number): number {
    switch (this.state) {
      case 'head':
        return this.stepHead(chunk, at);
      case 'length':
      case 'chunk-data': {
        const take = Math.min(this.remaining, chunk.length - at);
        this.sink.data(at === 0 && take === chunk.length ? chunk : chunk.subarray(at, at + take));
        this.remaining -= take;
        if (this.remaining === 0) {
          if (this.state === 'length') this.finishAnswer();
          else this.state = 'chunk-cr';
        }
        return at + take;
      }
      case 'chunk-cr':
      case 'chunk-lf': {
        const byte = chunk[at];
        if (byte === LF) this.state = 'chunk-size';
        else if (byte === CR && this.state === 'chunk-cr') this.state = 'chunk-lf';
        else throw malformed('a chunk of the body does not end with a line end');
        return at + 1;
      }
      case 'chunk-size':
        return this.stepLine(chunk, at, this.limits.maxChunkLineBytes, 'a chunk-size line', (line) => this.chunkSize(line));
      case 'trailers':
        return this.stepLine(chunk, at, this.limits.maxTrailerBytes - this.trailerBytes, 'the trailer section', (line) => this.trailer(line));
      case 'until-close':
        this.sink.data(at === 0 ? chunk : chunk.subarray(at));
        return chunk.length;
      case 'done':
        return at;
    }
  }

  private stepHead(chunk: Buffer, at: number): number {
    const before = this.collected.length;
    // at most one byte past the limit: a head that ends beyond it is refused anyway
    const rest = chunk.subarray(at, at + this.limits.maxHeadBytes + 1 - before);
    const buf = before === 0 ? rest : this.collected.append(rest);
    const end = headEnd(buf, Math.max(0, before - 3));
    if (end < 0 || end > this.limits.maxHeadBytes) {
      if (end > 0 || buf.length > this.limits.maxHeadBytes) throw malformed(`an answer's head longer than ${this.limits.maxHeadBytes} bytes`);
      if (before === 0) this.collected.append(rest);
      return at + rest.length;
    }
    this.collected.clear();
    this.onHead(buf.subarray(0, end));
    return at + end - before;
  }

  /** Collects one line (at most `max` bytes with its end) across chunks, then hands it to `use`. */
  private stepLine(chunk: Buffer, at: number, max: number, what: string, use: (line: string) => void): number {
    const lf = chunk.indexOf(LF, at);
    const piece = chunk.subarray(at, lf < 0 ? chunk.length : lf + 1);
    if (this.collected.length + piece.length > max) throw malformed(`${what} longer than ${Math.max(0, max)} bytes`);
    const line = this.collected.length === 0 && lf >= 0 ? piece : this.collected.append(piece);
    if (lf < 0) return chunk.length;
    this.collected.clear();
    const text = line.toString('latin1', 0, line.length - (line.length >= 2 && line[line.length - 2] === CR ? 2 : 1));
    if (this.state === 'trailers') this.trailerBytes += line.length;
    use(text);
    return lf + 1;
  }

  private onHead(bytes: Buffer): void {
    const { status, minor, headers } = parseHead(bytes, this.limits.maxHeaders);
    if (status < 100) throw malformed(`status ${status}`);
    if (status < 200) {
      if (status === 101) throw malformed('the BMC switched protocols (101), which no request asked for');
      this.interims += 1;
      if (this.interims > this.limits.maxInterim) throw malformed(`more than ${this.limits.maxInterim} interim (1xx) answers`);
      this.sink.interim?.(status);
      return;
    }
    const connection = tokens(headers['connection']);
    this.reusable = minor === 0 ? connection.includes('keep-alive') : !connection.includes('close');
    const te = headers['transfer-encoding'];
    const cl = headers['content-length'];
    this.sink.head(status, headers);
    if (this.noBody || status === 204 || status === 304) return this.finishAnswer();
    if (te !== undefined) {
      // RFC 9112 §6.1: a Transfer-Encoding overrides a Content-Length, and a sender of both may be
      // smuggling: the connection is not used again
      // and an HTTP/1.0 answer with one is framed wrongly whatever it says (§6.1): closed after it too
      if (cl !== undefined || minor === 0) this.reusable = false;
      const codings = tokens(te);
      if (codings[codings.length - 1] === 'chunked') {
        this.state = 'chunk-size';
        return;
      }
      this.state = 'until-close';
      this.reusable = false;
      return;
    }
    if (cl !== undefined) {
      this.remaining = contentLength(cl);
      if (this.remaining === 0) return this.finishAnswer();
      this.state = 'length';
      return;
    }
    this.state = 'until-close';
    this.reusable = false;
  }

  private chunkSize(line: string): void {
    const m = CHUNK_SIZE_LINE.exec(line);
    if (m === null) throw malformed('not a chunk-size line');
    this.remaining = parseInt(m[1]!, 16);
    this.state = this.remaining === 0 ? 'trailers' : 'chunk-data';
  }

  private trailer(line: string): void {
    if (line === '') this.finishAnswer();
    else if (!HEADER_LINE.test(line) && !FOLDED_LINE.test(line)) throw malformed('a trailer line is not a header line');
  }

  private finishAnswer(): void {
    this.state = 'done';
    this.sink.end(this.reusable);
  }
}
