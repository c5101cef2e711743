/**
 * A report cycle against simulated BMCs that answer slowly (the simulator's latency model): what
 * one BMC reads goes out together once its answers are slow enough to open a second connection, a
 * BMC that answers sooner is read over one, nothing is read twice (but a GET the BMC leaves unanswered,
 * hedged), and a dead BMC costs its deadline only.
 * The simulator records when each request arrived; no assertion waits for a fixed time.
 */
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Lease } from '../../src/leases/types.js';
import { startMetalApiStandIn, type MetalApiStandIn } from '../../src/metalapi/standin.js';
import { createMetalApiClient } from '../../src/metalapi/client.js';
import { connectOutband } from '../../src/outband/connect.js';
import { sharedTlsStats } from '../../src/redfish/tls-context.js';
import { runReportCycle, type CycleDeps } from '../../src/report/cycle.js';
import { createReportMetrics } from '../../src/report/metrics.js';
import type { Fleet } from '../../src/sim/fleet.js';
import { startTestFleet } from '../helpers/fleet.js';
import { captureLog } from '../helpers/log.js';
import { waitFor } from '../helpers/wait.js';

/** every Redfish answer takes exactly this long (p50 = p99), IPMI answers 2 ms */
const REDFISH_MS = 250;
/**
 * The overlap test's Redfish answers: long beside the stalls of a loaded machine. Its bounds are a
 * whole answer wide, and once, in a full suite on two cores, the loop stalled about half a second
 * (Managers started 978 ms after Systems and Chassis against a bound of 3 x 250 ms); with 600 ms
 * answers the same stall stays inside each bound, and a serialised read still breaks them.
 */
const OVERLAP_MS = 600;
let fleet: Fleet;
let api: MetalApiStandIn;

beforeAll(async () => {
  // Supermicro (IPMI-first fields, $expand), Lenovo ($expand), Gigabyte (no $expand, no Power)
  fleet = await startTestFleet({ count: 3, variants: ['supermicro', 'lenovo', 'gigabyte'], seed: 'latency-test', recordRequests: true, latency: { redfish: { p50Ms: REDFISH_MS, p99Ms: REDFISH_MS }, ipmi: { p50Ms: 2, p99Ms: 2 } } });
  api = await startMetalApiStandIn({ hmacKey: 'k' });
});
afterAll(async () => {
  await api?.close();
  await fleet?.close();
});

function leases(indices: number[]): Lease[] {
  return indices.map((i) => ({ ip: fleet.machines[i]!.state.address, mac: fleet.machines[i]!.state.mac }) as Lease);
}

/** Connects to a BMC of the fleet as a report cycle does, with `extra` connect options. */
function connector(extra: Partial<Parameters<typeof connectOutband>[0]> = {}): CycleDeps['connect'] {
  return (host, signal, onAnswer) => connectOutband({ host, user: fleet.user, password: fleet.password, ipmiPort: fleet.ipmiPort, redfishPort: fleet.redfishPort, timeoutMs: 20_000, readAhead: true, ...extra, onAnswer, signal });
}

function deps(over: Partial<CycleDeps> = {}): CycleDeps {
  return {
    partitionId: 'p',
    connect: connector(),
    metalApi: createMetalApiClient({ baseUrl: api.url, hmacKey: 'k', timeoutMs: 20_000 }),
    concurrency: 16,
    bmcTimeoutMs: 20_000,
    logger: captureLog('error').logger,
    ...over,
  };
}

function manufacturerOf(i: number): string {
  return fleet.machines[i]!.state.manufacturer;
}

