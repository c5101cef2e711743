/**
 * A quick cycle (a new or changed lease, for a few BMCs) whose report metal-api refused was not
 * queued again: the new BMCs waited for the next full interval (5 min by default). It is now run
 * again after a backoff. And metal-api's create stores only the BMC's address, so the BMCs of
 * machines a quick cycle created are reported once more at once, for their FRU and power data.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { Lease } from '../../src/leases/types.js';
import { createMetalApiClient } from '../../src/metalapi/client.js';
import { startMetalApiStandIn, type MetalApiStandIn } from '../../src/metalapi/standin.js';
import type { MachineIpmiReportResponse, MachineIpmiReports } from '../../src/metalapi/types.js';
import type { BmcReport, Outband } from '../../src/outband/types.js';
import type { CycleDeps } from '../../src/report/cycle.js';
import { createQuickRetry, createReporter, type Reporter } from '../../src/report/reporter.js';
import { captureLog } from '../helpers/log.js';

let standin: MetalApiStandIn | undefined;
let reporter: Reporter | undefined;
afterEach(async () => {
  await reporter?.stop();
  reporter = undefined;
  await standin?.close();
  standin = undefined;
  vi.useRealTimers();
});

const uuidOf = (ip: string) => `00000000-0000-4000-8000-${ip.split('.')[3]!.padStart(12, '0')}`;
const lease = (i: number): Lease => ({ ip: `10.0.2.${i}`, mac: `aa:bb:cc:00:02:${i.toString(16).padStart(2, '0')}`, expires: 'never' });
const report = (uuid: string): BmcReport => ({
  uuid,
  bmcVersion: '1.0',
  biosVersion: '2.1',
  fru: { product_serial: `S-${uuid.slice(-4)}`, board_mfg: 'Supermicro' },
  powerState: 'ON',
  indicatorLED: 'LED-OFF',
  powerSupplies: [],
  source: 'ipmi',
  missing: [],
});
const connect: CycleDeps['connect'] = async (ip) => ({ address: ip, vendor: 'test', info: async () => report(uuidOf(ip)), close: async () => undefined }) as unknown as Outband;

/** The stand-in's next accepted report that `match` takes. */
function nextReport(api: MetalApiStandIn, match: (body: MachineIpmiReports, answer: MachineIpmiReportResponse) => boolean): Promise<{ body: MachineIpmiReports; answer: MachineIpmiReportResponse }> {
  return new Promise((resolve) => {
    const on = (body: MachineIpmiReports, answer: MachineIpmiReportResponse): void => {
      if (!match(body, answer)) return;
      api.off('report', on);
      resolve({ body, answer });
    };
    api.on('report', on);
  });
}

const names = (body: MachineIpmiReports) => Object.keys(body.reports).sort();

async function startReporter(api: MetalApiStandIn, view: () => readonly Lease[], quickRetryMs = 40) {
  const log = captureLog();
  // no retries of the client's own: the stand-in's 500 ends the report post, as metal-api's last one would
  const metalApi = createMetalApiClient({ baseUrl: api.url, hmacKey: 'k', retries: 0 });
  // an hour: a report within the test is the quick cycle's or its retry's, never the interval's
  const r = createReporter({ partitionId: 'p', connect, metalApi, concurrency: 4, bmcTimeoutMs: 5000, logger: log.logger, intervalMs: 3_600_000, quickRetryMs, leases: view });
  r.start();
  await r.idle();
  return { r, log };
}

