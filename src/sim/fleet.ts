/**
 * A simulated fleet in one process: N machines on loopback addresses, each with an IPMI 2.0
 * BMC, a Redfish service and a serial console (over SOL; the Dell-like ones over SSH too), a
 * DHCP lease file naming their BMCs, optional persisted state, and a control API for fault
 * injection. Usable as a library (tests start a fleet in-process on free ports) and by
 * `metal-bmc sim`.
 */
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { renderIscLeases } from '../leases/render.js';
import { BmcError } from '../errors.js';
import { startIpmiServer, type IpmiServer } from './ipmi-server.js';
import { createMachineState, NO_FAULTS, servesSshConsole, SimMachine, type SimFaults, type SimMachineState, type SimVariantName } from './machine.js';
import { quirksOfVariant, type SimQuirkName } from './quirks.js';
import { checkModel, timingsFor, type LatencyModel, type RequestRecord } from './latency.js';
import { startRedfishServer, type RedfishServer } from './redfish-server.js';
import type { SshConsoleServer } from './ssh-console-server.js';
import { keptSshHostKey } from './tls.js';

export interface FleetOptions {
  count: number;
  seed?: string;
  cidr?: string;
  /** vendor variants the machines are drawn from (default: Supermicro-, Lenovo- and Gigabyte-like) */
  variants?: readonly SimVariantName[];
  ipmiPort?: number;
  redfishPort?: number;
  /** SSH port of the machines whose console is SSH (Dell-like variants); default 22 */
  sshPort?: number;
  user?: string;
  password?: string;
  /** write an ISC dhcpd.leases file with one active lease per BMC */
  leaseFile?: string;
  /** keep power, boot and LED state across restarts in this JSON file */
  stateFile?: string;
  /** keep the Redfish certificate and the SSH host key in this file across restarts (a real BMC keeps both) */
  tlsFile?: string;
  /** serve Redfish (default true); IPMI is always served */
  redfish?: boolean;
  /** one Redfish listener for the whole fleet (routes by local address; binds 0.0.0.0) instead of one per machine */
  redfishSingleListener?: boolean;
  ipmiSessionsPerMachine?: number;
  /** Redfish sessions each machine holds at once (default 16, the Redfish server's); a login beyond them is answered 503 SessionLimitExceeded */
  redfishSessionsPerMachine?: number;
  taskDurationMs?: number;
  /** every machine's serial line prints without pause at 115200 baud (load tests of consoles) */
  serialStream?: boolean;
  /** protocol quirks (quirks.ts) switched on, beside those of each machine's vendor variant */
  quirks?: readonly SimQuirkName[];
  /** share of the fleet (the first ⌈share·N⌉ machines) that shows `quirks`; default 1 */
  quirksShare?: number;
  /** answer delays, slow and dead machines (latency.ts) */
  latency?: LatencyModel;
  /** keep a log of request start times per machine (tests of request overlap) */
  recordRequests?: boolean;
}

/** The serial lines of the fleet, summed (control API GET /serial). */
export interface SerialStats {
  machines: number;
  /** lines in streaming mode */
  streaming: number;
  /** bytes the serial lines have emitted so far */
  outputBytes: number;
  /** BMCs with an active SOL payload */
  activeSol: number;
  /** SOL activations since the fleet started, summed over its BMCs */
  solActivations: number;
  /** per machine (in index order): active SOL payloads (0 or 1) and activations so far */
  sol: Array<{ active: number; activations: number }>;
}

export interface Fleet {
  machines: SimMachine[];
  ipmi: IpmiServer;
  redfish: RedfishServer | undefined;
  /** the SSH consoles of the Dell-like machines; undefined when the fleet has none */
  ssh: SshConsoleServer | undefined;
  ipmiPort: number;
  redfishPort: number;
  /** SSH port of the Dell-like machines (the first one's with port 0; the configured one when there are none) */
  sshPort: number;
  user: string;
  password: string;
  /** the machines a selector names: all, a list of indices, or a share of the fleet (first ⌈share·N⌉) */
  select(selector: FaultSelector): SimMachine[];
  setFaults(selector: FaultSelector, faults: Partial<SimFaults>): number;
  clearFaults(): void;
  /** switch quirks on or off on the selected machines; returns how many were changed */
  setQuirks(selector: FaultSelector, quirks: readonly SimQuirkName[], on: boolean): number;
  /** every machine back to the quirks of its vendor variant */
  resetQuirks(): void;
  /** streaming mode of the selected machines' serial lines; returns how many were changed */
  setSerialStream(selector: FaultSelector, on: boolean): number;
  /** a boot storm of `lines` numbered lines on every selected machine that runs */
  serialStorm(selector: FaultSelector, lines: number): number;
  serialStats(): SerialStats;
  /** a latency model for the whole fleet, or none; keeps the request logs */
  setLatency(model: LatencyModel | undefined): void;
  /** the requests machine `index` received (empty unless recordRequests) */
  requestLog(index: number): readonly RequestRecord[];
  writeLeaseFile(path: string, now?: Date): void;
  close(): Promise<void>;
}

