/**
 * A BMC's lasting failure or skip in report cycles against the simulator and the metal-api
 * stand-in: a partition with dozens of dead or IPMI-only BMCs logged one warning per BMC every
 * cycle, which buried real events. The first occurrence is logged, a change of error at once, the
 * same condition again only after the repeat interval (with the cycles not logged), the BMC's return
 * in one info line; the metrics count every cycle. The same with reads in report worker threads,
 * through the reporter as the daemon wires it.
 */
import { createLoginBudget, loginBudgetKey, processLoginBudget } from '../../src/redfish/login-budget.js';
import { Registry } from 'prom-client';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Lease } from '../../src/leases/types.js';
import { createMetalApiClient } from '../../src/metalapi/client.js';
import { startMetalApiStandIn, type MetalApiStandIn } from '../../src/metalapi/standin.js';
import { connectOutband } from '../../src/outband/connect.js';
import { createBmcConditions, type BmcConditions } from '../../src/report/bmc-conditions.js';
import { runReportCycle, type CycleDeps } from '../../src/report/cycle.js';
import { createReportMetrics } from '../../src/report/metrics.js';
import { createReporter } from '../../src/report/reporter.js';
import { createReportWorkerPool, type ReportWorkerPool } from '../../src/report/worker-pool.js';
import type { Fleet } from '../../src/sim/fleet.js';
import { startTestFleet } from '../helpers/fleet.js';
import { captureLog, type CapturedLog } from '../helpers/log.js';
import { manualClock } from '../helpers/manual-clock.js';

const CANNOT_READ = 'cannot read BMC, skipped in this report';
const UNCONFIRMED = 'BMC read over IPMI alone gives a machine UUID no earlier read confirmed, skipped in this report';
const READ_AGAIN = 'BMC read again after it failed or was skipped; its entry is back in the report';
const HOUR = 3_600_000;

let fleet: Fleet;
let api: MetalApiStandIn;
const pools: ReportWorkerPool[] = [];

beforeAll(async () => {
  fleet = await startTestFleet({ count: 2, variants: ['lenovo'], seed: 'report-repeat-log' });
  api = await startMetalApiStandIn({ hmacKey: 'k' });
});
// a BMC whose Redfish was off may still refuse a connection in the next test's first cycle (the
// simulator opens its listener again within 100 ms): each test asserts only on the BMCs it faults
afterEach(() => fleet.clearFaults());
afterAll(async () => {
  await Promise.all(pools.map((p) => p.close()));
  await api?.close();
  await fleet?.close();
});

/** a login budget that forgets every refusal at once */
const noHold = createLoginBudget({ windowMs: 1 });
const leases = (): Lease[] => fleet.machines.map((m) => ({ ip: m.state.address, mac: m.state.mac, expires: 'never' }));
const ipOf = (i: number) => fleet.machines[i]!.state.address;
/** the lines of message `msg` about BMC `i` */
const linesOf = (log: CapturedLog, msg: string, i: number) => log.find(msg).filter((l) => l.bmc === ipOf(i));

function deps(log: CapturedLog, registry: Registry, conditions?: BmcConditions): CycleDeps {
  return {
    partitionId: 'p',
    // refused Redfish logins held back for no time: the login budget (redfish-login-budget.test.ts) would hold a
    // BMC whose password works again for its 15 min window, and its reads would go to IPMI alone meanwhile
    connect: (host, signal, onAnswer) => connectOutband({ host, user: fleet.user, password: fleet.password, ipmiPort: fleet.ipmiPort, redfishPort: fleet.redfishPort, timeoutMs: 5000, readAhead: true, logger: log.logger, onAnswer, signal, redfishLoginBudget: noHold }),
    metalApi: createMetalApiClient({ baseUrl: api.url, hmacKey: 'k', retries: 0 }),
    concurrency: 2,
    // a dead BMC costs its deadline each cycle; the live one's first contact needs it under a loaded CI
    bmcTimeoutMs: 3000,
    logger: log.logger,
    metrics: createReportMetrics(registry),
    ...(conditions ? { conditions } : {}),
  };
}

