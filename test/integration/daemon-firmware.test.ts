/**
 * UPDATE-FIRMWARE through `metal-bmc serve` (a child process), a real nats-server and the
 * simulated fleet's Redfish multipart push. The simulator's update is made slower than the
 * command deadline with its `firmwareTaskMs` knob (5 s against METAL_BMC_COMMAND_TIMEOUT=2s, the
 * same relation as a 10-minute BIOS flash against the 60 s default, without waiting minutes):
 * the job completes with progress events; a second job for the same machine is refused; the
 * Supermicro push carries the Preserve* options; killing metal-bmc mid-update and starting it
 * again resumes the job: the machine is held and the BMC's task followed to its real end.
 */
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect } from 'vitest';
import { startNatsServer, type NatsServer } from '../../src/lab/nats-server.js';
import { startMetalApiStandIn, type MetalApiStandIn } from '../../src/metalapi/standin.js';
import type { Fleet } from '../../src/sim/fleet.js';
import { spawnCli } from '../helpers/cli.js';
import { startTestFleet } from '../helpers/fleet.js';
import { withPeers } from '../helpers/peers.js';

const { describe, it } = withPeers('nats-server', 'openssl');

const HMAC = 'firmware-test-hmac';
let fleet: Fleet;
let nats: NatsServer;
let api: MetalApiStandIn;
let nc: NatsConnection;
let images: Server;
let imageBase: string;
let dir: string;
const results: Array<Record<string, unknown>> = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'daemon-firmware-'));
  fleet = await startTestFleet({ count: 12, leaseFile: join(dir, 'dhcpd.leases') });
  nats = await startNatsServer({ jetstream: true, storeDir: join(dir, 'nats') });
  api = await startMetalApiStandIn({ hmacKey: HMAC });
  nc = await connect({ servers: nats.url });
  nc.subscribe('fw-machine-result', { callback: (_e, m) => void results.push(m.json()) });
  await nc.flush();
  const image = Buffer.alloc(256 * 1024, 0x42);
  images = createServer((_req, res) => res.writeHead(200, { 'content-length': image.length }).end(image));
  await new Promise<void>((resolve) => images.listen(0, '127.0.0.2', resolve));
  imageBase = `http://127.0.0.2:${(images.address() as AddressInfo).port}/images`;
});
afterAll(async () => {
  images?.close();
  await nc?.close();
  await Promise.all([fleet?.close(), nats?.stop(), api?.close()]);
  rmSync(dir, { recursive: true, force: true });
});

function env(): NodeJS.ProcessEnv {
  return {
    METAL_BMC_PARTITION_ID: 'fw',
    METAL_BMC_METAL_API_URL: api.url,
    METAL_BMC_METAL_API_HMAC_KEY: HMAC,
    METAL_BMC_LEASE_FILE: join(dir, 'dhcpd.leases'),
    METAL_BMC_IPMI_PORT: String(fleet.ipmiPort),
    METAL_BMC_REDFISH_PORT: String(fleet.redfishPort),
    METAL_BMC_IPMI_USER: fleet.user,
    METAL_BMC_IPMI_PASSWORD: fleet.password,
    METAL_BMC_MQ_ADDRESS: nats.url,
    METAL_BMC_HTTP_ADDRESS: '127.0.0.1:0',
    METAL_BMC_COMMAND_TIMEOUT: '2s',
    METAL_BMC_FIRMWARE_TIMEOUT: '2m',
    // the test's image server is on loopback (which only labs and tests may allow), beside but not on metal-api's address
    METAL_BMC_FIRMWARE_URL_ALLOW: '127.0.0.2',
    METAL_BMC_FIRMWARE_ALLOW_LOOPBACK: 'true',
    METAL_BMC_STATE_DIR: join(dir, 'state'),
  };
}

function serve() {
  const child = spawnCli(['serve'], env());
  let log = '';
  child.stdout.on('data', (d) => (log += d));
  child.stderr.on('data', (d) => (log += d));
  const until = async (check: () => boolean, what: string, ms = 30_000) => {
    const deadline = Date.now() + ms;
    while (!check()) {
      if (Date.now() > deadline || child.exitCode !== null) throw new Error(`${what}: ${log.slice(-3000)}`);
      await new Promise((r) => setTimeout(r, 25));
    }
  };
  const exit = (signal: NodeJS.Signals) => {
    const closed = new Promise<number | null>((r) => child.on('close', r));
    child.kill(signal);
    return closed;
  };
  return { child, log: () => log, until, exit };
}

const supermicro = () => fleet.machines.findIndex((m) => m.state.manufacturer === 'Supermicro');

function update(k: number, kind: 'bios' | 'bmc', machineId: string): void {
  const m = fleet.machines[k]!.state;
  const event = { type: 'command', cmd: { target: machineId, cmd: 'UPDATE-FIRMWARE', firmwareupdate: { kind, url: `${imageBase}/${kind}-x11.bin?sig=secret-sig` }, ipmi: { address: `${m.address}:${fleet.ipmiPort}`, user: fleet.user, password: fleet.password } } };
  nc.publish('fw-machine', JSON.stringify(event));
}

