/**
 * What the age of a machine event means, as data: a `command` older than the topic TTL is
 * stale and never runs (a RESET that fires minutes late surprises whoever sent it); `create`
 * and `delete` older than the TTL are late and still run, in order (a machine freed while
 * metal-bmc was down must still be set to PXE and reset, as the Go daemon does). So do the
 * persistent boot device commands DISK and PXE: metal-api ends every installation (and every
 * aborted reinstall) with a `command` DISK (metal-api boot-service.go setBootOrderDisk), not with
 * a `create`, and a machine left on PXE after it was installed boots metal-hammer at every
 * reboot; a boot device set late surprises no one, and the machine's later events still follow
 * it in order. A late `delete` whose machine already has a newer event pending skips its power
 * step: that newer event says what the machine should do next. Pure functions, no clock of their own.
 */
import type { BmcAction, MachineCommand } from './actions.js';
import type { EventType } from './event.js';

export type Timeliness = 'fresh' | 'late' | 'stale';

/** What happens to an event of each type once it is older than the TTL. */
export const PAST_TTL: Record<EventType, Exclude<Timeliness, 'fresh'>> = {
  command: 'stale',
  create: 'late',
  delete: 'late',
  update: 'late',
};

/** Commands that run late like a lifecycle event: the persistent boot devices (BIOS is for the next boot only). */
export const LATE_COMMANDS: ReadonlySet<string> = new Set<MachineCommand>(['DISK', 'PXE']);

/** `command`: the event's cmd.cmd, for `command` events. */
export function timelinessOf(type: EventType, ageMs: number, ttlMs: number, command?: string): Timeliness {
  if (ageMs <= ttlMs) return 'fresh';
  return type === 'command' && command !== undefined && LATE_COMMANDS.has(command) ? 'late' : PAST_TTL[type];
}

/** Steps that change the machine's power state. */
export const POWER_COMMANDS: ReadonlySet<MachineCommand> = new Set<MachineCommand>(['ON', 'OFF', 'RESET', 'CYCLE']);

export function isPowerAction(action: BmcAction): boolean {
  return action.kind === 'command' && POWER_COMMANDS.has(action.command);
}

/** Event types whose power steps give way to a newer pending event when they run late. */
const YIELDS_POWER_WHEN_LATE: ReadonlySet<EventType> = new Set<EventType>(['delete']);

/** Whether `action` of a plan of `type` is skipped: only the power step of a late delete with a newer event pending. */
export function skipsAction(type: EventType, timeliness: Timeliness, newerPending: boolean, action: BmcAction): boolean {
  return timeliness === 'late' && newerPending && YIELDS_POWER_WHEN_LATE.has(type) && isPowerAction(action);
}
