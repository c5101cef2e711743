/**
 * A report worker thread: reads BMCs for the report cycle (read-bmc.ts, the function the main
 * thread runs without workers) so that their TLS handshakes, JSON and IPMI crypto use every core
 * while the main loop posts the report and serves commands and consoles. The main thread keeps
 * what is shared (worker-protocol.ts): each read brings the BMC's trust record and a first contact
 * sends the new one back; log lines go back as bounded, rate-limited records. A BMC is read by the
 * same worker every cycle (worker-pool.ts), so its TLS session resumes here.
 * Started by src/cli/main.ts when its first argument says so (the bundle starts itself the same way).
 */
import { parentPort, workerData } from 'node:worker_threads';
import { getHeapStatistics } from 'node:v8';
import { BmcError } from '../errors.js';
import { createLogger, type Logger } from '../log.js';
import { connectOutband } from '../outband/connect.js';
import { createGuidMemory, type GuidMemory } from '../outband/guid-memory.js';
import { createHedgeMemory } from '../outband/hedge-memory.js';
import { redfishSessionKey, type KeptRedfishSession, type RedfishSessionKeeper } from '../outband/redfish-sessions.js';
import { describesOnly, createBmcTrust, trustKey, type BmcTrustGate, type TrustMetrics, type TrustRecord, type TrustStore } from '../outband/trust.js';
import { guardWorkerExit, type WorkerExit } from '../outband/worker-exit.js';
import { createWorkerLogSender, type WorkerLogSender, type WorkerLogValue } from '../outband/worker-log.js';
import { budgetOfRead, loginBudgetKey } from '../redfish/login-budget.js';
import { sharedTlsStats } from '../redfish/tls-context.js';
import { SecondConnectionSwitch, switchOfRead } from '../redfish/second-connection.js';
import { acquireLoopClock, type LoopClock } from './loop-clock.js';
import { readBmcOnce, type BmcReadAttempt } from './read-bmc.js';
import { isReportWorkerData, type AttemptOverPort, type ErrorOverPort, type FromReportWorker, type ReportConnectSettings, type ToReportWorker, type TrustFileUnreadable } from './worker-protocol.js';

export interface ReportPort {
  postMessage(message: FromReportWorker): void;
  on(event: 'message', listener: (message: ToReportWorker) => void): void;
}

/**
 * A report worker may say a line per BMC (a first contact's certificate, a Redfish that fell back
 * to IPMI): a thousand BMCs met for the first time fit in the burst; a hostile BMC that makes its
 * reads say more is held back by the rate like any other.
 */
/** BMCs refused a first contact while the trust file cannot be read: logged once each per episode by this worker, though each read has its own gate */
const refusedWhileUnreadable = new Set<string>();

const LOG_RATE = { perSecond: 200, burst: 2000 } as const;

const PINO_LEVELS: Record<number, 'debug' | 'info' | 'warn' | 'error'> = { 10: 'debug', 20: 'debug', 30: 'info', 40: 'warn', 50: 'error', 60: 'error' };
/** pino's own fields of a line: the main thread's logger sets its own */
const PINO_OWN = new Set(['level', 'time', 'pid', 'hostname', 'msg']);

/** A field as a primitive: an error (or anything with a message) as its message, a list of primitives joined; else left out. */
function primitive(v: unknown): WorkerLogValue | undefined {
  if (typeof v === 'string' || typeof v === 'boolean' || (typeof v === 'number' && Number.isFinite(v))) return v;
  if (Array.isArray(v) && v.every((x) => typeof x === 'string' || typeof x === 'number')) return v.join(', ');
  if (typeof v === 'object' && v !== null && typeof (v as { message?: unknown }).message === 'string') return (v as { message: string }).message;
  return undefined;
}

/**
 * The worker's logger: a pino logger (the daemon's redaction of secrets included) whose lines
 * become records for the main thread's logger. A line that is not JSON is dropped.
 */
