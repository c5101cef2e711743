/**
 * One NATS connection per daemon (src/parts/bus.ts): the commands part and the console ownership
 * get the same connection, the last part to let go closes it, and a part that stops while NATS
 * is unreachable is not held up.
 */
import { Registry } from 'prom-client';
import { afterAll, beforeAll, expect } from 'vitest';
import { loadConfig } from '../../src/config/config.js';
import type { DaemonContext } from '../../src/daemon.js';
import type { MetalApiClient } from '../../src/metalapi/client.js';
import { acquireBus } from '../../src/parts/bus.js';
import { captureLog } from '../helpers/log.js';
import { startTestNatsServer, type TestNatsServer } from '../helpers/nats-server.js';
import { freeTcpPort } from '../helpers/ports.js';
import { withPeers } from '../helpers/peers.js';

const { it } = withPeers('nats-server');

let server: TestNatsServer;
beforeAll(async () => {
  server = await startTestNatsServer({ jetstream: false });
});
afterAll(async () => {
  await server?.dispose();
});

function context(mqAddress: string): DaemonContext {
  const config = loadConfig({ METAL_BMC_PARTITION_ID: 'p', METAL_BMC_METAL_API_URL: 'http://127.0.0.1:1/', METAL_BMC_METAL_API_HMAC_KEY: 'k', METAL_BMC_MQ_ADDRESS: mqAddress });
  return { config, logger: captureLog('warn').logger, registry: new Registry(), metalApi: {} as MetalApiClient, connectBmc: () => Promise.reject(new Error('unused')), leaseAt: () => undefined };
}

it('gives every part of a daemon the same connection and closes it with the last one', async () => {
  const ctx = context(server.url);
  const commands = acquireBus(ctx);
  const console = acquireBus(ctx);
  const [a, b] = await Promise.all([commands.connection(), console.connection()]);
  expect(a).toBe(b);
  await console.release();
  expect(a.nc.isClosed()).toBe(false);
  await commands.release();
  expect(a.nc.isClosed()).toBe(true);
  // another daemon (context) has its own
  const other = acquireBus(context(server.url));
  const c = await other.connection();
  expect(c).not.toBe(a);
  await other.release();
});

it('lets a part stop while NATS is unreachable', async () => {
  const ctx = context(`nats://127.0.0.1:${await freeTcpPort()}`);
  const lease = acquireBus(ctx);
  const aborter = new AbortController();
  const waiting = lease.connection(aborter.signal);
  aborter.abort();
  await expect(waiting).rejects.toMatchObject({ code: 'ABORTED' });
  await lease.release();
});
