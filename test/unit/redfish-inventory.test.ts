import { afterEach, beforeEach, expect } from 'vitest';
import {
  listMembers,
  openRedfish,
  readChassis,
  readInventory,
  readManager,
  readPower,
  readPowerSubsystem,
  readServiceRoot,
  readSystem,
  type RedfishClient,
  type RedfishInventory,
} from '../../src/redfish/index.js';
import { MAX_POWER_SUPPLIES } from '../../src/redfish/parse.js';
import { startMockupServer, type MockupServer } from '../helpers/redfish-mockup-server.js';
import { withPeers } from '../helpers/peers.js';
import { waitFor } from '../helpers/wait.js';

const { describe, it } = withPeers('openssl');

let server: MockupServer;
let client: RedfishClient;

const SYSTEM = '/redfish/v1/Systems/437XR1138R2';
const CHASSIS = '/redfish/v1/Chassis/1U';
const MANAGER = '/redfish/v1/Managers/BMC';

beforeEach(async () => {
  server = await startMockupServer();
  client = await openRedfish({ host: server.host, port: server.port, user: server.user, password: server.password });
});

afterEach(async () => {
  await client.close();
  expect(server.sessionCount()).toBe(0);
  await server.close();
});

describe('typed reads of the DMTF public-rackmount1 mockup', () => {
  it('service root and collections', async () => {
    expect(await readServiceRoot(client)).toEqual({
      redfishVersion: '1.15.0',
      uuid: '92384634-2938-2342-8820-489239905423',
      systems: '/redfish/v1/Systems',
      chassis: '/redfish/v1/Chassis',
      managers: '/redfish/v1/Managers',
      sessionService: '/redfish/v1/SessionService',
      sessions: '/redfish/v1/SessionService/Sessions',
      updateService: '/redfish/v1/UpdateService',
      taskService: '/redfish/v1/TaskService',
      expand: { operator: '.', levels: true },
    });
    expect(await listMembers(client, '/redfish/v1/Systems')).toEqual([SYSTEM]);
    expect(await listMembers(client, `${CHASSIS}/PowerSubsystem/PowerSupplies`)).toEqual([
      `${CHASSIS}/PowerSubsystem/PowerSupplies/Bay1`,
      `${CHASSIS}/PowerSubsystem/PowerSupplies/Bay2`,
    ]);
  });

  it('system: identity, power, BIOS, LED, boot, reset action', async () => {
    expect(await readSystem(client, SYSTEM)).toEqual({
      path: SYSTEM,
      id: '437XR1138R2',
      uuid: '38947555-7742-3448-3784-823347823834',
      powerState: 'On',
      biosVersion: 'P79 v1.45 (12/06/2017)',
      indicatorLED: 'Off',
      manufacturer: 'Contoso',
      model: '3500',
      serialNumber: '437XR1138R2',
      partNumber: '224071-J23',
      sku: '8675309',
      boot: {
        overrideEnabled: 'Once',
        overrideTarget: 'Pxe',
        overrideTargetAllowable: ['None', 'Pxe', 'Cd', 'Usb', 'Hdd', 'BiosSetup', 'Utilities', 'Diags', 'SDCard', 'UefiTarget'],
        overrideMode: 'UEFI',
      },
      reset: {
        target: `${SYSTEM}/Actions/ComputerSystem.Reset`,
        allowable: ['On', 'ForceOff', 'GracefulShutdown', 'GracefulRestart', 'ForceRestart', 'Nmi', 'ForceOn', 'PushPowerButton'],
      },
      chassis: [CHASSIS],
      managedBy: [MANAGER],
    });
  });

  it('manager and chassis', async () => {
    expect(await readManager(client, MANAGER)).toEqual({
      path: MANAGER,
      id: 'BMC',
      uuid: '58893887-8974-2487-2389-841168418919',
      firmwareVersion: '1.45.455b66-rev4',
      model: 'Joo Janta 200',
      managerType: 'BMC',
    });
    expect(await readChassis(client, CHASSIS)).toEqual({
      path: CHASSIS,
      id: '1U',
      manufacturer: 'Contoso',
      model: '3500RX',
      partNumber: '224071-J23',
      serialNumber: '437XR1138R2',
      sku: '8675309',
      powerState: 'On',
      indicatorLED: 'Lit',
      power: `${CHASSIS}/Power`,
      powerSubsystem: `${CHASSIS}/PowerSubsystem`,
      environmentMetrics: `${CHASSIS}/EnvironmentMetrics`,
      computerSystems: [SYSTEM],
      managedBy: [MANAGER],
    });
  });

  it('Power and PowerSubsystem', async () => {
    expect(await readPower(client, `${CHASSIS}/Power`)).toEqual({
      consumedWatts: 344,
      metrics: { averageConsumedWatts: 319, minConsumedWatts: 271, maxConsumedWatts: 489, intervalInMin: 30 },
      supplies: [{ path: `${CHASSIS}/Power#/PowerSupplies/0`, name: 'Power Supply Bay', health: 'Warning', state: 'Enabled' }],
    });
    expect(await readPowerSubsystem(client, `${CHASSIS}/PowerSubsystem`)).toEqual({
      supplies: [
        { path: `${CHASSIS}/PowerSubsystem/PowerSupplies/Bay1`, name: 'Power Supply Bay 1', health: 'Warning', state: 'Enabled' },
        { path: `${CHASSIS}/PowerSubsystem/PowerSupplies/Bay2`, name: 'Power Supply Bay 2', state: 'Absent' },
      ],
      collection: `${CHASSIS}/PowerSubsystem/PowerSupplies`,
    });
  });
});

