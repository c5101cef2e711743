/**
 * Firmware jobs (src/commands/firmware-jobs.ts): accepted at once, own deadline, one per machine,
 * progress and outcome as events, a state file that survives a restart. The Outband is a fake
 * whose update the test finishes by hand, so nothing here depends on timing; the integration
 * test (daemon-firmware) runs the same path against the simulator's Redfish service.
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import type { Plan } from '../../src/commands/event.js';
import { createFirmwareJobs, HOLD_POLL_MS, imageLabel, jobProgress, parseStateFile, type FirmwareEvent, type FirmwareJobMetrics, type FirmwareJobsOptions, type JobClaims } from '../../src/commands/firmware-jobs.js';
import { checkFirmwareUrl } from '../../src/commands/firmware-url.js';
import { createCommandMetrics } from '../../src/commands/metrics.js';
import { Registry } from 'prom-client';
import type { StepJournal } from '../../src/commands/step-journal.js';
import { BmcError, HandBackError, isBmcError } from '../../src/errors.js';
import { ReloginPendingError } from '../../src/redfish/session.js';
import type { FirmwareOptions, FirmwareProgress, FirmwareWatch, Outband } from '../../src/outband/types.js';
import { createEventJournal, journalEventId, parseRecord, stepKey } from '../../src/bus/event-journal.js';
import { createFirmwareClaims } from '../../src/bus/firmware-claims.js';
import { captureLog } from '../helpers/log.js';
import { createMemoryKv } from '../helpers/memory-kv.js';
import { waitFor } from '../helpers/wait.js';
import { createTargetGuard } from '../../src/commands/targets.js';
import type { EventIpmi } from '../../src/commands/event.js';
import { parseCidr } from '../../src/net/cidr.js';
import { TaskFailedError, TaskLostError } from '../../src/redfish/task.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
function stateFile(): string {
  const d = mkdtempSync(join(tmpdir(), 'fw-jobs-'));
  dirs.push(d);
  return join(d, 'state', 'firmware-jobs.json');
}

function plan(machine: string, kind: 'bios' | 'bmc' = 'bios'): Plan {
  return {
    machineId: machine,
    key: machine,
    type: 'command',
    command: 'UPDATE-FIRMWARE',
    ipmi: { address: `${machine}:623`, host: machine, port: 623, password: 'pw-secret' },
    actions: [{ kind: 'firmware', firmware: kind, url: `https://user:tok@images.example/fw/${kind}.bin?token=abc` }],
  };
}

/** An update the test drives: report progress and what it leaves to watch it again, finish or fail it; honours the signal. */
interface Pending {
  progress(p: FirmwareProgress): void;
  watch(w: FirmwareWatch): void;
  finish(): void;
  fail(err: Error): void;
}
/** `pending` by host; an update watched again after a restart (watchFirmware) under `watch:<host>`, with what it was given. */
function fakeBmcs() {
  const pending = new Map<string, Pending>();
  const watched = new Map<string, FirmwareWatch>();
  /** each BMC's sign of life, as the connection tells it (ConnectBmc's onAnswer) */
  const answer = new Map<string, () => void>();
  let closed = 0;
  /** what every connect throws while set (a BMC refusing the login) */
  let refusal: Error | undefined;
  let connects = 0;
  /** the pace each watchFirmware was asked for (FirmwareOptions.pollMs), in order */
  const paces: Array<number | undefined> = [];
  const follow = (key: string, o?: FirmwareOptions) =>
    new Promise<void>((resolve, reject) => {
      pending.set(key, { progress: (p) => o?.onProgress?.(p), watch: (w) => o?.onWatch?.(w), finish: resolve, fail: reject });
      const aborted = () => reject(o!.signal!.reason instanceof Error ? o!.signal!.reason : new BmcError('ABORTED', 'aborted'));
      // a signal aborted before the call (a stop as the watch begins) ends it at once, as the BMC's requests would
      if (o?.signal?.aborted) aborted();
      else o?.signal?.addEventListener('abort', aborted, { once: true });
    });
  const connect = (ipmi: { host: string }, options?: { onAnswer?: () => void }): Outband => {
    connects++;
    if (refusal) throw refusal;
    if (options?.onAnswer) answer.set(ipmi.host, options.onAnswer);
    return {
      address: ipmi.host,
      vendor: 'fake',
      updateFirmware: (_kind: string, _url: string, o?: FirmwareOptions) => follow(ipmi.host, o),
      watchFirmware: (_kind: string, w: FirmwareWatch, o?: FirmwareOptions) => {
        watched.set(ipmi.host, w);
        paces.push(o?.pollMs);
        return follow(`watch:${ipmi.host}`, o);
      },
      close: async () => void closed++,
    } as unknown as Outband;
  };
  return { pending, watched, answer, paces, connect, closed: () => closed, refuse: (err: Error | undefined) => void (refusal = err), connects: () => connects };
}

function setup(
  o: { stateFile?: string; timeoutMs?: number; checkUrl?: (url: string) => void; checkTarget?: (ipmi: EventIpmi) => void; claims?: JobClaims; journal?: StepJournal; instanceId?: string; unreachableAfterMs?: number; outcomeUnknownHoldMs?: number; taskHoldLimitMs?: number; reconnectMs?: number; holdJobPaceMs?: number; metrics?: FirmwareJobMetrics; powerSettled?: (key: string, bmc: string) => Promise<void> | undefined; powerElsewhere?: FirmwareJobsOptions['powerElsewhere']; keepFinished?: number; claimRetryMs?: number } = {},
) {
  const events: FirmwareEvent[] = [];
  const bmcs = fakeBmcs();
  const log = captureLog();
  const jobs = createFirmwareJobs({
    connect: (ipmi, options) => bmcs.connect(ipmi, options),
    timeoutMs: o.timeoutMs ?? 60_000,
    ...(o.unreachableAfterMs !== undefined ? { unreachableAfterMs: o.unreachableAfterMs } : {}),
    ...(o.outcomeUnknownHoldMs !== undefined ? { outcomeUnknownHoldMs: o.outcomeUnknownHoldMs } : {}),
    ...(o.taskHoldLimitMs !== undefined ? { taskHoldLimitMs: o.taskHoldLimitMs } : {}),
    ...(o.reconnectMs !== undefined ? { reconnectMs: o.reconnectMs } : {}),
    ...(o.holdJobPaceMs !== undefined ? { holdJobPaceMs: o.holdJobPaceMs } : {}),
    ...(o.stateFile ? { stateFile: o.stateFile } : {}),
    ...(o.checkUrl ? { checkUrl: o.checkUrl } : {}),
    ...(o.checkTarget ? { checkTarget: o.checkTarget } : {}),
    ...(o.claims ? { claims: o.claims } : {}),
    ...(o.journal ? { journal: o.journal } : {}),
    ...(o.instanceId ? { instanceId: o.instanceId } : {}),
    ...(o.metrics ? { metrics: o.metrics } : {}),
    ...(o.powerSettled ? { powerSettled: o.powerSettled } : {}),
    ...(o.powerElsewhere ? { powerElsewhere: o.powerElsewhere } : {}),
    ...(o.keepFinished !== undefined ? { keepFinished: o.keepFinished } : {}),
    ...(o.claimRetryMs !== undefined ? { claimRetryMs: o.claimRetryMs } : {}),
    logger: log.logger,
    publish: (e) => events.push(e),
  });
  return { jobs, events, bmcs, log };
}

/** A process with its state file and an update of m1 sent to its BMC, still running: the test then says what the BMC told, and the process "dies". */
async function updateUnderWay(kind: 'bios' | 'bmc' = 'bios') {
  const file = stateFile();
  const first = setup({ stateFile: file });
  await first.jobs.start(plan('m1', kind));
  await waitFor(() => first.bmcs.pending.has('m1'), 5000, 'update started');
  return { file, first };
}

const phases = (events: FirmwareEvent[], machine?: string) => events.filter((e) => machine === undefined || e.machineId === machine).map((e) => e.phase + (e.progress?.percent !== undefined ? `:${e.progress.percent}` : ''));

