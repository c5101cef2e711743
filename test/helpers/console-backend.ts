/**
 * The console tests' BMC path: a metal-api stand-in that knows the machines, and a backend that
 * looks a machine up there and opens its console over IPMI (suite 3), as the daemon does.
 */
import { metalApiConsoleBackend } from '../../src/console/index.js';
import { createMetalApiClient } from '../../src/metalapi/client.js';
import { startMetalApiStandIn, type MetalApiStandIn } from '../../src/metalapi/standin.js';
import type { MachineIpmi } from '../../src/metalapi/types.js';
import { ipmiOutband } from '../../src/outband/ipmi.js';

/** The ipmi block metal-api holds for a machine. */
export function machineIpmi(address: string, user: string, password: string): MachineIpmi {
  return { address, user, password, interface: 'lanplus', mac: '', fru: {}, bmcversion: '', powerstate: '' };
}

export async function startConsoleBackend(machines: Record<string, MachineIpmi>, ipmiDeadlineMs: number): Promise<{ standin: MetalApiStandIn; openBackend: ReturnType<typeof metalApiConsoleBackend> }> {
  const hmacKey = 'console-test-key';
  const standin = await startMetalApiStandIn({ hmacKey });
  for (const [id, ipmi] of Object.entries(machines)) standin.machines.set(id, ipmi);
  const api = createMetalApiClient({ baseUrl: standin.url, hmacKey, retries: 0 });
  const openBackend = metalApiConsoleBackend({
    findIpmiMachine: (id, o) => api.findIpmiMachine(id, o),
    connect: async (t) => ipmiOutband({ host: t.host, port: t.port, user: t.user, password: t.password, cipherSuite: 3, retry: { deadlineMs: ipmiDeadlineMs } }),
  });
  return { standin, openBackend };
}
