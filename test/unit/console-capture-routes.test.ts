/**
 * The history route's wait for a slow client (capture-routes.ts): a response that never takes
 * more than one event at a time must not collect a listener per wait. The history route with
 * `newest` (the page's request): only about the newest bytes come, and a header says what was
 * left out. The grep route against a
 * tenant's console that prints its pattern without end: a bounded answer written as it goes,
 * live memory far below the logs it reads (measured after a full collection, as
 * firmware-stream-memory does), and a client that goes away ends the grep and frees its slot.
 */
import { EventEmitter } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MAX_NEWEST } from '../../src/console/capture-newest.js';
import { captureViewerRoutes, drainedOrClosed, type CaptureRoutes, type CaptureRoutesOptions } from '../../src/console/capture-routes.js';
import { openMachineLog } from '../../src/console/capture-store.js';
import { captureLog } from '../helpers/log.js';
import { waitFor } from '../helpers/wait.js';
import { liveBytes } from '../helpers/memory.js';

const MACHINE = 'slow-follower-machine';

/** A response whose buffer is always full: every write returns false and 'drain' comes on the next turn. */
class BackpressuredResponse extends EventEmitter {
  headersSent = false;
  writes = 0;
  /** the most 'close' listeners seen while a write was waiting */
  mostCloseListeners = 0;
  readonly ended: Promise<void>;
  private markEnded!: () => void;

  constructor() {
    super();
    this.ended = new Promise((resolve) => (this.markEnded = resolve));
  }

  writeHead(): this {
    this.headersSent = true;
    return this;
  }

  write(): boolean {
    this.writes += 1;
    setImmediate(() => {
      this.mostCloseListeners = Math.max(this.mostCloseListeners, this.listenerCount('close'));
      this.emit('drain');
    });
    return false;
  }

  end(): this {
    this.markEnded();
    return this;
  }

  destroy(): this {
    this.markEnded();
    return this;
  }
}

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'capture-routes-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('console history route under backpressure', () => {
  it('streams 120 events to a client that drains after each one, with at most two close listeners at any time', async () => {
    const log = await openMachineLog({ dir, machineId: MACHINE, fileBytes: 1 << 20, files: 2, logger: captureLog().logger });
    for (let i = 0; i < 60; i++) {
      log.gapStart(`outage ${i}`);
      log.gapEnd();
    }
    await log.close();

    const res = new BackpressuredResponse();
    const req = { method: 'GET', url: `/v1/machine/${MACHINE}/console/log` } as IncomingMessage;
    captureViewerRoutes({ dir }).handle(req, res as unknown as ServerResponse, { subject: 'CN=test', mayOpen: () => true, mayOpenEvery: true });
    await res.ended;
    expect(res.writes).toBe(120);
    // the route's own 'gone' listener plus the one of the wait in progress
    expect(res.mostCloseListeners).toBeGreaterThan(0);
    expect(res.mostCloseListeners).toBeLessThanOrEqual(2);
    expect(res.listenerCount('drain')).toBe(0);
  });
});

describe('drainedOrClosed', () => {
  it('leaves no listener behind after 100 drains', async () => {
    const res = new EventEmitter();
    for (let i = 0; i < 100; i++) {
      const waited = drainedOrClosed(res);
      res.emit('drain');
      await waited;
    }
    expect(res.listenerCount('close')).toBe(0);
    expect(res.listenerCount('drain')).toBe(0);
  });

  it('ends the wait when the client goes, without a drain listener left', async () => {
    const res = new EventEmitter();
    const waited = drainedOrClosed(res);
    res.emit('close');
    await waited;
    expect(res.listenerCount('drain')).toBe(0);
    expect(res.listenerCount('close')).toBe(0);
  });
});

/** A client that never reads: every write is refused and no 'drain' ever comes, until 'close'. */
class StalledResponse extends EventEmitter {
  headersSent = false;
  status = 0;
  writes = 0;
  ended = false;

  writeHead(status: number): this {
    this.status = status;
    this.headersSent = true;
    return this;
  }

  write(): boolean {
    this.writes += 1;
    return false;
  }

  end(): this {
    this.ended = true;
    return this;
  }

  destroyed = false;
  destroy(): this {
    this.destroyed = true;
    this.emit('close');
    return this;
  }
}

const live = liveBytes;

/** `mib` MiB of "error " without a newline, a record per MiB as the capture's flushes write it */
async function hostileMachine(machineId: string, mib: number): Promise<void> {
  const log = await openMachineLog({ dir, machineId, fileBytes: 4 << 20, files: Math.ceil(mib / 4) + 1, maxBufferBytes: 2 << 20, logger: captureLog().logger });
  const chunk = Buffer.from('error '.repeat(Math.ceil((1 << 20) / 6))).subarray(0, 1 << 20);
  for (let i = 0; i < mib; i++) {
    log.append(chunk);
    await log.flush();
  }
  await log.close();
}

