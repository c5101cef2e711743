/**
 * Idle consoles held by the capture: N machines (default 1,000) whose SOL sessions the capture
 * holds while nothing is printed, the simulated fleet in its own process. What is measured is the
 * daemon's side alone: the capture runs in a child process (bench/capture-process.ts, compiled,
 * under plain node as the daemon runs) that loads only what `metal-bmc serve` loads for it with
 * METAL_BMC_CONSOLE_CAPTURE=all (src/parts/console.ts): the console listeners and hub with the
 * scrollback seeded from the log, the daemon's backend over the facade (`connectOutband`,
 * protocol auto: Redfish first, as the daemon's default; BENCH_IDLE_PROTOCOL=ipmi skips the
 * Redfish probe), IPMI SOL in console worker threads (the daemon's default count; BENCH_IDLE_WORKERS
 * overrides, 0 runs SOL in the child's main thread), the capture writing each console to its log.
 * Reported from /proc of that child: resident memory before any console is held, after all are
 * held and quiet (and per console, KiB), at the end of a window of BENCH_IDLE_WINDOW_S seconds
 * (default 60; the goal's figure), its peak over the window and when it settled, the peak of its whole life (VmHWM, the opening burst included), its V8 heap and
 * Buffer memory before and after, and its CPU share over the window (keepalives, timers).
 * The per-console figure is (after - before) / N, both after a full GC; it carries fixed costs
 * that do not grow with N (the main thread's young generation grown by the openings, about 25 MiB
 * here at both 100 and 300 consoles; the Redfish side's code, loaded with the first console), so
 * it falls with N, and it moves by tens of KiB between runs with the heap's state at `before`:
 * compare peaks, or the same N.
 *
 * Why not `metal-bmc serve` itself: the capture holds the machines the report cycle found, so the
 * daemon would read every BMC each report interval, and its resident memory would be the report
 * cycle's (report-latency: 339 MiB peak at 1,000 BMCs) more than the capture's; it would also need
 * a metal-api stand-in answering 1,000 machine lookups. The child wires the same modules the same
 * way as the console part does, with the machine id standing for the BMC address.
 *
 * Reference in the same run: `ipmitool -I lanplus -C 17 sol activate` processes holding three
 * more consoles of the same fleet over the same window; their memory and CPU extrapolated to N.
 * BENCH_IDLE_HEAP_SNAPSHOT=PREFIX writes heap snapshots of the child's main thread before the
 * consoles and after the window (where the memory goes).
 * Run it at a small N on a shared machine: `npm run bench -- console-idle 20`.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { defaultConsoleWorkers } from '../src/config/config.js';
import { join } from 'node:path';
import { createPki, type Pki } from '../src/lab/pki.js';
import { quiet, startRunningFleet, until } from './capture-rig.js';
import type { CaptureProcessStats } from './capture-process.js';
import { benchChildEntry, forkBenchChild, nextMessage } from './console-server-run.js';
import { startIpmitoolSol, sleep, type IpmitoolConsole } from './console-terminal.js';
import { cpuByThread, procUsage, stopChild, threadCpuSeconds, type FleetProcess } from './fleet-process.js';
import { begin } from './results.js';

const BENCH = 'console-idle';
const REFERENCE_CONSOLES = 3;
const DEADLINE_MS = 600_000;

function intEnv(name: string, fallback: number, min: number, max: number): number {
  const spec = process.env[name];
  if (spec === undefined || spec === '') return fallback;
  const n = Number(spec);
  if (!Number.isInteger(n) || n < min || n > max) throw new Error(`${name}: an integer ${min}..${max}, not ${JSON.stringify(spec)}`);
  return n;
}

/** console worker threads: BENCH_IDLE_WORKERS, default the daemon's (cores - 1, at least 1); 0: SOL in the child's main thread */
const idleWorkers = () => intEnv('BENCH_IDLE_WORKERS', defaultConsoleWorkers(availableParallelism()), 0, 64);

interface CaptureChild {
  child: ChildProcess;
  /** the child's threads before it started its console worker pool */
  threadsBeforePool: ReadonlySet<number>;
  stats(gc?: boolean): Promise<CaptureProcessStats>;
  hold(ids: string[]): void;
  /** a heap snapshot of the child's main thread into `file` */
  snapshot(file: string): Promise<void>;
  close(): Promise<void>;
}

