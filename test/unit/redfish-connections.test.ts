/**
 * The connections of one Redfish transport (src/redfish/connections.ts) against an HTTPS server:
 * one connection while answers come quickly, a second only for a request held up by a slow
 * answer (or at once when the report cycle's switch for second connections turns on), a waiting
 * request that is aborted never reaches the BMC, and requests waiting when the connection fails
 * fail with it (undici is not re-entered from its own callback).
 */
import { createServer } from 'node:net';
import { expect } from 'vitest';
import { BmcError } from '../../src/errors.js';
import { createTransport, type HttpTransport, type TransportOptions } from '../../src/redfish/index.js';
import { SecondConnectionSwitch } from '../../src/redfish/second-connection.js';
import { mockupPerTest } from '../helpers/mockup-per-test.js';
import { withPeers } from '../helpers/peers.js';
import { waitFor } from '../helpers/wait.js';

const { describe, it } = withPeers('openssl');

const mock = mockupPerTest();
const { get, countOf, authorization } = mock;

function transport(extra: Partial<TransportOptions> = {}): HttpTransport {
  const t = createTransport({ host: mock.server.host, port: mock.server.port, insecure: true, retryBackoffMs: 10, ...extra });
  t.addSecret(mock.server.password);
  mock.track(t);
  return t;
}


/** Holds every answer for `path` until the returned function is called. */
function hold(path: string): () => void {
  let release!: () => void;
  mock.server.addFault({ path, fault: { kind: 'held', until: new Promise<void>((r) => (release = r)) } });
  return release;
}

/** A transport whose first request (the Chassis, held) is at the BMC: the slow answer the others wait behind. */
async function behindSlowAnswer(extra: Partial<TransportOptions>) {
  const release = hold('/redfish/v1/Chassis');
  const t = transport(extra);
  const slow = get(t, '/redfish/v1/Chassis');
  await waitFor(() => countOf('/redfish/v1/Chassis') === 1, 5000, 'the slow request at the BMC');
  return { t, slow, release };
}

/** Resolves once a request sent after this call, on a connection of its own, has been answered: anything sent before it has reached the server by then. */
async function serverCaughtUp(): Promise<void> {
  const other = createTransport({ host: mock.server.host, port: mock.server.port, insecure: true });
  try {
    await other.request({ method: 'GET', path: '/redfish/v1/', headers: { authorization: authorization() } });
  } finally {
    await other.close(0);
  }
}

