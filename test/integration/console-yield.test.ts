/**
 * A held console whose SOL another client takes over, against ipmi_sim (which tells the former
 * owner nothing: our keepalive finds the other session named as the payload's owner). The console
 * yields: its reconnects open without takeover and fail BUSY while the other client holds SOL,
 * the viewer and the capture's gap say so, and it opens again once that client deactivates.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { afterAll, beforeAll, expect } from 'vitest';
import { metalApiConsoleBackend } from '../../src/console/backend.js';
import { createConsoleCapture, type ConsoleCapture } from '../../src/console/capture.js';
import { readHistory } from '../../src/console/capture-read.js';
import { createConsoleHub, type ConsoleHub } from '../../src/console/hub.js';
import type { ClientPort, ConsoleNotice, HubEvent } from '../../src/console/types.js';
import { openSession } from '../../src/ipmi/session.js';
import { openSol } from '../../src/ipmi/sol.js';
import { createMetalApiClient } from '../../src/metalapi/client.js';
import { startMetalApiStandIn, type MetalApiStandIn } from '../../src/metalapi/standin.js';
import { ipmiOutband } from '../../src/outband/ipmi.js';
import { machineIpmi } from '../helpers/console-backend.js';
import { startIpmiSim, type IpmiSim } from '../helpers/ipmisim.js';
import { captureLog } from '../helpers/log.js';
import { withPeers } from '../helpers/peers.js';
import { waitFor } from '../helpers/wait.js';

const { describe, it } = withPeers('ipmi_sim', 'ipmitool');

const MACHINE = 'm-yield';
let sim: IpmiSim;
let standin: MetalApiStandIn;
let hub: ConsoleHub;
let capture: ConsoleCapture;
let dir: string;
const log = captureLog('debug');
const events: HubEvent[] = [];

beforeAll(async () => {
  sim = await startIpmiSim();
  await sim.serial.connected();
  const hmacKey = 'console-yield-key';
  standin = await startMetalApiStandIn({ hmacKey });
  standin.machines.set(MACHINE, machineIpmi(`127.0.0.1:${sim.port}`, sim.user, sim.password));
  const api = createMetalApiClient({ baseUrl: standin.url, hmacKey, retries: 0 });
  // the daemon's backend; a short keepalive, so an idle console finds out soon that SOL is not ours
  const openBackend = metalApiConsoleBackend({
    findIpmiMachine: (id, o) => api.findIpmiMachine(id, o),
    connect: async (t) => ipmiOutband({ host: t.host, port: t.port, user: t.user, password: t.password, cipherSuite: 3, keepaliveMs: 300, retry: { deadlineMs: 3000 } }),
  });
  hub = createConsoleHub({ logger: log.logger, openBackend, reconnect: { initialMs: 200, maxMs: 400, maxAttempts: 100 }, onEvent: (e) => events.push(e) });
  dir = mkdtempSync(join(tmpdir(), 'console-yield-'));
  capture = createConsoleCapture({ hub, dir, fileBytes: 1 << 20, files: 2, logger: log.logger, flushMs: 20, retry: { initialMs: 200, maxMs: 400 } });
}, 30_000);

afterAll(async () => {
  await capture?.close();
  await hub?.close();
  await standin?.close();
  await sim?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function solActive(): Promise<boolean> {
  // Get Payload Activation Status (SOL) through ipmitool: capacity, then a bit per active instance.
  const r = await sim.ipmitool(['raw', '0x06', '0x4a', '0x01']);
  const bytes = r.stdout.trim().split(/\s+/).map((b) => parseInt(b, 16));
  if (r.code !== 0 || bytes.length < 2) throw new Error(`cannot read SOL activation status: ${r.stderr}`);
  return (bytes[1]! & 1) === 1;
}

function collect(stream: Duplex): () => string {
  let text = '';
  stream.on('data', (d: Buffer) => (text += d.toString('latin1')));
  return () => text;
}

function viewer(): ClientPort & { output: () => string; notices: ConsoleNotice[] } {
  let output = '';
  const notices: ConsoleNotice[] = [];
  return {
    identity: { subject: 'CN=viewer', remote: '127.0.0.1:1', transport: 'ws' },
    output: () => output,
    notices,
    send: (data) => ((output += data.toString('latin1')), true),
    notify: (n) => notices.push(n),
    end: () => undefined,
  };
}

const count = (e: HubEvent) => events.filter((x) => x === e).length;
const until = (check: () => boolean | Promise<boolean>, ms = 15_000, what?: string) => waitFor(check, ms, what);

describe('a console whose SOL another client took over', () => {
  it('does not take it back while that client holds SOL (reconnects fail BUSY, told to the viewer and in the capture), and opens again once it deactivated', async () => {
    capture.setMachines([MACHINE]);
    await until(() => capture.held() === 1, 15_000, 'the console held by the capture');
    const v = viewer();
    await hub.join(MACHINE, v);
    sim.serial.write('ours before\r\n');
    await until(() => v.output().includes('ours before'));

    // another client takes SOL over (as `ipmitool sol activate` after `sol deactivate` would)
    const theirSession = await openSession({ host: sim.host, port: sim.port, user: sim.user, password: sim.password, cipherSuite: 3, retry: { deadlineMs: 5000 } });
    const theirs = await openSol(theirSession, { takeOver: true, closeSession: true });
    const theirScreen = collect(theirs);
    await until(() => count('bmc-disconnect') === 1, 15_000, 'our keepalive finds SOL taken');
    await until(() => count('reconnect-failed') >= 2 || count('reconnect') > 0, 15_000, 'two reconnect attempts');
    expect(count('reconnect')).toBe(0);
    expect(await solActive()).toBe(true);
    sim.serial.write('still theirs\r\n');
    await until(() => theirScreen().includes('still theirs'));
    expect(theirs.destroyed).toBe(false);

    const told = v.notices.flatMap((n) => (n.type === 'status' && n.state === 'reconnecting' ? [n.message ?? ''] : []));
    expect(told[0]).toMatch(/another session took the serial console \(.*SOL taken over by another session.*\); not taking it back for 10 min/);
    expect(told.slice(1).every((m) => /another session holds the serial console \(.*already active.*in another session/.test(m))).toBe(true);
    expect(log.find('BMC console taken by another session; reconnecting without taking it back while that session holds it')).toHaveLength(1);
    expect(log.find('BMC console reconnect failed')).toEqual([]);

    // the other client lets go: the next attempt opens, without taking anything over
    await new Promise<void>((resolve) => theirs.end(resolve));
    await until(() => count('reconnect') === 1, 15_000, 'reconnected after the other client let go');
    expect(log.find('BMC console reconnected').at(-1)).toMatchObject({ takeOver: false });
    sim.serial.write('ours again\r\n');
    await until(() => v.output().includes('ours again'));
    const gaps = async () => (await readHistory(dir, MACHINE)).filter((e) => e.kind === 'gap');
    await until(async () => (await gaps()).some((e) => e.what === 'end'), 5000, 'the gap recorded');
    expect(await gaps()).toEqual(expect.arrayContaining([expect.objectContaining({ what: 'start', reason: expect.stringMatching(/another session took the serial console/) }), expect.objectContaining({ what: 'end' })]));
  }, 60_000);
});
