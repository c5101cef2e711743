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
import { captureLog } from '../helpers/log.js';

const UUID = '00000000-0000-4000-8000-000000000001';
const report = (bmcVersion: string): BmcReport => ({ uuid: UUID, bmcVersion, biosVersion: '1', fru: {}, powerState: 'ON', indicatorLED: 'LED-OFF', powerSupplies: [], source: 'redfish', missing: [] });
const lease = (ip: string, mac: string): Lease => ({ ip, mac, expires: 'never' }) as Lease;

let standin: MetalApiStandIn | undefined;
afterEach(async () => {
  await standin?.close();
  standin = undefined;
});

describe('a machine UUID claimed by a second BMC', () => {
  it('keeps the known BMC while its lease lasts, counts and logs the claim, and lets the newcomer in once the lease is gone', async () => {
    standin = await startMetalApiStandIn({ hmacKey: 'k' });
    const registry = new Registry();
    const log = captureLog();
    // the real BMC answers as "real", the device at .66 claims the same machine
    const connect = async (ip: string): Promise<Outband> => ({ address: ip, vendor: 't', info: async () => report(ip === '10.0.0.66' ? 'rogue' : 'real'), close: async () => undefined }) as unknown as Outband;
    let leases = [lease('10.0.0.1', 'aa:00:00:00:00:01')];
    const deps: CycleDeps = {
      partitionId: 'p',
      connect,
      metalApi: createMetalApiClient({ baseUrl: standin.url, hmacKey: 'k', retries: 0 }),
      concurrency: 2,
      bmcTimeoutMs: 5000,
      logger: log.logger,
      metrics: createReportMetrics(registry),
      owners: createUuidOwners(),
      isLeased: (ip) => leases.some((l) => l.ip === ip),
    };
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
    expect(log.find('a second BMC reports a machine UUID that a known BMC with a lease holds; the known one is kept, the second is left out')).toHaveLength(2);
    expect(await registry.getSingleMetricAsString('metal_bmc_uuid_conflicts_total')).toMatch(/ 2$/m);

    // the known BMC's lease is gone (replaced board): the newcomer takes over, logged
    leases = [lease('10.0.0.66', 'aa:00:00:00:00:66')];
    await runReportCycle(deps, leases);
    expect(sent()?.BMCIp).toBe('10.0.0.66');
    expect(log.find('machine UUID moves to another BMC: the lease of the known one is gone')).toHaveLength(1);
  });

  it('BMCs whose addresses DHCP swapped each report their own machine again; a claim stands while the known BMC reports the UUID or was not read', async () => {
    standin = await startMetalApiStandIn({ hmacKey: 'k' });
    const registry = new Registry();
    const log = captureLog();
    const A = '00000000-0000-4000-8000-00000000000a';
    const B = '00000000-0000-4000-8000-00000000000b';
    const C = '00000000-0000-4000-8000-00000000000c';
    // which machine's BMC answers at which address; absent: no answer
    let at: Record<string, string> = { '10.0.0.1': A, '10.0.0.2': B };
    const connect = async (ip: string): Promise<Outband> =>
      ({
        address: ip,
        vendor: 't',
        info: async () => {
          const uuid = at[ip];
          if (uuid === undefined) throw new Error('no answer');
          return { ...report(ip), uuid };
        },
        close: async () => undefined,
      }) as unknown as Outband;
    const leases = [lease('10.0.0.1', 'aa:00:00:00:00:01'), lease('10.0.0.2', 'aa:00:00:00:00:02'), lease('10.0.0.3', 'aa:00:00:00:00:03')];
    const deps: CycleDeps = {
      partitionId: 'p',
      connect,
      metalApi: createMetalApiClient({ baseUrl: standin.url, hmacKey: 'k', retries: 0 }),
      concurrency: 2,
      bmcTimeoutMs: 5000,
      logger: log.logger,
      metrics: createReportMetrics(registry),
      owners: createUuidOwners(),
      isLeased: (ip) => leases.some((l) => l.ip === ip),
    };
    const bmcOf = (uuid: string) => standin!.reports.at(-1)!.reports[uuid]?.BMCIp;

    await runReportCycle(deps, leases);
    expect([bmcOf(A), bmcOf(B)]).toEqual(['10.0.0.1', '10.0.0.2']);
    // swapped: both leases still held, each address now answers for the other machine
    at = { '10.0.0.1': B, '10.0.0.2': A };
    await runReportCycle(deps, leases);
    expect([bmcOf(A), bmcOf(B)]).toEqual(['10.0.0.2', '10.0.0.1']);
    expect(log.find('machine UUID moves to another BMC: the known one reports another machine now (addresses swapped or reassigned)')).toHaveLength(2);
    // A's BMC back at .3 while .2 went to machine C: A follows, C is reported
    at = { '10.0.0.1': B, '10.0.0.2': C, '10.0.0.3': A };
    await runReportCycle(deps, leases);
    expect([bmcOf(A), bmcOf(B), bmcOf(C)]).toEqual(['10.0.0.3', '10.0.0.1', '10.0.0.2']);
    // a claim while the known BMC does not answer (still leased): not taken
    at = { '10.0.0.2': B, '10.0.0.3': A };
    await runReportCycle(deps, leases);
    expect(bmcOf(B)).toBeUndefined();
    // nor while the known one reports the UUID too, whichever comes first
    at = { '10.0.0.1': B, '10.0.0.2': B, '10.0.0.3': A };
    await runReportCycle(deps, leases);
    expect(bmcOf(B)).toBe('10.0.0.1');
    expect(await registry.getSingleMetricAsString('metal_bmc_uuid_conflicts_total')).toMatch(/ 2$/m);
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
});
