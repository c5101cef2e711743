/**
 * From message bytes to a disposition: decode, plan, run, and decide whether the message
 * is done (`ack`), goes to another instance (`nak`) or must never come back (`term`).
 * Knows nothing of NATS; the bus calls it with the bytes and acts on the answer.
 */
import { checkDuration, endedWithin, MAX_TIMER_MS } from '../deadline.js';
import { isBmcError } from '../errors.js';
import type { Logger } from '../log.js';
import { timelinessOf } from './age.js';
import { decodeMachineEvent, EventDecodeError, planEvent } from './event.js';
import type { FirmwareJobs } from './firmware-jobs.js';
import type { CommandMetrics } from './metrics.js';
import { goesBack, type CommandResult, type CommandRunner } from './runner.js';
import type { StepJournal } from './step-journal.js';

export type Disposition = 'ack' | 'term' | 'nak';

export interface EventMeta {
  publishedAt: Date;
  deliveryCount: number;
  /** the event's id in the event journal (JetStream); none over core NATS */
  eventId?: string;
  /** the server delivers the event no more after this delivery (JetStream: its max_deliver-th) */
  lastDelivery?: boolean;
}

export type EventHandler = (bytes: Uint8Array, meta: EventMeta) => Promise<Disposition>;

/**
 * A failed plan is final when the runner hands it back: the runner tried it again already where
 * another attempt may help (`isRetryable`), before the machine's next plan, and its result is
 * published. It is terminated, never redelivered: a redelivery would run behind the commands
 * queued after it for the same machine. The exceptions: a plan the shutdown cut off (ABORTED, not
 * outcome unknown): the commands behind it are cut off too and go back with it, so another
 * instance runs them in their order; and a step not sent because the event journal could not be
 * used (`handedBack`): it is tried again once the journal works, not lost.
 */
export function dispositionOf(result: CommandResult): Disposition {
  // superseded: a newer event of the machine gives its effect, nothing is left to do for it
  if (result.ok || result.dropped === 'superseded') return 'ack';
  return goesBack(result) ? 'nak' : 'term';
}

export interface EventHandlerOptions {
  runner: CommandRunner;
  logger: Logger;
  metrics?: Pick<CommandMetrics, 'eventsRejected'> & Partial<Pick<CommandMetrics, 'eventsStale' | 'eventAgeSeconds'>>;
  /** UPDATE-FIRMWARE runs as a background job here instead of in the runner (acknowledged when accepted) */
  firmware?: Pick<FirmwareJobs, 'start'>;
  /** the topic TTL: command events older than this are dropped on receipt (the runner checks again when their turn comes) */
  ttlMs?: number;
  /** the clock of the age: the NATS server's, which stamped the events (server-clock.ts); default this host's */
  now?: () => number;
  /** the event journal: an event the runner settled is written settled there before its ack (step-journal.ts `settled`) */
  journal?: Pick<StepJournal, 'settled'>;
}

/** How long an ack waits for the event journal to say the event settled: a NATS that does not answer holds no ack for longer. */
const SETTLED_WRITE_MS = 2000;

/** an event from the future by more than this: this host's clock is behind the NATS server's */
const SKEW_TOLERANCE_MS = 2000;
const SKEW_WARN_EVERY_MS = 600_000;

/**
 * Warns (at most every ten minutes) when an event's timestamp lies ahead of the clock its age is
 * taken on (the NATS server's as measured, bus/server-clock.ts, or this host's before a
 * measurement or over core NATS): the events look younger than they are (a stale command would
 * run). With a measured clock that means the node that stamped the events (the stream's leader) is
 * out of step with the one measured (the journal bucket's leader), or no measurement worked yet.
 */
function clockSkewWarning(logger: Logger, now: () => number = () => performance.now()): (ageMs: number) => void {
  let warnedAt: number | undefined;
  return (ageMs) => {
    if (ageMs >= -SKEW_TOLERANCE_MS) return;
    if (warnedAt !== undefined && now() - warnedAt < SKEW_WARN_EVERY_MS) return;
    warnedAt = now();
    logger.warn({ aheadMs: -ageMs }, "a machine event's NATS timestamp lies ahead of the clock its age is taken on (the NATS server's as measured from here, or this host's before a measurement: see metal_bmc_nats_clock_offset_seconds; in a cluster, the node that stored the event may be out of step with the others): keep every clock in step with NTP; event ages and the topic TTL are off by as much");
  };
}

/**
 * The handler submits to the runner before its first await, so events handed to it in
 * order keep their order per machine.
 */
