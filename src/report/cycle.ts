/**
 * One report cycle: read every BMC (as many at once as this machine carries, up to
 * `concurrency`: adaptive-limit.ts; a deadline each), then post one report to metal-api. A BMC
 * that fails is logged and skipped; it never blocks the others. A BMC whose deadline ran out, or
 * whose report worker exited under its read, is read once more at the end of the cycle when
 * `cycleBudgetMs` leaves room for twice its deadline (the stall it may be given back) as it starts.
 * Each BMC's connection is closed in the background (its session logout is not on the report's
 * path) and only its bounded entry is kept: memory does not grow with what a BMC read.
 * Each entry is bounded (bounds.ts) before it goes out, and a report that metal-api cannot read
 * (400) or a proxy finds too large (413) is split in halves until the entries it refuses stand
 * alone: one bad BMC costs only its own entry. A split makes at most splitPostBound posts in a
 * cycle; any other failure (422 included) fails the report post as a whole.
 */
import { setMaxListeners } from 'node:events';
import { BmcError, isBmcErrorCode } from '../errors.js';
import type { Lease } from '../leases/types.js';
import type { Logger } from '../log.js';
import type { MetalApiClient } from '../metalapi/client.js';
import type { MachineIpmiReport, MachineIpmiReportResponse } from '../metalapi/types.js';
import type { BmcReport, UuidGap } from '../outband/types.js';
import { SecondConnectionSwitch } from '../redfish/second-connection.js';
import { readBmcGuarded, type BmcReadAttempt, type ConnectForRead } from './read-bmc.js';
import { assembleReportBody, type BmcRead, type ReportBody } from './body.js';
import type { LedMemory } from './led-memory.js';
import type { UuidOwners } from './owners.js';
import type { ReadOrder } from './read-order.js';
import { forEachAdaptive, type AdaptiveLimitOptions, type ItemOutcome, type LimitMemory, type SampleSeen, type ThreadsLoad } from './adaptive-limit.js';
import { acquireLoopClock, type LoopStall } from './loop-clock.js';
import type { ReportMetrics } from './metrics.js';
import { conditionLineFields, conditionName, type BmcCondition, type BmcConditions } from './bmc-conditions.js';

/** Reads BMCs somewhere else than this thread (report worker threads: worker-pool.ts). */
export interface BmcReader {
  /**
   * `mayStart`: asked when a read that had to wait (a suspect's turn: worker-pool.ts) is about to start; false: it is not started (`notStarted`).
   * `secondConnection`: the cycle's switch, on once every BMC has started (read-bmc.ts ConnectForRead)
   */
  read(lease: Lease, o: { timeoutMs: number; signal?: AbortSignal | undefined; mayStart?: () => boolean; secondConnection?: SecondConnectionSwitch }): Promise<BmcReadAttempt>;
  /** the load of the threads the reads run on, which the adaptive limit follows beside this thread's */
  load?: () => ThreadsLoad;
}

export interface CycleDeps {
  partitionId: string;
  /** opens a BMC for its read; `onAnswer` at every sign of life of the BMC (read-bmc.ts) */
  connect: ConnectForRead;
  /** reads the BMCs instead of `connect` here (the daemon's report workers) */
  reader?: BmcReader;
  metalApi: Pick<MetalApiClient, 'ipmiReport'>;
  /** upper bound of BMCs read at once; the number in use adapts below it */
  concurrency: number;
  bmcTimeoutMs: number;
  /** read exactly `concurrency` BMCs at once instead of adapting below it (benchmark references) */
  fixedConcurrency?: boolean;
  /** time a cycle may take; a timed-out BMC is retried only when twice its deadline still fits as the retry starts (default: no retry) */
  cycleBudgetMs?: number;
  logger: Logger;
  metrics?: ReportMetrics;
  /** last known identify LED per machine, for BMCs whose LED cannot be read (the reporter keeps one across cycles) */
  ledMemory?: LedMemory;
  /** the BMC known per machine UUID across cycles (the reporter keeps one) */
  owners?: UuidOwners;
  /**
   * All leases now, not only this cycle's (the reporter's view): whether a BMC IP holds a lease,
   * the MAC it is leased to, whether a MAC holds one anywhere. Read once per cycle, after the
   * reads, into maps: asked per known owner and per remembered condition, a scan of the view for
   * each was quadratic in the partition's size. Default: this cycle's leases.
   */
  leaseView?: () => readonly Lease[];
  /** BMCs whose main-thread read was left behind past its deadline and still runs (the reporter keeps one across cycles): not read again until it ends */
  leftBehind?: Set<string>;
  /** told about every BMC read, the BMC of each entry in the body and those left out, and every accepted report (the daemon's status); must not throw (a throw is logged and counted, the cycle goes on) */
  observer?: ReportObserver;
  /** the BMCs slowest last cycle start first (the reporter keeps one across cycles); default: lease order */
  readOrder?: ReadOrder;
  /** the limit starts where the last cycle's settled (the reporter keeps one across cycles); default: low, growing from 16 */
  limitMemory?: LimitMemory;
  /** each BMC's lasting failure or skip, so that it is logged once and then at most once per repeat interval (the reporter keeps one across cycles); default: every occurrence logged */
  conditions?: BmcConditions;
}

