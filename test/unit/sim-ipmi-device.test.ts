import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeDeviceId } from '../../src/ipmi/commands.js';
import { parseFru } from '../../src/ipmi/fru.js';
import { guidToUuid } from '../../src/ipmi/guid.js';
import { bmcOwnUuid, deviceIdData, encodeFirmwareRevision, fruImage, systemGuid, VENDOR_IDS } from '../../src/sim/ipmi-device.js';
import { createMachineState } from '../../src/sim/machine.js';

describe('encodeFirmwareRevision', () => {
  it.each([
    ['1.74.11', 1, 0x74, [11]],
    ['8.40', 8, 0x40, []],
    ['12.61.21', 12, 0x61, [21]],
    ['1.5', 1, 0x05, []],
    ['3.2.1.9', 3, 0x02, [1, 9]],
    ['2', 2, 0x00, []],
  ] as const)('%s → major %d, minor BCD 0x%s', (version, major, minorBcd, aux) => {
    expect(encodeFirmwareRevision(version)).toEqual({ major, minorBcd, aux });
  });

  it('keeps the last two digits of a long minor and caps the major at 7 bits', () => {
    expect(encodeFirmwareRevision('200.1234')).toEqual({ major: 0x7f, minorBcd: 0x34, aux: [] });
  });

  it('never produces a non-BCD minor or an out-of-range byte', () => {
    fc.assert(
      fc.property(fc.string(), (version) => {
        const r = encodeFirmwareRevision(version);
        expect(r.major).toBeGreaterThanOrEqual(0);
        expect(r.major).toBeLessThanOrEqual(0x7f);
        expect(r.minorBcd >> 4).toBeLessThanOrEqual(9);
        expect(r.minorBcd & 0x0f).toBeLessThanOrEqual(9);
        for (const b of r.aux) expect(b >= 0 && b <= 0xff).toBe(true);
      }),
    );
  });
});

describe('deviceIdData', () => {
  it('reads back as the machine firmware revision and vendor', () => {
    for (let i = 0; i < 12; i++) {
      const state = createMachineState('device', i);
      const id = decodeDeviceId(deviceIdData(state));
      const [major, minor] = state.bmcVersion.split('.');
      expect(id.firmwareRevision).toBe(`${major}.${minor!.padStart(2, '0')}`);
      expect(id.ipmiVersion).toBe('2.0');
      expect(id.manufacturerId).toBe(VENDOR_IDS[state.manufacturer]!.manufacturerId);
    }
  });

  it('uses the IANA numbers of the three vendors', () => {
    expect(VENDOR_IDS).toMatchObject({
      Supermicro: { manufacturerId: 10876 },
      Lenovo: { manufacturerId: 19046 },
      Gigabyte: { manufacturerId: 15370 },
    });
  });

  it('answers 1.74 for BMC firmware 1.74.11', () => {
    const state = { ...createMachineState('device', 0), bmcVersion: '1.74.11', manufacturer: 'Supermicro' };
    const d = deviceIdData(state);
    expect([d[2], d[3]]).toEqual([1, 0x74]);
    expect(decodeDeviceId(d)).toMatchObject({ firmwareRevision: '1.74', manufacturerId: 10876, auxFirmwareRevision: Buffer.from([11, 0, 0, 0]) });
  });
});

describe('systemGuid and fruImage', () => {
  it('sends the SMBIOS UUID in SMBIOS byte order', () => {
    const state = createMachineState('guid', 3);
    expect(guidToUuid(systemGuid(state), 'smbios')).toBe(state.uuid);
  });

  it('sends it in textual (RFC 4122) order with ipmi-guid-rfc4122', () => {
    const state = { ...createMachineState('guid', 3), quirks: new Set(['ipmi-guid-rfc4122'] as const) };
    expect(guidToUuid(systemGuid(state), 'rfc4122')).toBe(state.uuid);
    expect(guidToUuid(systemGuid(state), 'smbios')).not.toBe(state.uuid);
  });

  it('sends the BMC\'s own version-3 GUID with ipmi-guid-unrelated, the host\'s UUID in no byte order (property)', () => {
    fc.assert(
      fc.property(fc.uuid(), (uuid) => {
        const state = { ...createMachineState('guid', 3), uuid, quirks: new Set(['ipmi-guid-unrelated'] as const) };
        const guid = systemGuid(state);
        expect(guidToUuid(guid, 'smbios')).toBe(bmcOwnUuid(uuid));
        expect(bmcOwnUuid(uuid)).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-3[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
        for (const order of ['smbios', 'rfc4122', 'ipmi'] as const) expect(guidToUuid(guid, order)).not.toBe(uuid);
        // stable: the same BMC sends the same GUID
        expect(systemGuid(state)).toEqual(guid);
      }),
    );
  });

  it('encodes the machine FRU so that it parses back', () => {
    const state = createMachineState('fru', 1);
    const fru = parseFru(fruImage(state));
    expect(fru.problems).toEqual([]);
    expect(fru.board).toMatchObject({ manufacturer: state.fru.boardManufacturer, product: state.fru.boardProduct, serial: state.fru.boardSerial });
    expect(fru.product).toMatchObject({ manufacturer: state.fru.productManufacturer, name: state.fru.productName, serial: state.fru.productSerial });
    expect(fru.chassis).toMatchObject({ type: 0x17, partNumber: state.fru.chassisPartNumber, serial: state.fru.chassisSerial });
  });
});
