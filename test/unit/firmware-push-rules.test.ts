/**
 * The multipart push's parameters per vendor: Supermicro pushes OnStartUpdateRequest where its
 * UpdateService offers StartUpdate (X12 and later, as bmclib's x12 provider and fwupd's
 * redfish-smc plugin), Immediate where it does not; Gigabyte (AMI MegaRAC) adds an OemParameters
 * part with the image type; other vendors name only the target.
 */
import { describe, expect, it } from 'vitest';
import { pushParametersFor, SIMPLE_UPDATE_NAMES_TARGETS } from '../../src/outband/firmware-push.js';

const paths = { system: '/redfish/v1/Systems/1', manager: '/redfish/v1/Managers/1' };

describe('pushParametersFor', () => {
  it.each([
    [true, 'OnStartUpdateRequest'],
    [false, 'Immediate'],
  ])('Supermicro with StartUpdate %s: apply time %s, the Bios resource and the preserve options', (startUpdate, applyTime) => {
    const bios = pushParametersFor('supermicro', 'bios', paths, { startUpdate });
    expect(bios).toMatchObject({ targets: ['/redfish/v1/Systems/1/Bios'], applyTime, oem: { Supermicro: { BIOS: { PreserveSETUPCONF: true } } } });
    const bmc = pushParametersFor('novarion', 'bmc', paths, { startUpdate });
    expect(bmc).toMatchObject({ targets: ['/redfish/v1/Managers/1'], applyTime, oem: { Supermicro: { BMC: { PreserveCfg: true } } } });
  });

  it('Gigabyte (AMI MegaRAC): the image type in a part of its own, no apply time', () => {
    expect(pushParametersFor('gigabyte', 'bios', paths, { startUpdate: false })).toEqual({ targets: ['/redfish/v1/Systems/1'], oemParts: { OemParameters: { ImageType: 'BIOS' } } });
    expect(pushParametersFor('gigabyte', 'bmc', paths, { startUpdate: true })).toEqual({ targets: ['/redfish/v1/Managers/1'], oemParts: { OemParameters: { ImageType: 'BMC' } } });
  });

  it('Dell and Lenovo: Targets empty, the package names its component; SimpleUpdate to Dell names no Targets either', () => {
    expect(pushParametersFor('dell', 'bios', paths, { startUpdate: true })).toEqual({ targets: [] });
    expect(pushParametersFor('lenovo', 'bios', paths, { startUpdate: false })).toEqual({ targets: [] });
    expect(pushParametersFor('dell', 'bmc', paths, { startUpdate: false })).toEqual({ targets: [] });
    expect(Object.entries(SIMPLE_UPDATE_NAMES_TARGETS).filter(([, names]) => !names).map(([vendor]) => vendor)).toEqual(['dell']);
  });

  it('other vendors: the target only, whatever the service offers', () => {
    expect(pushParametersFor('virtual', 'bios', paths, { startUpdate: true })).toEqual({ targets: ['/redfish/v1/Systems/1'] });
    expect(pushParametersFor('hpe', 'bmc', { ...paths, manager: undefined }, { startUpdate: false })).toEqual({ targets: [] });
  });
});
