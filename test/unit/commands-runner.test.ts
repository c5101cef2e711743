/**
 * Scheduling of the command runner: ordering per machine, parallelism across machines,
 * deadlines, close on every path, drain. The Outband here is a recording fake: this tests
 * the scheduler, not a BMC (the integration tests drive ipmi_sim).
 */
import { Registry } from 'prom-client';
import { describe, expect, it, vi } from 'vitest';
import type { MachineCommand } from '../../src/commands/actions.js';
import type { Plan } from '../../src/commands/event.js';
import { createCommandMetrics } from '../../src/commands/metrics.js';
import { createCommandRunner, type CommandResult } from '../../src/commands/runner.js';
import { BmcError, type BmcErrorCode } from '../../src/errors.js';
import type { Outband } from '../../src/outband/types.js';
import { dispositionOf } from '../../src/commands/handler.js';
import { captureLog } from '../helpers/log.js';
import { waitFor } from '../helpers/wait.js';

interface Recorder {
  events: string[];
  active: number;
  maxActive: number;
  opened: number;
  closed: number;
  /** the deadlineAt each action was told */
  deadlines: Array<number | undefined>;
}

/** Every action takes `ms` (or what `slow` says for a machine) and honours the signal. */
function fakeBmc(rec: Recorder, machine: string, ms: (machine: string) => number): Outband {
  const act = (name: string) => async (o?: { signal?: AbortSignal; deadlineAt?: number }) => {
    rec.deadlines.push(o?.deadlineAt);
    rec.active++;
    rec.maxActive = Math.max(rec.maxActive, rec.active);
    rec.events.push(`${machine}:${name}:start`);
    try {
      await new Promise<void>((resolve, reject) => {
        const t = setTimeout(resolve, ms(machine));
        o?.signal?.addEventListener('abort', () => (clearTimeout(t), reject(new BmcError('ABORTED', 'aborted'))), { once: true });
      });
    } finally {
      rec.active--;
      rec.events.push(`${machine}:${name}:end`);
    }
  };
  return {
    address: machine,
    vendor: 'fake',
    info: () => Promise.reject(new BmcError('UNSUPPORTED', 'fake')),
    powerOn: act('ON'),
    powerOff: act('OFF'),
    powerReset: act('RESET'),
    powerCycle: act('CYCLE'),
    bootFrom: (target, o) => act(target)(o),
    bootOverride: () => Promise.reject(new BmcError('UNSUPPORTED', 'fake')),
    identify: (on, o) => act(on ? 'LED-ON' : 'LED-OFF')(o),
    openConsole: () => Promise.reject(new BmcError('UNSUPPORTED', 'fake')),
    updateFirmware: (kind, _url, o) => act(`FW-${kind}`)(o),
    watchFirmware: (kind, _watch, o) => act(`FW-WATCH-${kind}`)(o),
    close: async () => void rec.closed++,
  };
}

function plan(machine: string, command: MachineCommand): Plan {
  return { machineId: machine, key: machine, type: 'command', command, ipmi: { address: `${machine}:623`, host: machine, port: 623, password: 'pw-secret' }, actions: [{ kind: 'command', command }] };
}

function setup(o: { concurrency: number; timeoutMs?: number; ms?: (m: string) => number; ttlMs?: number; now?: () => number; onConnect?: () => void; attempts?: number; retryDelayMs?: number; queueMax?: number }) {
  const rec: Recorder = { events: [], active: 0, maxActive: 0, opened: 0, closed: 0, deadlines: [] };
  const results: CommandResult[] = [];
  const log = captureLog();
  const registry = new Registry();
  const metrics = createCommandMetrics(registry);
  const runner = createCommandRunner({
    connect: (ipmi) => (rec.opened++, o.onConnect?.(), fakeBmc(rec, ipmi.host, o.ms ?? (() => 20))),
    concurrency: o.concurrency,
    timeoutMs: o.timeoutMs ?? 5000,
    logger: log.logger,
    metrics,
    ...(o.ttlMs !== undefined ? { ttlMs: o.ttlMs } : {}),
    ...(o.now ? { now: o.now } : {}),
    ...(o.attempts !== undefined ? { attempts: o.attempts } : {}),
    ...(o.queueMax !== undefined ? { maxQueuePerMachine: o.queueMax } : {}),
    // a short pause before a retry: the tests of the pause say so
    retryDelayMs: o.retryDelayMs ?? 1,
    onResult: (r) => results.push(r),
  });
  return { rec, results, runner, log, registry };
}

