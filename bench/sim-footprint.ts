/**
 * Footprint of the simulated fleet (default 1,000 machines in one process): resident memory and
 * CPU time while idle, and the IPMI query rate it sustains on this machine, next to OpenIPMI's
 * ipmi_sim (one process per BMC) measured in the same run. Usage: tsx bench/sim-footprint.ts [N]
 */
import { getChassisStatus } from '../src/ipmi/commands.js';
import { openSession, type IpmiSession } from '../src/ipmi/session.js';
import { mapLimit } from '../src/report/limit.js';
import { startIpmiSim } from '../test/helpers/ipmisim.js';
import { startFleetProcess } from './fleet-process.js';

/** Queries per second over `sessions` cached sessions, `inFlight` at a time, for `seconds`. */
async function queryRate(sessions: IpmiSession[], seconds: number, inFlight: number): Promise<number> {
  let done = 0;
  const until = performance.now() + seconds * 1000;
  await mapLimit(Array.from({ length: inFlight }, (_, i) => i), inFlight, async (w) => {
    while (performance.now() < until) {
      await getChassisStatus(sessions[(w + done) % sessions.length]!);
      done++;
    }
  });
  return done / seconds;
}

export async function benchSimFootprint(n = 1000): Promise<void> {
  const fleet = await startFleetProcess({ count: n });
  const idleSeconds = 10;
  const loadSeconds = 10;
  try {
    await new Promise((r) => setTimeout(r, 2000));
    const before = fleet.usage();
    await new Promise((r) => setTimeout(r, idleSeconds * 1000));
    const idle = fleet.usage();
    const sample = fleet.addresses.slice(0, Math.min(100, n));
    const sessions = await mapLimit(sample, 32, (host) => openSession({ host, port: fleet.ipmiPort, user: fleet.user, password: fleet.password, cipherSuite: 17 }));
    const loadStart = fleet.usage();
    const rate = await queryRate(sessions, loadSeconds, 64);
    const loadEnd = fleet.usage();
    await Promise.all(sessions.map((s) => s.close()));

    const sim = await startIpmiSim({ chassisScript: false });
    const refSession = await openSession({ host: sim.host, port: sim.port, user: sim.user, password: sim.password, cipherSuite: 3 });
    const refRate = await queryRate([refSession], loadSeconds / 2, 64);
    await refSession.close();
    const refRss = sim.usage();
    await sim.stop();

    console.log(`\nsimulated fleet footprint: ${n} machines (IPMI + Redfish + serial line each) in one process`);
    console.log(`  resident memory             ${loadEnd.rssMiB.toFixed(0)} MiB  (${((loadEnd.rssMiB * 1024) / n).toFixed(0)} KiB per machine)`);
    console.log(`  idle CPU                    ${(((idle.cpuSeconds - before.cpuSeconds) / idleSeconds) * 100).toFixed(2)} % of one core over ${idleSeconds} s`);
    console.log(`  IPMI query rate sustained   ${rate.toFixed(0)} Get Chassis Status/s over ${sample.length} sessions, 64 in flight; simulator CPU ${(((loadEnd.cpuSeconds - loadStart.cpuSeconds) / loadSeconds) * 100).toFixed(0)} % of one core`);
    console.log(`reference: OpenIPMI ipmi_sim, one process per BMC, same client, same run`);
    console.log(`  resident memory             ${refRss.rssMiB.toFixed(1)} MiB per BMC -> ${((refRss.rssMiB * n) / 1024).toFixed(1)} GiB for ${n} BMCs (fleet: ${(refRss.rssMiB * 1024 / ((loadEnd.rssMiB * 1024) / n)).toFixed(0)}x less per machine)`);
    console.log(`  IPMI query rate sustained   ${refRate.toFixed(0)} Get Chassis Status/s on one BMC`);
  } finally {
    await fleet.stop();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await benchSimFootprint(Number(process.argv[2] ?? 1000));
}
