/**
 * The shared TLS connector: one SecureContext per option set, and a TLS session resumed on the
 * next connection to the same BMC, against the simulator's HTTPS server (Node's TLS server, which
 * issues session tickets like the BMCs that offer resumption).
 */
import { X509Certificate } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { probeCertificate, tlsConnector } from '../../src/redfish/tls.js';
import { MAX_SESSION_BYTES, sharedConnector, TlsSessionCache } from '../../src/redfish/tls-context.js';
import { selfSignedCertificate } from '../../src/sim/tls.js';
import { waitFor } from '../helpers/wait.js';
import { createMachineState, SimMachine } from '../../src/sim/machine.js';
import { startRedfishServer, type RedfishServer } from '../../src/sim/redfish-server.js';

let server: RedfishServer;

beforeAll(async () => {
  server = await startRedfishServer({ machines: [new SimMachine(createMachineState('tls', 0, '127.31.0.0/16'))], port: 0, user: 'u', password: 'p', perMachineBind: true });
});
afterAll(() => server.close());

/** One TLS connection through the connector, with a GET so the TLS 1.3 ticket arrives, then closed. */
function connectOnce(connector: ReturnType<typeof sharedConnector>['connector'], to: RedfishServer = server): Promise<boolean> {
  const { host, port } = to.endpoint(0);
  return new Promise((resolve, reject) => {
    connector({ hostname: host, host: `${host}:${port}`, protocol: 'https:', port: String(port) }, (err, socket) => {
      if (err || !socket) return reject(err ?? new Error('no socket'));
      const tls = socket as TLSSocket;
      const reused = tls.isSessionReused();
      tls.write(`GET /redfish/v1/ HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
      tls.on('data', () => undefined);
      tls.once('close', () => resolve(reused));
      tls.once('error', reject);
    });
  });
}

describe('shared TLS connector', () => {
  it('is built once per option set: one SecureContext for every connection', () => {
    const a = sharedConnector({ rejectUnauthorized: false, minVersion: 'TLSv1.2', ciphers: 'DEFAULT:@SECLEVEL=1', timeout: 1000 });
    const b = sharedConnector({ rejectUnauthorized: false, minVersion: 'TLSv1.2', ciphers: 'DEFAULT:@SECLEVEL=1', timeout: 5000 });
    const c = sharedConnector({ rejectUnauthorized: false, minVersion: 'TLSv1.3', ciphers: 'DEFAULT:@SECLEVEL=1' });
    expect(b).toBe(a);
    expect(b.context).toBe(a.context);
    expect(c.context).not.toBe(a.context);
  });

  it('resumes the TLS session on the next connection to the same BMC', async () => {
    const shared = sharedConnector({ rejectUnauthorized: false, minVersion: 'TLSv1.2', ecdhCurve: 'X25519:P-256' });
    expect(await connectOnce(shared.connector)).toBe(false);
    expect(shared.sessions.size).toBe(1);
    expect(await connectOnce(shared.connector)).toBe(true);
    expect(shared.stats).toEqual({ connections: 2, resumed: 1 });
  });

  it('does not resume with maxCachedSessions 0 (certificate pinning)', async () => {
    const shared = sharedConnector({ rejectUnauthorized: false, minVersion: 'TLSv1.2', maxCachedSessions: 0 });
    expect(await connectOnce(shared.connector)).toBe(false);
    expect(await connectOnce(shared.connector)).toBe(false);
    expect(shared.sessions.size).toBe(0);
  });

  it('a pinned certificate: sessions resumed from the pin\'s own cache; another certificate at the same address is refused, resumed or not', async () => {
    const pin = new X509Certificate(server.cert).fingerprint256.replaceAll(':', '').toLowerCase();
    const pinned = tlsConnector({ kind: 'pinned', sha256: pin }, 5000);
    expect(await connectOnce(pinned)).toBe(false);
    expect(await connectOnce(pinned)).toBe(true);
    // the same address, another certificate (a rogue device took the BMC's address): the pinned
    // session is of no use to it, and its full handshake shows the wrong certificate
    const { host, port } = server.endpoint(0);
    await server.close();
    const other = selfSignedCertificate('rogue-bmc', [host]);
    const rogue = await startRedfishServer({ machines: [new SimMachine(createMachineState('tls', 0, '127.31.0.0/16'))], port, user: 'u', password: 'p', perMachineBind: true, tls: other });
    try {
      await expect(connectOnce(pinned, rogue)).rejects.toMatchObject({ code: 'UNTRUSTED' });
      await expect(connectOnce(pinned, rogue)).rejects.toMatchObject({ code: 'UNTRUSTED' });
    } finally {
      await rogue.close();
      server = await startRedfishServer({ machines: [new SimMachine(createMachineState('tls', 0, '127.31.0.0/16'))], port, user: 'u', password: 'p', perMachineBind: true });
    }
  });

  it('a certificate probe costs the only full handshake of a first contact: the connection pinned to what it saw resumes its session, one pinned to another certificate does not', async () => {
    const own = await startRedfishServer({ machines: [new SimMachine(createMachineState('tls', 1, '127.31.0.0/16'))], port: 0, user: 'u', password: 'p', perMachineBind: true });
    try {
      const { host, port } = own.endpoint(0);
      const pin = new X509Certificate(own.cert).fingerprint256.replaceAll(':', '').toLowerCase();
      const stats = sharedConnector({ timeout: 0, keepAlive: true, minVersion: 'TLSv1.2', rejectUnauthorized: false }).stats;
      const before = { ...stats };
      // its TCP connect is a sign of life of the BMC (a report read's deadline), told before the handshake's end
      let connected = 0;
      expect(await probeCertificate({ host, port, timeoutMs: 5000, onConnect: () => connected++ })).toBe(pin);
      expect(connected).toBe(1);
      // the probe answers at its handshake; its session ticket follows (TLS 1.3)
      await waitFor(() => sharedConnector({ keepAlive: true, minVersion: 'TLSv1.2', rejectUnauthorized: false }).sessions.get(`pin:${pin}|${host}:${port}`) !== undefined, 10_000, 'the probe\'s session kept under the pin');
      expect(await connectOnce(tlsConnector({ kind: 'pinned', sha256: pin }, 5000), own)).toBe(true);
      expect(await connectOnce(tlsConnector({ kind: 'pinned', sha256: 'ab'.repeat(32) }, 5000), own).catch((e: unknown) => e)).toMatchObject({ code: 'UNTRUSTED' });
      expect({ connections: stats.connections - before.connections, resumed: stats.resumed - before.resumed }).toEqual({ connections: 1, resumed: 1 });
    } finally {
      await own.close();
    }
  });

  it('keeps a session without the server\'s certificate where Node does not check it (none, or our pin) and Node gives it as bare DER (Node 20): it still resumes, TLS 1.3 and 1.2', async () => {
    const { host, port } = server.endpoint(0);
    const certificate = new X509Certificate(server.cert).raw;
    // Node 22 and later hand out the session in an envelope of their own, kept whole (tls-session-der.ts)
    const bareDer = Number(process.versions.node.split('.')[0]) < 22;
    for (const maxVersion of ['TLSv1.3', 'TLSv1.2'] as const) {
      // an option set of its own: a cache no other test fills
      const shared = sharedConnector({ rejectUnauthorized: false, minVersion: 'TLSv1.2', maxVersion, ecdhCurve: 'P-256' });
      expect(await connectOnce(shared.connector)).toBe(false);
      const kept = shared.sessions.get(`${host}:${port}`);
      expect(kept, maxVersion).toBeDefined();
      expect(kept!.includes(certificate), maxVersion).toBe(!bareDer);
      expect(await connectOnce(shared.connector), maxVersion).toBe(true);
    }
  });

  it('keeps the whole session where Node checks the certificate (a CA): a TLS 1.2 resumption still passes that check', async () => {
    const { host, port } = server.endpoint(0);
    const shared = sharedConnector({ rejectUnauthorized: true, ca: server.cert, minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2' });
    expect(await connectOnce(shared.connector)).toBe(false);
    expect(shared.sessions.get(`${host}:${port}`)!.includes(new X509Certificate(server.cert).raw)).toBe(true);
    // without the certificate in it, Node 20 would refuse this resumed connection as unverified
    expect(await connectOnce(shared.connector)).toBe(true);
  });

  it('the session cache is bounded and forgets the least recently used', () => {
    const cache = new TlsSessionCache(2);
    cache.set('a', Buffer.from('1'));
    cache.set('b', Buffer.from('2'));
    cache.get('a');
    cache.set('c', Buffer.from('3'));
    expect(cache.get('b')).toBeUndefined();
    expect(cache.get('a')?.toString()).toBe('1');
    expect(cache.size).toBe(2);
  });

  it('a session larger than MAX_SESSION_BYTES (a huge certificate in it) is not kept; the older one of its key goes too (the connection made a new one)', () => {
    const cache = new TlsSessionCache(2);
    cache.set('a', Buffer.from('1'));
    cache.set('a', Buffer.alloc(MAX_SESSION_BYTES + 1));
    expect(cache.get('a')).toBeUndefined();
    cache.set('b', Buffer.alloc(MAX_SESSION_BYTES));
    expect(cache.get('b')?.length).toBe(MAX_SESSION_BYTES);
  });
});
