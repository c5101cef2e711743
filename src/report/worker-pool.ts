/**
 * Report worker threads (METAL_BMC_REPORT_WORKERS): the report cycle's BMC reads run in workers
 * (worker-thread.ts), so a partition's TLS handshakes, JSON and IPMI crypto use every core; the
 * main thread keeps the cycle, the limiter, the trust file, the metrics, the log and the report.
 * A BMC goes to the same worker every cycle (by a hash of its address), so its TLS session
 * resumes; to another one only while its own is being started again. The limiter follows the
 * busiest worker's event loop (`load`). A worker that dies fails its reads in flight (CLOSED,
 * `lostWithWorker`: the cycle reads them again where it has time, else the next cycle does) and is
 * started again; the BMCs of those reads (suspects) are then read one at a time across the pool,
 * each until one of its reads ends without an exit, so the one whose answer ends workers does not
 * take the others with it. Credentials reach a worker in its `init` message only, never in a log line.
 */
import { performance, type EventLoopUtilization } from 'node:perf_hooks';
import type { Worker } from 'node:worker_threads';
import { abortError, BmcError, isBmcErrorCode } from '../errors.js';
import type { Logger } from '../log.js';
import type { BmcTrust, TrustMetrics, TrustRecord, TrustStore } from '../outband/trust.js';
import { firstContactBar, trustKey } from '../outband/trust.js';
import { logWorkerRecord } from '../outband/worker-log.js';
import { setNewest } from '../net/newest-map.js';
import { loginBudgetKey, processLoginBudget } from '../redfish/login-budget.js';
import { killWorker, restartLater, spawnWorker, stopWorkers, workerEntry } from '../worker-entry.js';
import type { ThreadsLoad } from './adaptive-limit.js';
import type { BmcReader } from './cycle.js';
import type { Lease } from '../leases/types.js';

type ReadOptions = Parameters<BmcReader['read']>[1];
import { checkedKept, redfishSessionKey, type KeptRedfishSession, type RedfishSessionKeeper } from '../outband/redfish-sessions.js';
import type { SecondConnectionSwitch } from '../redfish/second-connection.js';
import { readGuardMs, type BmcReadAttempt } from './read-bmc.js';
import { createTurn } from './turn.js';
import type { AttemptOverPort, FromReportWorker, ReportConnectSettings, ReportWorkerData, ReportWorkerLoad, ToReportWorker, TrustFileUnreadable } from './worker-protocol.js';

export interface ReportWorkerPoolOptions {
  workers: number;
  /** how every BMC is connected (the password among them) */
  settings: ReportConnectSettings;
  logger: Logger;
  /** trust on first use: each read carries the BMC's record, first contacts come back to this store */
  trust?: BmcTrust;
  trustMetrics?: TrustMetrics;
  /** the script a worker runs (tests); default src/cli/main (or the bundle itself) */
  entry?: URL;
  /** how long a BMC's confirmed IPMI GUID serves its reports in its worker (outband/guid-memory.ts); 0 or absent: none kept */
  guidMaxAgeMs?: number;
  /** Redfish sessions kept between reads (outband/redfish-sessions.ts): each read carries its BMC's entry, and its answer the entry after it */
  redfishSessions?: RedfishSessionKeeper;
}

export interface ReportWorkerStats {
  /** index of the worker slot, stable across restarts */
  worker: number;
  /** false while the slot's worker is being started again */
  alive: boolean;
  /** answers to reads this thread had given up on (the cycle's abort, the guard): the worker stopped them, late */
  abandoned: number;
  threadId: number;
  reads: number;
  restarts: number;
  /** TLS connections of the running worker, and how many resumed a session */
  tlsConnections: number;
  tlsResumed: number;
  heapBytes: number;
}

