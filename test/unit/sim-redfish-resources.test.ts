import { createPrivateKey, X509Certificate } from 'node:crypto';
import { expect } from 'vitest';
import { createMachineState, SimMachine } from '../../src/sim/machine.js';
import { chassis, power, powerSubsystem } from '../../src/sim/redfish/chassis.js';
import type { MachineContext } from '../../src/sim/redfish/context.js';
import { errorBody, etagOf } from '../../src/sim/redfish/http.js';
import { manager, serviceRoot, system } from '../../src/sim/redfish/resources.js';
import { SessionStore } from '../../src/sim/redfish/sessions.js';
import { TaskStore, taskView } from '../../src/sim/redfish/tasks.js';
import { newQuirkState } from '../../src/sim/redfish/quirks.js';
import { REDFISH_VENDORS, vendorOf } from '../../src/sim/redfish/vendors.js';
import { selfSignedCertificate } from '../../src/sim/tls.js';
import { withPeers } from '../helpers/peers.js';

const { describe, it } = withPeers('openssl');

function context(manufacturer: string): MachineContext {
  const state = createMachineState('unit', 3);
  state.manufacturer = manufacturer;
  return { index: 0, machine: new SimMachine(state), vendor: vendorOf(manufacturer), sessions: new SessionStore(2, 1000), tasks: new TaskStore(100), quirkState: newQuirkState() };
}

