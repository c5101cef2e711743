/**
 * Console capture in a boot storm: N machines held by the capture (the hub and
 * src/console/capture.ts in this process, IPMI SOL with cipher suite 17), the simulated fleet in
 * its own process (bench/fleet-process.ts). Every machine prints L numbered, checksummed lines at
 * 115200 baud at once (the simulator's storm); reported: whether every line arrived in the log
 * complete and in order (bytes captured = bytes sent), the storm's wall time next to the line's
 * own pace, and this process's CPU seconds per MiB captured (SOL, the hub, the log and its index
 * written to disk). Reference in the same run: `ipmitool -I lanplus -C 17 sol activate` processes
 * on three extra machines of the same fleet and storm, writing to a pipe; their CPU per MiB from
 * /proc. Run it at a small N on a shared machine: `npm run bench -- console-capture 10`.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createConsoleCapture } from '../src/console/capture.js';
import { NO_CAPTURE_METRICS } from '../src/console/capture-metrics.js';
import { tailBytes } from '../src/console/capture-read.js';
import { createConsoleHub } from '../src/console/hub.js';
import { createLogger } from '../src/log.js';
import { ipmiOutband } from '../src/outband/ipmi.js';
import { parseStormLine, stormLine } from '../src/sim/serial.js';
import { startIpmitoolSol, sleep, type IpmitoolConsole } from './console-terminal.js';
import { procUsage, startFleetProcess, type FleetProcess } from './fleet-process.js';
import { begin } from './results.js';

const REFERENCE_CONSOLES = 3;
const LINES = 1000;
const LINE_BYTES_PER_SECOND = 11_520;
const DEADLINE_MS = 300_000;
const MiB = 1 << 20;

/** what a storm of `lines` sends on machine `index` */
function stormBytes(index: number, lines: number): number {
  let n = 2; // the storm starts on a line of its own
  for (let i = 1; i <= lines; i++) n += stormLine(`m${index}`, i, lines).length;
  return n;
}

async function until(check: () => boolean | Promise<boolean>, what: string, deadline: number): Promise<void> {
  if (process.env.BENCH_DEBUG) process.stderr.write(`console-capture: waiting for ${what}\n`);
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`console-capture: timed out waiting for ${what}`);
    await sleep(200);
  }
}

