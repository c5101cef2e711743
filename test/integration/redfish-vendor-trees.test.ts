/**
 * The facade on Redfish trees recorded from real BMCs (test/fixtures/redfish-vendors/, each with
 * its SOURCE.md): every tree is served over HTTPS with sessions, and every field `info()` reports
 * (the path of `metal-bmc bmc info --protocol redfish`), the boot override, the reset target and
 * the firmware update target are compared with the values the test reads from the tree's JSON
 * itself, following the tree's own links. No session may be left open.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect } from 'vitest';
import { connectOutband, type FacadeOutband } from '../../src/outband/connect.js';
import type { BmcReport, BootOverride } from '../../src/outband/types.js';
import type { Vendor } from '../../src/outband/vendors.js';
import { runCli } from '../helpers/cli.js';
import { startMockupServer, type MockupServer } from '../helpers/redfish-mockup-server.js';
import { withPeers } from '../helpers/peers.js';

const { describe, it } = withPeers('openssl');

const VENDOR_TREES = fileURLToPath(new URL('../fixtures/redfish-vendors/', import.meta.url));

type Json = Record<string, unknown>;

interface TreeCase {
  dir: string;
  /** the vendor the facade must detect (a judgement about the machine, not a value of the tree) */
  vendor: Vendor;
  /** what the recorded tree lacks, each of which the report must name in `missing` (and nothing else) */
  missing: RegExp[];
  /** the firmware update path the facade must take with this tree, or the error it must give */
  update: 'simple-update' | 'multipart-push' | RegExp;
}

const TREES: TreeCase[] = [
  { dir: 'hpe-dl325-gen10plus-ilo5', vendor: 'hpe', missing: [], update: 'simple-update' },
  { dir: 'hpe-xl675d-gen10plus-ilo5', vendor: 'hpe', missing: [], update: 'simple-update' },
  { dir: 'gigabyte-h262-z63-ami', vendor: 'gigabyte', missing: [], update: 'simple-update' },
  { dir: 'dell-r640-idrac9', vendor: 'dell', missing: [], update: /no UpdateService/ },
  { dir: 'supermicro-x13-sys-821ge-tnhr', vendor: 'supermicro', missing: [/^PowerMetric: GET \/redfish\/v1\/Chassis\/1\/Power: HTTP 404/, /^PowerSupplies: \/redfish\/v1\/Chassis\/1\/Power could not be read/], update: 'multipart-push' },
  { dir: 'intel-s2600bpb', vendor: 'unknown', missing: [], update: 'simple-update' },
  { dir: 'lenovo-sr650-xcc-bmclib', vendor: 'lenovo', missing: [/^IndicatorLED: neither system nor chassis/, /^IndicatorLED: neither Redfish nor IPMI/], update: 'simple-update' },
];

/** A resource of a tree by its Redfish path, as recorded; undefined when not recorded or recorded as an error. */
function reader(dir: string): (path: string | undefined) => Json | undefined {
  return (path) => {
    if (path === undefined) return undefined;
    const rel = path.replace(/^\/redfish\/v1/, '').replace(/^\/|\/$/g, '');
    const file = join(VENDOR_TREES, dir, 'redfish', 'v1', rel, 'index.json');
    if (!existsSync(file)) return undefined;
    const json = JSON.parse(readFileSync(file, 'utf8')) as Json;
    return json['@odata.id'] === undefined && json.error !== undefined ? undefined : json;
  };
}

const obj = (v: unknown): Json | undefined => (typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Json) : undefined);
const id = (v: unknown): string | undefined => {
  const x = obj(v)?.['@odata.id'];
  return typeof x === 'string' ? x : undefined;
};
const text = (v: unknown): string | undefined => (typeof v === 'string' && v.trim() !== '' ? v : undefined);
/** A path as the test server records requests: no trailing slash (iLO writes `/redfish/v1/Systems/1/`). */
const bare = (path: string): string => path.replace(/\/+$/, '');
const firstLink = (v: unknown): string | undefined => (Array.isArray(v) ? id(v[0]) : undefined);

