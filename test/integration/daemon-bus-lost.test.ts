/**
 * The daemon's NATS connection closed for good (nats.js gives up on it): under `serve` the daemon
 * is told through `onFatal` and stops gracefully before exiting with code 1; the process is not
 * ended abruptly from inside the bus (bus-connection.test.ts covers that default without an owner).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, vi } from 'vitest';
import { loadConfig } from '../../src/config/config.js';
import { startDaemon, type Daemon } from '../../src/daemon.js';
import { startNatsServer, type NatsServer } from '../../src/lab/nats-server.js';
import { startMetalApiStandIn, type MetalApiStandIn } from '../../src/metalapi/standin.js';
import { acquireBus } from '../../src/parts/bus.js';
import { commandsPart } from '../../src/parts/commands.js';
import { captureLog } from '../helpers/log.js';
import { withPeers } from '../helpers/peers.js';
import { waitFor } from '../helpers/wait.js';

const { describe, it } = withPeers('nats-server');

const HMAC_KEY = 'bus-lost-hmac-key';
let api: MetalApiStandIn;
let nats: NatsServer;
let dir: string;
let daemon: Daemon | undefined;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'daemon-bus-lost-'));
  writeFileSync(join(dir, 'dhcpd.leases'), '');
  [api, nats] = await Promise.all([startMetalApiStandIn({ hmacKey: HMAC_KEY }), startNatsServer({ jetstream: true, storeDir: join(dir, 'nats') })]);
});

afterAll(async () => {
  await daemon?.stop();
  await Promise.all([api?.close(), nats?.stop()]);
  rmSync(dir, { recursive: true, force: true });
});

describe('the NATS connection lost for good', () => {
  it('tells the daemon\'s owner once, with the reason, instead of exiting the process', async () => {
    const exit = vi.spyOn(process, 'exit').mockImplementation((() => undefined) as never);
    const log = captureLog();
    const config = loadConfig({
      METAL_BMC_PARTITION_ID: 'bus-lost',
      METAL_BMC_METAL_API_URL: api.url,
      METAL_BMC_METAL_API_HMAC_KEY: HMAC_KEY,
      METAL_BMC_LEASE_FILE: join(dir, 'dhcpd.leases'),
      METAL_BMC_STATE_DIR: join(dir, 'state'),
      METAL_BMC_HTTP_ADDRESS: '127.0.0.1:0',
      METAL_BMC_IPMI_USER: 'ADMIN',
      METAL_BMC_IPMI_PASSWORD: 'secret-password',
      METAL_BMC_MQ_ADDRESS: nats.url,
    });
    const fatal: string[] = [];
    daemon = await startDaemon(config, log.logger, [commandsPart], { onFatal: (why) => fatal.push(why) });
    const lease = acquireBus(daemon.context);
    const bus = await lease.connection();
    // what nats.js does when it gives up on a connection
    await bus.nc.close();
    await waitFor(() => fatal.length === 1, 10_000, 'the owner to be told');
    expect(fatal).toEqual(['the NATS connection closed for good: nats.js will not reconnect it']);
    expect(exit).not.toHaveBeenCalled();
    expect(log.find(/^NATS connection closed for good/)).toHaveLength(1);
    await lease.release();
    await daemon.stop();
    daemon = undefined;
    expect(log.find('metal-bmc stopped')).toHaveLength(1);
    expect(fatal).toHaveLength(1);
    exit.mockRestore();
  }, 60_000);
});
