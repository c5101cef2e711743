/**
 * Full report cycles of the daemon over a simulated fleet (default 1,000 BMCs): discovery from
 * the fleet's lease file, every BMC read through the facade, one POST to the metal-api stand-in
 * (HMAC checked, body validated against the swagger). Wall time per cycle and heap after each
 * cycle (after a forced GC) show whether memory stays flat. Reference in the same run: the Go
 * metal-bmc's way of reading BMCs, ipmitool processes with at most 20 BMCs at once, on a sample.
 * Usage: tsx bench/report-cycle.ts [N] [CYCLES]
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { readLeasesOnce } from '../src/leases/watch.js';
import { createLogger } from '../src/log.js';
import { createMetalApiClient } from '../src/metalapi/client.js';
import { startMetalApiStandIn } from '../src/metalapi/standin.js';
import { connectOutband } from '../src/outband/connect.js';
import { runReportCycle } from '../src/report/cycle.js';
import { mapLimit } from '../src/report/limit.js';
import { startFleetProcess } from './fleet-process.js';

const run = promisify(execFile);
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

export async function benchReportCycle(n = 1000, cycles = 3, concurrency = 64): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-report-'));
  const leaseFile = join(dir, 'dhcpd.leases');
  const fleet = await startFleetProcess({ count: n, leaseFile });
  const api = await startMetalApiStandIn({ hmacKey: 'bench-key' });
  try {
    const leases = await readLeasesOnce(leaseFile, {});
    const deps = {
      partitionId: 'bench',
      connect: (host: string, signal: AbortSignal) => connectOutband({ host, user: fleet.user, password: fleet.password, ipmiPort: fleet.ipmiPort, redfishPort: fleet.redfishPort, timeoutMs: 20_000, signal }),
      metalApi: createMetalApiClient({ baseUrl: api.url, hmacKey: 'bench-key', timeoutMs: 60_000 }),
      concurrency,
      bmcTimeoutMs: 20_000,
      logger: createLogger({ level: 'error' }),
    };
    console.log(`\nreport cycle over ${leases.length} simulated BMCs (from the fleet's lease file), concurrency ${concurrency}, simulator in a separate process`);
    console.log(`${'cycle'.padEnd(8)} ${'wall s'.padStart(8)} ${'BMCs/s'.padStart(8)} ${'read'.padStart(6)} ${'failed'.padStart(7)} ${'accepted'.padStart(9)} ${'heap MiB after GC'.padStart(18)} ${'RSS MiB'.padStart(8)}`);
    let best = Infinity;
    for (let c = 1; c <= cycles; c++) {
      const t = performance.now();
      const r = await runReportCycle(deps, leases);
      const seconds = (performance.now() - t) / 1000;
      best = Math.min(best, seconds);
      // the stand-in keeps every body it received; drop them so the heap shows metal-bmc alone
      (api.reports as unknown[]).splice(0);
      (api.requests as unknown[]).splice(0);
      gc();
      const mem = process.memoryUsage();
      console.log(`${String(c).padEnd(8)} ${seconds.toFixed(2).padStart(8)} ${(leases.length / seconds).toFixed(0).padStart(8)} ${String(r.read).padStart(6)} ${String(r.failed).padStart(7)} ${String(r.created.length + r.updated.length).padStart(9)} ${(mem.heapUsed / 2 ** 20).toFixed(1).padStart(18)} ${(mem.rss / 2 ** 20).toFixed(0).padStart(8)}`);
    }
    const sample = leases.slice(0, Math.min(100, leases.length));
    const t = performance.now();
    await mapLimit(sample, 20, async (l) => {
      const base = ['-I', 'lanplus', '-C', '17', '-H', l.ip, '-p', String(fleet.ipmiPort), '-U', fleet.user, '-P', fleet.password];
      for (const cmd of [['mc', 'info'], ['mc', 'guid'], ['chassis', 'status'], ['fru', 'print', '0']]) await run('ipmitool', [...base, ...cmd]).catch(() => undefined);
    });
    const perBmc = (performance.now() - t) / 1000 / sample.length;
    const extrapolated = perBmc * leases.length;
    console.log(`reference: ipmitool processes, 20 BMCs at once (as the Go metal-bmc probes), ${sample.length} BMCs measured: ${(1 / perBmc).toFixed(0)} BMCs/s, ${extrapolated.toFixed(1)} s for ${leases.length} BMCs extrapolated -> metal-bmc best cycle ${(extrapolated / best).toFixed(1)}x faster`);
  } finally {
    await api.close();
    await fleet.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await benchReportCycle(Number(process.argv[2] ?? 1000), Number(process.argv[3] ?? 3));
}
