/** The Redfish client: transport, session, typed reads, inventory, actions, firmware updates. */
export { openRedfish, RELOGIN_AFTER_RESTART, ReloginPendingError, SESSIONS_PATH } from './session.js';
export type { AuthMode, PatchOptions, RedfishClient, RedfishOptions, RedfishReply, RequestOptions } from './session.js';
export { createTransport, originOf, resolvePath } from './http.js';
export type { HttpMethod, HttpRequest, HttpResponse, HttpTransport, TransportOptions } from './http.js';
export { normalizeFingerprint } from './tls.js';
export type { TlsOptions } from './tls.js';
export * from './resources.js';
export * from './parse.js';
export { readInventory } from './inventory.js';
export type { RedfishInventory } from './inventory.js';
export { readBootOptions, reset, setBootOrder, setBootOverride, setIndicator, waitForPowerState } from './actions.js';
export type { ActionClient, ActionOptions, BootOverrideOptions, BootOverrideTarget, ResetOptions, ResetType } from './actions.js';
export { DEFAULT_MAX_IMAGE_BYTES, ImageTooLargeError, pushUpdate, simpleUpdate } from './update.js';
export { readSimpleUpdateAllowed, simpleUpdateFit, transferProtocolOf } from './simple-update-fit.js';
export type { SimpleUpdateAllowed, SimpleUpdateFit } from './simple-update-fit.js';
export type { PushUpdateOptions, SimpleUpdateOptions, UpdateClient, UpdateOptions, UpdateResult } from './update.js';
export { CertificateChangedError, STAGED_MESSAGE, STAGED_STATE, TaskLostError, USER_INTERVENTION_MESSAGE, taskLocation, taskPathInMessages, UntracedUpdateError, waitForTask } from './task.js';
export type { TaskProgress, WaitForTaskOptions } from './task.js';
