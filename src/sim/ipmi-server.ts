/**
 * The IPMI 2.0 side of the simulated fleet: one UDP socket per machine, bound on the machine's
 * own loopback address (127.10.0.x works on Linux without configuration), each served by a
 * `SimBmc`. Faults in `machine.state.faults` are read on every datagram, so tests can switch
 * them while clients run.
 */
import { createSocket, type Socket } from 'node:dgram';
import { BmcError } from '../errors.js';
import { SimBmc } from './ipmi-bmc.js';
import type { Remote } from './ipmi-session.js';
import { answerDelay, recordRequest } from './latency.js';
import { hasQuirk, type SimMachine } from './machine.js';
import { SerialLine } from './serial.js';

export interface IpmiServerOptions {
  machines: readonly SimMachine[];
  /** UDP port of every BMC; 0 picks a free port per machine */
  port: number;
  user: string;
  password: string;
  /** session slots per machine (default 4) */
  maxSessions?: number;
  /** idle time after which an established session is dropped (default 60 s) */
  sessionTimeoutMs?: number;
  /** idle time after which a session stuck in its handshake is dropped (default 10 s) */
  handshakeTimeoutMs?: number;
  /** bind every socket on the wildcard address (0.0.0.0) instead of the machine's address */
  bindAll?: boolean;
  /** bind every socket on this address instead of the machine's (e.g. 127.0.0.1 with port 0 in tests) */
  host?: string;
  /** serial lines to serve over SOL, one per machine in order; created (and closed) here when absent */
  serialLines?: readonly SerialLine[];
  /** SOL retransmission interval (default 500 ms) */
  solRetryMs?: number;
  /** source of the `dropRate` decisions (default Math.random), for reproducible tests */
  random?: () => number;
  /** an unexpected exception while handling a datagram (a bug in the simulator); default: a process warning */
  onError?: (err: unknown, machine: SimMachine) => void;
}

/** Where a client reaches one machine's BMC. */
export interface IpmiEndpoint {
  address: string;
  port: number;
}

export interface IpmiServer {
  /** one per machine, in the order of `options.machines` */
  readonly endpoints: readonly IpmiEndpoint[];
  /** the endpoint of the machine with `state.index === machineIndex` */
  endpoint(machineIndex: number): IpmiEndpoint;
  /** established sessions of a machine's BMC */
  activeSessions(machineIndex: number): number;
  /** sessions of a machine's BMC still in their handshake */
  pendingSessions(machineIndex: number): number;
  /** active SOL payloads of a machine's BMC (0 or 1) */
  activeSolPayloads(machineIndex: number): number;
  /** SOL payloads a machine's BMC activated since it started */
  solActivations(machineIndex: number): number;
  serial(machineIndex: number): SerialLine;
  close(): Promise<void>;
}

interface Served {
  machine: SimMachine;
  socket: Socket;
  bmc: SimBmc;
  serial: SerialLine;
  endpoint: IpmiEndpoint;
}

function invalid(message: string): BmcError {
  return new BmcError('INVALID_ARGUMENT', `startIpmiServer: ${message}`);
}

function validate(o: IpmiServerOptions): Required<Pick<IpmiServerOptions, 'maxSessions' | 'sessionTimeoutMs' | 'handshakeTimeoutMs'>> {
  if (o.machines.length === 0) throw invalid('machines is empty');
  if (!Number.isInteger(o.port) || o.port < 0 || o.port > 65535) throw invalid(`port must be 0..65535, got ${o.port}`);
  if (Buffer.byteLength(o.user, 'utf8') > 16) throw invalid('user is longer than 16 bytes (IPMI user name limit)');
  if (Buffer.byteLength(o.password, 'utf8') > 20) throw invalid('password is longer than 20 bytes (IPMI 2.0 password limit)');
  const maxSessions = o.maxSessions ?? 4;
  if (!Number.isInteger(maxSessions) || maxSessions < 1) throw invalid(`maxSessions must be a positive integer, got ${maxSessions}`);
  const sessionTimeoutMs = o.sessionTimeoutMs ?? 60_000;
  const handshakeTimeoutMs = o.handshakeTimeoutMs ?? 10_000;
  if (!(sessionTimeoutMs > 0)) throw invalid(`sessionTimeoutMs must be > 0, got ${sessionTimeoutMs}`);
  if (!(handshakeTimeoutMs > 0)) throw invalid(`handshakeTimeoutMs must be > 0, got ${handshakeTimeoutMs}`);
  if (o.serialLines && o.serialLines.length !== o.machines.length) throw invalid('serialLines must have one line per machine');
  if (o.bindAll && o.machines.length > 1 && o.port !== 0) throw invalid('bindAll with several machines needs port 0 (one port per machine)');
  return { maxSessions, sessionTimeoutMs, handshakeTimeoutMs };
}

