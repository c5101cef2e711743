/**
 * A CRL reloaded while consoles are open, with real clients (ws, OpenSSH over `openssl s_client`,
 * an HTTPS follow stream) and certificates and CRLs made by `openssl ca` at run time: node:tls
 * checks the CRL only in the handshake, so without more the connections of a certificate revoked
 * afterwards would stay open. Certificate X is revoked while it has a WebSocket console, an SSH
 * console and a `console/log?follow=1` stream open; all three end within a bound, each one log
 * line and one `revoked` count; certificate Y, not revoked, keeps its consoles. A CRL file that
 * cannot be read changes nothing.
 */
import { mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { request } from 'node:https';
import { connect as tlsConnect } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, type Duplex } from 'node:stream';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, expect } from 'vitest';
import WebSocket from 'ws';
import { captureViewerRoutes, type CaptureRoutes } from '../../src/console/capture-routes.js';
import { openMachineLog } from '../../src/console/capture-store.js';
import { startConsoleServers, type ConsoleServers } from '../../src/console/index.js';
import { captureLog } from '../helpers/log.js';
import { withPeers } from '../helpers/peers.js';
import { createPki, issueClientCert, loopbackConsoleListeners, revokeClientCerts, type Pki } from '../helpers/pki.js';
import { sshConsole, type SshRun } from '../helpers/ssh-console.js';
import { waitFor } from '../helpers/wait.js';

const { describe, it } = withPeers('openssl', 'ssh');

const MACHINE = 'cccccccc-88f6-5390-8154-fa53d93a3313';
/** how often the CRL file is polled here; the bound below allows for many polls */
const CRL_POLL_MS = 50;
const ENDED_WITHIN_MS = 5000;
const ENDED_LINE = 'console connection ended: client certificate revoked';

type KeyPair = { cert: string; key: string };
let pki: Pki;
let x: KeyPair;
let y: KeyPair;
/** the file the listeners watch; replaced by rename, as a CRL should be deployed */
let watchedCrl: string;
let historyDir: string;
let routes: CaptureRoutes;
let servers: ConsoleServers;
const registry = new Registry();
const log = captureLog();
/** the BMC side of the machine's console: what is written here reaches every client */
let bmc: PassThrough | undefined;

function backend(): Promise<Duplex> {
  bmc = new PassThrough();
  setImmediate(() => bmc?.write(`serial console of ${MACHINE}\r\n`));
  return Promise.resolve(bmc);
}

/** Puts `content` in place of the watched CRL in one step, so no poll sees half a file. */
function replaceCrl(content: Buffer | string): void {
  const next = `${watchedCrl}.next`;
  writeFileSync(next, content);
  renameSync(next, watchedCrl);
}

beforeAll(async () => {
  pki = await createPki();
  x = await issueClientCert(pki, 'crl-x', '/CN=xavier/OU=ops');
  y = await issueClientCert(pki, 'crl-y', '/CN=yvonne/OU=ops');
  watchedCrl = join(pki.dir, 'watched-crl.pem');
  writeFileSync(watchedCrl, readFileSync(await revokeClientCerts(pki, [])));
  historyDir = mkdtempSync(join(tmpdir(), 'console-crl-history-'));
  // some history, so that the follow stream's headers go out at once
  const history = await openMachineLog({ dir: historyDir, machineId: MACHINE, fileBytes: 1 << 20, files: 2, logger: log.logger });
  history.append(Buffer.from('earlier output\r\n'));
  await history.close();
  routes = captureViewerRoutes({ dir: historyDir, pollMs: 50 });
  servers = await startConsoleServers({ ...loopbackConsoleListeners(pki), crlFile: watchedCrl, crlPollMs: CRL_POLL_MS, registry, openBackend: backend, logger: log.logger, viewerRoutes: routes });
});

afterAll(async () => {
  routes?.close();
  await servers?.close();
  pki?.remove();
  if (historyDir) rmSync(historyDir, { recursive: true, force: true });
});

