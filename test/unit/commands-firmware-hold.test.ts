/**
 * The runner and this instance's firmware jobs together (runner.ts DURING_FIRMWARE_UPDATE,
 * firmware-jobs.ts activeFor): what the integration test (commands-firmware-hold) cannot time
 * without waits. A BMC fake records the power and boot actions; its update runs until the test
 * finishes it, and its other actions until the test lets them (`gate`).
 */
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import type { MachineCommand } from '../../src/commands/actions.js';
import type { EventType, Plan } from '../../src/commands/event.js';
import { createFirmwareJobs, type FirmwareJobsOptions, type JobClaims } from '../../src/commands/firmware-jobs.js';
import { dispositionOf } from '../../src/commands/handler.js';
import { createCommandMetrics } from '../../src/commands/metrics.js';
import { createCommandRunner, type CommandResult, type CommandRunnerOptions, type FirmwareJobHold } from '../../src/commands/runner.js';
import { BmcError } from '../../src/errors.js';
import type { Outband } from '../../src/outband/types.js';
import { captureLog } from '../helpers/log.js';
import { waitFor } from '../helpers/wait.js';

const ipmi = (host: string) => ({ address: `${host}:623`, host, port: 623, password: 'pw' });
const command = (machine: string, cmd: MachineCommand, host = machine): Plan => ({ machineId: machine, key: machine, type: 'command', command: cmd, ipmi: ipmi(host), actions: cmd === 'REINSTALL' ? [{ kind: 'command', command: 'PXE' }, { kind: 'command', command: 'CYCLE' }] : [{ kind: 'command', command: cmd }] });
const lifecycle = (machine: string, type: Extract<EventType, 'delete' | 'create'>): Plan => ({ machineId: machine, key: machine, type, command: type, ipmi: ipmi(machine), actions: type === 'delete' ? [{ kind: 'command', command: 'PXE' }, { kind: 'command', command: 'RESET' }] : [{ kind: 'command', command: 'DISK' }] });
const update = (machine: string, host = machine): Plan => ({ machineId: machine, key: machine, type: 'command', command: 'UPDATE-FIRMWARE', ipmi: ipmi(host), actions: [{ kind: 'firmware', firmware: 'bios', url: 'https://images.example/bios.bin' }] });

/** another instance's jobs as parts/commands.ts shows them to the runner: its claims' view and bringing it up to the bucket */
interface Elsewhere {
  activeFor(plan: Plan): FirmwareJobHold | undefined;
  beforePower(plan: Plan, boundMs: number): Promise<() => Promise<void>>;
}