export interface ReportWorkerPool extends BmcReader {
  load: () => ThreadsLoad;
  stats(): ReportWorkerStats[];
  /** the workers' heaps in use, after a garbage collection where the process exposes one (--expose-gc: benchmarks) */
  measureHeap(): Promise<number>;
  /** ends a worker as if it crashed (tests and diagnostics): its reads fail, it is started again */
  kill(worker: number): Promise<void>;
  /** stops the reads in flight, closes their connections (within `deadlineMs`), then the workers */
  close(deadlineMs?: number): Promise<void>;
}

interface Pending {
  ip: string;
  /** the BMC's key in the trust file */
  trustKey: string;
  /** the BMC's key among the kept Redfish sessions */
  sessionKey: string;
  /** the BMC's and user's key in the login budget */
  loginKey: string;
  started: number;
  settle(attempt: BmcReadAttempt): void;
}

interface Slot {
  index: number;
  worker: Worker;
  pending: Map<number, Pending>;
  abandoned: number;
  /** reads given up on (by id) whose late answer may still bring their BMC's Redfish session to keep: its key */
  givenUp: Map<number, string>;
  /** who waits for the worker's next `heap` */
  heapWaiters: Array<(bytes: number) => void>;
  reads: number;
  restarts: number;
  quickDeaths: number;
  startedAt: number;
  alive: boolean;
  /** a heap query is out to tell whether its loop still turns (replaceIfStuck) */
  probing?: boolean;
  load: ReportWorkerLoad;
  utilisation: EventLoopUtilization;
}

/** How long a worker has to answer a heap query after a read it did not answer in time, before it counts as stuck. */
const STUCK_PROBE_MS = 5000;

/** Reads given up on whose late answers are still awaited for their Redfish session, per worker; the oldest are forgotten beyond it. */
/** A BMC in flight at this many report worker exits in a row is set aside (QUARANTINE_MS): it may be what ends them. */
const QUARANTINE_EXITS = 2;
const QUARANTINE_MS = 3_600_000;
const MAX_SUSPECTS = 10_000;
const MAX_GIVEN_UP = 4096;

/**
 * How long after a read settles a `login` message of its worker still counts in the login budget:
 * a login under way when the read ended (given up on, or its deadline) runs on to its answer
 * (firstLogin in redfish/session.ts), as long as one BMC answer may take; a refusal dropped there
 * would leave the budget blind to it, and each cycle could add one towards the BMC's lockout.
 */
const LATE_LOGIN_MS = 60_000;
/** Settled reads whose late login messages still count, over all workers; the oldest are forgotten beyond it. */
const MAX_LATE_LOGINS = 4096;

/**
 * A report worker's young generation: 8 MiB. What one BMC's read allocates lives as long as the
 * read (seconds), longer than a young generation of any size holds it, so a larger one only
 * holds more garbage between collections. report-latency, 1,000 BMCs, two workers on two cores,
 * peak RSS of the process: V8's default (16 MiB semi-spaces) 389 MiB (`-o-`), 8 MiB 349 MiB
 * (`-p-`); CPU per BMC 1.25x and 1.15x the main thread's in the same run.
 */
const WORKER_LIMITS = { maxYoungGenerationSizeMb: 8 } as const;

/** FNV-1a of the address: the same BMC, the same worker (of `n`), every cycle. */
export function workerOfBmc(ip: string, n: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < ip.length; i++) h = Math.imul(h ^ ip.charCodeAt(i), 0x01000193);
  return (h >>> 0) % n;
}

/** A worker's answer as the cycle reads it: the error a BmcError again when its code is one. */
export function attemptOfPort(a: AttemptOverPort): BmcReadAttempt {
  const { durationMs, late } = a;
  if (a.ok) return { ok: true, report: a.report, vendor: a.vendor, durationMs, late };
  const { code, message, httpStatus, completionCode, causeCode } = a.error;
  // the cause as far as the status page reads it (status/reason.ts: a certificate failure by its code)
  const cause = causeCode !== undefined ? { cause: { code: causeCode } } : {};
  const error = isBmcErrorCode(code)
    ? new BmcError(code, message, { ...(httpStatus !== undefined ? { httpStatus } : {}), ...(completionCode !== undefined ? { completionCode } : {}), ...cause })
    : Object.assign(new Error(message, cause), code === 'UNKNOWN' ? {} : { code });
  return { ok: false, error, durationMs, late };
}

