/**
 * Following a Redfish task: a Task resource (`TaskState`, `PercentComplete`, `Messages`)
 * or a task monitor (202 while running, then the operation's final answer).
 * Transient failures while polling (a BMC rebooting into new firmware) are tolerated
 * until the overall deadline.
 */
import { BmcError } from '../errors.js';
import { checkMs, deadline, sleep } from '../deadline.js';
import { errorCode, extendedInfoOf, isTlsVerification } from './http-errors.js';
import { obj, odataId } from './json.js';
import { isTask, parseTask, type TaskInfo } from './parse.js';
import { shortened } from './text.js';
import { isRedfishPath, parseRetryAfter } from './wire.js';
import { ReloginPendingError, type RedfishClient, type RedfishReply } from './session.js';
import { fingerprintPrefix, PinMismatchError } from './tls.js';

export interface TaskProgress {
  state: string;
  percent?: number;
  message?: string;
  /** an upload of unknown length: the image's bytes the BMC took so far (no percent) */
  sentBytes?: number;
}

export interface WaitForTaskOptions {
  signal?: AbortSignal;
  /** Poll interval while the BMC answers; a longer `Retry-After` of its answer is waited instead (up to `maxRetryAfterMs`). Default 2000. */
  pollMs?: number;
  /** Poll interval while the BMC is unreachable (refused or reset connections, timeouts, 5xx: a BMC restarting into new firmware). Default 30 000. */
  unreachablePollMs?: number;
  /** Longest `Retry-After` of a task monitor's 202 (or a Task's answer) honoured; a longer one is cut to it. Default 60 000. */
  maxRetryAfterMs?: number;
  /** Overall deadline. Default one hour. */
  timeoutMs?: number;
  onProgress?: (progress: TaskProgress) => void;
  /**
   * The command that accepts a BMC's new certificate, for the message of CertificateChangedError.
   * Default `metal-bmc bmc trust --address HOST --reset`; the facade names the BMC's MAC where it knows it.
   */
  trustResetCommand?: string;
}

/** Task states that end a task in failure; `Failed` is no DSP0268 state, but bmclib meets and maps it. */
const FAILED = new Set(['Exception', 'Killed', 'Cancelled', 'Failed']);

/**
 * TaskStatus values that make a Completed task a failure: bmcweb sets Warning on a failed
 * activation, and bmclib's Supermicro x12 provider rejects Completed unless TaskStatus is OK.
 */
const FAILED_STATUS = new Set(['Critical', 'Warning']);

const TASKS_PREFIX = '/redfish/v1/TaskService/Tasks/';

/**
 * The task is gone and its outcome is unknown: the task or its monitor answered 404 (or 401)
 * after the task was seen running or the BMC was unreachable (a BMC that reboots after a
 * firmware update forgets its tasks and sessions), or after a task monitor's final answer the
 * Task could not be read. Never a success: the caller may check the firmware version instead.
 */
export class TaskLostError extends BmcError {
  constructor(message: string, options: { cause?: unknown; httpStatus?: number } = {}) {
    super('PROTOCOL', message, options);
    this.name = 'TaskLostError';
  }
}

/**
 * The BMC came back during a task's wait with another TLS certificate than the one trusted (a pin
 * of the trust file, or a CA that does not vouch for the new one): BMC firmware may come with, or
 * generate, a new self-signed certificate. The trust gate refused the connection and sent nothing,
 * so the task's end was never read: code OUTCOME_UNKNOWN, not a failure, since the update was
 * accepted and probably applied. Someone must check the certificate and accept it.
 */
export class CertificateChangedError extends BmcError {
  constructor(
    message: string,
    readonly presentedSha256: string | undefined,
    cause: BmcError,
  ) {
    super('OUTCOME_UNKNOWN', message, { cause });
    this.name = 'CertificateChangedError';
  }
}

/**
 * A refusal of the BMC's certificate, as the pinned connector (PinMismatchError, possibly wrapped by
 * the trust gate) or TLS verification against a CA (AUTH_FAILED caused by a certificate error) gives
 * it: found along the cause chain, with the fingerprint when the pin check saw one.
 */
