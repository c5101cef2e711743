/**
 * The daemon part `commands` wired from the configuration (METAL_BMC_MQ_*, topic names, TTL,
 * command limits) through the out-of-band facade: readiness follows the NATS connection, and
 * stop() returns promptly even when NATS was never reachable.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from '@nats-io/transport-node';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, expect } from 'vitest';
import { loadConfig } from '../../src/config/config.js';
import { commandsPart } from '../../src/parts/commands.js';
import type { DaemonContext } from '../../src/daemon.js';
import type { MetalApiClient } from '../../src/metalapi/client.js';
import { connectOutband } from '../../src/outband/connect.js';
import { createStatusStore } from '../../src/status/store.js';
import { startIpmiSim, type IpmiSim } from '../helpers/ipmisim.js';
import { captureLog } from '../helpers/log.js';
import { startTestNatsServer, type TestNatsServer } from '../helpers/nats-server.js';
import { freeTcpPort } from '../helpers/ports.js';
import { waitFor } from '../helpers/wait.js';
import { withPeers } from '../helpers/peers.js';

const { describe, it } = withPeers('ipmi_sim', 'ipmitool', 'nats-server');

const until = (what: string, check: () => boolean, ms = 10_000) => waitFor(check, ms, what, 25);

/** the MAC of ipmi_sim's lease in these tests */
const SIM_BMC_MAC = '02:00:00:00:00:01';

let sim: IpmiSim;
let server: TestNatsServer;
beforeAll(async () => {
  [sim, server] = await Promise.all([startIpmiSim(), startTestNatsServer({ jetstream: true })]);
});
afterAll(async () => {
  await Promise.all([sim?.stop(), server?.dispose()]);
});

/** The commands part started and ready, and a NATS client collecting the machines' results. */
async function startedWithResults(ctx: DaemonContext) {
  const part = await commandsPart(ctx);
  await until('ready', () => part.ready?.() === undefined);
  const api = await connect({ servers: server.url });
  const results: Array<Record<string, unknown>> = [];
  api.subscribe('part-test-machine-result', { callback: (_e, m) => void results.push(m.json()) });
  await api.flush();
  return { part, api, results };
}

function context(mqAddress: string, extra: Record<string, string> = {}): { ctx: DaemonContext; registry: Registry; log: ReturnType<typeof captureLog> } {
  const config = loadConfig({
    ...extra,
    METAL_BMC_PARTITION_ID: 'part-test',
    METAL_BMC_METAL_API_URL: 'http://127.0.0.1:1/metal',
    METAL_BMC_METAL_API_HMAC_KEY: 'k',
    METAL_BMC_MQ_ADDRESS: mqAddress,
    METAL_BMC_PROTOCOL: 'ipmi',
    METAL_BMC_COMMAND_TIMEOUT: '10s',
    METAL_BMC_COMMAND_CONCURRENCY: '4',
    // firmware jobs and BMC trust records go to a throw-away folder, not /var/lib/metal-bmc
    METAL_BMC_STATE_DIR: mkdtempSync(join(tmpdir(), 'metal-bmc-commands-part-')),
  });
  const log = captureLog();
  const registry = new Registry();
  const ctx: DaemonContext = {
    config,
    logger: log.logger,
    registry,
    metalApi: {} as MetalApiClient,
    connectBmc: (host, o) => connectOutband({ host, user: o.user ?? 'none', password: o.password ?? 'none', protocol: 'ipmi', ipmiPort: o.port ?? 623, timeoutMs: 5000, ...(o.signal ? { signal: o.signal } : {}) }),
    // the lease file knows ipmi_sim's address
    leaseAt: (ip) => (ip === sim.host ? { mac: SIM_BMC_MAC } : undefined),
    status: createStatusStore({ partition: 'part-test', graceMs: 60_000 }),
  };
  return { ctx, registry, log };
}

