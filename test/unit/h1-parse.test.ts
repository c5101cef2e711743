/** The incremental HTTP/1.1 response parser: round trips of generated answers split anywhere, robustness on any bytes, bounds, and the edge cases of RFC 9112. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { H1Error, type H1ErrorCode, type H1Limits, ResponseParser } from '../../src/redfish/h1-parse.js';

const CODES: readonly H1ErrorCode[] = ['HTTP_MALFORMED', 'HTTP_CLOSED_EARLY', 'HTTP_NO_ANSWER'];

type Header = readonly [name: string, value: string];

/** What the parser handed its sink, in order. */
interface Seen {
  events: string[];
  interims: number[];
  status: number | undefined;
  headers: Record<string, string> | undefined;
  data: Buffer[];
  ends: boolean[];
}

function recorder(): { seen: Seen; sink: ConstructorParameters<typeof ResponseParser>[0] } {
  const seen: Seen = { events: [], interims: [], status: undefined, headers: undefined, data: [], ends: [] };
  return {
    seen,
    sink: {
      interim(status) {
        seen.events.push('interim');
        seen.interims.push(status);
      },
      head(status, headers) {
        seen.events.push('head');
        seen.status = status;
        seen.headers = headers;
      },
      data(chunk) {
        seen.events.push('data');
        seen.data.push(Buffer.from(chunk)); // a copy: the parser hands views
      },
      end(reusable) {
        seen.events.push('end');
        seen.ends.push(reusable);
      },
    },
  };
}

/** Names lower-cased, repeated ones joined with ", ", on a null-prototype object (as the parser builds them). */
function joined(headers: readonly Header[]): Record<string, string> {
  const out = Object.create(null) as Record<string, string>;
  for (const [name, value] of headers) {
    const key = name.toLowerCase();
    out[key] = out[key] === undefined ? value : `${out[key]}, ${value}`;
  }
  return out;
}

/** `bytes` cut at `cuts` (any naturals, taken modulo its length + 1): pieces, some possibly empty. */
function split(bytes: Buffer, cuts: readonly number[]): Buffer[] {
  const at = [...cuts.map((c) => c % (bytes.length + 1)), 0, bytes.length].sort((a, b) => a - b);
  const pieces: Buffer[] = [];
  for (let i = 1; i < at.length; i++) pieces.push(bytes.subarray(at[i - 1]!, at[i]!));
  return pieces;
}

const bytesOf = (s: string): Buffer => Buffer.from(s, 'latin1');

/** The code of the H1Error `fn` throws (undefined if none); anything else thrown is rethrown. */
function codeOf(fn: () => void): H1ErrorCode | undefined {
  try {
    fn();
    return undefined;
  } catch (e) {
    if (e instanceof H1Error) return e.code;
    throw e;
  }
}

/** Feeds `input` in the given pieces (the whole at once by default) until done; returns what the sink saw and the bytes consumed. */
function parse(input: string | Buffer, opts: { pieces?: number[] | 'bytes'; noBody?: boolean; limits?: Partial<H1Limits>; finish?: boolean } = {}) {
  const buf = typeof input === 'string' ? bytesOf(input) : input;
  const { seen, sink } = recorder();
  const parser = new ResponseParser(sink, opts.noBody ?? false, opts.limits ?? {});
  const pieces = opts.pieces === 'bytes' ? split(buf, Array.from({ length: buf.length }, (_, i) => i)) : split(buf, opts.pieces ?? []);
  let consumed = 0;
  for (const piece of pieces) {
    if (parser.done) break;
    consumed += parser.feed(piece);
  }
  if (opts.finish === true) parser.finish();
  return { seen, consumed, parser, body: Buffer.concat(seen.data) };
}

/** The H1Error code parsing `input` throws, or undefined. */
const failure = (input: string | Buffer, opts: Parameters<typeof parse>[1] = {}): H1ErrorCode | undefined => codeOf(() => parse(input, opts));

// ---- generated answers -------------------------------------------------------------------------

const TOKEN_CHARS = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ".split('');
const FRAMING_NAMES = new Set(['content-length', 'transfer-encoding', 'connection']);
const headerName = fc
  .oneof(
    fc.string({ unit: fc.constantFrom(...TOKEN_CHARS), minLength: 1, maxLength: 12 }),
    // a small pool, so that names repeat (in other cases too), and the names an object holds specially
    fc.constantFrom('Server', 'server', 'X-Auth-Token', 'ETag', 'Location', 'OData-Version', '__proto__', 'constructor', 'toString'),
  )
  .filter((n) => !FRAMING_NAMES.has(n.toLowerCase()));
