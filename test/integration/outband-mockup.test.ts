/**
 * The facade's report from the DMTF public-rackmount1 mockup served as-is over HTTPS: every field
 * mapped to metal-api's names, and absent resources giving a partial report with reasons.
 */
import { afterEach, beforeEach, expect } from 'vitest';
import { connectOutband } from '../../src/outband/connect.js';
import { startMockupServer, type MockupServer } from '../helpers/redfish-mockup-server.js';
import { withPeers } from '../helpers/peers.js';

const { describe, it } = withPeers('openssl');

let mockup: MockupServer;
beforeEach(async () => {
  mockup = await startMockupServer();
});
afterEach(async () => {
  await mockup.close();
});

const connect = () => connectOutband({ host: mockup.host, redfishPort: mockup.port, user: mockup.user, password: mockup.password, protocol: 'redfish', timeoutMs: 5000 });

describe('facade on the DMTF mockup', () => {
  it('maps every field of the mockup to the report', async () => {
    const bmc = await connect();
    const r = await bmc.info();
    await bmc.close();
    expect(bmc.vendor).toBe('virtual');
    expect(r).toMatchObject({
      uuid: '38947555-7742-3448-3784-823347823834',
      bmcVersion: '1.45.455b66-rev4',
      biosVersion: 'P79 v1.45 (12/06/2017)',
      powerState: 'ON',
      indicatorLED: 'LED-OFF',
      source: 'redfish',
      fru: {
        board_mfg: 'Contoso',
        board_part_number: '3500RX',
        chassis_part_number: '224071-J23',
        chassis_part_serial: '437XR1138R2',
        product_manufacturer: 'Contoso',
        product_part_number: '224071-J23',
        product_serial: '437XR1138R2',
      },
      powerMetric: { intervalinmin: 30, minconsumedwatts: 271, maxconsumedwatts: 489, averageconsumedwatts: 319 },
    });
    expect(r.powerSupplies.length).toBeGreaterThan(0);
    expect(r.powerSupplies[0]!.status).toEqual({ health: 'Warning', state: 'Enabled' });
    expect(mockup.sessionCount()).toBe(0);
  });

  it('no Power and no IndicatorLED: a partial report naming what is missing, never a crash', async () => {
    mockup.removeResource('/redfish/v1/Chassis/1U/Power');
    mockup.dropProperty('/redfish/v1/Chassis/1U', 'Power');
    mockup.dropProperty('/redfish/v1/Chassis/1U', 'PowerSubsystem');
    mockup.dropProperty('/redfish/v1/Chassis/1U', 'EnvironmentMetrics');
    mockup.dropProperty('/redfish/v1/Systems/437XR1138R2', 'IndicatorLED');
    mockup.dropProperty('/redfish/v1/Chassis/1U', 'IndicatorLED');
    const bmc = await connect();
    const r = await bmc.info();
    await bmc.close();
    expect(r.powerMetric).toBeUndefined();
    expect(r.indicatorLED).toBe('UNKNOWN');
    expect(r.missing).toContain('IndicatorLED: neither Redfish nor IPMI reports the identify LED');
    expect(r.missing.some((m) => /^Power/.test(m))).toBe(true);
    expect(r.uuid).toBe('38947555-7742-3448-3784-823347823834');
    expect(mockup.sessionCount()).toBe(0);
  });
});
