/**
 * Footprint of the simulated fleet (default 1,000 machines in one process): resident memory and
 * CPU time while idle, and the IPMI query rate it sustains on this machine, next to OpenIPMI's
 * ipmi_sim (one process per BMC) measured in the same run. The rate comparison is equal work:
 * one session, cipher suite 3 (ipmi_sim has no suite 17), the same number in flight, the same
 * time, the same client; the fleet-wide rate over many sessions has no ipmi_sim counterpart.
 * Usage: npm run bench -- sim-footprint [N] (N simulated machines, default 1,000)
 */
import { getChassisStatus } from '../src/ipmi/commands.js';
import { openSession, type IpmiSession } from '../src/ipmi/session.js';
import { mapLimit } from '../src/report/limit.js';
import { startIpmiSim } from '../test/helpers/ipmisim.js';
import { startFleetProcess } from './fleet-process.js';
import { begin } from './results.js';

const SETTLE_SECONDS = 2;
const IDLE_SECONDS = 10;
const LOAD_SECONDS = 10;
const IN_FLIGHT = 64;
const FLEET_SESSIONS = 100;
/** the suite both simulators speak */
const COMMON_SUITE = 3;

/** Get Chassis Status answers per second over `sessions`, `inFlight` at a time, for about `seconds`; failures apart. */
async function queryRate(sessions: IpmiSession[], seconds: number, inFlight: number): Promise<{ perSecond: number; failures: number; seconds: number }> {
  let done = 0;
  let failures = 0;
  const started = performance.now();
  const until = started + seconds * 1000;
  await mapLimit(
    Array.from({ length: inFlight }, (_, i) => i),
    inFlight,
    async (w) => {
      while (performance.now() < until) {
        try {
          await getChassisStatus(sessions[(w + done) % sessions.length]!);
          done++;
        } catch {
          failures++;
        }
      }
    },
  );
  const elapsed = (performance.now() - started) / 1000;
  return { perSecond: done / elapsed, failures, seconds: elapsed };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function benchSimFootprint(n = 1000): Promise<void> {
  const sampleSize = Math.min(FLEET_SESSIONS, n);
  const out = begin('sim-footprint', `simulated fleet in one process (IPMI + Redfish + serial line per machine) next to OpenIPMI ipmi_sim (one process per BMC)`, {
    machines: n,
    idleSeconds: IDLE_SECONDS,
    loadSeconds: LOAD_SECONDS,
    inFlight: IN_FLIGHT,
    fleetSessions: sampleSize,
    comparisonCipherSuite: COMMON_SUITE,
  });
  const fleet = await startFleetProcess({ count: n });
  try {
    await sleep(SETTLE_SECONDS * 1000);
    const before = fleet.usage();
    await sleep(IDLE_SECONDS * 1000);
    const idle = fleet.usage();

    const connect = (host: string, cipherSuite: number) => openSession({ host, port: fleet.ipmiPort, user: fleet.user, password: fleet.password, cipherSuite });
    const sessions = await mapLimit(fleet.addresses.slice(0, sampleSize), 32, (host) => connect(host, 17));
    const loadStart = fleet.usage();
    const wide = await queryRate(sessions, LOAD_SECONDS, IN_FLIGHT);
    const loadEnd = fleet.usage();
    await Promise.all(sessions.map((s) => s.close()));

    const one = await connect(fleet.addresses[0]!, COMMON_SUITE);
    const fleetOne = await queryRate([one], LOAD_SECONDS, IN_FLIGHT);
    await one.close();

    const sim = await startIpmiSim({ chassisScript: false });
    let refOne: Awaited<ReturnType<typeof queryRate>>;
    let refRss: number;
    try {
      const refSession = await openSession({ host: sim.host, port: sim.port, user: sim.user, password: sim.password, cipherSuite: COMMON_SUITE });
      refOne = await queryRate([refSession], LOAD_SECONDS, IN_FLIGHT);
      await refSession.close();
      refRss = sim.usage().rssMiB;
    } finally {
      await sim.stop();
    }

    const perMachineKiB = (loadEnd.rssMiB * 1024) / n;
    out.record({ name: `fleet resident memory, ${n} machines, after the query rates below`, value: loadEnd.rssMiB, unit: 'MiB', kind: 'measured' });
    out.record({
      name: 'resident memory per simulated machine',
      value: perMachineKiB,
      unit: 'KiB',
      stat: 'fleet RSS / machines',
      kind: 'measured',
      reference: { name: 'ipmi_sim, one process for one BMC', value: refRss * 1024, kind: 'measured' },
      better: 'lower',
      differs: 'a simulated machine also serves Redfish and a serial line; an ipmi_sim process serves IPMI and SOL for one BMC; RSS counts shared library pages in each ipmi_sim process',
    });
    out.record({
      name: `ipmi_sim processes for ${n} BMCs`,
      value: (refRss * n) / 1024,
      unit: 'GiB',
      kind: 'extrapolated',
      basis: `one ipmi_sim process's RSS (measured) x ${n}; ${n} processes were not started, and shared library pages would be counted once each`,
      detail: true,
    });
    out.record({ name: 'fleet CPU while idle', value: ((idle.cpuSeconds - before.cpuSeconds) / IDLE_SECONDS) * 100, unit: '% of a core', stat: `over ${IDLE_SECONDS} s`, kind: 'measured' });
    out.record({
      name: `IPMI Get Chassis Status rate, one session, ${IN_FLIGHT} in flight, suite ${COMMON_SUITE}`,
      value: fleetOne.perSecond,
      unit: 'queries/s',
      kind: 'measured',
      ...(fleetOne.failures ? { failures: fleetOne.failures } : {}),
      reference: { name: 'ipmi_sim, same client and load', value: refOne.perSecond, kind: 'measured', ...(refOne.failures ? { failures: refOne.failures } : {}) },
      better: 'higher',
    });
    out.record({
      name: `IPMI Get Chassis Status rate over ${sampleSize} sessions to ${sampleSize} machines, ${IN_FLIGHT} in flight, suite 17`,
      value: wide.perSecond,
      unit: 'queries/s',
      kind: 'measured',
      ...(wide.failures ? { failures: wide.failures } : {}),
    });
    out.record({ name: 'fleet CPU during that load', value: ((loadEnd.cpuSeconds - loadStart.cpuSeconds) / wide.seconds) * 100, unit: '% of a core', kind: 'measured', detail: true });
  } finally {
    await fleet.stop();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await benchSimFootprint(Number(process.argv[2] ?? 1000));
}
