/**
 * An HPE iLO 5/6 flash followed through its UpdateService's `Oem.Hpe.State` when the update's
 * answer named no task: iLO answers SimpleUpdate (and a push) 200 or 202 without a Location and
 * flashes in the background, telling its progress only there. Without this, a BIOS image on iLO
 * ended UNSUPPORTED at once and the machine was freed while iLO still wrote the System ROM.
 *
 * What the states mean, from the tools HPE and OpenStack ship for it:
 *  - openstack/proliantutils proliantutils/redfish/resources/update_service.py
 *    (wait_for_redfish_firmware_update_to_complete, get_firmware_update_progress: the states are
 *    "Idle", "Uploading", "Verifying", "Writing", "Updating", "Complete", "Error"; the flash is
 *    over when the state goes from Updating/Verifying/Uploading/Writing to Complete, Error, Idle
 *    or unreadable, or from Idle straight to Complete or Error; then Error fails, Complete or Idle
 *    is done; it polls every 30 s, 10 times after a 10 s wait, then waits for the iLO to come back
 *    after its reset: proliantutils/ilo/common.py wait_for_ilo_after_reset);
 *  - HewlettPackard/python-redfish-utility ilorest/extensions/iLO_COMMANDS/FirmwareUpdateCommand.py
 *    (showupdateprogress: idle waits, "uploading", then "progressing", "updating", "verifying",
 *    "writing", "backingup" run, "complete" ends well ("iLO may reset"), "error" fails with
 *    Oem.Hpe.Result.MessageId; it compares lower-cased prefixes, and gives up after about 100
 *    polls in Idle, blaming a TPM) and ilorest/extensions/iLO_REPOSITORY_COMMANDS/UploadComponentCommand.py
 *    (wait_for_state_change: every 8 s for up to 4800 s; ERROR fails with Result.MessageId,
 *    COMPLETE, COMPLETED or IDLE end it).
 *  - HPE's own reference, HPEDevCom/redfishdocs docs/redfishServices/ilos/ilo6/ilo6_170/ilo6_other_resourcedefns170.md
 *    and ilo5/ilo5_309/ilo5_other_resourcedefns309.md (UpdateService Oem.Hpe.State): exactly Idle,
 *    Uploading (receiving a component), Verifying, Writing (to the iLO Repository), Updating
 *    (flashing), Complete ("completed an upload or update operation"), Error ("see Result");
 *    Oem.Hpe.FlashProgressPercent "is only valid when State is Updating", so it is reported then only.
 * A state in none of these (a later firmware's) is taken as still running, told in the progress
 * and waited on up to the deadline, never read as an end.
 *
 * What metal-bmc adds, to never call a flash done that it did not see end:
 *  - a Complete or Error that was already there before the update (the last flash's) is not this
 *    one's end: it counts only after a running state was seen or when it differs from the one
 *    read before the POST; until then, and while iLO stays Idle, the flash has not started, for
 *    at most `startWaitMs` (then a failure: the flash never started);
 *  - Idle after a running state is done (the tools' rule) for a BIOS image only when iLO answered
 *    throughout: iLO unreachable and then Idle is an iLO that restarted, which leaves it unverified.
 *    For an iLO image, Idle after it ran, or after iLO was unreachable, is iLO back from its restart
 *    into the new firmware (ilorest: "iLO may reset"; proliantutils waits for it to come back):
 *    TaskLostError, so that the Manager's FirmwareVersion decides (outband/firmware-outcome.ts), as
 *    for any BMC image whose task was lost. A Complete read first ends it as done, as a task would.
 */
import { checkMs, deadline, sleep } from '../deadline.js';
import { BmcError } from '../errors.js';
import { parseHpeFlashState, type HpeFlashState } from '../redfish/hpe-flash-state.js';
import { readUpdateService } from '../redfish/resources.js';
import type { RedfishClient, RedfishReply } from '../redfish/session.js';
import { changedProgressOnly, isTransient, nextPollMs, TaskFailedError, TaskLostError, UntracedUpdateError, type TaskProgress } from '../redfish/task.js';

/** What one `Oem.Hpe.State` says of the flash. */
export type HpeFlashPhase = 'idle' | 'running' | 'done' | 'failed';

/** Lower-cased states (ilorest compares them so) and their phase; any other state is running. */
const PHASES: ReadonlyMap<string, HpeFlashPhase> = new Map<string, HpeFlashPhase>([
  ['idle', 'idle'],
  ['uploading', 'running'],
  ['progressing', 'running'],
  ['verifying', 'running'],
  ['writing', 'running'],
  ['updating', 'running'],
  ['backingup', 'running'],
  ['complete', 'done'],
  ['completed', 'done'],
  ['error', 'failed'],
]);

