import { afterEach, expect, vi } from 'vitest';
import { BmcError, NotSentError, PartlyActedError, showsNotActed } from '../../src/errors.js';
import { captureLog } from '../helpers/log.js';
import { httpError } from '../../src/redfish/http-errors.js';
import { openRedfish, readBootOptions, reset, setBootOrder, setBootOverride, setIndicator, type ActionClient, type RedfishClient } from '../../src/redfish/index.js';
import { parseSystem } from '../../src/redfish/parse.js';
import { waitFor } from '../helpers/wait.js';
import { offWaitMs, ON_RESERVE_MS } from '../../src/redfish/actions.js';
import { NotAppliedError } from '../../src/redfish/patch-answer.js';
import { startMockupServer, type MockupServer, type MockupServerOptions } from '../helpers/redfish-mockup-server.js';
import { withPeers } from '../helpers/peers.js';

const { describe, it } = withPeers('openssl');

const SYSTEM = '/redfish/v1/Systems/437XR1138R2';
const RESET = `${SYSTEM}/Actions/ComputerSystem.Reset`;
const CHASSIS = '/redfish/v1/Chassis/1U';

let server: MockupServer | undefined;
let client: RedfishClient | undefined;

async function setup(options: MockupServerOptions = {}): Promise<{ server: MockupServer; client: RedfishClient }> {
  server = await startMockupServer(options);
  client = await openRedfish({ host: server.host, port: server.port, user: server.user, password: server.password });
  return { server, client };
}

afterEach(async () => {
  await client?.close();
  if (server !== undefined) expect(server.sessionCount()).toBe(0); // the fake-client tests start none
  await server?.close();
  server = undefined;
  client = undefined;
});

const posts = (s: MockupServer, path: string): unknown[] => s.requests.filter((r) => r.method === 'POST' && r.path === path).map((r) => r.body);
const patches = (s: MockupServer): { path: string; body: unknown; ifMatch: unknown }[] =>
  s.requests.filter((r) => r.method === 'PATCH').map((r) => ({ path: r.path, body: r.body, ifMatch: r.headers['if-match'] }));

function setPowerState(s: MockupServer, state: string): void {
  (s.resource(SYSTEM) as Record<string, unknown>).PowerState = state;
}

function allowResets(s: MockupServer, values: string[]): void {
  const system = s.resource(SYSTEM) as { Actions: Record<string, Record<string, unknown>> };
  (system.Actions['#ComputerSystem.Reset'] as Record<string, unknown>)['ResetType@Redfish.AllowableValues'] = values;
}

