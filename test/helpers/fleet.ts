/** A simulated fleet for tests: its own loopback /16 and free ports, stopped by the test. */
import { join } from 'node:path';
import { startFleet, type Fleet, type FleetOptions } from '../../src/sim/fleet.js';
import type { RequestRecord } from '../../src/sim/latency.js';
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
        // the Dell-like machines' SSH consoles (22 needs root)
        sshPort: await freeTcpPort(),
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

/** The Redfish session login, as a simulated BMC records it. */
/** The daemon's environment for reaching the fleet's BMCs: their ports and credentials. */
export function fleetBmcEnv(fleet: Pick<Fleet, 'ipmiPort' | 'redfishPort' | 'user' | 'password'>): Record<string, string> {
  return {
    METAL_BMC_IPMI_PORT: String(fleet.ipmiPort),
    METAL_BMC_REDFISH_PORT: String(fleet.redfishPort),
    METAL_BMC_IPMI_USER: fleet.user,
    METAL_BMC_IPMI_PASSWORD: fleet.password,
  };
}

/**
 * A daemon's environment for a test: the fleet's BMCs from `dir`/dhcpd.leases (the caller writes
 * it), metal-api's stand-in, the state folder `dir`/state and one report cycle an hour after the
 * first (a lease's appearance starts one at once).
 */
export function fleetDaemonEnv(fleet: Pick<Fleet, 'ipmiPort' | 'redfishPort' | 'user' | 'password'>, o: { dir: string; metalApiUrl: string; hmacKey: string }): Record<string, string> {
  return {
    METAL_BMC_PARTITION_ID: 'test-partition',
    METAL_BMC_METAL_API_URL: o.metalApiUrl,
    METAL_BMC_METAL_API_HMAC_KEY: o.hmacKey,
    METAL_BMC_LEASE_FILE: join(o.dir, 'dhcpd.leases'),
    METAL_BMC_STATE_DIR: join(o.dir, 'state'),
    METAL_BMC_REPORT_INTERVAL: '1h',
    ...fleetBmcEnv(fleet),
  };
}

export const LOGIN_REQUEST = /^POST \/redfish\/v1\/SessionService\/Sessions\/?$/;

/**
 * Whether the BMC saw, after a login among `requests`, a GET other than the service root (which
 * needs no session): the client had the login's answer, and with it the token. The BMC counts a
 * session as it answers the login, a little before the client has read that answer.
 */
export function sessionTokenUsed(requests: readonly RequestRecord[]): boolean {
  const seen = requests.filter((r) => r.protocol === 'redfish').map((r) => r.what);
  const login = seen.findIndex((w) => LOGIN_REQUEST.test(w));
  return login >= 0 && seen.slice(login + 1).some((w) => /^GET /.test(w) && !/^GET \/redfish\/v1\/?$/.test(w));
}