describe('quick cycles', () => {
  it('a quick cycle metal-api answered 500 is run again for its BMCs after the backoff, not at the next interval', async () => {
    standin = await startMetalApiStandIn({ hmacKey: 'k' });
    let view = [lease(1), lease(2)];
    const started = await startReporter(standin, () => view);
    reporter = started.r;
    // the full cycle at start, and its follow-up for the machines it created
    expect(standin.reports).toHaveLength(2);

    view = [...view, lease(3)];
    standin.setFailures(1, 500);
    const retried = nextReport(standin, (body) => uuidOf(lease(3).ip) in body.reports);
    reporter.leasesChanged([lease(3)]);
    const { body, answer } = await retried;
    // the subset only, and metal-api took it
    expect(names(body)).toEqual([uuidOf(lease(3).ip)]);
    expect(answer.created).toEqual([uuidOf(lease(3).ip)]);
    expect(standin.requests.map((q) => q.status)).toEqual([200, 200, 500, 200]);
    const failed = started.log.find('report cycle failed; its BMCs are read again after the backoff');
    expect(failed).toHaveLength(1);
    expect(failed[0]).toMatchObject({ trigger: 'leases', bmcs: 1, retryInMs: 40 });
  });

  it('the backoff doubles for each failure in a row', async () => {
    standin = await startMetalApiStandIn({ hmacKey: 'k' });
    let view = [lease(1)];
    const started = await startReporter(standin, () => view, 20);
    reporter = started.r;
    view = [...view, lease(4)];
    standin.setFailures(3, 503);
    const through = nextReport(standin, (body) => uuidOf(lease(4).ip) in body.reports);
    reporter.leasesChanged([lease(4)]);
    await through;
    expect(started.log.find('report cycle failed; its BMCs are read again after the backoff').map((l) => l.retryInMs)).toEqual([20, 40, 80]);
  });

  it('a lease gone before its retry is not read again', async () => {
    standin = await startMetalApiStandIn({ hmacKey: 'k' });
    const view = [lease(1), lease(5)];
    const started = await startReporter(standin, () => view);
    reporter = started.r;
    standin.setFailures(1, 500);
    const retried = nextReport(standin, () => true);
    // lease 6 is in the quick cycle but gone from the view by its retry; lease 5 stays
    reporter.leasesChanged([lease(6), lease(5)]);
    const { body } = await retried;
    expect(started.log.find('report cycle failed; its BMCs are read again after the backoff')[0]).toMatchObject({ bmcs: 2 });
    expect(names(body)).toEqual([uuidOf(lease(5).ip)]);
  });

  it("after a quick cycle metal-api answered with created machines, their BMCs are reported once more, which brings their FRU; a follow-up's own creates are not followed up", async () => {
    standin = await startMetalApiStandIn({ hmacKey: 'k' });
    let view = [lease(1)];
    const started = await startReporter(standin, () => view);
    reporter = started.r;
    const api = standin;
    const uuid = uuidOf(lease(7).ip);
    // the stimulus for the bound: metal-api loses the machine after creating it, so the follow-up creates it again
    let lost = false;
    api.on('report', (_body, answer) => {
      if (answer.created.includes(uuid) && !lost) {
        lost = true;
        api.machines.delete(uuid);
        api.partitions.delete(uuid);
      }
    });
    // the initial full cycle's report and its follow-up are the first two, the quick cycle's the third
    const followUp = nextReport(api, (body) => uuid in body.reports && api.reports.length === 4);
    view = [...view, lease(7), lease(8)];
    reporter.leasesChanged([lease(7), lease(8)]);
    const second = await followUp;
    await reporter.idle();
    expect(second.answer.created).toEqual([uuid]);
    const quick = api.reports.slice(2);
    expect(quick.map(names)).toEqual([[uuidOf(lease(7).ip), uuidOf(lease(8).ip)].sort(), [uuidOf(lease(7).ip), uuidOf(lease(8).ip)].sort()]);
    // lease 8's machine, created by the quick cycle, has its FRU from the follow-up
    expect(api.machines.get(uuidOf(lease(8).ip))?.fru).toMatchObject({ product_serial: `S-${uuidOf(lease(8).ip).slice(-4)}`, board_mfg: 'Supermicro' });
    expect(api.machines.get(uuidOf(lease(8).ip))?.bmcversion).toBe('1.0');
    expect(started.log.find('reporting the BMCs of machines metal-api created once more: its create stores only their address')).toEqual([expect.objectContaining({ bmcs: 1, created: 1 }), expect.objectContaining({ bmcs: 2, created: 2 })]);
  });

  it("a full cycle's created machines are reported once more too (a new partition's first cycle creates them all); the follow-up's report creates none and queues nothing", async () => {
    standin = await startMetalApiStandIn({ hmacKey: 'k' });
    const view = [lease(9), lease(10)];
    const started = await startReporter(standin, () => view);
    reporter = started.r;
    const [full, followUp] = standin.reports;
    expect(standin.reports).toHaveLength(2);
    expect(names(full!)).toEqual(names(followUp!));
    // the create stored the address only; the follow-up brought the FRU and the versions
    for (const l of view) {
      expect(standin.machines.get(uuidOf(l.ip))?.fru).toMatchObject({ board_mfg: 'Supermicro' });
      expect(standin.machines.get(uuidOf(l.ip))?.bmcversion).toBe('1.0');
    }
    expect(started.log.find('reporting the BMCs of machines metal-api created once more: its create stores only their address')).toEqual([expect.objectContaining({ bmcs: 2, created: 2 })]);
    expect(started.log.find('report cycle done').map((l) => l.trigger)).toEqual(['interval', 'leases']);
  });

  it('the interval bounds the backoff, and a full cycle that got through leaves nothing to retry', () => {
    vi.useFakeTimers();
    const handedBack: Lease[][] = [];
    const retry = createQuickRetry(10_000, 25_000, (leases) => handedBack.push(leases));
    expect(retry.failed([lease(1)])).toBe(10_000);
    vi.advanceTimersByTime(10_000);
    expect(retry.failed([lease(1)])).toBe(20_000);
    vi.advanceTimersByTime(20_000);
    expect(retry.failed([lease(1)])).toBe(25_000);
    vi.advanceTimersByTime(25_000);
    expect(handedBack).toHaveLength(3);
    expect(retry.failed([lease(2)])).toBe(25_000);
    retry.covered();
    vi.advanceTimersByTime(60_000);
    expect(handedBack).toHaveLength(3);
    expect(retry.failed([lease(2)])).toBe(10_000);
    retry.cancel();
  });
});
