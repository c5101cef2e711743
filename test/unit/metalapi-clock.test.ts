/**
 * metal-api refuses an HMAC date more than 30 s old with 403 ("the timestamp in your header is
 * too old"), a future one never: a host whose clock falls behind metal-api's fails every report.
 * The daemon counts metal-api requests by status and shows the clock offset from metal-api's Date
 * header, warning once per episode of more than 10 s behind. The stand-in's clock is moved.
 */
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { createMetalApiClient } from '../../src/metalapi/client.js';
import { clockOffsetSeconds, createMetalApiWatch } from '../../src/metalapi/metrics.js';
import { startMetalApiStandIn, type MetalApiStandIn } from '../../src/metalapi/standin.js';
import { captureLog } from '../helpers/log.js';

const KEY = 'clock-key';
const UUID = '4c4c4544-0042-3910-8051-b4c04f4e4e32';
const body = { partitionid: 'p', reports: { [UUID]: { BMCIp: '10.0.0.1', BMCVersion: '1', BIOSVersion: '', FRU: {}, PowerState: 'ON', IndicatorLEDState: 'LED-OFF', PowerMetric: null, PowerSupplies: [] } } };
const BEHIND = /this host's clock is behind metal-api's/;

let standIn: MetalApiStandIn | undefined;
afterEach(async () => {
  await standIn?.close();
  standIn = undefined;
});

function watched(baseUrl: string, extra: { timeoutMs?: number } = {}) {
  const registry = new Registry();
  const log = captureLog();
  const watch = createMetalApiWatch(registry, log.logger);
  const client = createMetalApiClient({ baseUrl, hmacKey: KEY, retries: 0, onAttemptEnd: watch.attemptEnded, ...extra });
  const count = async (status: string) => Number(new RegExp(`status="${status}"\\} (\\d+)`).exec(await registry.getSingleMetricAsString('metal_bmc_metal_api_requests_total'))?.[1] ?? 0);
  const offset = async () => Number(/^metal_bmc_metal_api_clock_offset_seconds (\S+)$/m.exec(await registry.getSingleMetricAsString('metal_bmc_metal_api_clock_offset_seconds'))?.[1]);
  return { client, log, count, offset };
}

describe("metal-api's clock", () => {
  it('behind by 20 s: reports land, the offset shows it, one warning for the episode; 40 s: 403 too old, counted; back in step: told once; a new episode warns again', async () => {
    standIn = await startMetalApiStandIn({ hmacKey: KEY, clockAheadMs: 20_000 });
    const { client, log, count, offset } = watched(standIn.url);
    await client.ipmiReport(body);
    await client.findIpmiMachine(UUID);
    expect(await offset()).toBeGreaterThan(-22);
    expect(await offset()).toBeLessThan(-18);
    expect(log.find(BEHIND)).toHaveLength(1);

    standIn.setClockAhead(40_000);
    const err = (await client.ipmiReport(body).catch((e: unknown) => e)) as Error;
    expect(err.message).toMatch(/HTTP 403: the timestamp in your header is too old: ".*", please check if you have time synchronization activated/);
    expect(await count('403')).toBe(1);
    expect(await count('200')).toBe(2);
    expect(log.find(BEHIND)).toHaveLength(1);

    standIn.setClockAhead(0);
    await client.ipmiReport(body);
    expect(Math.abs(await offset())).toBeLessThan(2);
    expect(log.find("this host's clock is back in step with metal-api's")).toHaveLength(1);
    standIn.setClockAhead(15_000);
    await client.ipmiReport(body);
    expect(log.find(BEHIND)).toHaveLength(2);
    expect(log.find(BEHIND)[1]).toMatchObject({ level: 40, offsetSeconds: expect.any(Number) });
  });

  it('ahead of metal-api by an hour: metal-api takes the report (a future date is never refused), and no warning', async () => {
    standIn = await startMetalApiStandIn({ hmacKey: KEY, clockAheadMs: -3_600_000 });
    const { client, log, count, offset } = watched(standIn.url);
    await expect(client.ipmiReport(body)).resolves.toEqual({ created: [UUID], updated: [] });
    expect(await offset()).toBeGreaterThan(3590);
    expect(await count('200')).toBe(1);
    expect(log.find(BEHIND)).toHaveLength(0);
  });

  it('requests without an answer are counted by their transport outcome', async () => {
    const silent = createServer(() => undefined);
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const port = (silent.address() as AddressInfo).port;
    try {
      const timedOut = watched(`http://127.0.0.1:${port}`, { timeoutMs: 200 });
      await expect(timedOut.client.ipmiReport(body)).rejects.toThrow(/no answer within 200 ms/);
      expect(await timedOut.count('timeout')).toBe(1);
    } finally {
      silent.close();
    }
    const closed = watched(`http://127.0.0.1:${port}`);
    await expect(closed.client.ipmiReport(body)).rejects.toThrow(/connection failed/);
    expect(await closed.count('closed')).toBe(1);
  });

  it('the offset needs a Date header that parses', () => {
    expect(clockOffsetSeconds(undefined, 0)).toBeUndefined();
    expect(clockOffsetSeconds('yesterday', 0)).toBeUndefined();
    expect(clockOffsetSeconds('Thu, 01 Jan 1970 00:00:10 GMT', 0)).toBe(-10);
  });
});