describe('report cycle over slow BMCs', () => {
  it('independent requests of one BMC overlap, and nothing is fetched twice per BMC', async () => {
    fleet.setLatency({ redfish: { p50Ms: OVERLAP_MS, p99Ms: OVERLAP_MS }, ipmi: { p50Ms: 2, p99Ms: 2 } });
    try {
      await overlapAndNoRepeat();
    } finally {
      fleet.setLatency({ redfish: { p50Ms: REDFISH_MS, p99Ms: REDFISH_MS }, ipmi: { p50Ms: 2, p99Ms: 2 } });
    }
  }, 60_000);

  async function overlapAndNoRepeat(): Promise<void> {
    const before = fleet.machines.map((_, i) => fleet.requestLog(i).length);
    // a second connection once a request waited 150 ms for the first: answers of OVERLAP_MS are slow ones
    const result = await runReportCycle(deps({ connect: connector({ redfishOpenConnectionAfterMs: 150 }) }), leases([0, 1, 2]));
    expect(result.read).toBe(3);
    for (let i = 0; i < 3; i++) {
      const log = fleet.requestLog(i).slice(before[i]);
      const redfish = log.filter((r) => r.protocol === 'redfish');
      const gets = redfish.filter((r) => r.what.startsWith('GET ')).map((r) => r.what);
      // nothing twice: every GET path once (a refused $expand would show as a different path)
      expect(new Set(gets).size, `${manufacturerOf(i)}: ${gets.join(', ')}`).toBe(gets.length);
      const at = (what: RegExp) => redfish.find((r) => what.test(r.what))?.atMs;
      const login = at(/^POST \/redfish\/v1\/SessionService\/Sessions$/)!;
      const root = at(/^GET \/redfish\/v1\/$/)!;
      const [systems, chassis, managers] = [/^GET \/redfish\/v1\/Systems(\?|$)/, /^GET \/redfish\/v1\/Chassis(\?|$)/, /^GET \/redfish\/v1\/Managers(\?|$)/].map(at);
      expect([systems, chassis, managers].every((t) => t !== undefined), `${manufacturerOf(i)}: ${gets.join(', ')}`).toBe(true);
      // each group started together: closer to each other than one answer takes. Two connections
      // per BMC: Systems and Chassis (the critical path) go first, Managers once they are in
      // (behind the System's and the Chassis' own reads where there is no $expand)
      expect(Math.abs(root - login)).toBeLessThan(OVERLAP_MS);
      expect(Math.abs(systems! - chassis!)).toBeLessThan(OVERLAP_MS);
      expect(managers! - Math.max(systems!, chassis!)).toBeGreaterThanOrEqual(OVERLAP_MS - 5);
      expect(managers! - Math.max(systems!, chassis!)).toBeLessThan(3 * OVERLAP_MS);
      // and the collections waited for the root, not for each other
      expect(Math.min(systems!, chassis!) - root).toBeGreaterThanOrEqual(OVERLAP_MS - 5);
      // the power data waited for Systems and Chassis, not for the Managers collection behind them
      const power = at(/^GET \/redfish\/v1\/Chassis\/[^/]+\/Power$/);
      if (manufacturerOf(i) !== 'Gigabyte') {
        expect(power, `${manufacturerOf(i)}: ${gets.join(', ')}`).toBeDefined();
        expect(power! - Math.max(systems!, chassis!)).toBeLessThan(2 * OVERLAP_MS);
      }
      // IPMI ran beside Redfish: its first datagram arrived before the login's answer could have
      const firstIpmi = log.find((r) => r.protocol === 'ipmi')!.atMs;
      expect(firstIpmi - login).toBeLessThan(OVERLAP_MS);
      // $expand where the service offers it: the members were not read on their own
      if (manufacturerOf(i) !== 'Gigabyte') {
        expect(gets.some((g) => g.includes('$expand'))).toBe(true);
        expect(gets.filter((g) => /^GET \/redfish\/v1\/(Systems|Managers|Chassis)\/[^/?]+$/.test(g))).toEqual([]);
      }
    }
  }

  it('a GET a BMC leaves unanswered is sent again (a hedge) and its BMC reported in the cycle; the hedge is counted', async () => {
    const lenovo = 1;
    const before = fleet.requestLog(lenovo).length;
    const registry = new Registry();
    fleet.setFaults([lenovo], { redfishStraggler: '/redfish/v1/Systems' });
    try {
      // answers take 250 ms: within the 500 ms hedge time, so the BMC is not slow as a whole
      const result = await runReportCycle(deps({ connect: connector({ redfishHedgeAfterMs: 500, redfishOpenConnectionAfterMs: 150 }), metrics: createReportMetrics(registry) }), leases([lenovo]));
      expect(result).toMatchObject({ read: 1, failed: 0 });
    } finally {
      fleet.clearFaults();
    }
    const systems = fleet.requestLog(lenovo).slice(before).filter((r) => /^GET \/redfish\/v1\/Systems(\?|$)/.test(r.what));
    expect(systems).toHaveLength(2);
    // the second copy went out once the first had waited the hedge time (a lower bound: load only
    // delays it; the margin is for the first copy's way to the simulator)
    expect(systems[1]!.atMs - systems[0]!.atMs).toBeGreaterThanOrEqual(500 - 50);
    expect(await registry.getSingleMetricAsString('metal_bmc_redfish_hedges_total')).toMatch(/outcome="won"} 1$/m);
  });

  it('a BMC whose answers come sooner than the default wait for a second connection is read over one TLS connection', async () => {
    const before = sharedTlsStats().connections;
    const result = await runReportCycle(deps(), leases([0, 1, 2]));
    expect(result.read).toBe(3);
    expect(sharedTlsStats().connections - before).toBe(3);
  });

  it('a dead BMC costs its deadline only; retried once when the cycle has room for another deadline', async () => {
    fleet.setLatency({ redfish: { p50Ms: 20, p99Ms: 20 }, deadShare: 1 / 3 });
    try {
      const dead = fleet.machines.findIndex((m) => m.state.timing?.latency?.fate === 'dead');
      expect(dead).toBeGreaterThanOrEqual(0);
      const deadline = 1500;
      // when each BMC's read ended, from the cycle's start
      const ended: Array<{ ok: boolean; atMs: number }> = [];
      let cycleStart = 0;
      const observer = { read: (_l: unknown, r: { ok: boolean }) => void ended.push({ ok: r.ok, atMs: Date.now() - cycleStart }), reported: () => undefined };
      cycleStart = Date.now();
      const once = await runReportCycle(deps({ bmcTimeoutMs: deadline, observer }), leases([0, 1, 2]));
      expect(once).toMatchObject({ read: 2, failed: 1, retried: 0 });
      // the dead one cost its deadline (more only by the loop's stall it is given back, on a loaded machine)
      expect(once.durationMs).toBeGreaterThanOrEqual(deadline);
      // and the live BMCs did not wait for it: both were read before its deadline was up
      expect(ended.filter((e) => e.ok).map((e) => e.atMs < deadline)).toEqual([true, true]);
      const twice = await runReportCycle(deps({ bmcTimeoutMs: deadline, cycleBudgetMs: 60_000 }), leases([0, 1, 2]));
      expect(twice).toMatchObject({ read: 2, failed: 1, retried: 1 });
      expect(twice.durationMs).toBeGreaterThanOrEqual(2 * deadline);
    } finally {
      fleet.setLatency({ redfish: { p50Ms: REDFISH_MS, p99Ms: REDFISH_MS }, ipmi: { p50Ms: 2, p99Ms: 2 } });
    }
  });

  it('a stalled event loop is given back to the BMCs that answered, not to a dead one', async () => {
    fleet.setLatency({ redfish: { p50Ms: 20, p99Ms: 20 }, deadShare: 1 / 3 });
    try {
      const dead = fleet.machines.findIndex((m) => m.state.timing?.latency?.fate === 'dead');
      const deadIp = fleet.machines[dead]!.state.address;
      const deadline = 1000;
      const ended = new Map<string, number>();
      const observer: CycleDeps['observer'] = { read: (lease) => void ended.set(lease.ip, performance.now()), reported: () => undefined };
      // the loop busy elsewhere past every deadline (in a real cycle: other BMCs' TLS and JSON), from
      // the moment the dead BMC has its read's two requests (the login and the service root, one per
      // connection): its connections, its last signs of life, are made by then, and no live BMC's
      // read, several 20 ms round trips long, is done
      const askedBefore = fleet.requestLog(dead).length;
      let stallEnd = 0;
      const stall = setInterval(() => {
        if (fleet.requestLog(dead).slice(askedBefore).filter((r) => r.protocol === 'redfish').length < 2) return;
        clearInterval(stall);
        const until = performance.now() + 1200;
        while (performance.now() < until);
        stallEnd = performance.now();
      }, 1);
      // both Redfish connections open as the read starts (a second one opened later, after the stall, would be a sign of life of the dead BMC after it)
      const cycle = await runReportCycle(deps({ bmcTimeoutMs: deadline, observer, connect: connector({ redfishOpenConnectionAfterMs: 0 }) }), leases([0, 1, 2]));
      clearInterval(stall);
      expect(stallEnd).toBeGreaterThan(0);
      // the live BMCs' answers waited through the stall: their deadlines were given it back, and they were read
      expect(cycle).toMatchObject({ read: 2, failed: 1 });
      const live = [...ended].filter(([ip]) => ip !== deadIp).map(([, at]) => at);
      expect(live.map((at) => at > stallEnd)).toEqual([true, true]);
      // the dead BMC, silent since its connections were made, failed in the loop's first turn after the stall, not up to a deadline later
      expect(ended.get(deadIp)! - stallEnd).toBeLessThan(deadline / 2);
    } finally {
      fleet.setLatency({ redfish: { p50Ms: REDFISH_MS, p99Ms: REDFISH_MS }, ipmi: { p50Ms: 2, p99Ms: 2 } });
    }
  });

  it('a read cut off by its deadline at any point leaves no Redfish session open on its BMC', async () => {
    // deadlines that end reads during the login, vendor detection, the inventory and the IPMI reads
    for (const bmcTimeoutMs of [300, 450, 600, 750, 900, 1100, 1400]) await runReportCycle(deps({ bmcTimeoutMs }), leases([0, 1, 2]));
    // the connections of cut-off reads close in the background: each logout takes one slow answer
    await waitFor(() => fleet.machines.every((_, i) => fleet.redfish!.openSessions(i) === 0), 15_000, 'every session logged out');
  });
});
