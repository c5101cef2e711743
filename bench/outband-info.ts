/**
 * Full info() of a simulated fleet (default 1,000 BMCs) with bounded concurrency: over the
 * facade (Redfish first, IPMI for evidence and gaps) and over IPMI alone; and the reference,
 * ipmitool reading the same IPMI data as our IPMI-only info() (mc info, mc guid, chassis status,
 * fru print, dcmi power reading: one process and one session each) on the first BMCs of the
 * fleet with the same concurrency. A BMC that fails counts as a failure, not in the rate.
 * Usage: npm run bench -- outband-info [N] (N simulated BMCs, default 1,000)
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { connectOutband, type Protocol } from '../src/outband/connect.js';
import { mapLimit } from '../src/report/limit.js';
import { startFleetProcess, withPeakRss, type FleetProcess } from './fleet-process.js';
import { collectGarbage } from './report.js';
import { begin } from './results.js';

const run = promisify(execFile);
const CONCURRENCY = 64;
/** BMCs ipmitool reads (it takes about 15 times as long per BMC) */
const IPMITOOL_BMCS = 200;
/**
 * The IPMI commands of our IPMI-only info(), as ipmitool invocations. `answered`: ipmitool exits
 * with an error when the BMC answers with this completion code, where our info() takes the answer
 * as "no power reading" and goes on; so does the reference.
 */
export const IPMITOOL_COMMANDS: Array<{ args: string[]; answered?: RegExp }> = [
  { args: ['mc', 'info'] },
  { args: ['mc', 'guid'] },
  { args: ['chassis', 'status'] },
  { args: ['fru', 'print', '0'] },
  { args: ['dcmi', 'power', 'reading'], answered: /DCMI request failed because: Invalid command \(c1\)/ },
];

interface Throughput {
  perSecond: number;
  seconds: number;
  ok: number;
  failures: number;
  firstError?: string;
  peakRssMiB: number;
}

/** BMCs read per second (failures apart), with the peak RSS of this process while reading. */
async function throughput(addresses: string[], concurrency: number, readOne: (host: string) => Promise<void>): Promise<Throughput> {
  collectGarbage();
  let failures = 0;
  let firstError: string | undefined;
  const started = performance.now();
  const { peakRssMiB } = await withPeakRss(() =>
    mapLimit(addresses, concurrency, async (host) => {
      try {
        await readOne(host);
      } catch (err) {
        failures++;
        firstError ??= err instanceof Error ? err.message : String(err);
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  const ok = addresses.length - failures;
  return { perSecond: ok / seconds, seconds, ok, failures, ...(firstError ? { firstError } : {}), peakRssMiB };
}

const viaOutband = (fleet: FleetProcess, protocol: Protocol) => async (host: string) => {
  const bmc = await connectOutband({ host, user: fleet.user, password: fleet.password, protocol, ipmiPort: fleet.ipmiPort, redfishPort: fleet.redfishPort, timeoutMs: 20_000 });
  try {
    await bmc.info();
  } finally {
    await bmc.close();
  }
};

/** Reads one BMC's IPMI data as our IPMI-only info() does, with ipmitool; throws on the first invocation that fails. */
export const viaIpmitool = (fleet: FleetProcess) => async (host: string) => {
  const base = ['-I', 'lanplus', '-C', '17', '-H', host, '-p', String(fleet.ipmiPort), '-U', fleet.user, '-P', fleet.password];
  for (const { args, answered } of IPMITOOL_COMMANDS) {
    await run('ipmitool', [...base, ...args]).catch((err: Error & { stderr?: string }) => {
      if (!(answered && answered.test(`${err.stderr ?? ''}${err.message}`))) throw err;
    });
  }
};

const failuresOf = (t: Throughput) => (t.failures ? { failures: t.failures } : {});

export async function benchOutbandInfo(n = 1000, concurrency = CONCURRENCY): Promise<void> {
  const sample = Math.min(n, IPMITOOL_BMCS);
  const out = begin('outband-info', `info() of every BMC of a simulated fleet (simulator in a separate process)`, { bmcs: n, concurrency, ipmitoolBmcs: sample });
  const fleet = await startFleetProcess({ count: n });
  try {
    const facade = await throughput(fleet.addresses, concurrency, viaOutband(fleet, 'auto'));
    const ipmi = await throughput(fleet.addresses, concurrency, viaOutband(fleet, 'ipmi'));
    const ipmitool = await throughput(fleet.addresses.slice(0, sample), concurrency, viaIpmitool(fleet));
    for (const [what, t] of [['facade', facade], ['IPMI only', ipmi], ['ipmitool', ipmitool]] as const) if (t.firstError) out.note(`${what}, first failure: ${t.firstError}`);

    const reference = { name: `ipmitool, ${IPMITOOL_COMMANDS.length} invocations per BMC, first ${sample} BMCs`, value: ipmitool.perSecond, kind: 'measured' as const, ...failuresOf(ipmitool) };
    out.record({
      name: `IPMI only, ${n} BMCs`,
      value: ipmi.perSecond,
      unit: 'BMCs/s',
      kind: 'measured',
      ...failuresOf(ipmi),
      reference,
      better: 'higher',
      differs: `the same IPMI commands; ours over one session per BMC, ipmitool opens ${IPMITOOL_COMMANDS.length} sessions in ${IPMITOOL_COMMANDS.length} processes per BMC`,
    });
    out.record({
      name: `facade (Redfish + IPMI evidence), ${n} BMCs`,
      value: facade.perSecond,
      unit: 'BMCs/s',
      kind: 'measured',
      ...failuresOf(facade),
      reference,
      better: 'higher',
      differs: 'ours opens a Redfish session and reads the Redfish inventory, then the IPMI GUID over an IPMI session (a full IPMI read where Redfish left gaps); ipmitool reads IPMI only',
    });
    out.record({ name: 'wall time, facade', value: facade.seconds, unit: 's', kind: 'measured', detail: true });
    out.record({ name: 'wall time, IPMI only', value: ipmi.seconds, unit: 's', kind: 'measured', detail: true });
    out.record({ name: `wall time, ipmitool (${sample} BMCs)`, value: ipmitool.seconds, unit: 's', kind: 'measured', detail: true });
    out.record({ name: 'peak RSS of the benchmark process, facade', value: facade.peakRssMiB, unit: 'MiB', kind: 'measured', detail: true });
    out.record({ name: 'peak RSS of the benchmark process, IPMI only (after a GC; runs after the facade)', value: ipmi.peakRssMiB, unit: 'MiB', kind: 'measured', detail: true });
  } finally {
    await fleet.stop();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await benchOutbandInfo(Number(process.argv[2] ?? 1000), Number(process.argv[3] ?? CONCURRENCY));
}
