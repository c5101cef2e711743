/**
 * Commands fire once and on time, with a real nats-server and the simulated fleet: a RESET that
 * waited behind a slow command past the TTL is dropped when its turn comes; a CYCLE the BMC carried
 * out without answering ends "outcome unknown" and is not delivered again; commands beyond a
 * machine's queue bound, and core NATS events beyond the in-flight bound, are refused with a
 * result event.
 */
import type { NatsConnection } from '@nats-io/transport-node';
import { Registry } from 'prom-client';
import { expect } from 'vitest';
import { connectBus } from '../../src/bus/connection.js';
import { streamNameFor } from '../../src/bus/jetstream.js';
import { createCommandMetrics } from '../../src/commands/metrics.js';
import type { CommandResult } from '../../src/commands/runner.js';
import { connectOutband } from '../../src/outband/connect.js';
import { startCommandService } from '../../src/parts/commands.js';
import type { Fleet } from '../../src/sim/fleet.js';
import { commandPeers, redfishPowered as redfishPoweredOf } from '../helpers/command-peers.js';
import { captureLog, type CapturedLog } from '../helpers/log.js';
import { consumerSettled, type TestNatsServer } from '../helpers/nats-server.js';
import { withPeers } from '../helpers/peers.js';
import { waitFor } from '../helpers/wait.js';

const { describe, it } = withPeers('nats-server', 'openssl');

const enc = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));
const until = (what: string, check: () => boolean, ms = 20_000) => waitFor(check, ms, what, 25);

let fleet: Fleet;
let server: TestNatsServer;
let metalApi: NatsConnection;
let seq = 0;
const cleanup = commandPeers(4, (p) => ({ fleet, server, metalApi } = p));

const redfishPowered = () => redfishPoweredOf(fleet);

function event(i: number, cmd: string) {
  const m = fleet.machines[i]!.state;
  return { type: 'command', new: `machine-${i}`, cmd: { target: `machine-${i}`, cmd, ipmi: { address: `${m.address}:${fleet.ipmiPort}`, user: fleet.user, password: fleet.password, mac: m.mac } } };
}

async function service(o: { ttlMs?: number; timeoutMs?: number; bmcTimeoutMs?: number; queueMax?: number; maxInFlight?: number; mode?: 'core' }): Promise<{ partition: string; log: CapturedLog; registry: Registry; results: CommandResult[] }> {
  const partition = `once${++seq}`;
  const log = captureLog();
  const registry = new Registry();
  const metrics = createCommandMetrics(registry);
  const results: CommandResult[] = [];
  const sub = metalApi.subscribe(`${partition}-machine-result`, { callback: (_e, m) => void results.push(m.json<CommandResult>()) });
  await metalApi.flush();
  const bus = await connectBus({ servers: [server.url], logger: log.logger, name: partition, metrics });
  const svc = await startCommandService({
    nc: bus.nc,
    subject: `${partition}-machine`,
    resultSubject: `${partition}-machine-result`,
    ttlMs: o.ttlMs ?? 30_000,
    durableName: `metal-bmc-${partition}`,
    ...(o.mode ? { mode: o.mode } : {}),
    ...(o.queueMax ? { maxQueuePerMachine: o.queueMax } : {}),
    ...(o.maxInFlight ? { maxInFlight: o.maxInFlight } : {}),
    connect: (ipmi, { signal }) =>
      connectOutband({ host: ipmi.host, user: ipmi.user ?? '', password: ipmi.password ?? '', ipmiPort: ipmi.port, redfishPort: fleet.redfishPort, timeoutMs: o.bmcTimeoutMs ?? o.timeoutMs ?? 10_000, signal }),
    concurrency: 4,
    timeoutMs: o.timeoutMs ?? 10_000,
    logger: log.logger,
    metrics,
  });
  cleanup.push(async () => {
    await svc.stop(2000);
    await bus.close(1000);
    sub.unsubscribe();
  });
  return { partition, log, registry, results };
}

const publish = (partition: string, body: unknown) => metalApi.publish(`${partition}-machine`, enc(body));

