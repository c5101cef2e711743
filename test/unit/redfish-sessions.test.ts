import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import {
  checkedKept,
  createRedfishSessionMemory,
  keptRoot,
  MAX_KEPT_ROOT_BYTES,
  MAX_KEPT_TEXT,
  MAX_MISSES,
  openRedfishSessionFile,
  redfishSessionKey,
  SWEEP_AFTER_MIN_MS,
  sessionAfterRead,
  sessionPlan,
  validKept,
  type KeptRedfishSession,
} from '../../src/outband/redfish-sessions.js';
import { parseServiceRoot } from '../../src/redfish/parse.js';
import type { InventoryLayout } from '../../src/redfish/layout.js';
import { captureLog } from '../helpers/log.js';

const HOUR = 3_600_000;
const NOW = 1_800_000_000_000;
const kept = (o: Partial<KeptRedfishSession> = {}): KeptRedfishSession => ({ user: 'ADMIN', token: 't0', location: '/redfish/v1/SessionService/Sessions/1', since: NOW - 1000, misses: 0, ...o });
const LAYOUT: InventoryLayout = {
  system: '/redfish/v1/Systems/1',
  uuid: '38947555-7742-3448-3784-823347823834',
  links: { manager: '/redfish/v1/Managers/1', chassis: '/redfish/v1/Chassis/1' },
  systemLed: { indicatorLED: true, locationIndicatorActive: false },
  manager: '/redfish/v1/Managers/1',
  chassis: { path: '/redfish/v1/Chassis/1', serialNumber: 'S1', power: '/redfish/v1/Chassis/1/Power' },
  noPowerMetric: false,
};
const at = (o: Partial<{ user: string; pin: string | undefined; nowMs: number; maxAgeMs: number }> = {}) => ({ user: 'ADMIN', pin: undefined, nowMs: NOW, maxAgeMs: HOUR, ...o });

const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));
const tempFile = () => {
  const dir = mkdtempSync(join(tmpdir(), 'redfish-sessions-unit-'));
  dirs.push(dir);
  return join(dir, 'redfish-sessions.json');
};

describe('redfishSessionKey', () => {
  it('the address and port, and the MAC as the trust store keys it where the lease names one: a BMC replaced at the same address has another key', () => {
    expect(redfishSessionKey('10.0.0.1', undefined)).toBe('10.0.0.1:443');
    const a = redfishSessionKey('10.0.0.1', 8443, 'aa:bb:cc:dd:ee:01');
    expect(redfishSessionKey('10.0.0.1', 8443, 'AA:BB:CC:DD:EE:01')).toBe(a);
    expect(redfishSessionKey('10.0.0.1', 8443, 'aa:bb:cc:dd:ee:02')).not.toBe(a);
    expect(redfishSessionKey('10.0.0.1', 8443)).not.toBe(a);
    expect(redfishSessionKey('10.0.0.2', 8443, 'aa:bb:cc:dd:ee:01')).not.toBe(a);
  });
});

describe('sessionPlan', () => {
  it('resumes a session of the same user and certificate within its age; retires one past it or of another user', () => {
    expect(sessionPlan(undefined, at())).toEqual({ keep: true });
    expect(sessionPlan(kept(), at()).resume?.token).toBe('t0');
    expect(sessionPlan(kept({ since: NOW - HOUR }), at())).toMatchObject({ retire: { token: 't0' }, keep: true });
    expect(sessionPlan(kept(), at({ user: 'other' }))).toMatchObject({ retire: { token: 't0' }, keep: true });
    expect(sessionPlan(kept(), at({ maxAgeMs: 0 }))).toEqual({ keep: false });
  });

  it('never resumes nor retires a session across certificates (its token is not sent)', () => {
    fc.assert(
      fc.property(fc.constantFrom(undefined, 'aa', 'bb'), fc.constantFrom(undefined, 'aa', 'bb'), fc.integer({ min: -2 * HOUR, max: 2 * HOUR }), (a, b, age) => {
        const plan = sessionPlan(kept({ ...(a === undefined ? {} : { pin: a }), since: NOW - age }), at({ pin: b }));
        if (a !== b) expect(plan.resume ?? plan.retire).toBeUndefined();
        // whatever it plans, a session goes only where it came from
        for (const s of [plan.resume, plan.retire]) if (s) expect(s.pin).toBe(b);
        if (plan.resume) expect(age >= 0 && age < HOUR).toBe(true);
      }),
    );
  });

  it('a BMC that dropped its sessions: no session kept until the age has passed', () => {
    const marker = kept({ token: undefined, location: undefined, misses: MAX_MISSES });
    expect(sessionPlan(marker, at())).toEqual({ kept: marker, keep: false });
    expect(sessionPlan(marker, at({ nowMs: NOW + HOUR }))).toEqual({ kept: marker, keep: true });
  });
});

