/**
 * One inventory read: service root → first System → its Manager and Chassis (by the
 * System's Links, else the first member of the root collections; a linked chassis the BMC
 * answers with 404 is replaced by the collection's chassis that names the System) → power data.
 * Absent optional pieces are named in `missing` with a reason; only a failure to read
 * the service root or the System itself (transport, auth, decoding) is thrown.
 */
import { abortError, isBmcError } from '../errors.js';
import { links, obj, withoutTrailingSlashes } from './json.js';
import { keptLayout, ledFromChassis, ledShapeOf, type InventoryLayout, type KeptChassis } from './layout.js';
import type { ExpandSupport } from './parse.js';
import { readCache, type ReadCache } from './read-cache.js';
import {
  readChassis,
  readEnvironmentPowerWatts,
  readManager,
  readPower,
  readPowerSubsystem,
  readServiceRoot,
  readSystem,
  serversOfManager,
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
  /** `manager` is the layout's kept FirmwareVersion (keepManager), not read in this read */
  managerKept?: true;
  chassis?: ChassisInfo;
  /** Power.PowerControl[0].PowerMetrics */
  powerMetric?: PowerMetrics;
  /** Power.PowerControl[0].PowerConsumedWatts */
  consumedWatts?: number;
  /** Chassis EnvironmentMetrics.PowerWatts.Reading, read only when Power has no metrics. */
  powerWatts?: number;
  powerSupplies?: PowerSupplyStatus[];
  /** the PowerSupplies collection the supplies were read from, when through PowerSubsystem */
  powerSupplyCollection?: string;
  /** "<piece>: <reason>" for every piece that could not be read. */
  missing: string[];
  /** where this read found the data, for the next read of the BMC (layout.ts); absent without a System UUID or chassis */
  layout?: InventoryLayout;
}

