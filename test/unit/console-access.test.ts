/** The console's access pieces without sockets: rules, principals, the token throttle, cookie sessions, origins. */
import type { IncomingMessage } from 'node:http';
import type { PeerCertificate } from 'node:tls';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { describeAuthz, normalOrigin, parseAuthz } from '../../src/config/console-access.js';
import { certificatePrincipal, mayOpen, mayOpenEvery, validMachineId } from '../../src/console/access.js';
import { createThrottle } from '../../src/console/limits.js';
import { cookieValue, createCookieSessions } from '../../src/console/token-cookie.js';

const cert = (subject: Record<string, string | string[]>, subjectaltname?: string) =>
  certificatePrincipal({ subject, ...(subjectaltname ? { subjectaltname } : {}) } as unknown as PeerCertificate, 'subject');

describe('authorisation rules', () => {
  it('parses the rule list; empty means any', () => {
    expect(parseAuthz('')).toEqual([{ kind: 'any' }]);
    expect(parseAuthz(' machine-id , CN=metal-console,OU=ops ')).toEqual([
      { kind: 'machine-id' },
      { kind: 'attribute', attribute: 'CN', value: 'metal-console' },
      { kind: 'attribute', attribute: 'OU', value: 'ops' },
    ]);
    expect(() => parseAuthz('machine-id,admins')).toThrow(/unknown rule "admins"/);
    expect(() => parseAuthz('L=Berlin')).toThrow(/unknown rule/);
  });

  it('parsing is total: any text gives rules or an INVALID_ARGUMENT, and rules print back to what parses to them', () => {
    fc.assert(
      fc.property(fc.string(), (text) => {
        let rules;
        try {
          rules = parseAuthz(text);
        } catch (err) {
          expect((err as { code?: string }).code).toBe('INVALID_ARGUMENT');
          return;
        }
        expect(parseAuthz(describeAuthz(rules))).toEqual(rules);
      }),
    );
  });

  it('machine-id matches the CN or a DNS/URI SAN, never an IP SAN or another attribute', () => {
    const rules = parseAuthz('machine-id');
    expect(mayOpen(rules, cert({ CN: 'm-1' }), 'm-1')).toBe(true);
    expect(mayOpen(rules, cert({ CN: 'x' }, 'DNS:m-1, IP Address:10.0.0.1'), 'm-1')).toBe(true);
    expect(mayOpen(rules, cert({ CN: 'x' }, 'URI:m-1'), 'm-1')).toBe(true);
    expect(mayOpen(rules, cert({ CN: 'x' }, 'IP Address:m-1'), 'm-1')).toBe(false);
    expect(mayOpen(rules, cert({ CN: 'm-1' }), 'm-2')).toBe(false);
    expect(mayOpen(rules, cert({ OU: 'm-1' }), 'm-1')).toBe(false);
  });

  it('attribute rules open every machine; multi-valued attributes count; the token opens every machine', () => {
    const rules = parseAuthz('machine-id,OU=ops');
    expect(mayOpen(rules, cert({ CN: 'alice', OU: ['dev', 'ops'] }), 'any-machine')).toBe(true);
    expect(mayOpen(rules, cert({ CN: 'alice', OU: 'dev' }), 'any-machine')).toBe(false);
    expect(mayOpen(rules, { kind: 'token' }, 'any-machine')).toBe(true);
    expect(mayOpen(parseAuthz('any'), cert({}), 'm')).toBe(true);
  });

  it('mayOpenEvery says outright who opens every machine (the token, any, a matching attribute rule), never a machine-id match; when it says so, mayOpen agrees for every id', () => {
    expect(mayOpenEvery(parseAuthz('machine-id'), { kind: 'token' })).toBe(true);
    expect(mayOpenEvery(parseAuthz('any'), cert({}))).toBe(true);
    expect(mayOpenEvery(parseAuthz('machine-id,OU=ops'), cert({ CN: 'alice', OU: ['dev', 'ops'] }))).toBe(true);
    expect(mayOpenEvery(parseAuthz('machine-id,OU=ops'), cert({ CN: 'm-1', OU: 'dev' }, 'DNS:m-2'))).toBe(false);
    const attribute = fc.constantFrom('CN', 'OU', 'O');
    const rule = fc.oneof(fc.constant('any'), fc.constant('machine-id'), fc.tuple(attribute, fc.constantFrom('ops', 'm-1')).map(([a, v]) => `${a}=${v}`));
    fc.assert(
      fc.property(fc.array(rule, { minLength: 1, maxLength: 3 }), fc.record({ CN: fc.constantFrom('m-1', 'ops', 'x'), OU: fc.constantFrom('ops', 'dev') }), fc.constantFrom('m-1', 'm-2', 'ops', ''), (list, subject, id) => {
        const rules = parseAuthz(list.join(','));
        if (mayOpenEvery(rules, cert(subject))) expect(mayOpen(rules, cert(subject), id)).toBe(true);
      }),
    );
  });

  it('accepts only machine ids of 1 to 200 characters without control characters or slashes', () => {
    expect(validMachineId('2294c949-88f6-5390-8154-fa53d93a3313')).toBe(true);
    for (const bad of ['', 'a/b', 'a\nb', 'a\x7fb', 'a\u009bb', '.', '..', 'x'.repeat(201)]) expect(validMachineId(bad), JSON.stringify(bad)).toBe(false);
    expect(validMachineId('a.b')).toBe(true);
  });
});

