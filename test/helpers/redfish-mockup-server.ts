/**
 * An HTTPS Redfish server over the DMTF mockup tree (public-rackmount1, BSD-3, see
 * test/fixtures/redfish/LICENSE-DMTF.md) or another recorded tree (`tree`, e.g. one of
 * test/fixtures/redfish-vendors/) for tests: static resources, sessions,
 * Basic auth, PATCH/POST recording, reset actions with power state, update tasks,
 * a multipart push URI, and fault switches. Plus a TCP server that never completes a
 * TLS handshake. Written independently of src/redfish so that bugs do not cancel out.
 */
import { execFile } from 'node:child_process';
import { createHash, randomBytes, X509Certificate } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import { createServer } from 'node:https';
import { createServer as createNetServer, type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

export const MOCKUP_ROOT = fileURLToPath(new URL('../fixtures/redfish/public-rackmount1/', import.meta.url));
const SESSIONS = '/redfish/v1/SessionService/Sessions';

export interface RecordedRequest {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  body?: unknown;
}

export type Fault =
  | { kind: 'status'; status: number; message?: string; retryAfter?: string; messageId?: string } // message: `{token}` and `{password}` are substituted; messageId: the ExtendedInfo's (default Base.1.15.Status<status>)
  /** a PATCH applied as usual, then answered `status` with no body (a BMC answering 202 or 204 to a change it made) */
  | { kind: 'applied-status'; status: number }
  | { kind: 'hang' }
  | { kind: 'malformed' }
  /** a 200 whose body is `bytes` long (streamed, never held), with or without Content-Length; `sent` counts what went out */
  | { kind: 'huge'; bytes: number; declareLength: boolean; sent?: { bytes: number } }
  | { kind: 'redirect-loop' }
  /** a 302 to `location` */
  | { kind: 'redirect'; location: string }
  | { kind: 'reset' }
  /** the connection reset, without an answer, once `until` settles */
  | { kind: 'reset-held'; until: Promise<void> }
  /** answered as usual once `until` settles */
  | { kind: 'held'; until: Promise<void> }
  /** handled at once (a login creates its session), but the answer leaves only once `until` settles */
  | { kind: 'answer-held'; until: Promise<void> };

export interface FaultRule {
  fault: Fault;
  method?: string;
  /** Prefix of the request path, or a pattern. Default: every request. */
  path?: string | RegExp;
  /** Applies this many times, then disappears. Default: until clearFaults(). */
  times?: number;
  /** Lets this many matching requests through first (a read after a write fails, the one before it not). Default 0. */
  skip?: number;
}

export interface MockupServerOptions {
  /**
   * The directory served as /redfish/v1 (one index.json per resource). Default: the DMTF
   * public-rackmount1 mockup. With another tree the UpdateService is served as recorded
   * (no MultipartHttpPushUri added unless `multipartPushUri` names one).
   */
  tree?: string;
  user?: string;
  password?: string;
  /** SessionService login available. Default true (false: POST Sessions answers 405). */
  sessions?: boolean;
  /** ETag header on GETs, If-Match checked on PATCH. Default false. */
  etags?: boolean;
  /** 428 for a PATCH without If-Match. Default false. */
  requireIfMatch?: boolean;
  /** Added to the UpdateService as MultipartHttpPushUri; null: none. Default: `/redfish/v1/UpdateService/upload` on the DMTF mockup, the tree's own on another tree. */
  multipartPushUri?: string | null;
  /** Added to the UpdateService as MaxImageSizeBytes. Default: none. */
  maxImageSizeBytes?: number;
  /** ForceOff/GracefulShutdown take effect after this delay. Default 0. */
  powerOffDelayMs?: number;
  /** GETs of a task until it ends. Default 2. */
  taskSteps?: number;
  taskOutcome?: 'Completed' | 'Exception';
  /** Answer updates with a task monitor (202 while running, 204 at the end) instead of the task. */
  taskMonitor?: boolean;
  /** The task's Location as an absolute URL of this origin (the BMC names itself): its scheme and host as given here, e.g. `http://bmc-r01.example`. */
  taskLocationOrigin?: string;
  /** A login answered 201 with its token and Location, and this body instead of the session's JSON (HTML, cut short). */
  loginBody?: string;
  /** The status for a request whose X-Auth-Token names no session (expired, deleted). Default 401; some BMCs answer 403. */
  unknownSessionStatus?: 401 | 403;
}

export interface Upload {
  contentType: string;
  contentLength?: string;
  body: Buffer;
}

export interface MockupServer {
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly password: string;
  readonly certPem: string;
  readonly fingerprint256: string;
  readonly requests: RecordedRequest[];
  readonly uploads: Upload[];
  /** Bytes of multipart uploads received so far, updated while they stream in. */
  uploadBytesReceived(): number;
  sessionCount(): number;
  /** TCP connections open to the server now */
  openConnections(): number;
  addFault(rule: FaultRule): void;
  clearFaults(): void;
  /** The live JSON of a resource (mutations are served), undefined when absent. */
  resource(path: string): Record<string, unknown> | undefined;
  setResource(path: string, json: Record<string, unknown>): void;
  removeResource(path: string): void;
  /** Deletes a property of a resource; `key` may be a dotted path ("Links.ManagedBy"). */
  dropProperty(path: string, key: string): void;
  expireSessions(): void;
  close(): Promise<void>;
}

export interface TestCert {
  key: string;
  cert: string;
  fingerprint256: string;
}

let certPromise: Promise<TestCert> | undefined;

/** A self-signed P-256 certificate for localhost/127.0.0.1, generated once per test process. */
export function testCert(): Promise<TestCert> {
  certPromise ??= (async () => {
    const dir = await mkdtemp(join(tmpdir(), 'redfish-cert-'));
    try {
      await promisify(execFile)('openssl', [
        'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
        '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1',
        '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'),
      ]);
      const key = await readFile(join(dir, 'key.pem'), 'utf8');
      const cert = await readFile(join(dir, 'cert.pem'), 'utf8');
      return { key, cert, fingerprint256: new X509Certificate(cert).fingerprint256 };
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  })();
  return certPromise;
}

function norm(path: string): string {
  const p = decodeURIComponent(path.split('?')[0] ?? '').replace(/\/+$/, '');
  return p === '' ? '/' : p;
}

function loadTree(dir: string, base: string, into: Map<string, Record<string, unknown>>): void {
  for (const name of readdirSync(dir)) {
    const full = join(dir, name);
    if (statSync(full).isDirectory()) loadTree(full, `${base}/${name}`, into);
    else if (name === 'index.json') into.set(base, JSON.parse(readFileSync(full, 'utf8')) as Record<string, unknown>);
  }
}

function redfishError(status: number, message: string, messageId = `Base.1.15.Status${status}`): string {
  return JSON.stringify({
    error: {
      code: 'Base.1.15.GeneralError',
      message: 'A general error has occurred. See ExtendedInfo for more information.',
      '@Message.ExtendedInfo': [{ MessageId: messageId, Message: message, Severity: 'Critical' }],
    },
  });
}

function merge(target: Record<string, unknown>, patch: Record<string, unknown>): void {
  for (const [k, v] of Object.entries(patch)) {
    const cur = target[k];
    if (typeof v === 'object' && v !== null && !Array.isArray(v) && typeof cur === 'object' && cur !== null && !Array.isArray(cur)) {
      merge(cur as Record<string, unknown>, v as Record<string, unknown>);
    } else target[k] = v;
  }
}

export async function startMockupServer(options: MockupServerOptions = {}): Promise<MockupServer> {
  const { key, cert, fingerprint256 } = await testCert();
  const user = options.user ?? 'admin';
  const password = options.password ?? 'c0rrect-h0rse';
  const resources = new Map<string, Record<string, unknown>>();
  loadTree(options.tree ?? MOCKUP_ROOT, '/redfish/v1', resources);
  const updateService = resources.get('/redfish/v1/UpdateService');
  const recordedPushUri = typeof updateService?.MultipartHttpPushUri === 'string' ? updateService.MultipartHttpPushUri : null;
  const pushUri = options.multipartPushUri === undefined ? (options.tree === undefined ? '/redfish/v1/UpdateService/upload' : recordedPushUri) : options.multipartPushUri;
  if (pushUri !== null && updateService !== undefined) updateService.MultipartHttpPushUri = pushUri;
  if (options.maxImageSizeBytes !== undefined && updateService !== undefined) updateService.MaxImageSizeBytes = options.maxImageSizeBytes;
  // SimpleUpdate: the DMTF mockup's target, and whatever target the tree's UpdateService names
  const simpleUpdateTargets = new Set(['/redfish/v1/UpdateService/Actions/SimpleUpdate']);
  const recordedTarget = ((updateService?.Actions as Record<string, Record<string, unknown>> | undefined)?.['#UpdateService.SimpleUpdate'])?.target;
  if (typeof recordedTarget === 'string') simpleUpdateTargets.add(norm(recordedTarget));
  // StartUpdate (a tree that lists it, Supermicro X12 and later): starts a task as SimpleUpdate does
  const startUpdateTarget = ((updateService?.Actions as Record<string, Record<string, unknown>> | undefined)?.['#UpdateService.StartUpdate'])?.target;
  if (typeof startUpdateTarget === 'string') simpleUpdateTargets.add(norm(startUpdateTarget));
  const sessions = new Map<string, string>(); // token → session id
  const requests: RecordedRequest[] = [];
  const uploads: Upload[] = [];
  let faults: FaultRule[] = [];
  let uploadBytes = 0;
  let taskSeq = 0;
  const sockets = new Set<Socket>();
  const tasks = new Map<string, { gets: number; path: string }>();

  const send = (res: ServerResponse, status: number, body?: unknown, headers: Record<string, string> = {}): void => {
    // 204 and 304 carry no body (HTTP), whatever the caller passed
    const text = body === undefined || status === 204 || status === 304 ? '' : typeof body === 'string' ? body : JSON.stringify(body);
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers });
    res.end(text);
  };
  /** `{"Name":"xxxx...` for `fault.bytes` bytes, written as the client reads, so memory stays flat on both sides */
  const sendHuge = (res: ServerResponse, fault: Fault & { kind: 'huge' }): void => {
    res.writeHead(200, { 'content-type': 'application/json', ...(fault.declareLength ? { 'content-length': String(fault.bytes) } : {}) });
    const chunk = Buffer.alloc(64 * 1024, 0x78);
    let left = fault.bytes;
    const pump = (): void => {
      while (left > 0) {
        const piece = left === fault.bytes ? Buffer.concat([Buffer.from('{"Name":"'), chunk]).subarray(0, Math.min(left, chunk.length)) : chunk.subarray(0, Math.min(left, chunk.length));
        left -= piece.length;
        if (fault.sent) fault.sent.bytes += piece.length;
        if (!res.write(piece)) return void res.once('drain', pump);
      }
      res.end();
    };
    res.on('close', () => (left = 0));
    pump();
  };
  const etagOf = (json: Record<string, unknown>): string =>
    typeof json['@odata.etag'] === 'string' ? json['@odata.etag'] : `W/"${createHash('sha1').update(JSON.stringify(json)).digest('hex').slice(0, 16)}"`;

  function authorized(req: IncomingMessage): boolean {
    const token = req.headers['x-auth-token'];
    if (typeof token === 'string' && sessions.has(token)) return true;
    const auth = req.headers.authorization;
    return auth === `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
  }

  function matchFault(method: string, path: string): Fault | undefined {
    const rule = faults.find(
      (r) => (r.method === undefined || r.method === method) && (r.path === undefined || (typeof r.path === 'string' ? path.startsWith(r.path) : r.path.test(path))),
    );
    if (rule === undefined) return undefined;
    if (rule.skip !== undefined && rule.skip > 0) {
      rule.skip -= 1;
      return undefined;
    }
    if (rule.times !== undefined && --rule.times <= 0) faults = faults.filter((r) => r !== rule);
    return rule.fault;
  }

  function createTask(res: ServerResponse): void {
    taskSeq += 1;
    const path = `/redfish/v1/TaskService/Tasks/upd${taskSeq}`;
    const task = { '@odata.id': path, '@odata.type': '#Task.v1_7_0.Task', Id: `upd${taskSeq}`, TaskState: 'Running', PercentComplete: 0, Messages: [] };
    resources.set(path, task);
    const monitor = `/redfish/v1/TaskService/TaskMonitors/upd${taskSeq}`;
    tasks.set(path, { gets: 0, path });
    tasks.set(monitor, { gets: 0, path });
    const location = options.taskMonitor === true ? monitor : path;
    send(res, 202, options.taskMonitor === true ? undefined : task, { location: `${options.taskLocationOrigin ?? ''}${location}` });
  }

  function advanceTask(path: string, res: ServerResponse): boolean {
    const t = tasks.get(path);
    if (t === undefined) return false;
    const task = resources.get(t.path) as Record<string, unknown>;
    const steps = options.taskSteps ?? 2;
    t.gets += 1;
    if (task.TaskState === 'Running') {
      task.PercentComplete = Math.min(100, Math.round((t.gets * 100) / steps));
      if (t.gets >= steps) {
        task.TaskState = options.taskOutcome ?? 'Completed';
        task.TaskStatus = task.TaskState === 'Completed' ? 'OK' : 'Critical';
        if (task.TaskState === 'Exception') task.Messages = [{ MessageId: 'Update.1.0.VerificationFailed', Message: 'Image verification failed' }];
      }
    }
    if (path !== t.path) send(res, task.TaskState === 'Running' ? 202 : 204);
    else send(res, 200, task);
    return true;
  }

  /** AllowableValues of a parameter in a served ActionInfo resource; undefined when not served. */
  function actionInfoAllowable(path: unknown, parameter: string): string[] | undefined {
    if (typeof path !== 'string') return undefined;
    const parameters = resources.get(norm(path))?.Parameters as Array<Record<string, unknown>> | undefined;
    return parameters?.find((p) => p.Name === parameter)?.AllowableValues as string[] | undefined;
  }

  function reset(systemPath: string, body: unknown, res: ServerResponse): void {
    const system = resources.get(systemPath);
    const action = (system?.Actions as Record<string, Record<string, unknown>> | undefined)?.['#ComputerSystem.Reset'];
    const type = (body as { ResetType?: unknown } | undefined)?.ResetType;
    const allowed = (action?.['ResetType@Redfish.AllowableValues'] as string[] | undefined) ?? actionInfoAllowable(action?.['@Redfish.ActionInfo'], 'ResetType');
    if (system === undefined || typeof type !== 'string' || (allowed !== undefined && !allowed.includes(type))) {
      send(res, 400, redfishError(400, `The value ${String(type)} for the parameter ResetType is not in the list of acceptable values.`));
      return;
    }
    if (type === 'ForceOff' || type === 'GracefulShutdown') {
      const delay = options.powerOffDelayMs ?? 0;
      if (delay === 0) system.PowerState = 'Off';
      else setTimeout(() => (system.PowerState = 'Off'), delay).unref();
    } else system.PowerState = 'On';
    send(res, 204);
  }

  function route(req: IncomingMessage, res: ServerResponse, path: string, body: unknown): void {
    const method = req.method ?? 'GET';
    if (method === 'POST' && path === SESSIONS) {
      if (options.sessions === false) return send(res, 405, redfishError(405, 'The action is not supported.'));
      const b = body as { UserName?: unknown; Password?: unknown } | undefined;
      if (b?.UserName !== user || b?.Password !== password) return send(res, 401, redfishError(401, 'Invalid username or password.'));
      const id = randomBytes(8).toString('hex');
      const token = randomBytes(16).toString('hex');
      sessions.set(token, id);
      const location = `${SESSIONS}/${id}`;
      return send(res, 201, options.loginBody ?? { '@odata.id': location, Id: id, UserName: user }, { 'x-auth-token': token, location });
    }
    const isRoot = path === '/redfish/v1' || path === '/redfish';
    if (!(isRoot && method === 'GET') && !authorized(req)) {
      const status = typeof req.headers['x-auth-token'] === 'string' ? (options.unknownSessionStatus ?? 401) : 401;
      return send(res, status, redfishError(status, 'There is no valid session established with the implementation.'), status === 401 ? { 'www-authenticate': 'Basic realm="redfish"' } : undefined);
    }
    if (method === 'GET') {
      if (advanceTask(path, res)) return;
      const r = resources.get(path);
      if (r === undefined) return send(res, 404, redfishError(404, `The resource at the URI ${path} was not found.`));
      // a recorded error body (a mockup creator stores what the BMC answered) is answered as the 404 it was
      if (r['@odata.id'] === undefined && typeof r.error === 'object') return send(res, 404, r);
      return send(res, 200, r, options.etags === true ? { etag: etagOf(r) } : {});
    }
    if (method === 'DELETE' && path.startsWith(`${SESSIONS}/`)) {
      const id = path.slice(SESSIONS.length + 1);
      for (const [t, sid] of sessions) if (sid === id) sessions.delete(t);
      return send(res, 204);
    }
    if (method === 'PATCH') {
      const r = resources.get(path);
      if (r === undefined) return send(res, 404, redfishError(404, `The resource at the URI ${path} was not found.`));
      const ifMatch = req.headers['if-match'];
      if (ifMatch === undefined && options.requireIfMatch === true) return send(res, 428, redfishError(428, 'If-Match required.'));
      if (ifMatch !== undefined && ifMatch !== '*' && ifMatch !== etagOf(r)) return send(res, 412, redfishError(412, 'ETag mismatch.'));
      merge(r, (body ?? {}) as Record<string, unknown>);
      return send(res, 204);
    }
    if (method === 'POST' && path.endsWith('/Actions/ComputerSystem.Reset')) return reset(path.slice(0, -'/Actions/ComputerSystem.Reset'.length), body, res);
    if (method === 'POST' && simpleUpdateTargets.has(path)) return createTask(res);
    send(res, 405, redfishError(405, `${method} is not allowed on ${path}.`));
  }

  const server = createServer({ key, cert }, (req, res) => {
    const method = req.method ?? 'GET';
    const path = norm(req.url ?? '/');
    const recorded: RecordedRequest = { method, path, headers: req.headers };
    requests.push(recorded);
    const fault = matchFault(method, path);
    if (fault?.kind === 'hang') return;
    if (fault?.kind === 'reset') return void req.socket.destroy();
    if (fault?.kind === 'reset-held') return void fault.until.then(() => req.socket.destroy());
    const chunks: Buffer[] = [];
    const isUpload = method === 'POST' && pushUri !== null && path === pushUri;
    req.on('data', (c: Buffer) => {
      chunks.push(c);
      if (isUpload) uploadBytes += c.length;
    });
    if (fault?.kind === 'answer-held') {
      const end = res.end.bind(res) as (...args: unknown[]) => typeof res;
      const until = fault.until;
      res.end = ((...args: unknown[]) => {
        void until.then(() => end(...args));
        return res;
      }) as typeof res.end;
    }
    req.on('end', () => {
      if (fault?.kind === 'held') void fault.until.then(() => answer(Buffer.concat(chunks)));
      else answer(Buffer.concat(chunks));
    });
    const answer = (raw: Buffer): void => {
      if (fault?.kind === 'status') {
        const token = req.headers['x-auth-token'];
        const msg = (fault.message ?? `Injected status ${fault.status}.`).replace('{token}', typeof token === 'string' ? token : '').replace('{password}', password);
        return send(res, fault.status, redfishError(fault.status, msg, fault.messageId), fault.retryAfter === undefined ? undefined : { 'retry-after': fault.retryAfter });
      }
      if (fault?.kind === 'applied-status') {
        const r = resources.get(path);
        recorded.body = raw.length > 0 ? (JSON.parse(raw.toString('utf8')) as unknown) : undefined;
        if (method === 'PATCH' && r !== undefined && recorded.body !== undefined) merge(r, recorded.body as Record<string, unknown>);
        return send(res, fault.status);
      }
      if (fault?.kind === 'malformed') return send(res, 200, '{"@odata.id": "/redfish/v1", "Name": ');
      if (fault?.kind === 'huge') return sendHuge(res, fault);
      if (fault?.kind === 'redirect-loop') return send(res, 302, undefined, { location: path });
      if (fault?.kind === 'redirect') return send(res, 302, undefined, { location: fault.location });
      if (isUpload) {
        if (!authorized(req)) return send(res, 401, redfishError(401, 'There is no valid session established with the implementation.'));
        uploads.push({ contentType: req.headers['content-type'] ?? '', contentLength: req.headers['content-length'], body: raw });
        return createTask(res);
      }
      let body: unknown;
      if (raw.length > 0) {
        try {
          body = JSON.parse(raw.toString('utf8'));
        } catch {
          return send(res, 400, redfishError(400, 'The request body submitted was malformed JSON.'));
        }
      }
      recorded.body = body;
      route(req, res, path, body);
    };
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;

  const drop = (path: string, keyPath: string): void => {
    const parts = keyPath.split('.');
    let cur: Record<string, unknown> | undefined = resources.get(path);
    for (const p of parts.slice(0, -1)) cur = cur?.[p] as Record<string, unknown> | undefined;
    if (cur !== undefined) delete cur[parts.at(-1) as string];
  };

  return {
    host: '127.0.0.1',
    port,
    user,
    password,
    certPem: cert,
    fingerprint256,
    requests,
    uploads,
    uploadBytesReceived: () => uploadBytes,
    sessionCount: () => sessions.size,
    openConnections: () => sockets.size,
    addFault: (rule) => void faults.push({ ...rule }),
    clearFaults: () => void (faults = []),
    resource: (path) => resources.get(norm(path)),
    setResource: (path, json) => void resources.set(norm(path), json),
    removeResource: (path) => void resources.delete(norm(path)),
    dropProperty: (path, keyPath) => drop(norm(path), keyPath),
    expireSessions: () => sessions.clear(),
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Accepts TCP connections and never says a word: a TLS handshake that never completes. */
export async function startSilentServer(): Promise<{ host: string; port: number; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server = createNetServer((s) => {
    sockets.add(s);
    s.on('error', () => undefined);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    host: '127.0.0.1',
    port: (server.address() as AddressInfo).port,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
