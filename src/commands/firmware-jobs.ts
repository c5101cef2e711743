/**
 * UPDATE-FIRMWARE as background jobs, as the Go daemon runs it: the event is acknowledged once
 * the job is accepted, the job runs under its own deadline (METAL_BMC_FIRMWARE_TIMEOUT, not the
 * command timeout), one job per machine and per BMC at a time, across instances with `claims` (a
 * second is refused with a result event),
 * its progress (task state and percent) and outcome are published as result events, and jobs
 * are kept in a state file so that a restart in the middle of an update does not forget the job.
 *
 * A flash outlives metal-bmc's view of it (a BMC image takes the BMC offline for ~10 minutes), so
 * the machine is never freed while the BMC may still be applying the image:
 * - **Restart:** the state file keeps what is needed to watch the update again (the task the BMC
 *   named, the resource targeted, its version before). recover() resumes a job that was running
 *   and is younger than its deadline as an active job (power steps stay held, its claim across
 *   instances is taken back) and watches it to the end it would have had: its task, else for a BMC
 *   image the Manager's FirmwareVersion. A job that cannot be watched (no task known, a BIOS
 *   image) or whose deadline passed ends `interrupted`, its outcome unknown, its machine held
 *   until `heldUntil` (crashHoldEnd) as after a stop that cut it off; plain INTERRUPTED, nothing
 *   held, when nothing was sent, its BMC address is unknown, another job holds the machine, or
 *   that hold is over already.
 * - **Deadline with the BMC silent, or its task still running:** a job whose deadline passes while
 *   the BMC has not answered for `unreachableAfterMs`, or while the task the BMC named for it was
 *   last seen running (redfish/task.ts taskStillRuns: a BIOS flash on iDRAC or XCC takes 20
 *   minutes and more, the deadline is the operator's), ends `failed` with code OUTCOME_UNKNOWN
 *   (`outcomeUnknown: true`, as a command's result says it), and its machine stays held (claim
 *   kept, power steps held) for `outcomeUnknownHoldMs` (15 minutes), so that neither a retry nor a
 *   power command lands on a BMC still flashing. The hold watches what the job left to watch (its
 *   task, a BMC image's version; after a restart on a new connection) and frees the machine early
 *   when the task ends, completed or failed, or the new version shows; a BMC that cannot be read
 *   keeps it held to the end. How the hold goes is published for the job (HoldPhase): `held` for
 *   each extension, then once `settled` (the update's end seen) or `released` (free, the outcome
 *   still unknown), so that metal-api learns what `failed` OUTCOME_UNKNOWN left open. The hold
 *   reads the BMC at the job's pace for its first 2 minutes, then every 15 s (HOLD_POLL_MS).
 * - **This instance gone:** the job's claim tells the other instances how long to hold the machine
 *   were it no longer renewed (claimHoldMs): the hold above while the job may have sent the BMC
 *   anything, a hold's remaining time once held (a whole hold again while the look at its end is
 *   under way). A host lost mid-update, or a restart longer than
 *   the claim's 90 s lease, leaves the machine held for them, not free for a RESET in the flash.
 *
 * Reboots: applying a BIOS image needs a host reboot, which metal-bmc does not do (neither does
 * the Go daemon's Redfish path); every BIOS result says so (`rebootRequired: true`,
 * `rebootedByMetalBmc: false`). A BMC image is applied by the BMC, which restarts itself. A BMC
 * that stages a BIOS job until that reboot (iDRAC: Oem.Dell.JobState Scheduled) ends the job
 * `completed` with progress state `Staged` and message "staged: applies at the machine's next
 * reboot": the update is in place, and metal-api's consumers already read `completed` with
 * `rebootRequired` as "takes effect at the next reboot"; a new job state would be unknown to them
 * and to older state files.
 *
 * The state file holds no credentials and no image URL query (it may carry a token): the image
 * is recorded as scheme, host and path.
 */
import type { Dispatcher } from 'undici';
import { randomBytes } from 'node:crypto';
import { readFileSync, renameSync } from 'node:fs';
import { checkDuration, deadline, endedWithin, raceAbort, sleep } from '../deadline.js';
import { abortError, BmcError, HandBackError, RedfishAwayError } from '../errors.js';
import { publicText } from '../net/public-text.js';
import type { Logger } from '../log.js';
import { hpeFlashSaysRunning } from '../outband/hpe-flash.js';
import { writePrivateFileSync } from '../outband/private-file-sync.js';
import { stateWriteEpisodes } from '../outband/state-write-failures.js';
import type { FirmwareKind, FirmwareOptions, FirmwareProgress, FirmwareWatch, Outband } from '../outband/types.js';
import { isTransient, STAGED_MESSAGE, STAGED_STATE, TaskFailedError, taskStillRuns, USER_INTERVENTION_MESSAGE } from '../redfish/task.js';
import { bmcKeyOf, parseBmcAddress, type EventIpmi, type Plan } from './event.js';
import type { ConnectBmc, FirmwareJobHold } from './runner.js';
import { describeRecord, type StepHold, type StepJournal } from './step-journal.js';

export type FirmwareJobState = 'running' | 'completed' | 'failed' | 'interrupted';
/**
 * What the hold after a job's `failed` with `outcomeUnknown` tells later, for the same job:
 * `held` (extended: its task still runs), then one `settled` (the update's end seen, the machine
 * free) or `released` (the machine free, the outcome still unknown).
 */
export type HoldPhase = 'held' | 'settled' | 'released';
export type FirmwarePhase = 'accepted' | 'progress' | FirmwareJobState | 'refused' | HoldPhase;
/** How a hold ended without the update's end seen: at heldUntil (or the BMC unreadable), its task taken as hung at taskHoldLimitMs, or another job or instance holds the machine now. */
export type ReleasedAs = 'hold-ended' | 'task-hung' | 'superseded';

export interface FirmwareJob {
  id: string;
  machineId: string;
  /** the runner's key: the machine id, or the BMC address */
  key: string;
  kind: FirmwareKind;
  /** the BMC's address as the event named it */
  bmc: string;
  /** the image URL without credentials, query or fragment */
  image: string;
  state: FirmwareJobState;
  /** ISO 8601 */
  acceptedAt: string;
  updatedAt: string;
  progress?: JobProgress;
  error?: string;
  code?: string;
  /** the Task or task monitor of the update as the BMC named it: a job resumed after a restart follows it */
  taskUri?: string;
  /** the Manager (BMC image) or System (BIOS image) the update applies to */
  target?: string;
  /** the target's FirmwareVersion or BiosVersion before the update: a resumed BMC image without a task is decided by it */
  versionBefore?: string;
  /** the BMC (HPE iLO) named no task and the flash is followed through its UpdateService's Oem.Hpe.State: a resumed job follows it there */
  hpeFlash?: true;
  /** iLO's state before the update (FirmwareWatch): a resumed job does not take the last flash's end for this one's */
  hpeFlashBefore?: { state: string; resultMessageId?: string };
  /** iLO was seen flashing this update (FirmwareWatch) */
  hpeFlashStarted?: true;
  /** ended without knowing whether the BMC applied the image (code OUTCOME_UNKNOWN or INTERRUPTED) */
  outcomeUnknown?: true;
  /** ISO 8601: its machine stays held until then (the BMC may still be applying the image), also over a restart */
  heldUntil?: string;
  /** accepted, nothing sent to the BMC yet: it waits for a power command running on its machine (a restart ends it interrupted, knowing that nothing was done) */
  notSent?: true;
}

/**
 * A job's last progress: the task state and percent. `message` only for `Staged` (our own text,
 * never the BMC's messages, which may quote the image URL): the BMC parked the update until the
 * host's next reboot, and the job ends `completed` with this progress.
 */
export interface JobProgress {
  state: string;
  percent?: number;
  message?: string;
  /** `Uploading` an image of unknown length: its bytes the BMC took so far (no percent to give) */
  sentBytes?: number;
}

/** The progress a job keeps and publishes from what the facade reported. */
export function jobProgress(p: FirmwareProgress): JobProgress {
  return {
    state: p.state,
    ...(p.percent !== undefined ? { percent: p.percent } : {}),
    ...(p.sentBytes !== undefined ? { sentBytes: p.sentBytes } : {}),
    ...(p.state === STAGED_STATE ? { message: stagedMessage(p.message) } : {}),
  };
}

/** Our own text for a staged update, by what the facade said staged it: iDRAC's UserIntervention needs a reboot or an A/C power cycle, a scheduled job the next reboot. */
function stagedMessage(facadeMessage: string | undefined): string {
  return facadeMessage?.startsWith(USER_INTERVENTION_MESSAGE) ? USER_INTERVENTION_MESSAGE : STAGED_MESSAGE;
}

/** A result event of a firmware job, published on the result subject like command results. */
export interface FirmwareEvent {
  machineId: string;
  type: 'command';
  command: 'UPDATE-FIRMWARE';
  /** false for refused, failed and interrupted jobs */
  ok: boolean;
  phase: FirmwarePhase;
  job?: Pick<FirmwareJob, 'id' | 'kind' | 'image' | 'state' | 'acceptedAt'>;
  progress?: JobProgress;
  error?: string;
  code?: string;
  /** a BIOS image takes effect at the next host reboot */
  rebootRequired: boolean;
  /** metal-bmc never reboots the host after an update */
  rebootedByMetalBmc: false;
  durationMs?: number;
  /** the job ended without knowing whether the BMC applied the image: check its firmware version before a retry */
  outcomeUnknown?: true;
  /** ISO 8601: power commands and a new update of the machine are held until then */
  heldUntil?: string;
  /** the job was taken up again after a restart of metal-bmc and is watched to its end */
  resumed?: true;
  /** `settled`: how the update watched during the hold ended */
  settledAs?: 'completed' | 'failed';
  /** `released`: why the hold ended without the update's end seen */
  releasedAs?: ReleasedAs;
  /** `settled`: what the BMC told of the end (task state and percent, the new version, the task's failure) */
  detail?: string;
}

export interface FirmwareJobMetrics {
  firmwareJobs: { inc(labels: { outcome: string }): void };
  firmwareJobsRunning: { set(value: number): void };
  /** holds after an outcome unknown by how they ended: completed, failed (settled) or a ReleasedAs */
  firmwareHoldsEnded?: { inc(labels: { end: string }): void };
}