describe('command runner', () => {
  it('runs the commands of one machine in order, one at a time', async () => {
    const { rec, runner } = setup({ concurrency: 8 });
    const cmds: MachineCommand[] = ['PXE', 'CYCLE', 'LED-ON', 'OFF', 'ON', 'DISK'];
    await Promise.all(cmds.map((c) => runner.submit(plan('m1', c))));
    expect(rec.maxActive).toBe(1);
    expect(rec.events.filter((e) => e.endsWith(':start')).map((e) => e.split(':')[1])).toEqual(cmds);
    expect(rec.opened).toBe(cmds.length);
    expect(rec.closed).toBe(cmds.length);
  });

  it('tells each action when the command\'s deadline ends (a power cycle through ForceOff and On keeps room for the On)', async () => {
    const { rec, runner } = setup({ concurrency: 1, timeoutMs: 7000 });
    const before = Date.now();
    await runner.submit(plan('m1', 'CYCLE'));
    const after = Date.now();
    expect(rec.deadlines).toHaveLength(1);
    expect(rec.deadlines[0]).toBeGreaterThanOrEqual(before + 7000);
    expect(rec.deadlines[0]).toBeLessThanOrEqual(after + 7000);
  });

  it('runs different machines in parallel, up to the concurrency limit', async () => {
    // fake timers: the actions' 40 ms pass only when the test says so, whatever the machine's load
    vi.useFakeTimers();
    try {
      const { rec, runner } = setup({ concurrency: 3, ms: () => 40 });
      let done = false;
      const all = Promise.all(['a', 'b', 'c', 'd', 'e', 'f'].map((m) => runner.submit(plan(m, 'ON')))).then(() => (done = true));
      // two waves of 40 ms, not six (nor one)
      await vi.advanceTimersByTimeAsync(79);
      expect(done).toBe(false);
      await vi.advanceTimersByTimeAsync(1);
      expect(done).toBe(true);
      await all;
      expect(rec.maxActive).toBe(3);
    } finally {
      vi.useRealTimers();
    }
  });

  it('keeps per-machine order while other machines proceed', async () => {
    const { rec, runner } = setup({ concurrency: 4, ms: (m) => (m === 'slow' ? 60 : 5) });
    const done: string[] = [];
    const jobs = [runner.submit(plan('slow', 'PXE')), runner.submit(plan('slow', 'CYCLE')), runner.submit(plan('fast', 'ON')), runner.submit(plan('fast', 'OFF'))].map((p) => p.then((r) => void done.push(`${r.machineId}:${r.command}`)));
    await Promise.all(jobs);
    expect(done.slice(0, 2)).toEqual(['fast:ON', 'fast:OFF']);
    expect(done.slice(2)).toEqual(['slow:PXE', 'slow:CYCLE']);
    const slow = rec.events.filter((e) => e.startsWith('slow:'));
    expect(slow).toEqual(['slow:PXE:start', 'slow:PXE:end', 'slow:CYCLE:start', 'slow:CYCLE:end']);
  });

  it('a machine with many commands does not starve the others (round robin over ready machines)', async () => {
    const { rec, runner } = setup({ concurrency: 1, ms: () => 2 });
    const jobs = [...Array.from({ length: 4 }, () => runner.submit(plan('busy', 'ON'))), runner.submit(plan('other', 'ON'))];
    await Promise.all(jobs);
    const order = rec.events.filter((e) => e.endsWith(':start')).map((e) => e.split(':')[0]);
    expect(order.indexOf('other')).toBeLessThanOrEqual(1);
  });

  it('enforces the deadline, reports TIMEOUT and still closes the Outband', async () => {
    const { rec, runner, results, registry } = setup({ concurrency: 2, timeoutMs: 50, ms: () => 10_000, attempts: 1 });
    const r = await runner.submit(plan('m', 'ON'));
    expect(r).toMatchObject({ machineId: 'm', command: 'ON', ok: false, code: 'TIMEOUT' });
    // the action would take 10 s: under 5 s means the 50 ms deadline ended it (wide margin for load)
    expect(r.durationMs).toBeLessThan(5000);
    expect(rec.closed).toBe(1);
    expect(results).toHaveLength(1);
    expect(await registry.getSingleMetricAsString('metal_bmc_commands_total')).toContain('metal_bmc_commands_total{command="ON",outcome="timeout"} 1');
  });

  it('gives up on an Outband that ignores the signal, and closes it when it arrives late', async () => {
    const rec: Recorder = { events: [], active: 0, maxActive: 0, opened: 0, closed: 0, deadlines: [] };
    const runner = createCommandRunner({
      connect: () => new Promise((resolve) => setTimeout(() => resolve(fakeBmc(rec, 'late', () => 1)), 150)),
      concurrency: 1,
      timeoutMs: 30,
      logger: captureLog().logger,
      attempts: 1,
    });
    const r = await runner.submit(plan('late', 'ON'));
    expect(r.code).toBe('TIMEOUT');
    await waitFor(() => rec.closed === 1, 5000, 'the late Outband to be closed');
    expect(rec.closed).toBe(1);
    expect(rec.events).toEqual([]);
  });

  it('reports a failed action and closes the Outband', async () => {
    let closed = 0;
    const runner = createCommandRunner({
      connect: () => ({ ...fakeBmc({ events: [], active: 0, maxActive: 0, opened: 0, closed: 0, deadlines: [] }, 'x', () => 1), powerOn: () => Promise.reject(new BmcError('AUTH_FAILED', 'BMC x refused the password')), close: async () => void closed++ }),
      concurrency: 1,
      timeoutMs: 1000,
      logger: captureLog().logger,
    });
    expect(await runner.submit(plan('x', 'ON'))).toMatchObject({ ok: false, code: 'AUTH_FAILED', error: 'BMC x refused the password' });
    expect(closed).toBe(1);
  });

  it('refuses work after stop() and drains accepted work', async () => {
    const { runner, rec } = setup({ concurrency: 2, ms: () => 30 });
    const accepted = [runner.submit(plan('a', 'ON')), runner.submit(plan('a', 'OFF')), runner.submit(plan('b', 'ON'))];
    expect(runner.pending).toBe(3);
    const drained = runner.drain(5000);
    await expect(runner.submit(plan('c', 'ON'))).rejects.toMatchObject({ code: 'CLOSED' });
    expect(await drained).toBe(true);
    expect((await Promise.all(accepted)).every((r) => r.ok)).toBe(true);
    expect(rec.closed).toBe(3);
    expect(runner.pending).toBe(0);
  });

  it('aborts what still runs at the drain deadline', async () => {
    const { runner, rec } = setup({ concurrency: 2, ms: () => 10_000 });
    const job = runner.submit(plan('a', 'ON'));
    const started = Date.now();
    expect(await runner.drain(50)).toBe(false);
    // the job would run 10 s: under 5 s means the 50 ms drain deadline aborted it (wide margin for load)
    expect(Date.now() - started).toBeLessThan(5000);
    expect(await job).toMatchObject({ ok: false, code: 'ABORTED' });
    expect(rec.closed).toBe(1);
  });

  it('abortAll (the lead lost) aborts what runs and what is queued, and runs what comes after it', async () => {
    const { runner, rec } = setup({ concurrency: 2, ms: (m) => (m === 'a' ? 10_000 : 5) });
    const running = runner.submit(plan('a', 'ON'));
    const queued = runner.submit(plan('a', 'OFF'));
    await waitFor(() => rec.events.includes('a:ON:start'), 5000, 'the first command running');
    runner.abortAll('another instance leads');
    expect(await running).toMatchObject({ ok: false, code: 'ABORTED' });
    expect(await queued).toMatchObject({ ok: false, code: 'ABORTED' });
    expect(rec.events).not.toContain('a:OFF:start');
    // a plan accepted after it runs
    expect(await runner.submit(plan('b', 'ON'))).toMatchObject({ ok: true });
    expect(runner.pending).toBe(0);
  });

  it('never logs the BMC password', async () => {
    const { runner, log } = setup({ concurrency: 1, timeoutMs: 20, ms: () => 1000 });
    await runner.submit(plan('m', 'ON'));
    expect(log.lines.length).toBeGreaterThan(0);
    expect(log.text()).not.toContain('pw-secret');
  });

  it('validates its options', () => {
    const base = { connect: () => fakeBmc({ events: [], active: 0, maxActive: 0, opened: 0, closed: 0, deadlines: [] }, 'x', () => 1), logger: captureLog().logger };
    expect(() => createCommandRunner({ ...base, concurrency: 0, timeoutMs: 1 })).toThrow(/concurrency/);
    expect(() => createCommandRunner({ ...base, concurrency: 1.5, timeoutMs: 1 })).toThrow(/concurrency/);
    expect(() => createCommandRunner({ ...base, concurrency: 1, timeoutMs: -1 })).toThrow(/timeoutMs/);
  });
});

