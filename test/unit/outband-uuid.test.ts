/** The machine-UUID rule, with vectors, and the Redfish → metal-api report mapping. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { guidToUuid, isImplausibleV1Timestamp, isPlaceholderUuid, isPlausibleV1Uuid, isV4Uuid, swapMixedEndian, uuidToGuid } from '../../src/ipmi/guid.js';
import { fruOf, ledStateOf, powerMetricOf, powerStateOf, powerSuppliesOf } from '../../src/outband/redfish-report.js';
import { decideUuid, GUID_CONFIRMED_BASES, listedGuidOrder, machineUuid, UUID_BASIS_LOGGED } from '../../src/outband/uuid.js';
import { vendorOfIana, vendorOfManufacturer, VENDOR_PROFILES } from '../../src/outband/vendors.js';

const NOW = new Date('2026-11-23T12:00:00Z');
// An SMBIOS UUID as dmidecode prints it inside the machine, and the same bytes' mixed-endian form.
const INBAND = '4c4c4544-0051-3610-8057-b4c04f4e4c32';
const MIXED = '44454c4c-5100-1036-8057-b4c04f4e4c32';

describe('decideUuid', () => {
  it('vectors: the swap is the mixed-endian form', () => {
    expect(swapMixedEndian(INBAND)).toBe(MIXED);
  });

  it('keeps a Redfish UUID that the IPMI GUID (SMBIOS order) confirms', () => {
    const d = decideUuid({ redfishUuid: INBAND.toUpperCase(), ipmiGuid: uuidToGuid(INBAND, 'smbios'), guidEncoding: 'smbios', rule: 'auto', now: NOW });
    expect(d).toEqual({ uuid: INBAND, kind: 'redfish-confirmed', basis: 'Redfish UUID, confirmed by the IPMI GUID' });
  });

  it('swaps a mixed-endian Redfish UUID when the IPMI GUID says so', () => {
    const d = decideUuid({ redfishUuid: MIXED, ipmiGuid: uuidToGuid(INBAND, 'smbios'), guidEncoding: 'smbios', rule: 'auto', now: NOW });
    expect(d?.uuid).toBe(INBAND);
    expect(d?.basis).toMatch(/mixed-endian/);
  });

  it('keeps Redfish when the BMC sends its IPMI GUID in RFC 4122 or reversed order', () => {
    for (const enc of ['rfc4122', 'ipmi'] as const) {
      const d = decideUuid({ redfishUuid: INBAND, ipmiGuid: uuidToGuid(INBAND, enc), guidEncoding: 'smbios', rule: 'auto', now: NOW });
      expect(d?.uuid).toBe(INBAND);
    }
  });

  it('without IPMI: swaps only version-1 UUIDs with an implausible timestamp (go-hal heuristic)', () => {
    // MIXED has version nibble 1 and a timestamp far in the past: swapped back to the in-band form.
    expect(decideUuid({ redfishUuid: MIXED, guidEncoding: 'smbios', rule: 'auto', now: NOW })?.uuid).toBe(INBAND);
    const v4 = '3f2504e0-4f89-41d3-9a0c-0305e82c3301';
    expect(decideUuid({ redfishUuid: v4, guidEncoding: 'smbios', rule: 'auto', now: NOW })?.uuid).toBe(v4);
  });

  it('without IPMI on Supermicro and Novarion: every UUID but a plausible version-1 one is swapped, as go-hal\'s supermicro.UUID does (its own test vector)', () => {
    const supermicro = { guidEncoding: 'smbios' as const, rule: 'auto' as const, now: NOW, swapRedfishUuidUnlessV1: VENDOR_PROFILES.supermicro.swapRedfishUuidUnlessV1 };
    expect(VENDOR_PROFILES.novarion.swapRedfishUuidUnlessV1).toBe(true);
    // go-hal internal/uuid-endianness TestUUIDConvert: bad → good, good kept (a plausible version 1 of 2021)
    expect(decideUuid({ ...supermicro, redfishUuid: '0060c2bd-3089-eb11-8000-7cc255106b08' })).toMatchObject({ uuid: 'bdc26000-8930-11eb-8000-7cc255106b08', kind: 'redfish-swapped-heuristic' });
    expect(decideUuid({ ...supermicro, redfishUuid: 'bdc26000-8930-11eb-8000-7cc255106b08' })?.uuid).toBe('bdc26000-8930-11eb-8000-7cc255106b08');
    // not version 1 at all (Supermicro's usual UUIDs): swapped, where other vendors keep it
    const v4 = '3f2504e0-4f89-41d3-9a0c-0305e82c3301';
    expect(decideUuid({ ...supermicro, redfishUuid: v4 })?.uuid).toBe(swapMixedEndian(v4));
    expect(decideUuid({ redfishUuid: v4, guidEncoding: 'smbios', rule: 'auto', now: NOW, swapRedfishUuidUnlessV1: VENDOR_PROFILES.dell.swapRedfishUuidUnlessV1 })?.uuid).toBe(v4);
    // an IPMI GUID that confirms the form Redfish sends still decides
    expect(decideUuid({ ...supermicro, redfishUuid: v4, ipmiGuid: uuidToGuid(v4, 'smbios') })?.kind).toBe('redfish-confirmed');
  });

  it('IPMI alone: the GUID in the vendor encoding; fixed rules override evidence', () => {
    const guid = uuidToGuid(INBAND, 'smbios');
    expect(decideUuid({ ipmiGuid: guid, guidEncoding: 'smbios', rule: 'auto', now: NOW })?.uuid).toBe(INBAND);
    expect(decideUuid({ redfishUuid: INBAND, ipmiGuid: guid, guidEncoding: 'smbios', rule: 'redfish-swapped', now: NOW })?.uuid).toBe(MIXED);
    expect(decideUuid({ redfishUuid: 'not-a-uuid', guidEncoding: 'smbios', rule: 'redfish', now: NOW })).toBeUndefined();
  });

  it('Supermicro and Novarion, with IPMI evidence: the SMBIOS UUID, whichever form Redfish sends (go-hal swaps their UUIDs)', () => {
    // The one ambiguous case: an in-band UUID that is itself an implausible version-1 UUID.
    fc.assert(
      fc.property(fc.uuid(), fc.boolean(), (uuid, mixed) => {
        fc.pre(!isImplausibleV1Timestamp(uuid, NOW));
        const redfishUuid = mixed ? swapMixedEndian(uuid) : uuid;
        const d = decideUuid({ redfishUuid, ipmiGuid: uuidToGuid(uuid, 'smbios'), guidEncoding: 'smbios', rule: 'auto', now: NOW, swapRedfishUuidUnlessV1: true });
        expect(d?.uuid).toBe(uuid.toLowerCase());
      }),
    );
  });

  describe('other vendors: an IPMI GUID that matches the byte-swapped Redfish UUID', () => {
    // the reviewer's vector: a version-4 Redfish UUID, the BMC sending its GUID in RFC 4122 order (ipmitool#239)
    const V4 = '3f2504e0-4f89-41d3-9a0c-0305e82c3301';
    const auto = { guidEncoding: 'smbios' as const, rule: 'auto' as const, now: NOW };

    it('keeps a version-4 Redfish UUID whose GUID comes in RFC 4122 order, as the Go daemon reports it', () => {
      expect(swapMixedEndian(V4)).toBe('e004253f-894f-d341-9a0c-0305e82c3301');
      for (const vendor of ['dell', 'lenovo', 'gigabyte', 'hpe', 'virtual', 'unknown'] as const) {
        const d = decideUuid({ ...auto, redfishUuid: V4, ipmiGuid: uuidToGuid(V4, 'rfc4122'), swapRedfishUuidUnlessV1: VENDOR_PROFILES[vendor].swapRedfishUuidUnlessV1 });
        expect(d, vendor).toMatchObject({ uuid: V4, kind: 'ipmi-guid-rfc4122' });
      }
      // Supermicro: go-hal swaps it, and the GUID in SMBIOS order agrees
      expect(decideUuid({ ...auto, redfishUuid: V4, ipmiGuid: uuidToGuid(V4, 'rfc4122'), swapRedfishUuidUnlessV1: true })?.uuid).toBe(swapMixedEndian(V4));
    });

    it('swaps a mixed-endian Redfish UUID where the swapped form is the version-4 one', () => {
      const d = decideUuid({ ...auto, redfishUuid: swapMixedEndian(V4), ipmiGuid: uuidToGuid(V4, 'smbios') });
      expect(d).toMatchObject({ uuid: V4, kind: 'redfish-mixed-endian' });
    });

    it('keeps Redfish, named as a guess, where both forms are version 4, and keeps the GUID as evidence', () => {
      // byte 7's high nibble is 4 too: swapped, the version digit is 4 again
      const both = '3f2504e0-4f89-4143-9a0c-0305e82c3301';
      expect(swapMixedEndian(both)).toBe('e004253f-894f-4341-9a0c-0305e82c3301');
      for (const redfishUuid of [both, swapMixedEndian(both)]) {
        const d = decideUuid({ ...auto, redfishUuid, ipmiGuid: uuidToGuid(swapMixedEndian(redfishUuid), 'smbios') });
        expect(d).toMatchObject({ uuid: redfishUuid, kind: 'redfish-ambiguous' });
        expect(d?.basis).toContain(swapMixedEndian(redfishUuid));
      }
      expect(GUID_CONFIRMED_BASES.has('redfish-ambiguous')).toBe(true);
      expect(UUID_BASIS_LOGGED['redfish-ambiguous']).toBe('once-per-bmc');
    });

    it('the GUID order listed for the vendor (METAL_BMC_GUID_ENCODING) settles only what the fields leave open', () => {
      const both = '3f2504e0-4f89-4143-9a0c-0305e82c3301';
      const ambiguous = { ...auto, redfishUuid: both, ipmiGuid: uuidToGuid(both, 'rfc4122'), guidOrderListed: true };
      expect(decideUuid({ ...ambiguous, guidEncoding: 'rfc4122' })).toMatchObject({ uuid: both, kind: 'ipmi-guid-rfc4122' });
      expect(decideUuid({ ...ambiguous, guidEncoding: 'smbios' })).toMatchObject({ uuid: swapMixedEndian(both), kind: 'redfish-mixed-endian' });
      expect(decideUuid({ ...ambiguous, guidEncoding: 'smbios' })?.basis).toContain('configured for the vendor');
      // the reversed order is neither form: the guess stays, named
      expect(decideUuid({ ...ambiguous, guidEncoding: 'ipmi' })).toMatchObject({ uuid: both, kind: 'redfish-ambiguous' });
      // not listed (a BMC's own order, the CLI's default): the guess stays
      expect(decideUuid({ ...ambiguous, guidOrderListed: false, guidEncoding: 'smbios' })).toMatchObject({ uuid: both, kind: 'redfish-ambiguous' });
      // where a form's fields decide, a listed order does not overrule them
      expect(decideUuid({ ...auto, redfishUuid: V4, ipmiGuid: uuidToGuid(V4, 'rfc4122'), guidOrderListed: true })).toMatchObject({ uuid: V4, kind: 'ipmi-guid-rfc4122' });
      expect(decideUuid({ ...auto, redfishUuid: swapMixedEndian(V4), ipmiGuid: uuidToGuid(V4, 'smbios'), guidOrderListed: true, guidEncoding: 'rfc4122' })).toMatchObject({ uuid: V4, kind: 'redfish-mixed-endian' });
    });

    it('the listed order a BMC gets: by its vendor\'s name over IPMI, none where its vendor could not be read', () => {
      // (unknown is refused by the configuration; were it there, it would not apply)
      const listed = { supermicro: 'rfc4122', unknown: 'ipmi', dell: 'smbios' } as const;
      expect(listedGuidOrder('dell', listed)).toBe('smbios');
      expect(listedGuidOrder('novarion', listed)).toBe('rfc4122');
      expect(listedGuidOrder('unknown', listed)).toBeUndefined();
      expect(listedGuidOrder('lenovo', listed)).toBeUndefined();
      // a detection that failed
      expect(listedGuidOrder(undefined, listed)).toBeUndefined();
      expect(listedGuidOrder('dell', undefined)).toBeUndefined();
    });

    it('property: a version-4 Redfish UUID with its GUID in RFC 4122 order is kept', () => {
      fc.assert(
        fc.property(fc.uuid({ version: 4 }), (uuid) => {
          expect(decideUuid({ ...auto, redfishUuid: uuid, ipmiGuid: uuidToGuid(uuid, 'rfc4122') })?.uuid).toBe(uuid);
        }),
      );
    });

    it('property: a mixed-endian Redfish UUID is swapped back where the in-band UUID is version 4 and its swapped form is neither version 4 nor a plausible version 1', () => {
      fc.assert(
        fc.property(fc.uuid({ version: 4 }), (uuid) => {
          const mixed = swapMixedEndian(uuid);
          fc.pre(!isV4Uuid(mixed) && !isPlausibleV1Uuid(mixed, NOW));
          expect(decideUuid({ ...auto, redfishUuid: mixed, ipmiGuid: uuidToGuid(uuid, 'smbios') })?.uuid).toBe(uuid);
        }),
      );
    });

    it('property: the GUID in SMBIOS order confirms the Redfish UUID as it is, whatever its version', () => {
      fc.assert(
        fc.property(fc.uuid(), (uuid) => {
          expect(decideUuid({ ...auto, redfishUuid: uuid, ipmiGuid: uuidToGuid(uuid, 'smbios') })).toMatchObject({ uuid, kind: 'redfish-confirmed' });
        }),
      );
    });
  });
});

describe('placeholder UUIDs (all zero, all FF, AMI\'s default) are no UUID', () => {
  const NIL = '00000000-0000-0000-0000-000000000000';
  const PLACEHOLDERS = [NIL, 'ffffffff-ffff-ffff-ffff-ffffffffffff', '03000200-0400-0500-0006-000700080009'];
  const auto = { guidEncoding: 'smbios' as const, rule: 'auto' as const, now: NOW };

  it('a nil Redfish UUID gives way to a real IPMI GUID, a placeholder GUID to a real Redfish UUID', () => {
    for (const placeholder of PLACEHOLDERS) {
      expect(decideUuid({ ...auto, redfishUuid: placeholder, ipmiGuid: uuidToGuid(INBAND, 'smbios') }), placeholder).toMatchObject({ uuid: INBAND, kind: 'ipmi' });
      expect(decideUuid({ ...auto, redfishUuid: INBAND, ipmiGuid: uuidToGuid(placeholder, 'smbios') }), placeholder).toMatchObject({ uuid: INBAND, kind: 'redfish' });
      // on Supermicro too, whose rule would swap a lone Redfish UUID: the swap of nil is nil
      expect(decideUuid({ ...auto, redfishUuid: placeholder, swapRedfishUuidUnlessV1: true }), placeholder).toBeUndefined();
    }
  });

  it('only placeholders: no UUID, and the reason names them; nothing at all: no-uuid', () => {
    expect(machineUuid({ ...auto, redfishUuid: NIL.toUpperCase(), ipmiGuid: Buffer.alloc(16, 0xff) })).toEqual({
      ok: false,
      gap: 'placeholder-uuid',
      detail: expect.stringMatching(/^UUID: only a placeholder, no machine's id \(00000000-0000-0000-0000-000000000000, ffffffff-ffff-ffff-ffff-ffffffffffff: /),
    });
    expect(machineUuid({ ...auto, ipmiGuid: uuidToGuid(PLACEHOLDERS[2]!, 'rfc4122') })).toMatchObject({ ok: false, gap: 'placeholder-uuid' });
    expect(machineUuid({ ...auto })).toEqual({ ok: false, gap: 'no-uuid', detail: 'UUID: no usable system UUID over Redfish and none over IPMI' });
    // configured rules too
    for (const rule of ['redfish', 'redfish-swapped'] as const) expect(machineUuid({ ...auto, rule, redfishUuid: NIL })).toMatchObject({ ok: false, gap: 'placeholder-uuid' });
    expect(machineUuid({ ...auto, rule: 'ipmi', ipmiGuid: Buffer.alloc(16) })).toMatchObject({ ok: false, gap: 'placeholder-uuid' });
  });

  it("Supermicro's real UUIDs, ten zero bytes and the board's MAC, are machine ids", () => {
    const supermicro = '00000000-0000-0000-0000-ac1f6b4f2b10';
    expect(decideUuid({ ...auto, redfishUuid: supermicro, ipmiGuid: uuidToGuid(supermicro, 'smbios'), swapRedfishUuidUnlessV1: true })).toMatchObject({ uuid: supermicro, kind: 'redfish-confirmed' });
    expect(decideUuid({ ...auto, redfishUuid: supermicro, swapRedfishUuidUnlessV1: true })?.uuid).toBe(supermicro);
  });

  it('property: a placeholder from one protocol never decides; the real UUID from the other does', () => {
    fc.assert(
      fc.property(fc.constantFrom(...PLACEHOLDERS), fc.constantFrom('smbios' as const, 'ipmi' as const, 'rfc4122' as const), fc.uuid(), (placeholder, order, uuid) => {
        expect(decideUuid({ ...auto, redfishUuid: placeholder, ipmiGuid: uuidToGuid(uuid, 'smbios') })?.uuid).toBe(uuid);
        // (a lone Redfish UUID that is an implausible version-1 one is swapped: the rule without IPMI evidence)
        if (!isImplausibleV1Timestamp(uuid, NOW)) expect(decideUuid({ ...auto, redfishUuid: uuid, ipmiGuid: uuidToGuid(placeholder, order) })?.uuid).toBe(uuid);
      }),
    );
  });
});

describe('a UUID from the IPMI GUID alone where Redfish was tried is reported only when confirmed', () => {
  const V4 = '3f2504e0-4f89-41d3-9a0c-0305e82c3301';
  const auto = { guidEncoding: 'smbios' as const, rule: 'auto' as const, now: NOW };
  // a BMC sending its GUID in RFC 4122 order: decoded in SMBIOS order it is another UUID
  const rfcGuid = uuidToGuid(V4, 'rfc4122');

  it('by the decision an earlier read with Redfish made for the same GUID, whatever order the GUID is in', () => {
    const d = machineUuid({ ...auto, ipmiGuid: rfcGuid, ipmiAlone: { remembered: { guid: Buffer.from(rfcGuid), uuid: V4 }, encodingConfigured: false } });
    expect(d).toMatchObject({ ok: true, decision: { uuid: V4, kind: 'ipmi-remembered' } });
    // and Redfish reachable without a UUID (a nil one, say) is the same case
    expect(machineUuid({ ...auto, redfishUuid: '00000000-0000-0000-0000-000000000000', ipmiGuid: rfcGuid, ipmiAlone: { remembered: { guid: rfcGuid, uuid: V4 }, encodingConfigured: false } })).toMatchObject({ ok: true, decision: { uuid: V4 } });
  });

  it('not by a remembered decision for another GUID, nor by none: a gap that says why', () => {
    const other = machineUuid({ ...auto, ipmiGuid: rfcGuid, ipmiAlone: { remembered: { guid: uuidToGuid(INBAND, 'smbios'), uuid: INBAND }, encodingConfigured: false } });
    expect(other).toEqual({ ok: false, gap: 'unconfirmed-ipmi-uuid', detail: `UUID: over IPMI alone the GUID reads ${swapMixedEndian(V4)} in smbios order, but an earlier read with Redfish confirmed ${INBAND} with another GUID and no GUID order is configured for it: a GUID in another order would be another machine's UUID` });
    expect(machineUuid({ ...auto, ipmiGuid: rfcGuid, ipmiAlone: { encodingConfigured: false } })).toMatchObject({ ok: false, gap: 'unconfirmed-ipmi-uuid', detail: expect.stringContaining('no earlier read with Redfish confirmed a UUID for this BMC') });
  });

  it('by a configured GUID order (the BMC, or a vendor whose order is proven), or without the check (protocol ipmi)', () => {
    expect(machineUuid({ ...auto, guidEncoding: 'rfc4122', ipmiGuid: rfcGuid, ipmiAlone: { encodingConfigured: true } })).toMatchObject({ ok: true, decision: { uuid: V4, kind: 'ipmi' } });
    expect(machineUuid({ ...auto, ipmiGuid: uuidToGuid(V4, 'smbios') })).toMatchObject({ ok: true, decision: { uuid: V4, kind: 'ipmi' } });
    // no vendor's order is proven yet
    expect(Object.values(VENDOR_PROFILES).filter((p) => p.guidEncodingProven === true)).toEqual([]);
  });

  it('a placeholder GUID stays a placeholder, a Redfish UUID needs no confirming', () => {
    expect(machineUuid({ ...auto, ipmiGuid: Buffer.alloc(16), ipmiAlone: { encodingConfigured: false } })).toMatchObject({ ok: false, gap: 'placeholder-uuid' });
    expect(machineUuid({ ...auto, redfishUuid: V4, ipmiGuid: rfcGuid, ipmiAlone: { encodingConfigured: false } })).toMatchObject({ ok: true, decision: { uuid: V4 } });
  });

  it('property: with the check, the GUID alone gives the remembered UUID for the remembered GUID and nothing for any other', () => {
    fc.assert(
      fc.property(fc.uuid(), fc.uint8Array({ minLength: 16, maxLength: 16 }), (uuid, raw) => {
        const guid = Buffer.from(raw);
        const check = { remembered: { guid: Buffer.from(guid), uuid }, encodingConfigured: false };
        const same = machineUuid({ ...auto, ipmiGuid: guid, ipmiAlone: check });
        const placeholder = isPlaceholderUuid(guidToUuid(guid, 'smbios'));
        expect(same.ok ? same.decision.uuid : same.gap).toBe(placeholder ? 'placeholder-uuid' : uuid);
        const otherGuid = Buffer.from(guid.map((b) => b ^ 0x5a));
        fc.pre(!isPlaceholderUuid(guidToUuid(otherGuid, 'smbios')));
        expect(machineUuid({ ...auto, ipmiGuid: otherGuid, ipmiAlone: check })).toMatchObject({ ok: false, gap: 'unconfirmed-ipmi-uuid' });
      }),
    );
  });
});

describe('Redfish → metal-api report fields', () => {
  it('maps power state and LED words', () => {
    expect([powerStateOf('On'), powerStateOf('Off'), powerStateOf('PoweringOn'), powerStateOf(undefined)]).toEqual(['ON', 'OFF', 'UNKNOWN', 'UNKNOWN']);
    expect(ledStateOf({ system: { chassis: [], managedBy: [], locationIndicatorActive: true, indicatorLED: 'Off' } })).toBe('LED-ON');
    expect(ledStateOf({ system: { chassis: [], managedBy: [], indicatorLED: 'Blinking' } })).toBe('LED-ON');
    expect(ledStateOf({ system: { chassis: [], managedBy: [], indicatorLED: 'Off' } })).toBe('LED-OFF');
    expect(ledStateOf({})).toBe('UNKNOWN');
    expect(ledStateOf({ chassis: { managedBy: [], indicatorLED: 'Unknown' } as never })).toBe('UNKNOWN');
  });

  it('maps FRU fields as go-hal does, omitting empty ones', () => {
    const fru = fruOf({
      system: { chassis: [], managedBy: [], manufacturer: 'Lenovo', model: 'SR630', serialNumber: 'J30012AB', partNumber: 'PN-1' },
      chassis: { computerSystems: [], managedBy: [], manufacturer: 'Lenovo', partNumber: 'SB27A', serialNumber: 'C1', model: 'Board-7X' },
    });
    expect(fru).toEqual({
      board_mfg: 'Lenovo',
      board_mfg_serial: 'C1',
      board_part_number: 'Board-7X',
      chassis_part_number: 'SB27A',
      chassis_part_serial: 'C1',
      product_manufacturer: 'Lenovo',
      product_part_number: 'PN-1',
      product_serial: 'J30012AB',
    });
  });

  it('leaves product_part_number and board_mfg out where the BMC lacks System PartNumber and chassis Manufacturer, so metal-api keeps the in-band FRU values (no Model, SKU or System Manufacturer in their place)', () => {
    // HPE iLO 5 (test/fixtures/redfish-vendors/hpe-dl325-gen10plus-ilo5): no System PartNumber
    const fru = fruOf({
      system: { chassis: [], managedBy: [], manufacturer: 'HPE', model: 'ProLiant DL325 Gen10 Plus', sku: 'P18606-B21', serialNumber: 'CZ2D1A0B1C', partNumber: ' ' },
      chassis: { computerSystems: [], managedBy: [], model: 'ProLiant DL325 Gen10 Plus', serialNumber: 'CZ2D1A0B1C' },
    });
    expect(fru).not.toHaveProperty('product_part_number');
    expect(fru).not.toHaveProperty('board_mfg');
    expect(fru).toMatchObject({ product_manufacturer: 'HPE', product_serial: 'CZ2D1A0B1C' });
  });

  it('fills a power metric from whatever the BMC has', () => {
    expect(powerMetricOf({ powerMetric: { averageConsumedWatts: 212, minConsumedWatts: 180, maxConsumedWatts: 290, intervalInMin: 1 } })).toEqual({ averageconsumedwatts: 212, minconsumedwatts: 180, maxconsumedwatts: 290, intervalinmin: 1 });
    // a BMC without statistics: the current reading as the average, the rest "not known" (0), as Go sends them
    expect(powerMetricOf({ consumedWatts: 344 })).toEqual({ averageconsumedwatts: 344, minconsumedwatts: 0, maxconsumedwatts: 0, intervalinmin: 0 });
    expect(powerMetricOf({ powerMetric: { averageConsumedWatts: 200 }, consumedWatts: 344 })).toEqual({ averageconsumedwatts: 200, minconsumedwatts: 0, maxconsumedwatts: 0, intervalinmin: 0 });
    expect(powerMetricOf({})).toBeUndefined();
    expect(powerSuppliesOf({ powerSupplies: [{ health: 'OK', state: 'Enabled' }, {}] })).toEqual([{ status: { health: 'OK', state: 'Enabled' } }, { status: { health: '', state: '' } }]);
  });
});

describe('vendor table', () => {
  it('detects vendors by manufacturer text and IANA number', () => {
    expect(vendorOfManufacturer('Supermicro')).toBe('supermicro');
    expect(vendorOfManufacturer('Dell Inc.')).toBe('dell');
    expect(vendorOfManufacturer('Lenovo')).toBe('lenovo');
    expect(vendorOfManufacturer('GIGA-BYTE TECHNOLOGY CO., LTD')).toBe('gigabyte');
    expect(vendorOfManufacturer('HPE')).toBe('hpe');
    expect(vendorOfManufacturer('Contoso')).toBe('virtual');
    expect(vendorOfManufacturer('Acme')).toBe('unknown');
    expect([vendorOfIana(10876), vendorOfIana(674), vendorOfIana(19046), vendorOfIana(4753), vendorOfIana(1)]).toEqual(['supermicro', 'dell', 'lenovo', 'virtual', 'unknown']);
  });

  it('routes Supermicro power and boot over IPMI and Dell consoles over SSH', () => {
    expect([VENDOR_PROFILES.supermicro.power, VENDOR_PROFILES.supermicro.boot]).toEqual(['ipmi', 'ipmi']);
    expect(VENDOR_PROFILES.dell).toMatchObject({ console: 'ssh', sshConsoleCommand: 'console com2' });
    // Gigabyte boots over Redfish (Continuous, UEFI), as go-hal's gigabyte.BootFrom does
    expect([VENDOR_PROFILES.gigabyte.power, VENDOR_PROFILES.gigabyte.boot]).toEqual(['redfish', 'redfish']);
  });
});
