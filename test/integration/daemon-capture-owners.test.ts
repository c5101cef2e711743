/**
 * Two daemon instances with METAL_BMC_CONSOLE_CAPTURE=all over one simulated fleet and one real
 * nats-server with JetStream (issue 13, item 4): every machine has exactly one SOL session (the
 * simulator counts activations), a viewer on the instance that does not hold the machine is served
 * from the owner over NATS (same output, keystrokes relayed back) without a second SOL session,
 * and when the owner loses NATS (its connection runs through a proxy the test cuts) it stops
 * holding before the survivor takes every console over, within the lease time; the viewer stays.
 * An owner that stops gracefully lets go of its consoles and releases its claims: a third
 * instance holds them at once, without waiting for the lease.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, connect as tcpConnect, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect } from 'vitest';
import WebSocket from 'ws';
import { loadConfig } from '../../src/config/config.js';
import { startDaemon, type Daemon } from '../../src/daemon.js';
import { startLab, type Lab } from '../../src/lab/lab.js';
import { consolePart } from '../../src/parts/console.js';
import { parseStormLine } from '../../src/sim/serial.js';
import { captureLog } from '../helpers/log.js';
import { freeTcpPort, freeUdpPort } from '../helpers/ports.js';
import { withPeers } from '../helpers/peers.js';
import { waitFor } from '../helpers/wait.js';

const { it } = withPeers('nats-server', 'openssl');

const COUNT = 4;
const LEASE_MS = 6000;

/** A TCP proxy to NATS that the test can cut: established connections die, new ones are refused. */
async function natsProxy(port: number): Promise<{ url: string; cut(): void; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  let open = true;
  const server: Server = createServer((client) => {
    if (!open) return client.destroy();
    const upstream = tcpConnect(port, '127.0.0.1');
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('error', () => undefined);
      s.on('close', () => sockets.delete(s));
    }
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address() as { port: number };
  return {
    url: `nats://127.0.0.1:${address.port}`,
    cut() {
      open = false;
      for (const s of sockets) s.destroy();
    },
    close: () => new Promise<void>((resolve) => (server.close(() => resolve()), [...sockets].forEach((s) => s.destroy()))),
  };
}

let dir: string;
let lab: Lab;
let proxy: Awaited<ReturnType<typeof natsProxy>>;
const daemons: Record<string, Daemon> = {};
const logs = { a: captureLog('info'), b: captureLog('info'), c: captureLog('info') };

async function instance(name: 'a' | 'b' | 'c', mqAddress: string): Promise<Daemon> {
  const env = {
    ...lab.env,
    METAL_BMC_INSTANCE_ID: name,
    METAL_BMC_MQ_ADDRESS: mqAddress,
    METAL_BMC_STATE_DIR: join(dir, `state-${name}`),
    METAL_BMC_CONSOLE_PORT: String(await freeTcpPort()),
    METAL_BMC_CONSOLE_WS_PORT: String(await freeTcpPort()),
    METAL_BMC_HTTP_ADDRESS: '127.0.0.1:0',
    METAL_BMC_SHUTDOWN_TIMEOUT: '5s',
  };
  const d = await startDaemon(loadConfig(env), logs[name].logger, [consolePart]);
  daemons[name] = d;
  return d;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'capture-owners-'));
  // the lab gives the fleet, nats-server, metal-api and the PKI; its own daemon runs no console
  lab = await startLab({
    count: COUNT,
    dir,
    ipmiPort: await freeUdpPort(),
    redfishPort: await freeTcpPort(),
    consolePort: await freeTcpPort(),
    consoleWsPort: await freeTcpPort(),
    cidr: `127.${30 + ((process.pid + 7) % 200)}.0.0/16`,
    logger: captureLog('warn').logger,
    parts: [],
    env: { METAL_BMC_REPORT_INTERVAL: '1s', METAL_BMC_CONSOLE_LOG_SIZE: '64KiB x 2', METAL_BMC_CONSOLE_LEASE: `${LEASE_MS / 1000}s` },
    print: () => undefined,
  });
  proxy = await natsProxy(lab.nats.port);
}, 60_000);

