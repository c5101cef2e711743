/**
 * Delivers machine events from NATS to a handler and acts on its answer. With JetStream: a
 * durable pull consumer shared by every instance (a work queue), explicit acks, at most
 * MAX_DELIVER deliveries (each hand-back waiting longer), each event's id for the event journal,
 * and `working()` while the handler runs so that a long command is not handed to another
 * instance. Without JetStream: a core subscription in a queue group of the same name.
 * Events older than the stream's retention (possible only in a foreign stream with a longer
 * max_age) are dropped (term) before the handler sees them; the command TTL is the handler's
 * business, since it depends on the kind of event. At most `maxInFlight` events are handled at
 * once: JetStream keeps the rest on the server (we pull one event at a time, and only with a
 * free slot), core NATS refuses them through `onOverflow` (the command path publishes a result
 * event for each). A durable consumer this instance has to create starts after the last event
 * settled here when `position` knows it, instead of delivering the whole retention again.
 */
import type { ConsumerMessages, JetStreamManager, JsMsg } from '@nats-io/jetstream';
import type { Msg, NatsConnection } from '@nats-io/transport-node';
import { checkDuration, endedWithin, MAX_TIMER_MS } from '../deadline.js';
import type { Logger } from '../log.js';
import { consumerInfoOf, deliveriesAllowed, ensureConsumer, ensureStream, jetstreamOrUndefined, sanitizeName, type StreamPosition } from './jetstream.js';
import { openKvBucket, type KvBucket } from './kv.js';
import { journalEventId } from './event-journal.js';
import { createLeadership, type Leadership } from './leader.js';
import { possibleOrWarn, sharedPosition, type ConsumerAtSetup, type PositionStore, type StreamIdentity } from './shared-position.js';

/**
 * How long an event handed back waits before it is delivered again: at once the first time (the
 * next leader takes it first in line), then 0.5 s doubling up to 30 s, so an event handed back
 * again and again (the event journal unreachable, leaders changing) does not spend its
 * deliveries in a few seconds.
 */
export function handBackDelayMs(deliveryCount: number): number {
  return deliveryCount <= 1 ? 0 : Math.min(30_000, 500 * 2 ** (deliveryCount - 2));
}

/**
 * Hands an event back to the server unrun (a shutdown, a lead that ended, the event journal
 * unreachable). On its last allowed delivery the server will not deliver it again: that loss is
 * said as an error, never silent.
 */
function handBack(m: JsMsg, logger: Logger, why: string, maxDeliver: number): void {
  if (isLastDelivery(m.info.deliveryCount, maxDeliver)) {
    logger.error({ seq: m.seq, deliveryCount: m.info.deliveryCount, maxDeliver, subject: m.subject }, `machine event handed back unrun (${why}) on its last allowed delivery: the server will not deliver it again; the machine did not get it`);
  }
  m.nak(handBackDelayMs(m.info.deliveryCount));
}

/** Whether a delivery is the last the consumer allows (`maxDeliver` -1: none is). */
export function isLastDelivery(deliveryCount: number, maxDeliver: number): boolean {
  return maxDeliver !== -1 && deliveryCount >= maxDeliver;
}

export type Disposition = 'ack' | 'term' | 'nak';

export interface EventMeta {
  /** when the server stored the event (JetStream), or when it arrived (core NATS without a timestamp header) */
  publishedAt: Date;
  deliveryCount: number;
  /** JetStream: the event's id in the event journal (its stream's tag and its sequence, `journalEventId`) */
  eventId?: string;
  /** JetStream: this is the event's last allowed delivery (the consumer's max_deliver as the server keeps it): a nak loses it */
  lastDelivery?: boolean;
}

export interface SubscribeMetrics {
  eventsExpired?: { inc(): void };
  /** a delivery of an event this process settled (its ack lost): acknowledged again, not run */
  eventsSettledBefore?: { inc(labels: { seen: 'here' }): void };
}

/**
 * Keeps the position this daemon got to in the stream, across restarts (the command path's state
 * file): `load` gives the position saved last (at start what the file holds, then what `save` was
 * told); `save` is called as events settle, so it must be cheap (write later, in bursts).
 */
export type { PositionStore };

