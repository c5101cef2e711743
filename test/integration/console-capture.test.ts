/**
 * The console capture with real peers: the simulated fleet's IPMI SOL, the metal-api stand-in,
 * the console listeners, and WebSocket viewers. A boot storm is captured completely and in
 * order; a BMC that stops answering leaves a gap and capture resumes; a viewer's takeover does
 * not stop the capture; after a restart a new viewer gets the history; the HTTPS endpoint serves
 * the log and grep behind the console's authentication.
 */
import { request } from 'node:https';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { createConsoleCapture, type ConsoleCapture } from '../../src/console/capture.js';
import { isSafeMachineId } from '../../src/console/capture-files.js';
import { readHistory, tailBytes } from '../../src/console/capture-read.js';
import { captureViewerRoutes, type CaptureRoutes } from '../../src/console/capture-routes.js';
import { metalApiConsoleBackend, startConsoleServers, type ConsoleServers } from '../../src/console/index.js';
import { createMetalApiClient } from '../../src/metalapi/client.js';
import { startMetalApiStandIn, type MetalApiStandIn } from '../../src/metalapi/standin.js';
import { ipmiOutband } from '../../src/outband/ipmi.js';
import type { Fleet } from '../../src/sim/fleet.js';
import { parseStormLine } from '../../src/sim/serial.js';
import { machineIpmi } from '../helpers/console-backend.js';
import { startTestFleet } from '../helpers/fleet.js';
import { captureLog } from '../helpers/log.js';
import { createPki, loopbackConsoleListeners, type Pki } from '../helpers/pki.js';
import { waitFor } from '../helpers/wait.js';

let fleet: Fleet;
let pki: Pki;
let standin: MetalApiStandIn;
let dir: string;
let servers: ConsoleServers;
let capture: ConsoleCapture;
let routes: CaptureRoutes;
let ids: string[];
const { logger } = captureLog('warn');

async function startService(): Promise<void> {
  const api = createMetalApiClient({ baseUrl: standin.url, hmacKey: 'capture-test-key', retries: 0 });
  const openBackend = metalApiConsoleBackend({
    findIpmiMachine: (id, o) => api.findIpmiMachine(id, o),
    // a short keepalive: a BMC that stops answering is noticed within seconds
    connect: async (t) => ipmiOutband({ host: t.host, port: t.port, user: t.user, password: t.password, cipherSuite: 3, keepaliveMs: 500, retry: { deadlineMs: 1500 } }),
  });
  routes = captureViewerRoutes({ dir, pollMs: 50 });
  servers = await startConsoleServers({
    ...loopbackConsoleListeners(pki),
    openBackend,
    logger,
    idleTimeoutMs: 300, // shorter than the test: the held sessions must outlive it
    viewerRoutes: routes,
    hub: { reconnect: { initialMs: 200, maxMs: 500, maxAttempts: 3 }, seedScrollback: (id) => (isSafeMachineId(id) ? tailBytes(dir, id, 65_536) : Promise.resolve(Buffer.alloc(0))) },
  });
  capture = createConsoleCapture({ hub: servers.hub, dir, fileBytes: 1 << 20, files: 2, logger, flushMs: 20, retry: { initialMs: 200, maxMs: 1000 } });
  capture.setMachines(ids);
}

async function stopService(): Promise<void> {
  routes.close();
  await capture.close();
  await servers.close();
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'capture-it-'));
  [fleet, pki] = await Promise.all([startTestFleet({ count: 3, redfish: false }), createPki()]);
  standin = await startMetalApiStandIn({ hmacKey: 'capture-test-key' });
  ids = fleet.machines.map((m) => m.state.uuid);
  for (const m of fleet.machines) standin.machines.set(m.state.uuid, machineIpmi(`${m.state.address}:${fleet.ipmiPort}`, fleet.user, fleet.password));
  await startService();
}, 60_000);

afterAll(async () => {
  await stopService().catch(() => undefined);
  await standin?.close();
  await fleet?.close();
  pki?.remove();
  rmSync(dir, { recursive: true, force: true });
});

const text = async (id: string) => (await tailBytes(dir, id, 1 << 20)).toString('latin1');

