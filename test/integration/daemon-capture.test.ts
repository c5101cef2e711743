/**
 * The daemon with METAL_BMC_CONSOLE_CAPTURE=all (as the lab runs it): every machine the report
 * cycle found is held by its UUID (the SOL sessions in console worker threads), a boot storm
 * lands in the log folder, the capture and worker metrics count it, and a viewer shares the held
 * session.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect } from 'vitest';
import WebSocket from 'ws';
import { tailBytes } from '../../src/console/capture-read.js';
import { startLab, type Lab } from '../../src/lab/lab.js';
import { consolePart } from '../../src/parts/console.js';
import { parseStormLine } from '../../src/sim/serial.js';
import { captureLog } from '../helpers/log.js';
import { freeTcpPort, freeUdpPort } from '../helpers/ports.js';
import { withPeers } from '../helpers/peers.js';
import { waitFor } from '../helpers/wait.js';

const { it } = withPeers('nats-server', 'openssl');

let dir: string;
let lab: Lab;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'daemon-capture-'));
  lab = await startLab({
    count: 2,
    dir,
    ipmiPort: await freeUdpPort(),
    redfishPort: await freeTcpPort(),
    consolePort: await freeTcpPort(),
    consoleWsPort: await freeTcpPort(),
    cidr: `127.${30 + (process.pid % 200)}.0.0/16`,
    logger: captureLog('warn').logger,
    parts: [consolePart],
    env: { METAL_BMC_REPORT_INTERVAL: '1s', METAL_BMC_CONSOLE_LOG_SIZE: '64KiB x 2', METAL_BMC_CONSOLE_WORKERS: '2' },
    print: () => undefined,
  });
}, 60_000);

afterAll(async () => {
  await lab?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const metrics = async () => (await fetch(`http://127.0.0.1:${lab.daemon.opsPort}/metrics`)).text();
const metric = async (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(await metrics())?.[1] ?? NaN);
/** a labelled metric's samples: labels text -> value */
const samples = async (name: string) => new Map([...(await metrics()).matchAll(new RegExp(`^${name}\\{([^}]*)\\} (\\S+)$`, 'gm'))].map((m) => [m[1]!, Number(m[2])]));

it('holds the console of every reported machine by its UUID and logs a boot storm', async () => {
  expect(lab.config.console.capture).toBe('all');
  await waitFor(async () => (await metric('metal_bmc_console_capture_sessions')) === 2, 30_000, 'two held consoles');
  expect(await metric('metal_bmc_console_capture_machines')).toBe(2);
  // the daemon's status says so per machine
  const doc = (await (await fetch(`http://127.0.0.1:${lab.daemon.opsPort}/v1/status`)).json()) as { bmcs: Array<{ uuid?: string; console: { capture: string } }> };
  expect(doc.bmcs.map((b) => b.console.capture)).toEqual(['held', 'held']);
  lab.fleet.serialStorm('all', 100);
  const logDir = lab.config.console.logDir;
  for (const m of lab.fleet.machines) {
    const lines = async () => (await tailBytes(logDir, m.state.uuid, 1 << 20)).toString('latin1').split('\r\n').slice(0, -1).filter((l) => l.startsWith('storm '));
    await waitFor(async () => (await lines()).length >= 100, 30_000, `storm of ${m.state.uuid}`);
    expect((await lines()).map((l) => parseStormLine(l)?.n)).toEqual(Array.from({ length: 100 }, (_, i) => i + 1));
  }
  await waitFor(async () => (await metric('metal_bmc_console_capture_bytes_total')) > 2 * 100 * 60, 10_000, 'bytes counted');
  expect(await metric('metal_bmc_console_capture_log_bytes')).toBeGreaterThan(2 * 100 * 60);
  // the two SOL sessions run in the two console worker threads (thread ids other than the main thread's 0)
  const sessions = await samples('metal_bmc_console_worker_sessions');
  expect([...sessions.values()].sort()).toEqual([1, 1]);
  for (const labels of sessions.keys()) expect(labels).toMatch(/thread_id="[1-9]\d*"/);
  expect([...(await samples('metal_bmc_console_worker_bytes_total')).values()].reduce((a, b) => a + b, 0)).toBeGreaterThan(2 * 100 * 60);
  // a viewer shares the held session: no second BMC session, the status shows one viewer
  const m = lab.fleet.machines[0]!.state;
  const ws = new WebSocket(`wss://127.0.0.1:${lab.config.console.wsPort}/v1/machine/${m.uuid}/console`, { ca: readFileSync(lab.pki.ca), headers: { authorization: `Bearer ${lab.consoleToken}` } });
  let output = '';
  ws.on('message', (d: Buffer, binary: boolean) => {
    if (binary) output += d.toString('latin1');
  });
  await waitFor(() => output.includes('storm m0 100/100'), 10_000, 'scrollback with the storm');
  expect(lab.fleet.serialStats().activeSol).toBe(2);
  ws.close();
}, 90_000);
