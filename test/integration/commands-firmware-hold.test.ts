/**
 * Power steps wait for a firmware update of their machine (runner.ts DURING_FIRMWARE_UPDATE), with
 * a real nats-server and the simulated fleet: the simulator's update task is made to run for
 * seconds (`firmwareTaskMs`), as a BIOS flash runs for minutes. A CYCLE during the update is
 * refused with a result naming the job and the host's power is untouched, a PXE still runs, and
 * a CYCLE after the update runs; a delete during the update sets PXE and resets the machine once
 * the update ended, past the command deadline, not before and not never. A firmware deadline that
 * passes while the BMC's task still runs holds the machine (outcome unknown) until the hold sees
 * the task complete, long before its 15-minute end, and publishes that end (`settled`).
 */
import type { NatsConnection } from '@nats-io/transport-node';
import { Registry } from 'prom-client';
import { expect } from 'vitest';
import { connectBus } from '../../src/bus/connection.js';
import { createCommandMetrics } from '../../src/commands/metrics.js';
import { connectOutband } from '../../src/outband/connect.js';
import { startCommandService } from '../../src/parts/commands.js';
import type { Fleet } from '../../src/sim/fleet.js';
import type { SimMachine } from '../../src/sim/machine.js';
import { commandPeers } from '../helpers/command-peers.js';
import { startImageServer } from '../helpers/firmware.js';
import { captureLog, type CapturedLog } from '../helpers/log.js';
import type { TestNatsServer } from '../helpers/nats-server.js';
import { withPeers } from '../helpers/peers.js';
import { waitFor } from '../helpers/wait.js';

const { describe, it } = withPeers('nats-server', 'openssl');

const enc = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));
const until = (what: string, check: () => boolean, ms = 30_000) => waitFor(check, ms, what, 25);

let fleet: Fleet;
let server: TestNatsServer;
let metalApi: NatsConnection;
let seq = 0;
const cleanup = commandPeers(12, (p) => ({ fleet, server, metalApi } = p));

type Result = Record<string, unknown> & { machineId: string; command: string; ok: boolean; phase?: string; code?: string; error?: string; dropped?: string; job?: { id: string; kind: string; acceptedAt: string } };

async function service(timeoutMs: number, firmwareTimeoutMs = 120_000): Promise<{ partition: string; log: CapturedLog; registry: Registry; results: Result[] }> {
  const partition = `fwhold${++seq}`;
  const log = captureLog();
  const registry = new Registry();
  const metrics = createCommandMetrics(registry);
  const results: Result[] = [];
  const sub = metalApi.subscribe(`${partition}-machine-result`, { callback: (_e, m) => void results.push(m.json<Result>()) });
  await metalApi.flush();
  const bus = await connectBus({ servers: [server.url], logger: log.logger, name: partition, metrics });
  const svc = await startCommandService({
    nc: bus.nc,
    subject: `${partition}-machine`,
    resultSubject: `${partition}-machine-result`,
    ttlMs: 60_000,
    durableName: `metal-bmc-${partition}`,
    connect: (ipmi, { signal }) => connectOutband({ host: ipmi.host, user: ipmi.user ?? '', password: ipmi.password ?? '', ipmiPort: ipmi.port, redfishPort: fleet.redfishPort, timeoutMs: 10_000, signal }),
    concurrency: 4,
    timeoutMs,
    logger: log.logger,
    metrics,
    firmware: { timeoutMs: firmwareTimeoutMs },
  });
  cleanup.push(async () => {
    await svc.stop(2000);
    await bus.close(1000);
    sub.unsubscribe();
  });
  return { partition, log, registry, results };
}

/** The Supermicro machine (its BIOS image is pushed by metal-bmc and flashed in a BMC task) and what changes on it, in order. */
function supermicro(): { machine: SimMachine; changes: string[] } {
  return machineOf('Supermicro');
}

/** The first machine of `manufacturer` and what changes on it, in order. */
function machineOf(manufacturer: string): { machine: SimMachine; changes: string[] } {
  const machine = fleet.machines.find((m) => m.state.manufacturer === manufacturer)!;
  expect(machine).toBeDefined();
  const changes: string[] = [];
  const onChange = (c: { kind: string; action?: string; boot?: string; target?: string }) => {
    if (c.kind === 'power') changes.push(`power ${c.action}`);
    else if (c.kind === 'boot') changes.push(`boot ${c.boot}`);
    else if (c.kind === 'firmware') changes.push(`firmware ${c.target}`);
  };
  machine.on('change', onChange);
  cleanup.push(async () => machine.off('change', onChange));
  return { machine, changes };
}