describe('reset', () => {
  it.each(['On', 'ForceOff', 'GracefulShutdown', 'ForceRestart'] as const)('%s posts the ResetType to the action target', async (type) => {
    const { server, client } = await setup();
    if (type === 'On') setPowerState(server, 'Off');
    await reset(client, type);
    expect(posts(server, RESET)).toEqual([{ ResetType: type }]);
    expect(server.resource(SYSTEM)?.PowerState).toBe(type === 'ForceOff' || type === 'GracefulShutdown' ? 'Off' : 'On');
  });

  it.each([
    ['On', 'On'],
    ['On', 'PoweringOn'],
    ['ForceOff', 'Off'],
    ['GracefulShutdown', 'Off'],
    ['ForceOff', 'PoweringOff'],
  ] as const)('%s on a system whose PowerState is %s sends nothing (iDRAC answers 409 to it)', async (type, state) => {
    const { server, client } = await setup();
    setPowerState(server, state);
    await reset(client, type);
    expect(posts(server, RESET)).toEqual([]);
  });

  it.each(['ForceRestart', 'PowerCycle'] as const)('%s of a system that is off posts On, even when the BMC allows it (iLO refuses it then)', async (type) => {
    const { server, client } = await setup();
    allowResets(server, ['On', 'ForceOff', 'ForceRestart', 'PowerCycle']);
    setPowerState(server, 'Off');
    await reset(client, type);
    expect(posts(server, RESET)).toEqual([{ ResetType: 'On' }]);
  });

  it('a read before the reset is posted that fails (HTTP 500 to the System) is NotSentError: the BMC did nothing yet', async () => {
    const { server, client } = await setup();
    server.addFault({ method: 'GET', path: SYSTEM, fault: { kind: 'status', status: 500 } });
    const err = await reset(client, 'ForceRestart', { systemPath: SYSTEM }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NotSentError);
    expect(err).toMatchObject({ code: 'HTTP', httpStatus: 500 });
    expect(posts(server, RESET)).toEqual([]);
    server.clearFaults();
  });

  it('PowerCycle when allowed is one action', async () => {
    const { server, client } = await setup();
    allowResets(server, ['On', 'ForceOff', 'PowerCycle']);
    await reset(client, 'PowerCycle', { systemPath: SYSTEM });
    expect(posts(server, RESET)).toEqual([{ ResetType: 'PowerCycle' }]);
  });

  it('PowerCycle not allowed: ForceRestart where the BMC offers it (iLO, XCC, MegaRAC; what go-hal sends for a cycle)', async () => {
    const { server, client } = await setup();
    allowResets(server, ['On', 'ForceOff', 'ForceRestart']);
    await reset(client, 'PowerCycle', { pollMs: 50 });
    expect(posts(server, RESET)).toEqual([{ ResetType: 'ForceRestart' }]);
  });

  it('neither PowerCycle nor ForceRestart: ForceOff, wait for PowerState Off, then On', async () => {
    const { server, client } = await setup({ powerOffDelayMs: 200 });
    allowResets(server, ['On', 'ForceOff']);
    await reset(client, 'PowerCycle', { pollMs: 50 });
    expect(posts(server, RESET)).toEqual([{ ResetType: 'ForceOff' }, { ResetType: 'On' }]);
    const order = server.requests.filter((r) => r.path === SYSTEM || r.path === RESET).map((r) => r.method);
    const offAt = order.indexOf('POST');
    expect(order.slice(offAt + 1, -1).filter((m) => m === 'GET').length).toBeGreaterThanOrEqual(2); // polled while PoweringOff
    expect(server.resource(SYSTEM)?.PowerState).toBe('On');
  });

  it('PowerCycle fallback of a machine that is already off just powers on', async () => {
    const { server, client } = await setup();
    allowResets(server, ['On', 'ForceOff']);
    (server.resource(SYSTEM) as Record<string, unknown>).PowerState = 'Off';
    await reset(client, 'PowerCycle');
    expect(posts(server, RESET)).toEqual([{ ResetType: 'On' }]);
  });

  it('PowerCycle fallback whose machine never reads Off: On is sent anyway once the wait ends (a machine this command switched off is not left off), with a warning', async () => {
    const { server, client } = await setup({ powerOffDelayMs: 60_000 });
    allowResets(server, ['On', 'ForceOff']);
    const log = captureLog();
    await reset(client, 'PowerCycle', { offTimeoutMs: 300, pollMs: 50, logger: log.logger });
    expect(posts(server, RESET)).toEqual([{ ResetType: 'ForceOff' }, { ResetType: 'On' }]);
    expect(log.find('redfish power cycle: the system did not read Off after ForceOff in time; sending On anyway')).toHaveLength(1);
  });

  it('PowerCycle fallback near the caller\'s deadline: the wait for Off ends ON_RESERVE_MS before it, so the On still goes out in the caller\'s time', async () => {
    const { server, client } = await setup({ powerOffDelayMs: 60_000 });
    allowResets(server, ['On', 'ForceOff']);
    const log = captureLog();
    const started = Date.now();
    // the caller's deadline 1.5 s past the On's reserve: the 30 s wait for Off would outlast it
    await reset(client, 'PowerCycle', { offTimeoutMs: 30_000, pollMs: 50, deadlineAt: started + ON_RESERVE_MS + 1500, logger: log.logger });
    expect(posts(server, RESET)).toEqual([{ ResetType: 'ForceOff' }, { ResetType: 'On' }]);
    const [warning] = log.find('redfish power cycle: the system did not read Off after ForceOff in time; sending On anyway');
    expect(warning?.offTimeoutMs).toBeLessThanOrEqual(1500);
    expect(Date.now() - started).toBeLessThan(ON_RESERVE_MS + 1500);
  });

  it('offWaitMs: the configured wait, shortened to leave the On its reserve, never below a second', () => {
    expect(offWaitMs(30_000, undefined, 0)).toBe(30_000);
    expect(offWaitMs(30_000, 60_000, 0)).toBe(30_000);
    expect(offWaitMs(30_000, 60_000, 40_000)).toBe(60_000 - 40_000 - ON_RESERVE_MS);
    expect(offWaitMs(30_000, 60_000, 59_000)).toBe(1000);
  });

  it('PowerCycle fallback whose On is refused after the ForceOff: PartlyActedError (never "did not act": no other protocol cycles again, the command ends outcome unknown)', async () => {
    const { server, client } = await setup({ powerOffDelayMs: 1000 });
    allowResets(server, ['On', 'ForceOff']);
    const cycling = reset(client, 'PowerCycle', { offTimeoutMs: 10_000, pollMs: 50 }).catch((e: unknown) => e);
    // the ForceOff went out; the BMC refuses what comes next (the On) while the machine powers off
    await vi.waitFor(() => expect(posts(server, RESET)).toEqual([{ ResetType: 'ForceOff' }]), { timeout: 5000, interval: 10 });
    server.addFault({ method: 'POST', path: RESET, fault: { kind: 'status', status: 409, message: 'busy' } });
    const err = await cycling;
    expect(err).toBeInstanceOf(PartlyActedError);
    expect(err).toMatchObject({ code: 'HTTP', httpStatus: 409, message: expect.stringMatching(/ForceOff was sent, the On failed and the machine may be left off/) });
    expect(showsNotActed(err)).toBe(false);
    server.clearFaults();
  });

  it('PowerCycle fallback ended by the caller (its deadline, a shutdown) while waiting for Off: no On, the caller\'s error as a PartlyActedError (the machine may be left off)', async () => {
    const { server, client } = await setup({ powerOffDelayMs: 60_000 });
    allowResets(server, ['On', 'ForceOff']);
    const caller = new AbortController();
    const cycling = reset(client, 'PowerCycle', { offTimeoutMs: 30_000, pollMs: 50, signal: caller.signal });
    await vi.waitFor(() => expect(posts(server, RESET)).toEqual([{ ResetType: 'ForceOff' }]), { timeout: 5000 });
    caller.abort(new BmcError('TIMEOUT', 'the command deadline ran out'));
    const err = await cycling.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PartlyActedError);
    expect(err).toMatchObject({ code: 'TIMEOUT', message: expect.stringMatching(/ForceOff was sent, the On was not .*may be left off/) });
    expect(showsNotActed(err)).toBe(false);
    expect(posts(server, RESET)).toEqual([{ ResetType: 'ForceOff' }]);
  });

  it('a reset type the BMC does not allow is UNSUPPORTED, nothing posted', async () => {
    const { server, client } = await setup();
    allowResets(server, ['On', 'ForceOff']);
    await expect(reset(client, 'GracefulShutdown')).rejects.toMatchObject({ code: 'UNSUPPORTED' });
    allowResets(server, ['ForceOn', 'ForceOff']);
    setPowerState(server, 'Off');
    await reset(client, 'On');
    expect(posts(server, RESET)).toEqual([{ ResetType: 'ForceOn' }]);
  });
});

