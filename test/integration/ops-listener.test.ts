import fc from 'fast-check';
/**
 * The operations listener's bounds (src/ops/http.ts, src/net/connection-limits.ts): a peer that
 * connects and sends nothing is closed after the first-request time, and connections beyond the
 * per-source or total bound are refused, each counted; requests within the bounds are answered
 * (curl). A request whose Host header names none of the listener's names (DNS rebinding from a
 * browser) gets 421 whatever its path. A peer that asks and never reads has its connection closed
 * once none of the answer went out for the write-stall bound.
 */
import { execFile } from 'node:child_process';
import { connect, type Socket } from 'node:net';
import { promisify } from 'node:util';
import { Gauge, Registry } from 'prom-client';
import { afterEach, expect } from 'vitest';
import { hostname } from 'node:os';
import type { Logger } from '../../src/log.js';
import { hostsFileNames, ownHostNames } from '../../src/ops/host-check.js';
import { startOpsServer, type OpsRefusal, type OpsServer } from '../../src/ops/http.js';
import { captureLog } from '../helpers/log.js';
import { withPeers } from '../helpers/peers.js';
import { waitFor } from '../helpers/wait.js';

const { describe, it } = withPeers('curl');
const run = promisify(execFile);

const servers: OpsServer[] = [];
const sockets: Socket[] = [];
afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  for (const s of servers.splice(0)) await s.close();
});

async function start(o: { perSource?: number; total?: number; firstRequestMs?: number; writeStallMs?: number; registry?: Registry; allowedHosts?: string[]; logger?: Logger } = {}) {
  const refused: OpsRefusal[] = [];
  const server = await startOpsServer({
    host: '127.0.0.1',
    port: 0,
    registry: o.registry ?? new Registry(),
    readiness: {},
    limits: { perSource: o.perSource ?? 32, total: o.total ?? 256 },
    firstRequestMs: o.firstRequestMs ?? 10_000,
    ...(o.writeStallMs === undefined ? {} : { writeStallMs: o.writeStallMs }),
    onRefused: (why) => refused.push(why),
    // a status route as the daemon adds: the Host check comes before it
    routes: (req, res) => (req.url === '/v1/status' ? (res.writeHead(200, { 'content-type': 'application/json' }).end('{"bmcs":[]}\n'), true) : false),
    ...(o.allowedHosts ? { allowedHosts: o.allowedHosts } : {}),
    ...(o.logger ? { logger: o.logger } : {}),
  });
  servers.push(server);
  return { server, refused };
}

/** a connection that sends nothing; resolves once connected, `closed()` tells when the server closed it */
async function silent(port: number): Promise<{ socket: Socket; closed: () => boolean }> {
  const socket = connect(port, '127.0.0.1');
  sockets.push(socket);
  let closed = false;
  socket.on('close', () => (closed = true));
  socket.on('error', () => undefined);
  await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
  return { socket, closed: () => closed };
}

const healthz = async (port: number) => (await run('curl', ['-sS', '--max-time', '5', `http://127.0.0.1:${port}/healthz`])).stdout;

