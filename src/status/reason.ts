/**
 * An error as the status shows it: a reason from the BmcError's code (and, for certificate
 * failures, the TLS code of its cause), and a message with every secret replaced and bounded.
 */
import { redactSecrets } from '../secret-text.js';
import { TERMINAL_CONTROLS } from '../terminal-text.js';
import type { Problem, ProblemReason } from './types.js';

const BY_CODE: Readonly<Record<string, ProblemReason>> = {
  AUTH_FAILED: 'wrong-credentials',
  TIMEOUT: 'no-answer',
  HTTP: 'http-error',
  CLOSED: 'unreachable',
  NO_SESSION_SLOTS: 'sessions-full',
  PROTOCOL: 'protocol',
  DECODE: 'protocol',
  COMPLETION_CODE: 'protocol',
  UNSUPPORTED: 'unsupported',
  INSECURE_REFUSED: 'insecure-refused',
  // another certificate or SSH host key than the one recorded, or no IPMI proof of the password on
  // first contact: an operator's `bmc trust --reset` after a legitimate change, or a device posing
  // as the BMC; "other" sent the operator looking elsewhere
  UNTRUSTED: 'untrusted',
};

/** Node's and OpenSSL's certificate verification codes (the Redfish client maps them to AUTH_FAILED). */
export function isCertificateCode(code: string | undefined): boolean {
  if (code === undefined) return false;
  return code.startsWith('ERR_TLS_CERT') || code.startsWith('CERT_') || code.includes('SELF_SIGNED') || code.startsWith('UNABLE_TO_') || code === 'HOSTNAME_MISMATCH';
}

export const MAX_MESSAGE = 300;

/** Drops control characters (C0, DEL, C1, bidirectional overrides), replaces each secret (secret-text.ts) by [redacted], bounds the length. */
export function cleanMessage(text: string, secrets: readonly string[]): string {
  // control characters first: removing them afterwards could join a secret back together
  const out = redactSecrets(text.replace(TERMINAL_CONTROLS, ' '), secrets);
  return out.length > MAX_MESSAGE ? `${out.slice(0, MAX_MESSAGE - 1)}…` : out;
}

export interface ErrorFacts {
  code: string;
  httpStatus?: number;
  causeCode?: string;
  message: string;
}

/** The typed facts of a thrown value: BmcError code, HTTP status, the cause's code. */
export function factsOf(err: unknown): ErrorFacts {
  const e = err as { code?: unknown; httpStatus?: unknown; cause?: { code?: unknown }; message?: unknown } | null;
  const code = typeof e?.code === 'string' ? e.code : 'UNKNOWN';
  const causeCode = typeof e?.cause?.code === 'string' ? e.cause.code : undefined;
  return {
    code,
    ...(typeof e?.httpStatus === 'number' ? { httpStatus: e.httpStatus } : {}),
    ...(causeCode !== undefined ? { causeCode } : {}),
    message: err instanceof Error ? err.message : String(err),
  };
}

export function reasonOf(facts: Pick<ErrorFacts, 'code' | 'causeCode'>): ProblemReason {
  if (facts.code === 'AUTH_FAILED' && isCertificateCode(facts.causeCode)) return 'certificate';
  return BY_CODE[facts.code] ?? 'other';
}

export function problemOf(facts: ErrorFacts, secrets: readonly string[], prefix = ''): Problem {
  return {
    reason: reasonOf(facts),
    code: facts.code,
    ...(facts.httpStatus !== undefined ? { httpStatus: facts.httpStatus } : {}),
    message: cleanMessage(prefix + facts.message, secrets),
  };
}
