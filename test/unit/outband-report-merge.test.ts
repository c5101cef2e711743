import { describe, expect, it } from 'vitest';
import type { RedfishInventory } from '../../src/redfish/inventory.js';
import { ipmiNeed, mergeReport, redfishReading } from '../../src/outband/report-merge.js';
import { IPMI_FIRST, REDFISH_FIRST, VENDOR_PROFILES } from '../../src/outband/vendors.js';

const UUID = '4c4c4544-0042-3510-8052-b4c04f384d32';

function inventory(over: Partial<RedfishInventory> = {}): RedfishInventory {
  return {
    serviceRoot: {},
    system: { path: '/s', uuid: UUID, manufacturer: 'Lenovo', model: 'SR630', serialNumber: 'S1', partNumber: 'P1', powerState: 'On', biosVersion: 'B1', indicatorLED: 'Off', managedBy: [], chassis: [] } as unknown as RedfishInventory['system'],
    manager: { firmwareVersion: '8.40' } as RedfishInventory['manager'],
    chassis: { manufacturer: 'Lenovo', serialNumber: 'C1', partNumber: 'CP1', model: 'M1' } as unknown as RedfishInventory['chassis'],
    powerMetric: { averageConsumedWatts: 200 },
    powerSupplies: [],
    missing: [],
    ...over,
  };
}

describe('ipmiNeed (the fallback policy)', () => {
  const complete = redfishReading(inventory());
  it('nothing when IPMI is not allowed', () => {
    expect(ipmiNeed({ ipmiAllowed: false, uuidRule: 'auto', reportSources: IPMI_FIRST, redfish: { ...complete, powerState: 'UNKNOWN' } })).toBe('none');
  });
  it('only the GUID when Redfish is complete and the vendor takes its fields from Redfish', () => {
    expect(ipmiNeed({ ipmiAllowed: true, uuidRule: 'auto', reportSources: REDFISH_FIRST, redfish: complete })).toBe('guid');
    expect(ipmiNeed({ ipmiAllowed: true, uuidRule: 'redfish', reportSources: REDFISH_FIRST, redfish: complete })).toBe('none');
  });
  it('the identity when the vendor table names IPMI for a field, or Redfish left one empty', () => {
    expect(ipmiNeed({ ipmiAllowed: true, uuidRule: 'auto', reportSources: IPMI_FIRST, redfish: complete })).toBe('identity');
    expect(ipmiNeed({ ipmiAllowed: true, uuidRule: 'redfish', reportSources: REDFISH_FIRST, redfish: { ...complete, fields: { ...complete.fields, product_serial: ' ' } } })).toBe('identity');
  });
  it('everything when Redfish lacks power state, LED or power metric', () => {
    expect(ipmiNeed({ ipmiAllowed: true, uuidRule: 'auto', reportSources: REDFISH_FIRST, redfish: { ...complete, led: 'UNKNOWN' } })).toBe('full');
    expect(ipmiNeed({ ipmiAllowed: true, uuidRule: 'auto', reportSources: REDFISH_FIRST, redfish: { ...complete, powerMetric: undefined } })).toBe('full');
  });
  it('before the inventory: what the vendor table and the UUID rule ask for', () => {
    expect(ipmiNeed({ ipmiAllowed: true, uuidRule: 'auto', reportSources: IPMI_FIRST })).toBe('identity');
    expect(ipmiNeed({ ipmiAllowed: true, uuidRule: 'auto', reportSources: REDFISH_FIRST })).toBe('guid');
  });
});

