/**
 * Firmware claims across instances (src/bus/firmware-claims.ts) on the in-memory bucket (the same
 * compare-and-set rules as kv.ts on nats-server, test/integration/bus-kv.test.ts); the wall clock
 * is the test's. The path through two command services on a nats-server is in
 * test/integration/commands-firmware-claims.test.ts.
 */
import fc from 'fast-check';
import { describe, expect, it, onTestFinished, vi } from 'vitest';
import { claimKeys, claimLeaseMs, createFirmwareClaims, MAX_CLAIM_HOLD_MS, MAX_SIGHTINGS, parseClaim, type ClaimOutcome, type HeldClaim } from '../../src/bus/firmware-claims.js';
import { isValidKey } from '../../src/bus/kv.js';
import { isBmcError } from '../../src/errors.js';
import { captureLog } from '../helpers/log.js';
import { createMemoryKv } from '../helpers/memory-kv.js';
import { waitFor } from '../helpers/wait.js';

const LEASE = 90_000;

/**
 * Instances over one in-memory bucket. One test clock drives the server's stamps, each instance's
 * view of the server's time and its monotonic clock; `advance` moves them all. `wallAheadMs` runs
 * an instance's wall clock (its `renewedAt`) ahead; `stampsAheadMs` dates the server's stamps
 * ahead of the time the instances measured (JetStream nodes out of step, a clock not measured).
 */
function instances(o: { renewMs?: number } = {}) {
  let clock = 1_000_000;
  const skew = { stampsAheadMs: 0 };
  const store = createMemoryKv('metal-bmc-p-firmware', () => clock + skew.stampsAheadMs);
  const make = (instanceId: string, m: { wallAheadMs?: number; serverTimeUnknown?: boolean } = {}) => {
    const log = captureLog();
    const kv = store.client();
    const claims = createFirmwareClaims({
      kv,
      instanceId,
      logger: log.logger,
      leaseMs: LEASE,
      renewMs: o.renewMs ?? 15_000,
      now: () => clock + (m.wallAheadMs ?? 0),
      serverNow: () => (m.serverTimeUnknown ? undefined : clock),
      monotonicNow: () => clock,
    });
    return { claims, log, kv };
  };
  return { store, make, skew, advance: (ms: number) => void (clock += ms) };
}

const job = (jobId: string, machineKey: string, bmc: string) => ({ jobId, kind: 'bios', machineKey, bmc });
const held = (o: ClaimOutcome): HeldClaim => {
  if (!('held' in o)) throw new Error(`expected the claim, got busy: ${o.busy}`);
  return o.held;
};
const busy = (o: ClaimOutcome): string => {
  if (!('busy' in o)) throw new Error('expected busy, got the claim');
  return o.busy;
};

