/**
 * A firmware job cut off by a restart of metal-bmc is taken up again against the simulated fleet's
 * Redfish service (src/commands/firmware-jobs.ts recover): the first run of the jobs module sends
 * the update and records the task the BMC named, then "crashes" (its state file put back as it was
 * before its stop wrote the job interrupted); a second run over the same file holds the machine at
 * once and follows the BMC's task to the end the update really had. The simulator's task runs on
 * through the restart, as a BMC's does.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect } from 'vitest';
import type { Plan } from '../../src/commands/event.js';
import { createFirmwareJobs, type FirmwareEvent, type FirmwareJob } from '../../src/commands/firmware-jobs.js';
import type { ConnectBmc } from '../../src/commands/runner.js';
import { connectOutband } from '../../src/outband/connect.js';
import type { FirmwareKind } from '../../src/outband/types.js';
import type { Fleet } from '../../src/sim/fleet.js';
import { startImageServer } from '../helpers/firmware.js';
import { startTestFleet } from '../helpers/fleet.js';
import { captureLog } from '../helpers/log.js';
import { withPeers } from '../helpers/peers.js';
import { waitFor } from '../helpers/wait.js';

const { describe, it } = withPeers('openssl');

let fleet: Fleet;
let images: Awaited<ReturnType<typeof startImageServer>>;
let dir: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'firmware-resume-'));
  fleet = await startTestFleet({ count: 8, variants: ['lenovo'] });
  images = await startImageServer();
});
afterAll(async () => {
  await images?.close();
  await fleet?.close();
  rmSync(dir, { recursive: true, force: true });
});

function plan(i: number, kind: FirmwareKind, image: string): Plan {
  const m = fleet.machines[i]!.state;
  return {
    machineId: `machine-${i}`,
    key: `machine-${i}`,
    type: 'command',
    command: 'UPDATE-FIRMWARE',
    ipmi: { address: `${m.address}:${fleet.ipmiPort}`, host: m.address, port: fleet.ipmiPort, user: fleet.user, password: fleet.password },
    actions: [{ kind: 'firmware', firmware: kind, url: `${images.base}/${image}` }],
  };
}

/** A run of the jobs module over `file`, connecting as the daemon does (a resumed job has no event credentials: the configured ones). */
function jobsOver(file: string, options: { reconnectMs?: number } = {}) {
  const events: FirmwareEvent[] = [];
  const connected: Array<{ redfish: boolean }> = [];
  const connect: ConnectBmc = async (ipmi, { signal, onAnswer }) => {
    const bmc = await connectOutband({ host: ipmi.host, user: fleet.user, password: fleet.password, ipmiPort: fleet.ipmiPort, redfishPort: fleet.redfishPort, timeoutMs: 5000, signal, ...(onAnswer ? { onAnswer } : {}) });
    connected.push({ redfish: bmc.protocols.redfish });
    return bmc;
  };
  const jobs = createFirmwareJobs({ connect, timeoutMs: 120_000, stateFile: file, logger: captureLog().logger, publish: (e) => events.push(e), ...options });
  return { jobs, events, connected };
}

const jobsIn = (file: string): FirmwareJob[] => (JSON.parse(readFileSync(file, 'utf8')) as { jobs: FirmwareJob[] }).jobs;

/** Starts the update in a first run, waits until the BMC named its task, and "crashes" that run: the state file as the crash leaves it. */
async function cutOffByRestart(file: string, p: Plan): Promise<FirmwareJob> {
  const first = jobsOver(file);
  first.jobs.recover();
  expect((await first.jobs.start(p)).accepted).toBe(true);
  await waitFor(() => jobsIn(file)[0]?.taskUri !== undefined && first.events.some((e) => e.phase === 'progress'), 20_000, 'the task named and running');
  const crashed = readFileSync(file, 'utf8');
  await first.jobs.stop(1); // its connection goes; the BMC's task runs on
  writeFileSync(file, crashed);
  return jobsIn(file)[0]!;
}

