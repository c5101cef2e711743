/**
 * The order a report cycle starts its BMCs in: the slowest of the last cycle first, new ones
 * ahead of all, ties in lease order; and a cycle that has one really starts its slow BMC first.
 */
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { createMetalApiClient } from '../../src/metalapi/client.js';
import { startMetalApiStandIn, type MetalApiStandIn } from '../../src/metalapi/standin.js';
import type { BmcReport, Outband } from '../../src/outband/types.js';
import { runReportCycle } from '../../src/report/cycle.js';
import { createReadOrder } from '../../src/report/read-order.js';
import { captureLog } from '../helpers/log.js';

let standin: MetalApiStandIn | undefined;
afterEach(async () => {
  await standin?.close();
  standin = undefined;
});

describe('read order', () => {
  it('is a permutation: new BMCs first in lease order, then the last cycle\'s times, longest first, ties in lease order', () => {
    fc.assert(
      fc.property(fc.array(fc.option(fc.integer({ min: 0, max: 50 }), { nil: undefined }), { maxLength: 40 }), (times) => {
        const order = createReadOrder();
        const ips = times.map((_, i) => `10.0.${i >> 8}.${i & 255}`);
        times.forEach((t, i) => t !== undefined && order.record(ips[i]!, t));
        const got = order.order(ips);
        expect([...got].sort((a, b) => a - b)).toEqual(ips.map((_, i) => i));
        const cost = (i: number) => times[i] ?? Number.POSITIVE_INFINITY;
        for (let k = 1; k < got.length; k++) {
          const [a, b] = [got[k - 1]!, got[k]!];
          expect(cost(a) > cost(b) || (cost(a) === cost(b) && a < b)).toBe(true);
        }
      }),
    );
  });

  it('forgets the BMC recorded longest ago beyond its bound', () => {
    const order = createReadOrder(2);
    order.record('a', 30);
    order.record('b', 20);
    order.record('c', 10);
    expect(order.order(['a', 'b', 'c'])).toEqual([0, 1, 2]); // a forgotten: new again, so first
    order.record('a', 5);
    expect(order.order(['a', 'b', 'c'])).toEqual([1, 2, 0]); // b forgotten now: new, first; then c (10), a (5)
  });

  it('a cycle starts the BMC that was slowest in the last cycle first', async () => {
    standin = await startMetalApiStandIn({ hmacKey: 'k' });
    const leases = [1, 2, 3, 4].map((i) => ({ ip: `10.0.0.${i}`, mac: `aa:bb:cc:00:00:0${i}`, expires: 'never' as const }));
    const started: string[] = [];
    const report = (ip: string): BmcReport => ({ uuid: `00000000-0000-4000-8000-00000000000${ip.at(-1)}`, bmcVersion: '1.0', biosVersion: '', fru: {}, powerState: 'ON', indicatorLED: 'LED-OFF', powerSupplies: [], source: 'ipmi', missing: [] });
    // 10.0.0.3 answers only after the others have: slowest by construction, not by a timer's length
    let others = 0;
    let releaseSlow: () => void = () => undefined;
    const slowMay = new Promise<void>((r) => (releaseSlow = r));
    const connect = async (ip: string): Promise<Outband> => {
      started.push(ip);
      return {
        address: ip,
        vendor: 'test',
        info: async () => {
          if (ip === '10.0.0.3') await slowMay;
          else if (++others === 3) setTimeout(releaseSlow, 30);
          return report(ip);
        },
        close: async () => undefined,
      } as unknown as Outband;
    };
    const deps = { partitionId: 'p', connect, metalApi: createMetalApiClient({ baseUrl: standin.url, hmacKey: 'k', retries: 0 }), concurrency: 1, fixedConcurrency: true, bmcTimeoutMs: 5000, logger: captureLog().logger, readOrder: createReadOrder() };
    // cycle 1: all four at once, in lease order; 10.0.0.3 finishes last
    const first = await runReportCycle({ ...deps, concurrency: 4 }, leases);
    expect(first.read).toBe(4);
    expect(started).toEqual(['10.0.0.1', '10.0.0.2', '10.0.0.3', '10.0.0.4']);
    started.length = 0;
    // cycle 2: one at a time, so the start order is the read order
    await runReportCycle(deps, leases);
    expect(started[0]).toBe('10.0.0.3');
    expect([...started].sort()).toEqual(['10.0.0.1', '10.0.0.2', '10.0.0.3', '10.0.0.4']);
  });
});
