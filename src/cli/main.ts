#!/usr/bin/env node
/**
 * `metal-bmc`: the daemon and its tools. One line on stderr and a non-zero exit code on failure.
 * Each command is imported when it is run, so a one-shot `bmc command` loads neither the daemon's
 * NATS, metrics and console servers nor the simulator.
 */
import { WORKER_ARGS } from '../worker-args.js';
import { describeError, UsageError } from './args.js';
import { directStdout } from './direct-stdout.js';

const USAGE = `usage: metal-bmc <command> [options]

commands:
  serve     run the daemon (configured by METAL_BMC_* environment variables)
  bmc       talk to one BMC: info, command, console, firmware
  sim       run a simulated fleet of BMCs
  status    the daemon's status of every BMC (problems first), from its operations listener
  console   captured serial console history: log MACHINE, grep PATTERN
  lab       bring up a local lab (simulated fleet, nats-server, metal-api stand-in) and run the daemon on it

  --version print the version and the git commit it was built from

run 'metal-bmc <command> --help' for a command's options`;

type Main = (argv: string[], io: { stdout: NodeJS.WritableStream; env: NodeJS.ProcessEnv }) => Promise<number>;

const COMMANDS: Record<string, () => Promise<Main>> = {
  // a one-shot command prints a few lines: straight to fd 1, without building process.stdout
  bmc: async () => {
    const { bmcMain } = await import('./bmc.js');
    return (argv, io) => bmcMain(argv, { env: io.env, stdout: directStdout() });
  },
  serve: async () => (await import('./serve.js')).serveMain,
  sim: async () => (await import('./sim.js')).simMain,
  lab: async () => (await import('./lab.js')).labMain,
  status: async () => (await import('./status.js')).statusMain,
  console: async () => (await import('./console-history.js')).consoleHistoryMain,
};

/** Commands that handle SIGINT/SIGTERM themselves (graceful shutdown). */
const OWN_SIGNALS = new Set(['serve', 'sim', 'lab']);

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (!command || command === '--help' || command === '-h') {
    process.stdout.write(`${USAGE}\n`);
    return command ? 0 : 2;
  }
  if (command === '--version' || command === '-V') {
    const { buildInfo } = await import('../build-info.js');
    const { version, commit } = buildInfo();
    process.stdout.write(`metal-bmc ${version} (commit ${commit})\n`);
    return 0;
  }
  const load = Object.hasOwn(COMMANDS, command) ? COMMANDS[command] : undefined;
  if (!load) {
    process.stderr.write(`metal-bmc: unknown command ${JSON.stringify(command)}\n${USAGE}\n`);
    return 2;
  }
  try {
    // process.stdout is built on first use (a net.Socket on a pipe): only for the commands that take it
    const io = { get stdout(): NodeJS.WritableStream { return process.stdout; }, env: process.env };
    return await (await load())(rest, io);
  } catch (err) {
    const usage = err instanceof UsageError;
    process.stderr.write(`metal-bmc ${command}: ${usage ? '' : 'error: '}${describeError(err)}\n`);
    return usage ? 2 : 1;
  }
}

async function shutdown(code: number): Promise<never> {
  // Commands that talk IPMI have loaded the session module; closing it then frees the BMC's session slots.
  const { closeAllSessions } = await import('../ipmi/session.js');
  await closeAllSessions();
  process.exit(code);
}

// A worker thread (src/console/worker-pool.ts, src/report/worker-pool.ts) starts this same
// script, the bundle included, with its kind's first argument; a one-shot command never loads
// node:worker_threads.
const WORKERS: Record<string, () => Promise<() => void>> = {
  [WORKER_ARGS.console]: async () => (await import('../console/worker-thread.js')).runConsoleWorker,
  [WORKER_ARGS.report]: async () => (await import('../report/worker-thread.js')).runReportWorker,
};
const worker = WORKERS[process.argv[2] ?? ''];
if (worker) {
  // (no top-level await: the bundle's chunks are CommonJS-style functions)
  worker().then(
    (run) => run(),
    (err: unknown) => {
      process.stderr.write(`metal-bmc ${process.argv[2]?.replace(/^--metal-bmc-/, '') ?? 'worker'}: ${describeError(err)}\n`);
      process.exitCode = 1;
    },
  );
} else {
  if (!OWN_SIGNALS.has(process.argv[2] ?? '')) {
    for (const signal of ['SIGINT', 'SIGTERM'] as const) {
      process.once(signal, () => void shutdown(130));
    }
  }

  main(process.argv.slice(2)).then(shutdown, (err) => {
    process.stderr.write(`metal-bmc: ${describeError(err)}\n`);
    return shutdown(1);
  });
}
