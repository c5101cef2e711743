/**
 * The simulated Redfish service, driven by an independent client (curl), never by
 * src/redfish/: resources, sessions, actions, ETags, firmware updates and faults.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, expect } from 'vitest';
import { createMachineState, NO_FAULTS, SimMachine, type SimEvent } from '../../src/sim/machine.js';
import { startRedfishServer, type RedfishServer } from '../../src/sim/redfish-server.js';
import { withPeers } from '../helpers/peers.js';
import { waitFor } from '../helpers/wait.js';

const { describe, it } = withPeers('curl', 'openssl');

interface CurlReply {
  exitCode: number;
  status: number;
  headers: Record<string, string>;
  text: string;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  body: any;
}

interface CurlOptions {
  method?: string;
  json?: unknown;
  headers?: Record<string, string>;
  /** "user:password" for Basic */
  basic?: string;
  token?: string;
  form?: string[];
  maxTimeS?: number;
}

/** One request with curl; exitCode is curl's (0, or 7 refused, 28 timeout, 35/56 TLS/reset). */
function curl(url: string, options: CurlOptions = {}): Promise<CurlReply> {
  const args = ['-sk', '-i', '-H', 'Expect:', '--max-time', String(options.maxTimeS ?? 10)];
  if (options.method !== undefined) args.push('-X', options.method);
  if (options.basic !== undefined) args.push('-u', options.basic);
  if (options.token !== undefined) args.push('-H', `X-Auth-Token: ${options.token}`);
  for (const [k, v] of Object.entries(options.headers ?? {})) args.push('-H', `${k}: ${v}`);
  if (options.json !== undefined) args.push('-H', 'Content-Type: application/json', '--data-binary', JSON.stringify(options.json));
  for (const f of options.form ?? []) args.push('-F', f);
  args.push(url);
  return new Promise((resolve) => {
    execFile('curl', args, { encoding: 'utf8', maxBuffer: 16 << 20 }, (err, stdout) => {
      const exitCode = err === null ? 0 : typeof err.code === 'number' ? err.code : -1;
      const split = stdout.indexOf('\r\n\r\n');
      const head = split < 0 ? stdout : stdout.slice(0, split);
      const text = split < 0 ? '' : stdout.slice(split + 4);
      const [statusLine = '', ...lines] = head.split('\r\n');
      const headers: Record<string, string> = {};
      for (const line of lines) {
        const colon = line.indexOf(':');
        if (colon > 0) headers[line.slice(0, colon).toLowerCase()] = line.slice(colon + 1).trim();
      }
      let body: unknown;
      try {
        body = text === '' ? undefined : JSON.parse(text);
      } catch {
        body = undefined;
      }
      resolve({ exitCode, status: Number(statusLine.split(' ')[1] ?? 0), headers, text, body });
    });
  });
}

const USER = 'ADMIN';
const PASSWORD = 'sim-secret';
const BASIC = `${USER}:${PASSWORD}`;
const CIDR = '127.42.0.0/16';

/** The first machine of each vendor among the first indices of seed "redfish-test". */
function fleet(): SimMachine[] {
  const byVendor = new Map<string, SimMachine>();
  for (let i = 0; byVendor.size < 3 && i < 100; i++) {
    const state = createMachineState('redfish-test', i, CIDR);
    // the standard behaviour each vendor profile shows; the variants' quirks have their own matrix (quirk-matrix-redfish)
    state.quirks.clear();
    if (!byVendor.has(state.manufacturer)) byVendor.set(state.manufacturer, new SimMachine(state));
  }
  return ['Supermicro', 'Lenovo', 'Gigabyte'].map((v) => byVendor.get(v) as SimMachine);
}

