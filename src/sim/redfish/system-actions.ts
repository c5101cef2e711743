/**
 * Writes to the System and the Chassis: `#ComputerSystem.Reset`, PATCH of `Boot` and of
 * the identify LED (IndicatorLED or LocationIndicatorActive, as the vendor has it), with
 * If-Match checked against the resource's current ETag (412 when stale, 428 when missing
 * on vendors that require it). Every change goes through SimMachine, so the IPMI view and
 * the event stream see it.
 */
import type { SimBoot, SimPower } from '../machine.js';
import { chassis } from './chassis.js';
import type { Rq } from './context.js';
import { asObject, notFound, readJson, RedfishFault, type Reply } from './http.js';
import type { Json } from './mockup.js';
import { BOOT_ENABLED, BOOT_MODES, BOOT_TARGETS, system, systemSettings } from './resources.js';
import { bootOnSettingsObjectOnly, bootPartlyApplied, checkBootModeWritable, ifMatchRule, quirk, quirkEtag, resetRefusal, settingsObjectPath, silentDrop, type SilentDrop } from './quirks.js';
import type { ResetType } from './vendors.js';

/** Power after each reset type; undefined keeps it (Nmi). */
const POWER_AFTER: Record<ResetType, SimPower | undefined> = {
  On: 'on',
  ForceOn: 'on',
  ForceOff: 'off',
  GracefulShutdown: 'off',
  GracefulRestart: 'on',
  ForceRestart: 'on',
  PowerCycle: 'on',
  Nmi: undefined,
};

export async function resetSystem(rq: Rq): Promise<Reply> {
  const body = asObject(await readJson(rq.req), 'request body');
  const type = body.ResetType;
  if (type === undefined) {
    throw new RedfishFault(400, 'ActionParameterMissing', 'The action ComputerSystem.Reset requires the parameter ResetType to be present in the request body.', ['ComputerSystem.Reset', 'ResetType']);
  }
  const allowed: readonly string[] = rq.ctx.vendor.resetTypes;
  if (typeof type !== 'string' || !allowed.includes(type)) {
    throw new RedfishFault(400, 'ActionParameterValueNotInList', `The value ${String(type)} for the parameter ResetType is not in the list of acceptable values.`, [String(type), 'ResetType']);
  }
  const refused = resetRefusal(rq.ctx, type);
  if (refused !== undefined) return refused;
  const { machine } = rq.ctx;
  machine.setPower(POWER_AFTER[type as ResetType] ?? machine.state.power, type);
  return { status: 204 };
}

