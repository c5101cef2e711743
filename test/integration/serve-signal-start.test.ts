/**
 * `metal-bmc serve` asked to stop while it is still starting. The start is held at a state file
 * that is a FIFO (the Redfish session file, read while the daemon starts), as a slow state disk
 * would hold it, until the test writes to it; NATS is never reachable (the daemon connects to it
 * in the background). A SIGTERM there used to end the process at once, Node's default before
 * `serve` set its handlers after the start: the report cycle that began meanwhile cut off.
 */
import { execFileSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { constants, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnCli } from '../helpers/cli.js';
import { freeTcpPort } from '../helpers/ports.js';
import { waitFor } from '../helpers/wait.js';

let dir: string;
let closedPort: number;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'serve-signal-start-'));
  writeFileSync(join(dir, 'dhcpd.leases'), '');
  // free now, and nothing listens there: metal-api and NATS never answer
  closedPort = await freeTcpPort();
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A daemon whose start waits at its Redfish session file (a FIFO) until `release()` writes it. */
function startHeldDaemon(name: string) {
  const stateDir = join(dir, name);
  mkdirSync(stateDir);
  const fifo = join(stateDir, 'redfish-sessions.json');
  execFileSync('mkfifo', [fifo]);
  const child: ChildProcessWithoutNullStreams = spawnCli(['serve'], {
    METAL_BMC_PARTITION_ID: 'signal-start',
    METAL_BMC_METAL_API_URL: `http://127.0.0.1:${closedPort}`,
    METAL_BMC_METAL_API_HMAC_KEY: 'signal-start-hmac',
    METAL_BMC_LEASE_FILE: join(dir, 'dhcpd.leases'),
    METAL_BMC_STATE_DIR: stateDir,
    METAL_BMC_HTTP_ADDRESS: '127.0.0.1:0',
    METAL_BMC_IPMI_USER: 'ADMIN',
    METAL_BMC_IPMI_PASSWORD: 'secret-password',
    METAL_BMC_MQ_ADDRESS: `nats://127.0.0.1:${closedPort}`,
    METAL_BMC_SHUTDOWN_TIMEOUT: '10s',
  });
  let log = '';
  child.stdout.on('data', (d) => (log += d));
  child.stderr.on('data', (d) => (log += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('close', (code, signal) => resolve({ code, signal })));
  let gone = false;
  void exited.then(() => (gone = true));
  /**
   * Writes the session file once the daemon reads it (a writer that does not wait: ENXIO while
   * no reader has it open), or gives up when the daemon is gone.
   */
  const release = () =>
    waitFor(async () => {
      if (gone) return true;
      try {
        const handle = await open(fifo, constants.O_WRONLY | constants.O_NONBLOCK);
        await handle.writeFile('{"version":1,"sessions":{}}');
        await handle.close();
        return true;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENXIO') throw err;
        return false;
      }
    }, 20_000, 'the daemon reading its Redfish session file');
  const starting = () => waitFor(() => log.includes('"msg":"metal-bmc starting"') || gone, 20_000, 'the daemon starting');
  return { child, log: () => log, exited, release, starting };
}

const messages = (log: string) =>
  log
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => (JSON.parse(line) as { msg: string }).msg);

describe('metal-bmc serve, a signal during the start', () => {
  it('SIGTERM while it starts: the start finishes, everything started is stopped, exit 0', async () => {
    const d = startHeldDaemon('one-signal');
    await d.starting();
    d.child.kill('SIGTERM');
    await d.release();
    const exit = await d.exited;
    expect(exit, d.log().slice(-2000)).toEqual({ code: 0, signal: null });
    const said = messages(d.log());
    expect(said).toContain('shutting down');
    expect(said.at(-1)).toBe('metal-bmc stopped');
    expect(said.indexOf('report cycles stopped')).toBeGreaterThan(said.indexOf('shutting down'));
  });
});
