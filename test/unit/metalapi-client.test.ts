import { createServer, type Server } from 'node:net';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { inspect } from 'node:util';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { BmcError } from '../../src/errors.js';
import { createMetalApiClient, MAX_ANSWER_BYTES, type MetalApiClientOptions } from '../../src/metalapi/client.js';
import { startMetalApiStandIn, type MetalApiStandIn } from '../../src/metalapi/standin.js';
import type { MachineIpmiReports } from '../../src/metalapi/types.js';
import { toIpmiReport } from '../../src/report/body.js';
import { TERMINAL_CONTROLS } from '../../src/terminal-text.js';
import type { BmcReport } from '../../src/outband/types.js';
import { waitFor } from '../helpers/wait.js';

const KEY = 'hmac-key-that-must-never-leak-7f3a';
const UUID = '4c4c4544-0042-3910-8051-b4c04f4e4e32';

const sample: BmcReport = {
  uuid: UUID,
  bmcVersion: '1.74.11',
  biosVersion: '3.3',
  fru: { board_mfg: 'Supermicro', board_part_number: 'X11DPT-B', product_serial: 'S123' },
  powerState: 'ON',
  indicatorLED: 'LED-OFF',
  powerMetric: { averageconsumedwatts: 212, intervalinmin: 1, maxconsumedwatts: 290, minconsumedwatts: 180 },
  powerSupplies: [{ status: { health: 'OK', state: 'Enabled' } }],
  source: 'redfish',
  missing: [],
};

function body(partitionid = 'fra-equ01'): MachineIpmiReports {
  return { partitionid, reports: { [UUID]: toIpmiReport('10.1.0.17', sample) } };
}

async function caught(p: Promise<unknown>): Promise<BmcError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(BmcError);
    return err as BmcError;
  }
  throw new Error('expected a rejection');
}

function expectNoSecret(err: unknown, ...secrets: string[]): void {
  const texts = [(err as Error).message, String(err), inspect(err, { depth: 20 }), JSON.stringify(err)];
  for (const s of secrets) for (const t of texts) expect(t).not.toContain(s);
}

let standIn: MetalApiStandIn;
let client: ReturnType<typeof createMetalApiClient>;
const fast: Partial<MetalApiClientOptions> = { backoffMs: 5, maxBackoffMs: 20, timeoutMs: 2000 };

beforeEach(async () => {
  standIn = await startMetalApiStandIn({ hmacKey: KEY, basePath: '/metal', credentials: { user: 'root', password: 'bmc-password-9x' } });
  client = createMetalApiClient({ baseUrl: `${standIn.url}/`, hmacKey: KEY, ...fast });
});

afterEach(async () => {
  await standIn.close();
});

