/**
 * Power-status queries against ipmi_sim: over one cached session, over a fresh session each
 * (open + query + close), and through `ipmitool power status`, same BMC, same run.
 * Usage: tsx bench/ipmi-power-status.ts [N]
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { getChassisStatus } from '../src/ipmi/commands.js';
import { openSession, withSession } from '../src/ipmi/session.js';
import { startIpmiSim } from '../test/helpers/ipmisim.js';
import { printTable, stats, timeEach } from './report.js';

const run = promisify(execFile);

export async function benchIpmiPowerStatus(n = 200): Promise<void> {
  const sim = await startIpmiSim({ chassisScript: false });
  try {
    const options = { host: sim.host, port: sim.port, user: sim.user, password: sim.password, cipherSuite: 3 as const };
    const ipmitool = ['-I', 'lanplus', '-H', sim.host, '-p', String(sim.port), '-U', sim.user, '-P', sim.password, '-C', '3', 'power', 'status'];
    // warm-up
    await withSession(options, (s) => getChassisStatus(s));
    await run('ipmitool', ipmitool);

    const session = await openSession(options);
    const cached = await timeEach(n, () => getChassisStatus(session));
    await session.close();
    const fresh = await timeEach(n, () => withSession(options, (s) => getChassisStatus(s)));
    const reference = await timeEach(n, () => run('ipmitool', ipmitool));
    printTable(
      `IPMI power status against ipmi_sim (cipher suite 3, ${n} sequential queries each, same BMC, same run)`,
      [
        { name: 'metal-bmc, cached session', s: stats(cached) },
        { name: 'metal-bmc, new session + query + close', s: stats(fresh) },
        { name: 'ipmitool -I lanplus power status', s: stats(reference) },
      ],
      'ipmitool -I lanplus power status',
    );
  } finally {
    await sim.stop();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await benchIpmiPowerStatus(Number(process.argv[2] ?? 200));
}
