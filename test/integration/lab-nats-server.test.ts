/**
 * The nats-server the lab and the tests start (src/lab/nats-server.ts) is ready only when it says
 * it listens on its port: a port found free can be taken by another process before nats-server
 * binds it, and a connect check alone then passed on that process's socket (every NATS dial
 * afterwards timed out waiting for the server's INFO; seen in CI as a whole test file's clients
 * failing to connect).
 */
import { connect, createServer, type Server } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { startNatsServer } from '../../src/lab/nats-server.js';

const servers: Server[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
});

/** A listener on a loopback port that takes connections and never says a word, as a foreign process would. */
async function silentListener(): Promise<number> {
  const s = createServer((socket) => socket.on('error', () => undefined));
  servers.push(s);
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  return (s.address() as { port: number }).port;
}

describe('startNatsServer', () => {
  it('a port another process holds: refused with nats-server\'s own words, not taken for the server', async () => {
    const port = await silentListener();
    const err = await startNatsServer({ port }).then(
      async (s) => (await s.stop(), undefined),
      (e: unknown) => e as Error,
    );
    expect(err?.message).toMatch(new RegExp(`nats-server did not start on port ${port}`));
    expect(err?.message).toMatch(/address already in use/);
  });

  it('ready means it answers as NATS: its INFO comes on a new connection', async () => {
    const s = await startNatsServer();
    try {
      const info = await new Promise<string>((resolve, reject) => {
        const c = connect(s.port, '127.0.0.1');
        c.once('data', (d: Buffer) => (c.destroy(), resolve(d.toString('utf8'))));
        c.once('error', reject);
      });
      expect(info).toMatch(/^INFO \{/);
    } finally {
      await s.stop();
    }
  });
});
