/**
 * Redfish-specific error construction: HTTP statuses and Redfish error bodies become
 * `BmcError`s, undici and socket errors are classified, secrets are scrubbed.
 */
import { STATUS_CODES } from 'node:http';
import { BmcError } from '../errors.js';
import { redactSecrets } from '../secret-text.js';
import { arr, obj, str, strArray } from './json.js';
import { shortened } from './text.js';

const MAX_MESSAGE_CHARS = 600;
/**
 * What of a BMC's message list goes into an error: its first entries, each cut short. A BMC's
 * answer may hold a hundred thousand of them (2 MiB); real ones carry one to a few.
 */
const MAX_MESSAGES = 16;
const MAX_MESSAGE_PART_CHARS = 300;

/**
 * Distinct, trimmed, non-empty texts, at most MAX_MESSAGES of them, each at most
 * MAX_MESSAGE_PART_CHARS long, each secret replaced before it is cut: a secret the cut went
 * through would have kept its first half.
 */
function boundedTexts(texts: Iterable<string | undefined>, secrets: readonly string[]): string[] {
  const parts = new Set<string>();
  for (const t of texts) {
    if (parts.size >= MAX_MESSAGES) break;
    const m = t?.trim();
    if (m !== undefined && m !== '') parts.add(shortened(redactSecrets(m, secrets), MAX_MESSAGE_PART_CHARS));
  }
  return [...parts];
}

function* messagesOf(list: unknown[] | undefined): Generator<string | undefined> {
  for (const m of list ?? []) yield str(m, 'Message');
}

/** `error.message` plus the first distinct `error["@Message.ExtendedInfo"][].Message` texts of a Redfish error body. */
export function redfishErrorText(body: unknown, secrets: readonly string[] = []): string | undefined {
  const error = obj(body, 'error');
  const parts = boundedTexts([str(error, 'message'), ...messagesOf((arr(error, '@Message.ExtendedInfo') ?? []).slice(0, MAX_MESSAGES * 4))], secrets);
  return parts.length === 0 ? undefined : parts.join('; ');
}

/** The first distinct messages of a Task or of a Redfish message array (`Messages[].Message`). */
export function messagesText(resource: unknown, secrets: readonly string[] = []): string | undefined {
  const parts = boundedTexts(messagesOf(arr(resource, 'Messages')), secrets);
  return parts.length === 0 ? undefined : parts.join('; ');
}

/** Replaces every secret (password, token, basic credentials) by `[redacted]` and bounds the length. */
export function scrub(text: string, secrets: Iterable<string>): string {
  return shortened(redactSecrets(text, secrets), MAX_MESSAGE_CHARS);
}

/** One `@Message.ExtendedInfo` entry of a Redfish error body, as far as callers branch on it. */
export interface RedfishMessage {
  /** e.g. `Base.1.8.PropertyNotWritable`, `IDRAC.1.6.PSU501` */
  messageId: string;
  message: string;
  /** MessageArgs, secrets scrubbed */
  args: readonly string[];
  /** RelatedProperties: JSON pointers such as `#/Boot/BootSourceOverrideMode` */
  related: readonly string[];
}

/** The ExtendedInfo entries of a Redfish error body (`error["@Message.ExtendedInfo"]`), secrets scrubbed. */
export function redfishMessages(body: unknown, secrets: Iterable<string> = []): RedfishMessage[] {
  return extendedInfoOf(obj(body, 'error'), secrets);
}

/**
 * The `@Message.ExtendedInfo` entries of one object of an answer (`error`, Supermicro's `Accepted`),
 * or those of one property's annotation (`key`: `<Property>@Message.ExtendedInfo`, as bmcweb marks
 * a property a PATCH left unchanged), at most MAX_MESSAGES, secrets scrubbed.
 */
export function extendedInfoOf(container: unknown, secrets: Iterable<string> = [], key = '@Message.ExtendedInfo'): RedfishMessage[] {
  const hidden = [...secrets];
  return (arr(container, key) ?? []).slice(0, MAX_MESSAGES).map((info) => ({
    messageId: shortened(str(info, 'MessageId') ?? '', MAX_MESSAGE_PART_CHARS),
    message: scrub(str(info, 'Message') ?? '', hidden),
    args: (arr(info, 'MessageArgs') ?? []).slice(0, MAX_MESSAGES).map((a) => scrub(String(a), hidden)),
    related: (strArray(info, 'RelatedProperties') ?? []).slice(0, MAX_MESSAGES).map((r) => shortened(r, MAX_MESSAGE_PART_CHARS)),
  }));
}

/**
 * An HTTP error status from a Redfish service, with the ExtendedInfo entries of its answer, so a
 * caller can tell which property or state the BMC refused (a read-only BootSourceOverrideMode on
 * HPE iLO) without parsing message text.
 */
export class RedfishHttpError extends BmcError {
  readonly messages: readonly RedfishMessage[];
  constructor(code: 'HTTP' | 'AUTH_FAILED', message: string, status: number, messages: readonly RedfishMessage[]) {
    super(code, message, { httpStatus: status });
    this.messages = messages;
  }
}