describe('commands fire once and on time', () => {
  it('a RESET queued behind a slow command past the TTL is dropped when its turn comes, and the result says so', async () => {
    const machine = redfishPowered()[0]!;
    const i = machine.state.index;
    const resets: string[] = [];
    machine.on('change', (c: { kind: string; action?: string }) => void (c.kind === 'power' && c.action === 'ForceRestart' && resets.push(c.action)));
    const { partition, results } = await service({ ttlMs: 1500 });
    // every answer of this BMC takes 500 ms: the LED command holds the machine's queue for seconds
    fleet.setFaults([i], { delayMs: 500 });
    publish(partition, event(i, 'LED-ON'));
    publish(partition, event(i, 'RESET'));
    await until('two results', () => results.length === 2);
    const reset = results.find((r) => r.command === 'RESET')!;
    expect(results.find((r) => r.command === 'LED-ON')).toMatchObject({ ok: true });
    expect(reset).toMatchObject({ ok: false, code: 'STALE', dropped: 'stale' });
    expect(reset.ageMs).toBeGreaterThan(1500);
    expect(reset.error).toMatch(/older than the topic TTL.*not executed/);
    expect(resets).toEqual([]);
  });

  it('a CYCLE the BMC carries out without answering runs once, with an "outcome unknown" result, and is not delivered again', async () => {
    const machine = redfishPowered()[1]!;
    const i = machine.state.index;
    const cycles: string[] = [];
    machine.on('change', (c: { kind: string; action?: string }) => void (c.kind === 'power' && c.action === 'PowerCycle' && cycles.push(c.action)));
    const { partition, results, registry, log } = await service({ timeoutMs: 3000 });
    fleet.setFaults([i], { actSilently: true });
    publish(partition, event(i, 'CYCLE'));
    await until('a result', () => results.length === 1);
    expect(results[0]).toMatchObject({ command: 'CYCLE', ok: false, code: 'OUTCOME_UNKNOWN', outcomeUnknown: true });
    expect(results[0]!.error).toMatch(/CYCLE was sent to the BMC and no answer came that says it did not happen.*not retried/);
    const info = await consumerSettled(metalApi, streamNameFor(`${partition}-machine`), `metal-bmc-${partition}`);
    await metalApi.flush();
    expect(info.num_redelivered).toBe(0);
    expect(info.num_ack_pending).toBe(0);
    expect(cycles).toEqual(['PowerCycle']);
    expect(results).toHaveLength(1);
    expect(await registry.getSingleMetricAsString('metal_bmc_commands_total')).toMatch(/command="CYCLE",outcome="unknown"} 1$/m);
    expect(log.find('machine command outcome unknown: no answer of the BMC says a non-idempotent action did not happen; not retried')).toHaveLength(1);
  });

  it.each([500, 504])('a RESET the BMC carries out and answers %i: runs once, not sent again over IPMI, with an "outcome unknown" result', async (status) => {
    const machine = redfishPowered()[status === 500 ? 2 : 3]!;
    const i = machine.state.index;
    const powerChanges: string[] = [];
    machine.on('change', (c: { kind: string; action?: string }) => void (c.kind === 'power' && powerChanges.push(c.action ?? '')));
    const { partition, results } = await service({ timeoutMs: 5000 });
    fleet.setFaults([i], { actStatus: status });
    publish(partition, event(i, 'RESET'));
    await until('a result', () => results.length === 1);
    fleet.clearFaults();
    expect(results[0]).toMatchObject({ command: 'RESET', ok: false, code: 'OUTCOME_UNKNOWN', outcomeUnknown: true });
    expect(powerChanges).toHaveLength(1); // one reset (an 'On' for a machine that was off): IPMI did not reset the host a second time
  });

  it('a RESET Redfish refuses (400) and IPMI then carries out without an answer: outcome unknown, the plan not tried again (a second try would reset the host again)', async () => {
    fleet.clearFaults();
    const machine = redfishPowered()[1]!;
    const i = machine.state.index;
    let posts = 0;
    machine.on('change', (c: { kind: string; action?: string }) => void (c.kind === 'power' && posts++));
    // the IPMI exchange's own deadline (3 s) ends the fallback, well before the command's (20 s)
    const { partition, results } = await service({ timeoutMs: 20_000, bmcTimeoutMs: 3000 });
    fleet.setFaults([i], { actRefused: 400, actSilently: true });
    publish(partition, event(i, 'RESET'));
    await until('a result', () => results.length === 1);
    fleet.clearFaults();
    expect(results[0]).toMatchObject({ command: 'RESET', ok: false, code: 'OUTCOME_UNKNOWN', outcomeUnknown: true });
    expect(results[0]!.attempts).toBeUndefined();
    expect(posts).toBeGreaterThan(0); // IPMI reset the host (the simulator runs each retransmission: no duplicate detection)
  });

  it('JetStream: commands beyond the machine\'s queue bound go back to the stream and run later, in their order', async () => {
    const machine = redfishPowered()[0]!;
    const i = machine.state.index;
    const { partition, results, registry } = await service({ queueMax: 2 });
    fleet.setFaults([i], { delayMs: 100 });
    const cmds = ['LED-ON', 'LED-OFF', 'LED-ON', 'LED-OFF', 'LED-ON'];
    for (const cmd of cmds) publish(partition, event(i, cmd));
    // (the hand-backs wait 0.5 s, 1 s, 2 s, ... between deliveries)
    await until('five commands run', () => results.filter((r) => r.ok).length === 5, 60_000);
    fleet.clearFaults();
    // each ran once, in the order metal-api sent them
    expect(results.filter((r) => r.ok).map((r) => r.command)).toEqual(cmds);
    const back = results.filter((r) => r.code === 'QUEUE_FULL');
    expect(back.length).toBeGreaterThan(0);
    for (const r of back) expect(r).toMatchObject({ ok: false, handedBack: true, machineId: `machine-${i}` });
    expect(results.filter((r) => !r.ok).every((r) => r.handedBack)).toBe(true);
    expect(await registry.getSingleMetricAsString('metal_bmc_events_refused_total')).toMatch(/reason="queue-full-handed-back"} [1-9]/m);
  });

  it('core NATS: commands beyond the machine\'s queue bound are refused with a result event (nothing comes again)', async () => {
    const machine = redfishPowered()[0]!;
    const i = machine.state.index;
    const { partition, results, registry } = await service({ queueMax: 2, mode: 'core' });
    fleet.setFaults([i], { delayMs: 300 });
    for (const cmd of ['LED-ON', 'LED-OFF', 'LED-ON', 'LED-OFF', 'LED-ON']) publish(partition, event(i, cmd));
    await until('five results', () => results.length === 5);
    fleet.clearFaults();
    const refused = results.filter((r) => r.code === 'QUEUE_FULL');
    expect(refused).toHaveLength(3);
    for (const r of refused) expect(r).toMatchObject({ ok: false, dropped: 'overflow', machineId: `machine-${i}` });
    expect(results.filter((r) => r.ok)).toHaveLength(2);
    expect(await registry.getSingleMetricAsString('metal_bmc_events_refused_total')).toMatch(/reason="queue-full"} 3$/m);
  });

  it('core NATS: events beyond the in-flight bound are refused with a result event, not dropped silently', async () => {
    const slow = redfishPowered().slice(0, 2).map((m) => m.state.index);
    const { partition, results, registry } = await service({ mode: 'core', maxInFlight: 1 });
    fleet.setFaults(slow, { delayMs: 300 });
    publish(partition, event(slow[0]!, 'LED-ON'));
    publish(partition, event(slow[1]!, 'LED-ON'));
    publish(partition, event(slow[1]!, 'LED-OFF'));
    await until('three results', () => results.length === 3);
    expect(results.filter((r) => r.code === 'OVERLOADED')).toHaveLength(2);
    expect(results.find((r) => r.code === 'OVERLOADED')).toMatchObject({ ok: false, dropped: 'overflow', machineId: `machine-${slow[1]}` });
    expect(results.filter((r) => r.ok)).toHaveLength(1);
    expect(await registry.getSingleMetricAsString('metal_bmc_events_refused_total')).toMatch(/reason="in-flight"} 2$/m);
  });
});