export interface FirmwareJobsOptions {
  connect: ConnectBmc;
  /** deadline of one job */
  timeoutMs: number;
  /** the JSON state file; undefined keeps jobs in memory only */
  stateFile?: string;
  /** jobs running at once across all machines (default 16); more are refused */
  maxRunning?: number;
  /** the end of a power command running now on the machine or BMC (CommandRunner.powerSettled): a new job waits for it before it asks the BMC anything */
  powerSettled?: (key: string, bmc: string) => Promise<void> | undefined;
  /**
   * the power steps other instances run on the machine or BMC (their marks, bus/power-marks.ts):
   * resolves once the claims bucket was caught up with and none runs (`onWait` told each one
   * waited for); a job that holds its claim waits for it, sending nothing meanwhile
   */
  powerElsewhere?: (key: string, bmc: string, onWait: (step: PowerStepElsewhere) => void) => Promise<void>;
  /** finished jobs kept in the state file (default 100) */
  keepFinished?: number;
  logger: Logger;
  metrics?: FirmwareJobMetrics;
  publish: (event: FirmwareEvent) => void;
  /** how long `close()` of an Outband may take (default 5 s) */
  closeTimeoutMs?: number;
  /** throws FORBIDDEN for an image URL that may not be used (firmware-url.ts); the job is refused */
  checkUrl?: (url: string) => void;
  /** throws FORBIDDEN for a BMC this daemon may not act on (targets.ts); the job is refused before it is accepted */
  checkTarget?: (ipmi: EventIpmi) => void;
  /** the dispatcher metal-bmc downloads images with (one that refuses forbidden addresses) */
  imageDispatcher?: Dispatcher;
  /**
   * one update per machine and BMC across the partition's instances (bus/firmware-claims.ts):
   * a job is accepted only once it holds its claim, released when it ends; without it, per instance
   */
  claims?: JobClaims;
  /**
   * the event journal: the update step of an event with an `eventId` is claimed before its job
   * starts, so that no later delivery of the event (its ack lost) starts a second job
   */
  journal?: StepJournal;
  /**
   * this instance's name in the journal's records: with a state file, a step this instance claimed
   * before a crash that left the job unbegun (no BMC contact; see STARTING) is taken again by a
   * later delivery instead of being refused as started
   */
  instanceId?: string;
  /** a job whose deadline passes with the BMC silent this long ends outcome unknown (default 60 s) */
  unreachableAfterMs?: number;
  /** how long the machine stays held after an outcome unknown (default 15 minutes) */
  outcomeUnknownHoldMs?: number;
  /**
   * a hold whose end finds the job's task still running is extended by `outcomeUnknownHoldMs`,
   * until this long after the job was accepted (default 4 hours: a task that says Running longer
   * is taken as hung, and the machine is freed with one error line)
   */
  taskHoldLimitMs?: number;
  /** a job resumed after a restart connects again this often while its BMC cannot be reached (default 15 s) */
  reconnectMs?: number;
  /** a job taken up again after a restart asks for its claim again this often while claims cannot be checked (default 15 s, the claims' renewal period) */
  claimRetryMs?: number;
  /** a hold asks the BMC at the job's own pace for this long after it began (default HOLD_JOB_PACE_MS) */
  holdJobPaceMs?: number;
  /** then this often (default HOLD_POLL_MS) */
  holdPollMs?: number;
}

/** OUTCOME_UNKNOWN_HOLD_MS: a BMC image takes the BMC offline for ~10 minutes; a retry or power step must not land in it */
export const OUTCOME_UNKNOWN_HOLD_MS = 15 * 60_000;
const UNREACHABLE_AFTER_MS = 60_000;
/** TASK_HOLD_LIMIT_MS: the longest a job's machine stays held, from its acceptance, while its task says it runs */
export const TASK_HOLD_LIMIT_MS = 4 * 3600_000;
/** how long the look at a held job's task at the end of its hold may take */
const TASK_LOOK_MS = 30_000;
/**
 * HOLD_JOB_PACE_MS, HOLD_POLL_MS: a hold watches the task at the job's pace (2 s) for its first 2
 * minutes (a flash that overran the deadline often ends soon after), then every 15 s: a hold lasts
 * up to 4 hours, and 2 s polls would be ~7,200 requests to a BMC busy flashing (weak BMC CPUs;
 * iDRAC and iLO limit sessions and requests)
 */
export const HOLD_JOB_PACE_MS = 2 * 60_000;
export const HOLD_POLL_MS = 15_000;
/** the code of a job that ended without knowing whether the BMC applied the image (as a command's outcomeUnknown) */
const OUTCOME_UNKNOWN = 'OUTCOME_UNKNOWN';
const RECONNECT_MS = 15_000;
/** a resumed job's connect failures that trying again does not mend */
const LOGIN_REFUSED_CODES: ReadonlySet<string> = new Set(['AUTH_FAILED', 'UNTRUSTED', 'INSECURE_REFUSED', 'FORBIDDEN', 'CONFIG']);

/**
 * A resumed job whose BMC refuses the connection (wrong credentials: the event's are never
 * stored, the configured ones are tried; another certificate; policy): the update was sent
 * before the restart and may still run, so its outcome is unknown and the machine is held.
 */
class ResumeRefusedError extends Error {
  constructor(override readonly cause: BmcError) {
    super(`outcome unknown: the BMC of this update, resumed after a restart, refused the connection (${cause.code}: ${cause.message}); it may still be applying the update: check its firmware version before retrying`);
    this.name = 'ResumeRefusedError';
  }
}

/**
 * The events whose update step is claimed in the journal while their job has not begun, kept in
 * `<stateFile>.starting`: the claim and the cross-instance claim after it take KV round trips (up
 * to seconds), and a process that ends in between leaves the step `claimed` with no job. Each
 * entry names the run of the process that wrote it; an entry of an earlier run for a step claimed
 * by this instance is the proof that the claim sent nothing. Cleared as the job begins.
 */
interface StartingFile {
  version: 1;
  /** event id -> the run that claimed its step, and when */
  events: Record<string, { run: string; at: string }>;
}

/** entries of the starting file kept at most, and for how long (a redelivery comes within the stream's 24 h) */
const STARTING_MAX = 1000;
const STARTING_KEEP_MS = 48 * 3600_000;

/** Another instance's power step a job waits for: its command and instance, for the log line. */
export interface PowerStepElsewhere {
  command: string;
  instance: string;
}

/** A job's claim across instances: deleted at its end; written again at once when what it tells the others changed. */
export interface JobClaim {
  release(): Promise<void>;
  /** settles once the claim was written again (or could not be): bus/firmware-claims.ts HeldClaim.rewrite */
  rewrite?(): Promise<void> | void;
}

/** Claims across instances, as bus/firmware-claims.ts keeps them. */
export interface JobClaims {
  /** `held` once the job's machine and BMC are claimed, `busy` describing another instance's job; rejects when claims cannot be checked */
  claim(subject: { jobId: string; kind: string; machineKey: string; bmc: string; since?: string; holdMs?: () => number }): Promise<{ held: JobClaim } | { busy: string }>;
}

/** `handBack`: not refused, only not started now (the event journal cannot be used): the event goes back to the stream, nothing published */
export type StartOutcome = { accepted: true; job: FirmwareJob } | { accepted: false; event: FirmwareEvent; handBack?: true };

export interface FirmwareJobs {
  /**
   * Reads the state file. A job it lists as running was cut off by a restart: resumed (active, its
   * claim taken back, watched to its end) where it can be watched and its deadline has not passed,
   * else ended interrupted, its outcome unknown; a job held after an outcome unknown is held again
   * until its `heldUntil`. Returns the jobs ended interrupted.
   */
  recover(): FirmwareJob[];
  /** Accepts the plan's UPDATE-FIRMWARE as a background job, or refuses it (published either way). */
  start(plan: Plan): Promise<StartOutcome>;
  /** every known job, newest last */
  list(): FirmwareJob[];
  /** the job running, or being claimed, for the plan's machine or its BMC: the runner holds power steps behind it */
  activeFor(plan: Pick<Plan, 'key' | 'ipmi'>): FirmwareJobHold | undefined;
  running(): number;
  /**
   * waits up to `deadlineMs` for running jobs, then aborts them: recorded as interrupted, except
   * those the next start can watch again (their task or version before known), left running in
   * the state file with their claim
   */
  stop(deadlineMs: number): Promise<void>;
}