export async function benchConsoleCapture(n = 100): Promise<void> {
  const out = begin('console-capture', `boot storm of ${n} machines (${LINES} lines each at 115200 baud) captured to disk, next to ipmitool sol activate`, { machines: n, lines: LINES, references: REFERENCE_CONSOLES });
  const deadline = Date.now() + DEADLINE_MS;
  const dir = mkdtempSync(join(tmpdir(), 'bench-capture-'));
  let fleet: FleetProcess | undefined;
  const references: IpmitoolConsole[] = [];
  const logger = createLogger({ level: 'warn' }, process.stderr);
  const hub = createConsoleHub({
    logger,
    maxSessions: n + 10,
    openBackend: async (id, { signal }) => {
      const address = fleet!.addresses[Number(id.slice(1))]!;
      const outband = ipmiOutband({ host: address, port: fleet!.ipmiPort, user: fleet!.user, password: fleet!.password, cipherSuite: 17 });
      try {
        return await outband.openConsole({ takeOver: true, signal });
      } finally {
        await outband.close();
      }
    },
  });
  let captured = 0;
  const capture = createConsoleCapture({ hub, dir, fileBytes: 64 * MiB, files: 2, logger, metrics: { ...NO_CAPTURE_METRICS, captured: (b) => (captured += b) } });
  try {
    fleet = await startFleetProcess({ count: n + REFERENCE_CONSOLES, second: 16, redfish: false });
    const ids = Array.from({ length: n }, (_, i) => `m${i}`);
    capture.setMachines(ids);
    await until(() => capture.held() === n, `${n} held consoles`, deadline);
    for (let i = 0; i < REFERENCE_CONSOLES; i++) references.push(startIpmitoolSol(fleet, fleet.addresses[n + i]!, `ipmitool-${i}`));
    await until(() => fleet!.control('GET', '/serial').then((s) => (s as { activeSol: number }).activeSol === n + REFERENCE_CONSOLES), 'ipmitool SOL sessions', deadline);
    await sleep(1000); // the boot logs sent at activation are through
    const sentOurs = ids.reduce((sum, _, i) => sum + stormBytes(i, LINES), 0);
    const sentRef = Array.from({ length: REFERENCE_CONSOLES }, (_, i) => stormBytes(n + i, LINES));
    const refBefore = references.map((r) => ({ bytes: r.term.bytes, cpu: procUsage(r.child.pid!).cpuSeconds }));
    const capturedBefore = captured;
    const cpuBefore = process.cpuUsage();
    const started = Date.now();
    await fleet.control('POST', '/serial', { select: 'all', storm: { lines: LINES } });
    await until(() => captured - capturedBefore >= sentOurs, 'the storm captured', deadline);
    const wallSeconds = (Date.now() - started) / 1000;
    await capture.flush();
    const cpu = process.cpuUsage(cpuBefore);
    const cpuSeconds = (cpu.user + cpu.system) / 1e6;
    // ipmitool gets as long again as the capture took, at least 30 s; its CPU is per MiB it received
    const refDeadline = Date.now() + Math.max(30_000, 2 * wallSeconds * 1000);
    while (!references.every((r, i) => r.term.bytes - refBefore[i]!.bytes >= sentRef[i]!) && Date.now() < refDeadline) await sleep(200);
    const refShort = references.filter((r, i) => r.term.bytes - refBefore[i]!.bytes < sentRef[i]!).length;
    if (refShort > 0) out.note(`${refShort} of ${REFERENCE_CONSOLES} ipmitool consoles did not receive the whole storm within the wait; their CPU is per MiB received`);
    const refCpu = references.reduce((sum, r, i) => sum + procUsage(r.child.pid!).cpuSeconds - refBefore[i]!.cpu, 0);
    const refMiB = references.reduce((sum, r, i) => sum + r.term.bytes - refBefore[i]!.bytes, 0) / MiB;
    // every line complete and in order, read back from the logs
    let complete = 0;
    for (const [i, id] of ids.entries()) {
      const numbers = (await tailBytes(dir, id, 64 * MiB))
        .toString('latin1')
        .split('\r\n')
        .filter((l) => l.startsWith(`storm m${i} `))
        .map((l) => parseStormLine(l)?.n ?? -1);
      if (numbers.length === LINES && numbers.every((v, k) => v === k + 1)) complete++;
    }
    const ourMiB = (captured - capturedBefore) / MiB;
    out.record({ name: 'machines whose storm is in the log complete and in order (numbered, checksummed lines)', value: complete, kind: 'measured', unit: `of ${n}`, better: 'higher' });
    out.record({ name: 'bytes captured / bytes sent', value: (captured - capturedBefore) / sentOurs, kind: 'measured', unit: 'ratio', detail: true });
    out.record({
      name: 'storm wall time until every byte was captured',
      value: wallSeconds,
      kind: 'measured',
      unit: 's',
      reference: { name: 'the serial line\'s own pace for one machine\'s storm (115200 baud)', value: sentOurs / n / LINE_BYTES_PER_SECOND, kind: 'estimated', basis: 'bytes of one storm / 11,520 bytes/s' },
      better: 'lower',
    });
    out.record({
      name: `CPU seconds per MiB captured (this process: SOL, hub, log and index on disk), ${n} consoles`,
      value: cpuSeconds / ourMiB,
      kind: 'measured',
      unit: 's/MiB',
      reference: { name: `ipmitool sol activate, ${REFERENCE_CONSOLES} processes on the same storm`, value: refCpu / refMiB, kind: 'measured' },
      better: 'lower',
      differs: 'ours also writes every byte and an index to disk and runs the shared-session hub; ipmitool writes to a pipe',
    });
  } finally {
    await capture.close();
    await hub.close();
    for (const r of references) r.child.kill('SIGTERM');
    await fleet?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
