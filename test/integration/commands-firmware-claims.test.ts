/**
 * One firmware update per machine across a partition's instances (src/bus/firmware-claims.ts as
 * the command service wires it): the leader accepts an UPDATE-FIRMWARE, loses NATS while the
 * update runs on (a flash is not cut off), and the instance that leads next refuses a second
 * update for the same machine, or for its BMC under another machine key, naming the first job;
 * events over a real nats-server, the BMC a stand-in whose update the test finishes.
 */
import { jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import { afterAll, afterEach, beforeAll, expect } from 'vitest';
import { connectBus, type BusConnection } from '../../src/bus/connection.js';
import { createFirmwareClaims, firmwareBucketName } from '../../src/bus/firmware-claims.js';
import { openKvBucket } from '../../src/bus/kv.js';
import type { FirmwareEvent } from '../../src/commands/firmware-jobs.js';
import type { CommandResult, ConnectBmc } from '../../src/commands/runner.js';
import type { Outband } from '../../src/outband/types.js';
import { startCommandService, type CommandService } from '../../src/parts/commands.js';
import { captureLog, type CapturedLog } from '../helpers/log.js';
import { startTestNatsServer, type TestNatsServer } from '../helpers/nats-server.js';
import { withPeers } from '../helpers/peers.js';
import { waitFor } from '../helpers/wait.js';

const { describe, it } = withPeers('nats-server');

const enc = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));
const LEASE = 2000;

let server: TestNatsServer;
let metalApi: NatsConnection;
const cleanup: Array<() => Promise<unknown>> = [];
beforeAll(async () => {
  server = await startTestNatsServer({ jetstream: true });
  metalApi = await connect({ servers: server.url, maxReconnectAttempts: -1, reconnectTimeWait: 100 });
});
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c().catch(() => undefined);
});
afterAll(async () => {
  await metalApi?.close();
  await server?.dispose();
});

/** BMC stand-ins: an update runs until the test finishes it */
function bmcs() {
  const updating = new Map<string, () => void>();
  const connect: ConnectBmc = async (ipmi) =>
    ({
      address: ipmi.host,
      vendor: 'fake',
      updateFirmware: () => new Promise<void>((resolve) => updating.set(ipmi.host, resolve)),
      close: async () => undefined,
    }) as unknown as Outband;
  return { updating, connect };
}

interface Instance {
  service: CommandService;
  bus: BusConnection;
  log: CapturedLog;
}

/** `leader: false`: METAL_BMC_COMMAND_LEADER_LEASE=0, every instance takes events */
async function instance(partition: string, instanceId: string, connectBmc: ConnectBmc, o: { leader?: boolean } = {}): Promise<Instance> {
  const log = captureLog();
  const bus = await connectBus({ servers: [server.url], logger: log.logger, name: `metal-bmc-${partition}`, reconnectTimeWaitMs: 200 });
  const service = await startCommandService({
    nc: bus.nc,
    subject: `${partition}-machine`,
    resultSubject: `${partition}-machine-result`,
    ttlMs: 30_000,
    durableName: `metal-bmc-${partition}`,
    instanceId,
    ...(o.leader === false ? {} : { leader: { instanceId, leaseMs: LEASE } }),
    connect: connectBmc,
    concurrency: 4,
    timeoutMs: 10_000,
    logger: log.logger,
    firmware: { timeoutMs: 60_000 },
  });
  cleanup.push(async () => {
    await service.stop(1000);
    await bus.close(1000);
  });
  return { service, bus, log };
}

async function results(partition: string): Promise<FirmwareEvent[]> {
  const seen: FirmwareEvent[] = [];
  const sub: Subscription = metalApi.subscribe(`${partition}-machine-result`, { callback: (_err, m) => void seen.push(m.json<FirmwareEvent>()) });
  await metalApi.flush();
  cleanup.push(async () => sub.unsubscribe());
  return seen;
}

function update(machine: string, bmc: string, kind: 'bios' | 'bmc' = 'bios') {
  return { type: 'command', cmd: { target: machine, cmd: 'UPDATE-FIRMWARE', firmwareupdate: { kind, url: `https://images.example/${kind}.bin` }, ipmi: { address: bmc, user: 'ADMIN', password: 'secret-pw', interface: 'lanplus', mac: 'ac:1f:6b:35:ac:62' } } };
}

