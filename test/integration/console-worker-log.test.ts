/**
 * IPMI workarounds of SOL sessions in console worker threads reach the daemon's log
 * (src/console/worker-log.ts): a console opened in a worker on a simulated BMC that names its SOL
 * port in network byte order (src/sim/quirks-ipmi.ts `ipmi-sol-port-swapped`) puts the quirk's
 * line into the main thread's logger, with the machine id and the worker's thread id, once per
 * BMC and quirk however often the console is opened.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createConsoleWorkerPool, type ConsoleWorkerPool } from '../../src/console/worker-pool.js';
import type { Fleet } from '../../src/sim/fleet.js';
import { startTestFleet } from '../helpers/fleet.js';
import { freeUdpPort } from '../helpers/ports.js';
import { captureLog } from '../helpers/log.js';
import { waitFor } from '../helpers/wait.js';

let fleet: Fleet;
let pool: ConsoleWorkerPool;
const log = captureLog('debug');

/**
 * A free UDP port whose two bytes differ. On a port such as 0x9A9A the swapped port is the port
 * itself: the BMC's quirk cannot be seen, and rightly nothing is logged (one CI run in about 256).
 */
async function portWithDistinctBytes(): Promise<number> {
  for (;;) {
    const port = await freeUdpPort();
    if (port >> 8 !== (port & 0xff)) return port;
  }
}

beforeAll(async () => {
  fleet = await startTestFleet({ count: 1, redfish: false, ipmiPort: await portWithDistinctBytes() });
  fleet.machines[0]!.state.quirks = new Set(['ipmi-sol-port-swapped']);
  pool = createConsoleWorkerPool({ workers: 1, logger: log.logger });
}, 60_000);

afterAll(async () => {
  await pool?.close();
  await fleet?.close();
});

it('logs the SOL port quirk of a worker\'s session once, with the machine and the worker thread', async () => {
  const m = fleet.machines[0]!;
  const target = { host: m.state.address, port: fleet.ipmiPort, user: fleet.user, password: fleet.password, cipherSuite: 17, timeoutMs: 10_000, machineId: 'machine-0' };
  const quirkLines = () => log.lines.filter((l) => l.quirk === 'sol-port');
  for (let round = 0; round < 2; round++) {
    const stream = await pool.open(target, new AbortController().signal, true);
    stream.on('error', () => undefined);
    // the worker posts a session's log records before it says `opened`: they are logged by now
    expect(quirkLines()).toHaveLength(1);
    const closed = new Promise((resolve) => stream.once('close', resolve));
    stream.destroy();
    await closed;
    // the worker's session is gone before the next one opens (one SOL payload per BMC)
    await waitFor(() => pool.stats()[0]!.sessions === 0, 10_000, 'the console closed');
  }
  // once per BMC and quirk: the second session's workaround is no second line
  const [first] = quirkLines();
  expect(first).toMatchObject({ level: 40, module: 'console-workers', bmc: m.state.address, machineId: 'machine-0', worker: 0, threadId: pool.stats()[0]!.threadId });
  expect(String(first!.msg)).toContain('network byte order');
  expect(pool.stats()[0]!.threadId).toBeGreaterThan(0);
  expect(log.text()).not.toContain(fleet.password);
}, 60_000);
