/**
 * What a firmware update reports on BMCs whose task answers differ from the simulator's default,
 * through the facade's updateFirmware against the simulated fleet, each with the quirk of the
 * real BMC switched on: bmcweb's 204 task monitor, Supermicro's Completed + Critical and its 202
 * push answer naming the task only in a message, and a BMC that restarts after a BMC image and
 * forgets its task. None of these may be reported as Completed unless the BMC said so or its
 * firmware version changed. A 202 that names no task at all is checked against a stand-in client.
 */
import { afterAll, beforeAll, expect } from 'vitest';
import { connectOutband } from '../../src/outband/connect.js';
import type { FirmwareKind, FirmwareProgress, FirmwareWatch } from '../../src/outband/types.js';
import { simpleUpdate, type UpdateClient } from '../../src/redfish/index.js';
import type { Fleet } from '../../src/sim/fleet.js';
import type { SimQuirkName } from '../../src/sim/quirks.js';
import { startImageServer, updateThroughFacade, type FirmwareOutcome } from '../helpers/firmware.js';
import { startTestFleet } from '../helpers/fleet.js';
import { withPeers } from '../helpers/peers.js';

const { describe, it } = withPeers('openssl');

let fleet: Fleet;
let images: Awaited<ReturnType<typeof startImageServer>>;
let imageBase: string;

beforeAll(async () => {
  fleet = await startTestFleet({ count: 80, variants: ['supermicro', 'lenovo', 'gigabyte', 'dell'] });
  images = await startImageServer();
  imageBase = images.base;
});
afterAll(async () => {
  await images?.close();
  await fleet?.close();
});

const used = new Set<number>();

/** A machine of `manufacturer` no other test used (quirks and reboots leave state behind), with `quirks` on. */
function machine(manufacturer: 'Lenovo' | 'Supermicro' | 'Gigabyte' | 'Dell Inc.', quirks: SimQuirkName[]): number {
  const i = fleet.machines.findIndex((m, k) => m.state.manufacturer === manufacturer && !used.has(k));
  expect(i, `an unused ${manufacturer} machine`).toBeGreaterThanOrEqual(0);
  used.add(i);
  fleet.setQuirks([i], quirks, true);
  return i;
}

/** updateFirmware of the facade, as the firmware job runs it: the outcome and the progress it reported. */
function update(i: number, kind: FirmwareKind, image: string): Promise<FirmwareOutcome> {
  return updateThroughFacade(fleet, i, kind, `${imageBase}/${image}`, { connectTimeoutMs: 5000 });
}

/** `update` that must succeed through simulator route `route` (e.g. "POST simple update"), sent once. */
async function updateVia(route: string, i: number, kind: FirmwareKind, image: string): Promise<FirmwareOutcome> {
  const before = fleet.redfish!.requests.byRoute[route] ?? 0;
  const r = await update(i, kind, image);
  expect(r.error).toBeUndefined();
  expect(fleet.redfish!.requests.byRoute[route]).toBe(before + 1);
  return r;
}