describe('firmware updates across instances', () => {
  it('the next leader refuses a second update for a machine, or its BMC, whose update runs on the old leader; accepts once it ended', async () => {
    const p = 'fwc1';
    const fleet = bmcs();
    const a = await instance(p, 'mgmt-a', fleet.connect);
    const b = await instance(p, 'mgmt-b', fleet.connect);
    expect([a.service.subscription.leading(), b.service.subscription.leading()]).toEqual([true, false]);
    const seen = await results(p);
    metalApi.publish(`${p}-machine`, enc(update('m-1', '127.0.0.9:623')));
    await waitFor(() => fleet.updating.has('127.0.0.9'), 10_000, 'the update running on mgmt-a');
    // the result event travels over NATS to metal-api's connection: it may land after the update started
    await waitFor(() => seen.length > 0, 10_000, 'the accepted event');
    expect(seen.map((e) => e.phase)).toEqual(['accepted']);
    const first = seen[0]!.job!.id;

    // mgmt-a loses NATS; its update runs on; mgmt-b leads after the lease
    await a.bus.close(0);
    await waitFor(() => b.service.subscription.leading(), 4 * LEASE, 'mgmt-b leading');
    metalApi.publish(`${p}-machine`, enc(update('m-1', '127.0.0.9:623')));
    // the same BMC under another machine key (an event that names only the BMC)
    metalApi.publish(`${p}-machine`, enc(update('', '127.0.0.9:623')));
    await waitFor(() => seen.filter((e) => e.phase === 'refused').length === 2, 10_000, 'both refused');
    for (const refused of seen.filter((e) => e.phase === 'refused')) {
      expect(refused).toMatchObject({ ok: false, code: 'BUSY' });
      expect(refused.error).toMatch(new RegExp(`still running for this machine or its BMC 127\\.0\\.0\\.9:623 on another instance: job ${first} \\(bios\\) on instance mgmt-a, renewed \\d+ s ago`));
    }
    expect(b.log.find(/^UPDATE-FIRMWARE refused: a firmware update is still running for this machine or its BMC 127\.0\.0\.9:623 on another instance: job /)).toHaveLength(2);
    expect(fleet.updating.size).toBe(1); // no second update reached the BMC

    // mgmt-a's update ends: without NATS its claim cannot be deleted, and turns stale after its
    // lease (90 s; the takeover of a stale claim is in test/unit/bus-firmware-claims.test.ts)
    fleet.updating.get('127.0.0.9')!();
    await waitFor(() => a.service.firmware!.running() === 0, 10_000, "mgmt-a's job ended");
    expect(a.log.find('cannot delete a firmware claim (NATS away?); tried again every renewal period, meanwhile other instances hold its machine')).toHaveLength(2);
  });

  it('without a leader (lease 0) a bmc update for a machine whose bios update runs on another instance is refused, not flashed at once', async () => {
    const p = 'fwc3';
    // a BMC stand-in counting the updates it got; each runs until the test finishes it
    let updates = 0;
    const running: Array<() => void> = [];
    const counting: ConnectBmc = async (ipmi) => ({ address: ipmi.host, vendor: 'fake', updateFirmware: () => (updates++, new Promise<void>((resolve) => running.push(resolve))), close: async () => undefined }) as unknown as Outband;
    const a = await instance(p, 'mgmt-a', counting, { leader: false });
    const seen = await results(p);
    metalApi.publish(`${p}-machine`, enc(update('m-1', '127.0.0.11:623', 'bios')));
    await waitFor(() => updates === 1, 10_000, 'the bios update running on mgmt-a');
    // mgmt-a loses NATS (its update runs on): the next event can only reach mgmt-b
    await a.bus.close(0);
    const b = await instance(p, 'mgmt-b', counting, { leader: false });
    expect(b.service.subscription.leading()).toBe(true);
    metalApi.publish(`${p}-machine`, enc(update('m-1', '127.0.0.11:623', 'bmc')));
    await waitFor(() => seen.some((e) => e.phase === 'refused'), 10_000, 'the bmc update refused');
    expect(seen.find((e) => e.phase === 'refused')).toMatchObject({ ok: false, code: 'BUSY', error: expect.stringMatching(/on another instance: job .* \(bios\) on instance mgmt-a/) });
    expect(updates).toBe(1);
    for (const finish of running) finish();
  });

  it('an update that ended on its instance frees the machine for the next one at once', async () => {
    const p = 'fwc2';
    const fleet = bmcs();
    const a = await instance(p, 'mgmt-a', fleet.connect);
    const seen = await results(p);
    metalApi.publish(`${p}-machine`, enc(update('m-1', '127.0.0.10:623')));
    await waitFor(() => fleet.updating.has('127.0.0.10'), 10_000, 'the update running');
    fleet.updating.get('127.0.0.10')!();
    await waitFor(() => seen.some((e) => e.phase === 'completed'), 10_000, 'completed');
    await waitFor(() => a.service.firmware!.running() === 0, 10_000, 'the job ended, its claim released');
    // another instance accepts the next update for the same machine at once
    await a.service.stop(1000);
    const b = await instance(p, 'mgmt-b', fleet.connect);
    await waitFor(() => b.service.subscription.leading(), 4 * LEASE, 'mgmt-b leading');
    metalApi.publish(`${p}-machine`, enc(update('m-1', '127.0.0.10:623')));
    await waitFor(() => seen.filter((e) => e.phase === 'accepted').length === 2, 10_000, 'the second accepted');
    expect(seen.filter((e) => e.phase === 'refused')).toEqual([]);
    await waitFor(() => fleet.updating.has('127.0.0.10'), 10_000, 'the second update running');
    fleet.updating.get('127.0.0.10')!();
  });

  it("a power command reaching an instance while another instance's update runs on the machine or its BMC is refused; a delete waits until that update's claim is gone", async () => {
    const p = 'fwc4';
    // the other instance's running update, as the partition sees it: its claims in `<durable>-firmware`
    const otherLog = captureLog();
    const kv = await openKvBucket(metalApi, await jetstreamManager(metalApi), firmwareBucketName(`metal-bmc-${p}`));
    const other = createFirmwareClaims({ kv, instanceId: 'mgmt-a', logger: otherLog.logger });
    cleanup.push(async () => other.close());
    const since = '2026-12-07T01:00:00.000Z';
    const onMachine = await other.claim({ jobId: 'job-m1', kind: 'bios', machineKey: 'm-1', bmc: '127.0.0.12:623', since });
    const onBmc = await other.claim({ jobId: 'job-m2', kind: 'bmc', machineKey: 'm-2', bmc: '127.0.0.13:623', since });
    if (!('held' in onMachine) || !('held' in onBmc)) throw new Error('the claims were not taken');

    // BMC stand-ins recording what reaches them
    const calls: string[] = [];
    const recording: ConnectBmc = async (ipmi) =>
      ({
        address: ipmi.host,
        vendor: 'fake',
        powerReset: async () => void calls.push(`reset ${ipmi.host}`),
        powerCycle: async () => void calls.push(`cycle ${ipmi.host}`),
        bootFrom: async (device: string) => void calls.push(`boot ${device} ${ipmi.host}`),
        close: async () => undefined,
      }) as unknown as Outband;
    const b = await instance(p, 'mgmt-b', recording, { leader: false });
    const seen: CommandResult[] = [];
    const sub = metalApi.subscribe(`${p}-machine-result`, { callback: (_err, m) => void seen.push(m.json<CommandResult>()) });
    await metalApi.flush();
    cleanup.push(async () => sub.unsubscribe());
    const ipmi = (address: string) => ({ address, user: 'ADMIN', password: 'secret-pw', interface: 'lanplus', mac: 'ac:1f:6b:35:ac:62' });

    // the machine under update, and another machine key on the BMC under update
    metalApi.publish(`${p}-machine`, enc({ type: 'command', cmd: { target: 'm-1', cmd: 'RESET', ipmi: ipmi('127.0.0.12:623') } }));
    metalApi.publish(`${p}-machine`, enc({ type: 'command', cmd: { target: 'm-2-other', cmd: 'CYCLE', ipmi: ipmi('127.0.0.13:623') } }));
    await waitFor(() => seen.length === 2, 10_000, 'both commands settled');
    expect(seen).toEqual([
      expect.objectContaining({ command: 'RESET', ok: false, code: 'BUSY', dropped: 'firmware-update', error: expect.stringMatching(/^RESET refused: firmware update job job-m1 \(bios\) \(on instance mgmt-a\) runs on this machine since 2026-12-07T01:00:00\.000Z; power commands wait until the update ends/) }),
      expect.objectContaining({ command: 'CYCLE', ok: false, code: 'BUSY', dropped: 'firmware-update', error: expect.stringMatching(/^CYCLE refused: firmware update job job-m2 \(bmc\) \(on instance mgmt-a\) runs on this machine's BMC 127\.0\.0\.13:623 since /) }),
    ]);
    expect(calls).toEqual([]);
    // the boot device is no power change: set at once
    metalApi.publish(`${p}-machine`, enc({ type: 'command', cmd: { target: 'm-1', cmd: 'PXE', ipmi: ipmi('127.0.0.12:623') } }));
    await waitFor(() => seen.length === 3, 10_000, 'PXE settled');
    expect(seen[2]).toMatchObject({ command: 'PXE', ok: true });

    // a delete of the machine waits for the update, then sets PXE and resets it
    metalApi.publish(`${p}-machine`, enc({ type: 'delete', old: 'm-1', cmd: { ipmi: ipmi('127.0.0.12:623') } }));
    await waitFor(() => b.log.find('machine event held: its power step waits until the firmware update of its machine or BMC ends').length === 1, 10_000, 'the delete held');
    expect(calls).toEqual(['boot PXE 127.0.0.12']);
    await onMachine.held.release();
    await waitFor(() => seen.some((r) => r.command === 'delete'), 10_000, 'the delete done');
    expect(seen.find((r) => r.command === 'delete')).toMatchObject({ ok: true });
    expect(calls).toEqual(['boot PXE 127.0.0.12', 'boot PXE 127.0.0.12', 'reset 127.0.0.12']);

    // once the other update ended, power commands run
    await onBmc.held.release();
    // the watch tells the claim's delete within milliseconds: a CYCLE sent until one runs
    const cycles = () => seen.filter((r) => r.command === 'CYCLE');
    await waitFor(async () => {
      const before = cycles().length;
      metalApi.publish(`${p}-machine`, enc({ type: 'command', cmd: { target: 'm-2-other', cmd: 'CYCLE', ipmi: ipmi('127.0.0.13:623') } }));
      await waitFor(() => cycles().length > before, 10_000, 'the CYCLE settled');
      return cycles().at(-1)!.ok;
    }, 10_000, 'a CYCLE run once the claim is gone');
    expect(calls.at(-1)).toBe('cycle 127.0.0.13');
  });

  it('an update for a machine whose power command is running begins only once that command ended; a power command after it is refused', async () => {
    const p = 'fwc5';
    const calls: string[] = [];
    let endCycle!: () => void;
    const cycling = new Promise<void>((resolve) => (endCycle = resolve));
    const updating: Array<() => void> = [];
    const stand: ConnectBmc = async (ipmi) =>
      ({
        address: ipmi.host,
        vendor: 'fake',
        powerCycle: async () => {
          calls.push('cycle begins');
          await cycling;
          calls.push('cycle ends');
        },
        powerReset: async () => void calls.push('reset'),
        updateFirmware: () => (calls.push('update begins'), new Promise<void>((resolve) => updating.push(resolve))),
        close: async () => undefined,
      }) as unknown as Outband;
    const a = await instance(p, 'mgmt-a', stand);
    const seen: Array<CommandResult | FirmwareEvent> = [];
    const sub = metalApi.subscribe(`${p}-machine-result`, { callback: (_err, m) => void seen.push(m.json<CommandResult>()) });
    await metalApi.flush();
    cleanup.push(async () => sub.unsubscribe());
    const ipmi = { address: '127.0.0.14:623', user: 'ADMIN', password: 'secret-pw', interface: 'lanplus', mac: 'ac:1f:6b:35:ac:62' };

    metalApi.publish(`${p}-machine`, enc({ type: 'command', cmd: { target: 'm-1', cmd: 'CYCLE', ipmi } }));
    await waitFor(() => calls.includes('cycle begins'), 10_000, 'the CYCLE running');
    metalApi.publish(`${p}-machine`, enc(update('m-1', '127.0.0.14:623')));
    await waitFor(() => a.log.find('firmware update waits for the power command running on its machine to end').length === 1, 10_000, 'the update waiting');
    // accepted (power commands from here on are held by it), but nothing sent to the BMC yet
    expect(calls).toEqual(['cycle begins']);
    metalApi.publish(`${p}-machine`, enc({ type: 'command', cmd: { target: 'm-1', cmd: 'RESET', ipmi } }));
    await waitFor(() => seen.some((r) => r.command === 'RESET'), 10_000, 'the RESET settled');
    expect(seen.find((r) => r.command === 'RESET')).toMatchObject({ ok: false, code: 'BUSY', dropped: 'firmware-update' });
    endCycle();
    await waitFor(() => calls.includes('update begins'), 10_000, 'the update begun');
    expect(calls).toEqual(['cycle begins', 'cycle ends', 'update begins']);
    updating[0]!();
    await waitFor(() => seen.some((r) => (r as FirmwareEvent).phase === 'completed'), 10_000, 'the update completed');
  });
  it("an update another instance accepts while this one's CYCLE runs on the machine begins only once that CYCLE ended (its power step's mark)", async () => {
    const p = 'fwc6';
    const calls: string[] = [];
    let endCycle!: () => void;
    let endUpdate: (() => void) | undefined;
    const cycling = new Promise<void>((resolve) => (endCycle = resolve));
    const stand =
      (instanceId: string): ConnectBmc =>
      async (ipmi) =>
        ({
          address: ipmi.host,
          vendor: 'fake',
          powerCycle: async () => {
            calls.push(`${instanceId}: cycle begins`);
            await cycling;
            calls.push(`${instanceId}: cycle ends`);
          },
          updateFirmware: () => (calls.push(`${instanceId}: update begins`), new Promise<void>((resolve) => (endUpdate = resolve))),
          close: async () => undefined,
        }) as unknown as Outband;
    // without a leader (lease 0) each instance takes events; mgmt-a alone takes the CYCLE, mgmt-b alone the update
    const a = await instance(p, 'mgmt-a', stand('mgmt-a'), { leader: false });
    const ipmi = { address: '127.0.0.15:623', user: 'ADMIN', password: 'secret-pw', interface: 'lanplus', mac: 'ac:1f:6b:35:ac:62' };
    metalApi.publish(`${p}-machine`, enc({ type: 'command', cmd: { target: 'm-1', cmd: 'CYCLE', ipmi } }));
    await waitFor(() => calls.includes('mgmt-a: cycle begins'), 10_000, 'the CYCLE running on mgmt-a');
    const b = await instance(p, 'mgmt-b', stand('mgmt-b'), { leader: false });
    // mgmt-a takes no more events; its CYCLE runs on
    await a.service.subscription.stop(0);
    metalApi.publish(`${p}-machine`, enc(update('m-1', '127.0.0.15:623')));
    await waitFor(() => b.log.find('firmware update waits for the power command another instance runs on its machine to end').length === 1, 10_000, "the update waiting for mgmt-a's CYCLE");
    expect(b.log.find('firmware update waits for the power command another instance runs on its machine to end')[0]).toMatchObject({ command: 'CYCLE', instance: 'mgmt-a' });
    expect(calls).toEqual(['mgmt-a: cycle begins']);
    endCycle();
    await waitFor(() => calls.includes('mgmt-b: update begins'), 10_000, 'the update begun');
    expect(calls).toEqual(['mgmt-a: cycle begins', 'mgmt-a: cycle ends', 'mgmt-b: update begins']);
    endUpdate!();
    await waitFor(() => b.service.firmware!.running() === 0, 10_000, 'the update ended');
  });
});
