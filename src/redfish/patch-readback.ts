/**
 * Whether a PATCH a BMC answered 200 or 204 took effect. Some firmware answers success, with no
 * message, and leaves the values as they were: a Supermicro (AMI-based, Redfish 1.22.2) answered a
 * Pxe/Once/UEFI override 200 and read back Legacy and Disabled, only the target applied
 * (bmc-toolbox/bmclib#459, which re-reads the System after the PATCH); a 204 that ignored
 * BootSourceOverrideMode is in kubevirtbmc/kubevirtbmc#166. sushy, gofish and go-hal take the 2xx
 * as done. So: where the answer does not itself show what was sent (204, or a 200 without those
 * properties), the resource PATCHed is read back and the values compared; one that shows another
 * value, again a second later (READ_BACK_SETTLE_MS), is NotAppliedError, as a 2xx whose messages
 * say so (patch-answer.ts).
 *
 * A read-back that fails (a timeout, a 5xx) leaves the PATCH as the success it answered: the
 * command most likely worked, and failing it because a GET failed would fall back to IPMI or fail
 * the command for nothing. A property the read-back does not show is not held against the PATCH.
 * A 202 (the change runs as a task) is not read back: its values need not show yet; neither is a
 * 2xx whose messages say a reset is required (`Base.1.x.ResetRequired`): the change is pending,
 * not refused. A value the BMC applies at the next reset may be read back elsewhere (`readFrom`:
 * the System's settings object, where pending values show; actions.ts decides).
 */
import { sleep } from '../deadline.js';
import { BmcError } from '../errors.js';
import type { Logger } from '../log.js';
import { obj, prop, str } from './json.js';
import { answerMessages, isMessage, NotAppliedError, type MismatchedProperty, type Scrub } from './patch-answer.js';
import type { RedfishReply } from './session.js';

/** A value a PATCH sent and how a body of its resource shows it. */
export interface SentValue {
  /** as NotAppliedError names it: `Boot/BootSourceOverrideTarget`, `IndicatorLED` */
  property: string;
  /** what was sent, as JSON (for the error's text) */
  sent: unknown;
  /** the value `body` holds for it; undefined: the body does not show it */
  shown(body: unknown): unknown;
  /** whether a value shown is the one sent */
  matches(shown: unknown): boolean;
}

/** `name` under `group` ('' for a property of the resource itself), compared as is. */
export function sameValue(group: string, name: string, sent: unknown): SentValue {
  return {
    property: group === '' ? name : `${group}/${name}`,
    sent,
    shown: (body) => prop(group === '' ? body : obj(body, group), name),
    matches: (shown) => shown === sent,
  };
}

/**
 * `Boot/BootOrder`: the order read back starts with the one sent (a BMC may list options left out
 * after them), each entry the reference sent or that reference decorated (`Boot0003: UEFI HTTPv4
 * …`, as some firmware writes BootOrder: dsx-ai-factory/libredfish#112).
 */
export function bootOrderValue(order: readonly string[]): SentValue {
  return {
    property: 'Boot/BootOrder',
    sent: order,
    shown: (body) => prop(obj(body, 'Boot'), 'BootOrder'),
    matches: (shown) => Array.isArray(shown) && order.every((ref, i) => shown[i] === ref || (typeof shown[i] === 'string' && (shown[i] as string).startsWith(`${ref}:`))),
  };
}

/** IndicatorLED: Lit and Blinking both show the LED on. */
const LED_STATES: Record<'on' | 'off', readonly unknown[]> = { on: ['Lit', 'Blinking'], off: ['Off'] };

/** The identify LED as sent in `body` (`IndicatorLED` or `LocationIndicatorActive`, ledBody in actions.ts). */
export function ledValues(body: Record<string, unknown>): SentValue[] {
  return Object.entries(body).map(([name, sent]) => {
    const value = sameValue('', name, sent);
    if (name !== 'IndicatorLED') return value;
    const wanted = LED_STATES[sent === 'Off' ? 'off' : 'on'];
    return { ...value, matches: (shown: unknown) => wanted.includes(shown) };
  });
}

/** The If-Match a resource read asks for: its ETag header, else its `@odata.etag`, else `*`. */
export function ifMatchOf(reply: Pick<RedfishReply, 'headers' | 'body'>): string {
  return reply.headers.etag ?? str(reply.body, '@odata.etag') ?? '*';
}