function tlsOf(who: KeyPair) {
  return { ca: readFileSync(pki.ca), cert: readFileSync(who.cert), key: readFileSync(who.key) };
}

interface WsClient {
  ws: WebSocket;
  received(): string;
  /** the close code, once closed */
  closeCode(): number | undefined;
  /** the control messages received (JSON text frames) */
  controls: Array<Record<string, unknown>>;
}

async function openWs(who: KeyPair): Promise<WsClient> {
  const ws = new WebSocket(`wss://127.0.0.1:${servers.wsPort}/v1/machine/${MACHINE}/console`, tlsOf(who));
  let received = '';
  let code: number | undefined;
  const controls: Array<Record<string, unknown>> = [];
  ws.on('message', (data: Buffer, isBinary: boolean) => {
    if (isBinary) received += data.toString('latin1');
    else controls.push(JSON.parse(data.toString('utf8')) as Record<string, unknown>);
  });
  ws.on('close', (c: number) => (code = c));
  ws.on('error', () => undefined);
  await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
  const client = { ws, received: () => received, closeCode: () => code, controls };
  await waitFor(() => client.received().includes('serial console of'), 10_000, 'console output over the WebSocket');
  return client;
}

async function openSsh(who: KeyPair): Promise<SshRun> {
  const run = sshConsole(MACHINE, { port: servers.sshPort, ca: pki.ca, ...who, command: 'bash' });
  await waitFor(() => run.stdout().includes('serial console of'), 10_000, 'console output over SSH');
  return run;
}

interface FollowStream {
  res: IncomingMessage;
  isClosed(): boolean;
}

/** `GET /v1/machine/{id}/console/log?follow=1`: resolves once the headers are in and the stream stays open. */
function openFollow(who: KeyPair): Promise<FollowStream> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: servers.wsPort, path: `/v1/machine/${MACHINE}/console/log?follow=1`, ...tlsOf(who) }, (res) => {
      let closed = false;
      res.on('error', () => undefined);
      res.on('close', () => (closed = true));
      res.resume();
      if (res.statusCode === 200) resolve({ res, isClosed: () => closed });
      else reject(new Error(`follow stream: status ${res.statusCode}`));
    });
    req.on('error', reject);
    req.end();
  });
}

const isOpen = (run: SshRun) => run.child.exitCode === null && run.child.signalCode === null;

async function refusedCount(listener: 'ssh' | 'ws', reason = 'revoked'): Promise<number> {
  const text = await registry.getSingleMetricAsString('metal_bmc_console_refused_total');
  const m = new RegExp(`listener="${listener}",reason="${reason}"} (\\d+)`).exec(text);
  return m ? Number(m[1]) : 0;
}

async function crlNextUpdateMetric(): Promise<number> {
  const text = await registry.getSingleMetricAsString('metal_bmc_console_crl_next_update_timestamp_seconds');
  return Number(/^metal_bmc_console_crl_next_update_timestamp_seconds (\S+)$/m.exec(text)?.[1]);
}

/** Whether a new WebSocket console of `who` opens or is refused. */
function wsAttempt(who: KeyPair): Promise<'open' | 'refused'> {
  return new Promise((resolve) => {
    const ws = new WebSocket(`wss://127.0.0.1:${servers.wsPort}/v1/machine/${MACHINE}/console`, tlsOf(who));
    ws.on('open', () => {
      ws.terminate();
      resolve('open');
    });
    ws.on('error', () => resolve('refused'));
  });
}