/** visible ASCII and obs-text, spaces and tabs inside only (not String.trim: it would strip the obs-text NBSP 0xa0 the parser keeps) */
const VALUE_CHARS = [...Array.from({ length: 0x7e - 0x21 + 1 }, (_, i) => String.fromCharCode(0x21 + i)), ...Array.from({ length: 0x80 }, (_, i) => String.fromCharCode(0x80 + i)), ' ', '\t'];
const headerValue = fc.string({ unit: fc.constantFrom(...VALUE_CHARS), maxLength: 24 }).map((v) => v.replace(/^[ \t]+|[ \t]+$/g, ''));
const header: fc.Arbitrary<Header> = fc.tuple(headerName, headerValue);
const reason = fc.option(
  fc.string({ unit: fc.constantFrom(...VALUE_CHARS), maxLength: 16 }),
  { nil: null },
);

interface ChunkFormat {
  zeros: number;
  upper: boolean;
  space: boolean;
  ext: string;
}
const chunkFormat: fc.Arbitrary<ChunkFormat> = fc.record({
  zeros: fc.integer({ min: 0, max: 3 }),
  upper: fc.boolean(),
  space: fc.boolean(),
  ext: fc.constantFrom('', ';ext=val', ';a=1;b="x y"', ';name', ';q="a;b"', ';\tt=v'),
});

type Framing =
  | { kind: 'length'; repeated: boolean }
  | { kind: 'chunked'; te: string; sizes: number[]; formats: ChunkFormat[]; last: ChunkFormat; trailers: Header[]; withLength: string | null }
  | { kind: 'close' };

const framing: fc.Arbitrary<Framing> = fc.oneof(
  fc.record({ kind: fc.constant('length' as const), repeated: fc.boolean() }),
  fc.record({
    kind: fc.constant('chunked' as const),
    te: fc.constantFrom('chunked', 'Chunked', 'gzip, chunked', 'CHUNKED'),
    sizes: fc.array(fc.integer({ min: 1, max: 900 }), { minLength: 1, maxLength: 6 }),
    formats: fc.array(chunkFormat, { minLength: 1, maxLength: 4 }),
    last: chunkFormat,
    trailers: fc.array(header, { maxLength: 2 }),
    // a Content-Length beside the Transfer-Encoding, right, wrong or not a length: ignored, and the connection not reused
    withLength: fc.option(fc.constantFrom('right', '7', 'abc', '5, 6'), { nil: null }),
  }),
  fc.record({ kind: fc.constant('close' as const) }),
);

interface Answer {
  interims: { status: number; headers: Header[] }[];
  minor: 0 | 1;
  status: number;
  reason: string | null;
  headers: Header[];
  at: number;
  connection: string | null;
  crlf: boolean;
  /** optional whitespace around every header value, which the parser drops */
  ows: readonly [string, string];
  body: Buffer;
  framing: Framing;
}

const answer: fc.Arbitrary<Answer> = fc.record({
  interims: fc.array(fc.record({ status: fc.constantFrom(100, 102, 103), headers: fc.array(header, { maxLength: 2 }) }), { maxLength: 3 }),
  minor: fc.constantFrom(0 as const, 1 as const),
  status: fc.integer({ min: 200, max: 599 }).filter((s) => s !== 204 && s !== 304),
  reason,
  headers: fc.array(header, { maxLength: 6 }),
  at: fc.nat(),
  connection: fc.option(fc.constantFrom('close', 'keep-alive', 'Keep-Alive', 'CLOSE', 'TE, close', 'keep-alive, TE', 'Upgrade'), { nil: null }),
  crlf: fc.boolean(),
  ows: fc.constantFrom(['', ''] as const, [' ', ''] as const, ['', ' '] as const, ['\t', ' \t'] as const, ['  ', '\t\t'] as const),
  body: fc.uint8Array({ maxLength: 3000, size: 'max' }).map((a) => Buffer.from(a)),
  framing,
});

/** The final answer's header lines: the generated ones with the framing's (and Connection) inserted at a generated place. */
function finalHeaders(a: Answer): Header[] {
  const added: Header[] = [];
  const f = a.framing;
  if (f.kind === 'length') added.push(['Content-Length', f.repeated ? `${a.body.length}, ${a.body.length}` : String(a.body.length)]);
  if (f.kind === 'chunked') {
    added.push(['Transfer-Encoding', f.te]);
    if (f.withLength !== null) added.push(['content-length', f.withLength === 'right' ? String(a.body.length) : f.withLength]);
  }
  if (a.connection !== null) added.push(['Connection', a.connection]);
  const at = a.at % (a.headers.length + 1);
  return [...a.headers.slice(0, at), ...added, ...a.headers.slice(at)];
}

function chunkLine(size: number, f: ChunkFormat): string {
  const hex = size.toString(16);
  return `${'0'.repeat(f.zeros)}${f.upper ? hex.toUpperCase() : hex}${f.space ? ' ' : ''}${f.ext}`;
}