export interface SubscribeOptions {
  nc: NatsConnection;
  subject: string;
  /** the lifecycle retention: the stream's max_age; older events (from a foreign stream) are dropped */
  maxAgeMs: number;
  /** the clock an event's age is taken on: the NATS server's as measured (bus/server-clock.ts); default this host's */
  now?: () => number;
  /** num_replicas of our stream (default 1) */
  replicas?: number;
  /** shared by all instances of a partition: the JetStream durable and the core queue group */
  durableName: string;
  /** JetStream ack_wait; keep it at or above the command timeout (default 60 s) */
  ackWaitMs?: number;
  /** events handed to the handler and not yet settled (default 64) */
  maxInFlight?: number;
  /** JetStream is used when the server offers it; 'core' forces the fallback */
  mode?: 'auto' | 'core';
  logger: Logger;
  metrics?: SubscribeMetrics;
  handler: (bytes: Uint8Array, meta: EventMeta) => Promise<Disposition>;
  /** core NATS: an event that arrives while `maxInFlight` are handled is given here instead of the handler (refused, not dropped silently) */
  onOverflow?: (bytes: Uint8Array, meta: EventMeta) => void;
  /** JetStream: where a consumer this daemon has to create starts (after the last event settled here), and where that is kept */
  position?: PositionStore;
  /**
   * JetStream: only the instance leading the partition takes events (see leader.ts), so that one
   * machine's events run in order on one instance; without it every instance takes events
   */
  leader?: {
    instanceId: string;
    leaseMs: number;
    /** the leadership over the leader's bucket (default: createLeadership, started); tests give one whose lead they end */
    leadership?: (kv: KvBucket) => Promise<Leadership>;
  };
}

export interface MachineEventSubscription {
  readonly mode: 'jetstream' | 'core';
  readonly stream: string | undefined;
  readonly consumer: string;
  /** whether this instance takes events now: false while another instance leads (always true without `leader`) */
  leading(): boolean;
  /** listens to changes of `leading()`; returns the function that stops listening */
  onLeading(listener: (leading: boolean) => void): () => void;
  /** with a leader: no instance has led for a lease time as seen here (nobody takes the partition's events) */
  leaderless(): boolean;
  /**
   * Why this instance takes no events although it should: its JetStream consumer failed
   * CONSUMER_FAILURES_NOT_READY times in a row (no JetStream, a consumer of that name it cannot
   * pull from, account limits); undefined while it pulls, and in core NATS mode.
   */
  consumerProblem(): string | undefined;
  /** Stops taking events (buffered ones are nak'ed for another instance) and waits up to `deadlineMs` for the handlers in flight to settle. */
  stop(deadlineMs?: number): Promise<void>;
}

/** The least a stop gives the shared position's write and the lead's release, its deadline passed or not. */
const STOP_STEP_FLOOR_MS = 1000;

/** Failures in a row of the JetStream consumer after which the instance is not ready. */
export const CONSUMER_FAILURES_NOT_READY = 3;
/** How long a pull must run without failing for a consumer's failures in a row to end. */
const CONSUMER_HEALTHY_MS = 5000;
/** How often a consumer that keeps failing is logged again (it is retried every second). */
const CONSUMER_FAILURE_LOG_MS = 60_000;

/**
 * The JetStream consumer's failures in a row: logged at the first and then once a minute with
 * their count (not once a second), told to readiness from the CONSUMER_FAILURES_NOT_READY-th, and
 * their end logged once.
 */
function consumerFailures(logger: Logger, names: { stream: string; consumer: string }) {
  let count = 0;
  let since = 0;
  let loggedAt = 0;
  let last = '';
  return {
    failed(err: unknown): void {
      const now = Date.now();
      if (count++ === 0) since = now;
      last = err instanceof Error ? err.message : String(err);
      if (now - loggedAt < CONSUMER_FAILURE_LOG_MS) return;
      loggedAt = now;
      logger.warn({ err, stream: names.stream, consumer: names.consumer, failures: count }, 'JetStream consumer failed; retrying every second');
    },
    ended(): void {
      if (count === 0) return;
      logger.info({ stream: names.stream, consumer: names.consumer, failures: count, forMs: Date.now() - since }, 'JetStream consumer pulls again');
      count = 0;
      loggedAt = 0;
    },
    problem(): string | undefined {
      if (count < CONSUMER_FAILURES_NOT_READY) return undefined;
      return `machine events: the JetStream consumer ${names.consumer} of ${names.stream} failed ${count} times in a row since ${new Date(since).toISOString()} (last: ${last})`;
    },
  };
}

