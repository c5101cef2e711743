/**
 * `metal-bmc serve`: the daemon. Configuration from METAL_BMC_* variables; SIGTERM or SIGINT
 * stops it gracefully (in-flight commands finish up to METAL_BMC_SHUTDOWN_TIMEOUT, sessions
 * close, NATS drains), also during the start (after it), a second signal exits at once.
 */
import { EXIT_BUS_LOST } from '../bus/connection.js';
import { ConfigError } from '../config/error.js';
import { loadConfig } from '../config/config.js';
import { probeWrittenDirs } from '../config/state-dir.js';
import { startDaemon, type Daemon, type PartFactory } from '../daemon.js';
import { applyHeapGrowth } from '../heap-growth.js';
import { createLogger, type Logger } from '../log.js';
import { consolePart } from '../parts/console.js';
import { commandsPart } from '../parts/commands.js';
import { UsageError } from './args.js';

export const SERVE_USAGE = `usage: metal-bmc serve

Runs the daemon. Every setting comes from METAL_BMC_* environment variables
(see docs/configuration.md); METAL_BMC_PARTITION_ID, METAL_BMC_METAL_API_URL and
METAL_BMC_METAL_API_HMAC_KEY are required. As the Go metal-bmc, some are also read
under their bare names (PARTITION_ID, METAL_API_URL, MQ_ADDRESS, CONSOLE_PORT, ...)
when the METAL_BMC_ name is unset.`;

/** Parts beyond discovery and reporting, started in this order and stopped in reverse. */
export const DEFAULT_PARTS: PartFactory[] = [commandsPart, consolePart];

export async function serveMain(argv: string[], io: { stdout: NodeJS.WritableStream; env: NodeJS.ProcessEnv }): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    io.stdout.write(`${SERVE_USAGE}\n`);
    return 0;
  }
  if (argv.length > 0) throw new UsageError(`serve takes no arguments (configuration is by environment): ${argv.join(' ')}`);
  let config;
  try {
    config = loadConfig(io.env);
    // before anything starts: a folder the state or the console capture cannot be kept in fails the start, not each write
    probeWrittenDirs(config);
  } catch (err) {
    if (err instanceof ConfigError) throw new UsageError(`invalid configuration: ${err.message}`);
    throw err;
  }
  // a setting of the process, so here and not in startDaemon (which tests run inside their own)
  applyHeapGrowth(config.heapGrowthPct);
  const logger = createLogger({ level: config.logLevel });
  return await runDaemon({
    start: (onFatal) => startDaemon(config, logger, DEFAULT_PARTS, { onFatal }),
    shutdownTimeoutMs: config.shutdownTimeoutMs,
    logger,
    signals: process,
    faults: process,
  });
}

const UNCAUGHT_ORIGINS = ['uncaughtException', 'unhandledRejection'] as const;
type UncaughtOrigin = (typeof UNCAUGHT_ORIGINS)[number];
/** uncaught errors logged in full; later ones only end the process with the stop */
const MAX_UNCAUGHT_LOGGED = 10;

/**
 * Starts the daemon and runs it until a signal (exit 0) or a fatal condition (exit 1) has stopped
 * it. The handlers are set before the start: Node's default for a signal ends the process at once,
 * with what began during the start (the first report cycle, its BMC sessions, files being written)
 * cut off. A signal or a fatal condition during the start waits for it, then stops what it started
 * (a start that failed has stopped its parts itself, and is thrown); a second signal during the
 * start exits at once. An uncaught exception or unhandled rejection stops it as a fatal condition.
 */
