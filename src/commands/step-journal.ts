/**
 * The event journal as the command path uses it: each non-idempotent step of an event (a RESET, a
 * CYCLE, a firmware update) is claimed before it is sent, so that it is sent at most once whatever
 * the event's deliveries, the instance that gets them or a crash between the step and the event's
 * ack. Structurally the bus's event journal (bus/event-journal.ts; commands/ does not import bus/).
 */

/** What a step's key holds: who claimed it when, and whether it was given back unsent or done. */
export interface StepRecord {
  /** claimed: may have been sent (nobody knows more); released: provably not sent; done: sent and answered */
  state: 'claimed' | 'released' | 'done';
  instance: string;
  /** ISO 8601, by the writer's clock */
  at: string;
}

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
}

/** How an earlier delivery's record reads in a result or a log line. */
export function describeRecord(r: StepRecord): string {
  return `instance ${r.instance} at ${r.at}`;
}