export type FaultSelector = 'all' | number[] | { share: number };

type PersistedState = Pick<SimMachineState, 'power' | 'boot' | 'bootPersistent' | 'bootUefi' | 'bootSetBy' | 'bootOrder' | 'identify'>;

function loadState(path: string | undefined): PersistedState[] {
  if (!path) return [];
  try {
    const parsed: unknown = JSON.parse(readFileSync(path, 'utf8'));
    return Array.isArray(parsed) ? (parsed as PersistedState[]) : [];
  } catch {
    return [];
  }
}

export function renderFleetLeases(machines: readonly SimMachine[], now = new Date()): string {
  const starts = new Date(now.getTime() - 60_000);
  const ends = new Date(now.getTime() + 24 * 3600_000);
  return renderIscLeases(
    machines.map((m) => ({
      ip: m.state.address,
      mac: m.state.mac,
      starts,
      ends,
      bindingState: 'active',
      nextBindingState: 'free',
      hostname: `bmc-${m.state.index}`,
    })),
  );
}

/** The SSH consoles of the Dell-like machines, on the serial lines SOL serves; none without such machines (ssh2 is loaded only then). */
async function startSshConsoles(o: FleetOptions, machines: readonly SimMachine[], ipmi: IpmiServer, user: string, password: string): Promise<SshConsoleServer | undefined> {
  if (machines.length === 0) return undefined;
  const server = await import('./ssh-console-server.js');
  return await server.startSshConsoleServer({
    machines,
    serial: (index) => ipmi.serial(index),
    port: o.sshPort ?? 22,
    user,
    password,
    hostKey: keptSshHostKey(o.tlsFile, server.newHostKey, server.isUsableHostKey),
  });
}