/** A plan published at `publishedAt` on the test's clock. */
function timed(p: Plan, publishedAt: number): Plan {
  return { ...p, publishedAt: new Date(publishedAt) };
}

function lifecycle(machine: string, type: 'create' | 'delete'): Plan {
  const actions: Plan['actions'] = type === 'create' ? [{ kind: 'command', command: 'DISK' }] : [{ kind: 'command', command: 'PXE' }, { kind: 'command', command: 'RESET' }];
  return { ...plan(machine, 'ON'), type, command: type, actions };
}

describe('command runner: the TTL when a machine\'s turn comes', () => {
  // the clock is the test's: a command "takes" 10 s by moving it, so nothing here depends on timing
  it('drops a RESET that waited behind a slow command past the TTL: result STALE, counted, the BMC never contacted', async () => {
    let clock = 1_000_000;
    // the first command "takes" 10 s: connecting to its BMC moves the clock
    const { rec, runner, results, registry, log } = setup({ concurrency: 4, ttlMs: 5000, now: () => clock, ms: () => 1, onConnect: () => void (clock += 10_000) });
    const slow = runner.submit(timed(plan('m', 'PXE'), clock));
    const reset = runner.submit(timed(plan('m', 'RESET'), clock));
    expect((await slow).ok).toBe(true);
    expect(await reset).toMatchObject({ ok: false, code: 'STALE', dropped: 'stale', command: 'RESET' });
    expect(rec.events.filter((e) => e.includes('RESET'))).toEqual([]);
    expect(rec.opened).toBe(1);
    expect(results.map((r) => r.code ?? 'ok')).toEqual(['ok', 'STALE']);
    expect(await registry.getSingleMetricAsString('metal_bmc_events_stale_total')).toMatch(/metal_bmc_events_stale_total 1$/m);
    expect(log.find('stale machine command dropped when its turn came')).toHaveLength(1);
  });

  it('runs a command whose turn comes within the TTL', async () => {
    let clock = 5000;
    const { rec, runner } = setup({ concurrency: 1, ttlMs: 5000, now: () => clock, ms: () => 1 });
    const first = runner.submit(timed(plan('m', 'PXE'), clock));
    const second = runner.submit(timed(plan('m', 'RESET'), clock));
    clock += 4000;
    await first;
    expect((await second).ok).toBe(true);
    expect(rec.events.filter((e) => e.endsWith(':start'))).toEqual(['m:PXE:start', 'm:RESET:start']);
  });

  it('runs create and delete older than the TTL, in order, marked late and counted by type', async () => {
    const clock = 100_000;
    const { rec, runner, registry } = setup({ concurrency: 1, ttlMs: 1000, now: () => clock, ms: () => 1 });
    const created = await runner.submit(timed(lifecycle('a', 'create'), clock - 60_000));
    const deleted = await runner.submit(timed(lifecycle('b', 'delete'), clock - 30_000));
    expect(created).toMatchObject({ ok: true, late: true, ageMs: 60_000 });
    expect(deleted).toMatchObject({ ok: true, late: true, ageMs: 30_000 });
    expect(deleted.skipped).toBeUndefined();
    expect(rec.events.filter((e) => e.endsWith(':start'))).toEqual(['a:DISK:start', 'b:PXE:start', 'b:RESET:start']);
    const late = await registry.getSingleMetricAsString('metal_bmc_events_late_total');
    expect(late).toContain('metal_bmc_events_late_total{type="create"} 1');
    expect(late).toContain('metal_bmc_events_late_total{type="delete"} 1');
  });

  it('skips the power step of a late delete when a newer event for the machine is pending, and only then', async () => {
    const clock = 100_000;
    const { rec, runner, registry } = setup({ concurrency: 4, ttlMs: 1000, now: () => clock, ms: () => 1 });
    // late delete with a newer create queued behind it: PXE only, then the create
    const [lateDelete, create] = await Promise.all([runner.submit(timed(lifecycle('m', 'delete'), clock - 30_000)), runner.submit(timed(lifecycle('m', 'create'), clock - 10_000))]);
    expect(lateDelete).toMatchObject({ ok: true, late: true, skipped: ['RESET'] });
    expect(create.ok).toBe(true);
    // a fresh delete with a newer event pending keeps its power step
    const [freshDelete] = await Promise.all([runner.submit(timed(lifecycle('n', 'delete'), clock)), runner.submit(timed(plan('n', 'LED-ON'), clock))]);
    expect(freshDelete.skipped).toBeUndefined();
    expect(rec.events.filter((e) => e.endsWith(':start'))).toEqual(expect.arrayContaining(['m:PXE:start', 'm:DISK:start', 'n:PXE:start', 'n:RESET:start', 'n:LED-ON:start']));
    expect(rec.events.filter((e) => e === 'm:RESET:start')).toEqual([]);
    expect(await registry.getSingleMetricAsString('metal_bmc_power_steps_skipped_total')).toContain('metal_bmc_power_steps_skipped_total{type="delete"} 1');
  });
});

