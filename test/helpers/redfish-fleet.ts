/** The simulated fleet of a Redfish test file: a machine of its own for each test, and a client's options for it. */
import { afterAll, beforeAll } from 'vitest';
import type { RedfishOptions } from '../../src/redfish/index.js';
import type { Fleet, FleetOptions } from '../../src/sim/fleet.js';
import type { SimMachine } from '../../src/sim/machine.js';
import type { RedfishQuirkName } from '../../src/sim/quirks-redfish.js';
import { startTestFleet } from './fleet.js';

export interface FleetFile {
  /** The next machine no test has had, showing only `quirks`: a test's quirks and faults touch no other test. */
  machineWith(...quirks: RedfishQuirkName[]): SimMachine;
}

/** Starts a fleet of `options` before the file's tests (`use` gets it), closes it after them. */
export function fleetPerFile(options: Partial<FleetOptions> & { count: number }, use: (fleet: Fleet) => void): FleetFile {
  let fleet: Fleet | undefined;
  let next = 0;
  beforeAll(async () => {
    fleet = await startTestFleet(options);
    use(fleet);
  }, 60_000);
  afterAll(async () => {
    await fleet?.close();
  });
  return {
    machineWith(...quirks) {
      const m = fleet?.machines[next++];
      if (m === undefined) throw new Error(`no machine left for this test: the file's fleet has ${options.count}`);
      m.state.quirks = new Set(quirks);
      return m;
    },
  };
}

/** openRedfish's options for machine `m` of `fleet`: the fleet's credentials, the simulator's self-signed certificate taken, retries 10 ms apart. */
export function redfishOptionsOf(fleet: Fleet, m: SimMachine, extra: Partial<RedfishOptions> = {}): RedfishOptions {
  return { host: m.state.address, port: fleet.redfishPort, user: fleet.user, password: fleet.password, insecure: true, retryBackoffMs: 10, ...extra };
}