/** `metal-bmc-<partition>` */
export function defaultDurableName(partitionId: string): string {
  return sanitizeName(`metal-bmc-${partitionId}`);
}

/** the key-value bucket of the partition's leader: `<durable>-leader` */
export function leaderBucketName(durableName: string): string {
  return `${sanitizeName(durableName)}-leader`;
}

/** the key the leader of the machine events writes */
export const LEADER_KEY = 'machine-events';

/** Resolves once `lead` leads, `stopped` is aborted, or `recheckMs` passed (the caller looks again: a change told before it listened is not lost). */
function untilLeading(lead: Leadership, stopped: AbortSignal, recheckMs: number): Promise<void> {
  return new Promise((resolve) => {
    if (lead.leading() || stopped.aborted) return resolve();
    const done = () => {
      off();
      clearTimeout(timer);
      stopped.removeEventListener('abort', done);
      resolve();
    };
    const off = lead.subscribe((leading) => leading && done());
    const timer = setTimeout(done, recheckMs);
    stopped.addEventListener('abort', done, { once: true });
  });
}

/** events settled (ack/term) by this instance that a redelivery is checked against */
const DONE_MEMORY = 4096;

/**
 * An event's identity in its stream: the sequence with the time the stream stored it, so that a
 * stream deleted and created again (its sequences start over) never matches an older event.
 */
const eventKey = (m: JsMsg) => `${m.seq}@${m.timestampNanos}`;

/** A bounded set of recently settled events (eventKey), oldest forgotten first. */
function recentlySettled(max: number): { has(key: string): boolean; add(key: string): void } {
  const seqs = new Set<string>();
  return {
    has: (seq) => seqs.has(seq),
    add(seq) {
      seqs.add(seq);
      if (seqs.size > max) seqs.delete(seqs.values().next().value!);
    },
  };
}
const delay = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms).unref());


/**
 * The position this instance got to in the stream, handed to the store as it moves on: the
 * highest sequence settled here, but below every event still running here, so that a consumer
 * created again after a crash delivers a command cut off mid-run once more instead of skipping
 * it. A new stream identity (created again) starts from the saved position only if it is the
 * same stream.
 */
function positionKeeper(store: PositionStore | undefined, running: ReadonlyMap<string, { seq: number }>, logger: Logger) {
  let at: StreamIdentity | undefined;
  let highest = 0;
  let saved = 0;
  const refused = new Set<string>();
  return {
    /**
     * The stream the events delivered from now on belong to (its last sequence as it reports it
     * now, and the consumer as found), and the position a consumer created now starts after: none
     * beyond that last sequence (`impossibleIn`), nor, in the shared position, above an existing
     * consumer's ack floor or from the key for a consumer created now (`PositionStore.load`). The
     * saving of positions is held only below what is given here: a refused value is no mark.
     */
    use(identity: StreamIdentity, lastSeq: number, consumer: ConsumerAtSetup): { identity: StreamIdentity; startAfter: StreamPosition | undefined } {
      const known = possibleOrWarn(logger, 'position store', identity, lastSeq, store?.load(identity, lastSeq, consumer), refused);
      if (at?.stream !== identity.stream || at.created !== identity.created) {
        saved = known?.stream === identity.stream && known.created === identity.created ? known.seq : 0;
        highest = saved;
        at = identity;
      }
      return { identity: at, startAfter: known };
    },
    /** event `seq` of `stream` was acked or terminated here */
    settled(stream: StreamIdentity, seq: number): void {
      if (!store || stream !== at) return;
      highest = Math.max(highest, seq);
      let floor = highest;
      for (const { seq: runningSeq } of running.values()) if (runningSeq <= floor) floor = runningSeq - 1;
      if (floor <= saved) return;
      saved = floor;
      store.save({ ...at, seq: floor });
    },
  };
}

export async function subscribeMachineEvents(o: SubscribeOptions): Promise<MachineEventSubscription> {
  checkDuration('subscribeMachineEvents: maxAgeMs', o.maxAgeMs, 0, MAX_TIMER_MS);
  checkDuration('subscribeMachineEvents: ackWaitMs', o.ackWaitMs, 60_000, MAX_TIMER_MS);
  const jsm = o.mode === 'core' ? undefined : await jetstreamOrUndefined(o.nc);
  if (!jsm) {
    o.logger.warn({ subject: o.subject, queue: o.durableName }, 'JetStream is not available; consuming machine events over core NATS (no redelivery, no persistence)');
    return subscribeCore(o);
  }
  return subscribeJetStream(o, jsm);
}