const of = (machineId: string) => results.filter((r) => r.machineId === machineId);

describe('UPDATE-FIRMWARE in the background', () => {
  it('outlives the command deadline with progress events, refuses a second job for the machine, sends Supermicro\'s preserve options', async () => {
    const k = supermicro();
    expect(k).toBeGreaterThanOrEqual(0);
    fleet.setFaults([k], { firmwareTaskMs: 5000 });
    const daemon = serve();
    await daemon.until(() => daemon.log().includes('consuming machine events from JetStream'), 'daemon ready');

    const started = Date.now();
    update(k, 'bios', 'fw-slow');
    await daemon.until(() => of('fw-slow').some((r) => r.phase === 'progress' && (r.progress as { state: string }).state === 'Running'), 'BMC task running');
    update(k, 'bmc', 'fw-slow');
    await daemon.until(() => of('fw-slow').some((r) => r.phase === 'refused'), 'second job refused');
    await daemon.until(() => of('fw-slow').some((r) => r.phase === 'completed' || r.phase === 'failed'), 'job done', 60_000);
    const elapsed = Date.now() - started;

    const phases = of('fw-slow').map((r) => r.phase);
    expect(phases[0]).toBe('accepted');
    expect(phases.at(-1)).toBe('completed');
    expect(phases.filter((p) => p === 'progress').length).toBeGreaterThanOrEqual(2);
    // the job ran past the 2 s command deadline: it was not cut by it
    expect(elapsed).toBeGreaterThan(2000);
    const refused = of('fw-slow').find((r) => r.phase === 'refused')!;
    expect(refused).toMatchObject({ ok: false, code: 'BUSY' });
    const done = of('fw-slow').at(-1)!;
    expect(done).toMatchObject({ ok: true, rebootRequired: true, rebootedByMetalBmc: false, job: { kind: 'bios', image: `${imageBase}/bios-x11.bin` } });
    const percents = of('fw-slow').filter((r) => r.phase === 'progress').map((r) => (r.progress as { percent?: number }).percent ?? 0);
    expect(Math.max(...percents)).toBeGreaterThan(0);

    const parameters = fleet.redfish!.requests.updateParameters[k]!;
    expect(parameters.Targets).toEqual(['/redfish/v1/Systems/1/Bios']);
    expect(parameters['@Redfish.OperationApplyTime']).toBe('OnStartUpdateRequest');
    expect(parameters.Oem).toEqual({ Supermicro: { BIOS: expect.objectContaining({ PreserveSETUPCONF: true, PreserveNVRAM: true, PreserveSMBIOS: true, PreserveBOOTCONF: true }) } });
    expect(await daemon.exit('SIGTERM')).toBe(0);
    expect(daemon.log()).not.toContain(fleet.password);
    expect(daemon.log() + JSON.stringify(results)).not.toContain('secret-sig');
  }, 90_000);

  it('killing metal-bmc mid-update and starting it again resumes the job: held, its task followed to the end, reported once', async () => {
    const k = supermicro();
    // Supermicro verifies the pushed image in a first task, then StartUpdate's task flashes it: each this long
    fleet.setFaults([k], { firmwareTaskMs: 6000 });
    const first = serve();
    await first.until(() => first.log().includes('consuming machine events from JetStream'), 'daemon ready');
    update(k, 'bmc', 'fw-killed');
    // the flash's own task runs (its URI is in the state file before its first progress)
    await first.until(() => of('fw-killed').some((r) => r.phase === 'progress' && (r.progress as { state: string }).state === 'Running'), 'BMC task running');
    await first.exit('SIGKILL');

    const second = serve();
    await second.until(() => /firmware update cut off by a restart resumed; watching it to its end/.test(second.log()), 'job resumed');
    await second.until(() => of('fw-killed').some((r) => ['completed', 'failed', 'interrupted'].includes(r.phase as string)), 'resumed job ended', 60_000);
    const ended = of('fw-killed').filter((r) => ['completed', 'failed', 'interrupted'].includes(r.phase as string));
    expect(ended).toEqual([expect.objectContaining({ phase: 'completed', ok: true, rebootRequired: false, job: expect.objectContaining({ kind: 'bmc', state: 'completed' }) })]);
    expect(of('fw-killed').some((r) => r.phase === 'progress' && r.resumed === true)).toBe(true);
    expect(await second.exit('SIGTERM')).toBe(0);
    // a third start has nothing to take up: the state file says completed
    const third = serve();
    await third.until(() => third.log().includes('consuming machine events from JetStream'), 'third start');
    const state = JSON.parse(readFileSync(join(dir, 'state', 'firmware-jobs.json'), 'utf8')) as { jobs: Array<{ machineId: string; state: string }> };
    expect(state.jobs.filter((j) => j.machineId === 'fw-killed').map((j) => j.state)).toEqual(['completed']);
    expect(third.log()).not.toMatch(/firmware update cut off by a restart resumed/);
    await nc.flush();
    expect(of('fw-killed').filter((r) => ['completed', 'failed', 'interrupted'].includes(r.phase as string))).toHaveLength(1);
    expect(await third.exit('SIGTERM')).toBe(0);
    fleet.clearFaults();
  }, 120_000);
});
