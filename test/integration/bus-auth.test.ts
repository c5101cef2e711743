/**
 * NATS credentials as the Go metal-bmc's METAL_BMC_MQ_* settings give them: TLS with a client
 * certificate (the server verifies it), and user/password carried in the address.
 */
import { afterAll, beforeAll, expect } from 'vitest';
import { loadConfig } from '../../src/config/config.js';
import { connectBus } from '../../src/bus/connection.js';
import { startNatsServer, type NatsServer } from '../../src/lab/nats-server.js';
import { createPki, type Pki } from '../../src/lab/pki.js';
import { isBmcError } from '../../src/errors.js';
import { captureLog, type CapturedLog } from '../helpers/log.js';
import { waitFor } from '../helpers/wait.js';
import { withPeers } from '../helpers/peers.js';

const { describe, it } = withPeers('nats-server', 'openssl');

let pki: Pki;
let tlsServer: NatsServer;
let passwordServer: NatsServer;

beforeAll(async () => {
  pki = await createPki();
  tlsServer = await startNatsServer({ tls: { certFile: pki.serverCert, keyFile: pki.serverKey, caFile: pki.ca, verify: true } });
  passwordServer = await startNatsServer({ user: 'metal', password: 'nats-secret-7' });
});
afterAll(async () => {
  await Promise.all([tlsServer?.stop(), passwordServer?.stop()]);
  pki?.remove();
});

function mq(env: Record<string, string>) {
  return loadConfig({ METAL_BMC_PARTITION_ID: 'p', METAL_BMC_METAL_API_URL: 'http://127.0.0.1:1', METAL_BMC_METAL_API_HMAC_KEY: 'k', ...env }).mq;
}

interface Attempt {
  connected: boolean;
  /** what connectBus rejected with (after a refusal the test aborts it: ABORTED) */
  error: unknown;
  log: CapturedLog;
}

/**
 * Connects as the daemon would. connectBus retries a refused connection forever, so a refusal is
 * recognised by its evidence (`refused`: a specific line in the client's or the server's log), and
 * the attempt is then aborted; no fixed wait decides the outcome.
 */
async function attempt(c: ReturnType<typeof mq>, refused: (log: CapturedLog) => boolean): Promise<Attempt> {
  const log = captureLog();
  const ac = new AbortController();
  let settled = false;
  const connecting = connectBus({
    servers: c.servers,
    ...(c.user !== undefined ? { user: c.user } : {}),
    ...(c.password !== undefined ? { password: c.password } : {}),
    tls: { ...(c.caCertFile ? { caFile: c.caCertFile } : {}), ...(c.clientCertFile ? { certFile: c.clientCertFile } : {}), ...(c.clientKeyFile ? { keyFile: c.clientKeyFile } : {}) },
    logger: log.logger,
    name: 'auth-test',
    reconnectTimeWaitMs: 200,
    signal: ac.signal,
  }).finally(() => (settled = true));
  await waitFor(() => settled || refused(log), 20_000, 'the connection or its refusal');
  ac.abort();
  try {
    const bus = await connecting;
    const connected = bus.connected();
    await bus.close();
    return { connected, error: undefined, log };
  } catch (error) {
    return { connected: false, error, log };
  }
}

/** the server logged a new line matching `re` since `before` lines */
function serverLogged(server: NatsServer, re: RegExp): () => boolean {
  const count = () => server.output().split('\n').filter((l) => re.test(l)).length;
  const before = count();
  return () => count() > before;
}

/** the client logged its failed attempt with an error matching `re` */
function clientLogged(re: RegExp): (log: CapturedLog) => boolean {
  return (log) => log.find('cannot connect to NATS; retrying').some((l) => re.test(String((l.err as { message?: unknown }).message)));
}

function expectNoSecrets(a: Attempt): void {
  for (const secret of ['nats-secret-7', 'wrong-secret-3']) {
    expect(a.log.text()).not.toContain(secret);
    expect(String((a.error as Error | undefined)?.message)).not.toContain(secret);
  }
}

