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
 * mode; `noAnswer` and `redfishHang` accept and never answer, `redfishStraggler` the next request
 * for its path only; `delayMs` delays each answer;
 * `redfishStatus` answers everything with that status and a Redfish error body;
 * `wrongCredentials` fails every login (session POST and Basic).
 *
 * Quirks of real BMCs (src/sim/quirks-redfish.ts, src/sim/redfish/quirks.ts) are read per request
 * too. TLS is terminated per connection rather than by one https.Server, so that the machine a
 * connection reaches decides its TLS (redfish-legacy-tls: TLS 1.2, SHA-1 handshake signatures,
 * an RSA-1024 SHA-1 certificate) before the handshake.
 */
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createNetServer, type Server, type Socket } from 'node:net';
import { createSecureContext, TLSSocket, type SecureContext } from 'node:tls';
import { BmcError } from '../errors.js';
import { answerDelay, recordRequest } from './latency.js';
import type { SimMachine } from './machine.js';
import type { MachineContext, RequestCounters, ServerSettings } from './redfish/context.js';
import { errorReply, send, type Reply } from './redfish/http.js';
import { newQuirkState, quirk, restarting, SLOW_ANSWER_MS, TRAILING_BYTES, wireShape } from './redfish/quirks.js';
import { dispatch } from './redfish/routes.js';
import { SessionStore } from './redfish/sessions.js';
import { TaskStore } from './redfish/tasks.js';
import { vendorOf } from './redfish/vendors.js';
import { keptCertificate, selfSignedCertificate } from './tls.js';

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
  /**
   * Keep the certificate in this file (JSON: key and cert, mode 0600): read when it exists, else
   * made and written, so a restarted fleet presents the same certificate, as a real BMC does.
   */
  tlsFile?: string;
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
  /** ends every session of machine `machineIndex`, as a BMC reboot does; how many there were */
  dropSessions(machineIndex: number): number;
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
    quirkState: newQuirkState(),
  }));
  const byAddress = new Map<string, MachineContext>();
  for (const ctx of contexts) {
    check(!byAddress.has(ctx.machine.state.address), `two machines have the address ${ctx.machine.state.address}`);
    byAddress.set(ctx.machine.state.address, ctx);
  }
  const addresses = [...byAddress.keys()];
  const altNames = ['localhost', '127.0.0.1', ...(addresses.length <= 256 ? addresses : [])];
  const tls = options.tls ?? keptCertificate(options.tlsFile, () => selfSignedCertificate('metal-bmc-sim', altNames));
  const modernContext = createSecureContext({ key: tls.key, cert: tls.cert, minVersion: 'TLSv1.2' });
  let legacyContext: SecureContext | undefined;
  /** redfish-legacy-tls: what an iDRAC 7/8 or an old MegaRAC offers; made on first use */
  const legacy = (): SecureContext => {
    if (legacyContext === undefined) {
      const old = selfSignedCertificate('metal-bmc-sim-legacy', altNames, 'legacy');
      legacyContext = createSecureContext({
        key: old.key,
        cert: old.cert,
        minVersion: 'TLSv1.2',
        maxVersion: 'TLSv1.2',
        ciphers: 'ECDHE-RSA-AES128-SHA:ECDHE-RSA-AES256-SHA:@SECLEVEL=0',
        sigalgs: 'RSA+SHA1',
      });
    }
    return legacyContext;
  };

  let renewedContext: SecureContext | undefined;
  /** redfish-certificate-renewed-after-update: the certificate a BMC presents after its restart into a new image; made on first use */
  const renewed = (): SecureContext => {
    renewedContext ??= createSecureContext({ ...selfSignedCertificate('metal-bmc-sim-renewed', altNames), minVersion: 'TLSv1.2' });
    return renewedContext;
  };
  /** The TLS context a new connection to `ctx` gets: its quirks choose. */
  const contextFor = (ctx: MachineContext | undefined): SecureContext => {
    if (ctx !== undefined && quirk(ctx, 'redfish-legacy-tls')) return legacy();
    if (ctx?.quirkState.certificateRenewed === true) return renewed();
    return modernContext;
  };

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
    const straggler = faults.redfishStraggler !== null && (req.url ?? '/').split('?')[0] === faults.redfishStraggler;
    if (straggler) ctx.machine.state.faults = { ...faults, redfishStraggler: null };
    if (faults.noAnswer || faults.redfishHang || straggler || modelled === 'never') {
      req.resume(); // accepted, never answered; close() drops the connection
      return;
    }
    if (faults.delayMs + modelled > 0) await delay(faults.delayMs + modelled);
    if (quirk(ctx, 'redfish-slow')) await delay(SLOW_ANSWER_MS);
    const unavailable = restarting(ctx);
    if (unavailable !== undefined) {
      reply(req, res, unavailable, ctx);
      return;
    }
    if (faults.redfishStatus !== null) {
      const status = faults.redfishStatus;
      const id = status === 503 ? 'ServiceTemporarilyUnavailable' : status >= 500 ? 'InternalError' : 'GeneralError';
      reply(req, res, errorReply(status, id, `The simulated BMC answers every request with ${status}.`), ctx);
      return;
    }
    const path = req.url ?? '/';
    if (faults.actRefused !== null && req.method === 'POST' && path.includes('/Actions/')) {
      reply(req, res, errorReply(faults.actRefused, 'GeneralError', `The simulated BMC refuses the action with ${faults.actRefused}.`), ctx);
      return;
    }
    const answer = await dispatch({ ctx, settings, counters: requests, req, method: req.method ?? 'GET', path });
    if (faults.actSilently && req.method === 'POST' && path.includes('/Actions/')) {
      if (!req.complete) req.resume(); // carried out, never answered; close() drops the connection
      return;
    }
    if (faults.actStatus !== null && req.method === 'POST' && path.includes('/Actions/')) {
      reply(req, res, errorReply(faults.actStatus, 'InternalError', `The simulated BMC carried out the action and answers ${faults.actStatus}.`), ctx);
      return;
    }
    reply(req, res, answer, ctx);
  }

  function reply(req: IncomingMessage, res: ServerResponse, r: Reply, ctx?: MachineContext): void {
    const shape = ctx === undefined ? undefined : wireShape(ctx);
    send(res, r, shape === undefined ? {} : { bom: shape.bom, close: shape.close, ...(shape.trailing ? { trailing: TRAILING_BYTES } : {}) });
    if (!req.complete) req.resume();
  }

  /** The machine of each TLS connection, chosen when it arrived. */
  const contextOf = new WeakMap<Socket, MachineContext | undefined>();
  /** redfish-certificate-renewed-after-update: connections made with the renewed certificate; any other did not outlive the restart */
  const afterRenewal = new WeakSet<Socket>();

  /**
   * A TCP listener that terminates TLS per connection (the machine's quirks choose the TLS
   * context) and hands the TLS socket to an HTTP server that never listens itself.
   */
  function makeServer(route: (socket: Socket) => MachineContext | undefined): Server {
    const http = createHttpServer((req, res) => {
      const ctx = contextOf.get(req.socket);
      if (ctx?.quirkState.certificateRenewed === true && !afterRenewal.has(req.socket)) {
        req.socket.destroy(); // a connection of before the BMC's restart
        return;
      }
      if (ctx === undefined) {
        requests.total++;
        requests.byRoute.unknown = (requests.byRoute.unknown ?? 0) + 1;
        reply(req, res, errorReply(404, 'ResourceNotFound', `No simulated BMC at ${plainAddress((req.socket as Socket).localAddress)}.`));
        return;
      }
      serve(ctx, req, res).catch((err: unknown) => {
        reply(req, res, errorReply(500, 'InternalError', `The request failed due to an internal service error: ${String(err)}`), ctx);
      });
    });
    const server = createNetServer((raw) => {
      sockets.add(raw);
      raw.once('close', () => sockets.delete(raw));
      raw.on('error', () => raw.destroy());
      if (raw.destroyed) return;
      const ctx = route(raw);
      const secure = new TLSSocket(raw, { isServer: true, secureContext: contextFor(ctx) });
      contextOf.set(secure, ctx);
      if (ctx?.quirkState.certificateRenewed === true) afterRenewal.add(secure);
      secure.on('error', () => raw.destroy()); // a failed handshake or a reset: the client sees it, the server goes on
      http.emit('connection', secure);
    });
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
    single = makeServer((socket) => byAddress.get(plainAddress(socket.localAddress)) ?? (contexts.length === 1 ? contexts[0] : undefined));
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
    dropSessions(machineIndex) {
      const { sessions } = at(machineIndex);
      return sessions.list().filter((s) => sessions.delete(s.id)).length;
    },
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
