import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import type { Plan } from '../../src/commands/event.js';
import { createEventHandler, dispositionOf } from '../../src/commands/handler.js';
import { createCommandMetrics } from '../../src/commands/metrics.js';
import type { CommandResult, CommandRunner } from '../../src/commands/runner.js';
import { BmcError } from '../../src/errors.js';
import { captureLog } from '../helpers/log.js';

const enc = (v: unknown) => new TextEncoder().encode(typeof v === 'string' ? v : JSON.stringify(v));
const meta = { publishedAt: new Date(), deliveryCount: 1 };
const ipmi = { address: '10.0.0.9:623', user: 'ADMIN', password: 'never-log-me' };

function stubRunner(answer: (plan: Plan) => Promise<CommandResult>): CommandRunner & { plans: Plan[] } {
  const plans: Plan[] = [];
  return {
    plans,
    submit: (plan) => (plans.push(plan), answer(plan)),
    pending: 0,
    stop: () => undefined,
    drain: async () => true,
    abortAll: () => undefined,
    powerSettled: () => undefined,
  };
}

const result = (ok: boolean, code?: string): CommandResult => ({ machineId: 'm', type: 'command', command: 'ON', ok, durationMs: 1, startedAt: new Date().toISOString(), ...(code ? { code, error: code } : {}) });

/** A handler with metrics, a 30 s TTL and a fixed clock, over a runner that succeeds. */
function timedHandler() {
  const log = captureLog();
  const registry = new Registry();
  const runner = stubRunner(async () => result(true));
  const now = 1_000_000;
  const handle = createEventHandler({ runner, logger: log.logger, metrics: createCommandMetrics(registry), ttlMs: 30_000, now: () => now });
  return { log, registry, runner, now, handle };
}