export function workerLogger(level: string, logs: WorkerLogSender): Logger {
  return createLogger(
    { level },
    {
      write(line: string) {
        let parsed: Record<string, unknown>;
        try {
          parsed = JSON.parse(line) as Record<string, unknown>;
        } catch {
          return;
        }
        const fields: Record<string, WorkerLogValue> = {};
        for (const [k, v] of Object.entries(parsed)) {
          if (PINO_OWN.has(k)) continue;
          const value = primitive(v);
          if (value !== undefined) fields[k] = value;
        }
        logs.log({ level: PINO_LEVELS[parsed.level as number] ?? 'info', msg: typeof parsed.msg === 'string' ? parsed.msg : '(no message)', fields });
      },
    },
  );
}

/** a string `code` of a thrown value or of its cause, if it has one */
function codeOf(value: unknown): string | undefined {
  const code = (value as { code?: unknown } | null | undefined)?.code;
  return typeof code === 'string' ? code : undefined;
}

function errorOverPort(err: unknown): ErrorOverPort {
  const causeCode = codeOf((err as { cause?: unknown } | null | undefined)?.cause);
  const cause = causeCode !== undefined ? { causeCode } : {};
  if (err instanceof BmcError) {
    return { code: err.code, message: err.message, ...(err.httpStatus !== undefined ? { httpStatus: err.httpStatus } : {}), ...(err.completionCode !== undefined ? { completionCode: err.completionCode } : {}), ...cause };
  }
  return { code: codeOf(err) ?? 'UNKNOWN', message: err instanceof Error ? err.message : String(err), ...cause };
}

export function attemptOverPort(attempt: BmcReadAttempt): AttemptOverPort {
  const { durationMs, late } = attempt;
  return attempt.ok ? { ok: true, report: attempt.report, vendor: attempt.vendor, durationMs, late } : { ok: false, error: errorOverPort(attempt.error), durationMs, late };
}

/**
 * The trust file as one read sees it: the record its BMC had when the read was sent; a change is
 * kept for the read and sent to the main thread, which writes the file. One store per read, so
 * two reads of one BMC in flight at once (a retry after the main thread gave up on the first)
 * never see each other's record come and go.
 */
function trustStoreOfRead(id: number, key: string, brought: TrustRecord | null, problem: string | undefined, cannotRead: TrustFileUnreadable | undefined, post: (m: FromReportWorker) => void): TrustStore {
  let record = brought ?? undefined;
  const own = (k: string) => (k === key ? record : undefined);
  return {
    file: cannotRead?.file ?? '(the main thread)',
    get: own,
    update(k, patch) {
      if (k !== key) throw new BmcError('INVALID_ARGUMENT', 'report worker: a trust change of another BMC than the read\'s');
      // a patch without a fingerprint describes a record, never makes one (as in the main thread's store)
      if (record === undefined && describesOnly(patch)) return undefined;
      const stamp = new Date().toISOString();
      record = { ...record, ...patch, firstSeen: record?.firstSeen ?? stamp, lastSeen: stamp };
      post({ type: 'trust-update', id, key, patch: { ...(patch.redfishSha256 !== undefined ? { redfishSha256: patch.redfishSha256 } : {}), ...(patch.ip !== undefined ? { ip: patch.ip } : {}), ...(patch.proof !== undefined ? { proof: patch.proof } : {}), ...('sshSha256' in patch && patch.sshSha256 === undefined ? { forgetSsh: true } : {}) } });
      return record;
    },
    reset: () => false,
    list: () => (record ? [[key, record]] : []),
    problem: (k) => (k === key ? problem : undefined),
    problems: () => (problem === undefined ? [] : [[key, problem]]),
    flush: async () => undefined,
    close: async () => undefined,
    unwritten: () => undefined,
    unreadable: () => (cannotRead === undefined ? undefined : { code: cannotRead.code, error: cannotRead.error }),
    keptAside: () => undefined,
  };
}

/**
 * The kept Redfish sessions as one read sees them: the BMC's entry the read brought; what the read
 * leaves there goes back with its answer (the facade sets it when the read ends, before the answer).
 */
