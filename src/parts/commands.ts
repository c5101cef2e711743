/**
 * Wiring of the command path: NATS subscription → event handler → runner → BMC, results
 * back onto NATS. `startCommandService` takes a connection (tests, the lab); `commandsPart`
 * is the daemon part that connects from the configuration in the background, so that a NATS
 * outage at startup does not hold up the rest of the daemon.
 */
import { endedWithin } from '../deadline.js';
import type { NatsConnection } from '@nats-io/transport-node';
import type { BusConnection } from '../bus/connection.js';
import { defaultDurableName, subscribeMachineEvents, type MachineEventSubscription } from '../bus/machine-events.js';
import { publishResult } from '../bus/results.js';
import { createFirmwareClaimView, type FirmwareClaimView } from '../bus/firmware-claim-view.js';
import { createFirmwareClaims, firmwareBucketName, type FirmwareClaims } from '../bus/firmware-claims.js';
import { createPowerMarks, type PowerMarks } from '../bus/power-marks.js';
import { warningsEvery } from '../warnings-every.js';
import { jetstreamOrUndefined } from '../bus/jetstream.js';
import { openKvBucket, type KvBucket } from '../bus/kv.js';
import { createServerClock, type ServerClock } from '../bus/server-clock.js';
import { createEventJournal, eventJournalBucketName, eventJournalMaxAgeMs } from '../bus/event-journal.js';
import type { PartFactory } from '../daemon.js';
import type { Logger } from '../log.js';
import { createOutbandPool } from '../outband/pool.js';
import { createEventHandler, overflowResult } from '../commands/handler.js';
import { createCommandMetrics, type CommandMetrics } from '../commands/metrics.js';
import { createCommandRunner, type CommandResult, type CommandRunner, type ConnectBmc, type FirmwareJobHold } from '../commands/runner.js';
import { createFirmwareJobs, type FirmwareEvent, type FirmwareJobs, type PowerStepElsewhere } from '../commands/firmware-jobs.js';
import { openEventPositionStore } from '../commands/event-position.js';
import { checkFirmwareUrl, guardedLookup } from '../commands/firmware-url.js';
import { createTargetGuard } from '../commands/targets.js';
import type { StepJournal } from '../commands/step-journal.js';
import { bmcKeyOf, type EventIpmi, type Plan } from '../commands/event.js';
import type { LedMemory } from '../report/led-memory.js';
import { Agent, type Dispatcher } from 'undici';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { acquireBus } from './bus.js';

const DEFAULT_RETENTION_MS = 24 * 3600_000;

export interface CommandServiceOptions {
  nc: NatsConnection;
  subject: string;
  resultSubject: string;
  ttlMs: number;
  /** the stream's max_age (METAL_BMC_LIFECYCLE_RETENTION); default 24 h */
  retentionMs?: number;
  /** num_replicas of the stream (METAL_BMC_STREAM_REPLICAS); default 1 */
  replicas?: number;
  durableName: string;
  /** default: the command timeout or the TTL, the longer, plus 10 s (`consumerAckWaitMs`) */
  ackWaitMs?: number;
  maxInFlight?: number;
  /** commands per machine, the running one included (METAL_BMC_COMMAND_QUEUE_MAX) */
  maxQueuePerMachine?: number;
  mode?: 'auto' | 'core';
  connect: ConnectBmc;
  concurrency: number;
  timeoutMs: number;
  logger: Logger;
  metrics?: CommandMetrics;
  /** told every result of the runner and every firmware job event (the daemon's status); must not throw */
  onResult?: (result: CommandResult) => void;
  onFirmwareEvent?: (event: FirmwareEvent) => void;
  /** UPDATE-FIRMWARE as background jobs: their deadline, state file and BMC connection (default `connect`) */
  firmware?: { timeoutMs: number; stateFile?: string; connect?: ConnectBmc; checkUrl?: (url: string) => void; checkTarget?: (ipmi: EventIpmi) => void; imageDispatcher?: Dispatcher };
  /** the state file of the position reached in the event stream: a durable consumer created again starts after it instead of at the stream's first event */
  positionFile?: string;
  /** JetStream: only the partition's leader takes events (METAL_BMC_COMMAND_LEADER_LEASE); without it every instance does */
  leader?: { instanceId: string; leaseMs: number };
  /** this instance in the event journal's records (default: the leader's instance id, else the host name) */
  instanceId?: string;
  /** the event journal (default: the partition's bucket `<durable>-events` when the server has JetStream; none over core NATS) */
  journal?: StepJournal;
  /** this host's clock (tests: one out of step with the NATS server's); default Date.now */
  hostClock?: () => number;
  /** the subscription to the machine events (tests: one that fails); default `subscribeMachineEvents` */
  subscribe?: typeof subscribeMachineEvents;
}

