/**
 * The identify LED of a BMC that does not report it (OpenIPMI's ipmi_sim, mini-lab's BMC: Get
 * Chassis Status without the identify state, Chassis Identify carried out by its chassis_control
 * script): metal-api sets LED-ON when it issues the command, and the daemon's next report must not
 * take that back with LED-OFF. The commands part records what its LED command set in the LED
 * memory the reporter reads. The whole daemon: lease file, report cycles to the metal-api
 * stand-in, the command path over a real nats-server, ipmi_sim as the BMC.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, expect } from 'vitest';
import { loadConfig } from '../../src/config/config.js';
import { startDaemon, type Daemon } from '../../src/daemon.js';
import { renderIscLeases } from '../../src/leases/render.js';
import { startMetalApiStandIn, type MetalApiStandIn } from '../../src/metalapi/standin.js';
import { commandsPart } from '../../src/parts/commands.js';
import { startIpmiSim, type IpmiSim } from '../helpers/ipmisim.js';
import { captureLog } from '../helpers/log.js';
import { startTestNatsServer, type TestNatsServer } from '../helpers/nats-server.js';
import { waitFor } from '../helpers/wait.js';
import { withPeers } from '../helpers/peers.js';

const { describe, it } = withPeers('ipmi_sim', 'ipmitool', 'nats-server');

const HMAC_KEY = 'identify-led-hmac-key';
const PARTITION = 'led-test';
const SIM_BMC_MAC = '02:00:00:00:00:01';

let sim: IpmiSim;
let nats: TestNatsServer;
let api: MetalApiStandIn;
let dir: string;
let daemon: Daemon | undefined;
let client: NatsConnection | undefined;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'daemon-identify-led-'));
  [sim, nats, api] = await Promise.all([startIpmiSim(), startTestNatsServer({ jetstream: true }), startMetalApiStandIn({ hmacKey: HMAC_KEY })]);
});

afterAll(async () => {
  await client?.close();
  await daemon?.stop();
  await Promise.all([sim?.stop(), nats?.dispose(), api?.close()]);
  rmSync(dir, { recursive: true, force: true });
});

const ready = async (port: number) => (await fetch(`http://127.0.0.1:${port}/readyz`)).status === 200;

describe('an identify LED the BMC does not report', () => {
  it('after LED-ON succeeded, the next report says LED-ON (it said LED-OFF before, the default for an unknown LED)', async () => {
    const leaseFile = join(dir, 'dhcpd.leases');
    const now = Date.now();
    writeFileSync(leaseFile, renderIscLeases([{ ip: sim.host, mac: SIM_BMC_MAC, starts: new Date(now - 60_000), ends: new Date(now + 24 * 3600_000), bindingState: 'active', nextBindingState: 'free', hostname: 'bmc-sim' }]));
    const log = captureLog();
    const config = loadConfig({
      METAL_BMC_PARTITION_ID: PARTITION,
      METAL_BMC_METAL_API_URL: api.url,
      METAL_BMC_METAL_API_HMAC_KEY: HMAC_KEY,
      METAL_BMC_LEASE_FILE: leaseFile,
      METAL_BMC_STATE_DIR: join(dir, 'state'),
      METAL_BMC_REPORT_INTERVAL: '1h',
      METAL_BMC_PROTOCOL: 'ipmi',
      METAL_BMC_IPMI_PORT: String(sim.port),
      METAL_BMC_IPMI_USER: sim.user,
      METAL_BMC_IPMI_PASSWORD: sim.password,
      METAL_BMC_BMC_TIMEOUT: '5s',
      METAL_BMC_REPORT_WORKERS: '0',
      METAL_BMC_MQ_ADDRESS: nats.url,
      METAL_BMC_HTTP_ADDRESS: '127.0.0.1:0',
    });
    daemon = await startDaemon(config, log.logger, [commandsPart]);

    // the first report: ipmi_sim does not say its identify state, so LED-OFF goes out
    await waitFor(() => api.reports.length >= 1, 15_000, 'the first report');
    const [uuid] = Object.keys(api.reports[0]!.reports);
    expect(uuid).toBeDefined();
    expect(api.reports[0]!.reports[uuid!]!.IndicatorLEDState).toBe('LED-OFF');
    expect(log.find('BMC report is partial')[0]?.missing).toEqual(expect.arrayContaining(['IndicatorLED: the BMC does not report its identify state']));

    // metal-api issues LED-ON for the machine (and sets its ledstate to LED-ON itself)
    const opsPort = daemon.opsPort;
    await waitFor(async () => await ready(opsPort), 15_000, 'the commands part ready');
    client = await connect({ servers: nats.url });
    const results: Array<Record<string, unknown>> = [];
    client.subscribe(`${PARTITION}-machine-result`, { callback: (_e, m) => void results.push(m.json()) });
    await client.flush();
    const before = sim.chassisLog().length;
    const event = { type: 'command', cmd: { target: uuid, cmd: 'LED-ON', ipmi: { address: `${sim.host}:${sim.port}`, user: sim.user, password: sim.password, mac: SIM_BMC_MAC } } };
    client.publish(`${PARTITION}-machine`, new TextEncoder().encode(JSON.stringify(event)));
    await waitFor(() => results.length === 1, 15_000, 'the command result');
    expect(results[0]).toMatchObject({ machineId: uuid, command: 'LED-ON', ok: true });
    expect(sim.chassisLog().slice(before)).toContain('set identify 0 1');

    // the next report cycle: the LED still cannot be read, and the report says what the command set
    const reports = api.reports.length;
    daemon.reporter.leasesChanged(daemon.leases());
    await waitFor(() => api.reports.length > reports, 15_000, 'the next report');
    expect(api.reports.at(-1)!.reports[uuid!]!.IndicatorLEDState).toBe('LED-ON');
    expect(api.ledStates.get(uuid!)).toBe('LED-ON');
  }, 60_000);
});
