/**
 * Persistent boot devices as pure functions: the exact IPMI bytes per vendor and target (the
 * values metal-stack's go-hal sends), the Set System Boot Options sequence and its order when the
 * BMC refuses steps, read-back, the Dell BIOS version rule and the BootOrder it writes.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { bootWriteRequests, decodeBootFlagsParam, decodeGetBootOptions, encodeBootFlagsParam, nextBootWriteStep, type BootWriteStep } from '../../src/ipmi/boot.js';
import { DecodeError } from '../../src/errors.js';
import { biosAtOrBelow, bootOrderFor, bootOverrideOfIpmi, bootOverrideOfRedfish, ipmiBootFlags } from '../../src/outband/boot.js';
import { VENDOR_PROFILES, type Vendor } from '../../src/outband/vendors.js';
import type { BootTarget } from '../../src/outband/types.js';

const hex = (b: Buffer) => b.toString('hex');
const flagsFor = (vendor: Vendor, target: BootTarget, persistent = true) => hex(ipmiBootFlags(target, { persistent, uefi: true, diskDevice: VENDOR_PROFILES[vendor].ipmiDiskDevice }));

describe('IPMI boot flags per vendor and target (parameter 5 data bytes)', () => {
  it('Supermicro: PXE e0 04, disk e0 24, BIOS a0 18', () => {
    expect(flagsFor('supermicro', 'PXE')).toBe('e004000000');
    expect(flagsFor('supermicro', 'DISK')).toBe('e024000000');
    expect(flagsFor('supermicro', 'BIOS')).toBe('a018000000');
  });

  it.each(['dell', 'lenovo', 'gigabyte', 'hpe', 'virtual', 'unknown'] as const)('%s: PXE e0 04, disk e0 08, BIOS a0 18', (vendor) => {
    expect(flagsFor(vendor, 'PXE')).toBe('e004000000');
    expect(flagsFor(vendor, 'DISK')).toBe('e008000000');
    expect(flagsFor(vendor, 'BIOS')).toBe('a018000000');
  });

  it('a one-time PXE or disk is a0; BIOS setup is never persistent; legacy drops the EFI bit', () => {
    expect(flagsFor('supermicro', 'DISK', false)).toBe('a024000000');
    expect(flagsFor('lenovo', 'PXE', false)).toBe('a004000000');
    expect(flagsFor('lenovo', 'BIOS', true)).toBe('a018000000');
    expect(hex(ipmiBootFlags('PXE', { persistent: true, uefi: false, diskDevice: 0x08 }))).toBe('c004000000');
  });

  it('round-trips through the decoder for any device byte', () => {
    fc.assert(
      fc.property(fc.boolean(), fc.boolean(), fc.integer({ min: 0, max: 255 }), (persistent, uefi, device) => {
        expect(decodeBootFlagsParam(encodeBootFlagsParam({ persistent, uefi, device }))).toEqual({ valid: true, persistent, uefi, device, selector: (device >> 2) & 0x0f });
      }),
    );
  });

  it('decoders are total: any bytes give a value or a DecodeError', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 12 }), fc.integer({ min: 0, max: 127 }), (bytes, parameter) => {
        const b = Buffer.from(bytes);
        for (const f of [() => decodeBootFlagsParam(b), () => decodeGetBootOptions(b, parameter)]) {
          try {
            f();
          } catch (err) {
            expect(err).toBeInstanceOf(DecodeError);
          }
        }
      }),
    );
  });
});

describe('Set System Boot Options sequence', () => {
  const flags = ipmiBootFlags('DISK', { persistent: true, uefi: true, diskDevice: 0x24 });

  it('sends these request bytes: parameter, then data', () => {
    const r = bootWriteRequests(flags);
    expect(Object.fromEntries(Object.entries(r).map(([k, v]) => [k, hex(v)]))).toEqual({
      'set-in-progress': '0001',
      'boot-flags': '05e024000000',
      'info-ack': '040101',
      'commit-write': '0002',
      'set-complete': '0000',
    });
  });

  /** Runs the step function with a BMC that answers each step with the given completion code (default 0). */
  function order(codes: Partial<Record<BootWriteStep, number>>): string[] {
    const answers: Partial<Record<BootWriteStep, number>> = {};
    const sent: string[] = [];
    for (let step = nextBootWriteStep(answers); step !== undefined; step = nextBootWriteStep(answers)) {
      sent.push(step);
      answers[step] = codes[step] ?? 0;
      expect(sent.length).toBeLessThanOrEqual(5);
    }
    return sent;
  }

  it('all accepted: set in progress, flags, acknowledge, commit write, set complete', () => {
    expect(order({})).toEqual(['set-in-progress', 'boot-flags', 'info-ack', 'commit-write', 'set-complete']);
  });

  it('set in progress refused (0x80 not supported, 0xCC as ipmi_sim answers, 0x81 held by another): the flags still go out, no lock to release', () => {
    for (const cc of [0x80, 0x81, 0xcc]) expect(order({ 'set-in-progress': cc })).toEqual(['set-in-progress', 'boot-flags', 'info-ack']);
  });

  it('flags refused: no acknowledge, no commit, the lock is released', () => {
    expect(order({ 'boot-flags': 0xcc })).toEqual(['set-in-progress', 'boot-flags', 'set-complete']);
  });

  it('acknowledge and commit refused: still completes', () => {
    expect(order({ 'info-ack': 0x80, 'commit-write': 0x80 })).toEqual(['set-in-progress', 'boot-flags', 'info-ack', 'commit-write', 'set-complete']);
  });
});

