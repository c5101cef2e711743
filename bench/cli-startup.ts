/**
 * Whole-process cost of a one-shot command: `metal-bmc bmc command ON --protocol ipmi` (the
 * single-file bundle, built from the current sources, and tsc's dist/src when built) next to
 * `ipmitool power on` and a bare `node -e 0`, against the same ipmi_sim, same cipher suite (3),
 * same password source (IPMI_PASSWORD). Each command runs N times, the commands interleaved so
 * that load from elsewhere hits them alike; wall time is measured around the process, peak RSS
 * by GNU time (Debian package `time`). Every run must succeed; a failure stops the benchmark.
 * Usage: tsx bench/cli-startup.ts [N]   (N >= 10, default 15)
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bundle } from '../scripts/bundle.js';
import { REPO_ROOT } from '../test/helpers/cli.js';
import { startIpmiSim } from '../test/helpers/ipmisim.js';

const GNU_TIME = '/usr/bin/time';

interface Row {
  name: string;
  argv: string[];
  /** what stdout must contain for the run to count as done */
  expect?: RegExp;
}

interface Run {
  ms: number;
  rssMiB: number;
}

async function runOnce(row: Row, env: NodeJS.ProcessEnv, rssFile: string): Promise<Run> {
  const start = process.hrtime.bigint();
  const child = spawn(GNU_TIME, ['-f', '%M', '-o', rssFile, ...row.argv], { env });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  const ms = Number(process.hrtime.bigint() - start) / 1e6;
  if (code !== 0 || (row.expect && !row.expect.test(stdout))) {
    throw new Error(`${row.name}: exit code ${code}, stdout ${JSON.stringify(stdout.slice(0, 200))}, stderr ${JSON.stringify(stderr.slice(0, 300))}`);
  }
  const kib = Number(readFileSync(rssFile, 'utf8').trim().split('\n').at(-1));
  return { ms, rssMiB: kib / 1024 };
}

const median = (values: number[]) => {
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};

export async function benchCliStartup(n = 15): Promise<void> {
  if (n < 10) throw new Error('cli-startup: at least 10 runs per command');
  if (!existsSync(GNU_TIME)) throw new Error(`cli-startup needs GNU time at ${GNU_TIME} (Debian package "time") for the peak RSS`);
  const dir = mkdtempSync(join(tmpdir(), 'cli-startup-'));
  const sim = await startIpmiSim();
  try {
    const { outfile } = await bundle(join(dir, 'metal-bmc.mjs'));
    const address = `${sim.host}:${sim.port}`;
    const bmcArgs = ['bmc', 'command', 'ON', '--protocol', 'ipmi', '--cipher-suite', '3', '--address', address, '--user', sim.user];
    const tscBuild = join(REPO_ROOT, 'dist', 'src', 'cli', 'main.js');
    const rows: Row[] = [
      { name: 'node -e 0', argv: [process.execPath, '-e', '0'] },
      { name: 'metal-bmc bmc command ON (bundle)', argv: [process.execPath, outfile, ...bmcArgs], expect: /ON: done/ },
      ...(existsSync(tscBuild) ? [{ name: 'metal-bmc bmc command ON (dist/src, tsc)', argv: [process.execPath, tscBuild, ...bmcArgs], expect: /ON: done/ }] : []),
      { name: 'ipmitool -I lanplus -C 3 -E power on', argv: ['ipmitool', '-I', 'lanplus', '-C', '3', '-H', sim.host, '-p', String(sim.port), '-U', sim.user, '-E', 'power', 'on'], expect: /Up\/On/ },
    ];
    const env = { PATH: process.env.PATH, IPMI_PASSWORD: sim.password };
    for (const row of rows) await runOnce(row, env, join(dir, 'rss')); // warm-up: page cache, ipmi_sim's first session
    const runs = new Map<Row, Run[]>(rows.map((r) => [r, []]));
    for (let i = 0; i < n; i++) for (const row of rows) runs.get(row)!.push(await runOnce(row, env, join(dir, 'rss')));

    const result = rows.map((row) => ({ row, ms: median(runs.get(row)!.map((r) => r.ms)), rssMiB: median(runs.get(row)!.map((r) => r.rssMiB)) }));
    const base = result[0]!;
    const ipmitool = result.at(-1)!;
    console.log(`\nCLI start-up: whole process against one ipmi_sim (cipher suite 3), median of ${n} runs per command, interleaved, Node ${process.version}`);
    console.log('| command | wall | peak RSS | wall vs node -e 0 | wall vs ipmitool |');
    console.log('|---|---|---|---|---|');
    for (const r of result) {
      console.log(`| ${r.row.name} | ${r.ms.toFixed(1)} ms | ${r.rssMiB.toFixed(1)} MiB | ${(r.ms / base.ms).toFixed(2)}x (+${(r.ms - base.ms).toFixed(1)} ms) | ${(r.ms / ipmitool.ms).toFixed(2)}x |`);
    }
    if (!existsSync(tscBuild)) console.log('(dist/src not built: run `npm run build` for its row)');
    const ours = result[1]!;
    const met = ours.ms <= 2 * base.ms && ours.ms < 100;
    console.log(`goal for the bundle: within 2x of node -e 0 and under 100 ms wall: ${met ? 'met' : 'not met'} (${(ours.ms / base.ms).toFixed(2)}x, ${ours.ms.toFixed(1)} ms)`);
    console.log('Work: node -e 0 is the bare Node start metal-bmc also pays; metal-bmc and ipmitool both open an RMCP+ session with suite 3, send Chassis Control (power up) and close it; metal-bmc also sends Get Device ID (vendor detection).');
  } finally {
    await sim.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await benchCliStartup(process.argv[2] ? Number(process.argv[2]) : undefined);
}
