/**
 * The WebSocket console with `ws` clients holding client certificates, against ipmi_sim's SOL
 * through the metal-api stand-in: sharing, keyboard, scrollback, takeover, cleanup (SOL
 * deactivated on the BMC), vanished peers, 200 viewers, garbage frames, and token mode.
 */
import { readFileSync } from 'node:fs';
import { Registry } from 'prom-client';
import { afterAll, afterEach, beforeAll, expect } from 'vitest';
import { connect as tlsConnect } from 'node:tls';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import WebSocket from 'ws';
import { startConsoleServers, type ConsoleServers } from '../../src/console/index.js';
import type { MetalApiStandIn } from '../../src/metalapi/standin.js';
import { machineIpmi, startConsoleBackend } from '../helpers/console-backend.js';
import { startIpmiSim, type IpmiSim } from '../helpers/ipmisim.js';
import { captureLog, type CapturedLog } from '../helpers/log.js';
import { createPki, type Pki } from '../helpers/pki.js';
import { waitFor } from '../helpers/wait.js';
import { httpsGetStatus } from '../helpers/https.js';
import { withPeers } from '../helpers/peers.js';

const { describe, it } = withPeers('ipmi_sim', 'ipmitool', 'openssl', 'ss');

const MACHINE = 'c0ffee00-88f6-5390-8154-fa53d93a3313';
let pki: Pki;
let sim: IpmiSim;
let standin: MetalApiStandIn;
let servers: ConsoleServers;
let tokenServers: ConsoleServers;
let log: CapturedLog;
const registry = new Registry();
const TOKEN = 'a-long-random-console-token-0123456789';

beforeAll(async () => {
  [pki, sim] = await Promise.all([createPki(), startIpmiSim()]);
  await sim.serial.connected();
  let openBackend;
  ({ standin, openBackend } = await startConsoleBackend({ [MACHINE]: machineIpmi(`127.0.0.1:${sim.port}`, sim.user, sim.password) }, 3000));
  log = captureLog();
  const common = { host: '127.0.0.1', port: 0, wsPort: 0, caCertFile: pki.ca, certFile: pki.serverCert, keyFile: pki.serverKey, openBackend, logger: log.logger };
  // pings every 3 s: often enough to see a silent peer terminated within a test, rarely enough that
  // 200 busy clients on a loaded machine answer in time (at 300 ms, some of them did not); those 200
  // viewers come from one address, so the per-source connection bound is raised for this file
  servers = await startConsoleServers({ ...common, registry, scrollbackBytes: 4096, pingIntervalMs: 3000, connectionLimits: { perSource: 500, total: 1000 } });
  tokenServers = await startConsoleServers({ ...common, token: TOKEN });
});

afterAll(async () => {
  await servers?.close();
  await tokenServers?.close();
  await standin?.close();
  await sim?.stop();
  pki?.remove();
});

/** every client a test opened: one a failed test left open is ended after it, so it cannot fail the next */
const opened: WebSocket[] = [];

afterEach(async () => {
  for (const ws of opened.splice(0)) ws.terminate();
  await waitFor(() => servers.hub.clientCount() === 0 && tokenServers.hub.clientCount() === 0, 20_000, 'no client left after the test');
});

const execFileText = async (file: string, args: string[]): Promise<string> => (await promisify(execFile)(file, args)).stdout;

interface Client {
  ws: WebSocket;
  output: () => string;
  messages: Array<Record<string, unknown>>;
  closed: Promise<{ code: number; reason: string }>;
  status: () => Record<string, unknown> | undefined;
}

function tlsOptions(which: 'ok' | 'foreign' | 'none') {
  const base = { ca: readFileSync(pki.ca) };
  if (which === 'ok') return { ...base, cert: readFileSync(pki.clientCert), key: readFileSync(pki.clientKey) };
  if (which === 'foreign') return { ...base, cert: readFileSync(pki.otherClientCert), key: readFileSync(pki.otherClientKey) };
  return base;
}

