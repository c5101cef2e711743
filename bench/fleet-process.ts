/**
 * Runs `metal-bmc sim` in a child process, so the simulator's CPU does not count against the
 * client being measured; reads the child's resident memory and CPU time from /proc.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

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
  stop(): Promise<void>;
}

export function nthLoopback(second: number, i: number): string {
  const host = i + 1;
  return `127.${second}.${host >> 8}.${host & 255}`;
}

export async function startFleetProcess(o: { count: number; second?: number; ipmiPort?: number; redfishPort?: number; controlPort?: number; leaseFile?: string; redfish?: boolean }): Promise<FleetProcess> {
  const second = o.second ?? 12;
  const ipmiPort = o.ipmiPort ?? 16230;
  const redfishPort = o.redfishPort ?? 18443;
  const controlPort = o.controlPort ?? 18999;
  const args = ['--import', 'tsx', 'src/cli/main.ts', 'sim', '--count', String(o.count), '--cidr', `127.${second}.0.0/16`, '--ipmi-port', String(ipmiPort), '--redfish-port', String(redfishPort), '--control-port', String(controlPort), '--password', 'bench-pass'];
  if (o.leaseFile) args.push('--lease-file', o.leaseFile);
  if (o.redfish === false) args.push('--no-redfish');
  const child = spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout?.on('data', (d) => (out += d));
  child.stderr?.on('data', (d) => (out += d));
  const deadline = Date.now() + 120_000;
  while (!out.includes('simulating')) {
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`sim did not start: ${out}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  const ticks = 100; // USER_HZ on Linux
  return {
    child,
    count: o.count,
    addresses: Array.from({ length: o.count }, (_, i) => nthLoopback(second, i)),
    ipmiPort,
    redfishPort,
    controlPort,
    user: 'ADMIN',
    password: 'bench-pass',
    leaseFile: o.leaseFile,
    usage() {
      const status = readFileSync(`/proc/${child.pid}/status`, 'utf8');
      const rssKb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
      const stat = readFileSync(`/proc/${child.pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
      return { rssMiB: rssKb / 1024, cpuSeconds: (Number(stat[11]) + Number(stat[12])) / ticks };
    },
    async stop() {
      child.kill('SIGTERM');
      await new Promise((r) => (child.exitCode !== null ? r(null) : child.once('exit', r)));
    },
  };
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
