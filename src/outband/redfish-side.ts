/**
 * The Redfish functions the facade uses. connect.ts imports this module only when it tries
 * Redfish, so `--protocol ipmi` (and an IPMI-only one-shot command) never loads undici.
 */
export { readBootOptions, reset, setBootOrder, setBootOverride, setIndicator } from '../redfish/actions.js';
export { readInventory } from '../redfish/inventory.js';
export { firstSystemPath, readManager, readServiceRoot, readSystem, readUpdateService } from '../redfish/resources.js';
export { openRedfish } from '../redfish/session.js';
export { pushUpdate, simpleUpdate } from '../redfish/update.js';
export { readSimpleUpdateAllowed, simpleUpdateFit } from '../redfish/simple-update-fit.js';
export { readCache } from '../redfish/read-cache.js';
export { updateBmcImage, watchBmcVersion } from './firmware-outcome.js';
export { followHpeFlashAgain, updateOnIlo } from './hpe-flash.js';
export { taskLocation, waitForTask } from '../redfish/task.js';