async function startCaptureChild(fleet: FleetProcess, pki: Pki, o: { protocol: string; workers: number; dir: string }): Promise<CaptureChild> {
  const entry = await benchChildEntry('capture-process');
  const maxOpening = process.env.BENCH_IDLE_MAX_OPENING ? ['--max-opening', process.env.BENCH_IDLE_MAX_OPENING] : [];
  const args = [...maxOpening, '--ipmi-port', String(fleet.ipmiPort), '--redfish-port', String(fleet.redfishPort), '--protocol', o.protocol, '--workers', String(o.workers), '--dir', o.dir, '--user', fleet.user, '--password', fleet.password, '--ca', pki.ca, '--cert', pki.serverCert, '--key', pki.serverKey];
  const child = forkBenchChild(entry, args);
  const next = <T>(type: string, ms: number) => nextMessage<T>(child, 'capture process', type, ms);
  const ready = await next<{ threadsBeforePool: number[] }>('ready', 60_000);
  return {
    child,
    threadsBeforePool: new Set(ready.threadsBeforePool),
    stats(gc = false) {
      const answer = next<CaptureProcessStats>('stats', 30_000);
      child.send({ type: 'stats', gc });
      return answer;
    },
    hold: (ids) => child.send({ type: 'hold', ids }),
    async snapshot(file) {
      const written = next('snapshot', 120_000);
      child.send({ type: 'snapshot', file });
      await written;
    },
    async close() {
      if (child.exitCode !== null) return;
      const closed = next('closed', 30_000).catch(() => undefined);
      child.send({ type: 'close' });
      await closed;
      await stopChild(child, 5000);
    },
  };
}