function certificateRefusal(err: unknown): { presentedSha256: string | undefined } | undefined {
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 8; e = e.cause, depth++) {
    if (e instanceof PinMismatchError) return { presentedSha256: e.presentedSha256 };
    if (e instanceof BmcError && e.code === 'AUTH_FAILED' && isTlsVerification(errorCode(e.cause) ?? '')) return { presentedSha256: undefined };
  }
  return undefined;
}

/**
 * A firmware update the BMC took (HTTP 200, 202 or 204) without naming a task to follow (iLO 5's
 * SimpleUpdate answers 200 and flashes in the background): code UNSUPPORTED, since this answer
 * cannot be followed. On an HPE BMC its UpdateService's Oem.Hpe.State tells the flash
 * (outband/hpe-flash.ts); elsewhere, for a BMC image the Manager's FirmwareVersion can still decide
 * (outband/firmware-outcome.ts), and for a BIOS image nothing can.
 */
export class UntracedUpdateError extends BmcError {
  constructor(message: string, options: { httpStatus?: number } = {}) {
    super('UNSUPPORTED', message, options);
    this.name = 'UntracedUpdateError';
  }
}

/**
 * The task named in `@Message.ExtendedInfo[].MessageArgs` of an `Accepted` or `error` object:
 * Supermicro answers a multipart push 202 with
 * `{"Accepted":{"@Message.ExtendedInfo":[{"MessageId":"SMC.1.0.OemSimpleupdateAcceptedMessage",
 * "MessageArgs":["/redfish/v1/TaskService/Tasks/N"]}]}}` and no Location (bmclib
 * redfishwrapper/firmware.go taskIDFromResponseBody; fwupd fu-redfish-smc-device.c).
 */
export function taskPathInMessages(body: unknown): string | undefined {
  const args = ['Accepted', 'error'].flatMap((key) => extendedInfoOf(obj(body, key)).flatMap((m) => m.args));
  return args.find((a) => a.startsWith(TASKS_PREFIX) && a.length > TASKS_PREFIX.length);
}

/**
 * A task location as this BMC's own path: an absolute URL (a BMC that names its own host name, or
 * `http://` behind its TLS proxy) gives only its path, when that is a Redfish path, as the session's
 * Location does (wire.ts sessionLocation); nothing is ever asked of another host. Anything else is
 * left as it is, for the transport to refuse.
 */
function ownTaskPath(location: string): string {
  if (location.startsWith('/')) return location;
  try {
    const url = new URL(location);
    if ((url.protocol === 'https:' || url.protocol === 'http:') && isRedfishPath(url.pathname)) return url.pathname + url.search;
  } catch {
    // not a URL
  }
  return location;
}

/** The task to follow after an action's answer: its Location header, else the Task in the body, else a task its messages name. */
export function taskLocation(reply: RedfishReply): string | undefined {
  const found = reply.headers.location ?? (isTask(reply.body) ? odataId(reply.body) : undefined) ?? taskPathInMessages(reply.body);
  return found === undefined ? undefined : ownTaskPath(found.trim());
}

/**
 * An answer worth waiting out: a timeout, a closed connection, a 5xx (a BMC restarting), a login the
 * BMC refused while back from a restart that will be sent again (ReloginPendingError).
 */
export function isTransient(err: unknown): boolean {
  if (!(err instanceof BmcError)) return false;
  if (err instanceof ReloginPendingError) return true;
  if (err.code === 'TIMEOUT' || err.code === 'CLOSED') return true;
  return err.code === 'HTTP' && err.httpStatus !== undefined && err.httpStatus >= 500;
}

/** The host of the client's origin, for messages; undefined for a client without one (a test's stand-in). */
function hostOf(client: Partial<Pick<RedfishClient, 'origin'>>): string | undefined {
  try {
    return client.origin === undefined ? undefined : new URL(client.origin).hostname.replace(/^\[|\]$/g, '');
  } catch {
    return undefined;
  }
}

/** The BMC no longer knows the task (404) or the session (401 after a failed new login). */
function taskGone(err: unknown): err is BmcError {
  return err instanceof BmcError && (err.httpStatus === 404 || err.httpStatus === 401);
}

