/**
 * Full info() of a simulated fleet (default 1,000 BMCs) with bounded concurrency: over the
 * facade (Redfish first, IPMI for evidence and gaps) and over IPMI alone; and the reference,
 * ipmitool reading the same IPMI data (mc info, mc guid, chassis status, fru print) for a
 * sample of the fleet with the same concurrency. Usage: tsx bench/outband-info.ts [N] [CONCURRENCY]
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { connectOutband, type Protocol } from '../src/outband/connect.js';
import { mapLimit } from '../src/report/limit.js';
import { startFleetProcess, withPeakRss, type FleetProcess } from './fleet-process.js';

const run = promisify(execFile);

async function readAll(fleet: FleetProcess, addresses: string[], protocol: Protocol, concurrency: number) {
  let failed = 0;
  const started = performance.now();
  const { peakRssMiB } = await withPeakRss(() =>
    mapLimit(addresses, concurrency, async (host) => {
      try {
        const bmc = await connectOutband({ host, user: fleet.user, password: fleet.password, protocol, ipmiPort: fleet.ipmiPort, redfishPort: fleet.redfishPort, timeoutMs: 20_000 });
        try {
          await bmc.info();
        } finally {
          await bmc.close();
        }
      } catch {
        failed++;
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  return { n: addresses.length, seconds, perSecond: addresses.length / seconds, failed, peakRssMiB };
}

async function ipmitoolAll(fleet: FleetProcess, addresses: string[], concurrency: number) {
  let failed = 0;
  const started = performance.now();
  await mapLimit(addresses, concurrency, async (host) => {
    const base = ['-I', 'lanplus', '-C', '17', '-H', host, '-p', String(fleet.ipmiPort), '-U', fleet.user, '-P', fleet.password];
    try {
      for (const cmd of [['mc', 'info'], ['mc', 'guid'], ['chassis', 'status'], ['fru', 'print', '0']]) await run('ipmitool', [...base, ...cmd]);
    } catch {
      failed++;
    }
  });
  const seconds = (performance.now() - started) / 1000;
  return { n: addresses.length, seconds, perSecond: addresses.length / seconds, failed, peakRssMiB: NaN };
}

export async function benchOutbandInfo(n = 1000, concurrency = 64): Promise<void> {
  const fleet = await startFleetProcess({ count: n });
  try {
    const sample = fleet.addresses.slice(0, Math.min(n, 200));
    const rows = [
      ['metal-bmc facade (Redfish + IPMI evidence)', await readAll(fleet, fleet.addresses, 'auto', concurrency)],
      ['metal-bmc IPMI only', await readAll(fleet, fleet.addresses, 'ipmi', concurrency)],
      [`ipmitool, 4 invocations per BMC (${sample.length} BMCs)`, await ipmitoolAll(fleet, sample, concurrency)],
    ] as const;
    const ref = rows[2][1].perSecond;
    console.log(`\ninfo() of ${n} simulated BMCs, concurrency ${concurrency} (simulator in a separate process)`);
    console.log(`${'scenario'.padEnd(52)} ${'BMCs'.padStart(5)} ${'wall s'.padStart(8)} ${'BMCs/s'.padStart(8)} ${'failed'.padStart(7)} ${'peak RSS MiB'.padStart(13)}  vs ipmitool`);
    for (const [name, r] of rows) {
      console.log(`${name.padEnd(52)} ${String(r.n).padStart(5)} ${r.seconds.toFixed(2).padStart(8)} ${r.perSecond.toFixed(1).padStart(8)} ${String(r.failed).padStart(7)} ${(Number.isNaN(r.peakRssMiB) ? '-' : r.peakRssMiB.toFixed(0)).padStart(13)}  ${(r.perSecond / ref).toFixed(1)}x`);
    }
  } finally {
    await fleet.stop();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await benchOutbandInfo(Number(process.argv[2] ?? 1000), Number(process.argv[3] ?? 64));
}
