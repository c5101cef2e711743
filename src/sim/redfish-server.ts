/**
 * The Redfish service of the simulated fleet: HTTPS, resources built from the DMTF mockup
 * (src/sim/mockup/) overlaid with each SimMachine's state, so the Redfish and the IPMI
 * view of a machine always agree.
 *
 * Routing (which machine answers a request):
 *  - `perMachineBind: true`: one HTTPS listener per machine on `state.address:port`
 *    (e.g. 127.10.0.1:8443), like a real BMC network. `port: 0` gives each its own free port.
 *  - `perMachineBind: false`: ONE listener on `host` (default 0.0.0.0) that serves the
 *    machine whose address the client connected to (`req.socket.localAddress`). On Linux
 *    all of 127.0.0.0/8 is local, so a client reaches machine 7 at https://127.10.0.8:port
 *    with no per-address sockets: a large fleet costs one socket plus a few small objects
 *    per machine. When the fleet has exactly one machine it answers on any address.
 *    Connections to an address of no machine get 404.
 *
 * Faults (machine.state.faults, read on every request, so tests may flip them at any time):
 * `redfishDisabled` refuses connections in per-machine mode (the listener is closed within
 * `faultPollMs`; connections that slip through are reset) and answers 404 in single-listener
 * mode; `noAnswer` and `redfishHang` accept and never answer; `delayMs` delays each answer;
 * `redfishStatus` answers everything with that status and a Redfish error body;
 * `wrongCredentials` fails every login (session POST and Basic).
 */
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { BmcError } from '../errors.js';
import { answerDelay, recordRequest } from './latency.js';
import type { SimMachine } from './machine.js';
import type { MachineContext, RequestCounters, ServerSettings } from './redfish/context.js';
import { errorReply, send, type Reply } from './redfish/http.js';
import { dispatch } from './redfish/routes.js';
import { SessionStore } from './redfish/sessions.js';
import { TaskStore } from './redfish/tasks.js';
import { vendorOf } from './redfish/vendors.js';
import { selfSignedCertificate } from './tls.js';

export type { RequestCounters } from './redfish/context.js';

export interface RedfishServerOptions {
  machines: readonly SimMachine[];
  /** 0: a free port (per machine in per-machine mode) */
  port: number;
  user: string;
  password: string;
  perMachineBind: boolean;
  /** single-listener mode: the address to bind. Default 0.0.0.0 (needed to route by local address). */
  host?: string;
  /** how long a firmware update task runs. Default 1000 ms. */
  taskDurationMs?: number;
  /** Redfish sessions per machine. Default 16. */
  maxSessions?: number;
  /** idle timeout of a session. Default 1800 s. */
  sessionTimeoutS?: number;
  /** Default: a self-signed certificate from selfSignedCertificate(). */
  tls?: { key: string; cert: string };
  /** per-machine mode: how often listeners follow `redfishDisabled`. Default 100 ms. */
  faultPollMs?: number;
}

export interface RedfishServer {
  readonly perMachineBind: boolean;
  /** PEM certificate every listener presents */
  readonly cert: string;
  /** address and port where machine `machineIndex` (position in `machines`) is served */
  endpoint(machineIndex: number): { host: string; port: number };
  /** https://host:port of machine `machineIndex` */
  url(machineIndex: number): string;
  /** live Redfish sessions of machine `machineIndex` */
  openSessions(machineIndex: number): number;
  readonly requests: RequestCounters;
  /** Stops listening, drops every connection (hanging ones too) and the task timers. */
  close(): Promise<void>;
}

interface Listener {
  server: Server | undefined;
  port: number;
  starting: boolean;
}

function check(ok: boolean, message: string): void {
  if (!ok) throw new BmcError('INVALID_ARGUMENT', `startRedfishServer: ${message}`);
}

const plainAddress = (address: string | undefined): string => (address ?? '').replace(/^::ffff:/, '');