/** how long the start waits for the first measurement of the NATS server's clock */
const FIRST_CLOCK_MEASUREMENT_MS = 2000;

export interface CommandService {
  runner: CommandRunner;
  firmware: FirmwareJobs | undefined;
  subscription: MachineEventSubscription;
  /** stop taking events, let running commands finish (aborting them at the deadline), settle their messages */
  stop(deadlineMs: number): Promise<void>;
}

export async function startCommandService(o: CommandServiceOptions): Promise<CommandService> {
  const bucket = o.journal || o.mode === 'core' ? undefined : await openEventJournalBucket(o);
  const journal = o.journal ?? (bucket ? createEventJournal({ kv: bucket, instanceId: instanceIdOf(o), logger: o.logger }) : undefined);
  // event ages on the NATS server's clock, which stamped the events (see server-clock.ts)
  const clock = bucket ? createServerClock({ kv: bucket, key: `clock.${instanceIdOf(o)}`, logger: o.logger, onOffset: (ms) => o.metrics?.natsClockOffsetSeconds.set(ms / 1000), ...(o.hostClock ? { hostNow: o.hostClock } : {}) }) : undefined;
  try {
    // the first events are aged on a measured clock, unless the server takes long to answer
    if (clock) await endedWithin(clock.first, FIRST_CLOCK_MEASUREMENT_MS);
    return await startWithClock(o, journal, clock);
  } catch (err) {
    // a start that fails is tried again by the caller: its clock's timer must not outlive it
    clock?.close();
    throw err;
  }
}