describe('metal-api client against the stand-in', () => {
  it('reports: unknown uuid is created, then updated; the stand-in keeps the body', async () => {
    const events: unknown[] = [];
    standIn.on('report', (b) => events.push(b));
    await expect(client.ipmiReport(body())).resolves.toEqual({ created: [UUID], updated: [] });
    await expect(client.ipmiReport(body())).resolves.toEqual({ created: [], updated: [UUID] });
    expect(standIn.reports).toHaveLength(2);
    expect(standIn.reports[0]).toEqual(body());
    expect(events).toHaveLength(2);
    expect(standIn.requests.map((r) => `${r.method} ${r.path} ${r.status}`)).toEqual([
      'POST /metal/v1/machine/ipmi 200',
      'POST /metal/v1/machine/ipmi 200',
    ]);
  });

  it('works with a base URL without a trailing slash', async () => {
    const c = createMetalApiClient({ baseUrl: standIn.url, hmacKey: KEY });
    expect(c.baseUrl).toBe(standIn.url);
    await expect(c.ipmiReport(body())).resolves.toEqual({ created: [UUID], updated: [] });
  });

  it('finds the ipmi block of a reported machine', async () => {
    // metal-api's create stores the address only: FRU and versions come with the second report
    await client.ipmiReport(body());
    await client.ipmiReport(body());
    const ipmi = await client.findIpmiMachine(UUID);
    expect(ipmi).toMatchObject({
      address: '10.1.0.17:623',
      user: 'root',
      password: 'bmc-password-9x',
      interface: '',
      mac: '',
      fru: sample.fru,
      bmcversion: '1.74.11',
      powerstate: 'ON',
    });
  });

  it('answers 404 for an unknown machine with a clear message, not retried', async () => {
    const err = await caught(client.findIpmiMachine('no-such-machine'));
    expect(err.code).toBe('HTTP');
    expect(err.httpStatus).toBe(404);
    expect(err.message).toBe('machine no-such-machine not found at metal-api');
    expect(standIn.requests).toHaveLength(1);
  });

  it('rejects an invalid body with 400 and the ajv reason, without retrying', async () => {
    const bad = body() as unknown as { reports: Record<string, Record<string, unknown>> };
    delete bad.reports[UUID]?.BMCIp;
    const err = await caught(client.ipmiReport(bad as unknown as MachineIpmiReports));
    expect(err.code).toBe('HTTP');
    expect(err.httpStatus).toBe(400);
    expect(err.message).toMatch(/v1\.MachineIpmiReports/);
    expect(err.message).toMatch(/must have required property 'BMCIp'/);
    expect(standIn.requests).toHaveLength(1);
  });

  it('refuses an empty partition id before sending', async () => {
    const err = await caught(client.ipmiReport(body('')));
    expect(err.code).toBe('INVALID_ARGUMENT');
    expect(standIn.requests).toHaveLength(0);
  });

  it('retries 500 twice, then succeeds', async () => {
    const retries: number[] = [];
    const c = createMetalApiClient({ baseUrl: standIn.url, hmacKey: KEY, ...fast, onRetry: (r) => retries.push(r.attempt) });
    standIn.setFailures(2, 500);
    await expect(c.ipmiReport(body())).resolves.toEqual({ created: [UUID], updated: [] });
    expect(standIn.requests.map((r) => r.status)).toEqual([500, 500, 200]);
    expect(retries).toEqual([1, 2]);
  });

  it('retries 429 and 503 too', async () => {
    standIn.setFailures(1, 429);
    await client.ipmiReport(body());
    standIn.setFailures(1, 503);
    await client.ipmiReport(body());
    expect(standIn.requests.map((r) => r.status)).toEqual([429, 200, 503, 200]);
  });

  it('gives up after retries + 1 attempts with the last status', async () => {
    standIn.setFailures(10, 503);
    const err = await caught(client.ipmiReport(body()));
    expect(err.httpStatus).toBe(503);
    expect(err.message).toMatch(/HTTP 503: injected failure \(gave up after 4 attempts\)/);
    expect(standIn.requests).toHaveLength(4);
  });

  it('a report POST answered 502 or 504 (a proxy in front of metal-api) is not sent again: metal-api may still be applying it', async () => {
    for (const status of [502, 504]) {
      standIn.requests.length = 0;
      standIn.setFailures(10, status);
      const err = await caught(client.ipmiReport(body()));
      expect(err.httpStatus).toBe(status);
      expect(err.message).toMatch(new RegExp(`HTTP ${status}: injected failure \\(not sent again: metal-api may still be applying it\\)$`));
      expect(standIn.requests).toHaveLength(1);
    }
  });

  it('a GET answered 502 or 504 is sent again (it changes nothing)', async () => {
    await client.ipmiReport(body());
    for (const status of [502, 504]) {
      standIn.requests.length = 0;
      standIn.setFailures(2, status);
      await expect(client.findIpmiMachine(UUID)).resolves.toMatchObject({ address: '10.1.0.17:623' });
      expect(standIn.requests.map((r) => r.status)).toEqual([status, status, 200]);
    }
  });

  it('never retries a 4xx', async () => {
    for (const status of [400, 401, 403, 409]) {
      standIn.requests.length = 0;
      standIn.setFailures(5, status);
      const err = await caught(client.ipmiReport(body()));
      expect(err.httpStatus).toBe(status);
      expect(standIn.requests).toHaveLength(1);
    }
  });

  it('is answered 403 with a wrong key, as metal-api; the error holds neither key', async () => {
    const other = 'the-wrong-key-also-secret-55';
    const c = createMetalApiClient({ baseUrl: standIn.url, hmacKey: other, ...fast });
    const err = await caught(c.ipmiReport(body()));
    expect(err.httpStatus).toBe(403);
    expect(err.message).toMatch(/HTTP 403: Wrong HMAC found$/);
    expect(standIn.requests).toHaveLength(1);
    expectNoSecret(err, KEY, other);
  });

  it('tells an answer naming neither list (an older metal-api, an empty body) from one naming empty lists (null: none applied)', async () => {
    const answers = ['{}', '', '{"created":null,"updated":null}', `{"created":["${UUID}"]}`];
    const server = createHttpServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(answers.shift());
    });
    const url = await listen(server);
    try {
      const c = createMetalApiClient({ baseUrl: url, hmacKey: KEY, ...fast });
      await expect(c.ipmiReport(body())).resolves.toEqual({ created: [], updated: [], unlisted: true });
      await expect(c.ipmiReport(body())).resolves.toEqual({ created: [], updated: [], unlisted: true });
      await expect(c.ipmiReport(body())).resolves.toEqual({ created: [], updated: [] });
      await expect(c.ipmiReport(body())).resolves.toEqual({ created: [UUID], updated: [] });
    } finally {
      server.close();
    }
  });

  it('keeps of the answer only the machines posted, each once: an answer of up to 16 MiB of names does not reach the cycle and its log', async () => {
    const other = Array.from({ length: 200_000 }, (_, i) => `not-posted-${i}`);
    const server = createHttpServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ created: [...other, UUID, UUID], updated: other }));
    });
    const url = await listen(server);
    try {
      const c = createMetalApiClient({ baseUrl: url, hmacKey: KEY, ...fast });
      await expect(c.ipmiReport(body())).resolves.toEqual({ created: [UUID], updated: [] });
    } finally {
      server.close();
    }
  });

  it('a redirect (an ingress sending http to https) is not followed nor retried: one error naming the Location as the URL to set, not the HTML page', async () => {
    const answers: Array<[number, string]> = [
      [301, 'https://metal.example.org/metal/v1/machine/ipmi'],
      // what a header can carry: a tab and C1 bytes (CSI), and a length no message needs
      [308, `https://evil.example.org/\t\u009b31m${'x'.repeat(1000)}`],
      [302, `/elsewhere/v1/machine/${UUID}/ipmi`],
    ];
    const seen: string[] = [];
    const server = createHttpServer((req, res) => {
      seen.push(req.url ?? '');
      const [status, location] = answers.shift()!;
      res.writeHead(status, { 'content-type': 'text/html', location });
      res.end('<html><head><title>301 Moved Permanently</title></head><body><center><h1>301 Moved Permanently</h1></center><hr><center>nginx</center></body></html>');
    });
    const url = await listen(server);
    try {
      const c = createMetalApiClient({ baseUrl: `${url}/metal`, hmacKey: KEY, ...fast });
      const first = await caught(c.ipmiReport(body()));
      expect(first.message).toBe(`metal-api POST ${url}/metal/v1/machine/ipmi: HTTP 301: metal-api redirects to https://metal.example.org/metal; set METAL_BMC_METAL_API_URL to it`);
      expect(first.httpStatus).toBe(301);
      const second = await caught(c.ipmiReport(body()));
      expect(second.message).not.toMatch(TERMINAL_CONTROLS);
      expect(second.message).toMatch(/metal-api redirects to https:\/\/evil\.example\.org\/\S*31mxxx+\.\.\.; set METAL_BMC_METAL_API_URL to it$/);
      expect(second.message.length).toBeLessThan(400);
      const third = await caught(c.findIpmiMachine(UUID));
      expect(third.message).toBe(`metal-api GET ${url}/metal/v1/machine/${UUID}/ipmi: HTTP 302: metal-api redirects to ${url}/elsewhere; set METAL_BMC_METAL_API_URL to it`);
      expect(seen).toEqual(['/metal/v1/machine/ipmi', '/metal/v1/machine/ipmi', `/metal/v1/machine/${UUID}/ipmi`]);
    } finally {
      server.close();
    }
  });

  it('sends fresh HMAC headers on each attempt', async () => {
    const seen: string[] = [];
    const server = createHttpServer((req, res) => {
      seen.push(`${String(req.headers['x-date'])} ${String(req.headers['x-data-salt'])} ${String(req.headers.authorization)}`);
      res.writeHead(seen.length < 3 ? 500 : 200, { 'content-type': 'application/json' });
      res.end(seen.length < 3 ? '{}' : '{"created":null,"updated":null}');
    });
    const url = await listen(server);
    try {
      const c = createMetalApiClient({ baseUrl: url, hmacKey: KEY, ...fast });
      await expect(c.ipmiReport(body())).resolves.toEqual({ created: [], updated: [] });
      expect(new Set(seen).size).toBe(3);
    } finally {
      server.close();
    }
  });
});