/** The answer's bytes: heads, then the body as framed; `headLength`: the bytes up to the final head's end. */
function serialize(a: Answer): { bytes: Buffer; headLength: number } {
  const eol = a.crlf ? '\r\n' : '\n';
  const [before, after] = a.ows;
  const head = (line: string, headers: readonly Header[]) => `${line}${eol}${headers.map(([n, v]) => `${n}:${before}${v}${after}${eol}`).join('')}${eol}`;
  let text = a.interims.map((i) => head(`HTTP/1.${a.minor} ${i.status} Continue`, i.headers)).join('');
  text += head(`HTTP/1.${a.minor} ${a.status}${a.reason === null ? '' : ` ${a.reason}`}`, finalHeaders(a));
  const parts = [bytesOf(text)];
  const f = a.framing;
  if (f.kind === 'chunked') {
    let off = 0;
    for (let i = 0; off < a.body.length; i++) {
      const n = Math.min(f.sizes[i % f.sizes.length]!, a.body.length - off);
      parts.push(bytesOf(chunkLine(n, f.formats[i % f.formats.length]!) + eol), a.body.subarray(off, off + n), bytesOf(eol));
      off += n;
    }
    parts.push(bytesOf(chunkLine(0, f.last) + eol + f.trailers.map(([n, v]) => `${n}:${before}${v}${after}${eol}`).join('') + eol));
  } else {
    parts.push(a.body);
  }
  return { bytes: Buffer.concat(parts), headLength: parts[0]!.length };
}

/** Whether the connection may be reused after `a` (an HTTP/1.0 answer with a Transfer-Encoding: never, RFC 9112 §6.1). */
function expectedReusable(a: Answer, noBody: boolean): boolean {
  if (!noBody && a.minor === 0 && a.framing.kind === 'chunked') return false;
  if (!noBody && a.framing.kind === 'close') return false;
  if (!noBody && a.framing.kind === 'chunked' && a.framing.withLength !== null) return false;
  const tokens = a.connection === null ? [] : a.connection.split(',').map((t) => t.trim().toLowerCase());
  return a.minor === 1 ? !tokens.includes('close') : tokens.includes('keep-alive');
}

const cuts = fc.oneof({ arbitrary: fc.array(fc.nat(), { maxLength: 12 }), weight: 9 }, { arbitrary: fc.constant('bytes' as const), weight: 1 });

describe('ResponseParser round trip', () => {
  it('hands back the interims, status, headers and body of any generated answer split anywhere, consuming exactly its bytes (property)', () => {
    fc.assert(
      fc.property(answer, fc.uint8Array({ maxLength: 20 }), cuts, (a, extra, at) => {
        const { bytes } = serialize(a);
        const closeDelimited = a.framing.kind === 'close';
        const fed = closeDelimited ? bytes : Buffer.concat([bytes, extra]);
        const { seen, consumed, parser, body } = parse(fed, { pieces: at });
        if (closeDelimited) {
          expect(parser.done).toBe(false);
          expect(seen.ends).toEqual([]);
          parser.finish();
        }
        expect(parser.done).toBe(true);
        expect(seen.interims).toEqual(a.interims.map((i) => i.status));
        expect(seen.status).toBe(a.status);
        expect(seen.headers).toStrictEqual(joined(finalHeaders(a)));
        expect(Object.getPrototypeOf(seen.headers)).toBeNull();
        expect(body.equals(a.body)).toBe(true);
        expect(seen.ends).toHaveLength(1);
        expect(seen.ends).toEqual([expectedReusable(a, false)]);
        expect(seen.events.filter((e) => e !== 'data')).toEqual([...a.interims.map(() => 'interim'), 'head', 'end']);
        expect(seen.events.at(-1)).toBe('end');
        expect(consumed).toBe(bytes.length);
      }),
      { numRuns: 400 },
    );
  });

  it('with noBody (a HEAD request) ends at the final head whatever it declares, consuming the heads only (property)', () => {
    fc.assert(
      fc.property(answer, cuts, (a, at) => {
        // what a HEAD answer would be: the headers of the body, not the body
        const { bytes, headLength } = serialize(a);
        const { seen, consumed, parser } = parse(bytes, { pieces: at, noBody: true });
        expect(parser.done).toBe(true);
        expect(seen.status).toBe(a.status);
        expect(seen.data).toEqual([]);
        expect(seen.ends).toHaveLength(1);
        expect(seen.ends).toEqual([expectedReusable(a, true)]);
        expect(consumed).toBe(headLength);
      }),
      { numRuns: 150 },
    );
  });
});

// ---- robustness ----------------------------------------------------------------------------------