describe('setBootOverride', () => {
  it('PATCHes Boot once, with UEFI mode when the system exposes a mode', async () => {
    const { server, client } = await setup();
    await setBootOverride(client, 'Pxe', { uefi: true });
    await setBootOverride(client, 'Hdd', { persistent: true, uefi: false });
    await setBootOverride(client, 'BiosSetup');
    expect(patches(server).map((p) => [p.path, p.body])).toEqual([
      [SYSTEM, { Boot: { BootSourceOverrideEnabled: 'Once', BootSourceOverrideTarget: 'Pxe', BootSourceOverrideMode: 'UEFI' } }],
      [SYSTEM, { Boot: { BootSourceOverrideEnabled: 'Continuous', BootSourceOverrideTarget: 'Hdd', BootSourceOverrideMode: 'Legacy' } }],
      [SYSTEM, { Boot: { BootSourceOverrideEnabled: 'Once', BootSourceOverrideTarget: 'BiosSetup' } }],
    ]);
    expect((server.resource(SYSTEM)?.Boot as Record<string, unknown>).BootSourceOverrideTarget).toBe('BiosSetup');
  });

  it('omits BootSourceOverrideMode when the system has none; refuses a target not allowed', async () => {
    const { server, client } = await setup();
    server.dropProperty(SYSTEM, 'Boot.BootSourceOverrideMode');
    await setBootOverride(client, 'Pxe', { uefi: true });
    expect(patches(server)[0]?.body).toEqual({ Boot: { BootSourceOverrideEnabled: 'Once', BootSourceOverrideTarget: 'Pxe' } });
    (server.resource(SYSTEM)?.Boot as Record<string, unknown>)['BootSourceOverrideTarget@Redfish.AllowableValues'] = ['None', 'Pxe'];
    await expect(setBootOverride(client, 'Hdd')).rejects.toMatchObject({ code: 'UNSUPPORTED' });
    expect(patches(server)).toHaveLength(1);
  });

  it('sends If-Match with the ETag header of the system', async () => {
    const { server, client } = await setup({ etags: true, requireIfMatch: true });
    const etag = (await client.getReply(SYSTEM)).headers.etag;
    expect(etag).toMatch(/^W\/"[0-9a-f]+"$/);
    await setBootOverride(client, 'Pxe');
    expect(patches(server)[0]?.ifMatch).toBe(etag);
  });

  it('sends If-Match with @odata.etag of the body; * without an ETag', async () => {
    const { server, client } = await setup();
    await setBootOverride(client, 'Pxe');
    expect(patches(server)[0]?.ifMatch).toBe('*');
    (server.resource(SYSTEM) as Record<string, unknown>)['@odata.etag'] = 'W/"odata-1"';
    await setBootOverride(client, 'Hdd');
    expect(patches(server)[1]?.ifMatch).toBe('W/"odata-1"');
  });
});

describe('boot writes: answers and BootOrder', () => {
  it('200, 202 and 204 are success; 400 is an HTTP error', async () => {
    const { server, client } = await setup();
    for (const status of [202, 204]) {
      server.addFault({ fault: { kind: 'applied-status', status }, method: 'PATCH', times: 1 });
      await expect(setBootOverride(client, 'Pxe', { persistent: true })).resolves.toBeUndefined();
    }
    await expect(setBootOverride(client, 'Hdd', { persistent: true })).resolves.toBeUndefined();
    server.addFault({ fault: { kind: 'status', status: 400 }, method: 'PATCH', times: 1 });
    await expect(setBootOverride(client, 'Pxe', { persistent: true })).rejects.toMatchObject({ code: 'HTTP', httpStatus: 400 });
  });

  it('setBootOrder PATCHes Boot.BootOrder, switching a pending override off when asked, with If-Match', async () => {
    const { server, client } = await setup({ etags: true, requireIfMatch: true });
    await setBootOrder(client, ['Boot0002', 'Boot0001'], { disableOverride: true });
    await setBootOrder(client, ['Boot0001']);
    const p = patches(server);
    expect(p.map((x) => x.body)).toEqual([{ Boot: { BootOrder: ['Boot0002', 'Boot0001'], BootSourceOverrideEnabled: 'Disabled' } }, { Boot: { BootOrder: ['Boot0001'] } }]);
    expect(p[0]?.ifMatch).toMatch(/^W\/"[0-9a-f]+"$/);
    await expect(setBootOrder(client, [])).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
  });
});

