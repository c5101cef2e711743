/**
 * Trust on first use for BMCs, against the simulated fleet (IPMI and Redfish of one machine) and
 * two stand-ins for an attacker: a man in the middle that presents its own certificate and would
 * forward every request to the real BMC (it records each request and body), and an IPMI relay
 * that records every datagram the client sends.
 */
import { createServer as createHttpsServer, request as httpsRequest, type Server } from 'node:https';
import { createSocket, type Socket } from 'node:dgram';
import { generateKeyPairSync, X509Certificate } from 'node:crypto';
import ssh2 from 'ssh2';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, expect } from 'vitest';
import { isBmcError } from '../../src/errors.js';
import { connectOutband, type ConnectOptions } from '../../src/outband/connect.js';
import { openSshConsole } from '../../src/outband/ssh-console.js';
import { createBmcTrust, openTrustStore, TRUST_FILE, type BmcTrust } from '../../src/outband/trust.js';
import { createTrustMetrics } from '../../src/report/metrics.js';
import type { Fleet } from '../../src/sim/fleet.js';
import { selfSignedCertificate } from '../../src/sim/tls.js';
import { runCli } from '../helpers/cli.js';
import { startTestFleet } from '../helpers/fleet.js';
import { captureLog, type CapturedLog } from '../helpers/log.js';
import { withPeers } from '../helpers/peers.js';

const { describe, it } = withPeers('openssl');

let fleet: Fleet;
let dir: string;