const grepRequest = (pattern: string) => ({ method: 'GET', url: `/v1/console/grep?pattern=${pattern}` }) as IncomingMessage;
const viewer = { subject: 'CN=test', mayOpen: () => true, mayOpenEvery: true };

/** asks for a grep until one starts (the slot free again), and gives its response */
async function nextGrepStarts(routes: ReturnType<typeof captureViewerRoutes>, what: string): Promise<StalledResponse> {
  let next: StalledResponse | undefined;
  await waitFor(
    () => {
      next = new StalledResponse();
      routes.handle(grepRequest('PXE-E53'), next as unknown as ServerResponse, viewer);
      return next.status === 200;
    },
    10_000,
    what,
  );
  return next!;
}

describe('console grep route', () => {
  it('answers a grep over hostile consoles with bounded matches and body, as it goes, in bounded memory', async () => {
    const machines = 4;
    for (let i = 0; i < machines; i++) await hostileMachine(`hostile-${i}`, 8);
    const routes = captureViewerRoutes({ dir });
    const server = createServer((req, res) => routes.handle(req, res, viewer));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    await (await fetch(`${url}/history/assets/history.js`)).text(); // fetch's own code loaded before measuring
    const before = live();
    let peak = before;
    // sampled while the grep runs: the matches of one whole answer held at once would be live here
    const sampler = setInterval(() => (peak = Math.max(peak, live())), 20);
    let body = '';
    let chunks = 0;
    try {
      const res = await fetch(`${url}/v1/console/grep?pattern=error`);
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toBe('application/x-ndjson');
      const decoder = new TextDecoder();
      for await (const chunk of res.body!) {
        chunks++;
        body += decoder.decode(chunk, { stream: true });
      }
    } finally {
      clearInterval(sampler);
      server.close();
    }
    const lines = body.trimEnd().split('\n').map((l) => JSON.parse(l) as { machineId: string; line: string; cut?: object });
    // one match per 64 KiB piece of each machine's 8 MiB line, each of 512 characters
    expect(lines.length).toBe(machines * 128);
    expect(lines.every((l) => l.line.length === 512 && l.line.includes('error') && l.cut !== undefined)).toBe(true);
    expect(new Set(lines.map((l) => l.machineId)).size).toBe(machines);
    expect(body.length).toBeLessThan(machines * 128 * 700); // against 32 MiB of logs
    expect(chunks).toBeGreaterThan(1); // written as found, not as one answer at the end
    // the whole answer held in memory peaked at 160 MiB here (32 MiB of logs); as it goes, 4-8 MiB
    // (a read of the log, its text, what is in flight to the client)
    expect(peak - before).toBeLessThan(24 << 20);
  }, 120_000);

  it('drops a grep whose client stopped taking the answer (a reader left in less), so the slot is free for the next', async () => {
    const log = await openMachineLog({ dir, machineId: MACHINE, fileBytes: 1 << 20, files: 2, logger: captureLog().logger });
    log.append(Buffer.from('PXE-E53: No boot filename received\r\n'.repeat(100)));
    await log.close();
    const routes = captureViewerRoutes({ dir, grepStallMs: 200 });
    const stalled = new StalledResponse();
    routes.handle(grepRequest('PXE-E53'), stalled as unknown as ServerResponse, viewer);
    await waitFor(() => stalled.destroyed, 10_000, 'the stalled client dropped');
    expect(stalled.writes).toBe(1);
    (await nextGrepStarts(routes, 'a grep started after the stalled one was dropped')).emit('close');
  });

  it('close() (the daemon stopping) cuts a running grep off and refuses new ones', async () => {
    const log = await openMachineLog({ dir, machineId: MACHINE, fileBytes: 1 << 20, files: 2, logger: captureLog().logger });
    log.append(Buffer.from('PXE-E53: No boot filename received\r\n'.repeat(100)));
    await log.close();
    const routes = captureViewerRoutes({ dir });
    const running = new StalledResponse();
    routes.handle(grepRequest('PXE-E53'), running as unknown as ServerResponse, viewer);
    await waitFor(() => running.writes === 1, 10_000, 'the grep running');
    routes.close();
    expect(running.destroyed).toBe(true);
    const later = new StalledResponse();
    routes.handle(grepRequest('PXE-E53'), later as unknown as ServerResponse, viewer);
    await waitFor(() => later.status !== 0, 10_000, 'an answer');
    expect(later.status).toBe(503);
  });

  it('ends a grep whose client went away, and the next one can start', async () => {
    const log = await openMachineLog({ dir, machineId: MACHINE, fileBytes: 1 << 20, files: 2, logger: captureLog().logger });
    log.append(Buffer.from('PXE-E53: No boot filename received\r\n'.repeat(100)));
    await log.close();
    const routes = captureViewerRoutes({ dir });
    const first = new StalledResponse();
    routes.handle(grepRequest('PXE-E53'), first as unknown as ServerResponse, viewer);
    await waitFor(() => first.writes === 1, 10_000, 'the first match written to the stalled client');
    const meanwhile = new StalledResponse();
    routes.handle(grepRequest('PXE-E53'), meanwhile as unknown as ServerResponse, viewer);
    expect(meanwhile.status).toBe(429); // the stalled grep holds the slot
    first.emit('close');
    const next = await nextGrepStarts(routes, 'a grep started after the first client went away');
    expect(first.writes).toBe(1); // nothing more written to the client that went
    expect(first.ended).toBe(false);
    next.emit('close');
  });
});