describe('Retry-After', () => {
  // `fast`: 2 s per attempt and 3 retries, a call's time budget of 8 s; backoffs of at most 20 ms
  it("a 429 asking for longer than the call's time budget fails at once, saying how long metal-api asked to wait", async () => {
    standIn.setFailures(10, 429, { 'retry-after': '60' });
    const err = await caught(client.ipmiReport(body()));
    expect(err.httpStatus).toBe(429);
    expect(err.message).toMatch(/HTTP 429: injected failure \(metal-api asked to wait 60 s, more than the [78] s left of this call's time budget: not sent again; the next report goes out in 60 s at the earliest\)$/);
    expect(standIn.requests).toHaveLength(1);
  });

  it('an HTTP-date, a huge delta and a GET are held to the budget too; a report is held back 10 min at most', async () => {
    standIn.setFailures(1, 503, { 'retry-after': new Date(Date.now() + 3_600_000).toUTCString() });
    const date = await caught(client.ipmiReport(body()));
    expect(date.message).toMatch(/metal-api asked to wait (3599|3600) s, .*; the next report goes out in 600 s at the earliest\)$/);

    standIn.setFailures(1, 503, { 'retry-after': '99999999999999999999999' });
    const huge = await caught(createMetalApiClient({ baseUrl: standIn.url, hmacKey: KEY, ...fast }).ipmiReport(body()));
    expect(huge.message).toMatch(/metal-api asked to wait more than 999999999 s, more than the [78] s left.*in 600 s at the earliest\)$/);

    standIn.setFailures(1, 503, { 'retry-after': '60' });
    const get = await caught(client.findIpmiMachine(UUID));
    expect(get.message).toMatch(/metal-api asked to wait 60 s, more than the [78] s left of this call's time budget: not sent again\)$/);
    expect(standIn.requests).toHaveLength(3);
  });

  it("a Retry-After that ended a report holds the next reports back for its length, sending nothing; lookups go on", async () => {
    const c = createMetalApiClient({ baseUrl: standIn.url, hmacKey: KEY, ...fast, timeoutMs: 300, retries: 1 });
    // a budget of 600 ms: metal-api's 2 s do not fit, the call ends at once
    standIn.setFailures(1, 503, { 'retry-after': '2' });
    const ended = Date.now();
    const first = await caught(c.ipmiReport(body()));
    expect(first.message).toMatch(/the next report goes out in 2 s at the earliest\)$/);
    // a lease change's cycle a moment later: not sent, and says why
    const held = await caught(c.ipmiReport(body()));
    expect(held.code).toBe('UNAVAILABLE');
    expect(held.httpStatus).toBeUndefined();
    expect(held.message).toMatch(/^metal-api POST .*\/v1\/machine\/ipmi: not sent: metal-api asked an earlier report to wait \(HTTP 503 with Retry-After\), [12] s left$/);
    expect(standIn.requests).toHaveLength(1);
    // a console's machine lookup is not a report: it goes out (and metal-api knows no such machine yet)
    expect((await caught(c.findIpmiMachine(UUID))).httpStatus).toBe(404);
    expect(standIn.requests).toHaveLength(2);
    // once the wait is over, the report is sent again
    await vi.waitFor(async () => expect(await c.ipmiReport(body())).toEqual({ created: [UUID], updated: [] }), { timeout: 5000, interval: 100 });
    expect(Date.now() - ended).toBeGreaterThanOrEqual(1900);
    expect(standIn.requests.filter((r) => r.method === 'POST')).toHaveLength(2);
  });

  it("the last attempt's Retry-After holds the next reports back too", async () => {
    // two attempts within a budget of 4 s: the first wait of 1 s fits, the second answer is the last
    const c = createMetalApiClient({ baseUrl: standIn.url, hmacKey: KEY, ...fast, retries: 1 });
    standIn.setFailures(2, 503, { 'retry-after': '1' });
    const last = await caught(c.ipmiReport(body()));
    expect(last.message).toMatch(/\(gave up after 2 attempts\) \(metal-api asked to wait 1 s: the next report goes out in 1 s at the earliest\)$/);
    const held = await caught(c.ipmiReport(body()));
    expect(held.code).toBe('UNAVAILABLE');
    expect(standIn.requests).toHaveLength(2);
  });

  it('a Retry-After within the budget is waited out whole, past maxBackoffMs (20 ms here)', async () => {
    const delays: number[] = [];
    const c = createMetalApiClient({ baseUrl: standIn.url, hmacKey: KEY, ...fast, onRetry: (r) => delays.push(r.delayMs) });
    standIn.setFailures(1, 503, { 'retry-after': '1' });
    const started = Date.now();
    await expect(c.ipmiReport(body())).resolves.toEqual({ created: [UUID], updated: [] });
    // time is the subject: the second request not before the second metal-api asked for
    expect(Date.now() - started).toBeGreaterThanOrEqual(1000);
    expect(delays).toEqual([1000]);
    expect(standIn.requests.map((r) => r.status)).toEqual([503, 200]);
  });

  it('a second Retry-After longer than what is left of the budget ends the call there', async () => {
    // 600 ms per attempt, 2 retries: a budget of 1.8 s; the first wait of 1 s fits, the second does not
    const c = createMetalApiClient({ baseUrl: standIn.url, hmacKey: KEY, ...fast, timeoutMs: 600, retries: 2 });
    standIn.setFailures(10, 429, { 'retry-after': '1' });
    const err = await caught(c.ipmiReport(body()));
    expect(err.message).toMatch(/metal-api asked to wait 1 s, more than the 0 s left of this call's time budget/);
    expect(standIn.requests).toHaveLength(2);
  });

  it('a malformed Retry-After is our own backoff (a retry, not a wait it names)', async () => {
    const delays: number[] = [];
    const c = createMetalApiClient({ baseUrl: standIn.url, hmacKey: KEY, ...fast, onRetry: (r) => delays.push(r.delayMs) });
    for (const value of ['1.5', '-5', 'soon', '1e3', '']) {
      standIn.setFailures(1, 503, { 'retry-after': value });
      await expect(c.ipmiReport(body())).resolves.toBeDefined();
    }
    expect(delays).toHaveLength(5);
    for (const d of delays) expect(d).toBeLessThanOrEqual(20);
  });
});

function listen(server: Server | HttpServer): Promise<string> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(`http://127.0.0.1:${(server.address() as AddressInfo).port}`)));
}

