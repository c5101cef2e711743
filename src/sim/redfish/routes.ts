/**
 * The route table of the simulated Redfish service and the dispatcher: path normalisation,
 * authentication (X-Auth-Token of a session, or HTTP Basic), 404/405, and the session
 * handlers. Paths name `{system}`, `{manager}`, `{chassis}` and `{push}` (replaced by the
 * vendor's ids and push URI when the table is compiled per vendor) and `{id}` (any one
 * segment, handed to the handler).
 */
import { timingSafeEqual } from 'node:crypto';
import { hasQuirk } from '../machine.js';
import * as ch from './chassis.js';
import { paths, type Rq } from './context.js';
import { asObject, errorReply, notFound, readJson, RedfishFault, type Reply } from './http.js';
import { collection, type Json } from './mockup.js';
import * as res from './resources.js';
import { basicRefusedReply, beforeRoute, quirk, settingsObjectPath, shapeReply, siblingRoute, systemMembers, userServiceStarting } from './quirks.js';
import type { SimSession } from './sessions.js';
import type { SimTask } from './tasks.js';
import { patchChassis, patchSystem, patchSystemSettings, resetSystem } from './system-actions.js';
import * as up from './update.js';
import type { RedfishVendor } from './vendors.js';

type Method = 'GET' | 'POST' | 'PATCH' | 'DELETE';

interface Route {
  name: string;
  method: Method;
  path: string;
  /** default true */
  auth?: boolean;
  handle: (rq: Rq) => Reply | Promise<Reply>;
}

const ok = (body: Json | undefined): Reply => (body === undefined ? notFound() : { status: 200, body });
const withEtag = (body: Json): Reply => ({ status: 200, body, headers: { ETag: body['@odata.etag'] as string } });
const only = (flag: boolean, body: () => Json): Reply => (flag ? ok(body()) : notFound());

const V1 = '/redfish/v1';
const SESSIONS = res.SESSIONS;

