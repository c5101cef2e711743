/**
 * METAL_BMC_GUID_ENCODING (src/config/guid-orders.ts): vendor=order pairs. The names are the
 * vendor table's and the orders the GUID codec's; anything else is refused with one line naming
 * the variable, so that a typo never leaves a vendor's BMCs out of the report unnoticed.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config/index.js';
import { GUID_ORDERS, LISTABLE_VENDORS, listedVendor, parseGuidOrders, VENDOR_NAMES } from '../../src/config/guid-orders.js';
import { guidToUuid, type GuidEncoding } from '../../src/ipmi/guid.js';
import { IANA_IDS, VENDOR_PROFILES, vendorOfIana } from '../../src/outband/vendors.js';

const VARIABLE = 'METAL_BMC_GUID_ENCODING';
const BASE = { METAL_BMC_PARTITION_ID: 'p', METAL_BMC_METAL_API_URL: 'http://metal-api:8080/metal', METAL_BMC_METAL_API_HMAC_KEY: 'hmac-secret-value-0123' };

function refusal(value: string): string {
  try {
    parseGuidOrders(value, VARIABLE);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error(`${JSON.stringify(value)} was taken`);
}

describe('METAL_BMC_GUID_ENCODING', () => {
  it('takes vendor=order pairs in any case and spacing; unset or blank is none', () => {
    expect(parseGuidOrders(' Supermicro = SMBIOS ,dell=rfc4122,, ', VARIABLE)).toEqual({ supermicro: 'smbios', dell: 'rfc4122' });
    expect(loadConfig({ ...BASE, [VARIABLE]: 'virtual=ipmi' }).ipmi.guidOrders).toEqual({ virtual: 'ipmi' });
    expect(loadConfig(BASE).ipmi.guidOrders).toEqual({});
    expect(loadConfig({ ...BASE, [VARIABLE]: '  ' }).ipmi.guidOrders).toEqual({});
  });

  it('refuses an unknown vendor or order, a pair without =, and a vendor given twice, naming the variable and what is allowed', () => {
    expect(refusal('supermicro')).toBe(`${VARIABLE}: "supermicro" is not vendor=order`);
    expect(refusal('quanta=smbios')).toBe(`${VARIABLE}: "quanta" is not a vendor: one of supermicro, dell, lenovo, gigabyte, hpe, virtual`);
    // keyed by the name over IPMI, where a BMC without Redfish is told apart: Novarion's is Supermicro's id
    expect(refusal('novarion=smbios')).toBe(`${VARIABLE}: novarion BMCs name themselves supermicro over IPMI (their manufacturer id): list them as supermicro`);
    // any maker's BMC whose id the table lacks: one order checked on one of them says nothing of the next
    expect(refusal('unknown=smbios')).toMatch(new RegExp(`^${VARIABLE}: unknown is any BMC whose manufacturer id the vendor table lacks`));
    expect(refusal('dell=little-endian')).toBe(`${VARIABLE}: "little-endian" (for dell) is not a GUID byte order: one of ${GUID_ORDERS.join(', ')}`);
    expect(refusal('dell=smbios,DELL=rfc4122')).toBe(`${VARIABLE}: dell is given twice`);
    expect(() => loadConfig({ ...BASE, [VARIABLE]: 'dell=' })).toThrow(ConfigError);
  });

  it('names exactly the vendor table\'s vendors and the GUID codec\'s byte orders', () => {
    expect([...VENDOR_NAMES].sort()).toEqual(Object.keys(VENDOR_PROFILES).sort());
    // the keys are the names IPMI gives (manufacturer ids) and unknown
    expect([...LISTABLE_VENDORS].sort()).toEqual([...new Set(IANA_IDS.map(vendorOfIana))].sort());
    expect(listedVendor('novarion')).toBe('supermicro');
    expect(listedVendor('unknown')).toBeUndefined();
    // each order decodes a GUID its own way: the codec knows every one, and no two are the same
    const guid = Buffer.from([...Array(16).keys()]);
    expect(new Set(GUID_ORDERS.map((order) => guidToUuid(guid, order satisfies GuidEncoding))).size).toBe(GUID_ORDERS.length);
    const encodings: Record<GuidEncoding, true> = { smbios: true, rfc4122: true, ipmi: true };
    expect([...GUID_ORDERS].sort()).toEqual(Object.keys(encodings).sort());
  });

  it('property: any set of pairs, written in any order, case and spacing, reads back as itself', () => {
    const pairs = fc.uniqueArray(fc.tuple(fc.constantFrom(...LISTABLE_VENDORS), fc.constantFrom(...GUID_ORDERS)), { selector: ([vendor]) => vendor, maxLength: LISTABLE_VENDORS.length });
    const space = fc.constantFrom('', ' ', '  ', '\t');
    const casing = fc.constantFrom((t: string) => t, (t: string) => t.toUpperCase(), (t: string) => t[0]!.toUpperCase() + t.slice(1));
    fc.assert(
      fc.property(pairs, fc.array(fc.tuple(space, space, casing, casing), { minLength: LISTABLE_VENDORS.length, maxLength: LISTABLE_VENDORS.length }), (chosen, styles) => {
        const text = chosen.map(([vendor, order], k) => {
          const [before, after, vendorCase, orderCase] = styles[k]!;
          return `${before}${vendorCase(vendor)}${after}=${before}${orderCase(order)}${after}`;
        });
        expect(parseGuidOrders(text.join(','), VARIABLE)).toEqual(Object.fromEntries(chosen));
      }),
    );
  });

  it('property: any text is read or refused with a ConfigError, never anything else', () => {
    const alphabet = fc.constantFrom(...'=, \tabcdefghijklmnopqrstuvwxyzSMBIOS4122'.split(''));
    fc.assert(
      fc.property(fc.string({ unit: alphabet, maxLength: 60 }), (text) => {
        try {
          const orders = parseGuidOrders(text, VARIABLE);
          for (const [vendor, order] of Object.entries(orders)) {
            expect(LISTABLE_VENDORS).toContain(vendor);
            expect(GUID_ORDERS).toContain(order);
          }
        } catch (err) {
          expect(err).toBeInstanceOf(ConfigError);
          expect((err as Error).message.startsWith(`${VARIABLE}: `)).toBe(true);
        }
      }),
    );
  });
});