export async function runDaemon(o: {
  start: (onFatal: (why: string) => void) => Promise<Pick<Daemon, 'stop'>>;
  shutdownTimeoutMs: number;
  logger: Pick<Logger, 'info' | 'warn' | 'error'>;
  signals: { on(event: 'SIGTERM' | 'SIGINT', listener: (signal: NodeJS.Signals) => void): unknown };
  /** the process's uncaught exceptions and unhandled rejections (`process`; tests give an emitter) */
  faults?: { on(event: UncaughtOrigin, listener: (err: unknown) => void): unknown };
}): Promise<number> {
  const start: { promise?: Promise<Pick<Daemon, 'stop'>> } = {};
  // a fatal condition the start reports before its first await comes before its promise is
  // known here: the stop waits a turn for it
  const stop = async (): Promise<void> => (await (start.promise ?? Promise.resolve().then(() => start.promise))?.catch(() => undefined))?.stop();
  const stopper = createStopper({ stop, shutdownTimeoutMs: o.shutdownTimeoutMs, logger: o.logger });
  const onSignal = (signal: NodeJS.Signals) => stopper.signal(signal);
  o.signals.on('SIGTERM', onSignal);
  o.signals.on('SIGINT', onSignal);
  // a bug, not a condition of the partition: Node's default would print it unredacted and exit at
  // once, with burst writes (trust pins, UUID owners, the event position) lost and IPMI sessions
  // left open on the BMCs; logged through the logger, then stopped as a fatal condition (exit 1,
  // so systemd starts it again). More during that stop are logged (the first few) and do not cut
  // it short: a bug met once per BMC rejects many times in one turn; the stop's own deadline bounds it
  let uncaught = 0;
  for (const origin of UNCAUGHT_ORIGINS) {
    o.faults?.on(origin, (err) => {
      uncaught += 1;
      if (uncaught <= MAX_UNCAUGHT_LOGGED) o.logger.error({ err, origin, uncaught }, uncaught === 1 ? 'uncaught error: stopping to be restarted' : 'another uncaught error while stopping');
      if (uncaught === 1) stopper.fatal(`uncaught error (${origin})`);
    });
  }
  const starting = (start.promise = o.start((why) => stopper.fatal(why)));
  const early = await Promise.race([starting.then(() => undefined), stopper.exitCode]);
  return early ?? (await stopper.exitCode);
}

export interface Stopper {
  /** SIGTERM or SIGINT: stop, then exit 0 */
  signal(signal: NodeJS.Signals): void;
  /** the daemon cannot go on: stop, then exit 1, so that systemd's Restart=on-failure starts it again */
  fatal(why: string): void;
  /** the process's exit code, once the daemon has stopped (1 when the stop failed or overran its deadline) */
  readonly exitCode: Promise<number>;
}

/**
 * How `serve` ends: the first request stops the daemon gracefully, within its shutdown timeout
 * and 5 s more; a second request (another signal) exits at once.
 */
export function createStopper(o: { stop: () => Promise<void>; shutdownTimeoutMs: number; logger: Pick<Logger, 'info' | 'warn' | 'error'> }): Stopper {
  let resolve!: (code: number) => void;
  const exitCode = new Promise<number>((r) => (resolve = r));
  let requests = 0;
  const stopWith = (code: number, fields: Record<string, unknown>, message: string): void => {
    if (++requests > 1) {
      o.logger.warn(fields, 'asked to stop again: exiting now');
      resolve(1);
      return;
    }
    o.logger.info(fields, message);
    const deadlineMs = o.shutdownTimeoutMs + 5000;
    const hard = setTimeout(() => {
      o.logger.error({ deadlineMs }, 'graceful shutdown took too long: exiting');
      resolve(1);
    }, deadlineMs);
    hard.unref();
    o.stop().then(
      () => resolve(code),
      (err: Error) => {
        o.logger.error({ err }, 'shutdown failed');
        resolve(1);
      },
    );
  };
  return {
    signal: (signal) => stopWith(0, { signal }, 'shutting down'),
    fatal: (why) => stopWith(EXIT_BUS_LOST, { why, exitCode: EXIT_BUS_LOST }, 'shutting down to be restarted'),
    exitCode,
  };
}
