/**
 * A session login the BMC refused because its session slots are all taken: operators' scripts,
 * exporters, a GUI that left its sessions open (iDRAC keeps an idle one 30 minutes). Such a BMC
 * refuses every new session until one ends, with the right password; HTTP Basic keeps no slot.
 * (HPE iLO opens a session for each Basic request and ends it with the answer, "Managing iLO
 * sessions with Redfish", hpe-dev-incubator/hpe-dev-portal and HPEDevCom/redfishdocs: with every
 * slot taken the Basic request may find none either; what iLO answers then is not published.)
 */
import { BmcError } from '../errors.js';
import { warningsEvery } from '../warnings-every.js';
import { redfishMessagesOf } from './http-errors.js';

/**
 * The last dot-separated part of the MessageIds that say so, in lower case (the registry prefix
 * and version differ by firmware): the DMTF Base registry's `Base.1.x.SessionLimitExceeded`, which
 * Lenovo XCC documents for its session POST, answered 503
 * (pubs.lenovo.com/xcc3-restapi/create_a_session_post), and iDRAC's `IDRAC.2.x.RAC0218` "The
 * maximum number of user sessions is reached.", answered 503 with code Base.1.x.GeneralError
 * (stmcginnis/gofish#75, bb-Ricardo/check_redfish#89). No others: no answer of HPE iLO,
 * Supermicro, AMI MegaRAC, Huawei iBMC or Fujitsu iRMC to a full session store is published (iLO
 * lists SessionLimitExceeded in its registry, HewlettPackard/ilo-rest-api-docs _ilo5_msgregs.md,
 * but nothing shows it sent), and upstream OpenBMC bmcweb has no limit (its session POST fails only
 * 500 InternalError). Base's `CreateLimitReachedForResource` stays out: a generic "no more of this
 * resource" no BMC is known to answer a login with, which would make any other refusal of a
 * create read as full slots.
 */
const SESSION_LIMIT_MESSAGES: ReadonlySet<string> = new Set(['sessionlimitexceeded', 'rac0218']);

const lastPart = (messageId: string): string => (messageId.split('.').pop() ?? '').toLowerCase();

/** The MessageId of `err` (a Redfish error answer, whatever its status) that says the BMC's session slots are all taken, else undefined. */
export function sessionLimitMessageId(err: unknown): string | undefined {
  return redfishMessagesOf(err).find((m) => SESSION_LIMIT_MESSAGES.has(lastPart(m.messageId)))?.messageId;
}

/** What an operator can do about it. */
const END_SESSIONS = 'end unused Redfish sessions on the BMC (its web interface; racadm closessn on iDRAC; idle ones end after its session timeout, 30 minutes on iDRAC)';

/**
 * The refusal in session mode, which does not fall back: NO_SESSION_SLOTS (the code of a BMC
 * without a free session, the status page's `sessions-full`), not AUTH_FAILED: the password may be
 * right. `messageId` is the BMC's, scrubbed by the caller.
 */
export function sessionSlotsTaken(origin: string, messageId: string, refusal: BmcError): BmcError {
  return new BmcError('NO_SESSION_SLOTS', `${origin}: the BMC refused a new Redfish session: its session slots are all taken (${messageId}); ${END_SESSIONS}`, {
    cause: refusal,
    ...(refusal.httpStatus === undefined ? {} : { httpStatus: refusal.httpStatus }),
  });
}

/**
 * The refusal in auto mode when the BMC refused HTTP Basic too (`basic`, 401 or 403): still
 * NO_SESSION_SLOTS, since Basic may be switched off whatever the password (iDRAC9 7.30.10.50 and
 * iDRAC10 1.30.10.50 leave it "Unadvertised" by default: dell/iDRAC-Redfish-Scripting#371).
 */
export function basicRefusedToo(origin: string, messageId: string, session: BmcError, basic: BmcError): BmcError {
  return new BmcError(
    'NO_SESSION_SLOTS',
    `${origin}: the BMC refused a new Redfish session: its session slots are all taken (${messageId}), and it refused HTTP Basic too (HTTP ${basic.httpStatus ?? '?'}; the password may be right: Basic may be switched off on the BMC); ${END_SESSIONS}, or enable HTTP Basic authentication on it`,
    { cause: basic, ...(session.httpStatus === undefined ? {} : { httpStatus: session.httpStatus }) },
  );
}

/** When to say again that a BMC's session slots are all taken: once per origin and hour (the process's: a report opens a new client for every BMC every cycle). */
export const fullSlotsWarnings = warningsEvery(3600_000);