const ROUTES: readonly Route[] = [
  { name: 'GET redfish', method: 'GET', path: '/redfish', auth: false, handle: () => ok({ v1: `${V1}/` }) },
  { name: 'GET root', method: 'GET', path: V1, auth: false, handle: (rq) => ok(res.serviceRoot(rq.ctx)) },
  { name: 'GET session service', method: 'GET', path: `${V1}/SessionService`, handle: (rq) => ok(res.sessionService(rq.ctx, rq.settings)) },
  { name: 'GET sessions', method: 'GET', path: SESSIONS, handle: (rq) => ok(res.sessions(rq.ctx)) },
  { name: 'POST sessions', method: 'POST', path: SESSIONS, auth: false, handle: login },
  { name: 'GET session', method: 'GET', path: `${SESSIONS}/{id}`, handle: (rq) => ok(sessionBody(rq)) },
  { name: 'DELETE session', method: 'DELETE', path: `${SESSIONS}/{id}`, handle: logout },
  { name: 'GET systems', method: 'GET', path: `${V1}/Systems`, handle: (rq) => ok(members(rq, 'Systems', 'system')) },
  { name: 'GET system', method: 'GET', path: '{system}', handle: (rq) => withEtag(res.system(rq.ctx)) },
  { name: 'PATCH system', method: 'PATCH', path: '{system}', handle: patchSystem },
  { name: 'GET system settings', method: 'GET', path: '{system}/SD', handle: (rq) => (hasQuirk(rq.ctx.machine.state, 'redfish-boot-settings-object') ? withEtag(res.systemSettings(rq.ctx, settingsObjectPath(rq.ctx))) : notFound()) },
  { name: 'PATCH system settings', method: 'PATCH', path: '{system}/SD', handle: patchSystemSettings },
  { name: 'GET boot options', method: 'GET', path: '{system}/BootOptions', handle: (rq) => ok(res.bootOptions(rq.ctx, rq.ctx.vendor.expandQuery && new URLSearchParams(rq.path.split('?')[1] ?? '').has('$expand'))) },
  { name: 'GET boot option', method: 'GET', path: '{system}/BootOptions/{id}', handle: (rq) => ok(res.bootOption(rq.ctx, rq.id)) },
  { name: 'GET reset action info', method: 'GET', path: '{system}/ResetActionInfo', handle: (rq) => only(rq.ctx.vendor.resetActionInfo || hasQuirk(rq.ctx.machine.state, 'redfish-action-target-moved'), () => res.resetActionInfo(rq.ctx)) },
  { name: 'POST reset', method: 'POST', path: '{system}/Actions/ComputerSystem.Reset', handle: resetSystem },
  { name: 'GET managers', method: 'GET', path: `${V1}/Managers`, handle: (rq) => ok(members(rq, 'Managers', 'manager')) },
  { name: 'GET manager', method: 'GET', path: '{manager}', handle: (rq) => ok(res.manager(rq.ctx)) },
  { name: 'GET chassis collection', method: 'GET', path: `${V1}/Chassis`, handle: (rq) => ok(members(rq, 'Chassis', 'chassis')) },
  { name: 'GET chassis', method: 'GET', path: '{chassis}', handle: (rq) => withEtag(ch.chassis(rq.ctx)) },
  { name: 'PATCH chassis', method: 'PATCH', path: '{chassis}', handle: patchChassis },
  { name: 'GET power', method: 'GET', path: '{chassis}/Power', handle: (rq) => only(rq.ctx.vendor.power || hasQuirk(rq.ctx.machine.state, 'redfish-legacy-power-only'), () => ch.power(rq.ctx)) },
  { name: 'GET power subsystem', method: 'GET', path: '{chassis}/PowerSubsystem', handle: (rq) => ok(ch.powerSubsystem(rq.ctx)) },
  { name: 'GET power supplies', method: 'GET', path: '{chassis}/PowerSubsystem/PowerSupplies', handle: (rq) => ok(ch.powerSupplies(rq.ctx)) },
  { name: 'GET power supply', method: 'GET', path: '{chassis}/PowerSubsystem/PowerSupplies/{id}', handle: (rq) => ok(ch.powerSupply(rq.ctx, rq.id)) },
  { name: 'GET environment metrics', method: 'GET', path: '{chassis}/EnvironmentMetrics', handle: (rq) => only(rq.ctx.vendor.environmentMetrics, () => ch.environmentMetrics(rq.ctx)) },
  { name: 'GET update service', method: 'GET', path: `${V1}/UpdateService`, handle: (rq) => ok(up.updateService(rq.ctx)) },
  { name: 'GET simple update action info', method: 'GET', path: `${V1}/UpdateService/SimpleUpdateActionInfo`, handle: (rq) => ok(up.simpleUpdateActionInfo(rq.ctx)) },
  { name: 'GET firmware inventory', method: 'GET', path: `${V1}/UpdateService/FirmwareInventory`, handle: (rq) => ok(up.firmwareInventory(rq.ctx)) },
  { name: 'GET firmware', method: 'GET', path: `${V1}/UpdateService/FirmwareInventory/{id}`, handle: (rq) => ok(up.firmware(rq.ctx, rq.id)) },
  { name: 'POST simple update', method: 'POST', path: `${V1}/UpdateService/Actions/SimpleUpdate`, handle: up.simpleUpdate },
  { name: 'POST simple update', method: 'POST', path: `${V1}/UpdateService/Actions/UpdateService.SimpleUpdate`, handle: up.simpleUpdate },
  { name: 'POST start update', method: 'POST', path: `${V1}/UpdateService/Actions/UpdateService.StartUpdate`, handle: up.startStagedUpdate },
  { name: 'POST multipart push', method: 'POST', path: '{push}', handle: up.multipartPush },
  { name: 'GET task service', method: 'GET', path: `${V1}/TaskService`, handle: (rq) => ok(up.taskService(rq.ctx)) },
  { name: 'GET tasks', method: 'GET', path: `${V1}/TaskService/Tasks`, handle: (rq) => ok(up.tasks(rq.ctx)) },
  { name: 'GET task', method: 'GET', path: `${V1}/TaskService/Tasks/{id}`, handle: (rq) => ok(withTask(rq, (t) => up.task(rq.ctx, t))) },
  { name: 'GET task monitor', method: 'GET', path: `${V1}/TaskService/Tasks/{id}/Monitor`, handle: (rq) => withTask(rq, (t) => up.taskMonitor(rq.ctx, t)) ?? notFound() },
];

