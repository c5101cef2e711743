/**
 * The known BMC of each machine UUID survives a restart (report/owners.ts openUuidOwnersFile):
 * after a restart, a device that answers first for another machine's UUID still does not take it.
 * The file is a trust input read at start: anything malformed in it is dropped, never thrown.
 */
import fc from 'fast-check';
import { mkdtempSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { normalizeMac } from '../../src/leases/mac.js';
import type { Lease } from '../../src/leases/types.js';
import { createMetalApiClient } from '../../src/metalapi/client.js';
import { startMetalApiStandIn, type MetalApiStandIn } from '../../src/metalapi/standin.js';
import type { BmcReport, Outband } from '../../src/outband/types.js';
import { runReportCycle, type CycleDeps } from '../../src/report/cycle.js';
import { createReportMetrics, registerStateFileMetrics } from '../../src/report/metrics.js';
import { openUuidOwnersFile, UUID_OWNERS_FILE, type UuidOwners } from '../../src/report/owners.js';
import { captureLog } from '../helpers/log.js';
import { makeUnreadable } from '../helpers/unreadable-file.js';

const UUID = '00000000-0000-4000-8000-000000000001';
const report = (bmcVersion: string): BmcReport => ({ uuid: UUID, bmcVersion, biosVersion: '1', fru: {}, powerState: 'ON', indicatorLED: 'LED-OFF', powerSupplies: [], source: 'redfish', missing: [] });
const lease = (ip: string, mac: string): Lease => ({ ip, mac, expires: 'never' }) as Lease;

let dir: string;
let file: string;
let standin: MetalApiStandIn | undefined;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'uuid-owners-'));
  file = join(dir, UUID_OWNERS_FILE);
});
afterEach(async () => {
  await standin?.close();
  standin = undefined;
  rmSync(dir, { recursive: true, force: true });
});

function cycleDeps(owners: UuidOwners, leases: Lease[], log: ReturnType<typeof captureLog>): CycleDeps {
  // the device at .66 claims the machine of the BMC at .1, and answers at once; the real BMC a little later
  const connect = async (ip: string): Promise<Outband> =>
    ({ address: ip, vendor: 't', info: async () => (ip === '10.0.0.66' ? report('rogue') : await new Promise<BmcReport>((r) => setTimeout(() => r(report('real')), 30))), close: async () => undefined }) as unknown as Outband;
  return {
    partitionId: 'p',
    connect,
    metalApi: createMetalApiClient({ baseUrl: standin!.url, hmacKey: 'k', retries: 0 }),
    concurrency: 4,
    bmcTimeoutMs: 5000,
    logger: log.logger,
    metrics: createReportMetrics(new Registry()),
    owners,
    leaseView: () => leases,
  };
}

