/**
 * Console capture in a boot storm: up to N running machines held by the capture (the hub and
 * src/console/capture.ts in this process, IPMI SOL with cipher suite 17), the simulated fleet in
 * its own process (bench/fleet-process.ts). In steps of N/8, N/4, N/2 and N machines, every held
 * machine prints L numbered, checksummed lines at 115200 baud at once (the simulator's storm);
 * reported per step: whether every line arrived in the log complete and in order (bytes captured
 * = bytes sent), the storm's wall time next to the line's own pace and to the time ipmitool took
 * for the same storm (a step keeps full line speed when its storm is captured within 115 % of the
 * pace: the simulator's 10 ms ticks and SOL packets add about 5-10 % even to one console), and
 * this process's CPU seconds per MiB captured (SOL, the hub, the log and its index on disk). Reference in the same run:
 * `ipmitool -I lanplus -C 17 sol activate` processes on three extra machines of the same fleet and
 * storm, writing to a pipe; their CPU per MiB from /proc. In one more storm of N machines a report
 * cycle over other machines of the fleet and a series of IPMI commands run in this process: their
 * latency and the event loop's delay, next to the same measured with the same consoles held just
 * before their storm.
 * All of it once per worker count (BENCH_CAPTURE_WORKERS, default "0,<cores - 1>"): 0 runs the SOL
 * sessions in this thread as METAL_BMC_CONSOLE_WORKERS=0 does, more runs them in a console worker
 * pool (src/console/worker-pool.ts); CPU is this whole process's, every thread included.
 * The simulator prints a storm only on running machines, so the machines are picked by power.
 * Runs in a child process of its own, compiled (bench/bench-process.ts): the CPU measured is the
 * daemon's code under plain node (its worker threads too), not the runner's tsx.
 * BENCH_CONSOLE_TSX=1 runs it under tsx.
 * Run it at a small N on a shared machine: `npm run bench -- console-capture 10`.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { defaultConsoleWorkers } from '../src/config/config.js';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { tailBytes } from '../src/console/capture-read.js';
import { createConsoleWorkerPool, type ConsoleWorkerPool } from '../src/console/worker-pool.js';
import { readLeasesOnce } from '../src/leases/watch.js';
import { createLogger } from '../src/log.js';
import { createMetalApiClient } from '../src/metalapi/client.js';
import { startMetalApiStandIn, type MetalApiStandIn } from '../src/metalapi/standin.js';
import { connectOutband } from '../src/outband/connect.js';
import { ipmiOutband } from '../src/outband/ipmi.js';
import { runReportCycle } from '../src/report/cycle.js';
import { parseStormLine, stormLine } from '../src/sim/serial.js';
import { machineId, MiB, quiet, simConsoleBackend, simSolTarget, startCaptureRig, startRunningFleet, until, type CaptureRig } from './capture-rig.js';
import { startIpmitoolSol, sleep, type IpmitoolConsole } from './console-terminal.js';
import { cpuByThread, procUsage, threadCpuSeconds, type FleetProcess } from './fleet-process.js';
import { latency } from './report.js';
import { begin } from './results.js';

const BENCH = 'console-capture';
const REFERENCE_CONSOLES = 3;
/** machines read by the report cycle that runs during the storm (not storming themselves) */
const REPORT_BMCS = 20;
/** IPMI commands (identify on) during the storm, one after the other */
const COMMANDS = 20;
const LINES = 1000;
const LINE_BYTES_PER_SECOND = 11_520;
/** a step keeps full line speed when its storm is captured within this share of the line's pace */
const FULL_SPEED_SLACK = 1.15;
const STEP_DEADLINE_MS = 300_000;

/** what a storm of `lines` sends on machine `index` */
export function stormBytes(index: number, lines: number): number {
  let n = 2; // the storm starts on a line of its own
  for (let i = 1; i <= lines; i++) n += stormLine(machineId(index), i, lines).length;
  return n;
}

/** N/8, N/4, N/2, N without repeats or zeros */
export function stepSizes(n: number): number[] {
  return [...new Set([n >> 3, n >> 2, n >> 1, n].filter((k) => k > 0))];
}

