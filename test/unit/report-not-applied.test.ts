/**
 * metal-api answers 200 also for entries it does not apply (a machine of another partition, a
 * create or update that failed: only its log says so), naming them in neither created nor
 * updated. The cycle counts only the entries it names as reported: logged once per cycle, counted,
 * kept off the status's report time. An answer without the lists keeps the old reading.
 */
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import type { Lease } from '../../src/leases/types.js';
import { createMetalApiClient } from '../../src/metalapi/client.js';
import { startMetalApiStandIn, type MetalApiStandIn } from '../../src/metalapi/standin.js';
import type { BmcReport, Outband } from '../../src/outband/types.js';
import { runReportCycle, type CycleDeps } from '../../src/report/cycle.js';
import { createReportMetrics } from '../../src/report/metrics.js';
import { createStatusStore } from '../../src/status/store.js';
import { captureLog } from '../helpers/log.js';

let standin: MetalApiStandIn | undefined;
afterEach(async () => {
  await standin?.close();
  standin = undefined;
});

const uuidOf = (i: number) => `00000000-0000-4000-8000-0000000000${String(i).padStart(2, '0')}`;
const leases: Lease[] = [1, 2, 3, 4, 5, 6].map((i) => ({ ip: `10.0.0.${i}`, mac: `aa:bb:cc:00:00:0${i}`, expires: 'never' }));
const report = (uuid: string): BmcReport => ({ uuid, bmcVersion: '1.0', biosVersion: '', fru: {}, powerState: 'ON', indicatorLED: 'LED-OFF', powerSupplies: [], source: 'ipmi', missing: [] });
const connect: CycleDeps['connect'] = async (ip) => ({ address: ip, vendor: 'test', info: async () => report(uuidOf(Number(ip.split('.')[3]))), close: async () => undefined }) as unknown as Outband;

/** a cycle's dependencies with the daemon's status store as its observer */
function deps(metalApi: CycleDeps['metalApi']) {
  const registry = new Registry();
  const log = captureLog();
  const status = createStatusStore({ partition: 'p', graceMs: 60_000 });
  status.leases(leases);
  const d: CycleDeps = { partitionId: 'p', connect, metalApi, concurrency: 3, bmcTimeoutMs: 5000, logger: log.logger, metrics: createReportMetrics(registry), observer: status };
  const reportedAt = (ip: string) => status.document().bmcs.find((b) => b.ip === ip)!.lastReportAt;
  return { d, registry, log, reportedAt };
}

const NOT_APPLIED_LINE = "metal-api answered 200 but did not apply these entries (named in neither created nor updated: a machine of another partition, or a create or update that failed; metal-api's log says which); they are not counted as reported";

describe('entries metal-api takes but does not apply', () => {
  it('are not counted as reported nor given a report time in the status; one log line per cycle, also across a split, and a metric', async () => {
    const skipped = new Set([uuidOf(2), uuidOf(5)]);
    // one refused entry splits the report into parts (in a random order): the line is written once per cycle, not per part
    standin = await startMetalApiStandIn({ hmacKey: 'k', skipEntry: (uuid) => skipped.has(uuid), refuseEntry: (uuid) => uuid === uuidOf(4) });
    const { d, registry, log, reportedAt } = deps(createMetalApiClient({ baseUrl: standin.url, hmacKey: 'k', retries: 0 }));
    const result = await runReportCycle(d, leases);
    expect(new Set(result.notApplied)).toEqual(skipped);
    expect(result.rejected).toEqual([uuidOf(4)]);
    expect(result.reported).toBe(3);
    expect(new Set([...result.created, ...result.updated])).toEqual(new Set([uuidOf(1), uuidOf(3), uuidOf(6)]));
    for (const i of [1, 3, 6]) expect(reportedAt(`10.0.0.${i}`), `BMC ${i}`).toEqual(expect.any(String));
    for (const i of [2, 4, 5]) expect(reportedAt(`10.0.0.${i}`), `BMC ${i}`).toBeUndefined();
    const lines = log.find(NOT_APPLIED_LINE);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ entries: 2 });
    expect(new Set(lines[0]!.uuids as string[])).toEqual(skipped);
    expect(await registry.getSingleMetricAsString('metal_bmc_report_entries_not_applied_total')).toMatch(/ 2$/m);
  });

  it('an answer that names neither list (an older metal-api): every entry counts as reported, as before', async () => {
    const metalApi = { ipmiReport: async () => ({ created: [], updated: [], unlisted: true as const }) };
    const { d, registry, log, reportedAt } = deps(metalApi);
    const result = await runReportCycle(d, leases);
    expect(result).toMatchObject({ reported: 6, notApplied: [] });
    for (const l of leases) expect(reportedAt(l.ip)).toEqual(expect.any(String));
    expect(log.find(NOT_APPLIED_LINE)).toHaveLength(0);
    expect(await registry.getSingleMetricAsString('metal_bmc_report_entries_not_applied_total')).toMatch(/ 0$/m);
  });
});