beforeAll(async () => {
  fleet = await startTestFleet({ count: 2 });
  dir = mkdtempSync(join(tmpdir(), 'metal-bmc-trust-'));
});
afterAll(async () => {
  await fleet?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

interface Recorded {
  method: string;
  url: string;
  body: string;
}

/** An HTTPS server with its own certificate that forwards every request to the BMC's Redfish and records it. */
async function startMitm(host: string, target: { host: string; port: number }): Promise<{ port: number; sha256: string; requests: Recorded[]; close(): Promise<void> }> {
  const tls = selfSignedCertificate('mitm', [host]);
  const requests: Recorded[] = [];
  const server: Server = createHttpsServer({ key: tls.key, cert: tls.cert }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      requests.push({ method: req.method ?? '', url: req.url ?? '', body: body.toString('utf8') });
      const headers = { ...req.headers, host: `${target.host}:${target.port}` };
      const up = httpsRequest({ host: target.host, port: target.port, method: req.method, path: req.url, headers, rejectUnauthorized: false }, (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      });
      up.on('error', () => res.writeHead(502).end());
      up.end(body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  return {
    port: (server.address() as AddressInfo).port,
    sha256: new X509Certificate(tls.cert).fingerprint256.replace(/:/g, '').toLowerCase(),
    requests,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** A UDP relay to the BMC's IPMI port that records every datagram the client sends. */
async function startIpmiRelay(host: string, target: { host: string; port: number }): Promise<{ port: number; sent: Buffer[]; close(): void }> {
  const front: Socket = createSocket('udp4');
  const sent: Buffer[] = [];
  const backs = new Map<string, Socket>();
  front.on('message', (msg, rinfo) => {
    sent.push(msg);
    const key = `${rinfo.address}:${rinfo.port}`;
    let back = backs.get(key);
    if (!back) {
      back = createSocket('udp4');
      back.on('message', (reply) => front.send(reply, rinfo.port, rinfo.address));
      back.bind(0, '127.0.0.1');
      backs.set(key, back);
    }
    back.send(msg, target.port, target.host);
  });
  await new Promise<void>((resolve) => front.bind(0, host, resolve));
  return {
    port: front.address().port,
    sent,
    close() {
      for (const b of backs.values()) b.close();
      front.close();
    },
  };
}

/** RMCP+ datagrams of one payload type (RAKP 1 = 0x12, RAKP 3 = 0x14), as payload buffers. */
function payloadsOf(datagrams: Buffer[], type: number): Buffer[] {
  return datagrams.filter((d) => d.length >= 16 && d[4] === 0x06 && (d[5]! & 0x3f) === type).map((d) => d.subarray(16, 16 + d.readUInt16LE(14)));
}

function setup(o: { requireProof?: boolean } = {}): { trust: BmcTrust; registry: Registry; log: CapturedLog; stateDir: string } {
  const stateDir = mkdtempSync(join(dir, 'state-'));
  const registry = new Registry();
  const log = captureLog();
  const trust = createBmcTrust({ store: openTrustStore({ file: join(stateDir, TRUST_FILE), logger: log.logger }), logger: log.logger, metrics: createTrustMetrics(registry), resetHint: true, ...(o.requireProof ? { requireProof: true } : {}) });
  return { trust, registry, log, stateDir };
}

const fleetCertSha256 = () => new X509Certificate(fleet.redfish!.cert).fingerprint256.replace(/:/g, '').toLowerCase();

function options(host: string, extra: Partial<ConnectOptions>): ConnectOptions {
  return { host, user: fleet.user, password: fleet.password, ipmiPort: fleet.ipmiPort, redfishPort: fleet.redfishPort, timeoutMs: 8000, ...extra };
}

describe('trust on first use of BMC certificates', () => {
  it('records the certificate on first contact (proven over IPMI), refuses a man in the middle with another certificate before any request, and accepts it after bmc trust --reset', async () => {
    const { trust, registry, log, stateDir } = setup();
    const machine = fleet.machines[0]!.state.address;
    const mac = 'aa:bb:cc:00:00:01';

    const first = await connectOutband(options(machine, { trust: trust.forBmc({ ip: machine, mac }) }));
    expect((await first.info()).uuid).toMatch(/^[0-9a-f-]{36}$/);
    await first.close();
    expect(trust.store.get(`mac:${mac}`)).toMatchObject({ redfishSha256: fleetCertSha256(), proof: 'ipmi', ip: machine });
    expect(await registry.getSingleMetricAsString('metal_bmc_trust_first_use_total')).toMatch(/proof="ipmi",what="redfish"} 1$|what="redfish",proof="ipmi"} 1$/m);

    // the same BMC (same MAC, same address) now answers with another certificate
    const mitm = await startMitm(machine, { host: machine, port: fleet.redfishPort });
    try {
      const err = await connectOutband(options(machine, { redfishPort: mitm.port, trust: trust.forBmc({ ip: machine, mac }) })).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(isBmcError(err, 'UNTRUSTED')).toBe(true);
      const message = (err as Error).message;
      expect(message).toContain(machine);
      expect(message).toContain(mitm.sha256.slice(0, 16));
      expect(message).toContain(fleetCertSha256().slice(0, 16));
      expect(message).toContain(`metal-bmc bmc trust --mac ${mac} --reset`);
      expect(message).not.toContain(fleet.password);
      expect(mitm.requests).toEqual([]); // not a request, so not a password
      expect(log.find('BMC presents another identity than the one recorded; credentials not sent')).toHaveLength(1);
      expect(await registry.getSingleMetricAsString('metal_bmc_trust_refused_total')).toMatch(/check="redfish"} 1$/m);

      // the operator accepts the change (the daemon's record is on disk by then: written once per burst)
      await trust.store.flush();
      const reset = await runCli(['bmc', 'trust', '--mac', mac.toUpperCase(), '--reset', '--state-dir', stateDir]);
      expect(reset.stdout).toContain('record removed');
      expect(reset.code).toBe(0);
      const again = await connectOutband(options(machine, { redfishPort: mitm.port, trust: trust.forBmc({ ip: machine, mac }) }));
      await again.info();
      await again.close();
      expect(trust.store.get(`mac:${mac}`)).toMatchObject({ redfishSha256: mitm.sha256, proof: 'ipmi' });
      expect(mitm.requests.some((r) => r.method === 'POST' && r.url === '/redfish/v1/SessionService/Sessions')).toBe(true);
    } finally {
      await mitm.close();
    }
  });

  it('a BMC that does not know the password never gets RAKP 3 with a key exchange code, and no Redfish login is attempted', async () => {
    const { trust, registry, log } = setup();
    const machine = fleet.machines[1]!.state.address;
    // the device answers IPMI as a BMC whose password is not ours (the fleet's password differs from the one sent)
    const relay = await startIpmiRelay('127.0.0.1', { host: machine, port: fleet.ipmiPort });
    const mitm = await startMitm('127.0.0.1', { host: machine, port: fleet.redfishPort });
    try {
      const err = await connectOutband(options('127.0.0.1', { password: 'the-partition-secret', ipmiPort: relay.port, redfishPort: mitm.port, trust: trust.forBmc({ ip: '127.0.0.1', mac: 'aa:bb:cc:00:00:66' }) })).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(isBmcError(err, 'UNTRUSTED')).toBe(true);
      expect((err as Error).message).toMatch(/did not prove over IPMI \(RAKP 2\)/);
      expect((err as Error).message).not.toContain('the-partition-secret');
      expect(payloadsOf(relay.sent, 0x12).length).toBeGreaterThan(0); // the handshake did reach RAKP 1
      // RAKP 3 only as the abort notice the specification asks for: an error status, no key exchange code
      for (const rakp3 of payloadsOf(relay.sent, 0x14)) {
        expect(rakp3[1]).not.toBe(0);
        expect(rakp3.length).toBe(8);
      }
      expect(mitm.requests).toEqual([]);
      expect(trust.store.get('mac:aa:bb:cc:00:00:66')).toBeUndefined();
      expect(log.find('BMC did not prove over IPMI that it knows the password; no credentials sent to it')).toHaveLength(1);
      expect(await registry.getSingleMetricAsString('metal_bmc_trust_refused_total')).toMatch(/check="ipmi-proof"} 1$/m);
    } finally {
      relay.close();
      await mitm.close();
    }
  });

  it('a BMC whose IPMI does not answer is trusted on first use, logged and counted as unproven', async () => {
    const { trust, registry, log } = setup();
    const machine = fleet.machines[0]!.state.address;
    const silent = createSocket('udp4'); // takes datagrams, answers none
    await new Promise<void>((resolve) => silent.bind(0, machine, resolve));
    try {
      const bmc = await connectOutband(options(machine, { ipmiPort: silent.address().port, timeoutMs: 4000, trust: trust.forBmc({ ip: machine }) }));
      await bmc.close();
      expect(trust.store.get(`ip:${machine}`)).toMatchObject({ redfishSha256: fleetCertSha256(), proof: 'none' });
      expect(log.find(/IPMI does not answer: it cannot prove it knows the password; trusted on first use/)).toHaveLength(1);
      expect(await registry.getSingleMetricAsString('metal_bmc_trust_first_use_total')).toMatch(/proof="none"/);
    } finally {
      silent.close();
    }
  });

  it('with METAL_BMC_TRUST_REQUIRE_PROOF a BMC whose IPMI does not answer is refused before any login: no request made, nothing recorded', async () => {
    const { trust, registry, log } = setup({ requireProof: true });
    const machine = fleet.machines[1]!.state.address;
    const silent = createSocket('udp4'); // takes datagrams, answers none
    await new Promise<void>((resolve) => silent.bind(0, '127.0.0.1', resolve));
    const mitm = await startMitm('127.0.0.1', { host: machine, port: fleet.redfishPort });
    try {
      const err = await connectOutband(options('127.0.0.1', { ipmiPort: silent.address().port, redfishPort: mitm.port, timeoutMs: 4000, trust: trust.forBmc({ ip: '127.0.0.1', mac: 'aa:bb:cc:00:00:67' }) })).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(isBmcError(err, 'UNTRUSTED')).toBe(true);
      expect((err as Error).message).toMatch(/first contact without proof over IPMI \(TIMEOUT\); refused as METAL_BMC_TRUST_REQUIRE_PROOF asks/);
      expect(mitm.requests).toEqual([]);
      expect(trust.store.get('mac:aa:bb:cc:00:00:67')).toBeUndefined();
      expect(log.find(/refused \(METAL_BMC_TRUST_REQUIRE_PROOF\), no credentials sent/)).toHaveLength(1);
      expect(await registry.getSingleMetricAsString('metal_bmc_trust_refused_total')).toMatch(/check="ipmi-proof"} 1$/m);
    } finally {
      silent.close();
      await mitm.close();
    }
  });
});

describe('required proof and records without it', () => {
  it('with METAL_BMC_TRUST_REQUIRE_PROOF in its environment, bmc info on the trust file refuses a man in the middle whose IPMI is silent before the password, and writes no record', async () => {
    const stateDir = mkdtempSync(join(dir, 'cli-proof-'));
    const machine = fleet.machines[0]!.state.address;
    const silent = createSocket('udp4'); // takes datagrams, answers none
    await new Promise<void>((resolve) => silent.bind(0, '127.0.0.1', resolve));
    const mitm = await startMitm('127.0.0.1', { host: machine, port: fleet.redfishPort });
    try {
      const args = ['bmc', 'info', '--address', `127.0.0.1:${silent.address().port}`, '--redfish-port', String(mitm.port), '--mac', 'aa:bb:cc:00:00:99', '--user', fleet.user, '--password', fleet.password, '--timeout', '6'];
      const cli = await runCli(args, { env: { METAL_BMC_STATE_DIR: stateDir, METAL_BMC_TRUST_REQUIRE_PROOF: 'true' } });
      expect(cli.code).toBe(1);
      expect(cli.stderr).toMatch(/first contact without proof over IPMI \(TIMEOUT\); refused as METAL_BMC_TRUST_REQUIRE_PROOF asks, no credentials sent \[UNTRUSTED\]/);
      expect(cli.stderr).not.toContain(fleet.password);
      expect(mitm.requests).toEqual([]); // the probe is a bare handshake: no request, no password
      expect(existsSync(join(stateDir, TRUST_FILE))).toBe(false);
      // the flag, without the variable, does the same
      const flagged = await runCli([...args, '--require-proof'], { env: { METAL_BMC_STATE_DIR: stateDir } });
      expect(flagged.code).toBe(1);
      expect(flagged.stderr).toContain('refused as METAL_BMC_TRUST_REQUIRE_PROOF asks');
      expect(mitm.requests).toEqual([]);
      // METAL_BMC_REDFISH_CA_FILE verifies instead (the fleet's certificate as the CA): the impostor fails the handshake, nothing is recorded
      const caFile = join(stateDir, 'ca.pem');
      writeFileSync(caFile, fleet.redfish!.cert);
      const verified = await runCli([...args, '--protocol', 'redfish'], { env: { METAL_BMC_STATE_DIR: stateDir, METAL_BMC_REDFISH_CA_FILE: caFile } });
      expect(verified.code).toBe(1);
      expect(mitm.requests).toEqual([]);
      expect(existsSync(join(stateDir, TRUST_FILE))).toBe(false);
    } finally {
      silent.close();
      await mitm.close();
    }
  });

  it('a gate that requires proof meets a record without it (proof none) as a first contact: refused before any login while IPMI is silent, proven and recorded as ipmi once IPMI answers', async () => {
    const stateDir = mkdtempSync(join(dir, 'unproven-'));
    const machine = fleet.machines[1]!.state.address;
    const mac = 'aa:bb:cc:00:00:98';
    const mitm = await startMitm('127.0.0.1', { host: machine, port: fleet.redfishPort });
    // what a CLI without the setting wrote: the impostor's certificate, trusted on first use without proof
    writeFileSync(join(stateDir, TRUST_FILE), JSON.stringify({ version: 1, bmcs: { [`mac:${mac}`]: { redfishSha256: mitm.sha256, sshSha256: 'cd'.repeat(32), ip: '127.0.0.1', proof: 'none', firstSeen: '2026-01-01T00:00:00Z', lastSeen: '2026-01-01T00:00:00Z' } } }));
    const registry = new Registry();
    const log = captureLog();
    const trust = createBmcTrust({ store: openTrustStore({ file: join(stateDir, TRUST_FILE), logger: log.logger }), logger: log.logger, metrics: createTrustMetrics(registry), requireProof: true });
    const silent = createSocket('udp4');
    await new Promise<void>((resolve) => silent.bind(0, '127.0.0.1', resolve));
    try {
      const err = await connectOutband(options('127.0.0.1', { ipmiPort: silent.address().port, redfishPort: mitm.port, timeoutMs: 4000, trust: trust.forBmc({ ip: '127.0.0.1', mac }) })).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(isBmcError(err, 'UNTRUSTED')).toBe(true);
      expect((err as Error).message).toMatch(/first contact without proof over IPMI \(TIMEOUT\) \(its record holds no IPMI proof\); refused/);
      expect(mitm.requests).toEqual([]);
      expect(log.find(/^BMC recorded without IPMI proof: met as a first contact/)).toHaveLength(1);
      expect(await registry.getSingleMetricAsString('metal_bmc_trust_refused_total')).toMatch(/check="ipmi-proof"} 1$/m);

      // the real BMC, whose IPMI answers: proven, then its certificate replaces the unproven one, and the unproven SSH key goes
      const bmc = await connectOutband(options(machine, { trust: trust.forBmc({ ip: machine, mac }) }));
      await bmc.close();
      const record = trust.store.get(`mac:${mac}`);
      expect(record).toMatchObject({ redfishSha256: fleetCertSha256(), proof: 'ipmi', ip: machine });
      expect(record?.sshSha256).toBeUndefined();
      await trust.store.close();
    } finally {
      silent.close();
      await mitm.close();
    }
  });
});

