/** Prometheus metrics of the machine command path: NATS connection, events and their execution. */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

export type CommandOutcome = 'ok' | 'error' | 'timeout' | 'aborted' | 'unknown';

export interface CommandMetrics {
  commands: Counter<'command' | 'outcome'>;
  commandSeconds: Histogram<'command'>;
  eventsRejected: Counter<'reason'>;
  eventsStale: Counter;
  eventAgeSeconds: Histogram;
  eventsRefused: Counter<'reason'>;
  eventsSuperseded: Counter<'type'>;
  eventsExpired: Counter;
  eventsLate: Counter<'type'>;
  powerStepsSkipped: Counter<'type'>;
  handBacksUncounted: Counter;
  eventsSettledBefore: Counter<'seen'>;
  natsConnected: Gauge;
  natsClockOffsetSeconds: Gauge;
  leading: Gauge;
  firmwareJobs: Counter<'outcome'>;
  firmwareJobsRunning: Gauge;
  firmwareHoldsEnded: Counter<'end'>;
}

/**
 * Bounds of metal_bmc_machine_event_age_seconds. No bound at -1: prom-client (15) finds the bucket
 * of a value above every bound as index -1 and would count it in a bound equal to -1, so an event
 * two hours old (a lifecycle event kept while metal-bmc was down) showed as one from the future.
 * -2 is the clock-skew tolerance; 86400 the lifecycle events' retention.
 */
export const EVENT_AGE_BUCKETS = [-30, -5, -2, 0, 0.1, 0.5, 1, 5, 15, 30, 60, 300, 3600, 86_400];

export function createCommandMetrics(registry: Registry): CommandMetrics {
  const registers = [registry];
  return {
    commands: new Counter({ name: 'metal_bmc_commands_total', help: 'Machine events executed on a BMC, by command (ON, DISK, create, delete, ...) and outcome (ok, error, timeout, aborted, unknown: a non-idempotent action sent and not answered)', labelNames: ['command', 'outcome'], registers }),
    commandSeconds: new Histogram({ name: 'metal_bmc_command_duration_seconds', help: 'Duration of a machine event on its BMC, from connect to close', labelNames: ['command'], buckets: [0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120], registers }),
    eventsRejected: new Counter({ name: 'metal_bmc_events_rejected_total', help: 'Machine events refused without execution, by reason (not-json, unknown-command, missing-ipmi, ...)', labelNames: ['reason'], registers }),
    eventsStale: new Counter({ name: 'metal_bmc_events_stale_total', help: 'command events dropped because they were older than the topic TTL, when received or when their machine\'s queue reached them', registers }),
    eventAgeSeconds: new Histogram({ name: 'metal_bmc_machine_event_age_seconds', help: 'Age of a machine event when it reaches metal-bmc (the NATS server\'s timestamp against this host\'s clock; negative: this host\'s clock is behind). Every event near or past METAL_BMC_MACHINE_TOPIC_TTL while metal-bmc is up points at a clock out of step with the NATS server\'s', buckets: EVENT_AGE_BUCKETS, registers }),
    eventsRefused: new Counter({ name: 'metal_bmc_events_refused_total', help: 'Machine events refused, each with a result event: for want of room, queue-full (METAL_BMC_COMMAND_QUEUE_MAX per machine, core NATS or the last delivery of a JetStream event), queue-full-handed-back (the same over JetStream: back to the stream, it comes again; once per event), in-flight (METAL_BMC_COMMAND_MAX_IN_FLIGHT, core NATS), firmware-update (a power command while a firmware update of this instance runs on its machine or BMC)', labelNames: ['reason'], registers }),
    eventsSuperseded: new Counter({ name: 'metal_bmc_events_superseded_total', help: 'Queued machine events that only set a persistent boot device, dropped (acknowledged, with a result) for a newer event of their machine that came with its queue full (METAL_BMC_COMMAND_QUEUE_MAX) and sets the boot device first, by type', labelNames: ['type'], registers }),
    eventsExpired: new Counter({ name: 'metal_bmc_events_expired_total', help: 'Machine events dropped because they were older than the lifecycle retention (only a foreign stream keeps them that long)', registers }),
    eventsLate: new Counter({ name: 'metal_bmc_events_late_total', help: 'create and delete events executed although older than the topic TTL (published while metal-bmc was down), by type', labelNames: ['type'], registers }),
    handBacksUncounted: new Counter({ name: 'metal_bmc_event_handbacks_uncounted_total', help: 'Runs of machine events handed back (a shutdown, a lost lead, the event journal unreachable) whose hand-back the event journal did not count within 2 s (a count still under way may land later): a later delivery counts each not landed as a run that never settled, and an event with three of them is refused (UNSETTLED_RUNS)', registers }),
    eventsSettledBefore: new Counter({ name: 'metal_bmc_events_settled_before_total', help: 'Deliveries of machine events an earlier delivery had settled (its ack lost: a NATS node gone, a process killed before the ack went out), acknowledged again and not run, by where that was seen: here (this process settled it) or journal (the event journal\'s settled key: another instance, or this one before a restart)', labelNames: ['seen'], registers }),
    powerStepsSkipped: new Counter({ name: 'metal_bmc_power_steps_skipped_total', help: 'Power steps of late lifecycle events skipped because a newer event for the machine was pending, by type', labelNames: ['type'], registers }),
    firmwareJobs: new Counter({ name: 'metal_bmc_firmware_jobs_total', help: 'UPDATE-FIRMWARE jobs by outcome (completed, failed, outcome-unknown: the deadline passed with the BMC silent, or the BMC came back with another TLS certificate, interrupted, refused)', labelNames: ['outcome'], registers }),
    firmwareJobsRunning: new Gauge({ name: 'metal_bmc_firmware_jobs_running', help: 'UPDATE-FIRMWARE jobs running in the background', registers }),
    firmwareHoldsEnded: new Counter({ name: 'metal_bmc_firmware_holds_ended_total', help: 'Holds of a machine after an UPDATE-FIRMWARE of unknown outcome, by how they ended: completed or failed (the update\'s end seen, result phase settled), hold-ended, task-hung or superseded (released, the outcome still unknown); the job itself is counted once in metal_bmc_firmware_jobs_total', labelNames: ['end'], registers }),
    leading: new Gauge({ name: 'metal_bmc_commands_leading', help: '1 while this instance takes the partition\'s machine events (it leads, or no leader is used), 0 while another instance leads', registers }),
    natsClockOffsetSeconds: new Gauge({ name: 'metal_bmc_nats_clock_offset_seconds', help: 'The NATS server\'s clock minus this host\'s, as last measured (a key written to the event journal\'s bucket and the time the server stored it); machine event ages are taken on the server\'s clock. Beyond a second or two, NTP is not keeping the two in step', registers }),
    natsConnected: new Gauge({ name: 'metal_bmc_nats_connected', help: '1 while the NATS connection is up, 0 otherwise', registers }),
  };
}
