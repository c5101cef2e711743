/**
 * The write-stall bound on a TLS listener (src/net/connection-limits.ts `boundWriteStalls`, as
 * the console WebSocket listener uses it): one answer written in one piece (a status document,
 * the page's xterm.js) to a client that reads it slowly but steadily goes out whole, while a client
 * that reads none of it is cut; a stream that keeps its own bound (`keepsOwnStallBound`, the status
 * events) is left to it. On TLS, Node's `bytesWritten - writableLength` moves only when the whole
 * write is handed to the kernel, and the TLS layer's own `writeQueueSize` does not move while the
 * peer reads: these pin that the TCP handle's queue under it is what the bound watches.
 */
import { readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { connect, type TLSSocket } from 'node:tls';
import { afterAll, afterEach, beforeAll, expect } from 'vitest';
import { boundWriteStalls, keepsOwnStallBound } from '../../src/net/connection-limits.js';
import { createPki, type Pki } from '../helpers/pki.js';
import { withPeers } from '../helpers/peers.js';
import { waitFor } from '../helpers/wait.js';

const { describe, it } = withPeers('openssl');

/** larger than both ends' socket buffers on loopback (the send buffer grows to 4 MiB) */
const ANSWER = Buffer.alloc(16 << 20, 'x');
const STALL_MS = 2000;

let pki: Pki;
const servers: Server[] = [];
const clients: TLSSocket[] = [];
beforeAll(async () => {
  pki = await createPki();
});
afterAll(() => rmSync(pki.dir, { recursive: true, force: true }));
afterEach(async () => {
  for (const c of clients.splice(0)) c.destroy();
  for (const s of servers.splice(0)) await new Promise((resolve) => s.close(resolve));
});

/** An HTTPS server answering each request with ANSWER in one write; `/own-bound` marks its answer as keeping its own bound. */
async function start() {
  const stalled: string[] = [];
  const server = createServer({ cert: readFileSync(pki.serverCert), key: readFileSync(pki.serverKey) }, (req, res) => {
    if (req.url === '/own-bound') keepsOwnStallBound(res);
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': ANSWER.length }).end(ANSWER);
  });
  const paths = new WeakMap<Socket, string>();
  server.on('request', (req) => paths.set(req.socket, req.url ?? ''));
  boundWriteStalls(server, STALL_MS, (socket) => stalled.push(paths.get(socket) ?? '?'));
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { port: (server.address() as AddressInfo).port, stalled };
}

/** A TLS client that asked for `path` with HTTP/1.0 (the body ends with the connection); `received` counts what came, headers included. */
async function ask(port: number, path: string) {
  const socket = connect({ port, host: '127.0.0.1', ca: readFileSync(pki.ca), servername: 'localhost' });
  clients.push(socket);
  socket.on('error', () => undefined);
  await new Promise<void>((resolve) => socket.once('secureConnect', () => resolve()));
  socket.write(`GET ${path} HTTP/1.0\r\nHost: localhost\r\n\r\n`);
  return { socket };
}

describe('the write-stall bound on a TLS listener', () => {
  it('does not cut a client reading one 16 MiB write slowly but steadily: it gets all of it', async () => {
    const { port, stalled } = await start();
    const { socket } = await ask(port, '/');
    // 128 KiB, then a pause of 50 ms: ~2.5 MiB/s at most, ~6 s for the answer, far beyond the bound
    const chunks: Buffer[] = [];
    let sinceRest = 0;
    socket.on('data', (d: Buffer) => {
      chunks.push(d);
      sinceRest += d.length;
      if (sinceRest < 128 << 10) return;
      sinceRest = 0;
      socket.pause();
      setTimeout(() => socket.resume(), 50);
    });
    await new Promise((resolve) => socket.once('end', resolve));
    const answer = Buffer.concat(chunks);
    expect(answer.length - (answer.indexOf('\r\n\r\n') + 4)).toBe(ANSWER.length);
    expect(stalled).toEqual([]);
  });

  it('cuts a client that reads none of the answer; an answer that keeps its own bound, asked for before it, is left alone', async () => {
    const { port, stalled } = await start();
    // reads nothing: what arrives stays in the kernel's receive buffer, whose window closes
    const own = await ask(port, '/own-bound');
    own.socket.pause();
    // its answer is being written before the other is asked for: were it watched, its stall would end first
    await waitFor(() => own.socket.readableLength > 0 || own.socket.bytesRead > 0, 5000, 'the first answer being written');
    const stuck = await ask(port, '/');
    stuck.socket.pause();
    // (its FIN waits behind the bytes the paused client never reads: the server's word is the sign)
    await waitFor(() => stalled.length > 0, 4 * STALL_MS, 'the stalled answer cut');
    expect(stalled).toEqual(['/']);
  });
});