describe('readInventory', () => {
  it('reads everything from the complete mockup, nothing missing', async () => {
    const inv = await readInventory(client);
    expect(inv.missing).toEqual([]);
    expect(inv.system?.uuid).toBe('38947555-7742-3448-3784-823347823834');
    expect(inv.system?.biosVersion).toBe('P79 v1.45 (12/06/2017)');
    expect(inv.manager?.firmwareVersion).toBe('1.45.455b66-rev4');
    expect(inv.chassis?.serialNumber).toBe('437XR1138R2');
    expect(inv.powerMetric).toEqual({ averageConsumedWatts: 319, minConsumedWatts: 271, maxConsumedWatts: 489, intervalInMin: 30 });
    expect(inv.consumedWatts).toBe(344);
    expect(inv.powerSupplies).toEqual([{ path: `${CHASSIS}/Power#/PowerSupplies/0`, name: 'Power Supply Bay', health: 'Warning', state: 'Enabled' }]);
    expect(inv.powerWatts).toBeUndefined();
  });

  it('chassis without Power: supplies from PowerSubsystem, PowerWatts from EnvironmentMetrics, PowerMetric missing', async () => {
    server.dropProperty(CHASSIS, 'Power');
    const inv = await readInventory(client);
    expect(inv.powerMetric).toBeUndefined();
    expect(inv.powerSupplies?.map((s) => [s.health, s.state])).toEqual([
      ['Warning', 'Enabled'],
      [undefined, 'Absent'],
    ]);
    expect(inv.powerWatts).toBe(374);
    expect(inv.missing).toEqual(['PowerMetric: chassis has only PowerSubsystem, which carries no power metrics']);
  });

  it('chassis with neither Power nor PowerSubsystem', async () => {
    server.dropProperty(CHASSIS, 'Power');
    server.dropProperty(CHASSIS, 'PowerSubsystem');
    const inv = await readInventory(client);
    expect(inv.powerMetric).toBeUndefined();
    expect(inv.powerSupplies).toBeUndefined();
    expect(inv.missing).toEqual([
      'PowerMetric: chassis has neither Power nor PowerSubsystem',
      'PowerSupplies: chassis has neither Power nor PowerSubsystem',
    ]);
    expect(inv.system?.uuid).toBe('38947555-7742-3448-3784-823347823834');
  });

  it('a Power resource that fails to load is missing with the HTTP reason', async () => {
    server.removeResource(`${CHASSIS}/Power`);
    const inv = await readInventory(client);
    expect(inv.missing[0]).toMatch(/^PowerMetric: GET \/redfish\/v1\/Chassis\/1U\/Power: HTTP 404/);
    expect(inv.powerSupplies).toHaveLength(2); // from PowerSubsystem
  });

  it('absent IndicatorLED on system and chassis', async () => {
    server.dropProperty(SYSTEM, 'IndicatorLED');
    expect((await readInventory(client)).missing).toEqual([]); // the chassis still has one
    server.dropProperty(CHASSIS, 'IndicatorLED');
    const inv = await readInventory(client);
    expect(inv.system?.indicatorLED).toBeUndefined();
    expect(inv.missing).toEqual(['IndicatorLED: neither system nor chassis has IndicatorLED or LocationIndicatorActive']);
  });

  it('absent Managers link: the manager is found through the system, else missing', async () => {
    server.dropProperty('/redfish/v1', 'Managers');
    expect((await readInventory(client)).manager?.firmwareVersion).toBe('1.45.455b66-rev4');
    server.dropProperty(SYSTEM, 'Links.ManagedBy');
    const inv = await readInventory(client);
    expect(inv.manager).toBeUndefined();
    expect(inv.missing).toEqual(['Manager: system has no ManagedBy link and the service root no Managers member']);
    expect(inv.chassis?.model).toBe('3500RX');
  });

  it('a manager answering 404 or with malformed JSON is missing, not fatal', async () => {
    server.removeResource(MANAGER);
    let inv = await readInventory(client);
    expect(inv.missing).toEqual([expect.stringMatching(/^Manager: GET \/redfish\/v1\/Managers\/BMC: HTTP 404/)]);
    server.addFault({ path: CHASSIS, fault: { kind: 'malformed' } });
    inv = await readInventory(client);
    expect(inv.chassis).toBeUndefined();
    expect(inv.missing).toContain('Chassis: GET /redfish/v1/Chassis/1U: malformed JSON in the response for /redfish/v1/Chassis/1U');
    expect(inv.missing).toContain('PowerMetric: no chassis');
    server.clearFaults();
  });

  it("a linked chassis answering 404: the collection's chassis that names the System stands in, else missing", async () => {
    const chassis1U = server.resource(CHASSIS)!;
    server.removeResource(CHASSIS);
    let inv = await readInventory(client);
    expect(inv.chassis).toBeUndefined();
    expect(inv.missing[0]).toMatch(/^Chassis: GET \/redfish\/v1\/Chassis\/1U: HTTP 404/);
    // a board chassis that names another system is not taken; the one naming this System is
    const other = '/redfish/v1/Chassis/Other';
    const board = '/redfish/v1/Chassis/1U/Baseboard';
    server.setResource(other, { '@odata.id': other, Manufacturer: 'Elsewhere', Links: { ComputerSystems: [{ '@odata.id': '/redfish/v1/Systems/Other' }] } });
    server.setResource(board, { ...chassis1U, '@odata.id': board, Model: 'Board' });
    server.setResource('/redfish/v1/Chassis', { '@odata.id': '/redfish/v1/Chassis', Members: [{ '@odata.id': CHASSIS }, { '@odata.id': other }, { '@odata.id': board }] });
    inv = await readInventory(client);
    expect(inv.chassis?.path).toBe(board);
    expect(inv.chassis?.model).toBe('Board');
    expect(inv.powerMetric?.averageConsumedWatts).toBe(319);
    expect(inv.missing).toEqual([]);
  });

  it("a multi-node chassis whose System has no links: the Manager and Chassis that name the System, not the collections' first members", async () => {
    const manager = server.resource(MANAGER)!;
    const chassis = server.resource(CHASSIS)!;
    const [otherManager, otherChassis, ownManager, ownChassis] = ['/redfish/v1/Managers/Node1', '/redfish/v1/Chassis/Node1', '/redfish/v1/Managers/Node2', '/redfish/v1/Chassis/Node2'];
    const sibling = { '@odata.id': '/redfish/v1/Systems/Node1' };
    server.setResource(otherManager, { ...manager, '@odata.id': otherManager, Id: 'Node1', FirmwareVersion: 'sibling', Links: { ManagerForServers: [sibling] } });
    server.setResource(ownManager, { ...manager, '@odata.id': ownManager, Id: 'Node2', FirmwareVersion: 'own', Links: { ManagerForServers: [{ '@odata.id': SYSTEM }] } });
    server.setResource(otherChassis, { ...chassis, '@odata.id': otherChassis, Id: 'Node1', SerialNumber: 'sibling', Links: { ComputerSystems: [sibling] } });
    server.setResource(ownChassis, { ...chassis, '@odata.id': ownChassis, Id: 'Node2', SerialNumber: 'own', Links: { ComputerSystems: [{ '@odata.id': SYSTEM }] } });
    server.setResource('/redfish/v1/Managers', { '@odata.id': '/redfish/v1/Managers', Members: [{ '@odata.id': otherManager }, { '@odata.id': ownManager }] });
    server.setResource('/redfish/v1/Chassis', { '@odata.id': '/redfish/v1/Chassis', Members: [{ '@odata.id': otherChassis }, { '@odata.id': ownChassis }] });
    server.dropProperty(SYSTEM, 'Links.ManagedBy');
    server.dropProperty(SYSTEM, 'Links.Chassis');
    const inv = await readInventory(client);
    expect(inv.manager?.firmwareVersion).toBe('own');
    expect(inv.chassis?.serialNumber).toBe('own');
    expect(inv.powerMetric?.averageConsumedWatts).toBe(319);
  });

  it('power supplies are read and reported up to MAX_POWER_SUPPLIES per chassis, from Power and from PowerSubsystem', async () => {
    const power = server.resource(`${CHASSIS}/Power`)!;
    const supply = (power.PowerSupplies as Array<Record<string, unknown>>)[0]!;
    server.setResource(`${CHASSIS}/Power`, { ...power, PowerSupplies: Array.from({ length: 500 }, (_, i) => ({ ...supply, '@odata.id': `${CHASSIS}/Power#/PowerSupplies/${i}`, Name: `PSU ${i}` })) });
    expect((await readInventory(client)).powerSupplies).toHaveLength(MAX_POWER_SUPPLIES);
    const collection = `${CHASSIS}/PowerSubsystem/PowerSupplies`;
    const members = Array.from({ length: 100 }, (_, i) => `${collection}/${i}`);
    for (const m of members) server.setResource(m, { '@odata.id': m, Name: m, Status: { State: 'Enabled', Health: 'OK' } });
    server.setResource(collection, { '@odata.id': collection, Members: members.map((m) => ({ '@odata.id': m })) });
    server.dropProperty(CHASSIS, 'Power');
    const before = server.requests.length;
    const inv = await readInventory(client);
    expect(inv.powerSupplies).toHaveLength(MAX_POWER_SUPPLIES);
    expect(server.requests.slice(before).filter((r) => r.path.startsWith(`${collection}/`))).toHaveLength(MAX_POWER_SUPPLIES);
  });

  it('no system: missing; manager and chassis still from the root collections', async () => {
    server.removeResource('/redfish/v1/Systems');
    const inv = await readInventory(client);
    expect(inv.system).toBeUndefined();
    expect(inv.missing[0]).toMatch(/^System: GET \/redfish\/v1\/Systems: HTTP 404/);
    expect(inv.manager?.firmwareVersion).toBe('1.45.455b66-rev4');
    expect(inv.chassis?.manufacturer).toBe('Contoso');
  });

  it('throws for transport failures on the system itself', async () => {
    server.addFault({ path: SYSTEM, fault: { kind: 'status', status: 500 } });
    await expect(readInventory(client)).rejects.toMatchObject({ code: 'HTTP', httpStatus: 500 });
    server.clearFaults();
    // the service root only: a read of the first attempt still queued for a connection may arrive now
    server.addFault({ path: /^\/redfish\/v1\/?$/, method: 'GET', fault: { kind: 'malformed' }, times: 1 });
    await expect(readInventory(client)).rejects.toMatchObject({ code: 'DECODE' });
  });
});

