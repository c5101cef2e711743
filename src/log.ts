import { pino, type Logger, type LoggerOptions } from 'pino';

/**
 * Secrets are redacted here, at the logger, never at each call site.
 * Any object logged with one of these keys (at any of the listed depths) shows `[redacted]`.
 */
const SECRET_KEYS = ['password', 'hmacKey', 'hmac', 'token', 'authorization', 'Authorization', 'key', 'privateKey', 'passphrase', 'kg'];

export const REDACT_PATHS = SECRET_KEYS.flatMap((k) => [k, `*.${k}`, `*.*.${k}`, `*.*.*.${k}`]);

export function createLogger(options: LoggerOptions = {}): Logger {
  return pino({
    level: process.env.METAL_BMC_LOG_LEVEL ?? 'info',
    base: { service: 'metal-bmc' },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    ...options,
  });
}

export type { Logger };
