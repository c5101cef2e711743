/**
 * Runs `metal-bmc sim` in a child process, so the simulator's CPU does not count against the
 * client being measured; reads the child's resident memory and CPU time from /proc.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { nthAddress } from '../src/sim/machine.js';

/**
 * The repository: the first folder above this file with the project's package.json. Not simply
 * `..`: a benchmark child compiled into node_modules/.cache (console-server-run.ts) starts the
 * simulator too, from the sources.
 */
export function repositoryRoot(from: string = fileURLToPath(import.meta.url)): string {
  for (let dir = dirname(from); ; dir = dirname(dir)) {
    const manifest = join(dir, 'package.json');
    if (existsSync(manifest) && (JSON.parse(readFileSync(manifest, 'utf8')) as { name?: string }).name === 'metal-bmc') return dir;
    if (dirname(dir) === dir) throw new Error(`no metal-bmc package.json above ${from}`);
  }
}

const ROOT = repositoryRoot();

export interface FleetProcess {
  child: ChildProcess;
  count: number;
  addresses: string[];
  ipmiPort: number;
  redfishPort: number;
  controlPort: number;
  user: string;
  password: string;
  leaseFile: string | undefined;
  /** resident memory in MiB and CPU seconds (user + system) of the simulator process */
  usage(): { rssMiB: number; cpuSeconds: number };
  /** a call to the simulator's control API (src/sim/control.ts) */
  control(method: 'GET' | 'POST' | 'DELETE', path: string, body?: unknown): Promise<unknown>;
  stop(): Promise<void>;
}

/** extra node options for benchmark children, e.g. BENCH_CHILD_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof" */
export function childNodeArgs(): string[] {
  return (process.env.BENCH_CHILD_NODE_ARGS ?? '').split(/\s+/).filter((a) => a !== '');
}

/**
 * How the simulator's process starts: compiled under plain node when this file runs compiled (a
 * benchmark in its own process, bench/bench-process.ts, compiled with the sources beside it), as
 * `metal-bmc sim` runs from the build; otherwise the sources under tsx. Under tsx the simulator
 * spends CPU on tsx's loader and source maps that a BMC never costs; on a two-core machine that
 * CPU is taken from the process measured.
 */
export function simulatorEntry(here: string = fileURLToPath(import.meta.url)): string[] {
  const compiled = join(dirname(here), '..', 'src', 'cli', 'main.js');
  if (here.endsWith('.js') && existsSync(compiled)) return [compiled];
  return ['--import', 'tsx', 'src/cli/main.ts'];
}

const TICKS_PER_SECOND = 100; // USER_HZ on Linux

