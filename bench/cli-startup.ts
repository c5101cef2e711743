/**
 * Whole-process cost of a one-shot command: `metal-bmc bmc command ON --protocol ipmi` (the
 * single-file bundle, built from the current sources; tsc's dist/src when built; the sources
 * through tsx) next to `ipmitool power on` and a bare `node -e 0`, against the same ipmi_sim, same
 * cipher suite (3), same password source (IPMI_PASSWORD). Each command runs N times, the commands
 * interleaved so that load from elsewhere hits them alike; wall time is measured around the
 * process, peak RSS by GNU time (Debian package `time`), which wraps every command alike. Every
 * run must succeed; a failure stops the benchmark. Figures are medians (p50 of an odd N).
 *
 * Where the time goes, measured in the same run and interleaved with the rest: the bundle's
 * start-up alone (`bmc command --help`: the bundle read, compiled and its IPMI path's modules
 * loaded, no exchange) next to `node -e 0`, and the exchange alone, in this process with warm
 * code (the same connect, Chassis Control and close that `bmc command ON` runs, against the same
 * ipmi_sim). Their difference to the whole command is printed as derived, not measured. The
 * bundle's V8 code cache lives in this run's folder (written by the warm-up run); a detail row
 * runs the same bundle with it turned off. The floor of any single-file `.mjs` bundle of this
 * size: a file as large, with no code of ours, that loads the same Node modules, binds a UDP
 * socket and prints a line (measured); plus the in-process exchange (derived), against the goal.
 * Usage: npm run bench -- cli-startup [N]   (N >= 10, default 15)
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bundle } from '../scripts/bundle.js';
import { COMMAND_ACTIONS } from '../src/commands/actions.js';
import { closeAllSessions } from '../src/ipmi/session.js';
import { connectOutband } from '../src/outband/connect.js';
import { REPO_ROOT } from '../test/helpers/cli.js';
import { startIpmiSim, type IpmiSim } from '../test/helpers/ipmisim.js';
import { spread } from './report.js';
import { begin, type Side } from './results.js';

const GNU_TIME = '/usr/bin/time';
/** issue 12's goal for the bundle: within this factor of `node -e 0` and under this wall time */
const GOAL_RATIO = 2;
const GOAL_MS = 100;

interface Row {
  name: string;
  argv: string[];
  /** what stdout must contain for the run to count as done */
  expect?: RegExp;
  /** figures of this row are details (in the JSON file, not in the README table) */
  detail?: boolean;
  /** added to the environment of this row's runs */
  env?: NodeJS.ProcessEnv;
}

interface Samples {
  ms: number[];
  rssMiB: number[];
}

async function runOnce(row: Row, env: NodeJS.ProcessEnv, rssFile: string): Promise<{ ms: number; rssMiB: number }> {
  const start = process.hrtime.bigint();
  const child = spawn(GNU_TIME, ['-f', '%M', '-o', rssFile, ...row.argv], { env: { ...env, ...row.env }, cwd: REPO_ROOT });
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
  if (!(kib > 0)) throw new Error(`${row.name}: GNU time reported no peak RSS`);
  return { ms, rssMiB: kib / 1024 };
}

/** The p50 of `values` as one side of a figure, with its spread. */
function side(name: string, values: number[]): Side {
  const s = spread(values)!;
  return { name, value: s.p50, stat: 'p50', kind: 'measured', spread: s };
}

/**
 * What `bmc command ON --protocol ipmi --cipher-suite 3` does after start-up, in this process:
 * connect (RMCP+ session, Get Device ID), Chassis Control, close; the wall time of it.
 */
async function exchangeOnce(sim: IpmiSim): Promise<number> {
  const start = process.hrtime.bigint();
  const deadlineMs = 10_000;
  const bmc = await connectOutband({
    host: sim.host,
    user: sim.user,
    password: sim.password,
    protocol: 'ipmi',
    ipmiPort: sim.port,
    ipmiCipherSuite: 3,
    timeoutMs: deadlineMs,
    ipmiRetry: { deadlineMs },
    signal: AbortSignal.timeout(3 * deadlineMs),
  });
  try {
    await COMMAND_ACTIONS.ON(bmc, {});
  } finally {
    await bmc.close();
  }
  await closeAllSessions(); // as the CLI's exit does
  return Number(process.hrtime.bigint() - start) / 1e6;
}

const FLOOR_NAME = 'an .mjs of the bundle\'s size, no code of ours: loads the Node modules bmc command loads, binds a UDP socket, prints a line';

/**
 * A file as large as the bundle that does what every run of `bmc command` does before and around
 * its own code: Node's ES module loader reads and decodes it (its size, in a comment, as the
 * bundle's store is), the Node modules the command loads (crypto for RMCP+, dgram and its bind,
 * which loads cluster; net, vm, util) and a line on stdout (a pipe here, which loads net and streams).
 */
