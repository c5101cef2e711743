import { afterEach, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { signHeaders } from '../../src/metalapi/hmac.js';
import { compileDefinition, defaultSwaggerPath, loadSwagger } from '../../src/metalapi/schema.js';
import { startMetalApiStandIn, type MetalApiStandIn } from '../../src/metalapi/standin.js';
import { toMetalFru, type MachineIpmiReports } from '../../src/metalapi/types.js';
import { toIpmiReport } from '../../src/report/body.js';
import type { BmcReport, MetalFru } from '../../src/outband/types.js';

const KEY = 'stand-in-key';
const swagger = loadSwagger();

const report: BmcReport = {
  uuid: 'u1',
  bmcVersion: '2.0',
  biosVersion: '1.1',
  fru: { product_manufacturer: 'Dell Inc.', board_mfg: '' },
  powerState: 'OFF',
  indicatorLED: 'UNKNOWN',
  powerSupplies: [],
  source: 'ipmi',
  missing: ['powerMetric'],
};

let standIn: MetalApiStandIn | undefined;
afterEach(async () => {
  await standIn?.close();
  standIn = undefined;
});

async function call(method: 'GET' | 'POST', url: string, body?: unknown, key = KEY) {
  const res = await request(url, {
    method,
    headers: { ...signHeaders(key, method), 'content-type': 'application/json' },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: res.statusCode, json: (await res.body.json()) as Record<string, unknown> };
}

describe('toIpmiReport', () => {
  it('maps a BmcReport to v1.MachineIpmiReport, PowerMetric null when absent', () => {
    expect(toIpmiReport('10.0.0.9', report)).toEqual({
      BMCIp: '10.0.0.9',
      BMCVersion: '2.0',
      BIOSVersion: '1.1',
      FRU: { product_manufacturer: 'Dell Inc.' },
      PowerState: 'OFF',
      IndicatorLEDState: 'LED-OFF',
      PowerMetric: null,
      PowerSupplies: [],
    });
  });

  it('produces bodies that satisfy the swagger; omitting PowerMetric would not', () => {
    const validate = compileDefinition(swagger, 'v1.MachineIpmiReports');
    const withMetric = toIpmiReport('10.0.0.9', { ...report, powerMetric: { averageconsumedwatts: 1, intervalinmin: 1, maxconsumedwatts: 2, minconsumedwatts: 0.5 } });
    expect(validate({ partitionid: 'p', reports: { a: toIpmiReport('10.0.0.9', report), b: withMetric } })).toEqual({ ok: true });
    const { PowerMetric: _omitted, ...without } = toIpmiReport('10.0.0.9', report);
    const result = validate({ partitionid: 'p', reports: { a: without } });
    expect(result.ok).toBe(false);
    expect(result.ok ? '' : result.errors).toMatch(/required property 'PowerMetric'/);
  });

  it('keeps only the eight metal-api FRU fields', () => {
    const fru = { board_mfg: 'A', product_serial: 'S', extra: 'x', chassis_part_serial: '' } as MetalFru;
    expect(toMetalFru(fru)).toEqual({ board_mfg: 'A', product_serial: 'S' });
  });
});

describe('metal-api stand-in', () => {
  it('finds the swagger inside the repository by default', () => {
    expect(defaultSwaggerPath()).toMatch(/src\/metalapi\/metal-api\.swagger\.json$/);
  });

  it('answers GET with a v1.MachineIPMIResponse that satisfies the swagger, keeping a known port', async () => {
    standIn = await startMetalApiStandIn({ hmacKey: KEY, swaggerPath: swagger, macFor: (ip) => (ip === '10.0.0.9' ? 'ac:1f:6b:00:00:01' : undefined) });
    const body: MachineIpmiReports = { partitionid: 'lab', reports: { u1: toIpmiReport('10.0.0.9', report) } };
    expect((await call('POST', `${standIn.url}/v1/machine/ipmi`, body)).json).toEqual({ created: ['u1'], updated: [] });
    const got = await call('GET', `${standIn.url}/v1/machine/u1/ipmi`);
    expect(got.status).toBe(200);
    expect(compileDefinition(swagger, 'v1.MachineIPMIResponse')(got.json)).toEqual({ ok: true });
    expect(got.json.ipmi).toMatchObject({ address: '10.0.0.9:623', user: '', interface: '', mac: 'ac:1f:6b:00:00:01', powerstate: '' });
    await call('POST', `${standIn.url}/v1/machine/ipmi`, body);
    const again = await call('GET', `${standIn.url}/v1/machine/u1/ipmi`);
    expect(compileDefinition(swagger, 'v1.MachineIPMIResponse')(again.json)).toEqual({ ok: true });
    expect(again.json).toMatchObject({ bios: { version: '1.1' }, ipmi: { powerstate: 'OFF', bmcversion: '2.0', fru: { product_manufacturer: 'Dell Inc.' } } });

    const known = standIn.machines.get('u1');
    if (known) standIn.machines.set('u1', { ...known, address: '10.0.0.9:6230' });
    await call('POST', `${standIn.url}/v1/machine/ipmi`, { partitionid: 'lab', reports: { u1: toIpmiReport('10.0.0.10', report) } });
    expect(standIn.machines.get('u1')?.address).toBe('10.0.0.10:6230');
  });

  it("answers 403 as metal-api does: without HMAC headers its role check's text, with a wrong HMAC or a stale date security's", async () => {
    standIn = await startMetalApiStandIn({ hmacKey: KEY });
    const res = await request(`${standIn.url}/v1/machine/u1/ipmi`);
    expect(res.statusCode).toBe(403);
    expect(await res.body.json()).toEqual({ statuscode: 403, message: 'you are not member in one of [k8s_kaas-view maas-all-all-view k8s_kaas-edit maas-all-all-edit k8s_kaas-admin maas-all-all-admin]' });
    const wrong = await call('GET', `${standIn.url}/v1/machine/u1/ipmi`, undefined, 'wrong');
    expect(wrong).toMatchObject({ status: 403, json: { statuscode: 403, message: 'Wrong HMAC found' } });
    // the stand-in's clock 31 s ahead: this host's X-Date is too old for its 30 s lifetime
    standIn.setClockAhead(31_000);
    const stale = await call('POST', `${standIn.url}/v1/machine/ipmi`, { partitionid: 'lab', reports: {} });
    expect(stale.status).toBe(403);
    expect((stale.json as { message: string }).message).toMatch(/^the timestamp in your header is too old: ".*", please check if you have time synchronization activated$/);
    // behind by a day: metal-api never refuses a date in the future
    standIn.setClockAhead(-86_400_000);
    expect((await call('POST', `${standIn.url}/v1/machine/ipmi`, { partitionid: 'lab', reports: {} })).status).toBe(200);
  });

  it('answers 400 for an empty partition id and for a body that is not JSON', async () => {
    standIn = await startMetalApiStandIn({ hmacKey: KEY });
    const empty = await call('POST', `${standIn.url}/v1/machine/ipmi`, { partitionid: '', reports: {} });
    expect(empty).toEqual({ status: 400, json: { statuscode: 400, message: 'partition id must not be empty' } });
    const garbage = await call('POST', `${standIn.url}/v1/machine/ipmi`, '{not json');
    expect(garbage.status).toBe(400);
    const wrongType = await call('POST', `${standIn.url}/v1/machine/ipmi`, { partitionid: 'p', reports: { u: { ...toIpmiReport('1.2.3.4', report), PowerSupplies: 'none' } } });
    expect(wrongType.status).toBe(400);
    expect(String(wrongType.json.message)).toMatch(/\/reports\/u\/PowerSupplies must be array/);
    expect(standIn.reports).toHaveLength(0);
  });

  it('serves under a base path and answers 404/405 elsewhere', async () => {
    standIn = await startMetalApiStandIn({ hmacKey: KEY, basePath: '/metal/' });
    expect(standIn.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metal$/);
    const origin = standIn.url.replace(/\/metal$/, '');
    expect((await call('GET', `${origin}/v1/machine/u1/ipmi`)).status).toBe(404);
    expect((await call('GET', `${standIn.url}/v1/machine/ipmi`)).status).toBe(405);
    expect((await call('GET', `${standIn.url}/v1/other`)).status).toBe(404);
  });

  it('injects failures from the option and from setFailures', async () => {
    standIn = await startMetalApiStandIn({ hmacKey: KEY, failNext: { count: 1, status: 503 } });
    const url = `${standIn.url}/v1/machine/x/ipmi`;
    expect((await call('GET', url)).status).toBe(503);
    expect((await call('GET', url)).status).toBe(404);
    standIn.setFailures(2, 500);
    expect((await call('GET', url)).status).toBe(500);
    expect((await call('GET', url)).status).toBe(500);
    expect((await call('GET', url)).status).toBe(404);
    expect(() => standIn?.setFailures(-1)).toThrow(/count/);
  });

  describe("stores a report as metal-api's ipmiReport does (machine-service.go at a405f46)", () => {
    const fullFru = { board_mfg: 'Supermicro', board_mfg_serial: 'BS1', board_part_number: 'X11', chassis_part_number: 'CSE', chassis_part_serial: 'CS1', product_manufacturer: 'Supermicro', product_part_number: 'SYS-1', product_serial: 'PS1' };
    const metric = { averageconsumedwatts: 120, intervalinmin: 1, maxconsumedwatts: 150, minconsumedwatts: 90 };
    const psu = (health: string) => ({ status: { health, state: 'Enabled' } });
    const entry = (over: Partial<MachineIpmiReports['reports'][string]> = {}): MachineIpmiReports['reports'][string] => ({
      BMCIp: '10.0.0.9',
      BMCVersion: '3.1',
      BIOSVersion: '2.4',
      FRU: fullFru,
      PowerState: 'ON',
      IndicatorLEDState: 'LED-ON',
      PowerMetric: metric,
      PowerSupplies: [psu('OK'), psu('OK')],
      ...over,
    });
    const post = async (reports: MachineIpmiReports['reports'], partitionid = 'lab') => (await call('POST', `${standIn!.url}/v1/machine/ipmi`, { partitionid, reports })).json;
    const bios = async (uuid: string) => ((await call('GET', `${standIn!.url}/v1/machine/${uuid}/ipmi`)).json.bios as { version: string }).version;

    it('creates an unknown uuid with the address, partition and LED state only: no FRU, versions, power, user or password', async () => {
      standIn = await startMetalApiStandIn({ hmacKey: KEY });
      expect(await post({ u1: entry() })).toEqual({ created: ['u1'], updated: [] });
      expect(standIn.machines.get('u1')).toMatchObject({
        address: '10.0.0.9:623',
        user: '',
        password: '',
        fru: Object.fromEntries(Object.keys(fullFru).map((k) => [k, ''])),
        bmcversion: '',
        powerstate: '',
        powermetric: null,
        powersupplies: [],
      });
      expect(standIn.machines.get('u1')?.last_updated).toEqual(expect.any(String));
      expect(standIn.partitions.get('u1')).toBe('lab');
      expect(standIn.ledStates.get('u1')).toBe('LED-ON');
      expect(await bios('u1')).toBe('');
      // the second report fills them in
      expect(await post({ u1: entry() })).toEqual({ created: [], updated: ['u1'] });
      expect(standIn.machines.get('u1')).toMatchObject({ fru: fullFru, bmcversion: '3.1', powerstate: 'ON', powermetric: metric, powersupplies: [psu('OK'), psu('OK')] });
      expect(await bios('u1')).toBe('2.4');
    });

    it('keeps a FRU field left out or sent as "" (updateFru with pointer.SafeDerefOrDefault), replaces one sent', async () => {
      standIn = await startMetalApiStandIn({ hmacKey: KEY });
      await post({ u1: entry() });
      await post({ u1: entry() });
      const { board_mfg: _left, ...withoutBoardMfg } = fullFru;
      await post({ u1: entry({ FRU: { ...withoutBoardMfg, product_serial: '', chassis_part_serial: 'CS2' } }) });
      expect(standIn.machines.get('u1')?.fru).toEqual({ ...fullFru, chassis_part_serial: 'CS2' });
      await post({ u1: entry({ FRU: {} }) });
      expect(standIn.machines.get('u1')?.fru).toEqual({ ...fullFru, chassis_part_serial: 'CS2' });
    });

    it('keeps BIOS version, BMC version and power state sent as "" and a power metric sent as null', async () => {
      standIn = await startMetalApiStandIn({ hmacKey: KEY });
      await post({ u1: entry() });
      await post({ u1: entry() });
      expect(await post({ u1: entry({ BIOSVersion: '', BMCVersion: '', PowerState: '', PowerMetric: null }) })).toEqual({ created: [], updated: ['u1'] });
      expect(standIn.machines.get('u1')).toMatchObject({ bmcversion: '3.1', powerstate: 'ON', powermetric: metric });
      expect(await bios('u1')).toBe('2.4');
      await post({ u1: entry({ PowerState: 'OFF' }) });
      expect(standIn.machines.get('u1')?.powerstate).toBe('OFF');
    });

    it('replaces the power supplies as a whole, a report without any clearing them', async () => {
      standIn = await startMetalApiStandIn({ hmacKey: KEY });
      await post({ u1: entry() });
      await post({ u1: entry() });
      await post({ u1: entry({ PowerSupplies: [psu('Critical')] }) });
      expect(standIn.machines.get('u1')?.powersupplies).toEqual([psu('Critical')]);
      await post({ u1: entry({ PowerSupplies: [] }) });
      expect(standIn.machines.get('u1')?.powersupplies).toEqual([]);
    });

    it('keeps the LED state it cannot decode, and logs it', async () => {
      standIn = await startMetalApiStandIn({ hmacKey: KEY });
      await post({ u1: entry({ IndicatorLEDState: 'LED-OFF' }) });
      await post({ u1: entry({ IndicatorLEDState: 'Blinking' }) });
      expect(standIn.ledStates.get('u1')).toBe('LED-OFF');
      expect(standIn.problems).toEqual(['unable to decode ledstate of u1: unknown LEDState:Blinking']);
      await post({ u2: entry({ IndicatorLEDState: '' }) });
      expect(standIn.ledStates.has('u2')).toBe(false);
    });

    it('puts a uuid another partition holds in neither created nor updated, and leaves it as it was', async () => {
      standIn = await startMetalApiStandIn({ hmacKey: KEY });
      await post({ u1: entry() }, 'other');
      const before = structuredClone(standIn.machines.get('u1'));
      expect(await post({ u1: entry({ BMCIp: '10.0.0.77' }), u2: entry() })).toEqual({ created: ['u2'], updated: [] });
      expect(standIn.machines.get('u1')).toEqual(before);
      expect(standIn.partitions.get('u1')).toBe('other');
      expect(standIn.problems).toEqual([expect.stringMatching(/^could not create machine u1: entity already exists/)]);
    });

    it('does not update a machine whose address has more than one colon, and skips an empty uuid', async () => {
      standIn = await startMetalApiStandIn({ hmacKey: KEY });
      await post({ u1: entry() });
      const known = standIn.machines.get('u1');
      if (known) standIn.machines.set('u1', { ...known, address: 'fe80::1:623' });
      expect(await post({ u1: entry(), '': entry() })).toEqual({ created: [], updated: [] });
      expect(standIn.machines.get('u1')?.address).toBe('fe80::1:623');
      expect(standIn.machines.has('')).toBe(false);
    });
  });

  it('validates its options', async () => {
    await expect(startMetalApiStandIn({ hmacKey: '' })).rejects.toThrow(/option hmacKey/);
    await expect(startMetalApiStandIn({ hmacKey: KEY, swaggerPath: '/nonexistent/swagger.json' })).rejects.toThrow(/cannot read/);
  });
});
