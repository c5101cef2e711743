/** A simulated fleet for tests: its own loopback /16 and free ports, stopped by the test. */
import { startFleet, type Fleet, type FleetOptions } from '../../src/sim/fleet.js';
import { freeTcpPort, freeUdpPort } from './ports.js';

let started = 0;

export async function startTestFleet(options: Partial<FleetOptions> & { count: number }): Promise<Fleet> {
  for (let attempt = 0; ; attempt++) {
    const second = 20 + ((process.pid * 7 + started++ * 13) % 200);
    try {
      return await startFleet({
        cidr: `127.${second}.0.0/16`,
        ipmiPort: await freeUdpPort(),
        redfishPort: await freeTcpPort(),
        user: 'ADMIN',
        password: 'fleet-pass-1',
        taskDurationMs: 200,
        ...options,
      });
    } catch (err) {
      if (attempt >= 4 || !/EADDRINUSE|in use/i.test(String((err as Error).message))) throw err;
    }
  }
}