describe('required proof and pins without a proof field', () => {
  it('a hand pin (no proof field) stays a pin where proof is required: a man in the middle whose IPMI relays to the real BMC is refused before any request and the pin kept; the real BMC proves itself and its pin is recorded as proven', async () => {
    const stateDir = mkdtempSync(join(dir, 'hand-pin-'));
    const machine = fleet.machines[0]!.state.address;
    const mac = 'aa:bb:cc:00:00:97';
    // the operator's pin in openssl x509 -fingerprint form, as the README invites
    const pin = fleetCertSha256().toUpperCase().match(/../g)!.join(':');
    writeFileSync(join(stateDir, TRUST_FILE), JSON.stringify({ version: 1, bmcs: { [`mac:${mac}`]: { redfishSha256: pin, ip: machine, firstSeen: '2026-01-01T00:00:00Z', lastSeen: '2026-01-01T00:00:00Z' } } }));
    const registry = new Registry();
    const trust = createBmcTrust({ store: openTrustStore({ file: join(stateDir, TRUST_FILE) }), metrics: createTrustMetrics(registry), requireProof: true });
    const relay = await startIpmiRelay('127.0.0.1', { host: machine, port: fleet.ipmiPort });
    const mitm = await startMitm('127.0.0.1', { host: machine, port: fleet.redfishPort });
    try {
      const err = await connectOutband(options('127.0.0.1', { ipmiPort: relay.port, redfishPort: mitm.port, trust: trust.forBmc({ ip: '127.0.0.1', mac }) })).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(isBmcError(err, 'UNTRUSTED')).toBe(true);
      expect((err as Error).message).toContain(mitm.sha256.slice(0, 16));
      expect(mitm.requests).toEqual([]);
      expect(await registry.getSingleMetricAsString('metal_bmc_trust_refused_total')).toMatch(/check="redfish"} 1$/m);
      expect(trust.store.get(`mac:${mac}`)).toEqual({ redfishSha256: fleetCertSha256(), ip: machine, firstSeen: '2026-01-01T00:00:00Z', lastSeen: '2026-01-01T00:00:00Z' });

      const bmc = await connectOutband(options(machine, { trust: trust.forBmc({ ip: machine, mac }) }));
      await bmc.close();
      expect(trust.store.get(`mac:${mac}`)).toMatchObject({ redfishSha256: fleetCertSha256(), proof: 'ipmi', ip: machine });
      await trust.store.close();
    } finally {
      relay.close();
      await mitm.close();
    }
  });
});

