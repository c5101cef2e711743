/**
 * The end of a NATS connection (src/bus/connection.ts): close() ends it quietly; a connection
 * that nats.js closes by itself will never come back, so the daemon is told (by default it
 * exits with code 1, and systemd's Restart=on-failure starts it again).
 */
import { afterAll, afterEach, beforeAll, expect, vi } from 'vitest';
import { connectBus, EXIT_BUS_LOST } from '../../src/bus/connection.js';
import { captureLog } from '../helpers/log.js';
import { startTestNatsServer, type TestNatsServer } from '../helpers/nats-server.js';
import { waitFor } from '../helpers/wait.js';
import { withPeers } from '../helpers/peers.js';

const { describe, it } = withPeers('nats-server');

let server: TestNatsServer;
beforeAll(async () => {
  server = await startTestNatsServer({ jetstream: false });
});
afterAll(async () => {
  await server?.dispose();
});
afterEach(() => {
  vi.restoreAllMocks();
});

describe('NATS connection end', () => {
  it('close() ends the connection without telling anyone', async () => {
    const log = captureLog();
    const lost: unknown[] = [];
    const bus = await connectBus({ servers: [server.url], logger: log.logger, name: 'asked', onLost: (err) => lost.push(err) });
    await bus.close(1000);
    await waitFor(() => log.find('NATS connection closed').length === 1, 5000, 'the closed line');
    expect(lost).toEqual([]);
    expect(log.lines.filter((l) => (l.level as number) >= 50)).toEqual([]);
  });

  it('a connection closed under the bus is lost: one error line, and the owner is told once', async () => {
    const log = captureLog();
    const lost: unknown[] = [];
    const bus = await connectBus({ servers: [server.url], logger: log.logger, name: 'lost', onLost: (err) => lost.push(err) });
    // what nats.js does when it gives up (as it did after two authorization errors in a row)
    await bus.nc.close();
    await waitFor(() => lost.length === 1, 5000, 'the owner to be told');
    expect(bus.connected()).toBe(false);
    expect(log.find(/^NATS connection closed for good/)).toHaveLength(1);
    expect(log.lines.filter((l) => (l.level as number) >= 50)).toHaveLength(1);
    // a later close() is harmless and tells no one again
    await bus.close(1000);
    expect(lost).toHaveLength(1);
  });

  it('by default the daemon exits with code 1 so that systemd restarts it', async () => {
    const exit = vi.spyOn(process, 'exit').mockImplementation((() => undefined) as never);
    const log = captureLog();
    const bus = await connectBus({ servers: [server.url], logger: log.logger, name: 'exits' });
    await bus.nc.close();
    await waitFor(() => exit.mock.calls.length > 0, 5000, 'process.exit');
    expect(EXIT_BUS_LOST).toBe(1);
    expect(exit.mock.calls).toEqual([[EXIT_BUS_LOST]]);
    expect(log.find(/^NATS connection closed for good: .*exiting so that systemd restarts metal-bmc$/)).toHaveLength(1);
  });
});
