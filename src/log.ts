import { pino, type DestinationStream, type Logger, type LoggerOptions } from 'pino';

/**
 * Secrets are redacted here, at the logger, never at each call site.
 * Any object logged with one of these keys, at the top or up to five levels deep, shows
 * `[redacted]`: our own names, Redfish's (`Password`, `X-Auth-Token`), HTTP's (cookies).
 */
export const SECRET_KEYS = [
  'password',
  'Password',
  'hmacKey',
  'hmac',
  'token',
  'Token',
  'authorization',
  'Authorization',
  'x-auth-token',
  'X-Auth-Token',
  'cookie',
  'Cookie',
  'set-cookie',
  'Set-Cookie',
  'key',
  'privateKey',
  'passphrase',
  'secret',
  'kg',
];

const MAX_DEPTH = 5;
const segment = (k: string) => (/^[A-Za-z_$][\w$]*$/.test(k) ? `.${k}` : `["${k}"]`);

export const REDACT_PATHS = SECRET_KEYS.flatMap((k) => Array.from({ length: MAX_DEPTH + 1 }, (_, depth) => `${'*.'.repeat(depth).replace(/\.$/, '')}${segment(k)}`.replace(/^\./, '')));

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
