import { readdirSync, readFileSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  normalizeFingerprint,
  parseBootOption,
  parseChassis,
  parseCollection,
  parseEnvironmentPowerWatts,
  parseManager,
  parsePower,
  parsePowerSupply,
  parseServiceRoot,
  parseSystem,
  parseTask,
  parseUpdateService,
  readInventory,
  type RedfishGetter,
} from '../../src/redfish/index.js';
import { redfishErrorText, scrub } from '../../src/redfish/http-errors.js';
import { multipartFrame, safeFilename } from '../../src/redfish/multipart.js';
import { MOCKUP_ROOT } from '../helpers/redfish-mockup-server.js';

const PARSERS = [parseServiceRoot, parseSystem, parseManager, parseChassis, parsePower, parsePowerSupply, parseUpdateService, parseTask, parseCollection, parseBootOption];

/** Every leaf of a parsed view is a string, a finite number, a boolean, or an array/object of those. */
function wellTyped(value: unknown): boolean {
  if (typeof value === 'string' || typeof value === 'boolean') return true;
  if (typeof value === 'number') return Number.isFinite(value);
  if (Array.isArray(value)) return value.every(wellTyped);
  if (typeof value === 'object' && value !== null) return Object.values(value).every((v) => v !== undefined && wellTyped(v));
  return false;
}

const PATHS = ['/redfish/v1/Systems', '/redfish/v1/Systems/1', '/redfish/v1/Chassis/1', '/redfish/v1/Managers/1', '/redfish/v1/Chassis/1/Power', '/redfish/v1/x'];
const KEYS = [
  'Systems', 'Chassis', 'Managers', 'Members', 'Members@odata.nextLink', 'Links', 'ManagedBy', 'UUID', 'PowerState', 'BiosVersion',
  'IndicatorLED', 'LocationIndicatorActive', 'Boot', 'Actions', '#ComputerSystem.Reset', 'Power', 'PowerSubsystem', 'PowerSupplies',
  'PowerControl', 'PowerMetrics', 'AverageConsumedWatts', 'Status', 'Health', 'EnvironmentMetrics', 'PowerWatts', 'Reading',
  'FirmwareVersion', 'TaskState', 'Messages', '@odata.id', '__proto__', 'constructor', 'BootOrder', 'BootOptions', 'BootOptionReference',
  'DisplayName', 'UefiDevicePath', 'BootOptionEnabled',
];

/** JSON that looks like Redfish often enough to reach deep into the parsers. */
const redfishish: fc.Arbitrary<unknown> = fc.letrec<{ node: unknown }>((tie) => ({
  node: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.jsonValue({ maxDepth: 2 }),
    fc.record({ '@odata.id': fc.constantFrom(...PATHS) }),
    fc.array(tie('node'), { maxLength: 3 }),
    fc.dictionary(fc.constantFrom(...KEYS), tie('node'), { maxKeys: 6 }),
  ),
})).node;

function mockupFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const full = join(dir, name);
    if (statSync(full).isDirectory()) return mockupFiles(full);
    return name === 'index.json' ? [full] : [];
  });
}

describe('parsers are total', () => {
  it('never throw and return well-typed values for arbitrary JSON', () => {
    fc.assert(
      fc.property(fc.oneof(fc.jsonValue(), redfishish), (json) => {
        for (const parse of PARSERS) expect(wellTyped(parse(json))).toBe(true);
        const w = parseEnvironmentPowerWatts(json);
        expect(w === undefined || Number.isFinite(w)).toBe(true);
      }),
      { numRuns: 2000 },
    );
  });

  it('a value of the wrong type is absent', () => {
    expect(parseSystem({ UUID: 42, PowerState: ['On'], LocationIndicatorActive: 'true', Links: { Chassis: [{ '@odata.id': 7 }, 'x'] } })).toEqual({
      chassis: [],
      managedBy: [],
    });
    expect(parsePower({ PowerControl: [{ PowerMetrics: { AverageConsumedWatts: '319', MinConsumedWatts: 271 } }], PowerSupplies: [1, null] })).toEqual({
      metrics: { minConsumedWatts: 271 },
      supplies: [],
    });
    expect(parseChassis(JSON.parse('{"__proto__": {"Model": "x"}, "Model": 5}'))).toEqual({ computerSystems: [], managedBy: [] });
  });

  it("a TaskState is read in any case, spelled as DSP0268 does; iDRAC's UserIntervention and bmclib's Failed and Scheduled are states too", () => {
    expect(parseTask({ TaskState: 'completed' }).state).toBe('Completed');
    expect(parseTask({ TaskState: 'RUNNING' }).state).toBe('Running');
    expect(parseTask({ TaskState: 'UserIntervention', PercentComplete: 100 })).toEqual({ state: 'UserIntervention', percent: 100 });
    expect(parseTask({ TaskState: 'failed' }).state).toBe('Failed');
    expect(parseTask({ TaskState: 'scheduled' }).state).toBe('Scheduled');
    expect(parseTask({ TaskState: 'Downloading' }).state).toBeUndefined();
  });

  it('every resource of the mockup and of the recorded vendor trees parses with every parser', () => {
    const files = mockupFiles(MOCKUP_ROOT);
    expect(files.length).toBeGreaterThan(200);
    const vendorFiles = mockupFiles(fileURLToPath(new URL('../fixtures/redfish-vendors/', import.meta.url)));
    expect(vendorFiles.length).toBeGreaterThan(70);
    files.push(...vendorFiles);
    for (const f of files) {
      const json: unknown = JSON.parse(readFileSync(f, 'utf8'));
      for (const parse of PARSERS) expect(wellTyped(parse(json))).toBe(true);
    }
  });
});

