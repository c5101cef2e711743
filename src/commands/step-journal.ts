/**
 * The event journal as the command path uses it: each non-idempotent step of an event (a RESET, a
 * CYCLE, a firmware update) is claimed before it is sent, so that it is sent at most once whatever
 * the event's deliveries, the instance that gets them or a crash between the step and the event's
 * ack. Structurally the bus's event journal (bus/event-journal.ts; commands/ does not import bus/).
 */

/** What a step's key holds: who claimed it when, and whether it was given back unsent, done or skipped. */
export interface StepRecord {
  /**
   * claimed: may have been sent (nobody knows more); released: provably not sent; done: sent and
   * answered; skipped: left out on purpose (a late delete's power step with a newer event pending),
   * never to be sent by a later delivery either
   */
  state: 'claimed' | 'released' | 'done' | 'skipped';
  instance: string;
  /** ISO 8601, by the writer's clock */
  at: string;
}

/** Who settled an event, and when (the event's `settled` key). */
export type SettledRecord = Pick<StepRecord, 'instance' | 'at'>;

/** A step this delivery holds: it sends it, then says how it went. Neither call rejects. */
export interface StepHold {
  /** the step was not sent (a failure that proves it): a later delivery may take it */
  release(): Promise<void>;
  /** the step was sent and answered (best effort: a later delivery that finds it only claimed says so) */
  done(): Promise<void>;
}

/** `go`: this delivery holds the step (new, or released by an earlier one); `seen`: an earlier delivery claimed it (or did it). */
export type StepClaim = { go: StepHold } | { seen: StepRecord };

export interface StepJournal {
  /**
   * claims step `step` (its index in the plan) of event `eventId`; rejects when the journal cannot
   * be used (nothing may be sent then). `provablyUnsent` may take a `claimed` record as released:
   * the caller knows that claim sent nothing (its own instance's, from before a restart, with no
   * trace of the step having begun); without it a claimed step is never taken.
   */
  claim(eventId: string, step: number, provablyUnsent?: (seen: StepRecord) => boolean): Promise<StepClaim>;
  /**
   * Counts a run of event `eventId` starting (a delivery's turn in the runner); resolves to the
   * event's runs that did not end handed back, this one included: more than one means earlier
   * runs that never settled (the process ended, or its ack never reached the server). Rejects
   * when the journal cannot be used.
   */
  started?(eventId: string): Promise<number>;
  /** the run ended handed back (nak'ed by choice, it comes again): not one that never settled. Resolves to whether it was counted; never rejects. */
  handedBack?(eventId: string): Promise<boolean>;
  /**
   * Step `step` of event `eventId` was left out on purpose: a later delivery leaves it out too
   * (it finds the step `skipped`), whatever is pending then. A step already claimed keeps its
   * record. Best effort: never rejects.
   */
  skipped?(eventId: string, step: number): Promise<void>;
  /**
   * Event `eventId` settled (acknowledged or terminated): written before its ack, so that a
   * delivery after a lost ack (a NATS node gone, a process killed before the ack went out), here
   * or on another instance, acknowledges it again instead of running it after the machine's later
   * events. Resolves to whether it was written; never rejects.
   */
  settled?(eventId: string): Promise<boolean>;
  /** The record of an earlier delivery that settled event `eventId`, if any. Rejects when the journal cannot be used. */
  settledBefore?(eventId: string): Promise<SettledRecord | undefined>;
}

/** How an earlier delivery's record reads in a result or a log line. */
export function describeRecord(r: SettledRecord): string {
  return `instance ${r.instance} at ${r.at}`;
}
