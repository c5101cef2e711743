/**
 * Pure, total parsers of Redfish resources into typed views. Every field is optional
 * and type-checked: a value of the wrong type is absent. Any JSON value in, a value out.
 */
import { parseHpeFlashState, type HpeFlashState } from './hpe-flash-state.js';
import { arr, asObject, bool, compact, link, links, num, obj, odataId, pathProp, prop, str, strArray } from './json.js';
import { shortened } from './text.js';

export interface ServiceRoot {
  redfishVersion?: string;
  uuid?: string;
  vendor?: string;
  product?: string;
  systems?: string;
  chassis?: string;
  managers?: string;
  sessionService?: string;
  sessions?: string;
  updateService?: string;
  taskService?: string;
  /** `$expand` as ProtocolFeaturesSupported.ExpandQuery offers it: `.` (subordinates only) or `*`, with `$levels` or not */
  expand?: ExpandSupport;
}

export interface ExpandSupport {
  operator: '.' | '*';
  levels: boolean;
}

/** ExpandQuery → how to ask for a collection with its members inline; undefined when not offered. */
export function parseExpandSupport(root: unknown): ExpandSupport | undefined {
  const q = obj(obj(root, 'ProtocolFeaturesSupported'), 'ExpandQuery');
  if (q === undefined) return undefined;
  const operator = bool(q, 'NoLinks') === true ? '.' : bool(q, 'ExpandAll') === true ? '*' : undefined;
  if (operator === undefined) return undefined;
  const levels = bool(q, 'Levels') === true && (num(q, 'MaxLevels') ?? 1) >= 1;
  return { operator, levels };
}

export interface BootInfo {
  overrideEnabled?: string;
  overrideTarget?: string;
  overrideTargetAllowable?: string[];
  overrideMode?: string;
  overrideModeAllowable?: string[];
  /** BootOptionReference values, first tried first */
  bootOrder?: string[];
  /** link to the BootOptions collection */
  bootOptions?: string;
}

/** One member of a System's BootOptions collection. */
export interface BootOptionInfo {
  path?: string;
  id?: string;
  /** the value BootOrder holds for this option (falls back to Id when absent) */
  reference?: string;
  displayName?: string;
  uefiDevicePath?: string;
  enabled?: boolean;
}

export interface ResetAction {
  target?: string;
  allowable?: string[];
  actionInfo?: string;
}

export interface SystemInfo {
  path?: string;
  id?: string;
  etag?: string;
  uuid?: string;
  powerState?: string;
  biosVersion?: string;
  indicatorLED?: string;
  locationIndicatorActive?: boolean;
  manufacturer?: string;
  model?: string;
  serialNumber?: string;
  partNumber?: string;
  sku?: string;
  boot?: BootInfo;
  reset?: ResetAction;
  /** `@Redfish.Settings.SettingsObject`: where the BMC takes changes to the System for later (AMI's `SD`) */
  settingsObject?: string;
  /** Links.Chassis */
  chassis: string[];
  /** Links.ManagedBy */
  managedBy: string[];
}

export interface ManagerInfo {
  path?: string;
  id?: string;
  uuid?: string;
  firmwareVersion?: string;
  manufacturer?: string;
  model?: string;
  managerType?: string;
}

export interface ChassisInfo {
  path?: string;
  id?: string;
  etag?: string;
  manufacturer?: string;
  model?: string;
  partNumber?: string;
  serialNumber?: string;
  sku?: string;
  powerState?: string;
  indicatorLED?: string;
  locationIndicatorActive?: boolean;
  power?: string;
  powerSubsystem?: string;
  environmentMetrics?: string;
  computerSystems: string[];
  managedBy: string[];
}

export interface PowerMetrics {
  averageConsumedWatts?: number;
  minConsumedWatts?: number;
  maxConsumedWatts?: number;
  intervalInMin?: number;
}

export interface PowerSupplyStatus {
  path?: string;
  name?: string;
  health?: string;
  state?: string;
}