describe('firmware update outcome on real-BMC task answers', () => {
  it('redfish-task-monitor-204: a failing image behind a monitor that answers 204 fails with the Task\'s own state', async () => {
    const i = machine('Lenovo', ['redfish-task-monitor-204']);
    const r = await update(i, 'bios', 'bios-fail.bin');
    expect(r.error?.code).toBe('PROTOCOL');
    expect(r.error?.message).toMatch(/ended in Exception \(Critical\).*image was rejected/);
    expect(r.progress.map((p) => p.state)).not.toContain('Completed');
  }, 30_000);

  it('redfish-task-monitor-204: a good image behind it is Completed, read from the Task', async () => {
    const i = machine('Lenovo', ['redfish-task-monitor-204']);
    const r = await update(i, 'bios', 'bios-2.0.bin');
    expect(r.error).toBeUndefined();
    expect(r.progress.at(-1)?.state).toBe('Completed');
  }, 30_000);

  it('redfish-task-completed-critical: Completed with TaskStatus Critical is a failure naming state, status and messages', async () => {
    const i = machine('Lenovo', ['redfish-task-completed-critical']);
    const r = await update(i, 'bios', 'bios-fail.bin');
    expect(r.error?.code).toBe('PROTOCOL');
    expect(r.error?.message).toMatch(/ended in Completed \(Critical\).*image was rejected/);
    expect(r.progress.map((p) => p.state)).not.toContain('Completed');
  }, 30_000);

  it('redfish-smc-upload-accepted: the task named in the 202 message is followed to its failure', async () => {
    const i = machine('Supermicro', ['redfish-smc-upload-accepted']);
    const r = await update(i, 'bios', 'BIOS_X11-fail.bin');
    expect(r.error?.code).toBe('PROTOCOL');
    expect(r.error?.message).toMatch(/Tasks\/\d+ ended in Exception/);
  }, 30_000);

  it('redfish-smc-upload-accepted: a good image is Completed only once its task is', async () => {
    const i = machine('Supermicro', ['redfish-smc-upload-accepted']);
    const before = fleet.redfish!.requests.byRoute['GET task'] ?? 0;
    const r = await update(i, 'bios', 'BIOS_X11-3.5.bin');
    expect(r.error).toBeUndefined();
    expect(r.progress.at(-1)?.state).toBe('Completed');
    expect(fleet.redfish!.requests.byRoute['GET task'] ?? 0).toBeGreaterThan(before);
  }, 30_000);

  it('redfish-bmc-reboot-after-update: the task vanishes with the restart; a new Manager FirmwareVersion is Completed', async () => {
    const i = machine('Lenovo', ['redfish-bmc-reboot-after-update']);
    const r = await update(i, 'bmc', 'bmc-9.87.6.bin');
    expect(r.error).toBeUndefined();
    expect(fleet.machines[i]!.state.bmcVersion).toBe('9.87.6');
    expect(r.progress.at(-1)).toMatchObject({ state: 'Completed', message: expect.stringContaining('9.87.6') });
  }, 60_000);

  it('redfish-login-refused-after-reboot: the BMC back from its restart refuses logins for a while; they are sent again later, and the new FirmwareVersion is Completed', async () => {
    const i = machine('Lenovo', ['redfish-bmc-reboot-after-update', 'redfish-login-refused-after-reboot']);
    const logins = () => fleet.redfish!.requests.byRoute['POST sessions'] ?? 0;
    const before = logins();
    // the simulator refuses logins for 3 s after its 2 s of 503s: at most two refusals 2 s apart
    const r = await updateThroughFacade(fleet, i, 'bmc', `${imageBase}/bmc-9.87.8.bin`, { connectTimeoutMs: 5000, redfishReloginAfterRestart: { everyMs: 2000 } });
    expect(r.error).toBeUndefined();
    expect(fleet.machines[i]!.state.bmcVersion).toBe('9.87.8');
    expect(r.progress.at(-1)).toMatchObject({ state: 'Completed', message: expect.stringContaining('9.87.8') });
    // the first login, at least one refused, the one taken; never more than the three refusals allowed
    expect(logins() - before).toBeGreaterThanOrEqual(3);
    expect(logins() - before).toBeLessThanOrEqual(5);
  }, 60_000);

  it('redfish-bmc-reboot-after-update: an unchanged FirmwareVersion after the restart fails as unverified', async () => {
    const i = machine('Lenovo', ['redfish-bmc-reboot-after-update']);
    const version = fleet.machines[i]!.state.bmcVersion;
    const r = await update(i, 'bmc', 'bmc-image.bin');
    expect(r.error?.message).toContain('the BMC restarted; firmware version unchanged (outcome unverified)');
    expect(r.error?.message).toContain(version);
    expect(r.progress.map((p) => p.state)).not.toContain('Completed');
  }, 60_000);
});