/** Inventory reads: with `layout` (an earlier read's), the resources that change are asked by their paths at once. */
export interface InventoryOptions extends ReadOptions {
  layout?: InventoryLayout;
  /**
   * With `layout`: take the Manager's FirmwareVersion from it instead of reading the Manager again
   * (for as long as the layout serves). For callers to whom the BMC version is not news worth a
   * request per read; a caller that detects a BMC firmware update by it reads the Manager.
   */
  keepManager?: boolean;
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

/** A resource the BMC says is not there (HTTP 404 or 410): a stale link, not a failed read. */
function isGone(err: unknown): boolean {
  return isBmcError(err, 'HTTP') && (err.httpStatus === 404 || err.httpStatus === 410);
}

/** Why the Manager is missing when neither the System nor the service root names one. */
const NO_MANAGER = 'Manager: system has no ManagedBy link and the service root no Managers member';

/** The System is essential: only "not there" (HTTP 404/410) is reported as missing. */
async function essential<T>(piece: string, missing: string[], read: () => Promise<T>): Promise<T | undefined> {
  try {
    return await read();
  } catch (err) {
    if (isGone(err)) {
      missing.push(`${piece}: ${reason(err)}`);
      return undefined;
    }
    throw err;
  }
}

/**
 * Collection members read to find the one that names the System (the chassis in place of a dead
 * link, the Manager and Chassis of a System without links); more are not consulted.
 */
const MAX_NAMING_CANDIDATES = 16;

const samePath = (a: string, b: string): boolean => withoutTrailingSlashes(a) === withoutTrailingSlashes(b);

/**
 * The System's chassis, its `path` the one it was read at (not its body's `@odata.id`, which a
 * BMC may spell otherwise). When the linked one is not there (HTTP 404/410 — Intel's S2600 BMC links
 * `Chassis/RackMount`, which it does not serve, and keeps the board and its Power in
 * `Chassis/RackMount/Baseboard`), the first member of the Chassis collection that names the System
 * in `Links.ComputerSystems` stands in; without one the original error stands.
 */
async function readSystemChassis(reader: ReadCache, path: string, systemPath: string | undefined, collection: string | undefined, expand: ExpandSupport | undefined, options: ReadOptions): Promise<ChassisInfo> {
  try {
    return { ...(await readChassis(reader, path, options)), path };
  } catch (err) {
    if (!isGone(err) || systemPath === undefined || collection === undefined) throw err;
    const members = (await reader.members(collection, expand, options).catch(() => [])).filter((m) => !samePath(m, path));
    const i = await indexNamingSystem(reader, members, systemPath, chassisNames, options);
    if (i >= 0) return { ...(await readChassis(reader, members[i]!, options)), path: members[i]! };
    throw err;
  }
}

type Settled<T> = { ok: true; value: T } | { ok: false; err: unknown };

function settle<T>(p: Promise<T>): Promise<Settled<T>> {
  return p.then(
    (value) => ({ ok: true as const, value }),
    (err: unknown) => ({ ok: false as const, err }),
  );
}

/** A read's value, or its failure as a `missing` entry (an abort is thrown). */
function use<T>(piece: string, missing: string[], signal: AbortSignal | undefined, s: Settled<T>): T | undefined {
  if (s.ok) return s.value;
  if (signal?.aborted) throw abortError(signal, `inventory ${piece}`);
  if (isBmcError(s.err, 'ABORTED')) throw s.err;
  missing.push(`${piece}: ${reason(s.err)}`);
  return undefined;
}

/** The first member of a collection, its own read started at once (a guess the System's links may overrule). */
async function firstMemberAhead(reader: ReadCache, collection: string | undefined, expand: ExpandSupport | undefined, options: ReadOptions, run?: { failed: boolean }): Promise<string | undefined> {
  if (collection === undefined) return undefined;
  const first = (await reader.members(collection, expand, options))[0];
  if (first !== undefined && run?.failed !== true) reader.prefetch(first, options);
  return first;
}

/**
 * Without the System's own link, the member of a collection that belongs to it: the only one;
 * else the first whose links (`named`) include the System, as a multi-node chassis or a blade
 * enclosure lists its siblings' Managers and Chassis beside the System's own; else the first.
 */
async function memberNamingSystem(reader: ReadCache, collection: string, expand: ExpandSupport | undefined, systemPath: string, named: (body: unknown) => string[], options: ReadOptions): Promise<string | undefined> {
  const members = await reader.members(collection, expand, options);
  if (members.length <= 1) return members[0];
  const i = await indexNamingSystem(reader, members, systemPath, named, options);
  return members[i < 0 ? 0 : i];
}

/**
 * The index of the first of `members` whose links (`named`) include the System, or -1; the first
 * MAX_NAMING_CANDIDATES are read together. A member that cannot be read names nothing; an abort
 * is thrown.
 */
async function indexNamingSystem(reader: ReadCache, members: readonly string[], systemPath: string, named: (body: unknown) => string[], options: ReadOptions): Promise<number> {
  const bodies = await Promise.all(
    members.slice(0, MAX_NAMING_CANDIDATES).map((m) =>
      reader.get(m, options).catch((err: unknown) => {
        if (options.signal?.aborted || isBmcError(err, 'ABORTED')) throw err;
        return undefined;
      }),
    ),
  );
  return bodies.findIndex((b) => named(b).some((s) => samePath(s, systemPath)));
}

const chassisNames = (body: unknown): string[] => links(obj(body, 'Links'), 'ComputerSystems');

/** The power data of `chassis` on its own (fields and `missing`), read as soon as the chassis is known. */
async function powerOf(reader: ReadCache, chassis: ChassisInfo, serviceRoot: ServiceRoot, options: ReadOptions): Promise<RedfishInventory> {
  const part: RedfishInventory = { serviceRoot, missing: [] };
  await readPowerData(reader, chassis, part, options);
  return part;
}

async function readPowerData(reader: ReadCache, chassis: ChassisInfo | KeptChassis, inv: RedfishInventory, options: ReadOptions, knownCollection?: string): Promise<void> {
  const { missing } = inv;
  const { signal } = options;
  // without Power, the metric can only come from EnvironmentMetrics: read it beside PowerSubsystem,
  // which goes out first (three reads follow it; the connection free first should take it)
  if (chassis.power === undefined && chassis.powerSubsystem !== undefined && knownCollection === undefined) reader.prefetch(chassis.powerSubsystem, options);
  if (chassis.power === undefined && chassis.environmentMetrics !== undefined) reader.prefetch(chassis.environmentMetrics, options);
  let powerRead = false;
  if (chassis.power !== undefined) {
    const power = await optional('PowerMetric', missing, signal, () => readPower(reader, chassis.power as string, options));
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
      const sub = await optional('PowerSupplies', missing, signal, () => readPowerSubsystem(reader, chassis.powerSubsystem as string, options, (c) => reader.members(c, inv.serviceRoot.expand, options), knownCollection));
      if (sub?.collection !== undefined) inv.powerSupplyCollection = sub.collection;
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
    inv.powerWatts = await optional('PowerWatts', missing, signal, () => readEnvironmentPowerWatts(reader, chassis.environmentMetrics as string, options));
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

/**
 * The critical path: service root → the Systems, Managers and Chassis collections at once (with
 * members inline where `$expand` works) → the System, Manager and Chassis at once → the power
 * resources. The Manager and Chassis are first read as the collections' first members; the
 * System's ManagedBy and Chassis links overrule that guess (one more read when they differ).
 * Pass a ReadCache to share reads with the caller (vendor detection); otherwise one is made.
 */
export async function readInventory(client: RedfishGetter | ReadCache, options: InventoryOptions = {}): Promise<RedfishInventory> {
  const run = { failed: false };
  try {
    return await inventoryOf(client, options, run);
  } catch (err) {
    run.failed = true; // reads that would start later (the Managers, member guesses, power data) do not
    throw err;
  }
}

async function inventoryOf(client: RedfishGetter | ReadCache, options: InventoryOptions, run: { failed: boolean }): Promise<RedfishInventory> {
  const { signal } = options;
  const reader = 'members' in client ? client : readCache(client);
  const serviceRoot = await readServiceRoot(reader, options);
  if (options.layout !== undefined) {
    const byLayout = await inventoryByLayout(reader, serviceRoot, options.layout, options);
    if (byLayout !== undefined) return byLayout;
  }
  const inv: RedfishInventory = { serviceRoot, missing: [] };
  const { missing } = inv;
  const expand = serviceRoot.expand;
  // asked in the order of the critical path: a BMC's connections are fewer than its reads, and
  // the Systems collection (then the Chassis, for the power data) is what the rest waits for
  const systems = serviceRoot.systems === undefined ? undefined : reader.members(serviceRoot.systems, expand, options);
  systems?.catch(() => undefined); // observed below
  const chassisGuess = settle(firstMemberAhead(reader, serviceRoot.chassis, expand, options, run));
  // the Managers collection only once those two are in: without `$expand` their members (the
  // System, the Chassis and then its power data) are the path, and go out ahead of it
  const managerGuess = Promise.allSettled([systems, chassisGuess]).then(() => settle(firstMemberAhead(reader, run.failed ? undefined : serviceRoot.managers, expand, options, run)));

  let systemLink: string | undefined;
  /** the collection's first member, where vendor detection looks (connect.ts) */
  let firstSystem: string | undefined;
  if (systems === undefined) {
    missing.push('System: service root has no Systems link');
  } else {
    const before = missing.length;
    const path = await essential('System', missing, async () => {
      const members = await systems;
      firstSystem = members[0];
      return systemOfBmc(reader, members, serviceRoot.managers, options);
    });
    systemLink = path;
    if (path === undefined && missing.length === before) missing.push(`System: ${serviceRoot.systems} has no members`);
    if (path !== undefined) inv.system = await essential('System', missing, () => readSystem(reader, path, options));
  }
  const system = inv.system;

  // the collections went out with Systems: each read waits for its own collection, so a member it
  // carried inline (or whose read it started) is not asked for a second time through the System's
  // links, and for nothing else: the chassis and its power data do not wait for the Managers
  const systemPath = system?.path ?? systemLink;
  // the System's link; without one, the collection's member that names the System (its first, as guessed, on a plain server)
  const pathOf = async (link: string | undefined, guess: Settled<string | undefined>, collection: string | undefined, named: (body: unknown) => string[]) => {
    if (link !== undefined) return link;
    if (!guess.ok || guess.value === undefined || collection === undefined || systemPath === undefined || run.failed) return guess.ok ? guess.value : undefined;
    return memberNamingSystem(reader, collection, expand, systemPath, named, options);
  };
  /** where the Manager was asked for, even where its read failed: the next read asks it again */
  let managerPath: string | undefined;
  const managerRead = managerGuess.then(async (guess) => {
    const path = await pathOf(system?.managedBy[0], guess, serviceRoot.managers, serversOfManager);
    if (path === undefined || run.failed) return undefined;
    managerPath = path;
    return settle(readManager(reader, path, options));
  });
  const chassisRead = chassisGuess.then(async (guess) => {
    const path = await pathOf(system?.chassis[0], guess, serviceRoot.chassis, chassisNames);
    if (path === undefined || run.failed) return undefined;
    // a linked chassis the BMC answers 404 for is replaced by the collection's one naming the System
    const read = await settle(readSystemChassis(reader, path, systemPath, serviceRoot.chassis, expand, options));
    return { read, power: read.ok && !run.failed ? await powerOf(reader, read.value, serviceRoot, options) : undefined };
  });
  chassisRead.catch(() => undefined); // an abort while reading power: observed below, or thrown by use() first
  managerRead.catch(() => undefined); // an abort while choosing the Manager: the same
  // a failed guess is named in `missing` only where the System has no link to stand in
  const [managerFirst, chassisFirst] = await Promise.all([managerGuess, chassisGuess]);
  if (system?.managedBy[0] === undefined) use('Manager', missing, signal, managerFirst);
  if (system?.chassis[0] === undefined) use('Chassis', missing, signal, chassisFirst);
  const [manager, chassisAndPower] = await Promise.all([managerRead, chassisRead]);
  const chassis = chassisAndPower?.read;
  if (manager !== undefined) inv.manager = use('Manager', missing, signal, manager);
  else if (!missing.some((m) => m.startsWith('Manager:'))) missing.push(NO_MANAGER);
  if (chassis !== undefined) inv.chassis = use('Chassis', missing, signal, chassis);
  else if (!missing.some((m) => m.startsWith('Chassis:'))) missing.push('Chassis: system has no Chassis link and the service root no Chassis member');

  const power = chassisAndPower?.power;
  if (inv.chassis !== undefined && power !== undefined) {
    // in the order a read after the Manager's would have named them
    const { serviceRoot: _root, missing: powerMissing, ...found } = power;
    Object.assign(inv, found);
    missing.push(...powerMissing);
  } else missing.push('PowerMetric: no chassis', 'PowerSupplies: no chassis');
  fieldChecks(inv);
  const layout = layoutOf(inv, systemLink, managerPath, firstSystem);
  if (layout !== undefined) inv.layout = layout;
  return inv;
}

const samePathOrNone = (a: string | undefined, b: string | undefined): boolean => (a === undefined || b === undefined ? a === b : samePath(a, b));

/**
 * Where this read found the data (layout.ts), given the paths it read the System and Manager at
 * (the chassis's is the one it was read at, readSystemChassis); undefined without a System that has
 * a UUID, without a chassis, or past the bounds of a kept layout (a hostile BMC's megabyte paths are
 * not kept).
 */
function layoutOf(inv: RedfishInventory, systemPath: string | undefined, managerPath: string | undefined, firstSystem: string | undefined): InventoryLayout | undefined {
  const { system, chassis } = inv;
  const chassisPath = chassis?.path;
  if (systemPath === undefined || system?.uuid === undefined || chassis === undefined || chassisPath === undefined) return undefined;
  const supplies = inv.powerSupplyCollection === undefined ? undefined : { collection: inv.powerSupplyCollection, members: (inv.powerSupplies ?? []).flatMap((p) => (p.path === undefined ? [] : [p.path])) };
  return keptLayout({
    system: systemPath,
    firstSystem: firstSystem === systemPath ? undefined : firstSystem,
    uuid: system.uuid,
    links: { manager: system.managedBy[0], chassis: system.chassis[0] },
    systemLed: ledShapeOf(system),
    manager: managerPath,
    managerFirmware: managerPath === undefined ? undefined : inv.manager?.firmwareVersion,
    chassis: { ...chassis, path: chassisPath },
    powerSupplies: supplies,
    noPowerMetric: inv.powerMetric === undefined,
  });
}

/**
 * Whether one of `paths` that this read asked for is gone (HTTP 404 or 410): the layout is stale
 * there. A read that failed otherwise (a timeout, a 5xx) fails the same way in a whole walk, which
 * finds it in the cache: no reason to walk. Asks the BMC nothing.
 */
async function anyGone(reader: ReadCache, paths: ReadonlyArray<string | undefined>): Promise<boolean> {
  const asked = paths.filter((p): p is string => p !== undefined && reader.requested.includes(p));
  const gone = await Promise.all(asked.map((p) => reader.get(p).then(() => false, isGone)));
  return gone.includes(true);
}

/**
 * Starts the power reads an earlier read made, by their paths: `Power`, or the PowerSupplies
 * collection (inline with `$expand`) and its members then, and EnvironmentMetrics where that read
 * took the metric from it. readPowerData then finds them under way.
 */
function powerAhead(reader: ReadCache, layout: InventoryLayout, chassis: KeptChassis, expand: ExpandSupport | undefined, options: ReadOptions): void {
  if (chassis.power !== undefined) reader.prefetch(chassis.power, options);
  const supplies = layout.powerSupplies;
  if (supplies !== undefined) {
    if (expand !== undefined) reader.members(supplies.collection, expand, options).catch(() => undefined);
    else for (const path of [supplies.collection, ...supplies.members]) reader.prefetch(path, options);
  }
  if (chassis.environmentMetrics !== undefined && (chassis.power === undefined || layout.noPowerMetric)) reader.prefetch(chassis.environmentMetrics, options);
}

/**
 * The inventory through an earlier read's layout: the System, the Manager and the power data at
 * once (the chassis too where its LED is the one reported), the chassis's board fields as kept.
 * Undefined when the layout no longer holds (another System UUID or other links, a System that
 * cannot be read, no Manager then where the service has Managers, a path gone: HTTP 404 or 410):
 * the caller reads the whole tree, finding what was read here in the cache.
 */
async function inventoryByLayout(reader: ReadCache, serviceRoot: ServiceRoot, layout: InventoryLayout, options: InventoryOptions): Promise<RedfishInventory | undefined> {
  const { signal } = options;
  const kept = layout.chassis;
  if (kept === undefined) return undefined;
  // no Manager found then, though the service has some (a collection read that failed): look again
  if (layout.manager === undefined && serviceRoot.managers !== undefined) return undefined;
  // in the order of the critical path: the System decides whether the layout holds
  const systemRead = settle(readSystem(reader, layout.system, options));
  const keptManager = options.keepManager === true && layout.manager !== undefined && layout.managerFirmware !== undefined;
  const managerRead = layout.manager === undefined || keptManager ? undefined : settle(readManager(reader, layout.manager, options));
  let chassisRead = ledFromChassis(layout.systemLed, ledShapeOf(kept)) ? settle(readChassis(reader, kept.path, options)) : undefined;
  powerAhead(reader, layout, kept, serviceRoot.expand, options);
  const systemOutcome = await systemRead;
  if (!systemOutcome.ok) {
    if (signal?.aborted) throw abortError(signal, 'inventory System');
    if (isBmcError(systemOutcome.err, 'ABORTED')) throw systemOutcome.err;
    return undefined;
  }
  const system = systemOutcome.value;
  if (system.uuid !== layout.uuid || !samePathOrNone(system.managedBy[0], layout.links.manager) || !samePathOrNone(system.chassis[0], layout.links.chassis)) return undefined;
  const inv: RedfishInventory = { serviceRoot, system, missing: [] };
  const { missing } = inv;
  if (keptManager) {
    inv.manager = { path: layout.manager!, firmwareVersion: layout.managerFirmware! };
    inv.managerKept = true;
  }
  else if (managerRead !== undefined) inv.manager = use('Manager', missing, signal, await managerRead);
  else missing.push(NO_MANAGER);
  // the System lost the LED it had: the chassis's is the one reported now
  chassisRead ??= ledFromChassis(ledShapeOf(system), ledShapeOf(kept)) ? settle(readChassis(reader, kept.path, options)) : undefined;
  let chassis: ChassisInfo = { ...kept, computerSystems: [], managedBy: [] };
  if (chassisRead !== undefined) {
    const read = use('Chassis', missing, signal, await chassisRead);
    if (read === undefined) return undefined;
    chassis = { ...read, path: kept.path };
  }
  inv.chassis = chassis;
  await readPowerData(reader, chassis, inv, options, layout.powerSupplies?.collection);
  fieldChecks(inv);
  if (await anyGone(reader, [keptManager ? undefined : layout.manager, kept.path, kept.power, kept.environmentMetrics, layout.powerSupplies?.collection, ...(layout.powerSupplies?.members ?? [])])) return undefined;
  const learned = layoutOf(inv, layout.system, layout.manager, layout.firstSystem);
  if (learned !== undefined) inv.layout = learned;
  return inv;
}
