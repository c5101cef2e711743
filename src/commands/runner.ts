/**
 * Executes plans on BMCs: plans for one machine run in order, one at a time; different
 * machines run in parallel up to `concurrency`. Every execution has a deadline, opens its own
 * Outband and always closes it. A plan that failed in a way another attempt may fix is tried
 * again here, before the machine's next plan (`attempts`). `stop()` refuses new work; `drain()`
 * waits for accepted work and aborts what is still running at its deadline. Both cut every plan
 * that waits for, or reaches, a firmware job: ABORTED, back to the stream.
 */
import { checkCount, checkDuration, deadline, endedWithin, MAX_TIMER_MS, sleep } from '../deadline.js';
import { abortError, BmcError, HandBackError, notSent, NotSentError, showsNotActed, type BmcErrorCode } from '../errors.js';
import type { Logger } from '../log.js';
import type { Outband } from '../outband/types.js';
import { describeAction, runAction, type BmcAction } from './actions.js';
import { isPowerAction, onlySetsBootDevice, skipsAction, supersedesQueued, timelinessOf, type Timeliness } from './age.js';
import { bmcKeyOf, type EventIpmi, type EventType, type Plan } from './event.js';
import type { CommandMetrics, CommandOutcome } from './metrics.js';
import { createOrderHolds, type HeldEvent } from './order-holds.js';
import { describeRecord, type StepHold, type StepJournal, type StepRecord } from './step-journal.js';

export interface CommandResult {
  machineId: string;
  type: EventType;
  command: string;
  ok: boolean;
  /** the error message (never credentials) and its BmcError code */
  error?: string;
  code?: string;
  durationMs: number;
  /** ISO 8601 */
  startedAt: string;
  /** age of the event when its turn came, when older than the TTL */
  ageMs?: number;
  /** a create/delete older than the TTL that still ran */
  late?: true;
  /**
   * not executed: older than the TTL when its machine's turn came (stale), its machine's queue was
   * full (overflow: refused over core NATS), or a newer event for the machine that came with its
   * queue full sets the boot device it would have set, before anything boots the machine (superseded),
   * or a power command while a firmware update runs on its machine or BMC, here or on another instance (firmware-update)
   */
  dropped?: 'stale' | 'overflow' | 'superseded' | 'firmware-update';
  /** a non-idempotent action (RESET, CYCLE, REINSTALL, a delete's RESET) went to the BMC and no answer came: it may have happened; never retried */
  outcomeUnknown?: true;
  /** steps left out (the power step of a late delete with a newer event pending) */
  skipped?: string[];
  /** attempts made, when the plan was tried more than once (see `attempts` of the runner) */
  attempts?: number;
  /** not executed here: something it depends on could not be used yet (the event journal, the lease file before its first read; HandBackError), nothing was sent blind; the event goes back to the stream */
  handedBack?: true;
  /**
   * not executed: an earlier delivery settled the event (the event journal says who and when) and
   * its ack was lost; acknowledged again. Never published: the runner tells no such result (`onResult`)
   */
  settledBefore?: string;
}

/** `onAnswer`: told each sign of life of the BMC (a firmware job tells an unreachable BMC from one that answers by it) */
export type ConnectBmc = (ipmi: EventIpmi, options: { signal: AbortSignal; onAnswer?: () => void }) => Outband | Promise<Outband>;

/** A firmware job of this instance running (or being claimed) for a plan's machine or its BMC, as the runner needs to know it. */
export interface FirmwareJobHold {
  id: string;
  kind: string;
  /** ISO 8601: when the job was accepted */
  since: string;
  /** the job is this machine's, or its BMC's under another machine key (an event naming only the BMC): the BMC's address */
  of: { machine: true } | { bmc: string };
  /** settles when the job ends, or when its claim across instances is refused; look again then (another job may hold the machine) */
  ended: Promise<unknown>;
  /** the job runs on another instance (seen through its claim in `<durable>-firmware`): that instance's id */
  instance?: string;
}

/** What a plan with a power step does while a firmware job runs on its machine: a command is refused, a lifecycle event waits for the job. */
export const DURING_FIRMWARE_UPDATE: Record<EventType, 'refuse' | 'wait'> = {
  // metal-api or an operator sent it now: said at once, to be sent again after the update
  command: 'refuse',
  // a freed machine must still reach PXE: its RESET runs once the update ended
  create: 'wait',
  delete: 'wait',
  update: 'wait',
};

/** Whether a plan changes the machine's power (ON, OFF, RESET, CYCLE, REINSTALL's cycle, a delete's RESET); boot devices and the LED do not. */
export function changesPower(plan: Plan): boolean {
  return plan.actions.some(isPowerAction);
}

export interface CommandRunnerOptions {
  connect: ConnectBmc;
  /** machines worked on at once */
  concurrency: number;
  /** deadline of one plan, from connect to the last action */
  timeoutMs: number;
  logger: Logger;
  metrics?: Pick<CommandMetrics, 'commands' | 'commandSeconds'> & Partial<Pick<CommandMetrics, 'eventsStale' | 'eventsLate' | 'powerStepsSkipped' | 'eventsRefused' | 'eventsSuperseded' | 'handBacksUncounted' | 'eventsSettledBefore'>>;
  /**
   * plans per machine, the running one included (METAL_BMC_COMMAND_QUEUE_MAX). One more takes the
   * place of the oldest queued plan it replaces (age.ts onlySetsBootDevice), else goes back to the
   * stream (a plan with an event id: JetStream), else is refused with a result. Default 16.
   */
  maxQueuePerMachine?: number;
  /** the topic TTL: checked again when a machine's queue reaches a plan (plans without `publishedAt` are fresh) */
  ttlMs?: number;
  /** the clock of the TTL check: the NATS server's, which stamped the events (server-clock.ts); default this host's */
  now?: () => number;
  onResult?: (result: CommandResult) => void;
  /** how long `close()` of an Outband may take before it is left behind (default 5 s) */
  closeTimeoutMs?: number;
  /** tries of a plan whose failure another attempt may fix, made before the machine's next plan (default 2, the deliveries the Go consumer allowed) */
  attempts?: number;
  /** wait before the second try, doubled for each further one (default 1 s) */
  retryDelayMs?: number;
  /**
   * how long a machine's later events are handed back behind one of its events that went back to
   * the stream, unless that one comes back sooner (default 60 s: its hand-back waits 30 s at most)
   */
  orderHoldMs?: number;
  /**
   * the event journal: a non-idempotent step of a plan with an `eventId` is claimed there before it
   * is sent, so that no delivery of the event sends it again (step-journal.ts); without it, or
   * without an `eventId`, steps are sent as the plan says
   */
  journal?: StepJournal;
  /**
   * the firmware jobs of this instance, and of others through their claims (parts/commands.ts): a
   * plan with a power step for a machine (or BMC) whose update runs is refused (a command) or waits until the job ends (a lifecycle event,
   * DURING_FIRMWARE_UPDATE); a power change during a flash can leave the board unbootable
   */
  firmwareJobs?: {
    activeFor(plan: Plan): FirmwareJobHold | undefined;
    /**
     * Before a plan's power step runs: tells the other instances' firmware jobs that it runs (a
     * mark they wait for, counting at most `boundMs`: bus/power-marks.ts), then brings what
     * activeFor knows of other instances up to the claims bucket (their claims come by a watch, a
     * few milliseconds after another instance took one). Resolves with what ends the telling,
     * called once the plan ended; never rejects (a bucket that cannot be used leaves both as they are)
     */
    beforePower?(plan: Plan, boundMs: number): Promise<() => Promise<void>>;
  };
}

