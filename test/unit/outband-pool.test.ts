/**
 * The pool of connected BMCs: what is parked for the next user and what is discarded. A
 * connection whose call is still under way when it is given back (the caller's deadline came
 * before the BMC's answer) may be a wedged session and is never reused.
 */
import { describe, expect, it } from 'vitest';
import type { Plan } from '../../src/commands/event.js';
import { createCommandRunner } from '../../src/commands/runner.js';
import { BmcError } from '../../src/errors.js';
import { createOutbandPool } from '../../src/outband/pool.js';
import type { Outband, OperationOptions } from '../../src/outband/types.js';
import { captureLog } from '../helpers/log.js';

const key = { host: '10.0.0.5', port: 623, user: 'admin', password: 'pw' };

/** A BMC whose OFF never answers: it fails TIMEOUT only a few ticks after its caller's signal ends. */
function wedgedBmc(counts: { closed: number }): Outband {
  const fine = async () => undefined;
  const unsupported = () => Promise.reject(new BmcError('UNSUPPORTED', 'fake'));
  return {
    address: key.host,
    vendor: 'fake',
    info: unsupported,
    powerOn: fine,
    powerOff: (o?: OperationOptions) =>
      new Promise<void>((_resolve, reject) => {
        o?.signal?.addEventListener('abort', () => setImmediate(() => reject(new BmcError('TIMEOUT', 'the BMC did not answer'))), { once: true });
      }),
    powerReset: fine,
    powerCycle: fine,
    bootFrom: fine,
    bootOverride: unsupported,
    identify: fine,
    openConsole: unsupported,
    updateFirmware: fine,
    watchFirmware: fine,
    close: async () => void counts.closed++,
  };
}

describe('outband pool', () => {
  it('parks a connection given back after calls that all answered', async () => {
    const pool = createOutbandPool();
    const counts = { closed: 0 };
    let opened = 0;
    const open = async () => (opened++, wedgedBmc(counts));
    const lent = await pool.acquire(key, open);
    await lent.powerOn();
    await lent.close();
    expect(pool.size()).toBe(1);
    await (await pool.acquire(key, open)).close();
    expect(opened).toBe(1);
    await pool.close();
  });

  it('discards a connection given back while a call on it is still under way', async () => {
    const pool = createOutbandPool();
    const counts = { closed: 0 };
    let opened = 0;
    const open = async () => (opened++, wedgedBmc(counts));
    const lent = await pool.acquire(key, open);
    const cut = new AbortController();
    const call = lent.powerOff({ signal: cut.signal });
    // the caller's deadline: it gives the connection back before the call's own TIMEOUT arrives
    cut.abort();
    await lent.close();
    await expect(call).rejects.toMatchObject({ code: 'TIMEOUT' });
    expect(counts.closed).toBe(1);
    expect(pool.size()).toBe(0);
    await (await pool.acquire(key, open)).close();
    expect(opened).toBe(2);
    await pool.close();
  });

  it('a command past its deadline does not hand its BMC session to the retry', async () => {
    const pool = createOutbandPool();
    const counts = { closed: 0 };
    let opened = 0;
    const runner = createCommandRunner({
      connect: (ipmi) => pool.acquire({ host: ipmi.host, port: ipmi.port, user: 'admin', password: 'pw' }, async () => (opened++, wedgedBmc(counts))),
      concurrency: 1,
      timeoutMs: 100,
      attempts: 2,
      retryDelayMs: 10,
      logger: captureLog().logger,
    });
    const plan: Plan = { machineId: 'm1', key: 'm1', type: 'command', command: 'OFF', ipmi: { address: `${key.host}:623`, host: key.host, port: 623 }, actions: [{ kind: 'command', command: 'OFF' }] };
    const result = await runner.submit(plan);
    expect(result).toMatchObject({ ok: false, code: 'TIMEOUT', attempts: 2 });
    // each attempt had a session of its own, and both were closed, none parked
    expect(opened).toBe(2);
    expect(counts.closed).toBe(2);
    expect(pool.size()).toBe(0);
    await pool.close();
  });
});