/** The rest of the start, once the event journal and the server's clock are there. */
async function startWithClock(o: CommandServiceOptions, journal: StepJournal | undefined, clock: ServerClock | undefined): Promise<CommandService> {
  const now = clock?.now ?? o.hostClock;
  const publish = (result: object) => {
    try {
      publishResult(o.nc, o.resultSubject, result);
    } catch (err) {
      o.logger.warn({ err, subject: o.resultSubject }, 'cannot publish command result');
    }
  };
  const runner = createCommandRunner({
    connect: o.connect,
    concurrency: o.concurrency,
    timeoutMs: o.timeoutMs,
    ttlMs: o.ttlMs,
    ...(now ? { now } : {}),
    logger: o.logger,
    ...(o.metrics ? { metrics: o.metrics } : {}),
    ...(o.maxQueuePerMachine !== undefined ? { maxQueuePerMachine: o.maxQueuePerMachine } : {}),
    ...(journal ? { journal } : {}),
    // power steps are refused or wait while a firmware job runs on the machine: this instance's
    // (the jobs are made below, before any event comes), or another's, seen through its claim
    ...(o.firmware ? { firmwareJobs: { activeFor: (plan: Plan) => firmware?.activeFor(plan) ?? elsewhere(claimView, plan), beforePower: (plan: Plan, boundMs: number) => beforePowerStep(powerMarks, claimView, plan, boundMs, o.logger) } } : {}),
    onResult: (result) => {
      publish(result);
      o.onResult?.(result);
    },
  });
  // one firmware update per machine and BMC across the partition's instances, whether they take
  // turns (a leader) or all take events (lease 0: a bios and a bmc update of one machine may reach
  // two instances at once); none over core NATS (no KV bucket)
  // the server's time only once measured: this host's clock may be far off (firmware-claims.ts)
  const serverNow = clock ? () => (clock.measured() ? clock.now() : undefined) : undefined;
  const opened = o.firmware && o.mode !== 'core' ? await openFirmwareClaims(o, instanceIdOf(o), serverNow) : undefined;
  const claims = opened?.claims;
  // known before the first event: a power command must see an update another instance runs now
  // this instance's power steps, told to the other instances' firmware jobs
  const powerMarks = opened ? createPowerMarks({ kv: opened.kv, instanceId: instanceIdOf(o), logger: o.logger }) : undefined;
  const claimView = opened ? createFirmwareClaimView({ kv: opened.kv, isOwn: opened.claims.isOwn, isOwnMark: powerMarks!.isOwn, logger: o.logger, ...(serverNow ? { serverNow } : {}) }) : undefined;
  if (opened && claimView) opened.remade.view = claimView;
  try {
    await claimView?.start();
  } catch (err) {
    // tried again by the caller, as a start that fails
    claimView?.close();
    throw err;
  }
  const firmware = o.firmware
    ? createFirmwareJobs({
        ...(claims ? { claims } : {}),
        ...(journal ? { journal, instanceId: instanceIdOf(o) } : {}),
        connect: o.firmware.connect ?? o.connect,
        timeoutMs: o.firmware.timeoutMs,
        powerSettled: (key: string, bmc: string) => runner.powerSettled(key, bmc),
        ...(claimView ? { powerElsewhere: (key: string, bmc: string, onWait: (step: PowerStepElsewhere) => void) => powerStepsElsewhereEnded(claimView, key, bmc, onWait, o.logger) } : {}),
        ...(o.firmware.stateFile !== undefined ? { stateFile: o.firmware.stateFile } : {}),
        ...(o.firmware.checkUrl ? { checkUrl: o.firmware.checkUrl } : {}),
        ...(o.firmware.checkTarget ? { checkTarget: o.firmware.checkTarget } : {}),
        ...(o.firmware.imageDispatcher ? { imageDispatcher: o.firmware.imageDispatcher } : {}),
        logger: o.logger,
        ...(o.metrics ? { metrics: o.metrics } : {}),
        publish: (event: FirmwareEvent) => {
          publish(event);
          o.onFirmwareEvent?.(event);
        },
      })
    : undefined;
  // jobs a restart cut off are reported before new events arrive
  firmware?.recover();
  const handler = createEventHandler({ runner, ttlMs: o.ttlMs, ...(now ? { now } : {}), logger: o.logger, ...(o.metrics ? { metrics: o.metrics } : {}), ...(firmware ? { firmware } : {}), ...(journal ? { journal } : {}) });
  const position = o.positionFile !== undefined ? openEventPositionStore({ file: o.positionFile, logger: o.logger }) : undefined;
  const subscription = await (o.subscribe ?? subscribeMachineEvents)({
    nc: o.nc,
    subject: o.subject,
    maxAgeMs: Math.max(o.retentionMs ?? DEFAULT_RETENTION_MS, o.ttlMs),
    ...(now ? { now } : {}),
    ...(o.replicas !== undefined ? { replicas: o.replicas } : {}),
    durableName: o.durableName,
    ackWaitMs: ackWaitOf(o),
    ...(o.maxInFlight !== undefined ? { maxInFlight: o.maxInFlight } : {}),
    ...(o.mode ? { mode: o.mode } : {}),
    logger: o.logger,
    ...(o.metrics ? { metrics: o.metrics } : {}),
    handler,
    onOverflow: (bytes) => {
      o.metrics?.eventsRefused.inc({ reason: 'in-flight' });
      publish(overflowResult(bytes, o.maxInFlight ?? 64));
    },
    ...(position ? { position } : {}),
    ...(o.leader ? { leader: o.leader } : {}),
  }).catch(async (err: unknown) => {
    // recover() resumed jobs and holds in the background; the caller's next start makes its own and
    // resumes them again, so these end here (watchable jobs stay running in the state file, holds
    // keep their heldUntil, claims are left for the next start to take back)
    await firmware?.stop(0);
    claims?.close();
    claimView?.close();
    await position?.close();
    throw err;
  });
  o.metrics?.leading.set(subscription.leading() ? 1 : 0);
  let stopping = false;
  subscription.onLeading((leading) => {
    o.metrics?.leading.set(leading ? 1 : 0);
    // the new leader runs what comes next for these machines: nothing of ours may still run beside
    // it (at a stop, the drain's own deadline does this)
    if (!leading && !stopping) runner.abortAll('this instance stopped leading the partition (its lease was not renewed in time)');
  });
  return {
    runner,
    firmware,
    subscription,
    async stop(deadlineMs) {
      stopping = true;
      await Promise.all([subscription.stop(deadlineMs + 1000), runner.drain(deadlineMs), firmware?.stop(deadlineMs)]);
      claims?.close();
      claimView?.close();
      clock?.close();
      // after the last settle: the position of the events settled while stopping is written too
      await position?.close();
    },
  };
}