export function hpeFlashPhase(state: string): HpeFlashPhase {
  return PHASES.get(state.toLowerCase()) ?? 'running';
}

/**
 * Whether `state` is one iLO names for a flash under way (Uploading, Verifying, Writing, Updating,
 * ...): only its own words, not an unknown state nor a progress metal-bmc made up while it waits
 * for a version (what holds a machine past a deadline must come from iLO).
 */
export function hpeFlashSaysRunning(state: string): boolean {
  return PHASES.get(state.toLowerCase()) === 'running';
}

type Client = Pick<RedfishClient, 'getReply'> & Partial<Pick<RedfishClient, 'scrub'>>;

export interface HpeFlashOptions {
  signal?: AbortSignal;
  onProgress?: (progress: TaskProgress) => void;
  /** The state read before the update was sent (UpdateService read by the facade): its Complete or Error is the last flash's. */
  before?: HpeFlashState;
  /** An iLO image: iLO restarts into it, so iLO unreachable and back Idle is a lost task (TaskLostError), for the version to decide. */
  restartsBmc: boolean;
  /** Poll interval while iLO answers; a longer Retry-After is waited instead (up to `maxRetryAfterMs`). Default 2000, as a task's. */
  pollMs?: number;
  /** Poll interval while iLO is unreachable. Default 30 000, as a task's. */
  unreachablePollMs?: number;
  /** Longest Retry-After honoured. Default 60 000. */
  maxRetryAfterMs?: number;
  /** Overall deadline. Default one hour, as a task's (ilorest uploadcomp waits 4800 s). */
  timeoutMs?: number;
  /** How long iLO may stay Idle (or on the last flash's end) before this flash shows. Default 5 minutes (ilorest gives up after about 100 polls). */
  startWaitMs?: number;
  /**
   * The flash was sent by an earlier run of metal-bmc (a job resumed after a restart) and seen
   * running then: Complete or Error is this flash's end, and Idle is never "not started yet" but a
   * flash whose end was not seen (an iLO image: the version decides). A flash not yet seen running
   * is followed again as a new one, against its `before`.
   */
  resumed?: boolean;
  /** Told once when a running state shows: the flash has started (kept for a follow after a restart). */
  onStarted?: () => void;
}

/** `Result` of the state, for messages: MessageId and its arguments. */
function resultText(flash: HpeFlashState, scrub: (text: string) => string): string {
  if (flash.resultMessageId === undefined) return 'no Oem.Hpe.Result';
  const args = flash.resultMessageArgs === undefined ? '' : ` (${flash.resultMessageArgs.map(scrub).join(', ')})`;
  return `Oem.Hpe.Result MessageId ${flash.resultMessageId}${args}`;
}

/** The same end state the UpdateService showed before the update (the last flash's), not this flash's. */
function isLastFlashEnd(flash: HpeFlashState, before: HpeFlashState | undefined): boolean {
  return before !== undefined && before.state === flash.state && before.resultMessageId === flash.resultMessageId;
}

/**
 * Follows iLO's flash in `servicePath`'s `Oem.Hpe` to its end: resolves on Complete (or Idle after
 * running), throws on Error with the Result's MessageId, TaskLostError when an iLO image restarted
 * iLO, `untraced` when the UpdateService tells no Oem.Hpe.State at all (not followable: the caller's
 * rule for an answer without a task applies), a PROTOCOL failure when the flash never started.
 */
