/**
 * metal-api's machine commands and what each does to a BMC, as one table.
 * Used by the daemon's NATS consumer and by `metal-bmc bmc command`.
 */
import type { OperationOptions, Outband } from '../outband/types.js';

export const MACHINE_COMMANDS = ['ON', 'OFF', 'RESET', 'CYCLE', 'BIOS', 'DISK', 'PXE', 'REINSTALL', 'LED-ON', 'LED-OFF'] as const;
export type MachineCommand = (typeof MACHINE_COMMANDS)[number];

type Action = (bmc: Outband, options: OperationOptions) => Promise<void>;

export const COMMAND_ACTIONS: Record<MachineCommand, Action> = {
  ON: (b, o) => b.powerOn(o),
  OFF: (b, o) => b.powerOff(o),
  RESET: (b, o) => b.powerReset(o),
  CYCLE: (b, o) => b.powerCycle(o),
  BIOS: (b, o) => b.bootFrom('BIOS', o),
  DISK: (b, o) => b.bootFrom('DISK', o),
  PXE: (b, o) => b.bootFrom('PXE', o),
  REINSTALL: async (b, o) => {
    await b.bootFrom('PXE', o);
    await b.powerCycle(o);
  },
  'LED-ON': (b, o) => b.identify(true, o),
  'LED-OFF': (b, o) => b.identify(false, o),
};

export function isMachineCommand(value: string): value is MachineCommand {
  return (MACHINE_COMMANDS as readonly string[]).includes(value);
}