/** Whether the machine's latest storm (from its last line 1) is in `log` with every line, in order. */
export function latestStormComplete(log: string, index: number, lines: number): boolean {
  const numbers = log
    .split('\r\n')
    .filter((l) => l.startsWith(`storm ${machineId(index)} `))
    .map((l) => parseStormLine(l)?.n ?? -1);
  const start = numbers.lastIndexOf(1);
  if (start < 0) return false;
  const latest = numbers.slice(start);
  return latest.length === lines && latest.every((v, k) => v === k + 1);
}

interface MainLoopProbe {
  cycleSeconds: number;
  cycleFailed: number;
  commandMs: number[];
  commandFailures: number;
  loopDelayP99Ms: number;
}

/** one report cycle over the report machines, then COMMANDS identify commands; the event loop's delay meanwhile */
async function probeMainLoop({ fleet, api, leaseFile, reportIps }: Pick<StepEnv, 'fleet' | 'api' | 'leaseFile' | 'reportIps'>): Promise<MainLoopProbe> {
  const leases = (await readLeasesOnce(leaseFile, {})).filter((l) => reportIps.has(l.ip));
  const delay = monitorEventLoopDelay({ resolution: 10 });
  delay.enable();
  try {
    const t = performance.now();
    const r = await runReportCycle(
      {
        partitionId: 'bench',
        connect: (host, signal, onAnswer) => connectOutband({ host, user: fleet.user, password: fleet.password, ipmiPort: fleet.ipmiPort, redfishPort: fleet.redfishPort, timeoutMs: 20_000, onAnswer, signal }),
        metalApi: createMetalApiClient({ baseUrl: api.url, hmacKey: 'bench-key', timeoutMs: 60_000 }),
        concurrency: 16,
        bmcTimeoutMs: 20_000,
        logger: createLogger({ level: 'error' }),
      },
      leases,
    );
    const cycleSeconds = (performance.now() - t) / 1000;
    const commandMs: number[] = [];
    let commandFailures = 0;
    const ips = [...reportIps];
    for (let i = 0; i < COMMANDS; i++) {
      const outband = ipmiOutband({ host: ips[i % ips.length]!, port: fleet.ipmiPort, user: fleet.user, password: fleet.password, cipherSuite: 17 });
      const c = performance.now();
      try {
        await outband.identify(true, { signal: AbortSignal.timeout(10_000) });
        commandMs.push(performance.now() - c);
      } catch {
        commandFailures++;
      } finally {
        await outband.close();
      }
    }
    (api.reports as unknown[]).splice(0);
    (api.requests as unknown[]).splice(0);
    return { cycleSeconds, cycleFailed: r.failed, commandMs, commandFailures, loopDelayP99Ms: delay.percentile(99) / 1e6 };
  } finally {
    delay.disable();
  }
}

interface StepResult {
  machines: number;
  complete: number;
  wallSeconds: number;
  paceSeconds: number;
  fullSpeed: boolean;
}

interface StepEnv {
  out: ReturnType<typeof begin>;
  /** where the SOL sessions run: `SOL in the main thread` or `SOL in 1 worker thread` */
  mode: string;
  fleet: FleetProcess;
  api: MetalApiStandIn;
  leaseFile: string;
  reportIps: Set<string>;
  rig: CaptureRig;
  stormers: number[];
  refIndices: number[];
  references: IpmitoolConsole[];
  sentRef: number[];
  quietProbe?: MainLoopProbe;
  /** this process's threads before the console worker pool started (the pool's are the ones not in it); none without a pool */
  threadsBeforePool?: Set<number>;
}

