/**
 * The Redfish transport's own HTTP/1.1 connections (src/redfish/h1-connection.ts) against a TLS
 * server that answers with scripted bytes: what real BMC web servers do at the edges of HTTP/1.1
 * (closing idle or answered connections with and without saying so, bodies without a length,
 * chunks, interim answers, bytes beyond an answer, `Keep-Alive: timeout=`), and what the client
 * must never put on the wire (a line end in a header, a body longer than it declared).
 */
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { Readable } from 'node:stream';
import { createServer as createTlsServer, type Server as TlsServer, type TLSSocket } from 'node:tls';
import { createServer as createTcpServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { afterAll, afterEach, beforeAll, expect } from 'vitest';
import { BmcError } from '../../src/errors.js';
import { createTransport, type HttpTransport, type TransportOptions } from '../../src/redfish/index.js';
import { createPki, type Pki } from '../helpers/pki.js';
import { withPeers } from '../helpers/peers.js';
import { waitFor } from '../helpers/wait.js';

const { describe, it } = withPeers('openssl');

interface SeenRequest {
  /** the request line and headers as sent */
  head: string;
  method: string;
  path: string;
  headers: Record<string, string>;
  body: Buffer;
  /** which TLS connection (1, 2, ...) carried it */
  connection: number;
  /** the server name the client sent in its TLS hello (SNI), false for none */
  servername: string | false;
}

/** What the server does with one request: bytes to send, then keep the connection, close it, or close it after `cutAfter` bytes. */
interface Answer {
  bytes: string | Buffer;
  then?: 'keep' | 'close';
  /** bytes sent before the connection is destroyed (an answer cut off) */
  cutAfter?: number;
  /** after the bytes, the TCP connection is reset (RST), not closed */
  reset?: boolean;
}

type Script = (req: SeenRequest, index: number) => Answer | undefined;

let pki: Pki;
/** TCP in front of the TLS server, so that a test can reset a connection */
let server: Server;
let tlsServer: TlsServer;
let port: number;
let script: Script;
let seen: SeenRequest[] = [];
let connections = 0;
const transports: HttpTransport[] = [];
const sockets = new Set<TLSSocket>();

/** Splits complete requests off `buf` (Content-Length or chunked bodies); returns them and what is left. */
function takeRequests(buf: Buffer, connection: number, servername: string | false): { requests: SeenRequest[]; rest: Buffer } {
  const requests: SeenRequest[] = [];
  for (;;) {
    const end = buf.indexOf('\r\n\r\n');
    if (end < 0) return { requests, rest: buf };
    const head = buf.subarray(0, end).toString('latin1');
    const [line, ...lines] = head.split('\r\n');
    const [method, path] = line!.split(' ');
    const headers: Record<string, string> = {};
    for (const l of lines) headers[l.slice(0, l.indexOf(':')).toLowerCase()] = l.slice(l.indexOf(':') + 1).trim();
    let at = end + 4;
    let body: Buffer = Buffer.alloc(0);
    if (headers['content-length'] !== undefined) {
      const n = Number(headers['content-length']);
      if (buf.length < at + n) return { requests, rest: buf };
      body = buf.subarray(at, at + n);
      at += n;
    } else if (headers['transfer-encoding'] === 'chunked') {
      const parts: Buffer[] = [];
      for (;;) {
        const lineEnd = buf.indexOf('\r\n', at);
        if (lineEnd < 0) return { requests, rest: buf };
        const size = parseInt(buf.subarray(at, lineEnd).toString('latin1'), 16);
        if (buf.length < lineEnd + 2 + size + 2) return { requests, rest: buf };
        parts.push(buf.subarray(lineEnd + 2, lineEnd + 2 + size));
        at = lineEnd + 2 + size + 2;
        if (size === 0) break;
      }
      body = Buffer.concat(parts);
    }
    requests.push({ head, method: method!, path: path!, headers, body, connection, servername });
    buf = buf.subarray(at);
  }
}

beforeAll(async () => {
  pki = await createPki();
  tlsServer = createTlsServer({ cert: readFileSync(pki.serverCert), key: readFileSync(pki.serverKey) }, (socket) => {
    const tcp = (socket as TLSSocket & { _parent: Socket })._parent;
    const connection = ++connections;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    let buf: Buffer = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      const taken = takeRequests(Buffer.concat([buf, chunk]), connection, (socket as TLSSocket & { servername: string | false }).servername);
      buf = taken.rest;
      for (const req of taken.requests) {
        seen.push(req);
        const answer = script(req, seen.length - 1);
        if (answer === undefined) continue;
        const bytes = typeof answer.bytes === 'string' ? Buffer.from(answer.bytes, 'latin1') : answer.bytes;
        if (answer.cutAfter !== undefined) {
          socket.write(bytes.subarray(0, answer.cutAfter), () => socket.destroy());
          return;
        }
        if (answer.reset === true) {
          socket.write(bytes, () => setTimeout(() => tcp.resetAndDestroy(), 20));
          return;
        }
        socket.write(bytes);
        if (answer.then === 'close') socket.end();
      }
    });
  });
  server = createTcpServer((c) => tlsServer.emit('connection', c));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  port = (server.address() as AddressInfo).port;
}, 60_000);

