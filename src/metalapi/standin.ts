/**
 * A metal-api stand-in for the local lab and for tests: the two endpoints metal-bmc uses,
 * HMAC checked like metal-stack/security, report bodies validated against the swagger,
 * answers shaped like metal-api's. A plain node:http server; state lives in memory.
 */
import { EventEmitter } from 'node:events';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { BmcError } from '../errors.js';
import { DEFAULT_HMAC_LIFETIME_SECONDS, verifyHeaders } from './hmac.js';
import { compileDefinition, loadSwagger, type SwaggerDocument } from './schema.js';
import type { MachineIpmi, MachineIpmiReport, MachineIpmiReportResponse, MachineIpmiReports } from './types.js';

export interface MetalApiStandInOptions {
  hmacKey: string;
  /** serve https with this certificate and key (PEM), as a metal-api behind a partition's private CA; default plain http */
  tls?: { cert: string; key: string };
  /** 0 (default) picks a free port */
  port?: number;
  host?: string;
  /** path prefix the endpoints live under, e.g. `/metal`; default none */
  basePath?: string;
  /** a file path or a loaded swagger document; default src/metalapi/metal-api.swagger.json */
  swaggerPath?: string | SwaggerDocument;
  /** user and password put into the ipmi block of machines learned from reports; default ADMIN/ADMIN */
  credentials?: Pick<MachineIpmi, 'user' | 'password'>;
  /** MAC of a BMC, for the ipmi block (reports carry none) */
  macFor?: (bmcIp: string, uuid: string) => string | undefined;
  /** answer the first `count` requests with `status` (and `headers`, e.g. a Retry-After) */
  failNext?: { count: number; status: number; headers?: Record<string, string> };
  /** metal-api's hmac-edit-lifetime: an X-Date older than this is refused with 403; default 30, 0 no limit */
  hmacLifetimeSeconds?: number;
  /** how far the stand-in's clock is ahead of this host's (negative: behind), for its HMAC check and its answers' Date header; default 0 */
  clockAheadMs?: number;
  /** the default IPMI port of new machines, as metal-api: 623 */
  ipmiPort?: number;
  /** a report holding an entry for which this is true is refused with 400, as metal-api refuses a body it cannot take */
  refuseEntry?: (uuid: string, entry: MachineIpmiReport) => boolean;
  /**
   * an entry for which this is true is taken but not applied: the answer is still 200, the entry in
   * neither created nor updated, as metal-api does for a machine of another partition or a create or
   * update that failed (it only logs them)
   */
  skipEntry?: (uuid: string, entry: MachineIpmiReport) => boolean;
}

export interface StandInRequest {
  method: string;
  path: string;
  status: number;
}

export interface MetalApiStandIn extends EventEmitter {
  readonly url: string;
  readonly port: number;
  /** every accepted POST body, in order */
  readonly reports: MachineIpmiReports[];
  /** machine uuid → ipmi block answered by GET /v1/machine/{id}/ipmi; tests may edit it */
  readonly machines: Map<string, MachineIpmi>;
  /** every request with the status it got */
  readonly requests: StandInRequest[];
  /** machine uuid → identify LED state, set from reports as metal-api does (LED-ON/LED-OFF only) */
  readonly ledStates: Map<string, string>;
  /** report entries metal-api would accept but log as an error and partly drop, e.g. an IndicatorLEDState other than LED-ON/LED-OFF */
  readonly problems: string[];
  setFailures(count: number, status?: number, headers?: Record<string, string>): void;
  /** moves the stand-in's clock (see clockAheadMs) */
  setClockAhead(ms: number): void;
  close(): Promise<void>;
  on(event: 'report', listener: (body: MachineIpmiReports, answer: MachineIpmiReportResponse) => void): this;
  on(event: string | symbol, listener: (...args: unknown[]) => void): this;
}

const MAX_BODY = 10 * 1024 * 1024;
/** metal-api's metal.EditAccess and ViewAccess as its oneOf prints them (%+v) */
const EDIT_ACCESS = '[k8s_kaas-edit maas-all-all-edit k8s_kaas-admin maas-all-all-admin]';
const VIEW_ACCESS = '[k8s_kaas-view maas-all-all-view k8s_kaas-edit maas-all-all-edit k8s_kaas-admin maas-all-all-admin]';
const logged = new WeakMap<ServerResponse, StandInRequest>();

