/**
 * NATS credentials as the Go metal-bmc's METAL_BMC_MQ_* settings give them: TLS with a client
 * certificate (the server verifies it), and user/password carried in the address.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/config.js';
import { connectBus } from '../../src/bus/connection.js';
import { startNatsServer, type NatsServer } from '../../src/lab/nats-server.js';
import { createPki, type Pki } from '../../src/lab/pki.js';
import { captureLog } from '../helpers/log.js';

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

async function tryConnect(c: ReturnType<typeof mq>, ms = 2500): Promise<boolean> {
  const log = captureLog();
  const signal = AbortSignal.timeout(ms);
  try {
    const bus = await connectBus({
      servers: c.servers,
      ...(c.user !== undefined ? { user: c.user } : {}),
      ...(c.password !== undefined ? { password: c.password } : {}),
      tls: { ...(c.caCertFile ? { caFile: c.caCertFile } : {}), ...(c.clientCertFile ? { certFile: c.clientCertFile } : {}), ...(c.clientKeyFile ? { keyFile: c.clientKeyFile } : {}) },
      logger: log.logger,
      name: 'auth-test',
      reconnectTimeWaitMs: 200,
      signal,
    });
    const ok = bus.connected();
    await bus.close();
    expect(log.text()).not.toContain('nats-secret-7');
    return ok;
  } catch {
    return false;
  }
}

describe('NATS authentication', () => {
  it('TLS with the client certificate from METAL_BMC_MQ_* connects; without it the server refuses', async () => {
    const withCert = mq({ METAL_BMC_MQ_ADDRESS: tlsServer.url, METAL_BMC_MQ_CA_CERT_FILE: pki.ca, METAL_BMC_MQ_CLIENT_CERT_FILE: pki.clientCert, METAL_BMC_MQ_CLIENT_CERT_KEY_FILE: pki.clientKey });
    expect(await tryConnect(withCert)).toBe(true);
    const withoutCert = mq({ METAL_BMC_MQ_ADDRESS: tlsServer.url, METAL_BMC_MQ_CA_CERT_FILE: pki.ca });
    expect(await tryConnect(withoutCert)).toBe(false);
    const otherCa = mq({ METAL_BMC_MQ_ADDRESS: tlsServer.url, METAL_BMC_MQ_CA_CERT_FILE: pki.ca, METAL_BMC_MQ_CLIENT_CERT_FILE: pki.otherClientCert, METAL_BMC_MQ_CLIENT_CERT_KEY_FILE: pki.otherClientKey });
    expect(await tryConnect(otherCa)).toBe(false);
  });

  it('user and password from the address connect, a wrong password does not, and neither is logged', async () => {
    const port = new URL(passwordServer.url).port;
    expect(await tryConnect(mq({ METAL_BMC_MQ_ADDRESS: `nats://metal:nats-secret-7@127.0.0.1:${port}` }))).toBe(true);
    expect(await tryConnect(mq({ METAL_BMC_MQ_ADDRESS: `nats://metal:wrong@127.0.0.1:${port}` }))).toBe(false);
  });
});
