/**
 * Another instance's running firmware updates as this instance sees them
 * (src/bus/firmware-claim-view.ts), on the in-memory bucket (the same watch semantics as kv.ts on
 * nats-server, test/integration/bus-kv.test.ts). The path through a command service on a
 * nats-server (a power command refused, a delete held) is in
 * test/integration/commands-firmware-claims.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { createFirmwareClaimView } from '../../src/bus/firmware-claim-view.js';
import { createFirmwareClaims, type ClaimOutcome, type HeldClaim } from '../../src/bus/firmware-claims.js';
import { captureLog } from '../helpers/log.js';
import { createMemoryKv, watchBehind } from '../helpers/memory-kv.js';
import { waitFor } from '../helpers/wait.js';

const held = (o: ClaimOutcome): HeldClaim => {
  if (!('held' in o)) throw new Error(`expected the claim, got busy: ${o.busy}`);
  return o.held;
};
const job = (jobId: string, machineKey: string, bmc: string) => ({ jobId, kind: 'bios', machineKey, bmc, since: '2026-12-07T01:00:00.000Z' });

/** one bucket; `clock` is the server's (the entries' stamps) and, unless told otherwise, the view's measure of it */
function bucket() {
  const t = { clock: 5_000_000 };
  const store = createMemoryKv('metal-bmc-p-firmware', () => t.clock);
  const claimsOf = (instanceId: string, o: { leaseMs?: number; renewMs?: number } = {}) => createFirmwareClaims({ kv: store.client(), instanceId, logger: captureLog().logger, ...o });
  return { t, store, claimsOf };
}

