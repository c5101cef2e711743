/**
 * The Redfish quirks of src/sim/quirks-redfish.ts, as the simulated service shows them. Each is
 * read from the machine's `quirks` on every request (hasQuirk), so tests may flip them at any
 * time. Four hooks: before routing (`beforeRoute`: answers a request the quirk takes over),
 * the If-Match rule of a PATCH (`ifMatchRule`), the ETag a resource shows (`quirkEtag`), and the
 * reply on its way out (`shapeReply`: bodies, headers, bytes on the wire).
 */
import { hasQuirk } from '../machine.js';
import { SESSIONS_EXHAUSTED_ANSWERS, type RedfishQuirkName, type SessionsExhaustedAnswer } from '../quirks-redfish.js';
import { link, paths, type MachineContext, type Rq } from './context.js';
import { errorReply, notFound, RedfishFault, type Reply } from './http.js';
import type { Json } from './mockup.js';

/** Per-machine state some quirks keep, created with the machine's context. */
export interface QuirkState {
  /** redfish-503-retry-after: when the restart window began (undefined while the quirk is off) */
  unavailableSince: number | undefined;
  /** redfish-bmc-reboot-after-update: when the BMC restarted into a new image (its own restart window) */
  rebootedAt?: number;
  /** redfish-certificate-renewed-after-update: the BMC restarted into a new image and presents its new certificate */
  certificateRenewed?: boolean;
  /** redfish-login-refused-after-reboot: the restart (its `rebootedAt`) after which a login was refused */
  loginRefusedAfter?: number;
  /** redfish-etag-412-once: conditional PATCHes seen, and how often the ETag moved */
  conditionalPatches: number;
  etagGeneration: number;
}

export const newQuirkState = (): QuirkState => ({ unavailableSince: undefined, conditionalPatches: 0, etagGeneration: 0 });

/** How long redfish-503-retry-after answers 503, and the Retry-After it sends (seconds). */
export const RESTART_WINDOW_MS = 2000;
export const RETRY_AFTER_S = 1;
/** redfish-slow: the time each answer takes. */
export const SLOW_ANSWER_MS = 1500;
/** What redfish-trailing-bytes sends after the JSON document. */
export const TRAILING_BYTES = '\0\r\n';

export const quirk = (ctx: MachineContext, name: RedfishQuirkName): boolean => hasQuirk(ctx.machine.state, name);

/** The sibling node redfish-multi-system lists before the machine's own System. */
export const siblingSystemPath = '/redfish/v1/Systems/Node0';

/** The OEM reset target of redfish-action-target-moved. */
export const movedResetPath = (ctx: MachineContext): string => `${paths(ctx.vendor).system}/Actions/Oem/ComputerSystem.Reset`;

/**
 * redfish-503-retry-after: 503 with Retry-After while the window that began when the quirk was
 * first seen lasts; the window starts again when the quirk is switched off and on. The same
 * window follows the restart of redfish-bmc-reboot-after-update.
 */
export function restarting(ctx: MachineContext, now = Date.now()): Reply | undefined {
  const { rebootedAt } = ctx.quirkState;
  if (rebootedAt !== undefined && now - rebootedAt < RESTART_WINDOW_MS) return unavailableReply();
  if (!quirk(ctx, 'redfish-503-retry-after')) {
    ctx.quirkState.unavailableSince = undefined;
    return undefined;
  }
  ctx.quirkState.unavailableSince ??= now;
  if (now - ctx.quirkState.unavailableSince >= RESTART_WINDOW_MS) return undefined;
  return unavailableReply();
}

/** redfish-login-refused-after-reboot: how long logins are refused after the restart window. */
export const LOGIN_REFUSED_MS = 3000;

/**
 * redfish-login-refused-after-reboot: whether a login is refused now, the BMC's user service still
 * starting after its restart: the first one after each restart, however late it comes (so a client
 * slowed down meets the quirk too), and every one until LOGIN_REFUSED_MS after the restart window.
 */
export function userServiceStarting(ctx: MachineContext, now = Date.now()): boolean {
  const state = ctx.quirkState;
  if (!quirk(ctx, 'redfish-login-refused-after-reboot') || state.rebootedAt === undefined) return false;
  if (state.loginRefusedAfter !== state.rebootedAt) {
    state.loginRefusedAfter = state.rebootedAt;
    return true;
  }
  return now - state.rebootedAt < RESTART_WINDOW_MS + LOGIN_REFUSED_MS;
}

