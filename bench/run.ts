/**
 * Runs the benchmarks: `npm run bench` for all, `npm run bench -- NAME [N]` for one (N: its size,
 * see the README; NAME `all` runs every benchmark with that N), `--json FILE` also writes every figure with the machine, Node version, date,
 * commit and parameters (rewritten after each benchmark, so a later failure loses nothing).
 * Each benchmark prints its figures through bench/results.ts, beside a reference measured in the
 * same run where there is one. A benchmark that fails is reported and the others still run; the
 * exit code is then 1.
 */
import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { benchCliStartup } from './cli-startup.js';
import { benchCommandLatency } from './command-latency.js';
import { benchConsoleIdle } from './console-idle.js';
import { benchInChild } from './console-server-run.js';
import { benchConsoleStreaming } from './console-streaming.js';
import { benchIpmiPowerStatus } from './ipmi-power-status.js';
import { benchLeaseRead } from './lease-read.js';
import { benchOutbandInfo } from './outband-info.js';
import { benchReportCycle } from './report-cycle.js';
import { collector, newRun } from './results.js';
import { benchSimFootprint } from './sim-footprint.js';
import { benchStatus } from './status.js';
import { benchTlsResume } from './tls-resume.js';

/** name -> benchmark(N); the order is the run order */
const BENCHMARKS: Record<string, (n?: number) => Promise<void>> = {
  'ipmi-power-status': benchIpmiPowerStatus,
  'sim-footprint': benchSimFootprint,
  'outband-info': benchOutbandInfo,
  'report-cycle': benchReportCycle,
  'report-latency': benchInChild('report-latency'),
  'tls-resume': benchTlsResume,
  'command-latency': benchCommandLatency,
  'console-streaming': benchConsoleStreaming,
  'console-capture': benchInChild('console-capture'),
  'console-idle': benchConsoleIdle,
  'cli-startup': benchCliStartup,
  status: benchStatus,
  'lease-read': benchLeaseRead,
};

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const USAGE = `usage: npm run bench -- [--json FILE] [NAME [N]]   (NAME "all" runs every benchmark, each with N)\nbenchmarks: ${Object.keys(BENCHMARKS).join(', ')}`;

function parseArgs(argv: string[]): { json?: string; name?: string; n?: number } {
  const out: { json?: string; name?: string; n?: number } = {};
  const rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--json') {
      const file = argv[++i];
      if (!file) throw new Error('--json needs a file name');
      // npm runs scripts in the package folder; a relative name means the caller's folder
      out.json = resolve(process.env.INIT_CWD ?? process.cwd(), file);
    } else if (a === '-h' || a === '--help') {
      console.log(USAGE);
      process.exit(0);
    } else rest.push(a);
  }
  const [name, n, extra] = rest;
  if (extra !== undefined) throw new Error(`unexpected argument ${JSON.stringify(extra)}`);
  if (name !== undefined && name !== 'all') {
    if (!BENCHMARKS[name]) throw new Error(`unknown benchmark ${JSON.stringify(name)}`);
    out.name = name;
  }
  if (n !== undefined) {
    const value = Number(n);
    if (!(Number.isInteger(value) && value > 0)) throw new Error(`N must be a positive integer, not ${JSON.stringify(n)}`);
    out.n = value;
  }
  return out;
}

let args: ReturnType<typeof parseArgs>;
try {
  args = parseArgs(process.argv.slice(2));
} catch (err) {
  console.error(`${(err as Error).message}\n${USAGE}`);
  process.exit(2);
}

const run = newRun(process.argv.slice(2), ROOT);
const save = () => {
  if (!args.json) return;
  run.benchmarks = collector.results;
  writeFileSync(args.json, JSON.stringify(run, null, 2) + '\n');
};
console.log(`${run.date} node ${run.node} commit ${run.commit.slice(0, 12)}${run.dirty ? ' (uncommitted changes)' : ''}; ${run.machine.cores} x ${run.machine.cpuModel}, ${run.machine.totalMemoryMiB} MiB; load average ${run.machine.loadAverage.join(' ')}`);

let failed = 0;
for (const [name, bench] of Object.entries(BENCHMARKS)) {
  if (args.name && name !== args.name) continue;
  collector.expect(name);
  const started = performance.now();
  try {
    await bench(args.n);
  } catch (err) {
    failed++;
    const message = err instanceof Error ? err.message : String(err);
    console.error(`\nbenchmark ${name} failed: ${message}`);
    const result = collector.of(name).at(-1) ?? collector.begin(name, '(failed before it began)').result;
    result.error = message;
  }
  const results = collector.of(name);
  const last = results.at(-1);
  if (last) last.seconds = Math.round((performance.now() - started) / 100) / 10;
  if (!results.some((r) => r.figures.length > 0)) console.error(`benchmark ${name} recorded no figure through bench/results.ts: its output is not in the JSON file`);
  save();
}
if (args.json) console.log(`\nfigures written to ${args.json}`);
process.exit(failed > 0 ? 1 : 0);