afterAll(async () => {
  server?.close();
  tlsServer?.close();
  pki?.remove();
});

afterEach(async () => {
  await Promise.all(transports.splice(0).map((t) => t.close(0)));
  for (const s of sockets) s.destroy();
  seen = [];
  connections = 0;
});

function transport(extra: Partial<TransportOptions> = {}): HttpTransport {
  const t = createTransport({ host: '127.0.0.1', port, insecure: true, retryBackoffMs: 10, timeoutMs: 5000, ...extra });
  transports.push(t);
  return t;
}

const json = (value: unknown, extraHeaders = ''): string => {
  const body = JSON.stringify(value);
  return `HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n${extraHeaders}Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
};
const get = (t: HttpTransport, path: string, signal?: AbortSignal) => t.request({ method: 'GET', path, ...(signal ? { signal } : {}) });

describe('keep-alive and the BMC closing connections', () => {
  it('answers with a length keep one TLS connection for every request', async () => {
    script = (req) => ({ bytes: json({ path: req.path }) });
    const t = transport();
    for (const path of ['/redfish/v1/', '/redfish/v1/Systems', '/redfish/v1/Chassis']) expect((await get(t, path)).body).toEqual({ path });
    expect(seen.map((r) => r.connection)).toEqual([1, 1, 1]);
    expect(seen[0]!.headers.host).toBe(`127.0.0.1:${port}`);
  });

  it('an answer saying Connection: close is read whole, and the next request opens a new connection', async () => {
    script = (req) => ({ bytes: json({ path: req.path }, 'Connection: close\r\n'), then: 'close' });
    const t = transport();
    expect((await get(t, '/redfish/v1/')).body).toEqual({ path: '/redfish/v1/' });
    expect((await get(t, '/redfish/v1/Systems')).body).toEqual({ path: '/redfish/v1/Systems' });
    expect(seen.map((r) => r.connection)).toEqual([1, 2]);
  });

  it('a BMC that closes an idle connection without a word: the next GET gets its answer on a new one', async () => {
    script = (req) => ({ bytes: json({ path: req.path }) });
    const t = transport({ retries: 0 });
    await get(t, '/redfish/v1/');
    for (const s of sockets) s.end();
    await waitFor(() => sockets.size === 0, 5000, 'the server side closed');
    expect((await get(t, '/redfish/v1/Systems')).body).toEqual({ path: '/redfish/v1/Systems' });
    expect(seen.map((r) => r.connection)).toEqual([1, 2]);
  });

  it('Keep-Alive: timeout=1 (less the second kept in hand) is not kept for the next request', async () => {
    script = (req) => ({ bytes: json({ path: req.path }, 'Keep-Alive: timeout=1\r\n') });
    const t = transport();
    await get(t, '/redfish/v1/');
    await get(t, '/redfish/v1/Systems');
    expect(seen.map((r) => r.connection)).toEqual([1, 2]);
  });

  it('an HTTP/1.0 answer without keep-alive is not reused; with it, it is', async () => {
    script = (req, i) => ({ bytes: json({ i }).replace('HTTP/1.1', 'HTTP/1.0').replace('Content-Type', i < 2 ? 'Connection: keep-alive\r\nContent-Type' : 'Content-Type') });
    const t = transport();
    for (const path of ['/redfish/v1/', '/redfish/v1/a', '/redfish/v1/b', '/redfish/v1/c']) await get(t, path);
    expect(seen.map((r) => r.connection)).toEqual([1, 1, 1, 2]);
  });

  it('bytes beyond an answer: the answer is taken, the connection is not used again', async () => {
    script = (req) => ({ bytes: json({ path: req.path }) + '\r\nHTTP/1.1 200 OK\r\n' });
    const t = transport();
    expect((await get(t, '/redfish/v1/')).body).toEqual({ path: '/redfish/v1/' });
    expect((await get(t, '/redfish/v1/Systems')).body).toEqual({ path: '/redfish/v1/Systems' });
    expect(seen.map((r) => r.connection)).toEqual([1, 2]);
  });
});

describe('a BMC that closes a connection with or right after its answer', () => {
  it('an answer with a length, then the connection closed without a word: the next request, a POST too, goes on a new connection', async () => {
    script = (req) => ({ bytes: req.method === 'POST' ? 'HTTP/1.1 204 No Content\r\n\r\n' : json({ path: req.path }), then: 'close' });
    const t = transport();
    for (let i = 0; i < 5; i++) {
      expect((await get(t, '/redfish/v1/')).body).toEqual({ path: '/redfish/v1/' });
      expect((await t.request({ method: 'POST', path: '/redfish/v1/Actions/x', json: {} })).status).toBe(204);
    }
    expect(seen.map((r) => r.method)).toEqual(Array.from({ length: 5 }, () => ['GET', 'POST']).flat());
    expect(new Set(seen.map((r) => r.connection)).size).toBe(10);
    expect(t.outages).toBe(0);
  });

  it('a body without a length ended by a reset (an old web server): the answer is taken, not asked again', async () => {
    script = (req) => ({ bytes: `HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n${JSON.stringify({ path: req.path })}`, reset: true });
    const t = transport({ retries: 2 });
    expect((await get(t, '/redfish/v1/')).body).toEqual({ path: '/redfish/v1/' });
    expect(seen).toHaveLength(1);
    expect(t.outages).toBe(0);
  });

  it('line ends after an answer (a server ending its answers with an extra CRLF) keep the connection', async () => {
    script = (req) => ({ bytes: json({ path: req.path }) + '\r\n' });
    const t = transport();
    for (const path of ['/redfish/v1/', '/redfish/v1/Systems', '/redfish/v1/Chassis']) expect((await get(t, path)).body).toEqual({ path });
    expect(seen.map((r) => r.connection)).toEqual([1, 1, 1]);
  });
});

describe('a kept connection reset under the next request (HTTP_STALE_CONNECTION)', () => {
  it('a GET is asked again on a new connection and counted as the BMC gone; a POST fails without being sent again', async () => {
    script = (req, i) => (i === 1 || i === 3 ? { bytes: '', reset: true } : { bytes: req.method === 'POST' ? 'HTTP/1.1 204 No Content\r\n\r\n' : json({ path: req.path }) });
    const t = transport({ retries: 1 });
    await get(t, '/redfish/v1/');
    expect((await get(t, '/redfish/v1/Systems')).body).toEqual({ path: '/redfish/v1/Systems' });
    expect(seen.map((r) => [r.method, r.connection])).toEqual([['GET', 1], ['GET', 1], ['GET', 2]]);
    expect(t.outages).toBe(1);
    const err = await t.request({ method: 'POST', path: '/redfish/v1/Actions/x', json: {} }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'CLOSED', message: expect.stringMatching(/HTTP_STALE_CONNECTION: the BMC closed the kept-alive connection before answering/) });
    expect(seen.map((r) => [r.method, r.connection])).toEqual([['GET', 1], ['GET', 1], ['GET', 2], ['POST', 2]]);
    expect(t.outages).toBe(2);
  });
});

describe('bodies as BMCs frame them', () => {
  it('a chunked body with extensions and trailers, after a 100 Continue', async () => {
    const body = JSON.stringify({ Id: 'System.Embedded.1', Name: 'System' });
    script = () => ({
      bytes: `HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;name=x\r\n${body.slice(0, 5)}\r\n${(body.length - 5).toString(16).toUpperCase()}\r\n${body.slice(5)}\r\n0\r\nX-Trailer: 1\r\n\r\n`,
    });
    const t = transport();
    expect((await get(t, '/redfish/v1/Systems/1')).body).toEqual(JSON.parse(body));
    expect((await get(t, '/redfish/v1/Systems/1')).body).toEqual(JSON.parse(body));
    expect(seen.map((r) => r.connection)).toEqual([1, 1]);
  });

  it('an answer whose lines end in LF alone (as Go\'s net/http, curl and Python read them; undici refused it) is read, and the connection kept', async () => {
    script = (req) => {
      const body = JSON.stringify({ path: req.path });
      return { bytes: `HTTP/1.1 200 OK\nContent-Type: application/json\nContent-Length: ${body.length}\n\n${body}` };
    };
    const t = transport();
    expect((await get(t, '/redfish/v1/')).body).toEqual({ path: '/redfish/v1/' });
    expect((await get(t, '/redfish/v1/Systems')).body).toEqual({ path: '/redfish/v1/Systems' });
    expect(seen.map((r) => r.connection)).toEqual([1, 1]);
  });

  it('a body without a length runs to the connection\'s end (an old BMC web server)', async () => {
    script = (req) => ({ bytes: `HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n${JSON.stringify({ path: req.path })}`, then: 'close' });
    const t = transport();
    expect((await get(t, '/redfish/v1/')).body).toEqual({ path: '/redfish/v1/' });
    expect((await get(t, '/redfish/v1/Systems')).body).toEqual({ path: '/redfish/v1/Systems' });
    expect(seen.map((r) => r.connection)).toEqual([1, 2]);
  });

  it('an answer cut off mid-body is asked again (a GET), and its second answer taken', async () => {
    script = (req, i) => (i === 0 ? { bytes: json({ path: req.path }), cutAfter: 70 } : { bytes: json({ path: req.path }) });
    const t = transport({ retries: 1 });
    expect((await get(t, '/redfish/v1/')).body).toEqual({ path: '/redfish/v1/' });
    expect(seen.map((r) => r.connection)).toEqual([1, 2]);
  });

  it('a malformed head is a PROTOCOL error naming it, not retried', async () => {
    script = () => ({ bytes: 'HTTP/1.1 200 OK\r\nContent-Length 5\r\n\r\nhello' });
    const t = transport({ retries: 2 });
    const err = await get(t, '/redfish/v1/').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BmcError);
    expect((err as BmcError).code).toBe('PROTOCOL');
    expect((err as BmcError).message).toMatch(/not a header line/);
    expect(seen).toHaveLength(1);
  });

  it('a Content-Length larger than the transport takes fails at the head', async () => {
    script = () => ({ bytes: `HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n` });
    const t = transport({ maxResponseBytes: 1024 });
    await expect(get(t, '/redfish/v1/')).rejects.toMatchObject({ code: 'DECODE', message: expect.stringMatching(/5000 bytes is larger than 1024/) });
  });
});

describe('what goes on the wire', () => {
  it('a POST carries its JSON with its length, a DELETE no body, a POST without one content-length 0', async () => {
    script = () => ({ bytes: 'HTTP/1.1 204 No Content\r\n\r\n' });
    const t = transport();
    await t.request({ method: 'POST', path: '/redfish/v1/Actions/x', json: { ResetType: 'On' } });
    await t.request({ method: 'DELETE', path: '/redfish/v1/SessionService/Sessions/1' });
    await t.request({ method: 'POST', path: '/redfish/v1/Actions/y', bodyOptional: true });
    const sent = '{"ResetType":"On"}';
    expect(seen.map((r) => [r.method, r.headers['content-length'], r.body.toString()])).toEqual([
      ['POST', String(sent.length), sent],
      ['DELETE', undefined, ''],
      ['POST', '0', ''],
    ]);
    expect(seen.map((r) => r.connection)).toEqual([1, 1, 1]);
  });

  it('a BMC reached by its host name is sent that name (SNI), one reached by its address none', async () => {
    script = () => ({ bytes: json({}) });
    await get(transport({ host: 'localhost' }), '/redfish/v1/');
    await get(transport(), '/redfish/v1/');
    expect(seen.map((r) => r.servername)).toEqual(['localhost', false]);
  });

  it('a header value with a line end is refused before anything is sent', async () => {
    script = () => ({ bytes: json({}) });
    const t = transport();
    await expect(t.request({ method: 'GET', path: '/redfish/v1/', headers: { 'x-auth-token': 'abc\r\nX-Injected: 1' } })).rejects.toMatchObject({ code: 'PROTOCOL', message: expect.stringMatching(/line end or control character/) });
    expect(seen).toHaveLength(0);
  });

  it('a streamed body of unknown length goes in chunks; one longer than its content-length fails and is cut', async () => {
    script = () => ({ bytes: json({ ok: true }) });
    const t = transport();
    const image = Buffer.alloc(200_000, 7);
    await t.request({ method: 'POST', path: '/upload', stream: Readable.from([image.subarray(0, 70_000), image.subarray(70_000)]), headers: { 'content-type': 'application/octet-stream' } });
    expect(seen[0]!.headers['transfer-encoding']).toBe('chunked');
    expect(seen[0]!.body.equals(image)).toBe(true);
    // a body that passes its declared 1,000 bytes at its second piece of 600: cut there, the rest
    // of the stream never read (five pieces, pulled one at a time)
    let pulled = 0;
    const pieces = new Readable({
      highWaterMark: 1,
      read() {
        pulled++;
        this.push(pulled <= 5 ? Buffer.alloc(600, 1) : null);
      },
    });
    const err = await t.request({ method: 'POST', path: '/upload', stream: pieces, headers: { 'content-type': 'application/octet-stream', 'content-length': '1000' } }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'PROTOCOL', message: expect.stringMatching(/request body length mismatch/) });
    expect(pieces.destroyed).toBe(true);
    expect(pulled).toBeLessThan(5);
  });

  it('a request aborted while its answer is on the way: the connection is dropped, the next request opens another', async () => {
    // the first request is never answered: the caller's abort ends it
    script = (req, i) => (i === 0 ? undefined : { bytes: json({ path: req.path }) });
    const t = transport();
    const controller = new AbortController();
    const first = get(t, '/redfish/v1/', controller.signal);
    await waitFor(() => seen.length === 1, 5000, 'the first request at the server');
    controller.abort(new Error('caller gave up'));
    await expect(first).rejects.toBeInstanceOf(Error);
    expect((await get(t, '/redfish/v1/Systems')).body).toEqual({ path: '/redfish/v1/Systems' });
    expect(seen.map((r) => r.connection)).toEqual([1, 2]);
  });
});
