/** One BMC read for a report (read-bmc.ts): what bounds it when a path ignores its deadline. */
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { Outband } from '../../src/outband/types.js';
import type { LoopStall } from '../../src/report/loop-clock.js';
import { READ_GUARD_EXTRA_MS, readBmcGuarded } from '../../src/report/read-bmc.js';

/** a loop that never stalls: nothing is given back */
const freeLoop: LoopStall = { stalledMs: () => 0, recentStallMs: () => 0 };

afterEach(() => {
  vi.useRealTimers();
});

describe('readBmcOnce', () => {
  it('a read that ignores its deadline (a connect that does not settle in time) fails as TIMEOUT at twice the deadline and 5 s and the cycle goes on; its BMC is BUSY until it ends', async () => {
    vi.useFakeTimers();
    const timeoutMs = 1000;
    const leftBehind = new Set<string>();
    let settled: unknown;
    let connected!: (bmc: Outband) => void;
    const bmc = { vendor: 'v', info: async () => ({ uuid: 'u' }), close: async () => undefined } as unknown as Outband;
    const options = { timeoutMs, clock: freeLoop };
    const reading = readBmcGuarded(() => new Promise<Outband>((r) => (connected = r)), '10.0.0.1', options, leftBehind).then((a) => (settled = a));
    await vi.advanceTimersByTimeAsync(2 * timeoutMs + READ_GUARD_EXTRA_MS - 1);
    expect(settled).toBeUndefined();
    await vi.advanceTimersByTimeAsync(1);
    await reading;
    expect(settled).toMatchObject({ ok: false, error: { code: 'TIMEOUT', message: expect.stringMatching(/no end within 7000 ms although its deadline fired/) } });
    // a second read beside the one left behind would log in beside it
    await expect(readBmcGuarded(async () => bmc, '10.0.0.1', options, leftBehind)).resolves.toMatchObject({ ok: false, error: { code: 'BUSY' } });
    await expect(readBmcGuarded(async () => bmc, '10.0.0.2', options, leftBehind)).resolves.toMatchObject({ ok: true });
    // once it ends, the BMC is read again
    connected(bmc);
    await vi.waitFor(() => expect(leftBehind.size).toBe(0));
    await expect(readBmcGuarded(async () => bmc, '10.0.0.1', options, leftBehind)).resolves.toMatchObject({ ok: true });
  });

  it('a read that ends in time is not touched by the guard', async () => {
    const report = { uuid: 'u' };
    const bmc = { vendor: 'v', info: async () => report, close: async () => undefined } as unknown as Outband;
    await expect(readBmcGuarded(async () => bmc, '10.0.0.1', { timeoutMs: 1000, clock: freeLoop }, new Set())).resolves.toMatchObject({ ok: true, report, vendor: 'v' });
  });
});
