/**
 * Hostile BMC data stops at the report: entries are bounded, and a report metal-api cannot read
 * (400) or a proxy finds too large (413) is split until only the refused entries are left out,
 * within a bound of posts per cycle; a 422 is no reason to split. The metal-api side is the stand-in, which
 * validates every body against metal-api's swagger; the BMCs are Outband objects that return
 * what a broken or hostile BMC would.
 */
import fc from 'fast-check';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { createMetalApiClient } from '../../src/metalapi/client.js';
import { compileDefinition, loadSwagger } from '../../src/metalapi/schema.js';
import { startMetalApiStandIn, type MetalApiStandIn } from '../../src/metalapi/standin.js';
import type { MachineIpmiReport } from '../../src/metalapi/types.js';
import type { BmcReport, Outband } from '../../src/outband/types.js';
import { boundedText, boundEntry, MAX_FLOAT32, MAX_POWER_SUPPLIES, MAX_STRING } from '../../src/report/bounds.js';
import { runReportCycle, splitPostBound } from '../../src/report/cycle.js';
import { createReportMetrics } from '../../src/report/metrics.js';
import { BmcError } from '../../src/errors.js';
import { captureLog } from '../helpers/log.js';

const validEntry = compileDefinition(loadSwagger(), 'v1.MachineIpmiReport');

const entryArb = fc.record({
  BMCIp: fc.constant('10.0.0.1'),
  BMCVersion: fc.string({ maxLength: 600 }),
  BIOSVersion: fc.string({ unit: 'binary', maxLength: 400 }),
  FRU: fc.record({ board_mfg: fc.string({ maxLength: 500 }), product_serial: fc.string({ unit: 'binary' }) }, { requiredKeys: [] }),
  PowerState: fc.constantFrom('ON', 'OFF', 'UNKNOWN', '\u0000\u001b[2J'),
  IndicatorLEDState: fc.string(),
  PowerMetric: fc.option(fc.record({ averageconsumedwatts: fc.double(), intervalinmin: fc.double(), maxconsumedwatts: fc.double(), minconsumedwatts: fc.double() }), { nil: null }),
  PowerSupplies: fc.array(fc.record({ status: fc.record({ health: fc.string(), state: fc.string() }) }), { maxLength: 80 }),
});

describe('boundedText', () => {
  it('removes C0, DEL, C1 and the bidirectional overrides and isolates', () => {
    expect(boundedText('S\u0000N\u007f-\u009b1\u0085\u202e2\u2066\u2069')).toBe('SN-12');
  });
});

describe('boundEntry', () => {
  it('any entry comes out within the bounds and valid against the swagger; an entry within them comes out unchanged', () => {
    fc.assert(
      fc.property(entryArb, (entry) => {
        const { entry: out, cut } = boundEntry(entry);
        const strings = [out.BMCVersion, out.BIOSVersion, out.PowerState, out.IndicatorLEDState, ...Object.values(out.FRU), ...out.PowerSupplies.flatMap((p) => [p.status.health, p.status.state])];
        for (const s of strings) {
          expect(s!.length).toBeLessThanOrEqual(MAX_STRING);
          expect(s).not.toMatch(/[\u0000-\u001f\u007f]/); // eslint-disable-line no-control-regex
        }
        expect(out.PowerSupplies.length).toBeLessThanOrEqual(MAX_POWER_SUPPLIES);
        if (out.PowerMetric) for (const v of Object.values(out.PowerMetric)) expect(Math.abs(v)).toBeLessThanOrEqual(MAX_FLOAT32);
        expect(validEntry(JSON.parse(JSON.stringify(out))).ok).toBe(true);
        // no FRU field goes out as "": metal-api's updateFru would store it over the in-band value
        for (const v of Object.values(out.FRU)) expect(v).not.toBe('');
        const sentFru = Object.fromEntries(Object.entries(entry.FRU).filter(([, v]) => v !== ''));
        if (cut.length === 0) expect(out).toEqual({ ...entry, FRU: sentFru });
      }),
    );
  });

  it('leaves out a FRU field that is empty or only control characters, naming the one it emptied', () => {
    const { entry, cut } = boundEntry({ ...hostileEntry(), FRU: { board_mfg: '\u0000\u001b\u202e', product_serial: '', product_manufacturer: 'Dell\u0000' } });
    expect(entry.FRU).toEqual({ product_manufacturer: 'Dell' });
    expect(cut).toEqual(expect.arrayContaining(['FRU.board_mfg', 'FRU.product_manufacturer']));
  });

  it('says what it cut: 1 MiB strings, 10,000 power supplies, a NaN reading', () => {
    const { entry, cut } = boundEntry(hostileEntry());
    expect(cut).toEqual(['FRU.board_mfg', 'PowerSupplies (10000)', 'PowerMetric', 'BMCVersion']);
    expect(entry.BMCVersion).toHaveLength(MAX_STRING);
    expect(entry.PowerSupplies).toHaveLength(MAX_POWER_SUPPLIES);
    expect(entry.PowerMetric).toBeNull();
  });
});

