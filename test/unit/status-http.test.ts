/** GET /v1/status serialises the whole document once per store revision: the same body while nothing changed, a new one after a change. */
import { createServer, get, type Server } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { Registry } from 'prom-client';
import fc from 'fast-check';
import { requestUrl } from '../../src/net/request-url.js';
import { startOpsServer } from '../../src/ops/http.js';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { Lease } from '../../src/leases/types.js';
import type { AuthzRule, Principal } from '../../src/console/access.js';
import { viewerOf } from '../../src/console/viewer-routes.js';
import { createStatusHttp } from '../../src/status/http.js';
import { statusViewerRoutes } from '../../src/status/page.js';
import { statusStreamRefusals } from '../../src/status/metrics.js';
import { createStatusStore, summarize } from '../../src/status/store.js';
import type { StatusDocument } from '../../src/status/types.js';
import { captureLog } from '../helpers/log.js';

const lease = (i: number): Lease => ({ ip: `10.0.0.${i}`, mac: `aa:bb:cc:00:00:${i.toString(16).padStart(2, '0')}`, expires: 'never' });
const servers: Server[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
});

async function serve(cacheMs: number) {
  // every document built gets a new generatedAt: a body built twice differs
  let t = Date.parse('2026-01-01T00:00:00Z');
  let built = 0;
  const store = createStatusStore({ partition: 'p', graceMs: 60_000, now: () => (t += 1000) });
  const counted = { ...store, document: (...a: Parameters<typeof store.document>) => (built++, store.document(...a)) };
  const http = createStatusHttp(counted, { cacheMs });
  const server = createServer((req, res) => {
    if (!http.handle(req, res)) res.writeHead(404).end();
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/status`;
  return { store, built: () => built, get: async () => (await fetch(url)).text() };
}

describe('GET /v1/status', () => {
  it('answers two requests with no change in between with the same body, built once; a change shows in the next', async () => {
    const s = await serve(60_000);
    s.store.leases([lease(1)]);
    const first = await s.get();
    const second = await s.get();
    expect(second).toBe(first);
    expect(s.built()).toBe(1);
    s.store.leases([lease(1), lease(2)]);
    const third = JSON.parse(await s.get()) as StatusDocument;
    expect(third.bmcs.map((b) => b.ip)).toEqual(['10.0.0.1', '10.0.0.2']);
    expect(third.generatedAt).not.toBe((JSON.parse(first) as StatusDocument).generatedAt);
    expect(s.built()).toBe(2);
  });

  it('rebuilds a document older than cacheMs even without a change (lease ages move on)', async () => {
    const s = await serve(1);
    s.store.leases([lease(1)]);
    const first = await s.get();
    const t = Date.now();
    while (Date.now() - t < 2); // past cacheMs
    expect(await s.get()).not.toBe(first);
    expect(s.built()).toBe(2);
  });
});

/** Sends `request` on a connection of its own and resolves with the first line of the answer (or 'closed' when none came). */
function raw(port: number, request: string): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1', () => socket.end(request));
    let text = '';
    socket.on('data', (d: Buffer) => (text += d.toString('latin1')));
    socket.on('error', () => undefined);
    socket.on('close', () => resolve(text.split('\r\n')[0] || 'closed'));
  });
}

describe('request targets the URL parser refuses', () => {
  it('GET ///, //[ and //a:b@ on the operations listener get an answer, and the process keeps serving (one such request ended it)', async () => {
    const store = createStatusStore({ partition: 'p', graceMs: 60_000 });
    const http = createStatusHttp(store);
    const ops = await startOpsServer({ host: '127.0.0.1', port: 0, registry: new Registry(), readiness: {}, routes: (req, res) => http.handle(req, res) });
    try {
      for (const target of ['///', '//[', '//a:b@', '//x/v1/status', '/v1/status?%']) {
        expect(await raw(ops.port, `GET ${target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n`)).toMatch(/^HTTP\/1\.1 (404|200)/);
      }
      expect(await raw(ops.port, 'GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n')).toBe('HTTP/1.1 200 OK');
    } finally {
      await ops.close();
    }
  });

  it('requestUrl reads any target as a path of its own origin, never throwing', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.string().map((t) => `//${t}`), fc.webUrl()), (target) => {
        const url = requestUrl(target);
        expect(url.origin).toBe('http://request.invalid');
        expect(url.pathname.startsWith('/')).toBe(true);
      }),
      { numRuns: 2000 },
    );
    expect(requestUrl('//x/v1/status').pathname).toBe('//x/v1/status');
    expect(requestUrl('/v1/status?since=1').searchParams.get('since')).toBe('1');
  });
});

