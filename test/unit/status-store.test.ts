/** The status store, its reasons and its table, without a network: a fake clock and hand-made reads. */
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BmcError } from '../../src/errors.js';
import type { Lease } from '../../src/leases/types.js';
import type { BmcReport } from '../../src/outband/types.js';
import { cleanMessage, factsOf, reasonOf } from '../../src/status/reason.js';
import { serialiseDocument } from '../../src/status/serialised.js';
import { createStatusStore } from '../../src/status/store.js';
import { formatSummary, formatTable, MAX_WIDTH, SORT_COLUMNS } from '../../src/status/table.js';
import { PROBLEM_REASONS, STATE_ORDER, type BmcStatus, type StatusDocument } from '../../src/status/types.js';

const lease = (i: number): Lease => ({ ip: `10.0.0.${i}`, mac: `aa:bb:cc:00:00:${i.toString(16).padStart(2, '0')}`, expires: 'never' });
const report = (uuid: string, extra: Partial<BmcReport> = {}): BmcReport => ({
  uuid,
  bmcVersion: '1.0',
  biosVersion: '2.0',
  fru: { product_manufacturer: 'Supermicro', product_part_number: 'X11' },
  powerState: 'ON',
  indicatorLED: 'LED-OFF',
  powerSupplies: [],
  source: 'redfish',
  missing: [],
  ...extra,
});

function setup(graceMs = 60_000, maxVanished = 1024) {
  let t = Date.parse('2026-01-01T00:00:00Z');
  const store = createStatusStore({ partition: 'p', graceMs, secrets: ['s3cret-password'], maxVanished, now: () => t });
  return { store, advance: (ms: number) => (t += ms), now: () => t };
}

