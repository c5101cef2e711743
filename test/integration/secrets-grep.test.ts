/**
 * No secret in any output. `metal-bmc serve` runs as a child process with every secret the
 * configuration holds (BMC password, metal-api HMAC key, NATS password and token, console token) and is led
 * through every error path reachable here: a BMC refusing the password, a dead BMC, metal-api
 * answering 500 and 403, NATS refusing a token and a password, an UPDATE-FIRMWARE refused by the URL
 * allow-list and one whose BMC is dead (its image URL carries a token), a machine event carrying
 * its own password to a BMC that refuses it, a console request with a wrong token, and a
 * configuration error. Then every secret is looked for in all of it: stdout, stderr, the log,
 * result events on NATS and the console's error answers. Result events and console errors carry
 * no internal URL and no query string.
 */
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { request } from 'node:https';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect } from 'vitest';
import { createPki, type Pki } from '../../src/lab/pki.js';
import { startNatsServer, type NatsServer } from '../../src/lab/nats-server.js';
import { startMetalApiStandIn, type MetalApiStandIn } from '../../src/metalapi/standin.js';
import type { Fleet } from '../../src/sim/fleet.js';
import { runCli, spawnCli } from '../helpers/cli.js';
import { startTestFleet } from '../helpers/fleet.js';
import { withPeers } from '../helpers/peers.js';
import { waitFor } from '../helpers/wait.js';

const { describe, it } = withPeers('nats-server', 'openssl');

const SECRETS = {
  bmcPassword: 'bmc-pw-Q7xK2mZp9',
  eventPassword: 'event-pw-W3nR8vLs5',
  hmacKey: 'hmac-key-T4cJ6yHd1',
  natsPassword: 'nats-pw-F9gB2kXq7',
  natsToken: 'nats-token-D8sL3fGw6',
  consoleToken: 'console-token-M5pV8wZt3-0123456789abcdef',
  firmwareToken: 'fw-token-N2hD7rYc4',
} as const;