describe('Redfish resources per vendor', () => {
  it('every vendor lacks something a client must fall back from', () => {
    expect(REDFISH_VENDORS.some((v) => !v.power)).toBe(true);
    expect(REDFISH_VENDORS.some((v) => !v.indicatorLED && v.locationIndicatorActive)).toBe(true);
    expect(REDFISH_VENDORS.some((v) => !v.resetTypes.includes('PowerCycle'))).toBe(true);
    expect(vendorOf('Contoso')).toBe(REDFISH_VENDORS[0]);
  });

  it('builds System, Manager and Chassis from the mockup with the machine’s values and the vendor’s ids', () => {
    for (const v of REDFISH_VENDORS) {
      const ctx = context(v.manufacturer);
      const { state } = ctx.machine;
      const sys = system(ctx);
      expect(sys['@odata.id']).toBe(`/redfish/v1/Systems/${v.systemId}`);
      expect(sys.Id).toBe(v.systemId);
      expect(sys.UUID).toBe(v.uuidUpperCase ? state.uuid.toUpperCase() : state.uuid);
      expect('IndicatorLED' in sys).toBe(v.indicatorLED);
      expect('LocationIndicatorActive' in sys).toBe(v.locationIndicatorActive);
      expect(JSON.stringify(sys)).not.toMatch(/437XR1138R2|Contoso|\/Bios"|Processors/);
      expect(manager(ctx)).toMatchObject({ Id: v.managerId, FirmwareVersion: state.bmcVersion });
      const ch = chassis(ctx);
      expect('Power' in ch).toBe(v.power);
      expect(ch.PowerSubsystem).toEqual({ '@odata.id': `/redfish/v1/Chassis/${v.chassisId}/PowerSubsystem` });
      expect(powerSubsystem(ctx).CapacityWatts).toBe(1600);
      expect(serviceRoot(ctx).Vendor).toBe(v.manufacturer);
    }
  });

  it('Power carries the machine’s PowerMetrics and supply status', () => {
    const ctx = context('Supermicro');
    const { state } = ctx.machine;
    state.powerSupplies[1] = { name: 'PSU2', health: 'Critical', state: 'UnavailableOffline', watts: 800 };
    const p = power(ctx) as { PowerControl: Record<string, unknown>[]; PowerSupplies: Record<string, unknown>[] };
    expect(p.PowerControl[0]?.PowerMetrics).toEqual({ IntervalInMin: 1, MinConsumedWatts: state.powerWatts.min, MaxConsumedWatts: state.powerWatts.max, AverageConsumedWatts: state.powerWatts.average });
    expect(p.PowerSupplies[1]?.Status).toEqual({ State: 'UnavailableOffline', Health: 'Critical' });
    expect(p.PowerSupplies[1]?.LastPowerOutputWatts).toBe(0);
    expect(p.PowerSupplies[0]?.LastPowerOutputWatts).toBe(state.powerWatts.average);
  });

  it('the System ETag follows its state', () => {
    const ctx = context('Lenovo');
    const a = system(ctx)['@odata.etag'];
    expect(system(ctx)['@odata.etag']).toBe(a);
    ctx.machine.setIdentify(true);
    expect(system(ctx)['@odata.etag']).not.toBe(a);
    expect(etagOf({ x: 1, '@odata.etag': 'ignored' })).toBe(etagOf({ x: 1 }));
  });

  it('error bodies follow the Redfish shape', () => {
    expect(errorBody('NoValidSession', 'no session')).toEqual({
      error: {
        code: 'Base.1.8.GeneralError',
        message: 'no session',
        '@Message.ExtendedInfo': [expect.objectContaining({ MessageId: 'Base.1.8.NoValidSession', Message: 'no session', Severity: 'Critical' })],
      },
    });
  });
});

describe('sessions and tasks', () => {
  it('limits sessions and expires idle ones', () => {
    let now = 0;
    const store = new SessionStore(2, 1000, () => now);
    const a = store.create('u');
    expect(store.create('u')).toBeDefined();
    expect(store.create('u')).toBeUndefined();
    now = 900;
    expect(store.authenticate(a?.token ?? '')).toBe(a);
    now = 1500; // b idle for 1500 ms, a for 600 ms
    expect(store.size).toBe(1);
    now = 2000;
    expect(store.authenticate(a?.token ?? '')).toBeUndefined();
    expect(store.size).toBe(0);
  });

  it('derives task state from the clock', () => {
    const task = { id: '1', name: 't', startedAt: 1000, durationMs: 1000, fails: false, messages: [] };
    expect(taskView(task, 1250)).toEqual({ state: 'Running', percent: 25 });
    expect(taskView(task, 2000)).toEqual({ state: 'Completed', percent: 100, endedAt: 2000 });
    expect(taskView({ ...task, fails: true }, 3000).state).toBe('Exception');
  });
});

describe('selfSignedCertificate', () => {
  it('makes an EC certificate with the alt names, once per process', () => {
    const cert = selfSignedCertificate('unit-test', ['localhost', '127.0.0.1', '127.10.0.1']);
    expect(cert.cert).toMatch(/BEGIN CERTIFICATE/);
    expect(cert.key).toMatch(/PRIVATE KEY/);
    const x509 = new X509Certificate(cert.cert);
    expect(x509.subjectAltName).toContain('IP Address:127.10.0.1');
    expect(x509.subjectAltName).toContain('DNS:localhost');
    expect(x509.checkPrivateKey(createPrivateKey(cert.key))).toBe(true);
    expect(cert.fingerprint256).toMatch(/^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
    expect(selfSignedCertificate('unit-test', ['localhost', '127.0.0.1', '127.10.0.1'])).toBe(cert);
    expect(() => selfSignedCertificate('x', ['bad name'])).toThrow(/subjectAltName/);
  });
});

describe('the mockup behind the replies is shared and never changed by one', () => {
  it('a reply changed by its caller (a quirk, a PATCH) leaves the next reply as it was', () => {
    for (const v of REDFISH_VENDORS) {
      const ctx = context(v.manufacturer);
      const first = { power: power(ctx), chassis: chassis(ctx), system: system(ctx), manager: manager(ctx), root: serviceRoot(ctx) };
      // the Manager's clock moves between the two replies
      const withoutClock = (json: unknown) => JSON.stringify(json, (k, value: unknown) => (k === 'DateTime' ? undefined : value));
      const pristine = withoutClock(first);
      const mutate = (json: unknown): void => {
        if (json === null || typeof json !== 'object') return;
        for (const [k, value] of Object.entries(json)) {
          if (value !== null && typeof value === 'object') mutate(value);
          else (json as Record<string, unknown>)[k] = 'changed';
        }
      };
      mutate(first);
      const again = { power: power(ctx), chassis: chassis(ctx), system: system(ctx), manager: manager(ctx), root: serviceRoot(ctx) };
      expect(withoutClock(again), v.manufacturer).toBe(pristine);
    }
  });
});
