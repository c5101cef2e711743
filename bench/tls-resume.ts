/**
 * Client CPU per TLS connection to one server (a TLS 1.3 server in its own process with the
 * simulator's kind of certificate, ECDSA P-256; it answers one byte and closes): the BMC
 * connector (src/redfish/tls-context.ts: shared SecureContext, the session set once and kept
 * without the server's certificate), next to the same resumed connection with the whole session
 * set once (what the connector did before), with the session given as `tls.connect`'s `session`
 * option (Node 20 decodes it twice), a full handshake without resumption, and plain TCP (what TLS
 * adds); and the resident memory of an open TLS connection (300 held at once). Rounds interleave the scenarios so
 * a machine shared with others loads each alike; the figure is the median over rounds.
 * Usage: npm run bench -- tls-resume [N] (connections per scenario and round, default 300)
 */
import { spawn } from 'node:child_process';
import { connect as netConnect } from 'node:net';
import { connect, createSecureContext, type ConnectionOptions, type SecureContext, type TLSSocket } from 'node:tls';
import { sharedConnector } from '../src/redfish/tls-context.js';
import { selfSignedCertificate } from '../src/sim/tls.js';
import { collectGarbage } from './report.js';
import { begin } from './results.js';

const ROUNDS = 7;
const HOST = '127.0.0.1';

/** three listeners: TLS answering one byte and closing, TLS holding the connection, plain TCP answering one byte and closing */
const SERVER = `
const tls = require('node:tls'), net = require('node:net');
const opts = { key: process.env.KEY, cert: process.env.CERT };
const once = tls.createServer(opts, (c) => { c.on('error', () => {}); c.end('x'); });
const hold = tls.createServer(opts, (c) => { c.on('error', () => {}); c.write('x'); });
const plain = net.createServer((c) => { c.on('error', () => {}); c.end('x'); });
once.listen(0, '${HOST}', () => hold.listen(0, '${HOST}', () => plain.listen(0, '${HOST}', () => console.log([once, hold, plain].map((x) => x.address().port).join(' ')))));
`;
/** TLS connections held open at once to measure their resident memory */
const HELD = 300;

/** one connection: connected, one byte read, closed by the server */
function settle(socket: TLSSocket, connected = false): Promise<boolean> {
  return new Promise((resolve, reject) => {
    let reused = false;
    const check = () => (reused = socket.isSessionReused());
    // the connector hands the socket over after secureConnect; a socket of our own is not there yet
    if (connected) check();
    else socket.once('secureConnect', check);
    socket.once('error', reject);
    socket.on('data', () => undefined);
    socket.once('close', () => resolve(reused));
  });
}

type Scenario = () => Promise<boolean>;

/** opens `count` TLS connections, each having read its first byte */
async function openHeld(host: string, port: number, context: SecureContext, count: number): Promise<TLSSocket[]> {
  const sockets: TLSSocket[] = [];
  for (let i = 0; i < count; i++) {
    sockets.push(
      await new Promise<TLSSocket>((resolve, reject) => {
        const socket = connect({ host, port, secureContext: context, rejectUnauthorized: false });
        socket.once('error', reject);
        socket.once('data', () => resolve(socket));
      }),
    );
  }
  return sockets;
}

const closed = (socket: TLSSocket) => new Promise<void>((resolve) => (socket.destroyed && socket.closed ? resolve() : socket.once('close', () => resolve())));

/**
 * RSS growth per TLS connection with `count` of them open (each read its first byte), after GC.
 * The same number is opened and closed once before the baseline: the first round's allocator
 * arenas, code and caches stay resident after it, and were counted (or, once the GC returned
 * earlier garbage, subtracted: a negative figure) when the baseline came before any connection.
 */