describe('NATS authentication', () => {
  it('TLS with the client certificate from METAL_BMC_MQ_* connects; without it the server refuses', async () => {
    const withCert = await attempt(mq({ METAL_BMC_MQ_ADDRESS: tlsServer.url, METAL_BMC_MQ_CA_CERT_FILE: pki.ca, METAL_BMC_MQ_CLIENT_CERT_FILE: pki.clientCert, METAL_BMC_MQ_CLIENT_CERT_KEY_FILE: pki.clientKey }), () => false);
    expect(withCert.connected).toBe(true);

    const noCertRefused = serverLogged(tlsServer, /TLS handshake error: tls: client didn't provide a certificate/);
    const withoutCert = await attempt(mq({ METAL_BMC_MQ_ADDRESS: tlsServer.url, METAL_BMC_MQ_CA_CERT_FILE: pki.ca }), noCertRefused);
    expect(withoutCert.connected).toBe(false);
    expect(noCertRefused()).toBe(true);
    expect(isBmcError(withoutCert.error, 'ABORTED')).toBe(true);

    const otherCaRefused = serverLogged(tlsServer, /TLS handshake error: .*certificate signed by unknown authority/);
    const otherCa = await attempt(mq({ METAL_BMC_MQ_ADDRESS: tlsServer.url, METAL_BMC_MQ_CA_CERT_FILE: pki.ca, METAL_BMC_MQ_CLIENT_CERT_FILE: pki.otherClientCert, METAL_BMC_MQ_CLIENT_CERT_KEY_FILE: pki.otherClientKey }), otherCaRefused);
    expect(otherCa.connected).toBe(false);
    expect(otherCaRefused()).toBe(true);
    expect(isBmcError(otherCa.error, 'ABORTED')).toBe(true);
  });

  it('user and password from the address connect, a wrong password does not, and neither is logged', async () => {
    const port = new URL(passwordServer.url).port;
    const right = await attempt(mq({ METAL_BMC_MQ_ADDRESS: `nats://metal:nats-secret-7@127.0.0.1:${port}` }), () => false);
    expect(right.connected).toBe(true);
    expectNoSecrets(right);

    const violation = clientLogged(/Authorization Violation/);
    const wrong = await attempt(mq({ METAL_BMC_MQ_ADDRESS: `nats://metal:wrong-secret-3@127.0.0.1:${port}` }), violation);
    expect(wrong.connected).toBe(false);
    expect(violation(wrong.log)).toBe(true);
    expect(isBmcError(wrong.error, 'ABORTED')).toBe(true);
    expectNoSecrets(wrong);
  });

  it('keeps reconnecting while a NATS configuration rollout refuses the password, and is connected again once it is accepted', async () => {
    // nats.js by default closes a connection for good after two authorization errors in a row
    const first = await startNatsServer({ user: 'metal', password: 'nats-secret-7' });
    const servers: NatsServer[] = [first];
    const log = captureLog();
    const lost: unknown[] = [];
    const bus = await connectBus({ servers: [first.url], user: 'metal', password: 'nats-secret-7', logger: log.logger, name: 'auth-rollout', reconnectTimeWaitMs: 200, onLost: (err) => lost.push(err) });
    try {
      expect(bus.connected()).toBe(true);
      await first.stop();
      // the server comes back on the same port, for a while with another password for our user
      const refusing = await startNatsServer({ port: first.port, user: 'metal', password: 'wrong-secret-3' });
      servers.push(refusing);
      const refused = () => log.find('NATS error').filter((l) => /Authorization Violation/i.test(String((l.err as { message?: unknown }).message))).length;
      await waitFor(() => refused() >= 3, 20_000, 'three refused reconnects');
      expect(bus.connected()).toBe(false);
      // one error line for the refusal, its repeats at debug level; one line for the disconnect
      expect(log.find('NATS error').filter((l) => l.level === 50)).toHaveLength(1);
      expect(log.find('NATS disconnected')).toHaveLength(1);
      await refusing.stop();
      // and then with the right one again
      servers.push(await startNatsServer({ port: first.port, user: 'metal', password: 'nats-secret-7' }));
      await waitFor(() => bus.connected(), 20_000, 'the connection to come back');
      expect(log.find('NATS reconnected').length).toBeGreaterThan(0);
      await bus.nc.flush();
      expect(lost).toEqual([]);
      expect(log.find(/NATS connection closed/)).toEqual([]);
    } finally {
      await bus.close(1000);
      await Promise.all(servers.map((s) => s.stop()));
    }
    for (const secret of ['nats-secret-7', 'wrong-secret-3']) expect(log.text()).not.toContain(secret);
  });
});