/** Opens /v1/status/events and collects each `status` event's document. */
function events(port: number, localAddress = '127.0.0.1') {
  const docs: StatusDocument[] = [];
  /** each event as sent, its blank line included */
  const raw: string[] = [];
  let buffered = '';
  const req = get({ host: '127.0.0.1', port, localAddress, path: '/v1/status/events', agent: false }, (res) => {
    res.setEncoding('utf8');
    res.on('data', (chunk: string) => {
      buffered += chunk;
      let end: number;
      while ((end = buffered.indexOf('\n\n')) >= 0) {
        const data = /^data: (.*)$/m.exec(buffered.slice(0, end));
        if (data) docs.push(JSON.parse(data[1]!) as StatusDocument);
        if (data) raw.push(buffered.slice(0, end + 2));
        buffered = buffered.slice(end + 2);
      }
    });
  });
  req.on('error', () => undefined);
  return { docs, raw, close: () => req.destroy() };
}

describe('GET /v1/status/events', () => {
  it('sends each change of a machine\'s console capture state at once, with no other update (a capture starting in a gap, or ending in one, was not sent)', async () => {
    const store = createStatusStore({ partition: 'p', graceMs: 60_000 });
    store.leases([lease(1)]);
    store.read(lease(1), { ok: true, report: { uuid: 'u1', bmcVersion: '1.0', biosVersion: '2.0', fru: {}, powerState: 'ON', indicatorLED: 'LED-OFF', powerSupplies: [], source: 'redfish', missing: [] }, vendor: 'Dell', durationMs: 5 });
    let capture = new Map<string, 'held' | 'gap' | 'elsewhere'>();
    store.consoleCapture(() => capture);
    const http = createStatusHttp(store, { pollMs: 10, cacheMs: 60_000 });
    const server = createServer((req, res) => {
      if (!http.handle(req, res)) res.writeHead(404).end();
    });
    servers.push(server);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const client = events((server.address() as AddressInfo).port);
    const shown = () => client.docs.at(-1)?.bmcs[0]?.console.capture;
    try {
      await vi.waitFor(() => expect(shown()).toBe('off'), { timeout: 5000 });
      for (const state of ['gap', 'held', 'gap', 'off', 'held', 'off', 'elsewhere', 'gap', 'off'] as const) {
        capture = state === 'off' ? new Map() : new Map([['u1', state]]);
        await vi.waitFor(() => expect(shown()).toBe(state), { timeout: 5000 });
      }
    } finally {
      client.close();
      http.close();
    }
  });

  it('one address gets at most 8 streams (429 beyond, connection closed), another address still gets one; the listener\'s bound stays', async () => {
    const store = createStatusStore({ partition: 'p', graceMs: 60_000 });
    const registry = new Registry();
    const log = captureLog('info');
    const http = createStatusHttp(store, { pollMs: 1000, maxStreams: 10, onRefused: statusStreamRefusals(registry, log.logger, 'ops') });
    const server = createServer((req, res) => {
      if (!http.handle(req, res)) res.writeHead(404).end();
    });
    servers.push(server);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    /** one request for a stream from `localAddress` (loopback: 127.0.0.1 and 127.0.0.2 are two clients), its answer's head and first text */
    const open = (localAddress: string) =>
      new Promise<{ status: number; connection: string | undefined; text: string; close(): void }>((resolve, reject) => {
        const req = get({ host: '127.0.0.1', port, localAddress, path: '/v1/status/events', agent: false }, (res) => {
          res.setEncoding('utf8');
          res.once('data', (text: string) => resolve({ status: res.statusCode!, connection: res.headers.connection, text, close: () => req.destroy() }));
        });
        req.on('error', reject);
      });
    const open1 = [];
    try {
      for (let i = 0; i < 8; i++) open1.push(await open('127.0.0.1'));
      expect(open1.map((s) => s.status)).toEqual(Array(8).fill(200));
      const refused = await open('127.0.0.1');
      expect(refused).toMatchObject({ status: 429, connection: 'close', text: 'too many status streams from this address (at most 8 at once); close one first\n' });
      for (let i = 0; i < 3; i++) expect((await open('127.0.0.1')).status).toBe(429);
      const other = await open('127.0.0.2');
      expect(other.status).toBe(200);
      // four refusals, one line: a client looping on a refused stream does not write the log full
      expect(log.find('status event stream refused: too many streams')).toEqual([expect.objectContaining({ remote: expect.stringMatching(/^127\.0\.0\.1:\d+$/), listener: 'ops', limit: 'per-source' })]);
      // a stream closed frees its address's slot
      open1.pop()!.close();
      await vi.waitFor(async () => expect((await open('127.0.0.1')).status).toBe(200), { timeout: 5000 });
      // 8 from 127.0.0.1 and 2 from 127.0.0.2: the listener's 10 are taken, whoever asks
      expect((await open('127.0.0.2')).status).toBe(200);
      expect((await open('127.0.0.2')).status).toBe(503);
      const counted = (await registry.getSingleMetric('metal_bmc_status_streams_refused_total')!.get()).values.map((v) => [`${v.labels.listener} ${v.labels.reason}`, v.value]);
      // every refusal counted (a retry of the reopen above may have added one)
      expect(Object.fromEntries(counted)).toEqual({ 'ops per-source': expect.toSatisfy((n: number) => n >= 4), 'ops total': 1 });
    } finally {
      http.close();
    }
  });

  it('logs a refused stream once a minute per reason, naming the refusals since its last line; counts each', async () => {
    const registry = new Registry();
    const log = captureLog('info');
    let t = 0;
    const refuse = statusStreamRefusals(registry, log.logger, 'console', () => t);
    for (let i = 0; i < 5; i++) refuse('per-source', '10.0.0.9:4000');
    refuse('total', '10.0.0.8:4000');
    t += 60_000;
    refuse('per-source', '10.0.0.9:4001');
    const lines = log.find('status event stream refused: too many streams');
    expect(lines.map((l) => [l.limit, l.refusedSinceLastLine])).toEqual([
      ['per-source', undefined],
      ['total', undefined],
      ['per-source', 4],
    ]);
    const counted = (await registry.getSingleMetric('metal_bmc_status_streams_refused_total')!.get()).values.map((v) => [v.labels.reason, v.value]);
    expect(Object.fromEntries(counted)).toEqual({ 'per-source': 6, total: 1 });
  });

  it('a client that reads nothing is sent nothing more once its buffers are full, and its stream is closed after stallMs', async () => {
    const store = createStatusStore({ partition: 'p', graceMs: 60_000 });
    let built = 0;
    const counted = { ...store, document: (...a: Parameters<typeof store.document>) => (built++, store.document(...a)) };
    const http = createStatusHttp(counted, { pollMs: 10, cacheMs: 0, stallMs: 500 });
    const server = createServer((req, res) => {
      if (!http.handle(req, res)) res.writeHead(404).end();
    });
    servers.push(server);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    // ~3,000 BMCs: each document several hundred KB, a new one every poll
    const leases = Array.from({ length: 3000 }, (_, i) => ({ ip: `10.${(i >> 8) & 255}.${i & 255}.1`, mac: `aa:bb:cc:00:${((i >> 8) & 255).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}`, expires: 'never' as const }));
    let n = 0;
    const churn = setInterval(() => store.leases(leases.slice(0, 2000 + (n++ % 1000))), 10);
    const client = connect((server.address() as AddressInfo).port, '127.0.0.1');
    client.pause(); // never reads (so it cannot see the close either: the server's side tells)
    client.on('error', () => undefined);
    client.write('GET /v1/status/events HTTP/1.1\r\nHost: x\r\n\r\n');
    const connections = () => new Promise<number>((resolve, reject) => server.getConnections((err, count) => (err ? reject(err) : resolve(count))));
    try {
      await vi.waitFor(async () => expect(await connections()).toBe(1), { timeout: 5000 });
      await vi.waitFor(async () => expect(await connections()).toBe(0), { timeout: 10_000, interval: 50 });
    } finally {
      clearInterval(churn);
      client.destroy();
    }
    // without the stop the document was built and queued for the client at every poll until memory ran out
    expect(built).toBeLessThan(40);
  });

  it('a client that keeps reading, slower than one document takes to send, keeps its stream past stallMs', async () => {
    const store = createStatusStore({ partition: 'p', graceMs: 60_000 });
    const stallMs = 1500;
    const http = createStatusHttp(store, { pollMs: 10, cacheMs: 0, stallMs });
    const answers: Array<{ writableNeedDrain: boolean }> = [];
    const server = createServer((req, res) => {
      answers.push(res);
      if (!http.handle(req, res)) res.writeHead(404).end();
    });
    servers.push(server);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    // ~30,000 BMCs: a document of several MB, more than loopback's socket buffers take at once;
    // a new one three times a second (each costs the loop the document's building: ten a second
    // starved the reader when three test files shared two cores)
    const leases = Array.from({ length: 30_000 }, (_, i) => ({ ip: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, mac: `aa:bb:cc:${((i >> 16) & 255).toString(16).padStart(2, '0')}:${((i >> 8) & 255).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}`, expires: 'never' as const }));
    let n = 0;
    const churn = setInterval(() => store.leases(leases.slice(0, 20_000 + (n++ % 10_000))), 300);
    const client = connect((server.address() as AddressInfo).port, '127.0.0.1');
    client.pause();
    client.on('error', () => undefined);
    let closed = false;
    client.once('close', () => (closed = true));
    client.write('GET /v1/status/events HTTP/1.1\r\nHost: x\r\n\r\n');
    // ~2 MB/s by the clock (a timer tick missed under load is made up at the next): what waits of
    // one document takes the reader longer than stallMs, and the kernel lets the server write
    // again (a third of its send buffer free) well within it
    const startedAt = Date.now();
    let received = 0;
    const reader = setInterval(() => {
      // what the socket holds (up to its buffer's size) is taken while the reader is behind its rate
      while (received < (Date.now() - startedAt) * 2000) {
        const chunk = client.read() as Buffer | null;
        if (!chunk) return;
        received += chunk.length;
      }
    }, 10);
    /** the longest the stream waited for the reader without a break, sampled every 50 ms */
    let waitedLongest = 0;
    let waitingSince: number | undefined;
    const sampler = setInterval(() => {
      if (!answers[0]?.writableNeedDrain) return void (waitingSince = undefined);
      waitingSince ??= Date.now();
      waitedLongest = Math.max(waitedLongest, Date.now() - waitingSince);
    }, 50);
    try {
      // cut after stallMs of waiting, as before, the reader never gets past what the kernel held (~7 MB here)
      await vi.waitFor(() => expect(received).toBeGreaterThan(12_000_000), { timeout: 25_000, interval: 50 });
    } finally {
      clearInterval(churn);
      clearInterval(reader);
      clearInterval(sampler);
    }
    // the stream waited on its reader longer than stallMs at a stretch, and did not cut it
    expect(waitedLongest).toBeGreaterThan(stallMs);
    expect(closed).toBe(false);
    client.destroy();
  }, 40_000);

  it('close() with a client that reads nothing stops its stream: a change after it writes nothing more (a write after end ended the process)', async () => {
    const store = createStatusStore({ partition: 'p', graceMs: 60_000 });
    const http = createStatusHttp(store, { pollMs: 10, cacheMs: 0, stallMs: 60_000 });
    const server = createServer((req, res) => {
      if (!http.handle(req, res)) res.writeHead(404).end();
    });
    servers.push(server);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const client = connect((server.address() as AddressInfo).port, '127.0.0.1');
    client.pause();
    client.on('error', () => undefined);
    client.write('GET /v1/status/events HTTP/1.1\r\nHost: x\r\n\r\n');
    const connections = () => new Promise<number>((resolve, reject) => server.getConnections((err, count) => (err ? reject(err) : resolve(count))));
    const uncaught: unknown[] = [];
    const onUncaught = (err: unknown) => uncaught.push(err);
    process.on('uncaughtException', onUncaught);
    try {
      await vi.waitFor(async () => expect(await connections()).toBe(1), { timeout: 5000 });
      http.close();
      // the revision moves on after the close, as the hub's viewer count does while it closes
      for (let i = 1; i <= 20; i++) store.leases([lease(i)]);
      await vi.waitFor(async () => expect(await connections()).toBe(0), { timeout: 5000 });
      await new Promise((resolve) => setTimeout(resolve, 100)); // polls that would write after end (a window: nothing is to happen in it)
    } finally {
      process.off('uncaughtException', onUncaught);
      client.destroy();
    }
    expect(uncaught).toEqual([]);
  });
});

