/**
 * JetStream setup for the machine topic: a stream that keeps events for the lifecycle retention and a
 * durable pull consumer with explicit acks and at most MAX_DELIVER deliveries. Several metal-bmc
 * instances pulling from the same durable consumer form a work queue. A consumer created while
 * the stream holds events starts after the last event this daemon settled, when it knows that
 * position for the stream (`consumerStartFor`).
 */
import { AckPolicy, DeliverPolicy, DiscardPolicy, jetstreamManager, RetentionPolicy, StorageType, type ConsumerConfig, type ConsumerInfo, type JetStreamManager, type StreamInfo } from '@nats-io/jetstream';
import { nanos, type NatsConnection } from '@nats-io/transport-node';
import type { Logger } from '../log.js';

/**
 * Deliveries of one event. The Go consumer allowed two, so that a RESET whose ack was lost ran at
 * most twice; but an event handed back unrun twice (a lost lead, a restart) was lost. The event
 * journal (event-journal.ts) now keeps each non-idempotent step to one sending whatever the
 * deliveries, so an event may come back often: a hand-back waits longer each time
 * (machine-events.ts handBackDelayMs), and this many deliveries span minutes of hand-backs.
 */
export const MAX_DELIVER = 15;
const MAX_DUPLICATE_WINDOW_MS = 120_000;

/** JetStream names may not hold `.`, `*`, `>`, whitespace or path separators. */
export function sanitizeName(name: string): string {
  return name.replace(/[^A-Za-z0-9_-]/g, '_');
}

/** `fra-equ01-machine` → `METAL_BMC_FRA-EQU01-MACHINE` */
export function streamNameFor(subject: string): string {
  return `METAL_BMC_${sanitizeName(subject).toUpperCase()}`;
}

/** The manager, or undefined when the server (or the account) has no JetStream. */
export async function jetstreamOrUndefined(nc: NatsConnection): Promise<JetStreamManager | undefined> {
  try {
    return await jetstreamManager(nc);
  } catch (err) {
    if ((err as Error).name === 'JetStreamNotEnabled') return undefined;
    throw err;
  }
}

export interface StreamSetup {
  subject: string;
  /** how long the stream keeps events (max_age): the lifecycle retention, not the command TTL */
  maxAgeMs: number;
  /** num_replicas (1 on a single server; 3 or 5 on a JetStream cluster) */
  replicas?: number;
  logger: Logger;
}

/** The settings of our stream that `ensureStream` keeps in line with the configuration. */
export function streamLimitsFor(o: Pick<StreamSetup, 'maxAgeMs' | 'replicas'>): { max_age: number; duplicate_window: number; num_replicas: number } {
  return { max_age: nanos(o.maxAgeMs), duplicate_window: nanos(Math.min(o.maxAgeMs, MAX_DUPLICATE_WINDOW_MS)), num_replicas: o.replicas ?? 1 };
}

/**
 * Uses the stream that already captures the subject, or creates ours. Ours has max_age and
 * replicas kept at the configured values: a stream created by an earlier version (max_age = the
 * topic TTL) is updated on start. A foreign stream is left as it is (events older than the
 * retention are then dropped by age at delivery).
 */
export async function ensureStream(jsm: JetStreamManager, o: StreamSetup): Promise<string> {
  const ours = streamNameFor(o.subject);
  let existing: string | undefined;
  try {
    existing = await jsm.streams.find(o.subject);
  } catch (err) {
    if ((err as Error).message.includes('no stream matches subject')) existing = undefined;
    else throw err;
  }
  const limits = streamLimitsFor(o);
  if (existing === undefined) {
    await jsm.streams.add({
      name: ours,
      subjects: [o.subject],
      retention: RetentionPolicy.Limits,
      storage: StorageType.File,
      discard: DiscardPolicy.Old,
      ...limits,
    });
    o.logger.info({ stream: ours, subject: o.subject, maxAgeMs: o.maxAgeMs, replicas: limits.num_replicas }, 'JetStream stream created');
    return ours;
  }
  const info = await jsm.streams.info(existing);
  if (existing === ours) {
    const current = { max_age: info.config.max_age, duplicate_window: info.config.duplicate_window, num_replicas: info.config.num_replicas };
    if (current.max_age !== limits.max_age || current.num_replicas !== limits.num_replicas || current.duplicate_window !== limits.duplicate_window) {
      await jsm.streams.update(ours, limits);
      o.logger.info({ stream: ours, maxAgeMs: o.maxAgeMs, replicas: limits.num_replicas, previousMaxAgeMs: current.max_age / 1e6, previousReplicas: current.num_replicas }, 'JetStream stream limits updated');
    }
  } else {
    o.logger.info({ stream: existing, subject: o.subject, maxAgeMs: info.config.max_age / 1e6 }, 'using the existing JetStream stream of the machine topic');
  }
  return existing;
}

/** Where this daemon got to in a stream: the last event it settled there. */
export interface StreamPosition {
  stream: string;
  /** the stream's creation time (StreamInfo.created): a stream deleted and created again under the same name has another, and counts from sequence 1 again */
  created: string;
  /** the highest stream sequence settled here (held below any event still running here) */
  seq: number;
}

/** Where a durable consumer created now starts: its deliver policy, and the words for the log line. */
export interface ConsumerStart {
  policy: Pick<ConsumerConfig, 'deliver_policy' | 'opt_start_seq'>;
  start: string;
}