describe('sessionAfterRead', () => {
  const end = (session: { token: string; location: string | undefined; resumed: boolean; refused?: boolean } | undefined, root?: unknown) => ({ user: 'ADMIN', pin: undefined, nowMs: NOW, session, root });

  it('a resumed session stays as it was, its service root and age included', () => {
    const before = kept({ root: { Systems: {} }, misses: 1 });
    expect(sessionAfterRead(sessionPlan(before, at()), end({ token: 't0', location: before.location, resumed: true }))).toEqual({ ...before, misses: 0 });
  });

  it('a resumed session the BMC answered with errors only (a token it no longer honours, whatever the status) is forgotten: the next read logs in', () => {
    const before = kept({ root: { Systems: {} } });
    expect(sessionAfterRead(sessionPlan(before, at()), end({ token: 't0', location: before.location, resumed: true, refused: true }))).toBeUndefined();
    expect(sessionPlan(undefined, at())).toEqual({ keep: true });
  });

  it('a new login is kept with its service root; one that replaced a dropped session counts a miss and keeps no root', () => {
    const root = { Systems: { '@odata.id': '/redfish/v1/Systems' } };
    expect(sessionAfterRead({ keep: true }, end({ token: 't1', location: '/s/2', resumed: false }, root))).toEqual({ user: 'ADMIN', token: 't1', location: '/s/2', since: NOW, misses: 0, root });
    const after = sessionAfterRead(sessionPlan(kept(), at()), end({ token: 't1', location: '/s/2', resumed: false }, { Systems: {} }));
    expect(after).toEqual({ user: 'ADMIN', token: 't1', location: '/s/2', since: NOW, misses: 1 });
    const last = sessionAfterRead(sessionPlan(kept({ misses: MAX_MISSES - 1 }), at()), end({ token: 't2', location: '/s/3', resumed: false }));
    expect(last).toEqual({ user: 'ADMIN', since: NOW, misses: MAX_MISSES });
  });

  it("keeps the layout the read's inventory found; a read without an inventory leaves the kept one, one that found none drops it", () => {
    const withLayout = (layout: InventoryLayout | null | undefined) => ({ ...end({ token: 't0', location: kept().location, resumed: true }), ...(layout === undefined ? {} : { layout }) });
    const other = { ...LAYOUT, system: '/redfish/v1/Systems/2' };
    const before = kept({ layout: LAYOUT });
    expect(sessionAfterRead(sessionPlan(before, at()), withLayout(undefined))?.layout).toEqual(LAYOUT);
    expect(sessionAfterRead(sessionPlan(before, at()), withLayout(other))?.layout).toEqual(other);
    expect(sessionAfterRead(sessionPlan(before, at()), withLayout(null))).not.toHaveProperty('layout');
    // a first login keeps the layout learned with it; one that replaced a dropped session (a BMC reboot) does not:
    // that read went through the old session's layout; a session past its age is not resumed, so its layout is not used
    expect(sessionAfterRead({ keep: true }, { ...end({ token: 't1', location: '/s/2', resumed: false }), layout: LAYOUT })?.layout).toEqual(LAYOUT);
    expect(sessionAfterRead(sessionPlan(before, at()), { ...end({ token: 't1', location: '/s/2', resumed: false }), layout: LAYOUT })).not.toHaveProperty('layout');
    expect(sessionPlan(kept({ layout: LAYOUT, since: NOW - HOUR }), at()).resume).toBeUndefined();
  });

  it('no session at the end (Basic, or refused with no new login), or one too long to be real: nothing kept', () => {
    expect(sessionAfterRead(sessionPlan(kept(), at()), end(undefined))).toBeUndefined();
    expect(sessionAfterRead({ keep: true }, end({ token: 'x'.repeat(MAX_KEPT_TEXT + 1), location: '/s/2', resumed: false }))).toBeUndefined();
    expect(sessionAfterRead({ keep: true }, end({ token: 't1', location: '/'.repeat(MAX_KEPT_TEXT + 1), resumed: false }))).toBeUndefined();
  });

  it('keeps no oversized or non-object service root', () => {
    expect(keptRoot('x')).toBeUndefined();
    expect(keptRoot([1])).toBeUndefined();
    expect(keptRoot({ big: 'x'.repeat(MAX_KEPT_ROOT_BYTES) })).toBeUndefined();
    expect(keptRoot({ Systems: { '@odata.id': '/redfish/v1/Systems' } })).toEqual({ Systems: { '@odata.id': '/redfish/v1/Systems' } });
  });

  it('keeps only what a report read uses of the root: it parses exactly as the whole root does, and stays small', () => {
    const link = fc.oneof(fc.record({ '@odata.id': fc.oneof(fc.constant('/redfish/v1/Systems'), fc.string()) }), fc.jsonValue());
    const maybe = <T>(a: fc.Arbitrary<T>) => fc.option(a, { nil: undefined });
    const root = fc.record(
      {
        RedfishVersion: maybe(fc.oneof(fc.string(), fc.jsonValue())),
        UUID: maybe(fc.uuid()),
        Vendor: maybe(fc.string()),
        Product: maybe(fc.string()),
        Systems: maybe(link),
        Chassis: maybe(link),
        Managers: maybe(link),
        SessionService: maybe(link),
        UpdateService: maybe(link),
        Tasks: maybe(link),
        Links: maybe(fc.oneof(fc.record({ Sessions: link, Oem: fc.jsonValue() }), fc.jsonValue())),
        ProtocolFeaturesSupported: maybe(
          fc.record({ ExpandQuery: maybe(fc.record({ ExpandAll: fc.jsonValue(), NoLinks: fc.oneof(fc.boolean(), fc.jsonValue()), Levels: fc.boolean(), MaxLevels: fc.oneof(fc.integer(), fc.jsonValue()), Links: fc.boolean() })), FilterQuery: fc.boolean() }),
        ),
        Oem: maybe(fc.jsonValue()),
      },
      { requiredKeys: [] },
    );
    fc.assert(
      fc.property(root, (r) => {
        const k = keptRoot(r);
        if (k === undefined) return expect(JSON.stringify(r).length).toBeGreaterThan(MAX_KEPT_ROOT_BYTES);
        expect(parseServiceRoot(k)).toEqual(parseServiceRoot(r));
        expect(k.Oem).toBeUndefined();
      }),
    );
  });
});

