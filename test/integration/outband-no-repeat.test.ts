/**
 * A power reset or cycle whose Redfish request was sent and then cut off may have happened: the
 * facade does not repeat it over IPMI (it does fall back for idempotent actions, such as power on).
 * Redfish is the DMTF mockup with the connection reset on the action; IPMI is a machine of the
 * simulated fleet behind a relay that counts what the client sends.
 */
import { createSocket, type Socket } from 'node:dgram';
import { afterAll, beforeAll, expect } from 'vitest';
import { isBmcError } from '../../src/errors.js';
import { connectOutband } from '../../src/outband/connect.js';
import type { Fleet } from '../../src/sim/fleet.js';
import { startTestFleet } from '../helpers/fleet.js';
import { withPeers } from '../helpers/peers.js';
import { startMockupServer, type MockupServer } from '../helpers/redfish-mockup-server.js';

const { describe, it } = withPeers('openssl');

let fleet: Fleet;
let mockup: MockupServer;
let relay: Socket;
let relayed = 0;

beforeAll(async () => {
  fleet = await startTestFleet({ count: 1 });
  mockup = await startMockupServer({ user: fleet.user, password: fleet.password });
  const machine = fleet.machines[0]!.state.address;
  relay = createSocket('udp4');
  const back = createSocket('udp4');
  let client: { address: string; port: number } | undefined;
  relay.on('message', (msg, rinfo) => {
    relayed++;
    client = rinfo;
    back.send(msg, fleet.ipmiPort, machine);
  });
  back.on('message', (reply) => client && relay.send(reply, client.port, client.address));
  await new Promise<void>((resolve) => back.bind(0, '127.0.0.1', resolve));
  await new Promise<void>((resolve) => relay.bind(0, mockup.host, resolve));
  relay.on('close', () => back.close());
});
afterAll(async () => {
  relay?.close();
  await mockup?.close();
  await fleet?.close();
});

describe('no second reset over IPMI', () => {
  it.each([
    ['powerCycle', false],
    ['powerReset', false],
    ['powerOn', true],
  ] as const)('%s cut off after it was sent: falls back to IPMI = %s', async (action, fallsBack) => {
    const bmc = await connectOutband({ host: mockup.host, user: fleet.user, password: fleet.password, redfishPort: mockup.port, ipmiPort: (relay.address()).port, timeoutMs: 5000 });
    const powerEvents: string[] = [];
    const onChange = (c: { kind: string; action?: string }) => void (c.kind === 'power' && powerEvents.push(c.action ?? ''));
    fleet.machines[0]!.on('change', onChange);
    try {
      relayed = 0;
      // a machine that is on gets no On at all (nothing to cut off): power on is tried on one that is off
      (mockup.resource('/redfish/v1/Systems/437XR1138R2') as Record<string, unknown>).PowerState = action === 'powerOn' ? 'Off' : 'On';
      mockup.addFault({ fault: { kind: 'reset' }, method: 'POST', path: /Actions\/ComputerSystem\.Reset/, times: 1 });
      const outcome = await bmc[action]().then(
        () => undefined,
        (e: unknown) => e,
      );
      if (fallsBack) {
        expect(outcome).toBeUndefined();
        expect(relayed).toBeGreaterThan(0);
        expect(powerEvents).toHaveLength(1);
      } else {
        expect(isBmcError(outcome, 'CLOSED')).toBe(true);
        expect(relayed).toBe(0);
        expect(powerEvents).toEqual([]);
      }
    } finally {
      fleet.machines[0]!.off('change', onChange);
      mockup.clearFaults();
      await bmc.close();
    }
  });
});

describe('a failure before anything was sent falls back, whatever its code', () => {
  it.each(['powerCycle', 'powerOn'] as const)('%s on a Supermicro (power over IPMI) whose IPMI does not answer (UDP 623 filtered: the session open times out): done over Redfish', async (action) => {
    const system = mockup.resource('/redfish/v1/Systems/437XR1138R2') as Record<string, unknown>;
    const manufacturer = system.Manufacturer;
    system.Manufacturer = 'Supermicro';
    const silent = createSocket('udp4');
    await new Promise<void>((resolve) => silent.bind(0, mockup.host, resolve));
    const bmc = await connectOutband({ host: mockup.host, user: fleet.user, password: fleet.password, redfishPort: mockup.port, ipmiPort: silent.address().port, timeoutMs: 5000, ipmiRetry: { attemptMs: 100, backoff: 1, maxAttemptMs: 100, deadlineMs: 300 } });
    try {
      expect(bmc.vendor).toBe('supermicro');
      system.PowerState = action === 'powerOn' ? 'Off' : 'On';
      const posts = () => mockup.requests.filter((r) => r.method === 'POST' && /ComputerSystem\.Reset/.test(r.path)).length;
      const before = posts();
      await bmc[action]();
      expect(posts()).toBe(before + 1);
    } finally {
      system.Manufacturer = manufacturer;
      silent.close();
      await bmc.close();
    }
  });
});

