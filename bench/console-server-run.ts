/**
 * The console service of the console-streaming benchmark as a child process
 * (bench/console-server-process.ts), compiled first so it runs as the daemon does.
 */
import { execFile, fork, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Pki } from '../src/lab/pki.js';
import type { ConsoleServerStats } from './console-server-process.js';
import { collector, type BenchResult } from './results.js';
import { childNodeArgs, repositoryRoot, stopChild, type FleetProcess } from './fleet-process.js';
import { within } from './console-terminal.js';

// the repository, also when this file runs compiled into node_modules/.cache
const ROOT = repositoryRoot();

/** A benchmark child ready to start: its file, Node's arguments, and how it runs (for messages). */
export interface BenchChildEntry {
  file: string;
  execArgv: string[];
  how: string;
}

/**
 * A benchmark child runs as compiled JavaScript under plain node, as the daemon does (`dist/`):
 * under tsx, the loader thread alone adds about 28 MiB of resident memory. Compiled with the
 * project's tsconfig into node_modules/.cache (incremental, so later runs take a second or two);
 * BENCH_CONSOLE_TSX=1 runs the TypeScript under tsx instead. `name`: the child in bench/ (the
 * console service here; console-idle's capture-process.ts, bench-process.ts).
 */
export async function benchChildEntry(name = 'console-server-process'): Promise<BenchChildEntry> {
  if (process.env.BENCH_CONSOLE_TSX === '1') return { file: `bench/${name}.ts`, execArgv: [...childNodeArgs(), '--expose-gc', '--import', 'tsx'], how: 'TypeScript under tsx' };
  const out = join(ROOT, 'node_modules', '.cache', 'metal-bmc-bench');
  const tsc = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
  await promisify(execFile)(process.execPath, [tsc, '-p', 'tsconfig.json', '--outDir', out, '--incremental', '--tsBuildInfoFile', join(out, 'tsbuildinfo'), '--sourceMap', 'false'], { cwd: ROOT, timeout: 120_000 });
  return { file: join(out, 'bench', `${name}.js`), execArgv: [...childNodeArgs(), '--expose-gc'], how: 'compiled JavaScript under node' };
}

/** Starts a benchmark child with `args`, its output on ours and an IPC channel, in the repository. */
export function forkBenchChild(entry: BenchChildEntry, args: string[]): ChildProcess {
  return fork(entry.file, args, { cwd: ROOT, execArgv: entry.execArgv, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
}

/**
 * Benchmark `name` (one bench/bench-process.ts knows) in its own compiled process, as the daemon
 * runs; its figures join this run's.
 */
export function benchInChild(name: string): (n?: number) => Promise<void> {
  return async (n) => {
    const entry = await benchChildEntry('bench-process');
    const child = forkBenchChild(entry, n === undefined ? [name] : [name, String(n)]);
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    try {
      const { results } = await nextMessage<{ results: BenchResult[] }>(child, `${name} (${entry.how})`, 'results', 60 * 60_000);
      collector.results.push(...results);
      // it ends by itself once its figures are sent (a profile, BENCH_CHILD_NODE_ARGS=--cpu-prof, is written then)
      await within(`${name} to exit after its figures`, 30_000, exited).catch(() => undefined);
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    }
  };
}

/** The child's next IPC message of `type`, within `ms`; fails if the child exits first. `what` names the child in errors. */
export function nextMessage<T>(child: ChildProcess, what: string, type: string, ms: number): Promise<T> {
  return within(
    `${what} ${type}`,
    ms,
    new Promise<T>((resolve, reject) => {
      const onMessage = (msg: { type?: string }) => {
        if (msg.type !== type) return;
        child.off('message', onMessage);
        child.off('exit', onExit);
        resolve(msg as T);
      };
      const onExit = (code: number | null) => reject(new Error(`${what} exited (${code}) before ${type}`));
      child.on('message', onMessage);
      child.once('exit', onExit);
    }),
  );
}

export interface ConsoleServerProcess {
  child: ChildProcess;
  wsPort: number;
  /** with `gc`, after a full garbage collection */
  stats(gc?: boolean): Promise<ConsoleServerStats>;
  /** graceful close (clients told, SOL payloads deactivated); ms it took */
  close(): Promise<number | undefined>;
}

export async function startConsoleServerProcess(fleet: FleetProcess, pki: Pki, protocol: string, entry: BenchChildEntry): Promise<ConsoleServerProcess> {
  const args = ['--ipmi-port', String(fleet.ipmiPort), '--redfish-port', String(fleet.redfishPort), '--protocol', protocol, '--user', fleet.user, '--password', fleet.password, '--ca', pki.ca, '--cert', pki.serverCert, '--key', pki.serverKey];
  const child = forkBenchChild(entry, args);
  const next = <T>(type: string, ms: number) => nextMessage<T>(child, 'console server', type, ms);
  const ready = await next<{ wsPort: number }>('ready', 60_000);
  return {
    child,
    wsPort: ready.wsPort,
    stats(gc = false) {
      const answer = next<ConsoleServerStats>('stats', 10_000);
      child.send({ type: 'stats', gc });
      return answer;
    },
    async close() {
      if (child.exitCode !== null) return undefined;
      const closed = next<{ ms: number }>('closed', 25_000).then(
        (m) => m.ms,
        () => undefined,
      );
      child.send({ type: 'close' });
      const ms = await closed;
      await stopChild(child, 5000);
      return ms;
    },
  };
}