/**
 * The consumer's ack_wait: 10 s beyond the command deadline, and beyond the topic TTL too. A
 * command whose ack was lost comes back after ack_wait; by then older than the TTL, it is dropped
 * stale, not run again after the machine's later commands (a REINSTALL's PXE after the DISK that
 * ended the installation), should its settled key (the first guard) not have been written. A TTL
 * at or above the deadline (METAL_BMC_COMMAND_TIMEOUT 10s, TTL 30s) lengthens ack_wait rather
 * than being refused: such configurations run today.
 */
export function consumerAckWaitMs(timeoutMs: number, ttlMs: number): number {
  return Math.max(timeoutMs, ttlMs) + 10_000;
}

const ackWaitOf = (o: CommandServiceOptions) => o.ackWaitMs ?? consumerAckWaitMs(o.timeoutMs, o.ttlMs);

const instanceIdOf = (o: CommandServiceOptions) => o.instanceId ?? o.leader?.instanceId ?? hostname();

/**
 * The event journal's bucket `<durable>-events` of the partition (its keys kept for the stream's
 * retention, plus ack_wait and a margin; it also holds each instance's clock key); undefined
 * without JetStream (no redelivery then either).
 */
async function openEventJournalBucket(o: CommandServiceOptions): Promise<KvBucket | undefined> {
  const jsm = await jetstreamOrUndefined(o.nc);
  if (!jsm) return undefined;
  const bucket = eventJournalBucketName(o.durableName);
  const kv = await openKvBucket(o.nc, jsm, bucket, {
    ...(o.replicas !== undefined ? { replicas: o.replicas } : {}),
    maxAgeMs: eventJournalMaxAgeMs(Math.max(o.retentionMs ?? DEFAULT_RETENTION_MS, o.ttlMs), ackWaitOf(o)),
    onRemade: () => o.logger.warn({ bucket }, "the event journal's key-value bucket was gone (deleted, or lost with a server's state); made again, empty: a step of an event claimed before may be sent again by a later delivery"),
  });
  return kv;
}

/**
 * The firmware claims in the partition's bucket `<durable>-firmware`; undefined without JetStream.
 * `serverNow`: the NATS server's time, against which a claim's server stamp tells whether it is stale.
 */
async function openFirmwareClaims(o: CommandServiceOptions, instanceId: string, serverNow: (() => number | undefined) | undefined): Promise<{ claims: FirmwareClaims; kv: KvBucket; remade: { view?: FirmwareClaimView } } | undefined> {
  const jsm = await jetstreamOrUndefined(o.nc);
  if (!jsm) return undefined;
  const bucket = firmwareBucketName(o.durableName);
  /** the view over the bucket, once made (startWithClock) */
  const remade: { view?: FirmwareClaimView } = {};
  const kv = await openKvBucket(o.nc, jsm, bucket, {
    ...(o.replicas !== undefined ? { replicas: o.replicas } : {}),
    onRemade: () => {
      o.logger.warn({ bucket }, "the firmware claims' key-value bucket was gone (deleted, or lost with a server's state); made again, empty; running updates claim their keys again at their next renewal");
      // a watch from before would not see the new bucket's keys (its revisions start over)
      remade.view?.restart();
    },
  });
  return { claims: createFirmwareClaims({ kv, instanceId, logger: o.logger, ...(serverNow ? { serverNow } : {}) }), kv, remade };
}

