/**
 * IPMI quirks of real BMCs the simulator can show (see quirks.ts). Each entry names a behaviour
 * seen on real firmware and the real client the tests prove to survive it on the simulator.
 */
import type { SimQuirkInfo } from './quirk-info.js';
import type { SimVariantName } from './machine.js';

export const IPMI_QUIRKS = {} satisfies Record<string, SimQuirkInfo>;

/** The IPMI quirks each vendor variant shows by default, as its real counterpart is known to. */
export const IPMI_VARIANT_QUIRKS: Partial<Record<SimVariantName, ReadonlyArray<keyof typeof IPMI_QUIRKS>>> = {};
