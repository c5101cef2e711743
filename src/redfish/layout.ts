/**
 * What one report read learned of where a BMC keeps its data: the System's path and UUID, the
 * Manager's and Chassis's paths, the chassis's power resources and its board fields. The next read
 * in the same Redfish session (outband/redfish-sessions.ts) asks for the resources that change
 * (the System, the Manager, the power data) at once by these paths, instead of walking the
 * collections again: one round trip instead of two with `$expand`, about half as many without.
 *
 * The chassis itself is not read again unless its LED is the one reported (ledFromChassis): its
 * manufacturer, model, part and serial numbers are kept with the layout, as the IPMI FRU is kept
 * with a BMC's GUID, for as long as the session serves (METAL_BMC_REPORT_REDFISH_SESSION_MAX_AGE).
 * So is the Manager's FirmwareVersion where the caller says it may be (`keepManager`: a vendor
 * whose BMCVersion is not sent to metal-api from Redfish, report/body.ts), one request less per read.
 *
 * A layout is used only while it still holds (inventory.ts): the System answers with the UUID and
 * names the Manager and Chassis it named then, a Manager was found then where the service has
 * Managers, and no path the read asks for is gone (HTTP 404 or 410). Otherwise the read walks the
 * whole tree, reusing what it read. A read that failed otherwise (a timeout, a 5xx) is not a
 * reason: the whole walk would find the same failure in the read cache.
 */
import { bool, obj, prop, str } from './json.js';
import type { ChassisInfo, SystemInfo } from './parse.js';
import { MAX_POWER_SUPPLIES } from './parse.js';

/** The chassis fields a report uses (redfish-report.ts) and its power links. */
export type KeptChassis = Pick<ChassisInfo, 'manufacturer' | 'model' | 'partNumber' | 'serialNumber' | 'indicatorLED' | 'locationIndicatorActive' | 'power' | 'powerSubsystem' | 'environmentMetrics'> & { path: string };

export interface InventoryLayout {
  /** the System reported */
  system: string;
  /** the Systems collection's first member, where it is another one (vendor detection looks there) */
  firstSystem?: string;
  /** its UUID then: a System answering another one is another machine */
  uuid: string;
  /** the System's ManagedBy[0] and Chassis[0] then */
  links: { manager?: string; chassis?: string };
  /** which LED properties the System had: whether the chassis's LED is the one reported */
  systemLed: LedShape;
  /** the Manager read */
  manager?: string;
  /** its FirmwareVersion then: a read with `keepManager` takes it from here instead of reading the Manager again */
  managerFirmware?: string;
  chassis?: KeptChassis;
  /** the chassis's PowerSupplies collection under PowerSubsystem, and its members then */
  powerSupplies?: { collection: string; members: string[] };
  /** that read got no PowerMetric from the chassis's Power (or it has none): the next read asks EnvironmentMetrics at once */
  noPowerMetric: boolean;
}

type LedFields = Pick<SystemInfo, 'indicatorLED' | 'locationIndicatorActive'>;

/** Which LED properties a System or Chassis has. */
export interface LedShape {
  indicatorLED: boolean;
  locationIndicatorActive: boolean;
}

export function ledShapeOf(x: LedFields | undefined): LedShape {
  return { indicatorLED: x?.indicatorLED !== undefined, locationIndicatorActive: x?.locationIndicatorActive !== undefined };
}

/**
 * Whether the chassis's LED is the one a report shows (ledStateOf in outband/redfish-report.ts:
 * the System's LocationIndicatorActive, else the chassis's, else the System's IndicatorLED, else
 * the chassis's).
 */
export function ledFromChassis(system: LedShape, chassis: LedShape): boolean {
  if (system.locationIndicatorActive) return false;
  if (chassis.locationIndicatorActive) return true;
  return !system.indicatorLED && chassis.indicatorLED;
}

/** A layout's longest path or text: real ones are under 200 characters. */
const MAX_TEXT = 1024;
const CHASSIS_TEXTS = ['path', 'manufacturer', 'model', 'partNumber', 'serialNumber', 'indicatorLED', 'power', 'powerSubsystem', 'environmentMetrics'] as const;

const text = (v: unknown): v is string => typeof v === 'string' && v.length > 0 && v.length <= MAX_TEXT;
const optionalText = (v: unknown): boolean => v === undefined || text(v);

/**
 * The layout in `v` if it is one, checked field by field and bounded (what a report worker sends
 * back crosses a thread boundary), else undefined. Pure; never throws.
 */
export function keptLayout(v: unknown): InventoryLayout | undefined {
  const [system, firstSystem, uuid, manager, noPowerMetric] = [prop(v, 'system'), prop(v, 'firstSystem'), prop(v, 'uuid'), prop(v, 'manager'), prop(v, 'noPowerMetric')];
  const managerFirmware = prop(v, 'managerFirmware');
  if (!text(system) || !optionalText(firstSystem) || !text(uuid) || !optionalText(manager) || !optionalText(managerFirmware)) return undefined;
  const l = obj(v, 'links');
  const led = obj(v, 'systemLed');
  const [managerLink, chassisLink] = [prop(l, 'manager'), prop(l, 'chassis')];
  if (l === undefined || !optionalText(managerLink) || !optionalText(chassisLink)) return undefined;
  const [indicatorLED, locationIndicatorActive] = [bool(led, 'indicatorLED'), bool(led, 'locationIndicatorActive')];
  if (indicatorLED === undefined || locationIndicatorActive === undefined) return undefined;
  if (typeof noPowerMetric !== 'boolean') return undefined;
  const layout: InventoryLayout = {
    system,
    ...(text(firstSystem) ? { firstSystem } : {}),
    uuid,
    links: { ...(text(managerLink) ? { manager: managerLink } : {}), ...(text(chassisLink) ? { chassis: chassisLink } : {}) },
    systemLed: { indicatorLED, locationIndicatorActive },
    ...(text(manager) ? { manager } : {}),
    ...(text(manager) && text(managerFirmware) ? { managerFirmware } : {}),
    noPowerMetric,
  };
  const chassis = prop(v, 'chassis');
  if (chassis !== undefined) {
    const path = prop(chassis, 'path');
    const active = prop(chassis, 'locationIndicatorActive');
    if (!text(path) || !CHASSIS_TEXTS.every((k) => optionalText(prop(chassis, k))) || (active !== undefined && typeof active !== 'boolean')) return undefined;
    const kept: KeptChassis = { path };
    for (const k of CHASSIS_TEXTS) {
      const value = str(chassis, k);
      if (value !== undefined) kept[k] = value;
    }
    if (typeof active === 'boolean') kept.locationIndicatorActive = active;
    layout.chassis = kept;
  }
  const supplies = prop(v, 'powerSupplies');
  if (supplies !== undefined) {
    const [collection, members] = [prop(supplies, 'collection'), prop(supplies, 'members')];
    if (!text(collection) || !Array.isArray(members) || members.length > MAX_POWER_SUPPLIES || !members.every(text)) return undefined;
    layout.powerSupplies = { collection, members: [...(members as string[])] };
  }
  return layout;
}