function hostileEntry(): MachineIpmiReport {
  return {
    BMCIp: '10.0.0.66',
    BMCVersion: 'v'.repeat(1 << 20),
    BIOSVersion: '1.0',
    FRU: { board_mfg: 'm'.repeat(1 << 20) },
    PowerState: 'ON',
    IndicatorLEDState: 'LED-OFF',
    PowerMetric: { averageconsumedwatts: Number.NaN, intervalinmin: 1, maxconsumedwatts: 1, minconsumedwatts: 1 },
    PowerSupplies: Array.from({ length: 10_000 }, () => ({ status: { health: 'OK', state: 'Enabled' } })),
  };
}

const uuidOf = (i: number) => `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`;

function bmcReport(i: number, hostile: boolean): BmcReport {
  return {
    uuid: uuidOf(i),
    bmcVersion: hostile ? 'v'.repeat(1 << 20) : '1.74',
    biosVersion: '3.4',
    fru: hostile ? { board_mfg: 'x'.repeat(1 << 20) } : { board_mfg: 'Supermicro' },
    powerState: 'ON',
    indicatorLED: 'LED-OFF',
    ...(hostile ? { powerMetric: { averageconsumedwatts: Number.NaN, intervalinmin: 1, maxconsumedwatts: 1, minconsumedwatts: 1 } } : {}),
    powerSupplies: Array.from({ length: hostile ? 10_000 : 2 }, () => ({ status: { health: 'OK', state: 'Enabled' } })),
    source: 'redfish',
    missing: [],
  };
}

/** `n` leases, 10.0.0.1 up */
function manyLeases(n: number) {
  return Array.from({ length: n }, (_, i) => ({ ip: `10.0.${i >> 8}.${(i & 255) + 1}`, mac: `aa:bb:cc:00:${(i >> 8).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}`, expires: 'never' as const }));
}

/** the machine UUID of the BMC of lease `i` of manyLeases */
const uuidOfLease = (i: number) => uuidOf(1000 + i);

/** BMCs with plain entries, the UUID uuidOfLease of their lease */
const plainBmcs = async (ip: string): Promise<Outband> => {
  const [, , hi, lo] = ip.split('.').map(Number);
  const i = hi! * 256 + lo! - 1;
  return { address: ip, vendor: 't', info: async () => ({ ...bmcReport(0, false), uuid: uuidOfLease(i) }), close: async () => undefined } as unknown as Outband;
};

let standin: MetalApiStandIn | undefined;
afterEach(async () => {
  await standin?.close();
  standin = undefined;
});

