/**
 * The NATS server's clock as measured from here (src/bus/server-clock.ts), over the in-memory
 * bucket whose entries carry a "server" clock of the test's. The real server's stored time is
 * read in test/integration/commands-nats.test.ts.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createServerClock, type ServerClock } from '../../src/bus/server-clock.js';
import { captureLog } from '../helpers/log.js';
import { createMemoryKv } from '../helpers/memory-kv.js';
import { waitFor } from '../helpers/wait.js';

const clocks: ServerClock[] = [];
afterEach(() => {
  for (const c of clocks.splice(0)) c.close();
});

/** a host clock the test moves, a server `serverAhead` ms ahead of it, and a write taking `writeMs` of host time */
function setup(o: { serverAhead: number; writeMs?: number; failing?: boolean; retryMs?: number }) {
  // the host's wall clock (which may step) and its monotonic clock (which only runs)
  let host = 1_700_000_000_000;
  let monotonic = 5_000;
  const state = { serverAhead: o.serverAhead, writeMs: o.writeMs ?? 10, failing: o.failing ?? false, suspendedDuringWriteMs: 0 };
  const kv = createMemoryKv('clock', () => host + state.writeMs / 2 + state.serverAhead).client();
  const put = kv.put.bind(kv);
  kv.put = async (key, value) => {
    if (state.failing) throw new Error('NATS is unreachable (test)');
    const revision = await put(key, value);
    host += state.writeMs + state.suspendedDuringWriteMs;
    monotonic += state.writeMs;
    return revision;
  };
  const log = captureLog();
  const clock = createServerClock({ kv, key: 'clock.a', logger: log.logger, hostNow: () => host, monotonicNow: () => monotonic, intervalMs: 3_600_000, ...(o.retryMs ? { retryMs: o.retryMs } : {}) });
  clocks.push(clock);
  const pass = (ms: number) => ((host += ms), (monotonic += ms));
  const stepWallClock = (ms: number) => (host += ms);
  return { clock, log, state, pass, stepWallClock, host: () => host, warnings: () => log.find(/this host's clock is .* the NATS server's/) };
}

describe("the NATS server's clock", () => {
  it('measures the offset from the time the server stored a key, to within half the write', async () => {
    const s = setup({ serverAhead: 45_000, writeMs: 40 });
    expect(await s.clock.first).toEqual({ offsetMs: 45_000, uncertaintyMs: 20 });
    expect(s.clock.offsetMs()).toBe(45_000);
    expect(s.clock.now()).toBe(s.host() + 45_000);
  });

  it("runs on the monotonic clock from the last measurement: a step of this host's wall clock does not move the server's time", async () => {
    const s = setup({ serverAhead: -60_000 });
    await s.clock.first;
    const serverNow = s.clock.now();
    expect(serverNow).toBe(s.host() - 60_000);
    s.pass(1000);
    expect(s.clock.now()).toBe(serverNow + 1000);
    // NTP steps the host's clock back by the minute it was ahead
    s.stepWallClock(-60_000);
    expect(s.clock.now()).toBe(serverNow + 1000);
  });

  it('a suspend (the wall clock and the server go on, the monotonic clock stands still) starts a measurement at once, which brings the server\'s time back', async () => {
    const s = setup({ serverAhead: 0 });
    await s.clock.first;
    const before = s.clock.now();
    s.stepWallClock(120_000); // suspended for two minutes
    expect(s.clock.now()).toBe(before); // until measured again
    await waitFor(() => s.clock.now() >= before + 120_000, 5000, 'measured again');
    expect(s.clock.offsetMs()).toBe(0);
  });

  it('a measurement during which the host was suspended (the clocks parted during the write) is not used', async () => {
    const s = setup({ serverAhead: 5000 });
    await s.clock.first;
    s.state.suspendedDuringWriteMs = 120_000;
    s.state.serverAhead = 0;
    expect(await s.clock.measure()).toBeUndefined();
    expect(s.clock.offsetMs()).toBe(5000);
  });

  it('a first measurement that fails is tried again soon, not only after the interval', async () => {
    const s = setup({ serverAhead: 30_000, failing: true, retryMs: 20 });
    expect(await s.clock.first).toBeUndefined();
    expect(s.clock.offsetMs()).toBe(0);
    s.state.failing = false;
    await waitFor(() => s.clock.offsetMs() === 30_000, 5000, 'a measurement after the retry');
  });

  it("a host clock ahead by more than a TTL: told once, with which way; not again while it stays; told when it is back in step", async () => {
    const s = setup({ serverAhead: -60_000 });
    await s.clock.first;
    expect(s.warnings()).toHaveLength(1);
    expect(s.warnings()[0]).toMatchObject({ level: 40, offsetMs: -60_000, msg: expect.stringContaining("this host's clock is 60.0 s ahead of the NATS server's") });
    await s.clock.measure();
    expect(s.warnings()).toHaveLength(1);
    // it drifts on by more than the warning's bound: told again
    s.state.serverAhead = -65_000;
    await s.clock.measure();
    expect(s.warnings()).toHaveLength(2);
    s.state.serverAhead = 100;
    await s.clock.measure();
    expect(s.log.find("this host's clock is in step with the NATS server's again")).toHaveLength(1);
    expect(s.clock.offsetMs()).toBe(100);
  });

  it('a host clock behind the server is told as such; a few hundred milliseconds are not told at all', async () => {
    const behind = setup({ serverAhead: 3500 });
    await behind.clock.first;
    expect(behind.warnings()[0]?.msg).toContain("this host's clock is 3.5 s behind the NATS server's");
    const close = setup({ serverAhead: 300 });
    await close.clock.first;
    expect(close.warnings()).toEqual([]);
    expect(close.clock.offsetMs()).toBe(300);
  });

  it('a measurement whose write took too long to say much is not used: the last good offset stays', async () => {
    const s = setup({ serverAhead: 5000 });
    await s.clock.first;
    s.state.serverAhead = 90_000;
    s.state.writeMs = 3000;
    expect(await s.clock.measure()).toBeUndefined();
    expect(s.clock.offsetMs()).toBe(5000);
  });

  it('a failing measurement keeps the last offset and is logged once, not at every try', async () => {
    const s = setup({ serverAhead: -40_000 });
    await s.clock.first;
    s.state.failing = true;
    expect(await s.clock.measure()).toBeUndefined();
    expect(await s.clock.measure()).toBeUndefined();
    expect(s.clock.offsetMs()).toBe(-40_000);
    expect(s.log.find("the NATS server's clock not measured; machine event ages keep the last offset measured, or none")).toEqual([expect.objectContaining({ clockKey: 'clock.a' })]); // named, not redacted as a `key`
    s.state.failing = false;
    expect(await s.clock.measure()).toMatchObject({ offsetMs: -40_000 });
  });
});
