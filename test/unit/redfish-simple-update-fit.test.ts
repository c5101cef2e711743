/** Whether SimpleUpdate takes an image URL, by the action's allowable values (src/redfish/simple-update-fit.ts). */
import { describe, expect, it } from 'vitest';
import { parseUpdateService } from '../../src/redfish/parse.js';
import { readSimpleUpdateAllowed, simpleUpdateFit, transferProtocolOf } from '../../src/redfish/simple-update-fit.js';

const SYSTEM = '/redfish/v1/Systems/1';
const XCC_TARGETS = ['/redfish/v1/UpdateService/FirmwareInventory/BMC-Backup'];

describe('simpleUpdateFit', () => {
  it('no allowable lists: SimpleUpdate with the Targets as given (as before)', () => {
    expect(simpleUpdateFit({}, 'https://images/bios.bin', [SYSTEM])).toEqual({ usable: true, targets: [SYSTEM] });
  });

  it('Lenovo XCC (SFTP, TFTP only): an http(s) URL is refused, naming what the BMC accepts', () => {
    expect(simpleUpdateFit({ transferProtocols: ['SFTP', 'TFTP'] }, 'https://images/bios.bin', [SYSTEM])).toEqual({ usable: false, protocol: 'HTTPS', accepted: ['SFTP', 'TFTP'] });
  });

  it('a Targets value not in the list is left out, an allowed one is sent', () => {
    expect(simpleUpdateFit({ transferProtocols: ['TFTP'], targets: XCC_TARGETS }, 'tftp://images/bios.bin', [SYSTEM])).toEqual({ usable: true });
    expect(simpleUpdateFit({ targets: [`${SYSTEM}/`] }, 'http://images/bios.bin', [SYSTEM])).toEqual({ usable: true, targets: [SYSTEM] });
  });

  it('the protocol is the URL scheme in upper case, compared without regard to case', () => {
    expect(transferProtocolOf('http://x/y')).toBe('HTTP');
    expect(transferProtocolOf('no scheme')).toBe('');
    expect(simpleUpdateFit({ transferProtocols: ['http'] }, 'HTTP://images/bios.bin', undefined)).toEqual({ usable: true });
  });
});

describe('readSimpleUpdateAllowed', () => {
  const actionInfo = '/redfish/v1/UpdateService/SimpleUpdateActionInfo';
  const client = (resources: Record<string, unknown>) => ({ get: async <T,>(path: string) => resources[path] as T });

  it('inline allowable values on the action (XCC) are used without reading the ActionInfo', async () => {
    const service = parseUpdateService({ Actions: { '#UpdateService.SimpleUpdate': { target: '/t', 'TransferProtocol@Redfish.AllowableValues': ['SFTP', 'TFTP'], 'Targets@Redfish.AllowableValues': XCC_TARGETS } } });
    expect(await readSimpleUpdateAllowed(client({}), service)).toEqual({ transferProtocols: ['SFTP', 'TFTP'], targets: XCC_TARGETS });
  });

  it('both lists from the ActionInfo cost one read of it', async () => {
    const service = parseUpdateService({ Actions: { '#UpdateService.SimpleUpdate': { target: '/t', '@Redfish.ActionInfo': actionInfo } } });
    const info = { Parameters: [{ Name: 'TransferProtocol', AllowableValues: ['TFTP'] }, { Name: 'Targets', AllowableValues: XCC_TARGETS }] };
    const reads: string[] = [];
    const counting = { get: async <T,>(path: string) => (reads.push(path), info as T) };
    expect(await readSimpleUpdateAllowed(counting, service)).toEqual({ transferProtocols: ['TFTP'], targets: XCC_TARGETS });
    expect(reads).toEqual([actionInfo]);
  });

  it('else the Parameters of the action\'s @Redfish.ActionInfo', async () => {
    const service = parseUpdateService({ Actions: { '#UpdateService.SimpleUpdate': { target: '/t', '@Redfish.ActionInfo': actionInfo } } });
    const info = { Parameters: [{ Name: 'ImageURI' }, { Name: 'TransferProtocol', AllowableValues: ['TFTP'] }] };
    expect(await readSimpleUpdateAllowed(client({ [actionInfo]: info }), service)).toEqual({ transferProtocols: ['TFTP'] });
  });
});
