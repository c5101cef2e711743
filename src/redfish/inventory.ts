/**
 * One inventory read: service root → first System → its Manager and Chassis (by the
 * System's Links, else the first member of the root collections; a linked chassis the BMC
 * answers with 404 is replaced by the collection's chassis that names the System) → power data.
 * Absent optional pieces are named in `missing` with a reason; only a failure to read
 * the service root or the System itself (transport, auth, decoding) is thrown.
 */
import { abortError, isBmcError } from '../errors.js';
import {
  listMembers,
  readChassis,
  readEnvironmentPowerWatts,
  readManager,
  readPower,
  readPowerSubsystem,
  readServiceRoot,
  readSystem,
  systemOfBmc,
  type ChassisInfo,
  type ManagerInfo,
  type PowerMetrics,
  type PowerSupplyStatus,
  type ReadOptions,
  type RedfishGetter,
  type ServiceRoot,
  type SystemInfo,
} from './resources.js';

export interface RedfishInventory {
  serviceRoot: ServiceRoot;
  system?: SystemInfo;
  manager?: ManagerInfo;
  chassis?: ChassisInfo;
  /** Power.PowerControl[0].PowerMetrics */
  powerMetric?: PowerMetrics;
  /** Power.PowerControl[0].PowerConsumedWatts */
  consumedWatts?: number;
  /** Chassis EnvironmentMetrics.PowerWatts.Reading, read only when Power has no metrics. */
  powerWatts?: number;
  powerSupplies?: PowerSupplyStatus[];
  /** "<piece>: <reason>" for every piece that could not be read. */
  missing: string[];
}