describe('mergeReport', () => {
  const now = new Date('2026-12-01T00:00:00Z');
  it('a GUID remembered from an earlier read: the same decision, source redfish, the basis says where the GUID came from', () => {
    // UUID's bytes in SMBIOS order: the first three fields little-endian
    const guid = Buffer.from('44454c4c42001035805' + '2b4c04f384d32', 'hex');
    const fresh = mergeReport({ inventory: inventory(), ipmi: { guid, problems: [] }, profile: VENDOR_PROFILES.lenovo, uuidRule: 'auto', now });
    const kept = mergeReport({ inventory: inventory(), ipmi: { guid, guidRemembered: true, problems: [] }, profile: VENDOR_PROFILES.lenovo, uuidRule: 'auto', now });
    expect(fresh.ok && fresh.uuid.kind).toBe('redfish-confirmed');
    expect(kept.ok && kept.uuid.kind).toBe('redfish-confirmed');
    expect(fresh.ok && fresh.report.source).toBe('redfish+ipmi');
    expect(kept.ok && kept.report.source).toBe('redfish');
    expect(kept.ok && kept.uuid.basis).toMatch(/confirmed by the IPMI GUID \(the GUID of an earlier read\)$/);
    expect(kept.ok && { ...kept.report, source: 'redfish+ipmi' }).toEqual(fresh.ok && fresh.report);
  });
  it('Redfish alone: fields from Redfish, source redfish', () => {
    const r = mergeReport({ inventory: inventory(), ipmi: { problems: [] }, profile: VENDOR_PROFILES.lenovo, uuidRule: 'auto', now });
    expect(r.ok && r.report).toMatchObject({ uuid: UUID, bmcVersion: '8.40', powerState: 'ON', indicatorLED: 'LED-OFF', source: 'redfish', fieldSources: { bmcVersion: 'redfish' } });
    expect(r.ok && r.uuid.kind).toBe('redfish');
  });
  it('IPMI-first vendor: IPMI fields win, status from IPMI fills what Redfish lacks, problems kept in order', () => {
    const inv = inventory({ system: { ...inventory().system!, powerState: undefined, indicatorLED: undefined } as RedfishInventory['system'], missing: ['PowerState: system has no PowerState'] });
    const r = mergeReport({
      inventory: inv,
      ipmi: { identity: { bmcVersion: '1.74', fru: { board_mfg: 'Supermicro' } }, status: { powerState: 'OFF', led: 'LED-ON' }, problems: ['FRU: checksum'] },
      profile: VENDOR_PROFILES.supermicro,
      uuidRule: 'auto',
      now,
    });
    expect(r.ok && r.report).toMatchObject({ bmcVersion: '1.74', fru: { board_mfg: 'Supermicro' }, powerState: 'OFF', indicatorLED: 'LED-ON', source: 'redfish+ipmi', missing: ['PowerState: system has no PowerState', 'FRU: checksum'] });
  });
  it('no UUID from either protocol is a typed failure, not a report', () => {
    const inv = inventory({ system: { ...inventory().system!, uuid: undefined } as RedfishInventory['system'] });
    const r = mergeReport({ inventory: inv, ipmi: { problems: [] }, profile: VENDOR_PROFILES.lenovo, uuidRule: 'auto', now });
    expect(r).toMatchObject({ ok: false, problem: 'no-uuid', ipmiGuid: false, report: { uuid: '' } });
    expect(r.report.missing).toContain('UUID: no usable system UUID over Redfish and none over IPMI');
  });
  it('only placeholder UUIDs (a nil Redfish UUID, an all-FF GUID) are a typed failure too, and the report says which', () => {
    const inv = inventory({ system: { ...inventory().system!, uuid: '00000000-0000-0000-0000-000000000000' } as RedfishInventory['system'] });
    const r = mergeReport({ inventory: inv, ipmi: { guid: Buffer.alloc(16, 0xff), problems: [] }, profile: VENDOR_PROFILES.lenovo, uuidRule: 'auto', now });
    expect(r).toMatchObject({ ok: false, problem: 'placeholder-uuid', ipmiGuid: true, report: { uuid: '', uuidGap: 'placeholder-uuid' } });
    expect(r.report.missing.at(-1)).toMatch(/^UUID: only a placeholder/);
    // a real GUID beside the nil Redfish UUID decides
    const guid = Buffer.from('44454c4c42001035805' + '2b4c04f384d32', 'hex');
    expect(mergeReport({ inventory: inv, ipmi: { guid, problems: [] }, profile: VENDOR_PROFILES.lenovo, uuidRule: 'auto', now })).toMatchObject({ ok: true, report: { uuid: UUID } });
  });
  it('an unreadable LED is named as missing', () => {
    const inv = inventory({ system: { ...inventory().system!, indicatorLED: undefined } as RedfishInventory['system'] });
    const r = mergeReport({ inventory: inv, ipmi: { problems: [] }, profile: VENDOR_PROFILES.lenovo, uuidRule: 'auto', now });
    expect(r.ok && r.report.missing).toContain('IndicatorLED: neither Redfish nor IPMI reports the identify LED');
  });
});
