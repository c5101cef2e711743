/**
 * `metal-bmc serve`: the daemon. Configuration from METAL_BMC_* variables; SIGTERM or SIGINT
 * stops it gracefully (in-flight commands finish up to METAL_BMC_SHUTDOWN_TIMEOUT, sessions
 * close, NATS drains), a second signal exits at once.
 */
import { ConfigError } from '../config/error.js';
import { loadConfig } from '../config/config.js';
import { startDaemon, type PartFactory } from '../daemon.js';
import { applyHeapGrowth } from '../heap-growth.js';
import { createLogger } from '../log.js';
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
  } catch (err) {
    if (err instanceof ConfigError) throw new UsageError(`invalid configuration: ${err.message}`);
    throw err;
  }
  // a setting of the process, so here and not in startDaemon (which tests run inside their own)
  applyHeapGrowth(config.heapGrowthPct);
  const logger = createLogger({ level: config.logLevel });
  const daemon = await startDaemon(config, logger, DEFAULT_PARTS);
  return await new Promise<number>((resolve) => {
    let signals = 0;
    const onSignal = (signal: NodeJS.Signals) => {
      signals++;
      if (signals > 1) {
        logger.warn({ signal }, 'second signal: exiting now');
        resolve(1);
        return;
      }
      logger.info({ signal }, 'shutting down');
      const hard = setTimeout(() => {
        logger.error({ deadlineMs: config.shutdownTimeoutMs + 5000 }, 'graceful shutdown took too long: exiting');
        resolve(1);
      }, config.shutdownTimeoutMs + 5000);
      hard.unref();
      daemon.stop().then(
        () => resolve(0),
        (err: Error) => {
          logger.error({ err }, 'shutdown failed');
          resolve(1);
        },
      );
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });
}