describe('redfish-update-no-task: the BMC takes the image with 200 and names no task (iLO 5)', () => {
  const wait = { pollMs: 100, versionWaitMs: 4000 };
  const untraced = (i: number, kind: FirmwareKind, image: string) => updateThroughFacade(fleet, i, kind, `${imageBase}/${image}`, { connectTimeoutMs: 5000, firmwareVersionWait: wait });

  it('a BMC image is Completed once the Manager\'s FirmwareVersion changes, with the wait told in the progress', async () => {
    const i = machine('Lenovo', ['redfish-update-no-task']);
    const before = fleet.machines[i]!.state.bmcVersion;
    const r = await untraced(i, 'bmc', 'bmc-9.87.7.bin');
    expect(r.error).toBeUndefined();
    expect(fleet.machines[i]!.state.bmcVersion).toBe('9.87.7');
    expect(r.progress).toContainEqual(expect.objectContaining({ state: 'Running', message: expect.stringContaining(`waiting for its firmware version to change from ${before}`) }));
    expect(r.progress.at(-1)).toMatchObject({ state: 'Completed', message: expect.stringContaining('9.87.7') });
  }, 60_000);

  it('a BMC image whose restarted BMC refuses logins for a while (redfish-login-refused-after-reboot): sent again later, Completed with the new version', async () => {
    const i = machine('Lenovo', ['redfish-update-no-task', 'redfish-login-refused-after-reboot']);
    const r = await updateThroughFacade(fleet, i, 'bmc', `${imageBase}/bmc-9.87.9.bin`, { connectTimeoutMs: 5000, firmwareVersionWait: { pollMs: 100, versionWaitMs: 20_000 }, redfishReloginAfterRestart: { everyMs: 2000 } });
    expect(r.error).toBeUndefined();
    expect(fleet.machines[i]!.state.bmcVersion).toBe('9.87.9');
    expect(r.progress.at(-1)).toMatchObject({ state: 'Completed', message: expect.stringContaining('9.87.9') });
  }, 60_000);

  it('a BMC image whose version never changes fails as unverified after the wait, never Completed', async () => {
    const i = machine('Lenovo', ['redfish-update-no-task']);
    const version = fleet.machines[i]!.state.bmcVersion;
    const r = await untraced(i, 'bmc', 'bmc-fail.bin');
    expect(r.error?.code).toBe('PROTOCOL');
    expect(r.error?.message).toContain('the BMC named no task; firmware version unchanged after 4 s (outcome unverified)');
    expect(r.error?.message).toContain(version);
    expect(r.progress.map((p) => p.state)).not.toContain('Completed');
  }, 60_000);

  it('a BIOS image, whose outcome no version read shows, still fails UNSUPPORTED at once', async () => {
    const i = machine('Lenovo', ['redfish-update-no-task']);
    const r = await untraced(i, 'bios', 'bios-3.1.bin');
    expect(r.error).toEqual({ code: 'UNSUPPORTED', message: expect.stringContaining('accepted (HTTP 200); the BMC named no task to follow') });
    expect(r.progress).toEqual([]);
  }, 30_000);
});

describe('redfish-hpe-update-state: iLO takes the image without a task and tells the flash in UpdateService Oem.Hpe.State', () => {
  /** A Lenovo-laid-out machine that names itself HPE (the facade's vendor hpe), the quirk on, its flash taking `flashMs`. */
  function ilo(flashMs: number): number {
    const i = machine('Lenovo', ['redfish-hpe-update-state']);
    fleet.machines[i]!.state.manufacturer = 'HPE';
    fleet.machines[i]!.state.faults.firmwareTaskMs = flashMs;
    return i;
  }
  const onIlo = (i: number, kind: FirmwareKind, image: string) => updateThroughFacade(fleet, i, kind, `${imageBase}/${image}`, { connectTimeoutMs: 5000, firmwareVersionWait: { pollMs: 100, versionWaitMs: 4000 } });

  it('a BIOS image is Completed on iLO\'s Complete, its Updating percents told on the way (no longer UNSUPPORTED while iLO still flashes)', async () => {
    const i = ilo(7000);
    const r = await onIlo(i, 'bios', 'bios-4.2.bin');
    expect(r.error).toBeUndefined();
    const updating = r.progress.filter((p) => p.state === 'Updating');
    expect(updating.length).toBeGreaterThan(0);
    for (const p of updating) expect(p.percent).toEqual(expect.any(Number));
    expect(r.progress.at(-1)).toMatchObject({ state: 'Completed', percent: 100, message: expect.stringContaining('Oem.Hpe.State Complete') });
  }, 60_000);

  it('a BIOS image iLO refuses fails with Oem.Hpe.State Error and the Result\'s MessageId, never Completed', async () => {
    const i = ilo(3000);
    const r = await onIlo(i, 'bios', 'bios-fail.bin');
    expect(r.error?.code).toBe('PROTOCOL');
    expect(r.error?.message).toContain('the flash ended in Error: Oem.Hpe.Result MessageId iLO.2.25.UpdateInvalidFile');
    expect(r.progress.map((p) => p.state)).not.toContain('Completed');
  }, 60_000);

  it('an iLO image: the flash is followed, then iLO back Idle from its restart is decided by the new FirmwareVersion', async () => {
    const i = ilo(5000);
    const r = await onIlo(i, 'bmc', 'bmc-9.88.1.bin');
    expect(r.error).toBeUndefined();
    expect(fleet.machines[i]!.state.bmcVersion).toBe('9.88.1');
    expect(r.progress.map((p) => p.state)).toContain('Updating');
    expect(r.progress.at(-1)).toMatchObject({ state: 'Completed', message: expect.stringContaining('9.88.1') });
  }, 60_000);

  it('a BIOS flash cut off by a restart of metal-bmc is followed again from a new connection through the same Oem.Hpe.State (FirmwareWatch.hpeFlash)', async () => {
    const i = ilo(6000);
    const m = fleet.machines[i]!;
    const connect = () => connectOutband({ host: m.state.address, user: fleet.user, password: fleet.password, ipmiPort: fleet.ipmiPort, redfishPort: fleet.redfishPort, timeoutMs: 5000 });
    const learned: FirmwareWatch = {};
    const stop = new AbortController();
    const first = await connect();
    try {
      // the process stops once iLO tells the flash running, as a restart of metal-bmc cuts a job
      const cut = first.updateFirmware('bios', `${imageBase}/bios-4.4.bin`, { signal: stop.signal, onWatch: (w) => Object.assign(learned, w), onProgress: (p) => p.state !== 'Running' && stop.abort() });
      await expect(cut).rejects.toMatchObject({ code: 'ABORTED' });
    } finally {
      await first.close();
    }
    // iLO was seen flashing, and its state before the update is kept: the follow after the restart knows both
    expect(learned).toMatchObject({ hpeFlash: true, hpeFlashStarted: true, hpeFlashBefore: { state: expect.any(String) }, target: expect.any(String) });
    const progress: FirmwareProgress[] = [];
    const second = await connect();
    try {
      await second.watchFirmware('bios', learned, { onProgress: (p) => progress.push(p) });
    } finally {
      await second.close();
    }
    expect(progress.at(-1)).toMatchObject({ state: 'Completed', message: expect.stringContaining('Oem.Hpe.State Complete') });
  }, 60_000);

  it('a BMC of another vendor showing the same answer is unchanged: a BIOS image without a task still fails UNSUPPORTED at once', async () => {
    const i = machine('Lenovo', ['redfish-hpe-update-state']);
    const r = await onIlo(i, 'bios', 'bios-4.3.bin');
    expect(r.error).toEqual({ code: 'UNSUPPORTED', message: expect.stringContaining('accepted (HTTP 202); the BMC named no task to follow') });
    expect(r.progress).toEqual([]);
  }, 30_000);
});