/** Feeds `bytes` in pieces, then finishes: only H1Errors, the sink's calls in order, never more body than fed. */
function checkRobust(bytes: Buffer, at: readonly number[], noBody: boolean, limits: Partial<H1Limits>): void {
  const { seen, sink } = recorder();
  const parser = new ResponseParser(sink, noBody, limits);
  let fed = 0;
  try {
    for (const piece of split(bytes, at)) {
      if (parser.done) break;
      const used = parser.feed(piece);
      expect(used).toBeGreaterThanOrEqual(0);
      expect(used).toBeLessThanOrEqual(piece.length);
      fed += piece.length;
      expect(seen.data.reduce((n, d) => n + d.length, 0)).toBeLessThanOrEqual(fed);
    }
    parser.finish();
    expect(parser.done).toBe(true);
  } catch (e) {
    if (!(e instanceof H1Error)) throw e;
    expect(CODES).toContain(e.code);
    expect(e.name).toBe('H1Error');
  }
  expect(seen.data.reduce((n, d) => n + d.length, 0)).toBeLessThanOrEqual(bytes.length);
  // the sink's calls keep their order: interims, one head, data, at most one end
  const order = seen.events.map((e) => ({ interim: 0, head: 1, data: 2, end: 3 })[e]!);
  for (let i = 1; i < order.length; i++) expect(order[i]!).toBeGreaterThanOrEqual(order[i - 1]!);
  expect(seen.events.filter((e) => e === 'head').length).toBeLessThanOrEqual(1);
  expect(seen.ends.length).toBeLessThanOrEqual(1);
}

const smallLimits: fc.Arbitrary<Partial<H1Limits>> = fc.oneof(
  fc.constant({}),
  fc.record({
    maxHeadBytes: fc.integer({ min: 1, max: 200 }),
    maxHeaders: fc.integer({ min: 0, max: 4 }),
    maxChunkLineBytes: fc.integer({ min: 1, max: 20 }),
    maxTrailerBytes: fc.integer({ min: 0, max: 30 }),
    maxInterim: fc.integer({ min: 0, max: 2 }),
  }),
);

type Mutation = { op: 'flip'; pos: number; bit: number } | { op: 'insert'; pos: number; byte: number } | { op: 'delete'; pos: number };
const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ op: fc.constant('flip' as const), pos: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ op: fc.constant('insert' as const), pos: fc.nat(), byte: fc.oneof(fc.constantFrom(0x00, 0x0a, 0x0d, 0x20, 0x3a, 0x3b, 0x30, 0x2c), fc.integer({ min: 0, max: 255 })) }),
  fc.record({ op: fc.constant('delete' as const), pos: fc.nat() }),
);

function mutate(bytes: Buffer, mutations: readonly Mutation[]): Buffer {
  const b = [...bytes];
  for (const m of mutations) {
    if (m.op === 'insert') b.splice(m.pos % (b.length + 1), 0, m.byte);
    else if (b.length === 0) continue;
    else if (m.op === 'flip') b[m.pos % b.length]! ^= 1 << m.bit;
    else b.splice(m.pos % b.length, 1);
  }
  return Buffer.from(b);
}

