import { AckPolicy, DeliverPolicy } from '@nats-io/jetstream';
import { nanos } from '@nats-io/transport-node';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { consumerConfigFor, MAX_DELIVER, sanitizeName, streamLimitsFor, streamNameFor } from '../../src/bus/jetstream.js';
import { defaultDurableName, handBackDelayMs } from '../../src/bus/machine-events.js';

describe('JetStream names and consumer config', () => {
  it('derives the stream name from the subject', () => {
    expect(streamNameFor('fra-equ01-machine')).toBe('METAL_BMC_FRA-EQU01-MACHINE');
    expect(streamNameFor('a.b*c>d e/f')).toBe('METAL_BMC_A_B_C_D_E_F');
  });

  it('never produces a character JetStream forbids in a name', () => {
    fc.assert(fc.property(fc.string(), (s) => /^[A-Za-z0-9_-]*$/.test(sanitizeName(s)) && /^METAL_BMC_[A-Z0-9_-]*$/.test(streamNameFor(s))));
  });

  it('names the durable consumer metal-bmc-<partition>', () => {
    expect(defaultDurableName('fra-equ01')).toBe('metal-bmc-fra-equ01');
  });

  it('asks for a durable pull consumer with explicit acks and 15 deliveries (the event journal keeps each non-idempotent step to one sending)', () => {
    expect(consumerConfigFor({ subject: 'p-machine', durableName: 'metal-bmc-p', ackWaitMs: 70_000 })).toEqual({
      durable_name: 'metal-bmc-p',
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
      max_deliver: 15,
      ack_wait: nanos(70_000),
      filter_subject: 'p-machine',
    });
    expect(MAX_DELIVER).toBe(15);
  });

  it('hands an event back at once the first time, then after 0.5 s doubling up to 30 s: the deliveries span minutes of hand-backs', () => {
    expect([1, 2, 3, 4, 8, 9, 14].map(handBackDelayMs)).toEqual([0, 500, 1000, 2000, 30_000, 30_000, 30_000]);
    let total = 0;
    for (let n = 1; n < MAX_DELIVER; n++) total += handBackDelayMs(n);
    expect(total).toBeGreaterThan(180_000);
  });

  it('keeps events for the retention, with a duplicate window of at most two minutes and the configured replicas', () => {
    expect(streamLimitsFor({ maxAgeMs: 86_400_000 })).toEqual({ max_age: nanos(86_400_000), duplicate_window: nanos(120_000), num_replicas: 1 });
    expect(streamLimitsFor({ maxAgeMs: 30_000, replicas: 3 })).toEqual({ max_age: nanos(30_000), duplicate_window: nanos(30_000), num_replicas: 3 });
  });
});