export async function benchConsoleIdle(n = 1000): Promise<void> {
  const workers = idleWorkers();
  const windowS = intEnv('BENCH_IDLE_WINDOW_S', 60, 1, 3600);
  const protocol = process.env.BENCH_IDLE_PROTOCOL === 'ipmi' ? 'ipmi' : 'auto';
  const out = begin(BENCH, `${n} idle consoles held by the capture in a process of its own (SOL in ${workers === 0 ? 'its main thread' : `${workers} worker thread(s)`}, facade protocol ${protocol}): resident memory and CPU share over ${windowS} s, next to ipmitool sol activate`, { consoles: n, windowSeconds: windowS, references: REFERENCE_CONSOLES, workers, protocol });
  const deadline = Date.now() + DEADLINE_MS;
  const dir = mkdtempSync(join(tmpdir(), 'bench-capture-'));
  let fleet: FleetProcess | undefined;
  let pki: Pki | undefined;
  let capture: CaptureChild | undefined;
  const references: IpmitoolConsole[] = [];
  try {
    // idle consoles need no running machine; the rig picks by power only to know what runs
    const started = await startRunningFleet(0, n + REFERENCE_CONSOLES, { second: 17, redfish: protocol !== 'ipmi' });
    fleet = started.fleet;
    const f = fleet;
    pki = await createPki();
    // the machine id is the BMC's address (capture-process.ts)
    const held = started.others.slice(0, n).map((i) => f.addresses[i]!);
    const refIndices = started.others.slice(n, n + REFERENCE_CONSOLES);
    capture = await startCaptureChild(f, pki, { protocol, workers, dir });
    const c = capture;
    const pid = c.child.pid!;
    await sleep(1000); // let start-up garbage settle before the baseline
    const before = { stats: await c.stats(true), usage: procUsage(pid) };
    // BENCH_IDLE_HEAP_SNAPSHOT=PREFIX: heap snapshots of the child's main thread before and after (PREFIX-0.heapsnapshot, PREFIX-N.heapsnapshot)
    const snapshots = process.env.BENCH_IDLE_HEAP_SNAPSHOT;
    if (snapshots) await c.snapshot(`${snapshots}-0.heapsnapshot`);
    const holdStart = performance.now();
    c.hold(held);
    for (const [i, index] of refIndices.entries()) references.push(startIpmitoolSol(f, f.addresses[index]!, `ipmitool-${i}`));
    let last: CaptureProcessStats | undefined;
    await until(BENCH, async () => (last = await c.stats()).held === n, `${n} held consoles`, deadline, () => `${last?.held ?? 0} held`);
    const holdSeconds = (performance.now() - holdStart) / 1000;
    await until(BENCH, () => f.control('GET', '/serial').then((x) => (x as { activeSol: number }).activeSol === n + REFERENCE_CONSOLES), 'every SOL session active at the simulator', deadline);
    let captured = 0;
    const poll = setInterval(() => void c.stats().then((s) => (captured = s.captured), () => undefined), 500);
    try {
      await quiet(BENCH, () => captured + references.reduce((sum, x) => sum + x.term.bytes, 0), 2000, deadline);
    } finally {
      clearInterval(poll);
    }
    const refBefore = references.map((x) => procUsage(x.child.pid!).cpuSeconds);
    const cpuBefore = procUsage(pid).cpuSeconds;
    const threadsBefore = threadCpuSeconds(pid);
    const t = performance.now();
    let peakRss = procUsage(pid).rssMiB;
    /** resident memory every 250 ms over the window: seconds into it, MiB */
    const rssSamples: Array<[number, number]> = [];
    const sampler = setInterval(() => {
      const rss = procUsage(pid).rssMiB;
      peakRss = Math.max(peakRss, rss);
      rssSamples.push([(performance.now() - t) / 1000, rss]);
    }, 250);
    await sleep(windowS * 1000); // the measurement window itself: nothing is awaited, idle is what is measured
    clearInterval(sampler);
    const seconds = (performance.now() - t) / 1000;
    const after = procUsage(pid);
    const share = (after.cpuSeconds - cpuBefore) / seconds;
    const byThread = cpuByThread(threadsBefore, workers > 0 ? c.threadsBeforePool : undefined, pid);
    const heldStats = await c.stats(true);
    const settled = procUsage(pid);
    if (snapshots) await c.snapshot(`${snapshots}-${n}.heapsnapshot`);
    const refCpu = references.reduce((sum, x, i) => sum + procUsage(x.child.pid!).cpuSeconds - refBefore[i]!, 0);
    const refRss = references.reduce((sum, x) => sum + procUsage(x.child.pid!).rssMiB, 0);
    const scale = n / REFERENCE_CONSOLES;
    const basis = `${REFERENCE_CONSOLES} ipmitool processes measured in this run, x ${n}/${REFERENCE_CONSOLES}`;
    const perConsole = (a: number, b: number) => (n > 0 ? ((a - b) * 1024) / n : 0);
    out.record({ name: `consoles still held at the end of the window`, value: heldStats.held, kind: 'measured', unit: `of ${n}`, better: 'higher' });
    // Held and quiet, the process keeps the opening burst's heap (young generation included) until
    // V8's memory reducer shrinks it, some 20 s later; what it then holds is what 1,000 idle
    // consoles cost. Both are shown: the goal's figure at the end of the window, and the peak.
    out.record({
      name: `capture process resident memory at the end of the window, ${n} idle consoles held (goal < 150 MiB)`,
      value: after.rssMiB,
      kind: 'measured',
      unit: 'MiB',
      reference: { name: `ipmitool sol activate, one process per console`, value: refRss * scale, kind: 'extrapolated', basis },
      better: 'lower',
      differs: 'ours holds every console in one process and writes each to a log with an index; ipmitool writes to a pipe',
    });
    out.record({ name: 'capture process resident memory, peak over the window (the opening burst\'s heap, until the memory reducer shrinks it)', value: peakRss, kind: 'measured', unit: 'MiB' });
    const settledAt = Math.max(0, ...rssSamples.filter(([, rss]) => rss > after.rssMiB * 1.1).map(([at]) => at));
    out.record({ name: 'seconds into the window until resident memory stayed within 10 % of its end', value: settledAt, kind: 'measured', unit: 's', detail: true });
    out.record({ name: 'capture process resident memory before any console was held', value: before.usage.rssMiB, kind: 'measured', unit: 'MiB', detail: true });
    out.record({ name: `capture process resident memory per held console, (after - before) / ${n}`, value: perConsole(settled.rssMiB, before.usage.rssMiB), kind: 'measured', unit: 'KiB', better: 'lower' });
    out.record({ name: `seconds until all ${n} consoles were held`, value: holdSeconds, kind: 'measured', unit: 's', detail: true });
    out.record({ name: 'capture process peak resident memory of its whole run (VmHWM: the opening burst included)', value: after.peakRssMiB, kind: 'measured', unit: 'MiB', detail: true });
    for (const [key, what] of [['heapUsedMiB', 'V8 heap used'], ['heapTotalMiB', 'V8 heap committed'], ['externalMiB', 'external (Buffers, native objects)'], ['arrayBuffersMiB', 'ArrayBuffers'], ['mallocedMiB', 'V8 malloced']] as const) {
      out.record({ name: `capture process main thread ${what} per held console, after a full GC`, value: perConsole(heldStats[key], before.stats[key]), kind: 'measured', unit: 'KiB', detail: true });
    }
    out.record({
      name: `capture process CPU share of one core, ${n} idle consoles held (goal < 3 %)`,
      value: share * 100,
      kind: 'measured',
      unit: '%',
      reference: { name: 'ipmitool sol activate, one process per console', value: (refCpu / seconds) * 100 * scale, kind: 'extrapolated', basis },
      better: 'lower',
    });
    const kinds = [['its main thread', byThread.main], ...(workers > 0 ? [['its console worker threads (SOL keepalives)', byThread.workers] as const] : []), ["Node's helper threads (garbage collection, file I/O)", byThread.helpers]] as const;
    for (const [what, spent] of kinds) out.record({ name: `capture process CPU share of one core in ${what}`, value: (spent / seconds) * 100, kind: 'measured', unit: '%', detail: true });
  } finally {
    await capture?.close();
    for (const x of references) x.child.kill('SIGTERM');
    await fleet?.stop();
    pki?.remove();
    rmSync(dir, { recursive: true, force: true });
  }
}