export interface PowerInfo {
  consumedWatts?: number;
  metrics?: PowerMetrics;
  supplies: PowerSupplyStatus[];
}

export interface UpdateServiceInfo {
  serviceEnabled?: boolean;
  simpleUpdateTarget?: string;
  simpleUpdateActionInfo?: string;
  /** `TransferProtocol@Redfish.AllowableValues` given inline on the SimpleUpdate action */
  simpleUpdateProtocols?: string[];
  /** `Targets@Redfish.AllowableValues` given inline on the SimpleUpdate action */
  simpleUpdateTargets?: string[];
  multipartHttpPushUri?: string;
  httpPushUri?: string;
  /** `#UpdateService.StartUpdate`: applies the images pushed with the `OnStartUpdateRequest` apply time */
  startUpdateTarget?: string;
  /** `MaxImageSizeBytes` (UpdateService v1_5_0): the largest image the BMC takes, a positive whole number */
  maxImageSizeBytes?: number;
  /** HPE iLO's flash state (`Oem.Hpe.State` and beside it), as it was when the UpdateService was read */
  hpeFlash?: HpeFlashState;
}

export interface TaskInfo {
  path?: string;
  state?: string;
  status?: string;
  percent?: number;
  messages?: string[];
  /** the MessageIds of `Messages`, in order (iDRAC's IDRAC.2.8.JCP001 "Task successfully scheduled.") */
  messageIds?: string[];
  /** `Oem.Dell.JobState` of an iDRAC task (Scheduled, Running, Completed, ...) */
  dellJobState?: string;
}

export function parseCollection(json: unknown): { members: string[]; nextLink?: string } {
  return compact({ members: links(json, 'Members'), nextLink: pathProp(json, 'Members@odata.nextLink') });
}

export function parseServiceRoot(json: unknown): ServiceRoot {
  return compact({
    redfishVersion: str(json, 'RedfishVersion'),
    uuid: str(json, 'UUID'),
    vendor: str(json, 'Vendor'),
    product: str(json, 'Product'),
    systems: link(json, 'Systems'),
    chassis: link(json, 'Chassis'),
    managers: link(json, 'Managers'),
    sessionService: link(json, 'SessionService'),
    sessions: link(obj(json, 'Links'), 'Sessions'),
    updateService: link(json, 'UpdateService'),
    taskService: link(json, 'Tasks'),
    expand: parseExpandSupport(json),
  });
}

function parseBoot(json: unknown): BootInfo | undefined {
  const boot = obj(json, 'Boot');
  if (boot === undefined) return undefined;
  return compact({
    overrideEnabled: str(boot, 'BootSourceOverrideEnabled'),
    overrideTarget: str(boot, 'BootSourceOverrideTarget'),
    overrideTargetAllowable: strArray(boot, 'BootSourceOverrideTarget@Redfish.AllowableValues'),
    overrideMode: str(boot, 'BootSourceOverrideMode'),
    overrideModeAllowable: strArray(boot, 'BootSourceOverrideMode@Redfish.AllowableValues'),
    bootOrder: strArray(boot, 'BootOrder'),
    bootOptions: link(boot, 'BootOptions'),
  });
}

export function parseBootOption(json: unknown): BootOptionInfo {
  return compact({
    path: odataId(json),
    id: str(json, 'Id'),
    reference: str(json, 'BootOptionReference'),
    displayName: str(json, 'DisplayName'),
    uefiDevicePath: str(json, 'UefiDevicePath'),
    enabled: bool(json, 'BootOptionEnabled'),
  });
}

function parseReset(json: unknown): ResetAction | undefined {
  const action = obj(obj(json, 'Actions'), '#ComputerSystem.Reset');
  if (action === undefined) return undefined;
  return compact({
    target: pathProp(action, 'target'),
    allowable: strArray(action, 'ResetType@Redfish.AllowableValues'),
    actionInfo: pathProp(action, '@Redfish.ActionInfo'),
  });
}