/** a local HTTP server over the capture routes of `dir`, for the test's body; closed at its end */
async function withRoutesServer<T>(body: (url: string, routes: CaptureRoutes) => Promise<T>, options: Omit<CaptureRoutesOptions, 'dir'> = {}): Promise<T> {
  const routes = captureViewerRoutes({ dir, ...options });
  const server = createServer((req, res) => routes.handle(req, res, viewer));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    return await body(`http://127.0.0.1:${(server.address() as AddressInfo).port}`, routes);
  } finally {
    routes.close();
    await new Promise((resolve) => server.close(resolve));
  }
}

describe('console history route with newest', () => {
  const LINE = 2048;
  const LINES = 256; // 512 KiB in 8 segments of 64 KiB
  const T0 = 1_700_000_000_000;
  /** line i (from 0), numbered, LINE bytes, one index record each, a second apart */
  const line = (i: number) => Buffer.from(`line ${String(i).padStart(4, '0')} ${'x'.repeat(LINE - 11)}\n`);
  const whole = Buffer.concat(Array.from({ length: LINES }, (_, i) => line(i)));

  beforeEach(async () => {
    let clock = T0;
    const log = await openMachineLog({ dir, machineId: MACHINE, fileBytes: 64 * 1024, files: 10, logger: captureLog().logger, now: () => clock });
    for (let i = 0; i < LINES; i++) {
      clock = T0 + i * 1000;
      log.append(line(i));
      await log.flush();
    }
    await log.close();
  });

  it('sends about the newest N bytes of the range, not the whole, and says how much it left out', async () => {
    await withRoutesServer(async (url) => {
      const newest = 100_000;
      const res = await fetch(`${url}/v1/machine/${MACHINE}/console/log?newest=${newest}`);
      expect(res.status).toBe(200);
      const body = Buffer.from(await res.arrayBuffer());
      // from the record the newest bytes begin in: at most a record more
      expect(body.length).toBeGreaterThanOrEqual(newest);
      expect(body.length).toBeLessThan(newest + LINE);
      expect(body.equals(whole.subarray(whole.length - body.length))).toBe(true);
      expect(res.headers.get('x-metal-bmc-left-out')).toBe(String(whole.length - body.length));

      // without newest: the whole range, as before (the CLI), and no header
      const all = await fetch(`${url}/v1/machine/${MACHINE}/console/log`);
      expect(Buffer.from(await all.arrayBuffer()).equals(whole)).toBe(true);
      expect(all.headers.get('x-metal-bmc-left-out')).toBeNull();
    });
  });

  it('counts only the range as left out, and starts at since when that is later', async () => {
    await withRoutesServer(async (url) => {
      // the last 100 lines; their newest 50,000 bytes begin inside line 231
      const since = T0 + (LINES - 100) * 1000;
      const cut = await fetch(`${url}/v1/machine/${MACHINE}/console/log?since=${since}&newest=50000`);
      const cutBody = Buffer.from(await cut.arrayBuffer());
      expect(cutBody.equals(whole.subarray(Math.floor((whole.length - 50_000) / LINE) * LINE))).toBe(true);
      expect(Number(cut.headers.get('x-metal-bmc-left-out'))).toBe(100 * LINE - cutBody.length);

      // the last 10 lines are fewer than the newest 100,000 bytes: all of them, nothing left out
      const later = await fetch(`${url}/v1/machine/${MACHINE}/console/log?since=${T0 + (LINES - 10) * 1000}&newest=100000`);
      expect(Buffer.from(await later.arrayBuffer()).equals(whole.subarray(whole.length - 10 * LINE))).toBe(true);
      expect(later.headers.get('x-metal-bmc-left-out')).toBe('0');
    });
  });

  it('refuses a newest that is no byte count from 1 to MAX_NEWEST with a 400 that says so', async () => {
    await withRoutesServer(async (url) => {
      for (const bad of ['0', '-1', 'abc', '1.5', '1e6', '', String(MAX_NEWEST + 1), '9'.repeat(30)]) {
        const res = await fetch(`${url}/v1/machine/${MACHINE}/console/log?newest=${encodeURIComponent(bad)}`);
        expect(res.status, bad).toBe(400);
        expect(await res.text()).toBe(`newest must be a byte count from 1 to ${MAX_NEWEST}\n`);
      }
      const biggest = await fetch(`${url}/v1/machine/${MACHINE}/console/log?newest=${MAX_NEWEST}`);
      expect(Buffer.from(await biggest.arrayBuffer()).equals(whole)).toBe(true);
      expect(biggest.headers.get('x-metal-bmc-left-out')).toBe('0');
    });
  });
});