describe('the console listener\'s /v1/status and /v1/status/events', () => {
  const T = Date.parse('2026-01-01T00:00:00Z');
  const certificate = (cn: string): Principal => ({ kind: 'certificate', subject: `CN=${cn}`, attributes: new Map([['CN', [cn]]]), altNames: [] });
  const machineIdRule: AuthzRule = { kind: 'machine-id' };
  const clients: Array<{ name: string; principal: Principal; rules: AuthzRule[]; sees: string[] }> = [
    { name: 'the token', principal: { kind: 'token' }, rules: [machineIdRule], sees: ['10.0.0.4', '10.0.0.5', '10.0.0.6', 'u1', 'u2', 'u3'] },
    { name: 'a certificate under `any`', principal: certificate('someone'), rules: [{ kind: 'any' }], sees: ['10.0.0.4', '10.0.0.5', '10.0.0.6', 'u1', 'u2', 'u3'] },
    { name: 'metal-console\'s certificate (CN=metal-console)', principal: certificate('metal-console'), rules: [machineIdRule, { kind: 'attribute', attribute: 'CN', value: 'metal-console' }], sees: ['10.0.0.4', '10.0.0.5', '10.0.0.6', 'u1', 'u2', 'u3'] },
    { name: 'a machine\'s own certificate (machine-id)', principal: certificate('u2'), rules: [machineIdRule, { kind: 'attribute', attribute: 'CN', value: 'metal-console' }], sees: ['u2'] },
  ];

  /** Three BMCs read (machines u1 to u3) and one not read yet, behind the status routes of the console listener, as `principal` sees them; the clock stands, so a document built twice is the same. */
  async function consoleListener(principal: Principal, rules: AuthzRule[]) {
    const store = createStatusStore({ partition: 'p', graceMs: 60_000, now: () => T });
    store.leases([1, 2, 3, 4].map(lease));
    for (const i of [1, 2, 3]) store.read(lease(i), { ok: true, report: { uuid: `u${i}`, bmcVersion: '1.0', biosVersion: '2.0', fru: {}, powerState: 'ON', indicatorLED: 'LED-OFF', powerSupplies: [], source: 'redfish', missing: [] }, vendor: 'Dell', durationMs: 5 });
    let built = 0;
    const counted = { ...store, document: (...a: Parameters<typeof store.document>) => (built++, store.document(...a)) };
    const http = createStatusHttp(counted, { pollMs: 10, cacheMs: 60_000 });
    const routes = statusViewerRoutes(http);
    const viewer = viewerOf(rules, principal, 'client');
    const server = createServer((req, res) => {
      if (routes.owns(requestUrl(req.url).pathname)) routes.handle(req, res, viewer);
      else res.writeHead(404).end();
    });
    servers.push(server);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    /** the document for this client as the store built it per client before the cache: its rows the client may open, their summary */
    const expected = () => {
      const whole = store.document();
      const bmcs = whole.bmcs.filter((b) => viewer.mayOpen(b.uuid ?? ''));
      return JSON.stringify({ ...whole, summary: summarize(bmcs, whole.summary.commandsLastHour), bmcs });
    };
    return { store, http, port, built: () => built, expected, get: async () => (await fetch(`http://127.0.0.1:${port}/v1/status`)).text() };
  }

  for (const client of clients) {
    it(`${client.name}: 8 streams get each change, the document built once per revision for all of them (it was built per stream), the bytes those of the client's own document`, async () => {
      const c = await consoleListener(client.principal, client.rules);
      const streams = Array.from({ length: 8 }, () => events(c.port));
      try {
        for (let revision = 1; revision <= 3; revision++) {
          if (revision > 1) c.store.leases([1, 2, 3, 4, 5, 6].slice(0, 3 + revision).map(lease));
          await vi.waitFor(() => expect(streams.map((s) => s.raw.length)).toEqual(Array(8).fill(revision)), { timeout: 5000 });
          for (const s of streams) expect(s.raw.at(-1)).toBe(`event: status\ndata: ${c.expected()}\n\n`);
        }
        expect(c.built()).toBe(3);
        // the machines it may open, and none other (a BMC not read yet, named by its address here, has no machine to open)
        expect(streams[0]!.docs.at(-1)!.bmcs.map((b) => b.uuid ?? b.ip)).toEqual(client.sees);
        expect(await c.get()).toBe(c.expected());
        expect(c.built()).toBe(3);
      } finally {
        for (const s of streams) s.close();
        c.http.close();
      }
    });
  }

  it('a machine\'s own certificate sees its row only, and a summary of it: nothing of the other machines\' rows (u1, u3), nor the BMC not read yet', async () => {
    const c = await consoleListener(certificate('u2'), [machineIdRule]);
    try {
      const body = await c.get();
      const doc = JSON.parse(body) as StatusDocument;
      expect(doc.bmcs.map((b) => [b.ip, b.uuid])).toEqual([['10.0.0.2', 'u2']]);
      expect(doc.summary).toMatchObject({ bmcs: 1, reachable: 1, pending: 0 });
      expect(body).not.toMatch(/u1|u3|10\.0\.0\.[134]|00:00:0[134]/);
    } finally {
      c.http.close();
    }
  });
});