describe('firmware claims', () => {
  it("refuses a second job for the machine or its BMC on another instance, naming that instance's job; free again once released", async () => {
    const { make, store } = instances();
    const a = make('mgmt-a');
    const b = make('mgmt-b');
    const first = held(await a.claims.claim(job('j1', 'm1', '10.0.0.1:623')));
    expect([...store.entries().keys()].sort()).toEqual(claimKeys({ machineKey: 'm1', bmc: '10.0.0.1:623' }).sort());
    expect(busy(await b.claims.claim(job('j2', 'm1', '10.0.0.1:623')))).toMatch(/^job j1 \(bios\) on instance mgmt-a, renewed 0 s ago$/);
    // another machine key (an event naming only the BMC's address) on the same BMC
    expect(busy(await b.claims.claim(job('j3', '10.0.0.1:623', '10.0.0.1:623')))).toMatch(/job j1 .* on instance mgmt-a/);
    // refused on its BMC after taking its machine key: that key is given back
    expect([...store.entries().values()].filter((e) => !e.deleted)).toHaveLength(2);
    // another machine on another BMC is free
    await held(await b.claims.claim(job('j4', 'm2', '10.0.0.2:623'))).release();
    await first.release();
    expect([...store.entries().values()].every((e) => e.deleted)).toBe(true);
    held(await b.claims.claim(job('j5', 'm1', '10.0.0.1:623')));
  });

  it('takes over a claim not renewed for its lease, with one warning; the old holder, renewing later, says it was taken', async () => {
    const { make, advance } = instances({ renewMs: 20 });
    const a = make('mgmt-a');
    const b = make('mgmt-b');
    const first = held(await a.claims.claim(job('j1', 'm1', '10.0.0.1:623')));
    a.kv.down = true; // mgmt-a cut off from NATS: its renewals fail
    advance(LEASE - 1);
    expect(busy(await b.claims.claim(job('j2', 'm1', '10.0.0.1:623')))).toMatch(/renewed 90 s ago/);
    advance(2);
    const second = held(await b.claims.claim(job('j2', 'm1', '10.0.0.1:623')));
    // the keys named (a field called `key` is redacted by the logger as a secret's name)
    expect(b.log.find('firmware claim of another job not renewed for its lease (its instance stopped during the update?); taken over')).toEqual([
      expect.objectContaining({ job: 'j2', staleJob: 'j1', staleInstance: 'mgmt-a', claimKey: expect.stringMatching(/^(machine|bmc)\./) }),
      expect.objectContaining({ job: 'j2', staleJob: 'j1', staleInstance: 'mgmt-a', claimKey: expect.stringMatching(/^(machine|bmc)\./) }),
    ]);
    a.kv.down = false; // back: its next renewal finds j2's claim
    await waitFor(() => a.log.find('firmware claim taken by another instance while the update runs here (not renewed for its lease); the update goes on').length === 2, 5000, 'the old holder told');
    expect(a.log.find('firmware claim taken by another instance while the update runs here (not renewed for its lease); the update goes on')).toEqual([
      expect.objectContaining({ job: 'j1', claimKey: expect.stringMatching(/^(machine|bmc)\./) }),
      expect.objectContaining({ job: 'j1', claimKey: expect.stringMatching(/^(machine|bmc)\./) }),
    ]);
    // it does not delete what is j2's now
    await first.release();
    expect(busy(await a.claims.claim(job('j3', 'm1', '10.0.0.1:623')))).toMatch(/job j2 \(bios\) on instance mgmt-b/);
    await second.release();
    a.claims.close();
    b.claims.close();
  });

  it("a claim whose update may still flash the BMC outlives its instance by its hold, not by the lease; once its job says so, and at most a day", async () => {
    const HOLD = 15 * 60_000;
    // no renewal in the test's time: the rewrite alone writes the new hold
    const { make, advance, store } = instances({ renewMs: 60_000 });
    const a = make('mgmt-a');
    const b = make('mgmt-b');
    let hold = 0; // the job waits for a power command: nothing sent, the lease alone
    const first = held(await a.claims.claim({ ...job('j1', 'm1', '10.0.0.1:623'), holdMs: () => hold }));
    const keys = [...store.entries().keys()];
    expect(keys.map((k) => parseClaim(store.entries().get(k)!.value)?.holdMs)).toEqual([undefined, undefined]);
    hold = HOLD; // it began to send the BMC its update: told at once, not at the next renewal
    const revisions = keys.map((k) => store.entries().get(k)!.revision);
    // settles once written: the job sends its update only then
    await first.rewrite();
    expect(keys.every((k, i) => store.entries().get(k)!.revision > revisions[i]!)).toBe(true);
    expect(keys.map((k) => parseClaim(store.entries().get(k)!.value)?.holdMs)).toEqual([HOLD, HOLD]);
    // mgmt-a's host is lost: no more renewals
    a.claims.close();
    advance(LEASE + 1);
    expect(busy(await b.claims.claim(job('j2', 'm1', '10.0.0.1:623')))).toMatch(/^job j1 \(bios\) on instance mgmt-a, renewed 90 s ago; its update may still be flashing the BMC, so the claim counts 15 min past its last write even if its instance is gone$/);
    advance(HOLD - LEASE - 2);
    expect(busy(await b.claims.claim(job('j2', 'm1', '10.0.0.1:623')))).toMatch(/job j1/);
    advance(2);
    held(await b.claims.claim(job('j2', 'm1', '10.0.0.1:623')));
    expect(b.log.find('firmware claim of another job not renewed for its lease (its instance stopped during the update?); taken over')).toHaveLength(2);
    b.claims.close();
    // a crafted or mistaken hold counts a day at most; one that is no duration is no claim
    const claim = { instance: 'x', token: 't', job: 'j', kind: 'bios', renewedAt: 1 };
    expect(claimLeaseMs(parseClaim(Buffer.from(JSON.stringify({ ...claim, holdMs: 1e15 }))), LEASE)).toBe(MAX_CLAIM_HOLD_MS);
    expect(claimLeaseMs(parseClaim(Buffer.from(JSON.stringify({ ...claim, holdMs: 1000 }))), LEASE)).toBe(LEASE);
    // a hold that is no duration: the claim held for its lease, not dropped (a later version's other form must not free the machine)
    for (const bad of [-1, 'soon', null]) expect(parseClaim(Buffer.from(JSON.stringify({ ...claim, holdMs: bad })))).toEqual(claim);
  });

  it("a release that cannot reach the bucket is tried again until the claim is deleted; meanwhile this process's next job for the machine is not refused for it", async () => {
    const retried = instances({ renewMs: 20 });
    const a = retried.make('mgmt-a');
    const first = held(await a.claims.claim({ ...job('j1', 'm1', '10.0.0.1:623'), holdMs: () => 15 * 60_000 }));
    a.kv.down = true;
    await first.release();
    expect(a.log.find('cannot delete a firmware claim (NATS away?); tried again every renewal period, meanwhile other instances hold its machine')).toHaveLength(2);
    expect([...retried.store.entries().values()].filter((e) => !e.deleted)).toHaveLength(2);
    a.kv.down = false;
    await waitFor(() => [...retried.store.entries().values()].every((e) => e.deleted), 5000, 'deleted once NATS is back');
    a.claims.close();

    const kept = instances({ renewMs: 60_000 });
    const c = kept.make('mgmt-c');
    const other = kept.make('mgmt-d');
    const before = held(await c.claims.claim({ ...job('j1', 'm1', '10.0.0.1:623'), holdMs: () => 15 * 60_000 }));
    c.kv.down = true;
    await before.release();
    c.kv.down = false;
    // still there for the other instances (its delete not retried yet)
    expect(busy(await other.claims.claim(job('j9', 'm1', '10.0.0.1:623')))).toMatch(/job j1 .* on instance mgmt-c/);
    held(await c.claims.claim(job('j2', 'm1', '10.0.0.1:623')));
    c.claims.close();
    other.claims.close();
  });

  it("times a claim by the server's stamp, not its holder's clock: one from a clock a day ahead, or a crafted renewedAt, turns stale a lease after its last write, at the first look", async () => {
    const { make, advance, store } = instances();
    const a = make('mgmt-a', { wallAheadMs: 86_400_000 });
    const b = make('mgmt-b');
    held(await a.claims.claim(job('j1', 'm1', '10.0.0.1:623')));
    a.kv.down = true; // mgmt-a dies during the update
    // crafted values: renewedAt far ahead, and far back (beyond what a Date holds)
    const crafted = (renewedAt: number) => Buffer.from(JSON.stringify({ instance: 'mgmt-x', token: 't', job: 'jx', kind: 'bios', renewedAt }));
    await b.kv.put(claimKeys({ machineKey: 'm2', bmc: '' })[0]!, crafted(1e300));
    await b.kv.put(claimKeys({ machineKey: 'm3', bmc: '' })[0]!, crafted(-1e300));
    expect(busy(await b.claims.claim(job('j2', 'm1', '10.0.0.1:623')))).toMatch(/^job j1 \(bios\) on instance mgmt-a, renewed 0 s ago$/);
    expect(busy(await b.claims.claim(job('j3', 'm2', '')))).toMatch(/^job jx \(bios\) on instance mgmt-x, renewed 0 s ago$/);
    expect(busy(await b.claims.claim(job('j4', 'm3', '')))).toMatch(/^job jx \(bios\) on instance mgmt-x, renewed 0 s ago$/);
    advance(LEASE + 1);
    // an instance that never saw them before: the server's stamps alone say they are stale
    const c = make('mgmt-c');
    held(await c.claims.claim(job('j2', 'm1', '10.0.0.1:623')));
    held(await c.claims.claim(job('j3', 'm2', '')));
    held(await c.claims.claim(job('j4', 'm3', '')));
    expect(c.log.find('firmware claim of another job not renewed for its lease (its instance stopped during the update?); taken over')).toEqual([
      expect.objectContaining({ staleJob: 'j1', renewedAt: new Date(1_000_000 + 86_400_000).toISOString(), writtenAgoMs: LEASE + 1 }),
      expect.objectContaining({ staleJob: 'j1' }),
      expect.objectContaining({ staleJob: 'jx', renewedAt: '1e+300' }),
      expect.objectContaining({ staleJob: 'jx', renewedAt: '-1e+300' }),
    ]);
    expect([...store.entries().values()].filter((e) => !e.deleted).map((e) => parseClaim(e.value)?.instance)).toEqual(['mgmt-c', 'mgmt-c', 'mgmt-c', 'mgmt-c']);
    c.claims.close();
  });

  it("a claim dated ahead of the server's time as measured here is said to be so, and turns stale once this instance has seen it unchanged for a lease; a live holder's renewals keep it", async () => {
    const { make, advance, skew, store } = instances({ renewMs: 20 });
    skew.stampsAheadMs = 3_600_000; // the node that stamps the bucket's writes an hour ahead
    const a = make('mgmt-a');
    const b = make('mgmt-b');
    held(await a.claims.claim(job('j1', 'm1', '')));
    const [key] = store.entries().keys();
    const datedAhead = (so: string, far: number) => new RegExp(`^job j1 \\(bios\\) on instance mgmt-a, dated ${so} s ahead of the NATS server's clock as measured here \\(clocks out of step\\?\\): free once seen unchanged for 90 s \\(${far} s so far\\)$`);
    expect(busy(await b.claims.claim(job('j2', 'm1', '')))).toMatch(datedAhead('3600', 0));
    // alive: its renewals are new revisions, each seen anew
    const revision = store.entries().get(key!)!.revision;
    advance(LEASE + 1);
    await waitFor(() => store.entries().get(key!)!.revision > revision, 5000, 'a renewal');
    expect(busy(await b.claims.claim(job('j2', 'm1', '')))).toMatch(datedAhead('3600', 0));
    // dead: no write from here on (a renewal under way fails at its call)
    a.kv.down = true;
    expect(busy(await b.claims.claim(job('j2', 'm1', '')))).toMatch(datedAhead('\\d+', 0));
    advance(LEASE - 1);
    expect(busy(await b.claims.claim(job('j2', 'm1', '')))).toMatch(datedAhead('\\d+', 89));
    advance(2);
    held(await b.claims.claim(job('j2', 'm1', '')));
    expect(b.log.find('firmware claim of another job not renewed for its lease (its instance stopped during the update?); taken over')).toEqual([
      expect.objectContaining({ job: 'j2', staleJob: 'j1', unchangedHereMs: LEASE + 1 }),
    ]);
    a.claims.close();
    b.claims.close();
  });

  it("before the server's clock is measured, or for a stamp that is no time, a claim is timed only by this instance's sightings: a live one is not taken at the first look", async () => {
    for (const unknown of ['server time', 'stamp'] as const) {
      const { make, advance, store } = instances();
      const a = make('mgmt-a');
      held(await a.claims.claim(job('j1', 'm1', '')));
      a.kv.down = true; // its holder gone quiet: only the stamp or the sightings can tell
      if (unknown === 'stamp') for (const e of store.entries().values()) e.createdMs = Number.NaN; // a stream timestamp that did not parse
      advance(LEASE + 1); // by the stamp, the claim is a lease old; this host's clock could say so wrongly
      const b = make('mgmt-b', { serverTimeUnknown: unknown === 'server time' });
      const notKnown = /^job j1 \(bios\) on instance mgmt-a, written at a time not known here \(no server stamp, or the NATS server's clock not measured yet\): free once seen unchanged for 90 s \((\d+) s so far\)$/;
      expect(busy(await b.claims.claim(job('j2', 'm1', '')))).toMatch(notKnown);
      advance(LEASE - 1);
      expect(busy(await b.claims.claim(job('j2', 'm1', '')))).toMatch(notKnown);
      advance(2);
      held(await b.claims.claim(job('j2', 'm1', '')));
      a.claims.close();
      b.claims.close();
    }
  });

  it(`remembers at most ${MAX_SIGHTINGS} keys seen held, the oldest forgotten first (its lease timed again from the next look)`, async () => {
    const { make, advance, skew } = instances();
    skew.stampsAheadMs = 3_600_000; // only a sighting here can make these claims stale
    const a = make('mgmt-a');
    const b = make('mgmt-b');
    const machines = Array.from({ length: MAX_SIGHTINGS + 1 }, (_, i) => `m${i}`);
    for (const m of machines) held(await a.claims.claim(job(`j-${m}`, m, '')));
    a.kv.down = true;
    for (const m of machines) busy(await b.claims.claim(job('j2', m, '')));
    advance(LEASE + 1);
    held(await b.claims.claim(job('j2', machines.at(-1)!, '')));
    expect(busy(await b.claims.claim(job('j3', machines[0]!, '')))).toMatch(/^job j-m0 .*: free once seen unchanged for 90 s \(0 s so far\)$/);
    a.claims.close();
    b.claims.close();
  });

  it('renews a held claim, and writes it again when its bucket was made again', async () => {
    const { make, store, advance } = instances({ renewMs: 20 });
    const a = make('mgmt-a');
    const b = make('mgmt-b');
    const h = held(await a.claims.claim(job('j1', 'm1', '')));
    expect(store.entries().size).toBe(1); // no BMC address: the machine key alone
    const [key] = store.entries().keys();
    const revision = store.entries().get(key!)!.revision;
    advance(LEASE * 2);
    await waitFor(() => store.entries().get(key!)!.revision > revision, 5000, 'a renewal');
    expect(parseClaim(store.entries().get(key!)!.value)?.renewedAt).toBeGreaterThanOrEqual(1_000_000 + LEASE * 2);
    expect(busy(await b.claims.claim(job('j2', 'm1', '')))).toMatch(/job j1/);
    store.remake();
    await waitFor(() => store.entries().get(key!)?.deleted === false, 5000, 'the claim written again');
    expect(a.log.find('firmware claim was gone from its bucket (made again?); written again')).not.toHaveLength(0);
    expect(busy(await b.claims.claim(job('j2', 'm1', '')))).toMatch(/job j1/);
    await h.release();
    a.claims.close();
  });

  it('a claim that cannot be checked (NATS down) rejects UNAVAILABLE and leaves nothing behind', async () => {
    const { make, store } = instances();
    const a = make('mgmt-a');
    a.kv.down = true;
    const err = await a.claims.claim(job('j1', 'm1', '10.0.0.1:623')).then(() => undefined, (e: unknown) => e);
    expect(isBmcError(err, 'UNAVAILABLE')).toBe(true);
    expect((err as Error).message).toMatch(/cannot claim the firmware update in the partition's key-value bucket metal-bmc-p-firmware/);
    expect([...store.entries().values()].filter((e) => !e.deleted)).toHaveLength(0);
  });

  it('names a claim of an earlier run of this instance as such', async () => {
    const { make } = instances();
    const before = make('mgmt-a');
    held(await before.claims.claim(job('j1', 'm1', '')));
    const after = make('mgmt-a'); // restarted: another process token
    expect(busy(await after.claims.claim(job('j2', 'm1', '')))).toMatch(/on instance mgmt-a, renewed 0 s ago, an earlier run of this instance: free once not renewed for 90 s/);
  });

  it('parseClaim: any bytes give a claim or undefined, never a throw; a claim it wrote reads back', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2048 }), (bytes) => {
        const v = parseClaim(bytes);
        expect(v === undefined || typeof v.renewedAt === 'number').toBe(true);
      }),
    );
    fc.assert(
      fc.property(fc.record({ instance: fc.string({ maxLength: 64 }), token: fc.string({ maxLength: 16 }), job: fc.string({ maxLength: 64 }), kind: fc.constantFrom('bios', 'bmc'), renewedAt: fc.integer({ min: 0 }), since: fc.date({ noInvalidDate: true }).map((d) => d.toISOString()) }, { requiredKeys: ['instance', 'token', 'job', 'kind', 'renewedAt'] }), (v) => {
        expect(parseClaim(Buffer.from(JSON.stringify(v)))).toEqual(v);
      }),
    );
    expect(parseClaim(Buffer.from('{"instance":"a","token":"t","job":"j","kind":"bios","renewedAt":"soon"}'))).toBeUndefined();
    // an acceptance time that is no short string: not a claim (a crafted value must not reach a refusal's text unbounded)
    expect(parseClaim(Buffer.from(JSON.stringify({ instance: 'a', token: 't', job: 'j', kind: 'bios', renewedAt: 1, since: 'x'.repeat(65) })))).toBeUndefined();
    expect(parseClaim(Buffer.from(JSON.stringify({ instance: 'a', token: 't', job: 'j', kind: 'bios', renewedAt: 1, since: 5 })))).toBeUndefined();
  });

  it('claimKeys: every machine key and address, of any length, gives valid bucket keys, distinct for distinct values', () => {
    fc.assert(
      fc.property(fc.string({ minLength: 1, maxLength: 1000 }), fc.string({ maxLength: 1000 }), (machineKey, bmc) => {
        const keys = claimKeys({ machineKey, bmc });
        expect(keys).toHaveLength(bmc === '' ? 1 : 2);
        for (const k of keys) expect(isValidKey(k)).toBe(true);
        expect(claimKeys({ machineKey: `${machineKey}x`, bmc })[0]).not.toBe(keys[0]);
      }),
    );
  });

  it('a claim under way when the claims close starts no renewal (its keys turn stale as the others do); a claim after the close is refused UNAVAILABLE', async () => {
    const { store } = instances();
    const kv = store.client();
    let open!: () => void;
    const gate = new Promise<void>((resolve) => (open = resolve));
    const gated = { ...kv, bucket: kv.bucket, create: async (key: string, value: Uint8Array) => (await gate, kv.create(key, value)) };
    const claims = createFirmwareClaims({ kv: gated, instanceId: 'mgmt-a', logger: captureLog().logger, leaseMs: LEASE, renewMs: 20 });
    // the renewals' interval on a clock the test moves
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    onTestFinished(() => void vi.useRealTimers());
    const asked = claims.claim(job('j1', 'm1', '10.0.0.1:623'));
    claims.close();
    open();
    const claim = held(await asked);
    const revisions = () => [...store.entries().values()].map((e) => e.revision);
    const written = revisions();
    // a rewrite still writes once (the job about to send waits for it); no renewal follows
    await claim.rewrite();
    const rewritten = revisions();
    expect(rewritten).not.toEqual(written);
    await vi.advanceTimersByTimeAsync(100);
    expect(revisions()).toEqual(rewritten);
    const err = await claims.claim(job('j2', 'm2', '10.0.0.2:623')).then(() => undefined, (e: unknown) => e);
    expect(isBmcError(err, 'UNAVAILABLE')).toBe(true);
    expect([...store.entries().keys()].some((k) => k.includes('m2'))).toBe(false);
  });

  it('a delete that fails is tried again for as long as the longest hold the claim wrote counts, also when its job says less now', async () => {
    const HOLD = 15 * 60_000;
    let clock = 1_000_000;
    const store = createMemoryKv('metal-bmc-p-firmware', () => clock);
    const kv = store.client();
    let failDeletes = false;
    let deletesTried = 0;
    const failing = { ...kv, bucket: kv.bucket, delete: async (key: string, revision?: number) => (deletesTried++, failDeletes ? Promise.reject(new Error('timeout')) : kv.delete(key, revision)) };
    const claims = createFirmwareClaims({ kv: failing, instanceId: 'mgmt-a', logger: captureLog().logger, leaseMs: LEASE, renewMs: 20, now: () => clock, serverNow: () => clock, monotonicNow: () => clock });
    let hold = HOLD; // written with the hold: the job was about to send
    const claim = held(await claims.claim({ ...job('j1', 'm1', '10.0.0.1:623'), holdMs: () => hold }));
    hold = 0; // it did not begin after all (a stop while it waited): nothing sent
    failDeletes = true;
    await claim.release();
    // past the lease, within the hold the keys still carry
    clock += LEASE + 1;
    const tried = deletesTried;
    await waitFor(() => deletesTried > tried, 5000, 'the delete tried again past the lease');
    failDeletes = false;
    await waitFor(() => [...store.entries().values()].every((e) => e.deleted), 5000, 'the keys deleted');
    claims.close();
  });

  it('a failure on its second key (NATS lost in between) gives the first back: UNAVAILABLE, nothing left behind', async () => {
    const { store } = instances();
    const kv = store.client();
    const failing = { ...kv, bucket: kv.bucket, create: async (key: string, value: Uint8Array) => (key.startsWith('bmc.') ? Promise.reject(new Error('timeout')) : kv.create(key, value)) };
    const claims = createFirmwareClaims({ kv: failing, instanceId: 'mgmt-a', logger: captureLog().logger });
    const err = await claims.claim(job('j1', 'm1', '10.0.0.1:623')).then(() => undefined, (e: unknown) => e);
    expect(isBmcError(err, 'UNAVAILABLE')).toBe(true);
    expect([...store.entries().values()].filter((e) => !e.deleted)).toEqual([]);
  });

  it("a failure on its second key leaves the first in place when it was taken back from this job's earlier run (its update may still flash the BMC): still the job's, other instances refused BUSY", async () => {
    const HOLD = 15 * 60_000;
    for (const failure of ['refused', 'answer lost'] as const) {
      const { make, store } = instances({ renewMs: 60_000 });
      const before = make('mgmt-a');
      held(await before.claims.claim({ ...job('j1', 'm1', '10.0.0.1:623'), holdMs: () => HOLD }));
      before.claims.close(); // a restart ends that run mid-flash; its claims stay
      const [machineKey, bmcKey] = claimKeys({ machineKey: 'm1', bmc: '10.0.0.1:623' });
      // the restarted process: taking back the BMC key fails once in transport (a NATS timeout),
      // before the server stored it or after
      const kv = store.client();
      let fail = 1;
      const failing = {
        ...kv,
        bucket: kv.bucket,
        update: async (key: string, value: Uint8Array, revision: number) => {
          if (key !== bmcKey || fail === 0) return kv.update(key, value, revision);
          fail--;
          if (failure === 'answer lost') await kv.update(key, value, revision);
          throw new Error('timeout');
        },
      };
      const log = captureLog();
      const after = createFirmwareClaims({ kv: failing, instanceId: 'mgmt-a', logger: log.logger, leaseMs: LEASE, renewMs: 60_000 });
      const err = await after.claim({ ...job('j1', 'm1', '10.0.0.1:623'), holdMs: () => HOLD }).then(() => undefined, (e: unknown) => e);
      expect(isBmcError(err, 'UNAVAILABLE')).toBe(true);
      expect(fail).toBe(0);
      // both keys still the job's: the machine key as taken back (this process's claim with its hold), the BMC key either way
      const machine = store.entries().get(machineKey!)!;
      expect(machine.deleted).toBe(false);
      expect(parseClaim(machine.value)).toEqual(expect.objectContaining({ instance: 'mgmt-a', job: 'j1', holdMs: HOLD }));
      expect(after.isOwn(parseClaim(machine.value)!)).toBe(true);
      expect(store.entries().get(bmcKey!)!.deleted).toBe(false);
      expect(parseClaim(store.entries().get(bmcKey!)!.value)).toEqual(expect.objectContaining({ instance: 'mgmt-a', job: 'j1' }));
      // another instance is refused the machine (and its BMC)
      const other = make('mgmt-b');
      expect(busy(await other.claims.claim(job('j2', 'm1', '')))).toMatch(/^job j1 \(bios\) on instance mgmt-a, renewed 0 s ago; its update may still be flashing the BMC/);
      expect(busy(await other.claims.claim(job('j3', '10.0.0.1:623', '10.0.0.1:623')))).toMatch(/job j1 \(bios\) on instance mgmt-a/);
      if (failure === 'refused') {
        // a next claim of the job that fails so again (the BMC key still the earlier run's) finds the machine key ours, and keeps it too
        fail = 1;
        const failedAgain = await after.claim({ ...job('j1', 'm1', '10.0.0.1:623'), holdMs: () => HOLD }).then(() => undefined, (e: unknown) => e);
        expect(isBmcError(failedAgain, 'UNAVAILABLE')).toBe(true);
        expect(store.entries().get(machineKey!)!.deleted).toBe(false);
        expect(busy(await other.claims.claim(job('j2', 'm1', '')))).toMatch(/job j1 \(bios\) on instance mgmt-a/);
      }
      // the job's next claim finds what it kept its own, and holds both keys
      const again = held(await after.claim({ ...job('j1', 'm1', '10.0.0.1:623'), holdMs: () => HOLD }));
      await again.release();
      expect([...store.entries().values()].every((e) => e.deleted)).toBe(true);
      after.close();
      other.claims.close();
    }
  });

  it("a claim refused BUSY on its second key gives back the first, also one taken back from this job's earlier run: the job is left to the instance holding its BMC", async () => {
    const { make, store } = instances({ renewMs: 60_000 });
    const before = make('mgmt-a');
    held(await before.claims.claim(job('j1', 'm1', ''))); // the earlier run held the machine key alone
    before.claims.close();
    const b = make('mgmt-b');
    held(await b.claims.claim(job('k1', 'm2', '10.0.0.1:623'))); // another machine key on the same BMC
    const after = make('mgmt-a');
    expect(busy(await after.claims.claim(job('j1', 'm1', '10.0.0.1:623')))).toMatch(/^job k1 \(bios\) on instance mgmt-b/);
    expect(store.entries().get(claimKeys({ machineKey: 'm1', bmc: '' })[0]!)!.deleted).toBe(true);
    b.claims.close();
    after.claims.close();
  });

  it('writes stored although their answers were lost are still ours: a claim is given back, a renewal continues from its revision', async () => {
    const { store } = instances();
    const kv = store.client();
    let lose = 0; // the next `lose` writes are stored, then fail in transport
    const lossy = {
      ...kv,
      bucket: kv.bucket,
      create: async (key: string, value: Uint8Array) => {
        const r = await kv.create(key, value);
        if (lose > 0 && lose--) throw new Error('timeout');
        return r;
      },
      update: async (key: string, value: Uint8Array, revision: number) => {
        const r = await kv.update(key, value, revision);
        if (lose > 0 && lose--) throw new Error('timeout');
        return r;
      },
    };
    const log = captureLog();
    const claims = createFirmwareClaims({ kv: lossy, instanceId: 'mgmt-a', logger: log.logger, renewMs: 20 });
    lose = 1; // the machine key's create
    const err = await claims.claim(job('j1', 'm1', '')).then(() => undefined, (e: unknown) => e);
    expect(isBmcError(err, 'UNAVAILABLE')).toBe(true);
    expect([...store.entries().values()].filter((e) => !e.deleted)).toEqual([]); // deleted although the create "failed"
    const h = held(await claims.claim(job('j2', 'm1', '')));
    const [key] = [...store.entries()].find(([, e]) => !e.deleted)!;
    const start = store.entries().get(key)!.revision;
    lose = 1; // a renewal stored, its answer lost
    await waitFor(() => store.entries().get(key)!.revision >= start + 3, 5000, 'renewals going on after the lost answer');
    expect(log.find(/taken by another instance/)).toEqual([]);
    lose = 1; // a renewal's answer lost just before the release: the release deletes the newer revision
    await waitFor(() => lose === 0, 5000, 'the lost renewal');
    await h.release();
    expect(store.entries().get(key)!.deleted).toBe(true);
    claims.close();
  });
});
