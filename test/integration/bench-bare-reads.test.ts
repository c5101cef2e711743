/**
 * report-latency's reference clients (bench/bare-reads.ts) against the simulator: each asks a BMC
 * its three paths once, in order (the bare one over one TLS connection); the measured pass resumes
 * the TLS sessions the first made; a refused password and a BMC that never answers are told apart
 * from a read. Each test reads machines of its own, so none finds TLS sessions another left.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BARE_PATHS, bareConnections, bareRead, bareReads, transportRead } from '../../bench/bare-reads.js';
import type { Fleet } from '../../src/sim/fleet.js';
import type { SimVariantName } from '../../src/sim/machine.js';
import { startTestFleet } from '../helpers/fleet.js';

const VARIANTS: readonly SimVariantName[] = ['supermicro', 'lenovo', 'gigabyte'];
let fleet: Fleet;

beforeAll(async () => {
  fleet = await startTestFleet({ count: 24, variants: VARIANTS, seed: 'bare-reads', recordRequests: true, latency: { redfish: { p50Ms: 1, p99Ms: 1 }, ipmi: { p50Ms: 1, p99Ms: 1 } } });
});
afterAll(async () => {
  await fleet?.close();
});

const target = (i: number, password = fleet.password) => ({ host: fleet.machines[i]!.state.address, port: fleet.redfishPort, user: fleet.user, password });

/** the first machine of each vendor variant from `from` on */
function oneOfEachVariant(from: number): number[] {
  const found = VARIANTS.map((v) => fleet.machines.findIndex((m, i) => i >= from && m.state.variant === v));
  expect(found.every((i) => i >= 0)).toBe(true);
  return found;
}

const pathsAsked = (i: number, since: number) => fleet.requestLog(i).slice(since).map((r) => r.what);

describe("report-latency's bare client", () => {
  it('measures a pass whose TLS connections resume the sessions of the pass before it, one connection per BMC and pass', async () => {
    const before = bareConnections();
    const run = await bareReads([0, 1, 2].map((i) => target(i)), { concurrency: 2, deadlineMs: 10_000, simCpuSeconds: () => 0 });
    expect(run.outcomes).toEqual({ read: 3, cut: 0, failed: 0 });
    expect(run.resumed).toBe(3);
    expect(run.cpuMsPerBmc).toBeGreaterThan(0);
    // the first pass's full handshakes and the measured pass's resumed ones
    expect(bareConnections().connections - before.connections).toBe(6);
  });

  it('measures the HTTP layer\'s pass with resumed TLS sessions too', async () => {
    const run = await bareReads([3, 4, 5].map((i) => target(i)), { concurrency: 2, deadlineMs: 10_000, simCpuSeconds: () => 0, reader: 'transport' });
    expect(run.outcomes).toEqual({ read: 3, cut: 0, failed: 0 });
    expect(run.resumed).toBe(3);
  });

  it('asks every vendor variant its three paths once each, in order, over one connection, and parses the answers', async () => {
    for (const i of oneOfEachVariant(6)) {
      const since = fleet.requestLog(i).length;
      const connections = bareConnections().connections;
      expect(await bareRead(target(i), 10_000)).toBe('read');
      expect(pathsAsked(i, since)).toEqual(BARE_PATHS.map((p) => `GET ${p}`));
      expect(bareConnections().connections - connections).toBe(1);
    }
  });

  it('asks the same three paths through the Redfish client\'s HTTP layer', async () => {
    for (const i of oneOfEachVariant(6)) {
      const since = fleet.requestLog(i).length;
      expect(await transportRead(target(i), 10_000)).toBe('read');
      expect(pathsAsked(i, since)).toEqual(BARE_PATHS.map((p) => `GET ${p}`));
    }
  });

  it('fails a read whose password the BMC refuses, after its first answer', async () => {
    const since = fleet.requestLog(20).length;
    expect(await bareRead(target(20, 'wrong'), 10_000)).toBe('failed');
    expect(pathsAsked(20, since)).toEqual([`GET ${BARE_PATHS[0]}`, `GET ${BARE_PATHS[1]}`]);
    expect(await transportRead(target(21, 'wrong'), 10_000)).toBe('failed');
  });

  it('cuts a BMC that accepts the connection and never answers at its deadline, and closes its connection', async () => {
    const sockets: Socket[] = [];
    const silent: Server = createServer((s) => {
      sockets.push(s);
      // read what the client sends (its TLS hello), so that its close comes through as the socket's end
      s.resume();
      s.on('error', () => undefined);
    });
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = silent.address() as { port: number };
      const closed = new Promise<void>((resolve) => silent.once('connection', (s: Socket) => s.once('close', () => resolve())));
      expect(await bareRead({ host: '127.0.0.1', port, user: 'u', password: 'p' }, 300)).toBe('cut');
      expect(sockets).toHaveLength(1);
      // the TLS handshake never ended: the cut closes the connection all the same
      await closed;
      expect(await transportRead({ host: '127.0.0.1', port, user: 'u', password: 'p' }, 300)).toBe('cut');
      expect(sockets).toHaveLength(2);
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => silent.close(resolve));
    }
  });
});