/** scheme://host/path of a URL: no user, password, query or fragment. */
export function imageLabel(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}${u.pathname}`;
  } catch {
    return '(not a URL)';
  }
}

interface StateFile {
  version: 1;
  jobs: FirmwareJob[];
}

const JOB_STATES: readonly FirmwareJobState[] = ['running', 'completed', 'failed', 'interrupted'];

/** The jobs of a state file; throws on anything that is not one (the caller keeps the file aside). */
export function parseStateFile(text: string): FirmwareJob[] {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new BmcError('DECODE', 'firmware job state file is not JSON', { cause: err });
  }
  if (typeof value !== 'object' || value === null || (value as StateFile).version !== 1 || !Array.isArray((value as StateFile).jobs)) {
    throw new BmcError('DECODE', 'firmware job state file: expected {"version":1,"jobs":[...]}');
  }
  return (value as StateFile).jobs.map((j, i) => {
    const ok =
      typeof j === 'object' &&
      j !== null &&
      ['id', 'machineId', 'key', 'bmc', 'image', 'acceptedAt', 'updatedAt'].every((k) => typeof (j as unknown as Record<string, unknown>)[k] === 'string') &&
      (j.kind === 'bios' || j.kind === 'bmc') &&
      JOB_STATES.includes(j.state) &&
      ['taskUri', 'target', 'versionBefore', 'heldUntil'].every((k) => ['string', 'undefined'].includes(typeof (j as unknown as Record<string, unknown>)[k])) &&
      (j.hpeFlash === undefined || j.hpeFlash === true) &&
      (j.hpeFlashStarted === undefined || j.hpeFlashStarted === true) &&
      (j.notSent === undefined || j.notSent === true) &&
      (j.hpeFlashBefore === undefined || (typeof j.hpeFlashBefore === 'object' && j.hpeFlashBefore !== null && typeof j.hpeFlashBefore.state === 'string' && ['string', 'undefined'].includes(typeof j.hpeFlashBefore.resultMessageId)));
    if (!ok) throw new BmcError('DECODE', `firmware job state file: job ${i} is malformed`);
    return j;
  });
}

/** how long a finished job waits for its claim across instances to be deleted before it tells its outcome */
const CLAIM_RELEASE_MS = 3000;
/** how long a job about to send its update waits for its claim to say so (`holdMs`) */
const CLAIM_REWRITE_MS = 2000;


interface ActiveJob {
  job: FirmwareJob;
  /** the BMC as host:port */
  bmcKey: string;
  done: Promise<void>;
  abort: AbortController;
  claiming?: Promise<unknown>;
  /** the job ended outcome unknown and only holds its machine now: a stop ends the hold at once */
  holding?: true;
}

/** What a job runs: an update sent now, or one sent before a restart and watched again. */
interface JobRun {
  ipmi: EventIpmi | undefined;
  /** the update's work on the connected BMC */
  work: (bmc: Outband, x: FirmwareOptions) => Promise<void>;
  /** the job's deadline from now */
  deadlineMs: number;
  /** ms since the epoch: the BMC was last heard of then before this run (a resumed job's last progress) */
  heardBefore?: number;
  /** a power command running on the machine, whose end the job waits for within its deadline before it asks the BMC anything */
  after?: Promise<void>;
  /** another instance's power steps on the machine: resolves once none runs (FirmwareJobsOptions.powerElsewhere), waited for after `after` */
  elsewhere?: (onWait: (step: PowerStepElsewhere) => void) => Promise<void>;
}

type FirmwareAction = Extract<Plan['actions'][number], { kind: 'firmware' }>;


/** The BMC of a job read back from the state file, without credentials: a resumed job connects with the configured ones. */
function ipmiOf(job: FirmwareJob): EventIpmi | undefined {
  if (job.bmc === '') return undefined;
  try {
    return { address: job.bmc, ...parseBmcAddress(job.bmc) };
  } catch {
    return undefined;
  }
}

/** Whether an update sent before a restart can be watched again: its task is known, iLO's Oem.Hpe.State tells it, or a BMC image's version before it. */
function watchable(job: FirmwareJob): boolean {
  return followsUpdate(job) || (job.kind === 'bmc' && job.target !== undefined && job.versionBefore !== undefined);
}

/** Whether the BMC runs the job's update where it can be asked how it goes: a task it named, or iLO's UpdateService state. */
function followsUpdate(job: FirmwareJob): boolean {
  return job.taskUri !== undefined || job.hpeFlash === true;
}

/** Whether a progress of the job's update says it still runs: iLO's own running states (hpe-flash.ts), a task's by the task poll's rules. */
function updateStillRuns(job: FirmwareJob, p: FirmwareProgress): boolean {
  return job.taskUri === undefined && job.hpeFlash === true ? hpeFlashSaysRunning(p.state) : taskStillRuns(p);
}

/** What the job left to watch its update again (a restart, a hold). */
function watchOf(job: FirmwareJob): FirmwareWatch {
  return {
    ...(job.taskUri !== undefined ? { taskUri: job.taskUri } : {}),
    ...(job.target !== undefined ? { target: job.target } : {}),
    ...(job.versionBefore !== undefined ? { versionBefore: job.versionBefore } : {}),
    ...(job.hpeFlash ? { hpeFlash: true as const } : {}),
    ...(job.hpeFlashBefore ? { hpeFlashBefore: job.hpeFlashBefore } : {}),
    ...(job.hpeFlashStarted ? { hpeFlashStarted: true as const } : {}),
  };
}

/** A job that ended (stopped, its deadline passed) while it waited for a power command on its machine: nothing was sent, its outcome is known. */
function notSentError(failure: unknown): BmcError {
  const code = failure instanceof BmcError ? failure.code : 'ABORTED';
  const why = failure instanceof Error ? failure.message : String(failure);
  return new BmcError(code, `${why}; nothing was sent to the BMC (the update had not begun: it waited for a power command on its machine, or to start): send it again`);
}

/** How an update watched during a hold after an outcome unknown ended, freeing its machine early. */
interface UpdateEnd {
  how: 'completed' | 'failed';
  /** the last progress the watch told (completed), or the task's failure */
  detail: string;
  /** completed: the last progress the watch told */
  last?: FirmwareProgress;
  /** failed: the failure's code (a task's own failure: PROTOCOL, as a job whose task failed) */
  code?: string;
}

/** How a hold after an outcome unknown ended: the update's end seen, or released without it. */
type HoldEnd = UpdateEnd | { how: ReleasedAs; running?: FirmwareProgress; by?: string };

const HOLD_ENDED: HoldEnd = { how: 'hold-ended' };

const isUpdateEnd = (end: HoldEnd): end is UpdateEnd => end.how === 'completed' || end.how === 'failed';

/** The text of a `released` result by why the hold ended: the machine is free again, and its update's outcome still unknown. */
const RELEASED_TEXT: Record<ReleasedAs, (end: { running?: FirmwareProgress; by?: string }, limitMinutes: number) => string> = {
  'hold-ended': () => "the machine's hold after a firmware update of unknown outcome ended without the update's end seen; the machine is free again and the outcome is still unknown: check its firmware version before a retry or a power command",
  'task-hung': (end, limitMinutes) =>
    `the BMC's update still ran ${limitMinutes} minutes after it was accepted${end.running ? ` (last progress ${describeProgress(end.running)})` : ''} and is taken as hung; the machine is free again and the outcome is still unknown: check the BMC and its firmware version before a power command`,
  superseded: (end) => `another firmware job holds this machine or its BMC now${end.by ? ` (${end.by})` : ''}, so this job's hold ended; its outcome is still unknown: check the firmware version`,
};

const describeProgress = (p: FirmwareProgress): string => `${p.state}${p.percent !== undefined ? ` ${p.percent}%` : ''}${p.message ? `: ${p.message}` : ''}`;

const lastProgressOf = (job: FirmwareJob): string => (job.progress ? `${job.progress.state}${job.progress.percent !== undefined ? ` ${job.progress.percent}%` : ''}` : 'none');

/** A start refused because metal-bmc is stopping: not published; the handler hands the event back for another instance. */
function closedEvent(plan: Plan): FirmwareEvent {
  return { machineId: plan.machineId, type: 'command', command: 'UPDATE-FIRMWARE', ok: false, phase: 'refused', code: 'CLOSED', error: 'metal-bmc is stopping', rebootRequired: false, rebootedByMetalBmc: false };
}

function positive(name: string, value: number): void {
  if (!Number.isFinite(value) || value <= 0) throw new BmcError('INVALID_ARGUMENT', `firmware jobs: ${name} must be positive, got ${value}`);
}