function writeFloorFile(path: string, bytes: number): string {
  // Node's modules taken as the bundle takes them (process.getBuiltinModule, not an ES import, which costs more);
  // the socket bound and the line written as the command does (bindEphemeral, directStdout): without node:cluster and node:net
  const code = [
    "for (const id of ['node:crypto', 'node:vm', 'node:util']) process.getBuiltinModule(id);",
    "const socket = process.getBuiltinModule('node:dgram').createSocket('udp4');",
    'const state = Object.getOwnPropertySymbols(socket).map((k) => socket[k]).find((v) => typeof v?.handle?.recvStart === "function");',
    "const handle = new state.handle.constructor(); handle.bind('0.0.0.0', 0, 0);",
    "socket.bind(handle, () => { process.getBuiltinModule('node:fs').writeSync(1, 'bound\\n'); socket.close(); });",
    '/*',
  ].join('\n');
  writeFileSync(path, `${code}${'x'.repeat(Math.max(0, bytes - code.length - 3))}*/\n`);
  return path;
}

const IPMITOOL_WORK = 'both open an RMCP+ session with cipher suite 3, send Chassis Control (power up) and close the session; metal-bmc also sends Get Device ID (vendor detection)';

export async function benchCliStartup(n = 15): Promise<void> {
  if (n < 10) throw new Error('cli-startup: at least 10 runs per command');
  if (!existsSync(GNU_TIME)) throw new Error(`cli-startup needs GNU time at ${GNU_TIME} (Debian package "time") for the peak RSS`);
  const tscBuild = join(REPO_ROOT, 'dist', 'src', 'cli', 'main.js');
  const out = begin('cli-startup', 'one-shot `metal-bmc bmc command ON --protocol ipmi`, whole process against one ipmi_sim, next to ipmitool and a bare Node start', {
    runs: n,
    cipherSuite: 3,
    goalRatioToNode: GOAL_RATIO,
    goalMs: GOAL_MS,
    distSrc: existsSync(tscBuild),
  });
  const dir = mkdtempSync(join(tmpdir(), 'cli-startup-'));
  const sim = await startIpmiSim();
  try {
    const { outfile } = await bundle(join(dir, 'metal-bmc.mjs'));
    const address = `${sim.host}:${sim.port}`;
    const bmcArgs = ['bmc', 'command', 'ON', '--protocol', 'ipmi', '--cipher-suite', '3', '--address', address, '--user', sim.user];
    const done = /ON: done/;
    const node: Row = { name: 'node -e 0', argv: [process.execPath, '-e', '0'] };
    const ours: Row = { name: 'metal-bmc bmc command ON (bundle)', argv: [process.execPath, outfile, ...bmcArgs], expect: done };
    // the same bundle without its V8 code cache (scripts/bundle-code-cache.ts): what the cache saves, measured
    const noCache: Row = { name: 'metal-bmc bmc command ON (bundle, NODE_DISABLE_COMPILE_CACHE=1)', argv: [process.execPath, outfile, ...bmcArgs], env: { NODE_DISABLE_COMPILE_CACHE: '1' }, expect: done, detail: true };
    const startUp: Row = { name: 'metal-bmc bmc command --help (bundle: start-up, no exchange)', argv: [process.execPath, outfile, 'bmc', 'command', '--help'], expect: /^usage: metal-bmc bmc /m };
    const ipmitool: Row = { name: 'ipmitool -I lanplus -C 3 -E power on', argv: ['ipmitool', '-I', 'lanplus', '-C', '3', '-H', sim.host, '-p', String(sim.port), '-U', sim.user, '-E', 'power', 'on'], expect: /Up\/On/ };
    const others: Row[] = [
      noCache,
      ...(existsSync(tscBuild) ? [{ name: 'metal-bmc bmc command ON (dist/src, tsc)', argv: [process.execPath, tscBuild, ...bmcArgs], expect: done, detail: true }] : []),
      { name: 'metal-bmc bmc command ON (sources through tsx)', argv: [process.execPath, '--import', 'tsx', join(REPO_ROOT, 'src', 'cli', 'main.ts'), ...bmcArgs], expect: done, detail: true },
    ];
    // the bundle's floor: what any single-file .mjs of its size pays before its own code, measured as a whole process
    const floorFile = writeFloorFile(join(dir, 'floor.mjs'), statSync(outfile).size);
    const floor: Row = { name: FLOOR_NAME, argv: [process.execPath, floorFile], expect: /^bound$/m };
    const rows = [node, ours, startUp, ipmitool, floor, ...others];
    if (!existsSync(tscBuild)) out.note('dist/src is not built (npm run build): no row for it');
    // run in the repository (where tsx resolves); the others need nothing from it
    // the bundle's code cache in this run's folder: the warm-up run writes it, the measured runs take it
    const env = { PATH: process.env.PATH, IPMI_PASSWORD: sim.password, XDG_CACHE_HOME: join(dir, 'cache') };
    const rssFile = join(dir, 'rss');
    for (const row of rows) await runOnce(row, env, rssFile); // warm-up: page cache, ipmi_sim's first session
    for (let i = 0; i < 3; i++) await exchangeOnce(sim); // warm-up: this process's code compiled and optimised
    const samples = new Map<Row, Samples>(rows.map((r) => [r, { ms: [], rssMiB: [] }]));
    const exchangeMs: number[] = [];
    for (let i = 0; i < n; i++) {
      for (const row of rows) {
        const r = await runOnce(row, env, rssFile);
        samples.get(row)!.ms.push(r.ms);
        samples.get(row)!.rssMiB.push(r.rssMiB);
      }
      exchangeMs.push(await exchangeOnce(sim));
    }
    const wall = (row: Row) => side(row.name, samples.get(row)!.ms);
    const rss = (row: Row) => side(row.name, samples.get(row)!.rssMiB);
    const startOnly = 'node -e 0 only starts Node and exits; metal-bmc also runs the IPMI exchange';
    for (const row of [ours, ...others]) {
      const detail = row.detail ? { detail: true } : {};
      out.record({ ...wall(row), name: `${row.name}: wall`, unit: 'ms', reference: wall(node), better: 'lower', differs: startOnly, ...detail });
      out.record({ ...wall(row), name: `${row.name}: wall`, unit: 'ms', reference: wall(ipmitool), better: 'lower', differs: IPMITOOL_WORK, ...detail });
      out.record({ ...rss(row), name: `${row.name}: peak RSS`, unit: 'MiB', reference: rss(ipmitool), better: 'lower', differs: `${IPMITOOL_WORK}; ipmitool is a C program, metal-bmc runs in Node`, ...detail });
      out.record({ ...rss(row), name: `${row.name}: peak RSS`, unit: 'MiB', reference: rss(node), better: 'lower', differs: startOnly, detail: true });
    }
    out.record({ ...wall(ipmitool), name: `${ipmitool.name}: wall`, unit: 'ms', detail: true });

    // where the time goes
    out.record({ ...wall(startUp), name: `${startUp.name}: wall`, unit: 'ms', reference: wall(node), better: 'lower', differs: 'node -e 0 only starts Node; metal-bmc also reads and compiles the bundle, loads its IPMI path (crypto, dgram) and prints the usage' });
    out.record({ ...rss(startUp), name: `${startUp.name}: peak RSS`, unit: 'MiB', reference: rss(node), better: 'lower', differs: 'as for its wall time', detail: true });
    const exchange = side('IPMI exchange in-process, warm (connect, Chassis Control, close)', exchangeMs);
    out.record({ ...exchange, name: `${exchange.name}: wall`, unit: 'ms', reference: wall(ipmitool), better: 'lower', differs: `the same exchange as the bundle's command, without a process start; ${IPMITOOL_WORK}` });
    const overhead = wall(ours).value! - wall(node).value! - exchange.value!;
    out.record({
      name: 'metal-bmc bmc command ON (bundle): start-up beyond node -e 0 and the warm exchange',
      value: overhead,
      kind: 'estimated',
      basis: 'derived: p50 of the bundle command - p50 of node -e 0 - p50 of the in-process exchange, all measured in this run (a difference of medians, not a median of differences)',
      unit: 'ms',
    });
    out.record({ ...wall(floor), name: `${floor.name}: wall`, unit: 'ms', reference: wall(node), better: 'lower', differs: 'node -e 0 starts Node only; the file also pays the ES module loader, its size and the Node modules the command loads' });
    out.record({
      name: 'floor of bmc command ON from one .mjs file of this size: that file\'s start, then the exchange',
      value: wall(floor).value! + exchange.value!,
      kind: 'estimated',
      basis: `derived: p50 of "${FLOOR_NAME}" + p50 of the in-process exchange, both measured in this run; against the goal of ${GOAL_MS} ms`,
      unit: 'ms',
    });
    const oursMs = wall(ours).value!;
    const nodeMs = wall(node).value!;
    const met = oursMs <= GOAL_RATIO * nodeMs && oursMs < GOAL_MS;
    out.note(`goal for the bundle, within goalRatioToNode of node -e 0 and under goalMs wall: ${met ? 'met' : 'not met'}`);
  } finally {
    await sim.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await benchCliStartup(process.argv[2] ? Number(process.argv[2]) : undefined);
}