describe('boot override read back', () => {
  it('IPMI: the vendor disk byte reads as disk; an invalid flag is no override', () => {
    expect(bootOverrideOfIpmi(decodeBootFlagsParam(Buffer.from('e024000000', 'hex')), 0x24)).toMatchObject({ target: 'DISK', persistent: true, uefi: true, source: 'ipmi' });
    expect(bootOverrideOfIpmi(decodeBootFlagsParam(Buffer.from('e024000000', 'hex')), 0x08)).toMatchObject({ target: 'OTHER' });
    expect(bootOverrideOfIpmi(decodeBootFlagsParam(Buffer.from('a004000000', 'hex')), 0x08)).toMatchObject({ target: 'PXE', persistent: false, uefi: true });
    expect(bootOverrideOfIpmi(decodeBootFlagsParam(Buffer.from('8018000000', 'hex')), 0x08)).toMatchObject({ target: 'BIOS', persistent: false, uefi: false });
    expect(bootOverrideOfIpmi(decodeBootFlagsParam(Buffer.from('6004000000', 'hex')), 0x08)).toMatchObject({ target: 'NONE' });
  });

  it('Redfish: Continuous/Once, UEFI/Legacy, Disabled is no override', () => {
    expect(bootOverrideOfRedfish({ overrideEnabled: 'Continuous', overrideTarget: 'Hdd', overrideMode: 'UEFI' })).toMatchObject({ target: 'DISK', persistent: true, uefi: true, source: 'redfish' });
    expect(bootOverrideOfRedfish({ overrideEnabled: 'Once', overrideTarget: 'BiosSetup', overrideMode: 'Legacy' })).toMatchObject({ target: 'BIOS', persistent: false, uefi: false });
    expect(bootOverrideOfRedfish({ overrideEnabled: 'Disabled', overrideTarget: 'Pxe', bootOrder: ['Boot0002'] })).toMatchObject({ target: 'NONE', persistent: false, bootOrder: ['Boot0002'] });
    expect(bootOverrideOfRedfish({ overrideEnabled: 'Once', overrideTarget: 'Cd' })).toMatchObject({ target: 'OTHER' });
  });
});

describe('Dell BIOS versions with the Continuous defect (go-hal: override only for > 2.75.75)', () => {
  it.each([
    ['2.75.75', true],
    ['2.75.75.75', true],
    ['2.75.74', true],
    ['2.12.2', true],
    ['1.6.6', true],
    ['2.75.76', false],
    ['2.76.0', false],
    ['3.0', false],
    ['v2.80.1', false],
    ['not-a-version', true],
    [undefined, true],
  ])('%s → BootOrder path: %s', (version, old) => {
    expect(biosAtOrBelow(version, '2.75.75')).toBe(old);
  });
});

describe('BootOrder for a target', () => {
  const options = [
    { id: 'Boot0001', reference: 'Boot0001', displayName: 'PXE Device 1: Integrated NIC 1 Port 1 Partition 1', uefiDevicePath: 'PciRoot(0x0)/MAC(0CC47A000001,0x1)/IPv4(0.0.0.0)' },
    { id: 'Boot0002', reference: 'Boot0002', displayName: 'debian', uefiDevicePath: 'HD(1,GPT,ABC,0x800,0x100000)/\\EFI\\debian\\grubx64.efi' },
    { id: 'Boot0003', displayName: 'Embedded SATA Port Disk A', uefiDevicePath: 'PciRoot(0x0)/Pci(0x17,0x0)/Sata(0x0,0xFFFF,0x0)' },
    { id: 'Boot0004', reference: 'Boot0004', displayName: 'Integrated NIC 2 Port 1', uefiDevicePath: 'PciRoot(0x1)' },
  ];
  const current = ['Boot0003', 'Boot0001', 'Boot0004', 'Boot0002'];

  it('disk: the HD( options first, then the rest of the order', () => {
    expect(bootOrderFor('DISK', options, current)).toEqual(['Boot0002', 'Boot0003', 'Boot0001', 'Boot0004']);
  });

  it('PXE: the options naming a NIC or PXE first, in their current order', () => {
    expect(bootOrderFor('PXE', options, current)).toEqual(['Boot0001', 'Boot0004', 'Boot0003', 'Boot0002']);
  });

  it('no matching option is UNSUPPORTED', () => {
    expect(() => bootOrderFor('DISK', options.slice(0, 1), ['Boot0001'])).toThrow(expect.objectContaining({ code: 'UNSUPPORTED' }));
  });
});
