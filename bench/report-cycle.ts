/**
 * Full report cycles of the daemon over a simulated fleet (default 1,000 BMCs): discovery from
 * the fleet's lease file, every BMC read through the facade, one POST to the metal-api stand-in
 * (HMAC checked, body validated against the swagger). Wall time per cycle, and heap after each
 * cycle (after a forced GC) to show whether memory stays flat. Reference in the same run: the Go
 * metal-bmc's way of reading Supermicro BMCs, ipmitool processes with at most 20 BMCs at once,
 * measured on the first BMCs of the fleet and extrapolated to the whole fleet.
 * Usage: npm run bench -- report-cycle [N] (N simulated BMCs, default 1,000)
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readLeasesOnce } from '../src/leases/watch.js';
import { createLogger } from '../src/log.js';
import { createMetalApiClient } from '../src/metalapi/client.js';
import { startMetalApiStandIn } from '../src/metalapi/standin.js';
import { connectOutband } from '../src/outband/connect.js';
import { runReportCycle } from '../src/report/cycle.js';
import { mapLimit } from '../src/report/limit.js';
import { startFleetProcess } from './fleet-process.js';
import { IPMITOOL_COMMANDS, viaIpmitool } from './outband-info.js';
import { collectGarbage } from './report.js';
import { begin } from './results.js';

const CYCLES = 3;
const CONCURRENCY = 64;
/** BMCs ipmitool reads for the reference; its time for the whole fleet is extrapolated from them */
const IPMITOOL_BMCS = 100;
/** the Go metal-bmc reads at most 20 BMCs at once */
const IPMITOOL_CONCURRENCY = 20;

export async function benchReportCycle(n = 1000, cycles = CYCLES, concurrency = CONCURRENCY): Promise<void> {
  const out = begin('report-cycle', 'full report cycles over a simulated fleet (lease file -> facade info() of every BMC -> one POST to the metal-api stand-in); simulator in a separate process', {
    bmcs: n,
    cycles,
    concurrency,
    ipmitoolBmcs: Math.min(IPMITOOL_BMCS, n),
    ipmitoolConcurrency: IPMITOOL_CONCURRENCY,
  });
  const dir = mkdtempSync(join(tmpdir(), 'bench-report-'));
  const leaseFile = join(dir, 'dhcpd.leases');
  const fleet = await startFleetProcess({ count: n, leaseFile });
  const api = await startMetalApiStandIn({ hmacKey: 'bench-key' });
  try {
    const leases = await readLeasesOnce(leaseFile, {});
    const deps = {
      partitionId: 'bench',
      connect: (host: string, signal: AbortSignal, onAnswer: () => void) => connectOutband({ host, user: fleet.user, password: fleet.password, ipmiPort: fleet.ipmiPort, redfishPort: fleet.redfishPort, timeoutMs: 20_000, onAnswer, signal }),
      metalApi: createMetalApiClient({ baseUrl: api.url, hmacKey: 'bench-key', timeoutMs: 60_000 }),
      concurrency,
      bmcTimeoutMs: 20_000,
      logger: createLogger({ level: 'error' }),
    };
    const walls: number[] = [];
    const heaps: number[] = [];
    for (let c = 1; c <= cycles; c++) {
      const t = performance.now();
      const r = await runReportCycle(deps, leases);
      const seconds = (performance.now() - t) / 1000;
      walls.push(seconds);
      // the stand-in keeps every body it received; drop them so the heap shows metal-bmc alone
      (api.reports as unknown[]).splice(0);
      (api.requests as unknown[]).splice(0);
      collectGarbage();
      const mem = process.memoryUsage();
      heaps.push(mem.heapUsed / 2 ** 20);
      const failures = r.failed ? { failures: r.failed } : {};
      out.record({ name: `cycle ${c}: wall time, ${leases.length} leases`, value: seconds, unit: 's', kind: 'measured', ...failures });
      out.record({ name: `cycle ${c}: BMCs read per second`, value: r.read / seconds, unit: 'BMCs/s', kind: 'measured', ...failures, detail: true });
      out.record({ name: `cycle ${c}: machines metal-api created or updated`, value: r.created.length + r.updated.length, unit: '', kind: 'measured', detail: true });
      out.record({ name: `cycle ${c}: heap after GC`, value: heaps.at(-1)!, unit: 'MiB', kind: 'measured', detail: true });
      out.record({ name: `cycle ${c}: RSS`, value: mem.rss / 2 ** 20, unit: 'MiB', kind: 'measured', detail: true });
    }

    const sample = leases.slice(0, Math.min(IPMITOOL_BMCS, leases.length));
    let ipmitoolFailures = 0;
    const t = performance.now();
    const readOne = viaIpmitool(fleet);
    await mapLimit(sample, IPMITOOL_CONCURRENCY, (l) =>
      readOne(l.ip).catch(() => {
        ipmitoolFailures++;
      }),
    );
    const sampleSeconds = (performance.now() - t) / 1000;
    const best = Math.min(...walls);
    out.record({
      name: `fastest of ${cycles} cycles, ${leases.length} BMCs`,
      value: best,
      unit: 's',
      kind: 'measured',
      reference: {
        name: `ipmitool processes, ${IPMITOOL_CONCURRENCY} BMCs at once, for ${leases.length} BMCs`,
        value: (sampleSeconds * leases.length) / sample.length,
        ...(sample.length === leases.length ? { kind: 'measured' as const } : { kind: 'extrapolated' as const, basis: `${sample.length} BMCs measured in this run, time x ${leases.length}/${sample.length}` }),
        ...(ipmitoolFailures ? { failures: ipmitoolFailures } : {}),
      },
      better: 'lower',
      differs: `ours reads every BMC through the facade (Redfish inventory + IPMI GUID), ${concurrency} at once, and posts the report to metal-api; ipmitool reads IPMI only (${IPMITOOL_COMMANDS.length} invocations per BMC, as outband-info) and reports nothing`,
    });
    out.record({ name: `ipmitool, ${sample.length} BMCs, ${IPMITOOL_CONCURRENCY} at once`, value: sampleSeconds, unit: 's', kind: 'measured', ...(ipmitoolFailures ? { failures: ipmitoolFailures } : {}), detail: true });
    out.record({ name: `heap after GC, first -> last cycle`, value: heaps.at(-1)! - heaps[0]!, unit: 'MiB', stat: 'growth', kind: 'measured' });
  } finally {
    await api.close();
    await fleet.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await benchReportCycle(Number(process.argv[2] ?? 1000), Number(process.argv[3] ?? CYCLES));
}