/** One BMC read as the cycle saw it. */
export type BmcReadOutcome = { ok: true; report: BmcReport; vendor: string; durationMs: number } | { ok: false; error: unknown; durationMs: number };

/** A BMC as the report body knows it: its lease address and MAC. */
export interface BodyBmc {
  ip: string;
  mac?: string;
}

/**
 * A BMC read in this cycle whose entry is not in the report because another BMC (`heldBy`, its
 * address) holds its machine UUID: `conflict`, the BMC known for the UUID still has its lease;
 * `duplicate`, one earlier in this cycle's lease order reported it first; `owners-unreadable`: no
 * BMC is known for it and the owners file (`heldBy`, its path) that may name one cannot be read,
 * or did not parse and its copy (`keptAs`) is kept aside.
 */
export interface LeftOutBmc {
  bmc: BodyBmc;
  uuid: string;
  why: 'conflict' | 'duplicate' | 'owners-unreadable';
  heldBy: string;
  /** conflict: the known BMC's MAC, where its lease named one */
  heldByMac?: string;
  /**
   * conflict: the left-out BMC sits at the known BMC's old address (`heldBy`, its own), which DHCP
   * gave it, while the known BMC's MAC (`heldByMac`) holds a lease at another address
   */
  heldByMoved?: true;
  /** owners-unreadable: the copy of the owners file that did not parse, kept aside */
  keptAs?: string;
}

export interface ReportObserver {
  /** told as each read ends, before the body decides which BMC a machine UUID's entry comes from */
  read(lease: Lease, outcome: BmcReadOutcome): void;
  /** the body is built (before it is posted): the BMC each machine UUID's entry came from, and the BMCs read but left out */
  placed?(entries: ReadonlyArray<{ uuid: string; bmc: BodyBmc }>, leftOut: readonly LeftOutBmc[]): void;
  /** metal-api accepted the entries of these machine UUIDs */
  reported(uuids: readonly string[], at: Date): void;
}

export interface CycleResult {
  read: number;
  failed: number;
  reported: number;
  created: string[];
  updated: string[];
  /** machine uuids whose entry metal-api refused even alone */
  rejected: string[];
  /** machine uuids whose entry metal-api answered 200 for but named neither created nor updated (not applied; its log says why) */
  notApplied: string[];
  durationMs: number;
  /** BMCs read a second time after their deadline ran out (retries started, not those that no longer fitted) */
  retried: number;
  /** the highest number of BMCs read at once */
  peakConcurrency: number;
  /** the limit of BMCs read at once, at each sample of the adaptive limit */
  limitSamples: number[];
  /** what the limiter saw at each sample (the loop's busy share and delay, BMCs in flight and queued) */
  limitSeen: SampleSeen[];
  /** the limit when the last BMC was started, where the next cycle's starts */
  limitSettled: number;
  /** BMCs read only in the time given back for the event loop's stall, or missed even with all of it (each one made the limit shrink) */
  late: number;
}

/**
 * metal-api's answers after which a split can help: 400, the body metal-api could not read (the
 * ipmiReport handler's ReadEntity, so one entry Go cannot decode refuses them all), and 413, a
 * proxy's body limit. Not 422: metal-api's defaultError gives it to every error it does not
 * classify (service.go), a RethinkDB failure behind FindPartition or SearchMachines included, so
 * it says nothing of an entry; like a 5xx it fails the report post, and the next cycle tries again.
 */
const SPLIT_ON_STATUS = new Set([400, 413]);

type Reports = Record<string, MachineIpmiReport>;

function pick(reports: Reports, uuids: string[]): Reports {
  return Object.fromEntries(uuids.map((u) => [u, reports[u]!]));
}

/** metal-api's answer, with the entries it refused alone, those it applied, and those it answered 2xx for without applying them */
type Posted = MachineIpmiReportResponse & { rejected: string[]; accepted: string[]; notApplied: string[] };

