import { describe, expect, it } from 'vitest';
import type { RedfishInventory } from '../../src/redfish/inventory.js';
import { guidMemoryAfterRead, ipmiNeed, mergeReport, redfishReading } from '../../src/outband/report-merge.js';
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

describe('guidMemoryAfterRead (what a read leaves in the GUID memory)', () => {
  const now = new Date('2026-12-01T00:00:00Z');
  // UUID's bytes in SMBIOS order: they confirm it
  const guid = Buffer.from('44454c4c42001035805' + '2b4c04f384d32', 'hex');
  const merged = (ipmi: Parameters<typeof mergeReport>[0]['ipmi'], uuid = UUID) => mergeReport({ inventory: inventory({ system: { ...inventory().system!, uuid } as RedfishInventory['system'] }), ipmi, profile: VENDOR_PROFILES.lenovo, uuidRule: 'auto', now });
  const identity = { bmcVersion: '1.74', fru: { board_mfg: 'Supermicro' } };

  it('a confirming GUID is the decision whatever the report needs; it stands in for the IPMI session only where the report needs no more', () => {
    const reading = { guid, problems: [] };
    expect(guidMemoryAfterRead({ need: 'guid', reading, merged: merged(reading), managerFirmware: '8.40', before: undefined })).toEqual({ kind: 'remember', decided: { guid, uuid: UUID }, spare: {} });
    // Redfish lacks power state, LED or power metric: IPMI is read every time, the decision is kept all the same
    expect(guidMemoryAfterRead({ need: 'full', reading, merged: merged(reading), managerFirmware: '8.40', before: undefined })).toEqual({ kind: 'remember', decided: { guid, uuid: UUID } });
    const withIdentity = { guid, identity, problems: [] };
    expect(guidMemoryAfterRead({ need: 'identity', reading: withIdentity, merged: merged(withIdentity), managerFirmware: '8.40', before: undefined })).toEqual({ kind: 'remember', decided: { guid, uuid: UUID }, spare: { identity: { ...identity, managerFirmware: '8.40' } } });
    // an identity read with a problem is read again next time; so is one without Redfish's firmware version beside it
    const noFru = { guid, identity, problems: ['FRU: not present'] };
    expect(guidMemoryAfterRead({ need: 'identity', reading: noFru, merged: merged(noFru), managerFirmware: '8.40', before: undefined })).toEqual({ kind: 'remember', decided: { guid, uuid: UUID } });
    expect(guidMemoryAfterRead({ need: 'identity', reading: withIdentity, merged: merged(withIdentity), managerFirmware: undefined, before: undefined })).toEqual({ kind: 'remember', decided: { guid, uuid: UUID } });
  });

  it('another GUID, or another UUID, ends what was remembered; a read that learnt nothing leaves it', () => {
    const before = { guid, uuid: UUID };
    const other = Buffer.alloc(16, 0x5a);
    expect(guidMemoryAfterRead({ need: 'guid', reading: { guid: other, problems: [] }, merged: merged({ guid: other, problems: [] }), managerFirmware: '8.40', before })).toEqual({ kind: 'forget' });
    // IPMI failed: the Redfish UUID alone, another one than decided
    const failed = { problems: ['IPMI: timeout'] };
    expect(guidMemoryAfterRead({ need: 'guid', reading: failed, merged: merged(failed, '3f2504e0-4f89-41d3-9a0c-0305e82c3301'), managerFirmware: '8.40', before })).toEqual({ kind: 'forget' });
    expect(guidMemoryAfterRead({ need: 'guid', reading: failed, merged: merged(failed), managerFirmware: '8.40', before })).toEqual({ kind: 'keep' });
    // no UUID at all (a nil Redfish UUID): nothing contradicts the decision
    expect(guidMemoryAfterRead({ need: 'guid', reading: failed, merged: merged(failed, '00000000-0000-0000-0000-000000000000'), managerFirmware: '8.40', before })).toEqual({ kind: 'keep' });
    expect(guidMemoryAfterRead({ need: 'guid', reading: failed, merged: merged(failed), managerFirmware: '8.40', before: undefined })).toEqual({ kind: 'keep' });
  });
});