export function parseSystem(json: unknown): SystemInfo {
  const l = obj(json, 'Links');
  return compact({
    path: odataId(json),
    id: str(json, 'Id'),
    etag: str(json, '@odata.etag'),
    uuid: str(json, 'UUID'),
    powerState: str(json, 'PowerState'),
    biosVersion: str(json, 'BiosVersion'),
    indicatorLED: str(json, 'IndicatorLED'),
    locationIndicatorActive: bool(json, 'LocationIndicatorActive'),
    manufacturer: str(json, 'Manufacturer'),
    model: str(json, 'Model'),
    serialNumber: str(json, 'SerialNumber'),
    partNumber: str(json, 'PartNumber'),
    sku: str(json, 'SKU'),
    boot: parseBoot(json),
    reset: parseReset(json),
    settingsObject: link(obj(json, '@Redfish.Settings'), 'SettingsObject'),
    chassis: links(l, 'Chassis'),
    managedBy: links(l, 'ManagedBy'),
  });
}

export function parseManager(json: unknown): ManagerInfo {
  return compact({
    path: odataId(json),
    id: str(json, 'Id'),
    uuid: str(json, 'UUID'),
    firmwareVersion: str(json, 'FirmwareVersion'),
    manufacturer: str(json, 'Manufacturer'),
    model: str(json, 'Model'),
    managerType: str(json, 'ManagerType'),
  });
}

export function parseChassis(json: unknown): ChassisInfo {
  const l = obj(json, 'Links');
  return compact({
    path: odataId(json),
    id: str(json, 'Id'),
    etag: str(json, '@odata.etag'),
    manufacturer: str(json, 'Manufacturer'),
    model: str(json, 'Model'),
    partNumber: str(json, 'PartNumber'),
    serialNumber: str(json, 'SerialNumber'),
    sku: str(json, 'SKU'),
    powerState: str(json, 'PowerState'),
    indicatorLED: str(json, 'IndicatorLED'),
    locationIndicatorActive: bool(json, 'LocationIndicatorActive'),
    power: link(json, 'Power'),
    powerSubsystem: link(json, 'PowerSubsystem'),
    environmentMetrics: link(json, 'EnvironmentMetrics'),
    computerSystems: links(l, 'ComputerSystems'),
    managedBy: links(l, 'ManagedBy'),
  });
}

export function parsePowerSupply(json: unknown): PowerSupplyStatus {
  const status = obj(json, 'Status');
  return compact({ path: odataId(json), name: str(json, 'Name'), health: str(status, 'Health'), state: str(status, 'State') });
}

/** Power supplies read and reported per chassis: a server has 1–4, a multi-node chassis up to ~12; more are cut. */
export const MAX_POWER_SUPPLIES = 32;

/** The deprecated `Power` resource: PowerControl[0] and the embedded PowerSupplies array. */
export function parsePower(json: unknown): PowerInfo {
  const control = arr(json, 'PowerControl')?.[0];
  const m = obj(control, 'PowerMetrics');
  const metrics = compact({
    averageConsumedWatts: num(m, 'AverageConsumedWatts'),
    minConsumedWatts: num(m, 'MinConsumedWatts'),
    maxConsumedWatts: num(m, 'MaxConsumedWatts'),
    intervalInMin: num(m, 'IntervalInMin'),
  });
  return compact({
    consumedWatts: num(control, 'PowerConsumedWatts'),
    metrics: Object.keys(metrics).length === 0 ? undefined : metrics,
    supplies: (arr(json, 'PowerSupplies') ?? []).filter((s) => asObject(s) !== undefined).slice(0, MAX_POWER_SUPPLIES).map(parsePowerSupply),
  });
}

/** EnvironmentMetrics.PowerWatts.Reading */
export function parseEnvironmentPowerWatts(json: unknown): number | undefined {
  return num(obj(json, 'PowerWatts'), 'Reading');
}

/** A whole number above 0 (a size a BMC gives as 0 or a fraction says nothing), else undefined. */
function positiveInteger(v: number | undefined): number | undefined {
  return v !== undefined && Number.isSafeInteger(v) && v > 0 ? v : undefined;
}

