/**
 * The local lab: everything the daemon talks to, on this machine, and the daemon itself.
 * A simulated fleet with its lease file, Debian's nats-server with JetStream, the metal-api
 * stand-in (checks HMAC, validates against the real swagger, prints what it receives), a
 * throw-away PKI for the console listeners, and `metal-bmc serve` configured against them.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { loadConfig } from '../config/config.js';
import type { Config } from '../config/config.js';
import { startDaemon, type Daemon, type PartFactory } from '../daemon.js';
import type { Logger } from '../log.js';
import { startMetalApiStandIn, type MetalApiStandIn } from '../metalapi/standin.js';
import { startControlServer } from '../sim/control.js';
import { startFleet, type Fleet } from '../sim/fleet.js';
import type { SimVariantName } from '../sim/machine.js';
import { startNatsServer, type NatsServer } from './nats-server.js';
import { createPki, type Pki } from './pki.js';

export interface LabOptions {
  count: number;
  dir: string;
  ipmiPort: number;
  redfishPort: number;
  /** SSH console port of the Dell-like machines (the simulator's default, 22, needs root); the daemon is configured with the fleet's (METAL_BMC_BMC_SSH_PORT) */
  sshPort?: number;
  /** vendor variants of the fleet (default: the simulator's) */
  variants?: readonly SimVariantName[];
  cidr: string;
  consolePort: number;
  consoleWsPort: number;
  logger: Logger;
  parts: PartFactory[];
  /** extra METAL_BMC_* settings (console certificates, ports) */
  env?: Record<string, string>;
  print: (line: string) => void;
}

export interface Lab {
  fleet: Fleet;
  nats: NatsServer;
  metalApi: MetalApiStandIn;
  daemon: Daemon;
  config: Config;
  controlPort: number;
  env: Record<string, string>;
  pki: Pki;
  /** token of the lab's WebSocket console (browsers have no client certificate), new for every lab */
  consoleToken: string;
  stop(): Promise<void>;
}

export const LAB_HMAC_KEY = 'lab-hmac-key-not-secret';
export const LAB_PARTITION = 'lab';

export async function startLab(o: LabOptions): Promise<Lab> {
  const dir = resolve(o.dir);
  mkdirSync(join(dir, 'nats'), { recursive: true });
  const leaseFile = join(dir, 'dhcpd.leases');
  const fleet = await startFleet({ count: o.count, cidr: o.cidr, ipmiPort: o.ipmiPort, redfishPort: o.redfishPort, ...(o.sshPort === undefined ? {} : { sshPort: o.sshPort }), ...(o.variants ? { variants: o.variants } : {}), leaseFile, stateFile: join(dir, 'fleet-state.json'), tlsFile: join(dir, 'fleet-tls.json'), password: 'ADMIN' });
  const stops: Array<() => Promise<unknown>> = [() => fleet.close()];
  const stopAll = async () => {
    for (const s of stops.reverse()) await s().catch(() => undefined);
  };
  try {
    const control = await startControlServer(fleet, 0);
    stops.push(() => control.close());
    const nats = await startNatsServer({ jetstream: true, storeDir: join(dir, 'nats') });
    stops.push(() => nats.stop());
    // GET /v1/machine/{id}/ipmi answers with the fleet's credentials and IPMI port, as metal-api would
    const metalApi = await startMetalApiStandIn({ hmacKey: LAB_HMAC_KEY, credentials: { user: fleet.user, password: fleet.password }, ipmiPort: fleet.ipmiPort });
    stops.push(() => metalApi.close());
    metalApi.on('report', (body: { reports: Record<string, unknown> }, answer?: { created?: string[]; updated?: string[] }) => {
      o.print(`metal-api stand-in: report with ${Object.keys(body.reports).length} machines (created ${answer?.created?.length ?? 0}, updated ${answer?.updated?.length ?? 0})`);
    });
    const pki = await createPki(join(dir, 'pki'));
    const consoleToken = randomBytes(32).toString('hex');
    const env: Record<string, string> = {
      METAL_BMC_CONSOLE_CA_CERT_FILE: pki.ca,
      METAL_BMC_CONSOLE_CERT_FILE: pki.serverCert,
      METAL_BMC_CONSOLE_KEY_FILE: pki.serverKey,
      METAL_BMC_CONSOLE_PORT: String(o.consolePort),
      METAL_BMC_CONSOLE_WS_PORT: String(o.consoleWsPort),
      METAL_BMC_CONSOLE_TOKEN: consoleToken,
      METAL_BMC_CONSOLE_ADDRESS: '127.0.0.1',
      // every machine's console held and logged, as a partition would run it
      METAL_BMC_CONSOLE_CAPTURE: 'all',
      // the BMCs read in a report worker thread, as a management server of three cores or more does
      METAL_BMC_REPORT_WORKERS: '1',
      METAL_BMC_PARTITION_ID: LAB_PARTITION,
      METAL_BMC_METAL_API_URL: metalApi.url,
      METAL_BMC_METAL_API_HMAC_KEY: LAB_HMAC_KEY,
      METAL_BMC_LEASE_FILE: leaseFile,
      METAL_BMC_REPORT_INTERVAL: '1m',
      METAL_BMC_IPMI_PORT: String(fleet.ipmiPort),
      METAL_BMC_REDFISH_PORT: String(fleet.redfishPort),
      // the consoles of Dell-like machines are SSH to their BMC, on the fleet's SSH port
      METAL_BMC_BMC_SSH_PORT: String(fleet.sshPort),
      METAL_BMC_IPMI_USER: fleet.user,
      METAL_BMC_IPMI_PASSWORD: fleet.password,
      METAL_BMC_MQ_ADDRESS: nats.url,
      METAL_BMC_HTTP_ADDRESS: '127.0.0.1:0',
      METAL_BMC_STATE_DIR: join(dir, 'state'),
      ...o.env,
    };
    const config = loadConfig(env);
    const daemon = await startDaemon(config, o.logger, o.parts);
    stops.push(() => daemon.stop());
    return { fleet, nats, metalApi, daemon, config, controlPort: control.port, env, pki, consoleToken, stop: stopAll };
  } catch (err) {
    await stopAll();
    throw err;
  }
}