function ipmiOf(machine: SimMachine) {
  return { address: `${machine.state.address}:${fleet.ipmiPort}`, user: fleet.user, password: fleet.password, mac: machine.state.mac };
}

const command = (machine: SimMachine, id: string, cmd: string, extra: object = {}) => ({ type: 'command', cmd: { target: id, cmd, ipmi: ipmiOf(machine), ...extra } });

describe('power steps during a firmware update', () => {
  it('a CYCLE during the update is refused with a result naming the job, the power untouched; a PXE runs; a CYCLE after the update runs', async () => {
    const images = await startImageServer();
    cleanup.push(() => images.close());
    const { machine, changes } = supermicro();
    fleet.setFaults([machine.state.index], { firmwareTaskMs: 5000 });
    const { partition, results, registry, log } = await service(10_000);
    const publish = (body: unknown) => metalApi.publish(`${partition}-machine`, enc(body));
    const id = 'fw-hold-cycle';

    publish(command(machine, id, 'UPDATE-FIRMWARE', { firmwareupdate: { kind: 'bios', url: `${images.base}/bios-x11.bin` } }));
    await until('the BMC flashing', () => results.some((r) => r.phase === 'progress'));
    const job = results.find((r) => r.phase === 'accepted')!.job!;
    const power = machine.state.power;

    publish(command(machine, id, 'CYCLE'));
    publish(command(machine, id, 'PXE'));
    await until('both results', () => results.filter((r) => r.command === 'CYCLE' || r.command === 'PXE').length === 2);
    const refused = results.find((r) => r.command === 'CYCLE')!;
    expect(refused).toMatchObject({ ok: false, code: 'BUSY', dropped: 'firmware-update', durationMs: 0 });
    expect(refused.error).toBe(`CYCLE refused: firmware update job ${job.id} (bios) runs on this machine since ${job.acceptedAt}; power commands wait until the update ends (a power change during a flash can leave the board unbootable): send it again then; not executed`);
    expect(results.find((r) => r.command === 'PXE')).toMatchObject({ ok: true });
    // still flashing: the refusal came at once, not after the update
    expect(results.some((r) => r.phase === 'completed')).toBe(false);
    expect(changes.filter((c) => c.startsWith('power'))).toEqual([]);
    expect(machine.state.power).toBe(power);
    expect(changes).toContain('boot pxe');
    expect(await registry.getSingleMetricAsString('metal_bmc_events_refused_total')).toMatch(/reason="firmware-update"} 1$/m);
    expect(log.find(/^machine command refused: a firmware update runs on its machine or BMC/)).toHaveLength(1);

    await until('the update done', () => results.some((r) => r.phase === 'completed'));
    publish(command(machine, id, 'CYCLE'));
    await until('the second CYCLE', () => results.filter((r) => r.command === 'CYCLE').length === 2);
    expect(results.filter((r) => r.command === 'CYCLE')[1]).toMatchObject({ ok: true });
    expect(changes.filter((c) => c.startsWith('power'))).toHaveLength(1);
    expect(changes.indexOf('firmware bios')).toBeLessThan(changes.findIndex((c) => c.startsWith('power')));
  }, 60_000);

  it("a delete during the update sets PXE and resets the machine once the update ended, past the command deadline", async () => {
    const images = await startImageServer();
    cleanup.push(() => images.close());
    const { machine, changes } = supermicro();
    // the update runs twice as long as the command deadline: a hold inside it would end TIMEOUT
    fleet.setFaults([machine.state.index], { firmwareTaskMs: 4000 });
    const { partition, results, log } = await service(2000);
    const publish = (body: unknown) => metalApi.publish(`${partition}-machine`, enc(body));
    const id = 'fw-hold-delete';

    publish(command(machine, id, 'UPDATE-FIRMWARE', { firmwareupdate: { kind: 'bios', url: `${images.base}/bios-x11.bin` } }));
    await until('the BMC flashing', () => results.some((r) => r.phase === 'progress'));
    publish({ type: 'delete', old: id, cmd: { ipmi: ipmiOf(machine) } });
    await until('the delete done', () => results.some((r) => r.command === 'delete'), 60_000);
    expect(results.find((r) => r.command === 'delete')).toMatchObject({ ok: true });
    // the flash first, then the delete's PXE and RESET, nothing of it before
    expect(changes.slice(changes.indexOf('firmware bios'))).toEqual(['firmware bios', 'boot pxe', expect.stringMatching(/^power /)]);
    expect(changes.filter((c) => c !== 'firmware bios')).toHaveLength(2);
    expect(log.find('machine event held: its power step waits until the firmware update of its machine or BMC ends')).toHaveLength(1);
    expect(log.find('machine event held for a firmware update runs now')).toHaveLength(1);
  }, 60_000);
  it('a firmware deadline that passes while the BMC\'s task still runs ends OUTCOME_UNKNOWN and holds the machine (a CYCLE refused) until the task completes, before heldUntil', async () => {
    const images = await startImageServer();
    cleanup.push(() => images.close());
    // Lenovo: the image pushed at once (no staged verify task), then one task flashing it, here
    // for 8 s, past the job's 5 s deadline (a 20-minute iDRAC or XCC BIOS flash against METAL_BMC_FIRMWARE_TIMEOUT)
    const { machine, changes } = machineOf('Lenovo');
    fleet.setFaults([machine.state.index], { firmwareTaskMs: 8000 });
    const { partition, results, registry, log } = await service(10_000, 5000);
    const publish = (body: unknown) => metalApi.publish(`${partition}-machine`, enc(body));
    const id = 'fw-deadline-task-running';

    publish(command(machine, id, 'UPDATE-FIRMWARE', { firmwareupdate: { kind: 'bios', url: `${images.base}/bios-2.0.bin` } }));
    await until('the job ended', () => results.some((r) => r.phase === 'failed' || r.phase === 'completed'));
    const ended = results.find((r) => r.phase === 'failed')!;
    expect(ended).toMatchObject({ ok: false, code: 'OUTCOME_UNKNOWN', outcomeUnknown: true, heldUntil: expect.any(String) });
    expect(ended.error).toMatch(/^outcome unknown: the BMC's task \/redfish\/v1\/TaskService\/Tasks\/\d+\S* was still running at \d+% \(TaskState Running\) at the deadline; the machine stays held until the task ends/);
    const heldUntil = Date.parse(ended.heldUntil as string);
    expect(heldUntil).toBeGreaterThan(Date.now() + 60_000);
    expect(await registry.getSingleMetricAsString('metal_bmc_firmware_jobs_total')).toMatch(/outcome="outcome-unknown"} 1$/m);
    expect(log.find(/^firmware update outcome unknown; its machine stays held/)).toHaveLength(1);

    // held: the BMC still flashes, so a power command is refused
    publish(command(machine, id, 'CYCLE'));
    await until('the CYCLE refused', () => results.some((r) => r.command === 'CYCLE'));
    expect(results.find((r) => r.command === 'CYCLE')).toMatchObject({ ok: false, code: 'BUSY', dropped: 'firmware-update' });
    expect(changes.filter((c) => c.startsWith('power'))).toEqual([]);

    // the task completes in the BMC: the hold's watch sees it and frees the machine long before heldUntil
    const freed = "machine held after a firmware update of unknown outcome is free again: the BMC's update ended completed";
    await until('the machine freed', () => log.find(freed).length === 1, 45_000);
    expect(Date.now()).toBeLessThan(heldUntil);
    expect(changes).toContain('firmware bios');
    // and metal-api learns it: one `settled` result of the same job on the result subject, the machine free
    await until('the settled result', () => results.some((r) => r.phase === 'settled'));
    const settled = results.filter((r) => r.phase === 'settled');
    expect(settled).toEqual([expect.objectContaining({ ok: true, settledAs: 'completed', machineId: id, job: expect.objectContaining({ id: ended.job!.id }), progress: expect.objectContaining({ state: 'Completed' }) })]);
    expect(settled[0]!.heldUntil).toBeUndefined();
    expect(settled[0]!.detail).toMatch(/^Completed/);
    expect(await registry.getSingleMetricAsString('metal_bmc_firmware_jobs_total')).toMatch(/^metal_bmc_firmware_jobs_total\{outcome="outcome-unknown"} 1$/m);
    expect(await registry.getSingleMetricAsString('metal_bmc_firmware_jobs_total')).not.toMatch(/outcome="completed"/);
    publish(command(machine, id, 'CYCLE'));
    await until('the second CYCLE', () => results.filter((r) => r.command === 'CYCLE').length === 2);
    expect(results.filter((r) => r.command === 'CYCLE')[1]).toMatchObject({ ok: true });
  }, 90_000);
});
