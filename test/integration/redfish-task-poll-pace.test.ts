/**
 * The pace of a task poll, counted by the requests the simulated BMC saw (no wall-clock
 * assertions): a task monitor's 202 says `Retry-After: 1`, which is waited instead of a shorter
 * poll interval; a BMC that answers every request 503 (a BMC restarting into new firmware, its web
 * server up before its services) is asked at the unreachable pace only, and at the normal pace again
 * once it answers.
 */
import { afterAll, afterEach, beforeAll, expect } from 'vitest';
import { openRedfish, simpleUpdate, waitForTask, type RedfishClient } from '../../src/redfish/index.js';
import type { Fleet } from '../../src/sim/fleet.js';
import { startTestFleet } from '../helpers/fleet.js';
import { withPeers } from '../helpers/peers.js';

const { describe, it } = withPeers('openssl');

let fleet: Fleet;
let client: RedfishClient | undefined;

beforeAll(async () => {
  fleet = await startTestFleet({ count: 1, variants: ['lenovo'] });
});
afterAll(async () => {
  await fleet?.close();
});
afterEach(async () => {
  fleet.clearFaults();
  await client?.close();
  client = undefined;
});

/** A client of the machine without the transport's own retries: every poll is one request the BMC sees. */
async function connect(): Promise<RedfishClient> {
  const m = fleet.machines[0]!;
  client = await openRedfish({ host: m.state.address, port: fleet.redfishPort, user: fleet.user, password: fleet.password, insecure: true, retries: 0 });
  return client;
}

/** Starts a BIOS update task that runs `ms` and returns its task monitor. */
async function startTask(c: RedfishClient, ms: number): Promise<string> {
  fleet.machines[0]!.state.faults.firmwareTaskMs = ms;
  const { taskUri } = await simpleUpdate(c, 'http://images.example/bios-1.0.bin', { wait: false });
  expect(taskUri).toMatch(/\/Monitor$/);
  return taskUri!;
}

const seen = (): number => fleet.redfish!.requests.perMachine[0] ?? 0;

describe('task poll pace', () => {
  it("a task monitor's Retry-After (1 s) is waited instead of a 20 ms poll interval", async () => {
    const c = await connect();
    const monitor = await startTask(c, 2500);
    const before = seen();
    const task = await waitForTask(c, monitor, { pollMs: 20 });
    expect(task.state).toBe('Completed');
    // about 3 polls of a 2.5 s task at 1 s; at 20 ms it would have been over a hundred
    const polls = seen() - before;
    expect(polls).toBeGreaterThanOrEqual(2);
    expect(polls).toBeLessThanOrEqual(6);
  }, 20_000);

  it('a BMC answering 503 is polled at the unreachable pace, and at the normal pace again once it answers', async () => {
    const c = await connect();
    // the Task itself (no Retry-After), so that the normal pace is the 20 ms poll interval
    const taskPath = (await startTask(c, 5000)).replace(/\/Monitor$/, '');
    let outageStart = 0;
    let outageEnd: number | undefined;
    let ended: Promise<void> | undefined;
    const before = seen();
    const task = await waitForTask(c, taskPath, {
      pollMs: 20,
      unreachablePollMs: 700,
      onProgress: () => {
        if (ended !== undefined) return;
        // a 2 s outage from the first answer on
        outageStart = seen();
        fleet.setFaults([0], { redfishStatus: 503 });
        ended = new Promise((resolve) =>
          setTimeout(() => {
            outageEnd = seen();
            fleet.setFaults([0], { redfishStatus: null });
            resolve();
          }, 2000),
        );
      },
    });
    await ended;
    expect(task.state).toBe('Completed');
    expect(outageEnd).toBeDefined();
    expect(outageStart).toBeGreaterThan(before);
    // about 3 polls in 2 s at 700 ms; at 20 ms it would have been close to a hundred
    expect(outageEnd! - outageStart).toBeLessThanOrEqual(6);
    // the task ran on for about 3 s after the outage: polled every 20 ms again, not every 700 ms
    expect(seen() - outageEnd!).toBeGreaterThanOrEqual(15);
  }, 20_000);
});
