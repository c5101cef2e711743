/**
 * A report cycle's limit starts where the last cycle's settled (the limit when its last BMC was
 * started), instead of climbing again from 16 with the loop mostly idle; an aborted cycle leaves
 * the memory as it was. The caller's signal carries one listener per cycle, not one per read.
 */
import { getEventListeners } from 'node:events';
import { afterEach, describe, expect, it } from 'vitest';
import { createMetalApiClient } from '../../src/metalapi/client.js';
import { startMetalApiStandIn, type MetalApiStandIn } from '../../src/metalapi/standin.js';
import type { BmcReport, Outband } from '../../src/outband/types.js';
import { createLimitMemory, forEachAdaptive } from '../../src/report/adaptive-limit.js';
import { runReportCycle, type CycleDeps } from '../../src/report/cycle.js';
import { captureLog } from '../helpers/log.js';
import { waitFor } from '../helpers/wait.js';

let standin: MetalApiStandIn | undefined;
afterEach(async () => {
  await standin?.close();
  standin = undefined;
});

const leasesOf = (n: number) => Array.from({ length: n }, (_, i) => ({ ip: `10.1.${i >> 8}.${i & 255}`, mac: `aa:bb:cc:01:${(i >> 8).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}`, expires: 'never' as const }));
const reportOf = (i: number): BmcReport => ({ uuid: `00000000-0000-4000-8000-${i.toString(16).padStart(12, '0')}`, bmcVersion: '1.0', biosVersion: '', fru: {}, powerState: 'ON', indicatorLED: 'LED-OFF', powerSupplies: [], source: 'ipmi', missing: [] });

/** BMCs whose reads all wait for `release`: how many are in flight at once shows the limit the cycle started with */
function heldFleet() {
  let inFlight = 0;
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const connect = async (ip: string): Promise<Outband> => {
    inFlight++;
    return {
      address: ip,
      vendor: 'test',
      info: async () => {
        await gate;
        return reportOf(Number(ip.split('.')[3]) + 256 * Number(ip.split('.')[2]));
      },
      close: async () => undefined,
    } as unknown as Outband;
  };
  return { connect, inFlight: () => inFlight, release: () => release() };
}

describe('limit memory', () => {
  it('the trace tells the limit at which the last item was started', async () => {
    // no sample within the run: the limit stays where it started
    const trace = await forEachAdaptive(Array.from({ length: 50 }, (_, i) => i), { max: 100, initial: 24, sampleMs: 60_000 }, async () => {
      await new Promise<void>((r) => setImmediate(r));
    });
    expect(trace.settled).toBe(24);
    const memory = createLimitMemory();
    expect(memory.start()).toBeUndefined();
    memory.record(trace);
    expect(memory.start()).toBe(24);
  });

  it('a cycle starts with as many BMCs at once as the memory says, and leaves what it settled at', async () => {
    standin = await startMetalApiStandIn({ hmacKey: 'k' });
    const fleet = heldFleet();
    const memory = createLimitMemory();
    memory.record({ peak: 60, samples: [], seen: [], settled: 60 });
    const deps: CycleDeps = { partitionId: 'p', connect: fleet.connect, metalApi: createMetalApiClient({ baseUrl: standin.url, hmacKey: 'k', retries: 0 }), concurrency: 1000, bmcTimeoutMs: 30_000, logger: captureLog().logger, limitMemory: memory };
    const cycle = runReportCycle(deps, leasesOf(100));
    // 60 at once from the start, before the limiter's first sample (200 ms): without the memory 16
    await new Promise<void>((r) => setImmediate(r));
    expect(fleet.inFlight()).toBeGreaterThanOrEqual(60);
    fleet.release();
    const result = await cycle;
    expect(result.read).toBe(100);
    expect(memory.start()).toBe(result.limitSettled);
  });

  it('an aborted cycle leaves the memory as it was', async () => {
    standin = await startMetalApiStandIn({ hmacKey: 'k' });
    const fleet = heldFleet();
    const recorded: number[] = [];
    const memory = { start: () => 40, record: (t: { settled: number }) => void recorded.push(t.settled) };
    const abort = new AbortController();
    const deps: CycleDeps = { partitionId: 'p', connect: fleet.connect, metalApi: createMetalApiClient({ baseUrl: standin.url, hmacKey: 'k', retries: 0 }), concurrency: 1000, bmcTimeoutMs: 30_000, logger: captureLog().logger, limitMemory: memory };
    const cycle = runReportCycle(deps, leasesOf(50), abort.signal);
    await waitFor(() => fleet.inFlight() >= 40, 5000, '40 BMCs started');
    abort.abort();
    fleet.release();
    await cycle.catch(() => undefined);
    expect(recorded).toEqual([]);
  });
});

describe("the caller's signal", () => {
  it('one listener for a cycle of 50 reads in flight (Node warns of a leak at 11), none after it', async () => {
    standin = await startMetalApiStandIn({ hmacKey: 'k' });
    const fleet = heldFleet();
    const abort = new AbortController();
    const deps: CycleDeps = { partitionId: 'p', connect: fleet.connect, metalApi: createMetalApiClient({ baseUrl: standin.url, hmacKey: 'k', retries: 0 }), concurrency: 1000, bmcTimeoutMs: 30_000, logger: captureLog().logger, limitMemory: { start: () => 50, record: () => undefined } };
    const cycle = runReportCycle(deps, leasesOf(50), abort.signal);
    await waitFor(() => fleet.inFlight() >= 50, 5000, '50 BMCs started');
    expect(getEventListeners(abort.signal, 'abort')).toHaveLength(1);
    fleet.release();
    expect((await cycle).read).toBe(50);
    expect(getEventListeners(abort.signal, 'abort')).toHaveLength(0);
  });
});
