import { pino, type DestinationStream, type Logger, type LoggerOptions } from 'pino';

/**
 * Secrets are redacted here, at the logger, never at each call site.
 * Any object logged with one of these keys (at any of the listed depths) shows `[redacted]`.
 */
const SECRET_KEYS = ['password', 'hmacKey', 'hmac', 'token', 'authorization', 'Authorization', 'key', 'privateKey', 'passphrase', 'kg'];

export const REDACT_PATHS = SECRET_KEYS.flatMap((k) => [k, `*.${k}`, `*.*.${k}`, `*.*.*.${k}`]);

export function createLogger(options: LoggerOptions = {}, destination?: DestinationStream): Logger {
  const settings: LoggerOptions = {
    level: 'info',
    base: { service: 'metal-bmc' },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    ...options,
  };
  return destination ? pino(settings, destination) : pino(settings);
}

export type { Logger };