/** how long a power step waits for the claims' watch to deliver what the bucket holds (it lands within milliseconds) */
const CLAIMS_CAUGHT_UP_MS = 2000;

/**
 * Before a power step: the claim view brought up to the bucket, so that an update another
 * instance claimed a moment ago is seen; past CLAIMS_CAUGHT_UP_MS, or with the bucket unreadable,
 * the step goes on with the view as it is (one warning): a power command does not wait on NATS.
 */
async function claimsCaughtUp(view: FirmwareClaimView | undefined, logger: Logger): Promise<void> {
  if (view === undefined) return;
  if (!(await view.caughtUp(CLAIMS_CAUGHT_UP_MS)) && lateClaimsWarnings.due('claims')) logger.warn({ waitedMs: CLAIMS_CAUGHT_UP_MS }, "the firmware claims' bucket could not be read up to its last write before a power step or an update (NATS slow or away); going on with the claims and power steps seen so far (said at most once a minute)");
}

/** a burst of power commands with NATS slow says it once a minute, not once per command */
const lateClaimsWarnings = warningsEvery(60_000, 1);

/**
 * Before a plan's power step: its mark for the other instances' firmware jobs (bus/power-marks.ts),
 * then the claim view brought up to the bucket; resolves with the mark's deletion.
 */
async function beforePowerStep(marks: PowerMarks | undefined, view: FirmwareClaimView | undefined, plan: Plan, boundMs: number, logger: Logger): Promise<() => Promise<void>> {
  const unmark = await marks?.mark({ machineKey: plan.key, bmc: bmcKeyOf(plan), command: plan.command, holdMs: boundMs });
  await claimsCaughtUp(view, logger);
  return unmark ?? (async () => undefined);
}

/** A firmware job's wait for the power steps other instances run on its machine or BMC: the view brought up to the bucket, then each step's end. */
async function powerStepsElsewhereEnded(view: FirmwareClaimView, key: string, bmc: string, onWait: (step: PowerStepElsewhere) => void, logger: Logger): Promise<void> {
  await claimsCaughtUp(view, logger);
  for (let step = view.powerElsewhere({ machineKey: key, bmc }); step !== undefined; step = view.powerElsewhere({ machineKey: key, bmc })) {
    onWait({ command: step.mark.command, instance: step.mark.instance });
    await step.ended;
  }
}

/** A firmware job of another instance on the plan's machine or BMC, as the runner holds power steps behind it. */
function elsewhere(view: FirmwareClaimView | undefined, plan: Plan): FirmwareJobHold | undefined {
  const bmc = bmcKeyOf(plan);
  const held = view?.heldElsewhere({ machineKey: plan.key, bmc });
  if (held === undefined) return undefined;
  const { claim } = held;
  return { id: claim.job, kind: claim.kind, since: claim.since ?? 'a time not known here', of: held.on === 'machine' ? { machine: true } : { bmc }, ended: held.ended, instance: claim.instance };
}

