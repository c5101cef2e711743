/** One BMC read for a report (read-bmc.ts): what bounds it when a path ignores its deadline. */
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { Outband } from '../../src/outband/types.js';
import { READ_GUARD_EXTRA_MS, readBmcOnce } from '../../src/report/read-bmc.js';

afterEach(() => {
  vi.useRealTimers();
});

describe('readBmcOnce', () => {
  it('a read that ignores its deadline (a connect that never settles) fails as TIMEOUT at twice the deadline and 5 s, and the cycle goes on', async () => {
    vi.useFakeTimers();
    const timeoutMs = 1000;
    let settled: unknown;
    const reading = readBmcOnce(() => new Promise<Outband>(() => undefined), '10.0.0.1', { timeoutMs, clock: { stalledMs: () => 0 } }).then((a) => (settled = a));
    await vi.advanceTimersByTimeAsync(2 * timeoutMs + READ_GUARD_EXTRA_MS - 1);
    expect(settled).toBeUndefined();
    await vi.advanceTimersByTimeAsync(1);
    await reading;
    expect(settled).toMatchObject({ ok: false, error: { code: 'TIMEOUT', message: expect.stringMatching(/no end within 7000 ms although its deadline fired/) } });
  });

  it('a read that ends in time is not touched by the guard', async () => {
    const report = { uuid: 'u' };
    const bmc = { vendor: 'v', info: async () => report, close: async () => undefined } as unknown as Outband;
    await expect(readBmcOnce(async () => bmc, '10.0.0.1', { timeoutMs: 1000, clock: { stalledMs: () => 0 } })).resolves.toMatchObject({ ok: true, report, vendor: 'v' });
  });
});