function connect(machineId = MACHINE, o: { port?: number; cert?: 'ok' | 'foreign' | 'none'; headers?: Record<string, string>; query?: string; autoPong?: boolean } = {}): Client {
  const url = `wss://127.0.0.1:${o.port ?? servers.wsPort}/v1/machine/${encodeURIComponent(machineId)}/console${o.query ?? ''}`;
  const ws = new WebSocket(url, { ...tlsOptions(o.cert ?? 'ok'), ...(o.headers ? { headers: o.headers } : {}), autoPong: o.autoPong ?? true });
  opened.push(ws);
  let output = '';
  const messages: Array<Record<string, unknown>> = [];
  ws.on('message', (data: Buffer, isBinary: boolean) => {
    if (isBinary) output += data.toString('latin1');
    else messages.push(JSON.parse(data.toString()) as Record<string, unknown>);
  });
  ws.on('error', () => undefined);
  const closed = new Promise<{ code: number; reason: string }>((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })));
  return { ws, output: () => output, messages, closed, status: () => messages.filter((m) => m.type === 'status').at(-1) };
}

const until = (check: () => boolean | Promise<boolean>, ms = 20_000, what = 'condition') => waitFor(check, ms, what);

const joined = (c: Client) => until(() => c.status() !== undefined, 20_000, 'joined');

async function solActive(): Promise<boolean> {
  const r = await sim.ipmitool(['raw', '0x06', '0x4a', '0x01']);
  const bytes = r.stdout.trim().split(/\s+/).map((b) => parseInt(b, 16));
  if (r.code !== 0 || bytes.length < 2) throw new Error(`cannot read SOL activation status: ${r.stderr}`);
  return (bytes[1]! & 1) === 1;
}

function serialText(): string {
  return sim.serial.received().toString('latin1');
}

async function closeAll(clients: Client[]): Promise<void> {
  for (const c of clients) c.ws.close();
  await Promise.all(clients.map((c) => c.closed));
  await until(() => servers.hub.sessionCount() === 0, 20_000, 'session closed');
}

function httpsStatus(path: string, port: number): Promise<number> {
  return httpsGetStatus({ host: '127.0.0.1', port, path, ...tlsOptions('ok') });
}

