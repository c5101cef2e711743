/**
 * Typed reads: one GET (or a collection walk) and a pure parser each. The readers need
 * only `get` from the client, so tests can feed them any JSON.
 */
import { BmcError } from '../errors.js';
import {
  MAX_POWER_SUPPLIES,
  parseActionInfoAllowable,
  parseChassis,
  parseCollection,
  parseEnvironmentPowerWatts,
  parseManager,
  parsePower,
  parsePowerSupply,
  parseServiceRoot,
  parseSystem,
  parseUpdateService,
  type ChassisInfo,
  type ManagerInfo,
  type PowerInfo,
  type ServiceRoot,
  type SystemInfo,
  type UpdateServiceInfo,
} from './parse.js';
import { link, links, obj, withoutTrailingSlashes } from './json.js';
import type { Logger } from '../log.js';
import type { RedfishClient } from './session.js';

export type * from './parse.js';

export type RedfishGetter = Pick<RedfishClient, 'get'>;

export interface ReadOptions {
  signal?: AbortSignal;
  /** where a choice among several Systems is logged */
  logger?: Logger;
}

export const SERVICE_ROOT = '/redfish/v1/';
/** Collections longer than this many pages are cut (a BMC with a nextLink loop). */
const MAX_PAGES = 20;
/** Members of one collection beyond this are not listed: a BMC's own collections hold a few dozen at most. */
export const MAX_MEMBERS = 1024;


export async function readServiceRoot(client: RedfishGetter, options: ReadOptions = {}): Promise<ServiceRoot> {
  return parseServiceRoot(await client.get(SERVICE_ROOT, options));
}

/**
 * `@odata.id`s of a collection's members, following `Members@odata.nextLink`, each once: a page
 * already read ends the walk (a BMC that ignores `$skip` names the same page again), and the list
 * stops at MAX_MEMBERS.
 */
export async function listMembers(client: RedfishGetter, path: string, options: ReadOptions = {}): Promise<string[]> {
  const members = new Set<string>();
  const pages = new Set<string>();
  let next: string | undefined = path;
  for (let page = 0; next !== undefined && page < MAX_PAGES && !pages.has(next) && members.size < MAX_MEMBERS; page += 1) {
    pages.add(next);
    const c = parseCollection(await client.get(next, options));
    for (const m of c.members) if (members.size < MAX_MEMBERS) members.add(m);
    next = c.nextLink;
  }
  return [...members];
}

export async function readSystem(client: RedfishGetter, path: string, options: ReadOptions = {}): Promise<SystemInfo> {
  return parseSystem(await client.get(path, options));
}

export async function readManager(client: RedfishGetter, path: string, options: ReadOptions = {}): Promise<ManagerInfo> {
  return parseManager(await client.get(path, options));
}

export async function readChassis(client: RedfishGetter, path: string, options: ReadOptions = {}): Promise<ChassisInfo> {
  return parseChassis(await client.get(path, options));
}

/** The deprecated `Power` resource of a chassis. */
export async function readPower(client: RedfishGetter, path: string, options: ReadOptions = {}): Promise<PowerInfo> {
  return parsePower(await client.get(path, options));
}

/**
 * `PowerSubsystem` → its `PowerSupplies` collection → each member's Status. No metrics there.
 * `membersOf` lists the collection (the inventory's read cache passes one that uses `$expand`);
 * with `knownCollection` (an earlier read's, inventory layout) the PowerSubsystem itself is not read.
 */
export async function readPowerSubsystem(
  client: RedfishGetter,
  path: string,
  options: ReadOptions = {},
  membersOf: (collection: string) => Promise<string[]> = (collection) => listMembers(client, collection, options),
  knownCollection?: string,
): Promise<PowerInfo & { collection?: string }> {
  const collection = knownCollection ?? link(await client.get(path, options), 'PowerSupplies');
  if (collection === undefined) return { supplies: [] };
  const members = (await membersOf(collection)).slice(0, MAX_POWER_SUPPLIES);
  // each supply's path is the one it was read at, whatever its body's @odata.id says
  const supplies = await Promise.all(members.map(async (m) => ({ ...parsePowerSupply(await client.get(m, options)), path: m })));
  return { supplies, collection };
}

/** `EnvironmentMetrics.PowerWatts.Reading` of a chassis. */
export async function readEnvironmentPowerWatts(client: RedfishGetter, path: string, options: ReadOptions = {}): Promise<number | undefined> {
  return parseEnvironmentPowerWatts(await client.get(path, options));
}

export async function readUpdateService(client: RedfishGetter, options: ReadOptions = {}): Promise<UpdateServiceInfo & { path: string }> {
  const root = await readServiceRoot(client, options);
  if (root.updateService === undefined) throw new BmcError('UNSUPPORTED', 'the service root has no UpdateService');
  return { ...parseUpdateService(await client.get(root.updateService, options)), path: root.updateService };
}

/** AllowableValues of one parameter from an `@Redfish.ActionInfo` resource. */
export async function readActionInfoAllowable(
  client: RedfishGetter,
  path: string,
  parameter: string,
  options: ReadOptions = {},
): Promise<string[] | undefined> {
  return parseActionInfoAllowable(await client.get(path, options), parameter);
}

/** The Systems a Manager's body names as those it manages (`Links.ManagerForServers`). */
export function serversOfManager(body: unknown): string[] {
  return links(obj(body, 'Links'), 'ManagerForServers');
}

/** Managers read when a service lists several Systems; more are not consulted. */
const MAX_MANAGERS = 8;

/**
 * The System this BMC manages, from the members of a Systems collection: the only one; else the
 * first member a Manager names in `Links.ManagerForServers` (blade and multi-node chassis list
 * their siblings, sushy-tools and OpenBMC multi-host list several hosts; bmclib#400); else the
 * first. The choice among several is logged once per call.
 */
export async function systemOfBmc(client: RedfishGetter, members: readonly string[], managers: string | undefined, options: ReadOptions = {}): Promise<string | undefined> {
  const [first] = members;
  if (members.length <= 1 || managers === undefined) return first;
  const managed = new Set<string>();
  const managerPaths = (await listMembers(client, managers, options)).slice(0, MAX_MANAGERS);
  // at once: one round trip on the read's path, not one per Manager
  const bodies = await Promise.all(
    managerPaths.map((m) =>
      client.get(m, options).catch((err: unknown) => {
        if (options.signal?.aborted) throw err;
        return undefined;
      }),
    ),
  );
  for (const body of bodies) for (const s of serversOfManager(body)) managed.add(withoutTrailingSlashes(s));
  const chosen = members.find((m) => managed.has(withoutTrailingSlashes(m)));
  options.logger?.info(
    { systems: members.length, chosen: chosen ?? first, by: chosen === undefined ? 'first member (no Manager names one)' : 'Manager Links.ManagerForServers' },
    'redfish service lists several Systems',
  );
  return chosen ?? first;
}

/** The ComputerSystem of this BMC (see systemOfBmc); UNSUPPORTED when there is none. */
export async function firstSystemPath(client: RedfishGetter, options: ReadOptions = {}): Promise<string> {
  const root = await readServiceRoot(client, options);
  if (root.systems === undefined) throw new BmcError('UNSUPPORTED', 'the service root has no Systems collection');
  const chosen = await systemOfBmc(client, await listMembers(client, root.systems, options), root.managers, options);
  if (chosen === undefined) throw new BmcError('UNSUPPORTED', `${root.systems} has no members`);
  return chosen;
}