let fleet: Fleet;
let nats: NatsServer;
let api: MetalApiStandIn;
let pki: Pki;
let dir: string;
let metalApi: NatsConnection;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'secrets-grep-'));
  fleet = await startTestFleet({ count: 3, leaseFile: join(dir, 'dhcpd.leases'), password: SECRETS.bmcPassword });
  nats = await startNatsServer({ jetstream: true, storeDir: join(dir, 'nats'), user: 'metal', password: SECRETS.natsPassword });
  // metal-api answers the first two requests with 500
  api = await startMetalApiStandIn({ hmacKey: SECRETS.hmacKey, failNext: { count: 2, status: 500 } });
  pki = await createPki(join(dir, 'pki'));
  metalApi = await connect({ servers: `127.0.0.1:${nats.port}`, user: 'metal', pass: SECRETS.natsPassword });
});
afterAll(async () => {
  await metalApi?.close();
  await Promise.all([fleet?.close(), nats?.stop(), api?.close()]);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function env(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return {
    METAL_BMC_PARTITION_ID: 'secrets',
    METAL_BMC_METAL_API_URL: api.url,
    METAL_BMC_METAL_API_HMAC_KEY: SECRETS.hmacKey,
    METAL_BMC_LEASE_FILE: join(dir, 'dhcpd.leases'),
    METAL_BMC_STATE_DIR: join(dir, 'state'),
    METAL_BMC_IPMI_PORT: String(fleet.ipmiPort),
    METAL_BMC_REDFISH_PORT: String(fleet.redfishPort),
    METAL_BMC_IPMI_USER: fleet.user,
    METAL_BMC_IPMI_PASSWORD: SECRETS.bmcPassword,
    METAL_BMC_MQ_ADDRESS: `nats://metal:${SECRETS.natsPassword}@127.0.0.1:${nats.port}`,
    METAL_BMC_HTTP_ADDRESS: '127.0.0.1:0',
    METAL_BMC_BMC_TIMEOUT: '3s',
    METAL_BMC_COMMAND_TIMEOUT: '4s',
    METAL_BMC_REPORT_INTERVAL: '2s',
    METAL_BMC_CONSOLE_ADDRESS: '127.0.0.1',
    METAL_BMC_CONSOLE_PORT: '0',
    METAL_BMC_CONSOLE_WS_PORT: '0',
    METAL_BMC_CONSOLE_CA_CERT_FILE: pki.ca,
    METAL_BMC_CONSOLE_CERT_FILE: pki.serverCert,
    METAL_BMC_CONSOLE_KEY_FILE: pki.serverKey,
    METAL_BMC_CONSOLE_TOKEN: SECRETS.consoleToken,
    METAL_BMC_FIRMWARE_URL_ALLOW: 'https://images.example.org/',
    METAL_BMC_LOG_LEVEL: 'debug',
    ...extra,
  };
}

/** Runs `serve` until `done` holds on its output, then stops it; returns everything it wrote. */
async function serve(extra: NodeJS.ProcessEnv, done: (out: string) => boolean | Promise<boolean>, during?: (out: () => string) => Promise<void>): Promise<string> {
  const child = spawnCli(['serve'], env(extra));
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  const closed = new Promise((resolve) => child.on('close', resolve));
  try {
    await during?.(() => out);
    await waitFor(async () => child.exitCode !== null || (await done(out)), 40_000, 'the error paths', 50);
  } finally {
    child.kill('SIGTERM');
    await closed;
  }
  return out;
}

function wsPort(out: string): number {
  const line = out.split('\n').find((l) => l.includes('console WebSocket listener started'));
  return line ? (JSON.parse(line) as { port: number }).port : 0;
}

function consoleAnswer(port: number, headers: Record<string, string>, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, headers, ca: pki.ca, rejectUnauthorized: false }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

const machineEvent = (i: number, cmd: string, extra: object = {}, ipmiExtra: object = {}) => {
  const m = fleet.machines[i]!.state;
  return { type: 'command', new: `m${i}`, cmd: { target: `m${i}`, cmd, ipmi: { address: `${m.address}:${fleet.ipmiPort}`, user: fleet.user, mac: m.mac, ...ipmiExtra }, ...extra } };
};

describe('secrets in output', () => {
  // every error path one after another, a dead BMC's deadline among them: ~27-31 s with three test files on two cores
  it('no secret appears in any output of any error path, and results and console errors carry no internal URL or query', async () => {
    fleet.setFaults([1], { wrongCredentials: true });
    fleet.setFaults([2], { noAnswer: true });
    const results: string[] = [];
    const sub = metalApi.subscribe('secrets-machine-result', { callback: (_e, m) => void results.push(m.string()) });
    await metalApi.flush();
    const consoleAnswers: string[] = [];
    const enc = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));

    const main = await serve(
      {},
      (out) => results.length >= 4 && out.includes('cannot read BMC') && api.reports.length > 0 && consoleAnswers.length >= 3,
      async (out) => {
        await waitFor(() => out().includes('consuming machine events') && wsPort(out()) > 0, 30_000, 'daemon ready');
        const publish = (v: unknown) => metalApi.publish('secrets-machine', enc(v));
        // a BMC that refuses the password, with the event's own password
        publish(machineEvent(1, 'ON', {}, { password: SECRETS.eventPassword }));
        // a dead BMC
        publish(machineEvent(2, 'OFF'));
        // firmware from a place outside the allow-list, and from an allowed one for a dead BMC; both URLs carry a token
        publish(machineEvent(0, 'UPDATE-FIRMWARE', { firmwareupdate: { kind: 'bios', url: `https://intranet.example.org/bios.bin?token=${SECRETS.firmwareToken}` } }));
        publish(machineEvent(2, 'UPDATE-FIRMWARE', { firmwareupdate: { kind: 'bmc', url: `https://images.example.org/bmc.bin?token=${SECRETS.firmwareToken}` } }));
        // console: a wrong token, a truncated right one, the page with a wrong ?token=
        const port = wsPort(out());
        for (const [headers, path] of [
          [{ authorization: 'Bearer wrong-token-0123456789abcdef0123456789' }, '/console/m0'],
          [{ authorization: `Bearer ${SECRETS.consoleToken.slice(0, -1)}` }, '/console/m0'],
          [{}, `/console/m0?token=${SECRETS.consoleToken}x`],
        ] as const) {
          const a = await consoleAnswer(port, headers, path);
          consoleAnswers.push(`${a.status} ${a.body}`);
        }
      },
    );
    sub.unsubscribe();

    // NATS refusing a token and metal-api refusing the HMAC key (403); then NATS refusing a password
    const refused = await serve({ METAL_BMC_MQ_ADDRESS: `nats://${SECRETS.natsToken}@127.0.0.1:${nats.port}`, METAL_BMC_METAL_API_HMAC_KEY: `${SECRETS.hmacKey}-wrong` }, (out) => out.includes('Authorization Violation') && /HTTP 403/.test(out));
    const wrongPassword = await serve({ METAL_BMC_MQ_ADDRESS: `nats://metal:${SECRETS.natsPassword}-wrong@127.0.0.1:${nats.port}` }, (out) => out.includes('Authorization Violation'));
    // a configuration error, with every secret in the environment
    const badConfig = await runCli(['serve'], { env: env({ METAL_BMC_ALLOWED_CIDRS: '10.0.0.0/33' }) });
    expect(badConfig.code).toBe(2);

    // the paths were taken
    expect(refused).toContain('Authorization Violation');
    expect(refused).toMatch(/HTTP 403/);
    expect(wrongPassword).toContain('Authorization Violation');
    expect(main).toMatch(/cannot read BMC/);
    expect(api.requests.some((r) => r.status === 500)).toBe(true);
    expect(results.some((r) => r.includes('AUTH_FAILED') || r.includes('UNTRUSTED'))).toBe(true);
    expect(results.some((r) => r.includes('"phase":"refused"'))).toBe(true);
    expect(consoleAnswers.every((a) => /^40[13]|^429/.test(a))).toBe(true);

    const outputs = { main, refused, wrongPassword, badConfig: badConfig.stdout + badConfig.stderr, results: results.join('\n'), console: consoleAnswers.join('\n') };
    const secrets = [...Object.values(SECRETS), Buffer.from(`${fleet.user}:${SECRETS.bmcPassword}`).toString('base64'), Buffer.from(`${fleet.user}:${SECRETS.eventPassword}`).toString('base64')];
    for (const [name, text] of Object.entries(outputs)) {
      for (const secret of secrets) expect({ output: name, leaks: text.includes(secret) }).toEqual({ output: name, leaks: false });
    }
    // results and console errors: no query strings, no metal-api or BMC URLs
    for (const text of [outputs.results, outputs.console]) {
      expect(text).not.toMatch(/\?[A-Za-z_]+=/);
      expect(text).not.toContain(api.url);
      expect(text).not.toMatch(/https?:\/\/127\./);
    }
  }, 90_000);
});
