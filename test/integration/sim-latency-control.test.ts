/** The control API's latency routes on a running fleet, driven by curl-free fetch. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startControlServer } from '../../src/sim/control.js';
import type { Fleet } from '../../src/sim/fleet.js';
import { startTestFleet } from '../helpers/fleet.js';

let fleet: Fleet;
let control: { port: number; close(): Promise<void> };

beforeAll(async () => {
  fleet = await startTestFleet({ count: 50, redfish: false, recordRequests: true });
  control = await startControlServer(fleet, 0);
});
afterAll(async () => {
  await control?.close();
  await fleet?.close();
});

async function call(method: string, path: string, body?: unknown): Promise<{ status: number; body: unknown }> {
  const res = await fetch(`http://127.0.0.1:${control.port}${path}`, { method, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
  return { status: res.status, body: await res.json() };
}

describe('control API: latency', () => {
  it('sets a model from a spec: exactly the shares of slow and dead machines', async () => {
    expect(await call('POST', '/latency', { spec: 'ipmi=p50:5ms,p99:50ms slow=10%:2s-5s dead=4%' })).toEqual({ status: 200, body: { live: 43, slow: 5, dead: 2 } });
    expect(fleet.machines.filter((m) => m.state.timing?.latency?.fate === 'dead')).toHaveLength(2);
  });

  it('refuses a malformed spec with the reason, and keeps the model', async () => {
    const r = await call('POST', '/latency', { spec: 'ipmi=p50:5ms' });
    expect(r.status).toBe(400);
    expect(JSON.stringify(r.body)).toMatch(/p50:DURATION,p99:DURATION/);
    expect(fleet.machines.filter((m) => m.state.timing?.latency?.fate === 'dead')).toHaveLength(2);
  });

  it('clears the model; the request log stays and is served per machine', async () => {
    expect(await call('DELETE', '/latency')).toEqual({ status: 200, body: { cleared: true } });
    expect(fleet.machines.some((m) => m.state.timing?.latency !== undefined)).toBe(false);
    expect(fleet.machines.every((m) => m.state.timing?.log !== undefined)).toBe(true);
    expect(await call('GET', '/requests/0')).toEqual({ status: 200, body: [] });
    expect((await call('GET', '/requests/50')).status).toBe(404);
  });
});