describe('console history route: a client that stops reading, a machine not captured', () => {
  const logRequest = (query: string) => ({ method: 'GET', url: `/v1/machine/${MACHINE}/console/log${query}` }) as IncomingMessage;

  it('drops a log reader or follower that takes nothing for logStallMs, so its connection is free', async () => {
    const log = await openMachineLog({ dir, machineId: MACHINE, fileBytes: 1 << 20, files: 2, logger: captureLog().logger });
    for (let i = 0; i < 3; i++) {
      log.append(Buffer.from(`boot line ${i}\r\n`));
      await log.flush();
    }
    await log.close();
    const routes = captureViewerRoutes({ dir, logStallMs: 200 });
    for (const query of ['?follow=1', '']) {
      const stalled = new StalledResponse();
      routes.handle(logRequest(query), stalled as unknown as ServerResponse, viewer);
      await waitFor(() => stalled.destroyed, 10_000, `the stalled client (${query || 'no follow'}) dropped`);
      expect(stalled.status).toBe(200);
      expect(stalled.writes).toBe(1); // nothing more written after the write it did not take
    }
    routes.close();
  });

  it('answers a follower of a machine with no capture the 404 the plain read gets, once followStartWaitMs passed without one', async () => {
    await withRoutesServer(
      async (url) => {
        const started = Date.now();
        const res = await fetch(`${url}/v1/machine/never-captured/console/log?follow=1`, { signal: AbortSignal.timeout(10_000) });
        expect(res.status).toBe(404);
        expect(res.headers.get('x-metal-bmc-capture')).toBe('none');
        expect(await res.text()).toBe('no console capture of machine never-captured on this metal-bmc instance\n');
        expect(Date.now() - started).toBeGreaterThanOrEqual(300);
      },
      { followStartWaitMs: 300, pollMs: 20 },
    );
  });

  it('a follower waiting for a capture gets its output once it begins', async () => {
    await withRoutesServer(
      async (url) => {
        const abort = new AbortController();
        const answer = fetch(`${url}/v1/machine/${MACHINE}/console/log?follow=1`, { signal: abort.signal });
        const log = await openMachineLog({ dir, machineId: MACHINE, fileBytes: 1 << 20, files: 2, logger: captureLog().logger });
        log.append(Buffer.from('first words\r\n'));
        await log.flush();
        const res = await answer;
        expect(res.status).toBe(200);
        let body = '';
        const reader = res.body!.getReader();
        while (!body.includes('first words')) {
          const r = await reader.read();
          if (r.done) throw new Error(`the follow stream ended before the output came: ${JSON.stringify(body)}`);
          body += Buffer.from(r.value).toString('latin1');
        }
        abort.abort();
        await log.close();
      },
      { followStartWaitMs: 10_000, pollMs: 20 },
    );
  });

  it('close() (the daemon stopping) answers a follower still waiting for a capture with a 503', async () => {
    const routes = captureViewerRoutes({ dir, followStartWaitMs: 10_000, pollMs: 20 });
    const waiting = new StalledResponse();
    routes.handle({ method: 'GET', url: '/v1/machine/never-captured/console/log?follow=1' } as IncomingMessage, waiting as unknown as ServerResponse, viewer);
    expect(waiting.status).toBe(0); // no answer yet: it waits
    routes.close();
    expect(waiting.status).toBe(503);
    expect(waiting.ended).toBe(true);
  });
});