/** the report cycle, the commands and the event loop's delay during the storm, next to the same before it */
function recordProbe(e: StepEnv, k: number, probeDuring: MainLoopProbe, wallSeconds: number, probeSeconds: number): void {
  if (!e.quietProbe) return;
  const note = probeSeconds > wallSeconds * 1.05 ? ` (the probe outlasted the storm: ${probeSeconds.toFixed(1)} s against ${wallSeconds.toFixed(1)} s)` : '';
  e.out.record({
    name: `${e.mode}: report cycle over ${e.reportIps.size} other BMCs during the storm of ${k} machines${note}`,
    value: probeDuring.cycleSeconds,
    kind: 'measured',
    unit: 's',
    ...(probeDuring.cycleFailed ? { failures: probeDuring.cycleFailed } : {}),
    reference: { name: `the same cycle with the ${k} consoles held, before their storm`, value: e.quietProbe.cycleSeconds, kind: 'measured', ...(e.quietProbe.cycleFailed ? { failures: e.quietProbe.cycleFailed } : {}) },
    better: 'lower',
  });
  e.out.record({
    ...latency(`${e.mode}: IPMI command (login + identify) during the storm of ${k} machines`, { samples: probeDuring.commandMs, failures: probeDuring.commandFailures }),
    unit: 'ms',
    reference: latency(`with the ${k} consoles held, before their storm`, { samples: e.quietProbe.commandMs, failures: e.quietProbe.commandFailures }),
    better: 'lower',
  });
  e.out.record({
    name: `${e.mode}: event loop delay p99 during the storm of ${k} machines`,
    value: probeDuring.loopDelayP99Ms,
    kind: 'measured',
    unit: 'ms',
    stat: 'p99',
    reference: { name: `with the ${k} consoles held, before their storm`, value: e.quietProbe.loopDelayP99Ms, kind: 'measured', stat: 'p99' },
    better: 'lower',
  });
}

/**
 * One step: k machines held, quiet, then their storm (and the references'); its figures recorded.
 * With `probe`, the main-loop probe runs before and during the storm, and no CPU figure is taken.
 */
