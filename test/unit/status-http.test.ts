/** GET /v1/status serialises the whole document once per store revision: the same body while nothing changed, a new one after a change. */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { Lease } from '../../src/leases/types.js';
import { createStatusHttp } from '../../src/status/http.js';
import { createStatusStore } from '../../src/status/store.js';
import type { StatusDocument } from '../../src/status/types.js';

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
