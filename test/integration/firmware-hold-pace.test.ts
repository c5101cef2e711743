/**
 * The pace of a hold after an outcome unknown (src/commands/firmware-jobs.ts HOLD_POLL_MS) against
 * the simulated fleet's Redfish service, through the facade's watchFirmware and the real task poll:
 * a hold lasts up to 4 hours, and a task polled every 2 s would be ~7,200 requests to a BMC busy
 * flashing. The job's pace is kept for `holdJobPaceMs` (2 minutes; 1 ms here, so that a short hold
 * shows the slower pace alone), then the task is read every 15 s. The simulator counts the task
 * reads it answered; no clock is read by the test.
 */
import { afterAll, beforeAll, expect } from 'vitest';
import type { Plan } from '../../src/commands/event.js';
import { createFirmwareJobs, HOLD_POLL_MS, type FirmwareEvent } from '../../src/commands/firmware-jobs.js';
import type { ConnectBmc } from '../../src/commands/runner.js';
import { connectOutband } from '../../src/outband/connect.js';
import type { Fleet } from '../../src/sim/fleet.js';
import { startImageServer } from '../helpers/firmware.js';
import { startTestFleet } from '../helpers/fleet.js';
import { captureLog } from '../helpers/log.js';
import { withPeers } from '../helpers/peers.js';
import { waitFor } from '../helpers/wait.js';

const { describe, it } = withPeers('openssl');

let fleet: Fleet;
let images: Awaited<ReturnType<typeof startImageServer>>;

beforeAll(async () => {
  fleet = await startTestFleet({ count: 2, variants: ['lenovo'] });
  images = await startImageServer();
});
afterAll(async () => {
  await images?.close();
  await fleet?.close();
});

/** the task reads the simulated BMCs answered so far (a Task, or its monitor) */
const taskReads = (): number => (fleet.redfish!.requests.byRoute['GET task'] ?? 0) + (fleet.redfish!.requests.byRoute['GET task monitor'] ?? 0);

describe('a hold after an outcome unknown', () => {
  it('reads the BMC task every HOLD_POLL_MS (15 s) once past the job pace: one read in a 6 s hold, then one for the look at its end', async () => {
    const i = 0;
    // the BIOS flash outlasts the job's deadline and the hold
    fleet.setFaults([i], { firmwareTaskMs: 120_000 });
    const m = fleet.machines[i]!.state;
    const p: Plan = {
      machineId: 'machine-0',
      key: 'machine-0',
      type: 'command',
      command: 'UPDATE-FIRMWARE',
      ipmi: { address: `${m.address}:${fleet.ipmiPort}`, host: m.address, port: fleet.ipmiPort, user: fleet.user, password: fleet.password },
      actions: [{ kind: 'firmware', firmware: 'bios', url: `${images.base}/bios-2.0.bin` }],
    };
    const connect: ConnectBmc = (ipmi, { signal, onAnswer }) =>
      connectOutband({ host: ipmi.host, user: fleet.user, password: fleet.password, ipmiPort: fleet.ipmiPort, redfishPort: fleet.redfishPort, timeoutMs: 5000, signal, ...(onAnswer ? { onAnswer } : {}) });
    const events: FirmwareEvent[] = [];
    /** task reads when the job ended outcome unknown (its hold began) and when the hold was extended (after the look at its end) */
    const readsAt: Partial<Record<'failed' | 'held', number>> = {};
    const publish = (e: FirmwareEvent): void => {
      events.push(e);
      if (e.phase === 'failed' || e.phase === 'held') readsAt[e.phase] ??= taskReads();
    };
    const jobs = createFirmwareJobs({ connect, timeoutMs: 4000, outcomeUnknownHoldMs: 6000, holdJobPaceMs: 1, logger: captureLog().logger, publish });
    try {
      expect((await jobs.start(p)).accepted).toBe(true);
      await waitFor(() => events.some((e) => e.phase === 'held' || e.phase === 'settled' || e.phase === 'released' || e.phase === 'completed'), 30_000, 'the hold extended', 25);
      expect(events.find((e) => e.phase === 'failed')).toMatchObject({ code: 'OUTCOME_UNKNOWN', outcomeUnknown: true });
      expect(events.find((e) => e.phase === 'held')).toMatchObject({ outcomeUnknown: true, progress: { state: 'Running' } });
      // the hold's watch read the task once (the next read 15 s later, past the hold's 6 s); the look at its end once
      expect(readsAt.held! - readsAt.failed!).toBe(2);
      expect(HOLD_POLL_MS).toBeGreaterThan(6000);
    } finally {
      await jobs.stop(1000);
      fleet.clearFaults();
    }
  }, 60_000);
});