/** The resources the report is built from, found by following the tree's own links. */
function treeView(dir: string) {
  const get = reader(dir);
  const root = get('/redfish/v1')!;
  const systemPath = firstLink(get(id(root.Systems))?.Members)!;
  const system = get(systemPath)!;
  const links = obj(system.Links) ?? {};
  const managerPath = firstLink(links.ManagedBy) ?? firstLink(get(id(root.Managers))?.Members);
  const linkedChassis = firstLink(links.Chassis) ?? firstLink(get(id(root.Chassis))?.Members);
  // a linked chassis the BMC does not serve: the collection's chassis that names this System
  const chassisPath =
    get(linkedChassis) !== undefined
      ? linkedChassis
      : ((get(id(root.Chassis))?.Members as unknown[] | undefined) ?? []).map(id).find((c) => ((get(c)?.Links as Json | undefined)?.ComputerSystems as unknown[] | undefined)?.some((s) => bare(id(s) ?? '') === bare(systemPath)));
  const chassis = get(chassisPath);
  const power = get(id(chassis?.Power));
  const updateService = get(id(root.UpdateService));
  return { get, root, systemPath, system, manager: get(managerPath), managerPath, chassisPath, chassis, power, updateService };
}

/** metal-api's FRU fields from Redfish, as go-hal maps them: board from the chassis, product from the system. */
function expectedFru(system: Json, chassis: Json | undefined): Record<string, string> {
  const c = chassis ?? {};
  const fru: Record<string, string | undefined> = {
    board_mfg: text(c.Manufacturer),
    board_mfg_serial: text(c.SerialNumber),
    board_part_number: text(c.Model) ?? text(c.PartNumber),
    chassis_part_number: text(c.PartNumber),
    chassis_part_serial: text(c.SerialNumber),
    product_manufacturer: text(system.Manufacturer),
    product_part_number: text(system.PartNumber),
    product_serial: text(system.SerialNumber),
  };
  return Object.fromEntries(Object.entries(fru).filter(([, v]) => v !== undefined)) as Record<string, string>;
}

function expectedLed(system: Json, chassis: Json | undefined): string {
  const active = system.LocationIndicatorActive ?? chassis?.LocationIndicatorActive;
  if (typeof active === 'boolean') return active ? 'LED-ON' : 'LED-OFF';
  const led = system.IndicatorLED ?? chassis?.IndicatorLED;
  return ({ Lit: 'LED-ON', Blinking: 'LED-ON', Off: 'LED-OFF' } as Record<string, string>)[String(led)] ?? 'UNKNOWN';
}

function expectedPowerMetric(power: Json | undefined) {
  const control = obj((power?.PowerControl as unknown[] | undefined)?.[0]);
  const m = obj(control?.PowerMetrics);
  const average = (m?.AverageConsumedWatts ?? control?.PowerConsumedWatts) as number | undefined;
  if (average === undefined) return undefined;
  return {
    averageconsumedwatts: average,
    minconsumedwatts: (m?.MinConsumedWatts as number | undefined) ?? average,
    maxconsumedwatts: (m?.MaxConsumedWatts as number | undefined) ?? average,
    intervalinmin: (m?.IntervalInMin as number | undefined) ?? 1,
  };
}

function expectedSupplies(power: Json | undefined) {
  return ((power?.PowerSupplies as unknown[] | undefined) ?? []).map((p) => {
    const status = obj(obj(p)?.Status);
    return { status: { health: (status?.Health as string | undefined) ?? '', state: (status?.State as string | undefined) ?? '' } };
  });
}