/*
 * A report read through an earlier read's layout (src/redfish/layout.ts): the resources that
 * change are asked by path at once, the collections are not walked, and wherever the layout no
 * longer holds the whole tree is read and the result is the one a read without a layout gives.
 */
const SUPPLIES = `${CHASSIS}/PowerSubsystem/PowerSupplies`;
const ROOT = '/redfish/v1';

/** GETs the server answered since `from`, sorted (two connections: arrival order varies) */
const gets = (from: number) =>
  server.requests
    .slice(from)
    .filter((r) => r.method === 'GET')
    .map((r) => r.path)
    .sort();

/** a read through `layout`, and what it asked the BMC */
async function readWith(layout: RedfishInventory['layout'], keepManager = false): Promise<{ inv: RedfishInventory; asked: string[] }> {
  const from = server.requests.length;
  const inv = await readInventory(client, layout ? { layout, keepManager } : {});
  return { inv, asked: gets(from) };
}

/** what a report takes from the chassis (outband/redfish-report.ts) and its power links: the chassis fields a layout keeps */
const CHASSIS_USED = ['path', 'manufacturer', 'model', 'partNumber', 'serialNumber', 'indicatorLED', 'locationIndicatorActive', 'power', 'powerSubsystem', 'environmentMetrics'] as const;