describe('status store', () => {
  it('counts consecutive failures from their first time and clears them on success', () => {
    const { store, advance } = setup();
    store.leases([lease(1), lease(2)]);
    expect(store.document().bmcs.map((b) => b.state)).toEqual(['pending', 'pending']);
    store.read(lease(1), { ok: false, error: new BmcError('AUTH_FAILED', 'RAKP 2: wrong password s3cret-password'), durationMs: 12 });
    const firstAt = store.document().bmcs[0]!.failures.since;
    advance(5000);
    store.read(lease(1), { ok: false, error: new BmcError('AUTH_FAILED', 'again'), durationMs: 10 });
    store.read(lease(2), { ok: true, report: report('u2'), vendor: 'Supermicro', durationMs: 30 });
    let doc = store.document();
    expect(doc.bmcs[0]).toMatchObject({ ip: '10.0.0.1', state: 'failing', failures: { consecutive: 2, since: firstAt } });
    expect(doc.bmcs[1]).toMatchObject({ ip: '10.0.0.2', state: 'ok', uuid: 'u2', vendor: 'Supermicro', model: 'X11', power: 'ON', led: 'LED-OFF' });
    expect(JSON.stringify(doc)).not.toContain('s3cret-password');
    store.read(lease(1), { ok: true, report: report('u1'), vendor: 'Supermicro', durationMs: 30 });
    doc = store.document();
    expect(doc.bmcs.find((b) => b.ip === '10.0.0.1')).toMatchObject({ state: 'ok', failures: { consecutive: 0 } });
    expect(doc.bmcs.find((b) => b.ip === '10.0.0.1')!.failures.since).toBeUndefined();
  });

  it("keeps a BMC's words bounded as the report does: a version of a megabyte or with escapes is cut and cleaned", () => {
    const { store } = setup();
    store.leases([lease(1)]);
    store.read(lease(1), { ok: true, report: report('u1', { bmcVersion: 'v'.repeat(1 << 20), biosVersion: '1.0\u001b[2J', fru: { product_part_number: 'p'.repeat(5000) } }), vendor: 'Supermicro', durationMs: 5 });
    const b = store.document().bmcs[0]!;
    expect(b.bmcVersion).toHaveLength(256);
    expect(b.biosVersion).toBe('1.0[2J');
    expect(b.model).toHaveLength(256);
  });

  it('a read over IPMI because Redfish failed is degraded, with the Redfish reason', () => {
    const { store } = setup();
    store.leases([lease(1)]);
    store.read(lease(1), { ok: true, report: report('u1', { source: 'ipmi', redfishProblem: { code: 'AUTH_FAILED', causeCode: 'DEPTH_ZERO_SELF_SIGNED_CERT', message: 'TLS certificate not trusted' } }), vendor: 'Lenovo', durationMs: 5 });
    expect(store.document().bmcs[0]).toMatchObject({ state: 'degraded', lastRead: { outcome: 'degraded', problem: { reason: 'certificate', message: 'Redfish: TLS certificate not trusted' } } });
    expect(store.liveEntries()[0]).toMatchObject({ up: true });
  });

  it('keeps a vanished BMC for the grace period only, and at most maxVanished of them', () => {
    const { store, advance } = setup(60_000, 2);
    store.leases([lease(1), lease(2), lease(3), lease(4)]);
    store.leases([lease(1)]);
    // three vanished, two kept: the bound
    expect(store.document().bmcs.map((b) => b.state)).toEqual(['vanished', 'vanished', 'pending']);
    expect(store.liveEntries()).toHaveLength(1);
    advance(30_000);
    expect(store.document().summary).toMatchObject({ bmcs: 1, vanished: 2 });
    advance(31_000);
    expect(store.document().bmcs).toHaveLength(1);
  });

  it('a lease that comes back is current again', () => {
    const { store } = setup();
    store.leases([lease(1)]);
    store.leases([]);
    expect(store.document().bmcs[0]!.state).toBe('vanished');
    store.leases([lease(1)]);
    expect(store.document().bmcs[0]!.state).toBe('pending');
  });

  it('matches command results and reports to BMCs by machine UUID, counts commands of the last hour', () => {
    const { store, advance } = setup();
    store.leases([lease(1)]);
    store.read(lease(1), { ok: true, report: report('u1'), vendor: 'Dell', durationMs: 5 });
    store.placed([{ uuid: 'u1', bmc: lease(1) }], []);
    store.reported(['u1'], new Date('2026-01-01T00:00:01Z'));
    store.commandResult({ machineId: 'u1', command: 'POWER-OFF', ok: false, error: 'no answer from s3cret-password', code: 'TIMEOUT', durationMs: 60_000, startedAt: '2026-01-01T00:00:02.000Z' });
    store.commandResult({ machineId: 'unknown', command: 'POWER-ON', ok: true, durationMs: 1, startedAt: '2026-01-01T00:00:02.000Z' });
    const b = store.document().bmcs[0]!;
    expect(b.lastReportAt).toBe('2026-01-01T00:00:01.000Z');
    expect(b.lastCommand).toEqual({ name: 'POWER-OFF', at: '2026-01-01T00:00:02.000Z', outcome: 'failed', durationMs: 60_000, code: 'TIMEOUT', message: 'no answer from [redacted]' });
    expect(store.document().summary.commandsLastHour).toBe(2);
    store.firmwareEvent({ machineId: 'u1', phase: 'accepted', ok: true, job: { acceptedAt: '2026-01-01T00:00:03.000Z' } });
    store.firmwareEvent({ machineId: 'u1', phase: 'progress', ok: true, job: { acceptedAt: '2026-01-01T00:00:03.000Z' } });
    store.firmwareEvent({ machineId: 'u1', phase: 'failed', ok: false, code: 'HTTP', error: 'task failed', durationMs: 1234, job: { acceptedAt: '2026-01-01T00:00:03.000Z' } });
    expect(store.document().bmcs[0]!.lastCommand).toEqual({ name: 'UPDATE-FIRMWARE (failed)', at: '2026-01-01T00:00:03.000Z', outcome: 'failed', durationMs: 1234, code: 'HTTP', message: 'task failed' });
    expect(store.document().summary.commandsLastHour).toBe(3);
    advance(3_600_001);
    expect(store.document().summary.commandsLastHour).toBe(0);
  });

  it('a second BMC claiming a machine UUID, read last but left out of the body, is shown left out with the reason; report times and commands land on the BMC whose entry went in', () => {
    const { store } = setup();
    store.leases([lease(1), lease(2), lease(3)]);
    // the known BMC's read ends first, the claimant's last (the order reads end in is any)
    store.read(lease(1), { ok: true, report: report('u1'), vendor: 'Dell', durationMs: 5 });
    store.read(lease(2), { ok: true, report: report('u1', { source: 'ipmi', redfishProblem: { code: 'HTTP', httpStatus: 503, message: 'busy' } }), vendor: 'Dell', durationMs: 5 });
    store.read(lease(3), { ok: true, report: report('u1'), vendor: 'Dell', durationMs: 5 });
    store.placed([{ uuid: 'u1', bmc: lease(1) }], [
      { uuid: 'u1', bmc: lease(2), why: 'conflict', heldBy: '10.0.0.1' },
      { uuid: 'u1', bmc: lease(3), why: 'duplicate', heldBy: '10.0.0.1' },
    ]);
    store.reported(['u1'], new Date('2026-01-01T00:00:01Z'));
    store.consoleViewers(() => new Map([['u1', 2]]));
    store.commandResult({ machineId: 'u1', command: 'POWER-OFF', ok: true, durationMs: 10, startedAt: '2026-01-01T00:00:02.000Z' });
    store.firmwareEvent({ machineId: 'u1', phase: 'accepted', ok: true, job: { acceptedAt: '2026-01-01T00:00:03.000Z' } });
    const row = (i: number) => store.document().bmcs.find((b) => b.ip === `10.0.0.${i}`)!;
    expect(row(1)).toMatchObject({ state: 'ok', lastReportAt: '2026-01-01T00:00:01.000Z', lastCommand: { name: 'UPDATE-FIRMWARE (accepted)' } });
    for (const [i, why] of [[2, 'conflict'], [3, 'duplicate']] as const) {
      expect(row(i)).toMatchObject({ state: 'degraded', uuid: 'u1', lastRead: { outcome: 'degraded', problem: { reason: why, code: 'UUID_CONFLICT', message: expect.stringContaining('left out of the report') } } });
      expect(row(i).lastReportAt).toBeUndefined();
      expect(row(i).lastCommand).toBeUndefined();
      expect(row(i).console).toEqual({ viewers: 0, capture: 'off' }); // the machine's console is the known BMC's row's
    }
    expect(row(1).console.viewers).toBe(2);
    expect(store.document().summary).toMatchObject({ reachable: 3, degraded: 2, byReason: { conflict: 1, duplicate: 1 } });
    expect(store.liveEntries().every((e) => e.up === true)).toBe(true);
    // its next read stays left out until a body takes it (no flicker to ok between read and body)
    store.read(lease(2), { ok: true, report: report('u1'), vendor: 'Dell', durationMs: 5 });
    expect(row(2)).toMatchObject({ state: 'degraded', lastRead: { problem: { reason: 'conflict' } } });
    // the known BMC's lease is gone: the body takes the claimant's entry, which now holds the machine
    store.leases([lease(2), lease(3)]);
    store.placed([{ uuid: 'u1', bmc: lease(2) }], [{ uuid: 'u1', bmc: lease(3), why: 'duplicate', heldBy: '10.0.0.2' }]);
    store.reported(['u1'], new Date('2026-01-01T00:00:04Z'));
    expect(row(2)).toMatchObject({ state: 'ok', lastReportAt: '2026-01-01T00:00:04.000Z' });
    expect(row(2).lastRead!.problem).toBeUndefined();
    expect(row(1).lastReportAt).toBe('2026-01-01T00:00:01.000Z');
  });

  it('a BMC left out while the UUID owners file cannot be read, or its copy that did not parse is kept aside, is degraded owners-unreadable; the message names the file, and the copy', () => {
    const { store } = setup();
    store.leases([lease(1), lease(2)]);
    store.read(lease(1), { ok: true, report: report('u1'), vendor: 'Dell', durationMs: 5 });
    store.read(lease(2), { ok: true, report: report('u2'), vendor: 'Dell', durationMs: 5 });
    store.placed([], [
      { uuid: 'u1', bmc: lease(1), why: 'owners-unreadable', heldBy: '/state/uuid-owners.json' },
      { uuid: 'u2', bmc: lease(2), why: 'owners-unreadable', heldBy: '/state/uuid-owners.json', keptAs: '/state/uuid-owners.json.unreadable-1' },
    ]);
    const problem = (i: number) => store.document().bmcs.find((b) => b.ip === `10.0.0.${i}`)!.lastRead!.problem;
    expect(problem(1)).toEqual({ reason: 'owners-unreadable', code: 'UUID_CONFLICT', message: 'left out of the report: no BMC is known for machine UUID u1 and the UUID owners file /state/uuid-owners.json, which may name one, cannot be read' });
    expect(problem(2)).toEqual({
      reason: 'owners-unreadable',
      code: 'UUID_CONFLICT',
      message: 'left out of the report: no BMC is known for machine UUID u2 and the UUID owners file /state/uuid-owners.json, which may name one, did not parse; it is kept aside as /state/uuid-owners.json.unreadable-1 until it is put back fixed or removed',
    });
    expect(store.document().summary).toMatchObject({ degraded: 2, byReason: { 'owners-unreadable': 2 } });
  });

  it('shows only what the viewer may see, and console viewers per machine', () => {
    const { store } = setup();
    store.leases([lease(1), lease(2)]);
    store.read(lease(1), { ok: true, report: report('u1'), vendor: 'Dell', durationMs: 5 });
    store.consoleViewers(() => new Map([['u1', 3]]));
    const rev = store.revision();
    store.consoleViewers(() => new Map([['u1', 4]]));
    expect(store.revision()).not.toBe(rev);
    const doc = JSON.parse(serialiseDocument(store.document()).view((uuid) => uuid === 'u1').toString()) as StatusDocument;
    expect(doc.bmcs).toHaveLength(1);
    expect(doc.bmcs[0]!.console).toEqual({ viewers: 4, capture: 'off' });
    expect(doc.summary.bmcs).toBe(1);
    // the console capture's state per machine: held, in a gap, off when not captured
    store.consoleCapture(() => new Map([['u1', 'gap']]));
    expect(store.document().bmcs.find((b) => b.uuid === 'u1')!.console.capture).toBe('gap');
    const gapRev = store.revision();
    store.consoleCapture(() => new Map([['u1', 'held']]));
    expect(store.revision()).not.toBe(gapRev);
    expect(store.document().bmcs.find((b) => b.uuid === 'u1')!.console.capture).toBe('held');
  });

  it('a change of any machine\'s capture state or viewers changes the revision by itself, also when the counts stay', () => {
    const { store } = setup();
    store.leases([lease(1), lease(2)]);
    store.read(lease(1), { ok: true, report: report('u1'), vendor: 'Dell', durationMs: 5 });
    store.read(lease(2), { ok: true, report: report('u2'), vendor: 'Dell', durationMs: 5 });
    let capture = new Map<string, 'held' | 'gap' | 'elsewhere'>();
    let viewers = new Map<string, number>();
    store.consoleCapture(() => capture);
    store.consoleViewers(() => viewers);
    // each step alone, with no other update; a capture starts in a gap (not connected yet)
    const steps: Array<[string, Map<string, 'held' | 'gap' | 'elsewhere'>]> = [
      ['off -> gap', new Map([['u1', 'gap']])],
      ['gap -> held', new Map([['u1', 'held']])],
      ['held -> gap', new Map([['u1', 'gap']])],
      ['gap -> off (capture ended)', new Map()],
      ['off -> held', new Map([['u1', 'held']])],
      ['held on another machine', new Map([['u2', 'held']])],
      ['held -> off', new Map()],
      ['off -> elsewhere', new Map([['u1', 'elsewhere']])],
      ['elsewhere -> gap', new Map([['u1', 'gap']])],
      ['gap -> elsewhere', new Map([['u1', 'elsewhere']])],
      ['elsewhere -> off', new Map()],
    ];
    for (const [step, next] of steps) {
      const before = store.revision();
      capture = next;
      expect(store.revision(), step).not.toBe(before);
      expect(store.revision(), `${step}, looked at again`).toBe(store.revision());
      expect(Object.fromEntries(store.document().bmcs.map((b) => [b.uuid, b.console.capture])), step).toEqual({ u1: next.get('u1') ?? 'off', u2: next.get('u2') ?? 'off' });
    }
    viewers = new Map([['u1', 1]]);
    const before = store.revision();
    viewers = new Map([['u2', 1]]); // the viewer went from one machine to the other: the same total
    expect(store.revision()).not.toBe(before);
    // a console session without a viewer (capture, or one closing) changes nothing on the page
    const unseen = store.revision();
    viewers = new Map([['u2', 1], ['u1', 0]]);
    expect(store.revision()).toBe(unseen);
  });
});