export function createEventHandler(o: EventHandlerOptions): EventHandler {
  if (o.ttlMs !== undefined) checkDuration('createEventHandler: ttlMs', o.ttlMs, 0, MAX_TIMER_MS);
  const clockSkew = clockSkewWarning(o.logger);
  return async (bytes, meta) => {
    let plan;
    try {
      plan = planEvent(decodeMachineEvent(bytes));
    } catch (err) {
      const reason = err instanceof EventDecodeError ? err.reason : 'not-json';
      o.metrics?.eventsRejected.inc({ reason });
      // the body may carry a BMC password: log its size, never its content
      o.logger.warn({ reason, err, bytes: bytes.length, deliveryCount: meta.deliveryCount }, 'machine event rejected');
      return 'term';
    }
    plan.publishedAt = meta.publishedAt;
    if (meta.eventId !== undefined) plan.eventId = meta.eventId;
    if (meta.lastDelivery === true) plan.lastDelivery = true;
    const ageMs = (o.now ?? Date.now)() - meta.publishedAt.getTime();
    o.metrics?.eventAgeSeconds?.observe(ageMs / 1000);
    clockSkew(ageMs);
    if (o.ttlMs !== undefined && timelinessOf(plan.type, ageMs, o.ttlMs, plan.command) === 'stale') {
      o.metrics?.eventsStale?.inc();
      // an age is the NATS server's timestamp against its clock as measured from here (or this
      // host's clock before a measurement): say so, a stale drop may be a clock out of step
      o.logger.warn({ machineId: plan.machineId, command: plan.command, ageMs, ttlMs: o.ttlMs, deliveryCount: meta.deliveryCount, ageIs: "the NATS server's timestamp against the server's clock as measured here (metal_bmc_nats_clock_offset_seconds): if every event is stale, compare the clocks" }, 'stale machine event dropped');
      // a handed-back event that came back stale: its machine's later events need not wait for it
      o.runner.passed?.(plan);
      return 'term';
    }
    if (plan.actions.length === 0) {
      o.logger.debug({ machineId: plan.machineId, type: plan.type }, 'machine event needs no BMC action');
      return 'ack';
    }
    if (o.firmware && plan.actions.some((a) => a.kind === 'firmware')) {
      const started = await o.firmware.start(plan);
      // refused because this instance is stopping, or the event journal cannot be used (not published): tried again later
      return started.accepted ? 'ack' : started.handBack || started.event.code === 'CLOSED' ? 'nak' : 'term';
    }
    let result: CommandResult;
    try {
      result = await o.runner.submit(plan);
    } catch (err) {
      // the runner is stopping: leave the event to another instance
      if (isBmcError(err, 'CLOSED')) return 'nak';
      throw err;
    }
    const disposition = dispositionOf(result);
    await recordSettled(o, plan.eventId, disposition, result);
    return disposition;
  };
}

/**
 * Writes an event the runner settled as settled in the journal, before the bus acknowledges it, so
 * that a delivery after a lost ack is acknowledged again instead of run again (runner.ts
 * `settledBefore`). Bounded by SETTLED_WRITE_MS: the ack goes out either way.
 */
async function recordSettled(o: EventHandlerOptions, eventId: string | undefined, disposition: Disposition, result: CommandResult): Promise<void> {
  const write = o.journal?.settled;
  if (write === undefined || eventId === undefined || disposition === 'nak' || result.settledBefore !== undefined) return;
  if (!(await endedWithin(write.call(o.journal, eventId), SETTLED_WRITE_MS))) o.logger.warn({ eventId, waitedMs: SETTLED_WRITE_MS }, 'event journal: an event settled not written as such in time; acknowledged all the same');
}

/** The result event for a machine event refused because too many were in flight (core NATS); what can be read of the event names it. */
export function overflowResult(bytes: Uint8Array, maxInFlight: number, now: () => number = Date.now): CommandResult {
  let machineId = '';
  let type: CommandResult['type'] = 'command';
  let command = 'unknown';
  try {
    const plan = planEvent(decodeMachineEvent(bytes));
    ({ machineId, type, command } = plan);
  } catch {
    // an undecodable event is refused just the same
  }
  return {
    machineId,
    type,
    command,
    ok: false,
    code: 'OVERLOADED',
    error: `${command} refused: ${maxInFlight} machine events are in flight already (METAL_BMC_COMMAND_MAX_IN_FLIGHT); not executed`,
    dropped: 'overflow',
    durationMs: 0,
    startedAt: new Date(now()).toISOString(),
  };
}