function setup(o: { concurrency?: number; claims?: JobClaims; jobs?: Partial<FirmwareJobsOptions>; elsewhere?: Elsewhere; runner?: Partial<CommandRunnerOptions>; tasksNamed?: boolean } = {}) {
  const sent: string[] = [];
  const updates = new Map<string, () => void>();
  /** an action of a host in here waits until the test lets it go */
  const gates = new Map<string, () => void>();
  const gated = new Set<string>();
  const act = (host: string, name: string) => async (opts?: { signal?: AbortSignal }) => {
    if (gated.has(host)) await new Promise<void>((resolve) => gates.set(host, () => (gated.delete(host), resolve())));
    if (opts?.signal?.aborted) throw new BmcError('ABORTED', 'aborted');
    sent.push(`${host}:${name}`);
  };
  // the BMC answers the connect (a sign of life: a job whose deadline passes after it ends outcome unknown)
  const connect = (i: { host: string }, c?: { onAnswer?: () => void }): Outband => (
    c?.onAnswer?.(),
    {
      address: i.host,
      vendor: 'fake',
      powerOn: act(i.host, 'ON'),
      powerOff: act(i.host, 'OFF'),
      powerReset: act(i.host, 'RESET'),
      powerCycle: act(i.host, 'CYCLE'),
      bootFrom: (target: string, opts?: { signal?: AbortSignal }) => act(i.host, target)(opts),
      identify: (on: boolean, opts?: { signal?: AbortSignal }) => act(i.host, on ? 'LED-ON' : 'LED-OFF')(opts),
      // runs until the test finishes it, or the job's deadline ends it
      updateFirmware: (_kind: string, _url: string, opts?: { signal?: AbortSignal; onWatch?: (w: { taskUri: string }) => void }) =>
        new Promise<void>((resolve, reject) => {
          updates.set(i.host, resolve);
          // a BMC that names a task the next start can watch again
          if (o.tasksNamed) opts?.onWatch?.({ taskUri: '/redfish/v1/TaskService/Tasks/1' });
          opts?.signal?.addEventListener('abort', () => reject(new BmcError('ABORTED', 'aborted')), { once: true });
        }),
      close: async () => undefined,
    } as unknown as Outband);
  const log = captureLog();
  const registry = new Registry();
  const metrics = createCommandMetrics(registry);
  const results: CommandResult[] = [];
  const jobs = createFirmwareJobs({ connect, timeoutMs: 60_000, logger: log.logger, publish: () => undefined, ...(o.claims ? { claims: o.claims } : {}), ...o.jobs });
  const elsewhere = o.elsewhere;
  const firmwareJobs = elsewhere ? { activeFor: (plan: Plan) => jobs.activeFor(plan) ?? elsewhere.activeFor(plan), beforePower: (plan: Plan, boundMs: number) => elsewhere.beforePower(plan, boundMs) } : jobs;
  const runner = createCommandRunner({ connect, concurrency: o.concurrency ?? 4, timeoutMs: 5000, logger: log.logger, metrics, onResult: (r) => results.push(r), firmwareJobs, ...o.runner });
  const finish = async (host: string) => {
    updates.get(host)!();
    await waitFor(() => jobs.running() === 0, 5000, 'the job ended');
  };
  const gate = (host: string) => gated.add(host);
  const release = (host: string) => gates.get(host)!();
  return { sent, updates, jobs, runner, results, log, registry, finish, gate, release, gates };
}

/**
 * A delete queued behind a slow LED command of m1 when the shutdown comes (the runner drains while
 * the firmware jobs stop within `stopMs`): once `stopped` says what the stop did to m1's job, the
 * LED ends and the delete's turn comes; it must go back ABORTED with no PXE or RESET sent.
 */
async function deleteBehindSlowLedAtStop(t: ReturnType<typeof setup>, stopMs: number, stopped: () => boolean, what: string): Promise<void> {
  t.gate('m1');
  const led = t.runner.submit(command('m1', 'LED-ON'));
  const deleted = t.runner.submit(lifecycle('m1', 'delete'));
  await waitFor(() => t.gates.has('m1'), 5000, 'the LED under way');
  const stopping = Promise.all([t.runner.drain(5000), t.jobs.stop(stopMs)]);
  await waitFor(stopped, 5000, what);
  t.release('m1');
  await stopping;
  expect(await led).toMatchObject({ ok: true });
  expect(await deleted).toMatchObject({ ok: false, code: 'ABORTED' });
  expect(t.sent).toEqual(['m1:LED-ON']);
}