/** Bookkeeping shared by both modes: in-flight handlers, the stale check, stopping. */
function createDispatcher(o: SubscribeOptions) {
  const maxInFlight = o.maxInFlight ?? 64;
  const inFlight = new Set<Promise<void>>();
  let slotWaiters: Array<() => void> = [];
  let stopping = false;

  function isExpired(publishedAt: Date, where: Record<string, unknown>): boolean {
    const ageMs = (o.now ?? Date.now)() - publishedAt.getTime();
    if (ageMs <= o.maxAgeMs) return false;
    o.metrics?.eventsExpired?.inc();
    o.logger.warn({ subject: o.subject, ageMs, maxAgeMs: o.maxAgeMs, ...where }, 'machine event older than the retention dropped');
    return true;
  }

  function run(bytes: Uint8Array, meta: EventMeta, settle: (d: Disposition) => void, onDone?: () => void): void {
    let handled: Promise<Disposition>;
    try {
      handled = o.handler(bytes, meta);
    } catch (err) {
      handled = Promise.reject(err);
    }
    const p = handled
      .catch((err: unknown) => {
        o.logger.error({ err }, 'machine event handler failed');
        return 'nak' as const;
      })
      .then(settle)
      .catch((err: unknown) => o.logger.warn({ err }, 'cannot settle machine event'))
      .finally(() => {
        onDone?.();
        inFlight.delete(p);
        slotWaiters.shift()?.();
      });
    inFlight.add(p);
  }

  return {
    isExpired,
    run,
    get stopping() {
      return stopping;
    },
    /** as many handlers in flight as allowed */
    full: () => inFlight.size >= maxInFlight,
    async slot(): Promise<void> {
      while (inFlight.size >= maxInFlight && !stopping) await new Promise<void>((resolve) => slotWaiters.push(resolve));
    },
    stop(): void {
      stopping = true;
      for (const wake of slotWaiters.splice(0)) wake();
      slotWaiters = [];
    },
    /** true when every handler settled within the deadline */
    settled: (deadlineMs: number): Promise<boolean> => endedWithin(Promise.allSettled([...inFlight]), deadlineMs),
  };
}