/**
 * The Task behind a task monitor that gave its final answer without one: the body's @odata.id,
 * else the monitor path without its `/Monitor` (bmcweb's `/redfish/v1/TaskService/Tasks/N/Monitor`).
 */
function taskPathAfterMonitor(monitor: string, body: unknown): string {
  return odataId(body) ?? monitor.replace(/\/Monitor\/?$/, '');
}

/**
 * A task the BMC ended in failure (Exception, Killed, Cancelled, Failed, or Completed with a
 * Critical or Warning TaskStatus): code PROTOCOL as before; its own class so that a caller can tell
 * "the BMC said the update failed" (its flash is over) from a BMC that could not be read.
 */
export class TaskFailedError extends BmcError {
  constructor(message: string) {
    super('PROTOCOL', message);
    this.name = 'TaskFailedError';
  }
}

/** A finished task's failure, as the BMC stated it: its state, status and messages. */
function taskFailure(what: string, task: TaskInfo): TaskFailedError {
  const detail = task.messages?.join('; ') ?? 'no message';
  return new TaskFailedError(`${what} ended in ${task.state ?? 'no state'} (${task.status ?? 'no status'}): ${detail}`);
}

/** The progress state of an update the BMC staged for the host's next reboot. */
export const STAGED_STATE = 'Staged';
/** What a staged update means for the machine; metal-bmc never reboots the host. */
export const STAGED_MESSAGE = "staged: applies at the machine's next reboot";
/** What an update the BMC finished but asks a person to apply means: iDRAC's UserIntervention (some components take an A/C cycle). */
export const USER_INTERVENTION_MESSAGE = 'staged: the update needs a reboot or an A/C power cycle of the machine to apply';

/** iDRAC's MessageId of a scheduled job, "Task successfully scheduled." (IDRAC.2.8.JCP001). */
const SCHEDULED_MESSAGE_ID = /(^|\.)JCP001$/;

/**
 * A task the BMC parked until the host reboots: iDRAC keeps a BIOS job `Scheduled` (TaskState
 * Running, Oem.Dell.JobState Scheduled, message JCP001 "Task successfully scheduled.") until an
 * administrator reboots (dell/iDRAC-Redfish-Scripting#166); bmclib providers/dell/firmware.go
 * maps it to "power cycle needed", Dell's own SimpleUpdate script stops polling there. Waiting on
 * would only end in a timeout, since metal-bmc never reboots the host.
 */
function isStaged(task: TaskInfo): boolean {
  if (task.state === 'Completed' || FAILED.has(task.state ?? '')) return false;
  // TaskState Scheduled (no DSP0268 state): bmclib's redfishwrapper reads it as "power cycle the host"
  if (task.state === 'Scheduled' || needsUserIntervention(task)) return true;
  return task.dellJobState?.toLowerCase() === 'scheduled' || (task.messageIds ?? []).some((id) => SCHEDULED_MESSAGE_ID.test(id));
}

/**
 * iDRAC's UserIntervention at PercentComplete 100: the update is done on the BMC's side and
 * applies at a host reboot or a virtual A/C power cycle (Dell's DeviceFirmwareSimpleUpdateREDFISH.py
 * and DeviceFirmwareMultipartUploadREDFISH.py stop polling there and say so). Below 100 it is still
 * working, as those scripts read it.
 */
function needsUserIntervention(task: TaskInfo): boolean {
  return task.state === 'UserIntervention' && task.percent === 100;
}

/** How the BMC said it staged the update, for the progress message. */
function stagedEvidence(task: TaskInfo): string {
  if (needsUserIntervention(task)) return `${USER_INTERVENTION_MESSAGE} (the BMC answered TaskState UserIntervention at 100 %)`;
  const id = task.messageIds?.find((m) => SCHEDULED_MESSAGE_ID.test(m));
  const parts = [task.dellJobState === undefined ? undefined : `Oem.Dell.JobState ${task.dellJobState}`, id === undefined ? undefined : `MessageId ${id}`];
  return `${STAGED_MESSAGE} (the BMC answered TaskState ${[task.state ?? 'none', ...parts.filter((p) => p !== undefined)].join(', ')})`;
}