describe('daemon part "commands"', () => {
  it('consumes <partition>-machine, executes on the BMC, publishes on <partition>-machine-result, and reports readiness', async () => {
    const { ctx, registry, log } = context(server.url);
    // the status knows the machine from a report cycle
    const lease = { ip: sim.host, mac: SIM_BMC_MAC, expires: 'never' as const };
    ctx.status!.leases([lease]);
    ctx.status!.read(lease, { ok: true, vendor: 'ipmi_sim', durationMs: 1, report: { uuid: 'm-part', bmcVersion: '', biosVersion: '', fru: {}, powerState: 'OFF', indicatorLED: 'LED-OFF', powerSupplies: [], source: 'ipmi', missing: [] } });
    // and placed its entry in the report's body: the machine's commands land on this BMC's row
    ctx.status!.placed([{ uuid: 'm-part', bmc: lease }], []);
    const part = await commandsPart(ctx);
    expect(part.name).toBe('commands');
    await until('ready', () => part.ready?.() === undefined);
    const api = await connect({ servers: server.url });
    const results: unknown[] = [];
    api.subscribe('part-test-machine-result', { callback: (_e, m) => void results.push(m.json()) });
    await api.flush();
    const before = sim.chassisLog().length;
    const event = { type: 'command', cmd: { target: 'm-part', cmd: 'ON', ipmi: { address: `${sim.host}:${sim.port}`, user: sim.user, password: sim.password } } };
    api.publish('part-test-machine', new TextEncoder().encode(JSON.stringify(event)));
    await until('result', () => results.length === 1);
    expect(results[0]).toMatchObject({ machineId: 'm-part', command: 'ON', ok: true });
    // and the daemon's status shows it as the machine's last command
    expect(ctx.status!.document().bmcs[0]!.lastCommand).toMatchObject({ name: 'ON', outcome: 'ok', durationMs: expect.any(Number) });
    expect(ctx.status!.document().summary.commandsLastHour).toBe(1);
    expect(sim.chassisLog().slice(before)).toContain('set power 1');
    expect(await registry.getSingleMetricAsString('metal_bmc_nats_connected')).toMatch(/metal_bmc_nats_connected 1$/m);
    expect(log.find('consuming machine events from JetStream')[0]).toMatchObject({ stream: 'METAL_BMC_PART-TEST-MACHINE', consumer: 'metal-bmc-part-test' });

    await server.stop();
    await until('not ready', () => part.ready?.() === 'NATS disconnected');
    expect(await registry.getSingleMetricAsString('metal_bmc_nats_connected')).toMatch(/metal_bmc_nats_connected 0$/m);
    await server.restart();
    await until('ready again', () => part.ready?.() === undefined, 15_000);

    await part.stop(2000);
    await api.close();
    expect(log.text()).not.toContain(sim.password);
  });

  it('acts only on BMCs of the leases; the default password goes only to leased BMCs (METAL_BMC_COMMAND_TARGETS=any)', async () => {
    const api = await connect({ servers: server.url });
    const results: Array<Record<string, unknown>> = [];
    api.subscribe('part-test-machine-result', { callback: (_e, m) => void results.push(m.json()) });
    await api.flush();
    const publish = (target: string, address: string, password?: string) =>
      api.publish('part-test-machine', new TextEncoder().encode(JSON.stringify({ type: 'command', cmd: { target, cmd: 'OFF', ipmi: { address, user: sim.user, ...(password ? { password } : {}) } } })));
    const before = sim.chassisLog().length;

    const leasesOnly = context(server.url);
    let part = await commandsPart(leasesOnly.ctx);
    await until('ready', () => part.ready?.() === undefined);
    // a host outside the leases (here: ipmi_sim's port on another loopback address) gets nothing
    publish('m-unleased', `127.0.0.99:${sim.port}`, sim.password);
    await until('refusal', () => results.some((r) => r.machineId === 'm-unleased'));
    expect(results.find((r) => r.machineId === 'm-unleased')).toMatchObject({ ok: false, code: 'FORBIDDEN', error: expect.stringMatching(/127\.0\.0\.99 holds no current lease/) });
    await part.stop(2000);

    const anyTarget = context(server.url, { METAL_BMC_COMMAND_TARGETS: 'any', METAL_BMC_ALLOWED_CIDRS: '127.0.0.0/8' });
    part = await commandsPart(anyTarget.ctx);
    await until('ready', () => part.ready?.() === undefined);
    publish('m-no-password', `127.0.0.99:${sim.port}`);
    publish('m-outside', `10.255.0.1:${sim.port}`, sim.password);
    await until('refusals', () => results.some((r) => r.machineId === 'm-no-password') && results.some((r) => r.machineId === 'm-outside'));
    expect(results.find((r) => r.machineId === 'm-no-password')).toMatchObject({ ok: false, code: 'FORBIDDEN', error: expect.stringMatching(/default password goes only to leased BMCs/) });
    expect(results.find((r) => r.machineId === 'm-outside')).toMatchObject({ ok: false, code: 'FORBIDDEN', error: expect.stringMatching(/outside METAL_BMC_ALLOWED_CIDRS/) });
    await part.stop(2000);
    await api.close();
    // ipmi_sim never saw a power command from these events
    expect(sim.chassisLog().slice(before)).not.toContain('set power 0');
  });

  it('refuses an event whose BMC MAC is not the one leased at its address, even while the pool keeps a session to that address', async () => {
    const { ctx, registry, log } = context(server.url);
    const { part, api, results } = await startedWithResults(ctx);
    const publish = (target: string, cmd: string, mac: string) =>
      api.publish('part-test-machine', new TextEncoder().encode(JSON.stringify({ type: 'command', cmd: { target, cmd, ipmi: { address: `${sim.host}:${sim.port}`, user: sim.user, password: sim.password, mac } } })));
    const resultOf = (machineId: string) => results.find((r) => r.machineId === machineId);
    const before = sim.chassisLog().length;

    // the machine whose BMC holds the lease, its MAC in another spelling: executed, and its session stays in the pool
    publish('m-holder', 'ON', SIM_BMC_MAC.toUpperCase().replaceAll(':', '-'));
    await until('the holder\'s result', () => resultOf('m-holder') !== undefined);
    expect(resultOf('m-holder')).toMatchObject({ ok: true });
    // a machine whose BMC had this address before: metal-api still sends it, with that BMC's MAC
    publish('m-moved', 'OFF', '02:00:00:00:00:99');
    await until('the refusal', () => resultOf('m-moved') !== undefined);
    expect(resultOf('m-moved')).toMatchObject({ ok: false, code: 'FORBIDDEN', error: expect.stringMatching(/leased to MAC 02:00:00:00:00:01, but the event is for the BMC with MAC 02:00:00:00:00:99/) });
    expect(log.find('machine command failed')).toContainEqual(expect.objectContaining({ machineId: 'm-moved', code: 'FORBIDDEN' }));
    expect(await registry.getSingleMetricAsString('metal_bmc_commands_total')).toMatch(/command="OFF",outcome="error"} 1$/m);

    await part.stop(2000);
    await api.close();
    expect(sim.chassisLog().slice(before)).toContain('set power 1');
    expect(sim.chassisLog().slice(before)).not.toContain('set power 0');
    expect(log.text()).not.toContain(sim.password);
  });

  it('hands back a lifecycle event that arrives before the lease file was read, and runs it once the leases are known', async () => {
    const { ctx, log } = context(server.url);
    let leasesRead = false;
    // the lease file not read yet (a slow parse, a file briefly missing): no lease known for any BMC
    const leased = ctx.leaseAt;
    ctx.leaseAt = (ip) => (leasesRead ? leased(ip) : undefined);
    ctx.leasesRead = () => leasesRead;
    const { part, api, results } = await startedWithResults(ctx);
    const before = sim.chassisLog().length;
    // a machine freed while metal-bmc was down: PXE, then reset
    const event = { type: 'delete', old: 'm-early', cmd: { target: 'm-early', ipmi: { address: `${sim.host}:${sim.port}`, user: sim.user, password: sim.password, mac: SIM_BMC_MAC } } };
    api.publish('part-test-machine', new TextEncoder().encode(JSON.stringify(event)));
    await until('the hand-back', () => results.some((r) => r.machineId === 'm-early'));
    expect(results[0]).toMatchObject({ ok: false, code: 'UNAVAILABLE', handedBack: true, error: expect.stringMatching(/lease file has not been read yet/) });
    expect(results.some((r) => r.code === 'FORBIDDEN')).toBe(false);
    leasesRead = true;
    await until('the run', () => results.some((r) => r.machineId === 'm-early' && r.ok === true), 15_000);
    expect(sim.chassisLog().slice(before)).toContain('set boot pxe');
    expect(log.find('machine command failed')).toContainEqual(expect.objectContaining({ machineId: 'm-early', code: 'UNAVAILABLE' }));
    await part.stop(2000);
    await api.close();
  });

  it('stops promptly while NATS has never been reachable', async () => {
    const { ctx, log } = context(`nats://127.0.0.1:${await freeTcpPort()}`);
    const part = await commandsPart(ctx);
    // the first connection attempt has failed and the part keeps retrying
    await until('a failed connection attempt', () => log.find('cannot connect to NATS; retrying').length >= 1);
    expect(part.ready?.()).toBe('connecting to NATS');
    const started = Date.now();
    await part.stop(1000);
    // time is the subject (stop does not wait for NATS): a 1 s stop deadline, a 3 s bound for a loaded machine
    expect(Date.now() - started).toBeLessThan(3000);
  });
});
