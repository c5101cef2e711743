/**
 * The daemon's console backend: look the machine up at metal-api (GET /v1/machine/{id}/ipmi),
 * connect to its BMC, and open the serial console with the hub's `takeOver` (true but while the
 * hub yields to another client that took SOL from it: a payload left active by a crashed session
 * is taken over). The Outband is closed once the console stream exists; the
 * stream owns its own BMC session. Errors say, in one line, why the console is unavailable.
 */
import type { Duplex } from 'node:stream';
import { BmcError } from '../errors.js';
import type { MachineIpmi } from '../metalapi/types.js';
import type { FacadeOutband } from '../outband/connect.js';
import type { Outband } from '../outband/types.js';
import type { SolTarget } from './worker-protocol.js';
import type { OpenBackend } from './types.js';

export interface BmcTarget {
  host: string;
  port: number;
  user: string;
  password: string;
  signal: AbortSignal;
}

export interface MetalApiBackendOptions {
  findIpmiMachine: (id: string, options: { signal: AbortSignal }) => Promise<MachineIpmi>;
  connect: (target: BmcTarget) => Promise<Outband>;
  /**
   * opens an IPMI SOL console elsewhere (a console worker thread, worker-pool.ts): used when the
   * connected BMC's console is IPMI SOL; SSH consoles stay in this thread
   */
  openSol?: (target: SolTarget, signal: AbortSignal, takeOver: boolean) => Promise<Duplex>;
  /** IPMI port when metal-api's address has none, default 623 */
  defaultPort?: number;
  /**
   * Throws (FORBIDDEN) when the BMC metal-api names may not be given its credentials: outside the
   * allowed CIDRs, or its address leased to another BMC's MAC (metal-api's record stale after DHCP
   * moved the address), as for machine commands (commands/targets.ts). Before anything is sent.
   */
  checkTarget?: (target: { address: string; host: string; port: number; mac?: string }) => void;
}

/** `10.1.0.17:623`, `[fd00::17]:623`, or a bare host. */
export function splitAddress(address: string, defaultPort: number): { host: string; port: number } {
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(address);
  if (bracketed) return { host: bracketed[1] as string, port: bracketed[2] ? Number(bracketed[2]) : defaultPort };
  const m = /^([^:]+):(\d+)$/.exec(address);
  if (m) return { host: m[1] as string, port: Number(m[2]) };
  return { host: address, port: defaultPort };
}

/** deadline of opening SOL in a worker (the hub's own open deadline aborts it sooner) */
const SOL_OPEN_TIMEOUT_MS = 30_000;

/** whether the facade would open this BMC's console over IPMI SOL (not SSH, IPMI not disabled) */
function solConsole(outband: Outband): boolean {
  const facade = outband as Partial<FacadeOutband>;
  return facade.profile?.console === 'ipmi-sol' && facade.protocols?.ipmi === true;
}

export function metalApiConsoleBackend(options: MetalApiBackendOptions): OpenBackend {
  const defaultPort = options.defaultPort ?? 623;
  return async (machineId, { signal, takeOver = true }): Promise<Duplex> => {
    const ipmi = await options.findIpmiMachine(machineId, { signal });
    if (!ipmi.address) throw new BmcError('INVALID_ARGUMENT', `machine ${machineId} has no BMC address at metal-api`);
    if (!ipmi.user) throw new BmcError('INVALID_ARGUMENT', `machine ${machineId} has no BMC user at metal-api`);
    const { host, port } = splitAddress(ipmi.address, defaultPort);
    if (host === '' || !Number.isInteger(port) || port < 1 || port > 65535) {
      throw new BmcError('INVALID_ARGUMENT', `machine ${machineId} has an unusable BMC address at metal-api: ${JSON.stringify(ipmi.address)}`);
    }
    options.checkTarget?.({ address: ipmi.address, host, port, ...(ipmi.mac ? { mac: ipmi.mac } : {}) });
    const outband = await options.connect({ host, port, user: ipmi.user, password: ipmi.password, signal });
    if (options.openSol && solConsole(outband)) {
      await outband.close();
      return options.openSol({ host, port, user: ipmi.user, password: ipmi.password, timeoutMs: SOL_OPEN_TIMEOUT_MS, machineId }, signal, takeOver);
    }
    try {
      return await outband.openConsole({ takeOver, signal });
    } finally {
      await outband.close();
    }
  };
}
