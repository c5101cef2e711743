/** The meaning of an event's age (src/commands/age.ts), as properties over every type and age. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { BmcAction } from '../../src/commands/actions.js';
import { MACHINE_COMMANDS } from '../../src/commands/actions.js';
import { isPowerAction, neverStale, onlySetsBootDevice, setsBootDeviceFirst, skipsAction, supersedesQueued, timelinessOf } from '../../src/commands/age.js';
import { EVENT_ACTIONS, EVENT_TYPES } from '../../src/commands/event.js';

const type = fc.constantFrom(...EVENT_TYPES);
const action: fc.Arbitrary<BmcAction> = fc.oneof(
  fc.constantFrom(...MACHINE_COMMANDS).map((command): BmcAction => ({ kind: 'command', command })),
  fc.constantFrom('bios' as const, 'bmc' as const).map((firmware): BmcAction => ({ kind: 'firmware', firmware, url: 'https://images/x.bin' })),
);

describe('event age', () => {
  it('fresh up to the TTL; past it a command is stale (but DISK and PXE, the persistent boot devices, late), a lifecycle event is late and never stale', () => {
    fc.assert(
      fc.property(type, fc.constantFrom(...MACHINE_COMMANDS, 'UPDATE-FIRMWARE'), fc.nat(10_000_000), fc.integer({ min: 1, max: 10_000_000 }), (t, command, age, ttl) => {
        const v = timelinessOf(t, age, ttl, command);
        if (age <= ttl) return v === 'fresh';
        if (t !== 'command') return v === 'late';
        return v === (command === 'DISK' || command === 'PXE' ? 'late' : 'stale');
      }),
    );
    expect(timelinessOf('command', 30_001, 30_000, 'RESET')).toBe('stale');
    expect(timelinessOf('command', 30_001, 30_000, 'BIOS')).toBe('stale');
    // metal-api's DISK at the end of an installation, while metal-bmc was away for an hour
    expect(timelinessOf('command', 3_600_000, 30_000, 'DISK')).toBe('late');
    expect(timelinessOf('delete', 3_600_000, 30_000)).toBe('late');
  });

  it('skips only the power steps of a late delete with a newer event pending', () => {
    fc.assert(
      fc.property(type, fc.constantFrom('fresh' as const, 'late' as const, 'stale' as const), fc.boolean(), action, (t, timeliness, newer, a) => {
        const skipped = skipsAction(t, timeliness, newer, a);
        return skipped === (t === 'delete' && timeliness === 'late' && newer && isPowerAction(a));
      }),
    );
    expect(isPowerAction({ kind: 'command', command: 'RESET' })).toBe(true);
    expect(isPowerAction({ kind: 'command', command: 'PXE' })).toBe(false);
  });
});

describe('what a newer event replaces', () => {
  const cmd = (command: (typeof MACHINE_COMMANDS)[number]): BmcAction => ({ kind: 'command', command });

  it('a plan with a power, one-time boot, LED or firmware step that runs is never replaced, whatever its type and age', () => {
    fc.assert(
      fc.property(type, fc.constantFrom('fresh' as const, 'late' as const), fc.array(action, { minLength: 1, maxLength: 4 }), (t, timeliness, actions) => {
        const keeps = actions.some((a) => !(a.kind === 'command' && (a.command === 'DISK' || a.command === 'PXE')) && !skipsAction(t, timeliness, true, a));
        return onlySetsBootDevice(t, timeliness, actions) === !keeps;
      }),
    );
  });

  it('create, DISK, PXE and a late delete only set a boot device; a fresh delete resets the machine; create, delete, DISK, PXE and REINSTALL set one first', () => {
    expect(onlySetsBootDevice('create', 'fresh', EVENT_ACTIONS.create)).toBe(true);
    expect(onlySetsBootDevice('command', 'fresh', [cmd('PXE')])).toBe(true);
    expect(onlySetsBootDevice('delete', 'late', EVENT_ACTIONS.delete)).toBe(true);
    expect(onlySetsBootDevice('delete', 'fresh', EVENT_ACTIONS.delete)).toBe(false);
    expect(onlySetsBootDevice('command', 'late', [cmd('BIOS')])).toBe(false);
    expect(onlySetsBootDevice('update', 'fresh', [])).toBe(false);
    for (const first of [EVENT_ACTIONS.create, EVENT_ACTIONS.delete, [cmd('DISK')], [cmd('PXE')], [cmd('PXE'), cmd('CYCLE')]]) expect(setsBootDeviceFirst(first)).toBe(true);
    for (const other of [[cmd('ON')], [cmd('BIOS')], [cmd('LED-ON')], []]) expect(setsBootDeviceFirst(other)).toBe(false);
  });

  it('only a plan that no age drops stale takes the place of queued plans: one that went stale at its turn would take their boot device with it', () => {
    fc.assert(
      fc.property(type, fc.constantFrom(...MACHINE_COMMANDS), fc.array(action, { maxLength: 4 }), fc.nat(10_000_000), fc.nat(10_000_000), (t, command, actions, age, ttl) => {
        const c = t === 'command' ? command : t;
        if (supersedesQueued(t, c, actions) && timelinessOf(t, age, ttl, c) === 'stale') return false;
        return supersedesQueued(t, c, actions) === (setsBootDeviceFirst(actions) && neverStale(t, c));
      }),
    );
    expect(supersedesQueued('command', 'REINSTALL', [cmd('PXE'), cmd('CYCLE')])).toBe(false);
    expect(supersedesQueued('delete', 'delete', EVENT_ACTIONS.delete)).toBe(true);
    expect(supersedesQueued('create', 'create', EVENT_ACTIONS.create)).toBe(true);
    for (const device of ['DISK', 'PXE'] as const) expect(supersedesQueued('command', device, [cmd(device)])).toBe(true);
    expect(neverStale('command', 'ON')).toBe(false);
  });
});