describe('status reasons', () => {
  it('come from the typed code, TLS verification codes of the cause making a certificate problem', () => {
    expect(reasonOf(factsOf(new BmcError('AUTH_FAILED', 'x', { httpStatus: 401 })))).toBe('wrong-credentials');
    expect(reasonOf(factsOf(new BmcError('AUTH_FAILED', 'x', { cause: Object.assign(new Error('t'), { code: 'ERR_TLS_CERT_ALTNAME_INVALID' }) })))).toBe('certificate');
    expect(reasonOf(factsOf(new BmcError('TIMEOUT', 'x')))).toBe('no-answer');
    expect(reasonOf(factsOf(new BmcError('NO_SESSION_SLOTS', 'x')))).toBe('sessions-full');
    // a pinned certificate or host key mismatch (bmc trust --reset, or a spoofer): its own reason, not "other"
    expect(reasonOf(factsOf(new BmcError('UNTRUSTED', 'TLS certificate of 10.0.0.1 is not the pinned one')))).toBe('untrusted');
    expect(reasonOf(factsOf(new Error('plain')))).toBe('other');
    expect(reasonOf(factsOf('a string'))).toBe('other');
  });

  it('are the reasons the JSON schema of GET /v1/status names', () => {
    const schema = JSON.parse(readFileSync(new URL('../../docs/status.schema.json', import.meta.url), 'utf8')) as { definitions: { reason: { enum: string[] } } };
    expect(schema.definitions.reason.enum).toEqual([...PROBLEM_REASONS]);
  });

  it('messages never carry a secret nor a control character, and stay within 300 characters', () => {
    fc.assert(
      fc.property(fc.stringMatching(/^[A-Za-z0-9]{3,20}$/), fc.array(fc.string({ maxLength: 200 }), { maxLength: 5 }), (secret, parts) => {
        fc.pre(!'[redacted]'.includes(secret));
        const out = cleanMessage(parts.join(secret), [secret]);
        expect(out.length).toBeLessThanOrEqual(300);
        // eslint-disable-next-line no-control-regex
        expect(out).not.toMatch(/[\u0000-\u001f\u007f]/);
        expect(out).not.toContain(secret);
      }),
    );
    // C1 (U+009B is a CSI in some terminals) and the bidirectional overrides too
    expect(cleanMessage('a\u009bb\u202ec\u2066d', [])).toBe('a b c d');
  });
});

