/**
 * The shape of `GET /v1/status` (documented as JSON Schema in docs/status.schema.json; a test
 * validates answers against it). Times are ISO 8601 strings, durations milliseconds.
 * Pure types: the CLI imports this file without loading any of the daemon.
 */

/**
 * Why a BMC is failing or degraded, from the error's typed code (never from its text); `conflict`
 * and `duplicate`: read, but left out of the report because another BMC holds its machine UUID;
 * `owners-unreadable`: left out because the UUID owners file, which may name another BMC for it, cannot be read
 * (or did not parse and its copy is kept aside).
 */
export type ProblemReason =
  | 'wrong-credentials'
  | 'certificate'
  | 'no-answer'
  | 'http-error'
  | 'unreachable'
  | 'sessions-full'
  | 'protocol'
  | 'unsupported'
  | 'insecure-refused'
  | 'untrusted'
  | 'conflict'
  | 'duplicate'
  | 'owners-unreadable'
  | 'other';

export const PROBLEM_REASONS: readonly ProblemReason[] = ['wrong-credentials', 'certificate', 'no-answer', 'http-error', 'unreachable', 'sessions-full', 'protocol', 'unsupported', 'insecure-refused', 'untrusted', 'conflict', 'duplicate', 'owners-unreadable', 'other'];

/** failing: the last read failed; degraded: read, but Redfish failed and IPMI stood in, or left out of the report (another BMC holds its machine UUID); pending: not read yet; vanished: its lease is gone (kept for the grace period). */
export type BmcState = 'failing' | 'degraded' | 'vanished' | 'pending' | 'ok';

/** Problems first: the order of the table. */
export const STATE_ORDER: readonly BmcState[] = ['failing', 'degraded', 'vanished', 'pending', 'ok'];

export interface Problem {
  reason: ProblemReason;
  /** the BmcError code; UUID_CONFLICT for a BMC left out of the report */
  code: string;
  httpStatus?: number;
  /** the error message, secrets replaced, at most 300 characters */
  message: string;
}

export interface LastRead {
  at: string;
  durationMs: number;
  outcome: 'ok' | 'degraded' | 'failed';
  problem?: Problem;
}

export interface LastCommand {
  name: string;
  at: string;
  outcome: 'ok' | 'failed' | 'dropped';
  durationMs: number;
  code?: string;
  message?: string;
}

export interface BmcStatus {
  ip: string;
  mac: string;
  hostname?: string;
  state: BmcState;
  lease: {
    /** when this daemon first saw the lease */
    seenSince: string;
    ageSeconds: number;
    /** the lease's end: ISO time or "never" */
    expires: string;
    vanishedAt?: string;
  };
  vendor?: string;
  model?: string;
  uuid?: string;
  power?: 'ON' | 'OFF' | 'UNKNOWN';
  led?: 'LED-ON' | 'LED-OFF' | 'UNKNOWN';
  bmcVersion?: string;
  biosVersion?: string;
  /** which protocol delivered the report, and per report field where it came from */
  protocols?: { report: 'redfish' | 'ipmi' | 'redfish+ipmi'; fields: Record<string, 'redfish' | 'ipmi'> };
  lastRead?: LastRead;
  failures: { consecutive: number; since?: string };
  lastSuccessAt?: string;
  /** the last report metal-api accepted with this BMC's entry */
  lastReportAt?: string;
  lastCommand?: LastCommand;
  console: { viewers: number; capture: CaptureState };
}

/**
 * The console capture of a machine (METAL_BMC_CONSOLE_CAPTURE): `off` (not captured), `held`
 * (its console is connected and logged), `gap` (held, but the console is not connected: a gap in
 * its log until it is back), `elsewhere` (held by another metal-bmc instance of the partition,
 * METAL_BMC_CONSOLE_OWNERSHIP=nats).
 */
export type CaptureState = 'off' | 'held' | 'gap' | 'elsewhere';

export interface StatusSummary {
  bmcs: number;
  /** the last read succeeded (ok or degraded) */
  reachable: number;
  failing: number;
  degraded: number;
  pending: number;
  vanished: number;
  /** failing and degraded BMCs by reason */
  byReason: Partial<Record<ProblemReason, number>>;
  commandsLastHour: number;
}

export interface StatusDocument {
  version: 1;
  generatedAt: string;
  partition: string;
  graceSeconds: number;
  summary: StatusSummary;
  /** problems first (STATE_ORDER), then by IP address */
  bmcs: BmcStatus[];
}

export const isProblem = (state: BmcState): boolean => state === 'failing' || state === 'degraded' || state === 'vanished';