/** 503 ServiceTemporarilyUnavailable with Retry-After, as a restarting BMC answers. */
function unavailableReply(): Reply {
  const reply = errorReply(503, 'ServiceTemporarilyUnavailable', `The service is temporarily unavailable. Retry in ${RETRY_AFTER_S} seconds.`, [String(RETRY_AFTER_S)]);
  return { ...reply, headers: { 'Retry-After': String(RETRY_AFTER_S) } };
}

/** iDRAC's body, as bb-Ricardo/check_redfish#89 logged it (Resolution shortened). */
function idracSessionsExhausted(messageId: string): unknown {
  const info = {
    Message: 'The maximum number of user sessions is reached.',
    MessageArgs: [],
    'MessageArgs@odata.count': 0,
    MessageId: messageId,
    RelatedProperties: [],
    'RelatedProperties@odata.count': 0,
    Resolution: 'Make sure that the number of active sessions is less than or equal to the threshold limit. To end a current session and start a new session, log out of iDRAC by using a Graphical User Interface (GUI), or end any unused session by running racadm closessn -i [session id].',
    Severity: 'Informational',
  };
  return { error: { '@Message.ExtendedInfo': [info], code: 'Base.1.7.GeneralError', message: 'A general error has occurred. See ExtendedInfo for more information' } };
}

/** The DMTF Base registry's message in the DMTF error form (Lenovo XCC publishes only its status and MessageId). */
function dmtfSessionLimitExceeded(messageId: string): unknown {
  const info = {
    MessageId: messageId,
    Message: 'The session establishment failed due to the number of simultaneous sessions exceeding the limit of the implementation.',
    MessageArgs: [],
    Severity: 'Critical',
    Resolution: 'Reduce the number of other sessions before trying to establish the session or increase the limit of simultaneous sessions (if supported).',
  };
  return { error: { code: 'Base.1.8.GeneralError', message: 'A general error has occurred. See ExtendedInfo for more information.', '@Message.ExtendedInfo': [info] } };
}

const SESSIONS_EXHAUSTED_BODIES: Readonly<Record<SessionsExhaustedAnswer, (messageId: string) => unknown>> = { idrac: idracSessionsExhausted, xcc: dmtfSessionLimitExceeded };

/** redfish-sessions-exhausted: `answer`'s reply to a session POST while its session slots are all taken (SESSIONS_EXHAUSTED_ANSWERS). */
export function sessionsExhaustedReply(answer: SessionsExhaustedAnswer = 'idrac'): Reply {
  const { status, messageId } = SESSIONS_EXHAUSTED_ANSWERS[answer];
  return { status, body: SESSIONS_EXHAUSTED_BODIES[answer](messageId) };
}

/** redfish-basic-refused: iDRAC's 401 to Basic credentials while Basic is "Unadvertised" (dell/iDRAC-Redfish-Scripting#371): no WWW-Authenticate offering Basic. */
export function basicRefusedReply(): Reply {
  const message = 'The authentication credentials included with this request are missing or invalid.';
  const info = { MessageId: 'Base.1.18.AccessDenied', Message: message, MessageArgs: [], Severity: 'Critical', Resolution: 'Attempt to ensure that the URI is correct and that the service has the appropriate credentials.' };
  return { status: 401, body: { error: { code: 'Base.1.18.GeneralError', message, '@Message.ExtendedInfo': [info] } } };
}

/** iDRAC's 409 for a reset to the power state the server is in (dellemc-openmanage-ansible-modules#132). */
function alreadyPowered(messageId: string, state: 'ON' | 'OFF'): Reply {
  const info = {
    Message: `Server is already powered ${state}.`,
    MessageArgs: [],
    'MessageArgs@odata.count': 0,
    MessageId: `IDRAC.1.6.${messageId}`,
    RelatedProperties: [],
    'RelatedProperties@odata.count': 0,
    Resolution: 'No response action is required.',
    Severity: 'Informational',
  };
  return { status: 409, body: { error: { '@Message.ExtendedInfo': [info], code: 'Base.1.2.GeneralError', message: 'A general error has occurred. See ExtendedInfo for more information' } } };
}

/** iLO's 400 for a restart of a server that is off: the MessageId alone, as iLO sends it. */
function invalidForSystemState(): Reply {
  return { status: 400, body: { error: { code: 'iLO.0.10.ExtendedInfo', message: 'See @Message.ExtendedInfo for more information.', '@Message.ExtendedInfo': [{ MessageId: 'iLO.2.14.InvalidOperationForSystemState' }] } } };
}

