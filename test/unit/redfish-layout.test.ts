/**
 * The inventory layout's pure parts (src/redfish/layout.ts): the check of a layout that crosses a
 * thread boundary, and the rule for when the chassis's LED is the reported one, which must agree
 * with the report's own LED precedence (ledStateOf).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { keptLayout, ledFromChassis, ledShapeOf, type InventoryLayout } from '../../src/redfish/layout.js';
import { ledStateOf } from '../../src/outband/redfish-report.js';
import type { ChassisInfo, SystemInfo } from '../../src/redfish/parse.js';

const path = fc.stringMatching(/^\/redfish\/v1\/[A-Za-z0-9/]{1,60}$/);
const maybe = <T>(a: fc.Arbitrary<T>) => fc.option(a, { nil: undefined });
const compact = <T extends object>(o: T): T => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;

const layoutArb: fc.Arbitrary<InventoryLayout> = fc
  .record({
    system: path,
    uuid: fc.uuid(),
    links: fc.record({ manager: maybe(path), chassis: maybe(path) }).map(compact),
    systemLed: fc.record({ indicatorLED: fc.boolean(), locationIndicatorActive: fc.boolean() }),
    manager: maybe(path),
    managerFirmware: maybe(fc.string({ minLength: 1, maxLength: 40 })),
    chassis: maybe(
      fc
        .record({ path, manufacturer: maybe(fc.string({ minLength: 1, maxLength: 40 })), serialNumber: maybe(fc.string({ minLength: 1, maxLength: 40 })), indicatorLED: maybe(fc.constantFrom('Lit', 'Off', 'Blinking')), locationIndicatorActive: maybe(fc.boolean()), power: maybe(path), powerSubsystem: maybe(path), environmentMetrics: maybe(path) })
        .map(compact),
    ),
    powerSupplies: maybe(fc.record({ collection: path, members: fc.array(path, { maxLength: 32 }) })),
    noPowerMetric: fc.boolean(),
  })
  // a Manager's version is kept only with the Manager's path
  .map(({ managerFirmware, ...rest }) => compact({ ...rest, managerFirmware: rest.manager === undefined ? undefined : managerFirmware }));

describe('keptLayout', () => {
  it('takes any JSON without throwing; a layout comes back as it was', () => {
    fc.assert(fc.property(fc.jsonValue(), (v) => void keptLayout(v)));
    fc.assert(
      fc.property(layoutArb, (layout) => {
        expect(keptLayout(structuredClone(layout))).toEqual(layout);
      }),
    );
  });

  it('refuses what is not a layout or exceeds its bounds; keeps only the fields it knows', () => {
    const good: InventoryLayout = { system: '/redfish/v1/Systems/1', uuid: 'u', links: {}, systemLed: { indicatorLED: true, locationIndicatorActive: false }, chassis: { path: '/redfish/v1/Chassis/1' }, noPowerMetric: false };
    expect(keptLayout(good)).toEqual(good);
    expect(keptLayout({ ...good, system: '' })).toBeUndefined();
    expect(keptLayout({ ...good, uuid: 'x'.repeat(1025) })).toBeUndefined();
    expect(keptLayout({ ...good, systemLed: { indicatorLED: 'yes', locationIndicatorActive: false } })).toBeUndefined();
    expect(keptLayout({ ...good, chassis: { path: '/c', locationIndicatorActive: 'on' } })).toBeUndefined();
    expect(keptLayout({ ...good, powerSupplies: { collection: '/p', members: Array.from({ length: 33 }, (_, i) => `/p/${i}`) } })).toBeUndefined();
    expect(keptLayout({ ...good, noPowerMetric: 'yes' })).toBeUndefined();
    expect(keptLayout({ ...good, manager: '/redfish/v1/Managers/1', managerFirmware: 'x'.repeat(1025) })).toBeUndefined();
    // a Manager's version without the Manager's path is not kept
    expect(keptLayout({ ...good, managerFirmware: '1.0' })).toEqual(good);
    expect(keptLayout({ system: good.system, uuid: good.uuid, links: {}, systemLed: good.systemLed })).toBeUndefined();
    expect(keptLayout({ ...good, chassis: { path: '/c', secret: 'x' }, extra: 1 })).toEqual({ ...good, chassis: { path: '/c' } });
  });
});

describe('ledFromChassis', () => {
  const led = fc.record({ indicatorLED: maybe(fc.constantFrom('Lit', 'Off', 'Blinking', 'Unknown')), locationIndicatorActive: maybe(fc.boolean()) }).map(compact);

  it("is true exactly when the chassis's LED decides the reported one (ledStateOf)", () => {
    fc.assert(
      fc.property(led, led, (system, chassis) => {
        const inv = (c: Pick<ChassisInfo, 'indicatorLED' | 'locationIndicatorActive'>) => ({ system: { ...system, chassis: [], managedBy: [] } as SystemInfo, chassis: { ...c, computerSystems: [], managedBy: [] } as ChassisInfo });
        if (!ledFromChassis(ledShapeOf(system), ledShapeOf(chassis))) {
          // the chassis's values do not matter: the LED is the one without any chassis
          expect(ledStateOf(inv(chassis))).toBe(ledStateOf({ system: inv(chassis).system }));
        } else {
          // some chassis value changes the reported LED
          const flipped = compact({ indicatorLED: chassis.indicatorLED === undefined ? undefined : chassis.indicatorLED === 'Off' ? 'Lit' : 'Off', locationIndicatorActive: chassis.locationIndicatorActive === undefined ? undefined : !chassis.locationIndicatorActive });
          expect(ledStateOf(inv(flipped))).not.toBe(ledStateOf(inv(chassis)));
        }
      }),
    );
  });

});