describe('a report cycle with hostile BMCs', () => {
  it('caps the hostile entry, leaves out only the entry metal-api refuses, and reports the rest', async () => {
    const refusedUuid = uuidOf(13);
    standin = await startMetalApiStandIn({ hmacKey: 'k', refuseEntry: (uuid) => uuid === refusedUuid });
    const leases = Array.from({ length: 40 }, (_, i) => ({ ip: `10.0.0.${i + 1}`, mac: `aa:bb:cc:00:00:${i.toString(16).padStart(2, '0')}`, expires: 'never' as const }));
    const registry = new Registry();
    const metrics = createReportMetrics(registry);
    const log = captureLog();
    const connect = async (ip: string): Promise<Outband> => {
      const i = Number(ip.split('.')[3]) - 1;
      return { address: ip, vendor: 'test', info: async () => bmcReport(i, i === 7), close: async () => undefined } as unknown as Outband;
    };
    const result = await runReportCycle(
      { partitionId: 'p', connect, metalApi: createMetalApiClient({ baseUrl: standin.url, hmacKey: 'k', retries: 0 }), concurrency: 8, bmcTimeoutMs: 5000, logger: log.logger, metrics },
      leases,
    );
    expect(result.rejected).toEqual([refusedUuid]);
    expect(result.reported).toBe(39);
    const accepted = new Set(standin.reports.flatMap((r) => Object.keys(r.reports)));
    expect(accepted.size).toBe(39);
    expect(accepted.has(refusedUuid)).toBe(false);
    const hostile = standin.reports.map((r) => r.reports[uuidOf(7)]).find((e) => e !== undefined)!;
    expect(hostile.PowerSupplies).toHaveLength(MAX_POWER_SUPPLIES);
    expect(hostile.BMCVersion).toHaveLength(MAX_STRING);
    // halving 40 entries down to the one refused takes about 2 log2(40) posts, not 40
    expect(standin.requests.filter((r) => r.method === 'POST').length).toBeLessThanOrEqual(14);
    expect(await registry.getSingleMetricAsString('metal_bmc_report_entries_rejected_total')).toMatch(/ 1$/m);
    expect(await registry.getSingleMetricAsString('metal_bmc_report_entries_bounded_total')).toMatch(/ 1$/m);
    expect(log.find('metal-api refuses this BMC entry; it is left out of the report')).toHaveLength(1);
  });

  it('a metal-api that refuses every part (400): the split stops at its bound, 1 + 4·⌈log2 n⌉ posts (41 for 1,000), breadth first so no entry is blamed alone, and the cycle fails naming the entries not posted', async () => {
    standin = await startMetalApiStandIn({ hmacKey: 'k', refuseEntry: () => true });
    const n = 1000;
    const registry = new Registry();
    const metrics = createReportMetrics(registry);
    const log = captureLog();
    const cycle = runReportCycle({ partitionId: 'p', connect: plainBmcs, metalApi: createMetalApiClient({ baseUrl: standin.url, hmacKey: 'k', retries: 0 }), concurrency: 50, bmcTimeoutMs: 5000, logger: log.logger, metrics }, manyLeases(n));
    await expect(cycle).rejects.toMatchObject({ httpStatus: 400, message: expect.stringMatching(/the split reached its bound of 41 posts for 1000 entries, 1000 of 1000 entries not posted this cycle/) });
    expect(splitPostBound(n)).toBe(41);
    expect(standin.requests.filter((r) => r.method === 'POST')).toHaveLength(41);
    expect(log.find('metal-api refuses this BMC entry; it is left out of the report')).toHaveLength(0);
    expect(await registry.getSingleMetricAsString('metal_bmc_report_splits_stopped_total')).toMatch(/ 1$/m);
    expect(await registry.getSingleMetricAsString('metal_bmc_report_entries_rejected_total')).toMatch(/ 0$/m);
  });

  it('every post answered 422 (metal-api\'s answer to any error it does not classify, a RethinkDB failure included): one post, no split, the cycle fails and no entry is blamed', async () => {
    standin = await startMetalApiStandIn({ hmacKey: 'k' });
    standin.setFailures(10_000, 422);
    const registry = new Registry();
    const metrics = createReportMetrics(registry);
    const log = captureLog();
    const cycle = runReportCycle({ partitionId: 'p', connect: plainBmcs, metalApi: createMetalApiClient({ baseUrl: standin.url, hmacKey: 'k', retries: 0 }), concurrency: 50, bmcTimeoutMs: 5000, logger: log.logger, metrics }, manyLeases(1000));
    await expect(cycle).rejects.toMatchObject({ httpStatus: 422 });
    expect(standin.requests.filter((r) => r.method === 'POST')).toHaveLength(1);
    expect(log.find('metal-api refuses this BMC entry; it is left out of the report')).toHaveLength(0);
    expect(await registry.getSingleMetricAsString('metal_bmc_report_entries_rejected_total')).toMatch(/ 0$/m);
    expect(await registry.getSingleMetricAsString('metal_bmc_report_splits_stopped_total')).toMatch(/ 0$/m);
  });

  it('a split whose parts then meet 422 (metal-api\'s database failing under it): the split stops at the first 422, nothing blamed, and the cycle fails with it', async () => {
    const bad = uuidOfLease(7);
    standin = await startMetalApiStandIn({
      hmacKey: 'k',
      refuseEntry: (uuid) => {
        // from the first refusal on, every request fails as metal-api's unclassified errors do
        if (uuid === bad) standin!.setFailures(10_000, 422);
        return uuid === bad;
      },
    });
    const log = captureLog();
    const cycle = runReportCycle({ partitionId: 'p', connect: plainBmcs, metalApi: createMetalApiClient({ baseUrl: standin.url, hmacKey: 'k', retries: 0 }), concurrency: 50, bmcTimeoutMs: 5000, logger: log.logger }, manyLeases(1000));
    await expect(cycle).rejects.toMatchObject({ httpStatus: 422 });
    expect(standin.requests.filter((r) => r.method === 'POST').map((r) => r.status)).toEqual([400, 422]);
    expect(log.find('metal-api refuses this BMC entry; it is left out of the report')).toHaveLength(0);
  });

  /** metal-api behind a proxy that refuses bodies of more than `limit` entries with 413; `posts` counts what reached the proxy */
  function behindProxy(limit: number) {
    const proxy = {
      posts: 0,
      metalApi: {
        ipmiReport: async (body: { reports: Record<string, unknown> }) => {
          proxy.posts++;
          const uuids = Object.keys(body.reports);
          if (uuids.length > limit) throw new BmcError('HTTP', 'metal-api: HTTP 413 body too large', { httpStatus: 413 });
          return { created: uuids, updated: [] };
        },
      } as unknown as ReturnType<typeof createMetalApiClient>,
    };
    return proxy;
  }

  it('a proxy that takes bodies of up to 25 entries only (413 beyond): split down to what it takes in 15 posts, every entry posted', async () => {
    const n = 200;
    const proxy = behindProxy(25);
    const metalApi = proxy.metalApi;
    const told: string[] = [];
    const observer = { read: () => undefined, reported: (uuids: readonly string[]) => void told.push(...uuids) };
    const result = await runReportCycle({ partitionId: 'p', connect: plainBmcs, metalApi, concurrency: 50, bmcTimeoutMs: 5000, logger: captureLog().logger, observer }, manyLeases(n));
    expect(result.reported).toBe(n);
    expect(told).toHaveLength(n);
    // 200, 2 × 100, 4 × 50, 8 × 25
    expect(proxy.posts).toBe(15);
  });

  it('a report 40 times the body limit (1,000 entries, 25 taken): the proxy\'s 413s count not against the bound, every entry posted', async () => {
    const n = 1000;
    const proxy = behindProxy(25);
    const result = await runReportCycle({ partitionId: 'p', connect: plainBmcs, metalApi: proxy.metalApi, concurrency: 50, bmcTimeoutMs: 5000, logger: captureLog().logger }, manyLeases(n));
    expect(result.reported).toBe(n);
    // 1000, 2 × 500, 4 × 250, 8 × 125, 16 × 63 or 62, 32 × 32 or 31, 64 × 16 or 15: 63 refused, 64 taken
    expect(proxy.posts).toBe(127);
  });

  it('twenty bad entries among 200: the split stops at its bound of 33 posts; what it posted was taken or refused alone, never a bad entry taken, the rest not posted this cycle', async () => {
    const bad = new Set([0, 3, 4, 5, 29, 30, 31, 64, 65, 90, 101, 120, 121, 122, 150, 160, 170, 177, 190, 199].map(uuidOfLease));
    standin = await startMetalApiStandIn({ hmacKey: 'k', refuseEntry: (uuid) => bad.has(uuid) });
    const told: string[] = [];
    const observer = { read: () => undefined, reported: (uuids: readonly string[]) => void told.push(...uuids) };
    const log = captureLog();
    const cycle = runReportCycle({ partitionId: 'p', connect: plainBmcs, metalApi: createMetalApiClient({ baseUrl: standin.url, hmacKey: 'k', retries: 0 }), concurrency: 50, bmcTimeoutMs: 5000, logger: log.logger, observer }, manyLeases(200));
    const failure = await cycle.then(
      () => undefined,
      (err: Error) => err,
    );
    expect(failure?.message).toMatch(/the split reached its bound of 33 posts for 200 entries, \d+ of 200 entries not posted this cycle/);
    const notPosted = Number(/, (\d+) of 200 entries not posted/.exec(failure!.message)![1]);
    expect(standin.requests.filter((r) => r.method === 'POST')).toHaveLength(33);
    const accepted = new Set(standin.reports.flatMap((r) => Object.keys(r.reports)));
    expect([...accepted].filter((u) => bad.has(u))).toEqual([]);
    expect(new Set(told)).toEqual(accepted);
    const refusedAlone = log.find('metal-api refuses this BMC entry; it is left out of the report').map((l) => l.uuid as string);
    expect(refusedAlone.filter((u) => !bad.has(u))).toEqual([]);
    expect(accepted.size + refusedAlone.length + notPosted).toBe(200);
  });

  it('two bad entries at the front of the lease order (a device holding the lowest addresses): both isolated within the bound, the other 198 posted', async () => {
    const bad = new Set([uuidOfLease(0), uuidOfLease(1)]);
    standin = await startMetalApiStandIn({ hmacKey: 'k', refuseEntry: (uuid) => bad.has(uuid) });
    const result = await runReportCycle({ partitionId: 'p', connect: plainBmcs, metalApi: createMetalApiClient({ baseUrl: standin.url, hmacKey: 'k', retries: 0 }), concurrency: 50, bmcTimeoutMs: 5000, logger: captureLog().logger }, manyLeases(200));
    expect(new Set(result.rejected)).toEqual(bad);
    expect(result.reported).toBe(198);
    expect(standin.requests.filter((r) => r.method === 'POST').length).toBeLessThanOrEqual(splitPostBound(200));
  });

  it('does not split on an answer that no split can fix (HMAC refused): the cycle fails as before', async () => {
    standin = await startMetalApiStandIn({ hmacKey: 'right' });
    const connect = async (ip: string): Promise<Outband> => ({ address: ip, vendor: 't', info: async () => bmcReport(Number(ip.split('.')[3]), false), close: async () => undefined }) as unknown as Outband;
    const leases = Array.from({ length: 4 }, (_, i) => ({ ip: `10.0.0.${i + 1}`, mac: `aa:bb:cc:00:00:0${i}`, expires: 'never' as const }));
    const deps = { partitionId: 'p', connect, metalApi: createMetalApiClient({ baseUrl: standin.url, hmacKey: 'wrong', retries: 0 }), concurrency: 2, bmcTimeoutMs: 5000, logger: captureLog().logger };
    await expect(runReportCycle(deps, leases)).rejects.toMatchObject({ httpStatus: 403 });
    expect(standin.requests.filter((r) => r.method === 'POST')).toHaveLength(1);
  });

  it('a split report whose second half then fails otherwise (a 503 after its retries): the half metal-api took is still told and counted, and the cycle fails', async () => {
    const connect = async (ip: string): Promise<Outband> => ({ address: ip, vendor: 't', info: async () => bmcReport(Number(ip.split('.')[3]), false), close: async () => undefined }) as unknown as Outband;
    const leases = Array.from({ length: 4 }, (_, i) => ({ ip: `10.0.0.${i + 1}`, mac: `aa:bb:cc:00:00:0${i}`, expires: 'never' as const }));
    let posts = 0;
    const metalApi = {
      ipmiReport: async (body: { reports: Record<string, unknown> }) => {
        posts++;
        if (posts === 1) throw new BmcError('HTTP', 'metal-api: HTTP 400 cannot read the body', { httpStatus: 400 });
        if (posts === 2) return { created: Object.keys(body.reports), updated: [] };
        throw new BmcError('HTTP', 'metal-api: HTTP 503 after retries', { httpStatus: 503 });
      },
    } as unknown as ReturnType<typeof createMetalApiClient>;
    const registry = new Registry();
    const metrics = createReportMetrics(registry);
    const told: string[] = [];
    const observer = { read: () => undefined, reported: (uuids: readonly string[]) => void told.push(...uuids) };
    await expect(runReportCycle({ partitionId: 'p', connect, metalApi, concurrency: 2, bmcTimeoutMs: 5000, logger: captureLog().logger, metrics, observer }, leases)).rejects.toMatchObject({ httpStatus: 503 });
    expect(posts).toBe(3);
    expect(told).toHaveLength(2); // the first half
    expect(await registry.getSingleMetricAsString('metal_bmc_report_last_success_timestamp_seconds')).toMatch(/ [1-9]\d{8,}/);
  });
});