async function stormStep(e: StepEnv, k: number, probe: boolean): Promise<StepResult> {
  const deadline = Date.now() + STEP_DEADLINE_MS;
  const label = `${e.mode}, ${k} machines${probe ? ', report cycle and commands during the storm' : ''}`;
  const indices = e.stormers.slice(0, k);
  e.rig.capture.setMachines(indices.map(machineId));
  await until(BENCH, () => e.rig.capture.held() === k, `${k} held consoles`, deadline, () => `${e.rig.capture.held()} held`);
  await until(BENCH, () => e.fleet.control('GET', '/serial').then((x) => (x as { activeSol: number }).activeSol === k + REFERENCE_CONSOLES), 'every SOL session active at the simulator', deadline);
  await quiet(BENCH, () => e.rig.captured() + e.references.reduce((sum, x) => sum + x.term.bytes, 0), 1000, deadline);
  if (probe) {
    // the reference: the same probe with the same consoles held, before their storm
    await probeMainLoop(e); // warms up (first TLS handshakes, JIT); the second is the reference
    e.quietProbe = await probeMainLoop(e);
  }
  const sent = indices.reduce((sum, index) => sum + stormBytes(index, LINES), 0);
  const refBefore = e.references.map((x) => ({ bytes: x.term.bytes, cpu: procUsage(x.child.pid!).cpuSeconds }));
  const capturedBefore = e.rig.captured();
  const cpuBefore = process.cpuUsage();
  const threadsBefore = threadCpuSeconds();
  const t = Date.now();
  await e.fleet.control('POST', '/serial', { select: [...indices, ...e.refIndices], storm: { lines: LINES } });
  const stormProbe = probe ? probeMainLoop(e) : undefined;
  const refDone: Array<number | undefined> = e.references.map(() => undefined);
  const markRefs = () => {
    for (const [i, x] of e.references.entries()) if (refDone[i] === undefined && x.term.bytes - refBefore[i]!.bytes >= e.sentRef[i]!) refDone[i] = (Date.now() - t) / 1000;
  };
  const watchRefs = setInterval(() => markRefs(), 100);
  await until(BENCH, () => e.rig.captured() - capturedBefore >= sent, `the storm of ${k} machines captured`, deadline, () => `${e.rig.captured() - capturedBefore} of ${sent} bytes`);
  const wallSeconds = (Date.now() - t) / 1000;
  clearInterval(watchRefs);
  const probeDuring = await stormProbe;
  const probeSeconds = (Date.now() - t) / 1000;
  await e.rig.capture.flush();
  const cpu = process.cpuUsage(cpuBefore);
  const cpuSeconds = (cpu.user + cpu.system) / 1e6;
  const byThread = cpuByThread(threadsBefore, e.threadsBeforePool);
  const capturedMiB = (e.rig.captured() - capturedBefore) / MiB;
  // ipmitool gets as long again as the capture took, at least 30 s; its CPU is per MiB it received
  const refDeadline = Date.now() + Math.max(30_000, 2 * wallSeconds * 1000);
  // (a reference that finished since the last 100 ms tick is marked now: at most a tick late)
  markRefs();
  while (!e.references.every((x, i) => x.term.bytes - refBefore[i]!.bytes >= e.sentRef[i]!) && Date.now() < refDeadline) {
    await sleep(100);
    markRefs();
  }
  const refShort = e.references.filter((x, i) => x.term.bytes - refBefore[i]!.bytes < e.sentRef[i]!).length;
  const refCpu = e.references.reduce((sum, x, i) => sum + procUsage(x.child.pid!).cpuSeconds - refBefore[i]!.cpu, 0);
  const refMiB = e.references.reduce((sum, x, i) => sum + x.term.bytes - refBefore[i]!.bytes, 0) / MiB;
  let complete = 0;
  for (const index of indices) if (latestStormComplete((await tailBytes(e.rig.dir, machineId(index), 64 * MiB)).toString('latin1'), index, LINES)) complete++;
  const paceSeconds = sent / k / LINE_BYTES_PER_SECOND;
  const fullSpeed = complete === k && wallSeconds <= paceSeconds * FULL_SPEED_SLACK;
  e.out.record({ name: `${label}: storms in the log complete and in order (numbered, checksummed lines)`, value: complete, kind: 'measured', unit: `of ${k}`, better: 'higher' });
  e.out.record({ name: `${label}: bytes captured / bytes sent`, value: (e.rig.captured() - capturedBefore) / sent, kind: 'measured', unit: 'ratio', detail: true });
  e.out.record({
    name: `${label}: storm wall time until every byte was captured`,
    value: wallSeconds,
    kind: 'measured',
    unit: 's',
    reference: { name: "the serial line's own pace for one machine's storm (115200 baud)", value: paceSeconds, kind: 'estimated', basis: 'bytes of one storm / 11,520 bytes/s' },
    better: 'lower',
  });
  const refWalls = refDone.filter((x) => x !== undefined);
  const refWall = refWalls.length > 0 ? Math.max(...refWalls) : null;
  e.out.record({
    name: `${label}: storm wall time until every byte was captured, next to ipmitool`,
    value: wallSeconds,
    kind: 'measured',
    unit: 's',
    reference: { name: `the slowest of ${REFERENCE_CONSOLES} ipmitool sol activate on the same storm until it had every byte`, value: refWall, kind: 'measured', ...(refShort > 0 ? { failures: refShort } : {}) },
    better: 'lower',
    differs: 'ours captures to disk; ipmitool writes to a pipe',
    detail: true,
  });
  if (refShort > 0) e.out.note(`${label}: ${refShort} of ${REFERENCE_CONSOLES} ipmitool consoles did not receive the whole storm within the wait; their CPU is per MiB received`);
  if (!probe) e.out.record({
    name: `${label}: CPU seconds per MiB captured (this process: SOL, hub, log and index on disk)`,
    value: cpuSeconds / capturedMiB,
    kind: 'measured',
    unit: 's/MiB',
    reference: { name: `ipmitool sol activate, ${REFERENCE_CONSOLES} processes on the same storm`, value: refMiB > 0 ? refCpu / refMiB : null, kind: 'measured' },
    better: 'lower',
    differs: `ours also writes every byte and an index to disk and runs the shared-session hub; ipmitool writes to a pipe`,
  });
  if (!probe) {
    const kinds = [
      ['the main thread (hub, log and index on disk)', byThread.main],
      ...(e.threadsBeforePool ? [['console worker threads (SOL)', byThread.workers] as const] : []),
      ["Node's helper threads (garbage collection, file writes)", byThread.helpers],
    ] as const;
    for (const [what, seconds] of kinds) e.out.record({ name: `${label}: CPU seconds per MiB captured in ${what}`, value: seconds / capturedMiB, kind: 'measured', unit: 's/MiB', detail: true });
  }
  if (probeDuring && e.quietProbe) recordProbe(e, k, probeDuring, wallSeconds, probeSeconds);
  return { machines: k, complete, wallSeconds, paceSeconds, fullSpeed };
}