async function subscribeJetStream(o: SubscribeOptions, jsm: JetStreamManager): Promise<MachineEventSubscription> {
  const ackWaitMs = o.ackWaitMs ?? 60_000;
  /** how often an event held here tells the server we are still at it (three times per ack_wait) */
  const heartbeatMs = Math.max(500, Math.floor(ackWaitMs / 3));
  /** event (eventKey: its sequence with the time the stream stored it, so an event of a stream made again never passes for one still running) → the newest delivery of it this instance is running */
  const running = new Map<string, JsMsg>();
  // with a leader, its bucket also holds the partition's position: leaders take turns
  const kv = o.leader
    ? await openKvBucket(o.nc, jsm, leaderBucketName(o.durableName), {
        ...(o.replicas !== undefined ? { replicas: o.replicas } : {}),
        onRemade: () => o.logger.warn({ bucket: leaderBucketName(o.durableName) }, 'the leader\'s key-value bucket was gone (deleted, or lost with a server\'s state); made again, empty'),
      })
    : undefined;
  const shared = kv
    ? sharedPosition({
        local: o.position,
        kv,
        logger: o.logger,
        ackFloor: async () => {
          try {
            return (await jsm.consumers.info(names.stream, names.consumer)).ack_floor.stream_seq;
          } catch {
            return undefined;
          }
        },
      })
    : undefined;
  const position = positionKeeper(shared ?? o.position, running, o.logger);
  const setup = async () => {
    const stream = await ensureStream(jsm, { subject: o.subject, maxAgeMs: o.maxAgeMs, ...(o.replicas !== undefined ? { replicas: o.replicas } : {}), logger: o.logger });
    await shared?.refresh();
    const info = await jsm.streams.info(stream);
    // read after the key: a key a leader wrote is at or below the floor of its time, and the floor only grows
    const existing = await consumerInfoOf(jsm, stream, sanitizeName(o.durableName));
    const consumerAt: ConsumerAtSetup = existing ? { exists: true, ackFloor: existing.ack_floor.stream_seq } : { exists: false };
    const { identity, startAfter } = position.use({ stream, created: info.created }, info.state.last_seq, consumerAt);
    const consumer = await ensureConsumer(jsm, { stream, subject: o.subject, durableName: o.durableName, ackWaitMs, ...(startAfter ? { startAfter } : {}), logger: o.logger });
    // what the server allows, not what this version asks: an instance of another version may have raised it
    const maxDeliver = await deliveriesAllowed(jsm, stream, consumer);
    return { stream, consumer, identity, maxDeliver };
  };
  const names = await setup();
  const js = jsm.jetstream();
  const dispatcher = createDispatcher(o);
  const settled = recentlySettled(DONE_MEMORY);
  let messages: ConsumerMessages | undefined;
  const stopped = new AbortController();
  const leadership = kv ? await lead(o, kv) : undefined;
  const notLeading = () => leadership !== undefined && !leadership.leading();

  function dispatch(m: JsMsg): void {
    const where = { stream: names.stream, seq: m.seq, deliveryCount: m.info.deliveryCount };
    const stream = names.identity;
    const settledHere = () => position.settled(stream, m.seq);
    // An ack lost with a failing NATS node (a stream or consumer leader killed) brings the event
    // back although it ran: acknowledge it again instead of running it twice. Its delivery count
    // says nothing then: a server restarted before it wrote the consumer's state, or a consumer
    // created again, delivers it as new (count 1; seen under load across a nats-server restart).
    if (settled.has(eventKey(m))) {
      o.logger.info(where, 'redelivered machine event already settled here; acknowledged again, not run twice');
      o.metrics?.eventsSettledBefore?.inc({ seen: 'here' });
      m.ack();
      settledHere();
      return;
    }
    // After a leader change the server may redeliver an event that is still running here (its
    // acks and progress went to the dead node): keep running it once, settle the newest delivery.
    const current = running.get(eventKey(m));
    if (current) {
      running.set(eventKey(m), m);
      m.working();
      o.logger.info(where, 'redelivered machine event still running here; not run twice');
      return;
    }
    // after the checks above: an event that ran or runs here is settled here, also while stopping
    // (handed back, another instance would run it again)
    if (dispatcher.stopping) {
      handBack(m, o.logger, 'metal-bmc is stopping', names.maxDeliver);
      return;
    }
    if (dispatcher.isExpired(m.time, where)) {
      m.term();
      settledHere();
      return;
    }
    // tell the server we are still at it, so a long command is not redelivered elsewhere
    const key = eventKey(m);
    running.set(key, m);
    const newest = () => running.get(key) ?? m;
    const heartbeat = setInterval(() => newest().working(), heartbeatMs);
    heartbeat.unref();
    dispatcher.run(
      m.data,
      { publishedAt: m.time, deliveryCount: m.info.deliveryCount, eventId: journalEventId(stream, m.seq), lastDelivery: isLastDelivery(m.info.deliveryCount, names.maxDeliver) },
      (d) => {
        const latest = newest();
        running.delete(key);
        if (d === 'nak') return handBack(latest, o.logger, 'not run here: a shutdown or a lost lead cut it off, or the event journal could not be used', names.maxDeliver);
        settled.add(eventKey(m));
        if (d === 'ack') latest.ack();
        else latest.term();
        settledHere();
      },
      () => {
        clearInterval(heartbeat);
        running.delete(key);
      },
    );
  }

  /**
   * Waits for a free slot for an event delivered here. Rare (see the loop): the event is kept
   * from redelivery meanwhile, as a running one is, or the server would hand it to another
   * instance after ack_wait and both would run it.
   */
  async function slotFor(m: JsMsg): Promise<void> {
    if (!dispatcher.full()) return;
    m.working();
    const heartbeat = setInterval(() => m.working(), heartbeatMs);
    heartbeat.unref();
    try {
      await dispatcher.slot();
    } finally {
      clearInterval(heartbeat);
    }
  }

  const failures = consumerFailures(o.logger, names);
  const loop = (async () => {
    let first = true;
    let waitingLogged = false;
    while (!dispatcher.stopping) {
      if (leadership && notLeading()) {
        if (!waitingLogged) o.logger.info({ stream: names.stream, consumer: names.consumer, leader: leadership.holder() }, 'not the partition\'s leader: taking no machine events until this instance leads');
        waitingLogged = true;
        await untilLeading(leadership, stopped.signal, 1000);
        continue;
      }
      waitingLogged = false;
      try {
        if (!first) Object.assign(names, await setup());
        first = false;
        const consumer = await js.consumers.get(names.stream, names.consumer);
        // One event per pull, and the next pull only once a slot is free (the client sends it when
        // the loop asks for the next event): an event that arrives has a slot, so none waits here
        // unseen by the server, which would hand it to another instance after ack_wait to run it
        // too, and what this instance cannot take yet stays on the server for the others. A pull
        // the client repeats by itself (after a reconnect or missed heartbeats) may bring one
        // while all slots are busy: `slotFor` holds that one with working().
        const pulled = await consumer.consume({ max_messages: 1 });
        // working again once it delivers, or has pulled a while without failing: a pull that opens
        // and then fails as it is read would otherwise reset the count every second
        const pulling = setTimeout(() => failures.ended(), CONSUMER_HEALTHY_MS);
        pulling.unref();
        messages = pulled;
        // a leader that stops leading stops pulling at once; what it runs goes on to its end
        const unlisten = leadership?.subscribe((leading) => leading || void pulled.close());
        if (dispatcher.stopping || notLeading()) void pulled.close();
        void watchStatus(pulled, o.logger);
        /** pulled as the lead ended: the new leader runs them, nak'ed once this pull is closed */
        const heldBack: JsMsg[] = [];
        // the listener closes the pull when told; a lead that ended unannounced (the fence timer
        // behind a busy loop, then a renewal) is closed here
        const holdBack = (m: JsMsg) => {
          heldBack.push(m);
          void pulled.close();
        };
        try {
          for await (const m of pulled) {
            failures.ended();
            if (notLeading()) {
              m.working();
              holdBack(m);
              continue;
            }
            await slotFor(m);
            // the lead may have ended while it waited for a slot (slotFor kept it from redelivery)
            if (notLeading()) {
              holdBack(m);
              continue;
            }
            dispatch(m);
            await dispatcher.slot();
          }
        } finally {
          clearTimeout(pulling);
          unlisten?.();
          // a nak while the pull is open would bring it straight back here, spending its second
          // and last delivery; closed, the next pull (the new leader's) gets it, first in line
          if (heldBack.length > 0) {
            await pulled.close().catch(() => undefined);
            for (const m of heldBack) {
              try {
                handBack(m, o.logger, 'this instance stopped leading', names.maxDeliver);
              } catch (err) {
                o.logger.warn({ err, seq: m.seq }, 'machine event not handed back (NATS closed): it returns after ack_wait');
              }
            }
          }
        }
      } catch (err) {
        if (dispatcher.stopping) break;
        failures.failed(err);
        await delay(1000);
        continue;
      }
      if (!dispatcher.stopping && !notLeading()) {
        o.logger.warn({ stream: names.stream, consumer: names.consumer }, 'JetStream consumer ended; restarting it');
        await delay(1000);
      }
    }
  })();

  o.logger.info({ subject: o.subject, stream: names.stream, consumer: names.consumer, maxAgeMs: o.maxAgeMs, ackWaitMs, ...(o.leader ? { leaderLeaseMs: o.leader.leaseMs } : {}) }, 'consuming machine events from JetStream');
  return {
    mode: 'jetstream',
    stream: names.stream,
    consumer: names.consumer,
    leading: () => !notLeading(),
    onLeading: (listener) => leadership?.subscribe(listener) ?? (() => undefined),
    leaderless: () => leadership !== undefined && !leadership.someoneLeads(),
    consumerProblem: () => failures.problem(),
    async stop(deadlineMs = 10_000) {
      // one deadline for every step: a NATS outage must not add up the steps' own timeouts
      // past the process's forced exit (the shutdown timeout + 5 s)
      const endsAt = Date.now() + deadlineMs;
      const left = (floorMs = 0) => Math.max(floorMs, endsAt - Date.now());
      dispatcher.stop();
      stopped.abort();
      void messages?.close();
      if (await endedWithin(loop, left())) await loop;
      const settledAll = await dispatcher.settled(left());
      // the shared position's last write and the lead's release, each tried at least a second
      if (shared && !(await endedWithin(shared.close(), left(STOP_STEP_FLOOR_MS)))) o.logger.warn({ stream: names.stream }, 'shared stream position not written at the stop (NATS not answering): the next start may run from an older position');
      // given up only once this instance's events settled, so the next leader's cannot overlap
      // them; with some still running at the deadline, the others wait the lease out
      if (leadership && !(await endedWithin(leadership.close({ giveUp: settledAll }), left(STOP_STEP_FLOOR_MS)))) o.logger.warn({}, 'machine events lead not given up at the stop (NATS not answering): another instance takes it after the lease time');
    },
  };
}

