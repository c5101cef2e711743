/**
 * A machine's events that went back to the stream (handed back), in their order, so that none of
 * the machine's later events runs before them. A hand-back waits as long as its own delivery count
 * says (bus/machine-events.ts handBackDelayMs): an event handed back on its second delivery waits
 * 500 ms, a later event's first delivery not at all, and would run first (an OFF before the CYCLE
 * metal-api sent before it). So while a machine has events out there, a plan of it runs only when
 * it is the first of them; any other goes back too and takes its place in the line.
 *
 * An event that never comes back (handed back on its last delivery, run by another instance after
 * a lead moved) must not hold its machine for ever: an entry ends `holdMs` after its last hand-back.
 * That time runs also while the bus pulls nothing (every slot of its in-flight limit busy), when the
 * held event cannot come back: a known limit (README), a later event may then run before it.
 * Only events with an id (JetStream) are held: over core NATS nothing comes back; nor is a last
 * delivery (`Plan.lastDelivery`): the runner refuses it instead of handing it back.
 */
import type { Logger } from '../log.js';
import type { Plan } from './event.js';

export interface HeldEvent {
  eventId: string;
  command: string;
  /** performance.now() after which it no longer holds its machine */
  until: number;
}

export interface OrderHolds {
  /** `plans` of one machine went back to the stream, in this order, before any event of it still out there: they lead its line */
  handedBack(plans: readonly Plan[]): void;
  /** Whether `plan` may run now: undefined when it may (no line, or it leads it and leaves it), else the event it waits behind (it joins the line). */
  check(plan: Plan): HeldEvent | undefined;
  /** `plan`'s event settled here and does not come back (dropped stale on receipt or when its turn came, refused, superseded): it leaves its machine's line */
  passed(plan: Plan): void;
  /** a lost lead: what went back is the next leader's, nothing here waits for it */
  clear(): void;
}

export function createOrderHolds(o: { holdMs: number; logger: Logger; now?: () => number }): OrderHolds {
  const now = o.now ?? (() => performance.now());
  /** machine key → its events out in the stream, oldest first */
  const lines = new Map<string, HeldEvent[]>();

  /** the machine's line without the events that did not come back in time, each said once */
  function lineOf(plan: Plan): HeldEvent[] | undefined {
    const line = lines.get(plan.key);
    if (!line) return undefined;
    const at = now();
    const live = line.filter((held) => at < held.until);
    for (const lost of line.filter((held) => at >= held.until)) {
      o.logger.warn({ machineId: plan.machineId, command: plan.command, lostCommand: lost.command, lostEventId: lost.eventId, holdMs: o.holdMs }, "a machine's events no longer wait for its event that went back to the stream: it did not come back in time (lost on its last delivery, or run by another instance)");
    }
    if (live.length === 0) {
      lines.delete(plan.key);
      return undefined;
    }
    lines.set(plan.key, live);
    return live;
  }

  /** whether `plan`'s event can come back from the stream: it has an id (JetStream), and deliveries left */
  const comesBack = (plan: Plan): plan is Plan & { eventId: string } => plan.eventId !== undefined && plan.lastDelivery !== true;

  const entry = (plan: Plan & { eventId: string }): HeldEvent => ({ eventId: plan.eventId, command: plan.command, until: now() + o.holdMs });

  return {
    handedBack(plans) {
      const out = plans.filter(comesBack);
      if (out.length === 0) return;
      const key = out[0]!.key;
      // lines of machines no event came for since they were held out: forgotten, not kept for ever
      const at = now();
      for (const [other, line] of lines) if (line.every((held) => at >= held.until)) lines.delete(other);
      const ids = new Set(out.map((p) => p.eventId));
      const rest = (lines.get(key) ?? []).filter((held) => !ids.has(held.eventId));
      lines.set(key, [...out.map(entry), ...rest]);
    },
    check(plan) {
      if (plan.eventId === undefined) return undefined;
      const line = lineOf(plan);
      if (!line) return undefined;
      if (line[0]!.eventId === plan.eventId) {
        line.shift();
        if (line.length === 0) lines.delete(plan.key);
        return undefined;
      }
      const at = line.findIndex((held) => held.eventId === plan.eventId);
      const lead = line[0];
      // its last delivery is refused, not handed back: it leaves the line for good
      if (!comesBack(plan)) {
        if (at >= 0) line.splice(at, 1);
      }
      // it goes back again: its time starts over, its place stays
      else if (at >= 0) line[at] = entry(plan);
      else line.push(entry(plan));
      return lead;
    },
    passed(plan) {
      const line = lines.get(plan.key);
      if (!line || plan.eventId === undefined) return;
      const rest = line.filter((held) => held.eventId !== plan.eventId);
      if (rest.length === 0) lines.delete(plan.key);
      else lines.set(plan.key, rest);
    },
    clear() {
      lines.clear();
    },
  };
}