describe('console over WebSocket', () => {
  it('shares one console: both clients see output, only the keyboard holder types, a late client gets the scrollback first, takeover is announced', async () => {
    const a = connect();
    await joined(a);
    const b = connect();
    await joined(b);
    expect(a.status()).toMatchObject({ keyboard: true, owner: 'CN=metal-console,O=metal-stack', state: 'open' });
    expect(b.status()).toMatchObject({ keyboard: false });
    sim.serial.write('[    0.000000] Linux version 6.1.0\r\n');
    await until(() => a.output().includes('Linux version') && b.output().includes('Linux version'), 20_000, 'output on both');

    a.ws.send(Buffer.from('from-a\r'));
    b.ws.send(Buffer.from('from-b\r'));
    await until(() => serialText().includes('from-a\r'), 20_000, 'keyboard holder input');
    await until(() => b.messages.some((m) => m.type === 'error' && /keyboard is held by/.test(String(m.message))), 20_000, 'refusal notice');
    expect(serialText()).not.toContain('from-b');

    const c = connect();
    await joined(c);
    expect(c.output().startsWith('[    0.000000] Linux version 6.1.0\r\n')).toBe(true);
    sim.serial.write('after c joined\r\n');
    await until(() => c.output().endsWith('Linux version 6.1.0\r\nafter c joined\r\n'), 20_000, 'live output after scrollback');

    b.ws.send(JSON.stringify({ type: 'takeover' }));
    await until(() => a.status()?.message === 'keyboard taken over by CN=metal-console,O=metal-stack' && a.status()?.keyboard === false, 20_000, 'a told');
    await until(() => b.status()?.keyboard === true && c.status()?.keyboard === false, 20_000, 'b has it');
    b.ws.send(Buffer.from('from-b-now\r'));
    await until(() => serialText().includes('from-b-now\r'), 20_000, 'new holder input');
    expect(log.find('console keyboard taken over').length).toBe(1);
    expect(await registry.getSingleMetricAsString('metal_bmc_console_clients')).toMatch(/metal_bmc_console_clients 3/);

    expect(await solActive()).toBe(true);
    await closeAll([a, b, c]);
    await until(async () => !(await solActive()), 20_000, 'SOL deactivated on the BMC');
    expect(await registry.getSingleMetricAsString('metal_bmc_console_events_total')).toMatch(/event="takeover"} 1/);
  });

  it('cleans up a client that vanishes without closing, and the BMC session with it', async () => {
    const a = connect();
    await joined(a);
    const b = connect();
    await joined(b);
    expect(servers.hub.clientCount()).toBe(2);
    (a.ws as unknown as { _socket: { destroy(): void } })._socket.destroy();
    await until(() => servers.hub.clientCount() === 1, 20_000, 'vanished client removed');
    // the keyboard passes to b when a is removed; b learns it from a status message still on its way
    await until(() => b.status()?.keyboard === true, 20_000, 'keyboard passed to the remaining client');
    (b.ws as unknown as { _socket: { destroy(): void } })._socket.destroy();
    await until(() => servers.hub.sessionCount() === 0, 20_000, 'session closed');
    await until(async () => !(await solActive()), 20_000, 'SOL deactivated');
  });

  it('keeps TCP keepalive on its connections (a history follower of a quiet machine writes nothing: keepalive finds a peer gone without a word)', async () => {
    const socket = tlsConnect({ host: '127.0.0.1', port: servers.wsPort, ...tlsOptions('ok'), servername: 'localhost', checkServerIdentity: () => undefined });
    await new Promise<void>((resolve, reject) => socket.once('secureConnect', resolve).once('error', reject));
    try {
      const local = socket.localPort!;
      // the server's end of this connection, as the kernel shows it: its timer is keepalive's
      const server = async () => (await execFileText('ss', ['-tnoH', 'state', 'established', `( sport = :${servers.wsPort} and dport = :${local} )`])).trim();
      // while the server's first bytes are unacknowledged ss shows the retransmit timer ('on'); then keepalive's
      await until(async () => /timer:\(keepalive,/.test(await server()), 10_000, 'the keepalive timer on the server end');
    } finally {
      socket.destroy();
    }
  });

  it('terminates a peer that stops answering pings', async () => {
    const a = connect();
    await joined(a);
    // Stop reading: no pongs, no close frame.
    (a.ws as unknown as { _socket: { pause(): void } })._socket.pause();
    await until(() => servers.hub.clientCount() === 0, 20_000, 'silent peer terminated');
    a.ws.terminate();
  });

  it('counts only a pong answering its latest ping: a peer sending unsolicited pongs is terminated, one answering stays', async () => {
    const normal = connect();
    await joined(normal);
    let normalPings = 0;
    normal.ws.on('ping', () => normalPings++);
    // a heartbeat of its own (RFC 6455 allows unsolicited pongs), and a pong without the ping's payload at each ping
    const stuck = connect(MACHINE, { autoPong: false });
    let stuckPings = 0;
    stuck.ws.on('ping', () => {
      stuckPings++;
      stuck.ws.pong();
    });
    await joined(stuck);
    const heartbeat = setInterval(() => stuck.ws.pong(Buffer.from('unsolicited')), 200);
    try {
      // terminated (no close frame: 1006) at the check after its first ping, 3 s later
      await until(() => stuck.ws.readyState === WebSocket.CLOSED, 15_000, 'the peer with only unsolicited pongs terminated');
      expect((await stuck.closed).code).toBe(1006);
      expect(stuckPings).toBe(1);
      // the file's log is shared by its tests (a client an earlier one left may have been closed so too)
      expect(log.find('console WebSocket closed: the viewer did not answer a ping')).toContainEqual(expect.objectContaining({ machineId: MACHINE, client: expect.any(String) }));
    } finally {
      clearInterval(heartbeat);
    }
    // the answering peer outlives two more checks of its answers
    const seen = normalPings;
    await until(() => normalPings >= seen + 2, 20_000, 'two more pings to the answering peer');
    expect(normal.ws.readyState).toBe(WebSocket.OPEN);
    expect(servers.hub.clientCount()).toBe(1);
    await closeAll([normal]);
  });

  it('200 clients on one console all get the output, and the listener stays responsive', async () => {
    const clients: Client[] = [];
    for (let i = 0; i < 200; i += 20) {
      const batch = Array.from({ length: 20 }, () => connect());
      clients.push(...batch);
      await Promise.all(batch.map(joined));
    }
    expect(servers.hub.clientCount()).toBe(200);
    expect(servers.hub.sessionCount()).toBe(1);
    const burst = Array.from({ length: 50 }, (_, i) => `boot message ${i} ${'.'.repeat(60)}\r\n`).join('');
    sim.serial.write(burst);
    const started = Date.now();
    // While the burst fans out: another HTTPS request is answered promptly.
    expect(await httpsStatus('/console/assets/xterm.css', servers.wsPort as number)).toBe(200);
    // time is the subject (the event loop is not blocked by the fan-out): a 5 s bound, far above the
    // few ms the request takes when the listener is responsive, leaves room for a loaded machine
    expect(Date.now() - started).toBeLessThan(5000);
    await until(() => clients.every((c) => c.output().includes('boot message 49')), 15_000, 'all 200 received the output');
    for (const c of clients) expect(c.output().endsWith(burst)).toBe(true);
    await closeAll(clients);
  });

  it('{"type":"break"} from the keyboard holder reaches the serial line as a break (ipmi_sim writes telnet IAC BREAK), between the keys sent before and after it; a watcher\'s is refused', async () => {
    const holder = connect();
    await joined(holder);
    const from = serialText().length;
    const serial = () => serialText().slice(from);
    // a key at a time until one gets through: ipmi_sim drops an activation's first packet when it is numbered like the last one it acknowledged
    await waitFor(() => (holder.ws.send(Buffer.from('.')), serial().includes('.')), 8000, 'a first key on the serial line', 300);
    holder.ws.send(Buffer.from('before\r'));
    await until(() => serial().includes('before\r'), 8000, 'the keys before the break');
    holder.ws.send(JSON.stringify({ type: 'break' }));
    holder.ws.send(Buffer.from('after'));
    await until(() => serial().includes('after'), 8000, 'the keys after the break');
    expect(serial()).toMatch(/before\r\xff\xf3after$/);
    const watcher = connect();
    await joined(watcher);
    watcher.ws.send(JSON.stringify({ type: 'break' }));
    await until(() => watcher.messages.some((m) => m.type === 'error' && /break not sent: only the keyboard holder/.test(String(m.message))), 8000, 'the watcher told');
    expect(serial().match(/\xff\xf3/g)).toHaveLength(1);
    await closeAll([holder, watcher]);
  });

  it('answers garbage with errors or closes (1008/1009), and keeps serving', async () => {
    const a = connect();
    await joined(a);
    a.ws.send('{not json');
    a.ws.send(JSON.stringify({ type: 'launch-missiles' }));
    a.ws.send(JSON.stringify({ type: 'resize', cols: -1, rows: 'x' }));
    a.ws.send(JSON.stringify([1, 2, 3]));
    // a type nested deeper than JSON.stringify's stack allows (it ended the process when quoted in the error)
    a.ws.send(`{"type":${'['.repeat(20_000)}${']'.repeat(20_000)}}`);
    await until(() => a.messages.filter((m) => m.type === 'error').length >= 5, 5000, 'five errors');
    const errors = a.messages.filter((m) => m.type === 'error').map((m) => String(m.message));
    expect(errors).toEqual(expect.arrayContaining([expect.stringMatching(/not JSON/), expect.stringMatching(/unknown control message type "launch-missiles"/), expect.stringMatching(/resize/), 'unknown control message type object']));
    a.ws.send(JSON.stringify({ type: 'resize', cols: 132, rows: 50 }));

    const big = connect();
    await joined(big);
    big.ws.send(Buffer.alloc(65 * 1024, 0x41));
    expect((await big.closed).code).toBe(1009);

    const spammer = connect();
    await joined(spammer);
    for (let i = 0; i < 25; i++) spammer.ws.send('garbage');
    expect((await spammer.closed).code).toBe(1008);

    // still alive: output flows to the remaining client
    sim.serial.write('still serving\r\n');
    await until(() => a.output().includes('still serving'), 20_000, 'output after garbage');
    await closeAll([a]);
  });

  it('refuses unknown paths and reports an unknown machine as an error message', async () => {
    expect(await httpsStatus('/v1/machine/x/other', servers.wsPort as number)).toBe(404);
    const u = connect('no-such-machine');
    const closed = await u.closed;
    expect(closed.code).toBe(1011);
    expect(u.messages.find((m) => m.type === 'error')?.message).toMatch(/no-such-machine not found at metal-api/);
    // metal-api failing: the client learns that, not metal-api's URL and path (the log keeps them)
    standin.setFailures(10, 503);
    try {
      const failed = connect('another-machine');
      expect((await failed.closed).code).toBe(1011);
      const message = String(failed.messages.find((m) => m.type === 'error')?.message);
      expect(message).toMatch(/unavailable: .*503/);
      expect(message).not.toMatch(/\/v1\/machine|another-machine\/ipmi/);
    } finally {
      standin.setFailures(0);
    }
  });

  it('token mode: a client certificate or the token in the Authorization header lets a client in; neither, a wrong token, a token in the URL or a foreign certificate alone does not', async () => {
    const port = tokenServers.wsPort as number;
    const outcome = async (o: Parameters<typeof connect>[1]): Promise<string> => {
      const c = connect('token-probe-machine', { port, ...o });
      const status = await new Promise<number>((resolve) => {
        c.ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
        c.ws.on('upgrade', () => resolve(101));
        c.ws.on('error', () => resolve(0));
      });
      c.ws.terminate();
      return String(status);
    };
    expect(await outcome({ cert: 'none' })).toBe('401');
    expect(await outcome({ cert: 'none', headers: { authorization: 'Bearer wrong' } })).toBe('401');
    expect(await outcome({ cert: 'foreign' })).toBe('401');
    // tokens in URLs end up in logs and histories: only the page exchanges one, for a cookie
    expect(await outcome({ cert: 'none', query: `?token=${TOKEN}` })).toBe('401');
    expect(await outcome({ cert: 'none', headers: { authorization: `Bearer ${TOKEN}` } })).toBe('101');
    expect(await outcome({ cert: 'ok' })).toBe('101');
    // the certificate-only listener does not even finish the handshake without a certificate
    expect(await outcome({ cert: 'none', port: servers.wsPort, headers: { authorization: `Bearer ${TOKEN}` } })).toBe('0');
  });

  it('token mode: a refused or unknown request ends its connection, so a client without credentials cannot hold a slot by asking again and again', async () => {
    const port = tokenServers.wsPort as number;
    for (const path of ['/status', '/v1/status', '/console/m1', '/nowhere']) {
      const socket = tlsConnect({ host: '127.0.0.1', port, ca: readFileSync(pki.ca), servername: 'localhost', checkServerIdentity: () => undefined });
      let answer = '';
      socket.on('data', (d: Buffer) => (answer += d.toString('latin1')));
      const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
      socket.once('secureConnect', () => socket.write(`GET ${path} HTTP/1.1\r\nHost: localhost\r\nConnection: keep-alive\r\n\r\n`));
      socket.on('error', () => undefined);
      await closed; // the server closes it after its answer (a kept connection would stay open until the client closes it)
      expect(answer, path).toMatch(/^HTTP\/1\.1 (401|404) [\s\S]*\r\nConnection: close\r\n/i);
    }
  });
});
