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
  | 'UNAVAILABLE' // a service this step depends on (NATS, its key-value bucket) cannot be used now
  | 'OUTCOME_UNKNOWN'; // the BMC took the request and may have carried it out; nothing it showed since decides (the code the command runner gives such results)

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
  OUTCOME_UNKNOWN: true,
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

/** What an error that stands for `err` keeps of it: its protocol detail, and `err` as its cause. */
function detailOf(err: BmcError): BmcErrorOptions {
  return { cause: err, ...(err.httpStatus !== undefined ? { httpStatus: err.httpStatus } : {}), ...(err.completionCode !== undefined ? { completionCode: err.completionCode } : {}) };
}

/**
 * A failure of an action (a reset, a power cycle) before the request that acts was sent: a read of
 * the System, of its allowed reset types, an IPMI session that could not be opened. Whatever its
 * code (an HTTP 500 of a GET, a TIMEOUT of a handshake), the BMC did not act: the other protocol
 * may try it, and the command may be tried again.
 */
export class NotSentError extends BmcError {
  constructor(err: BmcError) {
    super(err.code, err.message, detailOf(err));
    this.name = 'NotSentError';
  }
}

/**
 * Not done now, for a reason that passes (a service the step depends on cannot be used yet: the
 * event journal, a lease file not read yet): nothing was sent, and the work is not refused but
 * handed back, to be tried again later (a machine event goes back to the stream). Code UNAVAILABLE.
 */
export class HandBackError extends NotSentError {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super(new BmcError('UNAVAILABLE', message, options));
    this.name = 'HandBackError';
  }
}

/**
 * A failure of an action after part of it took effect: a power cycle made of ForceOff and On whose
 * On failed left the machine off. Whatever its code (a 409 to the On), it is never taken for "did
 * not act": no other protocol repeats the action, and the command ends "outcome unknown".
 */
export class PartlyActedError extends BmcError {
  constructor(err: BmcError, what: string) {
    super(err.code, `${what}: ${err.message}`, detailOf(err));
    this.name = 'PartlyActedError';
  }
}

/**
 * A step that needs Redfish on a BMC whose Redfish service could not be reached (the connection
 * refused, reset or timed out; the facade fell back to IPMI): code UNSUPPORTED as any step without
 * Redfish, but the BMC may only be away, restarting into a new image, so a caller watching an update
 * it sent before (a firmware job resumed after a restart) tries again instead of giving up.
 */
export class RedfishAwayError extends BmcError {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super('UNSUPPORTED', message, options);
    this.name = 'RedfishAwayError';
  }
}

/** `err` as a failure before the acting request was sent (other errors, not ours to judge, pass unchanged). */
export function notSent(err: unknown): unknown {
  return err instanceof BmcError && !(err instanceof NotSentError) ? new NotSentError(err) : err;
}

/** `work`, the steps of an action before its acting request: its failure is `notSent`. */
export async function beforeActing<T>(work: Promise<T>): Promise<T> {
  try {
    return await work;
  } catch (err) {
    throw notSent(err);
  }
}

/** Codes that say a request was refused or never got that far: credentials, trust, support, a busy BMC. */
const NOT_ACTED_CODES: ReadonlySet<BmcErrorCode> = new Set<BmcErrorCode>(['AUTH_FAILED', 'INSECURE_REFUSED', 'UNSUPPORTED', 'INVALID_ARGUMENT', 'FORBIDDEN', 'CONFIG', 'UNTRUSTED', 'BUSY', 'NO_SESSION_SLOTS']);

/**
 * What a generic IPMI completion code (IPMI 2.0 table 5-2) says of the request it answers:
 * `refused`, the BMC did not carry it out (busy, not supported, bad data, no privilege, not now);
 * `outcome-unknown`, it may have: 0xC3 "timeout while processing, response unavailable", 0xCE
 * "response could not be provided", 0xCF "duplicated request" (the table: for devices "which cannot
 * return the response that was returned for the original instance": the original WAS handled) and
 * 0xFF "unspecified". A code not listed (OEM 01h-7Eh, command-specific 80h-BEh, reserved) says
 * nothing we can read: outcome unknown too, so a reset or cycle is never repeated on a guess.
 * Here rather than in ipmi/ for the reason HTTP's statuses are: every layer judges errors here.
 */
const IPMI_COMPLETION_OUTCOME: Readonly<Record<number, 'refused' | 'outcome-unknown'>> = {
  0xc0: 'refused', // node busy
  0xc1: 'refused', // invalid or unsupported command
  0xc2: 'refused', // command invalid for the given LUN
  0xc3: 'outcome-unknown', // timeout while processing the command, response unavailable
  0xc4: 'refused', // out of space
  0xc5: 'refused', // reservation cancelled or invalid
  0xc6: 'refused', // request data truncated
  0xc7: 'refused', // request data length invalid
  0xc8: 'refused', // request data field length limit exceeded
  0xc9: 'refused', // parameter out of range
  0xca: 'refused', // cannot return the number of requested data bytes
  0xcb: 'refused', // requested sensor, data or record not present
  0xcc: 'refused', // invalid data field in request
  0xcd: 'refused', // command illegal for the sensor or record type
  0xce: 'outcome-unknown', // command response could not be provided
  0xcf: 'outcome-unknown', // cannot execute a duplicated request: the original was handled
  0xd0: 'refused', // SDR repository in update mode
  0xd1: 'refused', // device in firmware update mode
  0xd2: 'refused', // BMC initialization in progress
  0xd3: 'refused', // destination unavailable
  0xd4: 'refused', // insufficient privilege level
  0xd5: 'refused', // command not supported in the present state
  0xd6: 'refused', // command sub-function disabled or unavailable
  0xff: 'outcome-unknown', // unspecified error
};

/**
 * Whether a failure shows the BMC did not act on a request: a failure before it was sent, a
 * refusal (an HTTP 4xx, 501 Not Implemented, 503 Unavailable, an IPMI completion code of refusal),
 * or one of the codes above. No answer, a cut or garbled one, a 500, 502 or 504 (a BMC failing
 * while it answers, a proxy that gave up waiting), an IPMI completion code that leaves the outcome
 * open (0xC3, 0xCE, 0xCF, 0xFF, any code not in the table) or an error of our own may come after
 * it acted.
 */
export function showsNotActed(err: unknown): boolean {
  if (err instanceof NotSentError) return true;
  if (err instanceof PartlyActedError) return false;
  if (!(err instanceof BmcError)) return false;
  if (err.code === 'HTTP') return err.httpStatus !== undefined && ((err.httpStatus >= 400 && err.httpStatus < 500) || err.httpStatus === 501 || err.httpStatus === 503);
  if (err.code === 'COMPLETION_CODE') return err.completionCode !== undefined && IPMI_COMPLETION_OUTCOME[err.completionCode] === 'refused';
  return NOT_ACTED_CODES.has(err.code);
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