/**
 * 'done' for a Completed task whose TaskStatus is not Critical or Warning, 'failed' for a failure,
 * 'staged' for one waiting for the host's reboot, else 'running': DSP0268's New, Starting, Pending,
 * Suspended, Service, Stopping, Cancelling and Interrupted ("expected to restart") all end later,
 * and an unknown or missing state is waited on up to the deadline.
 */
function taskOutcome(task: TaskInfo): 'done' | 'failed' | 'staged' | 'running' {
  const state = task.state ?? 'Running';
  if (FAILED.has(state)) return 'failed';
  if (isStaged(task)) return 'staged';
  if (state !== 'Completed') return 'running';
  return task.status !== undefined && FAILED_STATUS.has(task.status) ? 'failed' : 'done';
}

/** A poll's progress teller: tells `onProgress` a progress only when its state, percent or message changed since the last one told. */
export function changedProgressOnly(onProgress: ((p: TaskProgress) => void) | undefined): (p: TaskProgress) => void {
  let last = '';
  return (p) => {
    const key = `${p.state}/${p.percent ?? ''}/${p.message ?? ''}`;
    if (key === last) return;
    last = key;
    onProgress?.(p);
  };
}

/**
 * Whether a progress waitForTask reported says the task still runs, by the same rules that keep
 * it polling (taskOutcome): not Completed, not a failure, not Staged (reported only once staged).
 * A caller that holds a machine while a BMC's task runs asks this, not a list of its own.
 */
export function taskStillRuns(progress: TaskProgress): boolean {
  if (progress.state === STAGED_STATE) return false;
  return taskOutcome({ state: progress.state, ...(progress.percent !== undefined ? { percent: progress.percent } : {}) }) === 'running';
}

/**
 * The wait before the next poll: `pollMs` after an answer, unless its `Retry-After` (DSP0266: a task
 * monitor's 202 says when to ask again) asks for longer, cut to `maxRetryAfterMs`; `unreachablePollMs`
 * after a failure that says the BMC is away (a BMC flashing itself may stay away for ten minutes:
 * polling it every 2 s would only fill its connection log), back to the answer's pace once it answers.
 */
export function nextPollMs(last: { reply: RedfishReply } | 'unreachable', pace: { pollMs: number; unreachablePollMs: number; maxRetryAfterMs: number }, nowMs = Date.now()): number {
  if (last === 'unreachable') return Math.max(pace.pollMs, pace.unreachablePollMs);
  const retryAfter = parseRetryAfter(last.reply.headers['retry-after'], nowMs);
  return retryAfter === undefined ? pace.pollMs : Math.max(pace.pollMs, Math.min(retryAfter, pace.maxRetryAfterMs));
}

/**
 * Polls a Task or task monitor to the end, or until the BMC staged it for the host's next reboot
 * (reported as progress state `Staged` and returned: the update is in place). A monitor's final
 * answer that is not a Task is taken as success only where no Task stands behind it (DSP0266: the
 * monitor then answers with the operation's own status). Where one does (the answer's @odata.id,
 * or a monitor at `.../Tasks/N/Monitor`), the Task itself is read: bmcweb (task.hpp populateResp)
 * answers 202 with the Task while running, then 204 with no body once whatever the outcome,
 * Exception included, then 404.
 */