export interface CommandRunner {
  /** Queues a plan behind earlier plans of the same machine; resolves with its result, rejects (CLOSED) after stop(). */
  submit(plan: Plan): Promise<CommandResult>;
  /** plans accepted and not finished */
  readonly pending: number;
  stop(): void;
  /** stop(), then wait for accepted plans; at the deadline abort the rest. True when everything finished in time. */
  drain(deadlineMs: number): Promise<boolean>;
  /** aborts every plan accepted so far, running or queued (ABORTED: their events go back to the stream); later plans run */
  abortAll(reason: string): void;
  /** the event of `plan` was settled without being submitted (stale on receipt): a hold of its machine's later events behind it ends */
  passed?(plan: Plan): void;
  /**
   * settles when the plans with a power step running now for the machine `key` or the BMC `bmc`
   * (host:port; empty: the machine only) have ended; undefined when none runs. A firmware job
   * starting on the machine waits for it: a flash must not begin in the middle of a reset.
   */
  powerSettled(key: string, bmc: string): Promise<void> | undefined;
}

/** runDelivery's answer for a plan that met another instance's firmware job as its power step began and cannot go back to the stream: nothing was sent, it waits at its machine's queue */
interface BackToQueue {
  backToQueue: FirmwareJobHold;
}

interface Task {
  plan: Plan;
  resolve: (r: CommandResult) => void;
  /** aborted by the shutdown's deadline, or by `abortAll` for the plans accepted before it */
  cut: AbortController;
  /** the firmware job its power step waited for, and since when (performance.now()): said once when held, once when it runs */
  waited?: { job: FirmwareJobHold; since: number };
}

/** Actions that must not run twice: a second RESET or CYCLE is a second reboot. ON, OFF, boot devices and the LED may be repeated. */
export function isIdempotent(action: BmcAction): boolean {
  return action.kind === 'command' && !['RESET', 'CYCLE', 'REINSTALL'].includes(action.command);
}

/**
 * Failures that show a request did not happen (errors.ts showsNotActed: the BMC refused it, or it
 * never got that far). After any other failure of a non-idempotent action that was sent (no answer,
 * a cut or garbled one, a 500, an error of our own) it may have happened.
 */
function provesNotDone(aborted: boolean, err: unknown): boolean {
  // the command's own end (its deadline, a shutdown) while the action was under way says nothing
  return err instanceof NotSentError || (!aborted && showsNotActed(err));
}

/** A step an earlier delivery of the event claimed and may have sent: not sent again, the outcome is unknown. */
class EarlierDeliveryError extends Error {
  constructor(action: BmcAction, record: StepRecord) {
    super(`${describeAction(action)} of this event was claimed by an earlier delivery (${describeRecord(record)}), which may have sent it to the BMC; it is not sent again: it may have happened, check the machine`);
    this.name = 'EarlierDeliveryError';
  }
}

/** The event journal could not be used: the step is not sent blind, and the event goes back to the stream. */
class JournalUnavailableError extends HandBackError {
  constructor(action: BmcAction, err: unknown) {
    super(`${describeAction(action)} not sent: the event journal cannot be used (${(err as Error).message}); the event goes back to the stream`, { cause: err });
    this.name = 'JournalUnavailableError';
  }
}

/** Failures a second attempt cannot fix: the BMC refused us, or cannot do it at all. */
const FINAL_CODES: ReadonlySet<string> = new Set<BmcErrorCode>(['AUTH_FAILED', 'INSECURE_REFUSED', 'UNSUPPORTED', 'INVALID_ARGUMENT', 'FORBIDDEN', 'CONFIG', 'DECODE', 'UNTRUSTED']);

/**
 * Whether another attempt may fix a failed plan: not when it was not executed (stale, overflow),
 * when a RESET, CYCLE or REINSTALL may have happened (outcome unknown: never repeated), when the
 * BMC refused or cannot do it (FINAL_CODES), nor when the shutdown cut it off (ABORTED: the
 * handler leaves it to another instance).
 */
/**
 * Whether a result sends its event back to the stream (nak): cut off (ABORTED) or handed back;
 * anything else settles it here (ack or term, handler.ts dispositionOf).
 */
export function goesBack(result: CommandResult): boolean {
  return !result.ok && result.dropped !== 'superseded' && (result.code === 'ABORTED' || result.handedBack === true);
}

export function isRetryable(result: CommandResult): boolean {
  if (result.ok || result.dropped !== undefined || result.outcomeUnknown) return false;
  return result.code === undefined || (result.code !== 'ABORTED' && !FINAL_CODES.has(result.code));
}

function positive(name: string, value: number, integer: boolean): void {
  if (!Number.isFinite(value) || value <= 0 || (integer && !Number.isInteger(value))) {
    throw new BmcError('INVALID_ARGUMENT', `command runner: ${name} must be a positive ${integer ? 'integer' : 'number'}, got ${value}`);
  }
}

/** Resolves with `promise` or rejects when `signal` fires, whichever comes first. */
/** An event's runs that may start without an earlier one having settled, this one included. */
export const MAX_UNSETTLED_RUNS = 3;

/**
 * How long a run handed back waits for the event journal to count that (`handedBack`): a shutdown
 * waits for it, and the process's forced exit comes 5 s after the shutdown's deadline.
 */
const HAND_BACK_COUNT_MS = 2000;

/** What a result says of an event handed back on its last allowed delivery, which the server delivers no more. */
const LAST_DELIVERY = 'this was its last allowed delivery, so it does not go back to the stream and does not come again';

/** A step an earlier delivery ended without leaving it open, as a result's `skipped` says it: not sent by this one either. */
const EARLIER_STEP = { done: 'done', skipped: 'left out' } as const;

/** Events whose hand-back (QUEUE_FULL, HELD_BEHIND) was said, at most: beyond it they are said again (events taken by another instance are not kept for ever). */
const HAND_BACK_TOLD_MAX = 10_000;