export async function startFleet(o: FleetOptions): Promise<Fleet> {
  if (!Number.isInteger(o.count) || o.count < 1) throw new BmcError('INVALID_ARGUMENT', `fleet count must be a positive integer, got ${o.count}`);
  const seed = o.seed ?? 'metal-bmc';
  const cidr = o.cidr ?? '127.10.0.0/16';
  const user = o.user ?? 'ADMIN';
  const password = o.password ?? 'ADMIN';
  const persisted = loadState(o.stateFile);
  const machines = Array.from({ length: o.count }, (_, i) => {
    const state = createMachineState(seed, i, cidr, o.variants);
    Object.assign(state, persisted[i] ?? {});
    return new SimMachine(state);
  });
  const applyTiming = (model: LatencyModel | undefined) =>
    timingsFor(machines.length, seed, model && checkModel(model), o.recordRequests ?? false, machines.map((m) => m.state.timing)).forEach((t, i) => (machines[i]!.state.timing = t));
  applyTiming(o.latency);
  const ipmi = await startIpmiServer({ machines, port: o.ipmiPort ?? 623, user, password, maxSessions: o.ipmiSessionsPerMachine ?? 8 });
  let redfish: RedfishServer | undefined;
  try {
    redfish =
      o.redfish === false
        ? undefined
        : await startRedfishServer({ machines, port: o.redfishPort ?? 443, user, password, perMachineBind: !o.redfishSingleListener, taskDurationMs: o.taskDurationMs ?? 1000, ...(o.redfishSessionsPerMachine === undefined ? {} : { maxSessions: o.redfishSessionsPerMachine }), ...(o.tlsFile ? { tlsFile: o.tlsFile } : {}) });
  } catch (err) {
    await ipmi.close();
    throw err;
  }
  const sshMachines = machines.filter((m) => servesSshConsole(m.state));
  let ssh: SshConsoleServer | undefined;
  try {
    ssh = await startSshConsoles(o, sshMachines, ipmi, user, password);
  } catch (err) {
    await Promise.all([ipmi.close(), redfish?.close()]);
    throw err;
  }

  // Changes are written at most every 200 ms; close() writes a pending change at once, so a
  // SIGTERM right after a command loses nothing.
  let saveTimer: NodeJS.Timeout | undefined;
  const writeState = () => {
    clearTimeout(saveTimer);
    saveTimer = undefined;
    if (!o.stateFile) return;
    const tmp = `${o.stateFile}.tmp`;
    writeFileSync(tmp, JSON.stringify(machines.map(({ state: s }): PersistedState => ({ power: s.power, boot: s.boot, bootPersistent: s.bootPersistent, bootUefi: s.bootUefi, bootSetBy: s.bootSetBy, bootOrder: s.bootOrder, identify: s.identify }))));
    renameSync(tmp, o.stateFile);
  };
  const save = () => {
    if (!o.stateFile) return;
    clearTimeout(saveTimer);
    saveTimer = setTimeout(writeState, 200);
  };
  for (const m of machines) m.on('change', save);
  const serialOf = (m: SimMachine) => ipmi.serial(m.state.index);

  const fleet: Fleet = {
    machines,
    ipmi,
    redfish,
    ipmiPort: ipmi.endpoints[0]!.port,
    redfishPort: redfish ? Number(new URL(redfish.url(0)).port) : 0,
    ssh,
    sshPort: (sshMachines[0] && ssh?.endpoint(sshMachines[0].state.index)?.port) ?? o.sshPort ?? 22,
    user,
    password,
    select(selector) {
      if (selector === 'all') return machines;
      if (Array.isArray(selector)) return selector.map((i) => machines[i]).filter((m): m is SimMachine => m !== undefined);
      const n = Math.ceil(Math.min(1, Math.max(0, selector.share)) * machines.length);
      return machines.slice(0, n);
    },
    setFaults(selector, faults) {
      const chosen = fleet.select(selector);
      for (const m of chosen) Object.assign(m.state.faults, faults);
      return chosen.length;
    },
    clearFaults() {
      for (const m of machines) m.state.faults = { ...NO_FAULTS };
    },
    setQuirks(selector, quirks, on) {
      const chosen = fleet.select(selector);
      for (const m of chosen) {
        for (const q of quirks) {
          if (on) m.state.quirks.add(q);
          else m.state.quirks.delete(q);
        }
      }
      return chosen.length;
    },
    resetQuirks() {
      for (const m of machines) m.state.quirks = new Set(quirksOfVariant(m.state.variant));
    },
    setSerialStream(selector, on) {
      const chosen = fleet.select(selector);
      for (const m of chosen) serialOf(m).setStreaming(on);
      return chosen.length;
    },
    serialStorm(selector, lines) {
      const chosen = fleet.select(selector);
      for (const m of chosen) serialOf(m).storm(lines);
      return chosen.length;
    },
    serialStats() {
      const stats: SerialStats = { machines: machines.length, streaming: 0, outputBytes: 0, activeSol: 0, solActivations: 0, sol: [] };
      for (const m of machines) {
        const line = serialOf(m);
        if (line.isStreaming) stats.streaming++;
        stats.outputBytes += line.outputBytes;
        const sol = { active: ipmi.activeSolPayloads(m.state.index), activations: ipmi.solActivations(m.state.index) };
        stats.activeSol += sol.active;
        stats.solActivations += sol.activations;
        stats.sol.push(sol);
      }
      return stats;
    },
    setLatency: applyTiming,
    requestLog: (index) => machines[index]?.state.timing?.log?.records ?? [],
    writeLeaseFile(path, now) {
      const tmp = `${path}.tmp`;
      writeFileSync(tmp, renderFleetLeases(machines, now));
      renameSync(tmp, path);
    },
    async close() {
      await Promise.all([ipmi.close(), redfish?.close(), ssh?.close()]);
      if (saveTimer !== undefined) writeState();
    },
  };
  if (o.leaseFile) fleet.writeLeaseFile(o.leaseFile);
  if (o.serialStream) fleet.setSerialStream('all', true);
  if (o.quirks?.length) fleet.setQuirks({ share: o.quirksShare ?? 1 }, o.quirks, true);
  return fleet;
}