describe('deadlines and cancellation', () => {
  /** A metal-api that takes every request and never answers: `run` gets a client with 150 ms per attempt (or `timeouts`) and one retry. */
  async function silentApi(run: (c: ReturnType<typeof createMetalApiClient>, requests: () => number) => Promise<void>, timeouts: { timeoutMs: number; getTimeoutMs?: number } = { timeoutMs: 150 }): Promise<void> {
    const sockets: import('node:net').Socket[] = [];
    let requests = 0;
    const server = createServer((s) => {
      sockets.push(s);
      s.once('data', () => requests++);
    });
    const url = await listen(server);
    try {
      await run(createMetalApiClient({ baseUrl: url, hmacKey: KEY, ...timeouts, retries: 1, backoffMs: 10 }), () => requests);
    } finally {
      for (const s of sockets) s.destroy();
      server.close();
    }
  }

  it('a GET metal-api does not answer in time is sent again (it changes nothing): two requests, then the timeout with the attempts', async () => {
    await silentApi(async (c, requests) => {
      const err = await caught(c.findIpmiMachine('m1'));
      expect(err.code).toBe('TIMEOUT');
      expect(err.message).toMatch(/no answer within 150 ms \(gave up after 2 attempts\)/);
      // the server counts a request as its bytes arrive, which on a loaded machine may come after the client gave up
      await waitFor(() => requests() >= 2, 5000, 'both requests at the server');
      expect(requests()).toBe(2);
    });
  });

  it('a GET has its own, shorter attempt deadline (a console\'s lookup gets a second try within its open window), a POST the whole one', async () => {
    await silentApi(
      async (c, requests) => {
        const err = await caught(c.findIpmiMachine('m1'));
        expect(err.message).toMatch(/no answer within 150 ms \(gave up after 2 attempts\)/);
        await waitFor(() => requests() >= 2, 5000, 'both requests at the server');
        expect(requests()).toBe(2);
      },
      { timeoutMs: 60_000, getTimeoutMs: 150 },
    );
  });

  it('a report POST metal-api does not answer in time is not sent again (it may still be applying it): one request, the timeout said', async () => {
    await silentApi(async (c, requests) => {
      const started = Date.now();
      const err = await caught(c.ipmiReport(body()));
      const took = Date.now() - started;
      expect(err.code).toBe('TIMEOUT');
      expect(err.message).toMatch(/no answer within 150 ms \(not sent again: metal-api may still be applying it\)$/);
      // time is the subject (one attempt of 150 ms): never less, and a 3 s bound for a loaded machine
      expect(took).toBeGreaterThanOrEqual(140);
      expect(took).toBeLessThan(3000);
      // undici may open a spare connection; count requests, not sockets (their bytes may arrive after the client gave up)
      await waitFor(() => requests() >= 1, 5000, 'the request at the server');
      expect(requests()).toBe(1);
      expectNoSecret(err, KEY);
    });
  });

  it("stops at once when the caller's signal fires, even while backing off", async () => {
    const sockets: import('node:net').Socket[] = [];
    const server = createServer((s) => sockets.push(s));
    const url = await listen(server);
    try {
      const c = createMetalApiClient({ baseUrl: url, hmacKey: KEY, timeoutMs: 10_000 });
      const started = Date.now();
      const err = await caught(c.ipmiReport(body(), { signal: AbortSignal.timeout(100) }));
      expect(err.code).toBe('TIMEOUT'); // the caller's own AbortSignal.timeout
      // the client's own deadline is 10 s: ending within 5 s means the caller's signal ended it
      expect(Date.now() - started).toBeLessThan(5000);

      standIn.setFailures(100, 500);
      const slow = createMetalApiClient({ baseUrl: standIn.url, hmacKey: KEY, backoffMs: 30_000 });
      const ac = new AbortController();
      setTimeout(() => ac.abort(), 100); // the stimulus: the caller gives up while the client backs off (30 s)
      const t0 = Date.now();
      const aborted = await caught(slow.ipmiReport(body(), { signal: ac.signal }));
      expect(aborted.code).toBe('ABORTED');
      // the backoff is 30 s: ending within 5 s means the signal cut the backoff short
      expect(Date.now() - t0).toBeLessThan(5000);
    } finally {
      for (const s of sockets) s.destroy();
      server.close();
    }
  });

  /** An HTTP server that reads each request's whole body, then destroys the connection without an answer. */
  async function resettingApi(run: (url: string, requests: () => number) => Promise<void>): Promise<void> {
    let requests = 0;
    const server = createHttpServer((req) => {
      req.resume();
      req.once('end', () => {
        requests++;
        req.socket.destroy();
      });
    });
    const url = await listen(server);
    try {
      await run(url, () => requests);
    } finally {
      server.closeAllConnections();
      server.close();
    }
  }

  it('a report POST whose connection is reset after the body went out is not sent again: one request, the attempt counted closed', async () => {
    await resettingApi(async (url, requests) => {
      const outcomes: string[] = [];
      const retried: unknown[] = [];
      const c = createMetalApiClient({ baseUrl: url, hmacKey: KEY, retries: 3, backoffMs: 1, onAttemptEnd: (a) => outcomes.push(a.outcome), onRetry: (r) => retried.push(r) });
      const err = await caught(c.ipmiReport(body()));
      expect(err.code).toBe('CLOSED');
      expect(err.message).toMatch(/connection failed \(.*\) \(not sent again: metal-api may still be applying it\)$/);
      expect(requests()).toBe(1);
      expect(outcomes).toEqual(['closed']);
      expect(retried).toEqual([]);
      expectNoSecret(err, KEY);
    });
  });

  it('a GET whose connection is reset is sent again (it changes nothing)', async () => {
    await resettingApi(async (url, requests) => {
      const c = createMetalApiClient({ baseUrl: url, hmacKey: KEY, retries: 1, backoffMs: 1 });
      const err = await caught(c.findIpmiMachine(UUID));
      expect(err.code).toBe('CLOSED');
      expect(err.message).toMatch(/gave up after 2 attempts/);
      expect(requests()).toBe(2);
    });
  });

  it('a report POST whose connection is refused is sent again (it never went out), and arrives once metal-api listens', async () => {
    const probe = createServer();
    const url = await listen(probe);
    const port = Number(new URL(url).port);
    await new Promise((r) => probe.close(r));
    let api: MetalApiStandIn | undefined;
    let starting: Promise<MetalApiStandIn> | undefined;
    const outcomes: string[] = [];
    const c = createMetalApiClient({
      baseUrl: url,
      hmacKey: KEY,
      retries: 50,
      backoffMs: 10,
      maxBackoffMs: 20,
      onAttemptEnd: (a) => outcomes.push(a.outcome),
      // the stimulus: metal-api comes up after the first refusal
      onRetry: () => {
        starting ??= startMetalApiStandIn({ hmacKey: KEY, port }).then((s) => (api = s));
      },
    });
    try {
      await expect(c.ipmiReport(body())).resolves.toEqual({ created: [UUID], updated: [] });
      expect(outcomes[0]).toBe('closed');
      expect(outcomes.at(-1)).toBe('200');
      expect(api?.reports).toHaveLength(1);
    } finally {
      await (await starting)?.close();
    }
  });

  it('fails with CLOSED on a refused connection, retried, key absent', async () => {
    const server = createServer();
    const url = await listen(server);
    await new Promise((r) => server.close(r));
    const c = createMetalApiClient({ baseUrl: url, hmacKey: KEY, retries: 2, backoffMs: 1 });
    const err = await caught(c.findIpmiMachine(UUID));
    expect(err.code).toBe('CLOSED');
    expect(err.message).toMatch(/gave up after 3 attempts/);
    expectNoSecret(err, KEY);
  });
});

