/**
 * Consoles spread over instances (src/bus/console-owners.ts, "Spread") with two ownerships in
 * this process over a real nats-server's JetStream bucket, on their own timers: the first
 * instance to see the machines takes its fair share at once and leaves the rest, which the other
 * instance takes as soon as it sees them (well within the lease time the first one waits). That a
 * machine a live instance holds is never taken from it, a lease time later too, is proven in
 * test/unit/console-owners.test.ts on a clock of its own.
 */
import { jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, expect } from 'vitest';
import { createConsoleOwnership } from '../../src/bus/console-owners.js';
import { openKvBucket } from '../../src/bus/kv.js';
import { captureLog } from '../helpers/log.js';
import { startTestNatsServer, type TestNatsServer } from '../helpers/nats-server.js';
import { withPeers } from '../helpers/peers.js';
import { waitFor } from '../helpers/wait.js';

const { it } = withPeers('nats-server');

let server: TestNatsServer;
const conns: NatsConnection[] = [];
const stops: Array<() => Promise<void>> = [];

beforeAll(async () => {
  server = await startTestNatsServer({ jetstream: true });
}, 30_000);

afterAll(async () => {
  for (const stop of stops.reverse()) await stop();
  for (const nc of conns) await nc.close();
  await server?.dispose();
});

const LEASE_MS = 6000;

async function ownership(id: string) {
  const nc = await connect({ servers: server.url });
  conns.push(nc);
  const kv = await openKvBucket(nc, await jetstreamManager(nc), 'spread');
  const own = createConsoleOwnership({ kv, instanceId: id, leaseMs: LEASE_MS, heartbeatMs: 500, logger: captureLog('warn').logger });
  await own.start();
  stops.push(() => own.close());
  return own;
}

it('gives the first instance its fair share at once and the other the rest, without waiting a lease time', async () => {
  const a = await ownership('a');
  const b = await ownership('b');
  await waitFor(() => a.liveInstances() === 2 && b.liveInstances() === 2 && a.live() && b.live(), 10_000, 'both instances live and seen');
  const machines = Array.from({ length: 20 }, (_, i) => `m${i}`);
  a.setWanted(machines);
  await waitFor(() => a.owned().size === 10, 10_000, 'a holding its share');
  const bStarted = Date.now();
  b.setWanted(machines);
  await waitFor(() => b.owned().size === 10, 10_000, 'b holding the rest');
  expect(Date.now() - bStarted).toBeLessThan(LEASE_MS);
  expect(new Set([...a.owned(), ...b.owned()])).toEqual(new Set(machines));
  for (const m of machines) expect(a.ownerOf(m)).toBe(b.ownerOf(m));
}, 60_000);