async function heldMemory(host: string, port: number, context: SecureContext, count: number): Promise<number> {
  const warm = await openHeld(host, port, context, count);
  for (const socket of warm) socket.destroy();
  await Promise.all(warm.map(closed));
  collectGarbage();
  const before = process.memoryUsage.rss();
  const sockets = await openHeld(host, port, context, count);
  collectGarbage();
  const perSocket = (process.memoryUsage.rss() - before) / count / 1024;
  for (const socket of sockets) socket.destroy();
  return perSocket;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

export async function benchTlsResume(n = 300): Promise<void> {
  const out = begin('tls-resume', 'client CPU per TLS connection, resumed through the BMC connector, next to the session given to tls.connect and to a full handshake', { n, rounds: ROUNDS });
  const cert = selfSignedCertificate('bench-tls', [HOST]);
  const server = spawn(process.execPath, ['-e', SERVER], { env: { ...process.env, KEY: cert.key, CERT: cert.cert }, stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    const [port, holdPort, plainPort] = await new Promise<number[]>((resolve, reject) => {
      server.once('error', reject);
      server.stdout.once('data', (d: Buffer) => resolve(String(d).trim().split(' ').map(Number)));
    });
    const base: ConnectionOptions = { host: HOST, port, rejectUnauthorized: false, minVersion: 'TLSv1.2', ALPNProtocols: ['http/1.1'] };
    const shared = sharedConnector({ keepAlive: true, minVersion: 'TLSv1.2', rejectUnauthorized: false, maxCachedSessions: 16 });
    const ours: Scenario = () =>
      new Promise((resolve, reject) => {
        shared.connector({ hostname: HOST, host: HOST, port: String(port), protocol: 'https:', servername: '' }, (err, socket) => {
          if (err || !socket) reject(err ?? new Error('no socket'));
          else void settle(socket as TLSSocket, true).then(resolve, reject);
        });
      });
    const context = createSecureContext({ minVersion: 'TLSv1.2' });
    let session: Buffer | undefined;
    const asOption: Scenario = () => {
      const socket = connect({ ...base, secureContext: context, ...(session ? { session } : {}) });
      socket.on('session', (s: Buffer) => (session = s));
      return settle(socket);
    };
    // the connector before it kept sessions without the server's certificate (tls-session-der.ts)
    let wholeSession: Buffer | undefined;
    const whole: Scenario = () => {
      const socket = connect({ ...base, secureContext: context });
      if (wholeSession) (socket as TLSSocket & { setSession(session: Buffer): void }).setSession(wholeSession);
      socket.on('session', (s: Buffer) => (wholeSession = s));
      return settle(socket);
    };
    const full: Scenario = () => settle(connect({ ...base, secureContext: context }));
    const plain: Scenario = () =>
      new Promise((resolve, reject) => {
        const socket = netConnect({ host: HOST, port: plainPort! });
        socket.once('error', reject);
        socket.on('data', () => undefined);
        socket.once('close', () => resolve(false));
      });
    const scenarios: Array<[string, Scenario]> = [
      ["the BMC connector (shared context, session set once, kept without the server's certificate)", ours],
      ["the whole session set once (the server's certificate in it: decoded with it)", whole],
      ["the session as tls.connect's option (Node 20 decodes it twice)", asOption],
      ['a full handshake (no session)', full],
      ['plain TCP, no TLS', plain],
    ];
    const perRound = new Map<string, number[]>(scenarios.map(([name]) => [name, []]));
    const resumed = new Map<string, number>(scenarios.map(([name]) => [name, 0]));
    for (const [, run] of scenarios) for (let i = 0; i < 50; i++) await run(); // warm-up: code, session caches
    for (let r = 0; r < ROUNDS; r++) {
      for (const [name, run] of scenarios) {
        const cpu = process.cpuUsage();
        for (let i = 0; i < n; i++) if (await run()) resumed.set(name, resumed.get(name)! + 1);
        const used = process.cpuUsage(cpu);
        perRound.get(name)!.push((used.user + used.system) / 1000 / n);
      }
    }
    const [oursName, wholeName, optionName, fullName, plainName] = scenarios.map(([name]) => name) as [string, string, string, string, string];
    const side = (name: string) => ({ name, value: median(perRound.get(name)!), kind: 'measured' as const, stat: 'median of rounds' });
    const share = (name: string) => (100 * resumed.get(name)!) / (ROUNDS * n);
    out.record({ ...side(oursName), unit: 'ms', reference: side(wholeName), better: 'lower' });
    out.record({ ...side(oursName), unit: 'ms', reference: side(optionName), better: 'lower' });
    out.record({ ...side(oursName), unit: 'ms', reference: side(fullName), better: 'lower', differs: 'the reference makes a full handshake (key exchange, certificate) instead of resuming' });
    out.record({ ...side(oursName), unit: 'ms', reference: side(plainName), better: 'lower', differs: 'the reference is a TCP connection without TLS: what TLS adds to each' });
    out.record({ name: `resident memory per open TLS connection (${HELD} held at once, after GC)`, value: await heldMemory(HOST, holdPort!, context, HELD), unit: 'KiB', kind: 'measured' });
    out.record({ name: `connections that resumed: ${oursName}`, value: share(oursName), unit: '%', kind: 'measured', detail: true });
    out.record({ name: `connections that resumed: ${wholeName}`, value: share(wholeName), unit: '%', kind: 'measured', detail: true });
    out.record({ name: `connections that resumed: ${optionName}`, value: share(optionName), unit: '%', kind: 'measured', detail: true });
  } finally {
    server.kill();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await benchTlsResume(Number(process.argv[2] ?? 300));
}