export async function waitForTask(
  client: Pick<RedfishClient, 'getReply'> & Partial<Pick<RedfishClient, 'scrub' | 'origin'>>,
  taskMonitorOrTaskUri: string,
  options: WaitForTaskOptions = {},
): Promise<TaskInfo> {
  const pace = {
    pollMs: checkMs('pollMs', options.pollMs, 2000, 600_000),
    unreachablePollMs: checkMs('unreachablePollMs', options.unreachablePollMs, 30_000, 600_000),
    maxRetryAfterMs: checkMs('maxRetryAfterMs', options.maxRetryAfterMs, 60_000, 600_000),
  };
  const timeoutMs = checkMs('timeoutMs', options.timeoutMs, 3_600_000);
  const what = `task ${shortened(taskMonitorOrTaskUri, 300)}`;
  // a task's messages go into progress and errors (published, logged): a BMC may echo the image
  // URL's credentials or the session's token in them
  const scrubbed = (task: TaskInfo): TaskInfo => (client.scrub === undefined || task.messages === undefined ? task : { ...task, messages: task.messages.map((m) => client.scrub!(m)) });
  const dl = deadline(timeoutMs, what, options.signal);
  const report = changedProgressOnly(options.onProgress);
  let path = taskMonitorOrTaskUri;
  /** the monitor's final answer without a Task, while `path` is the Task read after it */
  let monitorAnswer: number | undefined;
  let seenRunning = false;
  let unreachable = false;
  try {
    for (;;) {
      let reply: RedfishReply | undefined;
      try {
        reply = await client.getReply(path, { signal: dl.signal });
      } catch (err) {
        if (dl.signal.aborted) throw err;
        const refusal = certificateRefusal(err);
        if (refusal !== undefined) throw certificateChanged(err as BmcError, refusal.presentedSha256);
        if (isTransient(err)) unreachable = true;
        else if (taskGone(err) && (monitorAnswer !== undefined || seenRunning || unreachable)) throw lostTask(err);
        else throw err;
      }
      if (reply !== undefined) {
        if (isTask(reply.body)) {
          const task = scrubbed(parseTask(reply.body));
          const outcome = taskOutcome(task);
          if (outcome === 'failed') throw taskFailure(what, task);
          if (outcome === 'staged') {
            report({ state: STAGED_STATE, percent: task.percent, message: stagedEvidence(task) });
            return task;
          }
          report({ state: task.state ?? 'Running', percent: task.percent, message: task.messages?.at(-1) });
          if (outcome === 'done') return task;
          seenRunning = true;
        } else if (reply.status === 202) {
          report({ state: 'Running' });
          seenRunning = true;
        } else if (monitorAnswer === undefined) {
          const taskPath = taskPathAfterMonitor(path, reply.body);
          if (taskPath === path) {
            // a monitor not under a Task, whose answer names none: by DSP0266 its final answer is the
            // operation's own status, and a 2xx is success (getReply throws for the others)
            report({ state: 'Completed', percent: 100 });
            return { path, state: 'Completed' };
          }
          monitorAnswer = reply.status;
          path = taskPath;
          continue; // read the Task now: bmcweb forgets it soon after
        } else {
          throw new TaskLostError(`${what}: the monitor answered HTTP ${monitorAnswer} without a Task and ${path} answered HTTP ${reply.status} without one either; outcome unverified`);
        }
      }
      // no reply: the BMC was unreachable (any other failure was thrown)
      await sleep(nextPollMs(reply === undefined ? 'unreachable' : { reply }, pace), dl.signal, what);
    }
  } finally {
    dl.dispose();
  }

  function certificateChanged(err: BmcError, presented: string | undefined): CertificateChangedError {
    const host = hostOf(client);
    const reset = options.trustResetCommand ?? `metal-bmc bmc trust --address ${host ?? '<the BMC>'} --reset`;
    const which = presented === undefined ? 'that its CA does not vouch for' : `(sha256 ${fingerprintPrefix(presented)})`;
    return new CertificateChangedError(
      `${what}: outcome unknown: the BMC came back with another TLS certificate ${which}, as BMC firmware may bring; the update was accepted and probably applied, but its end could not be read: no credentials were sent to a certificate not trusted. Verify the BMC's certificate and firmware version, then accept the certificate: ${reset}`,
      presented,
      err,
    );
  }

  function lostTask(err: BmcError): TaskLostError {
    const after =
      monitorAnswer !== undefined ? `after the monitor's final answer (HTTP ${monitorAnswer})` : seenRunning ? 'after it was seen running' : 'after the BMC was unreachable';
    return new TaskLostError(`${what}: ${path} answered HTTP ${err.httpStatus} ${after}: the BMC restarted or forgot the task; outcome unverified`, {
      cause: err,
      httpStatus: err.httpStatus,
    });
  }
}