afterAll(async () => {
  for (const d of Object.values(daemons)) await d.stop().catch(() => undefined);
  await proxy?.close();
  await lab?.stop();
  rmSync(dir, { recursive: true, force: true });
}, 60_000);

/** a metric's value, summed over its labels */
async function metric(d: Daemon, name: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${d.opsPort}/metrics`)).text();
  const values = [...text.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'gm'))].map((m) => Number(m[1]));
  return values.length === 0 ? NaN : values.reduce((x, y) => x + y, 0);
}
/** one series, named with its labels */
async function metricOf(d: Daemon, series: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${d.opsPort}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line ? Number(line.slice(series.length + 1)) : NaN;
}
/** a WebSocket viewer of one machine on one instance */
function viewer(d: Daemon, machineId: string) {
  const ws = new WebSocket(`wss://127.0.0.1:${d.context.config.console.wsPort}/v1/machine/${machineId}/console`, { ca: readFileSync(lab.pki.ca), headers: { authorization: `Bearer ${lab.consoleToken}` } });
  let output = '';
  const texts: string[] = [];
  ws.on('message', (data: Buffer, binary: boolean) => {
    if (binary) output += data.toString('latin1');
    else texts.push(data.toString());
  });
  return {
    output: () => output,
    texts: () => texts,
    type: (keys: string) => ws.send(Buffer.from(keys), { binary: true }),
    close: () => ws.close(),
  };
}

/** the numbers of the storm lines in a console's output */
const storm = (output: string) => output.split('\r\n').map((l) => parseStormLine(l)?.n).filter((n): n is number => n !== undefined);

const sol = () => lab.fleet.serialStats().sol;

