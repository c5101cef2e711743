/**
 * The relay's decoders (src/bus/console-relay.ts): open requests and control messages from other
 * instances are bounded, validated and never throw.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeControl, decodeOpenRequest } from '../../src/bus/console-relay.js';

const enc = (v: unknown) => Buffer.from(JSON.stringify(v));
const RELAY = 'a'.repeat(32);

describe('relay open request', () => {
  it('takes a machine id, a 128-bit relay id and the asking instance', () => {
    expect(decodeOpenRequest(enc({ machine: '2b5c-uuid', relay: RELAY, from: 'mgmt-01' }))).toEqual({ machine: '2b5c-uuid', relay: RELAY, from: 'mgmt-01' });
  });

  it.each([
    ['a relay id that is not 32 hex digits', { machine: 'm', relay: 'abc', from: 'x' }],
    ['a relay id with subject characters', { machine: 'm', relay: `${'a'.repeat(30)}.>`, from: 'x' }],
    ['a machine id with a subject wildcard', { machine: 'm*', relay: RELAY, from: 'x' }],
    ['a machine id with ..', { machine: '..', relay: RELAY, from: 'x' }],
    ['an instance with a dot', { machine: 'm', relay: RELAY, from: 'a.b' }],
    ['no object', [1, 2]],
  ])('refuses %s', (_what, v) => {
    expect(decodeOpenRequest(enc(v))).toBeUndefined();
  });

  it('refuses anything over 1 KiB and never throws', () => {
    expect(decodeOpenRequest(enc({ machine: 'm', relay: RELAY, from: 'x', pad: 'x'.repeat(1100) }))).toBeUndefined();
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2000 }), (bytes) => {
        const r = decodeOpenRequest(bytes);
        if (r) expect(r.relay).toMatch(/^[0-9a-f]{32}$/);
      }),
    );
    fc.assert(
      fc.property(fc.record({ machine: fc.string(), relay: fc.string(), from: fc.string() }), (v) => {
        const r = decodeOpenRequest(enc(v));
        if (r) {
          expect(r.machine).toMatch(/^[A-Za-z0-9_:.-]{1,128}$/);
          expect(r.from).toMatch(/^[A-Za-z0-9_-]{1,64}$/);
        }
      }),
    );
  });
});

describe('relay control message', () => {
  it('knows ping and end, cuts the end message, and nothing else', () => {
    expect(decodeControl(enc({ t: 'ping' }))).toEqual({ t: 'ping' });
    expect(decodeControl(enc({ t: 'end', m: 'x'.repeat(500) }))).toEqual({ t: 'end', m: 'x'.repeat(200) });
    expect(decodeControl(enc({ t: 'end' }))).toEqual({ t: 'end', m: '' });
    expect(decodeControl(enc({ t: 'other' }))).toBeUndefined();
    expect(decodeControl(enc(null))).toBeUndefined();
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2000 }), (bytes) => {
        const c = decodeControl(bytes);
        if (c) expect(['ping', 'end']).toContain(c.t);
      }),
    );
  });
});