/** worker counts to compare: BENCH_CAPTURE_WORKERS="0,1" (0: SOL in the main thread); default 0 and cores - 1 */
export function workerCounts(spec = process.env.BENCH_CAPTURE_WORKERS): number[] {
  if (spec === undefined || spec.trim() === '') return [...new Set([0, defaultConsoleWorkers(availableParallelism())])];
  const counts = spec.split(',').map((x) => Number(x.trim()));
  if (!counts.every((c) => Number.isInteger(c) && c >= 0 && c <= 64)) throw new Error(`BENCH_CAPTURE_WORKERS: a comma-separated list of worker counts 0..64, not ${JSON.stringify(spec)}`);
  return [...new Set(counts)];
}

export async function benchConsoleCapture(n = 100): Promise<void> {
  const steps = stepSizes(n);
  const counts = workerCounts();
  const out = begin(BENCH, `boot storm of up to ${n} machines (${LINES} lines each at 115200 baud) captured to disk, in steps of ${steps.join(', ')}, next to ipmitool sol activate; report cycle and commands during the storm`, {
    machines: n,
    steps: steps.join(','),
    lines: LINES,
    references: REFERENCE_CONSOLES,
    reportBmcs: REPORT_BMCS,
    commands: COMMANDS,
    workers: counts.join(','),
  });
  let fleet: FleetProcess | undefined;
  let rig: CaptureRig | undefined;
  let pool: ConsoleWorkerPool | undefined;
  let api: MetalApiStandIn | undefined;
  const references: IpmitoolConsole[] = [];
  const leaseDir = mkdtempSync(join(tmpdir(), 'bench-capture-leases-'));
  try {
    const leaseFile = join(leaseDir, 'dhcpd.leases');
    const started = await startRunningFleet(n + REFERENCE_CONSOLES, REPORT_BMCS, { second: 16, leaseFile });
    fleet = started.fleet;
    const f = fleet;
    const stormers = started.running.slice(0, n);
    const refIndices = started.running.slice(n);
    const reportIps = new Set(started.others.map((i) => f.addresses[i]!));
    api = await startMetalApiStandIn({ hmacKey: 'bench-key' });
    for (const [i, index] of refIndices.entries()) references.push(startIpmitoolSol(f, f.addresses[index]!, `ipmitool-${i}`));
    const sentRef = refIndices.map((index) => stormBytes(index, LINES));
    for (const workers of counts) {
      const mode = workers === 0 ? 'SOL in the main thread' : `SOL in ${workers} worker thread${workers === 1 ? '' : 's'}`;
      const threadsBeforePool = workers > 0 ? new Set(threadCpuSeconds().keys()) : undefined;
      pool = workers > 0 ? createConsoleWorkerPool({ workers, logger: createLogger({ level: 'warn' }, process.stderr) }) : undefined;
      const p = pool;
      rig = startCaptureRig(p ? (id, { signal, takeOver = true }) => p.open(simSolTarget(f, id), signal, takeOver) : simConsoleBackend(f), n);
      const env: StepEnv = { out, mode, fleet: f, api, leaseFile, reportIps, rig, stormers, refIndices, references, sentRef, ...(threadsBeforePool ? { threadsBeforePool } : {}) };
      const results: StepResult[] = [];
      for (const k of steps) results.push(await stormStep(env, k, false));
      // once more at N, with the report cycle and the commands before and during the storm
      await stormStep(env, n, true);
      const kept = results.filter((x) => x.fullSpeed).map((x) => x.machines);
      out.record({
        name: `${mode}: most machines whose storm was captured complete at full line speed (within ${Math.round((FULL_SPEED_SLACK - 1) * 100)} % of the pace), of the steps ${steps.join(', ')}`,
        value: kept.length > 0 ? Math.max(...kept) : 0,
        kind: 'measured',
        unit: 'machines',
        better: 'higher',
      });
      await rig.close();
      rig = undefined;
      await pool?.close();
      pool = undefined;
    }
  } finally {
    await rig?.close();
    await pool?.close();
    for (const x of references) x.child.kill('SIGTERM');
    await api?.close();
    await fleet?.stop();
    rmSync(leaseDir, { recursive: true, force: true });
  }
}
