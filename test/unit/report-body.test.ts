/** The report body is assembled without any I/O: first BMC of a UUID wins, unread LEDs are remembered, entries are bounded. */
import { describe, expect, it } from 'vitest';
import type { BmcReport } from '../../src/outband/types.js';
import { assembleReportBody } from '../../src/report/body.js';
import { MAX_STRING } from '../../src/report/bounds.js';
import { createLedMemory } from '../../src/report/led-memory.js';

const report = (uuid: string, over: Partial<BmcReport> = {}): BmcReport => ({
  uuid,
  bmcVersion: '1.0',
  biosVersion: '2.0',
  fru: { board_mfg: 'ACME' },
  powerState: 'ON',
  indicatorLED: 'LED-ON',
  powerSupplies: [],
  source: 'ipmi',
  missing: [],
  ...over,
});

describe('report fields the Go daemon never sends from Redfish', () => {
  it('leaves out BMCVersion, board_part_number and board_mfg_serial read over Redfish (metal-api keeps metal-hammer\'s), sends them read over IPMI', () => {
    const fru = { board_mfg: 'Dell Inc.', board_part_number: 'PowerEdge R640', board_mfg_serial: 'CN7475', chassis_part_serial: 'CN7475', product_serial: '8XJ2' };
    const fromRedfish = report('u1', { bmcVersion: '7.10.30.00', fru, fieldSources: { bmcVersion: 'redfish', board_mfg: 'redfish', board_part_number: 'redfish', board_mfg_serial: 'redfish', chassis_part_serial: 'redfish', product_serial: 'redfish' } });
    const fromIpmi = report('u2', { bmcVersion: '1.74', fru: { board_mfg: 'Supermicro', board_part_number: 'X11DPT-B', board_mfg_serial: 'WM19AS' }, fieldSources: { bmcVersion: 'ipmi', board_mfg: 'ipmi', board_part_number: 'ipmi', board_mfg_serial: 'ipmi' } });
    const body = assembleReportBody([{ ip: '10.0.0.1', report: fromRedfish }, { ip: '10.0.0.2', report: fromIpmi }]);
    expect(body.reports.u1!.BMCVersion).toBe('');
    expect(body.reports.u1!.FRU).toEqual({ board_mfg: 'Dell Inc.', chassis_part_serial: 'CN7475', product_serial: '8XJ2' });
    expect(body.reports.u2).toMatchObject({ BMCVersion: '1.74', FRU: { board_mfg: 'Supermicro', board_part_number: 'X11DPT-B', board_mfg_serial: 'WM19AS' } });
  });
});

describe('assembleReportBody', () => {
  it('keeps the first BMC of a machine UUID and names both in the duplicates', () => {
    const body = assembleReportBody([
      { ip: '10.0.0.1', report: report('u1') },
      { ip: '10.0.0.2', report: report('u2') },
      { ip: '10.0.0.3', report: report('u1', { bmcVersion: 'other' }) },
    ]);
    expect(Object.keys(body.reports)).toEqual(['u1', 'u2']);
    expect(body.reports.u1).toMatchObject({ BMCIp: '10.0.0.1', BMCVersion: '1.0', FRU: { board_mfg: 'ACME' }, PowerMetric: null });
    expect(body.duplicates).toEqual([{ uuid: 'u1', bmcs: ['10.0.0.1', '10.0.0.3'] }]);
    expect(body.bounded).toEqual([]);
  });

  it('reports an unread LED as the last state read for the machine', () => {
    const memory = createLedMemory();
    assembleReportBody([{ ip: '10.0.0.1', report: report('u1', { indicatorLED: 'LED-ON' }) }], memory);
    const body = assembleReportBody([{ ip: '10.0.0.1', report: report('u1', { indicatorLED: 'UNKNOWN' }) }], memory);
    expect(body.reports.u1!.IndicatorLEDState).toBe('LED-ON');
    expect(assembleReportBody([{ ip: '10.0.0.1', report: report('u1', { indicatorLED: 'UNKNOWN' }) }]).reports.u1!.IndicatorLEDState).toBe('LED-OFF');
  });

  it('bounds each entry and says what it cut', () => {
    const body = assembleReportBody([{ ip: '10.0.0.1', report: report('u1', { bmcVersion: 'x'.repeat(MAX_STRING + 5) }) }]);
    expect(body.reports.u1!.BMCVersion).toHaveLength(MAX_STRING);
    expect(body.bounded).toEqual([{ bmc: '10.0.0.1', uuid: 'u1', cut: ['BMCVersion'] }]);
  });
});