describe('power steps during a firmware update', () => {
  it.each<MachineCommand>(['ON', 'OFF', 'RESET', 'CYCLE', 'REINSTALL'])('%s is refused at once with BUSY, nothing sent; terminated, not handed back', async (cmd) => {
    const t = setup();
    const accepted = await t.jobs.start(update('m1'));
    expect(accepted.accepted).toBe(true);
    const job = t.jobs.list()[0]!;
    const result = await t.runner.submit(command('m1', cmd));
    expect(result).toMatchObject({ ok: false, code: 'BUSY', dropped: 'firmware-update', durationMs: 0 });
    expect(result.error).toBe(`${cmd} refused: firmware update job ${job.id} (bios) runs on this machine since ${job.acceptedAt}; power commands wait until the update ends (a power change during a flash can leave the board unbootable): send it again then; not executed`);
    expect(dispositionOf(result)).toBe('term');
    expect(t.results).toEqual([result]);
    expect(t.sent).toEqual([]);
    expect(await t.registry.getSingleMetricAsString('metal_bmc_events_refused_total')).toMatch(/reason="firmware-update"} 1$/m);
    await t.finish('m1');
    expect(await t.runner.submit(command('m1', cmd))).toMatchObject({ ok: true });
  });

  it("another instance's update claimed a moment before a power step's turn, its claim not delivered here yet: caught up first, then a command is refused, a delete waits for it; no catching up without a power step", async () => {
    let endJob!: () => void;
    const hold: FirmwareJobHold = { id: 'job-b', kind: 'bios', since: '2026-12-07T03:00:00.000Z', of: { machine: true }, ended: new Promise<void>((resolve) => (endJob = resolve)), instance: 'mgmt-b' };
    const other = { job: undefined as FirmwareJobHold | undefined, claimed: true, caughtUps: 0, marks: [] as string[], bounds: [] as number[] };
    // the claim reaches this instance's view only when it is brought up to the bucket; each power step's mark is ended once its plan ended
    const t = setup({
      elsewhere: {
        activeFor: () => other.job,
        beforePower: async (plan, boundMs) => {
          other.caughtUps++;
          other.bounds.push(boundMs);
          other.marks.push(`${plan.command} marked`);
          if (other.claimed) other.job = hold;
          return async () => void other.marks.push(`${plan.command} unmarked, sent so far: ${t.sent.join(' ') || 'nothing'}`);
        },
      },
    });
    const cycle = await t.runner.submit(command('m1', 'CYCLE'));
    expect(cycle).toMatchObject({ ok: false, code: 'BUSY', dropped: 'firmware-update' });
    expect(cycle.error).toMatch(/^CYCLE refused: firmware update job job-b \(bios\) \(on instance mgmt-b\) runs on this machine since 2026-12-07T03:00:00.000Z/);
    expect(t.results).toEqual([cycle]); // told once
    expect(dispositionOf(cycle)).toBe('term');
    expect(t.sent).toEqual([]);

    other.job = undefined;
    const del = t.runner.submit(lifecycle('m1', 'delete'));
    await waitFor(() => t.log.find('machine event held: its power step waits until the firmware update of its machine or BMC ends').length === 1, 5000, 'the delete held');
    expect(t.sent).toEqual([]);
    other.job = undefined;
    other.claimed = false;
    endJob();
    expect(await del).toMatchObject({ ok: true });
    expect(t.sent).toEqual(['m1:PXE', 'm1:RESET']);
    // the marks ended: the refused CYCLE's at once; the delete's while it waited (the update must not wait for it), then marked again for its run
    expect(other.marks).toEqual(['CYCLE marked', 'CYCLE unmarked, sent so far: nothing', 'delete marked', 'delete unmarked, sent so far: nothing', 'delete marked', 'delete unmarked, sent so far: m1:PXE m1:RESET']);
    // a bound past the plan's attempts (two of 5 s, a pause of 1 s between them)
    expect(other.bounds[0]).toBeGreaterThanOrEqual(11_000);

    const asked = other.caughtUps;
    expect(await t.runner.submit(command('m1', 'LED-ON'))).toMatchObject({ ok: true });
    expect(other.caughtUps).toBe(asked);
  });

  it("a delete that can come again goes back to the stream when it meets another instance's update only as its step begins, and waits for it at the queue when it comes again", async () => {
    let endJob!: () => void;
    const hold: FirmwareJobHold = { id: 'job-b', kind: 'bios', since: '2026-12-07T03:00:00.000Z', of: { machine: true }, ended: new Promise<void>((resolve) => (endJob = resolve)), instance: 'mgmt-b' };
    const other = { job: undefined as FirmwareJobHold | undefined, claimed: true, marks: 0, unmarks: 0 };
    const t = setup({
      elsewhere: {
        activeFor: () => other.job,
        beforePower: async () => {
          other.marks++;
          if (other.claimed) other.job = hold; // the claim delivered here only now
          return async () => void other.unmarks++;
        },
      },
    });
    const del = { ...lifecycle('m1', 'delete'), eventId: 'ev-1' };
    const first = await t.runner.submit(del);
    expect(first).toMatchObject({ ok: false, code: 'BUSY', handedBack: true });
    expect(first.error).toMatch(/^delete not run yet: firmware update job job-b \(bios\) on instance mgmt-b runs on its machine since /);
    expect(dispositionOf(first)).toBe('nak');
    expect([other.marks, other.unmarks]).toEqual([1, 1]);
    expect(t.sent).toEqual([]);
    // its next delivery finds the claim at the queue: it waits there, out of a slot, and runs at the update's end
    const again = t.runner.submit(del);
    await waitFor(() => t.log.find('machine event held: its power step waits until the firmware update of its machine or BMC ends').length === 1, 5000, 'held at the queue');
    other.job = undefined;
    other.claimed = false;
    endJob();
    expect(await again).toMatchObject({ ok: true });
    expect(t.sent).toEqual(['m1:PXE', 'm1:RESET']);
  });

  it("a delete on its last delivery that meets another instance's update only as its step begins waits for it at its machine's queue, out of its slot; the machine's later events wait behind it", async () => {
    let endJob!: () => void;
    const hold: FirmwareJobHold = { id: 'job-b', kind: 'bios', since: '2026-12-07T03:00:00.000Z', of: { machine: true }, ended: new Promise<void>((resolve) => (endJob = resolve)), instance: 'mgmt-b' };
    const other = { job: undefined as FirmwareJobHold | undefined, marks: [] as string[] };
    const t = setup({
      concurrency: 1,
      elsewhere: {
        // the claim is on m1 only, and reaches this instance's view only when brought up to the bucket
        activeFor: (plan) => (plan.key === 'm1' ? other.job : undefined),
        beforePower: async (plan) => {
          other.marks.push(`${plan.machineId} ${plan.command} marked`);
          if (plan.key === 'm1' && other.marks.length === 1) other.job = hold;
          return async () => void other.marks.push(`${plan.machineId} ${plan.command} unmarked`);
        },
      },
    });
    const deleted = t.runner.submit({ ...lifecycle('m1', 'delete'), eventId: 'ev-1', lastDelivery: true });
    await waitFor(() => t.log.find('machine event held: its power step waits until the firmware update of its machine or BMC ends').length === 1, 5000, 'the delete held');
    const created = t.runner.submit({ ...lifecycle('m1', 'create'), eventId: 'ev-2' });
    // the only slot is free: another machine's power command runs meanwhile
    expect(await t.runner.submit(command('m2', 'CYCLE'))).toMatchObject({ ok: true });
    expect(t.sent).toEqual(['m2:CYCLE']);
    expect(t.runner.pending).toBe(2);
    other.job = undefined;
    endJob();
    expect(await deleted).toMatchObject({ ok: true });
    expect(await created).toMatchObject({ ok: true });
    expect(t.sent).toEqual(['m2:CYCLE', 'm1:PXE', 'm1:RESET', 'm1:DISK']);
    // unmarked while it waited, marked again for its run
    expect(other.marks.slice(0, 4)).toEqual(['m1 delete marked', 'm1 delete unmarked', 'm2 CYCLE marked', 'm2 CYCLE unmarked']);
    expect(other.marks.slice(4, 6)).toEqual(['m1 delete marked', 'm1 delete unmarked']);
    expect(t.log.find('machine event held for a firmware update runs now')).toHaveLength(1);
  });

  it("a delete on its last delivery waiting at the queue for another instance's update ends ABORTED at the shutdown, nothing sent", async () => {
    const hold: FirmwareJobHold = { id: 'job-b', kind: 'bios', since: '2026-12-07T03:00:00.000Z', of: { machine: true }, ended: new Promise<void>(() => undefined), instance: 'mgmt-b' };
    let claimed: FirmwareJobHold | undefined;
    const t = setup({ elsewhere: { activeFor: () => claimed, beforePower: async () => ((claimed = hold), async () => undefined) } });
    const deleted = t.runner.submit({ ...lifecycle('m1', 'delete'), eventId: 'ev-1', lastDelivery: true });
    await waitFor(() => t.log.find(/^machine event held/).length === 1, 5000, 'the delete held');
    expect(await t.runner.drain(5000)).toBe(true);
    expect(await deleted).toMatchObject({ ok: false, code: 'ABORTED' });
    expect(t.sent).toEqual([]);
  });

  it("a delete waiting at the queue for another instance's update, cut while its step gave up its mark (a lost lead), ends ABORTED at once, nothing sent", async () => {
    const hold: FirmwareJobHold = { id: 'job-b', kind: 'bios', since: '2026-12-07T03:00:00.000Z', of: { machine: true }, ended: new Promise<void>(() => undefined), instance: 'mgmt-b' };
    let claimed: FirmwareJobHold | undefined;
    let unmark: (() => void) | undefined;
    const t = setup({
      elsewhere: {
        activeFor: () => claimed,
        // the first mark's delete answers only when the test lets it
        beforePower: async () => ((claimed = hold), () => (unmark === undefined ? new Promise<void>((resolve) => (unmark = resolve)) : Promise.resolve())),
      },
    });
    const deleted = t.runner.submit({ ...lifecycle('m1', 'delete'), eventId: 'ev-1', lastDelivery: true });
    await waitFor(() => unmark !== undefined, 5000, 'the mark given up');
    t.runner.abortAll('the lead moved');
    unmark!();
    expect(await deleted).toMatchObject({ ok: false, code: 'ABORTED' });
    expect(t.sent).toEqual([]);
    expect(t.runner.pending).toBe(0);
  });

  it("a delete waiting at the queue for another instance's update and superseded there (late, its queue full) frees the plans behind it: they run now, not at the update's end", async () => {
    const hold: FirmwareJobHold = { id: 'job-b', kind: 'bios', since: '2026-12-07T03:00:00.000Z', of: { machine: true }, ended: new Promise<void>(() => undefined), instance: 'mgmt-b' };
    let claimed: FirmwareJobHold | undefined;
    let clock = Date.parse('2026-12-07T06:00:00Z');
    const t = setup({
      runner: { ttlMs: 1000, now: () => clock, maxQueuePerMachine: 2 },
      elsewhere: { activeFor: () => claimed, beforePower: async () => ((claimed = hold), async () => undefined) },
    });
    const publishedAt = new Date(clock);
    const deleted = t.runner.submit({ ...lifecycle('m1', 'delete'), eventId: 'ev-1', lastDelivery: true, publishedAt });
    await waitFor(() => t.log.find(/^machine event held/).length === 1, 5000, 'the delete held');
    // past its TTL the waiting delete only sets a boot device (its RESET would give way): a newer create may take its place
    clock += 2000;
    const created = t.runner.submit({ ...lifecycle('m1', 'create'), eventId: 'ev-2', publishedAt: new Date(clock) });
    const again = t.runner.submit({ ...lifecycle('m1', 'create'), eventId: 'ev-3', publishedAt: new Date(clock) });
    expect(await deleted).toMatchObject({ ok: false, code: 'SUPERSEDED' });
    expect(await created).toMatchObject({ ok: true });
    expect(await again).toMatchObject({ ok: true });
    expect(t.sent).toEqual(['m1:DISK', 'm1:DISK']);
  });

  it("an update of this instance accepted while a delete is catching up with the claims bucket waits for that delete, which does not wait for it in turn", async () => {
    let caughtUp!: () => void;
    const t = setup({ elsewhere: { activeFor: () => undefined, beforePower: () => new Promise((resolve) => (caughtUp = () => resolve(async () => undefined))) } });
    const del = t.runner.submit(lifecycle('m1', 'delete'));
    await waitFor(() => caughtUp !== undefined, 5000, 'the delete catching up');
    expect((await t.jobs.start(update('m1'))).accepted).toBe(true);
    caughtUp();
    expect(await del).toMatchObject({ ok: true });
    expect(t.sent).toEqual(['m1:PXE', 'm1:RESET']);
    await waitFor(() => t.updates.has('m1'), 5000, 'the update sent once the delete ended');
    await t.finish('m1');
  });

  it('boot devices and the LED run during the update, the CYCLE between them is refused', async () => {
    const t = setup();
    await t.jobs.start(update('m1'));
    const cmds: MachineCommand[] = ['PXE', 'DISK', 'CYCLE', 'BIOS', 'LED-ON'];
    const results = await Promise.all(cmds.map((cmd) => t.runner.submit(command('m1', cmd))));
    expect(results.map((r) => `${r.command}:${r.ok ? 'ok' : r.code}`)).toEqual(['PXE:ok', 'DISK:ok', 'CYCLE:BUSY', 'BIOS:ok', 'LED-ON:ok']);
    expect(t.sent).toEqual(['m1:PXE', 'm1:DISK', 'm1:BIOS', 'm1:LED-ON']);
  });

  it('a job of the machine\'s BMC under another key (an event naming only the BMC) refuses too, naming the BMC', async () => {
    const t = setup();
    await t.jobs.start({ ...update(''), key: 'bmc:10.0.0.7:623', ipmi: ipmi('10.0.0.7') });
    const result = await t.runner.submit(command('m7', 'CYCLE', '10.0.0.7'));
    expect(result).toMatchObject({ ok: false, code: 'BUSY' });
    expect(result.error).toMatch(/runs on this machine's BMC 10\.0\.0\.7:623 since /);
    // another BMC's machine is not held
    expect(await t.runner.submit(command('m8', 'CYCLE', '10.0.0.8'))).toMatchObject({ ok: true });
  });

  it('a CYCLE queued behind a slow command when the update starts is refused at its turn; the commands behind it run', async () => {
    const t = setup();
    t.gate('m1');
    const led = t.runner.submit(command('m1', 'LED-ON'));
    const cycle = t.runner.submit(command('m1', 'CYCLE'));
    const pxe = t.runner.submit(command('m1', 'PXE'));
    await waitFor(() => t.gates.has('m1'), 5000, 'the LED under way');
    await t.jobs.start(update('m1'));
    t.release('m1');
    expect(await led).toMatchObject({ ok: true });
    expect(await cycle).toMatchObject({ ok: false, code: 'BUSY', dropped: 'firmware-update' });
    expect(await pxe).toMatchObject({ ok: true });
    expect(t.sent).toEqual(['m1:LED-ON', 'm1:PXE']);
    expect(t.runner.pending).toBe(0);
  });

  it('a delete waits for the update without a slot, then sets PXE and resets; the machine\'s later events wait behind it', async () => {
    const t = setup({ concurrency: 1 });
    await t.jobs.start(update('m1'));
    const deleted = t.runner.submit(lifecycle('m1', 'delete'));
    const created = t.runner.submit(lifecycle('m1', 'create'));
    await waitFor(() => t.log.find('machine event held: its power step waits until the firmware update of its machine or BMC ends').length === 1, 5000, 'the delete held');
    // the only slot is free: another machine's command runs meanwhile
    expect(await t.runner.submit(command('m2', 'CYCLE'))).toMatchObject({ ok: true });
    // a power command of the machine meanwhile is refused at once
    expect(await t.runner.submit(command('m1', 'RESET'))).toMatchObject({ ok: false, code: 'BUSY' });
    expect(t.sent).toEqual(['m2:CYCLE']);
    await t.finish('m1');
    expect(await deleted).toMatchObject({ ok: true });
    expect(await created).toMatchObject({ ok: true });
    expect(t.sent).toEqual(['m2:CYCLE', 'm1:PXE', 'm1:RESET', 'm1:DISK']);
    expect(t.log.find('machine event held for a firmware update runs now')).toHaveLength(1);
  });

  it('a delete waiting for the update at the shutdown\'s deadline ends ABORTED (goes back to the stream), nothing sent', async () => {
    const t = setup();
    await t.jobs.start(update('m1'));
    const deleted = t.runner.submit(lifecycle('m1', 'delete'));
    await waitFor(() => t.log.find(/^machine event held/).length === 1, 5000, 'the delete held');
    // handed back at once: the drain does not wait for it to its deadline
    expect(await t.runner.drain(5000)).toBe(true);
    const result = await deleted;
    expect(result).toMatchObject({ ok: false, code: 'ABORTED' });
    expect(dispositionOf(result)).toBe('nak');
    expect(t.sent).toEqual([]);
    t.updates.get('m1')!();
  });

  it('a delete waiting for a hold after an outcome unknown is handed back ABORTED at the shutdown, though the stop ends the hold at once: no PXE or RESET while the BMC may still flash', async () => {
    const t = setup({ jobs: { timeoutMs: 200, unreachableAfterMs: 1 } });
    await t.jobs.start(update('m1'));
    // the BMC never finishes: the deadline passes with it silent since the connect
    await waitFor(() => t.log.find('firmware update outcome unknown; its machine stays held while the BMC may still apply it').length === 1, 5000, 'the outcome-unknown hold');
    const deleted = t.runner.submit(lifecycle('m1', 'delete'));
    await waitFor(() => t.log.find(/^machine event held/).length === 1, 5000, 'the delete held');
    // as CommandService.stop: the runner drains while the firmware jobs stop
    await Promise.all([t.runner.drain(5000), t.jobs.stop(5000)]);
    const result = await deleted;
    expect(result).toMatchObject({ ok: false, code: 'ABORTED' });
    expect(dispositionOf(result)).toBe('nak');
    expect(t.sent).toEqual([]);
  });

  it('at the shutdown, a second delete queued behind the first while the machine is held after an outcome unknown is not run either: both go back ABORTED, no PXE or RESET', async () => {
    const t = setup({ jobs: { timeoutMs: 200, unreachableAfterMs: 1 } });
    await t.jobs.start(update('m1'));
    await waitFor(() => t.log.find('firmware update outcome unknown; its machine stays held while the BMC may still apply it').length === 1, 5000, 'the outcome-unknown hold');
    const first = t.runner.submit(lifecycle('m1', 'delete'));
    const second = t.runner.submit(lifecycle('m1', 'delete'));
    await waitFor(() => t.log.find(/^machine event held/).length === 1, 5000, 'the first delete held');
    await Promise.all([t.runner.drain(5000), t.jobs.stop(5000)]);
    expect(await first).toMatchObject({ ok: false, code: 'ABORTED' });
    expect(await second).toMatchObject({ ok: false, code: 'ABORTED' });
    expect(t.sent).toEqual([]);
  });

  it('at the shutdown, a delete queued behind a slow LED command of a machine held after an outcome unknown goes back ABORTED when its turn comes: no PXE or RESET', async () => {
    const t = setup({ jobs: { timeoutMs: 200, unreachableAfterMs: 1 } });
    await t.jobs.start(update('m1'));
    await waitFor(() => t.log.find('firmware update outcome unknown; its machine stays held while the BMC may still apply it').length === 1, 5000, 'the outcome-unknown hold');
    // the stop ends the hold first; the LED's end then gives the delete its turn
    await deleteBehindSlowLedAtStop(t, 5000, () => t.jobs.running() === 0, 'the hold ended by the stop');
  });

  it('at the shutdown, a delete queued behind a slow LED command of a machine whose update is left running for the next start goes back ABORTED: no PXE or RESET', async () => {
    // an update the next start can watch again (its task named) is left running at the stop's deadline
    const t = setup({ tasksNamed: true });
    await t.jobs.start(update('m1'));
    await waitFor(() => t.updates.has('m1'), 5000, 'the update sent');
    await deleteBehindSlowLedAtStop(t, 0, () => t.log.find('metal-bmc stops while a firmware update runs; its next start takes the job up again').length === 1, 'the update left running by the stop');
  });

  it('a delete whose turn comes after the drain began, its machine under an update, goes back ABORTED at once instead of waiting for the update', async () => {
    const t = setup();
    await t.jobs.start(update('m1'));
    t.gate('m1');
    const led = t.runner.submit(command('m1', 'LED-ON'));
    const deleted = t.runner.submit(lifecycle('m1', 'delete'));
    await waitFor(() => t.gates.has('m1'), 5000, 'the LED under way');
    const drained = t.runner.drain(5000);
    t.release('m1');
    expect(await led).toMatchObject({ ok: true });
    expect(await deleted).toMatchObject({ ok: false, code: 'ABORTED' });
    // not at the drain's deadline
    expect(await drained).toBe(true);
    expect(t.sent).toEqual(['m1:LED-ON']);
    await t.finish('m1');
  });

  it('a delete that came while the update was being claimed across instances runs once the claim was refused', async () => {
    let answer: ((outcome: { busy: string }) => void) | undefined;
    const claims: JobClaims = { claim: () => new Promise((resolve) => (answer = resolve)) };
    const t = setup({ claims });
    const starting = t.jobs.start(update('m1'));
    await waitFor(() => answer !== undefined, 5000, 'the claim asked for');
    const deleted = t.runner.submit(lifecycle('m1', 'delete'));
    await waitFor(() => t.log.find(/^machine event held/).length === 1, 5000, 'the delete held');
    expect(t.sent).toEqual([]);
    answer!({ busy: 'job x on instance b' });
    expect(await starting).toMatchObject({ accepted: false });
    expect(await deleted).toMatchObject({ ok: true });
    expect(t.sent).toEqual(['m1:PXE', 'm1:RESET']);
  });
});
