/**
 * JetStream setup for the machine topic: a stream that keeps events for the lifecycle retention and a
 * durable pull consumer with explicit acks and at most two deliveries. Several metal-bmc
 * instances pulling from the same durable consumer form a work queue.
 */
import { AckPolicy, DeliverPolicy, DiscardPolicy, jetstreamManager, RetentionPolicy, StorageType, type ConsumerConfig, type JetStreamManager } from '@nats-io/jetstream';
import { nanos, type NatsConnection } from '@nats-io/transport-node';
import type { Logger } from '../log.js';

/** The Go consumer allowed two attempts per message; so does this one. */
export const MAX_DELIVER = 2;
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

export interface ConsumerSetup {
  stream: string;
  subject: string;
  durableName: string;
  ackWaitMs: number;
  logger: Logger;
}

export function consumerConfigFor(o: Omit<ConsumerSetup, 'logger' | 'stream'>): Partial<ConsumerConfig> {
  return {
    durable_name: sanitizeName(o.durableName),
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    max_deliver: MAX_DELIVER,
    ack_wait: nanos(o.ackWaitMs),
    filter_subject: o.subject,
  };
}

/** Creates the durable consumer, or brings ack_wait, max_deliver and the filter of an existing one in line. */
export async function ensureConsumer(jsm: JetStreamManager, o: ConsumerSetup): Promise<string> {
  const config = consumerConfigFor(o);
  const name = config.durable_name!;
  let current: ConsumerConfig | undefined;
  try {
    current = (await jsm.consumers.info(o.stream, name)).config;
  } catch (err) {
    if ((err as Error).name !== 'ConsumerNotFoundError') throw err;
  }
  if (!current) {
    await jsm.consumers.add(o.stream, config);
    o.logger.info({ stream: o.stream, consumer: name, ackWaitMs: o.ackWaitMs, maxDeliver: MAX_DELIVER }, 'JetStream consumer created');
  } else if (current.ack_wait !== config.ack_wait || current.max_deliver !== config.max_deliver || current.filter_subject !== config.filter_subject) {
    await jsm.consumers.update(o.stream, name, { ack_wait: config.ack_wait!, max_deliver: config.max_deliver!, filter_subject: config.filter_subject! });
    o.logger.info({ stream: o.stream, consumer: name, ackWaitMs: o.ackWaitMs }, 'JetStream consumer updated');
  }
  return name;
}