function reason(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Runs an optional read; a failure becomes a `missing` entry, except when the caller aborted. */
async function optional<T>(piece: string, missing: string[], signal: AbortSignal | undefined, read: () => Promise<T>): Promise<T | undefined> {
  try {
    return await read();
  } catch (err) {
    if (signal?.aborted) throw abortError(signal, `inventory ${piece}`);
    if (isBmcError(err, 'ABORTED')) throw err;
    missing.push(`${piece}: ${reason(err)}`);
    return undefined;
  }
}

/** The System is essential: only "not there" (HTTP 404/410) is reported as missing. */
async function essential<T>(piece: string, missing: string[], read: () => Promise<T>): Promise<T | undefined> {
  try {
    return await read();
  } catch (err) {
    if (isBmcError(err, 'HTTP') && (err.httpStatus === 404 || err.httpStatus === 410)) {
      missing.push(`${piece}: ${reason(err)}`);
      return undefined;
    }
    throw err;
  }
}

/** Chassis collection members tried when the System's own chassis link is dead; more are ignored. */
const MAX_CHASSIS_FALLBACK = 16;

const samePath = (a: string, b: string): boolean => a.replace(/\/+$/, '') === b.replace(/\/+$/, '');

/**
 * The System's chassis. When the linked one is not there (HTTP 404/410 — Intel's S2600 BMC links
 * `Chassis/RackMount`, which it does not serve, and keeps the board and its Power in
 * `Chassis/RackMount/Baseboard`), the first member of the Chassis collection that names the System
 * in `Links.ComputerSystems` stands in; without one the original error stands.
 */
async function readSystemChassis(client: RedfishGetter, path: string, systemPath: string | undefined, collection: string | undefined, options: ReadOptions): Promise<ChassisInfo> {
  try {
    return await readChassis(client, path, options);
  } catch (err) {
    if (!(isBmcError(err, 'HTTP') && (err.httpStatus === 404 || err.httpStatus === 410)) || systemPath === undefined || collection === undefined) throw err;
    const members = (await listMembers(client, collection, options).catch(() => [])).filter((m) => !samePath(m, path)).slice(0, MAX_CHASSIS_FALLBACK);
    for (const member of members) {
      const chassis = await readChassis(client, member, options).catch((e: unknown) => {
        if (isBmcError(e, 'ABORTED')) throw e;
        return undefined;
      });
      if (chassis?.computerSystems.some((s) => samePath(s, systemPath))) return { path: member, ...chassis };
    }
    throw err;
  }
}

async function firstMember(client: RedfishGetter, collection: string | undefined, options: ReadOptions): Promise<string | undefined> {
  if (collection === undefined) return undefined;
  return (await listMembers(client, collection, options))[0];
}

async function readPowerData(client: RedfishGetter, chassis: ChassisInfo, inv: RedfishInventory, options: ReadOptions): Promise<void> {
  const { missing } = inv;
  const { signal } = options;
  let powerRead = false;
  if (chassis.power !== undefined) {
    const power = await optional('PowerMetric', missing, signal, () => readPower(client, chassis.power as string, options));
    powerRead = power !== undefined;
    if (power !== undefined) {
      inv.consumedWatts = power.consumedWatts;
      if (power.metrics === undefined) missing.push(`PowerMetric: ${chassis.power} has no PowerControl[0].PowerMetrics`);
      else inv.powerMetric = power.metrics;
      if (power.supplies.length > 0) inv.powerSupplies = power.supplies;
    }
  } else {
    missing.push(
      chassis.powerSubsystem === undefined
        ? 'PowerMetric: chassis has neither Power nor PowerSubsystem'
        : 'PowerMetric: chassis has only PowerSubsystem, which carries no power metrics',
    );
  }
  if (inv.powerSupplies === undefined) {
    if (chassis.powerSubsystem !== undefined) {
      const sub = await optional('PowerSupplies', missing, signal, () => readPowerSubsystem(client, chassis.powerSubsystem as string, options));
      if (sub !== undefined && sub.supplies.length > 0) inv.powerSupplies = sub.supplies;
      else if (sub !== undefined) missing.push(`PowerSupplies: ${chassis.powerSubsystem} lists no power supplies`);
    } else {
      missing.push(
        chassis.power === undefined
          ? 'PowerSupplies: chassis has neither Power nor PowerSubsystem'
          : powerRead
            ? `PowerSupplies: ${chassis.power} lists no power supplies`
            : `PowerSupplies: ${chassis.power} could not be read (see PowerMetric)`,
      );
    }
  }
  if (inv.powerMetric === undefined && chassis.environmentMetrics !== undefined) {
    inv.powerWatts = await optional('PowerWatts', missing, signal, () => readEnvironmentPowerWatts(client, chassis.environmentMetrics as string, options));
  }
}

function fieldChecks(inv: RedfishInventory): void {
  const { system, manager, chassis, missing } = inv;
  if (system !== undefined) {
    if (system.uuid === undefined) missing.push('UUID: system has no UUID');
    if (system.powerState === undefined) missing.push('PowerState: system has no PowerState');
    if (system.biosVersion === undefined) missing.push('BiosVersion: system has no BiosVersion');
    const led = (x?: SystemInfo | ChassisInfo): boolean => x?.indicatorLED !== undefined || x?.locationIndicatorActive !== undefined;
    if (!led(system) && !led(chassis)) missing.push('IndicatorLED: neither system nor chassis has IndicatorLED or LocationIndicatorActive');
  }
  if (manager !== undefined && manager.firmwareVersion === undefined) missing.push('FirmwareVersion: manager has no FirmwareVersion');
}

export async function readInventory(client: RedfishGetter, options: ReadOptions = {}): Promise<RedfishInventory> {
  const { signal } = options;
  const serviceRoot = await readServiceRoot(client, options);
  const inv: RedfishInventory = { serviceRoot, missing: [] };
  const { missing } = inv;
  let systemLink: string | undefined;

  if (serviceRoot.systems === undefined) {
    missing.push('System: service root has no Systems link');
  } else {
    const before = missing.length;
    const path = await essential('System', missing, async () => systemOfBmc(client, await listMembers(client, serviceRoot.systems as string, options), serviceRoot.managers, options));
    systemLink = path;
    if (path === undefined && missing.length === before) missing.push(`System: ${serviceRoot.systems} has no members`);
    if (path !== undefined) inv.system = await essential('System', missing, () => readSystem(client, path, options));
  }
  const system = inv.system;

  const managerPath = await optional('Manager', missing, signal, async () => system?.managedBy[0] ?? (await firstMember(client, serviceRoot.managers, options)));
  if (managerPath !== undefined) inv.manager = await optional('Manager', missing, signal, () => readManager(client, managerPath, options));
  else if (!missing.some((m) => m.startsWith('Manager:'))) missing.push('Manager: system has no ManagedBy link and the service root no Managers member');

  const chassisPath = await optional('Chassis', missing, signal, async () => system?.chassis[0] ?? (await firstMember(client, serviceRoot.chassis, options)));
  if (chassisPath !== undefined) {
    const systemPath = system?.path ?? systemLink;
    inv.chassis = await optional('Chassis', missing, signal, () => readSystemChassis(client, chassisPath, systemPath, serviceRoot.chassis, options));
  } else if (!missing.some((m) => m.startsWith('Chassis:'))) missing.push('Chassis: system has no Chassis link and the service root no Chassis member');

  if (inv.chassis !== undefined) await readPowerData(client, inv.chassis, inv, options);
  else missing.push('PowerMetric: no chassis', 'PowerSupplies: no chassis');
  fieldChecks(inv);
  return inv;
}