const RESTARTS: readonly string[] = ['PowerCycle', 'ForceRestart', 'GracefulRestart'];

/** redfish-reset-state-conflict: the refusal of a reset that changes nothing, or undefined when the reset goes ahead. */
export function resetRefusal(ctx: MachineContext, resetType: string): Reply | undefined {
  if (!quirk(ctx, 'redfish-reset-state-conflict')) return undefined;
  const { power } = ctx.machine.state;
  if (power === 'on' && (resetType === 'On' || resetType === 'ForceOn')) return alreadyPowered('PSU501', 'ON');
  if (power === 'off' && (resetType === 'ForceOff' || resetType === 'GracefulShutdown')) return alreadyPowered('PSU502', 'OFF');
  if (power === 'off' && RESTARTS.includes(resetType)) return invalidForSystemState();
  return undefined;
}

/** redfish-boot-mode-readonly: a Boot PATCH naming BootSourceOverrideMode is refused whole, as HPE iLO 5 does. */
export function checkBootModeWritable(ctx: MachineContext, boot: unknown): void {
  if (!quirk(ctx, 'redfish-boot-mode-readonly')) return;
  if (typeof boot !== 'object' || boot === null || !('BootSourceOverrideMode' in boot)) return;
  throw new RedfishFault(400, 'PropertyNotWritable', 'The property BootSourceOverrideMode is a read only property and cannot be assigned a value.', ['BootSourceOverrideMode']);
}

/** redfish-boot-settings-object: the settings object's path, under the System (AMI's FutureState URI). */
export const settingsObjectPath = (ctx: MachineContext): string => `${paths(ctx.vendor).system}/SD`;

/**
 * redfish-boot-settings-object: AMI MegaRAC's 400 for Boot properties PATCHed on the System (the
 * message as DMTF/Redfish-Tacklebox#144 quotes it), or undefined when the PATCH names none.
 */
export function bootOnSettingsObjectOnly(ctx: MachineContext, body: Record<string, unknown>): Reply | undefined {
  if (!quirk(ctx, 'redfish-boot-settings-object') || body.Boot === undefined) return undefined;
  const id = 'Ami.1.0.OperationSupportedInFutureStateURI';
  const message = `Support of this Operation for Boot Properties is moved to FutureState URI(${settingsObjectPath(ctx)})`;
  const info = { MessageId: id, Message: message, MessageArgs: [settingsObjectPath(ctx)], Severity: 'Warning', Resolution: 'Use the FutureState URI for the operation.' };
  return { status: 400, body: { error: { code: id, message, '@Message.ExtendedInfo': [info] } } };
}

/**
 * redfish-boot-partly-applied: what of a Boot change the BMC leaves out (a Continuous override is
 * set Once) and the annotation its 200 carries for it, as bmcweb marks a property it left
 * unchanged; undefined when it applies the change whole.
 */
export function bootPartlyApplied(ctx: MachineContext, boot: unknown, echoed = ''): { persistent: false; annotation: Json } | undefined {
  if (!quirk(ctx, 'redfish-boot-partly-applied')) return undefined;
  if (typeof boot !== 'object' || boot === null || (boot as Json).BootSourceOverrideEnabled !== 'Continuous') return undefined;
  const info = {
    '@odata.type': '#Message.v1_1_1.Message',
    MessageId: 'Base.1.8.PropertyValueNotInList',
    Message: `The value "Continuous" for the property BootSourceOverrideEnabled is not in the list of acceptable values.${echoed}`,
    MessageArgs: ['Continuous', 'BootSourceOverrideEnabled', ...(echoed === '' ? [] : [echoed])],
    RelatedProperties: ['#/Boot/BootSourceOverrideEnabled'],
    MessageSeverity: 'Warning',
    Resolution: 'Choose a value from the enumeration list that the implementation can support and resubmit the request if the operation failed.',
  };
  return { persistent: false, annotation: { 'BootSourceOverrideEnabled@Message.ExtendedInfo': [info] } };
}

/** What of a PATCH the BMC leaves out without a word: all of it, the boot mode, or nothing. */
export type SilentDrop = 'everything' | 'boot-mode' | undefined;

/**
 * redfish-patch-ignored and redfish-boot-mode-ignored: what a PATCH (checked as usual) leaves
 * unapplied while answered 204 No Content, as firmware that answers success and keeps its values.
 */
export function silentDrop(ctx: MachineContext): SilentDrop {
  if (quirk(ctx, 'redfish-patch-ignored')) return 'everything';
  if (quirk(ctx, 'redfish-boot-mode-ignored')) return 'boot-mode';
  return undefined;
}