describe('validKept', () => {
  it('takes any JSON without throwing, and only entries of the right shape', () => {
    fc.assert(fc.property(fc.jsonValue(), (v) => void validKept(v)));
    expect(validKept(kept())).toBe(true);
    expect(validKept({ ...kept(), since: 1.5 })).toBe(false);
    expect(validKept({ ...kept(), misses: -1 })).toBe(false);
    expect(validKept({ ...kept(), token: 'x'.repeat(5000) })).toBe(false);
    expect(validKept({ ...kept(), root: {} })).toBe(false);
    expect(validKept({ ...kept(), layout: LAYOUT })).toBe(false);
    expect(validKept({ ...kept(), user: '' })).toBe(false);
  });
});

describe('checkedKept (what a report worker sends back)', () => {
  it('keeps a well-formed entry with its root and layout; a bad layout is left out (not the session, open on the BMC); a bad root or field refuses the entry', () => {
    const good = kept({ root: { Vendor: 'x' }, layout: LAYOUT });
    expect(checkedKept(good)).toEqual(good);
    expect(checkedKept(kept({ layout: { ...LAYOUT, uuid: '' } }))).toEqual(kept());
    expect(checkedKept(kept({ layout: { ...LAYOUT, chassis: { path: 'x'.repeat(5000) } } }))).toEqual(kept());
    expect(checkedKept(kept({ root: [] as unknown as Record<string, unknown> }))).toBeUndefined();
    expect(checkedKept({ ...kept(), misses: -1 })).toBeUndefined();
    fc.assert(fc.property(fc.jsonValue(), (layout) => void checkedKept(kept({ layout: layout as unknown as InventoryLayout }))));
  });
});