export function parseUpdateService(json: unknown): UpdateServiceInfo {
  const simple = obj(obj(json, 'Actions'), '#UpdateService.SimpleUpdate');
  return compact({
    serviceEnabled: bool(json, 'ServiceEnabled'),
    simpleUpdateTarget: pathProp(simple, 'target'),
    simpleUpdateActionInfo: pathProp(simple, '@Redfish.ActionInfo'),
    simpleUpdateProtocols: strArray(simple, 'TransferProtocol@Redfish.AllowableValues'),
    simpleUpdateTargets: strArray(simple, 'Targets@Redfish.AllowableValues'),
    multipartHttpPushUri: pathProp(json, 'MultipartHttpPushUri'),
    httpPushUri: pathProp(json, 'HttpPushUri'),
    startUpdateTarget: pathProp(obj(obj(json, 'Actions'), '#UpdateService.StartUpdate'), 'target'),
    maxImageSizeBytes: positiveInteger(num(json, 'MaxImageSizeBytes')),
    hpeFlash: parseHpeFlashState(json),
  });
}

/** AllowableValues of one parameter of an ActionInfo resource. */
export function parseActionInfoAllowable(json: unknown, parameter: string): string[] | undefined {
  const p = (arr(json, 'Parameters') ?? []).find((x) => str(x, 'Name') === parameter);
  return strArray(p, 'AllowableValues');
}

/**
 * Task.TaskState values by their lower case, each as DSP0268 spells it: BMCs differ in case
 * (bmclib's redfishwrapper task.go lowercases before it compares). Beside DSP0268's, three real
 * BMCs send: iDRAC's `UserIntervention` (Dell's DeviceFirmwareSimpleUpdateREDFISH.py takes it at
 * PercentComplete 100 as done, needing a host reboot or a virtual A/C cycle), and `Failed` and
 * `Scheduled`, which bmclib maps to a failure and to "power cycle the host". Another value (or a
 * megabyte of text) is no state the task can be followed by.
 */
const TASK_STATES: ReadonlyMap<string, string> = new Map(
  [
    ...['New', 'Starting', 'Running', 'Suspended', 'Interrupted', 'Pending', 'Stopping', 'Completed', 'Killed', 'Exception', 'Service', 'Cancelling', 'Cancelled'],
    ...['UserIntervention', 'Failed', 'Scheduled'],
  ].map((s) => [s.toLowerCase(), s]),
);
/** what a task's messages may put into a job's progress and error (they are published and kept): its last few, each cut short */
const MAX_TASK_MESSAGES = 8;
const MAX_TASK_MESSAGE_CHARS = 512;
const MAX_TASK_MESSAGE_IDS = 32;

export function parseTask(json: unknown): TaskInfo {
  const list = arr(json, 'Messages') ?? [];
  const messages = list
    .map((m) => str(m, 'Message'))
    .filter((m): m is string => m !== undefined && m !== '')
    .slice(-MAX_TASK_MESSAGES)
    .map((m) => shortened(m, MAX_TASK_MESSAGE_CHARS));
  const messageIds = list
    .map((m) => str(m, 'MessageId'))
    .filter((m): m is string => m !== undefined && m !== '' && m.length <= 256)
    .slice(-MAX_TASK_MESSAGE_IDS);
  const state = str(json, 'TaskState');
  const status = str(json, 'TaskStatus');
  return compact({
    path: odataId(json),
    state: state === undefined ? undefined : TASK_STATES.get(state.toLowerCase()),
    status: status !== undefined && status.length <= 32 ? status : undefined,
    percent: num(json, 'PercentComplete'),
    messages: messages.length === 0 ? undefined : messages,
    messageIds: messageIds.length === 0 ? undefined : messageIds,
    dellJobState: str(obj(obj(json, 'Oem'), 'Dell'), 'JobState'),
  });
}

/** True when `json` looks like a Task (has a TaskState). */
export function isTask(json: unknown): boolean {
  return typeof prop(json, 'TaskState') === 'string';
}
