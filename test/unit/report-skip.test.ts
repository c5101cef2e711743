/**
 * A BMC that gives no machine UUID to report (no Get System GUID and no Redfish UUID, only a
 * placeholder, or a UUID over IPMI alone that no earlier read confirmed) makes a partial report
 * metal-api cannot key: the report cycle skips it with one log line and a metric by reason, tells
 * the status why, and reports every other BMC.
 */
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { createMetalApiClient } from '../../src/metalapi/client.js';
import { startMetalApiStandIn, type MetalApiStandIn } from '../../src/metalapi/standin.js';
import type { BmcReport, Outband } from '../../src/outband/types.js';
import { runReportCycle } from '../../src/report/cycle.js';
import { createReportMetrics } from '../../src/report/metrics.js';
import { factsOf, problemOf } from '../../src/status/reason.js';
import { captureLog } from '../helpers/log.js';

let standin: MetalApiStandIn | undefined;
afterEach(async () => {
  await standin?.close();
  standin = undefined;
});

function report(uuid: string): BmcReport {
  return {
    uuid,
    bmcVersion: '1.0',
    biosVersion: '',
    fru: {},
    powerState: 'ON',
    indicatorLED: 'LED-OFF',
    powerSupplies: [],
    source: 'ipmi',
    missing: uuid ? [] : ['UUID: Get System GUID on BMC 10.0.0.2:623: invalid or unsupported command'],
  };
}