export function createFirmwareJobs(o: FirmwareJobsOptions): FirmwareJobs {
  positive('timeoutMs', o.timeoutMs);
  const maxRunning = o.maxRunning ?? 16;
  const keepFinished = o.keepFinished ?? 100;
  const closeTimeoutMs = checkDuration('firmware jobs: closeTimeoutMs', o.closeTimeoutMs, 5000, 600_000);
  const unreachableAfterMs = checkDuration('firmware jobs: unreachableAfterMs', o.unreachableAfterMs, UNREACHABLE_AFTER_MS, 3600_000);
  const holdMs = checkDuration('firmware jobs: outcomeUnknownHoldMs', o.outcomeUnknownHoldMs, OUTCOME_UNKNOWN_HOLD_MS, 24 * 3600_000);
  const taskHoldLimitMs = checkDuration('firmware jobs: taskHoldLimitMs', o.taskHoldLimitMs, TASK_HOLD_LIMIT_MS, 7 * 24 * 3600_000);
  const reconnectMs = checkDuration('firmware jobs: reconnectMs', o.reconnectMs, RECONNECT_MS, 600_000);
  const claimRetryMs = checkDuration('firmware jobs: claimRetryMs', o.claimRetryMs, 15_000, 600_000);
  /** claims of jobs taken up again, asked for again (claimLater): the timers, and the claims under way */
  const claimRetries = new Set<NodeJS.Timeout>();
  const lateClaims = new Set<Promise<void>>();
  /** the end of a hold a stop kept: none before the process ends (one per instance, so waiters go with it) */
  const never = new Promise<void>(() => undefined);
  const holdJobPaceMs = checkDuration('firmware jobs: holdJobPaceMs', o.holdJobPaceMs, HOLD_JOB_PACE_MS, 24 * 3600_000);
  const holdPollMs = checkDuration('firmware jobs: holdPollMs', o.holdPollMs, HOLD_POLL_MS, 600_000);
  const jobs: FirmwareJob[] = [];
  /** running jobs by machine key; `claiming` while a job's claim across instances is asked for */
  const active = new Map<string, ActiveJob>();
  let stopping = false;
  let seq = 0;
  /** this process's run, told apart from earlier ones in the starting file */
  const processRun = randomBytes(6).toString('base64url');
  const startingFile = o.stateFile === undefined ? undefined : `${o.stateFile}.starting`;
  /** the starting file's entries; undefined until recover() read it (then no step is taken again) */
  let starting: Map<string, { run: string; at: string }> | undefined;
  /** event ids whose start is under way in this process */
  const startingHere = new Set<string>();
  // each failed write counted, and logged once until a write succeeds
  const startingWrites = stateWriteEpisodes({ file: startingFile ?? '', failure: 'cannot write the firmware starting file', logger: o.logger });
  const jobWrites = stateWriteEpisodes({ file: o.stateFile ?? '', failure: 'cannot write the firmware job state file; jobs are kept in memory', logger: o.logger });

  /** Writes the starting file; false (logged) when it cannot be written. */
  function writeStarting(): boolean {
    if (startingFile === undefined || starting === undefined) return true;
    const cutoff = Date.now() - STARTING_KEEP_MS;
    for (const [id, e] of starting) if (!(Date.parse(e.at) >= cutoff)) starting.delete(id);
    for (const id of [...starting.keys()].slice(0, Math.max(0, starting.size - STARTING_MAX))) starting.delete(id);
    try {
      writePrivateFileSync(startingFile, JSON.stringify({ version: 1, events: Object.fromEntries(starting) } satisfies StartingFile));
      startingWrites.succeeded();
      return true;
    } catch (err) {
      startingWrites.failed(err as Error);
      return false;
    }
  }

  function readStarting(): void {
    if (startingFile === undefined) return;
    try {
      const value = JSON.parse(readFileSync(startingFile, 'utf8')) as StartingFile;
      const events = value?.version === 1 && typeof value.events === 'object' && value.events !== null ? Object.entries(value.events) : undefined;
      if (!events) throw new Error('expected {"version":1,"events":{...}}');
      starting = new Map(events.filter(([, e]) => typeof e?.run === 'string' && typeof e.at === 'string'));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') starting = new Map();
      else o.logger.error({ err, file: startingFile }, 'cannot read the firmware starting file; steps claimed before the restart stay refused as started');
    }
  }

  /** Whether an earlier run of this process held the event's step and ended before its job began. */
  function leftUnbegunEarlier(eventId: string): boolean {
    const entry = starting?.get(eventId);
    return entry !== undefined && entry.run !== processRun;
  }

  /** event ids whose note reached the file: only those must be cleared from it before their job begins */
  const notedOnDisk = new Set<string>();

  /** Notes that this run holds the event's step and its job has not begun (a failure to note it only loses the retake). */
  function noteHolding(eventId: string): void {
    if (starting === undefined) return;
    // an earlier run's note read from the file is on disk whatever this write does
    const fileMayHoldIt = starting.has(eventId) || notedOnDisk.has(eventId);
    starting.set(eventId, { run: processRun, at: new Date().toISOString() });
    if (writeStarting() || fileMayHoldIt) notedOnDisk.add(eventId);
    else starting.delete(eventId);
  }

  /**
   * Clears the event's note as its job begins; false when a note on disk cannot be cleared (then
   * the job must not begin). A note that never reached the file (a read-only or full state folder)
   * needs no clearing: updates still run there, without the retake after a crash.
   */
  function clearStarting(eventId: string | undefined): boolean {
    if (eventId === undefined || !starting?.delete(eventId)) return true;
    if (!notedOnDisk.delete(eventId)) return true;
    return writeStarting();
  }

  /** writes the state file; false when it could not be written (counted and logged by jobWrites) */
  function persist(): boolean {
    if (o.stateFile === undefined) return true;
    // a job that still holds its machine (heldUntil) is kept however many ended after it: pruned,
    // its hold would be gone from activeFor now and from the file at the next start
    const finished = jobs.filter((j) => j.state !== 'running' && j.heldUntil === undefined);
    const drop = new Set(finished.slice(0, Math.max(0, finished.length - keepFinished)));
    for (let i = jobs.length - 1; i >= 0; i--) if (drop.has(jobs[i]!)) jobs.splice(i, 1);
    try {
      writePrivateFileSync(o.stateFile, JSON.stringify({ version: 1, jobs } satisfies StateFile, null, 1));
      jobWrites.succeeded();
      return true;
    } catch (err) {
      jobWrites.failed(err as Error);
      return false;
    }
  }

  function emit(job: FirmwareJob, phase: FirmwarePhase, extra: Partial<FirmwareEvent> = {}): FirmwareEvent {
    const event: FirmwareEvent = {
      machineId: job.machineId,
      type: 'command',
      command: 'UPDATE-FIRMWARE',
      ok: phase === 'accepted' || phase === 'progress' || phase === 'completed',
      phase,
      job: { id: job.id, kind: job.kind, image: job.image, state: job.state, acceptedAt: job.acceptedAt },
      // a BIOS image, or any update the BMC staged (a BMC image at UserIntervention too), applies at a reboot of the host
      rebootRequired: job.kind === 'bios' || job.progress?.state === STAGED_STATE,
      rebootedByMetalBmc: false,
      ...extra,
    };
    try {
      o.publish(event);
    } catch (err) {
      o.logger.warn({ err }, 'cannot publish a firmware job event');
    }
    return event;
  }

  function finish(job: FirmwareJob, state: Exclude<FirmwareJobState, 'running'>, startedAt: number, failure?: unknown): void {
    job.state = state;
    job.updatedAt = new Date().toISOString();
    if (failure !== undefined) {
      // without URL credentials and queries (a presigned image URL's signature, echoed by a BMC's task message or a download error): the error goes to the state file, the status and the log
      job.error = publicText(failure instanceof Error ? failure.message : String(failure));
      if (failure instanceof BmcError) job.code = failure.code;
    }
    persist();
    o.metrics?.firmwareJobs.inc({ outcome: job.outcomeUnknown && state === 'failed' ? 'outcome-unknown' : state });
    const fields = { machineId: job.machineId, job: job.id, kind: job.kind, bmc: job.bmc, state, durationMs: Date.now() - startedAt };
    if (state === 'completed' && job.progress?.state === STAGED_STATE) o.logger.info(fields, 'firmware update staged by the BMC; it applies at the next host reboot, which metal-bmc does not do');
    else if (state === 'completed') o.logger.info(fields, 'firmware update done; a BIOS image takes effect at the next host reboot, which metal-bmc does not do');
    else if (job.outcomeUnknown && job.heldUntil !== undefined) o.logger.error({ ...fields, code: job.code, err: job.error, heldUntil: job.heldUntil, ...(job.taskUri !== undefined ? { taskUri: job.taskUri } : {}), ...(job.progress ? { progress: lastProgressOf(job) } : {}) }, 'firmware update outcome unknown; its machine stays held while the BMC may still apply it');
    else if (job.outcomeUnknown) o.logger.error({ ...fields, code: job.code, err: job.error }, 'firmware update outcome unknown; the BMC answers again, so its machine is not held: check its firmware version before retrying');
    else o.logger.warn({ ...fields, code: job.code, err: job.error }, 'firmware update did not complete');
    emit(job, state, {
      durationMs: Date.now() - startedAt,
      ...(job.progress ? { progress: job.progress } : {}),
      ...(job.error !== undefined ? { error: job.error } : {}),
      ...(job.code !== undefined ? { code: job.code } : {}),
      ...(job.outcomeUnknown ? { outcomeUnknown: true as const } : {}),
      ...(job.heldUntil !== undefined ? { heldUntil: job.heldUntil } : {}),
    });
  }

  async function closeQuietly(bmc: Outband): Promise<void> {
    await endedWithin(bmc.close(), closeTimeoutMs);
  }

  /**
   * Connects to the BMC and runs the job's work on it; `connected` is told each connection (the
   * caller closes the last). A resumed job's BMC may be down (restarting into its new image): it is
   * asked again every `reconnectMs` until the job's deadline while it cannot be connected or its
   * Redfish service cannot be reached (with METAL_BMC_PROTOCOL=auto the connect does not fail then:
   * the facade falls back to IPMI, and the watch fails RedfishAwayError). An update sent now is not:
   * nothing was sent to a BMC that cannot be reached.
   */
  async function workOnBmc(job: FirmwareJob, run: JobRun, x: FirmwareOptions & { signal: AbortSignal }, onAnswer: () => void, what: string, connected: (bmc: Outband | undefined) => void): Promise<void> {
    if (!run.ipmi) throw new BmcError('INVALID_ARGUMENT', `${what}: the event has no BMC address`);
    const { signal } = x;
    for (let attempt = 1; ; attempt++) {
      // a failed connect, or a watch that found the Redfish service away; any other failure of the work is the job's end
      let away: unknown;
      let bmc: Outband | undefined;
      try {
        bmc = await o.connect(run.ipmi, { signal, onAnswer });
      } catch (err) {
        away = err;
      }
      if (bmc) {
        connected(bmc);
        if (signal.aborted) throw abortError(signal, what);
        try {
          await run.work(bmc, x);
          return;
        } catch (err) {
          if (!(err instanceof RedfishAwayError)) throw err;
          away = err;
        }
      }
      if (run.heardBefore === undefined || signal.aborted) throw away;
      // a refused login is not tried again every reconnectMs until the deadline: failed logins in
      // a row lock the account or block our address on many BMCs (iDRAC's IP blocking, iLO's and
      // XCC's lockout), and a BMC that does not take our credentials will not take them later
      // (a refusal of a BMC back from its restart that will be asked again, ReloginPendingError, is waited through)
      if (away instanceof BmcError && LOGIN_REFUSED_CODES.has(away.code) && !isTransient(away)) throw new ResumeRefusedError(away);
      if (attempt === 1) o.logger.warn({ err: away, machineId: job.machineId, job: job.id, bmc: job.bmc }, 'cannot reach the BMC of a resumed firmware update; trying again until its deadline');
      await sleep(reconnectMs, signal, what);
    }
  }

  /**
   * The job's end at its deadline when the BMC has not answered for `unreachableAfterMs`: outcome
   * unknown, for the BMC may be flashing (a BMC image takes it offline). Undefined when it answered
   * lately, or never since the update was sent now (then nothing reached it).
   */
  function silentAtDeadline(lastHeard: number | undefined): Error | undefined {
    if (lastHeard === undefined || Date.now() - lastHeard < unreachableAfterMs) return undefined;
    // not a BmcError code: the job's code is the result's, as a command's OUTCOME_UNKNOWN (runner.ts)
    return new Error(`outcome unknown: the BMC has not answered since ${new Date(lastHeard).toISOString()}; it may still be applying the update: check its firmware version before retrying`);
  }

  /**
   * The job's end at its deadline when the BMC answers but the update's task it named was last
   * seen running (a BIOS flash of 20 minutes and more on iDRAC or XCC): outcome unknown as for a
   * silent BMC, for a retry or a power cycle now would land in the flash. Undefined when no task is
   * known or its last progress was not a running task's (an upload: nothing applies the image yet).
   */
  function runningAtDeadline(job: FirmwareJob, task: FirmwareProgress | undefined, heldUntil: string, when: string): Error | undefined {
    if (!followsUpdate(job) || task === undefined || !updateStillRuns(job, task)) return undefined;
    const at = task.percent !== undefined ? `${task.percent}%` : 'an unknown percentage';
    const which = job.taskUri !== undefined ? `the BMC's task ${job.taskUri}` : "iLO's flash (its UpdateService's Oem.Hpe.State)";
    const state = job.taskUri !== undefined ? `TaskState ${task.state}` : `State ${task.state}`;
    return new Error(`outcome unknown: ${which} was still running at ${at} (${state}) ${when}; the machine stays held until the task ends, at most until ${heldUntil}: check its firmware version before retrying`);
  }

  /**
   * Holds the machine of a job that ended outcome unknown until `job.heldUntil`, or until what the
   * job left to watch ends first: its task (completed or failed: the BMC's flash is over), or a BMC
   * image's new version. A BMC that cannot be reached or read is no end: held to `heldUntil`. After
   * a restart (`bmc` undefined) the BMC is connected again to watch it. At `heldUntil` a job with a
   * task is looked at once more: still running, `heldUntil` moves on by the hold (extendHold, up to
   * `taskHoldLimitMs` after the job's acceptance), for a flash longer than deadline and hold
   * together must not be power cycled either (a `held` result). Returns how the hold ended: the
   * update's end (the machine freed early), or released without it (at heldUntil, the task hung).
   * The BMC is asked at the job's pace for `holdJobPaceMs` after the hold began, then every `holdPollMs`.
   */
  async function holdAfterUnknown(job: FirmwareJob, bmc: Outband | undefined, stopper: AbortController, mayConnect = true): Promise<HoldEnd> {
    let connected: Outband | undefined;
    try {
      for (;;) {
        const hold = deadline(Math.max(1, Date.parse(job.heldUntil!) - Date.now()), `hold of firmware job ${job.id}`, stopper.signal);
        let on: Outband | undefined;
        try {
          if (watchable(job) && (bmc !== undefined || mayConnect)) {
            on = bmc ?? connected ?? (connected = await connectForHold(job, hold.signal));
            const end = on === undefined ? undefined : await watchHeld(job, on, hold.signal);
            if (end !== undefined) return end;
          }
          await new Promise<void>((resolve) => (hold.signal.aborted ? resolve() : hold.signal.addEventListener('abort', () => resolve(), { once: true })));
        } finally {
          hold.dispose();
        }
        if (stopper.signal.aborted || !followsUpdate(job)) return HOLD_ENDED;
        // a BMC that could not be connected at the hold's start (still restarting into its image)
        // is asked once more for the look: one login per hold
        if (on === undefined && bmc === undefined && mayConnect) on = connected = await connectForHold(job, stopper.signal);
        if (on === undefined) return HOLD_ENDED;
        // the hold's end: one fresh look at the task; still running, the machine stays held
        const look = await lookAtTask(job, on, stopper.signal);
        if (look.end !== undefined) return look.end;
        if (look.running === undefined) return HOLD_ENDED;
        if (!extendHold(job, look.running)) return { how: 'task-hung', running: look.running };
      }
    } finally {
      if (connected) await closeQuietly(connected);
    }
  }

  /**
   * The task of a held job as the BMC tells it now (a new watch, within TASK_LOOK_MS): `running`
   * when its first answer says it still runs, `end` when it ended meanwhile, neither when the BMC
   * could not be read (the hold ends as it would have).
   */
  async function lookAtTask(job: FirmwareJob, bmc: Outband, stop: AbortSignal): Promise<{ running?: FirmwareProgress; end?: UpdateEnd }> {
    const looked = new AbortController();
    // no longer than a hold: a short one (tests, an operator's) is not outlasted by its look
    const dl = deadline(Math.min(TASK_LOOK_MS, holdMs), `look at the task of firmware job ${job.id}`, AbortSignal.any([stop, looked.signal]));
    let running: FirmwareProgress | undefined;
    try {
      // running is all this look needs to know; an end is watched to its result
      const end = await watchDuringHold(job, bmc, dl.signal, (p) => {
        if (!updateStillRuns(job, p)) return;
        running = p;
        looked.abort();
      });
      return end !== undefined ? { end } : running !== undefined ? { running } : {};
    } finally {
      dl.dispose();
    }
  }

  /**
   * Holds a job's machine for another `holdMs` while its task still runs, up to `taskHoldLimitMs`
   * after the job was accepted; false (one error line) past it: a task that runs that long is
   * taken as hung, and an operator is left to decide.
   */
  function extendHold(job: FirmwareJob, running: FirmwareProgress): boolean {
    const limit = Date.parse(job.acceptedAt) + taskHoldLimitMs;
    const fields = { machineId: job.machineId, job: job.id, kind: job.kind, bmc: job.bmc, taskUri: job.taskUri, progress: describeProgress(running) };
    if (!(Date.now() < limit)) {
      o.logger.error({ ...fields, acceptedAt: job.acceptedAt }, `firmware task still runs ${Math.round(taskHoldLimitMs / 60_000)} minutes after the update was accepted; taken as hung, its machine is no longer held: check the BMC before a power command`);
      return false;
    }
    job.heldUntil = new Date(Math.min(limit, Date.now() + holdMs)).toISOString();
    // persisted before it is told: a restart holds again to this heldUntil and does not tell it twice
    persist();
    // the other instances hold the machine to the new end too, were this one to go now (claimHoldMs)
    claimOf.get(job)?.rewrite?.();
    o.logger.warn({ ...fields, heldUntil: job.heldUntil }, 'firmware task still runs at the end of its machine\'s hold; held longer');
    emit(job, 'held', {
      code: OUTCOME_UNKNOWN,
      // the BMC's task message may quote the image URL: without its credentials and query, as every job error
      error: publicText(`outcome still unknown: the BMC's update still runs (${describeProgress(running)}); the machine stays held until ${job.heldUntil}: check its firmware version before retrying`),
      outcomeUnknown: true,
      heldUntil: job.heldUntil,
      progress: jobProgress(running),
    });
    return true;
  }

  /** The BMC of a job held again after a restart; undefined (logged) when it cannot be connected: then held without watching. */
  async function connectForHold(job: FirmwareJob, signal: AbortSignal): Promise<Outband | undefined> {
    const ipmi = ipmiOf(job);
    if (ipmi === undefined) return undefined;
    try {
      return await o.connect(ipmi, { signal });
    } catch (err) {
      if (!signal.aborted) o.logger.warn({ err, machineId: job.machineId, job: job.id, bmc: job.bmc, heldUntil: job.heldUntil }, 'cannot connect to the BMC of a firmware job held after an outcome unknown; held until heldUntil without watching its update');
      return undefined;
    }
  }

  /**
   * Follows what the job left to watch (its task, a BMC image's version) during its hold: how it
   * ended when the watch ends (resolved: completed or staged, or a BMC image's new version; the
   * task's own failure: failed); undefined when the BMC could not be reached or read, or the hold ended.
   * `onProgress` sees each progress too (the look at a hold's end stops at a running one).
   */
  async function watchDuringHold(job: FirmwareJob, bmc: Outband, signal: AbortSignal, onProgress?: (p: FirmwareProgress) => void, pollMs?: number): Promise<UpdateEnd | undefined> {
    let last: FirmwareProgress | undefined;
    try {
      await bmc.watchFirmware(job.kind, watchOf(job), {
        signal,
        onProgress: (p) => {
          last = p;
          onProgress?.(p);
        },
        ...(pollMs !== undefined ? { pollMs } : {}),
        // what the watch learns (iLO seen flashing: hpeFlashStarted) is kept for the next watch of the hold and a restart
        onWatch: (learned) => {
          Object.assign(job, learned);
          persist();
        },
      });
      return { how: 'completed', detail: last === undefined ? 'no progress told' : describeProgress(last), ...(last !== undefined ? { last } : {}) };
    } catch (err) {
      if (err instanceof TaskFailedError && !signal.aborted) return { how: 'failed', detail: err.message, code: err.code };
      return undefined;
    }
  }

  /**
   * watchDuringHold for a hold: at the job's own pace until `holdJobPaceMs` after the hold began
   * (the job's updatedAt: its outcome-unknown end, kept over a restart), then a new watch every
   * `holdPollMs`. A BMC that cannot be read in the first stretch is not asked again (held to the end).
   */
  async function watchHeld(job: FirmwareJob, bmc: Outband, signal: AbortSignal): Promise<UpdateEnd | undefined> {
    const jobPaceMs = Date.parse(job.updatedAt) + holdJobPaceMs - Date.now();
    if (jobPaceMs > 0) {
      const first = deadline(jobPaceMs, `firmware job ${job.id}'s hold at the job's pace`, signal);
      try {
        const end = await watchDuringHold(job, bmc, first.signal);
        // ended, the hold over, or the BMC unreadable: as a single watch would
        if (end !== undefined || signal.aborted || !first.signal.aborted) return end;
      } finally {
        first.dispose();
      }
    }
    return watchDuringHold(job, bmc, signal, undefined, holdPollMs);
  }

  async function runJob(entry: ActiveJob, run: JobRun, step: StepHold | undefined): Promise<void> {
    const { job, abort: stopper } = entry;
    const started = Date.parse(job.acceptedAt);
    const what = `UPDATE-FIRMWARE ${job.kind} for machine ${job.machineId || job.key}`;
    const dl = deadline(run.deadlineMs, what, stopper.signal);
    let bmc: Outband | undefined;
    let state: Exclude<FirmwareJobState, 'running'> = 'failed';
    let failure: unknown;
    let lastHeard = run.heardBefore;
    const onAnswer = () => void (lastHeard = Date.now());
    // the last progress told once the BMC named the update's task: its task's state (an upload's
    // or a staged push's verify progress comes before the task is named, so it is never taken for it)
    let taskProgress: FirmwareProgress | undefined;
    try {
      const onProgress = (p: FirmwareProgress) => {
        // every progress the facade tells comes from the BMC (a task's answer, a version read, an
        // upload's bytes taken by its socket): a long push upload is not "the BMC silent"
        onAnswer();
        if (followsUpdate(job)) taskProgress = p;
        job.progress = jobProgress(p);
        job.updatedAt = new Date().toISOString();
        persist();
        emit(job, 'progress', { progress: job.progress });
      };
      // kept to watch the update again after a restart (recover)
      const onWatch = (learned: FirmwareWatch) => {
        if ((learned.taskUri !== undefined && learned.taskUri !== job.taskUri) || (learned.hpeFlash === true && job.hpeFlash !== true)) taskProgress = undefined;
        Object.assign(job, learned);
        persist();
      };
      if (run.after) {
        o.logger.info({ machineId: job.machineId, job: job.id, kind: job.kind, bmc: job.bmc }, 'firmware update waits for the power command running on its machine to end');
        // within the job's deadline; a stop meanwhile ends it with nothing sent
        await raceAbort(run.after, dl.signal);
        if (stopping) throw new BmcError('ABORTED', 'metal-bmc is shutting down');
      }
      if (run.elsewhere) {
        const onWait = (step: { command: string; instance: string }) => o.logger.info({ machineId: job.machineId, job: job.id, kind: job.kind, bmc: job.bmc, command: step.command, instance: step.instance }, 'firmware update waits for the power command another instance runs on its machine to end');
        await raceAbort(run.elsewhere(onWait), dl.signal);
        if (stopping) throw new BmcError('ABORTED', 'metal-bmc is shutting down');
      }
      if (job.notSent) {
        delete job.notSent;
        // a state file still saying "nothing sent" would let a crash after this tell the orchestrator to send it again mid-flash
        if (!persist()) {
          job.notSent = true;
          throw new BmcError('UNAVAILABLE', 'the firmware state file cannot be written, so a crash during the update could not be told from one before it');
        }
        // the other instances hold the machine for the BMC's flash from now on, were this one to
        // go: written before the BMC is sent anything (a host lost in between would otherwise leave
        // them the lease alone), waited for CLAIM_REWRITE_MS at most (NATS slow or away: the claim
        // could not be renewed either, and the update does not wait on it)
        const rewritten = claimOf.get(job)?.rewrite?.();
        if (rewritten) await endedWithin(rewritten, CLAIM_REWRITE_MS);
        // a stop or the deadline while it waited: nothing was sent, and the file says so again
        if (stopping || dl.signal.aborted) {
          job.notSent = true;
          persist();
          // ended as a stop ends a job that had not begun: interrupted, nothing sent
          if (stopping) stopper.abort(new BmcError('ABORTED', 'metal-bmc is shutting down'));
          throw new BmcError('ABORTED', stopping ? 'metal-bmc is shutting down' : 'the job\'s deadline passed before it began');
        }
      }
      await workOnBmc(job, run, { signal: dl.signal, onProgress, onWatch }, onAnswer, what, (connected) => {
        // the connection of an attempt that found the BMC away is closed before the next one
        if (bmc) void closeQuietly(bmc);
        bmc = connected;
      });
      state = 'completed';
    } catch (err) {
      const stopped = stopper.signal.aborted;
      state = stopped ? 'interrupted' : 'failed';
      failure = dl.signal.aborted ? abortError(dl.signal, what) : err;
      if (job.notSent) failure = notSentError(failure);
      const heldUntil = new Date(Date.now() + holdMs).toISOString();
      // a poll that gave up on its own (TIMEOUT before the job's deadline) while the task still runs is the same case
      const pollGaveUp = !stopped && !dl.signal.aborted && failure instanceof BmcError && failure.code === 'TIMEOUT';
      const unknown =
        job.notSent
          ? undefined
          : !stopped && dl.signal.aborted
          ? (silentAtDeadline(lastHeard) ?? runningAtDeadline(job, taskProgress, heldUntil, 'at the deadline'))
          : pollGaveUp
            ? runningAtDeadline(job, taskProgress, heldUntil, 'when its watch timed out before the deadline')
            : !stopped && err instanceof ResumeRefusedError
              ? err
              : stopped && stopping && !watchable(job)
                ? // the next start cannot watch it (no task named yet) while the BMC may have taken it: held, its claim kept
                  new Error(`outcome unknown: metal-bmc stopped while this update ran (last progress: ${lastProgressOf(job)}), before the BMC named a task to follow; the machine stays held until ${heldUntil}: check its firmware version before retrying`)
                : undefined;
      if (unknown) {
        failure = unknown;
        job.code = OUTCOME_UNKNOWN;
        job.outcomeUnknown = true;
        job.heldUntil = heldUntil;
        // the other instances hold the machine to heldUntil from now, not from the claim's last renewal
        claimOf.get(job)?.rewrite?.();
      } else if (!stopped && failure instanceof BmcError && failure.code === OUTCOME_UNKNOWN) {
        // the facade could not tell the outcome though the BMC answered (it came back from its
        // restart with another TLS certificate: CertificateChangedError): said as unknown, but the
        // machine is not held, for the BMC runs again, its flash over
        job.outcomeUnknown = true;
      }
    } finally {
      dl.dispose();
    }
    if (state === 'interrupted' && stopping && watchable(job)) {
      // a shutdown (a restart, a deploy) in the middle of an update the next start can watch again:
      // left running in the state file with its claim (not deleted: taken back by this instance's
      // next start, stale for the others after its hold, claimHoldMs), and nothing terminal told
      if (step) await endedWithin(step.done(), CLAIM_RELEASE_MS);
      // kept in `active` (holding, not running) until the process ends: a power plan the runner's
      // drain still reaches must find the machine held, and this process's own claim is not in
      // its view of the claims
      entry.holding = true;
      o.metrics?.firmwareJobsRunning.set(active.size);
      o.logger.warn({ machineId: job.machineId, job: job.id, kind: job.kind, bmc: job.bmc, taskUri: job.taskUri }, 'metal-bmc stops while a firmware update runs; its next start takes the job up again');
      if (bmc) await closeQuietly(bmc);
      return;
    }
    if (job.outcomeUnknown && job.heldUntil !== undefined) {
      // told now, held after: a retry or a power step finds the machine held until the BMC may be done
      if (step) await endedWithin(step.done(), CLAIM_RELEASE_MS);
      entry.holding = true;
      finish(job, state, started, failure);
      // a BMC that refused the resumed job's login is not asked again: held without watching
      const end = await holdAfterUnknown(job, bmc, stopper, !(failure instanceof ResumeRefusedError));
      // the claim it holds now: one taken back late (claimLater) too
      await releaseHoldClaim(claimOf.get(job));
      release(job, end);
      if (bmc) await closeQuietly(bmc);
      return;
    }
    // the machine is free before its outcome is told: the next update an orchestrator sends on
    // "completed" is not refused for this one (the BMC's session is closed after, off that path)
    // within a few seconds: with NATS slow the outcome would wait for it (a claim not deleted turns stale after its lease)
    const held = claimOf.get(job);
    if (held) await endedWithin(held.release(), CLAIM_RELEASE_MS);
    // whatever its outcome, the event's update ran: no delivery of it starts another
    if (step) await endedWithin(step.done(), CLAIM_RELEASE_MS);
    active.delete(job.key);
    o.metrics?.firmwareJobsRunning.set(active.size);
    finish(job, state, started, failure);
    if (bmc) await closeQuietly(bmc);
  }

  /**
   * A hold's claim at the hold's end. Not at a stop, which ends a hold at once while the BMC may
   * still be flashing: the claim is what keeps other instances' power commands and updates off
   * the machine (bus/firmware-claim-view.ts), so it stays until taken back by the next start or
   * stale after the hold's remaining time (claimHoldMs: a restart longer than the lease does not
   * free the machine for the others while the BMC may still flash).
   */
  async function releaseHoldClaim(claim: JobClaim | undefined): Promise<void> {
    if (claim && !stopping) await endedWithin(claim.release(), CLAIM_RELEASE_MS);
  }

  /** the claim across instances each job holds (taken at its start, taken back after a restart, or late: claimLater): rewritten when its hold changes, released at its end */
  const claimOf = new WeakMap<FirmwareJob, JobClaim>();

  /** What a job's claim names: the job, its machine and BMC, and how long it holds the machine were this instance gone. */
  function claimSubject(job: FirmwareJob, bmc: string): Parameters<JobClaims['claim']>[0] {
    return { jobId: job.id, kind: job.kind, machineKey: job.key, bmc, since: job.acceptedAt, holdMs: () => claimHoldMs(job) };
  }

  /**
   * How long the other instances keep the job's machine held after its claim's last write, were
   * this instance to stop renewing it (its host lost, a restart longer than the claim's lease): the
   * hold this instance keeps itself where it loses sight of an update, since the BMC may still be
   * flashing. None while nothing was sent (a job waiting for a power command); a hold's remaining
   * time once held (bus/firmware-claims.ts claimLeaseMs bounds it).
   */
  function claimHoldMs(job: FirmwareJob): number {
    if (job.notSent) return 0;
    if (job.heldUntil !== undefined) {
      const left = Date.parse(job.heldUntil) - Date.now();
      // at the hold's end a look at the update's task may extend it (extendHold): until that look
      // has answered, the others keep a whole hold, were this instance lost in the middle of it
      return left > 0 ? left : followsUpdate(job) ? holdMs : 0;
    }
    return holdMs;
  }

  /** The machine of a job held after an outcome unknown is free again: at `heldUntil`, or early at the update's end. */
  function release(job: FirmwareJob, end: HoldEnd): void {
    // a stop ends a hold at once while the BMC may still flash: the entry stays until the process
    // ends, so that a power plan the runner's drain still reaches finds the machine held (this
    // process's own claim is not in its view of the claims)
    if (!stopping && active.get(job.key)?.job === job) active.delete(job.key);
    o.metrics?.firmwareJobsRunning.set(active.size);
    // a stop keeps heldUntil: the next start holds the machine again for the rest of it
    if (stopping || job.heldUntil === undefined) return;
    delete job.heldUntil;
    persist();
    tellHoldEnd(job, end);
  }

  /**
   * Logs and publishes how a hold ended (`settled` or `released`), once: the caller deleted
   * `heldUntil` and persisted it first, so a restart neither holds the machine again nor tells the
   * end twice (a crash in between loses the result rather than repeating it).
   */
  function tellHoldEnd(job: FirmwareJob, end: HoldEnd): void {
    o.metrics?.firmwareHoldsEnded?.inc({ end: end.how });
    const fields = { machineId: job.machineId, job: job.id, kind: job.kind, bmc: job.bmc };
    if (!isUpdateEnd(end)) {
      o.logger.info({ ...fields, ended: end.how }, 'machine held after a firmware update of unknown outcome is free again');
      emit(job, 'released', { code: OUTCOME_UNKNOWN, error: publicText(RELEASED_TEXT[end.how](end, Math.round(taskHoldLimitMs / 60_000))), outcomeUnknown: true, releasedAs: end.how, ...(end.running ? { progress: jobProgress(end.running) } : {}) });
      return;
    }
    // the BMC's own text (a task message) without URL credentials or queries, as a job's error
    const detail = publicText(end.detail);
    o.logger.info({ ...fields, ended: end.how, detail, taskUri: job.taskUri }, `machine held after a firmware update of unknown outcome is free again: the BMC's update ended ${end.how}`);
    const progress = end.last ? jobProgress(end.last) : undefined;
    emit(job, 'settled', {
      ok: end.how === 'completed',
      settledAs: end.how,
      detail,
      // a BIOS image, or an update the BMC staged, applies at the host's next reboot
      rebootRequired: job.kind === 'bios' || progress?.state === STAGED_STATE,
      ...(progress ? { progress } : {}),
      ...(end.how === 'failed' ? { code: end.code ?? 'PROTOCOL', error: `the BMC's update failed after its outcome was unknown: ${detail}; the machine is free again` } : {}),
    });
  }

  function refuse(plan: Plan, code: string, error: string, kind: FirmwareKind, image: string): StartOutcome {
    o.metrics?.firmwareJobs.inc({ outcome: 'refused' });
    o.logger.warn({ machineId: plan.machineId, bmc: plan.ipmi?.address, code, kind }, `UPDATE-FIRMWARE refused: ${error}`);
    const event: FirmwareEvent = { machineId: plan.machineId, type: 'command', command: 'UPDATE-FIRMWARE', ok: false, phase: 'refused', code, error, rebootRequired: kind === 'bios', rebootedByMetalBmc: false };
    try {
      o.publish({ ...event, job: { id: '', kind, image, state: 'failed', acceptedAt: new Date().toISOString() } });
    } catch (err) {
      o.logger.warn({ err }, 'cannot publish a firmware job event');
    }
    return { accepted: false, event };
  }

  /** Not started now, nothing published: the event goes back to the stream (`why` in one warning and the result). */
  function handBack(plan: Plan, why: string, kind: FirmwareKind, image: string): StartOutcome {
    // the stream would not deliver it again: said and published as a refusal, not lost in silence
    if (plan.lastDelivery) return refuse(plan, 'UNAVAILABLE', `${why}; this was its last allowed delivery, so it does not come again`, kind, image);
    o.logger.warn({ machineId: plan.machineId, bmc: plan.ipmi?.address, eventId: plan.eventId, why }, 'UPDATE-FIRMWARE not started; the event goes back to the stream');
    const event: FirmwareEvent = { machineId: plan.machineId, type: 'command', command: 'UPDATE-FIRMWARE', ok: false, phase: 'refused', code: 'UNAVAILABLE', error: why, rebootRequired: false, rebootedByMetalBmc: false };
    return { accepted: false, event, handBack: true };
  }

  /**
   * The event's update step claimed in the event journal: its hold, or the outcome when it may not
   * start (an earlier delivery started it: refused; the journal cannot be used: handed back).
   */
  async function journalStep(plan: Plan, action: FirmwareAction, image: string, alone: boolean): Promise<{ hold?: StepHold } | { outcome: StartOutcome }> {
    if (!o.journal || plan.eventId === undefined) return {};
    // an earlier run of this instance held the step and ended before the job began: nothing was sent
    const leftUnbegun = leftUnbegunEarlier(plan.eventId);
    const provablyUnsent = (seen: { instance: string }) => alone && leftUnbegun && o.instanceId !== undefined && seen.instance === o.instanceId;
    let claimed;
    try {
      claimed = await o.journal.claim(plan.eventId, plan.actions.indexOf(action), provablyUnsent);
    } catch (err) {
      return { outcome: handBack(plan, `the event journal cannot be used: ${(err as Error).message}`, action.firmware, image) };
    }
    if ('go' in claimed) {
      // noted only once held: a delivery that did not win the step leaves no note a later run could misread
      noteHolding(plan.eventId);
      return { hold: claimed.go };
    }
    return { outcome: refuse(plan, 'DUPLICATE', `this event's update was started by an earlier delivery of it (${describeRecord(claimed.seen)}); no second job`, action.firmware, image) };
  }

  /** the job of machine `key`, else of the BMC `bmcKey` (host:port) */
  function activeOn(key: string, bmcKey: string): ActiveJob | undefined {
    return active.get(key) ?? (bmcKey === '' ? undefined : [...active.values()].find((a) => a.bmcKey === bmcKey));
  }

  /** Starts the job, or refuses it (one per machine and BMC, here and across instances, `maxRunning`). */
  async function startJob(plan: Plan, action: FirmwareAction, image: string, step: StepHold | undefined): Promise<StartOutcome> {
    // one update per machine, and per BMC: an event naming only the BMC's address has another key than one naming the machine
    const bmc = plan.ipmi?.address ?? '';
    const bmcKey = bmcKeyOf(plan);
    const holder = () => activeOn(plan.key, bmcKey);
    // a job of this machine or BMC being claimed: its outcome decides (a refused one is no reason to refuse this)
    for (let pending = holder()?.claiming; pending !== undefined; pending = holder()?.claiming) await pending;
    const busy = holder();
    if (busy) return refuse(plan, 'BUSY', `a firmware update (job ${busy.job.id}, ${busy.job.kind}) is still running for this ${busy.job.key === plan.key ? 'machine' : `machine's BMC ${bmc}`}`, action.firmware, image);
    if (active.size >= maxRunning) return refuse(plan, 'BUSY', `${maxRunning} firmware updates are running; try again later`, action.firmware, image);
    const now = new Date().toISOString();
    const job: FirmwareJob = {
      id: `${Date.now().toString(36)}-${(++seq).toString(36)}`,
      machineId: plan.machineId,
      key: plan.key,
      kind: action.firmware,
      bmc,
      image,
      state: 'running',
      acceptedAt: now,
      updatedAt: now,
      // until runJob begins to send: its claim's first write tells the other instances no hold (claimHoldMs)
      notSent: true,
    };
    const stopper = new AbortController();
    const entry: ActiveJob = { job, bmcKey, abort: stopper, done: Promise.resolve() };
    let claim: JobClaim | undefined;
    if (o.claims) {
      // held here while the claim across instances is asked for: a second event for the machine meanwhile waits for it above
      const asked = o.claims.claim(claimSubject(job, bmcKey));
      entry.claiming = asked.catch(() => undefined);
      active.set(plan.key, entry);
      let outcome: Awaited<typeof asked>;
      try {
        outcome = await asked;
      } catch (err) {
        active.delete(plan.key);
        return refuse(plan, err instanceof BmcError ? err.code : 'UNAVAILABLE', (err as Error).message, action.firmware, image);
      } finally {
        delete entry.claiming;
      }
      if ('busy' in outcome) {
        active.delete(plan.key);
        return refuse(plan, 'BUSY', `a firmware update is still running for this machine or its BMC ${bmc} on another instance: ${outcome.busy}`, action.firmware, image);
      }
      claim = outcome.held;
      claimOf.set(job, claim);
      if (stopping) {
        // metal-bmc began to stop while the claim was asked for: no update starts now; the event goes back
        await claim.release();
        active.delete(plan.key);
        return { accepted: false, event: closedEvent(plan) };
      }
    }
    // the job begins (the BMC is asked from here on): its step is no longer provably unsent, and a
    // note left behind would let a later run start a second update after a crash mid-job
    if (!clearStarting(plan.eventId)) {
      await claim?.release();
      active.delete(plan.key);
      return handBack(plan, 'the firmware starting file cannot be written, so a crash could not be told from an update that never began', action.firmware, image);
    }
    // a power command running on the machine now (sent before this event) ends first: a flash must
    // not begin in the middle of a reset; power commands coming from here on are held by this job
    const powerRunning = o.powerSettled?.(plan.key, bmcKey);
    active.set(plan.key, entry);
    jobs.push(job);
    persist();
    o.metrics?.firmwareJobsRunning.set(active.size);
    o.logger.info({ machineId: job.machineId, job: job.id, kind: job.kind, bmc: job.bmc, image, timeoutMs: o.timeoutMs }, 'firmware update accepted; running in the background');
    emit(job, 'accepted');
    const work = (bmc: Outband, x: FirmwareOptions) => bmc.updateFirmware(job.kind, action.url, { ...x, ...(o.imageDispatcher ? { dispatcher: o.imageDispatcher } : {}) });
    const elsewhere = o.powerElsewhere;
    entry.done = runJob(entry, { ipmi: plan.ipmi, work, deadlineMs: o.timeoutMs, ...(powerRunning ? { after: powerRunning } : {}), ...(elsewhere ? { elsewhere: (onWait: (step: PowerStepElsewhere) => void) => elsewhere(plan.key, bmcKey, onWait) } : {}) }, step);
    return { accepted: true, job };
  }

  /**
   * A job a restart cut off and that cannot be watched again: ended interrupted (the caller
   * persists and publishes), its outcome unknown unless nothing had been sent to the BMC yet.
   */
  function interrupt(job: FirmwareJob, error: string): FirmwareJob {
    job.state = 'interrupted';
    job.updatedAt = new Date().toISOString();
    job.code = 'INTERRUPTED';
    if (job.notSent) delete job.outcomeUnknown;
    else job.outcomeUnknown = true;
    job.error = error;
    o.metrics?.firmwareJobs.inc({ outcome: 'interrupted' });
    o.logger.warn({ machineId: job.machineId, job: job.id, kind: job.kind, bmc: job.bmc, acceptedAt: job.acceptedAt }, 'firmware update interrupted by a restart');
    return job;
  }

  /**
   * Puts a job a restart cut off back among the active ones at once (power steps held from here),
   * takes its claim back (another instance holding it: left to that one, ended interrupted), and
   * watches it to its end within what is left of its deadline.
   */
  function resume(job: FirmwareJob, leftMs: number): void {
    const ipmi = ipmiOf(job)!;
    const entry: ActiveJob = { job, bmcKey: bmcKeyOf({ ipmi }), abort: new AbortController(), done: Promise.resolve() };
    active.set(job.key, entry);
    o.metrics?.firmwareJobsRunning.set(active.size);
    o.logger.info({ machineId: job.machineId, job: job.id, kind: job.kind, bmc: job.bmc, acceptedAt: job.acceptedAt, taskUri: job.taskUri, leftMs }, 'firmware update cut off by a restart resumed; watching it to its end');
    const watch = watchOf(job);
    const run: JobRun = { ipmi, work: (bmc, x) => bmc.watchFirmware(job.kind, watch, x), deadlineMs: leftMs, heardBefore: Date.parse(job.updatedAt) };
    emit(job, 'progress', { resumed: true, ...(job.progress ? { progress: job.progress } : {}) });
    entry.done = (async () => {
      if ((await claimAgain(entry)) === 'busy') return;
      await runJob(entry, run, undefined);
    })();
  }

  /**
   * Until when the machine of an update a crash cut off, which cannot be watched again, stays held:
   * the hold after an outcome unknown from now, but no longer than the hold that would have
   * followed its deadline (the job sends nothing after it). Undefined when that is over already.
   */
  function crashHoldEnd(job: FirmwareJob, now: number): string | undefined {
    const until = Math.min(now + holdMs, Date.parse(job.acceptedAt) + o.timeoutMs + holdMs);
    return until > now ? new Date(until).toISOString() : undefined;
  }

  /**
   * A job held after an outcome unknown when metal-bmc stopped: held again until its `heldUntil`
   * (its claim taken back). Returns how the hold ended when it ended while metal-bmc was down and
   * needs no look (its `heldUntil` deleted; the caller persists, then tells it).
   */
  function holdAgain(job: FirmwareJob): HoldEnd | undefined {
    const ipmi = ipmiOf(job);
    // a hold that ended while metal-bmc was down, of an update the BMC runs where it can be asked
    // (its task, iLO's state): held for a look first, as at the end of a hold it lived through
    const ended = !(Date.parse(job.heldUntil!) > Date.now());
    const lookFirst = ended && followsUpdate(job) && Date.now() < Date.parse(job.acceptedAt) + taskHoldLimitMs;
    if ((ended && !lookFirst) || active.has(job.key)) {
      delete job.heldUntil;
      return active.has(job.key) ? { how: 'superseded', by: `job ${active.get(job.key)!.job.id}` } : HOLD_ENDED;
    }
    if (lookFirst) job.heldUntil = new Date(Date.now() + 1).toISOString();
    const entry: ActiveJob = { job, bmcKey: bmcKeyOf({ ipmi }), abort: new AbortController(), done: Promise.resolve(), holding: true };
    active.set(job.key, entry);
    entry.done = (async () => {
      if ((await claimAgain(entry)) === 'busy') return;
      const end = await holdAfterUnknown(job, undefined, entry.abort);
      await releaseHoldClaim(claimOf.get(job));
      release(job, end);
    })();
    return undefined;
  }

  /**
   * Takes back the claim across instances of a job taken up again after a restart
   * (firmware-claims.ts takes back this instance's own) into `claimOf`; without claims, or when
   * they cannot be checked, the job is watched anyway (it sends nothing new; asked for again,
   * claimLater). 'busy' when another instance holds the machine or BMC: left to it, the job ended
   * interrupted here.
   */
  async function claimAgain(entry: ActiveJob): Promise<'busy' | undefined> {
    if (!o.claims) return undefined;
    const { job } = entry;
    const asked = o.claims.claim(claimSubject(job, entry.bmcKey));
    entry.claiming = asked.catch(() => undefined);
    try {
      const outcome = await asked;
      if ('held' in outcome) {
        claimOf.set(job, outcome.held);
        return undefined;
      }
      active.delete(job.key);
      o.metrics?.firmwareJobsRunning.set(active.size);
      if (job.state === 'running') {
        interrupt(job, `metal-bmc stopped while this update ran (last progress: ${lastProgressOf(job)}); another instance holds its machine or BMC now (${outcome.busy}), so it is left to that one and its outcome is unknown here: check the firmware version before retrying`);
        persist();
        emit(job, 'interrupted', { error: job.error!, code: job.code!, outcomeUnknown: true, ...(job.progress ? { progress: job.progress } : {}) });
      } else if (job.heldUntil !== undefined && !stopping) {
        delete job.heldUntil;
        persist();
        tellHoldEnd(job, { how: 'superseded', by: outcome.busy });
      }
      return 'busy';
    } catch (err) {
      o.logger.warn({ err, machineId: job.machineId, job: job.id, retryMs: claimRetryMs }, 'cannot take back the firmware claim of a job resumed after a restart; held on this instance only, and asked for again');
      claimLater(entry);
      return undefined;
    } finally {
      delete entry.claiming;
    }
  }

  /**
   * The claim of a job taken up again, asked for again every `claimRetryMs` while it cannot be
   * checked (NATS away at the start): without it the other instances hold the machine only until
   * the last claim's hold runs out, while this instance still watches the update. Kept in
   * `claimOf`, so the job's end releases it and a hold's change rewrites it; one taken when the
   * job ended meanwhile is released at once.
   */
  function claimLater(entry: ActiveJob): void {
    const { job } = entry;
    const timer = setTimeout(() => {
      claimRetries.delete(timer);
      if (stopping || active.get(job.key) !== entry) return;
      const asked = o.claims!.claim(claimSubject(job, entry.bmcKey)).then(
        async (outcome) => {
          const fields = { machineId: job.machineId, job: job.id, bmc: job.bmc };
          if ('busy' in outcome) {
            o.logger.error({ ...fields, heldBy: outcome.busy }, 'the firmware claim of a job resumed after a restart was taken by another instance while it could not be asked for; the update is still watched here');
            return;
          }
          // the job over meanwhile (ended, its hold too), at a stop as well: nothing for the claim to hold
          if (active.get(job.key) !== entry || (job.state !== 'running' && job.heldUntil === undefined)) {
            await endedWithin(outcome.held.release(), CLAIM_RELEASE_MS);
            return;
          }
          claimOf.set(job, outcome.held);
          o.logger.info(fields, 'firmware claim of a job resumed after a restart taken back');
        },
        () => {
          if (!stopping) claimLater(entry);
        },
      );
      // a stop waits for it: one taken after the stop would be left to renew or release by nobody
      lateClaims.add(asked);
      void asked.finally(() => lateClaims.delete(asked));
    }, claimRetryMs);
    timer.unref();
    claimRetries.add(timer);
  }

  return {
    recover() {
      if (o.stateFile === undefined) return [];
      readStarting();
      let text: string;
      try {
        text = readFileSync(o.stateFile, 'utf8');
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') o.logger.error({ err, file: o.stateFile }, 'cannot read the firmware job state file');
        return [];
      }
      let found: FirmwareJob[];
      try {
        found = parseStateFile(text);
      } catch (err) {
        const aside = `${o.stateFile}.unreadable-${Date.now()}`;
        try {
          renameSync(o.stateFile, aside);
        } catch {
          /* left where it is; it is overwritten by the next job */
        }
        o.logger.error({ err, file: o.stateFile, keptAs: aside }, 'firmware job state file is not readable; kept aside, starting without it');
        return [];
      }
      jobs.push(...found);
      const now = Date.now();
      const interrupted: FirmwareJob[] = [];
      /** holds that ended while metal-bmc was down, told once the file says so */
      const holdsEnded: Array<[FirmwareJob, HoldEnd]> = [];
      for (const job of found) {
        if (job.state === 'running') {
          const leftMs = Date.parse(job.acceptedAt) + o.timeoutMs - now;
          const why = !(leftMs > 0) ? 'its deadline passed meanwhile' : !watchable(job) ? 'the BMC had named no task of it to follow' : ipmiOf(job) === undefined ? 'its BMC address is not known' : undefined;
          if (job.notSent) interrupted.push(interrupt(job, 'metal-bmc stopped before this update began (it waited for a power command on its machine, or to start); nothing was sent to the BMC: send it again'));
          else if (why === undefined) resume(job, leftMs);
          else {
            const unknown = `metal-bmc stopped while this update ran (last progress: ${lastProgressOf(job)}) and ${why}, so its outcome is unknown; the BMC may still be applying it`;
            interrupted.push(interrupt(job, `${unknown}: check its firmware version before retrying`));
            const heldUntil = ipmiOf(job) === undefined ? undefined : crashHoldEnd(job, now);
            if (heldUntil !== undefined) {
              // as a stop that cut off an update it cannot watch: held (its claim taken back) while
              // the BMC may still flash; a hold that ends at once (another job of the machine, its
              // end reached meanwhile) holds nothing and is said as plain interrupted
              job.heldUntil = heldUntil;
              if (holdAgain(job) === undefined) {
                job.code = OUTCOME_UNKNOWN;
                job.error = `${unknown}; the machine stays held until ${heldUntil}: check its firmware version before retrying`;
                o.logger.warn({ machineId: job.machineId, job: job.id, kind: job.kind, bmc: job.bmc, heldUntil }, 'firmware update cut off by a restart may still be applied by the BMC; its machine stays held');
              }
            }
          }
        } else if (job.heldUntil !== undefined) {
          const end = holdAgain(job);
          if (end !== undefined) holdsEnded.push([job, end]);
        }
      }
      if (interrupted.length > 0 || holdsEnded.length > 0) persist();
      for (const job of interrupted) emit(job, 'interrupted', { error: job.error!, code: job.code!, ...(job.outcomeUnknown ? { outcomeUnknown: true as const } : {}), ...(job.progress ? { progress: job.progress } : {}), ...(job.heldUntil !== undefined ? { heldUntil: job.heldUntil } : {}) });
      for (const [job, end] of holdsEnded) tellHoldEnd(job, end);
      seq = jobs.length;
      return interrupted;
    },

    async start(plan) {
      const action = plan.actions.find((a) => a.kind === 'firmware');
      if (action?.kind !== 'firmware') throw new BmcError('INVALID_ARGUMENT', 'firmware jobs: the plan has no UPDATE-FIRMWARE action');
      const image = imageLabel(action.url);
      try {
        o.checkUrl?.(action.url);
        // a BMC it may not act on is refused now, not accepted and then failed at the connect
        if (plan.ipmi) o.checkTarget?.(plan.ipmi);
      } catch (err) {
        // not a refusal: the target cannot be judged yet (the lease file not read): the event goes back
        if (err instanceof HandBackError) return handBack(plan, err.message, action.firmware, image);
        return refuse(plan, err instanceof BmcError ? err.code : 'FORBIDDEN', (err as Error).message, action.firmware, image);
      }
      if (stopping) return { accepted: false, event: closedEvent(plan) };
      const eventId = plan.eventId;
      // a second delivery of the event in this process while the first starts: never takes the first's claim
      const alone = eventId !== undefined && !startingHere.has(eventId);
      if (alone) startingHere.add(eventId);
      try {
        const step = await journalStep(plan, action, image, alone);
        if ('outcome' in step) return step.outcome;
        // metal-bmc may have begun to stop while the journal was asked
        const outcome: StartOutcome = stopping ? { accepted: false, event: closedEvent(plan) } : await startJob(plan, action, image, step.hold);
        // not started: provably, so a later delivery may start it
        if (!outcome.accepted) await step.hold?.release();
        return outcome;
      } finally {
        if (alone) startingHere.delete(eventId);
      }
    },

    list: () => [...jobs],
    activeFor(plan) {
      const entry = activeOn(plan.key, bmcKeyOf(plan));
      if (entry === undefined) return undefined;
      const { job } = entry;
      // neither claiming nor begun: its claim ended and it does not begin (a stop, the starting file); gone at once.
      // One a stop kept (held, or left running for the next start) holds its machine until the process ends
      const ended = stopping && entry.holding ? never : (entry.claiming ?? (jobs.includes(job) ? entry.done : undefined));
      if (ended === undefined) return undefined;
      return { id: job.id, kind: job.kind, since: job.acceptedAt, of: job.key === plan.key ? { machine: true } : { bmc: job.bmc }, ended };
    },
    running: () => [...active.values()].filter((a) => a.claiming === undefined && !a.holding).length,

    async stop(deadlineMs) {
      stopping = true;
      for (const timer of claimRetries) clearTimeout(timer);
      claimRetries.clear();
      // a job still waiting for a power command on its machine sent nothing: it ends now, not sent
      for (const a of active.values()) if (a.job.notSent) a.abort.abort(new BmcError('ABORTED', 'metal-bmc is shutting down'));
      // a hold after an outcome unknown runs nothing: it ends now and is taken up again at the next start (heldUntil)
      for (const a of active.values()) if (a.holding) a.abort.abort(new BmcError('ABORTED', 'metal-bmc is shutting down'));
      const stopBy = Date.now() + deadlineMs;
      // a start asking for its claim now ends in a refusal (and gives the claim back) or was accepted before;
      // a claim asked for again (claimLater) is kept or released before the claims close. Within the
      // deadline, which every KV request under way could outlast: one answered later still ends by
      // its own path (refused and given back, or kept), and starts no renewal once the claims closed
      await endedWithin(Promise.all([...[...active.values()].map((a) => a.claiming), ...lateClaims]), deadlineMs);
      const all = [...active.values()];
      if (all.length === 0) return;
      if (await endedWithin(Promise.all(all.map((a) => a.done)), Math.max(0, stopBy - Date.now()))) return;
      o.logger.warn({ running: active.size }, 'shutdown deadline reached; interrupting firmware updates still running');
      for (const a of active.values()) a.abort.abort(new BmcError('ABORTED', 'metal-bmc is shutting down'));
      await Promise.all(all.map((a) => a.done));
    },
  };
}
