/**
 * Who gets a console, with real clients (ws, OpenSSH over `openssl s_client`, raw TCP floods):
 * Origin checks, authorisation per machine on both listeners, a CRL, token throttling and the
 * token-for-cookie exchange, handshake timeouts (also of clients that finish TLS and then say
 * nothing) and connection caps. The BMC side is a recording
 * backend, so that a test can prove a refused client never made metal-bmc open a console.
 */
import { readFileSync } from 'node:fs';
import { request } from 'node:https';
import { connect as tcpConnect, type Socket } from 'node:net';
import { PassThrough, type Duplex } from 'node:stream';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, expect } from 'vitest';
import WebSocket from 'ws';
import { parseAuthz } from '../../src/config/console-access.js';
import { startConsoleServers, type ConsoleServers } from '../../src/console/index.js';
import { captureLog } from '../helpers/log.js';
import { createPki, issueClientCert, revokeClientCerts, type Pki } from '../helpers/pki.js';
import { sshConsole } from '../helpers/ssh-console.js';
import { waitFor } from '../helpers/wait.js';
import { withPeers } from '../helpers/peers.js';

const { describe, it } = withPeers('openssl', 'ssh');

const MACHINE_A = 'aaaaaaaa-88f6-5390-8154-fa53d93a3313';
const MACHINE_B = 'bbbbbbbb-88f6-5390-8154-fa53d93a3313';
const TOKEN = 'console-access-test-token-0123456789abcdef';
const HANDSHAKE_MS = 1500;

let pki: Pki;
let servers: ConsoleServers;
let tokenServers: ConsoleServers;
/** token mode with short bounds, for clients that finish TLS and then send nothing */
let silentServers: ConsoleServers;
const registry = new Registry();
const silentRegistry = new Registry();
const SILENT_LIMITS = { perSource: 4, total: 8 };
/** Node's default `keepAliveTimeout`, which the WebSocket listener keeps */
const NODE_KEEP_ALIVE_MS = 5000;
type KeyPair = { cert: string; key: string };
let machineA: KeyPair;
let operator: KeyPair;
let revoked: KeyPair;
/** machine ids whose console the backend was asked to open */
const opened: string[] = [];

function recordingBackend(machineId: string): Promise<Duplex> {
  opened.push(machineId);
  const line = new PassThrough();
  setImmediate(() => line.write(`serial console of ${machineId}\r\n`));
  return Promise.resolve(line);
}

beforeAll(async () => {
  pki = await createPki();
  machineA = await issueClientCert(pki, 'machine-a', `/CN=${MACHINE_A}`);
  operator = await issueClientCert(pki, 'operator', '/CN=alice/OU=ops');
  revoked = await issueClientCert(pki, 'revoked', '/CN=mallory/OU=ops');
  const crlFile = await revokeClientCerts(pki, [revoked.cert]);
  const common = { host: '127.0.0.1', port: 0, wsPort: 0, caCertFile: pki.ca, certFile: pki.serverCert, keyFile: pki.serverKey, openBackend: recordingBackend, logger: captureLog().logger };
  servers = await startConsoleServers({
    ...common,
    registry,
    crlFile,
    authz: parseAuthz('machine-id,OU=ops'),
    allowedOrigins: ['https://console.example.com'],
    connectionLimits: { perSource: 6, total: 12 },
    handshakeTimeoutMs: HANDSHAKE_MS,
  });
  tokenServers = await startConsoleServers({ ...common, token: TOKEN });
  silentServers = await startConsoleServers({ ...common, token: TOKEN, registry: silentRegistry, handshakeTimeoutMs: HANDSHAKE_MS, connectionLimits: SILENT_LIMITS });
});

afterAll(async () => {
  await servers?.close();
  await tokenServers?.close();
  await silentServers?.close();
  pki?.remove();
});

interface Who {
  cert?: KeyPair;
  headers?: Record<string, string>;
  localAddress?: string;
}

function tls(who: Who) {
  return { ca: readFileSync(pki.ca), ...(who.cert ? { cert: readFileSync(who.cert.cert), key: readFileSync(who.cert.key) } : {}), ...(who.localAddress ? { localAddress: who.localAddress } : {}) };
}

/** HTTP status of a WebSocket upgrade: 101, the refusal's status, or 0 when TLS failed. */
function upgradeStatus(port: number, path: string, who: Who): Promise<number> {
  const ws = new WebSocket(`wss://127.0.0.1:${port}${path}`, { ...tls(who), ...(who.headers ? { headers: who.headers } : {}) });
  return new Promise<number>((resolve) => {
    ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
    ws.on('upgrade', () => resolve(101));
    ws.on('error', () => resolve(0));
  }).finally(() => ws.terminate());
}

