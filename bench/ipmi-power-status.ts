/**
 * Power-status queries against ipmi_sim: over one cached session, over a fresh session each
 * (open + query + close), and through `ipmitool power status` (a process, a session and the
 * query each), same BMC, same cipher suite, same run; and ipmitool's process start alone
 * (`ipmitool -V`), which is the part of its time that is not IPMI.
 * Usage: npm run bench -- ipmi-power-status [N] (N queries per scenario, default 200)
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { getChassisStatus } from '../src/ipmi/commands.js';
import { openSession, withSession } from '../src/ipmi/session.js';
import { startIpmiSim } from '../test/helpers/ipmisim.js';
import { latency, timeCounting } from './report.js';
import { begin } from './results.js';

const run = promisify(execFile);
const SUITE = 3;

export async function benchIpmiPowerStatus(n = 200): Promise<void> {
  const out = begin('ipmi-power-status', 'IPMI power status against ipmi_sim, sequential queries, same BMC, same run', { n, cipherSuite: SUITE });
  const sim = await startIpmiSim({ chassisScript: false });
  try {
    const options = { host: sim.host, port: sim.port, user: sim.user, password: sim.password, cipherSuite: SUITE };
    const ipmitool = ['-I', 'lanplus', '-H', sim.host, '-p', String(sim.port), '-U', sim.user, '-P', sim.password, '-C', String(SUITE), 'power', 'status'];
    // warm-up: code paths, page cache
    await withSession(options, (s) => getChassisStatus(s));
    await run('ipmitool', ipmitool);

    const session = await openSession(options);
    const cached = await timeCounting(n, () => getChassisStatus(session));
    await session.close();
    const fresh = await timeCounting(n, () => withSession(options, (s) => getChassisStatus(s)));
    const reference = await timeCounting(n, () => run('ipmitool', ipmitool));
    const processStart = await timeCounting(n, () => run('ipmitool', ['-V']));

    const ipmitoolSide = latency('ipmitool -I lanplus power status', reference);
    out.record({
      ...latency('metal-bmc, new session + query + close', fresh),
      unit: 'ms',
      reference: ipmitoolSide,
      better: 'lower',
      differs: 'the same IPMI exchanges (session open, Get Chassis Status, Close Session); ipmitool also starts a process each time (see its process start below)',
    });
    out.record({
      ...latency('metal-bmc, cached session', cached),
      unit: 'ms',
      reference: ipmitoolSide,
      better: 'lower',
      differs: 'ours sends one request over a session opened once; ipmitool starts a process and opens and closes a session per query',
    });
    out.record({ ...latency('ipmitool process start alone (ipmitool -V)', processStart), unit: 'ms', detail: true });
  } finally {
    await sim.stop();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await benchIpmiPowerStatus(Number(process.argv[2] ?? 200));
}
