/**
 * A timed-out BMC's retry waits at the end of the cycle's queue, behind slower reads: whether it
 * still fits the cycle's budget is decided when it would start, not when its first read failed.
 * The clock is Date's, set by the reads themselves: no assertion waits for a timer.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { BmcError } from '../../src/errors.js';
import type { Lease } from '../../src/leases/types.js';
import type { BmcReport, Outband } from '../../src/outband/types.js';
import { runReportCycle, type CycleDeps } from '../../src/report/cycle.js';
import { captureLog } from '../helpers/log.js';

afterEach(() => {
  vi.useRealTimers();
});

const T0 = Date.parse('2026-12-06T10:00:00Z');
const DEADLINE_MS = 1000;
const BUDGET_MS = 3000;
const leases: Lease[] = [1, 2].map((i) => ({ ip: `10.0.0.${i}`, mac: `aa:bb:cc:00:00:0${i}`, expires: 'never' as const }));
const report: BmcReport = { uuid: '00000000-0000-4000-8000-000000000002', bmcVersion: '1.0', biosVersion: '', fru: {}, powerState: 'ON', indicatorLED: 'LED-OFF', powerSupplies: [], source: 'ipmi', missing: [] };

/**
 * One BMC at a time: 10.0.0.1 times out at once (the cycle's start), then 10.0.0.2 holds the only
 * place for `slowMs` of the cycle's clock; the retry of 10.0.0.1 can only start after it.
 */
async function cycle(slowMs: number) {
  vi.useFakeTimers({ toFake: ['Date'] });
  vi.setSystemTime(T0);
  const connects: string[] = [];
  const connect: CycleDeps['connect'] = async (ip) => {
    connects.push(ip);
    if (ip === '10.0.0.1') throw new BmcError('TIMEOUT', `reading BMC ${ip}: no answer within ${DEADLINE_MS} ms`);
    return {
      address: ip,
      vendor: 'test',
      info: async () => {
        vi.setSystemTime(T0 + slowMs);
        return report;
      },
      close: async () => undefined,
    } as unknown as Outband;
  };
  const metalApi = { ipmiReport: async () => ({ created: [], updated: [] }) } as unknown as CycleDeps['metalApi'];
  const result = await runReportCycle({ partitionId: 'p', connect, metalApi, concurrency: 1, fixedConcurrency: true, bmcTimeoutMs: DEADLINE_MS, cycleBudgetMs: BUDGET_MS, logger: captureLog().logger }, leases);
  return { result, connects };
}

describe('a timed-out BMC retried in a cycle with a budget', () => {
  it('is not started when, behind a slower read, less than twice its deadline is left (though it fitted when its first read failed)', async () => {
    const { result, connects } = await cycle(BUDGET_MS - 2 * DEADLINE_MS + 500);
    expect(connects).toEqual(['10.0.0.1', '10.0.0.2']);
    expect(result).toMatchObject({ read: 1, failed: 1, retried: 0 });
  });

  it('is started when twice its deadline still fits after the slower read', async () => {
    const { result, connects } = await cycle(BUDGET_MS - 2 * DEADLINE_MS - 100);
    expect(connects).toEqual(['10.0.0.1', '10.0.0.2', '10.0.0.1']);
    expect(result).toMatchObject({ read: 1, failed: 1, retried: 1 });
  });
});