const consolePath = (id: string) => `/v1/machine/${encodeURIComponent(id)}/console`;

function httpsGet(port: number, path: string, who: Who): Promise<{ status: number; headers: Record<string, string | string[] | undefined> }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, ...tls(who), ...(who.headers ? { headers: who.headers } : {}) }, (res) => {
      res.resume();
      resolve({ status: res.statusCode ?? 0, headers: res.headers });
    });
    req.on('error', reject);
    req.end();
  });
}

async function refusedCount(listener: string, reason: string, from = registry): Promise<number> {
  const text = await from.getSingleMetricAsString('metal_bmc_console_refused_total');
  const m = new RegExp(`listener="${listener}",reason="${reason}"} (\\d+)`).exec(text);
  return m ? Number(m[1]) : 0;
}

describe('console access over WebSocket', () => {
  it('refuses an upgrade from a foreign Origin with a valid certificate (403); its own and allowed origins pass', async () => {
    const port = servers.wsPort as number;
    const before = opened.length;
    expect(await upgradeStatus(port, consolePath(MACHINE_A), { cert: operator, headers: { origin: 'https://evil.example' } })).toBe(403);
    expect(opened.length).toBe(before);
    expect(await refusedCount('ws', 'origin')).toBe(1);
    expect(await upgradeStatus(port, consolePath(MACHINE_A), { cert: operator, headers: { origin: `https://127.0.0.1:${port}` } })).toBe(101);
    expect(await upgradeStatus(port, consolePath(MACHINE_A), { cert: operator, headers: { origin: 'https://console.example.com' } })).toBe(101);
    expect(await upgradeStatus(port, consolePath(MACHINE_A), { cert: operator })).toBe(101);
  });

  it("a request another site's page starts without an Origin (an image, a frame) carries the certificate but is refused; a link to a page is followed, one to the API is not", async () => {
    const port = servers.wsPort as number;
    const fromAnotherSite = (dest: string, mode: string) => ({ 'sec-fetch-site': 'cross-site', 'sec-fetch-dest': dest, 'sec-fetch-mode': mode });
    const page = `/console/${MACHINE_A}`;
    expect((await httpsGet(port, page, { cert: operator, headers: fromAnotherSite('image', 'no-cors') })).status).toBe(403);
    expect((await httpsGet(port, page, { cert: operator, headers: fromAnotherSite('iframe', 'navigate') })).status).toBe(403);
    expect((await httpsGet(port, page, { cert: operator, headers: { ...fromAnotherSite('image', 'no-cors'), 'sec-fetch-site': 'same-site' } })).status).toBe(403);
    // an operator's dashboard linking to a console page; the operator's own requests; tools without fetch metadata
    expect((await httpsGet(port, page, { cert: operator, headers: fromAnotherSite('document', 'navigate') })).status).toBe(200);
    expect((await httpsGet(port, page, { cert: operator, headers: { 'sec-fetch-site': 'same-origin', 'sec-fetch-dest': 'empty', 'sec-fetch-mode': 'cors' } })).status).toBe(200);
    expect((await httpsGet(port, page, { cert: operator })).status).toBe(200);
    // the page's assets are served without authentication, and without keeping the connection
    const asset = await httpsGet(port, '/console/assets/xterm.css', { cert: operator });
    expect(asset.status).toBe(200);
    expect(asset.headers.connection).toBe('close');
  });

  it('machine-id: a certificate for machine A opens A but not B; an OU=ops certificate opens both', async () => {
    const port = servers.wsPort as number;
    opened.length = 0;
    expect(await upgradeStatus(port, consolePath(MACHINE_B), { cert: machineA })).toBe(403);
    expect(opened).not.toContain(MACHINE_B);
    expect(await upgradeStatus(port, consolePath(MACHINE_A), { cert: machineA })).toBe(101);
    expect(await upgradeStatus(port, consolePath(MACHINE_B), { cert: operator })).toBe(101);
    // metal-console's certificate (CN=metal-console, O=metal-stack) is in no rule here
    expect(await upgradeStatus(port, consolePath(MACHINE_A), { cert: { cert: pki.clientCert, key: pki.clientKey } })).toBe(403);
    expect(await refusedCount('ws', 'forbidden')).toBe(2);
  });

  it('a revoked certificate does not get through the TLS handshake; the page refuses it too', async () => {
    const port = servers.wsPort as number;
    expect(await upgradeStatus(port, consolePath(MACHINE_A), { cert: revoked })).toBe(0);
    await expect(httpsGet(port, `/console/${MACHINE_A}`, { cert: revoked })).rejects.toThrow();
    expect((await httpsGet(port, `/console/${MACHINE_A}`, { cert: operator })).status).toBe(200);
  });

  it('validates machine ids on the WebSocket path and the page', async () => {
    const port = servers.wsPort as number;
    expect(await upgradeStatus(port, '/v1/machine/%0Aevil/console', { cert: operator })).toBe(404);
    expect(await upgradeStatus(port, `/v1/machine/${'x'.repeat(201)}/console`, { cert: operator })).toBe(404);
    expect((await httpsGet(port, '/console/%07bell', { cert: operator })).status).toBe(400);
  });
});