/**
 * Requests a quirk answers itself, before the route table: the SessionService of
 * redfish-no-sessions, the session POST of redfish-sessions-exhausted, the power resources of
 * redfish-legacy-power-only, the sibling System of redfish-multi-system, the reset paths of
 * redfish-action-target-moved. `route` runs a route
 * handler (for the moved reset target); undefined: the route table decides.
 */
export function beforeRoute(ctx: MachineContext, method: string, pathname: string): { reply: Reply } | { reroute: string } | undefined {
  const path = pathname.replace(/\/+$/, '');
  const p = paths(ctx.vendor);
  if (quirk(ctx, 'redfish-no-sessions') && path.startsWith('/redfish/v1/SessionService')) {
    // iDRAC 7/8: 400 for the session POST, nothing else there
    return { reply: method === 'POST' ? errorReply(400, 'GeneralError', 'The request could not be processed because SessionService is not supported.') : notFound() };
  }
  if (quirk(ctx, 'redfish-sessions-exhausted') && method === 'POST' && path === '/redfish/v1/SessionService/Sessions') return { reply: sessionsExhaustedReply(ctx.machine.state.sessionsExhaustedAnswer) };
  if (quirk(ctx, 'redfish-legacy-power-only')) {
    if (path.startsWith(`${p.chassis}/PowerSubsystem`) || path === `${p.chassis}/EnvironmentMetrics`) return { reply: notFound() };
  }
  if (quirk(ctx, 'redfish-action-target-moved')) {
    if (path === `${p.system}/Actions/ComputerSystem.Reset`) return { reply: notFound() };
    if (path === movedResetPath(ctx)) return { reroute: `${p.system}/Actions/ComputerSystem.Reset` };
  }
  return undefined;
}

/** The sibling node's System, Chassis-less and off; its actions change nothing. */
export function siblingRoute(ctx: MachineContext, method: string, pathname: string, ownSystem: () => Json): Reply | undefined {
  if (!quirk(ctx, 'redfish-multi-system')) return undefined;
  const path = pathname.replace(/\/+$/, '');
  if (!path.startsWith(siblingSystemPath)) return undefined;
  if (path === siblingSystemPath && method === 'GET') {
    const own = ownSystem();
    const body: Json = { ...own, '@odata.id': siblingSystemPath, Id: 'Node0', Name: 'Node 0 (sibling)', UUID: '00000000-0000-4000-8000-00000000a0a0', PowerState: 'Off', SerialNumber: 'SIBLING0' };
    body.Links = { Chassis: [], ManagedBy: [] };
    body.Actions = { '#ComputerSystem.Reset': { target: `${siblingSystemPath}/Actions/ComputerSystem.Reset`, 'ResetType@Redfish.AllowableValues': ['On', 'ForceOff'] } };
    delete body['@odata.etag'];
    delete body.Boot;
    return { status: 200, body };
  }
  if (method === 'POST' || method === 'PATCH') return { status: 204 };
  return notFound();
}

/** Members of the Systems collection: the sibling first under redfish-multi-system. */
export function systemMembers(ctx: MachineContext, own: string): string[] {
  return quirk(ctx, 'redfish-multi-system') ? [siblingSystemPath, own] : [own];
}

/** The ETag a resource shows: moved by redfish-etag-412-once, weak under redfish-weak-etag. */
export function quirkEtag(ctx: MachineContext, etag: string): string {
  const moved = ctx.quirkState.etagGeneration > 0 && quirk(ctx, 'redfish-etag-412-once') ? `${etag.slice(0, -1)}-${ctx.quirkState.etagGeneration}"` : etag;
  return quirk(ctx, 'redfish-weak-etag') ? `W/${moved}` : moved;
}

const preconditionFailed = (): RedfishFault => new RedfishFault(412, 'PreconditionFailed', 'The ETag supplied did not match the ETag required to change this resource.');

/**
 * The If-Match rule of a PATCH under the ETag quirks: 'accept' skips the standard check,
 * 'standard' keeps it (against quirkEtag), a RedfishFault refuses.
 */
