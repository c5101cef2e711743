/** The peers of a command-path test file: a simulated fleet, a JetStream nats-server and metal-api's connection to it. */
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, afterEach, beforeAll } from 'vitest';
import { VENDOR_PROFILES, vendorOfManufacturer } from '../../src/outband/vendors.js';
import type { Fleet } from '../../src/sim/fleet.js';
import { startTestFleet } from './fleet.js';
import { startTestNatsServer, type TestNatsServer } from './nats-server.js';

export interface CommandPeers {
  fleet: Fleet;
  server: TestNatsServer;
  /** metal-api's side: publishes events, reads results */
  metalApi: NatsConnection;
}

/**
 * Starts the peers before the file's tests (`use` gets them), stops them after; after each test
 * the fleet's faults are cleared and the returned cleanups run, last added first.
 */
export function commandPeers(count: number, use: (peers: CommandPeers) => void): Array<() => Promise<unknown>> {
  const cleanup: Array<() => Promise<unknown>> = [];
  let peers: Partial<CommandPeers> = {};
  beforeAll(async () => {
    peers.fleet = await startTestFleet({ count });
    peers.server = await startTestNatsServer({ jetstream: true });
    peers.metalApi = await connect({ servers: peers.server.url });
    use(peers as CommandPeers);
  });
  afterAll(async () => {
    await peers.metalApi?.close();
    await peers.server?.dispose();
    await peers.fleet?.close();
    peers = {};
  });
  afterEach(async () => {
    peers.fleet?.clearFaults();
    for (const c of cleanup.splice(0).reverse()) await c().catch(() => undefined);
  });
  return cleanup;
}

/** The fleet's machines whose power actions go over Redfish (the vendor table). */
export function redfishPowered(fleet: Fleet): Fleet['machines'] {
  return fleet.machines.filter((m) => VENDOR_PROFILES[vendorOfManufacturer(m.state.manufacturer)].power === 'redfish');
}
