/**
 * The reporter's "report cycle done" line is written every interval: it carried metal-api's
 * whole created and updated lists (36 characters a machine, ~40 KB a line at 1,000 machines).
 * It says counts, and names the first few machines metal-api created.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { Lease } from '../../src/leases/types.js';
import { createMetalApiClient } from '../../src/metalapi/client.js';
import { startMetalApiStandIn, type MetalApiStandIn } from '../../src/metalapi/standin.js';
import type { BmcReport, Outband } from '../../src/outband/types.js';
import type { CycleDeps } from '../../src/report/cycle.js';
import { createReporter, CYCLE_UUIDS_NAMED } from '../../src/report/reporter.js';
import { captureLog } from '../helpers/log.js';

let standin: MetalApiStandIn | undefined;
afterEach(async () => {
  await standin?.close();
  standin = undefined;
});

const COUNT = 40;
const uuidOf = (i: number) => `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`;
const leases: Lease[] = Array.from({ length: COUNT }, (_, i) => ({ ip: `10.0.1.${i + 1}`, mac: `aa:bb:cc:00:01:${(i + 1).toString(16).padStart(2, '0')}`, expires: 'never' }));
const report = (uuid: string): BmcReport => ({ uuid, bmcVersion: '1.0', biosVersion: '', fru: {}, powerState: 'ON', indicatorLED: 'LED-OFF', powerSupplies: [], source: 'ipmi', missing: [] });
const connect: CycleDeps['connect'] = async (ip) => ({ address: ip, vendor: 'test', info: async () => report(uuidOf(Number(ip.split('.')[3]))), close: async () => undefined }) as unknown as Outband;

describe('the report cycle line', () => {
  it('counts what metal-api created and updated and names at most a few new machines, not every machine of the partition', async () => {
    standin = await startMetalApiStandIn({ hmacKey: 'k' });
    const log = captureLog();
    const reporter = createReporter({ partitionId: 'p', connect, metalApi: createMetalApiClient({ baseUrl: standin.url, hmacKey: 'k', retries: 0 }), concurrency: 8, bmcTimeoutMs: 5000, logger: log.logger, intervalMs: 3_600_000, leases: () => leases });
    // the full cycle at start creates every machine; its follow-up updates them all
    reporter.start();
    await reporter.idle();
    await reporter.stop();
    const lines = log.find('report cycle done');
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatchObject({ created: COUNT, updated: 0, reported: COUNT });
    const named = lines[0]!.createdUuids as string[];
    expect(named).toHaveLength(CYCLE_UUIDS_NAMED);
    for (const uuid of named) expect(leases.map((_, i) => uuidOf(i + 1))).toContain(uuid);
    expect(lines[1]).toMatchObject({ created: 0, updated: COUNT });
    expect(lines[1]).not.toHaveProperty('createdUuids');
    for (const line of lines) expect(JSON.stringify(line).length).toBeLessThan(600);
  });
});