/** An SSH server with its own host key that records every authentication attempt (and so every password offered). */
async function startSshBmc(): Promise<{ port: number; passwords: string[]; close(): void }> {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1', privateKeyEncoding: { type: 'sec1', format: 'pem' }, publicKeyEncoding: { type: 'spki', format: 'pem' } });
  const passwords: string[] = [];
  const server = new ssh2.Server({ hostKeys: [privateKey] }, (client) => {
    client.on('authentication', (ctx) => {
      if (ctx.method === 'password') passwords.push(ctx.password);
      return ctx.method === 'password' ? ctx.accept() : ctx.reject(['password']);
    });
    client.on('session', (accept) => {
      const session = accept();
      session.on('pty', (ok) => ok?.());
      session.on('exec', (ok) => ok().write('serial\r\n'));
    });
    client.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { port: (server.address() as AddressInfo).port, passwords, close: () => server.close() };
}

describe('metal-bmc bmc with a state directory', () => {
  it('records the BMC by IP address on first use (proven over IPMI); bmc trust shows and lists it', async () => {
    const stateDir = mkdtempSync(join(dir, 'cli-'));
    const machine = fleet.machines[1]!.state.address;
    const info = await runCli(['bmc', 'info', '--address', `${machine}:${fleet.ipmiPort}`, '--redfish-port', String(fleet.redfishPort), '--user', fleet.user, '--password', fleet.password, '--state-dir', stateDir]);
    expect(info.code).toBe(0);
    const shown = await runCli(['bmc', 'trust', '--address', machine, '--state-dir', stateDir]);
    expect(shown.code).toBe(0);
    expect(shown.stdout).toContain(`ip:${machine}`);
    expect(shown.stdout).toContain(`redfish=${fleetCertSha256()}`);
    expect(shown.stdout).toContain('proof=ipmi');
    const listed = await runCli(['bmc', 'trust', '--list'], { env: { METAL_BMC_STATE_DIR: stateDir } });
    expect(listed.stdout.trim().split('\n')).toHaveLength(1);
  });
});

describe('trust on first use of SSH console host keys', () => {
  it('records the host key on first use, refuses another key before the password is sent, and accepts it after a reset', async () => {
    const { trust, registry, log } = setup();
    const gate = () => trust.forBmc({ ip: '127.0.0.1', mac: 'aa:bb:cc:00:00:22' });
    const real = await startSshBmc();
    const rogue = await startSshBmc();
    const open = async (port: number) => {
      const checkHostKey = await gate().sshHostKeyCheck({ host: '127.0.0.1', proofTimeoutMs: 1000 });
      const line = await openSshConsole({ host: '127.0.0.1', port, user: 'root', password: 'ssh-secret-1', command: 'console com2', checkHostKey });
      line.destroy();
    };
    try {
      await open(real.port);
      expect(real.passwords).toEqual(['ssh-secret-1']);
      expect(trust.store.get('mac:aa:bb:cc:00:00:22')?.sshSha256).toMatch(/^[0-9a-f]{64}$/);
      const err = await open(rogue.port).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(isBmcError(err, 'UNTRUSTED')).toBe(true);
      expect((err as Error).message).not.toContain('ssh-secret-1');
      expect(rogue.passwords).toEqual([]);
      expect(await registry.getSingleMetricAsString('metal_bmc_trust_refused_total')).toMatch(/check="ssh"} 1$/m);
      expect(log.find('BMC presents another identity than the one recorded; credentials not sent')).toHaveLength(1);
      expect(trust.store.reset('mac:aa:bb:cc:00:00:22')).toBe(true);
      await open(rogue.port);
      expect(rogue.passwords).toEqual(['ssh-secret-1']);
    } finally {
      real.close();
      rogue.close();
    }
  });
});
