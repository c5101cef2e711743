/**
 * updateBmcImage when the BMC named no task (UntracedUpdateError): the Manager's FirmwareVersion
 * decides, read until it changes. Against a stand-in Manager whose answers the test scripts; the
 * simulated iLO-like BMC is in test/integration/firmware-outcome.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { BmcError } from '../../src/errors.js';
import { updateBmcImage } from '../../src/outband/firmware-outcome.js';
import { UntracedUpdateError } from '../../src/redfish/task.js';

const MANAGER = '/redfish/v1/Managers/1';

/** A Manager that answers each read with the next of `answers` (a version, or an error thrown), the last one for ever. */
function manager(answers: Array<string | BmcError>): { get: <T>(path: string) => Promise<T>; reads: () => number } {
  let reads = 0;
  return {
    reads: () => reads,
    get: async <T,>(path: string): Promise<T> => {
      expect(path).toBe(MANAGER);
      const answer = answers[Math.min(reads++, answers.length - 1)]!;
      if (answer instanceof BmcError) throw answer;
      return { '@odata.id': MANAGER, Id: '1', FirmwareVersion: answer } as T;
    },
  };
}

const untraced = async (): Promise<never> => {
  throw new UntracedUpdateError('firmware update accepted (HTTP 200); the BMC named no task to follow');
};

describe('updateBmcImage: a BMC image taken without a task', () => {
  it('waits through the restarting BMC\'s 503s and refused connections for the new version', async () => {
    const bmc = manager(['1.0', '1.0', new BmcError('HTTP', 'HTTP 503', { httpStatus: 503 }), new BmcError('CLOSED', 'ECONNREFUSED'), '2.0']);
    const told: string[] = [];
    await updateBmcImage(bmc, MANAGER, untraced, { pollMs: 1, onWatching: (v) => told.push(`watching ${v}`), onRestarted: (v) => told.push(`restarted ${v}`) });
    expect(told).toEqual(['watching 1.0', 'restarted 2.0']);
    expect(bmc.reads()).toBe(5);
  });

  it('fails as unverified, naming the version, when it never changes', async () => {
    const bmc = manager(['1.0']);
    await expect(updateBmcImage(bmc, MANAGER, untraced, { pollMs: 5, versionWaitMs: 60 })).rejects.toMatchObject({
      code: 'PROTOCOL',
      message: expect.stringMatching(/named no task; firmware version unchanged after 0 s \(outcome unverified\).*FirmwareVersion 1\.0/),
    });
    expect(bmc.reads()).toBeGreaterThan(2);
  });

  it('a read refused otherwise (404) ends the wait as unverified at once', async () => {
    const bmc = manager(['1.0', new BmcError('HTTP', 'GET /redfish/v1/Managers/1: HTTP 404', { httpStatus: 404 })]);
    await expect(updateBmcImage(bmc, MANAGER, untraced, { pollMs: 1 })).rejects.toMatchObject({ code: 'PROTOCOL', message: expect.stringContaining('its firmware version could not be read (outcome unverified)') });
    expect(bmc.reads()).toBe(2);
  });

  it('the caller\'s abort (shutdown, the job\'s deadline) ends the wait with the caller\'s reason, not as an unchanged version', async () => {
    const bmc = manager(['1.0']);
    const caller = new AbortController();
    const reason = new BmcError('ABORTED', 'firmware job interrupted by shutdown');
    const result = updateBmcImage(bmc, MANAGER, untraced, { signal: caller.signal, pollMs: 5, onWatching: () => setTimeout(() => caller.abort(reason), 20) });
    await expect(result).rejects.toBe(reason);
  });

  it('a BIOS-like caller without a Manager path keeps the UNSUPPORTED failure', async () => {
    await expect(updateBmcImage(manager(['1.0']), undefined, untraced)).rejects.toBeInstanceOf(UntracedUpdateError);
  });
});