function sessionKeeperOfRead(key: string, brought: KeptRedfishSession | null, maxAgeMs: number): RedfishSessionKeeper & { change?: { session: KeptRedfishSession | null } } {
  let entry = brought ?? undefined;
  const keeper: RedfishSessionKeeper & { change?: { session: KeptRedfishSession | null } } = {
    maxAgeMs,
    get: (bmc) => (bmc === key ? entry : undefined),
    set(bmc, session) {
      if (bmc !== key) throw new BmcError('INVALID_ARGUMENT', 'report worker: a Redfish session of another BMC than the read\'s');
      entry = session;
      keeper.change = { session: session ?? null };
    },
  };
  return keeper;
}

/** Serves reads on `port` until `shutdown`; `exit` is how the thread ends. */
export function serveReports(port: ReportPort, exit: WorkerExit): void {
  const post = (m: FromReportWorker) => port.postMessage(m);
  const logs = createWorkerLogSender(post, Date.now, LOG_RATE);
  let setup: { settings: ReportConnectSettings; logger: Logger; trustOnFirstUse: boolean; trustRequiresProof: boolean; trustMetrics: TrustMetrics; guidMemory?: GuidMemory; redfishSessionMaxAgeMs: number } | undefined;
  const reads = new Map<number, AbortController>();
  /** the reads in flight, and the connections closing after theirs */
  const running = new Set<Promise<void>>();
  const closes = new Set<Promise<void>>();
  /** the loop clock runs while reads do: an idle worker has no timer */
  let clock: LoopClock | undefined;
  let shuttingDown = false;
  /** the Redfish paths per BMC slow when last asked (not hedged again while slow): a BMC is read on the same worker every cycle */
  const redfishHedgeMemory = createHedgeMemory();
  /** this thread's copy of the cycle's switch for second Redfish connections (cycles run one after the other) */
  let secondConnection = new SecondConnectionSwitch();

  async function read(m: Extract<ToReportWorker, { type: 'read' }>, cycleSwitch: SecondConnectionSwitch): Promise<void> {
    const abort = new AbortController();
    reads.set(m.id, abort);
    clock ??= acquireLoopClock();
    const bmc = { ip: m.ip, ...(m.mac ? { mac: m.mac } : {}) };
    let attempt: BmcReadAttempt;
    let sessions: ReturnType<typeof sessionKeeperOfRead> | undefined;
    try {
      if (!setup) throw new BmcError('INVALID_ARGUMENT', 'report worker: a read before its settings');
      const { settings, logger } = setup;
      const gate: BmcTrustGate | undefined =
        setup.trustOnFirstUse && m.trust !== undefined ? createBmcTrust({ store: trustStoreOfRead(m.id, trustKey(bmc), m.trust, m.trustProblem, m.trustUnreadable, post), refusedWhileUnreadable, logger, metrics: setup.trustMetrics, resetHint: true, requireProof: setup.trustRequiresProof }).forBmc(bmc) : undefined;
      const { guidMemory } = setup;
      if (m.session !== undefined && setup.redfishSessionMaxAgeMs > 0) sessions = sessionKeeperOfRead(redfishSessionKey(m.ip, settings.redfishPort, m.mac), m.session, setup.redfishSessionMaxAgeMs);
      const redfishSessions = sessions;
      // the main thread's count of refused logins for this BMC and user, and what this read adds to it
      const redfishLoginBudget = budgetOfRead(loginBudgetKey(m.ip, settings.redfishPort ?? 443, settings.user, settings.password), m.logins, (change) => post({ type: 'login', id: m.id, ...change }));
      const connect = (host: string, signal: AbortSignal, onAnswer: () => void) =>
        connectOutband({ ...settings, host, ...(m.mac ? { mac: m.mac } : {}), readAhead: true, logger, onIpmiEvent: (e) => logs.quirk(undefined, host, e), onAnswer, ...(gate ? { trust: gate } : {}), ...(guidMemory ? { guidMemory } : {}), ...(redfishSessions ? { redfishSessions } : {}), redfishHedgeMemory, redfishLoginBudget, redfishSecondConnection: cycleSwitch, signal });
      const pending: Array<Promise<void>> = [];
      attempt = await readBmcOnce(connect, m.ip, { timeoutMs: m.timeoutMs, clock, signal: abort.signal, closes: pending });
      for (const p of pending) {
        closes.add(p);
        void p.finally(() => closes.delete(p));
      }
    } catch (err) {
      attempt = { ok: false, error: err, durationMs: 0, late: false };
    } finally {
      reads.delete(m.id);
      if (reads.size === 0) {
        clock?.release();
        clock = undefined;
      }
    }
    done(m.id, attempt, sessions?.change);
  }

  function done(id: number, attempt: BmcReadAttempt, session?: { session: KeptRedfishSession | null }): void {
    const tls = sharedTlsStats();
    post({ type: 'done', id, attempt: attemptOverPort(attempt), load: { heapBytes: getHeapStatistics().used_heap_size, tlsConnections: tls.connections, tlsResumed: tls.resumed }, ...(session ? { session: session.session } : {}) });
  }

  async function shutdown(): Promise<void> {
    shuttingDown = true;
    for (const abort of reads.values()) abort.abort(new BmcError('ABORTED', 'metal-bmc is shutting down'));
    await Promise.all([...running]);
    await Promise.all([...closes]);
    await exit.afterShutdown();
    post({ type: 'closed' });
  }

  port.on('message', (m) => {
    switch (m.type) {
      case 'init': {
        const logger = workerLogger(m.logLevel, logs);
        const trustMetrics: TrustMetrics = {
          refused: { inc: ({ check }) => post({ type: 'trust-count', metric: 'refused', check }) },
          firstUse: { inc: ({ what, proof }) => post({ type: 'trust-count', metric: 'firstUse', what, proof }) },
        };
        // a BMC goes to the same worker every cycle: its GUID is remembered where it is read
        setup = { settings: m.settings, logger, trustOnFirstUse: m.trustOnFirstUse, trustRequiresProof: m.trustRequiresProof === true, trustMetrics, guidMemory: createGuidMemory({ maxAgeMs: m.guidMaxAgeMs }), redfishSessionMaxAgeMs: m.redfishSessionMaxAgeMs ?? 0 };
        return;
      }
      case 'read':
        if (shuttingDown) {
          done(m.id, { ok: false, error: new BmcError('ABORTED', 'metal-bmc is shutting down'), durationMs: 0, late: false });
          return;
        }
        {
          secondConnection = switchOfRead(secondConnection, m.secondConnectionAtOnce === true);
          const reading = read(m, secondConnection);
          running.add(reading);
          void reading.finally(() => running.delete(reading));
        }
        return;
      case 'second-connection-now':
        try {
          secondConnection.turnOn();
        } catch (err) {
          setup?.logger.error({ err }, 'opening the second Redfish connections of the reads still running failed; those reads go on over the connection they have');
        }
        return;
      case 'measure-heap':
        (globalThis as { gc?: () => void }).gc?.();
        post({ type: 'heap', heapBytes: getHeapStatistics().used_heap_size });
        return;
      case 'abort':
        reads.get(m.id)?.abort(new BmcError('ABORTED', 'the report cycle stopped this read'));
        return;
      case 'shutdown':
        void shutdown();
        return;
      case 'die':
        exit.die();
        return;
      default: {
        const never: never = m;
        return never;
      }
    }
  });
}

export function runReportWorker(): void {
  if (!parentPort || !isReportWorkerData(workerData)) throw new BmcError('INVALID_ARGUMENT', 'the report worker runs only as a worker thread of metal-bmc serve');
  const port = parentPort;
  serveReports({ postMessage: (m) => port.postMessage(m), on: (event, listener) => port.on(event, listener) }, guardWorkerExit());
}