describe('a reloaded CRL and the connections already open', () => {
  let wsX: WsClient;
  let wsY: WsClient;
  let sshX: SshRun;
  let sshY: SshRun;
  let followX: FollowStream;

  beforeAll(async () => {
    [wsX, wsY, sshX, sshY, followX] = await Promise.all([openWs(x), openWs(y), openSsh(x), openSsh(y), openFollow(x)]);
  });

  afterAll(async () => {
    for (const client of [wsX, wsY]) client?.ws.terminate();
    for (const run of [sshX, sshY]) if (run && isOpen(run)) run.child.kill('SIGTERM');
    await Promise.all([sshX?.exit, sshY?.exit]);
  });

  it('a CRL file that cannot be read is logged and changes nothing: every connection stays open', async () => {
    const refusedBefore = log.find(/console CRL not reloaded/).length;
    replaceCrl('-----BEGIN X509 CRL-----\nMAMCAQA=\n-----END X509 CRL-----\n');
    await waitFor(() => log.find(/console CRL not reloaded/).length > refusedBefore, ENDED_WITHIN_MS, 'the unreadable CRL logged');
    expect(wsX.ws.readyState).toBe(WebSocket.OPEN);
    expect(isOpen(sshX)).toBe(true);
    expect(followX.isClosed()).toBe(false);
    expect(log.find(ENDED_LINE)).toEqual([]);
  });

  it('revoking X ends its WebSocket (1008), its SSH console (one line, then the disconnect) and its follow stream; Y keeps its consoles', async () => {
    replaceCrl(readFileSync(await revokeClientCerts(pki, [x.cert])));

    await waitFor(() => wsX.closeCode() !== undefined, ENDED_WITHIN_MS, "X's WebSocket closed");
    expect(wsX.closeCode()).toBe(1008);
    expect(wsX.controls).toContainEqual({ type: 'closed', message: 'your client certificate was revoked', error: true });
    await waitFor(() => !isOpen(sshX), ENDED_WITHIN_MS, "X's SSH console ended");
    expect(sshX.stderr()).toContain('[metal-bmc] console closed: your client certificate was revoked');
    expect(await sshX.exit).not.toBe(0);
    await waitFor(() => followX.isClosed(), ENDED_WITHIN_MS, "X's follow stream ended");
    expect(followX.res.complete).toBe(false);

    const ended = log.find(ENDED_LINE);
    expect(ended).toHaveLength(3);
    for (const line of ended) expect(line).toMatchObject({ client: 'CN=xavier,OU=ops', reason: 'revoked' });
    expect(await refusedCount('ws')).toBe(2);
    expect(await refusedCount('ssh')).toBe(1);
    expect(log.find('console CRL reloaded').at(-1)).toMatchObject({ endedConnections: 3 });

    // Y is untouched and still gets the console's output
    expect(wsY.ws.readyState).toBe(WebSocket.OPEN);
    expect(isOpen(sshY)).toBe(true);
    bmc?.write('after the revocation\r\n');
    await waitFor(() => wsY.received().includes('after the revocation'), ENDED_WITHIN_MS, "Y's WebSocket output");
    await waitFor(() => sshY.stdout().includes('after the revocation'), ENDED_WITHIN_MS, "Y's SSH output");
    expect(wsX.received()).not.toContain('after the revocation');
  });

  it('after the reload both listeners still speak TLS 1.3 only: a TLS 1.2 handshake with a good certificate is refused', async () => {
    expect(log.find('console CRL reloaded').length).toBeGreaterThan(0);
    const tls12 = (port: number) =>
      new Promise<string>((resolve) => {
        const socket = tlsConnect({ host: '127.0.0.1', port, ...tlsOf(y), maxVersion: 'TLSv1.2', servername: 'localhost', checkServerIdentity: () => undefined });
        socket.once('secureConnect', () => (socket.destroy(), resolve(`connected over ${socket.getProtocol()}`)));
        socket.once('error', (err) => resolve(`refused: ${err.message}`));
      });
    for (const port of [servers.wsPort!, servers.sshPort]) expect(await tls12(port)).toMatch(/^refused: .*(protocol version|no protocols available|unsupported protocol)/i);
  });

  it("a CRL reload reads the CRL only: a certificate and key replaced on disk meanwhile are not taken up (the SSH host key is derived from the key the listeners started with)", async () => {
    const presented = () =>
      new Promise<string>((resolve, reject) => {
        const socket = tlsConnect({ host: '127.0.0.1', port: servers.wsPort!, ...tlsOf(y), servername: 'localhost', checkServerIdentity: () => undefined });
        socket.once('secureConnect', () => (resolve(socket.getPeerCertificate().fingerprint256), socket.destroy()));
        socket.once('error', reject);
      });
    const before = await presented();
    const [cert, key] = [readFileSync(pki.serverCert), readFileSync(pki.serverKey)];
    writeFileSync(pki.serverCert, readFileSync(pki.serverRsaCert));
    writeFileSync(pki.serverKey, readFileSync(pki.serverRsaKey));
    try {
      const reloads = log.find('console CRL reloaded').length;
      replaceCrl(readFileSync(await revokeClientCerts(pki, [x.cert])));
      await waitFor(() => log.find('console CRL reloaded').length > reloads, ENDED_WITHIN_MS, 'the CRL reloaded');
      expect(await presented()).toBe(before);
    } finally {
      writeFileSync(pki.serverCert, cert);
      writeFileSync(pki.serverKey, key);
    }
  });

  it('X cannot come back: its new handshakes are refused, on both listeners', async () => {
    expect(await wsAttempt(x)).toBe('refused');
    const run = sshConsole(MACHINE, { port: servers.sshPort, ca: pki.ca, ...x });
    expect(await run.exit).not.toBe(0);
    expect(run.stdout()).not.toContain('serial console');
  });
});

