/**
 * A report read through an earlier read's layout (src/redfish/layout.ts), against the DMTF
 * public-rackmount1 mockup over TLS: the resources that change are asked by path at once, the
 * collections are not walked, and wherever the layout no longer holds the whole tree is read and
 * the result is the one a read without a layout gives.
 */
import { afterEach, beforeEach, expect } from 'vitest';
import { openRedfish, readInventory, type RedfishClient, type RedfishInventory } from '../../src/redfish/index.js';
import { startMockupServer, type MockupServer } from '../helpers/redfish-mockup-server.js';
import { withPeers } from '../helpers/peers.js';

const { describe, it } = withPeers('openssl');

let server: MockupServer;
let client: RedfishClient;

const SYSTEM = '/redfish/v1/Systems/437XR1138R2';
const CHASSIS = '/redfish/v1/Chassis/1U';
const MANAGER = '/redfish/v1/Managers/BMC';
const SUPPLIES = `${CHASSIS}/PowerSubsystem/PowerSupplies`;
const ROOT = '/redfish/v1';

beforeEach(async () => {
  server = await startMockupServer();
  client = await openRedfish({ host: server.host, port: server.port, user: server.user, password: server.password });
});

afterEach(async () => {
  await client.close();
  await server.close();
});

/** GETs the server answered since `from`, sorted (two connections: arrival order varies) */
const gets = (from: number) =>
  server.requests
    .slice(from)
    .filter((r) => r.method === 'GET')
    .map((r) => r.path)
    .sort();

/** a read through `layout`, and what it asked the BMC */
async function readWith(layout: RedfishInventory['layout']): Promise<{ inv: RedfishInventory; asked: string[] }> {
  const from = server.requests.length;
  const inv = await readInventory(client, layout ? { layout } : {});
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
    expect(first.layout).toMatchObject({ system: SYSTEM, uuid: '38947555-7742-3448-3784-823347823834', manager: MANAGER, chassis: { path: CHASSIS, serialNumber: '437XR1138R2', power: `${CHASSIS}/Power` }, missing: [] });
    const second = await readWith(first.layout);
    expect(second.asked).toEqual([ROOT, `${CHASSIS}/Power`, MANAGER, SYSTEM].sort());
    expect(content(second.inv)).toEqual(content(first));
    expect(second.inv.layout).toEqual(first.layout);
  });

  it('reads the Manager every time: a BMC firmware update shows in the next read', async () => {
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

  it("keeps no layout past its bounds (a hostile BMC's kilobyte links): the next read walks the tree", async () => {
    server.setResource(CHASSIS, { ...server.resource(CHASSIS), EnvironmentMetrics: { '@odata.id': `${CHASSIS}/${'x'.repeat(2000)}` } });
    const first = await readInventory(client);
    expect(first.chassis?.environmentMetrics).toHaveLength(CHASSIS.length + 2001);
    expect(first.layout).toBeUndefined();
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
