/**
 * IPMI quirks of real BMCs the simulator can show (see quirks.ts). Each entry names a behaviour
 * seen on real firmware and the real client the tests prove to survive it on the simulator.
 */
import type { SimQuirkInfo } from './quirk-info.js';

export const IPMI_QUIRKS = {} satisfies Record<string, SimQuirkInfo>;