/** The partition's leadership of the machine events, started (its first round done). */
async function lead(o: SubscribeOptions, kv: KvBucket): Promise<Leadership> {
  if (o.leader!.leadership) return o.leader!.leadership(kv);
  const { instanceId, leaseMs } = o.leader!;
  const leadership = createLeadership({ kv, key: LEADER_KEY, instanceId, leaseMs, what: 'machine events', logger: o.logger });
  await leadership.start();
  return leadership;
}

async function watchStatus(messages: ConsumerMessages, logger: Logger): Promise<void> {
  for await (const s of messages.status()) {
    switch (s.type) {
      // the consumer (or its stream) is gone: a pull would wait for it for ever; ending this one
      // lets the loop set both up again (a consumer deleted by hand or lost with the server's state)
      case 'consumer_not_found':
      case 'stream_not_found':
      case 'consumer_deleted':
        logger.warn({ status: s.type }, 'JetStream consumer gone; setting it up again');
        void messages.close();
        return;
      case 'heartbeats_missed':
      case 'no_responders':
        logger.warn({ status: s.type }, 'JetStream consumer status');
        break;
      default:
        logger.trace({ status: s.type }, 'JetStream consumer status');
    }
  }
}

/**
 * When a core NATS event was published. Core NATS keeps nothing: an event arrives as it is
 * published, so its arrival is its time. A `Nats-Time-Stamp` header (a bridge may set one) is
 * taken only within CORE_STAMP_SLACK_MS of the arrival, earlier or later: it is the publisher's
 * word, and a stamp in the future would make a command never stale, one far back drop everything.
 */
