/**
 * HPE iLO 5/6 tells the progress of a flash it was given without a task (SimpleUpdate answered 200
 * or 202 with no Location, a push to HttpPushUri/MultipartHttpPushUri) only in its UpdateService:
 * `Oem.Hpe.State`, `Oem.Hpe.FlashProgressPercent` and, once it ended, `Oem.Hpe.Result`
 * (`MessageId`, `MessageArgs`). Sources: openstack/proliantutils
 * proliantutils/redfish/resources/update_service.py (HPEUpdateService.firmware_state and
 * firmware_percentage: ['Oem','Hpe','State'] and ['Oem','Hpe','FlashProgressPercent']; "Percentage
 * is returned None after firmware flash is completed"); HewlettPackard/python-redfish-utility
 * ilorest/extensions/iLO_COMMANDS/FirmwareUpdateCommand.py (printerrmsg reads
 * Oem.Hpe.Result.MessageId). This module only reads the wire; what a state means is the facade's
 * (outband/hpe-flash.ts).
 */
import { arr, num, obj, str } from './json.js';
import { shortened } from './text.js';

export interface HpeFlashState {
  /** `Oem.Hpe.State` as iLO wrote it (Idle, Uploading, Verifying, Writing, Updating, Complete, Error, …), cut to MAX_STATE characters */
  state: string;
  /** `Oem.Hpe.FlashProgressPercent`, a whole number 0 to 100 (iLO drops it after the flash) */
  percent?: number;
  /** `Oem.Hpe.Result.MessageId` (the outcome of the last flash) */
  resultMessageId?: string;
  /** `Oem.Hpe.Result.MessageArgs`, the strings and numbers among them, at most MAX_ARGS */
  resultMessageArgs?: string[];
}

/** A state longer than any iLO sends is cut: it goes into progress and errors. */
export const MAX_STATE = 64;
const MAX_MESSAGE_ID = 128;
const MAX_ARG = 256;
const MAX_ARGS = 8;

/** `FlashProgressPercent` as a whole number 0..100; anything else (a fraction is rounded) is absent. */
function percentOf(value: number | undefined): number | undefined {
  if (value === undefined || value < 0 || value > 100) return undefined;
  return Math.round(value);
}

/**
 * The flash state in an UpdateService's body, or undefined when it has no `Oem.Hpe.State` string
 * (not an iLO, or one that says nothing). Total over any JSON.
 */
export function parseHpeFlashState(body: unknown): HpeFlashState | undefined {
  const hpe = obj(obj(body, 'Oem'), 'Hpe');
  const state = str(hpe, 'State')?.trim();
  if (state === undefined || state === '') return undefined;
  const percent = percentOf(num(hpe, 'FlashProgressPercent'));
  const result = obj(hpe, 'Result');
  const messageId = str(result, 'MessageId')?.trim();
  const args = (arr(result, 'MessageArgs') ?? [])
    .filter((a): a is string | number => typeof a === 'string' || (typeof a === 'number' && Number.isFinite(a)))
    .slice(0, MAX_ARGS)
    .map((a) => shortened(String(a), MAX_ARG));
  return {
    state: shortened(state, MAX_STATE),
    ...(percent === undefined ? {} : { percent }),
    ...(messageId === undefined || messageId === '' ? {} : { resultMessageId: shortened(messageId, MAX_MESSAGE_ID) }),
    ...(args.length === 0 ? {} : { resultMessageArgs: args }),
  };
}
