/**
 * Idle consoles held by the capture: N machines (default 1,000) whose SOL sessions the capture
 * (src/console/capture.ts with its hub, in this process) holds while nothing is printed, the
 * simulated fleet in its own process. Reported after every console is held and quiet: this
 * process's resident memory and its CPU share over a window of WINDOW_S seconds (keepalives,
 * timers, the index flushes). Goal of issue 13: under 150 MiB and under 3 % of one core at 1,000.
 * Reference in the same run: `ipmitool -I lanplus -C 17 sol activate` processes holding three
 * more consoles of the same fleet over the same window; their memory and CPU extrapolated to N.
 * The SOL sessions run in console worker threads as the daemon's default (BENCH_IDLE_WORKERS
 * overrides: 0 runs them in this thread); memory and CPU are this whole process's.
 * Run it at a small N on a shared machine: `npm run bench -- console-idle 20`.
 */
import { availableParallelism } from 'node:os';
import { createConsoleWorkerPool, type ConsoleWorkerPool } from '../src/console/worker-pool.js';
import { createLogger } from '../src/log.js';
import { machineId, quiet, simConsoleBackend, simSolTarget, startCaptureRig, startRunningFleet, until, type CaptureRig } from './capture-rig.js';
import { startIpmitoolSol, sleep, type IpmitoolConsole } from './console-terminal.js';
import { procUsage, type FleetProcess } from './fleet-process.js';
import { collectGarbage } from './report.js';
import { begin } from './results.js';

const BENCH = 'console-idle';
const REFERENCE_CONSOLES = 3;
const WINDOW_S = 60;
const DEADLINE_MS = 600_000;

/** console worker threads: BENCH_IDLE_WORKERS, default the daemon's (cores - 1, at least 1); 0: SOL in the main thread */
function idleWorkers(): number {
  const spec = process.env.BENCH_IDLE_WORKERS;
  if (spec === undefined || spec === '') return Math.max(1, availableParallelism() - 1);
  const n = Number(spec);
  if (!Number.isInteger(n) || n < 0 || n > 64) throw new Error(`BENCH_IDLE_WORKERS: a worker count 0..64, not ${JSON.stringify(spec)}`);
  return n;
}

export async function benchConsoleIdle(n = 1000): Promise<void> {
  const workers = idleWorkers();
  const out = begin(BENCH, `${n} idle consoles held by the capture (SOL in ${workers === 0 ? 'the main thread' : `${workers} worker thread(s)`}): resident memory and CPU share over ${WINDOW_S} s, next to ipmitool sol activate`, { consoles: n, windowSeconds: WINDOW_S, references: REFERENCE_CONSOLES, workers });
  const deadline = Date.now() + DEADLINE_MS;
  let fleet: FleetProcess | undefined;
  let rig: CaptureRig | undefined;
  let pool: ConsoleWorkerPool | undefined;
  const references: IpmitoolConsole[] = [];
  try {
    // idle consoles need no running machine; the rig picks by power only to know what runs
    const started = await startRunningFleet(0, n + REFERENCE_CONSOLES, { second: 17, redfish: false });
    fleet = started.fleet;
    const f = fleet;
    const held = started.others.slice(0, n);
    const refIndices = started.others.slice(n, n + REFERENCE_CONSOLES);
    collectGarbage();
    const rssBefore = process.memoryUsage().rss / 2 ** 20;
    pool = workers > 0 ? createConsoleWorkerPool({ workers, logger: createLogger({ level: 'warn' }, process.stderr) }) : undefined;
    const p = pool;
    rig = startCaptureRig(p ? (id, { signal }) => p.open(simSolTarget(f, id), signal) : simConsoleBackend(f), n);
    const r = rig;
    r.capture.setMachines(held.map(machineId));
    for (const [i, index] of refIndices.entries()) references.push(startIpmitoolSol(f, f.addresses[index]!, `ipmitool-${i}`));
    await until(BENCH, () => r.capture.held() === n, `${n} held consoles`, deadline, () => `${r.capture.held()} held`);
    await until(BENCH, () => f.control('GET', '/serial').then((x) => (x as { activeSol: number }).activeSol === n + REFERENCE_CONSOLES), 'every SOL session active at the simulator', deadline);
    await quiet(BENCH, () => r.captured() + references.reduce((sum, x) => sum + x.term.bytes, 0), 2000, deadline);
    await r.capture.flush();
    const refBefore = references.map((x) => procUsage(x.child.pid!).cpuSeconds);
    const cpuBefore = process.cpuUsage();
    const t = performance.now();
    let peakRss = process.memoryUsage().rss;
    const sampler = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage().rss)), 250);
    await sleep(WINDOW_S * 1000); // the measurement window itself: nothing is awaited, idle is what is measured
    clearInterval(sampler);
    const seconds = (performance.now() - t) / 1000;
    const cpu = process.cpuUsage(cpuBefore);
    const share = (cpu.user + cpu.system) / 1e6 / seconds;
    const stillHeld = r.capture.held();
    const refCpu = references.reduce((sum, x, i) => sum + procUsage(x.child.pid!).cpuSeconds - refBefore[i]!, 0);
    const refRss = references.reduce((sum, x) => sum + procUsage(x.child.pid!).rssMiB, 0);
    const scale = n / REFERENCE_CONSOLES;
    const basis = `${REFERENCE_CONSOLES} ipmitool processes measured in this run, x ${n}/${REFERENCE_CONSOLES}`;
    out.record({ name: `consoles still held at the end of the window`, value: stillHeld, kind: 'measured', unit: `of ${n}`, better: 'higher' });
    out.record({
      name: `resident memory, peak over the window, ${n} idle consoles held (goal < 150 MiB)`,
      value: peakRss / 2 ** 20,
      kind: 'measured',
      unit: 'MiB',
      reference: { name: `ipmitool sol activate, one process per console`, value: refRss * scale, kind: 'extrapolated', basis },
      better: 'lower',
      differs: 'ours holds every console in one process and writes each to a log with an index; ipmitool writes to a pipe',
    });
    out.record({ name: 'resident memory of this process before any console was held', value: rssBefore, kind: 'measured', unit: 'MiB', detail: true });
    out.record({
      name: `CPU share of one core, ${n} idle consoles held (goal < 3 %)`,
      value: share * 100,
      kind: 'measured',
      unit: '%',
      reference: { name: 'ipmitool sol activate, one process per console', value: (refCpu / seconds) * 100 * scale, kind: 'extrapolated', basis },
      better: 'lower',
    });
  } finally {
    await rig?.close();
    await pool?.close();
    for (const x of references) x.child.kill('SIGTERM');
    await fleet?.stop();
  }
}