function publishedAtOf(m: Msg, now = Date.now()): Date {
  const stamp = m.headers?.get('Nats-Time-Stamp');
  const t = stamp ? Date.parse(stamp) : NaN;
  return Number.isNaN(t) ? new Date(now) : new Date(Math.min(now + CORE_STAMP_SLACK_MS, Math.max(now - CORE_STAMP_SLACK_MS, t)));
}

/** how far a core NATS event's own time stamp may lie from its arrival */
const CORE_STAMP_SLACK_MS = 2000;

async function subscribeCore(o: SubscribeOptions): Promise<MachineEventSubscription> {
  const dispatcher = createDispatcher(o);
  const queue = sanitizeName(o.durableName);
  const sub = o.nc.subscribe(o.subject, {
    queue,
    callback: (err, m) => {
      if (err) {
        o.logger.error({ err }, 'core NATS subscription error');
        return;
      }
      if (dispatcher.stopping) return;
      const publishedAt = publishedAtOf(m);
      if (dispatcher.isExpired(publishedAt, {})) return;
      // core NATS cannot hold events back for later: one beyond the bound is refused
      if (dispatcher.full()) {
        o.logger.warn({ subject: o.subject, maxInFlight: o.maxInFlight ?? 64 }, 'machine event refused: as many events in flight as allowed (core NATS cannot hold it back)');
        o.onOverflow?.(m.data, { publishedAt, deliveryCount: 1 });
        return;
      }
      dispatcher.run(m.data, { publishedAt, deliveryCount: 1 }, (d) => {
        if (d === 'nak') o.logger.warn({ subject: o.subject }, 'machine event failed; core NATS cannot redeliver it');
      });
    },
  });
  // core NATS keeps nothing for a subscriber the server does not know yet: subscribed means the
  // server has processed the SUB (a flush is a round trip after it), so nothing published after
  // this resolves is lost; while disconnected the client resubscribes on reconnect
  await o.nc.flush().catch((err: unknown) => o.logger.warn({ err }, 'core NATS subscription not confirmed by the server yet'));
  o.logger.info({ subject: o.subject, queue }, 'consuming machine events from core NATS');
  return {
    mode: 'core',
    stream: undefined,
    consumer: queue,
    // a queue group spreads events over the instances: there is no leader
    leading: () => true,
    onLeading: () => () => undefined,
    leaderless: () => false,
    consumerProblem: () => undefined,
    async stop(deadlineMs = 10_000) {
      dispatcher.stop();
      if (!sub.isClosed()) sub.unsubscribe();
      await dispatcher.settled(deadlineMs);
    },
  };
}