describe('the session memory and file', () => {
  it('the memory is bounded: the BMCs kept longest ago go first', () => {
    const m = createRedfishSessionMemory({ maxAgeMs: HOUR, maxEntries: 2 });
    m.set('a', kept());
    m.set('b', kept());
    m.set('a', kept({ token: 't9' }));
    m.set('c', kept());
    expect(m.entries().map(([k]) => k)).toEqual(['a', 'c']);
  });

  it('entries made more than twice the max age and a day ago (BMCs no read touched since) are swept out on a change, once per max age', () => {
    let t = NOW;
    const changes: number[] = [];
    const m = createRedfishSessionMemory({ maxAgeMs: HOUR, now: () => t, onChange: () => changes.push(t) });
    m.set('gone', kept({ since: NOW - 1000 }));
    m.set('here', kept({ since: NOW - 1000 }));
    // within the day: kept for the next read, which deletes the old session on the BMC
    t = NOW + 2 * HOUR + 1000;
    m.set('here', kept({ since: t }));
    expect(m.get('gone')).toBeDefined();
    t = NOW + SWEEP_AFTER_MIN_MS + 1000;
    m.set('here', kept({ since: t }));
    expect(m.entries().map(([k]) => k)).toEqual(['here']);
    expect(changes.at(-1)).toBe(t);
    // not swept again within the max age, even when old entries arrive
    m.set('old', kept({ since: NOW - 10 * HOUR }));
    t += HOUR / 2;
    m.set('here', kept({ since: t }));
    expect(m.get('old')).toBeDefined();
    t += HOUR;
    m.set('here', kept({ since: t }));
    expect(m.get('old')).toBeUndefined();
  });

  it('writes tokens, not service roots nor layouts, with mode 0600; a read that changes nothing writes nothing', async () => {
    const file = tempFile();
    const f = openRedfishSessionFile({ file, maxAgeMs: HOUR, writeDelayMs: 0 });
    f.set('10.0.0.1:443', kept({ root: { Vendor: 'x' }, layout: LAYOUT }));
    await f.flush();
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const written = readFileSync(file, 'utf8');
    expect(JSON.parse(written)).toEqual({ version: 1, sessions: { '10.0.0.1:443': kept() } });
    const mtime = statSync(file).mtimeMs;
    f.set('10.0.0.1:443', kept({ root: { Vendor: 'y' } }));
    await f.flush();
    expect(statSync(file).mtimeMs).toBe(mtime);
    await f.close();
  });

  it('loads what is current, drops what is past its age or malformed, and says so in one line', () => {
    const file = tempFile();
    // a token no temporary file name can contain by chance (the log names the file)
    const token = 'kept-token-not-in-any-log';
    writeFileSync(file, JSON.stringify({ version: 1, sessions: { a: kept({ token, since: Date.now() - 1000 }), old: kept({ token, since: Date.now() - 2 * HOUR }), bad: { user: 1 } } }));
    const log = captureLog('info');
    const f = openRedfishSessionFile({ file, maxAgeMs: HOUR, logger: log.logger });
    expect(f.size).toBe(1);
    expect(f.get('a')?.token).toBe(token);
    expect(log.find('Redfish sessions kept from the last run')).toEqual([expect.objectContaining({ sessions: 1, dropped: 2 })]);
    expect(log.text()).not.toContain(token);
  });

  it('a file that is not JSON: one error line, no sessions, and the next change writes a good file', async () => {
    const file = tempFile();
    writeFileSync(file, '{"version":1,"sessions":{"a":');
    const log = captureLog('info');
    const f = openRedfishSessionFile({ file, maxAgeMs: HOUR, logger: log.logger, writeDelayMs: 0 });
    expect(f.size).toBe(0);
    expect(log.find('cannot use the Redfish session file; starting without kept sessions')).toHaveLength(1);
    f.set('b', kept());
    await f.close();
    expect(JSON.parse(readFileSync(file, 'utf8')).sessions.b.token).toBe('t0');
  });
});