describe('command runner: a machine whose queue is full keeps its newest events', () => {
  const command = (machine: string, c: MachineCommand, seq: number): Plan => ({ ...plan(machine, c), eventId: `S.${seq}` });
  const event = (p: Plan, seq: number): Plan => ({ ...p, eventId: `S.${seq}` });

  it('a backlog of late deletes and DISKs beyond the bound: the final delete supersedes the oldest queued DISK and ends with PXE and its RESET', async () => {
    const clock = 100_000;
    const { rec, runner, registry, results, log } = setup({ concurrency: 4, ttlMs: 1000, now: () => clock, ms: () => 1, queueMax: 16 });
    const backlog: Plan[] = [];
    for (let i = 0; i < 8; i++) backlog.push(timed(lifecycle('m', 'delete'), clock - 3600_000), timed({ ...plan('m', 'DISK') }, clock - 3600_000));
    backlog.push(timed(lifecycle('m', 'delete'), clock - 3600_000));
    const done = await Promise.all(backlog.map((p, i) => runner.submit(event(p, i + 1))));
    // the newest, the machine's final state, ran: its PXE, then its RESET
    expect(done[16]).toMatchObject({ ok: true, command: 'delete', late: true });
    expect(done[16]!.skipped).toBeUndefined();
    const steps = rec.events.filter((e) => e.endsWith(':start')).map((e) => e.split(':')[1]);
    expect(steps.slice(-2)).toEqual(['PXE', 'RESET']);
    expect(steps.filter((s) => s === 'RESET')).toHaveLength(1);
    // the oldest queued plan that only set a boot device gave way, acknowledged with a result
    const superseded = done.filter((r) => r.dropped === 'superseded');
    expect(superseded).toEqual([expect.objectContaining({ command: 'DISK', ok: false, code: 'SUPERSEDED' })]);
    expect(done.indexOf(superseded[0]!)).toBe(1);
    expect(superseded[0]!.error).toBe("DISK not executed: superseded by the machine's newer delete, which sets the boot device before anything boots the machine (its queue was full, METAL_BMC_COMMAND_QUEUE_MAX 16)");
    expect(dispositionOf(superseded[0]!)).toBe('ack');
    expect(done.filter((r) => r.code === 'QUEUE_FULL')).toEqual([]);
    expect(results.filter((r) => r.code === 'SUPERSEDED')).toHaveLength(1);
    expect(log.find(/^machine command superseded/)).toEqual([expect.objectContaining({ machineId: 'm', command: 'DISK', eventId: 'S.2', supersededBy: 'delete', newerEventId: 'S.17' })]);
    expect(await registry.getSingleMetricAsString('metal_bmc_events_superseded_total')).toContain('metal_bmc_events_superseded_total{type="command"} 1');
  });

  it('never supersedes a power command, nor a boot device a power command after it boots with; the newer event goes back to the stream instead', async () => {
    // every step takes 50 ms: the LED-ON runs while DISK and ON queue behind it, all submitted at once
    const { rec, runner, registry } = setup({ concurrency: 1, queueMax: 3, ms: () => 50 });
    const firstRun = runner.submit(command('m', 'LED-ON', 1));
    const queued = [runner.submit(command('m', 'DISK', 2)), runner.submit(command('m', 'ON', 3))];
    const newer = await runner.submit(event(lifecycle('m', 'delete'), 4));
    expect(newer).toMatchObject({ ok: false, code: 'QUEUE_FULL', handedBack: true });
    expect(newer.dropped).toBeUndefined();
    expect(newer.error).toBe('delete not run yet: 3 commands for this machine are queued or running already (METAL_BMC_COMMAND_QUEUE_MAX 3); it goes back to the stream and comes again');
    expect(dispositionOf(newer)).toBe('nak');
    // the machine's later events wait behind it, whatever comes first
    expect(await runner.submit(command('m', 'OFF', 5))).toMatchObject({ code: 'HELD_BEHIND', handedBack: true });
    expect(await registry.getSingleMetricAsString('metal_bmc_events_refused_total')).toContain('reason="queue-full-handed-back"} 1');
    expect((await Promise.all(queued)).map((r) => r.ok)).toEqual([true, true]);
    // it comes again: it runs, then the OFF
    expect(await runner.submit(event(lifecycle('m', 'delete'), 4))).toMatchObject({ ok: true });
    expect(await runner.submit(command('m', 'OFF', 5))).toMatchObject({ ok: true });
    await firstRun;
    expect(rec.events.filter((e) => e.endsWith(':start')).map((e) => e.split(':')[1])).toEqual(['LED-ON', 'DISK', 'ON', 'PXE', 'RESET', 'OFF']);
  });
  it('an overflow handed back is published and counted once however often it comes back full; on its last delivery it is refused and holds nothing', async () => {
    const { runner, registry, results } = setup({ concurrency: 1, queueMax: 2, ms: () => 50 });
    const queued = [runner.submit(command('m', 'LED-ON', 1)), runner.submit(command('m', 'LED-OFF', 2))];
    for (let delivery = 0; delivery < 3; delivery++) expect(await runner.submit(command('m', 'ON', 3))).toMatchObject({ code: 'QUEUE_FULL', handedBack: true });
    expect(results.filter((r) => r.code === 'QUEUE_FULL')).toHaveLength(1);
    expect(await registry.getSingleMetricAsString('metal_bmc_events_refused_total')).toContain('reason="queue-full-handed-back"} 1');
    const last = await runner.submit({ ...command('m', 'ON', 3), lastDelivery: true });
    expect(last).toMatchObject({ ok: false, code: 'QUEUE_FULL', dropped: 'overflow' });
    expect(last.handedBack).toBeUndefined();
    expect(last.error).toBe('ON refused: 2 commands for this machine are queued or running already (METAL_BMC_COMMAND_QUEUE_MAX 2); this was its last allowed delivery, so it does not go back to the stream and does not come again; not executed');
    expect(dispositionOf(last)).toBe('term');
    expect(results.filter((r) => r.code === 'QUEUE_FULL')).toHaveLength(2);
    expect(await registry.getSingleMetricAsString('metal_bmc_events_refused_total')).toContain('reason="queue-full"} 1');
    await Promise.all(queued);
    // the ON lost on its last delivery does not hold the machine's next event
    expect(await runner.submit(command('m', 'OFF', 4))).toMatchObject({ ok: true });
  });

  it('a REINSTALL, which goes stale past the TTL, supersedes nothing: the queued PXE runs, the REINSTALL goes back to the stream', async () => {
    let clock = 100_000;
    // each run takes the clock 20 s on: the REINSTALL's turn behind a full queue would come past the TTL of 30 s
    const { rec, runner } = setup({ concurrency: 1, queueMax: 3, ttlMs: 30_000, now: () => clock, ms: () => ((clock += 20_000), 1) });
    const queued = [command('m', 'ON', 1), command('m', 'CYCLE', 2), command('m', 'PXE', 3)].map((p) => runner.submit(timed(p, clock)));
    // as planEvent plans it: PXE, then CYCLE
    const reinstall = await runner.submit(timed({ ...command('m', 'REINSTALL', 4), actions: [{ kind: 'command', command: 'PXE' }, { kind: 'command', command: 'CYCLE' }] }, clock));
    expect(reinstall).toMatchObject({ ok: false, code: 'QUEUE_FULL', handedBack: true });
    const done = await Promise.all(queued);
    expect(done.map((r) => r.dropped ?? (r.ok ? 'ok' : r.code))).toEqual(['ok', 'ok', 'ok']);
    expect(rec.events.filter((e) => e.endsWith(':start')).map((e) => e.split(':')[1])).toEqual(['ON', 'CYCLE', 'PXE']);
  });
});

