/** The wire decoders for what real BMCs send beside the spec: BOM and trailing bytes, Retry-After, session Location. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeJsonBody, MAX_JSON_CONTAINERS, MAX_JSON_DEPTH, parseRetryAfter, sessionLocation } from '../../src/redfish/wire.js';

const json = fc.jsonValue().filter((v) => typeof v === 'object' && v !== null); // objects and arrays: what a Redfish body is
const noise = fc.array(fc.constantFrom('\0', '\r', '\n', ' ', '\t', 'x', '}', ']', '"', '\\'), { maxLength: 8 }).map((a) => a.join(''));

describe('decodeJsonBody', () => {
  it('decodes any JSON document, with or without a BOM, followed by any noise', () => {
    fc.assert(
      fc.property(json, fc.boolean(), noise, (value, bom, tail) => {
        const sent = JSON.stringify(value);
        const text = `${bom ? '\uFEFF' : ''}${sent}${tail}`;
        const r = decodeJsonBody(text);
        expect(r.ok).toBe(true);
        // what the text says (JSON has no -0: JSON.stringify(-0) is "0")
        if (r.ok) expect(r.value).toEqual(JSON.parse(sent));
      }),
    );
  });

  it('never throws on arbitrary text, and what it accepts is JSON', () => {
    fc.assert(
      fc.property(fc.string(), (text) => {
        const r = decodeJsonBody(text);
        if (r.ok && !r.empty) expect(() => JSON.stringify(r.value)).not.toThrow();
      }),
    );
  });

  it('names what it tolerated; an empty body is empty; a cut document is refused', () => {
    expect(decodeJsonBody('{"a":1}')).toEqual({ ok: true, value: { a: 1 }, empty: false });
    expect(decodeJsonBody('\uFEFF{"a":1}')).toMatchObject({ ok: true, lenient: 'bom' });
    expect(decodeJsonBody('{"a":"}"}\0\r\n')).toMatchObject({ ok: true, value: { a: '}' }, lenient: 'trailing' });
    expect(decodeJsonBody('\uFEFF{"a":[1]}garbage')).toMatchObject({ ok: true, value: { a: [1] }, lenient: 'bom+trailing' });
    expect(decodeJsonBody(' \r\n')).toMatchObject({ ok: true, empty: true });
    expect(decodeJsonBody('{"a":1')).toEqual({ ok: false });
    expect(decodeJsonBody('<html>error</html>')).toEqual({ ok: false });
    expect(decodeJsonBody('{"a":\u0001}')).toEqual({ ok: false });
  });

  it('refuses unparsed a document nested deeper than MAX_JSON_DEPTH or with more than MAX_JSON_CONTAINERS objects and arrays, brackets in strings not counted', () => {
    const nested = (n: number) => `${'['.repeat(n)}${']'.repeat(n)}`;
    expect(decodeJsonBody(nested(MAX_JSON_DEPTH))).toMatchObject({ ok: true });
    expect(decodeJsonBody(nested(MAX_JSON_DEPTH + 1))).toEqual({ ok: false, tooComplex: true });
    expect(decodeJsonBody(nested(1_000_000))).toEqual({ ok: false, tooComplex: true });
    const flat = (n: number) => `[${Array.from({ length: n }, () => '{}').join(',')}]`;
    expect(decodeJsonBody(flat(MAX_JSON_CONTAINERS - 1))).toMatchObject({ ok: true });
    expect(decodeJsonBody(flat(MAX_JSON_CONTAINERS))).toEqual({ ok: false, tooComplex: true });
    // a Redfish-like answer with brackets inside its strings is counted by its structure only
    expect(decodeJsonBody(JSON.stringify({ Message: '['.repeat(100_000), Members: [{ '@odata.id': '/redfish/v1/x' }] }))).toMatchObject({ ok: true });
    // past the bound after a complete first document: the noise after it is not parsed, the document is
    expect(decodeJsonBody(`{"a":1}${nested(1000)}`)).toMatchObject({ ok: true, value: { a: 1 }, lenient: 'trailing' });
  });

  it('accepts every document within the bounds (property)', () => {
    fc.assert(
      fc.property(json, (value) => {
        const r = decodeJsonBody(JSON.stringify(value));
        expect(r.ok).toBe(true);
      }),
    );
  });
});

describe('parseRetryAfter', () => {
  const now = Date.UTC(2026, 11, 3, 3, 0, 0);

  it('reads delta-seconds as milliseconds', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 999_999_999 }), (s) => {
        expect(parseRetryAfter(` ${s} `, now)).toBe(s * 1000);
      }),
    );
  });

  it('reads an HTTP-date as the time until it, and a past date as 0', () => {
    fc.assert(
      fc.property(fc.integer({ min: -86_400, max: 86_400 }), (s) => {
        const at = new Date(now + s * 1000).toUTCString();
        expect(parseRetryAfter(at, now)).toBe(Math.max(0, s * 1000));
      }),
    );
  });

  it('is undefined for absent or malformed values, never NaN or negative', () => {
    for (const v of [undefined, '', '-1', '1.5', 'soon', '1e3', 'Fri, 99 Foo 2026 99:99:99 GMT']) expect(parseRetryAfter(v, now)).toBeUndefined();
    fc.assert(
      fc.property(fc.string(), (v) => {
        const r = parseRetryAfter(v, now);
        expect(r === undefined || (Number.isFinite(r) && r >= 0)).toBe(true);
      }),
    );
  });
});

describe('sessionLocation', () => {
  const origin = 'https://10.0.0.5:8443';
  const id = fc.stringMatching(/^[A-Za-z0-9]{1,16}$/);

  it('takes a relative or same-origin absolute Location as its path', () => {
    fc.assert(
      fc.property(id, fc.boolean(), (sid, absolute) => {
        const path = `/redfish/v1/SessionService/Sessions/${sid}`;
        expect(sessionLocation(origin, absolute ? `${origin}${path}` : path, undefined)).toEqual({ path, via: 'same-origin' });
      }),
    );
  });

  it('keeps only the Redfish path of a Location naming another host or scheme; never another origin', () => {
    expect(sessionLocation(origin, 'http://bmc.example/redfish/v1/SessionService/Sessions/7', undefined)).toEqual({ path: '/redfish/v1/SessionService/Sessions/7', via: 'path-of-foreign-url' });
    expect(sessionLocation(origin, 'https://evil.example/steal', '/redfish/v1/SessionService/Sessions/8')).toEqual({ path: '/redfish/v1/SessionService/Sessions/8', via: 'odata-id' });
    expect(sessionLocation(origin, undefined, undefined)).toBeUndefined();
    expect(sessionLocation(origin, '/redfish/v1/../../etc', undefined)).toBeUndefined();
  });

  it('never throws and only ever returns a /redfish/v1/ path', () => {
    fc.assert(
      fc.property(fc.option(fc.string()), fc.option(fc.string()), (loc, oid) => {
        const r = sessionLocation(origin, loc ?? undefined, oid ?? undefined);
        if (r !== undefined) expect(r.path.startsWith('/redfish/v1/')).toBe(true);
      }),
    );
  });
});
