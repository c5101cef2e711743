/**
 * A second BMC that reports a machine UUID a known BMC holds is not taken: logged, counted, and
 * left out of the report while the known BMC has its lease; when that lease is gone the newcomer
 * takes over. metal-api is the stand-in (it validates every body against the swagger).
 */
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import type { Lease } from '../../src/leases/types.js';
import { createMetalApiClient } from '../../src/metalapi/client.js';
import { startMetalApiStandIn, type MetalApiStandIn } from '../../src/metalapi/standin.js';
import type { BmcReport, Outband } from '../../src/outband/types.js';
import { runReportCycle, type CycleDeps } from '../../src/report/cycle.js';
import { createReportMetrics } from '../../src/report/metrics.js';
import { createUuidOwners } from '../../src/report/owners.js';
import { createStatusStore } from '../../src/status/store.js';
import { captureLog } from '../helpers/log.js';

const UUID = '00000000-0000-4000-8000-000000000001';
const report = (bmcVersion: string): BmcReport => ({ uuid: UUID, bmcVersion, biosVersion: '1', fru: {}, powerState: 'ON', indicatorLED: 'LED-OFF', powerSupplies: [], source: 'redfish', missing: [] });
const lease = (ip: string, mac: string): Lease => ({ ip, mac, expires: 'never' }) as Lease;
const SECOND_BMC = 'a second BMC reports a machine UUID that a known BMC with a lease holds; the known one is kept, the second is left out';
const AT_OLD_ADDRESS = 'a device at the address a known BMC had reports its machine UUID while that BMC, by its MAC, holds a lease at another address; the known one is kept, the device is left out';

let standin: MetalApiStandIn | undefined;
afterEach(async () => {
  await standin?.close();
  standin = undefined;
});

/** A cycle's dependencies with a UUID owner memory, the lease view `current` tells which addresses are leased, to which MAC. */
function ownedCycle(connect: CycleDeps['connect'], log: ReturnType<typeof captureLog>, registry: Registry, current: () => Lease[]): CycleDeps {
  return {
    partitionId: 'p',
    connect,
    metalApi: createMetalApiClient({ baseUrl: standin!.url, hmacKey: 'k', retries: 0 }),
    concurrency: 2,
    bmcTimeoutMs: 5000,
    logger: log.logger,
    metrics: createReportMetrics(registry),
    owners: createUuidOwners(),
    leaseView: current,
  };
}

