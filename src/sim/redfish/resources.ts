/**
 * GET bodies of the service root, the session service, the System and the Manager:
 * the mockup's resource, trimmed to what the simulator serves, overlaid with the
 * machine's own values and shaped by its vendor profile.
 */
import { createHash } from 'node:crypto';
import type { SimBoot, SimMachineState } from '../machine.js';
import { link, paths, type MachineContext, type ServerSettings } from './context.js';
import { etagOf } from './http.js';
import { collection, mockupPick, type Json } from './mockup.js';
import type { SimSession } from './sessions.js';

export const SESSIONS = '/redfish/v1/SessionService/Sessions';

/** Redfish boot targets and the simulator's boot devices, both ways. */
export const BOOT_TARGETS: Record<string, SimBoot> = { None: 'none', Pxe: 'pxe', Hdd: 'disk', BiosSetup: 'bios' };
export const BOOT_ENABLED = ['Once', 'Continuous', 'Disabled'] as const;
export const BOOT_MODES = ['UEFI', 'Legacy'] as const;

function bootTarget(boot: SimBoot): string {
  return Object.keys(BOOT_TARGETS).find((k) => BOOT_TARGETS[k] === boot) ?? 'None';
}

/** A UUID of the Redfish service, derived from the system's but different from it. */
function serviceUuid(systemUuid: string): string {
  const hex = createHash('sha256').update(`redfish-service/${systemUuid}`).digest('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-4${hex.slice(13, 16)}-a${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
}

export function serviceRoot(ctx: MachineContext): Json {
  const { state } = ctx.machine;
  const keys = ['Id', 'Name', 'RedfishVersion', 'UUID', 'Systems', 'Chassis', 'Managers', 'Tasks', 'SessionService', 'UpdateService', 'Links'];
  const root: Json = { ...mockupPick('', ctx.vendor, keys), UUID: serviceUuid(state.uuid), Vendor: state.manufacturer, Product: state.model };
  if (ctx.vendor.expandQuery) root.ProtocolFeaturesSupported = { ExpandQuery: { ExpandAll: true, Levels: true, MaxLevels: 1, Links: false, NoLinks: true } };
  return root;
}

export function sessionService(ctx: MachineContext, settings: ServerSettings): Json {
  const json = mockupPick('SessionService', ctx.vendor, ['Id', 'Name', 'Description', 'Status', 'ServiceEnabled', 'SessionTimeout', 'Sessions']);
  return { ...json, SessionTimeout: settings.sessionTimeoutS };
}

export function sessions(ctx: MachineContext): Json {
  return collection('SessionService/Sessions', ctx.vendor, SESSIONS, ctx.sessions.list().map((s) => `${SESSIONS}/${s.id}`));
}

export function session(ctx: MachineContext, s: SimSession): Json {
  const json = mockupPick('SessionService/Sessions/1234567890ABCDEF', ctx.vendor, ['Id', 'Name', 'Description', 'UserName']);
  return { ...json, Id: s.id, UserName: s.user, '@odata.id': `${SESSIONS}/${s.id}` };
}

function bootView(state: SimMachineState, systemPath: string): Json {
  const enabled = state.boot === 'none' ? 'Disabled' : state.bootPersistent ? 'Continuous' : 'Once';
  return {
    BootOrder: [...state.bootOrder],
    BootOptions: { '@odata.id': `${systemPath}/BootOptions` },
    BootSourceOverrideEnabled: enabled,
    'BootSourceOverrideEnabled@Redfish.AllowableValues': [...BOOT_ENABLED],
    BootSourceOverrideTarget: bootTarget(state.boot),
    'BootSourceOverrideTarget@Redfish.AllowableValues': Object.keys(BOOT_TARGETS),
    BootSourceOverrideMode: state.bootUefi ? 'UEFI' : 'Legacy',
    'BootSourceOverrideMode@Redfish.AllowableValues': [...BOOT_MODES],
  };
}

export function system(ctx: MachineContext): Json {
  const { state } = ctx.machine;
  const { vendor } = ctx;
  const p = paths(vendor);
  const keys = ['Id', 'Name', 'SystemType', 'Status', 'IndicatorLED', 'PowerState', 'Boot', 'BiosVersion', 'ProcessorSummary', 'MemorySummary'];
  const json = mockupPick('Systems/437XR1138R2', vendor, [...keys, 'Manufacturer', 'Model', 'SerialNumber', 'PartNumber', 'UUID']);
  Object.assign(json, {
    Id: vendor.systemId,
    Name: `${state.model} system`,
    Manufacturer: state.manufacturer,
    Model: state.model,
    SerialNumber: state.fru.productSerial,
    PartNumber: state.fru.productPartNumber,
    UUID: vendor.uuidUpperCase ? state.uuid.toUpperCase() : state.uuid.toLowerCase(),
    PowerState: state.power === 'on' ? 'On' : 'Off',
    BiosVersion: state.biosVersion,
    Boot: bootView(state, p.system),
  });
  if (vendor.indicatorLED) json.IndicatorLED = state.identify ? 'Lit' : 'Off';
  else delete json.IndicatorLED;
  if (vendor.locationIndicatorActive) json.LocationIndicatorActive = state.identify;
  json.Links = { Chassis: [link(p.chassis)], ManagedBy: [link(p.manager)] };
  const target = `${p.system}/Actions/ComputerSystem.Reset`;
  json.Actions = {
    '#ComputerSystem.Reset': vendor.resetActionInfo
      ? { target, '@Redfish.ActionInfo': `${p.system}/ResetActionInfo` }
      : { target, 'ResetType@Redfish.AllowableValues': [...vendor.resetTypes] },
  };
  json['@odata.etag'] = etagOf(json);
  return json;
}

/**
 * The System's settings object at `path` (redfish-boot-settings-object, AMI's FutureState `SD`):
 * its Boot as the System shows it, since the simulator applies a change at once.
 */
export function systemSettings(ctx: MachineContext, path: string): Json {
  const json: Json = { '@odata.type': '#ComputerSystem.v1_16_0.ComputerSystem', '@odata.id': path, Id: 'SD', Name: 'System future state', Boot: system(ctx).Boot };
  json['@odata.etag'] = etagOf(json);
  return json;
}

/** The BootOptions collection; `expanded` ($expand on a vendor that offers it): each member inline. */
export function bootOptions(ctx: MachineContext, expanded = false): Json {
  const base = `${paths(ctx.vendor).system}/BootOptions`;
  const { bootOptions: options } = ctx.machine.state;
  return {
    '@odata.type': '#BootOptionCollection.BootOptionCollection',
    '@odata.id': base,
    Name: 'Boot Options Collection',
    Members: options.map((o) => (expanded ? (bootOption(ctx, o.id) as Json) : link(`${base}/${o.id}`))),
    'Members@odata.count': options.length,
  };
}

export function bootOption(ctx: MachineContext, id: string): Json | undefined {
  const { state } = ctx.machine;
  const o = state.bootOptions.find((x) => x.id === id);
  if (o === undefined) return undefined;
  return {
    '@odata.type': '#BootOption.v1_0_4.BootOption',
    '@odata.id': `${paths(ctx.vendor).system}/BootOptions/${o.id}`,
    Id: o.id,
    Name: 'Uefi Boot Option',
    BootOptionReference: o.id,
    BootOptionEnabled: state.bootOrder.includes(o.id),
    DisplayName: o.displayName,
    UefiDevicePath: o.uefiDevicePath,
  };
}

export function resetActionInfo(ctx: MachineContext): Json {
  const json = mockupPick('UpdateService/SimpleUpdateActionInfo', ctx.vendor, []);
  return {
    ...json,
    Id: 'ResetActionInfo',
    Name: 'Reset Action Info',
    Parameters: [{ Name: 'ResetType', Required: true, DataType: 'String', AllowableValues: [...ctx.vendor.resetTypes] }],
    '@odata.id': `${paths(ctx.vendor).system}/ResetActionInfo`,
  };
}

export function manager(ctx: MachineContext): Json {
  const { state } = ctx.machine;
  const p = paths(ctx.vendor);
  const keys = ['Id', 'Name', 'ManagerType', 'Description', 'Model', 'DateTime', 'Status', 'PowerState', 'SerialConsole', 'FirmwareVersion', 'Links'];
  const json = mockupPick('Managers/BMC', ctx.vendor, keys);
  return {
    ...json,
    Id: ctx.vendor.managerId,
    Description: `${state.manufacturer} BMC`,
    Model: `${state.manufacturer} BMC`,
    DateTime: new Date().toISOString(),
    FirmwareVersion: state.bmcVersion,
    Links: { ManagerForServers: [link(p.system)], ManagerForChassis: [link(p.chassis)], ManagerInChassis: link(p.chassis) },
  };
}