describe('a firmware job cut off by a restart', () => {
  it('BIOS image: resumed held, its task followed to Completed', async () => {
    const i = 0;
    fleet.setFaults([i], { firmwareTaskMs: 3000 });
    const file = join(dir, 'bios.json');
    const p = plan(i, 'bios', 'bios-2.0.bin');
    const cut = await cutOffByRestart(file, p);
    expect(cut).toMatchObject({ state: 'running', kind: 'bios', taskUri: expect.stringMatching(/^\/redfish\/v1\/TaskService\/Tasks\//), target: expect.any(String) });

    const second = jobsOver(file);
    expect(second.jobs.recover()).toEqual([]);
    expect(second.jobs.activeFor(p)).toMatchObject({ id: cut.id, kind: 'bios' });
    await waitFor(() => second.events.some((e) => e.phase === 'completed' || e.phase === 'failed' || e.phase === 'interrupted'), 30_000, 'the resumed job ended');
    expect(second.events[0]).toMatchObject({ phase: 'progress', resumed: true });
    expect(second.events.at(-1)).toMatchObject({ phase: 'completed', ok: true, job: { id: cut.id, state: 'completed' } });
    expect(second.jobs.activeFor(p)).toBeUndefined();
    expect(jobsIn(file)[0]).toMatchObject({ state: 'completed' });
    fleet.clearFaults();
  }, 60_000);

  it('BMC image on a BMC that restarts and forgets its task: the FirmwareVersion read before the update decides', async () => {
    const i = 1;
    fleet.setFaults([i], { firmwareTaskMs: 3000 });
    fleet.setQuirks([i], ['redfish-bmc-reboot-after-update'], true);
    const before = fleet.machines[i]!.state.bmcVersion;
    const file = join(dir, 'bmc.json');
    const p = plan(i, 'bmc', 'bmc-9.87.6.bin');
    const cut = await cutOffByRestart(file, p);
    expect(cut).toMatchObject({ state: 'running', kind: 'bmc', versionBefore: before, target: expect.stringMatching(/^\/redfish\/v1\/Managers\//) });

    const second = jobsOver(file);
    second.jobs.recover();
    expect(second.jobs.activeFor(p)).toMatchObject({ id: cut.id, kind: 'bmc' });
    await waitFor(() => second.events.some((e) => e.phase === 'completed' || e.phase === 'failed' || e.phase === 'interrupted'), 60_000, 'the resumed job ended');
    expect(second.events.at(-1)).toMatchObject({ phase: 'completed', ok: true, progress: { state: 'Completed' } });
    expect(fleet.machines[i]!.state.bmcVersion).toBe('9.87.6');
    fleet.clearFaults();
  }, 90_000);

  it('BMC away at the restart (its Redfish port closed, METAL_BMC_PROTOCOL auto): the resumed job holds the machine and connects again until the BMC is back', async () => {
    const i = 2;
    fleet.setFaults([i], { firmwareTaskMs: 3000 });
    const file = join(dir, 'away.json');
    const p = plan(i, 'bios', 'bios-2.0.bin');
    const cut = await cutOffByRestart(file, p);
    // the BMC restarts into its new image: no Redfish service (IPMI still answers, so the auto facade falls back to it)
    fleet.setFaults([i], { redfishDisabled: true });

    const second = jobsOver(file, { reconnectMs: 200 });
    second.jobs.recover();
    expect(second.jobs.activeFor(p)).toMatchObject({ id: cut.id });
    await waitFor(() => second.connected.filter((c) => !c.redfish).length >= 2, 30_000, 'two connects that found no Redfish');
    expect(second.events.filter((e) => e.phase !== 'progress')).toEqual([]);
    expect(second.jobs.activeFor(p)).toMatchObject({ id: cut.id });

    fleet.setFaults([i], { redfishDisabled: false });
    await waitFor(() => second.events.some((e) => e.phase === 'completed' || e.phase === 'failed' || e.phase === 'interrupted'), 30_000, 'the resumed job ended');
    expect(second.events.at(-1)).toMatchObject({ phase: 'completed', ok: true, job: { id: cut.id, state: 'completed' } });
    expect(second.jobs.activeFor(p)).toBeUndefined();
    fleet.clearFaults();
  }, 90_000);
});