describe('firmware claim view', () => {
  it("shows another instance's claim on a machine or its BMC from the bucket as it was at start and as it changes; not this process's own; a release ends it", async () => {
    const { store, claimsOf } = bucket();
    const other = claimsOf('mgmt-a');
    const mine = claimsOf('mgmt-b');
    const first = held(await other.claim(job('job-1', 'm-1', '10.0.0.1:623')));
    const log = captureLog();
    const view = createFirmwareClaimView({ kv: store.client(), isOwn: mine.isOwn, logger: log.logger });
    await view.start();
    // known at start: by machine key, and by the BMC under any machine key
    expect(view.heldElsewhere({ machineKey: 'm-1', bmc: '' })).toMatchObject({ on: 'machine', claim: { instance: 'mgmt-a', job: 'job-1', kind: 'bios', since: '2026-12-07T01:00:00.000Z' } });
    expect(view.heldElsewhere({ machineKey: 'bmc:10.0.0.1:623', bmc: '10.0.0.1:623' })).toMatchObject({ on: 'bmc', claim: { job: 'job-1' } });
    expect(view.heldElsewhere({ machineKey: 'm-2', bmc: '10.0.0.2:623' })).toBeUndefined();

    // a claim written after the start, and this process's own (its jobs are known here already)
    held(await other.claim(job('job-2', 'm-2', '10.0.0.2:623')));
    held(await mine.claim(job('job-3', 'm-3', '10.0.0.3:623')));
    await waitFor(() => view.heldElsewhere({ machineKey: 'm-2', bmc: '' }) !== undefined, 5000, 'the new claim seen');
    expect(view.heldElsewhere({ machineKey: 'm-3', bmc: '10.0.0.3:623' })).toBeUndefined();

    const ended = view.heldElsewhere({ machineKey: 'm-1', bmc: '' })!.ended;
    await first.release();
    await ended;
    expect(view.heldElsewhere({ machineKey: 'm-1', bmc: '10.0.0.1:623' })).toBeUndefined();
    view.close();
    other.close();
    mine.close();
  });

  it("a claim the server stored longer than a lease ago does not count at the first sighting; without the server's time measured it counts until a lease passes here", async () => {
    const { t, store, claimsOf } = bucket();
    held(await claimsOf('mgmt-a').claim(job('job-old', 'm-1', '10.0.0.1:623')));
    t.clock += 91_000;
    const measured = createFirmwareClaimView({ kv: store.client(), isOwn: () => false, logger: captureLog().logger, serverNow: () => t.clock });
    const unmeasured = createFirmwareClaimView({ kv: store.client(), isOwn: () => false, logger: captureLog().logger, serverNow: () => undefined });
    await Promise.all([measured.start(), unmeasured.start()]);
    expect(measured.heldElsewhere({ machineKey: 'm-1', bmc: '' })).toBeUndefined();
    expect(unmeasured.heldElsewhere({ machineKey: 'm-1', bmc: '' })).toMatchObject({ claim: { job: 'job-old' } });
    measured.close();
    unmeasured.close();
  });

  it("a claim whose update may still flash the BMC counts for its hold after its last write, not only its lease (its instance gone mid-update)", async () => {
    const { t, store, claimsOf } = bucket();
    const holder = claimsOf('mgmt-a');
    held(await holder.claim({ ...job('job-flash', 'm-1', '10.0.0.1:623'), holdMs: () => 15 * 60_000 }));
    held(await holder.claim(job('job-waits', 'm-2', '10.0.0.2:623'))); // sent nothing yet: the lease alone
    holder.close(); // its host lost: no more renewals
    const viewAt = async (ago: number) => {
      const clock = t.clock + ago;
      const view = createFirmwareClaimView({ kv: store.client(), isOwn: () => false, logger: captureLog().logger, serverNow: () => clock });
      await view.start();
      const seen = [view.heldElsewhere({ machineKey: 'm-1', bmc: '' })?.claim.job, view.heldElsewhere({ machineKey: 'm-2', bmc: '' })?.claim.job];
      view.close();
      return seen;
    };
    expect(await viewAt(91_000)).toEqual(['job-flash', undefined]);
    expect(await viewAt(15 * 60_000 - 1000)).toEqual(['job-flash', undefined]);
    expect(await viewAt(15 * 60_000 + 1000)).toEqual([undefined, undefined]);
  });

  it("caughtUp: a claim acknowledged to another instance but not delivered here yet is known once caughtUp resolves true; false when the watch does not deliver within the bound, or the bucket cannot be asked", async () => {
    const { store, claimsOf } = bucket();
    const client = store.client();
    /** the watch's deliveries wait while `gate` is closed (a watch a few milliseconds behind the bucket) */
    let gate: Promise<void> = Promise.resolve();
    let open = () => undefined as void;
    const behind = watchBehind(client, () => gate);
    const view = createFirmwareClaimView({ kv: behind, isOwn: () => false, logger: captureLog().logger });
    await view.start();
    expect(await view.caughtUp(1000)).toBe(true); // an empty bucket
    gate = new Promise<void>((resolve) => (open = resolve));
    const other = claimsOf('mgmt-a');
    held(await other.claim(job('job-1', 'm-1', '10.0.0.1:623')));
    expect(view.heldElsewhere({ machineKey: 'm-1', bmc: '' })).toBeUndefined();
    let settled: boolean | undefined;
    const asked = view.caughtUp(5000).then((ok) => (settled = ok));
    await Promise.resolve();
    expect(settled).toBeUndefined();
    open();
    expect(await asked).toBe(true);
    expect(view.heldElsewhere({ machineKey: 'm-1', bmc: '' })).toMatchObject({ claim: { job: 'job-1', instance: 'mgmt-a' } });
    // a watch that stays behind: false at the bound, the view as it is
    gate = new Promise<void>((resolve) => (open = resolve));
    held(await other.claim(job('job-2', 'm-2', '10.0.0.2:623')));
    expect(await view.caughtUp(30)).toBe(false);
    expect(view.heldElsewhere({ machineKey: 'm-2', bmc: '' })).toBeUndefined();
    open();
    client.down = true; // NATS away: the bucket's last write cannot be asked
    expect(await view.caughtUp(1000)).toBe(false);
    client.down = false;
    // a question the bucket does not answer is bounded too
    const asked2 = behind.lastRevision;
    behind.lastRevision = () => new Promise<number>(() => undefined);
    expect(await view.caughtUp(30)).toBe(false);
    behind.lastRevision = asked2;
    // the bucket made again (its revisions from 1, below what was seen): watched anew, its claim known
    store.remake();
    held(await other.claim(job('job-3', 'm-3', '10.0.0.3:623')));
    expect(await view.caughtUp(5000)).toBe(true);
    expect(view.heldElsewhere({ machineKey: 'm-3', bmc: '' })).toMatchObject({ claim: { job: 'job-3' } });
    view.close();
    other.close();
  });

  it('a claim its holder keeps renewing stays held past its lease; once the renewals stop it ends a lease later, said once', async () => {
    const { store, claimsOf } = bucket();
    const holder = claimsOf('mgmt-a', { leaseMs: 400, renewMs: 50 });
    held(await holder.claim(job('job-1', 'm-1', '')));
    const log = captureLog();
    const view = createFirmwareClaimView({ kv: store.client(), isOwn: () => false, logger: log.logger, leaseMs: 400 });
    await view.start();
    const sighting = view.heldElsewhere({ machineKey: 'm-1', bmc: '' })!;
    let over = false;
    void sighting.ended.then(() => (over = true));
    // renewals over two leases' worth of writes
    const writes = store.writes();
    await waitFor(() => store.writes() >= writes + 16, 5000, 'sixteen renewals (800 ms of them)');
    expect(over).toBe(false);
    expect(view.heldElsewhere({ machineKey: 'm-1', bmc: '' })).toBeDefined();
    holder.close();
    await sighting.ended;
    expect(view.heldElsewhere({ machineKey: 'm-1', bmc: '' })).toBeUndefined();
    expect(log.find(/^another instance's firmware claim was not renewed for its lease/)).toMatchObject([{ firmwareJob: 'job-1', instance: 'mgmt-a' }]);
    view.close();
  });

  it('a key that another job takes over (the first one stale) ends the wait for the first and shows the second', async () => {
    const { t, store } = bucket();
    const a = createFirmwareClaims({ kv: store.client(), instanceId: 'mgmt-a', logger: captureLog().logger, serverNow: () => t.clock });
    const c = createFirmwareClaims({ kv: store.client(), instanceId: 'mgmt-c', logger: captureLog().logger, serverNow: () => t.clock });
    held(await a.claim(job('job-a', 'm-1', '')));
    const view = createFirmwareClaimView({ kv: store.client(), isOwn: () => false, logger: captureLog().logger });
    await view.start();
    const first = view.heldElsewhere({ machineKey: 'm-1', bmc: '' })!;
    a.close();
    t.clock += 91_000;
    held(await c.claim(job('job-c', 'm-1', '')));
    await first.ended;
    expect(view.heldElsewhere({ machineKey: 'm-1', bmc: '' })).toMatchObject({ claim: { instance: 'mgmt-c', job: 'job-c' } });
    view.close();
    c.close();
  });

  it("a watch that does not deliver the bucket's keys fails the start (UNAVAILABLE), so no event is taken before running updates are known", async () => {
    const { store, claimsOf } = bucket();
    const other = claimsOf('mgmt-a');
    held(await other.claim(job('job-1', 'm-1', '')));
    // a watch whose deliveries wait until the test lets them go
    const inner = store.client();
    let letGo!: () => void;
    const gate = new Promise<void>((resolve) => (letGo = resolve));
    const kv = watchBehind(inner, () => gate);
    const view = createFirmwareClaimView({ kv, isOwn: () => false, logger: captureLog().logger, readyWithinMs: 100 });
    await expect(view.start()).rejects.toMatchObject({ code: 'UNAVAILABLE', message: expect.stringMatching(/^the firmware claims' key-value bucket metal-bmc-p-firmware was not delivered within 100 ms/) });
    view.close();
    letGo();
    other.close();
  });

  it("a watch that stalls (NATS away here) does not take a claim its holder keeps renewing for stale: its lease's end is read from the bucket first", async () => {
    const { store, claimsOf } = bucket();
    const holder = claimsOf('mgmt-a', { leaseMs: 300, renewMs: 50 });
    held(await holder.claim(job('job-1', 'm-1', '')));
    const kv = store.client();
    const log = captureLog();
    const view = createFirmwareClaimView({ kv, isOwn: () => false, logger: log.logger, leaseMs: 300, recheckMs: 50 });
    await view.start();
    kv.watchStalled = true;
    const sighting = view.heldElsewhere({ machineKey: 'm-1', bmc: '' })!;
    let over = false;
    void sighting.ended.then(() => (over = true));
    // renewals over three leases, none delivered to the view
    const writes = store.writes();
    await waitFor(() => store.writes() >= writes + 18, 5000, 'eighteen renewals (900 ms of them)');
    expect(over).toBe(false);
    // the bucket cannot be read either: held on, said
    kv.down = true;
    await waitFor(() => log.find(/^cannot read another instance's firmware claim at the end of its lease/).length > 0, 5000, 'a read that failed');
    expect(over).toBe(false);
    kv.down = false;
    // the holder stopped: the next read finds the same revision a lease later
    holder.close();
    await sighting.ended;
    expect(log.find(/^another instance's firmware claim was not renewed for its lease/)).toHaveLength(1);
    view.close();
  });

  it('the same revision delivered again (a watch started again) is no renewal: a dead holder\'s claim ends a lease after its last write however often the watch starts', async () => {
    const { store, claimsOf } = bucket();
    const holder = claimsOf('mgmt-a');
    held(await holder.claim(job('job-1', 'm-1', '')));
    holder.close(); // no renewals from here
    const view = createFirmwareClaimView({ kv: store.client(), isOwn: () => false, logger: captureLog().logger, leaseMs: 400 });
    await view.start();
    const sighting = view.heldElsewhere({ machineKey: 'm-1', bmc: '' })!;
    let over = false;
    void sighting.ended.then(() => (over = true));
    await waitFor(() => {
      if (!over) view.restart();
      return over;
    }, 5000, 'the claim stale despite the watch started again every 20 ms');
    view.close();
  });

  it('a bucket made again (its revisions start over) is watched anew: a claim written there is seen, one renewed there stays held', async () => {
    const { store, claimsOf } = bucket();
    const holder = claimsOf('mgmt-a', { leaseMs: 60_000, renewMs: 50 });
    held(await holder.claim(job('job-1', 'm-1', '')));
    const other = claimsOf('mgmt-c');
    // many revisions before the remake, so the new bucket's numbers stay below the watch's place a while
    for (let i = 0; i < 40; i++) await store.client().put(`noise.${i}`, new TextEncoder().encode('x'));
    const log = captureLog();
    const view = createFirmwareClaimView({ kv: store.client(), isOwn: () => false, logger: log.logger, recheckMs: 50 });
    await view.start();
    store.remake();
    await waitFor(() => log.find(/^the firmware claims' key-value bucket was made again/).length > 0, 5000, 'the remake found');
    held(await other.claim(job('job-2', 'm-2', '')));
    await waitFor(() => view.heldElsewhere({ machineKey: 'm-2', bmc: '' }) !== undefined, 5000, 'the new bucket\'s claim seen');
    expect(view.heldElsewhere({ machineKey: 'm-1', bmc: '' })).toMatchObject({ claim: { job: 'job-1' } });
    view.close();
    holder.close();
    other.close();
  });

  it('keeps at most maxKeys keys, forgetting the one seen longest ago with a warning', async () => {
    const { store, claimsOf } = bucket();
    const other = claimsOf('mgmt-a');
    for (let i = 0; i < 3; i++) held(await other.claim(job(`job-${i}`, `m-${i}`, '')));
    const log = captureLog();
    const view = createFirmwareClaimView({ kv: store.client(), isOwn: () => false, logger: log.logger, maxKeys: 2 });
    await view.start();
    expect([0, 1, 2].map((i) => view.heldElsewhere({ machineKey: `m-${i}`, bmc: '' })?.claim.job)).toEqual([undefined, 'job-1', 'job-2']);
    expect(log.find(/^firmware claims bucket holds more keys than expected/)).toHaveLength(1);
    view.close();
    other.close();
  });
});
