/**
 * metal-api's machine commands and what each does to a BMC, as one table.
 * Used by the daemon's NATS consumer (through `runAction`) and by `metal-bmc bmc command`.
 */
import type { FirmwareKind, OperationOptions, Outband } from '../outband/types.js';

export const MACHINE_COMMANDS = ['ON', 'OFF', 'RESET', 'CYCLE', 'BIOS', 'DISK', 'PXE', 'REINSTALL', 'LED-ON', 'LED-OFF'] as const;
export type MachineCommand = (typeof MACHINE_COMMANDS)[number];

/** Every `cmd.cmd` a machine event may carry: the table above plus the firmware update, which takes arguments. */
export const EVENT_COMMANDS = [...MACHINE_COMMANDS, 'UPDATE-FIRMWARE'] as const;
export type EventCommand = (typeof EVENT_COMMANDS)[number];

export const FIRMWARE_KINDS: readonly FirmwareKind[] = ['bios', 'bmc'];

type Action = (bmc: Outband, options: OperationOptions) => Promise<void>;

/** RESET and CYCLE power on a machine that is off (BMCs refuse both then); `delete` runs PXE, then RESET. */
export const COMMAND_ACTIONS: Record<MachineCommand, Action> = {
  ON: (b, o) => b.powerOn(o),
  OFF: (b, o) => b.powerOff(o),
  RESET: (b, o) => b.powerReset(o),
  CYCLE: (b, o) => b.powerCycle(o),
  // PXE and DISK for all future boots, BIOS setup for the next boot only, as metal-stack's go-hal sets them
  BIOS: (b, o) => b.bootFrom('BIOS', { ...o, persistent: false }),
  DISK: (b, o) => b.bootFrom('DISK', { ...o, persistent: true }),
  PXE: (b, o) => b.bootFrom('PXE', { ...o, persistent: true }),
  REINSTALL: async (b, o) => {
    await b.bootFrom('PXE', { ...o, persistent: true });
    await b.powerCycle(o);
  },
  'LED-ON': (b, o) => b.identify(true, o),
  'LED-OFF': (b, o) => b.identify(false, o),
};

export function isMachineCommand(value: string): value is MachineCommand {
  return (MACHINE_COMMANDS as readonly string[]).includes(value);
}

export function isEventCommand(value: string): value is EventCommand {
  return (EVENT_COMMANDS as readonly string[]).includes(value);
}

/** One step of a plan, as data: a table command, or a firmware update with its arguments. */
export type BmcAction = { kind: 'command'; command: MachineCommand } | { kind: 'firmware'; firmware: FirmwareKind; url: string };

export function runAction(bmc: Outband, action: BmcAction, options: OperationOptions): Promise<void> {
  switch (action.kind) {
    case 'command':
      return COMMAND_ACTIONS[action.command](bmc, options);
    case 'firmware':
      return bmc.updateFirmware(action.firmware, action.url, options);
  }
}

export function describeAction(action: BmcAction): string {
  return action.kind === 'command' ? action.command : `UPDATE-FIRMWARE ${action.firmware}`;
}
