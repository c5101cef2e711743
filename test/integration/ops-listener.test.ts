/**
 * The operations listener's bounds (src/ops/http.ts, src/net/connection-limits.ts): a peer that
 * connects and sends nothing is closed after the first-request time, and connections beyond the
 * per-source or total bound are refused, each counted; requests within the bounds are answered
 * (curl).
 */
import { execFile } from 'node:child_process';
import { connect, type Socket } from 'node:net';
import { promisify } from 'node:util';
import { Registry } from 'prom-client';
import { afterEach, expect } from 'vitest';
import { startOpsServer, type OpsRefusal, type OpsServer } from '../../src/ops/http.js';
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

async function start(o: { perSource?: number; total?: number; firstRequestMs?: number } = {}) {
  const refused: OpsRefusal[] = [];
  const server = await startOpsServer({ host: '127.0.0.1', port: 0, registry: new Registry(), readiness: {}, limits: { perSource: o.perSource ?? 32, total: o.total ?? 256 }, firstRequestMs: o.firstRequestMs ?? 10_000, onRefused: (why) => refused.push(why) });
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
});