const HEX64 = /^[0-9a-f]{64}$/;

/** A worker's trust change: of the BMC of the read it names (still in flight), checked as the trust file's records are. */
export function validTrustUpdate(m: Extract<FromReportWorker, { type: 'trust-update' }>, readKey: string | undefined): boolean {
  const { redfishSha256, ip, proof, forgetSsh } = m.patch ?? {};
  return (
    readKey !== undefined &&
    m.key === readKey &&
    (redfishSha256 === undefined || (typeof redfishSha256 === 'string' && HEX64.test(redfishSha256))) &&
    (ip === undefined || (typeof ip === 'string' && ip.length <= 64)) &&
    (proof === undefined || proof === 'ipmi' || proof === 'none') &&
    (forgetSsh === undefined || forgetSsh === true)
  );
}

/** The store's patch of a worker's checked change: only the fields a worker may change (a worker never sets an SSH key). */
function trustPatchOf(patch: Extract<FromReportWorker, { type: 'trust-update' }>['patch']): Parameters<TrustStore['update']>[1] {
  const { redfishSha256, ip, proof, forgetSsh } = patch;
  return { ...(redfishSha256 !== undefined ? { redfishSha256 } : {}), ...(ip !== undefined ? { ip } : {}), ...(proof !== undefined ? { proof } : {}), ...(forgetSsh ? { sshSha256: undefined } : {}) };
}

