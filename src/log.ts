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

/** causes followed below a logged error; a longer chain ends in its message */
const MAX_CAUSES = 4;

/**
 * pino's error serializer keeps an error's own fields (a BmcError's `code`, `completionCode`,
 * `httpStatus`; a Node error's `code`) and its stack, but only folds `cause` into the message.
 * This one also keeps the cause as an error object of its own, with its code, so
 * `{ err }` logs the whole chain; redaction applies to the serialized object as to any other.
 */
export function serializeError(err: unknown, depth = 0): unknown {
  if (!(err instanceof Error)) return err;
  const out = pino.stdSerializers.err(err) as unknown as Record<string, unknown>;
  const { cause } = err;
  if (cause !== undefined) out.cause = depth >= MAX_CAUSES ? String(cause instanceof Error ? cause.message : cause) : serializeError(cause, depth + 1);
  return out;
}

export function createLogger(options: LoggerOptions = {}, destination?: DestinationStream): Logger {
  const settings: LoggerOptions = {
    level: 'info',
    base: { service: 'metal-bmc' },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    ...options,
    serializers: { err: serializeError, ...options.serializers },
  };
  return destination ? pino(settings, destination) : pino(settings);
}

export type { Logger };
