/**
 * Firmware updates on two real-BMC paths, through the facade's updateFirmware as the firmware job
 * runs it: Lenovo XCC, whose SimpleUpdate takes SFTP and TFTP only (the image is pushed to its
 * MultipartHttpPushUri instead), and Dell iDRAC, which keeps a BIOS job Scheduled until the host
 * reboots (the update is staged, not timed out), or ends it in UserIntervention; a task state in
 * lower case or outside DSP0268 ("failed") is read as what it says.
 */
import { afterAll, beforeAll, expect } from 'vitest';
import type { FirmwareKind } from '../../src/outband/types.js';
import type { Fleet } from '../../src/sim/fleet.js';
import { startImageServer, updateThroughFacade, type FirmwareOutcome } from '../helpers/firmware.js';
import { startTestFleet } from '../helpers/fleet.js';
import { withPeers } from '../helpers/peers.js';

const { describe, it } = withPeers('openssl');

const IMAGE_BYTES = 65536;
let fleet: Fleet;
let images: Awaited<ReturnType<typeof startImageServer>>;
let imageBase: string;

beforeAll(async () => {
  fleet = await startTestFleet({ count: 8, variants: ['lenovo', 'dell'] });
  images = await startImageServer(IMAGE_BYTES);
  imageBase = images.base;
});
afterAll(async () => {
  await images?.close();
  await fleet?.close();
});

function byManufacturer(prefix: string, which: 'first' | 'last' = 'first'): number {
  const found = fleet.machines.flatMap((m, n) => (m.state.manufacturer.startsWith(prefix) ? [n] : []));
  const i = (which === 'first' ? found[0] : found.at(-1)) ?? -1;
  expect(i, `a ${prefix} machine in the fleet`).toBeGreaterThanOrEqual(0);
  return i;
}

/** updateFirmware of the facade under a deadline of `timeoutMs`: the outcome and the progress it reported. */
function update(i: number, kind: FirmwareKind, image: string, timeoutMs: number): Promise<FirmwareOutcome> {
  return updateThroughFacade(fleet, i, kind, `${imageBase}/${image}`, { connectTimeoutMs: 10_000, signal: AbortSignal.timeout(timeoutMs) });
}

describe('firmware updates on real-BMC paths', () => {
  it('redfish-simpleupdate-sftp-tftp-only (Lenovo XCC): an http image goes to the MultipartHttpPushUri, not to SimpleUpdate', async () => {
    const i = byManufacturer('Lenovo');
    fleet.setQuirks([i], ['redfish-simpleupdate-sftp-tftp-only'], true);
    const events: string[] = [];
    fleet.machines[i]!.on('change', (e) => e.kind === 'firmware' && events.push(e.target));
    const simpleBefore = fleet.redfish!.requests.byRoute['POST simple update'] ?? 0;
    const uploadedBefore = fleet.redfish!.requests.uploadedBytes;
    const r = await update(i, 'bios', 'bios-3.1.bin', 20_000);
    expect(r.error).toBeUndefined();
    expect(r.progress.at(-1)?.state).toBe('Completed');
    expect(events).toEqual(['bios']);
    expect(fleet.redfish!.requests.uploadedBytes - uploadedBefore).toBe(IMAGE_BYTES);
    expect(fleet.redfish!.requests.byRoute['POST simple update'] ?? 0).toBe(simpleBefore);
    // the XCC package names its component: no Targets (XCC lists only BMC-Backup for SimpleUpdate)
    expect(fleet.redfish!.requests.updateParameters[i]!.Targets).toEqual([]);
  }, 30_000);

  it('redfish-job-scheduled-until-reset (Dell iDRAC): a BIOS job the BMC schedules for the next reboot is staged, not timed out', async () => {
    const i = byManufacturer('Dell');
    expect(fleet.machines[i]!.state.quirks.has('redfish-job-scheduled-until-reset')).toBe(true); // the dell variant's default
    const events: string[] = [];
    fleet.machines[i]!.on('change', (e) => e.kind === 'firmware' && events.push(e.target));
    const r = await update(i, 'bios', 'bios-2.99.1.bin', 8000);
    expect(r.error).toBeUndefined();
    const last = r.progress.at(-1);
    expect(last).toMatchObject({ state: 'Staged', message: expect.stringContaining("staged: applies at the machine's next reboot") });
    expect(last?.message).toContain('Oem.Dell.JobState Scheduled');
    expect(r.progress.map((p) => p.state)).not.toContain('Completed');
    // not applied yet: the BIOS takes the image when the host boots
    expect(events).toEqual([]);
    fleet.machines[i]!.setPower('on', 'ForceRestart');
    expect(events).toEqual(['bios']);
  }, 30_000);

  it('redfish-task-state-nonstandard: UserIntervention at 100 % is staged (a reboot or an A/C power cycle applies it), not waited on to the deadline', async () => {
    const i = byManufacturer('Lenovo', 'last');
    fleet.setQuirks([i], ['redfish-task-state-nonstandard'], true);
    try {
      const events: string[] = [];
      fleet.machines[i]!.on('change', (e) => e.kind === 'firmware' && events.push(e.target));
      const r = await update(i, 'bios', 'bios-3.2.bin', 8000);
      expect(r.error).toBeUndefined();
      expect(r.progress.at(-1)).toMatchObject({ state: 'Staged', percent: 100, message: expect.stringContaining('needs a reboot or an A/C power cycle') });
      expect(r.progress.map((p) => p.state)).not.toContain('Completed');
      expect(events).toEqual([]);
      fleet.machines[i]!.setPower('on', 'ForceRestart');
      expect(events).toEqual(['bios']);
    } finally {
      fleet.setQuirks([i], ['redfish-task-state-nonstandard'], false);
    }
  }, 30_000);

  it('redfish-task-state-nonstandard: a task ended in lower-case "failed" fails the update at once', async () => {
    const i = byManufacturer('Lenovo', 'last');
    fleet.setQuirks([i], ['redfish-task-state-nonstandard'], true);
    try {
      const r = await update(i, 'bios', 'bios-fail-3.3.bin', 8000);
      expect(r.error).toMatchObject({ code: 'PROTOCOL', message: expect.stringContaining('ended in Failed') });
    } finally {
      fleet.setQuirks([i], ['redfish-task-state-nonstandard'], false);
    }
  }, 30_000);
});