export function createReportWorkerPool(options: ReportWorkerPoolOptions): ReportWorkerPool {
  if (!Number.isInteger(options.workers) || options.workers < 1) throw new BmcError('INVALID_ARGUMENT', `createReportWorkerPool: workers must be an integer >= 1, got ${String(options.workers)}`);
  const log = options.logger.child({ module: 'report-workers' });
  const data: ReportWorkerData = { metalBmc: 'report-worker' };
  const init: ToReportWorker = { type: 'init', settings: options.settings, logLevel: options.logger.level, trustOnFirstUse: options.trust !== undefined, trustRequiresProof: options.trust?.requireProof === true, guidMaxAgeMs: options.guidMaxAgeMs ?? 0, redfishSessionMaxAgeMs: options.redfishSessions?.maxAgeMs ?? 0 };
  const entry = options.entry ?? workerEntry();
  const slots: Slot[] = [];
  /** reads asked while no worker runs, woken when one is started (or the pool closes) */
  const startWaiters = new Set<() => void>();
  /** BMCs that were being read when a report worker exited, and how often in a row */
  const suspects = new Map<string, { exits: number; at: number }>();
  /**
   * suspects made since the line that says they are read one at a time: that line counts these.
   * Counting every entry of `suspects` (cleared only by an answered read) counted a BMC whose
   * lease went after an exit in every later line, however long ago its exit was
   */
  const unannounced = new Map<string, true>();
  /** settled reads (by id): their worker and login budget key, until when a late `login` message of theirs counts */
  const lateLogins = new Map<number, { slot: Slot; loginKey: string; until: number }>();
  let nextId = 1;
  let closing = false;

  const send = (slot: Slot, m: ToReportWorker) => slot.worker.postMessage(m);

  function onMessage(slot: Slot, m: FromReportWorker): void {
    switch (m.type) {
      case 'done': {
        slot.load = m.load;
        const pending = slot.pending.get(m.id);
        // a read given up on still left its session open on the BMC: kept, not lost
        const sessionKey = pending?.sessionKey ?? slot.givenUp.get(m.id);
        slot.givenUp.delete(m.id);
        if (sessionKey !== undefined && m.session !== undefined) keepSession(slot, sessionKey, m.session);
        if (!pending) {
          slot.abandoned++;
          return;
        }
        // the worker answered, whatever the read's outcome (a dead BMC, a refused login): this read
        // did not end it, so the BMC is no suspect any longer. Cleared only on success, a BMC that
        // keeps failing stayed one and was read alone every cycle, one deadline after the other
        suspects.delete(pending.ip);
        pending.settle(attemptOfPort(m.attempt));
        return;
      }
      case 'trust-update':
        if (options.trust && validTrustUpdate(m, slot.pending.get(m.id)?.trustKey)) options.trust.store.update(m.key, trustPatchOf(m.patch));
        else log.warn({ worker: slot.index, trustKey: String(m.key).slice(0, 80) }, 'report worker sent a trust record that is not one of a read in flight; ignored');
        return;
      case 'login': {
        // a read in flight, or one settled a moment ago whose login ran on: the worker tells nothing of another BMC
        const key = slot.pending.get(m.id)?.loginKey ?? lateLoginKey(slot, m.id);
        if (key === undefined) return;
        if (m.refused !== undefined && typeof m.refused.status === 'number' && typeof m.refused.message === 'string') processLoginBudget.refused(key, { status: m.refused.status, message: m.refused.message.slice(0, 600), away: m.refused.away === true, ...(m.refused.slotsTaken === true ? { slotsTaken: true as const } : {}) });
        else if (m.taken === true) processLoginBudget.taken(key);
        return;
      }
      case 'trust-count':
        if (m.metric === 'refused') options.trustMetrics?.refused.inc({ check: m.check });
        else options.trustMetrics?.firstUse.inc({ what: m.what, proof: m.proof });
        return;
      case 'log':
        logWorkerRecord(log, m, { worker: slot.index, threadId: slot.worker.threadId });
        return;
      case 'log-held':
        log.warn({ worker: slot.index, threadId: slot.worker.threadId, records: m.count }, 'report worker log records held back over their rate');
        return;
      case 'heap':
        for (const w of slot.heapWaiters.splice(0)) w(m.heapBytes);
        return;
      case 'closed':
        return;
      default: {
        const never: never = m;
        return never;
      }
    }
  }

  function start(index: number, restarts: number, quickDeaths: number): Slot {
    const worker = spawnWorker('report', entry, { workerData: data, resourceLimits: WORKER_LIMITS });
    worker.unref();
    const slot: Slot = { index, worker, pending: new Map(), abandoned: slots[index]?.abandoned ?? 0, givenUp: new Map(), heapWaiters: [], reads: slots[index]?.reads ?? 0, restarts, quickDeaths, startedAt: Date.now(), alive: true, load: { heapBytes: 0, tlsConnections: 0, tlsResumed: 0 }, utilisation: worker.performance.eventLoopUtilization() };
    slots[index] = slot;
    worker.on('message', (m: FromReportWorker) => onMessage(slot, m));
    // the loop's utilisation counts from when the worker runs: before, it reads as zeros
    worker.once('online', () => (slot.utilisation = worker.performance.eventLoopUtilization()));
    worker.on('error', (err) => log.error({ worker: index, err }, 'report worker failed'));
    worker.on('exit', (code) => lost(slot, code));
    send(slot, init);
    for (const wake of [...startWaiters]) wake();
    return slot;
  }

  function lost(slot: Slot, code: number): void {
    slot.alive = false;
    const reads = [...slot.pending.values()];
    for (const p of reads) {
      // a BMC in flight at every exit may be what ends the workers: after QUARANTINE_EXITS it is set aside, not read again beside others
      const exits = (suspects.get(p.ip)?.exits ?? 0) + 1;
      setNewest(suspects, p.ip, { exits, at: Date.now() }, MAX_SUSPECTS);
      const setAside = exits >= QUARANTINE_EXITS;
      if (setAside) unannounced.delete(p.ip);
      else setNewest(unannounced, p.ip, true, MAX_SUSPECTS);
      if (setAside) log.error({ bmc: p.ip, exits, forMs: QUARANTINE_MS }, 'a BMC was being read each time a report worker exited; it is not read again for a while, so it cannot take the workers and the reads beside it down again');
      const error = new BmcError('CLOSED', `reading BMC ${p.ip}: report worker ${slot.index} exited (code ${code})${setAside ? `; the BMC was being read at ${exits} such exits, set aside` : ''}`);
      p.settle({ ok: false, error, ...(setAside ? {} : { lostWithWorker: true as const }), durationMs: Date.now() - p.started, late: false });
    }
    for (const w of slot.heapWaiters.splice(0)) w(0);
    if (closing || slots[slot.index] !== slot) return;
    // until then its BMCs go to the other workers
    const delayMs = restartLater(slot, () => !closing && slots[slot.index] === slot, (restarts, quickDeaths) => start(slot.index, restarts, quickDeaths));
    log.warn({ worker: slot.index, code, reads: reads.length, delayMs }, 'report worker exited; starting it again, its reads in flight are read again in this report where the cycle has time for them, else skipped');
  }

  /**
   * After a read the worker did not answer in time: a worker that does not answer a heap query
   * within STUCK_PROBE_MS either has a loop that no longer turns (a synchronous loop on some
   * BMC's answer) and is ended and started again, its reads in flight failed (told to die, which
   * closes its sockets, then terminated). One that answers keeps running: only that read hangs,
   * and its BMC is not read again until it ends (BUSY).
   */
  function replaceIfStuck(slot: Slot): void {
    if (slot.probing || !slot.alive || closing) return;
    slot.probing = true;
    let answered = false;
    slot.heapWaiters.push(() => (answered = true));
    send(slot, { type: 'measure-heap' });
    setTimeout(() => {
      slot.probing = false;
      if (answered || !slot.alive || closing || slots[slot.index] !== slot) return;
      log.error({ worker: slot.index, threadId: slot.worker.threadId, reads: slot.pending.size }, 'report worker does not answer: its event loop is stuck; ending it and starting it again');
      void stopWorkers([slot.worker], { shutdown: { type: 'die' } satisfies ToReportWorker, die: { type: 'die' } satisfies ToReportWorker, isDone: () => false, deadlineMs: 1000 });
    }, STUCK_PROBE_MS).unref();
  }

  /** A read settles: its late login messages count for LATE_LOGIN_MS (the expired ones, the oldest, are forgotten first). */
  function rememberLogin(slot: Slot, id: number, loginKey: string): void {
    const now = Date.now();
    for (const [old, late] of lateLogins) {
      if (late.until >= now) break;
      lateLogins.delete(old);
    }
    setNewest(lateLogins, id, { slot, loginKey, until: now + LATE_LOGIN_MS }, MAX_LATE_LOGINS);
  }

  /** The login budget key of a read `slot` ran that settled within LATE_LOGIN_MS, else undefined. */
  function lateLoginKey(slot: Slot, id: number): string | undefined {
    const late = lateLogins.get(id);
    if (late === undefined || late.slot !== slot) return undefined;
    if (Date.now() <= late.until) return late.loginKey;
    lateLogins.delete(id);
    return undefined;
  }

  /** the BMC's own worker, or while that one is being started again the next one alive */
  function slotFor(ip: string): Slot | undefined {
    const first = workerOfBmc(ip, slots.length);
    for (let k = 0; k < slots.length; k++) {
      const slot = slots[(first + k) % slots.length]!;
      if (slot.alive) return slot;
    }
    return undefined;
  }

  /**
   * The worker still running a read of this BMC that was given up on, wherever it ran: its own
   * worker, or the one that stood in while its own was started again (and may be back by now).
   */
  function givenUpRunning(sessionKey: string): Slot | undefined {
    return slots.find((s) => s.alive && s.givenUp.size > 0 && [...s.givenUp.values()].includes(sessionKey));
  }

  /** A read's kept Redfish session, checked as the state file's entries are; a bad one is dropped with a line. */
  function keepSession(slot: Slot, key: string, session: KeptRedfishSession | null): void {
    const sessions = options.redfishSessions;
    if (!sessions) return;
    if (session === null) return sessions.set(key, undefined);
    const checked = checkedKept(session);
    if (checked !== undefined) return sessions.set(key, checked);
    log.warn({ worker: slot.index, bmc: key }, 'report worker sent a Redfish session entry that is not one; ignored');
  }

  function sessionFor(key: string): { session?: KeptRedfishSession | null } {
    return options.redfishSessions && options.redfishSessions.maxAgeMs > 0 ? { session: options.redfishSessions.get(key) ?? null } : {};
  }

  /** the BMC's record, for a read to carry when trust on first use is on */
  function trustFor(key: string): { trust?: TrustRecord | null; trustProblem?: string; trustUnreadable?: TrustFileUnreadable } {
    if (!options.trust) return {};
    const store = options.trust.store;
    const problem = store.problem(key);
    const unreadable = firstContactBar(store);
    return { trust: store.get(key) ?? null, ...(problem === undefined ? {} : { trustProblem: problem }), ...(unreadable === undefined ? {} : { trustUnreadable: { file: store.file, code: unreadable.code, error: unreadable.error } }) };
  }

  for (let i = 0; i < options.workers; i++) start(i, 0, 0);

  /**
   * BMCs in flight at a worker's exit (suspects) are read one at a time across the pool: every
   * read in flight on that worker became one, and were they read again together, the one that ends
   * workers would take its innocent companions to a second exit, and the quarantine, with it.
   * First come, first served (turn.ts): a suspect is not passed over by later ones.
   */
  const suspectTurn = createTurn();

  /** One line when suspects start to be read one at a time (again after each exit that made new ones, counting those): why reads are slow now. */
  function announceSuspects(): void {
    if (unannounced.size === 0) return;
    // still suspects, not set aside since (nor cleared, nor pushed out of `suspects`): read one at a time from now on
    const readAlone = (ip: string) => {
      const s = suspects.get(ip);
      return s !== undefined && s.exits < QUARANTINE_EXITS;
    };
    const count = [...unannounced.keys()].filter(readAlone).length;
    unannounced.clear();
    if (count === 0) return;
    log.warn({ suspects: count }, 'BMCs that were being read when a report worker exited are read one at a time across the report workers, each until one of its reads ends without an exit: reads of them take longer meanwhile');
  }

  async function read(lease: Lease, o: ReadOptions): Promise<BmcReadAttempt> {
    const suspect = suspects.get(lease.ip);
    if (suspect === undefined || suspect.exits >= QUARANTINE_EXITS) return readNow(lease, o);
    announceSuspects();
    const release = await suspectTurn.take(o.signal);
    if (!release) return { ok: false, error: closing ? new BmcError('ABORTED', `reading BMC ${lease.ip}: metal-bmc is shutting down`) : abortError(o.signal!, `reading BMC ${lease.ip}`), durationMs: 0, late: false };
    try {
      // the turn may come long after the read was asked for: the cycle says whether it still has time for it
      if (o.mayStart?.() === false) return { ok: false, error: new BmcError('TIMEOUT', `reading BMC ${lease.ip}: its turn among the suspects came too late for the report cycle; not started`), notStarted: true, durationMs: 0, late: false };
      return await readNow(lease, o);
    } finally {
      release();
    }
  }

  /**
   * A read asked while no worker runs waits for the next one started (its restart's backoff),
   * within its own deadline, and is then read with what is left of it. Failing at once instead
   * sent the read back to the cycle, which took it up again before the restart's timer could run
   * (the cycle's queue goes on without a turn of the event loop), so every BMC of the queue failed
   * twice in the same instant. One whose deadline passes first fails CLOSED, not lost with its
   * worker (no retry into the same restart).
   */
  function afterRestart(lease: Lease, o: ReadOptions): Promise<BmcReadAttempt> {
    const asked = Date.now();
    return new Promise<BmcReadAttempt>((resolve) => {
      const finish = (attempt: Promise<BmcReadAttempt> | BmcReadAttempt) => {
        startWaiters.delete(wake);
        clearTimeout(timer);
        o.signal?.removeEventListener('abort', wake);
        resolve(attempt);
      };
      // a worker started, the pool closing or the cycle's abort: readNow says which
      const wake = () => finish(readNow(lease, { ...o, timeoutMs: Math.max(1, o.timeoutMs - (Date.now() - asked)) }));
      const timer = setTimeout(() => finish({ ok: false, error: new BmcError('CLOSED', `reading BMC ${lease.ip}: no report worker is running (restarting) within the read's deadline`), durationMs: Date.now() - asked, late: false }), o.timeoutMs);
      timer.unref();
      startWaiters.add(wake);
      o.signal?.addEventListener('abort', wake, { once: true });
    });
  }

  /** the cycles' switches for second Redfish connections whose turning on is told to the workers */
  const relayed = new WeakSet<SecondConnectionSwitch>();
  /** A cycle's switch turning on is told to every worker: the reads still running there stop waiting for a second connection too. */
  function relaySwitch(cycleSwitch: SecondConnectionSwitch): void {
    if (cycleSwitch.atOnce || relayed.has(cycleSwitch)) return;
    relayed.add(cycleSwitch);
    cycleSwitch.whenOn(() => {
      for (const slot of slots) if (slot.alive) send(slot, { type: 'second-connection-now' });
    });
  }

  function readNow(lease: Lease, o: ReadOptions): Promise<BmcReadAttempt> {
    const { timeoutMs, signal, secondConnection } = o;
    const failed = (error: unknown): Promise<BmcReadAttempt> => Promise.resolve({ ok: false, error, durationMs: 0, late: false });
    if (closing) return failed(new BmcError('ABORTED', `reading BMC ${lease.ip}: metal-bmc is shutting down`));
    if (signal?.aborted) return failed(abortError(signal, `reading BMC ${lease.ip}`));
    const suspect = suspects.get(lease.ip);
    if (suspect !== undefined && suspect.exits >= QUARANTINE_EXITS && Date.now() - suspect.at < QUARANTINE_MS) {
      return failed(new BmcError('BUSY', `reading BMC ${lease.ip}: it was being read at each of the last ${suspect.exits} report worker exits; set aside until ${new Date(suspect.at + QUARANTINE_MS).toISOString()}`));
    }
    const slot = slotFor(lease.ip);
    // every worker is being started again (one alone, METAL_BMC_REPORT_WORKERS=1): our restart, not
    // the BMC's failure; the read waits for the worker within its own deadline
    if (!slot) return afterRestart(lease, o);
    const sessionKey = redfishSessionKey(lease.ip, options.settings.redfishPort, lease.mac);
    // a second read beside one still running would log in beside it, and only one session is kept
    const runs = givenUpRunning(sessionKey);
    if (runs) return failed(new BmcError('BUSY', `reading BMC ${lease.ip}: its last read, given up on, still runs in report worker ${runs.index}; read again once it ends`));
    const id = nextId++;
    const started = Date.now();
    slot.reads++;
    return new Promise<BmcReadAttempt>((resolve) => {
      // a worker keeps each read's deadline itself (its own loop's stall given back); only a worker that hangs misses this
      const guardMs = readGuardMs(timeoutMs);
      const settle = (attempt: BmcReadAttempt) => {
        const pending = slot.pending.get(id);
        if (!pending) return;
        slot.pending.delete(id);
        rememberLogin(slot, id, pending.loginKey);
        clearTimeout(guard);
        signal?.removeEventListener('abort', onAbort);
        resolve(attempt);
      };
      // given up here: the worker is told to stop the read, its late answer is ignored
      const giveUp = (error: unknown) => {
        if (slot.alive) send(slot, { type: 'abort', id });
        if (slot.pending.has(id)) setNewest(slot.givenUp, id, sessionKey, MAX_GIVEN_UP);
        settle({ ok: false, error, durationMs: Date.now() - started, late: false });
      };
      const guard = setTimeout(() => {
        giveUp(new BmcError('TIMEOUT', `reading BMC ${lease.ip}: report worker ${slot.index} did not answer within ${guardMs} ms`));
        replaceIfStuck(slot);
      }, guardMs);
      guard.unref();
      const onAbort = () => giveUp(abortError(signal!, `reading BMC ${lease.ip}`));
      signal?.addEventListener('abort', onAbort, { once: true });
      const key = trustKey({ ip: lease.ip, ...(lease.mac ? { mac: lease.mac } : {}) });
      const loginKey = loginBudgetKey(lease.ip, options.settings.redfishPort ?? 443, options.settings.user, options.settings.password);
      const logins = processLoginBudget.get(loginKey);
      slot.pending.set(id, { ip: lease.ip, trustKey: key, sessionKey, loginKey, started, settle });
      if (secondConnection) relaySwitch(secondConnection);
      send(slot, { type: 'read', id, ip: lease.ip, ...(lease.mac ? { mac: lease.mac } : {}), ...trustFor(key), ...sessionFor(sessionKey), ...(logins ? { logins } : {}), timeoutMs, ...(secondConnection ? { secondConnectionAtOnce: secondConnection.atOnce } : {}) });
    });
  }

  return {
    read,
    load() {
      let busy = 0;
      let heapBytes = 0;
      let threads = 0;
      for (const slot of slots) {
        if (!slot.alive) continue;
        threads++;
        heapBytes += slot.load.heapBytes;
        const now = slot.worker.performance.eventLoopUtilization();
        const since = performance.eventLoopUtilization(now, slot.utilisation);
        slot.utilisation = now;
        // a worker not running yet (or started again) has no time to speak of: 0/0
        if (since.idle + since.active > 0) busy = Math.max(busy, since.utilization);
      }
      return { busy, heapBytes, threads };
    },
    stats() {
      return slots.map((s) => ({ worker: s.index, alive: s.alive, abandoned: s.abandoned, threadId: s.worker.threadId, reads: s.reads, restarts: s.restarts, tlsConnections: s.load.tlsConnections, tlsResumed: s.load.tlsResumed, heapBytes: s.load.heapBytes }));
    },
    async measureHeap() {
      const heaps = slots.filter((s) => s.alive).map((slot) => new Promise<number>((resolve) => {
        slot.heapWaiters.push(resolve);
        send(slot, { type: 'measure-heap' });
      }));
      return (await Promise.all(heaps)).reduce((a, b) => a + b, 0);
    },
    async kill(worker) {
      const slot = slots[worker];
      if (!slot?.alive) return;
      await killWorker(slot.worker, { type: 'die' } satisfies ToReportWorker);
    },
    async close(deadlineMs = 5000) {
      closing = true;
      // reads waiting for a suspect's turn end now (ABORTED), not when a turn comes
      suspectTurn.close();
      // and those waiting for a worker to be started again
      for (const wake of [...startWaiters]) wake();
      await stopWorkers(slots.filter((s) => s.alive).map((s) => s.worker), { shutdown: { type: 'shutdown' } satisfies ToReportWorker, die: { type: 'die' } satisfies ToReportWorker, isDone: (m) => (m as FromReportWorker).type === 'closed', deadlineMs });
    },
  };
}