/** How many machine UUIDs of the entries metal-api did not apply a cycle's log line names. */
const NOT_APPLIED_NAMED = 5;
/** UUIDs a line about BMCs left out names, at most */
const LEFT_OUT_NAMED = 5;

/**
 * Of the entries posted in a 2xx answer, those metal-api applied: named as created or updated.
 * metal-api answers 200 also for entries it skips, with only its own log saying so (a machine of
 * another partition, a create or update that failed); counted as taken, they were told to the
 * status as reported. An answer that names neither list (an older metal-api) says nothing of
 * them: every entry posted counts as applied, as before.
 */
function appliedOf(posted: string[], answer: MachineIpmiReportResponse): { accepted: string[]; notApplied: string[] } {
  if (answer.unlisted) return { accepted: posted, notApplied: [] };
  const named = new Set([...answer.created, ...answer.updated]);
  return { accepted: posted.filter((u) => named.has(u)), notApplied: posted.filter((u) => !named.has(u)) };
}

/**
 * The posts one report may make in a cycle, the first included: 1 + 4·⌈log2 n⌉ for n entries (41
 * for 1,000, 33 for 200). Each post makes metal-api run FindPartition and SearchMachines over the
 * whole partition, where the Go daemon posts once. Isolating one bad entry takes 1 + 2·⌈log2 n⌉
 * posts (two per halving); the bound lets a cycle isolate two wherever they sit, and a proxy's
 * body limit (413) that a few halvings fit. A metal-api that refuses every part, or refuses
 * intermittently, costs no more than that, even while it takes some parts. Entries not posted
 * when the bound is reached fail the cycle and go out again with the next one.
 */
export function splitPostBound(entries: number): number {
  return 1 + 4 * Math.ceil(Math.log2(Math.max(1, entries)));
}

/** Fisher-Yates, in place. */
function shuffle<T>(items: T[]): void {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [items[i], items[j]] = [items[j]!, items[i]!];
  }
}

/** A split stopped at its bound (`why`), at metal-api's refusal `refusal`. */
class SplitStopped extends Error {
  constructor(
    readonly refusal: BmcError,
    readonly why: string,
  ) {
    super(why);
  }
}

function refusalToSplit(err: unknown): err is BmcError {
  return err instanceof BmcError && err.httpStatus !== undefined && SPLIT_ON_STATUS.has(err.httpStatus);
}

/**
 * Posts the report, and halves of each part metal-api refuses with 400 or 413 until the entries it
 * refuses stand alone, breadth first: the largest parts go first, so a split that reaches its
 * bound (splitPostBound) has spent it where it takes the most entries, and names an entry as
 * refused only when few parts at each halving were refused (against a metal-api refusing every
 * part, only a report of fewer than 29 entries gets down to single entries). Throws the first
 * post's error as it is, and a later one as PartlyReported with what metal-api took before.
 */
async function postReports(deps: CycleDeps, reports: Reports, signal: AbortSignal | undefined): Promise<Posted> {
  const all = Object.keys(reports);
  const bound = splitPostBound(all.length);
  /**
   * Each part with whether its post counts against the bound: the first, and the halves of a part
   * refused 400 (looking for bad entries, each post a search over the partition). The halves of a
   * part a proxy found too large (413) do not: a report over 16 times the limit would otherwise
   * never be posted, and it takes as many posts as it takes to fit.
   */
  const parts: Array<{ uuids: string[]; charged: boolean }> = [{ uuids: all, charged: true }];
  let done = NOTHING_POSTED;
  let posts = 0;
  let charged = 0;
  let refusal: BmcError | undefined;
  for (let next = parts.shift(); next !== undefined; next = parts.shift()) {
    const part = next.uuids;
    if (next.charged && charged === bound) throw new PartlyReported(new SplitStopped(refusal!, `the split reached its bound of ${bound} posts for ${all.length} entries`), done);
    posts++;
    if (next.charged) charged++;
    try {
      const answer = await deps.metalApi.ipmiReport({ partitionid: deps.partitionId, reports: pick(reports, part) }, signal ? { signal } : {});
      done = joinPosted(done, { created: answer.created, updated: answer.updated, rejected: [], ...appliedOf(part, answer) });
    } catch (err) {
      // a part failing otherwise (422, a 5xx after its retries, no answer): what metal-api took before stays told
      if (!refusalToSplit(err)) throw posts === 1 ? err : new PartlyReported(err, done);
      refusal = err;
      if (part.length === 1) {
        const uuid = part[0]!;
        deps.metrics?.entriesRejected.inc();
        deps.logger.warn({ uuid, bmc: reports[uuid]!.BMCIp, httpStatus: err.httpStatus, err }, 'metal-api refuses this BMC entry; it is left out of the report');
        done = joinPosted(done, { ...NOTHING_POSTED, rejected: part });
        continue;
      }
      // the first split takes the entries in a random order: in lease order (by address), one rack
      // of a BMC model metal-api refuses, or a device holding the lowest addresses, would sit in
      // the same parts every cycle
      if (posts === 1) shuffle(part);
      const half = Math.ceil(part.length / 2);
      const charge = err.httpStatus !== 413;
      parts.push({ uuids: part.slice(0, half), charged: charge }, { uuids: part.slice(half), charged: charge });
    }
  }
  return done;
}