/**
 * Where a durable consumer created now starts. After the last event settled here, when that
 * position belongs to this very stream (same name and creation time, not beyond its last
 * sequence): a consumer created again (deleted by hand, lost with a server's state) would
 * otherwise deliver the whole retention once more, and each delete in it is a PXE boot and a
 * reset of a machine that may be in use again. Without such a position, from the first event the
 * stream holds (a first start; a stream created again, whose sequences start over).
 */
export function consumerStartFor(info: Pick<StreamInfo, 'config' | 'created' | 'state'>, after: StreamPosition | undefined): ConsumerStart {
  const fromFirst = (why: string): ConsumerStart => ({ policy: { deliver_policy: DeliverPolicy.All }, start: `the first event the stream holds (${why})` });
  if (after === undefined) return fromFirst('no position saved here');
  if (after.stream !== info.config.name) return fromFirst(`the position saved here is in stream ${after.stream}`);
  if (after.created !== info.created) return fromFirst(`the stream was created again after the position saved here, sequence ${after.seq}`);
  if (after.seq > info.state.last_seq) return fromFirst(`the position saved here, sequence ${after.seq}, is beyond the stream's last, ${info.state.last_seq}`);
  return { policy: { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: after.seq + 1 }, start: `sequence ${after.seq + 1}, after the last event settled here` };
}

export interface ConsumerSetup {
  stream: string;
  subject: string;
  durableName: string;
  ackWaitMs: number;
  /** the last event settled here, if known: a consumer created now starts after it (`consumerStartFor`) */
  startAfter?: StreamPosition;
  logger: Logger;
}

export function consumerConfigFor(o: Omit<ConsumerSetup, 'logger' | 'stream' | 'startAfter'>): Partial<ConsumerConfig> {
  return {
    durable_name: sanitizeName(o.durableName),
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    max_deliver: MAX_DELIVER,
    ack_wait: nanos(o.ackWaitMs),
    filter_subject: o.subject,
  };
}

/** The consumer's info (its configuration, its ack floor), or undefined when the server has no such consumer. */
export async function consumerInfoOf(jsm: JetStreamManager, stream: string, name: string): Promise<ConsumerInfo | undefined> {
  try {
    return await jsm.consumers.info(stream, name);
  } catch (err) {
    if ((err as Error).name !== 'ConsumerNotFoundError') throw err;
    return undefined;
  }
}

/** The consumer's configuration, or undefined when the server has no such consumer. */
/**
 * The deliveries the consumer allows each event: its max_deliver as the server keeps it (another
 * version may have raised it in a rolling upgrade, -1 for no limit), MAX_DELIVER when it says none.
 */
export async function deliveriesAllowed(jsm: JetStreamManager, stream: string, name: string): Promise<number> {
  const value = (await consumerConfigOf(jsm, stream, name))?.max_deliver;
  return value === undefined || value === 0 ? MAX_DELIVER : value;
}

async function consumerConfigOf(jsm: JetStreamManager, stream: string, name: string): Promise<ConsumerConfig | undefined> {
  return (await consumerInfoOf(jsm, stream, name))?.config;
}

/**
 * Creates the durable consumer (starting where `consumerStartFor` says), or brings ack_wait,
 * max_deliver and the filter of an existing one in line. An existing consumer keeps its place:
 * its ack floor is the truth, whatever this instance saved.
 */
/** A consumer's max_deliver below `wanted` (-1, unlimited, is never below). */
const deliversFewer = (current: number | undefined, wanted: number): boolean => current === undefined || (current !== -1 && current < wanted);

export async function ensureConsumer(jsm: JetStreamManager, o: ConsumerSetup): Promise<string> {
  const config = consumerConfigFor(o);
  const name = config.durable_name!;
  const current = await consumerConfigOf(jsm, o.stream, name);
  if (!current) {
    const start = consumerStartFor(await jsm.streams.info(o.stream), o.startAfter);
    try {
      await jsm.consumers.add(o.stream, { ...config, ...start.policy });
    } catch (err) {
      // another instance created it between our look and our add, maybe starting elsewhere: use it
      if ((await consumerConfigOf(jsm, o.stream, name)) === undefined) throw err;
      o.logger.info({ stream: o.stream, consumer: name }, 'JetStream consumer created by another instance meanwhile; using it');
      return name;
    }
    o.logger.info({ stream: o.stream, consumer: name, ackWaitMs: o.ackWaitMs, maxDeliver: MAX_DELIVER, start: start.start }, 'JetStream consumer created');
  } else if (current.ack_wait !== config.ack_wait || deliversFewer(current.max_deliver, config.max_deliver!) || current.filter_subject !== config.filter_subject) {
    // max_deliver is raised, never lowered: during a rolling upgrade an instance of another version
    // must not take deliveries away from events the newer ones rely on
    const maxDeliver = deliversFewer(current.max_deliver, config.max_deliver!) ? config.max_deliver! : current.max_deliver!;
    await jsm.consumers.update(o.stream, name, { ack_wait: config.ack_wait!, max_deliver: maxDeliver, filter_subject: config.filter_subject! });
    o.logger.info({ stream: o.stream, consumer: name, ackWaitMs: o.ackWaitMs, maxDeliver: MAX_DELIVER, previousMaxDeliver: current.max_deliver }, 'JetStream consumer updated');
  }
  return name;
}