describe('answers beyond any metal-api answer', () => {
  it('an endless answer is read up to MAX_ANSWER_BYTES, then refused as PROTOCOL and not retried', async () => {
    let requests = 0;
    let sent = 0;
    const server = createHttpServer((_req, res) => {
      requests++;
      res.writeHead(200, { 'content-type': 'application/json' });
      const chunk = Buffer.alloc(1 << 20, 0x20);
      const more = (): void => {
        while (!res.destroyed && sent < 64 * MAX_ANSWER_BYTES) {
          sent += chunk.length;
          if (!res.write(chunk)) return void res.once('drain', more);
        }
        res.end();
      };
      res.on('error', () => undefined);
      more();
    });
    const url = await listen(server);
    try {
      const c = createMetalApiClient({ baseUrl: url, hmacKey: KEY, retries: 2, backoffMs: 1 });
      const err = await caught(c.ipmiReport(body()));
      expect(err.code).toBe('PROTOCOL');
      expect(err.message).toMatch(new RegExp(`the answer is larger than ${MAX_ANSWER_BYTES} bytes; not read`));
      expect(requests).toBe(1);
      // the client stopped reading: far less than the whole answer went out
      expect(sent).toBeLessThan(8 * MAX_ANSWER_BYTES);
    } finally {
      server.closeAllConnections();
    }
  });
});