describe('simulated Redfish service (single listener, routed by local address)', () => {
  const machines = fleet();
  const [supermicro, lenovo, gigabyte] = machines as [SimMachine, SimMachine, SimMachine];
  let server: RedfishServer;
  const url = (m: SimMachine, path: string): string => `${server.url(machines.indexOf(m))}${path}`;
  /** Polls a task monitor until the task no longer runs. */
  async function finished(m: SimMachine, monitor: string): Promise<CurlReply> {
    let r = await curl(url(m, monitor), { basic: BASIC });
    await waitFor(async () => (r = await curl(url(m, monitor), { basic: BASIC })).body?.TaskState !== 'Running', 20_000, `task ${monitor} to finish`, 50);
    return r;
  }

  beforeAll(async () => {
    // tasks run 4 s: the test reads a task as Running one curl round trip after starting it, which
    // must hold on a loaded machine too (time is the stimulus; finished() waits for the end)
    server = await startRedfishServer({ machines, port: 0, user: USER, password: PASSWORD, perMachineBind: false, taskDurationMs: 4000 });
  });
  afterAll(async () => {
    await server.close();
  });
  beforeEach(() => {
    for (const m of machines) m.state.faults = { ...NO_FAULTS };
  });

  it('walks service root → Systems → Managers → Chassis with the machine’s own values', async () => {
    for (const m of machines) {
      const { state } = m;
      const root = await curl(url(m, '/redfish/v1/'));
      expect(root.status).toBe(200);
      expect(root.body.Vendor).toBe(state.manufacturer);
      expect(root.body.UUID).not.toBe(state.uuid);
      const systems = await curl(url(m, root.body.Systems['@odata.id']), { basic: BASIC });
      expect(systems.body['Members@odata.count']).toBe(1);
      const sysPath: string = systems.body.Members[0]['@odata.id'];
      const sys = await curl(url(m, sysPath), { basic: BASIC });
      expect(sys.status).toBe(200);
      expect(sys.headers.etag).toBe(sys.body['@odata.etag']);
      expect(sys.body.UUID.toLowerCase()).toBe(state.uuid);
      expect(sys.body).toMatchObject({ Manufacturer: state.manufacturer, Model: state.model, BiosVersion: state.biosVersion });
      expect(sys.body).toMatchObject({ SerialNumber: state.fru.productSerial, PartNumber: state.fru.productPartNumber });
      expect(sys.body.PowerState).toBe(state.power === 'on' ? 'On' : 'Off');
      expect(sys.body.Boot['BootSourceOverrideTarget@Redfish.AllowableValues']).toEqual(['None', 'Pxe', 'Hdd', 'BiosSetup']);
      const mgr = await curl(url(m, sys.body.Links.ManagedBy[0]['@odata.id']), { basic: BASIC });
      expect(mgr.body.FirmwareVersion).toBe(state.bmcVersion);
      const managers = await curl(url(m, '/redfish/v1/Managers'), { basic: BASIC });
      expect(managers.body.Members[0]['@odata.id']).toBe(mgr.body['@odata.id']);
      const chassisPath: string = sys.body.Links.Chassis[0]['@odata.id'];
      const chassis = await curl(url(m, chassisPath), { basic: BASIC });
      expect(chassis.body).toMatchObject({ Manufacturer: state.manufacturer, PartNumber: state.fru.chassisPartNumber, SerialNumber: state.fru.chassisSerial });
      const sub = await curl(url(m, chassis.body.PowerSubsystem['@odata.id']), { basic: BASIC });
      const supplies = await curl(url(m, sub.body.PowerSupplies['@odata.id']), { basic: BASIC });
      expect(supplies.body['Members@odata.count']).toBe(state.powerSupplies.length);
      for (const [i, member] of (supplies.body.Members as { '@odata.id': string }[]).entries()) {
        const psu = await curl(url(m, member['@odata.id']), { basic: BASIC });
        const want = state.powerSupplies[i];
        expect(psu.body.Status).toEqual({ State: want?.state, Health: want?.health });
      }
    }
  });

  it('varies per vendor: UUID case, ids, LED property, Power vs PowerSubsystem, reset types', async () => {
    const sm = (await curl(url(supermicro, '/redfish/v1/Systems/1'), { basic: BASIC })).body;
    expect(sm.UUID).toBe(supermicro.state.uuid.toUpperCase());
    expect(sm.IndicatorLED).toBe('Off');
    expect(sm.LocationIndicatorActive).toBeUndefined();
    expect(sm.Actions['#ComputerSystem.Reset']['ResetType@Redfish.AllowableValues']).toContain('PowerCycle');

    const lv = (await curl(url(lenovo, '/redfish/v1/Systems/1'), { basic: BASIC })).body;
    expect(lv.UUID).toBe(lenovo.state.uuid);
    expect(lv.IndicatorLED).toBeUndefined();
    expect(lv.LocationIndicatorActive).toBe(false);
    const info = await curl(url(lenovo, lv.Actions['#ComputerSystem.Reset']['@Redfish.ActionInfo']), { basic: BASIC });
    expect(info.body.Parameters[0].AllowableValues).toContain('PowerCycle');

    const gb = (await curl(url(gigabyte, '/redfish/v1/Systems/Self'), { basic: BASIC })).body;
    expect(gb.Actions['#ComputerSystem.Reset']['ResetType@Redfish.AllowableValues']).not.toContain('PowerCycle');
    const gbChassis = (await curl(url(gigabyte, '/redfish/v1/Chassis/Self'), { basic: BASIC })).body;
    expect(gbChassis.Power).toBeUndefined();
    expect((await curl(url(gigabyte, '/redfish/v1/Chassis/Self/Power'), { basic: BASIC })).status).toBe(404);
    const env = await curl(url(gigabyte, gbChassis.EnvironmentMetrics['@odata.id']), { basic: BASIC });
    expect(env.body.PowerWatts.Reading).toBe(gigabyte.state.powerWatts.average);

    const power = (await curl(url(supermicro, '/redfish/v1/Chassis/1/Power'), { basic: BASIC })).body;
    const { average, min, max } = supermicro.state.powerWatts;
    expect(power.PowerControl[0].PowerConsumedWatts).toBe(average);
    expect(power.PowerControl[0].PowerMetrics).toEqual({ IntervalInMin: 1, MinConsumedWatts: min, MaxConsumedWatts: max, AverageConsumedWatts: average });
    expect(power.PowerSupplies.map((p: { Status: unknown }) => p.Status)).toEqual(supermicro.state.powerSupplies.map((p) => ({ State: p.state, Health: p.health })));
  });

  it('creates, lists and deletes a session; the token authenticates', async () => {
    expect(server.openSessions(0)).toBe(0);
    const login = await curl(url(supermicro, '/redfish/v1/SessionService/Sessions'), { method: 'POST', json: { UserName: USER, Password: PASSWORD } });
    expect(login.status).toBe(201);
    const token = login.headers['x-auth-token'] as string;
    expect(token).toMatch(/^[0-9a-f]{32}$/);
    expect(login.headers.location).toBe(login.body['@odata.id']);
    expect(server.openSessions(0)).toBe(1);
    const list = await curl(url(supermicro, '/redfish/v1/SessionService/Sessions'), { token });
    expect(list.body.Members).toEqual([{ '@odata.id': login.headers.location }]);
    expect((await curl(url(supermicro, '/redfish/v1/Systems/1'), { token })).status).toBe(200);
    expect((await curl(url(supermicro, login.headers.location as string), { method: 'DELETE', token })).status).toBe(204);
    expect(server.openSessions(0)).toBe(0);
    expect((await curl(url(supermicro, '/redfish/v1/Systems/1'), { token })).status).toBe(401);
  });

  it('answers 401 with a Redfish error body for a wrong password, no credentials, or wrongCredentials', async () => {
    const bad = await curl(url(lenovo, '/redfish/v1/SessionService/Sessions'), { method: 'POST', json: { UserName: USER, Password: 'nope' } });
    expect(bad.status).toBe(401);
    expect(bad.body.error.code).toBe('Base.1.8.GeneralError');
    expect(bad.body.error['@Message.ExtendedInfo'][0].MessageId).toMatch(/^Base\.1\.8\./);
    expect((await curl(url(lenovo, '/redfish/v1/Systems/1'), { basic: `${USER}:nope` })).status).toBe(401);
    const none = await curl(url(lenovo, '/redfish/v1/Systems/1'));
    expect(none.status).toBe(401);
    expect(none.body.error.message).toEqual(expect.any(String));
    lenovo.state.faults.wrongCredentials = true;
    expect((await curl(url(lenovo, '/redfish/v1/SessionService/Sessions'), { method: 'POST', json: { UserName: USER, Password: PASSWORD } })).status).toBe(401);
    expect((await curl(url(lenovo, '/redfish/v1/Systems/1'), { basic: BASIC })).status).toBe(401);
    expect(server.openSessions(1)).toBe(0);
  });

  it('resets the system through SimMachine, and refuses reset types the vendor lacks', async () => {
    const events: SimEvent[] = [];
    gigabyte.on('change', (e) => events.push(e));
    const target = '/redfish/v1/Systems/Self/Actions/ComputerSystem.Reset';
    expect((await curl(url(gigabyte, target), { method: 'POST', basic: BASIC, json: { ResetType: 'ForceOff' } })).status).toBe(204);
    expect(gigabyte.state.power).toBe('off');
    expect((await curl(url(gigabyte, '/redfish/v1/Systems/Self'), { basic: BASIC })).body.PowerState).toBe('Off');
    expect((await curl(url(gigabyte, target), { method: 'POST', basic: BASIC, json: { ResetType: 'On' } })).status).toBe(204);
    expect(gigabyte.state.power).toBe('on');
    expect(events.filter((e) => e.kind === 'power')).toEqual([
      { kind: 'power', power: 'off', action: 'ForceOff' },
      { kind: 'power', power: 'on', action: 'On' },
    ]);
    const cycle = await curl(url(gigabyte, target), { method: 'POST', basic: BASIC, json: { ResetType: 'PowerCycle' } });
    expect(cycle.status).toBe(400);
    expect(cycle.body.error['@Message.ExtendedInfo'][0].MessageId).toBe('Base.1.8.ActionParameterValueNotInList');
    expect((await curl(url(gigabyte, target), { method: 'POST', basic: BASIC, json: {} })).status).toBe(400);
  });

  it('sets a boot override and the LED by PATCH with If-Match; a stale ETag gets 412', async () => {
    const path = '/redfish/v1/Systems/1';
    const before = await curl(url(supermicro, path), { basic: BASIC });
    const etag = before.headers.etag as string;
    const events: SimEvent[] = [];
    supermicro.on('change', (e) => events.push(e));
    const boot = { Boot: { BootSourceOverrideTarget: 'Pxe', BootSourceOverrideEnabled: 'Once', BootSourceOverrideMode: 'UEFI' } };
    const patched = await curl(url(supermicro, path), { method: 'PATCH', basic: BASIC, headers: { 'If-Match': etag }, json: boot });
    expect(patched.status).toBe(200);
    expect(supermicro.state).toMatchObject({ boot: 'pxe', bootPersistent: false, bootUefi: true });
    expect(events).toEqual([{ kind: 'boot', boot: 'pxe', persistent: false, uefi: true }]);
    expect(patched.body.Boot).toMatchObject({ BootSourceOverrideTarget: 'Pxe', BootSourceOverrideEnabled: 'Once' });
    expect(patched.headers.etag).not.toBe(etag);

    const stale = await curl(url(supermicro, path), { method: 'PATCH', basic: BASIC, headers: { 'If-Match': etag }, json: { Boot: { BootSourceOverrideTarget: 'Hdd' } } });
    expect(stale.status).toBe(412);
    expect(stale.body.error['@Message.ExtendedInfo'][0].MessageId).toBe('Base.1.8.PreconditionFailed');
    expect(supermicro.state.boot).toBe('pxe');

    const persistent = { Boot: { BootSourceOverrideTarget: 'Hdd', BootSourceOverrideEnabled: 'Continuous', BootSourceOverrideMode: 'Legacy' } };
    expect((await curl(url(supermicro, path), { method: 'PATCH', basic: BASIC, headers: { 'If-Match': patched.headers.etag as string }, json: persistent })).status).toBe(200);
    expect(supermicro.state).toMatchObject({ boot: 'disk', bootPersistent: true, bootUefi: false });
    const invalid = await curl(url(supermicro, path), { method: 'PATCH', basic: BASIC, json: { Boot: { BootSourceOverrideTarget: 'Floppy' } } });
    expect(invalid.status).toBe(400);
    expect((await curl(url(supermicro, path), { method: 'PATCH', basic: BASIC, json: { IndicatorLED: 'Lit' } })).status).toBe(200);
    expect(supermicro.state.identify).toBe(true);
    expect((await curl(url(supermicro, path), { method: 'PATCH', basic: BASIC, json: { LocationIndicatorActive: true } })).status).toBe(400);
    expect((await curl(url(supermicro, path), { method: 'PATCH', basic: BASIC, json: { Boot: { BootSourceOverrideEnabled: 'Disabled' }, IndicatorLED: 'Off' } })).status).toBe(200);
    expect(supermicro.state).toMatchObject({ boot: 'none', identify: false });

    // Lenovo-like: only LocationIndicatorActive, and If-Match is required
    const lv = await curl(url(lenovo, path), { basic: BASIC });
    expect((await curl(url(lenovo, path), { method: 'PATCH', basic: BASIC, json: { LocationIndicatorActive: true } })).status).toBe(428);
    expect((await curl(url(lenovo, path), { method: 'PATCH', basic: BASIC, headers: { 'If-Match': lv.headers.etag as string }, json: { LocationIndicatorActive: true } })).status).toBe(200);
    expect(lenovo.state.identify).toBe(true);
    expect((await curl(url(lenovo, path), { method: 'PATCH', basic: BASIC, headers: { 'If-Match': '*' }, json: { IndicatorLED: 'Lit' } })).status).toBe(400);
  });

  it('runs a SimpleUpdate as a task that goes Running → Completed and records the firmware', async () => {
    const events: SimEvent[] = [];
    lenovo.on('change', (e) => events.push(e));
    const svc = await curl(url(lenovo, '/redfish/v1/UpdateService'), { basic: BASIC });
    const target: string = svc.body.Actions['#UpdateService.SimpleUpdate'].target;
    const image = 'http://images.example/lenovo/xcc-8.40.bin';
    const started = await curl(url(lenovo, target), { method: 'POST', basic: BASIC, json: { ImageURI: image, Targets: ['/redfish/v1/UpdateService/FirmwareInventory/BMC'] } });
    expect(started.status).toBe(202);
    const monitor = started.headers.location as string;
    expect(monitor).toMatch(/^\/redfish\/v1\/TaskService\/Tasks\/\d+\/Monitor$/);
    const first = await curl(url(lenovo, monitor), { basic: BASIC });
    expect(first.status).toBe(202);
    expect(first.body.TaskState).toBe('Running');
    expect(first.body.PercentComplete).toBeLessThan(100);
    const last = await finished(lenovo, monitor);
    expect(last.status).toBe(200);
    expect(last.body).toMatchObject({ TaskState: 'Completed', PercentComplete: 100, TaskStatus: 'OK' });
    expect(events).toEqual([{ kind: 'firmware', target: 'bmc', uri: image }]);
    const taskPath: string = last.body['@odata.id'];
    expect((await curl(url(lenovo, taskPath), { basic: BASIC })).body.TaskState).toBe('Completed');

    const byName = await curl(url(lenovo, target), { method: 'POST', basic: BASIC, json: { ImageURI: 'https://x/bios-ive170e.bin' } });
    expect(byName.status).toBe(202);
    const unknown = await curl(url(lenovo, target), { method: 'POST', basic: BASIC, json: { ImageURI: 'https://x/image.bin' } });
    expect(unknown.status).toBe(400);
    const failing = await curl(url(lenovo, target), { method: 'POST', basic: BASIC, json: { ImageURI: 'https://x/bmc-fail.bin' } });
    await finished(lenovo, byName.headers.location as string);
    const failed = await finished(lenovo, failing.headers.location as string);
    expect(failed.body).toMatchObject({ TaskState: 'Exception', TaskStatus: 'Critical' });
    expect(events.map((e) => e.kind === 'firmware' && e.target)).toEqual(['bmc', 'bios']);
  });

  it('accepts a multipart push, counting the image bytes', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sim-redfish-'));
    try {
      const file = join(dir, 'firmware.img');
      const size = 5 * 1024 * 1024 + 13;
      writeFileSync(file, Buffer.alloc(size, 0x2d)); // "-" bytes, to tempt a sloppy boundary search
      const events: SimEvent[] = [];
      supermicro.on('change', (e) => events.push(e));
      const push = (await curl(url(supermicro, '/redfish/v1/UpdateService'), { basic: BASIC })).body.MultipartHttpPushUri as string;
      const before = server.requests.uploadedBytes;
      const params = JSON.stringify({ Targets: ['/redfish/v1/UpdateService/FirmwareInventory/BIOS'] });
      const reply = await curl(url(supermicro, push), { basic: BASIC, form: [`UpdateParameters=${params};type=application/json`, `UpdateFile=@${file};type=application/octet-stream`] });
      expect(reply.status).toBe(202);
      expect(reply.body.Messages[0].Message).toBe(`Received ${size} bytes of firmware.img`);
      expect(server.requests.uploadedBytes - before).toBe(size);
      expect((await finished(supermicro, reply.headers.location as string)).body.TaskState).toBe('Completed');
      expect(events).toEqual([{ kind: 'firmware', target: 'bios', uri: 'firmware.img' }]);
      const notMultipart = await curl(url(supermicro, push), { basic: BASIC, json: {} });
      expect(notMultipart.status).toBe(415);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('stages a push with apply time OnStartUpdateRequest behind a verify task; StartUpdate flashes it, once', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sim-redfish-'));
    try {
      const file = join(dir, 'BIOS_X12-2.3.bin');
      writeFileSync(file, Buffer.alloc(4096, 0x5a));
      const events: SimEvent[] = [];
      supermicro.on('change', (e) => events.push(e));
      const service = (await curl(url(supermicro, '/redfish/v1/UpdateService'), { basic: BASIC })).body;
      const start = service.Actions['#UpdateService.StartUpdate'].target as string;
      expect(start).toBe('/redfish/v1/UpdateService/Actions/UpdateService.StartUpdate');
      const nothing = await curl(url(supermicro, start), { basic: BASIC, json: {} });
      expect(nothing.status).toBe(400);
      const params = JSON.stringify({ Targets: ['/redfish/v1/Systems/1/Bios'], '@Redfish.OperationApplyTime': 'OnStartUpdateRequest' });
      const pushed = await curl(url(supermicro, service.MultipartHttpPushUri), { basic: BASIC, form: [`UpdateParameters=${params};type=application/json`, `UpdateFile=@${file};type=application/octet-stream`] });
      expect(pushed.status).toBe(202);
      expect(pushed.body.Name).toBe('BIOS Verify');
      expect((await finished(supermicro, pushed.headers.location as string)).body.TaskState).toBe('Completed');
      expect(events).toEqual([]);
      const started = await curl(url(supermicro, start), { basic: BASIC, json: {} });
      expect(started.status).toBe(202);
      expect((await finished(supermicro, started.headers.location as string)).body.TaskState).toBe('Completed');
      expect(events).toEqual([{ kind: 'firmware', target: 'bios', uri: 'BIOS_X12-2.3.bin' }]);
      expect((await curl(url(supermicro, start), { basic: BASIC, json: {} })).status).toBe(400);
      // a vendor without the action: the apply time is refused, the action does not exist
      const gigabytePush = (await curl(url(gigabyte, '/redfish/v1/UpdateService'), { basic: BASIC })).body.MultipartHttpPushUri as string;
      const refused = await curl(url(gigabyte, gigabytePush), { basic: BASIC, form: [`UpdateParameters=${params.replace('/redfish/v1/Systems/1/Bios', '/redfish/v1/UpdateService/FirmwareInventory/BIOS')};type=application/json`, `UpdateFile=@${file};type=application/octet-stream`] });
      expect(refused.status).toBe(400);
      expect((await curl(url(gigabyte, start), { basic: BASIC, json: {} })).status).toBe(404);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('counts requests per machine and per route; unknown paths and methods get 404 and 405', async () => {
    const before = server.requests.perMachine[2] ?? 0;
    expect((await curl(url(gigabyte, '/redfish/v1/Nope'), { basic: BASIC })).status).toBe(404);
    const wrongMethod = await curl(url(gigabyte, '/redfish/v1/Systems/Self'), { method: 'DELETE', basic: BASIC });
    expect(wrongMethod.status).toBe(405);
    expect(wrongMethod.headers.allow).toBe('GET, PATCH');
    expect(server.requests.perMachine[2]).toBe(before + 2);
    expect(server.requests.byRoute['GET system']).toBeGreaterThan(0);
  });

  describe('faults', () => {
    it('redfishStatus answers everything with that status and a Redfish error body', async () => {
      gigabyte.state.faults.redfishStatus = 503;
      const r = await curl(url(gigabyte, '/redfish/v1/'));
      expect(r.status).toBe(503);
      expect(r.body.error['@Message.ExtendedInfo'][0].MessageId).toBe('Base.1.8.ServiceTemporarilyUnavailable');
      expect((await curl(url(supermicro, '/redfish/v1/'))).status).toBe(200);
    });

    it('redfishHang and noAnswer accept the request and never answer', async () => {
      gigabyte.state.faults.redfishHang = true;
      const hung = await curl(url(gigabyte, '/redfish/v1/'), { maxTimeS: 1 });
      expect(hung.exitCode).toBe(28);
      gigabyte.state.faults = { ...NO_FAULTS, noAnswer: true };
      expect((await curl(url(gigabyte, '/redfish/v1/'), { maxTimeS: 1 })).exitCode).toBe(28);
    });

    it('redfishStraggler leaves the next request for its path unanswered, and only that one', async () => {
      gigabyte.state.faults.redfishStraggler = '/redfish/v1/Systems';
      expect((await curl(url(gigabyte, '/redfish/v1/'), { basic: BASIC })).status).toBe(200);
      expect((await curl(url(gigabyte, '/redfish/v1/Systems/'), { basic: BASIC })).status).toBe(200); // another path
      expect((await curl(url(gigabyte, '/redfish/v1/Systems?$top=1'), { basic: BASIC, maxTimeS: 1 })).exitCode).toBe(28);
      expect(gigabyte.state.faults.redfishStraggler).toBeNull();
      expect((await curl(url(gigabyte, '/redfish/v1/Systems'), { basic: BASIC })).status).toBe(200);
    });

    it('redfishDisabled answers 404 on everything in single-listener mode', async () => {
      lenovo.state.faults.redfishDisabled = true;
      expect((await curl(url(lenovo, '/redfish/v1/'))).status).toBe(404);
      expect((await curl(url(lenovo, '/redfish/v1/Systems/1'), { basic: BASIC })).status).toBe(404);
    });

    it('delayMs delays every answer', async () => {
      supermicro.state.faults.delayMs = 400;
      const t0 = Date.now();
      expect((await curl(url(supermicro, '/redfish/v1/'))).status).toBe(200);
      // time is the subject; a lower bound, which load cannot break
      expect(Date.now() - t0).toBeGreaterThanOrEqual(400);
    });
  });
});

describe('simulated Redfish service (one listener per machine)', () => {
  it('serves each machine on its own address and refuses connections while redfishDisabled', async () => {
    const machines = fleet();
    const server = await startRedfishServer({ machines, port: 0, user: USER, password: PASSWORD, perMachineBind: true, faultPollMs: 50 });
    try {
      for (const [i, m] of machines.entries()) {
        expect(server.endpoint(i).host).toBe(m.state.address);
        const root = await curl(`${server.url(i)}/redfish/v1/`);
        expect(root.body.Vendor).toBe(m.state.manufacturer);
      }
      const m = machines[1] as SimMachine;
      m.state.faults.redfishDisabled = true;
      // the listener follows the fault on its next poll (faultPollMs)
      // no answer from the machine's service: curl's 7 (refused), or, when another process of the
      // test run bound the freed port number on a wildcard address meanwhile, 35 (its TLS is not ours)
      const unanswered = (code: number) => code === 7 || code === 35;
      await waitFor(async () => unanswered((await curl(`${server.url(1)}/redfish/v1/`, { maxTimeS: 2 })).exitCode), 10_000, 'the listener to close', 50);
      const refused = await curl(`${server.url(1)}/redfish/v1/`, { maxTimeS: 2 });
      expect(unanswered(refused.exitCode), `curl exit code ${refused.exitCode}`).toBe(true);
      expect((await curl(`${server.url(0)}/redfish/v1/`)).status).toBe(200);
      m.state.faults.redfishDisabled = false;
      await waitFor(async () => (await curl(`${server.url(1)}/redfish/v1/`, { maxTimeS: 2 })).exitCode === 0, 10_000, 'the listener to reopen', 50);
      expect((await curl(`${server.url(1)}/redfish/v1/`)).status).toBe(200);
    } finally {
      await server.close();
    }
  });
});

describe('simulated Redfish service (lifecycle)', () => {
  it('a one-machine fleet answers on any local address; close() drops hanging requests at once', async () => {
    const machine = new SimMachine(createMachineState('redfish-test', 0, CIDR));
    const server = await startRedfishServer({ machines: [machine], port: 0, user: USER, password: PASSWORD, perMachineBind: false, host: '127.0.0.1' });
    const base = `https://127.0.0.1:${server.endpoint(0).port}`;
    expect((await curl(`${base}/redfish/v1/`)).body.Vendor).toBe(machine.state.manufacturer);
    machine.state.faults.redfishHang = true;
    const before = server.requests.total;
    const hanging = curl(`${base}/redfish/v1/`, { maxTimeS: 10 });
    await waitFor(() => server.requests.total > before, 10_000, 'the hanging request to arrive');
    const t0 = Date.now();
    await server.close();
    const r = await hanging;
    // time is the subject (dropped at once, not when curl gives up after 10 s): a 5 s bound leaves
    // room for a loaded machine; the exit code below tells a drop from curl's own timeout
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(r.exitCode).not.toBe(0);
    expect(r.exitCode).not.toBe(28); // dropped, not timed out
    expect((await curl(`${base}/redfish/v1/`, { maxTimeS: 2 })).exitCode).toBe(7);
  });
});