let image: { url: string; bytes: number; close(): void };
beforeAll(async () => {
  const body = Buffer.alloc(64 * 1024, 0x5a);
  const server = createServer((_req, res) => res.writeHead(200, { 'content-length': body.length }).end(body));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  image = { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/firmware/image.bin`, bytes: body.length, close: () => server.close() };
});
afterAll(() => image.close());

async function serve(dir: string): Promise<MockupServer> {
  return startMockupServer({ tree: join(VENDOR_TREES, dir, 'redfish', 'v1'), taskSteps: 1 });
}

function connect(m: MockupServer): Promise<FacadeOutband> {
  return connectOutband({ host: m.host, redfishPort: m.port, user: m.user, password: m.password, protocol: 'redfish', timeoutMs: 10_000 });
}

/** Every session the facade opened was logged in with POST and closed with DELETE, and none is open. */
function sessionsClosed(m: MockupServer): void {
  const logins = m.requests.filter((r) => r.method === 'POST' && r.path === '/redfish/v1/SessionService/Sessions').length;
  const logouts = m.requests.filter((r) => r.method === 'DELETE' && r.path.startsWith('/redfish/v1/SessionService/Sessions/')).length;
  expect(logins).toBeGreaterThan(0);
  expect(logouts).toBe(logins);
  expect(m.sessionCount()).toBe(0);
}

type View = ReturnType<typeof treeView>;

/** The report against the tree's JSON: every field, and `missing` naming exactly what the tree lacks. */
function checkReport(report: BmcReport, view: View, tree: TreeCase): void {
  const { system, manager, chassis, power } = view;
  expect(report.source).toBe('redfish');
  expect(report.uuid).toBe(String(system.UUID).toLowerCase());
  expect(report.bmcVersion).toBe(text(manager?.FirmwareVersion) ?? '');
  expect(report.biosVersion).toBe(system.BiosVersion);
  expect(report.powerState).toBe(({ On: 'ON', Off: 'OFF' } as Record<string, string>)[String(system.PowerState)] ?? 'UNKNOWN');
  expect(report.indicatorLED).toBe(expectedLed(system, chassis));
  expect(report.fru).toEqual(expectedFru(system, chassis));
  expect(report.powerMetric).toEqual(expectedPowerMetric(power));
  expect(report.powerSupplies).toEqual(expectedSupplies(power));
  for (const re of tree.missing) expect(report.missing.some((x) => re.test(x)), `missing has ${re}: ${report.missing.join(' | ')}`).toBe(true);
  expect(report.missing.length, report.missing.join(' | ')).toBe(tree.missing.length);
}

/** The boot override against the System's Boot. */
function checkBoot(boot: BootOverride, view: View): void {
  const b = obj(view.system.Boot) ?? {};
  const enabled = (b.BootSourceOverrideEnabled as string | undefined) ?? 'Disabled';
  const target = (b.BootSourceOverrideTarget as string | undefined) ?? 'None';
  const off = enabled === 'Disabled' || target === 'None';
  expect(boot.source).toBe('redfish');
  expect(boot.target).toBe(off ? 'NONE' : (({ Pxe: 'PXE', Hdd: 'DISK', BiosSetup: 'BIOS' } as Record<string, string>)[target] ?? 'OTHER'));
  expect(boot.persistent).toBe(!off && enabled === 'Continuous');
  expect(boot.uefi).toBe(b.BootSourceOverrideMode !== 'Legacy');
  expect(boot.bootOrder).toEqual(b.BootOrder);
}

describe.each(TREES)('recorded tree $dir', (tree) => {
  const view = treeView(tree.dir);

  it('info(): every field as the tree records it, the vendor detected, what is absent named, no session left', async () => {
    const m = await serve(tree.dir);
    try {
      const bmc = await connect(m);
      const report = await bmc.info();
      await bmc.close();
      expect(bmc.vendor).toBe(tree.vendor);
      checkReport(report, view, tree);
      sessionsClosed(m);
    } finally {
      await m.close();
    }
  });

  it('boot override read back as the System records it', async () => {
    const m = await serve(tree.dir);
    try {
      const bmc = await connect(m);
      const boot = await bmc.bootOverride();
      await bmc.close();
      checkBoot(boot, view);
      sessionsClosed(m);
    } finally {
      await m.close();
    }
  });

  it('`metal-bmc bmc info --protocol redfish --json` prints the same fields and leaves no session open', async () => {
    const m = await serve(tree.dir);
    try {
      const r = await runCli(['bmc', 'info', '--address', m.host, '--redfish-port', String(m.port), '--protocol', 'redfish', '--user', m.user, '--password', m.password, '--json'], { timeoutMs: 60_000 });
      expect(r.code, r.stderr).toBe(0);
      const printed = JSON.parse(r.stdout) as BmcReport & { vendor: string; bootOverride: BootOverride };
      expect(printed.vendor).toBe(tree.vendor);
      checkReport(printed, view, tree);
      checkBoot(printed.bootOverride, view);
      sessionsClosed(m);
    } finally {
      await m.close();
    }
  });

  it('power off and on go to the reset target the System names', async () => {
    const m = await serve(tree.dir);
    try {
      const bmc = await connect(m);
      await bmc.powerOff();
      await bmc.powerOn();
      await bmc.close();
      const target = bare(obj(obj(view.system.Actions)?.['#ComputerSystem.Reset'])?.target as string);
      const posts = m.requests.filter((r) => r.method === 'POST' && r.path !== '/redfish/v1/SessionService/Sessions');
      expect(posts.map((r) => [r.path, r.body])).toEqual([
        [target, { ResetType: 'ForceOff' }],
        [target, { ResetType: 'On' }],
      ]);
      expect(m.resource(view.systemPath)?.PowerState).toBe('On');
      sessionsClosed(m);
    } finally {
      await m.close();
    }
  });

  it('identify LED on is patched where the tree has an LED property (System first, then its chassis)', async () => {
    const m = await serve(tree.dir);
    try {
      const bmc = await connect(m);
      const done = bmc.identify(true);
      // the rule, read from the tree: LocationIndicatorActive before IndicatorLED, the System before its chassis
      const ledBody = (r: Json | undefined) =>
        r?.LocationIndicatorActive !== undefined ? { LocationIndicatorActive: true } : r?.IndicatorLED !== undefined ? { IndicatorLED: 'Lit' } : undefined;
      const expected =
        ledBody(view.system) !== undefined ? [bare(view.systemPath), ledBody(view.system)] : ledBody(view.chassis) !== undefined ? [bare(view.chassisPath!), ledBody(view.chassis)] : undefined;
      if (expected === undefined) await expect(done).rejects.toThrow(/neither the system nor its chassis has LocationIndicatorActive or IndicatorLED/);
      else await done;
      await bmc.close();
      const patches = m.requests.filter((r) => r.method === 'PATCH').map((r) => [r.path, r.body]);
      expect(patches).toEqual(expected === undefined ? [] : [expected]);
      sessionsClosed(m);
    } finally {
      await m.close();
    }
  });

  it('firmware update goes to the UpdateService the tree records, targeting the System (BIOS)', async () => {
    const m = await serve(tree.dir);
    try {
      const bmc = await connect(m);
      const done = bmc.updateFirmware('bios', image.url);
      if (tree.update instanceof RegExp) {
        await expect(done).rejects.toThrow(tree.update);
      } else {
        await done;
        const service = view.updateService!;
        if (tree.update === 'simple-update') {
          const target = bare(obj(obj(service.Actions)?.['#UpdateService.SimpleUpdate'])?.target as string);
          const post = m.requests.find((r) => r.method === 'POST' && r.path === target);
          expect(post?.body).toEqual({ ImageURI: image.url, Targets: [view.systemPath] });
          expect(m.uploads).toHaveLength(0);
        } else {
          expect(m.requests.some((r) => r.method === 'POST' && r.path === bare(service.MultipartHttpPushUri as string))).toBe(true);
          expect(m.uploads).toHaveLength(1);
          expect(m.uploads[0]!.body.includes(`"${view.systemPath}/Bios"`)).toBe(true);
          // a tree that lists StartUpdate (Supermicro X13) is pushed OnStartUpdateRequest, then StartUpdate is posted
          const start = bare((obj(obj(service.Actions)?.['#UpdateService.StartUpdate'])?.target as string | undefined) ?? '');
          expect(m.uploads[0]!.body.includes('"@Redfish.OperationApplyTime":"OnStartUpdateRequest"')).toBe(start !== '');
          expect(m.requests.filter((r) => r.method === 'POST' && r.path === start)).toHaveLength(start === '' ? 0 : 1);
        }
      }
      await bmc.close();
      sessionsClosed(m);
    } finally {
      await m.close();
    }
  });
});
