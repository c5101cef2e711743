/**
 * A failure while a report cycle handles one BMC's finished read (the observer, a report worker's
 * answer) is that BMC's, not the cycle's: the cycle waits for the other reads, reports them, and
 * leaves no read running behind it.
 */
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import type { Lease } from '../../src/leases/types.js';
import { createMetalApiClient } from '../../src/metalapi/client.js';
import { startMetalApiStandIn, type MetalApiStandIn } from '../../src/metalapi/standin.js';
import type { BmcReport, Outband } from '../../src/outband/types.js';
import { runReportCycle, type BmcReader, type CycleDeps } from '../../src/report/cycle.js';
import { createReportMetrics } from '../../src/report/metrics.js';
import { captureLog } from '../helpers/log.js';

let standin: MetalApiStandIn | undefined;
afterEach(async () => {
  await standin?.close();
  standin = undefined;
});

const uuidOf = (ip: string) => `00000000-0000-4000-8000-00000000000${ip.at(-1)}`;

function report(ip: string): BmcReport {
  return { uuid: uuidOf(ip), bmcVersion: '1.0', biosVersion: '', fru: {}, powerState: 'ON', indicatorLED: 'LED-OFF', powerSupplies: [], source: 'ipmi', missing: [] };
}

const leases: Lease[] = [1, 2, 3].map((i) => ({ ip: `10.0.0.${i}`, mac: `aa:bb:cc:00:00:0${i}`, expires: 'never' as const }));

/**
 * BMCs whose reads stay open until `release()`, but 10.0.0.1's, which ends at once; `running` counts
 * the reads from connect to their connection's close.
 */
function heldBmcs() {
  let release!: () => void;
  const held = new Promise<void>((r) => (release = r));
  const fleet = { running: 0, release, connect: undefined as unknown as CycleDeps['connect'] };
  fleet.connect = async (ip: string): Promise<Outband> => {
    fleet.running++;
    return {
      address: ip,
      vendor: 'test',
      info: async () => {
        if (ip !== '10.0.0.1') await held;
        return report(ip);
      },
      close: async () => void fleet.running--,
    } as unknown as Outband;
  };
  return fleet;
}

async function deps(over: Partial<CycleDeps>): Promise<CycleDeps & { metrics: ReturnType<typeof createReportMetrics>; registry: Registry; log: ReturnType<typeof captureLog> }> {
  standin = await startMetalApiStandIn({ hmacKey: 'k' });
  const registry = new Registry();
  const log = captureLog();
  return { partitionId: 'p', connect: heldBmcs().connect, metalApi: createMetalApiClient({ baseUrl: standin.url, hmacKey: 'k', retries: 0 }), concurrency: 3, fixedConcurrency: true, bmcTimeoutMs: 5000, logger: log.logger, metrics: createReportMetrics(registry), registry, log, ...over };
}

describe('a report cycle when handling one read throws', () => {
  it('an observer that throws on one BMC while the others are still read: logged and counted once, its entry kept, the cycle waits for the others and reports all three, no read left running', async () => {
    const fleet = heldBmcs();
    const observer = {
      read: (lease: Lease) => {
        if (lease.ip !== '10.0.0.1') return;
        // the others are still being read: let them end only after this throw
        setImmediate(fleet.release);
        throw new Error('status page bug');
      },
      reported: () => undefined,
    };
    const d = await deps({ connect: fleet.connect, observer });
    let runningAtEnd: number | undefined;
    const result = await runReportCycle(d, leases).finally(() => (runningAtEnd = fleet.running));
    expect(runningAtEnd).toBe(0);
    expect(result).toMatchObject({ read: 3, failed: 0, reported: 3 });
    expect(Object.keys(standin!.reports[0]!.reports).sort()).toEqual(leases.map((l) => uuidOf(l.ip)));
    const lines = d.log.find("the report observer failed on this BMC's read; the read counts as it was");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ bmc: '10.0.0.1' });
    expect(await d.registry.getSingleMetricAsString('metal_bmc_report_read_handling_errors_total')).toMatch(/where="observer"} 1$/m);
  });

  it("a report worker's read that rejects for one BMC: that BMC is left out, the cycle waits for the others and reports them", async () => {
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    let running = 0;
    const reader: BmcReader = {
      read: async (lease) => {
        if (lease.ip === '10.0.0.2') {
          setImmediate(release);
          throw new TypeError('pool bug');
        }
        running++;
        await held;
        running--;
        return { ok: true, report: report(lease.ip), vendor: 'test', durationMs: 1, late: false };
      },
    };
    const d = await deps({ reader });
    let runningAtEnd: number | undefined;
    const result = await runReportCycle(d, leases).finally(() => (runningAtEnd = running));
    expect(runningAtEnd).toBe(0);
    expect(result).toMatchObject({ read: 2, failed: 1, reported: 2 });
    const lines = d.log.find("handling this BMC's read failed; it is left out of this report, the cycle goes on");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ bmc: '10.0.0.2' });
    expect(await d.registry.getSingleMetricAsString('metal_bmc_report_read_handling_errors_total')).toMatch(/where="read"} 1$/m);
  });

  it('an observer that throws on the entries metal-api took: the cycle still counts as posted', async () => {
    const d = await deps({ connect: async (ip) => ({ address: ip, vendor: 't', info: async () => report(ip), close: async () => undefined }) as unknown as Outband, observer: { read: () => undefined, reported: () => { throw new Error('status page bug'); } } });
    await expect(runReportCycle(d, leases)).resolves.toMatchObject({ reported: 3 });
    expect(d.log.find('the report observer failed on the entries metal-api took; the report counts as posted')).toHaveLength(1);
  });

  it('an observer that throws on the report body: logged and counted, the report still posted and told', async () => {
    const told: string[] = [];
    const observer = { read: () => undefined, placed: () => { throw new Error('status page bug'); }, reported: (uuids: readonly string[]) => void told.push(...uuids) };
    const d = await deps({ connect: async (ip) => ({ address: ip, vendor: 't', info: async () => report(ip), close: async () => undefined }) as unknown as Outband, observer });
    await expect(runReportCycle(d, leases)).resolves.toMatchObject({ reported: 3 });
    expect(told).toHaveLength(3);
    expect(d.log.find('the report observer failed on the report body; the report goes on')).toHaveLength(1);
    expect(await d.registry.getSingleMetricAsString('metal_bmc_report_read_handling_errors_total')).toMatch(/where="observer"} 1$/m);
  });
});
