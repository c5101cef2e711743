/**
 * Stopping the daemon: the report cycles end beside the other parts, not after them. A part may
 * take its whole shutdown timeout (a command still running), and `metal-bmc serve` exits by force
 * shortly after that; the reporter's own ending (session logouts, IPMI Close Session, the report
 * workers' sockets) must not wait behind it.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/config.js';
import { startDaemon, type Daemon, type PartFactory } from '../../src/daemon.js';
import { startMetalApiStandIn, type MetalApiStandIn } from '../../src/metalapi/standin.js';
import { captureLog, type CapturedLog } from '../helpers/log.js';
import { waitFor } from '../helpers/wait.js';

const HMAC_KEY = 'stop-test-hmac-key';
let api: MetalApiStandIn;
let dir: string;
let log: CapturedLog;
let daemon: Daemon | undefined;
let releasePart: (() => void) | undefined;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'daemon-stop-'));
  writeFileSync(join(dir, 'dhcpd.leases'), '');
  api = await startMetalApiStandIn({ hmacKey: HMAC_KEY });
});

afterAll(async () => {
  releasePart?.();
  await daemon?.stop();
  await api?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('stopping the daemon', () => {
  it('ends the report cycles, and stops every other part, while a part is still stopping', async () => {
    log = captureLog();
    const config = loadConfig({
      METAL_BMC_PARTITION_ID: 'test-partition',
      METAL_BMC_METAL_API_URL: api.url,
      METAL_BMC_METAL_API_HMAC_KEY: HMAC_KEY,
      METAL_BMC_LEASE_FILE: join(dir, 'dhcpd.leases'),
      METAL_BMC_STATE_DIR: join(dir, 'state'),
      METAL_BMC_HTTP_ADDRESS: '127.0.0.1:0',
      METAL_BMC_IPMI_USER: 'ADMIN',
      METAL_BMC_IPMI_PASSWORD: 'secret-password',
    });
    let partStopping = false;
    const slowPart: PartFactory = async () => ({
      name: 'slow',
      stop: () => {
        partStopping = true;
        return new Promise<void>((resolve) => (releasePart = resolve));
      },
    });
    // a second part (the commands part comes before the console in the daemon's list) is told to
    // stop while the first is still stopping: one after another, it went on taking commands meanwhile
    let secondStopping = false;
    const second: PartFactory = async () => ({ name: 'second', stop: async () => void (secondStopping = true) });
    daemon = await startDaemon(config, log.logger, [second, slowPart]);
    const stopping = daemon.stop();
    await waitFor(() => log.find('report cycles stopped').length === 1, 10_000, 'the report cycles stopped');
    expect(partStopping).toBe(true);
    expect(secondStopping).toBe(true);
    expect(log.find('metal-bmc stopped')).toHaveLength(0);
    releasePart!();
    await stopping;
    expect(log.find('metal-bmc stopped')).toHaveLength(1);
  });

  it('a lease file whose folder is missing at start: the error is logged once and readiness names it', async () => {
    const own = captureLog();
    const config = loadConfig({
      METAL_BMC_PARTITION_ID: 'test-partition',
      METAL_BMC_METAL_API_URL: api.url,
      METAL_BMC_METAL_API_HMAC_KEY: HMAC_KEY,
      METAL_BMC_LEASE_FILE: join(dir, 'no-such-folder', 'dhcpd.leases'),
      METAL_BMC_STATE_DIR: join(dir, 'state-2'),
      METAL_BMC_HTTP_ADDRESS: '127.0.0.1:0',
      METAL_BMC_IPMI_USER: 'ADMIN',
      METAL_BMC_IPMI_PASSWORD: 'secret-password',
    });
    const d = await startDaemon(config, own.logger, []);
    try {
      await waitFor(() => own.find('cannot use the lease file; keeping the last good view').length > 0, 10_000, 'the lease file error logged');
      const ready = await fetch(`http://127.0.0.1:${d.opsPort}/readyz`);
      expect(ready.status).toBe(503);
      // the error itself, not "not read yet": the first error comes before watchLeases() returned
      expect(await ready.text()).toMatch(/leases.*no-such-folder/s);
    } finally {
      await d.stop();
    }
  });
});
