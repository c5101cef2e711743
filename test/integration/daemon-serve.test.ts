/**
 * `metal-bmc serve` as systemd runs it: a child process configured by environment, against the
 * simulated fleet, a real nats-server with JetStream and the metal-api stand-in. SIGTERM while a
 * command runs: the command completes, every BMC session is closed, exit code 0.
 */
import { connect } from '@nats-io/transport-node';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect } from 'vitest';
import { startNatsServer, type NatsServer } from '../../src/lab/nats-server.js';
import { startMetalApiStandIn, type MetalApiStandIn } from '../../src/metalapi/standin.js';
import { redfishSessionKey } from '../../src/outband/redfish-sessions.js';
import type { Fleet } from '../../src/sim/fleet.js';
import { spawnCli } from '../helpers/cli.js';
import { startTestFleet } from '../helpers/fleet.js';
import { withPeers } from '../helpers/peers.js';

const { describe, it } = withPeers('nats-server', 'openssl');

const HMAC = 'serve-test-hmac';
let fleet: Fleet;
let nats: NatsServer;
let api: MetalApiStandIn;
let dir: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'daemon-serve-'));
  fleet = await startTestFleet({ count: 3, leaseFile: join(dir, 'dhcpd.leases') });
  nats = await startNatsServer({ jetstream: true, storeDir: join(dir, 'nats') });
  api = await startMetalApiStandIn({ hmacKey: HMAC });
});
afterAll(async () => {
  await Promise.all([fleet?.close(), nats?.stop(), api?.close()]);
  rmSync(dir, { recursive: true, force: true });
});

function env(): NodeJS.ProcessEnv {
  return {
    METAL_BMC_PARTITION_ID: 'serve',
    METAL_BMC_METAL_API_URL: api.url,
    METAL_BMC_METAL_API_HMAC_KEY: HMAC,
    METAL_BMC_LEASE_FILE: join(dir, 'dhcpd.leases'),
    METAL_BMC_STATE_DIR: join(dir, 'state'),
    METAL_BMC_IPMI_PORT: String(fleet.ipmiPort),
    METAL_BMC_REDFISH_PORT: String(fleet.redfishPort),
    METAL_BMC_IPMI_USER: fleet.user,
    METAL_BMC_IPMI_PASSWORD: fleet.password,
    METAL_BMC_MQ_ADDRESS: nats.url,
    METAL_BMC_HTTP_ADDRESS: '127.0.0.1:0',
    METAL_BMC_SHUTDOWN_TIMEOUT: '30s',
  };
}

describe('metal-bmc serve', () => {
  it('an invalid setting stops startup with one line naming the variable, exit code 2', async () => {
    const child = spawnCli(['serve'], { ...env(), METAL_BMC_ALLOWED_CIDRS: '10.0.0.0/33' });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    const code = await new Promise((r) => child.on('close', r));
    expect(code).toBe(2);
    expect(stderr.trim().split('\n')).toHaveLength(1);
    expect(stderr).toMatch(/METAL_BMC_ALLOWED_CIDRS/);
  });

  it('SIGTERM during a command: the command completes, its sessions close, the report\'s kept Redfish session stays for the next start, exit 0', async () => {
    const child = spawnCli(['serve'], env());
    let log = '';
    child.stdout.on('data', (d) => (log += d));
    child.stderr.on('data', (d) => (log += d));
    const until = async (check: () => boolean, what: string) => {
      const deadline = Date.now() + 20_000;
      while (!check()) {
        if (Date.now() > deadline || child.exitCode !== null) throw new Error(`${what}: ${log.slice(-2000)}`);
        await new Promise((r) => setTimeout(r, 25));
      }
    };
    await until(() => log.includes('consuming machine events') && api.reports.length > 0, 'daemon ready');

    const m = fleet.machines[1]!;
    // the report's read of this BMC left its Redfish session open for the next read (METAL_BMC_REPORT_REDFISH_SESSION_MAX_AGE)
    const kept = fleet.redfish!.openSessions(1);
    expect(kept).toBe(1);
    m.state.faults.delayMs = 150; // every IPMI datagram and Redfish request of this BMC is slow
    const target = m.state.identify;
    const nc = await connect({ servers: nats.url });
    const results = nc.subscribe('serve-machine-result', { max: 1 });
    nc.publish('serve-machine', JSON.stringify({ type: 'command', cmd: { target: m.state.uuid, cmd: target ? 'LED-OFF' : 'LED-ON', ipmi: { address: `${m.state.address}:${fleet.ipmiPort}`, user: fleet.user, password: fleet.password } } }));
    await until(() => fleet.ipmi.activeSessions(1) + fleet.ipmi.pendingSessions(1) + fleet.redfish!.openSessions(1) > kept || m.state.identify !== target, 'command started');
    child.kill('SIGTERM');
    const code = await new Promise((r) => child.on('close', r));
    m.state.faults.delayMs = 0;

    expect(code).toBe(0);
    expect(m.state.identify).toBe(!target);
    for await (const msg of results) expect(JSON.parse(msg.string())).toMatchObject({ ok: true, command: target ? 'LED-OFF' : 'LED-ON' });
    await nc.close();
    expect(fleet.ipmi.activeSessions(1)).toBe(0);
    // the command's session is gone; the report's stays, and the file the next start resumes it from names it
    expect(fleet.redfish!.openSessions(1)).toBe(kept);
    const file = JSON.parse(readFileSync(join(dir, 'state', 'redfish-sessions.json'), 'utf8')) as { sessions: Record<string, { token?: string }> };
    const token = file.sessions[redfishSessionKey(m.state.address, fleet.redfishPort, m.state.mac)]?.token;
    expect(token).toMatch(/^[0-9a-f]{32}$/);
    expect(log).not.toContain(token);
    expect(log).toMatch(/metal-bmc stopped/);
    expect(log).not.toContain(fleet.password);
  });
});