it('holds each console on exactly one instance, and moves them to the survivor when the owner loses NATS', async () => {
  const a = await instance('a', proxy.url);
  await waitFor(async () => (await metric(a, 'metal_bmc_console_capture_sessions')) === COUNT, 45_000, 'instance a holding every console');
  const b = await instance('b', lab.nats.url);
  // b reports the same machines and sees a's claims: it holds none of them
  await waitFor(async () => (await metric(b, 'metal_bmc_console_capture_machines')) === 0 && b.status.document().bmcs.filter((x) => x.uuid).length === COUNT, 30_000, 'instance b reporting every machine');
  // b's capture was told its reported machines, and that a holds every one of them
  await waitFor(async () => (await metricOf(b, 'metal_bmc_console_ownership_machines{holder="other"}')) === COUNT, 30_000, 'b seeing a hold every console');
  const cyclesBefore = await metric(b, 'metal_bmc_report_cycles_total');
  await waitFor(async () => (await metric(b, 'metal_bmc_report_cycles_total')) >= cyclesBefore + 2, 30_000, 'two more report cycles of b');
  expect(await metric(b, 'metal_bmc_console_capture_sessions')).toBe(0);
  // b's status says where each console is held
  expect(b.status.document().bmcs.map((x) => x.console.capture)).toEqual(Array.from({ length: COUNT }, () => 'elsewhere'));
  expect(a.status.document().bmcs.map((x) => x.console.capture)).toEqual(Array.from({ length: COUNT }, () => 'held'));
  expect(sol()).toEqual(Array.from({ length: COUNT }, () => ({ active: 1, activations: 1 })));

  // viewers on both instances see the same output; the one on b is relayed from a over NATS, its
  // keystrokes reach the BMC through a, and b never opens the BMC's SOL
  const m0 = lab.fleet.machines[0]!.state;
  const onB = viewer(b, m0.uuid);
  await waitFor(() => onB.texts().some((t) => t.includes('"state":"open"')), 15_000, 'the relayed console open on b');
  const onA = viewer(a, m0.uuid);
  await waitFor(() => onA.texts().some((t) => t.includes('"state":"open"')), 15_000, 'the console open on a');
  lab.fleet.serialStorm([0], 50);
  await waitFor(() => storm(onB.output()).at(-1) === 50 && storm(onA.output()).at(-1) === 50, 20_000, 'the storm on both viewers');
  const fromStorm = (out: string) => storm(out).slice(storm(out).indexOf(1));
  expect(fromStorm(onB.output())).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
  expect(fromStorm(onA.output())).toEqual(fromStorm(onB.output()));
  onB.type('relayed-keys\r');
  await waitFor(() => onA.output().includes('relayed-keys') && onB.output().includes('relayed-keys'), 10_000, 'b\'s keystrokes echoed to both');
  expect(sol()[0]).toEqual({ active: 1, activations: 1 });
  expect(logs.a.find('console relayed to another metal-bmc instance')).toHaveLength(1);
  onA.close();

  // a loses NATS: it fences itself, then b takes every console over within the lease time
  const cutAt = Date.now();
  proxy.cut();
  await waitFor(async () => (await metric(a, 'metal_bmc_console_capture_machines')) === 0, LEASE_MS, 'a letting go of its consoles');
  const fencedAfter = Date.now() - cutAt;
  await waitFor(async () => (await metric(b, 'metal_bmc_console_capture_sessions')) === COUNT, LEASE_MS + 10_000, 'b holding every console');
  expect(await metricOf(b, 'metal_bmc_console_ownership_machines{holder="self"}')).toBe(COUNT);
  expect(b.status.document().bmcs.map((x) => x.console.capture)).toEqual(Array.from({ length: COUNT }, () => 'held'));
  const movedAfter = Date.now() - cutAt;
  expect(fencedAfter).toBeLessThan(movedAfter);
  // the lease, plus at most a heartbeat and the console's open
  expect(movedAfter).toBeLessThan(LEASE_MS + 8000);
  expect(logs.b.find('console taken over from a dead instance')).toHaveLength(COUNT);
  // never two SOL sessions: each machine activated once by a, once by b
  expect(sol()).toEqual(Array.from({ length: COUNT }, () => ({ active: 1, activations: 2 })));
  // the viewer on b stayed: its console now comes from b's own SOL session
  const seen = onB.output().length;
  lab.fleet.serialStorm([0], 20);
  await waitFor(() => storm(onB.output().slice(seen)).at(-1) === 20, 30_000, 'the second storm on b\'s viewer');
  onB.close();
  const cyclesAfter = await metric(b, 'metal_bmc_report_cycles_total');
  await waitFor(async () => (await metric(b, 'metal_bmc_report_cycles_total')) >= cyclesAfter + 2, 30_000, 'two more report cycles of b');
  expect(sol()).toEqual(Array.from({ length: COUNT }, () => ({ active: 1, activations: 2 })));
}, 180_000);

it('hands every console over at once when the owner stops gracefully', async () => {
  const b = daemons.b!;
  const c = await instance('c', lab.nats.url);
  await waitFor(async () => (await metricOf(c, 'metal_bmc_console_ownership_machines{holder="other"}')) === COUNT, 30_000, 'c seeing b hold every console');
  const stoppedAt = Date.now();
  await b.stop();
  delete daemons.b;
  await waitFor(async () => (await metric(c, 'metal_bmc_console_capture_sessions')) === COUNT, LEASE_MS, 'c holding every console');
  // released claims, not an expired lease: sooner than the lease time, and no take-over was needed
  expect(Date.now() - stoppedAt).toBeLessThan(LEASE_MS);
  expect(logs.c.find('console taken over from a dead instance')).toHaveLength(0);
  expect(sol()).toEqual(Array.from({ length: COUNT }, () => ({ active: 1, activations: 3 })));
}, 90_000);