const bmcArb: fc.Arbitrary<BmcStatus> = fc.record({
  ip: fc.ipV4(),
  mac: fc.constant('aa:bb:cc:dd:ee:ff'),
  state: fc.constantFrom(...STATE_ORDER),
  lease: fc.constant({ seenSince: '2026-01-01T00:00:00.000Z', ageSeconds: 1, expires: 'never' }),
  vendor: fc.string({ maxLength: 40 }),
  power: fc.constantFrom('ON' as const, 'OFF' as const, 'UNKNOWN' as const),
  lastRead: fc.record({ at: fc.constant('2026-01-01T00:00:00.000Z'), durationMs: fc.nat(), outcome: fc.constantFrom('ok' as const, 'failed' as const), problem: fc.record({ reason: fc.constantFrom(...PROBLEM_REASONS), code: fc.string(), message: fc.string() }) }),
  failures: fc.record({ consecutive: fc.nat({ max: 1_000_000 }) }),
  console: fc.record({ viewers: fc.nat(), capture: fc.constantFrom('off' as const, 'held' as const, 'gap' as const) }),
});

describe('status table', () => {
  it('fits 120 columns, puts problems first, and colours only when asked', () => {
    fc.assert(
      fc.property(fc.array(bmcArb, { maxLength: 30 }), fc.constantFrom(...SORT_COLUMNS), fc.boolean(), (bmcs, sort, problems) => {
        const doc: StatusDocument = { version: 1, generatedAt: '2026-01-01T00:00:00.000Z', partition: 'p', graceSeconds: 3600, summary: { bmcs: bmcs.length, reachable: 0, failing: 0, degraded: 0, pending: 0, vanished: 0, byReason: Object.fromEntries(PROBLEM_REASONS.map((r) => [r, 100])), commandsLastHour: 0 }, bmcs };
        const text = formatTable(doc, { sort, problems, now: Date.parse('2026-01-01T00:10:00Z') }) + formatSummary(doc);
        for (const line of text.split('\n')) expect(line.length).toBeLessThanOrEqual(MAX_WIDTH);
        expect(text).not.toContain('\x1b[');
        const states = formatTable(doc, { problems, now: 0 }).split('\n').slice(1, -1).map((l) => l.split(/\s+/)[2]!);
        const ranks = states.map((s) => STATE_ORDER.indexOf(s as BmcStatus['state']));
        expect(ranks).toEqual([...ranks].sort((a, b) => a - b));
        if (problems) expect(states.every((s) => ['failing', 'degraded', 'vanished'].includes(s))).toBe(true);
      }),
    );
    const doc: StatusDocument = { version: 1, generatedAt: '', partition: 'p', graceSeconds: 0, summary: { bmcs: 1, reachable: 0, failing: 1, degraded: 0, pending: 0, vanished: 0, byReason: {}, commandsLastHour: 0 }, bmcs: [{ ip: '10.0.0.1', mac: 'aa:bb:cc:dd:ee:ff', state: 'failing', lease: { seenSince: '', ageSeconds: 0, expires: 'never' }, failures: { consecutive: 1 }, console: { viewers: 0, capture: 'off' } }] };
    expect(formatTable(doc, { colour: true })).toContain('\x1b[31mfailing');
  });
});
