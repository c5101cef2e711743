/**
 * The vendor table: detection from real manufacturer strings and IANA numbers, the report
 * field sources per vendor, the pure merge of Redfish and IPMI values, and the LED memory.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { mergeReportFields, type ReportFieldValues } from '../../src/outband/report-fields.js';
import { IPMI_FIRST, REDFISH_FIRST, REPORT_FIELDS, VENDOR_PROFILES, vendorOfIana, vendorOfManufacturer, type ReportField, type ReportSources } from '../../src/outband/vendors.js';
import { createLedMemory } from '../../src/report/led-memory.js';

describe('vendor detection', () => {
  // System Manufacturer (or service root Vendor) strings as real BMCs and emulators send them.
  it.each([
    ['Supermicro', 'supermicro'],
    ['Super Micro Computer, Inc.', 'supermicro'],
    ['Novarion-Systems', 'novarion'],
    ['NOVARION-SYSTEMS', 'novarion'],
    ['Dell Inc.', 'dell'],
    ['Lenovo', 'lenovo'],
    ['IBM', 'lenovo'],
    ['GIGABYTE', 'gigabyte'],
    ['Giga Computing', 'gigabyte'],
    ['Giga-Byte Technology', 'gigabyte'],
    ['HPE', 'hpe'],
    ['Hewlett Packard Enterprise', 'hpe'],
    ['Vagrant', 'virtual'],
    ['vagrant', 'virtual'],
    ['QEMU', 'virtual'],
    ['Red Hat', 'virtual'],
    ['innotek GmbH', 'virtual'],
    ['Sushy Emulator', 'virtual'],
    ['Contoso', 'virtual'],
    ['Quanta Cloud Technology Inc.', 'unknown'],
    ['', 'unknown'],
    [undefined, 'unknown'],
  ])('manufacturer %j → %s', (manufacturer, vendor) => {
    expect(vendorOfManufacturer(manufacturer)).toBe(vendor);
  });

  // Get Device ID manufacturer ids (IANA private enterprise numbers).
  it.each([
    [10876, 'supermicro'], // Super Micro Computer Inc. (Novarion BMCs too)
    [674, 'dell'],
    [19046, 'lenovo'], // Lenovo Enterprise Business Group
    [20301, 'lenovo'], // IBM eServer X
    [15370, 'gigabyte'], // GIGA-BYTE TECHNOLOGY CO., LTD
    [47196, 'hpe'],
    [4753, 'virtual'], // MontaVista: OpenIPMI ipmi_sim, mini-lab's BMC
    [0, 'unknown'], // reserved: virtualbmc/pyghmi
    [343, 'unknown'], // Intel
    [undefined, 'unknown'],
  ])('IANA %s → %s', (id, vendor) => {
    expect(vendorOfIana(id)).toBe(vendor);
  });

  it('Novarion runs the Supermicro profile under its own name', () => {
    const { vendor, ...novarion } = VENDOR_PROFILES.novarion;
    const { vendor: _s, ...supermicro } = VENDOR_PROFILES.supermicro;
    expect(vendor).toBe('novarion');
    expect(novarion).toEqual(supermicro);
  });

  it('IPMI is authoritative for every report field on Supermicro and Novarion, Redfish elsewhere', () => {
    for (const [vendor, profile] of Object.entries(VENDOR_PROFILES)) {
      const expected = vendor === 'supermicro' || vendor === 'novarion' ? IPMI_FIRST : REDFISH_FIRST;
      expect(profile.reportSources, vendor).toEqual(expected);
    }
    expect(Object.keys(IPMI_FIRST).sort()).toEqual([...REPORT_FIELDS].sort());
    expect(REPORT_FIELDS).toHaveLength(9);
  });
});

describe('mergeReportFields', () => {
  const redfish: ReportFieldValues = {
    bmcVersion: '1.74.11',
    board_mfg: 'Supermicro',
    board_mfg_serial: 'CS0001',
    board_part_number: 'X11DPT-B',
    product_serial: 'PS0001',
  };
  const ipmi: ReportFieldValues = {
    bmcVersion: '1.74',
    board_mfg: 'Supermicro',
    board_mfg_serial: 'BS0001',
    board_part_number: 'X11DPT-B',
    chassis_part_number: 'CSE-217',
    product_serial: ' ',
  };

  it('Supermicro: IPMI values, Redfish only where IPMI is empty', () => {
    const m = mergeReportFields(IPMI_FIRST, { redfish, ipmi });
    expect(m.bmcVersion).toBe('1.74');
    expect(m.fru).toEqual({ board_mfg: 'Supermicro', board_mfg_serial: 'BS0001', board_part_number: 'X11DPT-B', chassis_part_number: 'CSE-217', product_serial: 'PS0001' });
    expect(m.origin).toEqual({ bmcVersion: 'ipmi', board_mfg: 'ipmi', board_mfg_serial: 'ipmi', board_part_number: 'ipmi', chassis_part_number: 'ipmi', product_serial: 'redfish' });
  });

  it('other vendors: Redfish values, IPMI fills gaps; without an IPMI read only Redfish', () => {
    const m = mergeReportFields(REDFISH_FIRST, { redfish, ipmi });
    expect(m.bmcVersion).toBe('1.74.11');
    expect(m.fru.board_mfg_serial).toBe('CS0001');
    expect(m.origin.chassis_part_number).toBe('ipmi');
    const only = mergeReportFields(IPMI_FIRST, { redfish });
    expect(only.bmcVersion).toBe('1.74.11');
    expect(Object.values(only.origin)).toEqual(Array(5).fill('redfish'));
  });

  it('nothing read: empty version, empty FRU', () => {
    expect(mergeReportFields(IPMI_FIRST, {})).toEqual({ bmcVersion: '', fru: {}, origin: {} });
  });

  it('property: every field comes from its authoritative protocol when that has a value, else from the other, never blank', () => {
    const value = fc.option(fc.oneof(fc.constant(''), fc.constant('  '), fc.string({ minLength: 1, maxLength: 8 })), { nil: undefined });
    const values = fc.record(Object.fromEntries(REPORT_FIELDS.map((f) => [f, value])) as Record<ReportField, fc.Arbitrary<string | undefined>>);
    const sources = fc.record(Object.fromEntries(REPORT_FIELDS.map((f) => [f, fc.constantFrom('redfish' as const, 'ipmi' as const)])) as Record<ReportField, fc.Arbitrary<'redfish' | 'ipmi'>>);
    fc.assert(
      fc.property(sources, values, values, (src: ReportSources, r, i) => {
        const m = mergeReportFields(src, { redfish: r, ipmi: i });
        for (const f of REPORT_FIELDS) {
          const read = { redfish: r[f], ipmi: i[f] };
          const first = src[f];
          const other = first === 'redfish' ? 'ipmi' : 'redfish';
          const ok = (v: string | undefined) => v !== undefined && v.trim() !== '';
          const expected = ok(read[first]) ? read[first] : ok(read[other]) ? read[other] : undefined;
          const got = f === 'bmcVersion' ? m.bmcVersion || undefined : m.fru[f];
          if (got !== expected) return false;
          if (expected !== undefined && m.origin[f] !== (ok(read[first]) ? first : other)) return false;
        }
        return true;
      }),
    );
  });
});

describe('LED memory', () => {
  it('a known state is reported and remembered; unknown is the last known state, else LED-OFF', () => {
    const led = createLedMemory();
    expect(led.resolve('a', 'UNKNOWN')).toBe('LED-OFF');
    expect(led.resolve('a', 'LED-ON')).toBe('LED-ON');
    expect(led.resolve('a', 'UNKNOWN')).toBe('LED-ON');
    expect(led.resolve('b', 'UNKNOWN')).toBe('LED-OFF');
    expect(led.resolve('a', 'LED-OFF')).toBe('LED-OFF');
    expect(led.resolve('a', 'UNKNOWN')).toBe('LED-OFF');
  });

  it('is bounded: the machine read least recently is forgotten first', () => {
    const led = createLedMemory(2);
    led.resolve('a', 'LED-ON');
    led.resolve('b', 'LED-ON');
    led.resolve('a', 'LED-ON');
    led.resolve('c', 'LED-ON');
    expect(led.size).toBe(2);
    expect(led.resolve('b', 'UNKNOWN')).toBe('LED-OFF');
    expect(led.resolve('a', 'UNKNOWN')).toBe('LED-ON');
  });
});