const MEMBER_BODY: Record<'system' | 'manager' | 'chassis', (rq: Rq) => Json> = { system: (rq) => res.system(rq.ctx), manager: (rq) => res.manager(rq.ctx), chassis: (rq) => ch.chassis(rq.ctx) };

/** A collection; with `$expand` (any form) on a vendor that offers it, its members inline. */
function members(rq: Rq, name: 'Systems' | 'Managers' | 'Chassis', which: 'system' | 'manager' | 'chassis'): Json {
  const own = paths(rq.ctx.vendor)[which];
  const members = which === 'system' ? systemMembers(rq.ctx, own) : [own];
  const body = collection(name, rq.ctx.vendor, `${V1}/${name}`, members);
  const query = new URLSearchParams(rq.path.split('?')[1] ?? '');
  // $expand inlines the one member; a multi-system BMC (redfish-multi-system) lists references only
  if (rq.ctx.vendor.expandQuery && query.has('$expand') && members.length === 1) body.Members = [MEMBER_BODY[which](rq)];
  return body;
}

function withTask<T>(rq: Rq, fn: (t: SimTask) => T): T | undefined {
  const t = rq.ctx.tasks.get(rq.id);
  return t === undefined ? undefined : fn(t);
}

function sessionBody(rq: Rq): Json | undefined {
  const s = rq.ctx.sessions.get(rq.id);
  return s === undefined ? undefined : res.session(rq.ctx, s);
}

function same(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

function credentialsOk(rq: Rq, user: unknown, password: unknown): boolean {
  if (rq.ctx.machine.state.faults.wrongCredentials || userServiceStarting(rq.ctx)) return false;
  return typeof user === 'string' && typeof password === 'string' && same(user, rq.settings.user) && same(password, rq.settings.password);
}

const denied = (): RedfishFault => new RedfishFault(401, 'AccessDenied', 'Login failed: invalid user name or password.', ['/redfish/v1/SessionService/Sessions']);

async function login(rq: Rq): Promise<Reply> {
  const body = asObject(await readJson(rq.req), 'request body');
  if (!credentialsOk(rq, body.UserName, body.Password)) throw denied();
  const s = rq.ctx.sessions.create(body.UserName as string);
  if (s === undefined) {
    // the DMTF Base registry's answer (Base.1.8.SessionLimitExceeded); iDRAC's own is redfish-sessions-exhausted
    throw new RedfishFault(503, 'SessionLimitExceeded', 'The session establishment failed due to the number of simultaneous sessions exceeding the limit of the implementation.');
  }
  return { status: 201, body: res.session(rq.ctx, s), headers: { 'X-Auth-Token': s.token, Location: `${SESSIONS}/${s.id}` } };
}

function logout(rq: Rq): Reply {
  return rq.ctx.sessions.delete(rq.id) ? { status: 204 } : notFound();
}

/** The session of X-Auth-Token, 'basic' for good Basic credentials, 'basic-refused' for any under redfish-basic-refused, else undefined. */
function authenticate(rq: Rq): SimSession | 'basic' | 'basic-refused' | undefined {
  const token = rq.req.headers['x-auth-token'];
  if (typeof token === 'string' && token !== '') return rq.ctx.sessions.authenticate(token);
  const header = rq.req.headers.authorization;
  const match = header === undefined ? null : /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header);
  if (match === null) return undefined;
  if (quirk(rq.ctx, 'redfish-basic-refused')) return 'basic-refused';
  const decoded = Buffer.from(match[1] as string, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) return undefined;
  return credentialsOk(rq, decoded.slice(0, colon), decoded.slice(colon + 1)) ? 'basic' : undefined;
}