describe('a 2xx the BMC did not apply: read back once and compared (bmclib#459: 200, Mode and Enabled left)', () => {
  const SYSTEM_ONLY = new RegExp(`^${SYSTEM}$`);
  /** the requests after the last PATCH, as method and path */
  const afterPatch = (s: MockupServer): string[] => {
    const last = s.requests.map((r) => r.method).lastIndexOf('PATCH');
    return s.requests.slice(last + 1).map((r) => `${r.method} ${r.path}`);
  };
  const bootOf = (s: MockupServer) => s.resource(SYSTEM)?.Boot as Record<string, unknown>;

  it('a 204 that applied nothing: NotAppliedError (HTTP, the 204) naming each property the System reads back otherwise, in two GETs a second apart', async () => {
    const { server, client } = await setup();
    server.addFault({ method: 'PATCH', path: SYSTEM_ONLY, fault: { kind: 'status', status: 204 }, times: 1 });
    const err = await setBootOverride(client, 'Hdd', { persistent: true, systemPath: SYSTEM }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NotAppliedError);
    expect(err).toMatchObject({
      code: 'HTTP',
      httpStatus: 204,
      properties: ['Boot/BootSourceOverrideEnabled', 'Boot/BootSourceOverrideTarget'],
      message: `PATCH ${SYSTEM}: HTTP 204, but the BMC did not apply Boot/BootSourceOverrideEnabled (sent "Continuous", read back "Once"); Boot/BootSourceOverrideTarget (sent "Hdd", read back "Pxe")`,
    });
    // read again a second later (READ_BACK_SETTLE_MS) before it is held not applied
    expect(afterPatch(server)).toEqual([`GET ${SYSTEM}`, `GET ${SYSTEM}`]);
  });

  it('a 204 that applied it: one GET after the PATCH, done; a 202 (a task) is not read back', async () => {
    const { server, client } = await setup();
    await setBootOverride(client, 'Hdd', { persistent: true, systemPath: SYSTEM });
    expect(afterPatch(server)).toEqual([`GET ${SYSTEM}`]);
    expect(bootOf(server)).toMatchObject({ BootSourceOverrideEnabled: 'Continuous', BootSourceOverrideTarget: 'Hdd' });
    server.addFault({ method: 'PATCH', path: SYSTEM_ONLY, fault: { kind: 'status', status: 202 }, times: 1 });
    await setBootOverride(client, 'BiosSetup', { systemPath: SYSTEM });
    expect(afterPatch(server)).toEqual([]);
  });

  it('the read-back fails (500): the 204 stands as the success it answered, with one warning line', async () => {
    const { server, client } = await setup();
    server.addFault({ method: 'PATCH', path: SYSTEM_ONLY, fault: { kind: 'applied-status', status: 204 }, times: 1 });
    // the read before the PATCH passes, the one after it fails
    server.addFault({ method: 'GET', path: SYSTEM_ONLY, fault: { kind: 'status', status: 500 }, skip: 1 });
    const log = captureLog();
    await expect(setBootOverride(client, 'Hdd', { persistent: true, systemPath: SYSTEM, logger: log.logger })).resolves.toBeUndefined();
    server.clearFaults();
    const lines = log.find('redfish PATCH answered success but its resource could not be read back to compare; taken as done');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ path: SYSTEM, status: 204, err: expect.stringContaining('500') });
    expect(afterPatch(server)).toEqual([`GET ${SYSTEM}`]);
  });

  /** A client whose System is `system` throughout and whose PATCH answers `patch`; `reads` lists the paths it read */
  function answeringClient(system: object, patch: ActionClient['patch']): { fake: ActionClient; reads: string[] } {
    const reads: string[] = [];
    const fake: ActionClient = {
      scrub: (t) => t,
      get: async <T>() => system as T,
      getReply: async (path) => (reads.push(path), { status: 200, headers: {}, body: system }),
      post: async () => ({ status: 204, headers: {}, body: undefined }),
      patch,
    };
    return { fake, reads };
  }

  it('a 200 whose body shows the values sent is not read back', async () => {
    const system = { '@odata.id': SYSTEM, Boot: { BootSourceOverrideTarget: 'None', BootSourceOverrideEnabled: 'Disabled' } };
    const { fake, reads } = answeringClient(system, async (_p, body) => ({ status: 200, headers: {}, body: { ...system, Boot: (body as { Boot: unknown }).Boot } }));
    await setBootOverride(fake, 'Pxe', { systemPath: SYSTEM });
    expect(reads).toEqual([SYSTEM]); // the read before the PATCH only
  });

  it('setBootOrder on a System that names no settings object: the order is not read back (iDRAC applies it at the next reset); an override switched off with it is', async () => {
    const { server, client } = await setup();
    bootOf(server).BootOrder = ['Boot0001', 'Boot0002'];
    server.addFault({ method: 'PATCH', path: SYSTEM_ONLY, fault: { kind: 'status', status: 204 }, times: 1 });
    await expect(setBootOrder(client, ['Boot0002', 'Boot0001'], { systemPath: SYSTEM })).resolves.toBeUndefined();
    expect(afterPatch(server)).toEqual([]);
    bootOf(server).BootSourceOverrideEnabled = 'Once';
    server.addFault({ method: 'PATCH', path: SYSTEM_ONLY, fault: { kind: 'status', status: 204 }, times: 1 });
    await expect(setBootOrder(client, ['Boot0002', 'Boot0001'], { systemPath: SYSTEM, disableOverride: true })).rejects.toMatchObject({ httpStatus: 204, properties: ['Boot/BootSourceOverrideEnabled'] });
    expect(afterPatch(server)).toEqual([`GET ${SYSTEM}`, `GET ${SYSTEM}`]);
  });

  it('setBootOrder on a System that names a settings object: the order is read back there (its pending values); another order is NotAppliedError, entries the BMC decorates count as the references sent', async () => {
    const { server, client } = await setup();
    const settings = `${SYSTEM}/Settings`;
    (server.resource(SYSTEM) as Record<string, unknown>)['@Redfish.Settings'] = { SettingsObject: { '@odata.id': settings } };
    server.setResource(settings, { '@odata.id': settings, Boot: { BootOrder: ['Boot0001', 'Boot0002'] } });
    bootOf(server).BootOrder = ['Boot0001', 'Boot0002'];
    server.addFault({ method: 'PATCH', path: SYSTEM_ONLY, fault: { kind: 'status', status: 204 }, times: 1 });
    await expect(setBootOrder(client, ['Boot0002', 'Boot0001'], { systemPath: SYSTEM })).rejects.toMatchObject({ httpStatus: 204, properties: ['Boot/BootOrder'] });
    expect(afterPatch(server)).toEqual([`GET ${settings}`, `GET ${settings}`]);
    server.setResource(settings, { '@odata.id': settings, Boot: { BootOrder: ['Boot0002: UEFI PXEv4 (MAC:0000)', 'Boot0001: disk', 'Boot0003: USB'] } });
    server.addFault({ method: 'PATCH', path: SYSTEM_ONLY, fault: { kind: 'status', status: 204 }, times: 1 });
    await expect(setBootOrder(client, ['Boot0002', 'Boot0001'], { systemPath: SYSTEM })).resolves.toBeUndefined();
    expect(afterPatch(server)).toEqual([`GET ${settings}`]);
    expect(bootOf(server).BootOrder).toEqual(['Boot0001', 'Boot0002']); // the live System still shows the old order
  });

  it('a 200 whose messages say a reset is required is pending, not refused: nothing is read back', async () => {
    const system = { '@odata.id': SYSTEM, '@Redfish.Settings': { SettingsObject: { '@odata.id': `${SYSTEM}/Settings` } }, Boot: { BootOrder: ['Boot0001', 'Boot0002'], BootSourceOverrideTarget: 'None', BootSourceOverrideEnabled: 'Disabled' } };
    const resetRequired = { MessageId: 'Base.1.12.ResetRequired', Message: 'In order to complete the operation, a component reset is required.', MessageArgs: [`${SYSTEM}/Actions/ComputerSystem.Reset`, 'ForceRestart'], Severity: 'Warning' };
    const { fake, reads } = answeringClient(system, async () => ({ status: 200, headers: {}, body: { '@Message.ExtendedInfo': [resetRequired] } }));
    await expect(setBootOrder(fake, ['Boot0002', 'Boot0001'], { systemPath: SYSTEM, disableOverride: true })).resolves.toBeUndefined();
    await expect(setBootOverride(fake, 'Pxe', { persistent: true, systemPath: SYSTEM })).resolves.toBeUndefined();
    expect(reads).toEqual([SYSTEM, SYSTEM]); // each write's read before its PATCH only
  });

  it('setIndicator: an LED read back otherwise is NotAppliedError; Blinking counts as on', async () => {
    const { server, client } = await setup();
    server.addFault({ method: 'PATCH', path: SYSTEM_ONLY, fault: { kind: 'status', status: 204 }, times: 1 });
    await expect(setIndicator(client, true, { systemPath: SYSTEM })).rejects.toMatchObject({ httpStatus: 204, properties: ['IndicatorLED'], message: expect.stringContaining('IndicatorLED (sent "Lit", read back "Off")') });
    (server.resource(SYSTEM) as Record<string, unknown>).IndicatorLED = 'Blinking';
    server.addFault({ method: 'PATCH', path: SYSTEM_ONLY, fault: { kind: 'status', status: 204 }, times: 1 });
    await expect(setIndicator(client, true, { systemPath: SYSTEM })).resolves.toBeUndefined();
    (server.resource(SYSTEM) as Record<string, unknown>).LocationIndicatorActive = false;
    server.addFault({ method: 'PATCH', path: SYSTEM_ONLY, fault: { kind: 'status', status: 204 }, times: 1 });
    await expect(setIndicator(client, true, { systemPath: SYSTEM })).rejects.toMatchObject({ properties: ['LocationIndicatorActive'], message: expect.stringContaining('(sent true, read back false)') });
  });

  it('setIndicator: a 200 whose LED annotation leaves it unapplied is NotAppliedError too, with no read-back', async () => {
    const { server, client } = await setup();
    const annotated = { 'IndicatorLED@Message.ExtendedInfo': [{ MessageId: 'Base.1.8.PropertyNotWritable', MessageArgs: ['IndicatorLED'] }] };
    const fake: ActionClient = { ...client, scrub: client.scrub, patch: async () => ({ status: 200, headers: {}, body: annotated }) };
    await expect(setIndicator(fake, true, { systemPath: SYSTEM })).rejects.toMatchObject({ httpStatus: 200, properties: ['IndicatorLED'] });
    expect(server.requests.filter((r) => r.method === 'GET' && r.path === SYSTEM)).toHaveLength(1); // the read before the PATCH
  });
});

