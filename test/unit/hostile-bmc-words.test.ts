/**
 * Words and links a hostile BMC chooses, where they meet lookups and paths: a JSON string that
 * names a prototype key (`constructor`, `__proto__`) must not reach the prototype, a link of
 * megabytes is not taken, and trailing slashes go in linear time (a regex `/\/+$/` is quadratic in
 * V8 on a run of slashes not at the end). Found by the hostile-BMC review of 2026-12-06.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseLogSize } from '../../src/config/console-capture.js';
import { bootOverrideOfRedfish } from '../../src/outband/boot.js';
import { powerStateOf } from '../../src/outband/redfish-report.js';
import { links, MAX_ODATA_ID, odataId, pathProp, withoutTrailingSlashes } from '../../src/redfish/json.js';
import { parseCollection } from '../../src/redfish/parse.js';
import { boundEntry, MAX_FLOAT32 } from '../../src/report/bounds.js';
import type { MachineIpmiReport } from '../../src/metalapi/types.js';

const PROTOTYPE_KEYS = ['constructor', '__proto__', 'toString', 'hasOwnProperty', 'valueOf'];

describe('a BMC word that names a prototype key', () => {
  it.each(PROTOTYPE_KEYS)('PowerState %s reads as UNKNOWN, a boot target so as OTHER', (word) => {
    expect(powerStateOf(word)).toBe('UNKNOWN');
    expect(bootOverrideOfRedfish({ overrideEnabled: 'Once', overrideTarget: word }).target).toBe('OTHER');
    expect(typeof parseLogSize(`8${word} x 4`)).toBe('string'); // a sentence saying what is wrong, not a size
  });

  it('the known words still map', () => {
    expect(powerStateOf('On')).toBe('ON');
    expect(powerStateOf('Off')).toBe('OFF');
    expect(powerStateOf(undefined)).toBe('UNKNOWN');
  });
});

describe('a report entry with a field that is no string, or a reading metal-api cannot take', () => {
  const entry = (over: Partial<Record<keyof MachineIpmiReport, unknown>>): MachineIpmiReport =>
    ({
      BMCIp: '10.0.0.66',
      BMCVersion: '1.0',
      BIOSVersion: '2.0',
      FRU: {},
      PowerState: 'ON',
      IndicatorLEDState: 'LED-OFF',
      PowerMetric: { averageconsumedwatts: 100, intervalinmin: 1, maxconsumedwatts: 120, minconsumedwatts: 80 },
      PowerSupplies: [],
      ...over,
    }) as MachineIpmiReport;

  it('empties the field and says so, instead of throwing (which failed the whole cycle)', () => {
    const { entry: out, cut } = boundEntry(entry({ PowerState: Object, BMCVersion: 12 }));
    expect(out.PowerState).toBe('UNKNOWN'); // a state metal-api knows, not ''
    expect(out.BMCVersion).toBe('');
    expect(cut).toEqual(['BMCVersion', 'PowerState']);
  });

  it('drops a power metric beyond float32 (metal-api answers 400 for the whole body), keeps one at its edge', () => {
    expect(boundEntry(entry({ PowerMetric: { averageconsumedwatts: 1e300, intervalinmin: 1, maxconsumedwatts: 1, minconsumedwatts: 1 } })).entry.PowerMetric).toBeNull();
    expect(boundEntry(entry({ PowerMetric: { averageconsumedwatts: -1e39, intervalinmin: 1, maxconsumedwatts: 1, minconsumedwatts: 1 } })).cut).toEqual(['PowerMetric']);
    expect(boundEntry(entry({ PowerMetric: { averageconsumedwatts: MAX_FLOAT32, intervalinmin: 1, maxconsumedwatts: 1, minconsumedwatts: 1 } })).cut).toEqual([]);
  });
});

describe('links a BMC chooses', () => {
  it(`takes an @odata.id of up to ${MAX_ODATA_ID} characters, not a longer one`, () => {
    const at = (n: number) => '/redfish/v1/Systems/' + 'x'.repeat(n - '/redfish/v1/Systems/'.length);
    expect(odataId({ '@odata.id': at(MAX_ODATA_ID) })).toHaveLength(MAX_ODATA_ID);
    expect(odataId({ '@odata.id': at(MAX_ODATA_ID + 1) })).toBeUndefined();
    const hostile = '/' + '/'.repeat(1_900_000) + 'x';
    expect(links({ Members: [{ '@odata.id': hostile }, { '@odata.id': '/redfish/v1/Systems/1' }] }, 'Members')).toEqual(['/redfish/v1/Systems/1']);
  });

  it('withoutTrailingSlashes is what the regex gives, on any path', () => {
    fc.assert(
      fc.property(fc.stringMatching(/^[/a-z]{0,40}$/), (path) => {
        expect(withoutTrailingSlashes(path)).toBe(path.replace(/\/+$/, ''));
      }),
    );
    expect(withoutTrailingSlashes('/redfish/v1/Systems/1///')).toBe('/redfish/v1/Systems/1');
    expect(withoutTrailingSlashes('///')).toBe('');
  });

  it('a run of two million slashes before the end is left as it is', () => {
    const path = '/'.repeat(2_000_000) + 'x';
    expect(withoutTrailingSlashes(path)).toBe(path);
    expect(withoutTrailingSlashes(path + '/')).toBe(path);
  });
});

describe('paths a BMC names beside links', () => {
  it('a nextLink, an action target or a push URI over MAX_ODATA_ID is not taken', () => {
    const long = '/redfish/v1/Systems?page=' + '2'.repeat(MAX_ODATA_ID);
    expect(parseCollection({ Members: [], 'Members@odata.nextLink': long }).nextLink).toBeUndefined();
    expect(parseCollection({ Members: [], 'Members@odata.nextLink': '/redfish/v1/Systems?page=2' }).nextLink).toBe('/redfish/v1/Systems?page=2');
    expect(pathProp({ target: 'x'.repeat(MAX_ODATA_ID + 1) }, 'target')).toBeUndefined();
    expect(pathProp({ target: '' }, 'target')).toBeUndefined();
  });
});