describe('command runner: a failed command is tried again before the machine\'s next one', () => {
  /** A BMC whose actions of `failing` fail with `code` the first `times` times (counted across connections). */
  function flakyConnect(rec: Recorder, failing: string, code: BmcErrorCode, times: number) {
    let failures = 0;
    return (ipmi: { host: string }) => {
      const bmc = fakeBmc(rec, ipmi.host, () => 1);
      const flaky = (name: string, real: (o?: { signal?: AbortSignal }) => Promise<void>) => async (o?: { signal?: AbortSignal }) => {
        if (name === failing && failures < times) {
          failures++;
          rec.events.push(`${ipmi.host}:${name}:failed`);
          throw new BmcError(code, `${code} from the fake BMC`);
        }
        return real(o);
      };
      return { ...bmc, bootFrom: (target: Parameters<Outband['bootFrom']>[0], o?: { signal?: AbortSignal }) => flaky(target, (x) => bmc.bootFrom(target, x))(o), powerOff: flaky('OFF', bmc.powerOff) } as Outband;
    };
  }

  function runnerWith(connect: ReturnType<typeof flakyConnect>, o: { retryDelayMs?: number; ttlMs?: number; now?: () => number; attempts?: number } = {}) {
    const results: CommandResult[] = [];
    const log = captureLog();
    const runner = createCommandRunner({ connect, concurrency: 4, timeoutMs: 5000, logger: log.logger, retryDelayMs: o.retryDelayMs ?? 1, ...(o.ttlMs !== undefined ? { ttlMs: o.ttlMs } : {}), ...(o.now ? { now: o.now } : {}), ...(o.attempts ? { attempts: o.attempts } : {}), onResult: (r) => results.push(r) });
    return { runner, results, log };
  }

  it('a one-time BIOS boot that failed once runs again before the CYCLE queued behind it, not after', async () => {
    const rec: Recorder = { events: [], active: 0, maxActive: 0, opened: 0, closed: 0, deadlines: [] };
    const { runner, results, log } = runnerWith(flakyConnect(rec, 'BIOS', 'HTTP', 1));
    const [bios, cycle] = await Promise.all([runner.submit(plan('m', 'BIOS')), runner.submit(plan('m', 'CYCLE'))]);
    expect(rec.events.filter((e) => !e.endsWith(':end'))).toEqual(['m:BIOS:failed', 'm:BIOS:start', 'm:CYCLE:start']);
    expect(bios).toMatchObject({ ok: true, attempts: 2 });
    expect(cycle.ok).toBe(true);
    expect(cycle.attempts).toBeUndefined();
    // one result per command: the failed attempt is logged, not published
    expect(results.map((r) => `${r.command}:${r.ok}`)).toEqual(['BIOS:true', 'CYCLE:true']);
    expect(log.find('machine command failed; trying it again before the machine\'s next command')).toHaveLength(1);
    expect(rec.closed).toBe(3);
  });

  it('an OFF that keeps failing ends failed after its attempts, before the ON behind it runs', async () => {
    const rec: Recorder = { events: [], active: 0, maxActive: 0, opened: 0, closed: 0, deadlines: [] };
    const { runner, results } = runnerWith(flakyConnect(rec, 'OFF', 'COMPLETION_CODE', 99), { attempts: 3 });
    const [off, on] = await Promise.all([runner.submit(plan('m', 'OFF')), runner.submit(plan('m', 'ON'))]);
    expect(off).toMatchObject({ ok: false, code: 'COMPLETION_CODE', attempts: 3 });
    expect(on.ok).toBe(true);
    expect(rec.events.filter((e) => !e.endsWith(':end'))).toEqual(['m:OFF:failed', 'm:OFF:failed', 'm:OFF:failed', 'm:ON:start']);
    expect(results.map((r) => `${r.command}:${r.ok}`)).toEqual(['OFF:false', 'ON:true']);
  });

  it('does not try again what another attempt cannot fix (the BMC refused the credentials)', async () => {
    const rec: Recorder = { events: [], active: 0, maxActive: 0, opened: 0, closed: 0, deadlines: [] };
    const { runner } = runnerWith(flakyConnect(rec, 'OFF', 'AUTH_FAILED', 1));
    const off = await runner.submit(plan('m', 'OFF'));
    expect(off).toMatchObject({ ok: false, code: 'AUTH_FAILED' });
    expect(off.attempts).toBeUndefined();
    expect(rec.events).toEqual(['m:OFF:failed']);
    expect(rec.closed).toBe(1);
  });

  it('does not try a command again once it is older than the TTL', async () => {
    let clock = 1_000_000;
    const rec: Recorder = { events: [], active: 0, maxActive: 0, opened: 0, closed: 0, deadlines: [] };
    const connect = flakyConnect(rec, 'OFF', 'HTTP', 1);
    // the failed attempt "takes" 10 s on the test's clock
    const { runner, log } = runnerWith((ipmi) => ((clock += 10_000), connect(ipmi)), { ttlMs: 5000, now: () => clock });
    const off = await runner.submit({ ...plan('m', 'OFF'), publishedAt: new Date(clock) });
    expect(off).toMatchObject({ ok: false, code: 'HTTP' });
    expect(off.attempts).toBeUndefined();
    expect(rec.events).toEqual(['m:OFF:failed']);
    expect(log.find('machine command not tried again: older than the topic TTL now')).toHaveLength(1);
  });

  it('does not try again a command whose failed attempt took so long that another would end past the TTL (a dead BMC\'s connect timeouts): the slot is free for the next machine', async () => {
    let clock = 1_000_000;
    const rec: Recorder = { events: [], active: 0, maxActive: 0, opened: 0, closed: 0, deadlines: [] };
    const connect = flakyConnect(rec, 'OFF', 'TIMEOUT', 1);
    // the failed attempt "takes" 20 s on the test's clock, as a dead BMC's connect timeouts do; the TTL is 30 s
    let first = true;
    const { runner, log } = runnerWith((ipmi) => (first && ((clock += 20_000), (first = false)), connect(ipmi)), { ttlMs: 30_000, now: () => clock });
    const off = await runner.submit({ ...plan('m', 'OFF'), publishedAt: new Date(clock) });
    expect(off).toMatchObject({ ok: false, code: 'TIMEOUT' });
    expect(off.attempts).toBeUndefined();
    expect(rec.events).toEqual(['m:OFF:failed']);
    expect(log.find('machine command not tried again: another attempt as long as the last would end past the topic TTL')).toHaveLength(1);
  });

  it('still tries again a command whose failure came quickly, well within the TTL', async () => {
    let clock = 1_000_000;
    const rec: Recorder = { events: [], active: 0, maxActive: 0, opened: 0, closed: 0, deadlines: [] };
    const connect = flakyConnect(rec, 'OFF', 'TIMEOUT', 1);
    let first = true;
    const { runner } = runnerWith((ipmi) => (first && ((clock += 2_000), (first = false)), connect(ipmi)), { ttlMs: 30_000, now: () => clock });
    const off = await runner.submit({ ...plan('m', 'OFF'), publishedAt: new Date(clock) });
    expect(off).toMatchObject({ ok: true, attempts: 2 });
  });

  it('does not try again once the shutdown deadline aborts the runner during the pause: the plan ends ABORTED and goes back', async () => {
    const rec: Recorder = { events: [], active: 0, maxActive: 0, opened: 0, closed: 0, deadlines: [] };
    const { runner } = runnerWith(flakyConnect(rec, 'OFF', 'HTTP', 1), { retryDelayMs: 60_000 });
    const off = runner.submit(plan('m', 'OFF'));
    await waitFor(() => rec.events.length === 1, 5000, 'the first attempt');
    const started = Date.now();
    expect(await runner.drain(50)).toBe(false);
    // a 60 s pause: under 5 s means the drain deadline ended it (wide margin for load)
    expect(Date.now() - started).toBeLessThan(5000);
    expect(await off).toMatchObject({ ok: false, code: 'ABORTED' });
    expect(dispositionOf(await off)).toBe('nak');
    expect(rec.events).toEqual(['m:OFF:failed']);
  });

  it('abortAll during the pause (the lead lost): the plan ends ABORTED, so the new leader gets it, not terminated', async () => {
    const rec: Recorder = { events: [], active: 0, maxActive: 0, opened: 0, closed: 0, deadlines: [] };
    const { runner } = runnerWith(flakyConnect(rec, 'OFF', 'HTTP', 1), { retryDelayMs: 60_000 });
    const off = runner.submit(plan('m', 'OFF'));
    await waitFor(() => rec.events.length === 1, 5000, 'the first attempt');
    runner.abortAll('another instance leads');
    const result = await off;
    expect(result).toMatchObject({ ok: false, code: 'ABORTED' });
    expect(result.error).toMatch(/HTTP from the fake BMC; not tried again here: aborted/);
    expect(dispositionOf(result)).toBe('nak');
    expect(rec.events).toEqual(['m:OFF:failed']);
  });
});