/** 412 when If-Match names none of the current ETag (or *), 428 when it is missing and required (by the vendor, or `required`). */
function checkIfMatch(rq: Rq, raw: string, required = rq.ctx.vendor.ifMatchRequired): void {
  if (ifMatchRule(rq) === 'accept') return;
  const etag = quirkEtag(rq.ctx, raw);
  const header = rq.req.headers['if-match'];
  if (header === undefined) {
    if (required) throw new RedfishFault(428, 'PreconditionRequired', 'A precondition header or annotation is required to change the resource.');
    return;
  }
  const tags = header.split(',').map((t) => t.trim().replace(/^W\//, ''));
  if (!tags.includes('*') && !tags.includes(etag)) {
    throw new RedfishFault(412, 'PreconditionFailed', 'The ETag supplied did not match the ETag required to change this resource.');
  }
}

function unknown(current: Json, key: string): RedfishFault {
  return key in current
    ? new RedfishFault(400, 'PropertyNotWritable', `The property ${key} is a read only property and cannot be assigned a value.`, [key])
    : new RedfishFault(400, 'PropertyUnknown', `The property ${key} is not in the list of valid properties for the resource.`, [key]);
}

function notInList(key: string, value: unknown): RedfishFault {
  return new RedfishFault(400, 'PropertyValueNotInList', `The value ${JSON.stringify(value)} for the property ${key} is not in the list of acceptable values.`, [String(value), key]);
}

/** The identify LED value of a PATCH body, or undefined when it has none. */
function ledChange(rq: Rq, body: Record<string, unknown>): boolean | undefined {
  let on: boolean | undefined;
  if ('IndicatorLED' in body) {
    const v = body.IndicatorLED;
    if (v !== 'Lit' && v !== 'Blinking' && v !== 'Off') throw notInList('IndicatorLED', v);
    on = v !== 'Off';
  }
  if ('LocationIndicatorActive' in body) {
    const v = body.LocationIndicatorActive;
    if (typeof v !== 'boolean') throw new RedfishFault(400, 'PropertyValueTypeError', `The value ${JSON.stringify(v)} for the property LocationIndicatorActive is of a different type than the property can accept.`, [String(v), 'LocationIndicatorActive']);
    on = v;
  }
  return on;
}

interface BootChange {
  override?: { boot: SimBoot; persistent: boolean; uefi: boolean };
  order?: string[];
}

function bootChange(rq: Rq, value: unknown): BootChange {
  const boot = asObject(value, 'Boot');
  const { state } = rq.ctx.machine;
  for (const key of Object.keys(boot)) {
    if (!['BootSourceOverrideEnabled', 'BootSourceOverrideTarget', 'BootSourceOverrideMode', 'BootOrder'].includes(key)) throw unknown({}, `Boot/${key}`);
  }
  const { BootSourceOverrideEnabled: enabled, BootSourceOverrideTarget: target, BootSourceOverrideMode: mode, BootOrder: order } = boot;
  if (enabled !== undefined && !(BOOT_ENABLED as readonly unknown[]).includes(enabled)) throw notInList('BootSourceOverrideEnabled', enabled);
  if (target !== undefined && (typeof target !== 'string' || !(target in BOOT_TARGETS))) throw notInList('BootSourceOverrideTarget', target);
  if (mode !== undefined && !(BOOT_MODES as readonly unknown[]).includes(mode)) throw notInList('BootSourceOverrideMode', mode);
  const change: BootChange = {};
  if (order !== undefined) {
    const known = state.bootOptions.map((o) => o.id);
    if (!Array.isArray(order) || order.length === 0) throw notInList('BootOrder', order);
    const bad = order.find((r) => typeof r !== 'string' || !known.includes(r));
    if (bad !== undefined || new Set(order).size !== order.length) throw notInList('BootOrder', bad ?? order);
    change.order = order as string[];
  }
  if (enabled !== undefined || target !== undefined || mode !== undefined) {
    let device = target === undefined ? state.boot : (BOOT_TARGETS[target as string] as SimBoot);
    if (enabled === 'Disabled') device = 'none';
    change.override = {
      boot: device,
      persistent: enabled === undefined ? state.bootPersistent : enabled === 'Continuous',
      uefi: mode === undefined ? state.bootUefi : mode === 'UEFI',
    };
  }
  return change;
}

/** The fault echoCredentials: what the request authenticated with, as a BMC quoting it would write it into a message. */
function echoedCredentials(rq: Rq): string {
  if (!rq.ctx.machine.state.faults.echoCredentials) return '';
  const { authorization, 'x-auth-token': token } = rq.req.headers;
  return ` (request X-Auth-Token: ${String(token ?? '')}; Authorization: ${authorization ?? ''})`;
}

/**
 * A validated Boot change as a BMC that drops part of it silently keeps it (silentDrop): nothing of
 * it, or all but the mode. What is left is applied, and the PATCH answered 204 with no message.
 */
function keptOf(change: BootChange | undefined, drop: SilentDrop, uefiBefore: boolean): BootChange | undefined {
  if (drop === 'everything') return undefined;
  if (drop === 'boot-mode' && change !== undefined && change.override !== undefined) return { ...change, override: { ...change.override, uefi: uefiBefore } };
  return change;
}

/** 204 No Content: the answer of a BMC dropping part of a PATCH without a word. */
const SILENT: Reply = { status: 204 };

/** PATCH of the System: Boot and the identify LED; validated whole before anything changes. */
export async function patchSystem(rq: Rq): Promise<Reply> {
  const current = system(rq.ctx);
  checkIfMatch(rq, current['@odata.etag'] as string);
  const body = asObject(await readJson(rq.req), 'request body');
  const { vendor, machine } = rq.ctx;
  const writable = ['Boot', ...(vendor.indicatorLED ? ['IndicatorLED'] : []), ...(vendor.locationIndicatorActive ? ['LocationIndicatorActive'] : [])];
  for (const key of Object.keys(body)) if (!writable.includes(key) && key !== '@odata.etag') throw unknown(current, key);
  const elsewhere = bootOnSettingsObjectOnly(rq.ctx, body);
  if (elsewhere !== undefined) return elsewhere;
  checkBootModeWritable(rq.ctx, body.Boot);
  const drop = silentDrop(rq.ctx);
  const boot = keptOf(body.Boot === undefined ? undefined : bootChange(rq, body.Boot), drop, machine.state.bootUefi);
  const asked = ledChange(rq, body);
  const led = drop === 'everything' ? undefined : asked;
  const partly = bootPartlyApplied(rq.ctx, body.Boot, echoedCredentials(rq));
  if (boot?.order !== undefined) machine.writeBootOrder(boot.order);
  if (boot?.override !== undefined) machine.setBoot(boot.override.boot, partly ? partly.persistent : boot.override.persistent, boot.override.uefi, 'redfish');
  if (led !== undefined) machine.setIdentify(led);
  if (drop !== undefined) return SILENT;
  const updated = system(rq.ctx);
  const answer = partly ? { ...updated, Boot: { ...(updated.Boot as Json), ...partly.annotation } } : updated;
  return { status: 200, body: answer, headers: { ETag: updated['@odata.etag'] as string } };
}

/**
 * PATCH of the System's settings object (redfish-boot-settings-object): Boot only, with If-Match
 * (AMI's SD refuses a PATCH without one: community.general#6434's "did not provide the required
 * precondition"). Applied at once: the simulated host has no next boot to wait for.
 */
export async function patchSystemSettings(rq: Rq): Promise<Reply> {
  if (!quirk(rq.ctx, 'redfish-boot-settings-object')) return notFound();
  const path = settingsObjectPath(rq.ctx);
  const current = systemSettings(rq.ctx, path);
  checkIfMatch(rq, current['@odata.etag'] as string, true);
  const body = asObject(await readJson(rq.req), 'request body');
  for (const key of Object.keys(body)) if (key !== 'Boot' && key !== '@odata.etag') throw unknown(current, key);
  const { machine } = rq.ctx;
  const drop = silentDrop(rq.ctx);
  const boot = keptOf(body.Boot === undefined ? undefined : bootChange(rq, body.Boot), drop, machine.state.bootUefi);
  if (boot?.order !== undefined) machine.setBootOrder(boot.order);
  if (boot?.override !== undefined) machine.setBoot(boot.override.boot, boot.override.persistent, boot.override.uefi, 'redfish');
  if (drop !== undefined) return SILENT;
  const updated = systemSettings(rq.ctx, path);
  return { status: 200, body: updated, headers: { ETag: updated['@odata.etag'] as string } };
}

/** PATCH of the Chassis: the identify LED only. */
export async function patchChassis(rq: Rq): Promise<Reply> {
  const current = chassis(rq.ctx);
  checkIfMatch(rq, current['@odata.etag'] as string);
  const body = asObject(await readJson(rq.req), 'request body');
  const { vendor, machine } = rq.ctx;
  const writable = [...(vendor.indicatorLED ? ['IndicatorLED'] : []), ...(vendor.locationIndicatorActive ? ['LocationIndicatorActive'] : [])];
  for (const key of Object.keys(body)) if (!writable.includes(key) && key !== '@odata.etag') throw unknown(current, key);
  const led = ledChange(rq, body);
  const drop = silentDrop(rq.ctx);
  if (led !== undefined && drop !== 'everything') machine.setIdentify(led);
  if (drop !== undefined) return SILENT;
  const updated = chassis(rq.ctx);
  return { status: 200, body: updated, headers: { ETag: updated['@odata.etag'] as string } };
}
