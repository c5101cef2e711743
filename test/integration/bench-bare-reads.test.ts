/**
 * report-latency's reference clients (bench/bare-reads.ts) against the simulator: each asks a BMC
 * its three paths once, in order (the bare one over one connection); the measured pass resumes the
 * TLS sessions the first made; a refused password and a BMC that never answers are told apart from
 * a read.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BARE_PATHS, bareRead, bareReads, transportRead } from '../../bench/bare-reads.js';
import type { Fleet } from '../../src/sim/fleet.js';
import { startTestFleet } from '../helpers/fleet.js';

let fleet: Fleet;

beforeAll(async () => {
  fleet = await startTestFleet({ count: 3, variants: ['supermicro', 'lenovo', 'gigabyte'], seed: 'bare-reads', recordRequests: true, latency: { redfish: { p50Ms: 1, p99Ms: 1 }, ipmi: { p50Ms: 1, p99Ms: 1 } } });
});
afterAll(async () => {
  await fleet?.close();
});

const target = (i: number, password = fleet.password) => ({ host: fleet.machines[i]!.state.address, port: fleet.redfishPort, user: fleet.user, password });

describe("report-latency's bare client", () => {
  // first in the file: no connection to these BMCs has left a TLS session before it
  it('measures a pass whose TLS connections resume the sessions of the pass before it', async () => {
    const run = await bareReads([0, 1, 2].map((i) => target(i)), { concurrency: 2, deadlineMs: 10_000, simCpuSeconds: () => 0 });
    expect(run.outcomes).toEqual({ read: 3, cut: 0, failed: 0 });
    expect(run.resumed).toBe(3);
    expect(run.cpuMsPerBmc).toBeGreaterThan(0);
  });

  it('asks every vendor variant its three paths once each, in order, and parses the answers', async () => {
    for (let i = 0; i < 3; i++) {
      const before = fleet.requestLog(i).length;
      expect(await bareRead(target(i), 10_000)).toBe('read');
      expect(fleet.requestLog(i).slice(before).map((r) => r.what)).toEqual(BARE_PATHS.map((p) => `GET ${p}`));
    }
  });

  it('fails a read whose password the BMC refuses, after its first answer', async () => {
    const before = fleet.requestLog(0).length;
    expect(await bareRead(target(0, 'wrong'), 10_000)).toBe('failed');
    expect(fleet.requestLog(0).slice(before).map((r) => r.what)).toEqual([`GET ${BARE_PATHS[0]}`, `GET ${BARE_PATHS[1]}`]);
  });

  it('asks the same three paths through the Redfish client\'s HTTP layer', async () => {
    for (let i = 0; i < 3; i++) {
      const before = fleet.requestLog(i).length;
      expect(await transportRead(target(i), 10_000)).toBe('read');
      expect(fleet.requestLog(i).slice(before).map((r) => r.what)).toEqual(BARE_PATHS.map((p) => `GET ${p}`));
    }
    expect(await transportRead(target(0, 'wrong'), 10_000)).toBe('failed');
  });

  it('measures the HTTP layer\'s pass with resumed TLS sessions too', async () => {
    const run = await bareReads([0, 1, 2].map((i) => target(i)), { concurrency: 2, deadlineMs: 10_000, simCpuSeconds: () => 0, reader: 'transport' });
    expect(run.outcomes).toEqual({ read: 3, cut: 0, failed: 0 });
    expect(run.resumed).toBe(3);
  });

  it('cuts a BMC that accepts the connection and never answers at its deadline', async () => {
    const sockets: Socket[] = [];
    const silent: Server = createServer((s) => sockets.push(s));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = silent.address() as { port: number };
      expect(await bareRead({ host: '127.0.0.1', port, user: 'u', password: 'p' }, 300)).toBe('cut');
      expect(sockets).toHaveLength(1);
      expect(await transportRead({ host: '127.0.0.1', port, user: 'u', password: 'p' }, 300)).toBe('cut');
      expect(sockets).toHaveLength(2);
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => silent.close(resolve));
    }
  });

});