/** storm lines of `id` in the log, numbers in order of appearance; a line with a bad checksum is -1 */
async function stormNumbers(id: string, tag: string): Promise<number[]> {
  return (await text(id))
    .split('\r\n')
    .slice(0, -1) // complete lines only
    .filter((l) => l.startsWith(`storm ${tag} `))
    .map((l) => parseStormLine(l)?.n ?? -1);
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i + 1);

interface Viewer {
  ws: WebSocket;
  output: () => string;
  messages: Array<Record<string, unknown>>;
}

function view(machineId: string): Viewer {
  const ws = new WebSocket(`wss://127.0.0.1:${servers.wsPort}/v1/machine/${machineId}/console`, { ca: readFileSync(pki.ca), cert: readFileSync(pki.clientCert), key: readFileSync(pki.clientKey) });
  let output = '';
  const messages: Array<Record<string, unknown>> = [];
  ws.on('message', (data: Buffer, isBinary: boolean) => {
    if (isBinary) output += data.toString('latin1');
    else messages.push(JSON.parse(data.toString()) as Record<string, unknown>);
  });
  ws.on('error', () => undefined);
  return { ws, output: () => output, messages };
}

function get(path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: servers.wsPort, path, ca: readFileSync(pki.ca), cert: readFileSync(pki.clientCert), key: readFileSync(pki.clientKey) }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString('latin1')));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('console capture', () => {
  it('holds every machine\'s console past the idle timeout, without viewers', async () => {
    await waitFor(() => capture.held() === 3, 20_000, 'three held sessions');
    await new Promise((resolve) => setTimeout(resolve, 600)); // two idle timeouts
    expect(capture.held()).toBe(3);
    expect(servers.hub.sessionCount()).toBe(3);
    expect([...servers.hub.viewerCounts().values()]).toEqual([0, 0, 0]);
  });

  it('captures a boot storm of every machine completely and in order', async () => {
    expect(fleet.serialStorm('all', 300)).toBe(3);
    for (const [i, id] of ids.entries()) {
      await waitFor(async () => (await stormNumbers(id, `m${fleet.machines[i]!.state.index}`)).length >= 300, 30_000, `storm of ${id}`);
      expect(await stormNumbers(id, `m${fleet.machines[i]!.state.index}`)).toEqual(range(300));
    }
  }, 60_000);

  it('goes on capturing while a viewer takes the keyboard over from another', async () => {
    const id = ids[1]!;
    const tag = `m${fleet.machines[1]!.state.index}`;
    const a = view(id);
    await waitFor(() => a.messages.some((m) => m.type === 'status' && m.keyboard === true), 10_000, 'first viewer has the keyboard');
    const b = view(id);
    await waitFor(() => b.messages.some((m) => m.type === 'status'), 10_000, 'second viewer joined');
    b.ws.send(JSON.stringify({ type: 'takeover' }));
    await waitFor(() => a.messages.some((m) => m.type === 'status' && m.keyboard === false), 10_000, 'first viewer lost the keyboard');
    expect(servers.hub.viewerCounts().get(id)).toBe(2);
    const before = (await stormNumbers(id, tag)).length;
    fleet.serialStorm([fleet.machines[1]!.state.index], 200);
    await waitFor(async () => (await stormNumbers(id, tag)).length >= before + 200, 30_000, 'second storm captured');
    expect((await stormNumbers(id, tag)).slice(before)).toEqual(range(200));
    expect(b.output()).toContain(`storm ${tag} 200/200`);
    a.ws.close();
    b.ws.close();
    await waitFor(() => servers.hub.viewerCounts().get(id) === 0, 10_000, 'viewers gone');
    expect(capture.held()).toBe(3);
  }, 60_000);

  it('records a gap while the BMC does not answer, and resumes when it does', async () => {
    const m = fleet.machines[2]!;
    const id = ids[2]!;
    const tag = `m${m.state.index}`;
    const gaps = async () => (await readHistory(dir, id)).filter((e) => e.kind === 'gap');
    const startsBefore = (await gaps()).filter((e) => e.kind === 'gap' && e.what === 'start').length;
    fleet.setFaults([m.state.index], { noAnswer: true });
    await waitFor(async () => (await gaps()).filter((e) => e.kind === 'gap' && e.what === 'start').length > startsBefore, 30_000, 'a gap start');
    expect(capture.held()).toBe(2);
    fleet.setFaults([m.state.index], { noAnswer: false });
    await waitFor(() => capture.held() === 3, 30_000, 'capture resumed');
    await waitFor(async () => (await gaps()).at(-1)?.kind === 'gap' && (await gaps()).at(-1)?.what === 'end', 10_000, 'the gap ended');
    const before = (await stormNumbers(id, tag)).length;
    fleet.serialStorm([m.state.index], 100);
    await waitFor(async () => (await stormNumbers(id, tag)).length >= before + 100, 30_000, 'storm after the gap');
    expect((await stormNumbers(id, tag)).slice(before)).toEqual(range(100));
  }, 90_000);

  it('serves the log and grep over HTTPS, only with a certificate, and follows new output', async () => {
    const id = ids[0]!;
    const tag = `m${fleet.machines[0]!.state.index}`;
    const all = await get(`/v1/machine/${id}/console/log`);
    expect(all.status).toBe(200);
    expect(all.body).toContain(`storm ${tag} 300/300`);
    expect(all.body).toMatch(/\[metal-bmc \S+: capture gap: capture starting\]/);
    const later = await get(`/v1/machine/${id}/console/log?since=${Date.now() + 60_000}`);
    expect(later).toEqual({ status: 200, body: '' });
    const grep = await get(`/v1/console/grep?pattern=${encodeURIComponent(`storm ${tag} 150/300`)}`);
    const matches = grep.body.trim().split('\n').map((l) => JSON.parse(l) as { machineId: string; line: string });
    expect(matches.map((x) => x.machineId)).toEqual([id]);
    expect(matches[0]!.line).toMatch(/^storm m\d+ 150\/300 /);
    expect((await get('/v1/machine/..%2Fetc/console/log')).status).toBe(400);
    // without a client certificate the TLS handshake already fails (no token mode)
    const anonymous = new Promise<number>((resolve, reject) => {
      request({ host: '127.0.0.1', port: servers.wsPort, path: `/v1/machine/${id}/console/log`, ca: readFileSync(pki.ca) }, (res) => resolve(res.statusCode ?? 0))
        .on('error', reject)
        .end();
    });
    await expect(anonymous).rejects.toThrow(/certificate required/);
    // follow: new output arrives on the open response
    let followed = '';
    const req = request({ host: '127.0.0.1', port: servers.wsPort, path: `/v1/machine/${id}/console/log?follow=1&since=${Date.now()}`, ca: readFileSync(pki.ca), cert: readFileSync(pki.clientCert), key: readFileSync(pki.clientKey) }, (res) => {
      res.on('data', (d: Buffer) => (followed += d.toString('latin1')));
      res.on('error', () => undefined);
    });
    req.on('error', () => undefined);
    req.end();
    await new Promise((resolve) => setTimeout(resolve, 200));
    fleet.serialStorm([fleet.machines[0]!.state.index], 20);
    await waitFor(() => followed.includes(`storm ${tag} 20/20`), 20_000, 'followed output');
    req.destroy();
  }, 60_000);

  it('after a restart the history is intact and a new viewer gets it as scrollback', async () => {
    const id = ids[0]!;
    const tag = `m${fleet.machines[0]!.state.index}`;
    await stopService();
    const last = (await readHistory(dir, id)).at(-1);
    expect(last).toMatchObject({ kind: 'gap', what: 'start', reason: 'metal-bmc stopped capturing' });
    await startService();
    await waitFor(() => capture.held() === 3, 20_000, 'held again');
    const v = view(id);
    await waitFor(() => v.output().includes(`storm ${tag} 20/20`), 10_000, 'scrollback from before the restart');
    v.ws.close();
    // the downtime is a gap: stopped, started again, resumed
    const gaps = (await readHistory(dir, id)).filter((e) => e.kind === 'gap').map((e) => (e.what === 'start' ? e.reason : e.what));
    expect(gaps.slice(-3)).toEqual(['metal-bmc stopped capturing', 'capture starting', 'end']);
  }, 60_000);
});