const NOTHING_POSTED: Posted = { created: [], updated: [], rejected: [], accepted: [], notApplied: [] };

function joinPosted(a: Posted, b: Posted): Posted {
  return { created: [...a.created, ...b.created], updated: [...a.updated, ...b.updated], rejected: [...a.rejected, ...b.rejected], accepted: [...a.accepted, ...b.accepted], notApplied: [...a.notApplied, ...b.notApplied] };
}

/** A split report that failed part of the way: `done` is what metal-api took (or refused) before. */
class PartlyReported extends Error {
  constructor(
    override readonly cause: unknown,
    readonly done: Posted,
  ) {
    super(cause instanceof Error ? cause.message : String(cause));
  }
}

/**
 * The observer told of a BMC's read. It must not throw; one that does (a status page's bug) is
 * logged with the BMC and counted, and the read counts as it was: its entry is still reported.
 */
function tellRead(deps: CycleDeps, lease: Lease, outcome: BmcReadOutcome): void {
  try {
    deps.observer?.read(lease, outcome);
  } catch (err) {
    deps.metrics?.readHandlingErrors.inc({ where: 'observer' });
    deps.logger.error({ bmc: lease.ip, mac: lease.mac, err }, "the report observer failed on this BMC's read; the read counts as it was");
  }
}

/**
 * The observer told which BMC each entry of the body came from and which BMCs were read but left
 * out: told at each read, it could not know (the body decides after every read), and took the
 * last read of a machine UUID for its BMC. Like `tellRead`, it must not throw; one that does is
 * logged and counted, and the report goes on.
 */
function tellPlaced(deps: CycleDeps, placed: ReportBody['placed'], conflicts: ReportBody['conflicts'], duplicates: ReportBody['duplicates'], held: ReportBody['held']): void {
  if (!deps.observer?.placed) return;
  const bmc = (ip: string, mac: string | undefined): BodyBmc => ({ ip, ...(mac !== undefined ? { mac } : {}) });
  const leftOut: LeftOutBmc[] = [
    ...conflicts.map(({ uuid, known, knownMac, knownMoved, claimant, mac }): LeftOutBmc => ({ bmc: bmc(claimant, mac), uuid, why: 'conflict', heldBy: known, ...(knownMac !== undefined ? { heldByMac: knownMac } : {}), ...(knownMoved ? { heldByMoved: true as const } : {}) })),
    ...duplicates.map(({ uuid, bmcs: [kept, dropped], mac }): LeftOutBmc => ({ bmc: bmc(dropped, mac), uuid, why: 'duplicate', heldBy: kept })),
    ...held.map(({ uuid, claimant, mac, file, keptAs }): LeftOutBmc => ({ bmc: bmc(claimant, mac), uuid, why: 'owners-unreadable', heldBy: file, ...(keptAs !== undefined ? { keptAs } : {}) })),
  ];
  try {
    deps.observer.placed(
      placed.map(({ uuid, ip, mac }) => ({ uuid, bmc: bmc(ip, mac) })),
      leftOut,
    );
  } catch (err) {
    deps.metrics?.readHandlingErrors.inc({ where: 'observer' });
    deps.logger.error({ entries: placed.length, leftOut: leftOut.length, err }, 'the report observer failed on the report body; the report goes on');
  }
}

/** A BMC read without a machine UUID to report, by why (`BmcReport.uuidGap`): its log line, and the read's error as the status shows it. */
const UUID_GAP_SKIPS: Readonly<Record<UuidGap, { logLine: string; error: (report: BmcReport) => BmcError }>> = {
  'no-uuid': {
    logLine: 'BMC gives no machine UUID, skipped in this report',
    error: () => new BmcError('UNSUPPORTED', 'the BMC gives no machine UUID (neither Redfish nor IPMI Get System GUID)'),
  },
  'placeholder-uuid': {
    logLine: 'BMC gives only a placeholder machine UUID, skipped in this report',
    error: () => new BmcError('UNSUPPORTED', "the BMC gives only a placeholder machine UUID (all zero, all FF or a BIOS default), no machine's id: not set before the first POST after power loss, or DMI never programmed"),
  },
  'unconfirmed-ipmi-uuid': {
    logLine: 'BMC read over IPMI alone gives a machine UUID no earlier read confirmed, skipped in this report',
    error: unconfirmedIpmiError,
  },
};

