/**
 * What the main thread and a report worker (worker-thread.ts) say to each other over the worker's
 * port. The worker reads BMCs for the report cycle (src/report/read-bmc.ts, the same function the
 * main thread runs without workers); the main thread keeps everything that is shared across BMCs
 * or cycles: the trust file (each read carries the BMC's record, a first contact sends the new one
 * back), the metrics, the log, the status and the report itself.
 */
import type { WorkerLogHeld, WorkerLogRecord } from '../outband/worker-log.js';
import type { ConnectOptions } from '../outband/connect.js';
import type { BmcReport } from '../outband/types.js';
import type { TrustCheck, TrustRecord } from '../outband/trust.js';
import type { UnreadableFile } from '../outband/private-file.js';

/** the trust file, while it cannot be read, as a read carries it to a worker */
export type TrustFileUnreadable = UnreadableFile & { file: string };
import type { KeptRedfishSession } from '../outband/redfish-sessions.js';
import type { LoginRefusals } from '../redfish/login-budget.js';

/** How a worker connects to every BMC: the daemon's settings. Holds the password: sent in `init` only, never logged. */
export type ReportConnectSettings = Omit<ConnectOptions, 'host' | 'mac' | 'trust' | 'logger' | 'onIpmiEvent' | 'signal' | 'guidMemory' | 'redfishSessions' | 'redfishLoginBudget' | 'redfishHedgeMemory' | 'redfishSecondConnection'>;

/** the worker's settings, in workerData (no credentials) */
export interface ReportWorkerData {
  metalBmc: 'report-worker';
}

/**
 * An error as it crosses the port: the code the cycle counts by, the message it logs, and the
 * cause's code the status page tells a certificate failure by (status/reason.ts).
 */
export interface ErrorOverPort {
  code: string;
  message: string;
  httpStatus?: number;
  completionCode?: number;
  /** the cause's own code (a TLS verification code such as DEPTH_ZERO_SELF_SIGNED_CERT, an errno) */
  causeCode?: string;
}

export type AttemptOverPort = ({ ok: true; report: BmcReport; vendor: string } | { ok: false; error: ErrorOverPort }) & { durationMs: number; late: boolean };

export type ToReportWorker =
  /**
   * `guidMaxAgeMs`: how long a BMC's confirmed IPMI GUID stands in for its IPMI session (outband/guid-memory.ts); 0: never, the decision is kept all the same.
   * `redfishSessionMaxAgeMs`: how long a kept Redfish session serves (outband/redfish-sessions.ts); 0: none kept
   */
  | { type: 'init'; settings: ReportConnectSettings; logLevel: string; trustOnFirstUse: boolean; trustRequiresProof: boolean; guidMaxAgeMs: number; redfishSessionMaxAgeMs: number }
  /**
   * read this BMC; with trust on first use, `trust` is its record (null: none yet) under the key
   * of its MAC (or IP without one: outband/trust.ts `trustKey`), `trustProblem` why the file's
   * entry cannot be used (the gate refuses the BMC), `trustUnreadable` the trust file (path, error
   * code and message) while it cannot be read (the gate refuses a BMC without a record); with kept Redfish sessions,
   * `session` is the BMC's entry (null: none); `logins`: the Redfish logins of the BMC and user
   * refused lately, as the main thread's budget holds them (redfish/login-budget.ts), when any stand;
   * `secondConnectionAtOnce`: whether the cycle's switch for second Redfish connections was on when
   * the read was sent (redfish/second-connection.ts); false from a cycle whose switch is off
   */
  | { type: 'read'; id: number; ip: string; mac?: string; trust?: TrustRecord | null; trustProblem?: string; trustUnreadable?: TrustFileUnreadable; session?: KeptRedfishSession | null; logins?: LoginRefusals; timeoutMs: number; secondConnectionAtOnce?: boolean }
  | { type: 'abort'; id: number }
  /** the cycle whose reads came last has started every BMC: its switch for second Redfish connections is on */
  | { type: 'second-connection-now' }
  /** say `heap`: the heap in use, after a garbage collection where the process exposes one (--expose-gc: benchmarks) */
  | { type: 'measure-heap' }
  /** finish the reads and close their connections, then say `closed` */
  | { type: 'shutdown' }
  /** end as a crash would (tests and diagnostics): sockets closed, exit code 1 */
  | { type: 'die' };

/** The worker's own figures, with every answer: the limiter follows its loop, the benchmark its TLS sessions. */
export interface ReportWorkerLoad {
  heapBytes: number;
  tlsConnections: number;
  tlsResumed: number;
}

export type FromReportWorker =
  /** `session`, when present: the BMC's kept Redfish session after the read (null: none kept) */
  | { type: 'done'; id: number; attempt: AttemptOverPort; load: ReportWorkerLoad; session?: KeptRedfishSession | null }
  /**
   * read `id`'s BMC's trust record changed (first contact, or a new IP): the main thread writes it
   * to the trust file; `forgetSsh`: a record without IPMI proof was proven again (required proof),
   * its unproven SSH host key goes
   */
  | { type: 'trust-update'; id: number; key: string; patch: Partial<Pick<TrustRecord, 'redfishSha256' | 'ip' | 'proof'>> & { forgetSsh?: true } }
  /** read `id`'s BMC refused a Redfish login of the user (`refused`), or took one (`taken`): the main thread's login budget counts it */
  | { type: 'login'; id: number; refused?: { status: number; message: string; away: boolean; slotsTaken?: true }; taken?: true }
  | { type: 'trust-count'; metric: 'refused'; check: TrustCheck }
  | { type: 'trust-count'; metric: 'firstUse'; what: 'redfish' | 'ssh'; proof: 'ipmi' | 'none' }
  | { type: 'heap'; heapBytes: number }
  | WorkerLogRecord
  | WorkerLogHeld
  | { type: 'closed' };

export function isReportWorkerData(value: unknown): value is ReportWorkerData {
  return typeof value === 'object' && value !== null && (value as { metalBmc?: unknown }).metalBmc === 'report-worker';
}