describe('readBootOptions', () => {
  const BOOT_OPTIONS = `${SYSTEM}/BootOptions`;
  const ids = ['Boot0001', 'Boot0002', 'Boot0003', 'Boot0004', 'Boot0005'];

  function withBootOptions(s: MockupServer): void {
    const system = s.resource(SYSTEM) as { Boot: Record<string, unknown> };
    system.Boot = { ...system.Boot, BootOptions: { '@odata.id': BOOT_OPTIONS }, BootOrder: ids };
    s.setResource(BOOT_OPTIONS, { '@odata.id': BOOT_OPTIONS, Members: ids.map((id) => ({ '@odata.id': `${BOOT_OPTIONS}/${id}` })), 'Members@odata.count': ids.length });
    for (const id of ids) s.setResource(`${BOOT_OPTIONS}/${id}`, { '@odata.id': `${BOOT_OPTIONS}/${id}`, Id: id, BootOptionReference: id, DisplayName: `option ${id}` });
  }
  const gets = (s: MockupServer, prefix: string) => s.requests.filter((r) => r.method === 'GET' && r.path.startsWith(prefix)).map((r) => r.path);

  it('a BMC that ignores $expand: its members read, two at a time, each once, in the collection\'s order; the System given is not read again', async () => {
    const { server, client } = await setup();
    withBootOptions(server);
    const system = parseSystem(server.resource(SYSTEM));
    let release!: () => void;
    server.addFault({ fault: { kind: 'held', until: new Promise<void>((resolve) => (release = resolve)) }, method: 'GET', path: new RegExp(`^${BOOT_OPTIONS}/`) });
    const reading = readBootOptions(client, { systemPath: SYSTEM, system, expand: { operator: '.', levels: true } });
    // two members asked for before either is answered: not one after the other
    await waitFor(() => gets(server, `${BOOT_OPTIONS}/`).length === 2, 10_000, 'two member reads at once');
    release();
    server.clearFaults();
    const found = await reading;
    expect(found.options.map((o) => o.id)).toEqual(ids);
    expect(gets(server, `${BOOT_OPTIONS}/`).sort()).toEqual(ids.map((id) => `${BOOT_OPTIONS}/${id}`));
    // the collection once: asked with $expand (the mockup records paths without the query), its links taken as they came
    expect(gets(server, BOOT_OPTIONS).filter((p) => p === BOOT_OPTIONS)).toHaveLength(1);
    expect(gets(server, SYSTEM).filter((p) => p === SYSTEM)).toEqual([]);
  });
});