describe('console access over SSH (metal-console)', () => {
  it('machine-id: the certificate of machine A opens A; asking for B gets one line, exit status 1, and no console is opened', async () => {
    opened.length = 0;
    const denied = sshConsole(MACHINE_B, { port: servers.sshPort, ca: pki.ca, ...machineA });
    expect(await denied.exit).toBe(1);
    expect(denied.stderr()).toMatch(new RegExp(`may not open the console of machine ${MACHINE_B}`));
    expect(opened).toEqual([]);
    expect(await refusedCount('ssh', 'forbidden')).toBe(1);

    const allowed = sshConsole(MACHINE_A, { port: servers.sshPort, ca: pki.ca, ...machineA, command: 'bash' });
    await waitFor(() => allowed.stdout().includes(`serial console of ${MACHINE_A}`), 10_000, 'console output over ssh');
    allowed.child.kill('SIGTERM');
    await allowed.exit;
    expect(opened).toEqual([MACHINE_A]);
  });

  it('a revoked certificate fails the handshake', async () => {
    opened.length = 0;
    const run = sshConsole(MACHINE_A, { port: servers.sshPort, ca: pki.ca, ...revoked });
    expect(await run.exit).not.toBe(0);
    expect(run.stdout()).not.toContain('serial console');
    expect(opened).toEqual([]);
  });
});

describe('token mode', () => {
  it('throttles wrong tokens per address: after 10 failures even the right token gets 429 there, other addresses are unaffected', async () => {
    const port = tokenServers.wsPort as number;
    const statuses: number[] = [];
    for (let i = 0; i < 100; i++) statuses.push((await httpsGet(port, `/console/${MACHINE_A}`, { headers: { authorization: `Bearer wrong-${i}` } })).status);
    expect(statuses.slice(0, 10)).toEqual(Array(10).fill(401));
    expect(statuses.slice(10)).toEqual(Array(90).fill(429));
    expect((await httpsGet(port, `/console/${MACHINE_A}`, { headers: { authorization: `Bearer ${TOKEN}` } })).status).toBe(429);
    expect(await upgradeStatus(port, consolePath(MACHINE_A), { headers: { authorization: `Bearer ${TOKEN}` } })).toBe(429);
    expect((await httpsGet(port, `/console/${MACHINE_A}`, { localAddress: '127.0.0.2', headers: { authorization: `Bearer ${TOKEN}` } })).status).toBe(200);
  });

  it('exchanges the page token once for an HttpOnly, Secure, SameSite=Strict cookie that opens the WebSocket', async () => {
    const port = tokenServers.wsPort as number;
    const who = { localAddress: '127.0.0.3' };
    const exchange = await httpsGet(port, `/console/${MACHINE_A}?token=${TOKEN}`, who);
    expect(exchange.status).toBe(303);
    expect(exchange.headers.location).toBe(`/console/${MACHINE_A}`);
    const setCookie = String(exchange.headers['set-cookie']);
    expect(setCookie).toMatch(/^metal_bmc_console=[A-Za-z0-9_-]{43}; Path=\/; Max-Age=3600; HttpOnly; Secure; SameSite=Strict/);
    const cookie = setCookie.split(';')[0]!;
    expect(await upgradeStatus(port, consolePath(MACHINE_A), { ...who, headers: { cookie } })).toBe(101);
    expect((await httpsGet(port, `/console/${MACHINE_A}`, { ...who, headers: { cookie } })).status).toBe(200);
    expect(await upgradeStatus(port, consolePath(MACHINE_A), { ...who, headers: { cookie: 'metal_bmc_console=forged' } })).toBe(401);
    expect(await upgradeStatus(port, consolePath(MACHINE_A), { ...who, headers: { cookie, origin: 'https://evil.example' } })).toBe(403);
  });

  it("another site's page cannot spend the operator's token failures: an exchange from a cross-site request (an image, a frame) is refused before the token is checked", async () => {
    const port = tokenServers.wsPort as number;
    const who = { localAddress: '127.0.0.4' };
    for (let i = 0; i < 20; i++) {
      const r = await httpsGet(port, `/console/${MACHINE_A}?token=wrong-${i}`, { ...who, headers: { 'sec-fetch-site': 'cross-site', 'sec-fetch-dest': 'image' } });
      expect(r.status).toBe(403);
    }
    // the operator's own navigation from the same address still exchanges the right token
    expect((await httpsGet(port, `/console/${MACHINE_A}?token=${TOKEN}`, { ...who, headers: { 'sec-fetch-site': 'none' } })).status).toBe(303);
  });
});