describe('Redfish connections to one BMC', () => {
  it('answers that come quickly use one connection for requests sent together', async () => {
    const t = transport({ connections: 2, openConnectionAfterMs: 60_000 });
    const answers = await Promise.all(['/redfish/v1/Systems', '/redfish/v1/Chassis', '/redfish/v1/Managers', '/redfish/v1/'].map((p) => get(t, p)));
    expect(answers.map((a) => a.status)).toEqual([200, 200, 200, 200]);
    expect(mock.server.openConnections()).toBe(1);
  });

  it('a request held up by a slow answer opens the second connection after openConnectionAfterMs, not before', async () => {
    const { t, slow, release } = await behindSlowAnswer({ connections: 2, openConnectionAfterMs: 300 });
    const sent = performance.now();
    const behind = get(t, '/redfish/v1/Systems');
    await waitFor(() => countOf('/redfish/v1/Systems') === 1, 5000, 'the request behind it at the BMC');
    expect(performance.now() - sent).toBeGreaterThanOrEqual(295);
    expect((await behind).status).toBe(200);
    expect(mock.server.openConnections()).toBe(2);
    release();
    expect((await slow).status).toBe(200);
  });

  it("every connection's connect and TLS handshake is a sign of life, the second's too (each worth only what it waited for the loop: report/loop-clock.ts)", async () => {
    let heard = 0;
    const { t, slow, release } = await behindSlowAnswer({ connections: 2, openConnectionAfterMs: 50, onAnswer: () => heard++ });
    expect(heard).toBe(2); // the first connection: TCP connected, TLS handshake done
    const releaseSystems = hold('/redfish/v1/Systems');
    const behind = get(t, '/redfish/v1/Systems');
    await waitFor(() => countOf('/redfish/v1/Systems') === 1, 5000, 'the request behind it at the BMC, over the second connection');
    expect(mock.server.openConnections()).toBe(2);
    expect(heard).toBe(4); // the second connection: TCP connected, TLS handshake done
    releaseSystems();
    release();
    expect((await behind).status).toBe(200);
    expect((await slow).status).toBe(200);
    expect(heard).toBeGreaterThanOrEqual(8); // each answer's head and body
  });

  it('without the wait, a request behind the slow one goes out only when its answer is in, on the same connection', async () => {
    const { t, slow, release } = await behindSlowAnswer({ connections: 2, openConnectionAfterMs: 60_000 });
    const behind = get(t, '/redfish/v1/Systems');
    await serverCaughtUp();
    expect(countOf('/redfish/v1/Systems')).toBe(0);
    release();
    expect((await slow).status).toBe(200);
    expect((await behind).status).toBe(200);
    expect(countOf('/redfish/v1/Systems')).toBe(1);
    expect(mock.server.openConnections()).toBe(1);
  });

  it("a request behind the slow one goes out on a second connection when the transport's switch turns on, not at its wait", async () => {
    const secondConnection = new SecondConnectionSwitch();
    const { t, slow, release } = await behindSlowAnswer({ connections: 2, openConnectionAfterMs: 60_000, secondConnection });
    const behind = get(t, '/redfish/v1/Systems');
    await serverCaughtUp();
    expect(countOf('/redfish/v1/Systems')).toBe(0);
    secondConnection.turnOn();
    expect((await behind).status).toBe(200);
    expect(mock.server.openConnections()).toBe(2);
    release();
    expect((await slow).status).toBe(200);
  });

  it('a request aborted while it waits for a connection never reaches the BMC, and the connection serves the next', async () => {
    const { t, slow, release } = await behindSlowAnswer({ connections: 2, openConnectionAfterMs: 60_000 });
    const abort = new AbortController();
    const waiting = get(t, '/redfish/v1/Systems', abort.signal).catch((e: unknown) => e);
    abort.abort(new Error('caller gave up'));
    expect(((await waiting) as BmcError).code).toBe('ABORTED');
    release();
    expect((await slow).status).toBe(200);
    expect((await get(t, '/redfish/v1/Managers')).status).toBe(200);
    expect(countOf('/redfish/v1/Systems')).toBe(0);
    expect(mock.server.openConnections()).toBe(1);
  });

  it('close() lets a request still waiting for a connection finish, then closes', async () => {
    const { t, slow, release } = await behindSlowAnswer({ connections: 1 });
    const behind = get(t, '/redfish/v1/Systems');
    const closing = t.close(10_000);
    release();
    expect((await slow).status).toBe(200);
    expect((await behind).status).toBe(200);
    await closing;
    await waitFor(() => mock.server.openConnections() === 0, 5000, 'the connection closed');
  });

  it('a connection that cannot be made fails every request waiting for it with the cause, and nothing else', async () => {
    const closedPort = await new Promise<number>((resolve) => {
      const s = createServer().listen(0, '127.0.0.1', () => {
        const { port } = s.address() as { port: number };
        s.close(() => resolve(port));
      });
    });
    const t = createTransport({ host: '127.0.0.1', port: closedPort, insecure: true, retries: 1, retryBackoffMs: 5, openConnectionAfterMs: 60_000 });
    mock.track(t);
    const failures = await Promise.all(Array.from({ length: 4 }, (_, i) => t.request({ method: 'GET', path: `/redfish/v1/${i}` }).catch((e: unknown) => e)));
    for (const err of failures) {
      expect(err).toBeInstanceOf(BmcError);
      expect((err as BmcError).message).toMatch(/ECONNREFUSED/);
    }
  });
});