function defaultOnError(err: unknown, machine: SimMachine): void {
  process.emitWarning(`simulated BMC ${machine.state.address}: unexpected error handling a datagram: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
}

function bind(socket: Socket, port: number, address: string): Promise<void> {
  return new Promise((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(port, address, () => {
      socket.off('error', reject);
      resolve();
    });
  });
}

export async function startIpmiServer(options: IpmiServerOptions): Promise<IpmiServer> {
  const limits = validate(options);
  const served: Served[] = [];
  const delayed = new Set<NodeJS.Timeout>();
  const solSockets = new Set<Socket>();
  const random = options.random ?? Math.random;
  let closed = false;

  function serve(machine: SimMachine, position: number): Served {
    const socket = createSocket('udp4');
    const serial = options.serialLines?.[position] ?? new SerialLine(machine);
    const faults = () => machine.state.faults;
    // SOL on another UDP port (quirk ipmi-sol-other-port): a second socket, bound when the quirk is first seen
    let sol: { socket: Socket; port: number | undefined } | undefined;
    const otherSolPort = () => (hasQuirk(machine.state, 'ipmi-sol-other-port') ? sol?.port : undefined);
    const ensureSolSocket = (address: string) => {
      if (sol || closed) return;
      const s = createSocket('udp4');
      sol = { socket: s, port: undefined };
      s.on('message', (datagram, rinfo) => {
        if (!closed && !faults().noAnswer) entry.bmc.handle(datagram, { address: rinfo.address, port: rinfo.port, via: 'sol' });
      });
      s.on('error', () => undefined);
      s.bind(0, address, () => {
        if (sol?.socket === s) sol.port = s.address().port;
      });
      solSockets.add(s);
    };
    const send = (datagram: Buffer, remote: Remote) => {
      if (closed || faults().noAnswer) return;
      const from = remote.via === 'sol' && sol?.port !== undefined ? sol.socket : socket;
      const out = () => from.send(datagram, remote.port, remote.address, () => undefined);
      const modelled = answerDelay(machine.state.timing, 'ipmi');
      if (modelled === 'never') return;
      const delayMs = faults().delayMs + modelled;
      if (delayMs <= 0) return out();
      const timer = setTimeout(() => {
        delayed.delete(timer);
        if (!closed) out();
      }, delayMs);
      delayed.add(timer);
    };
    const entry: Served = {
      machine,
      socket,
      serial,
      endpoint: { address: '', port: 0 },
      bmc: new SimBmc({
        machine,
        serial,
        user: options.user,
        password: options.password,
        ...limits,
        port: () => entry.endpoint.port,
        solPort: otherSolPort,
        send,
        ...(options.solRetryMs ? { solRetryMs: options.solRetryMs } : {}),
        onError: (err) => (options.onError ?? defaultOnError)(err, machine),
      }),
    };
    socket.on('message', (datagram, rinfo) => {
      const f = faults();
      if (closed || f.noAnswer) return;
      if (f.dropRate > 0 && random() < f.dropRate) return;
      if (hasQuirk(machine.state, 'ipmi-sol-other-port')) ensureSolSocket(entry.endpoint.address);
      recordRequest(machine.state.timing, 'ipmi', 'datagram');
      entry.bmc.handle(datagram, { address: rinfo.address, port: rinfo.port });
    });
    socket.on('error', () => undefined); // ICMP unreachable from vanished clients
    return entry;
  }

  const sweeper = setInterval(() => served.forEach((s) => s.bmc.sweep()), Math.max(10, Math.min(1000, limits.handshakeTimeoutMs / 2, limits.sessionTimeoutMs / 2)));
  sweeper.unref();

  const stopAll = async () => {
    closed = true;
    clearInterval(sweeper);
    for (const t of delayed) clearTimeout(t);
    delayed.clear();
    for (const s of solSockets) s.close();
    solSockets.clear();
    await Promise.all(
      served.map(
        (s, i) =>
          new Promise<void>((resolve) => {
            s.bmc.close();
            if (!options.serialLines?.[i]) s.serial.close();
            try {
              s.socket.close(() => resolve());
            } catch {
              resolve(); // never bound
            }
          }),
      ),
    );
  };

  try {
    for (const [position, machine] of options.machines.entries()) {
      const entry = serve(machine, position);
      served.push(entry);
      const address = options.bindAll ? '0.0.0.0' : (options.host ?? machine.state.address);
      await bind(entry.socket, options.port, address);
      entry.endpoint = { address: address === '0.0.0.0' ? '127.0.0.1' : address, port: entry.socket.address().port };
    }
  } catch (cause) {
    await stopAll();
    throw new BmcError('CONFIG', `startIpmiServer: cannot bind UDP port ${options.port}: ${(cause as Error).message}`, { cause });
  }

  const indexed = new Map<number, Served>();
  for (const s of served) if (!indexed.has(s.machine.state.index)) indexed.set(s.machine.state.index, s);
  const byIndex = (machineIndex: number): Served => {
    const s = indexed.get(machineIndex);
    if (!s) throw invalid(`no machine with index ${machineIndex}`);
    return s;
  };

  return {
    endpoints: served.map((s) => s.endpoint),
    endpoint: (i) => byIndex(i).endpoint,
    activeSessions: (i) => byIndex(i).bmc.activeSessions(),
    pendingSessions: (i) => byIndex(i).bmc.pendingSessions(),
    activeSolPayloads: (i) => byIndex(i).bmc.activeSolPayloads(),
    solActivations: (i) => byIndex(i).bmc.solActivations(),
    serial: (i) => byIndex(i).serial,
    close: () => (closed ? Promise.resolve() : stopAll()),
  };
}