/** A read over IPMI alone whose UUID is not confirmed: failing for Redfish's failure (its code, so the status names it), left out for the UUID. */
function unconfirmedIpmiError(report: BmcReport): BmcError {
  const what = 'over IPMI alone its machine UUID is not confirmed (no earlier read with Redfish decided it for this GUID), so the BMC is left out of the report';
  const p = report.redfishProblem;
  if (p === undefined) return new BmcError('UNSUPPORTED', `Redfish gives no machine UUID and ${what}`);
  return new BmcError(isBmcErrorCode(p.code) ? p.code : 'UNAVAILABLE', `Redfish: ${p.message}; ${what}`, { ...(p.httpStatus !== undefined ? { httpStatus: p.httpStatus } : {}), ...(p.causeCode !== undefined ? { cause: { code: p.causeCode } } : {}) });
}

/**
 * A BMC's failure or skip, logged as `deps.conditions` says: the first occurrence, a change and an
 * hourly reminder (with the cycles it was not logged in); the same condition in between is not,
 * for a partition's dead or IPMI-only BMCs said the same every cycle. Without the memory, each.
 */
function warnOf(deps: CycleDeps, lease: Lease, condition: BmcCondition, fields: Record<string, unknown>, msg: string): void {
  const line = deps.conditions?.met(lease, condition) ?? { kind: 'new' };
  if (line.kind !== 'quiet') deps.logger.warn({ ...fields, ...conditionLineFields(line) }, msg);
}

/**
 * A BMC read with a UUID after it failed or was skipped: one line naming what it was and for how
 * long. A condition begun in this cycle (a timed-out read whose retry succeeded) is only debug.
 */
function logRecovery(deps: CycleDeps, lease: Lease): void {
  const back = deps.conditions?.cleared(lease);
  if (back === undefined) return;
  const fields = { bmc: lease.ip, mac: lease.mac, was: conditionName(back.condition), forMs: back.forMs, cycles: back.cycles };
  if (back.sameCycle) deps.logger.debug(fields, 'BMC read in this report after its first read failed');
  else deps.logger.info(fields, 'BMC read again after it failed or was skipped; its entry is back in the report');
}

/** Deadline failures worth a second try: the BMC may only have been slow. */
const RETRY_CODES = new Set(['TIMEOUT', 'ABORTED']);

/**
 * A read, and whether it ran late: past its deadline because the event loop was busy with other
 * BMCs. A failure says whether a second read is worth it (`retry`): a deadline run out, or a
 * report worker that exited under the read.
 */
type ReadOutcome = ({ report: BmcReport } | { failure: string; retry: boolean }) & { late: boolean };

/**
 * One BMC: read in a report worker (`deps.reader`) or here, its connection closed into `closes`
 * (or awaited when there is none); then counted, logged and told to the observer here. Undefined:
 * a read that had to wait in the report workers was not started, as `mayStart` said then.
 */
async function readOne(deps: CycleDeps, lease: Lease, clock: LoopStall, signal: AbortSignal | undefined, o: { closes?: Array<Promise<void>>; mayStart?: (() => boolean) | undefined; secondConnection?: SecondConnectionSwitch } = {}): Promise<ReadOutcome | undefined> {
  const { closes, mayStart, secondConnection } = o;
  const attempt = deps.reader
    ? await deps.reader.read(lease, { timeoutMs: deps.bmcTimeoutMs, signal, ...(secondConnection ? { secondConnection } : {}), ...(mayStart ? { mayStart } : {}) })
    : await readBmcGuarded(deps.connect, lease.ip, { timeoutMs: deps.bmcTimeoutMs, clock, signal, secondConnection, ...(closes ? { closes } : {}) }, deps.leftBehind ?? new Set());
  if (!attempt.ok && attempt.notStarted) return undefined;
  const { durationMs, late } = attempt;
  if (attempt.ok) {
    const { report, vendor } = attempt;
    if (report.uuid === '') {
      // metal-api keys machines by UUID and creates one for every UUID it does not know: without
      // the machine's own the entry cannot be reported. A skip with its reason, not a failed read;
      // the BMC's last good data stays in metal-api.
      const gap: UuidGap = report.uuidGap !== undefined && Object.hasOwn(UUID_GAP_SKIPS, report.uuidGap) ? report.uuidGap : 'no-uuid';
      const skip = UUID_GAP_SKIPS[gap];
      deps.metrics?.bmcsSkipped.inc({ reason: gap });
      warnOf(deps, lease, { kind: 'skipped', reason: gap }, { bmc: lease.ip, mac: lease.mac, reason: gap, missing: report.missing }, skip.logLine);
      tellRead(deps, lease, { ok: false, error: skip.error(report), durationMs });
      return { failure: 'NO_UUID', retry: false, late };
    }
    if (report.missing.length > 0) deps.logger.debug({ bmc: lease.ip, mac: lease.mac, missing: report.missing }, 'BMC report is partial');
    if (report.guidOrderContradicted === true) deps.metrics?.guidOrderContradicted.inc();
    countHedges(deps, report);
    logRecovery(deps, lease);
    tellRead(deps, lease, { ok: true, report, vendor, durationMs });
    return { report, late };
  }
  const err = attempt.error;
  const code = err instanceof BmcError ? err.code : 'UNKNOWN';
  deps.metrics?.bmcFailures.inc({ code });
  tellRead(deps, lease, { ok: false, error: err, durationMs });
  warnOf(deps, lease, { kind: 'read-failed', code }, { bmc: lease.ip, mac: lease.mac, code, err }, 'cannot read BMC, skipped in this report');
  return { failure: code, retry: RETRY_CODES.has(code) || attempt.lostWithWorker === true, late };
}