describe('a CRL past its nextUpdate', () => {
  it('is told once as an error; every new handshake is refused, counted and noted as such; a console open before stays; a newer CRL lets clients in again', async () => {
    const reloads = log.find('console CRL reloaded').length;
    expect(await crlNextUpdateMetric()).toBeGreaterThan(Date.now() / 1000);
    const wsY = await openWs(y);
    replaceCrl(readFileSync(await revokeClientCerts(pki, [x.cert], { lastUpdate: '20200101000000Z', nextUpdate: '20200102000000Z' })));
    await waitFor(() => log.find(/console CRL expired/).length === 1, ENDED_WITHIN_MS, 'the expired CRL told');
    expect(log.find(/console CRL expired/)[0]).toMatchObject({ level: 50, crlFile: watchedCrl, crlExpiredAt: '2020-01-02T00:00:00.000Z' });
    expect(await crlNextUpdateMetric()).toBe(Date.UTC(2020, 0, 2) / 1000);

    // Y's certificate is not revoked, but OpenSSL refuses it under a stale CRL; the line says why
    const refusedBefore = await refusedCount('ws', 'tls-handshake');
    expect(await wsAttempt(y)).toBe('refused');
    await waitFor(() => log.find('console TLS handshake refused').some((l) => l.crlExpiredAt === '2020-01-02T00:00:00.000Z'), ENDED_WITHIN_MS, 'the refusal noted');
    expect(await refusedCount('ws', 'tls-handshake')).toBeGreaterThan(refusedBefore);
    const ssh = sshConsole(MACHINE, { port: servers.sshPort, ca: pki.ca, ...y });
    expect(await ssh.exit).not.toBe(0);
    expect(ssh.stdout()).not.toContain('serial console');

    // the console Y opened before keeps running
    expect(wsY.ws.readyState).toBe(WebSocket.OPEN);
    bmc?.write('under a stale CRL\r\n');
    await waitFor(() => wsY.received().includes('under a stale CRL'), ENDED_WITHIN_MS, "Y's open console output");

    replaceCrl(readFileSync(await revokeClientCerts(pki, [x.cert])));
    await waitFor(() => log.find('console CRL reloaded').length >= reloads + 2, ENDED_WITHIN_MS, 'the newer CRL loaded');
    expect(await wsAttempt(y)).toBe('open');
    expect(await crlNextUpdateMetric()).toBeGreaterThan(Date.now() / 1000);
    expect(log.find(/console CRL expired/)).toHaveLength(1);
    wsY.ws.terminate();
  });
});