export function ifMatchRule(rq: Rq): 'accept' | 'standard' {
  const { ctx } = rq;
  const header = rq.req.headers['if-match'];
  if (quirk(ctx, 'redfish-if-match-refused')) {
    if (header !== undefined) throw preconditionFailed();
    return 'accept';
  }
  if (quirk(ctx, 'redfish-no-etag')) {
    // nothing to match, but a vendor that requires If-Match still wants one: XCC answered a PATCH
    // without it 412 (fwupd/fwupd#6347); `*` passes
    if (header === undefined && ctx.vendor.ifMatchRequired) throw preconditionFailed();
    return 'accept';
  }
  if (quirk(ctx, 'redfish-weak-etag')) {
    if (header === undefined || header.trim() === '*') return 'accept';
    throw new RedfishFault(412, 'PreconditionFailed', `The request to ${rq.path} cannot be completed because the If-Match precondition failed.`);
  }
  if (quirk(ctx, 'redfish-etag-412-once') && header !== undefined && header.trim() !== '*') {
    ctx.quirkState.conditionalPatches += 1;
    if (ctx.quirkState.conditionalPatches % 2 === 1) {
      ctx.quirkState.etagGeneration += 1; // a reading changed: the next GET shows a new ETag
      throw preconditionFailed();
    }
  }
  return 'standard';
}

const ETAG_FREE = (ctx: MachineContext): boolean => quirk(ctx, 'redfish-no-etag') || quirk(ctx, 'redfish-if-match-refused');

function withoutSessionService(body: Json): Json {
  const { SessionService: _s, ...rest } = body;
  const links = { ...(rest.Links as Json | undefined) };
  delete links.Sessions;
  return { ...rest, Links: links };
}

/**
 * A reply on its way out, by the route that made it: service root without SessionService,
 * session answers of redfish-session-200, Systems collection with the sibling, System Actions
 * with the moved target, Chassis without PowerSubsystem, ETags moved, weakened or removed.
 */
export function shapeReply(rq: Rq, route: string, reply: Reply): Reply {
  const { ctx } = rq;
  let body = reply.body as Json | undefined;
  let headers = reply.headers;
  let status = reply.status;
  const isObject = body !== undefined && typeof body === 'object' && body !== null && !Array.isArray(body);
  if (isObject && route === 'GET root' && quirk(ctx, 'redfish-no-sessions')) body = withoutSessionService(body as Json);
  if (isObject && route === 'GET system' && quirk(ctx, 'redfish-action-target-moved')) {
    const p = paths(ctx.vendor);
    body = { ...(body as Json), Actions: { '#ComputerSystem.Reset': { target: movedResetPath(ctx), '@Redfish.ActionInfo': `${p.system}/ResetActionInfo` } } };
  }
  if (isObject && route === 'GET system' && quirk(ctx, 'redfish-boot-settings-object')) {
    body = { ...(body as Json), '@Redfish.Settings': { '@odata.type': '#Settings.v1_3_5.Settings', SettingsObject: link(settingsObjectPath(ctx)) } };
  }
  if (isObject && route === 'GET chassis' && quirk(ctx, 'redfish-legacy-power-only')) {
    const { PowerSubsystem: _p, EnvironmentMetrics: _e, ...rest } = body as Json;
    body = { ...rest, Power: link(`${paths(ctx.vendor).chassis}/Power`) };
  }
  if (route === 'POST sessions' && status === 201 && quirk(ctx, 'redfish-session-200')) {
    const host = rq.req.headers.host ?? `${ctx.machine.state.address}`;
    const { 'X-Auth-Token': token = '', Location: location = '', ...rest } = headers ?? {};
    status = 200;
    headers = { ...rest, 'x-auth-token': token, Location: `https://${host}${location}` };
  }
  if (isObject && body !== undefined && typeof (body as Json)['@odata.etag'] === 'string') {
    const b = { ...(body as Json) };
    if (ETAG_FREE(ctx)) delete b['@odata.etag'];
    else b['@odata.etag'] = quirkEtag(ctx, b['@odata.etag'] as string);
    body = b;
  }
  if (headers?.ETag !== undefined) {
    const { ETag: tag, ...rest } = headers;
    headers = ETAG_FREE(ctx) ? rest : { ...rest, ETag: quirkEtag(ctx, tag) };
  }
  return { ...reply, status, ...(body === undefined ? {} : { body }), ...(headers === undefined ? {} : { headers }) };
}

/** How the bytes of a reply go out: BOM before, noise after, the connection closed after it. */
export interface WireShape {
  bom: boolean;
  trailing: boolean;
  close: boolean;
}

export function wireShape(ctx: MachineContext): WireShape {
  return { bom: quirk(ctx, 'redfish-bom'), trailing: quirk(ctx, 'redfish-trailing-bytes'), close: quirk(ctx, 'redfish-connection-close') };
}
