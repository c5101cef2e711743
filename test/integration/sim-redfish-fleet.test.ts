/**
 * A large simulated fleet behind ONE HTTPS listener, routed by the local address the client
 * connected to: every machine answers as itself, and the server's memory grows by a small,
 * bounded amount per machine (no socket, no certificate, no resource copies per machine).
 * Driven by curl, one process for the whole fleet.
 */
import { execFile } from 'node:child_process';
import { expect } from 'vitest';
import { createMachineState, SimMachine } from '../../src/sim/machine.js';
import { startRedfishServer } from '../../src/sim/redfish-server.js';
import { vendorOf } from '../../src/sim/redfish/vendors.js';
import { withPeers } from '../helpers/peers.js';
import { gc } from '../helpers/memory.js';

const { describe, it } = withPeers('curl', 'openssl');

function heapUsed(): number {
  gc();
  gc();
  return process.memoryUsage().heapUsed;
}

function curlMany(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('curl', ['-sk', '--max-time', '120', ...args], { encoding: 'utf8', maxBuffer: 64 << 20 }, (err, stdout) => (err === null ? resolve(stdout) : reject(err)));
  });
}

const USER = 'ADMIN';
const PASSWORD = 'fleet';
const FLEET = 200;

describe('a fleet of 200 machines behind one listener', () => {
  it('serves every machine as itself with bounded memory', async () => {
    const machines = Array.from({ length: FLEET }, (_, i) => new SimMachine(createMachineState('fleet', i, '127.43.0.0/16')));
    const before = heapUsed();
    const server = await startRedfishServer({ machines, port: 0, user: USER, password: PASSWORD, perMachineBind: false });
    try {
      const ports = new Set(machines.map((_, i) => server.endpoint(i).port));
      expect(ports.size).toBe(1);

      const systemUrls = machines.map((m, i) => `${server.url(i)}/redfish/v1/Systems/${vendorOf(m.state.manufacturer).systemId}`);
      const out = await curlMany(['-u', `${USER}:${PASSWORD}`, '-w', '\n', ...systemUrls]);
      const systems = out.trim().split('\n').map((line) => JSON.parse(line) as { UUID: string; BiosVersion: string });
      expect(systems).toHaveLength(FLEET);
      systems.forEach((s, i) => {
        expect(s.UUID.toLowerCase()).toBe(machines[i]?.state.uuid);
        expect(s.BiosVersion).toBe(machines[i]?.state.biosVersion);
      });

      const login = JSON.stringify({ UserName: USER, Password: PASSWORD });
      const sessionsUrls = machines.flatMap((_, i) => ['-o', '/dev/null', `${server.url(i)}/redfish/v1/SessionService/Sessions`]);
      const codes = await curlMany(['-w', '%{http_code}\n', '-H', 'Content-Type: application/json', '-d', login, ...sessionsUrls]);
      expect(codes.trim().split('\n')).toEqual(machines.map(() => '201'));
      machines.forEach((_, i) => expect(server.openSessions(i)).toBe(1));
      expect(server.requests.total).toBe(2 * FLEET);
      expect(server.requests.perMachine.every((n) => n === 2)).toBe(true);

      const grown = heapUsed() - before;
      console.log(`heap growth for ${FLEET} machines with a session each: ${(grown / 1024 / 1024).toFixed(2)} MB`);
      // measured ~1-3 MB (mostly the parsed mockup templates, shared by all machines)
      expect(grown).toBeLessThan(16 * 1024 * 1024);
    } finally {
      await server.close();
    }
  });

  it('costs a few kilobytes per machine at most, even for 5000 machines', async () => {
    const machines = Array.from({ length: 5000 }, (_, i) => new SimMachine(createMachineState('fleet', i, '127.44.0.0/16')));
    const before = heapUsed();
    const server = await startRedfishServer({ machines, port: 0, user: USER, password: PASSWORD, perMachineBind: false });
    try {
      const perMachine = (heapUsed() - before) / machines.length;
      console.log(`heap per machine in a fleet of ${machines.length}: ${perMachine.toFixed(0)} bytes`);
      expect(perMachine).toBeLessThan(4096);
      const last = machines.length - 1;
      const out = await curlMany([`${server.url(last)}/redfish/v1/`]);
      expect(JSON.parse(out)).toMatchObject({ Vendor: machines[last]?.state.manufacturer });
    } finally {
      await server.close();
    }
  });
});