export async function followHpeFlash(client: Client, servicePath: string, untraced: UntracedUpdateError, options: HpeFlashOptions): Promise<void> {
  const pace = {
    pollMs: checkMs('pollMs', options.pollMs, 2000, 600_000),
    unreachablePollMs: checkMs('unreachablePollMs', options.unreachablePollMs, 30_000, 600_000),
    maxRetryAfterMs: checkMs('maxRetryAfterMs', options.maxRetryAfterMs, 60_000, 600_000),
  };
  const timeoutMs = checkMs('timeoutMs', options.timeoutMs, 3_600_000);
  const startWaitMs = checkMs('startWaitMs', options.startWaitMs, 5 * 60_000);
  const scrub = (text: string): string => (client.scrub === undefined ? text : client.scrub(text));
  const what = `iLO flash (${servicePath} Oem.Hpe.State)`;
  const dl = deadline(timeoutMs, what, options.signal);
  const startedAt = Date.now();
  const report = changedProgressOnly(options.onProgress);
  // the last running state seen: the flash has started (a resumed one had, before metal-bmc restarted)
  let running: string | undefined = options.resumed === true ? 'the flash sent before metal-bmc restarted' : undefined;
  let wentAway = false;
  let seen = false;
  try {
    for (;;) {
      let reply: RedfishReply | undefined;
      try {
        reply = await client.getReply(servicePath, { signal: dl.signal });
      } catch (err) {
        if (dl.signal.aborted || !isTransient(err)) throw err;
        wentAway = true;
      }
      if (reply !== undefined) {
        const flash = parseHpeFlashState(reply.body);
        if (flash === undefined) {
          // not an iLO that tells its flash: the answer without a task stays what it was
          if (!seen) throw untraced;
          throw gone(`${servicePath} no longer tells Oem.Hpe.State`);
        }
        seen = true;
        const phase = hpeFlashPhase(flash.state);
        const started = running !== undefined || ((phase === 'done' || phase === 'failed') && !isLastFlashEnd(flash, options.before));
        if (phase === 'failed' && started) {
          // iLO's own failure of the flash, as a task's: a hold after an outcome unknown ends on it
          throw new TaskFailedError(`${what}: the flash ended in Error: ${resultText(flash, scrub)}`);
        }
        if (phase === 'done' && started) {
          report({ state: 'Completed', percent: 100, message: `iLO's UpdateService Oem.Hpe.State ${flash.state}` });
          return;
        }
        if (phase === 'running') {
          if (running === undefined) options.onStarted?.();
          running = flash.state;
          const percent = flash.state.toLowerCase() === 'updating' ? flash.percent : undefined;
          report({ state: flash.state, ...(percent === undefined ? {} : { percent }), message: `iLO's UpdateService Oem.Hpe.State ${flash.state}` });
        } else if (phase === 'idle' && (wentAway || running !== undefined) && (options.restartsBmc || options.resumed === true || (wentAway && running !== undefined))) {
          // an iLO image: iLO restarts into it (Idle again), its version tells; a BIOS image across an iLO restart: unverified
          throw gone(`iLO's UpdateService is Idle${wentAway ? ' after iLO was unreachable' : ''}${running === undefined ? '' : ` (last seen: ${running})`}`);
        } else if (phase === 'idle' && running !== undefined) {
          // proliantutils and ilorest uploadcomp take a flash that ran and went back to Idle as ended well
          report({ state: 'Completed', percent: 100, message: `iLO's UpdateService went back to Oem.Hpe.State Idle after ${running}` });
          return;
        } else if (Date.now() - startedAt > startWaitMs) {
          throw new BmcError('PROTOCOL', `${what}: iLO took the image without a task, but its UpdateService stayed ${flash.state} (${resultText(flash, scrub)}) for ${Math.round(startWaitMs / 1000)} s: the flash never started (outcome unverified)`);
        } else {
          report({ state: 'Running', message: `the BMC named no task; following iLO's UpdateService Oem.Hpe.State (${flash.state}, the flash not started yet)` });
        }
      }
      await sleep(nextPollMs(reply === undefined ? 'unreachable' : { reply }, pace), dl.signal, what);
    }
  } finally {
    dl.dispose();
  }

  /** The flash's end was not seen: an iLO image's restart (the version decides), else unverified. */
  function gone(why: string): BmcError {
    if (options.restartsBmc) return new TaskLostError(`${what}: ${why}: the BMC restarted; outcome unverified`);
    return new BmcError('PROTOCOL', `${what}: ${why}; outcome unverified`);
  }
}

/**
 * A flash an earlier run of metal-bmc sent and followed here (FirmwareWatch.hpeFlash), followed
 * again from this connection (`resumed`); an UpdateService without Oem.Hpe.State fails UNSUPPORTED
 * (UntracedUpdateError: for an iLO image the version then decides, in updateBmcImage).
 */
export async function followHpeFlashAgain(client: Client & Pick<RedfishClient, 'get'>, what: string, options: HpeFlashOptions & { started: boolean }): Promise<void> {
  const service = await readUpdateService(client, options.signal ? { signal: options.signal } : {});
  const untraced = new UntracedUpdateError(`${what}: ${service.path} tells no Oem.Hpe.State, so the flash sent before metal-bmc restarted cannot be followed there`);
  // not seen running before the restart: iLO may still show the last flash's end (a pull from the
  // image server comes first), so it is followed as a new flash against the state before it
  const { started, ...rest } = options;
  return followHpeFlash(client, service.path, untraced, { ...rest, resumed: started });
}

/**
 * Runs `update` (SimpleUpdate or a push); an answer without a task (UntracedUpdateError) is
 * followed through iLO's Oem.Hpe.State instead (followHpeFlash); `onFollowed` is told when that
 * begins (what a job resumed after a restart needs to follow it again).
 */
export async function updateOnIlo(update: () => Promise<unknown>, client: Client, servicePath: string, options: HpeFlashOptions & { onFollowed?: () => void }): Promise<unknown> {
  try {
    return await update();
  } catch (err) {
    if (!(err instanceof UntracedUpdateError)) throw err;
    options.onFollowed?.();
    return followHpeFlash(client, servicePath, err, options);
  }
}