function unauthorized(): Reply {
  const reply = errorReply(401, 'NoValidSession', 'There is no valid session established with the implementation.');
  return { ...reply, headers: { 'WWW-Authenticate': 'Basic realm="Redfish"' } };
}

interface Compiled {
  route: Route;
  segments: string[];
}

/** Per vendor, the routes by their number of path segments: a request is matched against those of its own length only. */
const compiled = new Map<RedfishVendor, Map<number, Compiled[]>>();

function table(vendor: RedfishVendor): Map<number, Compiled[]> {
  let byLength = compiled.get(vendor);
  if (byLength === undefined) {
    const p = paths(vendor);
    const expand = (path: string): string =>
      path.replace('{system}', p.system).replace('{manager}', p.manager).replace('{chassis}', p.chassis).replace('{push}', vendor.multipartPushUri);
    byLength = new Map();
    for (const route of ROUTES) {
      const segments = expand(route.path).split('/').filter((s) => s !== '');
      const sameLength = byLength.get(segments.length) ?? [];
      sameLength.push({ route, segments });
      byLength.set(segments.length, sameLength);
    }
    compiled.set(vendor, byLength);
  }
  return byLength;
}

/** The `{id}` segment's value when `segments` fit `pattern` (of the same length), else undefined. */
function match(segments: readonly string[], pattern: readonly string[]): string | undefined {
  let id = '';
  for (let i = 0; i < pattern.length; i++) {
    if (pattern[i] === '{id}') id = segments[i] as string;
    else if (pattern[i] !== segments[i]) return undefined;
  }
  return id;
}

/** Finds the route, checks authentication, runs the handler; every outcome is a Reply. */
export async function dispatch(rq: Omit<Rq, 'id' | 'session'>): Promise<Reply> {
  let pathname = rq.path.split('?')[0] ?? '';
  const early = beforeRoute(rq.ctx, rq.method, pathname);
  if (early !== undefined && 'reply' in early) return early.reply;
  if (early !== undefined) pathname = early.reroute;
  let segments: string[];
  try {
    segments = pathname.split('/').filter((s) => s !== '').map(decodeURIComponent);
  } catch {
    return notFound();
  }
  const candidates: Array<{ route: Route; id: string }> = [];
  for (const c of table(rq.ctx.vendor).get(segments.length) ?? []) {
    const id = match(segments, c.segments);
    if (id !== undefined) candidates.push({ route: c.route, id });
  }
  const hit = candidates.find((c) => c.route.method === rq.method);
  if (hit === undefined && candidates.length === 0) {
    const sibling = siblingRoute(rq.ctx, rq.method, pathname, () => res.system(rq.ctx));
    if (sibling !== undefined) {
      const who = authenticate({ ...rq, id: '', session: undefined });
      return who === undefined ? unauthorized() : who === 'basic-refused' ? basicRefusedReply() : sibling;
    }
  }
  if (hit === undefined) {
    rq.counters.byRoute.unknown = (rq.counters.byRoute.unknown ?? 0) + 1;
    if (candidates.length === 0) return notFound();
    const allow = [...new Set(candidates.map((c) => c.route.method))].join(', ');
    return { ...errorReply(405, 'OperationNotAllowed', `The HTTP method ${rq.method} is not allowed on ${pathname}.`), headers: { Allow: allow } };
  }
  const { route, id } = hit;
  rq.counters.byRoute[route.name] = (rq.counters.byRoute[route.name] ?? 0) + 1;
  const full: Rq = { ...rq, id, session: undefined };
  if (route.auth !== false) {
    const who = authenticate(full);
    if (who === undefined) return unauthorized();
    if (who === 'basic-refused') return basicRefusedReply();
    if (who !== 'basic') full.session = who;
  }
  try {
    return shapeReply(full, route.name, await route.handle(full));
  } catch (err) {
    if (err instanceof RedfishFault) return err.reply;
    return errorReply(500, 'InternalError', `The request failed due to an internal service error: ${err instanceof Error ? err.message : String(err)}`);
  }
}