/** user + system CPU seconds from a /proc stat file (a process's or a thread's): fields 14 and 15, after the name in parentheses */
function statCpuSeconds(file: string): number {
  const fields = readFileSync(file, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND;
}

/** Resident memory (now and peak) in MiB and CPU seconds (user + system) of a process, from /proc. */
export function procUsage(pid: number): { rssMiB: number; peakRssMiB: number; cpuSeconds: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+)`).exec(status)?.[1] ?? 0);
  return { rssMiB: kb('VmRSS') / 1024, peakRssMiB: kb('VmHWM') / 1024, cpuSeconds: statCpuSeconds(`/proc/${pid}/stat`) };
}

/**
 * Sets this process's kernel high-water mark (VmHWM) back to its resident memory now (Linux 4.0+:
 * `5` to /proc/self/clear_refs), so the next reading is the peak since this call; false where the
 * kernel refuses it (then VmHWM goes on counting from the process's start).
 */
export function resetPeakRss(): boolean {
  try {
    writeFileSync('/proc/self/clear_refs', '5');
    return true;
  } catch {
    return false;
  }
}

/** The machine's CPU time so far, all cores (/proc/stat's first line): busy (all but idle and iowait) and in all, in seconds. */
export function machineCpuSeconds(): { busy: number; total: number } {
  const fields = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!.trim().split(/\s+/).slice(1, 9).map(Number);
  const total = fields.reduce((a, b) => a + b, 0);
  const idle = fields[3]! + fields[4]!;
  return { busy: (total - idle) / TICKS_PER_SECOND, total: total / TICKS_PER_SECOND };
}

/** One reading of where the machine's CPU went: the whole machine, this process, its main thread, another process (the simulator). */
export interface CpuReading {
  /** performance.now() */
  at: number;
  machineBusy: number;
  machineTotal: number;
  own: number;
  main: number;
  other: number;
}

/**
 * Reads the machine's, this process's, its main thread's and process `otherPid`'s CPU every
 * `everyMs` (each reading ~0.1 ms of this loop), to tell afterwards how busy the cores were over a
 * stretch whose end is known only later (a report cycle's start phase). /proc counts in ticks of
 * 10 ms, so a stretch of seconds is measured to about 1 %.
 */
export function sampleCpu(otherPid: number, everyMs = 100): { stop(): CpuReading[] } {
  const read = (): CpuReading => {
    const m = machineCpuSeconds();
    return { at: performance.now(), machineBusy: m.busy, machineTotal: m.total, own: statCpuSeconds(`/proc/${process.pid}/stat`), main: statCpuSeconds(`/proc/${process.pid}/task/${process.pid}/stat`), other: statCpuSeconds(`/proc/${otherPid}/stat`) };
  };
  const readings: CpuReading[] = [];
  // a reading that fails (the other process gone: the simulator crashed) is left out; the run reports that failure itself
  const take = (): void => {
    try {
      readings.push(read());
    } catch {
      // no reading this time
    }
  };
  take();
  const timer = setInterval(take, everyMs);
  timer.unref();
  return {
    stop() {
      clearInterval(timer);
      take();
      return readings;
    },
  };
}

/** How busy the cores were from the first reading to the last one at or before `until` (performance.now()): shares of one core each, and the machine's share of all cores. */
export function cpuOver(readings: readonly CpuReading[], until: number): { seconds: number; machinePct: number; ownCores: number; mainCores: number; otherCores: number } | undefined {
  const first = readings[0];
  const last = readings.filter((r) => r.at <= until).at(-1);
  if (first === undefined || last === undefined || last.at - first.at < 50) return undefined;
  const seconds = (last.at - first.at) / 1000;
  const machineTotal = last.machineTotal - first.machineTotal;
  return {
    seconds,
    machinePct: machineTotal > 0 ? (100 * (last.machineBusy - first.machineBusy)) / machineTotal : 0,
    ownCores: (last.own - first.own) / seconds,
    mainCores: (last.main - first.main) / seconds,
    otherCores: (last.other - first.other) / seconds,
  };
}

/** CPU seconds of each thread of process `pid` so far, by thread id (/proc/PID/task). */
export function threadCpuSeconds(pid = process.pid): Map<number, number> {
  const out = new Map<number, number>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      out.set(Number(tid), statCpuSeconds(`/proc/${pid}/task/${tid}/stat`));
    } catch {
      // the thread ended between the listing and the read
    }
  }
  return out;
}

/** CPU seconds by kind of thread: the main thread, console worker threads, Node's helpers (GC, the thread pool's file I/O) */
export interface CpuByThread {
  main: number;
  workers: number;
  helpers: number;
}

/**
 * CPU seconds of process `pid` since `before` (threadCpuSeconds then), by kind of thread. Worker
 * threads are the ones not in `beforePool`, the threads the process had before it started its
 * worker pool; without it, every thread but the main one counts as a helper.
 */
export function cpuByThread(before: Map<number, number>, beforePool: ReadonlySet<number> | undefined, pid = process.pid): CpuByThread {
  const out = { main: 0, workers: 0, helpers: 0 };
  for (const [tid, seconds] of threadCpuSeconds(pid)) {
    const spent = seconds - (before.get(tid) ?? 0);
    if (tid === pid) out.main += spent;
    else if (beforePool && !beforePool.has(tid)) out.workers += spent;
    else out.helpers += spent;
  }
  return out;
}

/**
 * A port below Linux's ephemeral range (32768 and up, where client sockets land), free on `host`
 * now: benchmarks on a shared machine must not collide with each other's fleets.
 */
async function pickPort(kind: 'udp' | 'tcp', host: string): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = 20_000 + Math.floor(Math.random() * 12_000);
    const free = await new Promise<boolean>((resolve) => {
      if (kind === 'udp') {
        const socket = createSocket('udp4');
        socket.once('error', () => resolve(false));
        socket.bind(port, host, () => socket.close(() => resolve(true)));
      } else {
        const server = createServer();
        server.once('error', () => resolve(false));
        server.listen(port, host, () => server.close(() => resolve(true)));
      }
    });
    if (free) return port;
  }
  throw new Error(`no free ${kind} port on ${host} between 20000 and 32000`);
}

export interface FleetOptions {
  count: number;
  /** second octet of the fleet's 127.x.0.0/16 block */
  second?: number;
  /** fixed ports; by default free ones are picked (and picked again when the simulator cannot bind them) */
  ipmiPort?: number;
  redfishPort?: number;
  controlPort?: number;
  leaseFile?: string;
  redfish?: boolean;
  /** every serial line streams at 115200 baud from the start (also switchable through `control`) */
  serialStream?: boolean;
  /** the simulator's latency model, as `metal-bmc sim --latency` takes it (src/sim/latency.ts) */
  latency?: string;
  /**
   * The simulator's CPU priority, nice steps below this process (through nice(1), so all its
   * threads), default 0. Real BMCs do not take the management server's cores; at a lower priority
   * the simulator takes the cores the process measured leaves instead of preempting it, and its
   * answers come later where it waits for one (as a busy BMC's would).
   */
  nice?: number;
}

export async function startFleetProcess(o: FleetOptions): Promise<FleetProcess> {
  const fixed = o.ipmiPort !== undefined && o.redfishPort !== undefined && o.controlPort !== undefined;
  for (let attempt = 1; ; attempt++) {
    try {
      return await startFleetOnce(o);
    } catch (err) {
      if (fixed || attempt >= 3 || !/EADDRINUSE/.test((err as Error).message)) throw err;
    }
  }
}

async function startFleetOnce(o: FleetOptions): Promise<FleetProcess> {
  const second = o.second ?? 12;
  const first = `127.${second}.0.1`;
  const ipmiPort = o.ipmiPort ?? (await pickPort('udp', first));
  const redfishPort = o.redfishPort ?? (await pickPort('tcp', first));
  const controlPort = o.controlPort ?? (await pickPort('tcp', '127.0.0.1'));
  const args = [...childNodeArgs(), ...simulatorEntry(), 'sim', '--count', String(o.count), '--cidr', `127.${second}.0.0/16`, '--ipmi-port', String(ipmiPort), '--redfish-port', String(redfishPort), '--control-port', String(controlPort), '--password', 'bench-pass'];
  if (o.leaseFile) args.push('--lease-file', o.leaseFile);
  if (o.redfish === false) args.push('--no-redfish');
  if (o.serialStream) args.push('--serial-stream');
  if (o.latency) args.push('--latency', o.latency);
  const nice = o.nice ?? 0;
  const command = nice > 0 ? ['nice', '-n', String(nice), process.execPath, ...args] : [process.execPath, ...args];
  const child = spawn(command[0]!, command.slice(1), { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  // nice(1) or node missing: the start fails with the reason, not an unhandled 'error'
  let spawnError: Error | undefined;
  child.once('error', (err) => (spawnError = err));
  child.stdout?.on('data', (d) => (out += d));
  child.stderr?.on('data', (d) => (out += d));
  const deadline = Date.now() + 120_000;
  while (!out.includes('simulating')) {
    if (spawnError) throw new Error(`sim did not start: ${spawnError.message}`);
    if (child.exitCode !== null || Date.now() > deadline) {
      await stopChild(child, 5000);
      throw new Error(`sim did not start: ${out}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    child,
    count: o.count,
    addresses: Array.from({ length: o.count }, (_, i) => nthAddress(`127.${second}.0.0/16`, i + 1)),
    ipmiPort,
    redfishPort,
    controlPort,
    user: 'ADMIN',
    password: 'bench-pass',
    leaseFile: o.leaseFile,
    usage() {
      const { rssMiB, cpuSeconds } = procUsage(child.pid!);
      return { rssMiB, cpuSeconds };
    },
    async control(method, path, body) {
      const res = await fetch(`http://127.0.0.1:${controlPort}${path}`, { method, ...(body === undefined ? {} : { body: JSON.stringify(body) }), signal: AbortSignal.timeout(10_000) });
      if (!res.ok) throw new Error(`sim control API ${method} ${path}: HTTP ${res.status} ${await res.text()}`);
      return res.json();
    },
    async stop() {
      await stopChild(child, 10_000);
    },
  };
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves when the child has exited. */
export async function stopChild(child: ChildProcess, graceMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}

/** Peak resident memory of this process while `fn` runs, sampled every 50 ms. */
export async function withPeakRss<T>(fn: () => Promise<T>): Promise<{ value: T; peakRssMiB: number }> {
  let peak = process.memoryUsage().rss;
  const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 50);
  try {
    const value = await fn();
    peak = Math.max(peak, process.memoryUsage().rss);
    return { value, peakRssMiB: peak / 1024 / 1024 };
  } finally {
    clearInterval(timer);
  }
}