describe('machine event handler', () => {
  it('terminates malformed events, counts them by reason and logs one line without the body', async () => {
    const log = captureLog();
    const registry = new Registry();
    const metrics = createCommandMetrics(registry);
    const runner = stubRunner(async () => result(true));
    const handle = createEventHandler({ runner, logger: log.logger, metrics });
    expect(await handle(enc('garbage'), meta)).toBe('term');
    expect(await handle(enc({ type: 'command', cmd: { cmd: 'ON' } }), meta)).toBe('term');
    expect(await handle(enc({ type: 'command', cmd: { cmd: 'EXPLODE', ipmi } }), meta)).toBe('term');
    expect(runner.plans).toHaveLength(0);
    expect(log.find('machine event rejected').map((l) => l.reason)).toEqual(['not-json', 'missing-ipmi', 'unknown-command']);
    expect(log.text()).not.toContain('never-log-me');
    const text = await registry.getSingleMetricAsString('metal_bmc_events_rejected_total');
    expect(text).toContain('reason="not-json"} 1');
    expect(text).toContain('reason="missing-ipmi"} 1');
    expect(text).toContain('reason="unknown-command"} 1');
  });

  it('logs a body that is almost JSON without the text around the error (V8 quotes it, and it may be the password)', async () => {
    const log = captureLog();
    const handle = createEventHandler({ runner: stubRunner(async () => result(true)), logger: log.logger });
    // an unquoted password: V8's SyntaxError reads `Unexpected token 'S', ..."password":S3cr3t-PW}"... is not valid JSON`
    expect(await handle(enc('{"type":"command","cmd":{"cmd":"ON","ipmi":{"address":"10.0.0.9","password":S3cr3t-PW}}}'), meta)).toBe('term');
    // a quoted one before a syntax error elsewhere: V8 names a position instead
    expect(await handle(enc('{"cmd":{"ipmi":{"password":"Qu0ted-PW"}} "type":"command"}'), meta)).toBe('term');
    const rejected = log.find('machine event rejected');
    expect(rejected.map((l) => l.reason)).toEqual(['not-json', 'not-json']);
    expect(log.text()).not.toContain('S3cr3t');
    expect(log.text()).not.toContain('Qu0ted');
    expect(log.text()).not.toContain('password');
    expect((rejected[1]!.err as { message: string }).message).toMatch(/^machine event: not JSON \(\d+ bytes, invalid at character \d+\)$/);
  });

  it('acks events that need nothing without touching a BMC', async () => {
    const runner = stubRunner(async () => result(true));
    const handle = createEventHandler({ runner, logger: captureLog().logger });
    expect(await handle(enc({ type: 'update', new: 'm' }), meta)).toBe('ack');
    expect(runner.plans).toHaveLength(0);
  });

  it('acks success, terminates a failure (the runner tried again what may help), naks only what the shutdown cut off', async () => {
    expect(dispositionOf(result(true))).toBe('ack');
    // a redelivery would run behind the machine's newer commands: final, its result published
    expect(dispositionOf(result(false, 'TIMEOUT'))).toBe('term');
    expect(dispositionOf({ ...result(false, 'HTTP'), attempts: 2 })).toBe('term');
    expect(dispositionOf(result(false, 'AUTH_FAILED'))).toBe('term');
    expect(dispositionOf(result(false, 'UNSUPPORTED'))).toBe('term');
    expect(dispositionOf(result(false))).toBe('term');
    expect(dispositionOf({ ...result(false, 'OUTCOME_UNKNOWN'), outcomeUnknown: true })).toBe('term');
    // the runner aborted at the shutdown deadline: this and the machine's commands behind it go back, in order
    expect(dispositionOf(result(false, 'ABORTED'))).toBe('nak');
    // a step not sent because the event journal could not be used: tried again once it works
    expect(dispositionOf({ ...result(false, 'UNAVAILABLE'), handedBack: true })).toBe('nak');
  });

  it('gives the plan the event\'s id in the event journal, when the bus names one', async () => {
    const runner = stubRunner(async () => result(true));
    const handle = createEventHandler({ runner, logger: captureLog().logger });
    await handle(enc({ type: 'command', cmd: { cmd: 'RESET', ipmi } }), { ...meta, eventId: 'tag.7' });
    await handle(enc({ type: 'command', cmd: { cmd: 'RESET', ipmi } }), meta);
    expect(runner.plans.map((p) => p.eventId)).toEqual(['tag.7', undefined]);
  });

  it('tells the plan when the bus says this is the event\'s last delivery (the runner refuses it rather than hand it back)', async () => {
    const runner = stubRunner(async () => result(true));
    const handle = createEventHandler({ runner, logger: captureLog().logger });
    await handle(enc({ type: 'command', cmd: { cmd: 'RESET', ipmi } }), { ...meta, eventId: 'tag.7', deliveryCount: 15, lastDelivery: true });
    await handle(enc({ type: 'command', cmd: { cmd: 'RESET', ipmi } }), { ...meta, eventId: 'tag.7', lastDelivery: false });
    expect(runner.plans.map((p) => p.lastDelivery)).toEqual([true, undefined]);
  });

  it('naks when the runner is stopping, so another instance takes the event', async () => {
    const runner = stubRunner(() => Promise.reject(new BmcError('CLOSED', 'stopped')));
    const handle = createEventHandler({ runner, logger: captureLog().logger });
    expect(await handle(enc({ type: 'command', cmd: { cmd: 'ON', ipmi } }), meta)).toBe('nak');
  });

  it('submits before its first await, so events keep their order', () => {
    const runner = stubRunner(() => new Promise(() => undefined));
    const handle = createEventHandler({ runner, logger: captureLog().logger });
    void handle(enc({ type: 'command', cmd: { target: 'm', cmd: 'PXE', ipmi } }), meta);
    void handle(enc({ type: 'command', cmd: { target: 'm', cmd: 'CYCLE', ipmi } }), meta);
    expect(runner.plans.map((p) => p.command)).toEqual(['PXE', 'CYCLE']);
  });

  it('drops a command older than the TTL on receipt (term, counted, never submitted), but submits a late delete with its publication time', async () => {
    const { log, registry, runner, now, handle } = timedHandler();
    const old = { publishedAt: new Date(now - 60_000), deliveryCount: 1 };
    expect(await handle(enc({ type: 'command', cmd: { target: 'm', cmd: 'RESET', ipmi } }), old)).toBe('term');
    expect(runner.plans).toHaveLength(0);
    expect(log.find('stale machine event dropped')).toHaveLength(1);
    expect(await registry.getSingleMetricAsString('metal_bmc_events_stale_total')).toMatch(/metal_bmc_events_stale_total 1$/m);
    expect(await handle(enc({ type: 'delete', old: 'm', cmd: { target: 'm', ipmi } }), old)).toBe('ack');
    expect(runner.plans.map((p) => [p.type, p.publishedAt?.getTime()])).toEqual([['delete', now - 60_000]]);
  });

  it('tells the runner of a command dropped stale on receipt, so its machine\'s later events no longer wait for it (it may have been handed back)', async () => {
    const log = captureLog();
    const passed: Array<string | undefined> = [];
    const runner = { ...stubRunner(async () => result(true)), passed: (plan: Plan) => void passed.push(plan.eventId) };
    const now = 1_000_000;
    const handle = createEventHandler({ runner, logger: log.logger, ttlMs: 30_000, now: () => now });
    expect(await handle(enc({ type: 'command', cmd: { target: 'm', cmd: 'CYCLE', ipmi } }), { publishedAt: new Date(now - 60_000), deliveryCount: 3, eventId: 'S@c#7' })).toBe('term');
    expect(passed).toEqual(['S@c#7']);
  });

  it('submits a DISK or PXE command older than the TTL as late (metal-api ends an installation with a command DISK), drops a late RESET or BIOS', async () => {
    const { runner, now, handle } = timedHandler();
    const old = { publishedAt: new Date(now - 600_000), deliveryCount: 1 };
    for (const cmd of ['DISK', 'PXE', 'RESET', 'BIOS']) await handle(enc({ type: 'command', cmd: { target: 'm', cmd, ipmi } }), old);
    expect(runner.plans.map((p) => p.command)).toEqual(['DISK', 'PXE']);
  });

  it('observes every event\'s age, and warns (once in ten minutes) when one lies ahead of the clock its age is taken on', async () => {
    const { log, registry, now, handle } = timedHandler();
    const at = (ms: number) => ({ publishedAt: new Date(now + ms), deliveryCount: 1 });
    await handle(enc({ type: 'command', cmd: { target: 'm', cmd: 'ON', ipmi } }), at(-200));
    await handle(enc({ type: 'command', cmd: { target: 'm', cmd: 'ON', ipmi } }), at(-1500)); // within the tolerance
    expect(log.find(/lies ahead of the clock its age is taken on/)).toHaveLength(0);
    await handle(enc({ type: 'command', cmd: { target: 'm', cmd: 'ON', ipmi } }), at(45_000));
    await handle(enc({ type: 'command', cmd: { target: 'm', cmd: 'ON', ipmi } }), at(45_000));
    expect(log.find(/lies ahead of the clock its age is taken on/)).toEqual([expect.objectContaining({ aheadMs: 45_000 })]);
    expect(await registry.getSingleMetricAsString('metal_bmc_machine_event_age_seconds')).toMatch(/metal_bmc_machine_event_age_seconds_count 4$/m);
    expect(await registry.getSingleMetricAsString('metal_bmc_machine_event_age_seconds')).toMatch(/le="-30"} 2$/m);
  });

  it('counts an event hours old (a lifecycle event kept while metal-bmc was down) as old, not in the buckets of the future', async () => {
    const { registry, now, handle } = timedHandler();
    const twoHoursOld = { publishedAt: new Date(now - 7_200_000), deliveryCount: 1 };
    await handle(enc({ type: 'delete', old: 'm', cmd: { target: 'm', ipmi } }), twoHoursOld);
    const text = await registry.getSingleMetricAsString('metal_bmc_machine_event_age_seconds');
    expect(text).toMatch(/le="-2"} 0$/m);
    expect(text).toMatch(/le="3600"} 0$/m);
    expect(text).toMatch(/le="86400"} 1$/m);
  });

  it('terminates a result the runner dropped as stale', () => {
    expect(dispositionOf({ ...result(false, 'STALE'), dropped: 'stale' })).toBe('term');
  });

  it('hands UPDATE-FIRMWARE to the background jobs: ack when accepted, term when refused, never to the runner', async () => {
    const runner = stubRunner(async () => result(true));
    const answers = [true, false];
    const started: Plan[] = [];
    const firmware = { start: async (p: Plan) => (started.push(p), answers.shift() ? { accepted: true as const, job: {} as never } : { accepted: false as const, event: {} as never }) };
    const handle = createEventHandler({ runner, logger: captureLog().logger, firmware });
    const event = { type: 'command', cmd: { target: 'm', cmd: 'UPDATE-FIRMWARE', firmwareupdate: { kind: 'bios', url: 'https://images/bios.bin' }, ipmi } };
    expect(await handle(enc(event), meta)).toBe('ack');
    expect(await handle(enc(event), meta)).toBe('term');
    expect(started.map((p) => p.command)).toEqual(['UPDATE-FIRMWARE', 'UPDATE-FIRMWARE']);
    expect(runner.plans).toHaveLength(0);
  });
});