describe('secrets in errors', () => {
  it('scrubs the key from a server message and never echoes a body with a password', async () => {
    let answer = { status: 500, text: `{"statuscode":500,"message":"echo ${KEY}"}` };
    const server = createHttpServer((_req, res) => {
      res.writeHead(answer.status, { 'content-type': 'application/json' });
      res.end(answer.text);
    });
    const url = await listen(server);
    try {
      const c = createMetalApiClient({ baseUrl: url, hmacKey: KEY, retries: 0 });
      const e1 = await caught(c.ipmiReport(body()));
      expect(e1.message).toMatch(/echo \[redacted\]/);
      expectNoSecret(e1, KEY);

      answer = { status: 200, text: '{"id":"x","ipmi":{"password":"bmc-secret-password-1","user":"root"}}' };
      const e2 = await caught(c.findIpmiMachine('x'));
      expect(e2.code).toBe('PROTOCOL');
      expectNoSecret(e2, KEY, 'bmc-secret-password-1');

      answer = { status: 200, text: 'password=bmc-secret-password-1' };
      const e3 = await caught(c.findIpmiMachine('x'));
      expect(e3.code).toBe('PROTOCOL');
      expectNoSecret(e3, KEY, 'bmc-secret-password-1');

      // JSON broken right at the password: the parser's message quotes the text around the fault
      answer = { status: 200, text: '{"id":"x","ipmi":{"user":"root","password":bmc-secret-password-1"}}' };
      const e4 = await caught(c.findIpmiMachine('x'));
      expect(e4.code).toBe('PROTOCOL');
      expectNoSecret(e4, KEY, 'bmc-secret', 'password-1');
    } finally {
      server.close();
    }
  });
});

describe('createMetalApiClient options', () => {
  it.each([
    [{ baseUrl: 'metal-api:8080' }, /option baseUrl/],
    [{ baseUrl: 'ftp://metal-api' }, /option baseUrl must use http or https/],
    [{ baseUrl: 'http://metal-api/?x=1' }, /option baseUrl must not carry a query/],
    [{ hmacKey: '' }, /option hmacKey must be a non-empty string/],
    [{ timeoutMs: 0 }, /option timeoutMs must be an integer/],
    [{ retries: -1 }, /option retries must be an integer/],
    [{ backoffMs: 1.5 }, /option backoffMs must be an integer/],
  ])('rejects %o', (override, message) => {
    expect(() => createMetalApiClient({ baseUrl: 'http://metal-api:8080/metal', hmacKey: KEY, ...override })).toThrow(message);
  });

  it('does not show credentials of the base URL', () => {
    const c = createMetalApiClient({ baseUrl: 'http://u:url-password@metal-api:8080/metal/', hmacKey: KEY });
    expect(c.baseUrl).toBe('http://metal-api:8080/metal');
  });
});