describe('firmware jobs', () => {
  it('accepts at once, publishes progress and the outcome, says that a BIOS image needs a reboot metal-bmc does not do', async () => {
    const file = stateFile();
    const { jobs, events, bmcs, log } = setup({ stateFile: file });
    const started = await jobs.start(plan('m1'));
    expect(started.accepted).toBe(true);
    expect(phases(events)).toEqual(['accepted']);
    await waitFor(() => bmcs.pending.has('m1'), 5000, 'update started');
    bmcs.pending.get('m1')!.progress({ state: 'Running', percent: 40 });
    expect(JSON.parse(readFileSync(file, 'utf8')).jobs[0]).toMatchObject({ machineId: 'm1', state: 'running', progress: { state: 'Running', percent: 40 } });
    bmcs.pending.get('m1')!.finish();
    await waitFor(() => jobs.running() === 0, 5000, 'job done');
    expect(phases(events)).toEqual(['accepted', 'progress:40', 'completed:40']);
    expect(events.at(-1)).toMatchObject({ ok: true, rebootRequired: true, rebootedByMetalBmc: false, job: { kind: 'bios', image: 'https://images.example/fw/bios.bin' } });
    expect(JSON.parse(readFileSync(file, 'utf8')).jobs[0]).toMatchObject({ state: 'completed' });
    expect(bmcs.closed()).toBe(1);
    const text = readFileSync(file, 'utf8') + JSON.stringify(events) + log.text();
    for (const secret of ['pw-secret', 'tok', 'token=abc']) expect(text).not.toContain(secret);
  });

  it('a failure that quotes the image URL keeps neither its credentials nor its query: not in the state file, the events or the log', async () => {
    const file = stateFile();
    const { jobs, events, bmcs, log } = setup({ stateFile: file });
    expect((await jobs.start(plan('m1'))).accepted).toBe(true);
    await waitFor(() => bmcs.pending.has('m1'), 5000, 'update started');
    // as a BMC's task message or a download error may put it
    bmcs.pending.get('m1')!.fail(new BmcError('PROTOCOL', 'Task failed: cannot download https://user:tok@images.example/fw/bios.bin?X-Amz-Signature=sig-s3cret&token=abc (HTTP 403)'));
    await waitFor(() => jobs.running() === 0, 5000, 'job done');
    expect(events.at(-1)).toMatchObject({ phase: 'failed', code: 'PROTOCOL', error: expect.stringMatching(/^Task failed: cannot download https:\/\/images\.example/) });
    const text = readFileSync(file, 'utf8') + JSON.stringify(events) + log.text();
    for (const secret of ['sig-s3cret', 'token=abc', 'tok@', 'X-Amz-Signature']) expect(text).not.toContain(secret);
  });

  it('refuses a second job for the same machine with a result event, while another machine is accepted', async () => {
    const { jobs, events, bmcs } = setup();
    expect((await jobs.start(plan('m1'))).accepted).toBe(true);
    const second = await jobs.start(plan('m1', 'bmc'));
    expect(second.accepted).toBe(false);
    expect(events.at(-1)).toMatchObject({ machineId: 'm1', phase: 'refused', ok: false, code: 'BUSY' });
    // an event naming the same BMC under another key (its address only) is refused too
    const byAddress = { ...plan('m1', 'bmc'), machineId: '', key: 'bmc:m1' };
    expect((await jobs.start(byAddress)).accepted).toBe(false);
    expect(events.at(-1)).toMatchObject({ phase: 'refused', code: 'BUSY', error: expect.stringMatching(/still running for this machine's BMC m1:623$/) });
    expect((await jobs.start(plan('m2'))).accepted).toBe(true);
    await waitFor(() => bmcs.pending.size === 2, 5000, 'both updates started');
    bmcs.pending.get('m1')!.finish();
    await waitFor(() => jobs.running() === 1, 5000, 'm1 done');
    // once the first is done, the machine takes a new job
    expect((await jobs.start(plan('m1', 'bmc'))).accepted).toBe(true);
    expect(events.at(-1)).toMatchObject({ phase: 'accepted', rebootRequired: false });
  });

  it('refuses an image URL the policy forbids with a result event that says why; the BMC is never contacted', async () => {
    const checkUrl = (url: string) => void checkFirmwareUrl(url, { allow: ['images.example.com'], metalApiHost: 'metal-api' });
    const { jobs, events, bmcs } = setup({ checkUrl });
    const p = plan('m1');
    const firmware = p.actions[0] as { url: string };
    for (const url of ['http://127.0.0.1:8080/bios.bin', 'http://169.254.169.254/latest/meta-data/', 'file:///etc/shadow', 'https://elsewhere.example/bios.bin?sig=s3cret']) {
      firmware.url = url;
      expect((await jobs.start(p)).accepted).toBe(false);
    }
    expect(events.map((e) => [e.phase, e.code])).toEqual(Array(4).fill(['refused', 'FORBIDDEN']));
    expect(events.map((e) => e.error)).toEqual([
      'firmware URL http://127.0.0.1:8080/bios.bin is not in METAL_BMC_FIRMWARE_URL_ALLOW',
      'firmware URL http://169.254.169.254/latest/meta-data/ is not in METAL_BMC_FIRMWARE_URL_ALLOW',
      'firmware URL file: is not http or https',
      'firmware URL https://elsewhere.example/bios.bin is not in METAL_BMC_FIRMWARE_URL_ALLOW',
    ]);
    expect(bmcs.pending.size).toBe(0);
  });

  it('refuses a BMC it may not act on before accepting anything: no accepted event, no claim, the BMC never contacted', async () => {
    const checkTarget = createTargetGuard({ mode: 'leases', allowedCidrs: [parseCidr('0.0.0.0/0')], leaseAt: () => undefined });
    const { jobs, events, bmcs } = setup({ checkTarget });
    expect((await jobs.start(plan('m1'))).accepted).toBe(false);
    expect(events.map((e) => [e.phase, e.code])).toEqual([['refused', 'FORBIDDEN']]);
    expect(events[0]!.error).toMatch(/^BMC m1 is outside METAL_BMC_ALLOWED_CIDRS/);
    expect(jobs.list()).toEqual([]);
    expect(bmcs.pending.size).toBe(0);
  });

  it('ends a job at its own deadline: failed with TIMEOUT', async () => {
    const { jobs, events } = setup({ timeoutMs: 50 });
    await jobs.start(plan('m1'));
    await waitFor(() => jobs.running() === 0, 5000, 'job ended');
    expect(events.at(-1)).toMatchObject({ phase: 'failed', ok: false, code: 'TIMEOUT' });
  });

  it('reports a job the previous process left running, which it cannot watch, as interrupted, once, holding its machine until heldUntil as a stop does; the file keeps the hold', async () => {
    const { file, first } = await updateUnderWay();
    first.bmcs.pending.get('m1')!.progress({ state: 'Uploading', percent: 55 });
    // the process dies here: nothing more is written

    const second = setup({ stateFile: file });
    const before = Date.now();
    const interrupted = second.jobs.recover();
    expect(interrupted.map((j) => [j.machineId, j.state])).toEqual([['m1', 'interrupted']]);
    expect(second.events).toHaveLength(1);
    expect(second.events[0]).toMatchObject({ machineId: 'm1', phase: 'interrupted', ok: false, code: 'OUTCOME_UNKNOWN', outcomeUnknown: true, progress: { state: 'Uploading', percent: 55 }, rebootRequired: true });
    // the 15-minute hold from now
    const heldUntil = Date.parse(second.events[0]!.heldUntil!);
    expect(heldUntil).toBeGreaterThanOrEqual(before + 15 * 60_000);
    expect(heldUntil).toBeLessThanOrEqual(Date.now() + 15 * 60_000);
    expect(second.events[0]!.error).toMatch(/so its outcome is unknown; the BMC may still be applying it; the machine stays held until \S+: check its firmware version before retrying$/);
    expect(second.jobs.activeFor(plan('m1'))).toBeDefined();
    expect(second.log.find('firmware update cut off by a restart may still be applied by the BMC; its machine stays held')).toEqual([expect.objectContaining({ heldUntil: second.events[0]!.heldUntil, machineId: 'm1' })]);
    expect(JSON.parse(readFileSync(file, 'utf8')).jobs[0]).toMatchObject({ state: 'interrupted', heldUntil: second.events[0]!.heldUntil });
    await second.jobs.stop(0);
    // a third start has nothing left to report, and holds the machine again for the rest of the hold
    const third = setup({ stateFile: file });
    expect(third.jobs.recover()).toEqual([]);
    expect(third.events).toEqual([]);
    expect(third.jobs.activeFor(plan('m1'))).toBeDefined();
    await third.jobs.stop(0);
    first.bmcs.pending.get('m1')!.fail(new Error('gone'));
  });

  it('a job that holds its machine is not pruned from the state file, however many jobs end after it', async () => {
    const { file, first } = await updateUnderWay();
    // the process dies here; the next one keeps one finished job
    const second = setup({ stateFile: file, keepFinished: 1 });
    second.jobs.recover();
    for (const machine of ['m2', 'm3']) {
      await second.jobs.start(plan(machine));
      await waitFor(() => second.bmcs.pending.has(machine), 5000, 'update started');
      second.bmcs.pending.get(machine)!.finish();
      await waitFor(() => second.events.some((e) => e.machineId === machine && e.phase === 'completed'), 5000, 'update done');
    }
    const kept = (JSON.parse(readFileSync(file, 'utf8')) as { jobs: Array<{ machineId: string; heldUntil?: string }> }).jobs;
    expect(kept.map((j) => [j.machineId, j.heldUntil !== undefined])).toEqual([['m1', true], ['m3', false]]);
    expect(second.jobs.activeFor(plan('m1'))).toBeDefined();
    await second.jobs.stop(1000);
    first.bmcs.pending.get('m1')!.fail(new Error('gone'));
  });

  it('a crash\'s hold that would end at once (another job of the machine is taken up again) holds nothing and says so: INTERRUPTED, no heldUntil', async () => {
    const { file, first } = await updateUnderWay('bmc');
    first.bmcs.pending.get('m1')!.watch({ taskUri: '/redfish/v1/TaskService/Tasks/7' });
    // the file holds a second running job of the machine that cannot be watched (no task named)
    const saved = JSON.parse(readFileSync(file, 'utf8')) as { jobs: Array<Record<string, unknown>> };
    const { taskUri: _task, ...unwatchable } = saved.jobs[0]!;
    saved.jobs.push({ ...unwatchable, id: 'second-job' });
    writeFileSync(file, JSON.stringify(saved));
    const second = setup({ stateFile: file });
    expect(second.jobs.recover().map((j) => j.id)).toEqual(['second-job']);
    expect(second.events.find((e) => e.phase === 'interrupted')).toMatchObject({ code: 'INTERRUPTED', outcomeUnknown: true, error: expect.stringMatching(/the BMC may still be applying it: check its firmware version before retrying$/) });
    expect(second.events.find((e) => e.phase === 'interrupted')!.heldUntil).toBeUndefined();
    // held by the job watched again, not by this one
    expect(second.events.filter((e) => e.phase === 'released')).toEqual([]);
    expect(second.jobs.activeFor(plan('m1'))).toMatchObject({ id: saved.jobs[0]!.id });
    await second.jobs.stop(1000);
    first.bmcs.pending.get('m1')!.fail(new Error('gone'));
  });

  it('a crash\'s hold after an update it cannot watch ends at heldUntil: released, the machine free', async () => {
    const { file, first } = await updateUnderWay();
    // the process dies here
    const second = setup({ stateFile: file, outcomeUnknownHoldMs: 100 });
    expect(second.jobs.recover().map((j) => j.state)).toEqual(['interrupted']);
    expect(second.jobs.activeFor(plan('m1'))).toBeDefined();
    await waitFor(() => second.events.some((e) => e.phase === 'released'), 5000, 'the hold released');
    expect(second.events.map((e) => e.phase)).toEqual(['interrupted', 'released']);
    expect(second.jobs.activeFor(plan('m1'))).toBeUndefined();
    expect(JSON.parse(readFileSync(file, 'utf8')).jobs[0].heldUntil).toBeUndefined();
    // a BMC it could not watch is not connected for the hold
    expect(second.bmcs.connects()).toBe(0);
    first.bmcs.pending.get('m1')!.fail(new Error('gone'));
  });

  describe('a job accepted while a power command runs on its machine', () => {
    /** a power command of the machine's that runs until the test ends it */
    function runningPower() {
      let end!: () => void;
      const done = new Promise<void>((resolve) => (end = resolve));
      const asked: string[] = [];
      return { end, asked, powerSettled: (key: string, bmc: string) => (asked.push(`${key} ${bmc}`), done) };
    }

    it("waits for another instance's power step on its machine too (its mark), sending nothing; nothing sent if a stop comes meanwhile", async () => {
      let stepEnded!: () => void;
      const asked: string[] = [];
      const powerElsewhere: FirmwareJobsOptions['powerElsewhere'] = async (key, bmc, onWait) => {
        asked.push(`${key} ${bmc}`);
        onWait({ command: 'CYCLE', instance: 'mgmt-b' });
        await new Promise<void>((resolve) => (stepEnded = resolve));
      };
      const file = stateFile();
      const { jobs, events, bmcs, log } = setup({ stateFile: file, powerElsewhere });
      expect(await jobs.start(plan('m1'))).toMatchObject({ accepted: true });
      await waitFor(() => log.find('firmware update waits for the power command another instance runs on its machine to end').length === 1, 5000, 'the job waiting');
      expect(log.find('firmware update waits for the power command another instance runs on its machine to end')[0]).toMatchObject({ command: 'CYCLE', instance: 'mgmt-b' });
      expect(asked).toEqual(['m1 m1:623']);
      expect(bmcs.connects()).toBe(0);
      expect(JSON.parse(readFileSync(file, 'utf8')).jobs[0]).toMatchObject({ notSent: true });
      stepEnded();
      await waitFor(() => bmcs.pending.has('m1'), 5000, 'the update sent');
      bmcs.pending.get('m1')!.finish();
      await waitFor(() => jobs.running() === 0, 5000, 'the job done');
      expect(events.at(-1)).toMatchObject({ phase: 'completed', ok: true });

      // a stop while it waits: interrupted, nothing sent, its outcome known
      const second = setup({ powerElsewhere: () => new Promise<void>(() => undefined) });
      expect(await second.jobs.start(plan('m2'))).toMatchObject({ accepted: true });
      await second.jobs.stop(1000);
      expect(second.bmcs.connects()).toBe(0);
      expect(second.events.at(-1)).toMatchObject({ phase: 'interrupted' });
      expect(second.events.at(-1)!.outcomeUnknown).toBeUndefined();
    });

    it("sends nothing when the state file cannot say the update began: a crash after it must not read as nothing sent", async () => {
      const power = runningPower();
      const file = stateFile();
      const { jobs, events, bmcs } = setup({ stateFile: file, powerSettled: power.powerSettled });
      expect(await jobs.start(plan('m1'))).toMatchObject({ accepted: true });
      // the state file's place taken by a folder: no write replaces it (root ignores a read-only mode)
      rmSync(file);
      mkdirSync(file);
      power.end();
      await waitFor(() => events.some((e) => e.phase === 'failed'), 5000, 'the job failed');
      expect(events.at(-1)).toMatchObject({ phase: 'failed', code: 'UNAVAILABLE', error: expect.stringMatching(/^the firmware state file cannot be written, so a crash during the update could not be told from one before it; nothing was sent to the BMC/) });
      expect(events.at(-1)!.outcomeUnknown).toBeUndefined();
      expect(bmcs.connects()).toBe(0);
    });

    it('sends the BMC nothing until the command ended, within its deadline', async () => {
      const power = runningPower();
      const { jobs, events, bmcs } = setup({ powerSettled: power.powerSettled });
      expect(await jobs.start(plan('m1'))).toMatchObject({ accepted: true });
      expect(power.asked).toEqual(['m1 m1:623']);
      // held: a power command for the machine is refused from here
      expect(jobs.activeFor(plan('m1'))).toBeDefined();
      await Promise.resolve();
      expect(bmcs.connects()).toBe(0);
      power.end();
      await waitFor(() => bmcs.pending.has('m1'), 5000, 'the update sent');
      bmcs.pending.get('m1')!.finish();
      await waitFor(() => jobs.running() === 0, 5000, 'the job done');
      expect(events.at(-1)).toMatchObject({ phase: 'completed', ok: true });
    });

    it('a stop while it waits ends it interrupted with nothing sent, its outcome known, even if the command ends after', async () => {
      const power = runningPower();
      const file = stateFile();
      const { jobs, events, bmcs } = setup({ stateFile: file, powerSettled: power.powerSettled });
      await jobs.start(plan('m1'));
      // the command ends while metal-bmc stops: the update must not begin then
      const stopped = jobs.stop(10_000);
      power.end();
      await stopped;
      expect(bmcs.connects()).toBe(0);
      expect(events.at(-1)).toMatchObject({ phase: 'interrupted', ok: false, code: 'ABORTED' });
      expect(events.at(-1)!.outcomeUnknown).toBeUndefined();
      expect(events.at(-1)!.error).toMatch(/nothing was sent to the BMC/);
      // nothing left for the next start to take up
      const next = setup({ stateFile: file });
      expect(next.jobs.recover()).toEqual([]);
    });

    it('its deadline passing while it waits fails it TIMEOUT with nothing sent, the machine not held', async () => {
      const power = runningPower();
      const { jobs, events, bmcs } = setup({ timeoutMs: 100, powerSettled: power.powerSettled });
      await jobs.start(plan('m1'));
      await waitFor(() => jobs.running() === 0, 5000, 'the job ended');
      expect(bmcs.connects()).toBe(0);
      expect(events.at(-1)).toMatchObject({ phase: 'failed', ok: false, code: 'TIMEOUT' });
      expect(events.at(-1)!.outcomeUnknown).toBeUndefined();
      expect(events.at(-1)!.heldUntil).toBeUndefined();
      expect(jobs.activeFor(plan('m1'))).toBeUndefined();
      power.end();
    });

    it('a process that died while it waited: the next start ends it interrupted, its outcome known (nothing was sent)', async () => {
      const power = runningPower();
      const file = stateFile();
      const first = setup({ stateFile: file, powerSettled: power.powerSettled });
      await first.jobs.start(plan('m1'));
      expect(JSON.parse(readFileSync(file, 'utf8')).jobs[0]).toMatchObject({ state: 'running', notSent: true });
      // the process dies here
      const second = setup({ stateFile: file });
      expect(second.jobs.recover().map((j) => j.state)).toEqual(['interrupted']);
      expect(second.events).toEqual([expect.objectContaining({ phase: 'interrupted', code: 'INTERRUPTED', error: expect.stringMatching(/nothing was sent to the BMC: send it again$/) })]);
      expect(second.events[0]!.outcomeUnknown).toBeUndefined();
      expect(second.bmcs.connects()).toBe(0);
      await first.jobs.stop(0);
      power.end();
    });
  });

  it('resumes a job the previous process left running once its task is known: held at once, watched, ending with the real outcome', async () => {
    const { file, first } = await updateUnderWay('bmc');
    const watch = { taskUri: '/redfish/v1/TaskService/Tasks/7/Monitor', target: '/redfish/v1/Managers/1', versionBefore: '1.10' };
    first.bmcs.pending.get('m1')!.watch({ target: watch.target, versionBefore: watch.versionBefore });
    first.bmcs.pending.get('m1')!.watch({ taskUri: watch.taskUri });
    first.bmcs.pending.get('m1')!.progress({ state: 'Running', percent: 30 });
    expect(JSON.parse(readFileSync(file, 'utf8')).jobs[0]).toMatchObject({ state: 'running', kind: 'bmc', ...watch });
    // the process dies here: nothing more is written

    const second = setup({ stateFile: file });
    expect(second.jobs.recover()).toEqual([]);
    // power steps are held from the start, before the BMC is reached again
    expect(second.jobs.activeFor(plan('m1'))).toMatchObject({ kind: 'bmc', of: { machine: true } });
    expect(second.jobs.running()).toBe(1);
    // a retry meanwhile is refused: the update still runs
    expect(await second.jobs.start(plan('m1', 'bmc'))).toMatchObject({ accepted: false, event: { code: 'BUSY' } });
    await waitFor(() => second.bmcs.pending.has('watch:m1'), 5000, 'update watched again');
    expect(second.bmcs.watched.get('m1')).toEqual(watch);
    second.bmcs.pending.get('watch:m1')!.progress({ state: 'Running', percent: 80 });
    second.bmcs.pending.get('watch:m1')!.finish();
    await waitFor(() => second.jobs.running() === 0, 5000, 'job done');
    expect(second.events.filter((e) => e.phase !== 'refused').map((e) => [e.phase, e.progress?.percent, e.resumed])).toEqual([
      ['progress', 30, true],
      ['progress', 80, undefined],
      ['completed', 80, undefined],
    ]);
    expect(second.events.at(-1)).toMatchObject({ ok: true, job: { kind: 'bmc', state: 'completed' } });
    expect(second.jobs.activeFor(plan('m1'))).toBeUndefined();
    expect(JSON.parse(readFileSync(file, 'utf8')).jobs[0]).toMatchObject({ state: 'completed' });
    first.bmcs.pending.get('m1')!.fail(new Error('gone'));
  });

  it('a resumed job whose BMC refuses the login is not tried again (no lockout): outcome unknown, its machine held without another login', async () => {
    const { file, first } = await updateUnderWay('bios');
    first.bmcs.pending.get('m1')!.watch({ taskUri: TASK, target: '/redfish/v1/Systems/1' });
    first.bmcs.pending.get('m1')!.progress({ state: 'Running', percent: 30 });
    // the process dies here; the next start connects with the configured credentials, which this BMC refuses
    const second = setup({ stateFile: file });
    second.bmcs.refuse(new BmcError('AUTH_FAILED', 'authentication with BMC m1 failed: wrong user name or password'));
    expect(second.jobs.recover()).toEqual([]);
    await waitFor(() => second.events.some((e) => e.phase === 'failed'), 5000, 'resumed job ended');
    const failed = second.events.find((e) => e.phase === 'failed')!;
    expect(failed).toMatchObject({ ok: false, code: 'OUTCOME_UNKNOWN', outcomeUnknown: true, heldUntil: expect.any(String) });
    expect(failed.error).toMatch(/^outcome unknown: the BMC of this update, resumed after a restart, refused the connection \(AUTH_FAILED: .*wrong user name or password\)/);
    // one login, not one every reconnectMs until the deadline; held: a power step or retry waits
    expect(second.bmcs.connects()).toBe(1);
    expect(await second.jobs.start(plan('m1', 'bios'))).toMatchObject({ accepted: false, event: { code: 'BUSY' } });
    expect(second.bmcs.connects()).toBe(1);
    first.bmcs.pending.get('m1')!.fail(new Error('gone'));
  });

  it('a resumed job whose BMC, back from its restart, refuses a login it will be asked again (ReloginPendingError) waits it through', async () => {
    const { file, first } = await updateUnderWay('bios');
    first.bmcs.pending.get('m1')!.watch({ taskUri: TASK, target: '/redfish/v1/Systems/1' });
    const second = setup({ stateFile: file, reconnectMs: 50 });
    second.bmcs.refuse(new ReloginPendingError(new BmcError('AUTH_FAILED', 'login refused: HTTP 401', { httpStatus: 401 }), Date.now() + 60_000));
    expect(second.jobs.recover()).toEqual([]);
    await waitFor(() => second.bmcs.connects() >= 2, 5000, 'connected again');
    expect(second.events.some((e) => e.phase === 'failed')).toBe(false);
    second.bmcs.refuse(undefined);
    await waitFor(() => second.bmcs.pending.has('watch:m1'), 5000, 'watched once the BMC takes the login');
    second.bmcs.pending.get('watch:m1')!.progress({ state: 'Completed', percent: 100 });
    second.bmcs.pending.get('watch:m1')!.finish();
    await waitFor(() => second.events.some((e) => e.phase === 'completed'), 5000, 'completed');
    first.bmcs.pending.get('m1')!.fail(new Error('gone'));
  });

  it('a shutdown in the middle of an update that can be watched again leaves it running for the next start, which resumes it', async () => {
    const { file, first } = await updateUnderWay('bios');
    first.bmcs.pending.get('m1')!.watch({ taskUri: '/redfish/v1/TaskService/Tasks/3', target: '/redfish/v1/Systems/1', versionBefore: 'U46 v2.10' });
    await first.jobs.stop(20);
    expect(first.events.map((e) => e.phase)).toEqual(['accepted']);
    expect(JSON.parse(readFileSync(file, 'utf8')).jobs[0]).toMatchObject({ state: 'running', taskUri: '/redfish/v1/TaskService/Tasks/3' });
    const second = setup({ stateFile: file });
    expect(second.jobs.recover()).toEqual([]);
    expect(second.jobs.activeFor(plan('m1'))).toMatchObject({ kind: 'bios' });
    await waitFor(() => second.bmcs.pending.has('watch:m1'), 5000, 'update watched again');
    second.bmcs.pending.get('watch:m1')!.fail(new BmcError('PROTOCOL', 'task /redfish/v1/TaskService/Tasks/3 ended in Exception (Critical): flash failed'));
    await waitFor(() => second.jobs.running() === 0, 5000, 'job done');
    expect(second.events.at(-1)).toMatchObject({ phase: 'failed', code: 'PROTOCOL', error: expect.stringMatching(/flash failed/) });
    expect(second.events.at(-1)!.outcomeUnknown).toBeUndefined();
  });

  it('a BIOS update on iLO without a task, followed through Oem.Hpe.State, is watched again after a restart (the marker kept in the state file)', async () => {
    const { file, first } = await updateUnderWay('bios');
    first.bmcs.pending.get('m1')!.watch({ target: '/redfish/v1/Systems/1', versionBefore: 'U46 v2.10' });
    first.bmcs.pending.get('m1')!.watch({ hpeFlash: true });
    await first.jobs.stop(20);
    expect(JSON.parse(readFileSync(file, 'utf8')).jobs[0]).toMatchObject({ state: 'running', hpeFlash: true });
    const second = setup({ stateFile: file });
    expect(second.jobs.recover()).toEqual([]);
    await waitFor(() => second.bmcs.pending.has('watch:m1'), 5000, 'update watched again');
    expect(second.bmcs.watched.get('m1')).toEqual({ target: '/redfish/v1/Systems/1', versionBefore: 'U46 v2.10', hpeFlash: true });
    second.bmcs.pending.get('watch:m1')!.finish();
    await waitFor(() => second.jobs.running() === 0, 5000, 'job done');
    expect(second.events.at(-1)).toMatchObject({ phase: 'completed' });
  });

  it('ends a job cut off by a restart as interrupted, outcome unknown, when its deadline passed meanwhile', async () => {
    const { file, first } = await updateUnderWay('bmc');
    first.bmcs.pending.get('m1')!.watch({ taskUri: '/redfish/v1/TaskService/Tasks/7' });
    const saved = JSON.parse(readFileSync(file, 'utf8')) as { jobs: Array<{ acceptedAt: string }> };
    saved.jobs[0]!.acceptedAt = new Date(Date.now() - 120_000).toISOString();
    writeFileSync(file, JSON.stringify(saved));
    // accepted 120 s ago with a deadline of 60 s: the hold that would have followed it lasts 15 minutes more
    const second = setup({ stateFile: file });
    expect(second.jobs.recover().map((j) => j.state)).toEqual(['interrupted']);
    expect(second.events).toEqual([expect.objectContaining({ phase: 'interrupted', code: 'OUTCOME_UNKNOWN', outcomeUnknown: true, error: expect.stringMatching(/its deadline passed meanwhile, so its outcome is unknown; the BMC may still be applying it; the machine stays held until /) })]);
    expect(Date.parse(second.events[0]!.heldUntil!)).toBe(Date.parse(saved.jobs[0]!.acceptedAt) + 60_000 + 15 * 60_000);
    expect(second.jobs.activeFor(plan('m1'))).toBeDefined();
    await second.jobs.stop(1000);
    // past that hold too: interrupted, nothing held
    saved.jobs[0]!.acceptedAt = new Date(Date.now() - 60_000 - 15 * 60_000 - 1000).toISOString();
    writeFileSync(file, JSON.stringify(saved));
    const third = setup({ stateFile: file });
    expect(third.jobs.recover().map((j) => j.state)).toEqual(['interrupted']);
    expect(third.events).toEqual([expect.objectContaining({ phase: 'interrupted', code: 'INTERRUPTED', outcomeUnknown: true, error: expect.stringMatching(/its deadline passed meanwhile, so its outcome is unknown; the BMC may still be applying it: check its firmware version before retrying$/) })]);
    expect(third.events[0]!.heldUntil).toBeUndefined();
    expect(third.jobs.activeFor(plan('m1'))).toBeUndefined();
    first.bmcs.pending.get('m1')!.fail(new Error('gone'));
  });

  it('a deadline that passes while the BMC is silent ends the job outcome unknown and keeps its machine held, also over a restart', async () => {
    const file = stateFile();
    const { jobs, events, bmcs } = setup({ stateFile: file, timeoutMs: 300, unreachableAfterMs: 100, outcomeUnknownHoldMs: 60_000 });
    await jobs.start(plan('m1', 'bmc'));
    await waitFor(() => bmcs.pending.has('m1'), 5000, 'update started');
    // the BMC answered once (the update went out), then went offline to flash
    bmcs.answer.get('m1')!();
    await waitFor(() => events.some((e) => e.phase === 'failed'), 5000, 'deadline');
    const failed = events.find((e) => e.phase === 'failed')!;
    expect(failed).toMatchObject({ ok: false, code: 'OUTCOME_UNKNOWN', outcomeUnknown: true, heldUntil: expect.any(String) });
    expect(failed.error).toMatch(/^outcome unknown: the BMC has not answered since \d{4}-\d\d-\d\dT[\d:.]+Z; it may still be applying the update/);
    // held: power steps and a retry wait for the BMC
    expect(jobs.activeFor(plan('m1'))).toMatchObject({ kind: 'bmc' });
    expect(await jobs.start(plan('m1', 'bmc'))).toMatchObject({ accepted: false, event: { code: 'BUSY' } });
    expect(JSON.parse(readFileSync(file, 'utf8')).jobs[0]).toMatchObject({ state: 'failed', code: 'OUTCOME_UNKNOWN', outcomeUnknown: true, heldUntil: failed.heldUntil });
    // a stop ends the hold at once; the next start holds the machine again until heldUntil
    await jobs.stop(1000);
    const next = setup({ stateFile: file });
    expect(next.jobs.recover()).toEqual([]);
    expect(next.jobs.activeFor(plan('m1'))).toMatchObject({ kind: 'bmc' });
    expect(next.events).toEqual([]);
    await next.jobs.stop(1000);
  });

  it('an update the facade ends OUTCOME_UNKNOWN (the BMC came back with another certificate) is outcome unknown, counted so, and does not hold its machine', async () => {
    const file = stateFile();
    const registry = new Registry();
    const metrics = createCommandMetrics(registry);
    const { jobs, events, bmcs, log } = setup({ stateFile: file, metrics });
    await jobs.start(plan('m1', 'bmc'));
    await waitFor(() => bmcs.pending.has('m1'), 5000, 'update started');
    bmcs.pending.get('m1')!.fail(new BmcError('OUTCOME_UNKNOWN', 'outcome unknown: the BMC answers with another TLS certificate; the update was probably applied'));
    await waitFor(() => events.some((e) => e.phase === 'failed'), 5000, 'the job ended');
    const failed = events.find((e) => e.phase === 'failed')!;
    expect(failed).toMatchObject({ ok: false, code: 'OUTCOME_UNKNOWN', outcomeUnknown: true });
    expect(failed.heldUntil).toBeUndefined();
    expect(JSON.parse(readFileSync(file, 'utf8')).jobs[0]).toMatchObject({ state: 'failed', code: 'OUTCOME_UNKNOWN', outcomeUnknown: true });
    expect(await registry.getSingleMetricAsString('metal_bmc_firmware_jobs_total')).toMatch(/outcome="outcome-unknown"} 1$/m);
    expect(log.find(/firmware update outcome unknown; the BMC answers again/)).toHaveLength(1);
    expect(log.find('firmware update did not complete')).toHaveLength(0);
    expect(jobs.activeFor(plan('m1'))).toBeUndefined();
  });

  it('a deadline that passes during a push upload the BMC keeps taking ends TIMEOUT, not outcome unknown: the image never finished, nothing holds the machine', async () => {
    const { jobs, events, bmcs } = setup({ timeoutMs: 400, unreachableAfterMs: 150 });
    await jobs.start(plan('m1', 'bmc'));
    await waitFor(() => bmcs.pending.has('m1'), 5000, 'update started');
    // the BMC answered the connect, then only takes the image's bytes (upload progress, no HTTP answer until the upload ends)
    bmcs.answer.get('m1')!();
    let percent = 0;
    const uploading = setInterval(() => bmcs.pending.get('m1')!.progress({ state: 'Uploading', percent: (percent = Math.min(99, percent + 1)) }), 20);
    try {
      await waitFor(() => events.some((e) => e.phase === 'failed'), 5000, 'deadline');
    } finally {
      clearInterval(uploading);
    }
    const failed = events.find((e) => e.phase === 'failed')!;
    expect(failed).toMatchObject({ ok: false, code: 'TIMEOUT', progress: { state: 'Uploading' } });
    expect(failed.outcomeUnknown).toBeUndefined();
    expect(failed.heldUntil).toBeUndefined();
    expect(jobs.activeFor(plan('m1'))).toBeUndefined();
  });

  it('the hold after an outcome unknown ends after its grace period: a retry is accepted then', async () => {
    const { jobs, events, bmcs } = setup({ timeoutMs: 200, unreachableAfterMs: 50, outcomeUnknownHoldMs: 300 });
    await jobs.start(plan('m1', 'bmc'));
    await waitFor(() => bmcs.pending.has('m1'), 5000, 'update started');
    bmcs.answer.get('m1')!();
    await waitFor(() => events.some((e) => e.phase === 'failed'), 5000, 'deadline');
    expect(events.find((e) => e.phase === 'failed')).toMatchObject({ code: 'OUTCOME_UNKNOWN' });
    await waitFor(() => jobs.activeFor(plan('m1')) === undefined, 5000, 'hold over');
    expect((await jobs.start(plan('m1', 'bmc'))).accepted).toBe(true);
    await jobs.stop(50);
  });

  const TASK = '/redfish/v1/TaskService/Tasks/12';
  /** A BIOS job whose deadline passes while its task runs at 40 % and the BMC answers: returns its `failed` result. */
  async function deadlineWhileTaskRuns(t: ReturnType<typeof setup>): Promise<FirmwareEvent> {
    await t.jobs.start(plan('m1', 'bios'));
    await waitFor(() => t.bmcs.pending.has('m1'), 5000, 'update started');
    // an upload's progress before the BMC names the task is no task's
    t.bmcs.pending.get('m1')!.progress({ state: 'Uploading', percent: 100 });
    t.bmcs.pending.get('m1')!.watch({ target: '/redfish/v1/Systems/1', versionBefore: '2.10' });
    t.bmcs.pending.get('m1')!.watch({ taskUri: TASK });
    t.bmcs.pending.get('m1')!.progress({ state: 'Running', percent: 40 });
    await waitFor(() => t.events.some((e) => e.phase === 'failed'), 5000, 'deadline');
    return t.events.find((e) => e.phase === 'failed')!;
  }

  it("a deadline that passes while the BMC's task still runs ends outcome unknown and holds the machine; the task's failure seen during the hold frees it early", async () => {
    const registry = new Registry();
    const t = setup({ timeoutMs: 300, outcomeUnknownHoldMs: 60_000, metrics: createCommandMetrics(registry) });
    const failed = await deadlineWhileTaskRuns(t);
    expect(failed).toMatchObject({ ok: false, code: 'OUTCOME_UNKNOWN', outcomeUnknown: true, heldUntil: expect.any(String), progress: { state: 'Running', percent: 40 } });
    expect(failed.error).toBe(`outcome unknown: the BMC's task ${TASK} was still running at 40% (TaskState Running) at the deadline; the machine stays held until the task ends, at most until ${failed.heldUntil}: check its firmware version before retrying`);
    expect(await registry.getSingleMetricAsString('metal_bmc_firmware_jobs_total')).toMatch(/outcome="outcome-unknown"} 1$/m);
    expect(t.log.find(/^firmware update outcome unknown; its machine stays held/)).toEqual([expect.objectContaining({ taskUri: TASK, progress: 'Running 40%' })]);
    // held: power steps and a retry wait; the hold follows the task on the job's connection
    expect(t.jobs.activeFor(plan('m1'))).toMatchObject({ kind: 'bios' });
    expect(await t.jobs.start(plan('m1', 'bios'))).toMatchObject({ accepted: false, event: { code: 'BUSY' } });
    await waitFor(() => t.bmcs.pending.has('watch:m1'), 5000, 'task watched during the hold');
    expect(t.bmcs.watched.get('m1')).toEqual({ taskUri: TASK, target: '/redfish/v1/Systems/1', versionBefore: '2.10' });
    t.bmcs.pending.get('watch:m1')!.fail(new TaskFailedError(`task ${TASK} ended in Exception (Critical): flash failed`));
    await waitFor(() => t.jobs.activeFor(plan('m1')) === undefined, 5000, 'freed early');
    expect(Date.now()).toBeLessThan(Date.parse(failed.heldUntil!));
    expect(t.log.find("machine held after a firmware update of unknown outcome is free again: the BMC's update ended failed")).toEqual([expect.objectContaining({ ended: 'failed', detail: expect.stringMatching(/flash failed$/), taskUri: TASK })]);
    // the result told stays what it was
    expect(t.jobs.list()[0]).toMatchObject({ state: 'failed', code: 'OUTCOME_UNKNOWN' });
    expect(t.jobs.list()[0]!.heldUntil).toBeUndefined();
    // metal-api learns the flash's end: one `settled` result for the same job, the machine free
    expect(phases(t.events).filter((p) => !/^(progress|refused)/.test(p))).toEqual(['accepted', 'failed:40', 'settled']);
    const settled = t.events.at(-1)!;
    expect(settled).toMatchObject({ machineId: 'm1', ok: false, phase: 'settled', settledAs: 'failed', code: 'PROTOCOL', job: { id: failed.job!.id, state: 'failed' }, detail: `task ${TASK} ended in Exception (Critical): flash failed` });
    expect(settled.error).toMatch(/^the BMC's update failed after its outcome was unknown: .*flash failed; the machine is free again$/);
    expect(settled.heldUntil).toBeUndefined();
    expect(settled.outcomeUnknown).toBeUndefined();
    // the job was counted once, as outcome unknown; the hold's end on its own counter
    expect(await registry.getSingleMetricAsString('metal_bmc_firmware_jobs_total')).toMatch(/^metal_bmc_firmware_jobs_total\{outcome="outcome-unknown"} 1$/m);
    expect(await registry.getSingleMetricAsString('metal_bmc_firmware_jobs_total')).not.toMatch(/outcome="failed"/);
    expect(await registry.getSingleMetricAsString('metal_bmc_firmware_holds_ended_total')).toMatch(/^metal_bmc_firmware_holds_ended_total\{end="failed"} 1$/m);
  });

  it("a BMC that cannot be read during the hold (its task lost, unreadable) does not free the machine early: held until heldUntil", async () => {
    const t = setup({ timeoutMs: 300, outcomeUnknownHoldMs: 1500 });
    const failed = await deadlineWhileTaskRuns(t);
    expect(failed).toMatchObject({ code: 'OUTCOME_UNKNOWN', heldUntil: expect.any(String) });
    await waitFor(() => t.bmcs.pending.has('watch:m1'), 5000, 'task watched during the hold');
    t.bmcs.pending.get('watch:m1')!.fail(new TaskLostError(`task ${TASK}: answered HTTP 404 after the BMC was unreachable; outcome unverified`));
    await waitFor(() => t.jobs.activeFor(plan('m1')) === undefined, 5000, 'hold over');
    expect(Date.now()).toBeGreaterThanOrEqual(Date.parse(failed.heldUntil!));
    expect(t.log.find('machine held after a firmware update of unknown outcome is free again')).toHaveLength(1);
    expect(t.log.find(/the BMC's update ended/)).toEqual([]);
    // told as released: free again, the outcome still unknown
    expect(phases(t.events).slice(-2)).toEqual(['failed:40', 'released']);
    const released = t.events.at(-1)!;
    expect(released).toMatchObject({ ok: false, phase: 'released', releasedAs: 'hold-ended', code: 'OUTCOME_UNKNOWN', outcomeUnknown: true, job: { id: failed.job!.id } });
    expect(released.error).toMatch(/the machine is free again and the outcome is still unknown: check its firmware version/);
    expect(released.heldUntil).toBeUndefined();
  });

  it("a deadline that passes while iLO's flash (no task, its Oem.Hpe.State) still runs holds the machine too, watched through iLO's state; still Updating at the hold's end, held longer", async () => {
    const t = setup({ timeoutMs: 300, outcomeUnknownHoldMs: 1000 });
    await t.jobs.start(plan('m1', 'bios'));
    await waitFor(() => t.bmcs.pending.has('m1'), 5000, 'update started');
    t.bmcs.pending.get('m1')!.watch({ target: '/redfish/v1/Systems/1' });
    t.bmcs.pending.get('m1')!.watch({ hpeFlash: true });
    t.bmcs.pending.get('m1')!.progress({ state: 'Updating', percent: 35 });
    await waitFor(() => t.events.some((e) => e.phase === 'failed'), 5000, 'deadline');
    const failed = t.events.find((e) => e.phase === 'failed')!;
    expect(failed).toMatchObject({ code: 'OUTCOME_UNKNOWN', outcomeUnknown: true, heldUntil: expect.any(String) });
    expect(failed.error).toMatch(/^outcome unknown: iLO's flash \(its UpdateService's Oem\.Hpe\.State\) was still running at 35% \(State Updating\) at the deadline/);
    expect(await t.jobs.start(plan('m1', 'bios'))).toMatchObject({ accepted: false, event: { code: 'BUSY' } });
    await waitFor(() => t.bmcs.pending.has('watch:m1'), 5000, 'iLO state watched during the hold');
    expect(t.bmcs.watched.get('m1')).toEqual({ target: '/redfish/v1/Systems/1', hpeFlash: true });
    const during = t.bmcs.pending.get('watch:m1')!;
    await waitFor(() => t.bmcs.pending.get('watch:m1') !== during, 5000, 'look at the hold end');
    t.bmcs.pending.get('watch:m1')!.progress({ state: 'Updating', percent: 80 });
    await waitFor(() => t.log.find(/^firmware task still runs at the end of its machine's hold/).length === 1, 5000, 'hold extended');
    expect(t.jobs.activeFor(plan('m1'))).toMatchObject({ kind: 'bios' });
    await waitFor(() => t.bmcs.pending.has('watch:m1') && t.bmcs.pending.get('watch:m1') !== during, 5000, 'watched again');
    t.bmcs.pending.get('watch:m1')!.progress({ state: 'Completed', percent: 100 });
    t.bmcs.pending.get('watch:m1')!.finish();
    await waitFor(() => t.jobs.activeFor(plan('m1')) === undefined, 5000, 'freed');
  });

  it("a task poll that times out on its own before the job's deadline (a deadline of hours) while the task runs holds the machine as at the deadline", async () => {
    const t = setup({ timeoutMs: 60_000, outcomeUnknownHoldMs: 60_000 });
    await t.jobs.start(plan('m1', 'bios'));
    await waitFor(() => t.bmcs.pending.has('m1'), 5000, 'update started');
    t.bmcs.pending.get('m1')!.watch({ taskUri: TASK });
    t.bmcs.pending.get('m1')!.progress({ state: 'Running', percent: 40 });
    t.bmcs.pending.get('m1')!.fail(new BmcError('TIMEOUT', `task ${TASK}: no end within 3600000 ms`));
    await waitFor(() => t.events.some((e) => e.phase === 'failed'), 5000, 'poll gave up');
    const failed = t.events.find((e) => e.phase === 'failed')!;
    expect(failed).toMatchObject({ code: 'OUTCOME_UNKNOWN', outcomeUnknown: true, heldUntil: expect.any(String) });
    expect(failed.error).toMatch(/still running at 40% \(TaskState Running\) when its watch timed out before the deadline; the machine stays held/);
    expect(await t.jobs.start(plan('m1', 'bios'))).toMatchObject({ accepted: false, event: { code: 'BUSY' } });
  });

  it("on iLO only iLO's own running states hold at the deadline: the 'Running' metal-bmc tells while it waits for a BMC image's version does not", async () => {
    const t = setup({ timeoutMs: 300 });
    await t.jobs.start(plan('m1', 'bmc'));
    await waitFor(() => t.bmcs.pending.has('m1'), 5000, 'update started');
    t.bmcs.pending.get('m1')!.watch({ target: '/redfish/v1/Managers/1', versionBefore: '1.10' });
    t.bmcs.pending.get('m1')!.watch({ hpeFlash: true });
    t.bmcs.pending.get('m1')!.progress({ state: 'Running', message: 'the BMC named no task to follow; waiting for its firmware version to change from 1.10' });
    await waitFor(() => t.events.some((e) => e.phase === 'failed'), 5000, 'deadline');
    expect(t.events.find((e) => e.phase === 'failed')).toMatchObject({ code: 'TIMEOUT' });
    expect(t.jobs.activeFor(plan('m1'))).toBeUndefined();
  });

  it("a BMC that cannot be connected when a restart holds its job again is asked once more at the hold's end for the look", async () => {
    const file = stateFile();
    const first = setup({ stateFile: file, timeoutMs: 300, outcomeUnknownHoldMs: 1500 });
    await deadlineWhileTaskRuns(first);
    await first.jobs.stop(1000);
    const next = setup({ stateFile: file, outcomeUnknownHoldMs: 1500 });
    next.bmcs.refuse(new BmcError('TIMEOUT', 'BMC m1: no answer (restarting into its image)'));
    expect(next.jobs.recover()).toEqual([]);
    await waitFor(() => next.log.find(/^cannot connect to the BMC of a firmware job held/).length === 1, 5000, 'first connect failed');
    next.bmcs.refuse(undefined);
    // the look at the hold's end, on a connection made for it
    await waitFor(() => next.bmcs.pending.has('watch:m1'), 5000, 'look at the hold end');
    next.bmcs.pending.get('watch:m1')!.progress({ state: 'Running', percent: 90 });
    await waitFor(() => next.log.find(/^firmware task still runs at the end of its machine's hold/).length === 1, 5000, 'hold extended');
    expect(next.bmcs.connects()).toBe(2);
    expect(next.jobs.activeFor(plan('m1'))).toMatchObject({ kind: 'bios' });
    await next.jobs.stop(1000);
  });

  it("a hold that ended while metal-bmc was down is looked at on the next start: a task still running holds the machine again", async () => {
    const file = stateFile();
    const first = setup({ stateFile: file, timeoutMs: 300, outcomeUnknownHoldMs: 60_000 });
    await deadlineWhileTaskRuns(first);
    await first.jobs.stop(1000);
    // metal-bmc stays down past heldUntil
    const state = JSON.parse(readFileSync(file, 'utf8'));
    state.jobs[0].heldUntil = new Date(Date.now() - 60_000).toISOString();
    writeFileSync(file, JSON.stringify(state));
    const next = setup({ stateFile: file, outcomeUnknownHoldMs: 60_000 });
    expect(next.jobs.recover()).toEqual([]);
    expect(next.jobs.activeFor(plan('m1'))).toMatchObject({ kind: 'bios' });
    await waitFor(() => next.bmcs.pending.has('watch:m1'), 5000, 'the look');
    next.bmcs.pending.get('watch:m1')!.progress({ state: 'Running', percent: 95 });
    await waitFor(() => next.log.find(/^firmware task still runs at the end of its machine's hold/).length === 1, 5000, 'held again');
    expect(await next.jobs.start(plan('m1', 'bios'))).toMatchObject({ accepted: false, event: { code: 'BUSY' } });
    await next.jobs.stop(1000);
  });

  it("a task still running at the hold's end keeps the machine held another hold, until it ends", async () => {
    // its claim, written again at the extension: the other instances hold the machine to the new end at once
    const rewrites: number[] = [];
    const claims: JobClaims = { claim: async (subject) => ({ held: { release: async () => undefined, rewrite: () => void rewrites.push(subject.holdMs!()) } }) };
    const t = setup({ timeoutMs: 300, outcomeUnknownHoldMs: 1000, claims });
    const failed = await deadlineWhileTaskRuns(t);
    await waitFor(() => t.bmcs.pending.has('watch:m1'), 5000, 'task watched during the hold');
    const during = t.bmcs.pending.get('watch:m1')!;
    // the hold's end: a new look at the task, which still runs
    await waitFor(() => t.bmcs.pending.get('watch:m1') !== during, 5000, 'look at the hold end');
    t.bmcs.pending.get('watch:m1')!.progress({ state: 'Running', percent: 70 });
    await waitFor(() => t.log.find(/^firmware task still runs at the end of its machine's hold/).length === 1, 5000, 'hold extended');
    const extended = t.log.find(/^firmware task still runs at the end/)[0]!;
    expect(extended).toMatchObject({ taskUri: TASK, progress: 'Running 70%' });
    expect(Date.parse(extended.heldUntil as string)).toBeGreaterThan(Date.parse(failed.heldUntil!));
    expect(t.jobs.activeFor(plan('m1'))).toMatchObject({ kind: 'bios' });
    expect(await t.jobs.start(plan('m1', 'bios'))).toMatchObject({ accepted: false, event: { code: 'BUSY' } });
    // the extension is published: held, with the new heldUntil and the task's last progress
    expect(t.events.filter((e) => e.phase === 'held')).toEqual([
      expect.objectContaining({ ok: false, phase: 'held', code: 'OUTCOME_UNKNOWN', outcomeUnknown: true, heldUntil: extended.heldUntil, progress: { state: 'Running', percent: 70 }, job: expect.objectContaining({ id: failed.job!.id }) }),
    ]);
    // as it began to send, as it was held (the hold from now), then at the extension, with about a hold left
    expect(rewrites).toHaveLength(3);
    expect(rewrites[1]).toBeGreaterThan(900);
    expect(rewrites[2]).toBeGreaterThan(500);
    // watched again in the longer hold: its completion frees the machine
    await waitFor(() => t.bmcs.pending.has('watch:m1') && t.log.find(/^firmware task still runs/).length === 1, 5000, 'watched again');
    t.bmcs.pending.get('watch:m1')!.progress({ state: 'Completed', percent: 100 });
    t.bmcs.pending.get('watch:m1')!.finish();
    await waitFor(() => t.jobs.activeFor(plan('m1')) === undefined, 5000, 'freed');
    expect(t.log.find("machine held after a firmware update of unknown outcome is free again: the BMC's update ended completed")).toHaveLength(1);
    expect(phases(t.events).filter((p) => !/^(progress|refused)/.test(p))).toEqual(['accepted', 'failed:40', 'held:70', 'settled:100']);
    expect(t.events.at(-1)).toMatchObject({ ok: true, phase: 'settled', settledAs: 'completed', detail: 'Completed 100%', progress: { state: 'Completed', percent: 100 }, rebootRequired: true });
    expect(t.events.at(-1)!.heldUntil).toBeUndefined();
    expect(t.events.at(-1)!.error).toBeUndefined();
  });

  it('a task that still runs past taskHoldLimitMs after the job was accepted is taken as hung: its machine is freed with one error line', async () => {
    // the limit is past by the hold's end
    const t = setup({ timeoutMs: 300, outcomeUnknownHoldMs: 500, taskHoldLimitMs: 1 });
    await deadlineWhileTaskRuns(t);
    await waitFor(() => t.bmcs.pending.has('watch:m1'), 5000, 'task watched during the hold');
    const during = t.bmcs.pending.get('watch:m1')!;
    await waitFor(() => t.bmcs.pending.get('watch:m1') !== during, 5000, 'look at the hold end');
    t.bmcs.pending.get('watch:m1')!.progress({ state: 'Running', percent: 99 });
    await waitFor(() => t.jobs.activeFor(plan('m1')) === undefined, 5000, 'freed');
    expect(t.log.find(/^firmware task still runs 0 minutes after the update was accepted; taken as hung/)).toEqual([expect.objectContaining({ taskUri: TASK, progress: 'Running 99%' })]);
    expect(t.log.find(/^firmware task still runs at the end of its machine's hold/)).toEqual([]);
    expect(phases(t.events).filter((p) => !p.startsWith('progress'))).toEqual(['accepted', 'failed:40', 'released:99']);
    const released = t.events.at(-1)!;
    expect(released).toMatchObject({ ok: false, releasedAs: 'task-hung', code: 'OUTCOME_UNKNOWN', outcomeUnknown: true });
    expect(released.error).toMatch(/^the BMC's update still ran 0 minutes after it was accepted \(last progress Running 99%\) and is taken as hung; the machine is free again and the outcome is still unknown/);
  });

  it('a restart during that hold holds the machine again and watches the task again on a new connection: its completion frees the machine', async () => {
    const file = stateFile();
    const first = setup({ stateFile: file, timeoutMs: 300, outcomeUnknownHoldMs: 60_000 });
    const failed = await deadlineWhileTaskRuns(first);
    expect(JSON.parse(readFileSync(file, 'utf8')).jobs[0]).toMatchObject({ state: 'failed', code: 'OUTCOME_UNKNOWN', taskUri: TASK, heldUntil: failed.heldUntil });
    await first.jobs.stop(1000);
    const next = setup({ stateFile: file, outcomeUnknownHoldMs: 60_000 });
    expect(next.jobs.recover()).toEqual([]);
    expect(next.jobs.activeFor(plan('m1'))).toMatchObject({ kind: 'bios' });
    await waitFor(() => next.bmcs.pending.has('watch:m1'), 5000, 'task watched again after the restart');
    expect(next.bmcs.watched.get('m1')).toEqual({ taskUri: TASK, target: '/redfish/v1/Systems/1', versionBefore: '2.10' });
    next.bmcs.pending.get('watch:m1')!.progress({ state: 'Completed', percent: 100, message: 'Task completed.' });
    next.bmcs.pending.get('watch:m1')!.finish();
    await waitFor(() => next.jobs.activeFor(plan('m1')) === undefined, 5000, 'freed early');
    expect(next.log.find("machine held after a firmware update of unknown outcome is free again: the BMC's update ended completed")).toEqual([expect.objectContaining({ ended: 'completed', detail: 'Completed 100%: Task completed.' })]);
    expect(JSON.parse(readFileSync(file, 'utf8')).jobs[0].heldUntil).toBeUndefined();
    expect(next.bmcs.closed()).toBe(1);
    // the hold's end, told once by the run that saw it; nothing of the earlier run told again
    expect(next.events).toEqual([expect.objectContaining({ phase: 'settled', ok: true, settledAs: 'completed', detail: 'Completed 100%: Task completed.', job: expect.objectContaining({ id: failed.job!.id }) })]);
    // a later start finds nothing held and tells nothing
    const third = setup({ stateFile: file, outcomeUnknownHoldMs: 60_000 });
    expect(third.jobs.recover()).toEqual([]);
    expect(third.jobs.activeFor(plan('m1'))).toBeUndefined();
    expect(third.events).toEqual([]);
  });

  it('what a watch during a hold learns (iLO seen flashing) is kept in the state file, for the watch after the pace switch and a restart', async () => {
    const file = stateFile();
    const first = setup({ stateFile: file, timeoutMs: 300, outcomeUnknownHoldMs: 60_000 });
    await deadlineWhileTaskRuns(first);
    await first.jobs.stop(1000);
    const next = setup({ stateFile: file, outcomeUnknownHoldMs: 60_000 });
    next.jobs.recover();
    await waitFor(() => next.bmcs.pending.has('watch:m1'), 5000, 'the hold watching');
    next.bmcs.pending.get('watch:m1')!.watch({ hpeFlashStarted: true });
    expect(JSON.parse(readFileSync(file, 'utf8')).jobs[0]).toMatchObject({ hpeFlashStarted: true });
    await next.jobs.stop(1000);
  });

  it("a restart after the hold was extended holds to the new heldUntil without telling 'held' again, and tells the hold's end once", async () => {
    const file = stateFile();
    const first = setup({ stateFile: file, timeoutMs: 300, outcomeUnknownHoldMs: 1000 });
    await deadlineWhileTaskRuns(first);
    await waitFor(() => first.bmcs.pending.has('watch:m1'), 5000, 'task watched during the hold');
    const during = first.bmcs.pending.get('watch:m1')!;
    await waitFor(() => first.bmcs.pending.get('watch:m1') !== during, 5000, 'look at the hold end');
    first.bmcs.pending.get('watch:m1')!.progress({ state: 'Running', percent: 70 });
    await waitFor(() => first.events.some((e) => e.phase === 'held'), 5000, 'hold extended');
    const held = first.events.find((e) => e.phase === 'held')!;
    expect(JSON.parse(readFileSync(file, 'utf8')).jobs[0].heldUntil).toBe(held.heldUntil);
    await first.jobs.stop(1000);
    expect(first.events.filter((e) => ['settled', 'released'].includes(e.phase))).toEqual([]);

    const next = setup({ stateFile: file, outcomeUnknownHoldMs: 1000 });
    expect(next.jobs.recover()).toEqual([]);
    expect(next.jobs.activeFor(plan('m1'))).toMatchObject({ kind: 'bios' });
    await waitFor(() => next.bmcs.pending.has('watch:m1'), 5000, 'task watched again');
    expect(next.events).toEqual([]);
    // the BMC cannot be read (task lost): held to heldUntil, then released, told once
    next.bmcs.pending.get('watch:m1')!.fail(new TaskLostError(`task ${TASK}: answered HTTP 404; outcome unverified`));
    await waitFor(() => next.jobs.activeFor(plan('m1')) === undefined, 5000, 'hold over');
    expect(next.events).toEqual([expect.objectContaining({ phase: 'released', releasedAs: 'hold-ended', outcomeUnknown: true, job: expect.objectContaining({ id: held.job!.id }) })]);
    const third = setup({ stateFile: file });
    third.jobs.recover();
    expect(third.events).toEqual([]);
  });

  it('a hold that ended while metal-bmc was down with nothing to look at (a BMC image watched by its version) is told released once, at the next start', async () => {
    const file = stateFile();
    const first = setup({ stateFile: file, timeoutMs: 300, unreachableAfterMs: 100, outcomeUnknownHoldMs: 60_000 });
    await first.jobs.start(plan('m1', 'bmc'));
    await waitFor(() => first.bmcs.pending.has('m1'), 5000, 'update started');
    first.bmcs.pending.get('m1')!.watch({ target: '/redfish/v1/Managers/1', versionBefore: '1.10' });
    first.bmcs.answer.get('m1')!();
    await waitFor(() => first.events.some((e) => e.phase === 'failed'), 5000, 'deadline');
    const failed = first.events.find((e) => e.phase === 'failed')!;
    await first.jobs.stop(1000);
    const state = JSON.parse(readFileSync(file, 'utf8'));
    state.jobs[0].heldUntil = new Date(Date.now() - 1000).toISOString();
    writeFileSync(file, JSON.stringify(state));

    const next = setup({ stateFile: file });
    expect(next.jobs.recover()).toEqual([]);
    expect(next.jobs.activeFor(plan('m1'))).toBeUndefined();
    expect(next.events).toEqual([expect.objectContaining({ phase: 'released', ok: false, releasedAs: 'hold-ended', outcomeUnknown: true, job: expect.objectContaining({ id: failed.job!.id }) })]);
    expect(JSON.parse(readFileSync(file, 'utf8')).jobs[0].heldUntil).toBeUndefined();
    const third = setup({ stateFile: file });
    third.jobs.recover();
    expect(third.events).toEqual([]);
  });

  it("a hold asks the BMC at the job's pace first, then at HOLD_POLL_MS (15 s)", async () => {
    const t = setup({ timeoutMs: 300, outcomeUnknownHoldMs: 60_000, holdJobPaceMs: 300 });
    await deadlineWhileTaskRuns(t);
    await waitFor(() => t.bmcs.pending.has('watch:m1'), 5000, 'task watched during the hold');
    const first = t.bmcs.pending.get('watch:m1')!;
    // the job's pace: no pace asked for, the facade's own (a task's 2 s)
    expect(t.bmcs.paces).toEqual([undefined]);
    // past holdJobPaceMs the watch is asked again, slower; the machine stays held
    await waitFor(() => t.bmcs.pending.get('watch:m1') !== first, 5000, 'the slower watch');
    expect(t.bmcs.paces).toEqual([undefined, HOLD_POLL_MS]);
    expect(HOLD_POLL_MS).toBe(15_000);
    expect(t.jobs.activeFor(plan('m1'))).toMatchObject({ kind: 'bios' });
    expect(t.events.filter((e) => ['held', 'settled', 'released'].includes(e.phase))).toEqual([]);
    // its end still frees the machine early
    t.bmcs.pending.get('watch:m1')!.finish();
    await waitFor(() => t.jobs.activeFor(plan('m1')) === undefined, 5000, 'freed');
    expect(t.events.at(-1)).toMatchObject({ phase: 'settled', settledAs: 'completed' });
  });

  it('keeps an unreadable state file aside and starts without it', async () => {
    const file = stateFile();
    const { jobs } = setup({ stateFile: file });
    await jobs.start(plan('m9'));
    writeFileSync(file, '{"version":1,"jobs":[{"id":1}]}');
    const next = setup({ stateFile: file });
    expect(next.jobs.recover()).toEqual([]);
    expect(next.log.find('firmware job state file is not readable; kept aside, starting without it')).toHaveLength(1);
    expect(existsSync(file)).toBe(false);
    expect(readdirSync(join(file, '..')).some((f) => f.startsWith('firmware-jobs.json.unreadable-'))).toBe(true);
  });

  it('interrupts what still runs at the shutdown deadline: an update the BMC may have taken, with no task to follow, as an outcome unknown that holds the machine', async () => {
    const { jobs, events, bmcs } = setup();
    await jobs.start(plan('m1'));
    await waitFor(() => bmcs.pending.has('m1'), 5000, 'the update sent');
    await jobs.stop(50);
    expect(events.at(-1)).toMatchObject({ phase: 'interrupted', ok: false, code: 'OUTCOME_UNKNOWN', outcomeUnknown: true, heldUntil: expect.any(String) });
  });

  it('reads any state file either as jobs or as a DECODE error, never anything else', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.json(), fc.record({ version: fc.constant(1), jobs: fc.array(fc.dictionary(fc.string(), fc.jsonValue())) }).map((v) => JSON.stringify(v))), (text) => {
        try {
          const jobs = parseStateFile(text);
          return jobs.every((j) => j.kind === 'bios' || j.kind === 'bmc');
        } catch (err) {
          return isBmcError(err, 'DECODE');
        }
      }),
    );
  });

  it('labels an image without credentials, query or fragment', () => {
    expect(imageLabel('https://u:p@h.example:8443/a/b.bin?sig=x#y')).toBe('https://h.example:8443/a/b.bin');
    expect(imageLabel('not a url')).toBe('(not a URL)');
  });
});

describe('jobProgress: what a job keeps and publishes of the facade\'s progress', () => {
  it('a staged update (the BMC waits for the host reboot) keeps our own message, never the BMC\'s', () => {
    expect(jobProgress({ state: 'Staged', percent: 100, message: 'staged: … (the BMC answered TaskState Running, Oem.Dell.JobState Scheduled)' })).toEqual({
      state: 'Staged',
      percent: 100,
      message: "staged: applies at the machine's next reboot",
    });
  });

  it('an update iDRAC leaves at UserIntervention says a reboot or an A/C power cycle applies it', () => {
    expect(jobProgress({ state: 'Staged', percent: 100, message: 'staged: the update needs a reboot or an A/C power cycle of the machine to apply (the BMC answered TaskState UserIntervention at 100 %)' })).toEqual({
      state: 'Staged',
      percent: 100,
      message: 'staged: the update needs a reboot or an A/C power cycle of the machine to apply',
    });
  });

  it('a BMC image the BMC staged says the host needs a reboot too', async () => {
    const { jobs, events, bmcs } = setup();
    await jobs.start(plan('m1', 'bmc'));
    await waitFor(() => bmcs.pending.has('m1'), 5000, 'update started');
    bmcs.pending.get('m1')!.progress({ state: 'Running', percent: 40 });
    expect(events.at(-1)).toMatchObject({ phase: 'progress', rebootRequired: false });
    bmcs.pending.get('m1')!.progress({ state: 'Staged', percent: 100, message: 'staged: the update needs a reboot or an A/C power cycle of the machine to apply (…)' });
    bmcs.pending.get('m1')!.finish();
    await waitFor(() => jobs.running() === 0, 5000, 'job done');
    expect(events.at(-1)).toMatchObject({ phase: 'completed', ok: true, rebootRequired: true, rebootedByMetalBmc: false, progress: { state: 'Staged' } });
  });

  it('other states carry no message: a BMC\'s task messages may quote the image URL', () => {
    expect(jobProgress({ state: 'Running', percent: 40, message: 'Fetching https://user:tok@images.example/fw/bios.bin?token=abc' })).toEqual({ state: 'Running', percent: 40 });
    // an upload of unknown length: the bytes taken, our own count, published as they grow
    expect(jobProgress({ state: 'Uploading', sentBytes: 16 * 1024 * 1024 })).toEqual({ state: 'Uploading', sentBytes: 16 * 1024 * 1024 });
  });
});

describe('firmware jobs with claims across instances', () => {
  /** claims the test answers one by one, in order */
  function manualClaims() {
    const asked: Array<{ subject: Parameters<JobClaims['claim']>[0]; answer: (a: 'held' | 'busy' | Error) => void }> = [];
    const released: string[] = [];
    const claims: JobClaims = {
      claim: (subject) =>
        new Promise((resolve, reject) =>
          asked.push({
            subject,
            answer: (a) => (a instanceof Error ? reject(a) : resolve(a === 'busy' ? { busy: 'job x (bios) on instance mgmt-b, renewed 3 s ago' } : { held: { release: async () => void released.push(subject.jobId) } })),
          }),
        ),
    };
    return { claims, asked, released };
  }

  /**
   * A job left running with its task named by a process that died, taken up again by the next
   * process, whose first claim-back fails in transport: the claim is asked for again (`c.asked[1]`, unanswered).
   */
  async function resumedWithClaimAskedAgain() {
    const { file, first } = await updateUnderWay('bmc');
    first.bmcs.pending.get('m1')!.watch({ taskUri: '/redfish/v1/TaskService/Tasks/7' });
    // the process dies here
    const c = manualClaims();
    const second = setup({ stateFile: file, claims: c.claims, claimRetryMs: 20 });
    second.jobs.recover();
    await waitFor(() => c.asked.length === 1, 5000, 'the claim asked for');
    c.asked[0]!.answer(new Error('timeout'));
    await waitFor(() => c.asked.length === 2, 5000, 'the claim asked for again');
    return { first, second, c };
  }

  it('a job resumed after a restart whose claim cannot be taken back (NATS away) asks for it again until it holds it, and releases it at its end', async () => {
    const { first, second, c } = await resumedWithClaimAskedAgain();
    // watched meanwhile, held on this instance
    await waitFor(() => second.bmcs.pending.has('watch:m1'), 5000, 'update watched again');
    expect(second.jobs.activeFor(plan('m1'))).toBeDefined();
    c.asked[1]!.answer(new Error('timeout'));
    await waitFor(() => c.asked.length === 3, 5000, 'and again');
    c.asked[2]!.answer('held');
    await waitFor(() => second.log.find('firmware claim of a job resumed after a restart taken back').length === 1, 5000, 'taken back');
    expect(c.released).toEqual([]);
    second.bmcs.pending.get('watch:m1')!.finish();
    await waitFor(() => second.jobs.running() === 0, 5000, 'job done');
    expect(c.released).toEqual([c.asked[2]!.subject.jobId]);
    // asked no more
    expect(c.asked).toHaveLength(3);
    first.bmcs.pending.get('m1')!.fail(new Error('gone'));
  });

  it('a claim asked for again that is still under way when the job completes is released once it comes; a stop waits for one under way', async () => {
    const { first, second, c } = await resumedWithClaimAskedAgain();
    // the update ends while the second ask is under way
    await waitFor(() => second.bmcs.pending.has('watch:m1'), 5000, 'watched again');
    second.bmcs.pending.get('watch:m1')!.finish();
    await waitFor(() => second.jobs.running() === 0, 5000, 'job done');
    let stopped = false;
    const stopping = second.jobs.stop(1000).then(() => void (stopped = true));
    await new Promise((resolve) => setImmediate(resolve));
    expect(stopped).toBe(false);
    c.asked[1]!.answer('held');
    await stopping;
    expect(c.released).toEqual([c.asked[1]!.subject.jobId]);
    first.bmcs.pending.get('m1')!.fail(new Error('gone'));
  });

  it('a stop does not wait past its deadline for a claim asked for again whose bucket does not answer', async () => {
    const { first, second } = await resumedWithClaimAskedAgain();
    // the second ask is never answered
    let stopped = false;
    void second.jobs.stop(50).then(() => void (stopped = true));
    await waitFor(() => stopped, 5000, 'the stop returned');
    first.bmcs.pending.get('m1')!.fail(new Error('gone'));
  });

  it('a stop while the job waits for its claim to say it is about to send: nothing sent, interrupted as not begun', async () => {
    let written!: () => void;
    const claims: JobClaims = { claim: async () => ({ held: { release: async () => undefined, rewrite: () => new Promise<void>((resolve) => (written = resolve)) } }) };
    const t = setup({ claims });
    await t.jobs.start(plan('m1', 'bmc'));
    await waitFor(() => written !== undefined, 5000, 'the claim written again');
    const stopping = t.jobs.stop(5000);
    written();
    await stopping;
    expect(t.bmcs.pending.has('m1')).toBe(false);
    expect(t.events.at(-1)).toMatchObject({ phase: 'interrupted', code: 'ABORTED' });
    expect(t.events.at(-1)!.heldUntil).toBeUndefined();
    expect(t.events.at(-1)!.outcomeUnknown).toBeUndefined();
  });

  it('after a stop, a machine it holds stays held until the process ends: its hold does not end for a runner still asking', async () => {
    const t = setup({ timeoutMs: 300, unreachableAfterMs: 100, outcomeUnknownHoldMs: 60_000 });
    await t.jobs.start(plan('m1', 'bmc'));
    await waitFor(() => t.bmcs.pending.has('m1'), 5000, 'update started');
    t.bmcs.answer.get('m1')!();
    await waitFor(() => t.events.some((e) => e.phase === 'failed'), 5000, 'the deadline: held');
    await t.jobs.stop(1000);
    const hold = t.jobs.activeFor(plan('m1'));
    expect(hold).toBeDefined();
    let ended = false;
    void hold!.ended.then(() => void (ended = true));
    await new Promise((resolve) => setImmediate(resolve));
    expect(ended).toBe(false);
  });

  it("a stop during a hold keeps the hold's claim: other instances' power commands and updates stay off the machine", async () => {
    const c = manualClaims();
    const t = setup({ timeoutMs: 300, unreachableAfterMs: 100, outcomeUnknownHoldMs: 60_000, claims: c.claims });
    const startOf = (machine: string) => t.jobs.start(plan(machine, 'bmc'));
    const first = startOf('m1');
    await waitFor(() => c.asked.length === 1, 5000, 'the claim asked');
    c.asked[0]!.answer('held');
    await first;
    await waitFor(() => t.bmcs.pending.has('m1'), 5000, 'update started');
    t.bmcs.answer.get('m1')!();
    await waitFor(() => t.events.some((e) => e.phase === 'failed'), 5000, 'the deadline: held');
    await t.jobs.stop(1000);
    expect(c.released).toEqual([]);
  });

  it("tells the other instances through its claim how long to hold the machine were this instance gone: nothing while it waits for a power command, the hold once it may send, the hold's rest once held", async () => {
    const subjects: Array<Parameters<JobClaims['claim']>[0]> = [];
    const rewrites: number[] = [];
    const claims: JobClaims = {
      // the claim's first write asks its hold at once, as firmware-claims.ts encodes it
      claim: async (subject) => (subjects.push(subject), rewrites.push(subject.holdMs!()), { held: { release: async () => undefined, rewrite: () => void rewrites.push(subject.holdMs!()) } }),
    };
    let endPower!: () => void;
    const power = new Promise<void>((resolve) => (endPower = resolve));
    const t = setup({ timeoutMs: 300, unreachableAfterMs: 100, outcomeUnknownHoldMs: 60_000, claims, powerSettled: () => power });
    expect(await t.jobs.start(plan('m1', 'bmc'))).toMatchObject({ accepted: true });
    const holdMs = subjects[0]!.holdMs!;
    expect(holdMs()).toBe(0); // nothing sent while the power command runs: the claim's lease alone
    endPower();
    await waitFor(() => t.bmcs.pending.has('m1'), 5000, 'update started');
    expect(rewrites).toEqual([0, 60_000]); // no hold in its first write; written again as it began, not at the next renewal
    expect(holdMs()).toBe(60_000);
    t.bmcs.answer.get('m1')!();
    await waitFor(() => t.events.some((e) => e.phase === 'failed'), 5000, 'the deadline: held');
    const rest = holdMs();
    expect(rest).toBeGreaterThan(50_000);
    expect(rest).toBeLessThanOrEqual(60_000);
    expect(Date.now() + rest).toBeLessThanOrEqual(Date.parse(t.events.find((e) => e.phase === 'failed')!.heldUntil!) + 5);
    await t.jobs.stop(1000);
  });

  it('sends the BMC its update only once its claim says so (the rewrite with the hold written), not before', async () => {
    let written!: () => void;
    const claims: JobClaims = { claim: async () => ({ held: { release: async () => undefined, rewrite: () => new Promise<void>((resolve) => (written = resolve)) } }) };
    const t = setup({ claims });
    expect(await t.jobs.start(plan('m1', 'bmc'))).toMatchObject({ accepted: true });
    await waitFor(() => written !== undefined, 5000, 'the claim written again');
    // a turn of the loop's I/O: nothing goes out while the rewrite is under way
    await new Promise((resolve) => setImmediate(resolve));
    expect(t.bmcs.pending.has('m1')).toBe(false);
    written();
    await waitFor(() => t.bmcs.pending.has('m1'), 5000, 'update sent');
    t.bmcs.pending.get('m1')!.finish();
    await waitFor(() => t.jobs.running() === 0, 5000, 'job done');
  });

  it("keeps telling the other instances a whole hold while it looks at the update's task at its hold's end: the look may extend the hold", async () => {
    const subjects: Array<Parameters<JobClaims['claim']>[0]> = [];
    const claims: JobClaims = { claim: async (subject) => (subjects.push(subject), { held: { release: async () => undefined, rewrite: () => undefined } }) };
    const t = setup({ timeoutMs: 300, outcomeUnknownHoldMs: 1000, claims });
    await t.jobs.start(plan('m1', 'bmc'));
    await waitFor(() => t.bmcs.pending.has('m1'), 5000, 'update started');
    t.bmcs.pending.get('m1')!.watch({ taskUri: '/redfish/v1/TaskService/Tasks/7' });
    t.bmcs.pending.get('m1')!.progress({ state: 'Running', percent: 40 });
    // the deadline passes with the task still running: held, the task watched during the hold
    await waitFor(() => t.events.some((e) => e.phase === 'failed'), 5000, 'the deadline: held');
    const heldUntil = Date.parse(t.events.find((e) => e.phase === 'failed')!.heldUntil!);
    // past heldUntil, the look at the task under way (it gets no answer here)
    await waitFor(() => Date.now() > heldUntil + 100, 5000, 'the hold at its end');
    expect(t.jobs.activeFor(plan('m1'))).toBeDefined();
    expect(subjects[0]!.holdMs!()).toBe(1000);
    await t.jobs.stop(1000);
  });

  it("a stop that cuts off an update the next start cannot watch keeps its claim (the BMC may be flashing); one that sent nothing yet gives it back", async () => {
    const c = manualClaims();
    let endPower!: () => void;
    const power = new Promise<void>((resolve) => (endPower = resolve));
    const t = setup({ claims: c.claims, powerSettled: (key) => (key === 'm2' ? power : undefined) });
    const first = t.jobs.start(plan('m1', 'bmc'));
    await waitFor(() => c.asked.length === 1, 5000, 'the first claim');
    c.asked[0]!.answer('held');
    await first;
    await waitFor(() => t.bmcs.pending.has('m1'), 5000, 'the update sent, no task named');
    const second = t.jobs.start(plan('m2', 'bmc'));
    await waitFor(() => c.asked.length === 2, 5000, 'the second claim');
    c.asked[1]!.answer('held');
    await second; // waits for the power command on m2: nothing sent
    await t.jobs.stop(1000);
    expect(c.released).toEqual([c.asked[1]!.subject.jobId]);
    // said as an outcome unknown, held: the next start holds the machine again until heldUntil
    const m1 = t.events.filter((e) => e.machineId === 'm1').at(-1)!;
    expect(m1).toMatchObject({ phase: 'interrupted', code: 'OUTCOME_UNKNOWN', outcomeUnknown: true, heldUntil: expect.any(String) });
    expect(m1.error).toMatch(/^outcome unknown: metal-bmc stopped while this update ran .*before the BMC named a task to follow; the machine stays held until /);
    const m2 = t.events.filter((e) => e.machineId === 'm2').at(-1)!;
    expect(m2).toMatchObject({ phase: 'interrupted' });
    expect(m2.outcomeUnknown).toBeUndefined();
    endPower();
  });

  it('a job resumed after a restart takes its own claim back at once; one whose machine another instance holds now is left to it', async () => {
    const store = createMemoryKv('p-firmware');
    const claimsOf = (instanceId: string) => createFirmwareClaims({ kv: store.client(), instanceId, logger: captureLog().logger });
    const file = stateFile();
    const beforeRestart = claimsOf('mgmt-a');
    const first = setup({ stateFile: file, claims: beforeRestart, instanceId: 'mgmt-a' });
    await first.jobs.start(plan('m1', 'bmc'));
    await waitFor(() => first.bmcs.pending.has('m1'), 5000, 'update started');
    first.bmcs.pending.get('m1')!.watch({ taskUri: '/redfish/v1/TaskService/Tasks/7' });
    beforeRestart.close(); // the process dies: its claims are neither renewed nor deleted
    const snapshot = readFileSync(file, 'utf8');

    // the same instance, started again: its claim of the job is its own, not another's to wait out for 90 s
    const afterRestart = claimsOf('mgmt-a');
    const second = setup({ stateFile: file, claims: afterRestart, instanceId: 'mgmt-a' });
    second.jobs.recover();
    await waitFor(() => second.bmcs.pending.has('watch:m1'), 5000, 'update watched again under its claim');
    expect(second.events.some((e) => e.phase === 'interrupted')).toBe(false);
    // a job of another instance for the machine is refused meanwhile
    const other = setup({ claims: claimsOf('mgmt-b'), instanceId: 'mgmt-b' });
    expect(await other.jobs.start(plan('m1', 'bios'))).toMatchObject({ accepted: false, event: { code: 'BUSY' } });
    second.bmcs.pending.get('watch:m1')!.finish();
    await waitFor(() => second.jobs.running() === 0, 5000, 'job done');
    afterRestart.close();

    // the file as the crash left it, while another instance holds the machine now: left to that one
    expect((await other.jobs.start(plan('m1', 'bios'))).accepted).toBe(true);
    writeFileSync(file, snapshot);
    const third = setup({ stateFile: file, claims: claimsOf('mgmt-a'), instanceId: 'mgmt-a' });
    third.jobs.recover();
    await waitFor(() => third.events.some((e) => e.phase === 'interrupted'), 5000, 'left to the other instance');
    expect(third.events.at(-1)).toMatchObject({ code: 'INTERRUPTED', outcomeUnknown: true, error: expect.stringMatching(/another instance holds its machine or BMC now \(job .* on instance mgmt-b/) });
    expect(third.bmcs.pending.has('watch:m1')).toBe(false);
    expect(third.jobs.activeFor(plan('m1'))).toBeUndefined();
    await other.jobs.stop(50);
    first.bmcs.pending.get('m1')!.fail(new Error('gone'));
  });

  it('accepts only once claimed, releases the claim when the job ends; a refused claim is a BUSY result naming the other job', async () => {
    const c = manualClaims();
    const { jobs, events, bmcs } = setup({ claims: c.claims });
    const first = jobs.start(plan('m1'));
    await waitFor(() => c.asked.length === 1, 5000, 'the claim asked for');
    expect(c.asked[0]!.subject).toMatchObject({ machineKey: 'm1', bmc: 'm1:623', kind: 'bios' });
    expect(events).toEqual([]); // not accepted before it holds the claim
    c.asked[0]!.answer('held');
    expect((await first).accepted).toBe(true);
    await waitFor(() => bmcs.pending.has('m1'), 5000, 'update started');
    bmcs.pending.get('m1')!.finish();
    await waitFor(() => c.released.length === 1, 5000, 'the claim released');
    const second = jobs.start(plan('m1'));
    await waitFor(() => c.asked.length === 2, 5000, 'the next claim');
    c.asked[1]!.answer('busy');
    expect(await second).toMatchObject({ accepted: false, event: { code: 'BUSY', error: 'a firmware update is still running for this machine or its BMC m1:623 on another instance: job x (bios) on instance mgmt-b, renewed 3 s ago' } });
    const third = jobs.start(plan('m1'));
    await waitFor(() => c.asked.length === 3, 5000, 'the next claim');
    c.asked[2]!.answer(new BmcError('UNAVAILABLE', 'cannot claim: NATS is down'));
    expect(await third).toMatchObject({ accepted: false, event: { code: 'UNAVAILABLE', error: 'cannot claim: NATS is down' } });
    expect(jobs.running()).toBe(0);
  });

  it('a second event for the machine while the first is being claimed waits for that claim: refused here if it was held, asked across instances if it was refused', async () => {
    const c = manualClaims();
    const { jobs, events } = setup({ claims: c.claims });
    const first = jobs.start(plan('m1'));
    const second = jobs.start(plan('m1', 'bmc'));
    await waitFor(() => c.asked.length === 1, 5000, 'the first claim');
    c.asked[0]!.answer('busy');
    expect((await first).accepted).toBe(false);
    await waitFor(() => c.asked.length === 2, 5000, 'the second asked in turn');
    c.asked[1]!.answer('held');
    const accepted = await second;
    expect(accepted.accepted).toBe(true);
    const third = await jobs.start(plan('m1'));
    expect(third).toMatchObject({ accepted: false, event: { code: 'BUSY' } });
    expect(third.accepted ? '' : third.event.error).toMatch(/^a firmware update \(job \S+, bmc\) is still running for this machine$/);
    expect(c.asked).toHaveLength(2); // refused here, without asking
    expect(events.map((e) => e.phase)).toEqual(['refused', 'accepted', 'refused']);
  });

  it('a stop while a claim is asked for: no update starts, the claim is given back, the event goes back unpublished (CLOSED)', async () => {
    const c = manualClaims();
    const { jobs, events, bmcs } = setup({ claims: c.claims });
    const started = jobs.start(plan('m1'));
    await waitFor(() => c.asked.length === 1, 5000, 'the claim asked for');
    let stopped = false;
    const stopping = jobs.stop(1000).then(() => (stopped = true));
    expect(await Promise.race([stopping.then(() => 'stop returned'), new Promise((r) => setImmediate(() => r('stop waits')))])).toBe('stop waits');
    c.asked[0]!.answer('held');
    expect(await started).toMatchObject({ accepted: false, event: { code: 'CLOSED' } });
    await stopping;
    expect(stopped).toBe(true);
    expect(c.released).toHaveLength(1);
    expect(events).toEqual([]);
    expect(bmcs.pending.size).toBe(0);
    expect((await jobs.start(plan('m2'))).accepted).toBe(false);
    expect(c.asked).toHaveLength(1);
  });

  it('a claim that cannot be deleted in time (NATS slow) does not hold back the outcome', async () => {
    const claims: JobClaims = { claim: async () => ({ held: { release: () => new Promise<void>(() => undefined) } }) };
    const { jobs, events, bmcs } = setup({ claims });
    expect((await jobs.start(plan('m1'))).accepted).toBe(true);
    await waitFor(() => bmcs.pending.has('m1'), 5000, 'update started');
    bmcs.pending.get('m1')!.finish();
    await waitFor(() => events.some((e) => e.phase === 'completed'), 8000, 'the outcome told');
    expect(jobs.running()).toBe(0);
  }, 15_000);
});

describe('firmware jobs with the event journal', () => {
  const EVENT = journalEventId({ stream: 'METAL_BMC_P-MACHINE', created: '2026-01-01T00:00:00Z' }, 3);
  const delivered = (machine: string) => ({ ...plan(machine), eventId: EVENT });

  it('an event whose update an earlier delivery started (its ack lost) starts no second job: refused DUPLICATE naming that delivery', async () => {
    const store = createMemoryKv('p-events');
    const a = setup({ journal: createEventJournal({ kv: store.client(), instanceId: 'a', logger: captureLog().logger }) });
    const b = setup({ journal: createEventJournal({ kv: store.client(), instanceId: 'b', logger: captureLog().logger }) });
    expect((await a.jobs.start(delivered('m1'))).accepted).toBe(true);
    const again = await b.jobs.start(delivered('m1'));
    expect(again).toMatchObject({ accepted: false, event: { code: 'DUPLICATE', phase: 'refused' } });
    expect(again.accepted ? '' : again.event.error).toMatch(/^this event's update was started by an earlier delivery of it \(instance a at .*\); no second job$/);
    expect(b.bmcs.pending.size).toBe(0);
    await waitFor(() => a.bmcs.pending.has('m1'), 5000, 'update started');
    a.bmcs.pending.get('m1')!.finish();
    await waitFor(() => parseRecord(store.entries().get(stepKey(EVENT, 0))!.value)?.state === 'done', 5000, 'the step marked done');
  });

  it('a job refused here (busy) gives its step back: a later delivery may start it', async () => {
    const store = createMemoryKv('p-events');
    const { jobs, bmcs } = setup({ journal: createEventJournal({ kv: store.client(), instanceId: 'a', logger: captureLog().logger }) });
    expect((await jobs.start(plan('m1'))).accepted).toBe(true);
    expect(await jobs.start(delivered('m1'))).toMatchObject({ accepted: false, event: { code: 'BUSY' } });
    expect(parseRecord(store.entries().get(stepKey(EVENT, 0))!.value)).toMatchObject({ state: 'released' });
    await waitFor(() => bmcs.pending.has('m1'), 5000, 'update started');
    bmcs.pending.get('m1')!.finish();
    await waitFor(() => jobs.running() === 0, 5000, 'the first job done');
    expect((await jobs.start(delivered('m1'))).accepted).toBe(true);
  });

  it('a step this instance claimed before a crash that left its job unbegun is taken by the next delivery; one whose job began is not', async () => {
    const store = createMemoryKv('p-events');
    const file = stateFile();
    const journalLog = captureLog();
    const journal = (instanceId: string) => createEventJournal({ kv: store.client(), instanceId, logger: journalLog.logger });
    // the first run claims the step, then hangs on the claim across instances (a KV round trip) and "crashes"
    const hanging: JobClaims = { claim: () => new Promise(() => {}) };
    const first = setup({ stateFile: file, journal: journal('a'), instanceId: 'a', claims: hanging });
    first.jobs.recover();
    void first.jobs.start(delivered('m1'));
    await waitFor(() => parseRecord(store.entries().get(stepKey(EVENT, 0))?.value ?? new Uint8Array())?.state === 'claimed', 5000, 'the step claimed');
    expect(first.bmcs.pending.size).toBe(0);

    // another instance's delivery meanwhile: refused, the claim is not its to take
    const other = setup({ stateFile: stateFile(), journal: journal('b'), instanceId: 'b' });
    other.jobs.recover();
    expect(await other.jobs.start(delivered('m1'))).toMatchObject({ accepted: false, event: { code: 'DUPLICATE' } });

    // the restarted instance: its earlier run left the step claimed and the job unbegun
    const second = setup({ stateFile: file, journal: journal('a'), instanceId: 'a' });
    second.jobs.recover();
    expect((await second.jobs.start(delivered('m1'))).accepted).toBe(true);
    await waitFor(() => second.bmcs.pending.has('m1'), 5000, 'update started');
    expect(journalLog.find(/claimed before a restart, which left no trace of having begun it, is taken again/)).toHaveLength(1);

    // ... and crashes while the update runs: the job began, so a third run refuses a redelivery
    const third = setup({ stateFile: file, journal: journal('a'), instanceId: 'a' });
    third.jobs.recover();
    expect(await third.jobs.start(delivered('m1'))).toMatchObject({ accepted: false, event: { code: 'DUPLICATE' } });
    expect(third.bmcs.pending.size).toBe(0);
    second.bmcs.pending.get('m1')!.finish();
  });

  it('a job that began and was cut off by a crash is never started again, whatever deliveries came between (handed back, refused)', async () => {
    const store = createMemoryKv('p-events');
    const file = stateFile();
    const run = (down = false) => {
      const kv = store.client();
      kv.down = down;
      const r = setup({ stateFile: file, journal: createEventJournal({ kv, instanceId: 'a', logger: captureLog().logger }), instanceId: 'a' });
      r.jobs.recover();
      return r;
    };
    const first = run();
    expect((await first.jobs.start(delivered('m1'))).accepted).toBe(true);
    await waitFor(() => first.bmcs.pending.has('m1'), 5000, 'update started');
    // the first run ends mid-update, its ack lost; the next run gets the event while the journal is down, then one more while it is up
    const second = run(true);
    expect(await second.jobs.start(delivered('m1'))).toMatchObject({ accepted: false, handBack: true });
    const third = run();
    expect(await third.jobs.start(delivered('m1'))).toMatchObject({ accepted: false, event: { code: 'DUPLICATE' } });
    // and after another restart: still refused, no second update
    const fourth = run();
    expect(await fourth.jobs.start(delivered('m1'))).toMatchObject({ accepted: false, event: { code: 'DUPLICATE' } });
    expect(second.bmcs.pending.size + third.bmcs.pending.size + fourth.bmcs.pending.size).toBe(0);
    first.bmcs.pending.get('m1')!.finish();
  });

  it('a state folder that cannot be written does not stop updates: a note that never reached the file needs no clearing', async () => {
    const store = createMemoryKv('p-events');
    const file = stateFile();
    // the starting file's temporary file's place (writePrivateFileSync's) is taken by a folder: every write of it fails (as on a read-only or full state folder)
    mkdirSync(`${file}.starting.${process.pid}.tmp`, { recursive: true });
    const { jobs, bmcs, log } = setup({ stateFile: file, journal: createEventJournal({ kv: store.client(), instanceId: 'a', logger: captureLog().logger }), instanceId: 'a' });
    jobs.recover();
    expect((await jobs.start(delivered('m1'))).accepted).toBe(true);
    await waitFor(() => bmcs.pending.has('m1'), 5000, 'update started');
    expect(log.find('cannot write the firmware starting file').length).toBeGreaterThan(0);
    bmcs.pending.get('m1')!.finish();
  });

  it('with the journal unreachable no job starts and nothing is published: the event goes back (handBack)', async () => {
    const store = createMemoryKv('p-events');
    const kv = store.client();
    const { jobs, events, bmcs } = setup({ journal: createEventJournal({ kv, instanceId: 'a', logger: captureLog().logger }) });
    kv.down = true;
    expect(await jobs.start(delivered('m1'))).toMatchObject({ accepted: false, handBack: true, event: { code: 'UNAVAILABLE' } });
    expect(events).toEqual([]);
    expect(bmcs.pending.size).toBe(0);
    kv.down = false;
    expect((await jobs.start(delivered('m1'))).accepted).toBe(true);
  });

  it('a target that cannot be judged yet (the lease file not read) is handed back, not refused: nothing published', async () => {
    let leasesRead = false;
    const { jobs, events, bmcs } = setup({
      checkTarget: () => {
        if (!leasesRead) throw new HandBackError('BMC 10.0.0.1: the lease file has not been read yet; the event goes back to the stream');
      },
    });
    expect(await jobs.start(delivered('m1'))).toMatchObject({ accepted: false, handBack: true, event: { code: 'UNAVAILABLE', error: expect.stringMatching(/lease file has not been read yet/) } });
    expect(events).toEqual([]);
    expect(bmcs.pending.size).toBe(0);
    leasesRead = true;
    expect((await jobs.start(delivered('m1'))).accepted).toBe(true);
  });

  it('on its last allowed delivery a firmware event is refused, published, not handed back to be lost', async () => {
    const { jobs, events } = setup({
      checkTarget: () => {
        throw new HandBackError('BMC 10.0.0.1: the lease file has not been read yet; the event goes back to the stream');
      },
    });
    const outcome = await jobs.start({ ...delivered('m1'), lastDelivery: true });
    expect(outcome).toMatchObject({ accepted: false, event: { code: 'UNAVAILABLE', phase: 'refused' } });
    expect('handBack' in outcome).toBe(false);
    expect(events).toHaveLength(1);
    expect(events[0]!.error).toMatch(/last allowed delivery, so it does not come again$/);
  });
});