/** The hand-backs of an event that come again unrun and are said once: the machine's queue full, or held behind its earlier event. */
type ToldHandBack = 'QUEUE_FULL' | 'HELD_BEHIND';

/** How long an action aborted by the command's end may take to say it was not sent. */
const NOT_SENT_WITHIN_MS = 1000;

/** The action's own NotSentError when it fails with one within NOT_SENT_WITHIN_MS, else `err`. */
async function notSentOr(action: Promise<unknown>, err: unknown): Promise<unknown> {
  let own: unknown = err;
  const settled = action.then(
    () => undefined,
    (e: unknown) => void (own = e instanceof NotSentError ? e : err),
  );
  return (await endedWithin(settled, NOT_SENT_WITHIN_MS)) ? own : err;
}

function untilAborted<T>(promise: Promise<T>, signal: AbortSignal, what: string): Promise<T> {
  if (signal.aborted) return Promise.reject(abortError(signal, what));
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(abortError(signal, what));
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (v) => (signal.removeEventListener('abort', onAbort), resolve(v)),
      (e: unknown) => (signal.removeEventListener('abort', onAbort), reject(e)),
    );
  });
}

export function createCommandRunner(o: CommandRunnerOptions): CommandRunner {
  positive('concurrency', o.concurrency, true);
  positive('timeoutMs', o.timeoutMs, false);
  const closeTimeoutMs = checkDuration('command runner: closeTimeoutMs', o.closeTimeoutMs, 5000, 600_000);
  if (o.ttlMs !== undefined) checkDuration('command runner: ttlMs', o.ttlMs, 0, MAX_TIMER_MS);
  const maxQueue = o.maxQueuePerMachine ?? 16;
  positive('maxQueuePerMachine', maxQueue, true);
  const attempts = checkCount('command runner: attempts', o.attempts, 2, 1, 10);
  const retryDelayMs = checkDuration('command runner: retryDelayMs', o.retryDelayMs, 1000, 60_000);
  /** the longest a plan runs, its attempts and the pauses between them, and a margin: how long its power step's mark counts at most */
  const planBoundMs = attempts * o.timeoutMs + retryDelayMs * (2 ** (attempts - 1) - 1) + 30_000;
  const orderHoldMs = checkDuration('command runner: orderHoldMs', o.orderHoldMs, 60_000, MAX_TIMER_MS);
  /** each machine's events handed back and not come back yet: its later events go back behind them */
  const holds = createOrderHolds({ holdMs: orderHoldMs, logger: o.logger });
  /**
   * events handed back QUEUE_FULL or HELD_BEHIND whose result (and count) went out already, by
   * event id: not published at every redelivery to a queue still full or a machine still held
   */
  const handBackTold = new Map<string, ToldHandBack>();
  /** whether the hand-back `code` of `plan`'s event was said already; from now on it was */
  const toldBefore = (plan: Plan & { eventId: string }, code: ToldHandBack): boolean => {
    if (handBackTold.get(plan.eventId) === code) return true;
    if (handBackTold.size >= HAND_BACK_TOLD_MAX) handBackTold.clear();
    handBackTold.set(plan.eventId, code);
    return false;
  };
  const queues = new Map<string, Task[]>();
  const running = new Set<string>();
  /** the plan running for each machine in `running`, and its end */
  const inFlight = new Map<string, { plan: Plan; done: Promise<void> }>();
  /** machines whose next plan waits for a firmware job of the machine or its BMC to end (heldForFirmware), with that wait's resume */
  const waiting = new Map<string, () => void>();
  const ready: string[] = [];
  /** one per plan accepted and not finished: what `abortAll` and the shutdown's deadline abort */
  const cuts = new Set<AbortController>();
  let stopped = false;
  let pending = 0;
  /** every plan accepted and not finished, running or queued, ends ABORTED */
  const abortAccepted = (reason: string) => {
    for (const cut of cuts) cut.abort(new BmcError('ABORTED', reason));
  };
  let idle: Array<() => void> = [];

  async function closeQuietly(bmc: Outband): Promise<void> {
    await endedWithin(bmc.close(), closeTimeoutMs);
  }

  const now = o.now ?? Date.now;

  /** How timely `plan` is now, or `laterMs` from now (its age then). */
  function timelinessAt(plan: Plan, laterMs = 0): { timeliness: Timeliness; ageMs: number } {
    if (o.ttlMs === undefined || plan.publishedAt === undefined) return { timeliness: 'fresh', ageMs: 0 };
    const ageMs = Math.max(0, now() - plan.publishedAt.getTime()) + laterMs;
    return { timeliness: timelinessOf(plan.type, ageMs, o.ttlMs, plan.command), ageMs };
  }

  /** the result of a plan not executed at all: why (code, error) and what else the result says */
  function notExecuted(plan: Plan, code: string, error: string, extra: Partial<CommandResult> = {}): CommandResult {
    return { machineId: plan.machineId, type: plan.type, command: plan.command, ok: false, code, error, ...extra, durationMs: 0, startedAt: new Date().toISOString() };
  }

  function dropStale(plan: Plan, ageMs: number): CommandResult {
    o.metrics?.eventsStale?.inc();
    o.logger.warn({ machineId: plan.machineId, command: plan.command, bmc: plan.ipmi?.address, ageMs, ttlMs: o.ttlMs }, 'stale machine command dropped when its turn came');
    const error = `${plan.command} was ${Math.round(ageMs / 1000)} s old when its turn came, older than the topic TTL of ${Math.round((o.ttlMs ?? 0) / 1000)} s; not executed`;
    return notExecuted(plan, 'STALE', error, { dropped: 'stale', ageMs });
  }

  /** Takes a queued plan that has not started out of its machine's queue, to be settled by the caller: no longer pending, nothing to cut. */
  function takeOut(queue: Task[], task: Task): Task {
    const key = task.plan.key;
    // the head of a machine waiting for a firmware job (superseded there): the wait was bound to
    // its cut, so the plan after it is looked at afresh (held again, with a cut of its own)
    const waitedAtHead = queue[0] === task && waiting.delete(key);
    queue.splice(queue.indexOf(task), 1);
    cuts.delete(task.cut);
    pending--;
    if (waitedAtHead) {
      if (queue.length > 0) ready.push(key);
      else queues.delete(key);
    }
    return task;
  }

  /**
   * Makes room for `newer` in its machine's full queue: drops the oldest queued plan that `newer`
   * replaces (it only sets a persistent boot device, `newer` sets one first and is never dropped
   * stale (age.ts supersedesQueued), and nothing between them boots the machine: every plan after
   * it in the queue only sets a boot device too). That
   * plan is settled at once as superseded (acknowledged: its effect is the newer event's to give),
   * with a result, a count and one line. False when no queued plan may go.
   */
  function supersedeFor(newer: Plan): boolean {
    const queue = queues.get(newer.key);
    if (!queue || !supersedesQueued(newer.type, newer.command, newer.actions)) return false;
    const replaceable = (task: Task) => onlySetsBootDevice(task.plan.type, timelinessAt(task.plan).timeliness, task.plan.actions);
    let first = queue.length;
    while (first > 0 && replaceable(queue[first - 1]!)) first--;
    if (first === queue.length) return false;
    const task = takeOut(queue, queue[first]!);
    const { plan } = task;
    // acknowledged: should it be in its machine's line (aborted behind a hand-back), it leaves it
    holds.passed(plan);
    o.metrics?.eventsSuperseded?.inc({ type: plan.type });
    o.logger.info({ machineId: plan.machineId, command: plan.command, eventId: plan.eventId, supersededBy: newer.command, newerEventId: newer.eventId, max: maxQueue }, "machine command superseded: its machine's queue was full and a newer event sets the boot device before anything boots the machine");
    const error = `${plan.command} not executed: superseded by the machine's newer ${newer.command}, which sets the boot device before anything boots the machine (its queue was full, METAL_BMC_COMMAND_QUEUE_MAX ${maxQueue})`;
    task.resolve(tellResult(notExecuted(plan, 'SUPERSEDED', error, { dropped: 'superseded' })));
    return true;
  }

  /**
   * A plan that finds its machine's queue full and replaces none of it goes back to the stream
   * when it can come again (an event id: JetStream), first in its machine's line so that the
   * machine's later events wait behind it (order-holds.ts): the newest events, which say what the
   * machine ends up as, are not the ones lost. Over core NATS it is refused.
   */
  function overflow(plan: Plan, held: number): CommandResult {
    if (plan.eventId === undefined || plan.lastDelivery) return refuseOverflow(plan, held);
    holds.handedBack([plan]);
    const error = `${plan.command} not run yet: ${held} commands for this machine are queued or running already (METAL_BMC_COMMAND_QUEUE_MAX ${maxQueue}); it goes back to the stream and comes again`;
    const result = notExecuted(plan, 'QUEUE_FULL', error, { handedBack: true });
    const fields = { machineId: plan.machineId, command: plan.command, bmc: plan.ipmi?.address, eventId: plan.eventId, queued: held, max: maxQueue };
    // a slow machine's queue may stay full for many of its deliveries: said, counted and published once
    if (toldBefore({ ...plan, eventId: plan.eventId }, 'QUEUE_FULL')) {
      o.logger.debug(fields, "machine command handed back again: its machine's queue is still full");
      return result;
    }
    o.metrics?.eventsRefused?.inc({ reason: 'queue-full-handed-back' });
    o.logger.warn(fields, "machine command handed back: its machine's queue is full; it comes again, and the machine's later events wait behind it");
    return tellResult(result);
  }

  /** Over core NATS, or on an event's last delivery, an overflow cannot come again: refused. */
  function refuseOverflow(plan: Plan, held: number): CommandResult {
    o.metrics?.eventsRefused?.inc({ reason: 'queue-full' });
    forget(plan);
    o.logger.warn({ machineId: plan.machineId, command: plan.command, bmc: plan.ipmi?.address, eventId: plan.eventId, queued: held, max: maxQueue, lastDelivery: plan.lastDelivery }, 'machine command refused: its machine\'s queue is full');
    const error = `${plan.command} refused: ${held} commands for this machine are queued or running already (METAL_BMC_COMMAND_QUEUE_MAX ${maxQueue})${plan.lastDelivery ? `; ${LAST_DELIVERY}` : ''}; not executed`;
    return tellResult(notExecuted(plan, 'QUEUE_FULL', error, { dropped: 'overflow' }));
  }

  /** The firmware job of this instance a plan's power step must not run beside, if any. */
  function firmwareJobFor(plan: Plan): FirmwareJobHold | undefined {
    return o.firmwareJobs !== undefined && changesPower(plan) ? o.firmwareJobs.activeFor(plan) : undefined;
  }

  /** The log fields of a plan held or refused for a firmware job. */
  function firmwareFields(plan: Plan, job: FirmwareJobHold) {
    return { machineId: plan.machineId, command: plan.command, bmc: plan.ipmi?.address, eventId: plan.eventId, firmwareJob: job.id, firmwareKind: job.kind, since: job.since, ...(job.instance !== undefined ? { firmwareInstance: job.instance } : {}) };
  }

  /** A power command while a firmware update runs on its machine or BMC: not run, settled with a result naming the job. */
  function refuseDuringFirmware(plan: Plan, job: FirmwareJobHold): CommandResult {
    return tellResult(refusalDuringFirmware(plan, job));
  }

  /** The result of a power command refused for a firmware update (the caller tells it). */
  function refusalDuringFirmware(plan: Plan, job: FirmwareJobHold): CommandResult {
    forget(plan);
    o.metrics?.eventsRefused?.inc({ reason: 'firmware-update' });
    const on = 'bmc' in job.of ? `this machine's BMC ${job.of.bmc}` : 'this machine';
    o.logger.warn(firmwareFields(plan, job), 'machine command refused: a firmware update runs on its machine or BMC, and a power change during it can leave the board unbootable');
    const where = job.instance !== undefined ? ` (on instance ${job.instance})` : '';
    const error = `${plan.command} refused: firmware update job ${job.id} (${job.kind})${where} runs on ${on} since ${job.since}; power commands wait until the update ends (a power change during a flash can leave the board unbootable): send it again then; not executed`;
    return notExecuted(plan, 'BUSY', error, { dropped: 'firmware-update' });
  }

  /** A lifecycle event that met another instance's firmware job only as its step began: handed back (nothing sent), to wait at the queue when it comes again. */
  function handBackForFirmware(plan: Plan, job: FirmwareJobHold): CommandResult {
    o.logger.info(firmwareFields(plan, job), 'machine event handed back: a firmware update another instance runs on its machine or BMC was claimed just before its power step; it waits for that update when it comes again');
    const error = `${plan.command} not run yet: firmware update job ${job.id} (${job.kind}) on instance ${job.instance} runs on its machine since ${job.since}; it goes back to the stream and waits for the update when it comes again`;
    return notExecuted(plan, 'BUSY', error, { handedBack: true });
  }

  /**
   * Another instance's firmware job claimed a moment before this plan's turn came, which its watch
   * had not delivered here yet: the plan's mark is written and the claims are brought up to the
   * bucket first (`beforePower`), then a job found is kept to: a command is refused, a lifecycle
   * event goes back to the stream to wait at the queue when it comes again; one that cannot go
   * back (its last delivery, or no event id) goes back to its machine's queue here (`waitsFor`),
   * to wait there out of its slot as one held at its turn does.
   */
  async function firmwareJobSeenLate(plan: Plan, cut: AbortSignal): Promise<{ refused?: CommandResult; waitsFor?: FirmwareJobHold; ended?: () => Promise<void> }> {
    const beforePower = o.firmwareJobs?.beforePower;
    if (beforePower === undefined || !changesPower(plan)) return {};
    // the mark is written, then the claims caught up with: of the mark and a new claim, the later sees the earlier
    const ended = await beforePower(plan, planBoundMs);
    // another instance's job only: this instance's own were asked at the queue, and one accepted
    // since waits for this plan (powerSettled), which waiting for it in turn would deadlock
    const found = cut.aborted ? undefined : firmwareJobFor(plan);
    const job = found?.instance === undefined ? undefined : found;
    if (job === undefined) return { ended };
    // not marked while it waits (the mark counts only the plan's own run; a job it waited for
    // must not wait for it in turn): marked again, and the claims asked again, when it runs
    await ended();
    if (DURING_FIRMWARE_UPDATE[plan.type] === 'refuse') return { refused: refusalDuringFirmware(plan, job) };
    // an event that can come again goes back to the stream: its next delivery finds the claim at
    // the queue and waits there (a hold may last hours); one that cannot waits at the queue now
    if (plan.eventId !== undefined && !plan.lastDelivery) return { refused: handBackForFirmware(plan, job) };
    return { waitsFor: job };
  }

  /**
   * Whether the machine's next plan does not run now because a firmware job runs on its machine
   * or BMC and the plan changes power (DURING_FIRMWARE_UPDATE): a command is refused and settled
   * here; a lifecycle event waits, out of `ready` and holding no slot, until the job ends, and is
   * looked at again then. A plan already cut off (a shutdown, a lost lead) is not held: it runs
   * on to end ABORTED and go back to the stream.
   */
  function heldForFirmware(key: string, queue: Task[], task: Task): boolean {
    const job = task.cut.signal.aborted ? undefined : firmwareJobFor(task.plan);
    if (job === undefined) return false;
    if (DURING_FIRMWARE_UPDATE[task.plan.type] === 'wait') {
      waitForFirmware(key, task, job);
      return true;
    }
    takeOut(queue, task);
    holds.passed(task.plan);
    if (queue.length > 0) ready.push(key);
    else queues.delete(key);
    task.resolve(refuseDuringFirmware(task.plan, job));
    if (pending === 0) for (const wake of idle.splice(0)) wake();
    return true;
  }

  /** Takes the machine back into `ready` once `job` ended or the task is cut off; its later plans queue behind it meanwhile. */
  function waitForFirmware(key: string, task: Task, job: FirmwareJobHold): void {
    // said once per job it waits for (another job may follow the first); timed from the first
    if (task.waited?.job.id !== job.id) {
      task.waited = { job, since: task.waited?.since ?? performance.now() };
      o.logger.info(firmwareFields(task.plan, job), 'machine event held: its power step waits until the firmware update of its machine or BMC ends');
    }
    const signal = task.cut.signal;
    // once only, and only for this wait: the job's end after a cut (or a cut after the end) finds another wait or none
    const resume = () => {
      if (waiting.get(key) !== resume) return;
      waiting.delete(key);
      signal.removeEventListener('abort', resume);
      // stopping, the job's end may be the stop's own (a hold after an outcome unknown ends at
      // once) while the BMC may still be flashing: the plan is cut, ends ABORTED and goes back
      if (stopped && !signal.aborted) task.cut.abort(new BmcError('ABORTED', `metal-bmc is stopping; ${task.plan.command} waited for firmware job ${job.id} and goes back to the stream`));
      ready.push(key);
      pump();
    };
    waiting.set(key, resume);
    signal.addEventListener('abort', resume, { once: true });
    void job.ended.then(resume, resume);
    // cut already (a lost lead while its step gave up its mark), or stopping (a drain runs no power
    // step of a held machine; the stop may end the hold while the BMC still flashes): looked at
    // again now, to end ABORTED and go back to the stream, not at the job's end
    if (signal.aborted || stopped) resume();
  }

  /** Stopping: every plan waiting for a firmware job is cut now (ABORTED, back to the stream), never run at the job's end. */
  function handBackWaiting(): void {
    for (const resume of [...waiting.values()]) resume();
  }

  /** The event of `plan` is settled here or runs now: a later overflow of it is said again. */
  function forget(plan: Plan): void {
    if (plan.eventId !== undefined) handBackTold.delete(plan.eventId);
  }

  /** A plan of a machine under an order hold: not run, handed back behind the held event (refused on its last delivery). */
  function handBackBehind(plan: Plan, hold: HeldEvent): CommandResult {
    if (plan.lastDelivery) {
      forget(plan);
      o.logger.error({ machineId: plan.machineId, command: plan.command, eventId: plan.eventId, heldBehind: hold.command, heldEventId: hold.eventId }, 'machine command refused: an earlier event of its machine went back to the stream and has not come back, and this was its last allowed delivery');
      const error = `${plan.command} not run: the machine's earlier ${hold.command} went back to the stream and has not come back, and it may not run before it; ${LAST_DELIVERY}; not executed`;
      return tellResult(notExecuted(plan, 'HELD_BEHIND', error));
    }
    const fields = { machineId: plan.machineId, command: plan.command, eventId: plan.eventId, heldBehind: hold.command, heldEventId: hold.eventId };
    const error = `${plan.command} not run yet: the machine's earlier ${hold.command} went back to the stream and has not come back; this one goes back too, to run after it`;
    const result = notExecuted(plan, 'HELD_BEHIND', error, { handedBack: true });
    // held for many of its deliveries while the earlier one is out: said and published once
    if (plan.eventId !== undefined && toldBefore({ ...plan, eventId: plan.eventId }, 'HELD_BEHIND')) {
      o.logger.debug(fields, 'machine command handed back again: an earlier event of its machine has still not come back');
      return result;
    }
    o.logger.info(fields, "machine command handed back: an earlier event of its machine went back to the stream and has not come back yet");
    return tellResult(result);
  }

  function tellResult(result: CommandResult): CommandResult {
    try {
      o.onResult?.(result);
    } catch (err) {
      o.logger.error({ err: (err as Error).message }, 'command result handler failed');
    }
    return result;
  }

  /**
   * Claims a non-idempotent step in the event journal before it is sent: the hold when this
   * delivery sends it, `doneBefore` when an earlier one sent it and had its answer (not sent again); an
   * earlier delivery's claim throws EarlierDeliveryError, a journal that cannot be used
   * JournalUnavailableError.
   */
  async function claimStep(journal: StepJournal, plan: Plan, eventId: string, step: number, action: BmcAction): Promise<StepHold | { before: StepRecord & { state: keyof typeof EARLIER_STEP } }> {
    let claimed;
    try {
      claimed = await journal.claim(eventId, step);
    } catch (err) {
      throw new JournalUnavailableError(action, err);
    }
    if ('go' in claimed) return claimed.go;
    const fields = { machineId: plan.machineId, command: plan.command, step: describeAction(action), eventId, earlier: describeRecord(claimed.seen) };
    const { state } = claimed.seen;
    if (state === 'done' || state === 'skipped') {
      o.logger.info(fields, `step of a machine event ${EARLIER_STEP[state]} by an earlier delivery; not sent`);
      return { before: { ...claimed.seen, state } };
    }
    throw new EarlierDeliveryError(action, claimed.seen);
  }

  /**
   * One attempt of a plan. `closing` gets the close of a BMC connection left to close after a cut
   * (a shutdown, a lost lead): its run is handed back, and the hand-back is counted while the BMC
   * closes, not after (a close may take closeTimeoutMs, as long as the shutdown's forced exit waits
   * after its deadline); the caller waits for both.
   */
  async function execute(plan: Plan, cut: AbortSignal, newerPending: () => boolean, closing: Array<Promise<void>>): Promise<CommandResult> {
    const { timeliness, ageMs } = timelinessAt(plan);
    if (timeliness === 'stale') return dropStale(plan, ageMs);
    if (timeliness === 'late') {
      o.metrics?.eventsLate?.inc({ type: plan.type });
      o.logger.info({ machineId: plan.machineId, type: plan.type, ageMs, ttlMs: o.ttlMs }, 'late lifecycle event executed (published while metal-bmc was away)');
    }
    const skipped: string[] = [];
    const started = Date.now();
    const what = `${plan.command} for machine ${plan.machineId || plan.key}`;
    // a timer of our own: AbortSignal.timeout() reachable only through AbortSignal.any() may be collected before it fires
    const commandDeadline = deadline(o.timeoutMs, what, cut);
    const signal = commandDeadline.signal;
    let outcome: CommandOutcome = 'ok';
    let failure: unknown;
    /** the non-idempotent action under way when the plan failed, if any */
    let sent: BmcAction | undefined;
    /** its claim in the event journal */
    let hold: StepHold | undefined;
    if (plan.actions.length > 0) {
      let bmc: Outband | undefined;
      try {
        if (!plan.ipmi) throw new BmcError('INVALID_ARGUMENT', `${what}: the event has no BMC address`);
        if (signal.aborted) throw abortError(signal, what);
        const connecting = Promise.resolve().then(() => o.connect(plan.ipmi!, { signal }));
        // a connection that arrives after the deadline still gets closed
        connecting.then((b) => (signal.aborted && b !== bmc ? closeQuietly(b) : undefined)).catch(() => undefined);
        bmc = await untilAborted(connecting, signal, what);
        for (const [step, action] of plan.actions.entries()) {
          if (skipsAction(plan.type, timeliness, newerPending(), action)) {
            skipped.push(describeAction(action));
            o.metrics?.powerStepsSkipped?.inc({ type: plan.type });
            o.logger.info({ machineId: plan.machineId, type: plan.type, step: describeAction(action) }, 'power step of a late event skipped: a newer event for the machine is pending');
            // a later delivery of this event (its ack lost) may find nothing newer pending: it leaves the step out too
            if (o.journal?.skipped && plan.eventId !== undefined) await o.journal.skipped(plan.eventId, step);
            continue;
          }
          sent = isIdempotent(action) ? undefined : action;
          if (sent && o.journal && plan.eventId !== undefined) {
            const claimed = await claimStep(o.journal, plan, plan.eventId, step, sent);
            if ('before' in claimed) {
              skipped.push(`${describeAction(action)} (${EARLIER_STEP[claimed.before.state]} by an earlier delivery: ${describeRecord(claimed.before)})`);
              sent = undefined;
              continue;
            }
            hold = claimed;
            if (signal.aborted) throw notSent(abortError(signal, what));
          }
          const acting = runAction(bmc, action, { signal, deadlineAt: started + o.timeoutMs });
          try {
            await untilAborted(acting, signal, `${what}: ${describeAction(action)}`);
          } catch (err) {
            // the deadline or a shutdown came first: an action it caught before its acting request
            // says so at once (NotSentError), and was then not sent
            throw sent !== undefined && signal.aborted ? await notSentOr(acting, err) : err;
          }
          sent = undefined;
          await hold?.done();
          hold = undefined;
        }
      } catch (err) {
        failure = err;
        const code = signal.aborted ? abortError(signal, what).code : err instanceof BmcError ? err.code : undefined;
        outcome = code === 'TIMEOUT' ? 'timeout' : code === 'ABORTED' ? 'aborted' : 'error';
        if (sent !== undefined && !provesNotDone(signal.aborted, err)) outcome = 'unknown';
        // provably not sent: a later delivery (or attempt) may take the step
        else await hold?.release();
      } finally {
        if (bmc) {
          const closed = closeQuietly(bmc);
          if (cut.aborted) closing.push(closed);
          else await closed;
        }
      }
    }
    commandDeadline.dispose();
    const durationMs = Date.now() - started;
    const result: CommandResult = { machineId: plan.machineId, type: plan.type, command: plan.command, ok: outcome === 'ok', durationMs, startedAt: new Date(started).toISOString() };
    if (timeliness === 'late') Object.assign(result, { late: true, ageMs });
    if (skipped.length > 0) result.skipped = skipped;
    if (failure !== undefined) {
      result.error = failure instanceof Error ? failure.message : String(failure);
      if (failure instanceof BmcError) result.code = failure.code;
      // the event journal, the lease file not read yet: tried again later, not refused; on its
      // last delivery it cannot come again, and the result says so
      if (failure instanceof HandBackError) {
        if (plan.lastDelivery) result.error = `${result.error}; but ${LAST_DELIVERY}`;
        else result.handedBack = true;
      }
    }
    if (outcome === 'unknown') {
      result.outcomeUnknown = true;
      result.code = 'OUTCOME_UNKNOWN';
      result.error =
        failure instanceof EarlierDeliveryError
          ? failure.message
          : `${describeAction(sent!)} was sent to the BMC and no answer came that says it did not happen (${result.error ?? 'no detail'}): it may have happened; not retried, check the machine`;
    }
    o.metrics?.commands.inc({ command: plan.command, outcome });
    o.metrics?.commandSeconds.observe({ command: plan.command }, durationMs / 1000);
    const fields = { machineId: plan.machineId, command: plan.command, bmc: plan.ipmi?.address, outcome, durationMs };
    if (result.ok) o.logger.info(fields, 'machine command done');
    else if (outcome === 'unknown') o.logger.error({ ...fields, code: result.code, err: result.error }, 'machine command outcome unknown: no answer of the BMC says a non-idempotent action did not happen; not retried');
    else o.logger.warn({ ...fields, code: result.code, err: result.error }, 'machine command failed');
    return result;
  }

  /**
   * Runs a plan, and again while its failure is one another attempt may fix (`isRetryable`), up
   * to `attempts` tries with a growing pause, all before the machine's next plan. Retrying here
   * rather than by redelivery (a nak) keeps a machine's commands in order: a nak'd event came
   * back behind the events queued after it, so a one-time BIOS boot that failed once ran after
   * the CYCLE meant to use it (and fired on some later reboot), and an OFF that failed once
   * after the ON that followed it. A command past its TTL is not tried again (it would fire late),
   * nor is anything once the shutdown aborts the runner; a lifecycle event is, as it would have
   * run late. Only the last attempt's result is published; `attempts` says there were more.
   */
  async function executeWithRetries(plan: Plan, cut: AbortSignal, newerPending: () => boolean, closing: Array<Promise<void>>): Promise<CommandResult> {
    let began = now();
    let result = await execute(plan, cut, newerPending, closing);
    for (let attempt = 2; attempt <= attempts && isRetryable(result); attempt++) {
      const pauseMs = retryDelayMs * 2 ** (attempt - 2);
      const fields = { machineId: plan.machineId, command: plan.command, bmc: plan.ipmi?.address, code: result.code, attempt, pauseMs };
      // already stale: said by the check after the pause, as it was before this one
      if (!endsPastTtl(plan, 0) && endsPastTtl(plan, pauseMs + (now() - began))) {
        o.logger.warn({ ...fields, ttlMs: o.ttlMs }, 'machine command not tried again: another attempt as long as the last would end past the topic TTL');
        break;
      }
      o.logger.info(fields, 'machine command failed; trying it again before the machine\'s next command');
      try {
        await sleep(pauseMs, cut, `retry of ${plan.command} for machine ${plan.machineId || plan.key}`);
      } catch {
        o.logger.warn(fields, 'machine command not tried again here: aborted (metal-bmc is shutting down, or another instance leads now); it goes back to the stream');
        // cut off like a plan the abort found running: ABORTED goes back (nak), the last failure did not end it
        return { ...result, code: 'ABORTED', error: `${result.error ?? plan.command}; not tried again here: aborted`, ...(attempt > 2 ? { attempts: attempt - 1 } : {}) };
      }
      const { timeliness, ageMs } = timelinessAt(plan);
      if (timeliness === 'stale') {
        o.logger.warn({ ...fields, ageMs, ttlMs: o.ttlMs }, 'machine command not tried again: older than the topic TTL now');
        break;
      }
      began = now();
      result = { ...(await execute(plan, cut, newerPending, closing)), attempts: attempt };
    }
    return result;
  }

  /**
   * Whether a command would be stale (past the TTL, where it is not run) `moreMs` from now. A
   * failed attempt that took long (a dead BMC: ~20 s of connect timeouts, Redfish then IPMI) is
   * not tried again when another as long would end past the TTL: it would hold a runner slot
   * for nothing, and a rack of dead BMCs given commands at once held every slot for two rounds
   * of timeouts while other machines' commands waited behind them and went stale. A failure that
   * came quickly is still tried again; so is a lifecycle event or a boot device (late, not stale).
   */
  function endsPastTtl(plan: Plan, moreMs: number): boolean {
    return timelinessAt(plan, moreMs).timeliness === 'stale';
  }

  /**
   * One delivery's run of a plan. With the event journal, its start is counted first: an event
   * whose earlier runs started and never settled (each ended the process, or its ack was lost)
   * more than MAX_UNSETTLED_RUNS - 1 times is not run again but terminated, so a command that
   * crashes the daemon does not crash every instance for its 15 deliveries; a run handed back
   * (nak'ed by choice) is counted as such, not as one that never settled.
   */
  async function runDelivery(plan: Plan, cut: AbortSignal, newerPending: () => boolean): Promise<CommandResult | BackToQueue> {
    const { journal } = o;
    const eventId = plan.eventId;
    const before = await settledBefore(plan);
    if (before !== undefined) return before;
    const power = await firmwareJobSeenLate(plan, cut);
    if (power.refused !== undefined) return power.refused;
    if (power.waitsFor !== undefined) return { backToQueue: power.waitsFor };
    try {
      if (journal?.started !== undefined && eventId !== undefined) {
        let runs: number | undefined;
        try {
          runs = await journal.started(eventId);
        } catch (err) {
          o.logger.warn({ err, machineId: plan.machineId, command: plan.command, eventId }, 'event journal: this run of the event not counted; it runs');
        }
        if (runs !== undefined && runs > MAX_UNSETTLED_RUNS) return refuseUnsettled(plan, runs);
      }
      const closing: Array<Promise<void>> = [];
      const result = await executeWithRetries(plan, cut, newerPending, closing);
      const handedBack = eventId !== undefined && (result.code === 'ABORTED' || result.handedBack) ? countHandBack(plan, eventId) : undefined;
      await Promise.all([handedBack, ...closing]);
      return result;
    } finally {
      // the other instances' firmware jobs need no longer wait for this step
      await power.ended?.();
    }
  }

  /**
   * An event an earlier delivery settled (the journal's settled key: its ack was lost, a NATS node
   * gone or a process killed before it went out): not run again, acknowledged again, told to no
   * one. Run again, a late delete found without the newer event that made it skip its RESET
   * would set PXE and reset the machine after that event set DISK. A journal that cannot be read
   * lets it run (as a run count that cannot be written does): each RESET is still claimed first.
   */
  async function settledBefore(plan: Plan): Promise<CommandResult | undefined> {
    const eventId = plan.eventId;
    if (o.journal?.settledBefore === undefined || eventId === undefined) return undefined;
    let record;
    try {
      record = await o.journal.settledBefore(eventId);
    } catch (err) {
      o.logger.warn({ err, machineId: plan.machineId, command: plan.command, eventId }, 'event journal: whether the event settled before cannot be read; it runs');
      return undefined;
    }
    if (record === undefined) return undefined;
    o.metrics?.eventsSettledBefore?.inc({ seen: 'journal' });
    o.logger.info({ machineId: plan.machineId, command: plan.command, eventId, settledBy: describeRecord(record) }, 'machine event settled by an earlier delivery (its ack was lost); acknowledged again, not run');
    return { machineId: plan.machineId, type: plan.type, command: plan.command, ok: true, settledBefore: describeRecord(record), durationMs: 0, startedAt: new Date().toISOString() };
  }

  /**
   * Counts a run handed back in the event journal, waiting HAND_BACK_COUNT_MS at most: at a
   * shutdown this runs before the runner's drain ends, so before the NATS connection closes. One
   * not counted (metal_bmc_event_handbacks_uncounted_total) is taken by a later delivery for a run
   * that never settled; the journal logs a count that failed, a count that did not answer in time
   * is logged here.
   */
  async function countHandBack(plan: Plan, eventId: string): Promise<void> {
    const count = o.journal?.handedBack;
    if (count === undefined) return;
    let counted = false;
    const answered = await endedWithin(
      count.call(o.journal, eventId).then((ok) => void (counted = ok)),
      HAND_BACK_COUNT_MS,
    );
    if (counted) return;
    o.metrics?.handBacksUncounted?.inc();
    if (!answered) o.logger.warn({ machineId: plan.machineId, command: plan.command, eventId, waitedMs: HAND_BACK_COUNT_MS }, 'event journal: a hand-back not counted in time; a later delivery counts this run as one that never settled');
  }

  function refuseUnsettled(plan: Plan, runs: number): CommandResult {
    o.metrics?.commands.inc({ command: plan.command, outcome: 'error' });
    o.logger.error({ machineId: plan.machineId, command: plan.command, bmc: plan.ipmi?.address, eventId: plan.eventId, runs }, 'machine event not run again: its earlier runs started and never settled (each ended the process, or its answer to NATS was lost); terminated');
    return notExecuted(plan, 'UNSETTLED_RUNS', `${plan.command}: this event started ${runs - 1} times before without its run settling (the process ended or its answer to NATS was lost each time); not run again`);
  }

  function pump(): void {
    while (running.size < o.concurrency && ready.length > 0) {
      const key = ready.shift()!;
      const queue = queues.get(key)!;
      if (heldForFirmware(key, queue, queue[0]!)) continue;
      const task = queue.shift()!;
      if (task.waited) o.logger.info({ machineId: task.plan.machineId, command: task.plan.command, eventId: task.plan.eventId, firmwareJob: task.waited.job.id, waitedMs: Math.round(performance.now() - task.waited.since), cut: task.cut.signal.aborted }, 'machine event held for a firmware update runs now');
      running.add(key);
      const done = runDelivery(task.plan, task.cut.signal, () => (queues.get(key)?.length ?? 0) > 0).then((result) => {
        running.delete(key);
        inFlight.delete(key);
        const rest = queues.get(key)!;
        // nothing sent, and it cannot go back to the stream: first in its machine's queue again,
        // waiting there for the job out of its slot; its later plans wait behind it
        if ('backToQueue' in result) {
          rest.unshift(task);
          // stopping meanwhile: cut there at once, as every plan waiting was at the stop
          waitForFirmware(key, task, result.backToQueue);
          pump();
          return;
        }
        cuts.delete(task.cut);
        // an event handed back comes again behind the machine's later events: they go back with it,
        // and those that come until it is back go back too (order-holds.ts), so that none runs before
        // it (a CYCLE handed back must not run after the OFF sent next)
        if (result.handedBack) {
          // one behind it on its last delivery cannot go back (the stream would not deliver it again):
          // refused now, as one held behind an event out in the stream is, with a result saying so
          for (const later of rest.filter((t) => t.plan.lastDelivery)) {
            takeOut(rest, later).resolve(handBackBehind(later.plan, { eventId: task.plan.eventId ?? '', command: task.plan.command, until: 0 }));
          }
          holds.handedBack([task.plan, ...rest.map((later) => later.plan)]);
          for (const later of rest) later.cut.abort(new BmcError('ABORTED', `handed back behind the machine's earlier ${task.plan.command}, which went back to the stream`));
        }
        // settled here (done, refused, dropped stale when its turn came, even after an abort behind a
        // hand-back): it does not come back, so its machine's later events must not wait for it
        else if (!goesBack(result)) holds.passed(task.plan);
        if (rest.length > 0) ready.push(key);
        else queues.delete(key);
        pending--;
        try {
          // an event settled before had its result told then
          if (result.settledBefore === undefined) o.onResult?.(result);
        } catch (err) {
          o.logger.error({ err }, 'command result handler failed');
        }
        task.resolve(result);
        if (pending === 0) for (const wake of idle.splice(0)) wake();
        pump();
      });
      inFlight.set(key, { plan: task.plan, done: done.catch(() => undefined) });
    }
  }

  return {
    submit(plan) {
      if (stopped) return Promise.reject(new BmcError('CLOSED', 'command runner is stopped'));
      const hold = holds.check(plan);
      if (hold) return Promise.resolve(handBackBehind(plan, hold));
      const firmwareJob = firmwareJobFor(plan);
      if (firmwareJob && DURING_FIRMWARE_UPDATE[plan.type] === 'refuse') return Promise.resolve(refuseDuringFirmware(plan, firmwareJob));
      const held = (queues.get(plan.key)?.length ?? 0) + (running.has(plan.key) ? 1 : 0);
      if (held >= maxQueue && !supersedeFor(plan)) return Promise.resolve(overflow(plan, held));
      forget(plan);
      return new Promise<CommandResult>((resolve) => {
        pending++;
        const queue = queues.get(plan.key);
        const cut = new AbortController();
        cuts.add(cut);
        if (queue) queue.push({ plan, resolve, cut });
        else {
          queues.set(plan.key, [{ plan, resolve, cut }]);
          ready.push(plan.key);
        }
        pump();
      });
    },
    get pending() {
      return pending;
    },
    powerSettled(key, bmc) {
      const ends = [...inFlight.values()].filter(({ plan }) => changesPower(plan) && (plan.key === key || (bmc !== '' && bmcKeyOf(plan) === bmc))).map((r) => r.done);
      return ends.length === 0 ? undefined : Promise.all(ends).then(() => undefined);
    },
    passed(plan) {
      holds.passed(plan);
      forget(plan);
    },
    stop() {
      stopped = true;
      handBackWaiting();
    },
    abortAll(reason) {
      // what was handed back goes to whoever pulls next (another leader): nothing here waits for it
      holds.clear();
      handBackTold.clear();
      if (pending === 0) return;
      o.logger.warn({ pending, reason }, 'aborting the machine commands accepted so far');
      abortAccepted(reason);
    },
    async drain(deadlineMs) {
      stopped = true;
      handBackWaiting();
      if (pending === 0) return true;
      const done = new Promise<void>((resolve) => idle.push(resolve));
      if (await endedWithin(done, deadlineMs)) return true;
      o.logger.warn({ pending }, 'shutdown deadline reached; aborting machine commands still running');
      abortAccepted('metal-bmc is shutting down');
      await done;
      idle = [];
      return false;
    },
  };
}
