/**
 * What a 2xx answer to a PATCH says of the properties it was sent. DSP0266 lets a service apply a
 * PATCH in part: it answers 200 with the resource and message annotations listing the properties
 * it left unchanged (the Redfish Protocol Validator's REQ_PATCH_MIXED_PROPS), in the answer's
 * `@Message.ExtendedInfo` or on the property itself (`<Property>@Message.ExtendedInfo`, as bmcweb
 * writes one: ibm-openbmc/bmcweb#70). Taken as a success, a dropped `Continuous` or boot target is
 * reported done, and the next reinstall boots from disk.
 */
import { extendedInfoOf, RedfishHttpError, type RedfishMessage } from './http-errors.js';
import { obj } from './json.js';
import { shortened } from './text.js';

/**
 * Base registry messages that leave a property unapplied (their prefix, `Base.1.x.`, varies). Not
 * Success, PropertyDeprecated and the like, which report a property that was applied.
 */
const NOT_APPLIED_IDS = [
  'PropertyNotWritable',
  'PropertyUnknown',
  'PropertyValueNotInList',
  'PropertyValueTypeError',
  'PropertyValueFormatError',
  'PropertyValueIncorrect',
  'PropertyValueError',
  'PropertyValueOutOfRange',
  'PropertyValueConflict',
  'PropertyValueResourceConflict',
  'PropertyValueModified',
  'PropertyNotUpdated',
];

/** Whether `m` is one of the messages `ids` names, whatever its registry prefix (`Base.1.x.`, `Ami.1.0.`). */
export const isMessage = (m: RedfishMessage, ids: readonly string[]): boolean => ids.some((id) => m.messageId === id || m.messageId.endsWith(`.${id}`));

const leavesUnapplied = (m: RedfishMessage): boolean => isMessage(m, NOT_APPLIED_IDS);

/** Whether an entry names `property`: a RelatedProperties pointer or a MessageArg ending in it (`#/Boot/X`, `Boot/X`, `X`), or its text. */
function names(m: RedfishMessage, property: string): boolean {
  return [...m.related, ...m.args].some((a) => a === property || a.endsWith(`/${property}`)) || m.message.includes(property);
}

/** A property the answer says it left unchanged, and the message that says so. */
export interface UnappliedProperty {
  /** `Group/Name`, e.g. `Boot/BootSourceOverrideEnabled` */
  property: string;
  message: RedfishMessage;
}

/** Replaces the secrets of the client that sent the PATCH in a BMC's text (RedfishClient.scrub). */
export type Scrub = (text: string) => string;

/** `m` with every text the BMC wrote scrubbed: a BMC may quote what it was sent, the session token or the Authorization header included. */
const scrubbed = (m: RedfishMessage, hide: Scrub): RedfishMessage => ({ messageId: hide(m.messageId), message: hide(m.message), args: m.args.map(hide), related: m.related.map(hide) });

/**
 * The messages a 2xx answer to a PATCH holds beside those on single properties: the answer's, those
 * of an `error` object in it and, for properties under `group` ('' for the resource's own), the
 * group's annotation (`Boot@Message.ExtendedInfo`) and the group's own. Not scrubbed.
 */
export function answerMessages(body: unknown, group: string): RedfishMessage[] {
  const groupNotes = group === '' ? [] : [...extendedInfoOf(body, [], `${group}@Message.ExtendedInfo`), ...extendedInfoOf(obj(body, group))];
  return [...extendedInfoOf(body), ...extendedInfoOf(obj(body, 'error')), ...groupNotes];
}

/**
 * The properties among `sent` (the names PATCHed under `group`, e.g. `Boot`; '' for properties of
 * the resource itself, such as IndicatorLED) that a 2xx answer's messages say were not applied:
 * those of the answer, of an `error` object in it, of the group and of each property, their texts
 * scrubbed by `hide`. Bounded as every message list of a BMC is (http-errors.ts).
 */
export function unappliedProperties(body: unknown, group: string, sent: readonly string[], hide: Scrub): UnappliedProperty[] {
  const inGroup = group === '' ? body : obj(body, group);
  const general = answerMessages(body, group).filter(leavesUnapplied);
  return sent.flatMap((name) => {
    const message = extendedInfoOf(inGroup, [], `${name}@Message.ExtendedInfo`).find(leavesUnapplied) ?? general.find((m) => names(m, name));
    return message === undefined ? [] : [{ property: group === '' ? name : `${group}/${name}`, message: scrubbed(message, hide) }];
  });
}

/**
 * A property a GET of the resource after the 2xx showed with another value than the one sent, the
 * BMC having said nothing of it (patch-readback.ts). `sent` and `shown` as JSON, `shown` scrubbed.
 */
export interface MismatchedProperty {
  property: string;
  sent: string;
  shown: string;
}

const isMismatch = (u: UnappliedProperty | MismatchedProperty): u is MismatchedProperty => 'shown' in u;

/** How the error names one property: the BMC's message, or what was sent and read back. */
function described(u: UnappliedProperty | MismatchedProperty): string {
  if (isMismatch(u)) return `${u.property} (sent ${shortened(u.sent, 100)}, read back ${shortened(u.shown, 100)})`;
  return `${u.property} (${u.message.messageId || 'no MessageId'}${u.message.message ? `: ${shortened(u.message.message, 200)}` : ''})`;
}

/**
 * A PATCH the BMC answered 2xx but applied only in part, or not at all: taken as a refusal (code
 * HTTP, like a 400), so the caller's fallbacks apply (the other protocol, a PATCH without the
 * property refused). Its `httpStatus` is the 2xx the BMC sent; `properties` names what was left
 * unchanged, by the answer's messages or by a read-back that showed other values.
 */
export class NotAppliedError extends RedfishHttpError {
  readonly properties: readonly string[];
  constructor(path: string, status: number, unapplied: ReadonlyArray<UnappliedProperty | MismatchedProperty>) {
    const what = unapplied.map(described).join('; ');
    const messages = unapplied.flatMap((u) => (isMismatch(u) ? [] : [u.message]));
    super('HTTP', `PATCH ${shortened(path, 300)}: HTTP ${status}, but the BMC did not apply ${what}`, status, messages);
    this.name = 'NotAppliedError';
    this.properties = unapplied.map((u) => u.property);
  }
}

/** Throws NotAppliedError when a 2xx answer says a property of `sent` under `group` was not applied; the BMC's texts scrubbed by `hide`. */
export function checkApplied(path: string, reply: { status: number; body: unknown }, group: string, sent: readonly string[], hide: Scrub): void {
  const unapplied = unappliedProperties(reply.body, group, sent, hide);
  if (unapplied.length > 0) throw new NotAppliedError(path, reply.status, unapplied);
}
