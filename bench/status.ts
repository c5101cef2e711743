/**
 * GET /v1/status with N BMCs in the status (default 1,000: issue 14 asks for an answer within
 * 50 ms), on the operations listener, next to /metrics and /healthz of the same listener in the
 * same run (/metrics holds the two per-BMC series of every BMC as well, so it also grows with N).
 * The status is filled by the store's own hooks with synthetic reads: a fifth failing, a tenth
 * degraded, the rest read; no BMC is contacted, this measures building and sending the document.
 * The page in headless Chromium: time from navigation until all N rows are in the table, and
 * the time one filter keystroke takes to re-render the table (layout included), next to the same
 * page with 10 BMCs in the same run.
 * Usage: npm run bench -- status [N] (N BMCs; 200 sequential requests per endpoint)
 */
import { accessSync, constants } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Registry } from 'prom-client';
import { BmcError } from '../src/errors.js';
import type { Lease } from '../src/leases/types.js';
import { startOpsServer } from '../src/ops/http.js';
import type { BmcReport } from '../src/outband/types.js';
import { createStatusHttp } from '../src/status/http.js';
import { registerStatusMetrics } from '../src/status/metrics.js';
import { statusViewerRoutes } from '../src/status/page.js';
import { createStatusStore, type StatusStore } from '../src/status/store.js';
import { latency, spread, timeCounting } from './report.js';
import { begin, type Recorder } from './results.js';

const REQUESTS = 200;

function lease(i: number): Lease {
  const mac = [0x0c, 0xc4, 0x7a, (i >> 16) & 0xff, (i >> 8) & 0xff, i & 0xff].map((b) => b.toString(16).padStart(2, '0')).join(':');
  return { ip: `10.${(i >> 16) & 0xff}.${(i >> 8) & 0xff}.${i & 0xff}`, mac, expires: new Date(Date.now() + 86_400_000) };
}

function report(i: number, degraded: boolean): BmcReport {
  return {
    uuid: `00000000-0000-4000-8000-${i.toString(16).padStart(12, '0')}`,
    bmcVersion: '1.74.13',
    biosVersion: '3.4a',
    fru: { product_manufacturer: 'Supermicro', product_part_number: 'SYS-2029BT-HNR', product_serial: `S${i}` },
    powerState: 'ON',
    indicatorLED: 'LED-OFF',
    powerSupplies: [],
    source: degraded ? 'ipmi' : 'redfish+ipmi',
    fieldSources: { bmcVersion: 'ipmi', product_manufacturer: 'redfish' },
    missing: [],
    ...(degraded ? { redfishProblem: { code: 'HTTP', httpStatus: 503, message: 'GET /redfish/v1: HTTP 503: Service Unavailable' } } : {}),
  };
}

/** A status with `n` BMCs: a fifth failing, a tenth degraded, the rest read and reported. */
function filledStore(n: number): StatusStore {
  const store = createStatusStore({ partition: 'bench', graceMs: 3_600_000, secrets: ['bench-password'] });
  const leases = Array.from({ length: n }, (_, i) => lease(i));
  store.leases(leases);
  leases.forEach((l, i) => {
    if (i % 5 === 0) store.read(l, { ok: false, error: new BmcError('TIMEOUT', `reading BMC ${l.ip}: timed out`), durationMs: 20_000 });
    else store.read(l, { ok: true, report: report(i, i % 10 === 1), vendor: 'supermicro', durationMs: 900 });
  });
  store.reported(leases.map((_, i) => report(i, false).uuid), new Date());
  return store;
}

