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
import { FRU_KEYS, type MachineIpmi, type MachineIpmiReport, type MachineIpmiReportResponse, type MachineIpmiReports, type MetalFru } from './types.js';

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
  /**
   * user and password of the machines a report creates, standing in for what metal-hammer's
   * registration sets at a real metal-api, whose report creates a machine without them; default
   * none: both stay empty, as metal-api's create leaves them
   */
  credentials?: Pick<MachineIpmi, 'user' | 'password'>;
  /** MAC of a BMC for a machine a report creates (reports carry none; metal-hammer's registration sets it); default '' */
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
  /**
   * machine uuid → its partition; tests may set one. A machine in `machines` without one (a test
   * put it there) is taken as in the partition of the report that names it and gets it
   */
  readonly partitions: Map<string, string>;
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
/** metal-api's defaultIPMIPort */
const DEFAULT_IPMI_PORT = 623;
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
function machineResponse(id: string, ipmi: MachineIpmi, partitionId: string | undefined, ledState = '', biosVersion = ''): Record<string, unknown> {
  return {
    id,
    name: '',
    description: '',
    bios: { date: '', vendor: '', version: biosVersion },
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

/** the identify LED states metal-api's LEDStateFrom decodes (metal/machine.go 94-103) */
const DECODABLE_LEDS: ReadonlySet<string> = new Set(['LED-ON', 'LED-OFF']);
const EMPTY_FRU: MetalFru = {};

/**
 * metal-api's updateFru (machine-service.go 962-975) with metal-lib's pointer.SafeDerefOrDefault
 * (v0.25.1, pkg/pointer/pointer.go 42-52): a field left out or sent as "" keeps the old value.
 * All eight fields, "" for none, as metal-api answers them.
 */
function updatedFru(old: MetalFru, sent: MetalFru | null | undefined): MetalFru {
  const fru: MetalFru = {};
  for (const key of FRU_KEYS) {
    const value = sent?.[key];
    fru[key] = typeof value === 'string' && value !== '' ? value : (old[key] ?? '');
  }
  return fru;
}

/**
 * The address after a report (machine-service.go 889-897): the host replaced, a port kept;
 * undefined for one with more than one colon, which metal-api leaves alone and does not update.
 */
function updatedAddress(old: string, bmcIp: string): string | undefined {
  const parts = old.split(':');
  if (parts.length > 2) return undefined;
  return `${bmcIp}:${parts.length === 2 ? parts[1] : String(DEFAULT_IPMI_PORT)}`;
}

/** What the stand-in knows of machines, as metal-api's database holds it. */
interface MachineStore {
  machines: Map<string, MachineIpmi>;
  partitions: Map<string, string>;
  ledStates: Map<string, string>;
  biosVersions: Map<string, string>;
  problems: string[];
}

type StoreRules = Pick<MetalApiStandInOptions, 'credentials' | 'macFor' | 'skipEntry'> & { ipmiPort: number };

/**
 * metal-api's ipmiReport (metal-api a405f46, cmd/metal-api/internal/service/machine-service.go
 * 798-960): a uuid it does not know in the report's partition is created with only the BMC's
 * address and LED state, FRU and versions waiting for the next report; a known machine is updated
 * field by field, a field the report leaves empty keeping what metal-api has.
 */
function applyReport(store: MachineStore, body: MachineIpmiReports, rules: StoreRules): MachineIpmiReportResponse {
  const { machines, partitions, ledStates, biosVersions, problems } = store;
  const partition = body.partitionid;
  const answer: MachineIpmiReportResponse = { created: [], updated: [] };
  const now = new Date().toISOString();
  const setLed = (uuid: string, state: string): void => {
    // metal-api's LEDStateFrom: anything but LED-ON/LED-OFF is logged ("unable to decode ledstate") and the old state kept
    if (DECODABLE_LEDS.has(state)) ledStates.set(uuid, state);
    else problems.push(`unable to decode ledstate of ${uuid}: unknown LEDState:${state}`);
  };
  // metal-api searches the partition's machines once, before creating any: a machine created by
  // this report is not updated by it as well
  const known = new Set([...machines.keys()].filter((uuid) => (partitions.get(uuid) ?? partition) === partition));
  const entries = Object.entries(body.reports ?? {}).filter(([uuid, report]) => uuid !== '' && !rules.skipEntry?.(uuid, report));
  for (const [uuid, report] of entries) {
    if (known.has(uuid)) continue;
    // the create of a uuid another partition holds fails (rethinkdb's conflict), which metal-api only logs
    if (machines.has(uuid)) {
      problems.push(`could not create machine ${uuid}: entity already exists (partition ${partitions.get(uuid) ?? ''})`);
      continue;
    }
    machines.set(uuid, createdIpmi(uuid, report, now, rules));
    partitions.set(uuid, partition);
    setLed(uuid, report.IndicatorLEDState);
    answer.created.push(uuid);
  }
  for (const [uuid, report] of entries) {
    const old = known.has(uuid) ? machines.get(uuid) : undefined;
    if (old === undefined) continue;
    const address = updatedAddress(old.address, report.BMCIp);
    if (address === undefined) {
      problems.push(`not updating ipmi of ${uuid}, address is garbage: ${old.address}`);
      continue;
    }
    machines.set(uuid, updatedIpmi(old, address, report, now));
    partitions.set(uuid, partition);
    if (report.BIOSVersion !== '') biosVersions.set(uuid, report.BIOSVersion);
    setLed(uuid, report.IndicatorLEDState);
    answer.updated.push(uuid);
  }
  return answer;
}

/** metal-api's create (machine-service.go 849-858): the address on the default port, nothing else of the report */
function createdIpmi(uuid: string, report: MachineIpmiReport, now: string, rules: StoreRules): MachineIpmi {
  return {
    address: `${report.BMCIp}:${rules.ipmiPort}`,
    user: rules.credentials?.user ?? '',
    password: rules.credentials?.password ?? '',
    interface: '',
    mac: rules.macFor?.(report.BMCIp, uuid) ?? '',
    fru: updatedFru(EMPTY_FRU, undefined),
    bmcversion: '',
    powerstate: '',
    powermetric: null,
    powersupplies: [],
    last_updated: now,
  };
}

/** metal-api's update (machine-service.go 909-949): an empty version or power state and a null metric keep the old */
function updatedIpmi(old: MachineIpmi, address: string, report: MachineIpmiReport, now: string): MachineIpmi {
  return {
    ...old,
    address,
    fru: updatedFru(old.fru, report.FRU),
    bmcversion: report.BMCVersion === '' ? old.bmcversion : report.BMCVersion,
    powerstate: report.PowerState === '' ? old.powerstate : report.PowerState,
    powermetric: report.PowerMetric ?? old.powermetric ?? null,
    // replaced as a whole: a report without power supplies clears them
    powersupplies: report.PowerSupplies.map((ps) => ({ status: { health: ps.status.health, state: ps.status.state } })),
    last_updated: now,
  };
}

export async function startMetalApiStandIn(options: MetalApiStandInOptions): Promise<MetalApiStandIn> {
  if (typeof options?.hmacKey !== 'string' || options.hmacKey === '') {
    throw new BmcError('INVALID_ARGUMENT', 'startMetalApiStandIn: option hmacKey must be a non-empty string');
  }
  const host = options.host ?? '127.0.0.1';
  const basePath = (options.basePath ?? '').replace(/\/+$/, '');
  if (basePath !== '' && !basePath.startsWith('/')) throw new BmcError('INVALID_ARGUMENT', 'startMetalApiStandIn: option basePath must start with /');
  const ipmiPort = options.ipmiPort ?? DEFAULT_IPMI_PORT;
  const lifetime = options.hmacLifetimeSeconds ?? DEFAULT_HMAC_LIFETIME_SECONDS;
  let clockAheadMs = options.clockAheadMs ?? 0;
  const validateReports = compileDefinition(loadSwagger(options.swaggerPath), 'v1.MachineIpmiReports');

  const emitter = new EventEmitter();
  const reports: MachineIpmiReports[] = [];
  const machines = new Map<string, MachineIpmi>();
  const partitions = new Map<string, string>();
  const biosVersions = new Map<string, string>();
  const requests: StandInRequest[] = [];
  const ledStates = new Map<string, string>();
  const problems: string[] = [];
  const store: MachineStore = { machines, partitions, ledStates, biosVersions, problems };
  const rules: StoreRules = { ...options, ipmiPort };
  let failures = { count: options.failNext?.count ?? 0, status: options.failNext?.status ?? 500, headers: options.failNext?.headers ?? {} };

  function ipmiReport(body: MachineIpmiReports, res: ServerResponse): void {
    // metal-api's words (machine-service.go 808-811)
    if (body.partitionid === undefined || body.partitionid === '') {
      sendError(res, 400, 'partition id must not be empty');
      return;
    }
    const answer = applyReport(store, body, rules);
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
      else send(res, 200, machineResponse(id, ipmi, partitions.get(id), ledStates.get(id), biosVersions.get(id)));
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
    partitions,
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