describe('a machine UUID claimed by a second BMC', () => {
  it('keeps the known BMC while its lease lasts, counts and logs the claim, and lets the newcomer in once the lease is gone', async () => {
    standin = await startMetalApiStandIn({ hmacKey: 'k' });
    const registry = new Registry();
    const log = captureLog();
    // the real BMC answers as "real", the device at .66 claims the same machine
    const connect = async (ip: string): Promise<Outband> => ({ address: ip, vendor: 't', info: async () => report(ip === '10.0.0.66' ? 'rogue' : 'real'), close: async () => undefined }) as unknown as Outband;
    let leases = [lease('10.0.0.1', 'aa:00:00:00:00:01')];
    const deps = ownedCycle(connect, log, registry, () => leases);
    const sent = () => standin!.reports.at(-1)!.reports[UUID];

    await runReportCycle(deps, leases);
    expect(sent()?.BMCIp).toBe('10.0.0.1');

    // the rogue's lease comes first in this cycle's order: it still does not take the machine
    leases = [lease('10.0.0.66', 'aa:00:00:00:00:66'), lease('10.0.0.1', 'aa:00:00:00:00:01')];
    await runReportCycle(deps, leases);
    expect(sent()?.BMCIp).toBe('10.0.0.1');
    expect(sent()?.BMCVersion).toBe('real');
    // a quick cycle with only the newcomer (a lease change): nothing reported for the machine
    const posts = standin.reports.length;
    const quick = await runReportCycle(deps, [lease('10.0.0.66', 'aa:00:00:00:00:66')]);
    expect(quick.reported).toBe(0);
    expect(standin.reports.length).toBe(posts);
    expect(log.find(SECOND_BMC)).toHaveLength(2);
    expect(await registry.getSingleMetricAsString('metal_bmc_uuid_conflicts_total')).toMatch(/ 2$/m);

    // the known BMC's lease is gone (replaced board): the newcomer takes over, logged
    leases = [lease('10.0.0.66', 'aa:00:00:00:00:66')];
    await runReportCycle(deps, leases);
    expect(sent()?.BMCIp).toBe('10.0.0.66');
    expect(log.find('machine UUID moves to another BMC: the lease of the known one is gone')).toHaveLength(1);
  });

  it('BMCs whose addresses DHCP swapped or reassigned report their own machines again; what a BMC reports never moves a UUID while its address is leased to the same MAC', async () => {
    standin = await startMetalApiStandIn({ hmacKey: 'k' });
    const registry = new Registry();
    const log = captureLog();
    const A = '00000000-0000-4000-8000-00000000000a';
    const B = '00000000-0000-4000-8000-00000000000b';
    const C = '00000000-0000-4000-8000-00000000000c';
    const ROGUE = 'aa:00:00:00:00:66';
    // each BMC (by MAC) reports its own machine; the rogue claims A
    let claims: Record<string, string> = { 'aa:00:00:00:00:0a': A, 'aa:00:00:00:00:0b': B, 'aa:00:00:00:00:0c': C, [ROGUE]: A };
    let leases: Lease[] = [];
    const macOf = (ip: string) => leases.find((l) => l.ip === ip)!.mac!;
    const connect = async (ip: string): Promise<Outband> =>
      ({
        address: ip,
        vendor: 't',
        info: async () => {
          const uuid = claims[macOf(ip)];
          if (uuid === undefined) throw new Error('no answer');
          return { ...report(ip), uuid };
        },
        close: async () => undefined,
      }) as unknown as Outband;
    const deps = ownedCycle(connect, log, registry, () => leases);
    const bmcOf = (uuid: string) => standin!.reports.at(-1)!.reports[uuid]?.BMCIp;

    leases = [lease('10.0.0.1', 'aa:00:00:00:00:0a'), lease('10.0.0.2', 'aa:00:00:00:00:0b')];
    await runReportCycle(deps, leases);
    expect([bmcOf(A), bmcOf(B)]).toEqual(['10.0.0.1', '10.0.0.2']);
    // DHCP swapped the two addresses: each BMC, with its MAC, is at the other one
    leases = [lease('10.0.0.1', 'aa:00:00:00:00:0b'), lease('10.0.0.2', 'aa:00:00:00:00:0a')];
    await runReportCycle(deps, leases);
    expect([bmcOf(A), bmcOf(B)]).toEqual(['10.0.0.2', '10.0.0.1']);
    expect(log.find("machine UUID moves to another BMC: the known one's address is leased to another MAC now (addresses swapped or reassigned)")).toHaveLength(2);
    // A's BMC at a new address while its old one went to machine C's BMC: A follows, C is reported
    leases = [lease('10.0.0.1', 'aa:00:00:00:00:0b'), lease('10.0.0.2', 'aa:00:00:00:00:0c'), lease('10.0.0.3', 'aa:00:00:00:00:0a')];
    await runReportCycle(deps, leases);
    expect([bmcOf(A), bmcOf(B), bmcOf(C)]).toEqual(['10.0.0.3', '10.0.0.1', '10.0.0.2']);
    // a device claims A while A's BMC keeps its lease: not taken, even in a cycle where A's BMC reports something odd or nothing
    leases = [...leases, lease('10.0.0.66', ROGUE)];
    for (const odd of [undefined, C, A]) {
      claims = { ...claims, 'aa:00:00:00:00:0a': odd as string };
      await runReportCycle(deps, leases);
      expect(bmcOf(A) ?? '10.0.0.3').toBe('10.0.0.3');
    }
    // one claim per cycle by the device, one more when A's BMC reports C, which C's BMC holds
    expect(await registry.getSingleMetricAsString('metal_bmc_uuid_conflicts_total')).toMatch(/ 4$/m);
  });

  it("a device given a BMC's old address does not take the machine while the BMC, by its MAC, holds a lease elsewhere; it does once that MAC has none", async () => {
    standin = await startMetalApiStandIn({ hmacKey: 'k' });
    const registry = new Registry();
    const log = captureLog();
    const REAL = 'aa:00:00:00:00:01';
    const ROGUE = 'aa:00:00:00:00:66';
    let leases: Lease[] = [];
    // both answer with the machine's UUID; the version tells which one metal-api got
    const connect = async (ip: string): Promise<Outband> =>
      ({ address: ip, vendor: 't', info: async () => report(leases.find((l) => l.ip === ip)!.mac === REAL ? 'real' : 'rogue'), close: async () => undefined }) as unknown as Outband;
    const deps = ownedCycle(connect, log, registry, () => leases);
    const sent = () => standin!.reports.at(-1)!.reports[UUID];

    leases = [lease('10.0.0.1', REAL)];
    await runReportCycle(deps, leases);
    expect(sent()).toMatchObject({ BMCIp: '10.0.0.1', BMCVersion: 'real' });
    // the BMC moved to .2, the device got .1 and is read first (lease order)
    leases = [lease('10.0.0.1', ROGUE), lease('10.0.0.2', REAL)];
    await runReportCycle(deps, leases);
    expect(sent()).toMatchObject({ BMCIp: '10.0.0.2', BMCVersion: 'real' });
    expect(log.find(AT_OLD_ADDRESS)).toEqual([expect.objectContaining({ uuid: UUID, knownMac: REAL, claimant: '10.0.0.1', mac: ROGUE })]);
    await runReportCycle(deps, leases);
    expect(sent()).toMatchObject({ BMCIp: '10.0.0.2', BMCVersion: 'real' });
    // the BMC's MAC holds no lease any more (a replaced board): the one at its old address may take over
    const moved = log.find('machine UUID moves to another BMC: the lease of the known one is gone').length;
    leases = [lease('10.0.0.2', ROGUE)];
    await runReportCycle(deps, leases);
    expect(sent()).toMatchObject({ BMCIp: '10.0.0.2', BMCVersion: 'rogue' });
    expect(log.find('machine UUID moves to another BMC: the lease of the known one is gone')).toHaveLength(moved + 1);
  });

  it("the status of a device at a BMC's old address names the known BMC by its MAC, moved elsewhere: not by the device's own address, as if that were leased to the known BMC's MAC", async () => {
    standin = await startMetalApiStandIn({ hmacKey: 'k' });
    const log = captureLog();
    const status = createStatusStore({ partition: 'p', graceMs: 60_000 });
    const observer: CycleDeps['observer'] = { read: (l, outcome) => status.read(l, outcome), placed: (entries, leftOut) => status.placed(entries, leftOut), reported: (uuids, at) => status.reported(uuids, at) };
    const REAL = 'aa:00:00:00:00:01';
    const ROGUE = 'aa:00:00:00:00:66';
    let leases: Lease[] = [];
    const connect = async (ip: string): Promise<Outband> =>
      ({ address: ip, vendor: 't', info: async () => report(leases.find((l) => l.ip === ip)!.mac === REAL ? 'real' : 'rogue'), close: async () => undefined }) as unknown as Outband;
    const deps: CycleDeps = { ...ownedCycle(connect, log, new Registry(), () => leases), observer };
    const row = (mac: string) => status.document().bmcs.find((b) => b.mac === mac)!;

    leases = [lease('10.0.0.1', REAL)];
    status.leases(leases);
    await runReportCycle(deps, leases);
    // the BMC moved to .2, the device got .1 and is read first
    leases = [lease('10.0.0.1', ROGUE), lease('10.0.0.2', REAL)];
    status.leases(leases);
    await runReportCycle(deps, leases);
    expect(standin.reports.at(-1)!.reports[UUID]).toMatchObject({ BMCIp: '10.0.0.2', BMCVersion: 'real' });
    expect(row(ROGUE)).toMatchObject({ ip: '10.0.0.1', state: 'degraded', lastRead: { problem: { reason: 'conflict', code: 'UUID_CONFLICT' } } });
    const message = row(ROGUE).lastRead!.problem!.message;
    expect(message).toBe(`left out of the report: machine UUID ${UUID} is held by the BMC known for it (MAC ${REAL}), which had this address and moved to another one, still leased`);
    expect(message).not.toContain('10.0.0.1');
    expect(log.find(AT_OLD_ADDRESS)).toEqual([expect.objectContaining({ uuid: UUID, knownMac: REAL, claimant: '10.0.0.1' })]);
    expect(log.find(SECOND_BMC)).toEqual([]);
    // the known BMC at its own address still says so, by address
    expect(row(REAL)).toMatchObject({ ip: '10.0.0.2', state: 'ok' });
  });

  it('without a known BMC, two in one cycle: the first is kept and the claim is counted', async () => {
    standin = await startMetalApiStandIn({ hmacKey: 'k' });
    const registry = new Registry();
    const connect = async (ip: string): Promise<Outband> => ({ address: ip, vendor: 't', info: async () => report(ip), close: async () => undefined }) as unknown as Outband;
    const deps: CycleDeps = { partitionId: 'p', connect, metalApi: createMetalApiClient({ baseUrl: standin.url, hmacKey: 'k', retries: 0 }), concurrency: 1, bmcTimeoutMs: 5000, logger: captureLog().logger, metrics: createReportMetrics(registry) };
    await runReportCycle(deps, [lease('10.0.0.1', 'aa:00:00:00:00:01'), lease('10.0.0.2', 'aa:00:00:00:00:02')]);
    expect(standin.reports.at(-1)!.reports[UUID]?.BMCIp).toBe('10.0.0.1');
    expect(await registry.getSingleMetricAsString('metal_bmc_uuid_conflicts_total')).toMatch(/ 1$/m);
  });

  it("the status store credits the BMC whose entry went into the body, not the one read last: a claimant read last is shown left out (conflict, then duplicate), the report time and a command land on the known BMC's row", async () => {
    standin = await startMetalApiStandIn({ hmacKey: 'k' });
    const log = captureLog();
    const status = createStatusStore({ partition: 'p', graceMs: 60_000 });
    // the claimant's read ends only after the known BMC's was told: it is the last read of the UUID
    let knownTold!: () => void;
    const afterKnown = new Promise<void>((resolve) => (knownTold = resolve));
    const observer: CycleDeps['observer'] = {
      read: (l, outcome) => {
        status.read(l, outcome);
        if (l.ip === '10.0.0.1') knownTold();
      },
      placed: (entries, leftOut) => status.placed(entries, leftOut),
      reported: (uuids, at) => status.reported(uuids, at),
    };
    const connect = async (ip: string): Promise<Outband> =>
      ({
        address: ip,
        vendor: 't',
        info: async () => {
          if (ip === '10.0.0.66') await afterKnown;
          return report(ip === '10.0.0.66' ? 'rogue' : 'real');
        },
        close: async () => undefined,
      }) as unknown as Outband;
    const known = lease('10.0.0.1', 'aa:00:00:00:00:01');
    const rogue = lease('10.0.0.66', 'aa:00:00:00:00:66');
    const row = (ip: string) => status.document().bmcs.find((b) => b.ip === ip)!;

    // without a UUID owner memory: the first in lease order is kept, the other is a duplicate
    const deps: CycleDeps = { ...ownedCycle(connect, log, new Registry(), () => [known, rogue]), observer };
    status.leases([known, rogue]);
    const { owners: _owners, ...unowned } = deps;
    await runReportCycle(unowned, [known, rogue]);
    expect(standin.reports.at(-1)!.reports[UUID]?.BMCIp).toBe('10.0.0.1');
    expect(row('10.0.0.1')).toMatchObject({ state: 'ok', lastReportAt: expect.any(String) });
    expect(row('10.0.0.66')).toMatchObject({ state: 'degraded', lastRead: { problem: { reason: 'duplicate', code: 'UUID_CONFLICT' } } });
    expect(row('10.0.0.66').lastReportAt).toBeUndefined();

    // with it, the known BMC holds the UUID: the claimant, read last again (and first in lease order), is a conflict
    await runReportCycle(deps, [known, rogue]);
    await runReportCycle(deps, [rogue, known]);
    expect(standin.reports.at(-1)!.reports[UUID]?.BMCIp).toBe('10.0.0.1');
    expect(row('10.0.0.66')).toMatchObject({ state: 'degraded', lastRead: { problem: { reason: 'conflict', message: expect.stringContaining('held by BMC 10.0.0.1') } } });
    expect(row('10.0.0.66').lastReportAt).toBeUndefined();
    status.commandResult({ machineId: UUID, command: 'POWER-ON', ok: true, durationMs: 1, startedAt: new Date().toISOString() });
    expect(row('10.0.0.1').lastCommand).toMatchObject({ name: 'POWER-ON', outcome: 'ok' });
    expect(row('10.0.0.66').lastCommand).toBeUndefined();
  });
});