describe('token throttle', () => {
  it('blocks a source after maxFailures within the window, until the window ends; other sources are unaffected', () => {
    let now = 0;
    const t = createThrottle({ maxFailures: 3, windowMs: 1000, maxSources: 10, now: () => now });
    for (let i = 0; i < 3; i++) {
      expect(t.blocked('a')).toBe(false);
      t.failure('a');
    }
    expect(t.blocked('a')).toBe(true);
    expect(t.blocked('b')).toBe(false);
    now = 999;
    expect(t.blocked('a')).toBe(true);
    now = 1000;
    expect(t.blocked('a')).toBe(false);
  });

  it('remembers at most maxSources sources, forgetting the oldest', () => {
    const t = createThrottle({ maxFailures: 1, windowMs: 60_000, maxSources: 100, now: () => 0 });
    for (let i = 0; i < 1000; i++) t.failure(`10.0.${i >> 8}.${i & 255}`);
    expect(t.blocked('10.0.3.231')).toBe(true); // the newest
    expect(t.blocked('10.0.0.0')).toBe(false); // forgotten
  });
});

describe('cookie sessions', () => {
  const req = (cookie?: string) => ({ headers: cookie ? { cookie } : {} }) as IncomingMessage;

  it('a issued cookie is valid until it expires, and only as issued', () => {
    let now = 0;
    const sessions = createCookieSessions({ ttlMs: 60_000, max: 10, now: () => now });
    const { id, setCookie } = sessions.issue();
    expect(setCookie).toBe(`metal_bmc_console=${id}; Path=/; Max-Age=60; HttpOnly; Secure; SameSite=Strict`);
    expect(sessions.valid(req(`other=1; metal_bmc_console=${id}`))).toBe(true);
    expect(sessions.valid(req(`metal_bmc_console=${id}x`))).toBe(false);
    expect(sessions.valid(req())).toBe(false);
    now = 60_000;
    expect(sessions.valid(req(`metal_bmc_console=${id}`))).toBe(false);
  });

  it('keeps at most max sessions, the oldest goes first', () => {
    const sessions = createCookieSessions({ ttlMs: 60_000, max: 2, now: () => 0 });
    const ids = [sessions.issue().id, sessions.issue().id, sessions.issue().id];
    expect(ids.map((id) => sessions.valid(req(`metal_bmc_console=${id}`)))).toEqual([false, true, true]);
  });

  it('reads a cookie out of any Cookie header without throwing', () => {
    expect(cookieValue('a=1; b = 2 ;c=3', 'b')).toBe('2');
    fc.assert(fc.property(fc.string(), fc.string(), (header, name) => {
      const v = cookieValue(header, name);
      expect(v === undefined || typeof v === 'string').toBe(true);
    }));
  });
});

describe('origins', () => {
  it('normalises http(s) origins and refuses anything else', () => {
    expect(normalOrigin('https://Console.Example.com:443')).toBe('https://console.example.com');
    expect(normalOrigin('https://127.0.0.1:3334')).toBe('https://127.0.0.1:3334');
    expect(normalOrigin('null')).toBeUndefined();
    expect(normalOrigin('file:///etc/passwd')).toBeUndefined();
  });
});
