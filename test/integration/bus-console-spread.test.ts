/**
 * Consoles spread over instances (src/bus/console-owners.ts, "Spread") with two ownerships in
 * this process over a real nats-server's JetStream bucket, on their own timers: the first
 * instance to see the machines takes its fair share at once and leaves the rest, which the other
 * instance takes as soon as it sees them (well within the lease time the first one waits). That a
 * machine a live instance holds is never taken from it, a lease time later too, is proven in
 * test/unit/console-owners.test.ts on a clock of its own. The bucket's stream deleted under both:
 * made again, and every console held again by one instance.
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

/** an ownership as src/parts/console-owners.ts makes one: its bucket made again by the next read or write when gone, and the ownership told */
async function ownership(id: string, bucket = 'spread', onChange?: () => void) {
  const nc = await connect({ servers: server.url });
  conns.push(nc);
  let remadeNow = (): void => undefined;
  const kv = await openKvBucket(nc, await jetstreamManager(nc), bucket, { onRemade: () => remadeNow() });
  const log = captureLog('warn');
  const own = createConsoleOwnership({ kv, instanceId: id, leaseMs: LEASE_MS, heartbeatMs: 500, logger: log.logger, ...(onChange ? { onChange } : {}) });
  remadeNow = () => own.bucketRemade();
  await own.start();
  stops.push(() => own.close());
  return Object.assign(own, { log });
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

it('the bucket deleted while both hold consoles: made again, and every console held again, each by one instance', async () => {
  // whenever either's set changes: a machine in both is a console with two holders
  const both: string[] = [];
  const instances: Array<Awaited<ReturnType<typeof ownership>>> = [];
  const check = () => {
    const [x, y] = instances;
    if (!x || !y) return;
    const held = y.owned();
    for (const m of x.owned()) if (held.has(m)) both.push(m);
  };
  const a = await ownership('a', 'remade', check);
  instances.push(a);
  const b = await ownership('b', 'remade', check);
  instances.push(b);
  const machines = Array.from({ length: 20 }, (_, i) => `m${i}`);
  a.setWanted(machines);
  b.setWanted(machines);
  const heldByOne = () => {
    const held = [...a.owned(), ...b.owned()];
    return held.length === machines.length && new Set(held).size === held.length;
  };
  await waitFor(heldByOne, 15_000, 'every console held by one instance');
  const jsm = await jetstreamManager(conns[0]!);
  await jsm.streams.delete('KV_remade');
  await waitFor(() => [a, b].some((x) => x.log.find(/bucket was made again/).length > 0), 10_000, 'an instance starting over on the bucket made again');
  await waitFor(() => heldByOne() && a.live() && b.live(), 20_000, 'every console held again by one instance');
  expect((await jsm.streams.info('KV_remade')).config.name).toBe('KV_remade');
  // and both see the same holder of each (the watches on the new bucket brought the other's claims)
  await waitFor(() => machines.every((m) => a.ownerOf(m) !== undefined && a.ownerOf(m) === b.ownerOf(m)), 10_000, 'both instances agreeing on every holder');
  expect(both, 'consoles held by both instances at once').toEqual([]);
}, 60_000);