/** Raw TCP connections from `localAddress` that never start TLS (a slow-handshake client). */
function silentConnections(port: number, localAddress: string, count: number): { sockets: Socket[]; closed: () => number } {
  let closed = 0;
  const sockets = Array.from({ length: count }, () => {
    const s = tcpConnect({ host: '127.0.0.1', port, localAddress });
    s.on('error', () => undefined);
    s.on('close', () => (closed += 1));
    return s;
  });
  return { sockets, closed: () => closed };
}

describe.each(['ssh', 'ws'] as const)('connection bounds on the %s listener', (listener) => {
  const portOf = () => (listener === 'ssh' ? servers.sshPort : (servers.wsPort as number));

  it('a flood from one address is cut at the per-source bound, the rest time out in the handshake, other clients are served meanwhile', async () => {
    const port = portOf();
    const handshakesBefore = await refusedCount(listener, 'tls-handshake');
    const flood = silentConnections(port, '127.0.0.5', 20);
    await waitFor(() => flood.closed() >= 14, 5000, 'connections beyond the per-source bound closed at once');
    expect(flood.closed()).toBe(14);
    expect(await refusedCount(listener, 'per-source')).toBeGreaterThanOrEqual(14);
    // the six that are held do not keep others out
    if (listener === 'ws') expect(await upgradeStatus(port, consolePath(MACHINE_A), { cert: operator })).toBe(101);
    else {
      const run = sshConsole(MACHINE_A, { port, ca: pki.ca, ...operator, command: 'bash' });
      await waitFor(() => run.stdout().includes('serial console of'), 10_000, 'ssh console during the flood');
      run.child.kill('SIGTERM');
      await run.exit;
    }
    await waitFor(() => flood.closed() === 20, HANDSHAKE_MS * 5, 'silent connections closed by the handshake timeout');
    // each connection is one refusal: the six held ones failed their TLS handshake, the fourteen cut at once did not fail it a second time
    expect((await refusedCount(listener, 'tls-handshake')) - handshakesBefore).toBe(6);
  });

  it('the total bound holds across addresses, and the listener serves again once the flood is gone', async () => {
    const port = portOf();
    const floods = ['127.0.0.6', '127.0.0.7', '127.0.0.8'].map((address) => silentConnections(port, address, 6));
    const closed = () => floods.reduce((n, f) => n + f.closed(), 0);
    await waitFor(() => closed() >= 6, 5000, 'connections beyond the total bound closed');
    expect(await refusedCount(listener, 'total')).toBeGreaterThanOrEqual(6);
    for (const f of floods) for (const s of f.sockets) s.destroy();
    await waitFor(() => closed() === 18, 5000, 'flood gone');
    if (listener === 'ws') await waitFor(async () => (await upgradeStatus(port, consolePath(MACHINE_A), { cert: operator })) === 101, 5000, 'served again');
    else {
      const run = sshConsole(MACHINE_A, { port, ca: pki.ca, ...operator, command: 'bash' });
      await waitFor(() => run.stdout().includes('serial console of'), 10_000, 'ssh console after the flood');
      run.child.kill('SIGTERM');
      await run.exit;
    }
  });
});

interface SilentTls {
  socket: TLSSocket;
  /** ms from the end of the TLS handshake to the socket's close */
  closed: Promise<number>;
  /** what the server sent */
  received(): string;
  isClosed(): boolean;
}