describe('the operations listener', () => {
  it('closes a connection that sends no request within the first-request time, and counts it; one that asks is answered', async () => {
    const { server, refused } = await start({ firstRequestMs: 300 });
    const quiet = await silent(server.port);
    expect(await healthz(server.port)).toBe('ok\n');
    await waitFor(() => quiet.closed(), 5000, 'the silent connection closed');
    expect(refused).toEqual(['silent']);
  });

  it('closes a connection that asked for /metrics and reads none of it once nothing went out for the write-stall bound, counted; a client that reads gets all of it', async () => {
    // an answer larger than both ends' socket buffers (loopback's send buffer grows to 4 MiB)
    const registry = new Registry();
    const gauge = new Gauge({ name: 'big', help: 'an answer that does not fit the socket buffers', labelNames: ['pad'], registers: [registry] });
    for (let i = 0; i < 4; i++) gauge.set({ pad: `${i}`.padEnd(4 << 20, 'x') }, i);
    // long enough that a reader on a busy machine (tests in parallel) is not starved past it
    const { server, refused } = await start({ registry, writeStallMs: 2000 });
    const reader = await run('curl', ['-sS', '--max-time', '20', '-o', '/dev/null', '-w', '%{size_download}', `http://127.0.0.1:${server.port}/metrics`]);
    expect(Number(reader.stdout)).toBeGreaterThan(16 << 20);
    const stuck = await silent(server.port);
    stuck.socket.write('GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
    // reads nothing: what arrives stays in the kernel's receive buffer, whose window closes
    stuck.socket.pause();
    await waitFor(() => refused.includes('stalled'), 10_000, 'the stalled answer ended');
    expect(refused).toEqual(['stalled']);
    // the server let go: reading now gets what the kernels held, then the end, short of the answer
    let received = 0;
    stuck.socket.on('data', (d: Buffer) => (received += d.length));
    const closed = new Promise((resolve) => stuck.socket.once('close', resolve));
    stuck.socket.resume();
    await closed;
    expect(received).toBeLessThan(16 << 20);
  });

  it('does not close a connection whose client reads one large answer slowly but steadily (a browser over a slow VPN): none of the one write completes for longer than the bound, yet it gets all of it', async () => {
    // one res.end of 16 MiB: Node counts it written only when libuv handed its last byte to the
    // kernel, so a bound on completed writes saw no progress for as long as the reader took
    const registry = new Registry();
    const gauge = new Gauge({ name: 'big', help: 'an answer that does not fit the socket buffers', labelNames: ['pad'], registers: [registry] });
    for (let i = 0; i < 4; i++) gauge.set({ pad: `${i}`.padEnd(4 << 20, 'x') }, i);
    const { server, refused } = await start({ registry, writeStallMs: 2000 });
    const slow = await silent(server.port);
    // HTTP/1.0: the body is not chunked and ends with the connection, so a cut one is short
    slow.socket.write('GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n');
    // 128 KiB, then a pause of 50 ms: ~2.5 MiB/s at most, ~6 s for the answer, far beyond the bound
    const chunks: Buffer[] = [];
    let sinceRest = 0;
    slow.socket.on('data', (d: Buffer) => {
      chunks.push(d);
      sinceRest += d.length;
      if (sinceRest < 128 << 10) return;
      sinceRest = 0;
      slow.socket.pause();
      setTimeout(() => slow.socket.resume(), 50);
    });
    await new Promise((resolve) => slow.socket.once('end', resolve));
    const answer = Buffer.concat(chunks);
    const headEnd = answer.indexOf('\r\n\r\n') + 4;
    const whole = Buffer.byteLength(await registry.metrics());
    expect(whole).toBeGreaterThan(16 << 20);
    expect(answer.length - headEnd).toBe(whole);
    expect(refused).toEqual([]);
  });

  it('answers a request with an Upgrade header (curl --http2 asks for h2c) as a request, within the first-request time', async () => {
    const { server, refused } = await start({ firstRequestMs: 500 });
    const out = await run('curl', ['-sS', '--max-time', '5', '--http2', `http://127.0.0.1:${server.port}/healthz`]);
    expect(out.stdout).toBe('ok\n');
    expect(refused).toEqual([]);
  });

  it('refuses connections beyond the per-source and the total bound, counted; answers again once they are gone', async () => {
    const { server, refused } = await start({ perSource: 2, total: 3 });
    const held = [await silent(server.port), await silent(server.port)];
    const third = await silent(server.port);
    await waitFor(() => third.closed(), 5000, 'the third connection from one address refused');
    expect(refused).toEqual(['per-source']);
    expect(held.every((h) => !h.closed())).toBe(true);
    // another loopback address is another source, until the total is reached
    const other = connect({ port: server.port, host: '127.0.0.1', localAddress: '127.0.0.2' });
    sockets.push(other);
    other.on('error', () => undefined);
    await new Promise<void>((resolve) => other.once('connect', () => resolve()));
    await expect(run('curl', ['-sS', '--max-time', '5', '--interface', '127.0.0.3', `http://127.0.0.1:${server.port}/healthz`])).rejects.toThrow();
    expect(refused).toEqual(['per-source', 'total']);
    for (const h of held) h.socket.destroy();
    other.destroy();
    await waitFor(async () => (await healthz(server.port).catch(() => '')) === 'ok\n', 5000, 'answered again');
  });

  it('refuses a request whose Host is a foreign name (DNS rebinding) with 421 on every path, counted, one log line; IP literals, localhost, this host\'s name and allowed names are answered', async () => {
    const log = captureLog();
    const { server, refused } = await start({ allowedHosts: ['prometheus-target.mgmt.example'], logger: log.logger });
    const get = async (host: string, path = '/healthz') => {
      const out = await run('curl', ['-sS', '--max-time', '5', '-H', `Host: ${host}`, '-w', '\n%{http_code}', `http://127.0.0.1:${server.port}${path}`]);
      const at = out.stdout.lastIndexOf('\n');
      return { status: Number(out.stdout.slice(at + 1)), body: out.stdout.slice(0, at) };
    };
    for (const path of ['/healthz', '/readyz', '/metrics', '/v1/status']) {
      const r = await get(`rebind.attacker.example:${server.port}`, path);
      expect(r.status, path).toBe(421);
      expect(r.body, path).toBe(`Host "rebind.attacker.example:${server.port}" is not a name of this listener: use its IP address, localhost, or a name in METAL_BMC_HTTP_ALLOWED_HOSTS\n`);
    }
    expect((await get('attacker.example')).status).toBe(421);
    // a name that starts like an allowed one, and one that only ends like it, are other names
    expect((await get('prometheus-target.mgmt.example.attacker.example')).status).toBe(421);
    expect((await get('evil-prometheus-target.mgmt.example')).status).toBe(421);
    expect(refused).toEqual(Array(7).fill('host'));
    // the first refusal said, the rest within the minute counted in the next line
    expect(log.find(/^operations listener request refused: Host is not a name of this listener/)).toEqual([expect.objectContaining({ host: `rebind.attacker.example:${server.port}`, path: '/healthz' })]);
    for (const host of [`127.0.0.1:${server.port}`, '127.0.0.1', `[::1]:${server.port}`, '[::1]', `localhost:${server.port}`, 'LOCALHOST.', 'prometheus-target.mgmt.example', `Prometheus-Target.mgmt.example.:${server.port}`, ...ownHostNames().map((n) => `${n}:${server.port}`)]) {
      const r = await get(host, '/v1/status');
      expect(r.status, host).toBe(200);
      expect(r.body, host).toBe('{"bmcs":[]}\n');
    }
    expect(refused).toHaveLength(7);
  });

  it('answers every Host with * in the allowed names', async () => {
    const { server, refused } = await start({ allowedHosts: ['*'] });
    const out = await run('curl', ['-sS', '--max-time', '5', '-H', 'Host: anything.example', `http://127.0.0.1:${server.port}/healthz`]);
    expect(out.stdout).toBe('ok\n');
    expect(refused).toEqual([]);
  });
});

describe("this host's names", () => {
  it('are the whole of os.hostname() and, for a dotted name, its first label; an IP address is not cut', () => {
    expect(ownHostNames('Node-7.Mgmt.Example')).toEqual(['node-7.mgmt.example', 'node-7']);
    expect(ownHostNames('node-7')).toEqual(['node-7']);
    expect(ownHostNames('10.1.2.3')).toEqual(['10.1.2.3']);
    expect(ownHostNames('')).toEqual([]);
    expect(ownHostNames()).toContain(hostname().toLowerCase());
  });

  it("include the full names /etc/hosts gives a short hostname (what Prometheus targets use), and no other line's", () => {
    const hosts = '127.0.0.1 localhost\n127.0.1.1\tMgmt01.Site.Example. mgmt01 # the management server\n10.0.0.9 other.site.example other\n# 10.0.0.7 mgmt01.evil.example\n';
    expect(hostsFileNames(hosts, ['mgmt01']).sort()).toEqual(['mgmt01', 'mgmt01.site.example']);
    expect(hostsFileNames(hosts, ['nobody'])).toEqual([]);
    fc.assert(
      fc.property(fc.string({ maxLength: 400 }), fc.array(fc.string({ maxLength: 20 }), { maxLength: 3 }), (text, own) => {
        const names = hostsFileNames(text, own);
        for (const n of names) expect(n).toBe(n.toLowerCase());
        if (own.every((o) => o.trim() === '')) expect(names).toEqual([]);
      }),
    );
  });
});