describe('readInventory over arbitrary resources', () => {
  it('never throws when every resource is replaced by arbitrary JSON', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(redfishish, { minLength: 1, maxLength: 8 }), async (values) => {
        let calls = 0;
        const client: RedfishGetter = {
          get: async <T>(path: string): Promise<T> => {
            calls += 1;
            const i = [...path].reduce((a, c) => a + c.charCodeAt(0), 0) % values.length;
            return values[i] as T;
          },
        };
        const inv = await readInventory(client);
        expect(Array.isArray(inv.missing)).toBe(true);
        expect(inv.missing.every((m) => typeof m === 'string')).toBe(true);
        expect(calls).toBeLessThan(200);
      }),
      { numRuns: 500 },
    );
  });
});

describe('small pure helpers', () => {
  it('Redfish error text joins message and ExtendedInfo messages', () => {
    expect(
      redfishErrorText({
        error: { message: 'General error', '@Message.ExtendedInfo': [{ Message: 'Bad value' }, { Message: 'General error' }, { MessageId: 'x' }] },
      }),
    ).toBe('General error; Bad value');
    fc.assert(fc.property(fc.jsonValue(), (v) => void redfishErrorText(v)));
  });

  it('scrub removes secrets and bounds the length', () => {
    expect(scrub('token abc123 and abc123', ['abc123'])).toBe('token [redacted] and [redacted]');
    expect(scrub('x'.repeat(2000), []).length).toBeLessThanOrEqual(601);
  });

  it('fingerprints normalise; file names are made safe', () => {
    const hex = 'AB'.repeat(32);
    expect(normalizeFingerprint(hex.match(/../g)?.join(':') ?? '')).toBe('ab'.repeat(32));
    expect(normalizeFingerprint('zz')).toBeUndefined();
    expect(safeFilename('a"b\r\n.bin')).toBe('a_b__.bin');
    expect(safeFilename('..')).toBe('firmware.bin');
    const frame = multipartFrame({ Targets: [] }, 'x.bin', { boundary: 'B' });
    expect(frame.head.toString()).toBe(
      '--B\r\nContent-Disposition: form-data; name="UpdateParameters"\r\nContent-Type: application/json\r\n\r\n{"Targets":[]}\r\n' +
        '--B\r\nContent-Disposition: form-data; name="UpdateFile"; filename="x.bin"\r\nContent-Type: application/octet-stream\r\n\r\n',
    );
    expect(frame.tail.toString()).toBe('\r\n--B--\r\n');
  });

  it("a vendor's JSON part goes between UpdateParameters and UpdateFile; its name must start with Oem (DSP0266 12.6.2.2)", () => {
    const frame = multipartFrame({ Targets: [] }, 'x.bin', { boundary: 'B', oemParts: { OemParameters: { ImageType: 'BIOS' } } });
    expect(frame.head.toString()).toBe(
      '--B\r\nContent-Disposition: form-data; name="UpdateParameters"\r\nContent-Type: application/json\r\n\r\n{"Targets":[]}\r\n' +
        '--B\r\nContent-Disposition: form-data; name="OemParameters"\r\nContent-Type: application/json\r\n\r\n{"ImageType":"BIOS"}\r\n' +
        '--B\r\nContent-Disposition: form-data; name="UpdateFile"; filename="x.bin"\r\nContent-Type: application/octet-stream\r\n\r\n',
    );
    expect(() => multipartFrame({}, 'x.bin', { oemParts: { 'UpdateFile"; filename="evil': {} } })).toThrow(/named Oem/);
  });
});
