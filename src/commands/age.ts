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
 *
 * What a newer event replaces: a plan that leaves nothing behind but a persistent boot device (a
 * create, a DISK or PXE command, a late delete whose power step gives way to the newer event) is
 * replaced by a newer event that sets the boot device before anything else, provided nothing that
 * boots the machine runs in between. A machine whose queue is full drops such a plan for the newer
 * event (runner.ts), instead of refusing the newer one, which says what the machine ends up as,
 * provided the newer one cannot go stale before its turn: else it would take the boot device
 * with it (a REINSTALL behind a full queue past the TTL).
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

/** The persistent boot devices: whichever was set last before a boot is the one that counts. */
export function isPersistentBootAction(action: BmcAction): boolean {
  return action.kind === 'command' && LATE_COMMANDS.has(action.command);
}

/**
 * Whether a plan leaves nothing behind but a persistent boot device once a newer event for its
 * machine is pending: every step sets DISK or PXE, or is a power step that gives way to that newer
 * event (`skipsAction`; a late delete's RESET). A power command, a one-time BIOS boot, an LED or a
 * firmware step is never such a step.
 */
export function onlySetsBootDevice(type: EventType, timeliness: Timeliness, actions: readonly BmcAction[]): boolean {
  return actions.length > 0 && actions.every((a) => isPersistentBootAction(a) || skipsAction(type, timeliness, true, a));
}

/** Whether a plan's first step sets a persistent boot device (create, delete, DISK, PXE, REINSTALL): it replaces what such steps before it set. */
export function setsBootDeviceFirst(actions: readonly BmcAction[]): boolean {
  return actions[0] !== undefined && isPersistentBootAction(actions[0]);
}

/** Whether an event of `type` (a `command` event's `command`) is never dropped for its age, however late its turn comes: lifecycle events, DISK and PXE. */
export function neverStale(type: EventType, command?: string): boolean {
  return timelinessOf(type, Number.POSITIVE_INFINITY, 0, command) !== 'stale';
}

/**
 * Whether a newer plan may take the place of queued plans it replaces (`onlySetsBootDevice`): it
 * sets the boot device first, and no age drops it, so the boot device it replaces is set for
 * sure (create, delete, DISK, PXE; not a REINSTALL, which is stale past the TTL, and its turn may
 * come late behind a full queue).
 */
export function supersedesQueued(type: EventType, command: string, actions: readonly BmcAction[]): boolean {
  return setsBootDeviceFirst(actions) && neverStale(type, command);
}