describe('the known BMC of a machine UUID, over a restart', () => {
  it('keeps the machine with its known BMC after a restart, although another device answers first for it', async () => {
    standin = await startMetalApiStandIn({ hmacKey: 'k' });
    const log = captureLog();
    const sent = () => standin!.reports.at(-1)!.reports[UUID];
    // before the restart: only the real BMC
    const before = openUuidOwnersFile({ file, logger: log.logger });
    await runReportCycle(cycleDeps(before, [lease('10.0.0.1', 'aa:00:00:00:00:01')], log), [lease('10.0.0.1', 'aa:00:00:00:00:01')]);
    expect(sent()?.BMCIp).toBe('10.0.0.1');
    await before.close();
    expect(statSync(file).mode & 0o777).toBe(0o600);

    // after it: the rogue's read ends first in the restarted daemon's first cycle
    const both = [lease('10.0.0.66', 'aa:00:00:00:00:66'), lease('10.0.0.1', 'aa:00:00:00:00:01')];
    const after = openUuidOwnersFile({ file, logger: log.logger });
    expect(after.get(UUID)).toEqual({ ip: '10.0.0.1', mac: 'aa:00:00:00:00:01' });
    await runReportCycle(cycleDeps(after, both, log), both);
    expect(sent()?.BMCIp).toBe('10.0.0.1');
    expect(log.lines.some((l) => JSON.stringify(l).includes('10.0.0.66'))).toBe(true); // the claim is told
    await after.close();
  });

  it('writes only after a change', async () => {
    let t = 0;
    const owners = openUuidOwnersFile({ file, writeDelayMs: 0, graceMs: 1000, now: () => t });
    owners.set(UUID, { ip: '10.0.0.1' });
    await owners.flush();
    const first = statSync(file).mtimeMs;
    const text = readFileSync(file, 'utf8');
    owners.set(UUID, { ip: '10.0.0.1' }); // the same owner: nothing to write
    await owners.flush();
    expect(statSync(file).mtimeMs).toBe(first);
    owners.prune((ip) => ip !== '10.0.0.1'); // its lease is gone: kept for the grace time
    t += 1000;
    owners.prune((ip) => ip !== '10.0.0.1');
    await owners.flush();
    expect(readFileSync(file, 'utf8')).not.toBe(text);
    expect(JSON.parse(readFileSync(file, 'utf8'))).toEqual({ version: 1, owners: {} });
    await owners.close();
  });

  it('keeps since when a BMC took the UUID: the same BMC keeps it, another one starts it again; over a restart too', async () => {
    let t = Date.UTC(2026, 0, 1);
    const owners = openUuidOwnersFile({ file, now: () => t });
    owners.set(UUID, { ip: '10.0.0.1', mac: 'aa:00:00:00:00:01' });
    t += 60_000;
    owners.set(UUID, { ip: '10.0.0.1', mac: 'aa:00:00:00:00:01' });
    expect(owners.entries()).toEqual([[UUID, { ip: '10.0.0.1', mac: 'aa:00:00:00:00:01', since: '2026-01-01T00:00:00.000Z' }]]);
    await owners.close();
    const again = openUuidOwnersFile({ file, now: () => t });
    expect(again.entries()[0]![1].since).toBe('2026-01-01T00:00:00.000Z');
    again.set(UUID, { ip: '10.0.0.2', mac: 'aa:00:00:00:00:02' });
    expect(again.entries()[0]![1].since).toBe('2026-01-01T00:01:00.000Z');
    expect(again.get(UUID)).toEqual({ ip: '10.0.0.2', mac: 'aa:00:00:00:00:02' });
  });

  it('a cycle without leases (a start before the lease file could be read) forgets no owner; one unleased for the grace time is dropped, one leased again keeps its entry', () => {
    let t = 0;
    const owners = openUuidOwnersFile({ file, graceMs: 3_600_000, now: () => t });
    owners.set(UUID, { ip: '10.0.0.1', mac: 'aa:00:00:00:00:01' });
    owners.set('uuid-2', { ip: '10.0.0.2' });
    owners.prune(() => false); // no leases at all
    t += 3_599_999;
    owners.prune(() => false);
    expect(owners.size).toBe(2);
    owners.prune((ip) => ip === '10.0.0.2'); // .2 leased again: its unleased time starts over
    t += 1;
    owners.prune(() => false);
    expect(owners.get(UUID)).toBeUndefined(); // a grace time without a lease
    expect(owners.get('uuid-2')).toEqual({ ip: '10.0.0.2' });
    t += 3_600_000;
    owners.prune(() => false);
    expect(owners.size).toBe(0);
  });

  it('keeps an owner whose MAC has more than six octets (InfiniBand leases), and drops a malformed one', () => {
    const ib = '80:00:55:04:fe:80:00:00:00:00:00:00:00:02:c9:02:00:23:13:92'; // 20 octets
    writeFileSync(file, JSON.stringify({ version: 1, owners: { a: { ip: '10.0.0.1', mac: ib }, b: { ip: '10.0.0.2', mac: 'aa:bb' }, c: { ip: '10.0.0.3', mac: 'aa:bb:' } } }));
    const owners = openUuidOwnersFile({ file });
    expect(owners.get('a')).toEqual({ ip: '10.0.0.1', mac: ib });
    expect(owners.get('b')).toEqual({ ip: '10.0.0.2', mac: 'aa:bb' });
    expect(owners.get('c')).toBeUndefined();
  });

  it('a file that is not ours, or entries that are not owners, are logged and dropped; the rest is used', () => {
    const log = captureLog();
    writeFileSync(file, 'not json {');
    expect(openUuidOwnersFile({ file, logger: log.logger }).size).toBe(0);
    expect(log.find(/^cannot use the UUID owners file; it is kept aside/)).toHaveLength(1);

    writeFileSync(file, JSON.stringify({ version: 1, owners: { [UUID]: { ip: '10.0.0.1', mac: 'AA:00:00:00:00:01' }, bad: { ip: 'nowhere' }, mac: { ip: '10.0.0.2', mac: 'x' }, ['u'.repeat(65)]: { ip: '10.0.0.3' }, nul: null } }));
    const owners = openUuidOwnersFile({ file, logger: log.logger });
    expect(owners.size).toBe(1);
    expect(owners.get(UUID)).toEqual({ ip: '10.0.0.1', mac: 'AA:00:00:00:00:01' });
    expect(log.lines.at(-1)).toMatchObject({ owners: 1, dropped: 4 });
  });

  it('a file that is not an owners file is kept aside, not written over, at start and when another process wrote it: one line names both paths', async () => {
    const log = captureLog();
    const damaged = '{"version":1,"owners":{"' + UUID + '":{"ip":"10.0.0.1"'; // cut short
    writeFileSync(file, damaged);
    const owners = openUuidOwnersFile({ file, logger: log.logger, writeDelayMs: 0 });
    expect(owners.size).toBe(0);
    const [line] = log.find(/^cannot use the UUID owners file; it is kept aside/);
    expect(line).toMatchObject({ level: 50, file, keptAs: expect.stringMatching(/uuid-owners\.json\.unreadable-\d+$/) });
    expect(readFileSync(line!.keptAs as string, 'utf8')).toBe(damaged);
    owners.set('uuid-2', { ip: '10.0.0.2' });
    await owners.flush();
    expect(JSON.parse(readFileSync(file, 'utf8'))).toEqual({ version: 1, owners: { 'uuid-2': { ip: '10.0.0.2', since: expect.any(String) } } });
    expect(readFileSync(line!.keptAs as string, 'utf8')).toBe(damaged);

    expect(owners.keptAside()).toBe(line!.keptAs);
    // a restart before the operator acted: the copy on disk is still what is kept aside (new UUIDs stay held)
    const restarted = openUuidOwnersFile({ file, logger: log.logger, writeDelayMs: 0 });
    expect(restarted.keptAside()).toBe(line!.keptAs);
    await restarted.close();

    // damaged while the daemon runs: kept aside too, and the owners in memory kept
    rmSync(line!.keptAs as string);
    expect(owners.keptAside()).toBeUndefined();
    writeFileSync(`${file}.new`, 'not json {');
    renameSync(`${file}.new`, file);
    owners.refresh();
    const [again] = log.find(/^cannot use the UUID owners file; it is kept aside/).slice(1);
    expect(again).toMatchObject({ file, keptAs: expect.stringMatching(/\.unreadable-\d+$/) });
    expect(readFileSync(again!.keptAs as string, 'utf8')).toBe('not json {');
    expect(owners.keptAside()).toBe(again!.keptAs);
    expect(owners.get('uuid-2')).toEqual({ ip: '10.0.0.2' });
    await owners.close();
  });

  it('a file the daemon cannot read (root\'s after `sudo bmc owners --reset`) is not written over: changes wait in memory, one line tells it, and once readable the reset holds and the waiting change is written', async () => {
    const log = captureLog();
    const registry = new Registry();
    const daemon = openUuidOwnersFile({ file, logger: log.logger, writeDelayMs: 0 });
    registerStateFileMetrics(registry, { 'uuid-owners.json': daemon });
    daemon.set(UUID, { ip: '10.0.0.1', mac: 'aa:00:00:00:00:01' });
    daemon.set('uuid-2', { ip: '10.0.0.2' });
    await daemon.flush();
    // the operator's reset, as root: a file the daemon's user cannot read
    const cli = openUuidOwnersFile({ file });
    expect(cli.forget(UUID)).toBe(true);
    await cli.close();
    const afterReset = readFileSync(file, 'utf8');
    await makeUnreadable(file);

    daemon.refresh(); // before a cycle's body
    expect(daemon.get(UUID)).toEqual({ ip: '10.0.0.1', mac: 'aa:00:00:00:00:01' }); // memory, as before
    daemon.set('uuid-3', { ip: '10.0.0.3' });
    await daemon.flush();
    daemon.refresh();
    expect(statSync(file).isSocket()).toBe(true); // not renamed over
    expect(daemon.unwritten()).toEqual({ changes: 1, error: `cannot read ${file} (ENXIO); not written over` });
    expect(daemon.unreadable()?.code).toBe('ENXIO');
    expect(await registry.getSingleMetricAsString('metal_bmc_state_file_problem')).toContain('metal_bmc_state_file_problem{file="uuid-owners.json",problem="unreadable"} 1');
    const lines = log.find(/^cannot read the UUID owners file \(ENXIO\); it is not written over until it can be read/);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ level: 50, file, code: 'ENXIO' });

    rmSync(file);
    writeFileSync(file, afterReset);
    daemon.refresh();
    expect(daemon.get(UUID)).toBeUndefined();
    expect(log.find('the UUID owners file can be read again')).toHaveLength(1);
    await daemon.flush();
    expect(Object.keys((JSON.parse(readFileSync(file, 'utf8')) as { owners: object }).owners)).toEqual(['uuid-2', 'uuid-3']);
    expect(daemon.unwritten()).toBeUndefined();
    expect(daemon.unreadable()).toBeUndefined();
    await daemon.close();
  });

  it('a start on a file it cannot read keeps every owner in it: the first write does not replace them', async () => {
    const log = captureLog();
    const before = openUuidOwnersFile({ file });
    before.set(UUID, { ip: '10.0.0.1' });
    await before.close();
    const kept = readFileSync(file, 'utf8');
    await makeUnreadable(file);
    const restarted = openUuidOwnersFile({ file, logger: log.logger, writeDelayMs: 0 });
    expect(log.find(/^cannot read the UUID owners file \(ENXIO\)/)).toHaveLength(1);
    restarted.set('uuid-2', { ip: '10.0.0.2' });
    await restarted.close();
    expect(statSync(file).isSocket()).toBe(true);
    rmSync(file);
    writeFileSync(file, kept);
    expect(openUuidOwnersFile({ file }).get(UUID)).toEqual({ ip: '10.0.0.1' });
  });

  it('while the file cannot be read, a UUID no known BMC holds is given to nobody: its claimants are left out with the reason, and once readable the owner the file names reports it', async () => {
    standin = await startMetalApiStandIn({ hmacKey: 'k' });
    const log = captureLog();
    const real = lease('10.0.0.1', 'aa:00:00:00:00:01');
    const before = openUuidOwnersFile({ file });
    before.set(UUID, { ip: '10.0.0.1', mac: 'aa:00:00:00:00:01' });
    await before.close();
    const kept = readFileSync(file, 'utf8');
    await makeUnreadable(file);
    // a restart on the file it cannot read: the rogue at .66 answers first
    const both = [lease('10.0.0.66', 'aa:00:00:00:00:66'), real];
    const restarted = openUuidOwnersFile({ file, logger: log.logger, writeDelayMs: 0 });
    const leftOut: unknown[] = [];
    const deps = { ...cycleDeps(restarted, both, log), observer: { read: () => undefined, reported: () => undefined, placed: (_: unknown, l: readonly unknown[]) => void leftOut.push(...l) } };
    const posted = standin.reports.length;
    await runReportCycle(deps, both);
    expect(standin.reports.slice(posted).map((r) => Object.keys(r.reports))).not.toContainEqual([UUID]);
    expect(restarted.get(UUID)).toBeUndefined();
    expect(leftOut).toEqual([
      { bmc: { ip: '10.0.0.66', mac: 'aa:00:00:00:00:66' }, uuid: UUID, why: 'owners-unreadable', heldBy: file },
      { bmc: { ip: '10.0.0.1', mac: 'aa:00:00:00:00:01' }, uuid: UUID, why: 'owners-unreadable', heldBy: file },
    ]);
    expect(log.find(/^BMCs report machine UUIDs no known BMC holds while the UUID owners file cannot be read/)).toMatchObject([{ level: 40, file, code: 'ENXIO', leftOut: 2, uuids: [UUID, UUID] }]);
    // readable again: the owner the file names, the rogue still left out
    rmSync(file);
    writeFileSync(file, kept);
    await runReportCycle(deps, both);
    expect(standin.reports.at(-1)!.reports[UUID]?.BMCIp).toBe('10.0.0.1');
    await restarted.close();
    expect((JSON.parse(readFileSync(file, 'utf8')) as { owners: Record<string, object> }).owners[UUID]).toMatchObject({ ip: '10.0.0.1', mac: 'aa:00:00:00:00:01' });
  });

  it('while the copy of a file that did not parse is kept aside, a UUID no known BMC holds is given to nobody; put back fixed, the owner it names reports it; the copy removed, claims go on', async () => {
    standin = await startMetalApiStandIn({ hmacKey: 'k' });
    const log = captureLog();
    const real = lease('10.0.0.1', 'aa:00:00:00:00:01');
    const before = openUuidOwnersFile({ file });
    before.set(UUID, { ip: '10.0.0.1', mac: 'aa:00:00:00:00:01' });
    await before.close();
    const kept = readFileSync(file, 'utf8');
    writeFileSync(file, kept.slice(0, -3)); // a bad edit (or a power loss) while the daemon was stopped
    // a restart: the file is kept aside, and the rogue at .66 answers first with the machine's UUID
    const both = [lease('10.0.0.66', 'aa:00:00:00:00:66'), real];
    const restarted = openUuidOwnersFile({ file, logger: log.logger, writeDelayMs: 0 });
    const registry = new Registry();
    registerStateFileMetrics(registry, { 'uuid-owners.json': restarted });
    const copy = restarted.keptAside()!;
    expect(copy).toMatch(/uuid-owners\.json\.unreadable-\d+$/);
    const leftOut: unknown[] = [];
    const deps = { ...cycleDeps(restarted, both, log), observer: { read: () => undefined, reported: () => undefined, placed: (_: unknown, l: readonly unknown[]) => void leftOut.push(...l) } };
    const posted = standin.reports.length;
    await runReportCycle(deps, both);
    expect(standin.reports.slice(posted).map((r) => Object.keys(r.reports))).not.toContainEqual([UUID]);
    expect(restarted.get(UUID)).toBeUndefined();
    expect(leftOut).toEqual([
      { bmc: { ip: '10.0.0.66', mac: 'aa:00:00:00:00:66' }, uuid: UUID, why: 'owners-unreadable', heldBy: file, keptAs: copy },
      { bmc: { ip: '10.0.0.1', mac: 'aa:00:00:00:00:01' }, uuid: UUID, why: 'owners-unreadable', heldBy: file, keptAs: copy },
    ]);
    expect(log.find(/^BMCs report machine UUIDs no known BMC holds while the UUID owners file that did not parse is kept aside/)).toMatchObject([{ level: 40, file, code: 'KEPT_ASIDE', keptAs: copy, leftOut: 2, uuids: [UUID, UUID] }]);
    expect(await registry.getSingleMetricAsString('metal_bmc_state_file_problem')).toContain('metal_bmc_state_file_problem{file="uuid-owners.json",problem="kept-aside"} 1');

    // put back fixed: the owner it names reports the machine, the rogue is left out as a conflict
    rmSync(copy);
    writeFileSync(file, kept);
    leftOut.length = 0;
    await runReportCycle(deps, both);
    expect(standin.reports.at(-1)!.reports[UUID]?.BMCIp).toBe('10.0.0.1');
    expect(leftOut).toEqual([expect.objectContaining({ bmc: { ip: '10.0.0.66', mac: 'aa:00:00:00:00:66' }, uuid: UUID, why: 'conflict', heldBy: '10.0.0.1' })]);
    expect(await registry.getSingleMetricAsString('metal_bmc_state_file_problem')).toContain('metal_bmc_state_file_problem{file="uuid-owners.json",problem="kept-aside"} 0');
    await restarted.close();

    // the copy removed without putting it back: the loss is accepted, the first claimant takes the UUID
    writeFileSync(file, '{');
    const again = openUuidOwnersFile({ file, logger: log.logger, writeDelayMs: 0 });
    expect(again.newOwnersHeld()).toEqual({ file, code: 'KEPT_ASIDE', keptAs: again.keptAside() });
    rmSync(again.keptAside()!);
    expect(again.newOwnersHeld()).toBeUndefined();
    await runReportCycle(cycleDeps(again, [real], log), [real]);
    expect(standin.reports.at(-1)!.reports[UUID]?.BMCIp).toBe('10.0.0.1');
    expect(again.get(UUID)).toEqual({ ip: '10.0.0.1', mac: 'aa:00:00:00:00:01' });
    await again.close();
  });

  it('an owner recorded while the file could not be read never replaces the one the file names once it can be read', async () => {
    const before = openUuidOwnersFile({ file });
    before.set(UUID, { ip: '10.0.0.1', mac: 'aa:00:00:00:00:01' });
    await before.close();
    const kept = readFileSync(file, 'utf8');
    await makeUnreadable(file);
    const restarted = openUuidOwnersFile({ file, writeDelayMs: 0 });
    restarted.set(UUID, { ip: '10.0.0.66', mac: 'aa:00:00:00:00:66' });
    restarted.set('uuid-2', { ip: '10.0.0.2' });
    await restarted.flush();
    rmSync(file);
    writeFileSync(file, kept);
    restarted.refresh();
    expect(restarted.get(UUID)).toEqual({ ip: '10.0.0.1', mac: 'aa:00:00:00:00:01' });
    await restarted.close();
    const owners = (JSON.parse(readFileSync(file, 'utf8')) as { owners: Record<string, object> }).owners;
    expect(owners[UUID]).toMatchObject({ ip: '10.0.0.1', mac: 'aa:00:00:00:00:01' });
    expect(owners['uuid-2']).toMatchObject({ ip: '10.0.0.2' }); // a UUID the file does not name is taken
  });

  it('property: whatever the file holds, opening it never throws and keeps only well-formed owners', () => {
    const owner = fc.record({ ip: fc.oneof(fc.ipV4(), fc.ipV6(), fc.string()), mac: fc.option(fc.oneof(fc.mixedCase(fc.constantFrom('aa:bb:cc:00:11:22')), fc.string()), { nil: undefined }) }, { requiredKeys: ['ip'] });
    const content = fc.oneof(
      fc.string(),
      fc.jsonValue().map((v) => JSON.stringify(v)),
      fc.record({ version: fc.constantFrom(1, 2, '1'), owners: fc.dictionary(fc.string({ maxLength: 70 }), fc.oneof(owner, fc.jsonValue())) }).map((v) => JSON.stringify(v)),
    );
    fc.assert(
      fc.property(content, (text) => {
        writeFileSync(file, text);
        const owners = openUuidOwnersFile({ file });
        let parsed: { owners?: Record<string, unknown> } | undefined;
        try {
          parsed = JSON.parse(text) as typeof parsed;
        } catch {
          parsed = undefined;
        }
        for (const uuid of Object.keys(parsed?.owners ?? {})) {
          const kept = owners.get(uuid);
          if (kept === undefined) continue;
          expect(uuid.length).toBeGreaterThan(0);
          expect(uuid.length).toBeLessThanOrEqual(64);
          expect(kept.ip).toMatch(/[.:]/);
          if (kept.mac !== undefined) expect(normalizeMac(kept.mac)).toBe(kept.mac.toLowerCase());
        }
      }),
      { numRuns: 200 },
    );
  });
});