describe('a BMC whose condition lasts over report cycles (reads in the main thread)', () => {
  it('a dead BMC over three cycles: one warning, three failures counted; an hour on a reminder with the cycles not logged; another error at once; its return one info line', async () => {
    const log = captureLog();
    const registry = new Registry();
    const clock = manualClock();
    const d = deps(log, registry, createBmcConditions({ now: clock.now }));
    fleet.setFaults([0], { noAnswer: true });
    for (let c = 0; c < 3; c++) {
      await runReportCycle(d, leases());
      clock.advance(300_000);
    }
    const dead = linesOf(log, CANNOT_READ, 0);
    expect(dead).toHaveLength(1);
    // the first line as it always was
    expect(dead[0]).toMatchObject({ level: 40, bmc: ipOf(0), mac: fleet.machines[0]!.state.mac, code: 'TIMEOUT' });
    expect(dead[0]).not.toHaveProperty('repeated');
    expect(await registry.getSingleMetricAsString('metal_bmc_bmc_read_failures_total')).toMatch(/code="TIMEOUT"} 3$/m);

    // an hour after its line: once more, naming the two cycles not logged
    clock.advance(HOUR);
    await runReportCycle(d, leases());
    expect(linesOf(log, CANNOT_READ, 0)).toHaveLength(2);
    expect(linesOf(log, CANNOT_READ, 0)[1]).toMatchObject({ code: 'TIMEOUT', repeated: true, quietCycles: 2, forMs: HOUR + 3 * 300_000 });
    expect(await registry.getSingleMetricAsString('metal_bmc_bmc_read_failures_total')).toMatch(/code="TIMEOUT"} 4$/m);

    // it answers again, with another password: another error, logged at once, then quiet
    fleet.setFaults([0], { noAnswer: false, wrongCredentials: true });
    await runReportCycle(d, leases());
    clock.advance(300_000);
    await runReportCycle(d, leases());
    const lines = linesOf(log, CANNOT_READ, 0);
    expect(lines.map((l) => l.code)).toEqual(['TIMEOUT', 'TIMEOUT', 'AUTH_FAILED']);
    expect(lines[2]).toMatchObject({ previous: 'TIMEOUT' });
    expect(await registry.getSingleMetricAsString('metal_bmc_bmc_read_failures_total')).toMatch(/code="AUTH_FAILED"} 2$/m);

    // back: one info line naming what it was and since when, then nothing
    fleet.clearFaults();
    const before = api.reports.length;
    await runReportCycle(d, leases());
    await runReportCycle(d, leases());
    expect(Object.keys(api.reports[before]!.reports)).toContain(fleet.machines[0]!.state.uuid);
    const back = linesOf(log, READ_AGAIN, 0);
    expect(back).toHaveLength(1);
    expect(back[0]).toMatchObject({ level: 30, was: 'AUTH_FAILED', forMs: HOUR + 4 * 300_000, cycles: 6 });
    expect(linesOf(log, CANNOT_READ, 0)).toHaveLength(3);
  }, 60_000);

  it('an IPMI-only BMC whose UUID no read with Redfish confirmed (auto mode) is left out every cycle with one warning; each skip counted', async () => {
    const log = captureLog();
    const registry = new Registry();
    const d = deps(log, registry, createBmcConditions());
    fleet.setFaults([1], { redfishDisabled: true });
    for (let c = 0; c < 3; c++) await runReportCycle(d, leases());
    expect(linesOf(log, UNCONFIRMED, 1)).toHaveLength(1);
    expect(await registry.getSingleMetricAsString('metal_bmc_bmcs_skipped_total')).toMatch(/reason="unconfirmed-ipmi-uuid"} 3$/m);
  }, 30_000);

  it('METAL_BMC_REPORT_REPEAT_LOG_INTERVAL 0: a warning every cycle, as without de-duplication, and the return still one info line', async () => {
    const log = captureLog();
    const d = deps(log, new Registry(), createBmcConditions({ repeatIntervalMs: 0 }));
    fleet.setFaults([0], { wrongCredentials: true });
    for (let c = 0; c < 3; c++) await runReportCycle(d, leases());
    expect(linesOf(log, CANNOT_READ, 0).map((l) => l.quietCycles)).toEqual([undefined, 0, 0]);
    fleet.clearFaults();
    await runReportCycle(d, leases());
    expect(linesOf(log, READ_AGAIN, 0)).toMatchObject([{ was: 'AUTH_FAILED', cycles: 3 }]);
  }, 30_000);
});

describe('a BMC whose condition lasts, read in report worker threads through the reporter', () => {
  it('a BMC with a wrong password over three cycles: one warning in the main thread, three failures counted; its return one info line', async () => {
    const log = captureLog();
    const registry = new Registry();
    const workers = createReportWorkerPool({ workers: 2, settings: { user: fleet.user, password: fleet.password, ipmiPort: fleet.ipmiPort, redfishPort: fleet.redfishPort, timeoutMs: 5000 }, logger: log.logger });
    pools.push(workers);
    // no connect here: every read goes to the workers; the memory of conditions is the reporter's own, as in the daemon
    const reporter = createReporter({
      ...deps(log, registry),
      connect: () => Promise.reject(new Error('read in the main thread')),
      reader: workers,
      intervalMs: HOUR,
      leases,
    });
    try {
      fleet.setFaults([0], { wrongCredentials: true });
      for (let c = 0; c < 3; c++) {
        reporter.leasesChanged(leases());
        await reporter.idle();
      }
      expect(reporter.cyclesRun).toBe(3);
      expect(workers.stats().reduce((n, s) => n + s.reads, 0)).toBe(6);
      expect(linesOf(log, CANNOT_READ, 0).map((l) => l.code)).toEqual(['AUTH_FAILED']);
      expect(await registry.getSingleMetricAsString('metal_bmc_bmc_read_failures_total')).toMatch(/code="AUTH_FAILED"} 3$/m);
      fleet.clearFaults();
      // the workers' refusals count in the main thread's budget, which would hold the login for its 15 min window
      processLoginBudget.taken(loginBudgetKey(ipOf(0), fleet.redfishPort, fleet.user, fleet.password));
      reporter.leasesChanged(leases());
      await reporter.idle();
      expect(linesOf(log, READ_AGAIN, 0)).toMatchObject([{ was: 'AUTH_FAILED', cycles: 3 }]);
    } finally {
      await reporter.stop();
    }
  }, 30_000);
});