describe('patch with ETags', () => {
  it('412 with a stale ETag: fetches a fresh one and retries once', async () => {
    const { server, client } = await setup({ etags: true });
    await client.patch(SYSTEM, { AssetTag: 'x' }, { etag: 'W/"stale"' });
    const p = patches(server);
    expect(p.map((x) => x.ifMatch)).toEqual(['W/"stale"', expect.stringMatching(/^W\/"[0-9a-f]+"$/)]);
    expect(server.resource(SYSTEM)?.AssetTag).toBe('x');
  });

  it('412 refusing its own current ETag, or *: retried once without If-Match, never a third time', async () => {
    const { server, client } = await setup({ etags: true });
    server.addFault({ method: 'PATCH', path: SYSTEM, fault: { kind: 'status', status: 412 }, times: 1 });
    await client.patch(SYSTEM, { AssetTag: 'z' });
    const p = patches(server).map((x) => x.ifMatch);
    expect(p).toEqual([expect.stringMatching(/^W\//), undefined]); // the fresh read gave the same tag: the BMC refuses its own
    expect(server.resource(SYSTEM)?.AssetTag).toBe('z');
    server.addFault({ method: 'PATCH', path: SYSTEM, fault: { kind: 'status', status: 412 } });
    await expect(client.patch(SYSTEM, { AssetTag: 'w' }, { etag: '*' })).rejects.toMatchObject({ httpStatus: 412 });
    expect(patches(server).slice(2).map((x) => x.ifMatch)).toEqual(['*', expect.stringMatching(/^W\//)]); // then the fresh tag: one retry only
    server.clearFaults();
  });

  it('428 without If-Match: fetches the ETag and retries once', async () => {
    const { server, client } = await setup({ etags: true, requireIfMatch: true });
    await client.patch(SYSTEM, { AssetTag: 'y' }, { etag: null });
    expect(patches(server).map((x) => x.ifMatch)).toEqual([undefined, expect.stringMatching(/^W\//)]);
  });
});

describe('setIndicator', () => {
  it('uses IndicatorLED Lit/Off on the system', async () => {
    const { server, client } = await setup();
    await setIndicator(client, true);
    await setIndicator(client, false);
    expect(patches(server).map((p) => [p.path, p.body])).toEqual([
      [SYSTEM, { IndicatorLED: 'Lit' }],
      [SYSTEM, { IndicatorLED: 'Off' }],
    ]);
  });

  it('sends If-Match: * to a resource without an ETag, its ETag to one with (as the boot PATCH; XCC refuses a PATCH without If-Match)', async () => {
    const { server, client } = await setup();
    await setIndicator(client, true);
    expect(patches(server)[0]?.ifMatch).toBe('*');
    (server.resource(SYSTEM) as Record<string, unknown>)['@odata.etag'] = 'W/"odata-2"';
    await setIndicator(client, false);
    expect(patches(server)[1]?.ifMatch).toBe('W/"odata-2"');
    server.dropProperty(SYSTEM, 'IndicatorLED');
    await setIndicator(client, true);
    expect(patches(server)[2]).toMatchObject({ path: CHASSIS, ifMatch: '*' });
  });

  it('prefers LocationIndicatorActive when the system has it', async () => {
    const { server, client } = await setup();
    (server.resource(SYSTEM) as Record<string, unknown>).LocationIndicatorActive = false;
    await setIndicator(client, true);
    expect(patches(server)[0]?.body).toEqual({ LocationIndicatorActive: true });
  });

  it('falls back to the chassis, else UNSUPPORTED', async () => {
    const { server, client } = await setup();
    server.dropProperty(SYSTEM, 'IndicatorLED');
    await setIndicator(client, false);
    expect(patches(server).map((p) => [p.path, p.body])).toEqual([[CHASSIS, { IndicatorLED: 'Off' }]]);
    server.dropProperty(CHASSIS, 'IndicatorLED');
    await expect(setIndicator(client, true)).rejects.toMatchObject({ code: 'UNSUPPORTED' });
  });
});

describe('setBootOverride when the BMC refuses BootSourceOverrideMode (HPE iLO: read-only)', () => {
  const PATH = '/redfish/v1/Systems/1';
  const systemBody = (extra: Record<string, unknown> = {}) => ({
    '@odata.id': PATH,
    Boot: { BootSourceOverrideTarget: 'None', BootSourceOverrideEnabled: 'Disabled', BootSourceOverrideMode: 'UEFI', ...extra },
  });

  /**
   * A client whose System is `body` and whose PATCH answers with each of `answers` in turn (an Error
   * is thrown, an object is a 200's body); the Boot of a PATCH not thrown is applied to the System,
   * as a BMC that took it shows it when read back.
   */
  function fakeClient(body: { Boot: Record<string, unknown> }, answers: (Error | Record<string, unknown> | undefined)[]): { client: ActionClient; sent: unknown[] } {
    const sent: unknown[] = [];
    const system = structuredClone(body);
    const client: ActionClient = {
      scrub: (text) => text,
      get: async <T>() => system as T,
      getReply: async () => ({ status: 200, headers: { etag: '"e1"' }, body: system }),
      post: async () => ({ status: 204, headers: {}, body: undefined }),
      patch: async (_path, patchBody) => {
        sent.push(patchBody);
        const answer = answers.shift();
        if (answer instanceof Error) throw answer;
        Object.assign(system.Boot, (patchBody as { Boot: Record<string, unknown> }).Boot);
        return { status: 200, headers: {}, body: answer };
      },
    };
    return { client, sent };
  }
  const refusal = (info: Record<string, unknown>) =>
    httpError('PATCH', PATH, 400, { error: { code: 'iLO.0.10.ExtendedInfo', message: 'See @Message.ExtendedInfo for more information.', '@Message.ExtendedInfo': [info] } }, []);
  const WITH_MODE = { Boot: { BootSourceOverrideEnabled: 'Continuous', BootSourceOverrideTarget: 'Pxe', BootSourceOverrideMode: 'UEFI' } };
  const WITHOUT_MODE = { Boot: { BootSourceOverrideEnabled: 'Continuous', BootSourceOverrideTarget: 'Pxe' } };

  it.each([
    ['MessageArgs (iLO 5)', { MessageId: 'Base.1.4.PropertyNotWritable', MessageArgs: ['BootSourceOverrideMode'] }],
    ['RelatedProperties', { MessageId: 'Base.1.8.PropertyValueNotInList', RelatedProperties: ['#/Boot/BootSourceOverrideMode'] }],
    ['the message of a property refusal', { MessageId: 'Base.1.8.PropertyUnknown', Message: 'The property BootSourceOverrideMode is not in the list of valid properties.' }],
  ])('a 400 naming the mode in %s: sent once more without it', async (_how, info) => {
    const { client, sent } = fakeClient(systemBody(), [refusal(info)]);
    await setBootOverride(client, 'Pxe', { persistent: true, uefi: true, systemPath: PATH });
    expect(sent).toEqual([WITH_MODE, WITHOUT_MODE]);
  });

  it('a 200 that applied all but the mode (its annotation names it): sent once more without it; one that left Enabled is a refusal naming it', async () => {
    const modeLeft = { Boot: { 'BootSourceOverrideMode@Message.ExtendedInfo': [{ MessageId: 'Base.1.8.PropertyNotWritable', MessageArgs: ['BootSourceOverrideMode'] }] } };
    const { client, sent } = fakeClient(systemBody(), [modeLeft]);
    await setBootOverride(client, 'Pxe', { persistent: true, uefi: true, systemPath: PATH });
    expect(sent).toEqual([WITH_MODE, WITHOUT_MODE]);
    const enabledLeft = { '@Message.ExtendedInfo': [{ MessageId: 'Base.1.8.PropertyValueNotInList', RelatedProperties: ['#/Boot/BootSourceOverrideEnabled'] }] };
    const other = fakeClient(systemBody(), [enabledLeft]);
    await expect(setBootOverride(other.client, 'Pxe', { persistent: true, uefi: true, systemPath: PATH })).rejects.toMatchObject({ code: 'HTTP', httpStatus: 200, properties: ['Boot/BootSourceOverrideEnabled'] });
    expect(other.sent).toEqual([WITH_MODE]);
  });

  it('a 400 from a System whose AllowableValues lack the mode: sent once more without it', async () => {
    const { client, sent } = fakeClient(systemBody({ 'BootSourceOverrideMode@Redfish.AllowableValues': ['Legacy'] }), [refusal({ MessageId: 'Base.1.8.GeneralError' })]);
    await setBootOverride(client, 'Pxe', { persistent: true, uefi: true, systemPath: PATH });
    expect(sent).toEqual([WITH_MODE, WITHOUT_MODE]);
  });

  it('a 400 about something else, or a refusal of the second PATCH, is the error; never a third PATCH', async () => {
    const other = fakeClient(systemBody(), [refusal({ MessageId: 'Base.1.8.PropertyValueNotInList', MessageArgs: ['Floppy', 'BootSourceOverrideTarget'] })]);
    await expect(setBootOverride(other.client, 'Pxe', { persistent: true, uefi: true, systemPath: PATH })).rejects.toMatchObject({ httpStatus: 400 });
    expect(other.sent).toEqual([WITH_MODE]);
    const twice = refusal({ MessageId: 'Base.1.4.PropertyNotWritable', MessageArgs: ['BootSourceOverrideMode'] });
    const again = fakeClient(systemBody(), [twice, twice]);
    await expect(setBootOverride(again.client, 'Pxe', { persistent: true, uefi: true, systemPath: PATH })).rejects.toBe(twice);
    expect(again.sent).toEqual([WITH_MODE, WITHOUT_MODE]);
  });
});

describe('setBootOverride on AMI MegaRAC: Boot refused on the System, taken on its settings object', () => {
  const PATH = '/redfish/v1/Systems/Self';
  const SD = `${PATH}/SD`;
  const amiRefusal = () =>
    httpError('PATCH', PATH, 400, { error: { code: 'Ami.1.0.OperationSupportedInFutureStateURI', message: 'moved', '@Message.ExtendedInfo': [{ MessageId: 'Ami.1.0.OperationSupportedInFutureStateURI', Message: `Support of this Operation for Boot Properties is moved to FutureState URI(${SD})` }] } }, []);
  const system = (settings: boolean) => ({
    '@odata.id': PATH,
    Boot: { BootSourceOverrideTarget: 'None', BootSourceOverrideEnabled: 'Disabled', BootSourceOverrideMode: 'UEFI' },
    ...(settings ? { '@Redfish.Settings': { SettingsObject: { '@odata.id': SD } } } : {}),
  });

  /**
   * The System and its SD (each with its own ETag); PATCHes of the System refused as AMI does, those
   * of SD answered by `sd` in turn, else 204 with the Boot sent pending on SD (the live System keeps
   * its values until the next boot) unless `ignored` (a BMC that kept nothing). `reads`: the GETs.
   */
  function amiClient(settings: boolean, sd: (Error | undefined)[] = [], { ignored = false } = {}): { client: ActionClient; sent: Array<{ path: string; body: unknown; etag: unknown }>; reads: string[] } {
    const sent: Array<{ path: string; body: unknown; etag: unknown }> = [];
    const reads: string[] = [];
    const pending: Record<string, unknown> = { BootSourceOverrideTarget: 'None', BootSourceOverrideEnabled: 'Disabled', BootSourceOverrideMode: 'UEFI' };
    const client: ActionClient = {
      scrub: (text) => text,
      get: async <T>() => system(settings) as T,
      getReply: async (path) => {
        reads.push(path);
        return path === SD ? { status: 200, headers: { etag: 'W/"sd-1"' }, body: { '@odata.id': SD, Boot: { ...pending } } } : { status: 200, headers: { etag: 'W/"sys-1"' }, body: system(settings) };
      },
      post: async () => ({ status: 204, headers: {}, body: undefined }),
      patch: async (path, body, o) => {
        sent.push({ path, body, etag: o?.etag });
        if (path === PATH) throw amiRefusal();
        const answer = sd.shift();
        if (answer !== undefined) throw answer;
        if (!ignored) Object.assign(pending, (body as { Boot: Record<string, unknown> }).Boot);
        return { status: 204, headers: {}, body: undefined };
      },
    };
    return { client, sent, reads };
  }

  it('the refusal sends the same Boot to the SettingsObject the System names, with that object\'s ETag', async () => {
    const { client, sent } = amiClient(true);
    await setBootOverride(client, 'Pxe', { persistent: true, uefi: true, systemPath: PATH });
    const boot = { Boot: { BootSourceOverrideEnabled: 'Continuous', BootSourceOverrideTarget: 'Pxe', BootSourceOverrideMode: 'UEFI' } };
    expect(sent).toEqual([
      { path: PATH, body: boot, etag: 'W/"sys-1"' },
      { path: SD, body: boot, etag: 'W/"sd-1"' },
    ]);
  });

  it('a mode refusal from the settings object sends the retry there, not to the System again', async () => {
    const modeRefusal = httpError('PATCH', SD, 400, { error: { '@Message.ExtendedInfo': [{ MessageId: 'Base.1.8.PropertyNotWritable', MessageArgs: ['BootSourceOverrideMode'] }] } }, []);
    const { client, sent } = amiClient(true, [modeRefusal]);
    await setBootOverride(client, 'Pxe', { persistent: true, uefi: true, systemPath: PATH });
    expect(sent.map((x) => x.path)).toEqual([PATH, SD, SD]);
    expect(sent[2]!.body).toEqual({ Boot: { BootSourceOverrideEnabled: 'Continuous', BootSourceOverrideTarget: 'Pxe' } });
  });

  it('a System that names no settings object: the refusal is the error, one PATCH (no URI is built)', async () => {
    const { client, sent } = amiClient(false);
    await expect(setBootOverride(client, 'Pxe', { persistent: true, systemPath: PATH })).rejects.toMatchObject({ httpStatus: 400, message: expect.stringContaining('FutureState URI') });
    expect(sent.map((x) => x.path)).toEqual([PATH]);
  });

  it('a 204 from the settings object is read back there, its pending values compared (the live System still shows the old ones)', async () => {
    const { client, sent, reads } = amiClient(true);
    await setBootOverride(client, 'Pxe', { persistent: true, uefi: true, systemPath: PATH });
    expect(sent.map((x) => x.path)).toEqual([PATH, SD]);
    // the System read before the PATCH, SD for its ETag, SD again after its 204: never the System to compare
    expect(reads).toEqual([PATH, SD, SD]);
  });

  it('a settings object that answered 204 and kept its values: NotAppliedError naming each property, the 204 its status', async () => {
    const { client, sent, reads } = amiClient(true, [], { ignored: true });
    const err = await setBootOverride(client, 'Pxe', { persistent: true, systemPath: PATH }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NotAppliedError);
    expect(err).toMatchObject({ code: 'HTTP', httpStatus: 204, properties: ['Boot/BootSourceOverrideEnabled', 'Boot/BootSourceOverrideTarget'], message: expect.stringContaining(`PATCH ${SD}: HTTP 204`) });
    expect(sent.map((x) => x.path)).toEqual([PATH, SD]);
    expect(reads).toEqual([PATH, SD, SD, SD]);
  });

  it('setBootOrder takes the same way', async () => {
    const { client, sent } = amiClient(true);
    await setBootOrder(client, ['Boot0001'], { systemPath: PATH });
    expect(sent.map((x) => x.path)).toEqual([PATH, SD]);
  });
});
