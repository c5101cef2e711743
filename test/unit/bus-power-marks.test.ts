/**
 * A power step's mark for the other instances' firmware jobs (src/bus/power-marks.ts) and how the
 * claim view shows it (firmware-claim-view.ts powerElsewhere), on the in-memory bucket (kv.ts's
 * semantics, test/integration/bus-kv.test.ts). The runner's and the jobs' parts are in
 * commands-firmware-hold and commands-firmware-jobs.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createFirmwareClaimView } from '../../src/bus/firmware-claim-view.js';
import { claimKeys } from '../../src/bus/firmware-claims.js';
import { createPowerMarks, MAX_POWER_MARK_MS, parsePowerMark } from '../../src/bus/power-marks.js';
import { captureLog } from '../helpers/log.js';
import { createMemoryKv } from '../helpers/memory-kv.js';
import { waitFor } from '../helpers/wait.js';

const step = (machineKey: string, bmc: string, command = 'CYCLE', holdMs = 60_000) => ({ machineKey, bmc, command, holdMs });

describe('power step marks', () => {
  it("another instance's power step is seen on its machine and on its BMC under any machine key until its mark is deleted; this process's own are not in the view", async () => {
    const store = createMemoryKv('metal-bmc-p-firmware');
    const theirs = createPowerMarks({ kv: store.client(), instanceId: 'mgmt-b', logger: captureLog().logger });
    const mine = createPowerMarks({ kv: store.client(), instanceId: 'mgmt-a', logger: captureLog().logger });
    const view = createFirmwareClaimView({ kv: store.client(), isOwn: () => false, isOwnMark: mine.isOwn, logger: captureLog().logger });
    await view.start();
    const unmark = await theirs.mark(step('m-1', '10.0.0.1:623'));
    const ownUnmark = await mine.mark(step('m-2', '10.0.0.2:623', 'RESET'));
    expect(await view.caughtUp(5000)).toBe(true);
    expect(view.powerElsewhere({ machineKey: 'm-1', bmc: '' })).toMatchObject({ mark: { instance: 'mgmt-b', command: 'CYCLE' } });
    expect(view.powerElsewhere({ machineKey: 'bmc:10.0.0.1:623', bmc: '10.0.0.1:623' })).toMatchObject({ mark: { instance: 'mgmt-b' } });
    expect(view.powerElsewhere({ machineKey: 'm-2', bmc: '10.0.0.2:623' })).toBeUndefined();
    // a mark is no claim: no firmware job is held for it
    expect(view.heldElsewhere({ machineKey: 'm-1', bmc: '10.0.0.1:623' })).toBeUndefined();
    const ended = view.powerElsewhere({ machineKey: 'm-1', bmc: '' })!.ended;
    await unmark!();
    await ended;
    expect(view.powerElsewhere({ machineKey: 'm-1', bmc: '10.0.0.1:623' })).toBeUndefined();
    expect([...store.entries().values()].filter((e) => !e.deleted)).toHaveLength(1); // the own one, still there
    await ownUnmark!();
    view.close();
  });

  it('a mark left by an instance that died mid-step counts its hold after the server stored it, not longer; one that cannot be written lets the step run, said once', async () => {
    const t = { clock: 7_000_000 };
    const store = createMemoryKv('metal-bmc-p-firmware', () => t.clock);
    const log = captureLog();
    const theirs = createPowerMarks({ kv: store.client(), instanceId: 'mgmt-b', logger: log.logger });
    await theirs.mark(step('m-1', '', 'RESET', 60_000)); // never deleted
    const viewAt = async (ago: number) => {
      const clock = t.clock + ago;
      const view = createFirmwareClaimView({ kv: store.client(), isOwn: () => false, logger: captureLog().logger, serverNow: () => clock });
      await view.start();
      const seen = view.powerElsewhere({ machineKey: 'm-1', bmc: '' })?.mark.command;
      view.close();
      return seen;
    };
    expect(await viewAt(59_000)).toBe('RESET');
    expect(await viewAt(61_000)).toBeUndefined();
    // seen with some hold left: ends by itself at the end of it
    const view = createFirmwareClaimView({ kv: store.client(), isOwn: () => false, logger: captureLog().logger, serverNow: () => t.clock + 59_950 });
    await view.start();
    await view.powerElsewhere({ machineKey: 'm-1', bmc: '' })!.ended;
    expect(view.powerElsewhere({ machineKey: 'm-1', bmc: '' })).toBeUndefined();
    view.close();

    const down = store.client();
    down.down = true;
    const cut = createPowerMarks({ kv: down, instanceId: 'mgmt-c', logger: log.logger });
    expect(await cut.mark(step('m-3', ''))).toBeUndefined();
    expect(await cut.mark(step('m-4', ''))).toBeUndefined();
    // a burst with NATS away says it once a minute
    expect(log.find("cannot tell the other instances' firmware jobs about a power step (NATS away?); the step runs (said at most once a minute)")).toHaveLength(1);
  });

  it('a mark whose write does not land in time lets the step run and is deleted once it lands after the step; each machine of an instance keeps one key', async () => {
    const store = createMemoryKv('metal-bmc-p-firmware');
    const client = store.client();
    let land!: () => void;
    const slow = { ...client, put: async (key: string, value: Uint8Array) => (await new Promise<void>((resolve) => (land = resolve)), client.put(key, value)) };
    const log = captureLog();
    const marks = createPowerMarks({ kv: slow, instanceId: 'mgmt-a', logger: log.logger, writeWithinMs: 20 });
    const unmark = await marks.mark(step('m-1', ''));
    expect(unmark).toBeDefined();
    expect(log.find(/^a power step's mark for the other instances' firmware jobs was not written in time/)).toHaveLength(1);
    await unmark!(); // the step ended before its mark landed
    land();
    await waitFor(() => [...store.entries().values()].some((e) => e.deleted), 5000, 'the late mark deleted');
    expect([...store.entries().values()].filter((e) => !e.deleted)).toHaveLength(0);

    // steps one after another on one machine write one key again; another machine has its own
    const fast = createPowerMarks({ kv: client, instanceId: 'mgmt-a', logger: log.logger });
    for (const machine of ['m-2', 'm-2', 'm-3']) await (await fast.mark(step(machine, '')))!();
    await waitFor(() => [...store.entries().values()].every((e) => e.deleted), 5000, 'all deleted');
    expect(store.entries().size).toBe(3);
  });

  it("a step of a restarted instance writes the crashed process's key again: the view times the new mark from its own write, not the old one's", async () => {
    const store = createMemoryKv('metal-bmc-p-firmware');
    const view = createFirmwareClaimView({ kv: store.client(), isOwn: () => false, logger: captureLog().logger });
    await view.start();
    const crashed = createPowerMarks({ kv: store.client(), instanceId: 'mgmt-b', logger: captureLog().logger });
    await crashed.mark(step('m-1', '', 'CYCLE', 300)); // never deleted: its process died
    expect(await view.caughtUp(5000)).toBe(true);
    const first = view.powerElsewhere({ machineKey: 'm-1', bmc: '' })!;
    const restarted = createPowerMarks({ kv: store.client(), instanceId: 'mgmt-b', logger: captureLog().logger });
    const unmark = await restarted.mark(step('m-1', '', 'RESET', 60_000));
    // the old mark ends (replaced), the new one counts on past the old one's 300 ms
    await first.ended;
    expect(view.powerElsewhere({ machineKey: 'm-1', bmc: '' })).toMatchObject({ mark: { command: 'RESET', holdMs: 60_000 } });
    await unmark!();
    view.close();
  });

  it('parsePowerMark: any bytes give a mark or undefined, never a throw; a mark it wrote reads back, its hold bounded', async () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2048 }), (bytes) => {
        const v = parsePowerMark(bytes);
        expect(v === undefined || (v.holdMs > 0 && v.holdMs <= MAX_POWER_MARK_MS)).toBe(true);
      }),
    );
    fc.assert(
      fc.property(fc.record({ instance: fc.string({ maxLength: 64 }), token: fc.string({ maxLength: 16 }), machine: fc.string({ maxLength: 64 }), bmc: fc.string({ maxLength: 64 }), command: fc.constantFrom('ON', 'OFF', 'RESET', 'CYCLE', 'delete'), holdMs: fc.integer({ min: 1, max: 10 * MAX_POWER_MARK_MS }) }), (v) => {
        expect(parsePowerMark(Buffer.from(JSON.stringify(v)))).toEqual({ ...v, holdMs: Math.min(v.holdMs, MAX_POWER_MARK_MS) });
      }),
    );
    for (const holdMs of [0, -1, 'long', null]) expect(parsePowerMark(Buffer.from(JSON.stringify({ instance: 'a', token: 't', machine: 'machine.x', bmc: '', command: 'ON', holdMs })))).toBeUndefined();
    // written by createPowerMarks: the machine and BMC by their claim keys
    const store = createMemoryKv();
    const unmark = await createPowerMarks({ kv: store.client(), instanceId: 'mgmt-a', logger: captureLog().logger }).mark(step('m-1', '10.0.0.1:623'));
    const [entry] = store.entries().values();
    expect(entry!.key).toMatch(/^power\.mgmt-a\.[A-Za-z0-9_-]{43}$/);
    expect(parsePowerMark(entry!.value)).toMatchObject({ machine: claimKeys({ machineKey: 'm-1', bmc: '' })[0], bmc: claimKeys({ machineKey: 'm-1', bmc: '10.0.0.1:623' })[1], command: 'CYCLE', holdMs: 60_000 });
    await unmark!();
    await waitFor(() => entry !== undefined && store.entries().get(entry.key)!.deleted, 5000, 'deleted');
  });
});
