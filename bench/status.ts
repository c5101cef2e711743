/**
 * GET /v1/status with N BMCs in the status (default 1,000: issue 14 asks for an answer within
 * 50 ms), on the operations listener, next to /metrics and /healthz of the same listener in the
 * same run (/metrics holds the two per-BMC series of every BMC as well, so it also grows with N).
 * The status is filled by the store's own hooks with synthetic reads: a fifth failing, a tenth
 * degraded, the rest read; no BMC is contacted, this measures building and sending the document.
 * Usage: npm run bench -- status [N] (N BMCs; 200 sequential requests per endpoint)
 */
import { Registry } from 'prom-client';
import { BmcError } from '../src/errors.js';
import type { Lease } from '../src/leases/types.js';
import { startOpsServer } from '../src/ops/http.js';
import type { BmcReport } from '../src/outband/types.js';
import { createStatusHttp } from '../src/status/http.js';
import { registerStatusMetrics } from '../src/status/metrics.js';
import { createStatusStore } from '../src/status/store.js';
import { latency, spread, timeCounting } from './report.js';
import { begin } from './results.js';

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

export async function benchStatus(n = 1000): Promise<void> {
  const out = begin('status', `GET /v1/status with ${n} BMCs in the status, next to /metrics and /healthz of the same listener`, { bmcs: n, requests: REQUESTS });
  const store = createStatusStore({ partition: 'bench', graceMs: 3_600_000, secrets: ['bench-password'] });
  const leases = Array.from({ length: n }, (_, i) => lease(i));
  store.leases(leases);
  leases.forEach((l, i) => {
    if (i % 5 === 0) store.read(l, { ok: false, error: new BmcError('TIMEOUT', `reading BMC ${l.ip}: timed out`), durationMs: 20_000 });
    else store.read(l, { ok: true, report: report(i, i % 10 === 1), vendor: 'supermicro', durationMs: 900 });
  });
  store.reported(leases.map((_, i) => report(i, false).uuid), new Date());
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
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await benchStatus(Number(process.argv[2] ?? 1000));
}