/** the inventory as a report uses it: the layout itself aside, the chassis's used fields */
const content = ({ layout: _layout, chassis, ...rest }: RedfishInventory) => ({ ...rest, chassis: chassis && Object.fromEntries(CHASSIS_USED.flatMap((k) => (chassis[k] === undefined ? [] : [[k, chassis[k]]]))) });

const walked = (asked: string[]) => asked.some((p) => p.startsWith('/redfish/v1/Systems?') || p === '/redfish/v1/Systems');

describe('readInventory through a layout', () => {
  it('asks only for the System, the Manager and Power, at once, and finds what a whole read finds', async () => {
    const first = await readInventory(client);
    expect(first.layout).toMatchObject({ system: SYSTEM, uuid: '38947555-7742-3448-3784-823347823834', manager: MANAGER, chassis: { path: CHASSIS, serialNumber: '437XR1138R2', power: `${CHASSIS}/Power` }, noPowerMetric: false });
    const second = await readWith(first.layout);
    expect(second.asked).toEqual([ROOT, `${CHASSIS}/Power`, MANAGER, SYSTEM].sort());
    expect(content(second.inv)).toEqual(content(first));
    expect(second.inv.layout).toEqual(first.layout);
  });

  it('a Power without PowerMetrics: the next read asks EnvironmentMetrics beside Power, not after its answer', async () => {
    const power = server.resource(`${CHASSIS}/Power`)!;
    const controls = power.PowerControl as Array<Record<string, unknown>>;
    server.setResource(`${CHASSIS}/Power`, { ...power, PowerControl: controls.map(({ PowerMetrics: _m, ...c }) => c) });
    const first = await readInventory(client);
    expect(first.powerMetric).toBeUndefined();
    expect(first.layout?.noPowerMetric).toBe(true);
    let release!: () => void;
    server.addFault({ path: `${CHASSIS}/Power`, fault: { kind: 'held', until: new Promise<void>((r) => (release = r)) } });
    const from = server.requests.length;
    const second = readWith(first.layout);
    await waitFor(() => gets(from).includes(`${CHASSIS}/EnvironmentMetrics`), 5000, 'EnvironmentMetrics asked while Power is held');
    release();
    expect(content((await second).inv)).toEqual(content(first));
    server.clearFaults();
  });

  it('with keepManager, takes the Manager\'s FirmwareVersion from the layout: the System and Power only', async () => {
    const first = await readInventory(client);
    expect(first.layout?.managerFirmware).toBe(first.manager?.firmwareVersion);
    server.setResource(MANAGER, { ...server.resource(MANAGER), FirmwareVersion: '9.9.9' });
    const second = await readWith(first.layout, true);
    expect(second.asked).toEqual([ROOT, `${CHASSIS}/Power`, SYSTEM].sort());
    // the version of the layout's read (kept for as long as the layout serves), not the Manager's new one
    expect(second.inv.manager).toEqual({ path: MANAGER, firmwareVersion: first.manager?.firmwareVersion });
    expect(second.inv.layout?.managerFirmware).toBe(first.manager?.firmwareVersion);
    server.setResource(MANAGER, { ...server.resource(MANAGER), FirmwareVersion: first.manager?.firmwareVersion });
  });

  it('reads the Manager every time without keepManager: a BMC firmware update shows in the next read', async () => {
    const first = await readInventory(client);
    server.setResource(MANAGER, { ...server.resource(MANAGER), FirmwareVersion: '2.0.0' });
    const second = await readWith(first.layout);
    expect(second.inv.manager?.firmwareVersion).toBe('2.0.0');
    expect(walked(second.asked)).toBe(false);
  });

  it('another machine behind the address (another System UUID): the whole tree, the System asked once', async () => {
    const first = await readInventory(client);
    server.setResource(SYSTEM, { ...server.resource(SYSTEM), UUID: '11111111-2222-3333-4444-555555555555' });
    const second = await readWith(first.layout);
    expect(walked(second.asked)).toBe(true);
    expect(second.asked.filter((p) => p === SYSTEM)).toHaveLength(1);
    expect(second.inv.system?.uuid).toBe('11111111-2222-3333-4444-555555555555');
    expect(second.inv.layout?.uuid).toBe('11111111-2222-3333-4444-555555555555');
  });

  it('a System that names other links than before: the whole tree', async () => {
    const first = await readInventory(client);
    server.dropProperty(SYSTEM, 'Links.Chassis');
    const second = await readWith(first.layout);
    expect(walked(second.asked)).toBe(true);
    expect(content(second.inv)).toEqual(content(await readInventory(client)));
  });

  it('a power resource gone (404): the whole tree, with the reason a read without a layout gives', async () => {
    const first = await readInventory(client);
    server.removeResource(`${CHASSIS}/Power`);
    const second = await readWith(first.layout);
    expect(walked(second.asked)).toBe(true);
    const fresh = await readInventory(client);
    expect(second.inv.missing).toEqual(fresh.missing);
    expect(second.inv.missing.some((m) => m.startsWith('PowerMetric: '))).toBe(true);
    expect(content(second.inv)).toEqual(content(fresh));
  });

  it("reads the chassis where its LED is the one reported, also when the System lost its own since", async () => {
    server.dropProperty(SYSTEM, 'IndicatorLED');
    server.setResource(CHASSIS, { ...server.resource(CHASSIS), IndicatorLED: 'Off' });
    const first = await readInventory(client);
    server.setResource(CHASSIS, { ...server.resource(CHASSIS), IndicatorLED: 'Lit' });
    const second = await readWith(first.layout);
    expect(second.asked).toContain(CHASSIS);
    expect(second.inv.chassis?.indicatorLED).toBe('Lit');
    expect(walked(second.asked)).toBe(false);

    // learned with the System's own LED; the System has none now: the chassis is read in the same read
    server.setResource(SYSTEM, { ...server.resource(SYSTEM), IndicatorLED: 'Off' });
    const withSystemLed = await readInventory(client);
    expect(withSystemLed.layout?.systemLed.indicatorLED).toBe(true);
    server.dropProperty(SYSTEM, 'IndicatorLED');
    const third = await readWith(withSystemLed.layout);
    expect(third.asked).toContain(CHASSIS);
    expect(third.inv.chassis?.indicatorLED).toBe('Lit');
    expect(walked(third.asked)).toBe(false);
  });

  it('a chassis with PowerSubsystem only: its supplies by their paths without the PowerSubsystem; a supply added since is read too', async () => {
    server.dropProperty(CHASSIS, 'Power');
    const first = await readInventory(client);
    expect(first.layout?.powerSupplies).toEqual({ collection: SUPPLIES, members: [`${SUPPLIES}/Bay1`, `${SUPPLIES}/Bay2`] });
    const second = await readWith(first.layout);
    expect(second.asked).not.toContain(`${CHASSIS}/PowerSubsystem`);
    expect(second.asked).toEqual(expect.arrayContaining([SUPPLIES, `${SUPPLIES}/Bay1`, `${SUPPLIES}/Bay2`, `${CHASSIS}/EnvironmentMetrics`]));
    expect(content(second.inv)).toEqual(content(first));

    const bay3 = { ...server.resource(`${SUPPLIES}/Bay1`), '@odata.id': `${SUPPLIES}/Bay3`, Id: 'Bay3', Name: 'Power Supply Bay 3' };
    server.setResource(`${SUPPLIES}/Bay3`, bay3);
    const collection = server.resource(SUPPLIES)!;
    server.setResource(SUPPLIES, { ...collection, Members: [...(collection.Members as unknown[]), { '@odata.id': `${SUPPLIES}/Bay3` }], 'Members@odata.count': 3 });
    const third = await readWith(second.inv.layout);
    expect(third.inv.powerSupplies?.map((p) => p.name)).toEqual(['Power Supply Bay 1', 'Power Supply Bay 2', 'Power Supply Bay 3']);
    expect(third.inv.layout?.powerSupplies?.members).toHaveLength(3);
    expect(walked(third.asked)).toBe(false);
  });

  it("takes no link past MAX_ODATA_ID (a hostile BMC's kilobyte links): not followed, not kept in the layout", async () => {
    server.setResource(CHASSIS, { ...server.resource(CHASSIS), EnvironmentMetrics: { '@odata.id': `${CHASSIS}/${'x'.repeat(2000)}` } });
    const first = await readInventory(client);
    expect(first.chassis?.environmentMetrics).toBeUndefined();
    expect(first.layout).toBeDefined();
    expect(JSON.stringify(first.layout)).not.toContain('x'.repeat(1000));
  });

  it('a Manager that fails (HTTP 500): no walk, which would meet the same failure; named as a read without a layout names it; asked again next time', async () => {
    const first = await readInventory(client);
    server.addFault({ path: MANAGER, method: 'GET', fault: { kind: 'status', status: 500 } });
    const second = await readWith(first.layout);
    expect(walked(second.asked)).toBe(false);
    expect(second.inv.manager).toBeUndefined();
    const fresh = await readInventory(client);
    expect(second.inv.missing).toEqual(fresh.missing);
    expect(second.inv.missing.some((m) => m.startsWith('Manager: '))).toBe(true);
    expect(second.inv.layout?.manager).toBe(MANAGER);
    server.clearFaults();
    const third = await readWith(second.inv.layout);
    expect(walked(third.asked)).toBe(false);
    expect(third.inv.manager?.firmwareVersion).toBe(first.manager?.firmwareVersion);
  });

  it('no Manager found then, where the service has Managers (its collection failed): the next read looks for one again', async () => {
    server.dropProperty(SYSTEM, 'Links.ManagedBy');
    server.addFault({ path: '/redfish/v1/Managers', method: 'GET', fault: { kind: 'status', status: 500 } });
    const first = await readInventory(client);
    expect(first.manager).toBeUndefined();
    expect(first.layout).toBeDefined();
    expect(first.layout?.manager).toBeUndefined();
    server.clearFaults();
    const second = await readWith(first.layout);
    expect(walked(second.asked)).toBe(true);
    expect(second.inv.manager?.firmwareVersion).toBe('1.45.455b66-rev4');
    expect(second.inv.layout?.manager).toBe(MANAGER);
  });

  it('keeps the paths it read at, not the bodies\' @odata.id (which a BMC may spell otherwise): nothing is asked twice', async () => {
    server.dropProperty(CHASSIS, 'Power');
    server.setResource(CHASSIS, { ...server.resource(CHASSIS), '@odata.id': `${CHASSIS}/` });
    server.setResource(`${SUPPLIES}/Bay1`, { ...server.resource(`${SUPPLIES}/Bay1`), '@odata.id': `${SUPPLIES}/Bay1/` });
    const first = await readInventory(client);
    expect(first.layout?.chassis?.path).toBe(CHASSIS);
    expect(first.layout?.powerSupplies?.members).toEqual([`${SUPPLIES}/Bay1`, `${SUPPLIES}/Bay2`]);
    const second = await readWith(first.layout);
    expect(new Set(second.asked).size).toBe(second.asked.length);
    expect(second.asked.some((p) => p.endsWith('/'))).toBe(false);
    expect(walked(second.asked)).toBe(false);
  });

  it("several Systems: the layout names the reported one and the collection's first, where vendor detection looks", async () => {
    const other = '/redfish/v1/Systems/Other';
    server.setResource(other, { ...server.resource(SYSTEM), '@odata.id': other, Id: 'Other', UUID: '22222222-3333-4444-5555-666666666666', Manufacturer: 'Elsewhere' });
    server.setResource('/redfish/v1/Systems', { ...server.resource('/redfish/v1/Systems'), Members: [{ '@odata.id': other }, { '@odata.id': SYSTEM }], 'Members@odata.count': 2 });
    const first = await readInventory(client);
    expect(first.layout).toMatchObject({ system: SYSTEM, firstSystem: other });
    const second = await readWith(first.layout);
    expect(second.inv.system?.uuid).toBe(first.system?.uuid);
    expect(second.inv.layout?.firstSystem).toBe(other);
  });
});