export async function startRedfishServer(options: RedfishServerOptions): Promise<RedfishServer> {
  const { machines, port, perMachineBind } = options;
  check(machines.length > 0, 'machines is empty');
  check(Number.isInteger(port) && port >= 0 && port <= 65535, `port must be 0..65535, got ${port}`);
  check(typeof options.user === 'string' && options.user !== '', 'user must be a non-empty string');
  check(typeof options.password === 'string', 'password must be a string');
  const taskDurationMs = options.taskDurationMs ?? 1000;
  check(Number.isFinite(taskDurationMs) && taskDurationMs >= 0, 'taskDurationMs must be >= 0');
  const maxSessions = options.maxSessions ?? 16;
  check(Number.isInteger(maxSessions) && maxSessions > 0, 'maxSessions must be a positive integer');
  const settings: ServerSettings = { user: options.user, password: options.password, sessionTimeoutS: options.sessionTimeoutS ?? 1800 };
  check(settings.sessionTimeoutS > 0, 'sessionTimeoutS must be positive');
  const faultPollMs = options.faultPollMs ?? 100;

  const contexts: MachineContext[] = machines.map((machine, index) => ({
    index,
    machine,
    vendor: vendorOf(machine.state.manufacturer),
    sessions: new SessionStore(maxSessions, settings.sessionTimeoutS * 1000),
    tasks: new TaskStore(taskDurationMs),
  }));
  const byAddress = new Map<string, MachineContext>();
  for (const ctx of contexts) {
    check(!byAddress.has(ctx.machine.state.address), `two machines have the address ${ctx.machine.state.address}`);
    byAddress.set(ctx.machine.state.address, ctx);
  }
  const addresses = [...byAddress.keys()];
  const tls = options.tls ?? selfSignedCertificate('metal-bmc-sim', ['localhost', '127.0.0.1', ...(addresses.length <= 256 ? addresses : [])]);

  const requests: RequestCounters = { total: 0, perMachine: contexts.map(() => 0), byRoute: {}, uploadedBytes: 0, updateParameters: {} };
  const sockets = new Set<Socket>();
  const timers = new Set<NodeJS.Timeout>();
  let closing = false;

  const delay = (ms: number): Promise<void> =>
    new Promise((resolve) => {
      const timer = setTimeout(() => {
        timers.delete(timer);
        resolve();
      }, ms);
      timers.add(timer);
    });

  async function serve(ctx: MachineContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
    requests.total++;
    requests.perMachine[ctx.index] = (requests.perMachine[ctx.index] ?? 0) + 1;
    const faults = ctx.machine.state.faults;
    if (faults.redfishDisabled) {
      if (perMachineBind) req.socket.destroy();
      else reply(req, res, errorReply(404, 'ResourceNotFound', 'There is no Redfish service on this BMC.'));
      return;
    }
    const timing = ctx.machine.state.timing;
    recordRequest(timing, 'redfish', `${req.method ?? 'GET'} ${req.url ?? '/'}`);
    const modelled = answerDelay(timing, 'redfish');
    if (faults.noAnswer || faults.redfishHang || modelled === 'never') {
      req.resume(); // accepted, never answered; close() drops the connection
      return;
    }
    if (faults.delayMs + modelled > 0) await delay(faults.delayMs + modelled);
    if (faults.redfishStatus !== null) {
      const status = faults.redfishStatus;
      const id = status === 503 ? 'ServiceTemporarilyUnavailable' : status >= 500 ? 'InternalError' : 'GeneralError';
      reply(req, res, errorReply(status, id, `The simulated BMC answers every request with ${status}.`));
      return;
    }
    const path = req.url ?? '/';
    reply(req, res, await dispatch({ ctx, settings, counters: requests, req, method: req.method ?? 'GET', path }));
  }

  function reply(req: IncomingMessage, res: ServerResponse, r: Reply): void {
    send(res, r);
    if (!req.complete) req.resume();
  }

  function makeServer(route: (req: IncomingMessage) => MachineContext | undefined): Server {
    const server = createServer({ key: tls.key, cert: tls.cert, minVersion: 'TLSv1.2' }, (req, res) => {
      const ctx = route(req);
      if (ctx === undefined) {
        requests.total++;
        requests.byRoute.unknown = (requests.byRoute.unknown ?? 0) + 1;
        reply(req, res, errorReply(404, 'ResourceNotFound', `No simulated BMC at ${plainAddress(req.socket.localAddress)}.`));
        return;
      }
      serve(ctx, req, res).catch((err: unknown) => {
        reply(req, res, errorReply(500, 'InternalError', `The request failed due to an internal service error: ${String(err)}`));
      });
    });
    server.on('connection', (socket: Socket) => {
      sockets.add(socket);
      socket.once('close', () => sockets.delete(socket));
    });
    server.on('tlsClientError', (_err, socket) => socket.destroy());
    return server;
  }

  function listen(server: Server, host: string, p: number): Promise<number> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error): void => reject(new BmcError('CONFIG', `Redfish simulator cannot listen on ${host}:${p}: ${err.message}`, { cause: err }));
      server.once('error', onError);
      server.listen(p, host, () => {
        server.off('error', onError);
        const address = server.address();
        resolve(typeof address === 'object' && address !== null ? address.port : p);
      });
    });
  }

  const closeServer = (server: Server): Promise<void> => new Promise((resolve) => server.close(() => resolve()));

  // --- listeners ---
  const host = options.host ?? '0.0.0.0';
  let single: Server | undefined;
  let singlePort = port;
  const perMachine: Listener[] = [];

  const machineServer = (ctx: MachineContext): Server => {
    const server = makeServer(() => ctx);
    server.on('connection', (socket: Socket) => {
      if (ctx.machine.state.faults.redfishDisabled) socket.resetAndDestroy();
    });
    return server;
  };

  if (perMachineBind) {
    for (let i = 0; i < contexts.length; i++) perMachine.push({ server: undefined, port, starting: false });
    const started = await Promise.allSettled(
      contexts.map(async (ctx, i) => {
        const l = perMachine[i] as Listener;
        if (ctx.machine.state.faults.redfishDisabled && port !== 0) return;
        l.server = machineServer(ctx);
        l.port = await listen(l.server, ctx.machine.state.address, port);
        if (ctx.machine.state.faults.redfishDisabled) await closeServer(l.server).then(() => (l.server = undefined));
      }),
    );
    const failed = started.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed !== undefined) {
      await Promise.all(perMachine.map((l) => (l.server?.listening === true ? closeServer(l.server) : undefined)));
      throw failed.reason;
    }
  } else {
    single = makeServer((req) => byAddress.get(plainAddress(req.socket.localAddress)) ?? (contexts.length === 1 ? contexts[0] : undefined));
    singlePort = await listen(single, host, port);
  }

  /** Per-machine mode: a listener exists exactly while its machine's Redfish is not disabled. */
  function reconcile(): void {
    contexts.forEach((ctx, i) => {
      const l = perMachine[i] as Listener;
      const disabled = ctx.machine.state.faults.redfishDisabled;
      if (disabled && l.server !== undefined) {
        const server = l.server;
        l.server = undefined;
        server.close();
        for (const socket of sockets) {
          if (plainAddress(socket.localAddress) === ctx.machine.state.address && socket.localPort === l.port) socket.destroy();
        }
      } else if (!disabled && l.server === undefined && !l.starting && !closing) {
        l.starting = true;
        const server = machineServer(ctx);
        listen(server, ctx.machine.state.address, l.port).then(
          () => {
            l.starting = false;
            if (closing) server.close();
            else l.server = server;
          },
          () => (l.starting = false),
        );
      }
    });
  }
  const poll = perMachineBind ? setInterval(reconcile, faultPollMs) : undefined;
  poll?.unref();

  const at = (machineIndex: number): MachineContext => {
    const ctx = contexts[machineIndex];
    if (ctx === undefined) throw new BmcError('INVALID_ARGUMENT', `no machine at index ${machineIndex} (fleet of ${contexts.length})`);
    return ctx;
  };

  const endpoint = (machineIndex: number): { host: string; port: number } => {
    const ctx = at(machineIndex);
    return { host: ctx.machine.state.address, port: perMachineBind ? (perMachine[machineIndex] as Listener).port : singlePort };
  };

  return {
    perMachineBind,
    cert: tls.cert,
    requests,
    endpoint,
    url(machineIndex) {
      const e = endpoint(machineIndex);
      return `https://${e.host}:${e.port}`;
    },
    openSessions: (machineIndex) => at(machineIndex).sessions.size,
    async close() {
      if (closing) return;
      closing = true;
      if (poll !== undefined) clearInterval(poll);
      for (const timer of timers) clearTimeout(timer);
      timers.clear();
      for (const ctx of contexts) ctx.tasks.stop();
      const servers = single !== undefined ? [single] : perMachine.flatMap((l) => (l.server === undefined ? [] : [l.server]));
      const closed = servers.map(closeServer);
      for (const socket of sockets) socket.destroy();
      await Promise.all(closed);
    },
  };
}
