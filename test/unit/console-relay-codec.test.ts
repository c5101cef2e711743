/**
 * The relay's codec (src/bus/console-relay-codec.ts): open requests and control messages from other
 * instances are bounded, validated and never throw; the owner's notices survive the round trip cut
 * to their bounds, without control characters, and always fit a control message.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeControl, decodeOpenRequest, encodeControl, type RelayNotice } from '../../src/bus/console-relay.js';
import { boundNotice, MAX_CONTROL_BYTES, NOTICE_MESSAGE_CHARS, NOTICE_OWNER_CHARS } from '../../src/bus/console-relay-codec.js';

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

/** the bidirectional overrides and isolates, which show a line's characters in another order */
const BIDI_CONTROLS = new Set([...'\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069']);

describe('relay control message', () => {
  it('knows ping, end, notice, takeover and break, cuts the end message, and nothing else', () => {
    expect(decodeControl(enc({ t: 'ping' }))).toEqual({ t: 'ping' });
    expect(decodeControl(enc({ t: 'end', m: 'x'.repeat(500) }))).toEqual({ t: 'end', m: 'x'.repeat(200) });
    expect(decodeControl(enc({ t: 'end' }))).toEqual({ t: 'end', m: '' });
    expect(decodeControl(enc({ t: 'other' }))).toBeUndefined();
    expect(decodeControl(enc({ t: 'takeover' }))).toEqual({ t: 'takeover' });
    expect(decodeControl(enc({ t: 'break', extra: 'x'.repeat(100) }))).toEqual({ t: 'break' });
    expect(decodeControl(enc({ t: 'notice', n: { type: 'status', state: 'closed', keyboard: true, owner: null, clients: 1 } }))).toBeUndefined();
    expect(decodeControl(enc({ t: 'notice', n: { type: 'status', state: 'open', keyboard: 'yes', owner: null, clients: 1 } }))).toBeUndefined();
    expect(decodeControl(enc({ t: 'notice', n: { type: 'status', state: 'open', keyboard: true, owner: null, clients: -1 } }))).toBeUndefined();
    expect(decodeControl(enc({ t: 'notice', n: { type: 'error' } }))).toBeUndefined();
    expect(decodeControl(enc(null))).toBeUndefined();
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2000 }), (bytes) => {
        const c = decodeControl(bytes);
        if (c) expect(['ping', 'end', 'notice', 'takeover', 'break']).toContain(c.t);
      }),
    );
  });
});

const anyText = fc.string({ unit: 'binary', maxLength: 600 });
const notice: fc.Arbitrary<RelayNotice> = fc.oneof(
  fc.record({ type: fc.constant('error' as const), message: anyText }),
  fc.record(
    {
      type: fc.constant('status' as const),
      state: fc.constantFrom('connecting' as const, 'open' as const, 'reconnecting' as const),
      keyboard: fc.boolean(),
      owner: fc.option(anyText, { nil: null }),
      clients: fc.nat({ max: 1_000_000 }),
      message: anyText,
    },
    { requiredKeys: ['type', 'state', 'keyboard', 'owner', 'clients'] },
  ),
);

describe('relay notice', () => {
  it('comes through as sent when within its bounds', () => {
    const n: RelayNotice = { type: 'status', state: 'reconnecting', keyboard: false, owner: 'CN=ops', clients: 3, message: 'BMC connection lost; reconnecting in 1.0 s (attempt 1)' };
    expect(decodeControl(encodeControl({ t: 'notice', n }))).toEqual({ t: 'notice', n });
  });

  it('shows an owner\'s notice as text: escapes, C1 and bidirectional overrides (a line shown reversed) are spaces', () => {
    const n: RelayNotice = { type: 'status', state: 'reconnecting', keyboard: false, owner: 'CN=\u202eops\u202c', clients: 1, message: 'lost\u001b]52;c;ZXZpbA==\u0007 \u009b2J\u2066x\u2069' };
    const back = (decodeControl(encodeControl({ t: 'notice', n })) as { n: RelayNotice }).n;
    expect(back).toMatchObject({ owner: 'CN= ops ', message: 'lost ]52;c;ZXZpbA==   2J x ' });
  });

  it('always fits a control message, comes back cut to its bounds without control characters, and never throws', () => {
    fc.assert(
      fc.property(notice, (n) => {
        const bytes = encodeControl({ t: 'notice', n });
        expect(bytes.length).toBeLessThanOrEqual(MAX_CONTROL_BYTES);
        const c = decodeControl(bytes);
        expect(c).toEqual({ t: 'notice', n: boundNotice(n) });
        const back = (c as { n: RelayNotice }).n;
        const texts = back.type === 'error' ? [back.message] : [back.message ?? '', back.owner ?? ''];
        for (const t of texts) expect([...t].some((ch) => ch.charCodeAt(0) < 0x20 || (ch.charCodeAt(0) >= 0x7f && ch.charCodeAt(0) <= 0x9f) || BIDI_CONTROLS.has(ch))).toBe(false);
        expect(back.message?.length ?? 0).toBeLessThanOrEqual(NOTICE_MESSAGE_CHARS);
        if (back.type === 'status') expect(back.owner?.length ?? 0).toBeLessThanOrEqual(NOTICE_OWNER_CHARS);
        // what decoded once decodes to itself
        expect(boundNotice(back)).toEqual(back);
      }),
    );
    fc.assert(
      fc.property(fc.anything(), (v) => {
        const n = boundNotice(v);
        if (n) expect(['status', 'error']).toContain(n.type);
      }),
    );
  });
});
