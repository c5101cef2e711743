/**
 * Faults under the console: a BMC that stops answering mid-session (ipmi_sim killed). Its
 * clients are told, reconnects are tried and given up, other machines' consoles are unaffected,
 * and the listeners keep serving.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, expect } from 'vitest';
import WebSocket from 'ws';
import { startConsoleServers, type ConsoleServers } from '../../src/console/index.js';
import type { MetalApiStandIn } from '../../src/metalapi/standin.js';
import { machineIpmi, startConsoleBackend } from '../helpers/console-backend.js';
import { startIpmiSim, type IpmiSim } from '../helpers/ipmisim.js';
import { captureLog, type CapturedLog } from '../helpers/log.js';
import { createPki, loopbackConsoleListeners, type Pki } from '../helpers/pki.js';
import { waitFor } from '../helpers/wait.js';
import { httpsGetStatus } from '../helpers/https.js';
import { withPeers } from '../helpers/peers.js';

const { describe, it } = withPeers('ipmi_sim', 'ipmitool', 'openssl');

const DYING = 'dead0000-88f6-5390-8154-fa53d93a3313';
const HEALTHY = 'a11ce000-88f6-5390-8154-fa53d93a3313';
let pki: Pki;
let dying: IpmiSim;
let healthy: IpmiSim;
let standin: MetalApiStandIn;
let servers: ConsoleServers;
let log: CapturedLog;
let dyingStopped = false;

beforeAll(async () => {
  [pki, dying, healthy] = await Promise.all([createPki(), startIpmiSim(), startIpmiSim()]);
  await Promise.all([dying.serial.connected(), healthy.serial.connected()]);
  let openBackend;
  ({ standin, openBackend } = await startConsoleBackend(
    {
      [DYING]: machineIpmi(`127.0.0.1:${dying.port}`, dying.user, dying.password),
      [HEALTHY]: machineIpmi(`127.0.0.1:${healthy.port}`, healthy.user, healthy.password),
    },
    1000,
  ));
  log = captureLog();
  servers = await startConsoleServers({
    ...loopbackConsoleListeners(pki),
    openBackend,
    logger: log.logger,
    hub: { reconnect: { initialMs: 200, maxMs: 400, maxAttempts: 2 } },
  });
});

afterAll(async () => {
  await servers?.close();
  await standin?.close();
  await healthy?.stop();
  // the helper's stop() must run once only (a second call waits for an exit that already happened)
  if (!dyingStopped) await dying?.stop();
  pki?.remove();
});

interface Client {
  ws: WebSocket;
  output: () => string;
  messages: Array<Record<string, unknown>>;
  closed: Promise<number>;
}

function connect(machineId: string): Client {
  const ws = new WebSocket(`wss://127.0.0.1:${servers.wsPort}/v1/machine/${machineId}/console`, {
    ca: readFileSync(pki.ca),
    cert: readFileSync(pki.clientCert),
    key: readFileSync(pki.clientKey),
  });
  let output = '';
  const messages: Array<Record<string, unknown>> = [];
  ws.on('message', (data: Buffer, isBinary: boolean) => {
    if (isBinary) output += data.toString('latin1');
    else messages.push(JSON.parse(data.toString()) as Record<string, unknown>);
  });
  ws.on('error', () => undefined);
  return { ws, output: () => output, messages, closed: new Promise((resolve) => ws.on('close', (code) => resolve(code))) };
}

const until = (check: () => boolean | Promise<boolean>, ms = 10_000, what = 'condition') => waitFor(check, ms, what);

const joined = (c: Client) => until(() => c.messages.some((m) => m.type === 'status'), 10_000, 'joined');

function pageStatus(): Promise<number> {
  return httpsGetStatus({ host: '127.0.0.1', port: servers.wsPort, path: `/console/${HEALTHY}`, ca: readFileSync(pki.ca), cert: readFileSync(pki.clientCert), key: readFileSync(pki.clientKey) });
}

describe('console faults', () => {
  it('a BMC that stops answering mid-session: its clients are told, other consoles carry on, the listeners stay healthy', async () => {
    const victim = connect(DYING);
    const bystander = connect(HEALTHY);
    await Promise.all([joined(victim), joined(bystander)]);
    dying.serial.write('dying machine up\r\n');
    await until(() => victim.output().includes('dying machine up'), 10_000, 'victim output');

    await dying.stop();
    dyingStopped = true;
    // Typing makes SOL notice: its packet is never acknowledged.
    victim.ws.send(Buffer.from('x'));
    await until(() => victim.messages.some((m) => m.type === 'status' && m.state === 'reconnecting' && /BMC connection lost/.test(String(m.message))), 15_000, 'victim told of the loss');

    // meanwhile the other machine's console is untouched, and new clients and pages are served
    healthy.serial.write('healthy machine output\r\n');
    await until(() => bystander.output().includes('healthy machine output'), 10_000, 'bystander output');
    const newcomer = connect(HEALTHY);
    await joined(newcomer);
    expect(newcomer.output()).toContain('healthy machine output');
    expect(await pageStatus()).toBe(200);

    // reconnects fail against the dead BMC; after the configured attempts the victim is closed with an error
    expect(await victim.closed).toBe(1011);
    const closed = victim.messages.find((m) => m.type === 'closed');
    expect(closed).toMatchObject({ error: true });
    expect(String(closed?.message)).toMatch(/gave up after 2 attempts/);
    expect(log.find('BMC console lost').length).toBe(1);
    expect(log.find('BMC console reconnect failed').length).toBe(2);

    bystander.ws.send(Buffer.from('still typing\r'));
    await until(() => healthy.serial.received().toString('latin1').includes('still typing\r'), 10_000, 'bystander input');
    bystander.ws.close();
    newcomer.ws.close();
    await until(() => servers.hub.sessionCount() === 0, 10_000, 'all closed');
  });

  it('close() tells the clients, deactivates SOL on the BMC and stops the listeners', async () => {
    const c = connect(HEALTHY);
    await joined(c);
    await servers.close();
    expect(await c.closed).toBe(1000);
    expect(c.messages.find((m) => m.type === 'closed')).toMatchObject({ message: 'metal-bmc is shutting down', error: false });
    const r = await healthy.ipmitool(['raw', '0x06', '0x4a', '0x01']);
    expect(parseInt(r.stdout.trim().split(/\s+/)[1] ?? 'ff', 16) & 1).toBe(0);
    await expect(pageStatus()).rejects.toThrow();
  });
});