/** The cycle's switch on; a connection that fails to open then is logged and counted, the cycle goes on (its request fails with its read). */
function turnOnSecondConnections(deps: CycleDeps, secondConnection: SecondConnectionSwitch): void {
  try {
    secondConnection.turnOn();
  } catch (err) {
    deps.metrics?.readHandlingErrors.inc({ where: 'second-connection' });
    deps.logger.error({ err }, 'opening the second Redfish connections of the reads still running failed; those reads go on over the connection they have');
  }
}

function countHedges(deps: CycleDeps, report: BmcReport): void {
  const hedges = report.redfishHedges;
  if (hedges === undefined || deps.metrics === undefined) return;
  for (const [outcome, n] of Object.entries(hedges)) if (n > 0) deps.metrics.redfishHedges.inc({ outcome }, n);
}

export async function readBmc(deps: CycleDeps, lease: Lease, signal?: AbortSignal): Promise<BmcReport | undefined> {
  const clock = acquireLoopClock();
  try {
    const outcome = await readOne(deps, lease, clock, signal);
    return outcome && 'report' in outcome ? outcome.report : undefined;
  } finally {
    clock.release();
  }
}

/**
 * The signal a cycle's reads listen to, one listener each (up to the concurrency limit, hundreds):
 * a signal of the cycle's own, without a listener limit, that follows the caller's through one
 * listener. Each read's listener on the caller's signal itself made Node warn of a leak at 11.
 */
function readsSignal(caller: AbortSignal | undefined): { signal: AbortSignal | undefined; dispose(): void } {
  if (caller === undefined) return { signal: undefined, dispose: () => undefined };
  const reads = new AbortController();
  setMaxListeners(0, reads.signal);
  const onAbort = (): void => reads.abort(caller.reason);
  if (caller.aborted) onAbort();
  else caller.addEventListener('abort', onAbort, { once: true });
  return { signal: reads.signal, dispose: () => caller.removeEventListener('abort', onAbort) };
}