describe('Supermicro: pushed OnStartUpdateRequest, applied by StartUpdate (bmclib x12, fwupd redfish-smc)', () => {
  /** the firmware the machine records (flashes), with how many StartUpdate posts the simulator had seen by then */
  function flashes(i: number): Array<{ uri: string; startUpdates: number }> {
    const seen: Array<{ uri: string; startUpdates: number }> = [];
    fleet.machines[i]!.on('change', (e: { kind: string; uri?: string }) => {
      if (e.kind === 'firmware') seen.push({ uri: e.uri ?? '', startUpdates: fleet.redfish!.requests.byRoute['POST start update'] ?? 0 });
    });
    return seen;
  }

  it.each([['BIOS', 'bios', 'BIOS_X12-4.1.bin'], ['BMC', 'bmc', 'BMC_X12-1.05.bin']] as const)('%s: the image is verified and staged first, flashed only after StartUpdate', async (_name, kind, image) => {
    const i = machine('Supermicro', ['redfish-smc-upload-accepted']);
    const flashed = flashes(i);
    const before = fleet.redfish!.requests.byRoute['POST start update'] ?? 0;
    const r = await update(i, kind, image);
    expect(r.error).toBeUndefined();
    expect(fleet.redfish!.requests.updateParameters[i]!['@Redfish.OperationApplyTime']).toBe('OnStartUpdateRequest');
    expect(fleet.redfish!.requests.byRoute['POST start update']).toBe(before + 1);
    expect(flashed).toEqual([{ uri: image, startUpdates: before + 1 }]);
    const states = r.progress.map((p) => p.state);
    expect(states.indexOf('Verified')).toBeGreaterThanOrEqual(0);
    expect(states.indexOf('Verified')).toBeLessThan(states.lastIndexOf('Completed'));
    expect(states.at(-1)).toBe('Completed');
    // the verify task's end is not the job's: no Completed before StartUpdate's task
    expect(states.indexOf('Completed')).toBeGreaterThan(states.indexOf('Verified'));
  }, 60_000);

  it('an image the BMC rejects in verification fails there; StartUpdate is never posted and nothing is flashed', async () => {
    const i = machine('Supermicro', ['redfish-smc-upload-accepted']);
    const flashed = flashes(i);
    const before = fleet.redfish!.requests.byRoute['POST start update'] ?? 0;
    const r = await update(i, 'bios', 'BIOS_X12-fail.bin');
    expect(r.error?.message).toMatch(/Tasks\/\d+ ended in Exception/);
    expect(fleet.redfish!.requests.byRoute['POST start update'] ?? 0).toBe(before);
    expect(flashed).toEqual([]);
    expect(r.progress.map((p) => p.state)).not.toContain('Completed');
  }, 60_000);
});

