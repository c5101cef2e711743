/**
 * JetStream setup for the machine topic: a stream that keeps events for the topic TTL and a
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
  ttlMs: number;
  logger: Logger;
}

/**
 * Uses the stream that already captures the subject, or creates ours. Ours has its max_age
 * kept at the TTL; a foreign stream is left as it is (stale events are then dropped by age
 * at delivery).
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
  const maxAge = nanos(o.ttlMs);
  if (existing === undefined) {
    await jsm.streams.add({
      name: ours,
      subjects: [o.subject],
      retention: RetentionPolicy.Limits,
      storage: StorageType.File,
      discard: DiscardPolicy.Old,
      max_age: maxAge,
      duplicate_window: nanos(Math.min(o.ttlMs, MAX_DUPLICATE_WINDOW_MS)),
      num_replicas: 1,
    });
    o.logger.info({ stream: ours, subject: o.subject, maxAgeMs: o.ttlMs }, 'JetStream stream created');
    return ours;
  }
  const info = await jsm.streams.info(existing);
  if (existing === ours) {
    if (info.config.max_age !== maxAge) {
      await jsm.streams.update(ours, { max_age: maxAge, duplicate_window: nanos(Math.min(o.ttlMs, MAX_DUPLICATE_WINDOW_MS)) });
      o.logger.info({ stream: ours, maxAgeMs: o.ttlMs }, 'JetStream stream max_age set to the topic TTL');
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