describe('ResponseParser robustness', () => {
  it('on arbitrary bytes split anywhere throws nothing but an H1Error and hands no more body than it was fed (property)', () => {
    const prefixed = fc.tuple(fc.constantFrom('', 'HTTP/1.1 200 OK\r\n', 'HTTP/1.0 100 \n', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n'), fc.uint8Array({ maxLength: 400 })).map(([p, b]) => Buffer.concat([bytesOf(p), b]));
    fc.assert(
      fc.property(prefixed, fc.array(fc.nat(), { maxLength: 10 }), fc.boolean(), smallLimits, (bytes, at, noBody, limits) => checkRobust(bytes, at, noBody, limits)),
      { numRuns: 500 },
    );
  });

  it('on mutated valid answers (bytes flipped, inserted, deleted) split anywhere throws nothing but an H1Error (property)', () => {
    fc.assert(
      fc.property(answer, fc.array(mutation, { minLength: 1, maxLength: 4 }), fc.array(fc.nat(), { maxLength: 10 }), fc.boolean(), smallLimits, (a, ms, at, noBody, limits) =>
        checkRobust(mutate(serialize(a).bytes, ms), at, noBody, limits),
      ),
      { numRuns: 400 },
    );
  });
});

// ---- bounds ------------------------------------------------------------------------------------------

describe('ResponseParser bounds', () => {
  const head = (pad: number) => `HTTP/1.1 200 OK\r\nX-Pad: ${'p'.repeat(pad)}\r\nContent-Length: 0\r\n\r\n`;

  it('accepts a head of exactly maxHeadBytes and refuses one byte more, whole, in two pieces or a byte at a time', () => {
    const h = head(40);
    for (const pieces of [[], [h.length - 2], [5], 'bytes' as const]) {
      expect(failure(h, { pieces, limits: { maxHeadBytes: h.length } })).toBeUndefined();
      expect(parse(h, { pieces, limits: { maxHeadBytes: h.length } }).seen.ends).toEqual([true]);
      expect(failure(h, { pieces, limits: { maxHeadBytes: h.length - 1 } })).toBe('HTTP_MALFORMED');
    }
    // the default: 32 KiB
    expect(failure(head((32 << 10) - head(0).length))).toBeUndefined();
    expect(failure(head((32 << 10) - head(0).length + 1))).toBe('HTTP_MALFORMED');
  });

  it('refuses a head without an end as soon as it passes maxHeadBytes, not at the connection end', () => {
    const limit = 64;
    const junk = bytesOf(`HTTP/1.1 200 OK\r\nX-Long: ${'a'.repeat(200)}`);
    const parser = new ResponseParser(recorder().sink, false, { maxHeadBytes: limit });
    for (let i = 0; i < limit; i++) expect(parser.feed(junk.subarray(i, i + 1))).toBe(1);
    expect(codeOf(() => parser.feed(junk.subarray(limit, limit + 1)))).toBe('HTTP_MALFORMED');
    expect(failure(junk, { limits: { maxHeadBytes: limit } })).toBe('HTTP_MALFORMED');
    expect(failure(Buffer.alloc(100_000, 0x61))).toBe('HTTP_MALFORMED'); // the default bound, no line end at all
  });

  it('bounds every head of an answer, interim ones too', () => {
    const interim = `HTTP/1.1 100 Continue\r\nX-Pad: ${'p'.repeat(100)}\r\n\r\n`;
    expect(failure(`${interim}HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n`, { limits: { maxHeadBytes: 80 } })).toBe('HTTP_MALFORMED');
  });

  it('accepts maxHeaders header lines and refuses one more', () => {
    const withHeaders = (n: number) => `HTTP/1.1 200 OK\r\n${Array.from({ length: n - 1 }, (_, i) => `X-${i}: v\r\n`).join('')}Content-Length: 0\r\n\r\n`;
    expect(parse(withHeaders(3), { limits: { maxHeaders: 3 } }).seen.ends).toEqual([true]);
    expect(failure(withHeaders(4), { limits: { maxHeaders: 3 } })).toBe('HTTP_MALFORMED');
    expect(failure(withHeaders(4), { pieces: 'bytes', limits: { maxHeaders: 3 } })).toBe('HTTP_MALFORMED');
    expect(failure(withHeaders(256))).toBeUndefined();
    expect(failure(withHeaders(257))).toBe('HTTP_MALFORMED');
  });

  it('accepts chunk-size lines of exactly maxChunkLineBytes (line end included) and refuses one byte more', () => {
    const limit = 16;
    // "5;e=xxxx...\r\n" of `length` bytes
    const line = (length: number, eol: string) => `5;e=${'x'.repeat(length - 4 - eol.length)}${eol}`;
    const chunked = (length: number, eol: string) => `HTTP/1.1 200 OK${eol}Transfer-Encoding: chunked${eol}${eol}${line(length, eol)}hello${eol}${line(length, eol)}world${eol}0${eol}${eol}`;
    for (const eol of ['\r\n', '\n']) {
      for (const pieces of [[], [40], 'bytes' as const]) {
        const ok = parse(chunked(limit, eol), { pieces, limits: { maxChunkLineBytes: limit } });
        expect(ok.body.toString()).toBe('helloworld');
        expect(ok.seen.ends).toEqual([true]);
        expect(failure(chunked(limit + 1, eol), { pieces, limits: { maxChunkLineBytes: limit } })).toBe('HTTP_MALFORMED');
      }
    }
  });

  it('accepts a trailer section of exactly maxTrailerBytes (its empty line included) and refuses one byte more', () => {
    const limit = 30;
    const trailers = (total: number) => `A: 1\r\nB: ${'b'.repeat(total - 6 - 5 - 2)}\r\n\r\n`; // 6 + (5 + n) + 2 bytes
    const chunked = (total: number) => `HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n${trailers(total)}`;
    expect(trailers(limit).length).toBe(limit);
    for (const pieces of [[], [50, 60], 'bytes' as const]) {
      const ok = parse(chunked(limit), { pieces, limits: { maxTrailerBytes: limit } });
      expect(ok.body.toString()).toBe('abc');
      expect(ok.seen.ends).toEqual([true]);
      expect(ok.consumed).toBe(chunked(limit).length);
      expect(failure(chunked(limit + 1), { pieces, limits: { maxTrailerBytes: limit } })).toBe('HTTP_MALFORMED');
    }
  });

  it('accepts maxInterim 1xx answers and refuses one more', () => {
    const withInterims = (n: number) => `${'HTTP/1.1 100 Continue\r\n\r\n'.repeat(n)}HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n`;
    const ok = parse(withInterims(2), { limits: { maxInterim: 2 } });
    expect(ok.seen.interims).toEqual([100, 100]);
    expect(ok.seen.ends).toEqual([true]);
    expect(failure(withInterims(3), { limits: { maxInterim: 2 } })).toBe('HTTP_MALFORMED');
    expect(failure(withInterims(3), { pieces: 'bytes', limits: { maxInterim: 2 } })).toBe('HTTP_MALFORMED');
    expect(failure(withInterims(8))).toBeUndefined();
    expect(failure(withInterims(9))).toBe('HTTP_MALFORMED');
  });
});

// ---- specific cases -------------------------------------------------------------------------------

describe('ResponseParser specific cases', () => {
  const withLength = (cl: string, body = 'hello') => `HTTP/1.1 200 OK\r\nContent-Length: ${cl}\r\n\r\n${body}`;

  it('takes a Content-Length repeated with one value, refuses differing, non-decimal and negative ones', () => {
    const r = parse(withLength('5, 5'));
    expect(r.body.toString()).toBe('hello');
    expect(r.seen.ends).toEqual([true]);
    const twice = 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello';
    const r2 = parse(`${twice}EXTRA`);
    expect(r2.seen.headers!['content-length']).toBe('5, 5');
    expect(r2.body.toString()).toBe('hello');
    expect(r2.consumed).toBe(twice.length);
    for (const cl of ['5, 6', 'abc', '-1', '', '5 5', '+5', '0x5', '1e3', '5,']) expect([cl, failure(withLength(cl))]).toEqual([cl, 'HTTP_MALFORMED']);
  });

  it('stops a Content-Length body at its length and leaves the bytes after it', () => {
    const text = `${withLength('5')}HTTP/1.1 200 OK\r\n`;
    const r = parse(text, { pieces: [30, 40] });
    expect(r.body.toString()).toBe('hello');
    expect(r.consumed).toBe(withLength('5').length);
    expect(parse(withLength('0', '')).seen.ends).toEqual([true]);
  });

  it('reads the body by chunks when both Transfer-Encoding and Content-Length come, and does not reuse the connection', () => {
    const text = 'HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n';
    const r = parse(`${text}XYZ`);
    expect(r.body.toString()).toBe('hello');
    expect(r.seen.ends).toEqual([false]);
    expect(r.consumed).toBe(text.length);
  });

  it('reads a body whose last transfer coding is not chunked until the connection ends, not reused', () => {
    const r = parse('HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nContent-Length: 2\r\n\r\n5\r\nhello\r\n0\r\n\r\n', { pieces: [10] });
    expect(r.parser.done).toBe(false);
    r.parser.finish();
    expect(r.body.toString()).toBe('5\r\nhello\r\n0\r\n\r\n');
    expect(r.seen.ends).toEqual([false]);
    const chunkedThenGzip = parse('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\nabc', { finish: true });
    expect(chunkedThenGzip.body.toString()).toBe('abc');
    expect(chunkedThenGzip.seen.ends).toEqual([false]);
  });

  it('ends 204 and 304 answers at their head even with a Content-Length or Transfer-Encoding', () => {
    for (const status of [204, 304]) {
      for (const framing of ['Content-Length: 5', 'Transfer-Encoding: chunked']) {
        const head = `HTTP/1.1 ${status} X\r\n${framing}\r\n\r\n`;
        const r = parse(`${head}hello`);
        expect(r.seen.status).toBe(status);
        expect(r.seen.data).toEqual([]);
        expect(r.seen.ends).toEqual([true]);
        expect(r.consumed).toBe(head.length);
      }
    }
  });

  it('with noBody ends at the head, a Content-Length or none', () => {
    for (const framing of ['Content-Length: 5\r\n', 'Transfer-Encoding: chunked\r\n', '']) {
      const head = `HTTP/1.1 200 OK\r\n${framing}\r\n`;
      const r = parse(`${head}hello`, { noBody: true });
      expect(r.seen.data).toEqual([]);
      expect(r.seen.ends).toEqual([true]);
      expect(r.consumed).toBe(head.length);
    }
  });

  it('refuses 101 Switching Protocols and statuses below 100', () => {
    expect(failure('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n')).toBe('HTTP_MALFORMED');
    expect(failure('HTTP/1.1 099 X\r\nContent-Length: 0\r\n\r\n')).toBe('HTTP_MALFORMED');
  });

  it('joins a folded header line with one space, and refuses a folded line as the first header', () => {
    const r = parse('HTTP/1.1 200 OK\r\nX-Long: first\r\n  \t second part \t\r\n\tthird\r\nContent-Length: 0\r\n\r\n');
    expect(r.seen.headers!['x-long']).toBe('first second part third');
    expect(r.seen.ends).toEqual([true]);
    expect(parse('HTTP/1.1 200 OK\nX-Long: a\n b\nContent-Length: 0\n\n').seen.headers!['x-long']).toBe('a b');
    expect(parse('HTTP/1.1 200 OK\r\nX-Empty:\r\n folded\r\nContent-Length: 0\r\n\r\n').seen.headers!['x-empty']).toBe('folded');
    expect(failure('HTTP/1.1 200 OK\r\n folded: x\r\nContent-Length: 0\r\n\r\n')).toBe('HTTP_MALFORMED');
  });

  it('drops the spaces and tabs around a header value, keeps those inside and the obs-text NBSP', () => {
    const r = parse('HTTP/1.1 200 OK\r\nX-A: \t b \t c \t \r\nX-B:\xa0d\xa0 \r\nX-C:   \r\nContent-Length: 0\r\n\r\n');
    expect(r.seen.headers!['x-a']).toBe('b \t c');
    expect(r.seen.headers!['x-b']).toBe('\xa0d\xa0');
    expect(r.seen.headers!['x-c']).toBe('');
  });

  it('refuses a space before the colon, an empty name, NUL or a bare CR in a value', () => {
    expect(failure('HTTP/1.1 200 OK\r\nX-A : b\r\nContent-Length: 0\r\n\r\n')).toBe('HTTP_MALFORMED');
    expect(failure('HTTP/1.1 200 OK\r\n: b\r\nContent-Length: 0\r\n\r\n')).toBe('HTTP_MALFORMED');
    expect(failure('HTTP/1.1 200 OK\r\nX-A: b\0c\r\nContent-Length: 0\r\n\r\n')).toBe('HTTP_MALFORMED');
    expect(failure('HTTP/1.1 200 OK\r\nX-A: b\rc\r\nContent-Length: 0\r\n\r\n')).toBe('HTTP_MALFORMED');
    expect(failure('HTTP/1.1 200 OK\r\nX-A: b\r\r\nContent-Length: 0\r\n\r\n')).toBe('HTTP_MALFORMED');
    expect(failure('HTTP/1.1 200 OK\r\nX-A: b\0\r\nContent-Length: 0\r\n\r\n', { pieces: 'bytes' })).toBe('HTTP_MALFORMED');
  });

  it('refuses a chunk whose data is not followed by a line end, and a chunk-size line that is not one', () => {
    const chunked = (rest: string) => `HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n${rest}`;
    expect(failure(chunked('3\r\nabcX\r\n0\r\n\r\n'))).toBe('HTTP_MALFORMED');
    expect(failure(chunked('3\r\nabc\rX0\r\n\r\n'))).toBe('HTTP_MALFORMED');
    expect(failure(chunked('3\r\nabc\r\r\n0\r\n\r\n'))).toBe('HTTP_MALFORMED');
    expect(failure(chunked('3\r\nabcX\r\n0\r\n\r\n'), { pieces: 'bytes' })).toBe('HTTP_MALFORMED');
    for (const line of ['x', '', '-3', '0x3', '3 3', '3\r', ';ext', '1234567890abc'])
      expect([line, failure(chunked(`${line}\r\nabc\r\n0\r\n\r\n`))]).toEqual([line, 'HTTP_MALFORMED']);
    // a chunk ended by LF alone, and extensions, are accepted
    expect(parse(chunked('3;a=b\nabc\n0;last\n\n')).body.toString()).toBe('abc');
  });

  it('refuses a trailer line that is not a header line', () => {
    expect(failure('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nnot a header\r\n\r\n')).toBe('HTTP_MALFORMED');
    const ok = parse('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-Checksum: 1\r\n\r\nNEXT');
    expect(ok.seen.ends).toEqual([true]);
    expect(ok.consumed).toBe('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-Checksum: 1\r\n\r\n'.length);
  });

  it('tells at the connection end: no answer, an answer cut short, or the end of a body that runs until then', () => {
    const parser = new ResponseParser(recorder().sink);
    expect(codeOf(() => parser.finish())).toBe('HTTP_NO_ANSWER');
    const empty = new ResponseParser(recorder().sink);
    expect(empty.feed(Buffer.alloc(0))).toBe(0);
    expect(codeOf(() => empty.finish())).toBe('HTTP_NO_ANSWER');
    expect(failure('HTTP/1.1 200 OK\r\nContent-Le', { finish: true })).toBe('HTTP_CLOSED_EARLY');
    expect(failure('H', { finish: true })).toBe('HTTP_CLOSED_EARLY');
    expect(failure('HTTP/1.1 100 Continue\r\n\r\n', { finish: true })).toBe('HTTP_CLOSED_EARLY');
    expect(failure(withLength('6'), { finish: true })).toBe('HTTP_CLOSED_EARLY');
    expect(failure('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n', { finish: true })).toBe('HTTP_CLOSED_EARLY');
    expect(failure('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n', { finish: true })).toBe('HTTP_CLOSED_EARLY');
    const close = parse('HTTP/1.1 200 OK\r\n\r\nall of it', { finish: true });
    expect(close.body.toString()).toBe('all of it');
    expect(close.seen.ends).toEqual([false]);
    expect(close.parser.done).toBe(true);
    // finishing an ended answer again changes nothing
    close.parser.finish();
    expect(close.seen.ends).toEqual([false]);
    const ended = parse(withLength('5'));
    ended.parser.finish();
    expect(ended.seen.ends).toEqual([true]);
  });

  it('accepts a status line without a reason, refuses HTTP/2 and other versions', () => {
    const r = parse('HTTP/1.1 200\r\nContent-Length: 2\r\n\r\nok');
    expect(r.seen.status).toBe(200);
    expect(r.body.toString()).toBe('ok');
    expect(r.seen.ends).toEqual([true]);
    for (const line of ['HTTP/2 200', 'HTTP/2.0 200 OK', 'HTTP/1.1 20 OK', 'HTTP/1.1 2000 OK', 'http/1.1 200 OK', 'HTTP/1.1  200 OK', 'HTTP/1.1 200OK', 'ICY 200 OK', 'HTTP/1.1 200 O\0K'])
      expect([line, failure(`${line}\r\nContent-Length: 0\r\n\r\n`)]).toEqual([line, 'HTTP_MALFORMED']);
  });

  it('keeps a header named __proto__ as a plain own property of a null-prototype object', () => {
    const r = parse('HTTP/1.1 200 OK\r\n__proto__: polluted\r\nconstructor: c\r\nContent-Length: 0\r\n\r\n');
    const headers = r.seen.headers!;
    expect(Object.getPrototypeOf(headers)).toBeNull();
    expect(Object.hasOwn(headers, '__proto__')).toBe(true);
    expect(headers['__proto__']).toBe('polluted');
    expect(headers['constructor']).toBe('c');
    expect(Object.keys(headers).sort()).toEqual(['__proto__', 'constructor', 'content-length']);
    expect(({} as Record<string, unknown>)['polluted']).toBeUndefined();
  });

  it('decides reuse from the version and the Connection header', () => {
    const reuse = (version: string, connection: string | null) =>
      parse(`HTTP/${version} 200 OK\r\n${connection === null ? '' : `Connection: ${connection}\r\n`}Content-Length: 0\r\n\r\n`).seen.ends;
    expect(reuse('1.1', null)).toEqual([true]);
    expect(reuse('1.1', 'close')).toEqual([false]);
    expect(reuse('1.1', 'Upgrade, Close')).toEqual([false]);
    expect(reuse('1.0', null)).toEqual([false]);
    expect(reuse('1.0', 'keep-alive')).toEqual([true]);
    expect(reuse('1.0', 'Keep-Alive')).toEqual([true]);
  });

  // RFC 9112 §6.1: "A server or client that receives an HTTP/1.0 message containing a Transfer-Encoding
  // header field MUST treat the message as if the framing is faulty, even if a Content-Length is present,
  // and close the connection after processing the message."
  it('skips line ends before an answer (left by a server that ends its answers with an extra CRLF), at most 64, and counts none of them as an answer begun', () => {
    const answer = 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok';
    const r = parse(`\r\n\n${answer}`, { pieces: [1, 3] });
    expect(r.body.toString()).toBe('ok');
    expect(r.consumed).toBe(answer.length + 3);
    expect(failure(`${'\r\n'.repeat(32)}\r${answer}`)).toBe('HTTP_MALFORMED');
    expect(failure(`${'\r\n'.repeat(32)}${answer}`)).toBeUndefined();
    const blank = parse('\r\n\r\n');
    expect(blank.parser.nothingReceived).toBe(true);
    expect(codeOf(() => blank.parser.finish())).toBe('HTTP_NO_ANSWER');
    expect(parse('H').parser.nothingReceived).toBe(false);
  });

  it('does not reuse the connection after an HTTP/1.0 answer with a Transfer-Encoding', () => {
    const r = parse('HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n');
    expect(r.body.toString()).toBe('hello');
    expect(r.seen.ends).toEqual([false]);
  });
});