describe('an UpdateService without MultipartHttpPushUri (redfish-no-multipart-push)', () => {
  const simpleUpdates = () => fleet.redfish!.requests.byRoute['POST simple update'] ?? 0;

  it('SimpleUpdate refusing the URL as well: UNSUPPORTED naming what the BMC takes, before anything is sent', async () => {
    const i = machine('Lenovo', ['redfish-simpleupdate-sftp-tftp-only', 'redfish-no-multipart-push']);
    const [posts, bytes] = [simpleUpdates(), fleet.redfish!.requests.uploadedBytes];
    const r = await update(i, 'bios', 'bios-2.1.bin');
    expect(r.error).toEqual({ code: 'UNSUPPORTED', message: expect.stringMatching(/SimpleUpdate accepts only SFTP, TFTP, not HTTP, and the UpdateService has no MultipartHttpPushUri/) });
    expect(simpleUpdates()).toBe(posts);
    expect(fleet.redfish!.requests.uploadedBytes).toBe(bytes);
    expect(r.progress).toEqual([]);
  }, 30_000);

  it('a vendor whose images are pushed (Supermicro) falls back to SimpleUpdate, which takes the URL', async () => {
    const r = await updateVia('POST simple update', machine('Supermicro', ['redfish-no-multipart-push']), 'bios', 'BIOS_X11-3.6.bin');
    expect(r.progress.at(-1)?.state).toBe('Completed');
  }, 30_000);
});

describe('AMI MegaRAC push (Gigabyte): OemParameters beside UpdateParameters, no apply time (redfish-ami-oem-parameters)', () => {
  it.each([['BIOS', 'bios', 'bios-F33.bin'], ['BMC', 'bmc', 'bmc-12.61.21.bin']] as const)('%s: the BMC takes the push and its task completes', async (_name, kind, image) => {
    const i = machine('Gigabyte', ['redfish-ami-oem-parameters']);
    const r = await updateVia('POST multipart push', i, kind, image);
    expect(fleet.redfish!.requests.updateParameters[i]!['@Redfish.OperationApplyTime']).toBeUndefined();
    expect(r.progress.at(-1)?.state).toBe('Completed');
  }, 30_000);
});

describe('Dell iDRAC: SimpleUpdate without Targets (redfish-simpleupdate-targets-refused)', () => {
  it.each([['BMC', 'bmc', 'iDRAC-with-Lifecycle-Controller_Firmware_7.10.bin'], ['BIOS', 'bios', 'BIOS_C94VM_WN64_2.22.2.EXE']] as const)('%s: ImageURI alone, and the job ends as the BMC says', async (_name, kind, image) => {
    const r = await updateVia('POST simple update', machine('Dell Inc.', ['redfish-simpleupdate-targets-refused']), kind, image);
    // a BIOS job on iDRAC waits for the host's next reboot (the dell variant's redfish-job-scheduled-until-reset)
    expect(['Completed', 'Staged']).toContain(r.progress.at(-1)?.state);
  }, 30_000);
});

describe('a 202 that names no task', () => {
  /** A BMC that answers SimpleUpdate 202 with `body` and no Location. */
  function acceptingClient(body: unknown): UpdateClient {
    const resources: Record<string, unknown> = {
      '/redfish/v1/': { UpdateService: { '@odata.id': '/redfish/v1/UpdateService' } },
      '/redfish/v1/UpdateService': { Actions: { '#UpdateService.SimpleUpdate': { target: '/redfish/v1/UpdateService/Actions/UpdateService.SimpleUpdate' } } },
    };
    const unused = (): never => {
      throw new Error('not used');
    };
    return {
      get: async <T,>(path: string) => resources[path] as T,
      getReply: unused,
      scrub: (text: string) => text,
      upload: unused,
      post: async () => ({ status: 202, headers: {}, body }),
    } as UpdateClient;
  }

  it.each([
    ['no body', undefined],
    ['an Accepted message without a task', { Accepted: { '@Message.ExtendedInfo': [{ MessageId: 'SMC.1.0.OemSimpleupdateAcceptedMessage', MessageArgs: [] }] } }],
  ])('%s: not Completed, a failure saying it was accepted and cannot be followed', async (_name, body) => {
    const progress: string[] = [];
    const result = simpleUpdate(acceptingClient(body), 'http://images.example/bmc.bin', { onProgress: (p) => progress.push(p.state) });
    await expect(result).rejects.toMatchObject({ code: 'UNSUPPORTED', message: expect.stringContaining('accepted (HTTP 202); the BMC named no task to follow') });
    expect(progress).toEqual([]);
  });
});