/** A TLS connection from `who` that finishes the handshake and then sends nothing; resolves once it is secure. */
function silentTls(port: number, who: Who): Promise<SilentTls> {
  return new Promise((resolve, reject) => {
    let received = '';
    let secureAt = 0;
    let isClosed = false;
    const socket = tlsConnect({ host: '127.0.0.1', port, ...tls(who) });
    const closed = new Promise<number>((done) =>
      socket.once('close', () => {
        isClosed = true;
        done(Date.now() - secureAt);
      }),
    );
    socket.on('data', (chunk: Buffer) => (received += chunk.toString('latin1')));
    socket.once('error', reject);
    socket.once('secureConnect', () => {
      secureAt = Date.now();
      socket.off('error', reject);
      socket.on('error', () => undefined);
      resolve({ socket, closed, received: () => received, isClosed: () => isClosed });
    });
  });
}

/** `promise`, or a failure naming `what` after `ms`. */
function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms)));
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

describe('clients that finish TLS and then send nothing', () => {
  it('token mode: silent connections without a certificate are closed after the handshake timeout and counted; a client with the token is then served', async () => {
    const port = silentServers.wsPort as number;
    const before = await refusedCount('ws', 'handshake-timeout', silentRegistry);
    // enough to fill the listener: the per-source bound from each of two addresses is the total bound
    const silent = await Promise.all(['127.0.0.9', '127.0.0.10'].flatMap((localAddress) => Array.from({ length: SILENT_LIMITS.perSource }, () => silentTls(port, { localAddress }))));
    expect(silent).toHaveLength(SILENT_LIMITS.total);
    const closedAfter = await Promise.all(silent.map((s, i) => within(s.closed, HANDSHAKE_MS * 2 + 500, `silent TLS connection ${i} closed`)));
    for (const ms of closedAfter) expect(ms).toBeGreaterThanOrEqual(HANDSHAKE_MS - 100);
    expect(await refusedCount('ws', 'handshake-timeout', silentRegistry)).toBe(before + SILENT_LIMITS.total);
    expect(await upgradeStatus(port, consolePath(MACHINE_A), { localAddress: '127.0.0.11', headers: { authorization: `Bearer ${TOKEN}` } })).toBe(101);
  });

  it('a connection whose first request came in time keeps its usual bounds: a WebSocket stays, an idle keep-alive connection goes at Node\'s keepAliveTimeout', async () => {
    const port = silentServers.wsPort as number;
    const before = await refusedCount('ws', 'handshake-timeout', silentRegistry);
    const ws = new WebSocket(`wss://127.0.0.1:${port}${consolePath(MACHINE_A)}`, { ...tls({ localAddress: '127.0.0.12' }), headers: { authorization: `Bearer ${TOKEN}` } });
    await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
    const keepAlive = await silentTls(port, { localAddress: '127.0.0.12' });
    keepAlive.socket.write(`GET /console/${MACHINE_A} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nAuthorization: Bearer ${TOKEN}\r\n\r\n`);
    await waitFor(() => keepAlive.received().startsWith('HTTP/1.1 200 '), 5000, 'the page over the keep-alive connection');
    // a silent connection opened after both has been closed by the bound: theirs would have run out too
    const marker = await silentTls(port, { localAddress: '127.0.0.14' });
    await within(marker.closed, HANDSHAKE_MS * 2 + 500, 'the silent marker connection closed');
    expect(ws.readyState).toBe(WebSocket.OPEN);
    expect(keepAlive.isClosed()).toBe(false);
    await within(keepAlive.closed, NODE_KEEP_ALIVE_MS + HANDSHAKE_MS * 2, 'the idle keep-alive connection closed');
    expect(await refusedCount('ws', 'handshake-timeout', silentRegistry)).toBe(before + 1);
    ws.terminate();
  });

  it('SSH listener: a client with a valid certificate that never sends its SSH identification is closed after the handshake timeout and counted', async () => {
    const before = await refusedCount('ssh', 'handshake-timeout');
    const silent = await silentTls(servers.sshPort, { cert: operator, localAddress: '127.0.0.13' });
    const closedAfter = await within(silent.closed, HANDSHAKE_MS * 2 + 500, 'silent SSH-over-TLS connection closed');
    // it got past TLS: the server had sent its own identification
    expect(silent.received()).toMatch(/^SSH-2\.0-metal-bmc/);
    expect(closedAfter).toBeGreaterThanOrEqual(HANDSHAKE_MS - 100);
    expect(await refusedCount('ssh', 'handshake-timeout')).toBe(before + 1);
  });
});