/** The values of `sent` that `body` shows with another value (those it does not show are left out). */
function mismatched(body: unknown, sent: readonly SentValue[], hide: Scrub): MismatchedProperty[] {
  return sent.flatMap((v) => {
    const shown = v.shown(body);
    if (shown === undefined || v.matches(shown)) return [];
    return [{ property: v.property, sent: JSON.stringify(v.sent), shown: hide(JSON.stringify(shown) ?? String(shown)) }];
  });
}

/** Whether `body` shows every value of `sent` as sent. */
const showsAll = (body: unknown, sent: readonly SentValue[]): boolean => sent.every((v) => v.matches(v.shown(body)));

/**
 * Base registry messages of a 2xx that leave the change pending until a reset (their prefix,
 * `Base.1.x.`, varies): the values sent show on the resource only after it.
 */
const PENDING_UNTIL_RESET_IDS = ['ResetRequired'];

/**
 * Whether a 2xx answer's messages say its change waits for a reset: those of the answer, of an
 * `error` object in it, and of the groups the values sent belong to (`Boot`: its own and its
 * `Boot@Message.ExtendedInfo`).
 */
export function awaitsReset(body: unknown, sent: readonly SentValue[]): boolean {
  const groups = new Set(sent.map((v) => (v.property.includes('/') ? v.property.slice(0, v.property.indexOf('/')) : '')));
  return [...groups].some((g) => answerMessages(body, g).some((m) => isMessage(m, PENDING_UNTIL_RESET_IDS)));
}

export type ReadBackClient = { getReply(path: string, options?: { signal?: AbortSignal }): Promise<RedfishReply>; scrub: Scrub };

export interface ReadBackOptions {
  signal?: AbortSignal | undefined;
  logger?: Logger | undefined;
  /** given the If-Match of the resource as read back (for a PATCH sent after this one) */
  onRead?: (ifMatch: string) => void;
  /** the resource to read back, where it is not the one PATCHed (the System's settings object, for values pending until a reset) */
  readFrom?: string;
  /** how long to wait before the second read of a resource that showed other values (default READ_BACK_SETTLE_MS) */
  settleMs?: number;
}

/**
 * A resource read back with other values is read once more this long after, before the PATCH is
 * held not applied: a BMC that applies a PATCH a moment after its 204 (the change handed to
 * another daemon of the firmware, as bmcweb does with D-Bus properties) would otherwise be
 * refused for nothing and the command fall back to IPMI, or fail with Redfish alone.
 */
export const READ_BACK_SETTLE_MS = 1000;

/**
 * After a 2xx `reply` to a PATCH of `path` that sent `sent`: nothing more when the reply is a 202,
 * its messages say a reset is required (awaitsReset), or its body shows every value as sent; else
 * a GET of `path` (or `readFrom`), another a second later where it shows a value otherwise, and
 * NotAppliedError (the 2xx's status) naming each value the second shows otherwise. A failed GET is
 * logged and the PATCH stands.
 */
export async function confirmApplied(client: ReadBackClient, path: string, reply: RedfishReply, sent: readonly SentValue[], o: ReadBackOptions = {}): Promise<void> {
  if (reply.status === 202 || showsAll(reply.body, sent) || awaitsReset(reply.body, sent)) return;
  const readPath = o.readFrom ?? path;
  for (let read = 1; ; read++) {
    let back: RedfishReply;
    try {
      back = await client.getReply(readPath, o.signal ? { signal: o.signal } : {});
    } catch (err) {
      if (!(err instanceof BmcError)) throw err;
      o.logger?.warn({ path, status: reply.status, err: err.message }, 'redfish PATCH answered success but its resource could not be read back to compare; taken as done');
      return;
    }
    o.onRead?.(ifMatchOf(back));
    const wrong = mismatched(back.body, sent, (t) => client.scrub(t));
    if (wrong.length === 0) return;
    if (read === 2) throw new NotAppliedError(path, reply.status, wrong);
    try {
      await sleep(o.settleMs ?? READ_BACK_SETTLE_MS, o.signal, `the second read-back of ${path}`);
    } catch (err) {
      // cut off (the command's deadline, a shutdown) before the second look: as a read-back that failed
      if (!(err instanceof BmcError)) throw err;
      o.logger?.warn({ path, status: reply.status, err: err.message }, 'redfish PATCH answered success but its resource could not be read back to compare; taken as done');
      return;
    }
  }
}