describe('a report cycle with a BMC that gives no UUID', () => {
  it('skips that BMC with one log line and metal_bmc_bmcs_skipped_total{reason="no-uuid"}, and reports the others', async () => {
    standin = await startMetalApiStandIn({ hmacKey: 'k' });
    const leases = [1, 2, 3].map((i) => ({ ip: `10.0.0.${i}`, mac: `aa:bb:cc:00:00:0${i}`, expires: 'never' as const }));
    const registry = new Registry();
    const metrics = createReportMetrics(registry);
    const log = captureLog();
    const connect = async (ip: string): Promise<Outband> =>
      ({ address: ip, vendor: 'test', info: async () => report(ip === '10.0.0.2' ? '' : `00000000-0000-4000-8000-00000000000${ip.at(-1)}`), close: async () => undefined }) as unknown as Outband;
    const result = await runReportCycle(
      { partitionId: 'p', connect, metalApi: createMetalApiClient({ baseUrl: standin.url, hmacKey: 'k', retries: 0 }), concurrency: 3, bmcTimeoutMs: 5000, logger: log.logger, metrics },
      leases,
    );
    expect(result.reported).toBe(2);
    expect(Object.keys(standin.reports[0]!.reports).sort()).toEqual(['00000000-0000-4000-8000-000000000001', '00000000-0000-4000-8000-000000000003']);
    expect(await registry.getSingleMetricAsString('metal_bmc_bmcs_skipped_total')).toMatch(/reason="no-uuid"} 1$/m);
    expect(await registry.getSingleMetricAsString('metal_bmc_bmc_read_failures_total')).not.toMatch(/} [1-9]/);
    const lines = log.find('BMC gives no machine UUID, skipped in this report');
    expect(lines).toHaveLength(1);
    expect(JSON.stringify(lines[0])).toContain('Get System GUID on BMC 10.0.0.2:623: invalid or unsupported command');
  });

  it('a BMC with only a placeholder UUID: skipped by reason placeholder-uuid, its read shown as failing with the reason', async () => {
    standin = await startMetalApiStandIn({ hmacKey: 'k' });
    const leases = [1, 2].map((i) => ({ ip: `10.0.0.${i}`, mac: `aa:bb:cc:00:00:0${i}`, expires: 'never' as const }));
    const registry = new Registry();
    const metrics = createReportMetrics(registry);
    const log = captureLog();
    const reads: unknown[] = [];
    const placeholder: BmcReport = { ...report(''), uuidGap: 'placeholder-uuid', missing: ["UUID: only a placeholder, no machine's id (00000000-0000-0000-0000-000000000000: …)"] };
    const connect = async (ip: string): Promise<Outband> =>
      ({ address: ip, vendor: 'test', info: async () => (ip === '10.0.0.2' ? placeholder : report('00000000-0000-4000-8000-000000000001')), close: async () => undefined }) as unknown as Outband;
    const result = await runReportCycle(
      { partitionId: 'p', connect, metalApi: createMetalApiClient({ baseUrl: standin.url, hmacKey: 'k', retries: 0 }), concurrency: 2, bmcTimeoutMs: 5000, logger: log.logger, metrics, observer: { read: (l, o) => reads.push(o.ok ? 'ok' : (o.error as Error).message), reported: () => undefined } },
      leases,
    );
    expect(result.reported).toBe(1);
    expect(Object.keys(standin.reports[0]!.reports)).toEqual(['00000000-0000-4000-8000-000000000001']);
    expect(await registry.getSingleMetricAsString('metal_bmc_bmcs_skipped_total')).toMatch(/reason="placeholder-uuid"} 1$/m);
    const lines = log.find('BMC gives only a placeholder machine UUID, skipped in this report');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ bmc: '10.0.0.2', reason: 'placeholder-uuid' });
    expect(reads).toContainEqual(expect.stringMatching(/^the BMC gives only a placeholder machine UUID/));
  });

  it('a BMC read over IPMI alone with an unconfirmed UUID: skipped by reason unconfirmed-ipmi-uuid, its read failing with Redfish\'s failure', async () => {
    standin = await startMetalApiStandIn({ hmacKey: 'k' });
    const leases = [1, 2, 3].map((i) => ({ ip: `10.0.0.${i}`, mac: `aa:bb:cc:00:00:0${i}`, expires: 'never' as const }));
    const registry = new Registry();
    const log = captureLog();
    const errors = new Map<string, unknown>();
    const unconfirmed = (redfishProblem: BmcReport['redfishProblem']): BmcReport => ({ ...report(''), uuidGap: 'unconfirmed-ipmi-uuid', ...(redfishProblem ? { redfishProblem } : {}), missing: ['UUID: over IPMI alone the GUID reads …'] });
    const answers: Record<string, BmcReport> = {
      '10.0.0.1': report('00000000-0000-4000-8000-000000000001'),
      '10.0.0.2': unconfirmed({ code: 'HTTP', httpStatus: 503, message: 'POST /redfish/v1/SessionService/Sessions: HTTP 503' }),
      '10.0.0.3': unconfirmed({ code: 'AUTH_FAILED', causeCode: 'DEPTH_ZERO_SELF_SIGNED_CERT', message: 'certificate not trusted' }),
    };
    const connect = async (ip: string): Promise<Outband> => ({ address: ip, vendor: 'test', info: async () => answers[ip]!, close: async () => undefined }) as unknown as Outband;
    const result = await runReportCycle(
      { partitionId: 'p', connect, metalApi: createMetalApiClient({ baseUrl: standin.url, hmacKey: 'k', retries: 0 }), concurrency: 3, bmcTimeoutMs: 5000, logger: log.logger, metrics: createReportMetrics(registry), observer: { read: (l, o) => void (o.ok || errors.set(l.ip, o.error)), reported: () => undefined } },
      leases,
    );
    expect(result.reported).toBe(1);
    expect(await registry.getSingleMetricAsString('metal_bmc_bmcs_skipped_total')).toMatch(/reason="unconfirmed-ipmi-uuid"} 2$/m);
    expect(log.find('BMC read over IPMI alone gives a machine UUID no earlier read confirmed, skipped in this report')).toHaveLength(2);
    expect(problemOf(factsOf(errors.get('10.0.0.2')), [])).toMatchObject({ reason: 'http-error', code: 'HTTP', httpStatus: 503, message: expect.stringMatching(/^Redfish: POST .*HTTP 503; over IPMI alone its machine UUID is not confirmed .*left out of the report$/) });
    expect(problemOf(factsOf(errors.get('10.0.0.3')), [])).toMatchObject({ reason: 'certificate', code: 'AUTH_FAILED' });
  });
});
