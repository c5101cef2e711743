/**
 * `@Redfish.OperationApplyTime` values a firmware push names (DSP0266, Settings.OperationApplyTime).
 * Its own module, free of imports: the facade's push rules name them on the one-shot CLI's path,
 * which must not load the update code (and undici with it).
 */
export type OperationApplyTime = 'Immediate' | 'OnReset' | 'OnStartUpdateRequest';

/** The apply time after which a pushed image waits, staged, for `#UpdateService.StartUpdate`. */
export const ON_START_UPDATE_REQUEST: OperationApplyTime = 'OnStartUpdateRequest';