/** The daemon part `commands`: consumes `config.mq.machineTopic` and executes on BMCs through the facade. */
export const commandsPart: PartFactory = async (ctx) => {
  const { config, logger, registry } = ctx;
  const metrics = createCommandMetrics(registry);
  metrics.natsConnected.set(0);
  const aborter = new AbortController();
  const pool = createOutbandPool({ idleMs: 20_000 });
  const urlPolicy = { allow: config.firmware.urlAllow, metalApiHost: new URL(config.metalApi.url).hostname, allowLoopback: config.firmware.allowLoopback };
  const imageDispatcher = new Agent({ connect: { lookup: guardedLookup(config.firmware.allowLoopback) } });
  const guard = createTargetGuard({ mode: config.commands.targets, allowedCidrs: config.leases.allowedCidrs, leaseAt: ctx.leaseAt, ...(ctx.leasesRead ? { leasesRead: ctx.leasesRead } : {}) });
  const openBmc = (ipmi: Parameters<ConnectBmc>[0], { signal, onAnswer }: Parameters<ConnectBmc>[1]) =>
    ctx.connectBmc(ipmi.host, { signal, port: ipmi.port, ...(ipmi.user ? { user: ipmi.user } : {}), ...(ipmi.password ? { password: ipmi.password } : {}), ...(onAnswer ? { onAnswer } : {}) });
  const connectBmc: ConnectBmc = async (ipmi, options) => {
    guard(ipmi);
    return await openBmc(ipmi, options);
  };
  // the guard runs on every command, not only when the pool opens a connection: a pooled
  // session was opened for the BMC that held the address then, and the lease may have moved
  const connectPooled: ConnectBmc = async (ipmi, options) => {
    guard(ipmi);
    return await pool.acquire(ipmi, () => openBmc(ipmi, options));
  };
  // the daemon's one NATS connection, shared with the console ownership
  const nats = acquireBus(ctx, metrics);
  let bus: BusConnection | undefined;
  let service: CommandService | undefined;
  let problem: string | undefined = 'connecting to NATS';

  const starting = (async () => {
    bus = await nats.connection(aborter.signal);
    for (let attempt = 1; !aborter.signal.aborted; attempt++) {
      try {
        service = await startCommandService({
          nc: bus.nc,
          subject: config.mq.machineTopic,
          resultSubject: config.mq.resultTopic,
          ttlMs: config.mq.machineTopicTtlMs,
          retentionMs: config.mq.lifecycleRetentionMs,
          replicas: config.mq.streamReplicas,
          durableName: defaultDurableName(config.partitionId),
          // a burst of commands for one BMC reuses its sessions for a few seconds
          connect: connectPooled,
          concurrency: config.commands.concurrency,
          timeoutMs: config.commands.timeoutMs,
          maxQueuePerMachine: config.commands.queueMax,
          maxInFlight: config.commands.maxInFlight,
          logger,
          metrics,
          onResult: (result) => {
            ctx.status?.commandResult(result);
            if (ctx.ledMemory) rememberIdentify(ctx.ledMemory, result);
          },
          onFirmwareEvent: (event) => ctx.status?.firmwareEvent(event),
          // a job holds its BMC for minutes: its own connection, not one from the pool
          firmware: {
            timeoutMs: config.firmware.timeoutMs,
            stateFile: join(config.stateDir, 'firmware-jobs.json'),
            connect: connectBmc,
            checkUrl: (url) => void checkFirmwareUrl(url, urlPolicy),
            checkTarget: guard,
            imageDispatcher,
          },
          positionFile: join(config.stateDir, 'machine-event-position.json'),
          instanceId: config.instanceId,
          ...(config.commands.leaderLeaseMs > 0 ? { leader: { instanceId: config.instanceId, leaseMs: config.commands.leaderLeaseMs } } : {}),
        });
        problem = undefined;
        return;
      } catch (err) {
        problem = `machine event consumer: ${(err as Error).message}`;
        if (attempt === 1 || attempt % 30 === 0) logger.error({ err, attempt }, 'cannot start the machine event consumer; retrying');
        await new Promise((resolve) => setTimeout(resolve, 2000));
      }
    }
  })().catch((err: Error) => {
    if (!aborter.signal.aborted) logger.error({ err }, 'machine command path failed');
  });

  return {
    name: 'commands',
    ready: () => problem ?? (!bus?.connected() ? 'NATS disconnected' : service?.subscription.leaderless() ? 'machine events: no instance of the partition leads (the leader key was not renewed for a lease time)' : service?.subscription.consumerProblem()),
    async stop(deadlineMs) {
      aborter.abort();
      await starting;
      await service?.stop(deadlineMs);
      await pool.close();
      await nats.release();
      await imageDispatcher.close();
    },
  };
};

/** An identify command the BMC accepted sets the LED state the report sends while the BMC cannot tell it (report/led-memory.ts). */
export function rememberIdentify(memory: Pick<LedMemory, 'commanded'>, result: Pick<CommandResult, 'machineId' | 'command' | 'ok'>): void {
  if (result.ok && (result.command === 'LED-ON' || result.command === 'LED-OFF')) memory.commanded(result.machineId, result.command);
}