export async function runReportCycle(deps: CycleDeps, leases: readonly Lease[], signal?: AbortSignal): Promise<CycleResult> {
  const started = Date.now();
  const slots = new Array<BmcRead | undefined>(leases.length);
  const closes: Array<Promise<void>> = [];
  const tried = new Set<number>();
  let retried = 0;
  let late = 0;
  const startLimit = deps.limitMemory?.start();
  deps.conditions?.beginCycle();
  const order = deps.readOrder ? deps.readOrder.order(leases.map((l) => l.ip)) : leases.map((_, i) => i);
  // taken last before the reads: the finally below gives them back whatever happens from here
  const clock = acquireLoopClock();
  const readsAbort = readsSignal(signal);
  /**
   * Turned on once every BMC has started and a read has ended since: a read still running (or a
   * retry) then opens its BMC's second Redfish connection at once for a request that finds the
   * first busy, not after METAL_BMC_REDFISH_SECOND_CONNECTION_AFTER. Until then the limit keeps
   * this machine's CPU busy starting BMCs, and a TLS handshake less per BMC starts them sooner;
   * from then on the CPU is spare and the reads still running, some with a request behind a slow
   * answer on their one connection, set the cycle's end.
   */
  const secondConnection = new SecondConnectionSwitch();
  /**
   * Whether a retry started now fits in the cycle's budget: its deadline and the stall it may be
   * given back, up to as much again. Asked when it would start too, not only when the first read
   * failed: behind slower reads it starts late and ran past the budget.
   */
  const retryFits = () => deps.cycleBudgetMs !== undefined && Date.now() - started + 2 * deps.bmcTimeoutMs <= deps.cycleBudgetMs;
  /** one BMC's read, or its retry, and what follows from it */
  const readItem = async (i: number, requeue: (again: number) => void): Promise<ItemOutcome | undefined> => {
    if (signal?.aborted) return;
    // a retry waited in the queue, behind slower reads: it starts only if it still fits now, and
    // again if it waits in the report workers for its turn as a suspect, which may take long
    const retry = tried.has(i);
    if (retry && !retryFits()) return;
    const lease = leases[i]!;
    const readStarted = Date.now();
    const outcome = await readOne(deps, lease, clock, readsAbort.signal, { closes, mayStart: retry ? retryFits : undefined, secondConnection });
    if (outcome === undefined) return;
    if (retry) retried++;
    // a read refused at once as BUSY (its given-up read still runs) says nothing of how slow the BMC is
    if (!('failure' in outcome && outcome.failure === 'BUSY')) deps.readOrder?.record(lease.ip, Date.now() - readStarted);
    if ('failure' in outcome) {
      if (outcome.retry && !tried.has(i) && retryFits() && !signal?.aborted) {
        tried.add(i);
        requeue(i);
      }
    } else {
      // the connection is closing in the background; only the report (a few hundred bytes) stays
      slots[i] = { ip: lease.ip, mac: lease.mac, report: outcome.report };
    }
    if (!outcome.late) return 'ok';
    late++;
    return 'late';
  };
  const limits: AdaptiveLimitOptions = deps.fixedConcurrency ? { max: deps.concurrency, min: deps.concurrency, initial: deps.concurrency } : { max: deps.concurrency, ...(startLimit === undefined ? {} : { initial: startLimit }), ...(deps.reader?.load ? { load: deps.reader.load } : {}) };
  const trace = await forEachAdaptive(
    order,
    { ...limits, onAllStarted: () => turnOnSecondConnections(deps, secondConnection) },
    async (i, requeue) => {
      try {
        return await readItem(i, requeue);
      } catch (err) {
        // anything thrown while handling one read (a report worker's answer, the read order) is
        // that BMC's failure, not the cycle's: thrown on, it ended the cycle while the other reads
        // still ran, their entries landing nowhere and the next cycle starting beside them
        const lease = leases[i]!;
        deps.metrics?.readHandlingErrors.inc({ where: 'read' });
        deps.logger.error({ bmc: lease.ip, mac: lease.mac, err }, "handling this BMC's read failed; it is left out of this report, the cycle goes on");
        slots[i] = undefined;
        return 'ok';
      }
    },
  ).finally(() => {
    clock.release();
    readsAbort.dispose();
  });
  if (!signal?.aborted) deps.limitMemory?.record(trace);
  // in lease order, so "the first BMC of a UUID" does not depend on which answered first
  const reads = slots.filter((r): r is BmcRead => r !== undefined);
  slots.fill(undefined);
  const read = reads.length;
  const view = deps.leaseView?.() ?? leases;
  const macOf = new Map(view.map((l) => [l.ip, l.mac]));
  const leasedMacs = new Set(view.flatMap((l) => (l.mac === undefined ? [] : [l.mac.toLowerCase()])));
  const isLeased = (ip: string) => macOf.has(ip);
  const macAt = (ip: string) => macOf.get(ip);
  const macLeased = (m: string) => leasedMacs.has(m.toLowerCase());
  // an owner the operator forgot while the daemon ran (bmc owners --reset) is given out in this body
  deps.owners?.refresh?.();
  const ownership = deps.owners ? { owners: deps.owners, isLeased, macAt, macLeased } : undefined;
  const { reports, placed, duplicates, bounded, conflicts, held, moves } = assembleReportBody(reads, deps.ledMemory, ownership);
  for (const { uuid, known, knownMac, knownMoved, claimant, mac } of conflicts) {
    deps.metrics?.uuidConflicts.inc();
    // at the known BMC's old address, `known` is the claimant's own: the known one is named by its MAC
    if (knownMoved) deps.logger.warn({ uuid, knownMac, claimant, mac }, 'a device at the address a known BMC had reports its machine UUID while that BMC, by its MAC, holds a lease at another address; the known one is kept, the device is left out');
    else deps.logger.warn({ uuid, known, knownMac, claimant, mac }, 'a second BMC reports a machine UUID that a known BMC with a lease holds; the known one is kept, the second is left out');
  }
  for (const { uuid, bmcs } of duplicates) {
    deps.metrics?.uuidConflicts.inc();
    deps.logger.warn({ uuid, bmcs }, 'two BMCs report the same machine UUID; keeping the first');
  }
  if (held.length > 0) {
    // once per cycle: the file's own episode line (owners.ts) names the error; this says what it costs
    const { file, code, keptAs } = held[0]!;
    const leftOut = { file, code, leftOut: held.length, uuids: held.slice(0, LEFT_OUT_NAMED).map((h) => h.uuid) };
    if (keptAs !== undefined) deps.logger.warn({ ...leftOut, keptAs }, 'BMCs report machine UUIDs no known BMC holds while the UUID owners file that did not parse is kept aside: they are left out of the report, not made owners, for the copy may name other BMCs for them, until it is put back fixed or removed (which accepts its loss)');
    else deps.logger.warn(leftOut, 'BMCs report machine UUIDs no known BMC holds while the UUID owners file cannot be read: they are left out of the report, not made owners, for the file may name other BMCs for them, until it can be read');
  }
  tellPlaced(deps, placed, conflicts, duplicates, held);
  for (const { uuid, previous, bmc, why } of moves) {
    deps.logger.info({ uuid, previous, bmc }, why === 'lease gone' ? 'machine UUID moves to another BMC: the lease of the known one is gone' : "machine UUID moves to another BMC: the known one's address is leased to another MAC now (addresses swapped or reassigned)");
  }
  deps.owners?.prune(isLeased);
  // a BMC whose lease is gone (or went to another MAC) takes its condition along
  deps.conditions?.forget((b) => macAt(b.ip)?.toLowerCase() === b.mac.toLowerCase());
  for (const { bmc, uuid, cut } of bounded) {
    deps.metrics?.entriesBounded.inc();
    deps.logger.warn({ bmc, uuid, cut }, 'BMC sent values beyond any real one; they were cut to fit the report');
  }
  const result: CycleResult = { read, failed: leases.length - read, reported: Object.keys(reports).length, created: [], updated: [], rejected: [], notApplied: [], durationMs: 0, retried, peakConcurrency: trace.peak, limitSamples: trace.samples, limitSeen: trace.seen, limitSettled: trace.settled, late };
  /** what metal-api took: counted and told, also when a later part of a split report failed */
  const took = (answer: Posted) => {
    result.created = answer.created;
    result.updated = answer.updated;
    result.rejected = answer.rejected;
    result.notApplied = answer.notApplied;
    if (answer.notApplied.length > 0) {
      // once per cycle, whatever the split: a partition of another's machines would say it every cycle for each
      deps.metrics?.entriesNotApplied.inc(answer.notApplied.length);
      deps.logger.warn({ entries: answer.notApplied.length, uuids: answer.notApplied.slice(0, NOT_APPLIED_NAMED) }, "metal-api answered 200 but did not apply these entries (named in neither created nor updated: a machine of another partition, or a create or update that failed; metal-api's log says which); they are not counted as reported");
    }
    if (answer.accepted.length > 0) deps.metrics?.lastSuccess.set(Date.now() / 1000);
    try {
      deps.observer?.reported(answer.accepted, new Date());
    } catch (err) {
      // metal-api took them: an observer's bug does not make the cycle fail
      deps.metrics?.readHandlingErrors.inc({ where: 'observer' });
      deps.logger.error({ entries: answer.accepted.length, err }, 'the report observer failed on the entries metal-api took; the report counts as posted');
    }
  };
  try {
    if (result.reported > 0) {
      let answer: Posted;
      try {
        answer = await postReports(deps, reports, signal);
      } catch (err) {
        if (!(err instanceof PartlyReported)) throw err;
        took(err.done);
        if (!(err.cause instanceof SplitStopped)) throw err.cause;
        const { refusal, why } = err.cause;
        const notPosted = result.reported - err.done.accepted.length - err.done.notApplied.length - err.done.rejected.length;
        deps.metrics?.splitsStopped.inc();
        throw new BmcError(refusal.code, `metal-api refused parts of the report, the last with HTTP ${refusal.httpStatus}: ${why}, ${notPosted} of ${result.reported} entries not posted this cycle`, { httpStatus: refusal.httpStatus, cause: refusal });
      }
      took(answer);
      result.reported -= answer.rejected.length + answer.notApplied.length;
    }
    result.durationMs = Date.now() - started;
  } finally {
    await Promise.all(closes);
  }
  return result;
}
