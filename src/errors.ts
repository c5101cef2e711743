/**
 * The error tree shared by every module: one class with a string `code`,
 * optional protocol detail (IPMI completion code, HTTP status) and `cause`.
 * Callers branch on `code`, never on message text.
 */
export type BmcErrorCode =
  | 'TIMEOUT' // no answer within the deadline
  | 'ABORTED' // the caller's AbortSignal fired
  | 'AUTH_FAILED' // wrong user or password, or the BMC could not prove it knows the password
  | 'INSECURE_REFUSED' // cipher suite 0 / no authentication offered and not allowed
  | 'UNSUPPORTED' // the BMC or this client does not support the operation
  | 'COMPLETION_CODE' // IPMI command answered with a non-zero completion code
  | 'HTTP' // an HTTP peer answered with an error status
  | 'PROTOCOL' // the peer broke the protocol (unexpected message, bad integrity)
  | 'DECODE' // bytes or text that cannot be decoded
  | 'CLOSED' // the session or transport is closed
  | 'NO_SESSION_SLOTS' // the BMC has no free session
  | 'BUSY' // the resource is held by someone else (e.g. an active SOL payload)
  | 'INVALID_ARGUMENT' // the caller passed something unusable
  | 'FORBIDDEN' // refused by policy: a target or input this daemon may not act on
  | 'UNTRUSTED' // the peer is not the BMC recorded or proven before: another certificate or host key, or no proof of the password
  | 'CONFIG' // invalid configuration
  | 'UNAVAILABLE'; // a service this step depends on (NATS, its key-value bucket) cannot be used now

/** every code, for telling a code that crossed a boundary (a worker's port) from any string */
const CODES: Record<BmcErrorCode, true> = {
  TIMEOUT: true,
  ABORTED: true,
  AUTH_FAILED: true,
  INSECURE_REFUSED: true,
  UNSUPPORTED: true,
  COMPLETION_CODE: true,
  HTTP: true,
  PROTOCOL: true,
  DECODE: true,
  CLOSED: true,
  NO_SESSION_SLOTS: true,
  BUSY: true,
  INVALID_ARGUMENT: true,
  FORBIDDEN: true,
  UNTRUSTED: true,
  CONFIG: true,
  UNAVAILABLE: true,
};

export function isBmcErrorCode(code: string): code is BmcErrorCode {
  return Object.hasOwn(CODES, code);
}

export interface BmcErrorOptions {
  cause?: unknown;
  completionCode?: number;
  httpStatus?: number;
}

export class BmcError extends Error {
  readonly code: BmcErrorCode;
  readonly completionCode: number | undefined;
  readonly httpStatus: number | undefined;

  constructor(code: BmcErrorCode, message: string, options: BmcErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'BmcError';
    this.code = code;
    this.completionCode = options.completionCode;
    this.httpStatus = options.httpStatus;
  }
}

/** Thrown by pure decoders: the only exception a decoder may raise. */
export class DecodeError extends BmcError {
  constructor(message: string, options: BmcErrorOptions = {}) {
    super('DECODE', message, options);
    this.name = 'DecodeError';
  }
}

export function isBmcError(value: unknown, code?: BmcErrorCode): value is BmcError {
  return value instanceof BmcError && (code === undefined || value.code === code);
}

/** Turns an AbortSignal's reason into a BmcError (TIMEOUT for AbortSignal.timeout, ABORTED otherwise). */
export function abortError(signal: AbortSignal, what: string): BmcError {
  const reason: unknown = signal.reason;
  if (reason instanceof BmcError) return reason;
  const isTimeout = reason instanceof Error && reason.name === 'TimeoutError';
  return new BmcError(isTimeout ? 'TIMEOUT' : 'ABORTED', `${what}: ${isTimeout ? 'timed out' : 'aborted'}`, { cause: reason });
}