/** The page's routes on plain HTTP (the console listener's TLS and authentication are not what is measured). */
async function pageServer(store: StatusStore): Promise<{ url: string; close(): Promise<void> }> {
  const http = createStatusHttp(store);
  const routes = statusViewerRoutes(http);
  const server: Server = createServer((req, res) => {
    if (routes.owns(new URL(req.url ?? '/', 'http://x').pathname)) routes.handle(req, res, { subject: 'bench', mayOpen: () => true, mayOpenEvery: true });
    else res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/status`,
    close: async () => {
      http.close();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/** What the page script leaves for measuring (the bench code has no DOM types). */
interface PageDom {
  document: { querySelectorAll(s: string): { length: number }; getElementById(id: string): { value: string; dispatchEvent(e: unknown): void }; body: { offsetHeight: number } };
  Event: new (type: string) => unknown;
  performance: { now(): number };
}

/** Debian's chromium (scripts/install-deps.sh), or $CHROMIUM. */
function chromiumPath(): string {
  const path = process.env.CHROMIUM ?? '/usr/bin/chromium';
  try {
    accessSync(path, constants.X_OK);
  } catch {
    throw new Error(`the page figures need Chromium at ${path} (Debian package chromium, or set CHROMIUM)`);
  }
  return path;
}

async function pageFigures(out: Recorder, n: number): Promise<void> {
  const { chromium } = await import('playwright-core');
  const browser = await chromium.launch({ executablePath: chromiumPath(), args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'] });
  const sizes = [n, 10];
  const loads: Record<number, number[]> = {};
  const filters: Record<number, number[]> = {};
  try {
    for (const size of sizes) {
      const server = await pageServer(filledStore(size));
      try {
        const page = await browser.newPage({ viewport: { width: 1600, height: 900 } });
        loads[size] = [];
        filters[size] = [];
        for (let run = 0; run < 5; run++) {
          const t = performance.now();
          await page.goto(server.url);
          await page.waitForFunction((rows) => (globalThis as unknown as PageDom).document.querySelectorAll('#bmcs tbody tr').length === rows, size);
          loads[size].push(performance.now() - t);
        }
        for (let i = 0; i < 20; i++) {
          const ms = await page.evaluate((text) => {
            const g = globalThis as unknown as PageDom;
            const filter = g.document.getElementById('filter');
            const t = g.performance.now();
            filter.value = text;
            filter.dispatchEvent(new g.Event('input'));
            void g.document.body.offsetHeight; // layout of the new table
            return g.performance.now() - t;
          }, i % 2 === 0 ? 'failing' : '');
          filters[size].push(ms);
        }
        await page.close();
      } finally {
        await server.close();
      }
    }
  } finally {
    await browser.close();
  }
  const side = (name: string, samples: number[]) => latency(name, { samples, failures: 0 });
  out.record({ ...side(`/status page, navigation until ${n} rows shown`, loads[n]!), unit: 'ms', reference: side('the same page with 10 BMCs', loads[10]!), better: 'lower' });
  out.record({ ...side(`/status page, one filter keystroke re-rendering ${n} rows (layout included)`, filters[n]!), unit: 'ms', reference: side('the same with 10 BMCs', filters[10]!), better: 'lower' });
}

export async function benchStatus(n = 1000): Promise<void> {
  const out = begin('status', `GET /v1/status with ${n} BMCs in the status, next to /metrics and /healthz of the same listener`, { bmcs: n, requests: REQUESTS });
  const store = filledStore(n);
  const registry = new Registry();
  registerStatusMetrics(registry, store);
  const http = createStatusHttp(store);
  const ops = await startOpsServer({ host: '127.0.0.1', port: 0, registry, readiness: {}, routes: (req, res) => http.handle(req, res) });
  try {
    const base = `http://127.0.0.1:${ops.port}`;
    const get = async (path: string) => {
      const res = await fetch(`${base}${path}`);
      if (res.status !== 200) throw new Error(`${path}: HTTP ${res.status}`);
      return (await res.arrayBuffer()).byteLength;
    };
    // warm-up: code paths, connection
    const size = await get('/v1/status');
    const metricsSize = await get('/metrics');
    await get('/healthz');
    const status = await timeCounting(REQUESTS, () => get('/v1/status'));
    const metrics = await timeCounting(REQUESTS, () => get('/metrics'));
    const health = await timeCounting(REQUESTS, () => get('/healthz'));
    out.record({ ...latency('GET /v1/status', status), unit: 'ms', reference: latency('GET /metrics (same listener, 2 series per BMC)', metrics), better: 'lower', differs: `the status builds and sends a ${Math.round(size / 1024)} KiB JSON document; /metrics a ${Math.round(metricsSize / 1024)} KiB text` });
    const p99 = (name: string, t: typeof status) => ({ ...latency(name, t), value: spread(t.samples)?.p99 ?? null, stat: 'p99' });
    out.record({ ...p99('GET /v1/status, p99', status), unit: 'ms', reference: p99('GET /healthz (same listener), p99', health), better: 'lower', differs: '/healthz answers a constant: the listener and the HTTP client alone' });
    out.record({ name: 'size of the /v1/status document', value: size, kind: 'measured', unit: 'bytes', detail: true });
    out.note(`issue 14 target: /v1/status within 50 ms at 1,000 BMCs`);
  } finally {
    http.close();
    await ops.close();
  }
  await pageFigures(out, n);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await benchStatus(Number(process.argv[2] ?? 1000));
}