/** the stand-in's clock per answer: its Date header says it, as metal-api's Go server does */
const clocks = new WeakMap<ServerResponse, Date>();

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const entry = logged.get(res);
  if (entry) entry.status = status;
  const text = JSON.stringify(body);
  res.writeHead(status, { date: (clocks.get(res) ?? new Date()).toUTCString(), ...headers, 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function sendError(res: ServerResponse, status: number, message: string, headers?: Record<string, string>): void {
  send(res, status, { statuscode: status, message }, headers);
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY) throw new BmcError('INVALID_ARGUMENT', `body larger than ${MAX_BODY} bytes`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** v1.MachineIPMIResponse with every field the swagger marks required. */
function machineResponse(id: string, ipmi: MachineIpmi, partitionId: string | undefined, ledState = ''): Record<string, unknown> {
  return {
    id,
    name: '',
    description: '',
    bios: { date: '', vendor: '', version: '' },
    events: { crash_loop: false, failed_machine_reclaim: false, log: [] },
    hardware: { cpu_cores: 0, disks: [], memory: 0, nics: [] },
    ipmi: {
      powermetric: null,
      powersupplies: [],
      last_updated: new Date().toISOString(),
      ...ipmi,
    },
    ledstate: { description: '', value: ledState },
    liveliness: 'Alive',
    state: { description: '', metal_hammer_version: '', value: '' },
    tags: [],
    ...(partitionId === undefined ? {} : { partition: { id: partitionId, bootconfig: {} } }),
  };
}

export async function startMetalApiStandIn(options: MetalApiStandInOptions): Promise<MetalApiStandIn> {
  if (typeof options?.hmacKey !== 'string' || options.hmacKey === '') {
    throw new BmcError('INVALID_ARGUMENT', 'startMetalApiStandIn: option hmacKey must be a non-empty string');
  }
  const host = options.host ?? '127.0.0.1';
  const basePath = (options.basePath ?? '').replace(/\/+$/, '');
  if (basePath !== '' && !basePath.startsWith('/')) throw new BmcError('INVALID_ARGUMENT', 'startMetalApiStandIn: option basePath must start with /');
  const credentials = options.credentials ?? { user: 'ADMIN', password: 'ADMIN' };
  const ipmiPort = options.ipmiPort ?? 623;
  const lifetime = options.hmacLifetimeSeconds ?? DEFAULT_HMAC_LIFETIME_SECONDS;
  let clockAheadMs = options.clockAheadMs ?? 0;
  const validateReports = compileDefinition(loadSwagger(options.swaggerPath), 'v1.MachineIpmiReports');

  const emitter = new EventEmitter();
  const reports: MachineIpmiReports[] = [];
  const machines = new Map<string, MachineIpmi>();
  const partitions = new Map<string, string>();
  const requests: StandInRequest[] = [];
  const ledStates = new Map<string, string>();
  const problems: string[] = [];
  let failures = { count: options.failNext?.count ?? 0, status: options.failNext?.status ?? 500, headers: options.failNext?.headers ?? {} };

  function ipmiReport(body: MachineIpmiReports, res: ServerResponse): void {
    if (body.partitionid === undefined || body.partitionid === '') {
      sendError(res, 400, 'partition id is empty');
      return;
    }
    const answer: MachineIpmiReportResponse = { created: [], updated: [] };
    const now = new Date().toISOString();
    for (const [uuid, report] of Object.entries(body.reports ?? {})) {
      if (options.skipEntry?.(uuid, report)) continue;
      const known = machines.get(uuid);
      if (known === undefined) answer.created.push(uuid);
      else answer.updated.push(uuid);
      // metal-api keeps the port of a known machine and replaces the host part.
      const port = known?.address.match(/:(\d+)$/)?.[1] ?? String(ipmiPort);
      machines.set(uuid, {
        address: `${report.BMCIp}:${port}`,
        user: known?.user ?? credentials.user,
        password: known?.password ?? credentials.password,
        interface: known?.interface ?? 'lanplus',
        mac: options.macFor?.(report.BMCIp, uuid) ?? known?.mac ?? '',
        fru: report.FRU ?? {},
        bmcversion: report.BMCVersion ?? '',
        powerstate: report.PowerState ?? '',
        powermetric: report.PowerMetric ?? null,
        powersupplies: report.PowerSupplies ?? [],
        last_updated: now,
      });
      partitions.set(uuid, body.partitionid);
      // metal-api's LEDStateFrom: anything but LED-ON/LED-OFF is logged ("unable to decode ledstate") and the old state kept
      if (report.IndicatorLEDState === 'LED-ON' || report.IndicatorLEDState === 'LED-OFF') ledStates.set(uuid, report.IndicatorLEDState);
      else problems.push(`unable to decode ledstate of ${uuid}: unknown LEDState:${report.IndicatorLEDState}`);
    }
    reports.push(body);
    send(res, 200, answer);
    emitter.emit('report', body, answer);
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const method = req.method ?? 'GET';
    const rawPath = (req.url ?? '/').split('?')[0] ?? '/';
    if (failures.count > 0) {
      failures = { ...failures, count: failures.count - 1 };
      await readBody(req).catch(() => '');
      sendError(res, failures.status, 'injected failure', failures.headers);
      return;
    }
    const auth = verifyHeaders(options.hmacKey, method, req.headers, clocks.get(res), lifetime);
    if (!auth.ok) {
      // metal-lib's UserAuth answers the HMAC user's error with 403; a request without the user's
      // scheme goes on as the guest, whom the route's role check refuses with 403 as well
      sendError(res, 403, auth.guest ? `you are not member in one of ${method === 'GET' ? VIEW_ACCESS : EDIT_ACCESS}` : auth.reason);
      return;
    }
    if (basePath !== '' && !rawPath.startsWith(`${basePath}/`)) {
      sendError(res, 404, `no route for ${rawPath}`);
      return;
    }
    const path = rawPath.slice(basePath.length);
    if (path === '/v1/machine/ipmi' && method === 'POST') {
      let body: unknown;
      try {
        body = JSON.parse(await readBody(req));
      } catch (err) {
        sendError(res, 400, `cannot read body: ${(err as Error).message}`);
        return;
      }
      const valid = validateReports(body);
      if (!valid.ok) {
        sendError(res, 400, `body does not match v1.MachineIpmiReports: ${valid.errors}`);
        return;
      }
      const refused = options.refuseEntry ? Object.entries((body as MachineIpmiReports).reports).find(([uuid, entry]) => options.refuseEntry?.(uuid, entry)) : undefined;
      if (refused) {
        sendError(res, 400, `machine ${refused[0]}: entry refused`);
        return;
      }
      ipmiReport(body as MachineIpmiReports, res);
      return;
    }
    const m = /^\/v1\/machine\/([^/]+)\/ipmi$/.exec(path);
    if (m && method === 'GET') {
      const id = decodeURIComponent(m[1] ?? '');
      const ipmi = machines.get(id);
      if (ipmi === undefined) sendError(res, 404, `no machine with id "${id}" found`);
      else send(res, 200, machineResponse(id, ipmi, partitions.get(id), ledStates.get(id)));
      return;
    }
    sendError(res, path === '/v1/machine/ipmi' || m ? 405 : 404, `no route for ${method} ${rawPath}`);
  }

  const onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    const entry: StandInRequest = { method: req.method ?? '', path: req.url ?? '', status: 0 };
    requests.push(entry);
    logged.set(res, entry);
    clocks.set(res, new Date(Date.now() + clockAheadMs));
    handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) sendError(res, 500, (err as Error).message);
    });
  };
  const server = options.tls === undefined ? createServer(onRequest) : createHttpsServer({ cert: options.tls.cert, key: options.tls.key }, onRequest);
  server.keepAliveTimeout = 1000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const urlHost = host.includes(':') ? `[${host}]` : host;

  const standIn = Object.assign(emitter, {
    url: `${options.tls === undefined ? 'http' : 'https'}://${urlHost}:${port}${basePath}`,
    port,
    reports,
    machines,
    requests,
    ledStates,
    problems,
    setFailures(count: number, status = 500, headers: Record<string, string> = {}): void {
      if (!Number.isInteger(count) || count < 0) throw new BmcError('INVALID_ARGUMENT', 'setFailures: count must be a non-negative integer');
      failures = { count, status, headers };
    },
    setClockAhead(ms: number): void {
      if (!Number.isFinite(ms)) throw new BmcError('INVALID_ARGUMENT', 'setClockAhead: ms must be a finite number');
      clockAheadMs = ms;
    },
    close(): Promise<void> {
      return new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  });
  return standIn as MetalApiStandIn;
}