/** The ExtendedInfo entries an error carries: those of a RedfishHttpError, none for any other. */
export function redfishMessagesOf(err: unknown): readonly RedfishMessage[] {
  return err instanceof RedfishHttpError ? err.messages : [];
}

export function httpError(method: string, path: string, status: number, body: unknown, secrets: Iterable<string>): BmcError {
  const hidden = [...secrets];
  const detail = redfishErrorText(body, hidden) ?? STATUS_CODES[status] ?? 'unknown status';
  const code = status === 401 || status === 403 ? 'AUTH_FAILED' : 'HTTP';
  return new RedfishHttpError(code, scrub(`${method} ${path}: HTTP ${status}: ${detail}`, hidden), status, redfishMessages(body, hidden));
}

/**
 * The connection lost under a request, as our HTTP/1.1 connections tell it (h1-parse.ts,
 * h1-connection.ts): closed before any answer, in the middle of one, or a kept-alive connection
 * closed before answering. Each is a network failure, worth one more try for an idempotent
 * request, and a sign of the BMC away.
 */
const CONNECTION_LOST_CODES = ['HTTP_NO_ANSWER', 'HTTP_CLOSED_EARLY', 'HTTP_STALE_CONNECTION'] as const;

const NETWORK_CODES = new Set<string>([
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
  'ENOTFOUND',
  'ETIMEDOUT',
  'UND_ERR_SOCKET',
  'UND_ERR_CLOSED',
  ...CONNECTION_LOST_CODES,
]);

/** Connection failures worth one more try for an idempotent request. */
const RETRYABLE_CODES = new Set<string>(['ECONNRESET', 'ECONNREFUSED', 'ECONNABORTED', 'EPIPE', 'UND_ERR_SOCKET', ...CONNECTION_LOST_CODES]);

export function errorCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

/**
 * Failures of the connection itself that a BMC away shows (restarting after a firmware update):
 * refused, reset, unreachable, a connect that timed out. Not a TLS refusal, nor a deadline's end.
 */
// a kept connection closed under a request (HTTP_STALE_CONNECTION) counts too: a BMC restarting
// resets it so, and an idle close crossing the request is rare (a kept connection is used a turn
// of the loop later, h1-connection.ts), where a restart taken for a refusal would end relogins
const UNREACHABLE_CODES = new Set<string>(['ECONNREFUSED', 'ECONNRESET', 'ECONNABORTED', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'ETIMEDOUT', 'UND_ERR_SOCKET', 'UND_ERR_CONNECT_TIMEOUT', ...CONNECTION_LOST_CODES]);

export function isUnreachable(err: unknown): boolean {
  const code = errorCode(err);
  return !(err instanceof BmcError) && code !== undefined && UNREACHABLE_CODES.has(code);
}

export function isRetryableNetworkError(err: unknown): boolean {
  const code = errorCode(err);
  return !(err instanceof BmcError) && code !== undefined && RETRYABLE_CODES.has(code);
}

export function isTlsVerification(code: string): boolean {
  return (
    code.startsWith('ERR_TLS_CERT') ||
    code.startsWith('CERT_') ||
    code.includes('SELF_SIGNED') ||
    code.startsWith('UNABLE_TO_') ||
    code === 'HOSTNAME_MISMATCH'
  );
}

/** Classifies a transport failure that is not an abort (aborts are mapped by the caller). */
export function transportError(what: string, err: unknown, secrets: Iterable<string>): BmcError {
  if (err instanceof BmcError) return err;
  const code = errorCode(err) ?? '';
  const message = scrub(err instanceof Error ? err.message : String(err), secrets);
  if (code === 'UND_ERR_CONNECT_TIMEOUT' || code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT') {
    return new BmcError('TIMEOUT', `${what}: timed out (${code})`, { cause: err });
  }
  if (isTlsVerification(code)) {
    return new BmcError('AUTH_FAILED', `${what}: TLS certificate not trusted (${code})`, { cause: err });
  }
  if (code === 'UND_ERR_DESTROYED' || code === 'UND_ERR_CLOSED' || code === 'HTTP_CONNECTION_CLOSED') {
    return new BmcError('CLOSED', `${what}: client closed`, { cause: err });
  }
  if (NETWORK_CODES.has(code) || code.startsWith('ERR_SSL') || code === 'EPROTO' || code.startsWith('ERR_TLS')) {
    return new BmcError('CLOSED', `${what}: connection failed (${code}: ${message})`, { cause: err });
  }
  if (code === 'UND_ERR_REQ_CONTENT_LENGTH_MISMATCH' || code === 'HTTP_BODY_LENGTH') {
    return new BmcError('PROTOCOL', `${what}: request body length mismatch`, { cause: err });
  }
  return new BmcError('PROTOCOL', `${what}: ${code === '' ? '' : `${code}: `}${message}`, { cause: err });
}
