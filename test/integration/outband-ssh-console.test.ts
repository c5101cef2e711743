/**
 * The SSH console backend for BMCs whose host console is an SSH command (Dell iDRAC:
 * `console com2`), chosen by the vendor table. No iDRAC runs here, so the BMC is an ssh2 server
 * that accepts the BMC credentials and, for `console com2` only, echoes the serial line; its
 * Redfish side is the DMTF mockup with the manufacturer set to Dell. The same backend against the
 * simulator's iDRAC-like BMC, with trust on first use: outband-sim-ssh-console.test.ts.
 */
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import ssh2 from 'ssh2';
import { afterAll, beforeAll, expect } from 'vitest';
import { isBmcError } from '../../src/errors.js';
import { connectOutband } from '../../src/outband/connect.js';
import { openSshConsole } from '../../src/outband/ssh-console.js';
import { createBmcTrust, openTrustStore, TRUST_FILE } from '../../src/outband/trust.js';
import { startMockupServer, type MockupServer } from '../helpers/redfish-mockup-server.js';
import { withPeers } from '../helpers/peers.js';
import { waitFor } from '../helpers/wait.js';

const { describe, it } = withPeers('openssl');

let mockup: MockupServer;
let idrac: ssh2.Server;
let sshPort = 0;
const commands: string[] = [];

beforeAll(async () => {
  mockup = await startMockupServer();
  const system = mockup.resource('/redfish/v1/Systems/437XR1138R2')!;
  mockup.setResource('/redfish/v1/Systems/437XR1138R2', { ...system, Manufacturer: 'Dell Inc.' });
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048, privateKeyEncoding: { type: 'pkcs1', format: 'pem' }, publicKeyEncoding: { type: 'spki', format: 'pem' } });
  idrac = new ssh2.Server({ hostKeys: [privateKey] }, (client) => {
    client.on('authentication', (ctx) => (ctx.method === 'password' && ctx.username === mockup.user && ctx.password === mockup.password ? ctx.accept() : ctx.reject(['password'])));
    client.on('session', (accept) => {
      const session = accept();
      session.on('pty', (ok) => ok?.());
      session.on('exec', (ok, _reject, info) => {
        commands.push(info.command);
        const channel = ok();
        if (info.command !== 'console com2') {
          channel.stderr.write('unknown command\r\n');
          channel.exit(1);
          channel.end();
          return;
        }
        channel.write('iDRAC serial console\r\nidrac-host login: ');
        channel.on('data', (d: Buffer) => channel.write(d));
      });
    });
    client.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => idrac.listen(0, '127.0.0.1', resolve));
  sshPort = (idrac.address() as AddressInfo).port;
});

afterAll(async () => {
  idrac?.close();
  await mockup?.close();
});

describe('SSH console backend (Dell)', () => {
  it('the vendor table sends a Dell console to SSH `console com2`, and the stream carries both ways', async () => {
    // an SSH console needs the trust file (its host key is pinned on first use)
    const stateDir = mkdtempSync(join(tmpdir(), 'metal-bmc-ssh-console-'));
    const trust = createBmcTrust({ store: openTrustStore({ file: join(stateDir, TRUST_FILE) }) });
    const bmc = await connectOutband({ host: mockup.host, redfishPort: mockup.port, sshPort, user: mockup.user, password: mockup.password, protocol: 'redfish', timeoutMs: 5000, trust: trust.forBmc({ ip: mockup.host }) });
    expect(bmc.vendor).toBe('dell');
    const line = await bmc.openConsole();
    let seen = '';
    line.on('data', (d: Buffer) => (seen += d.toString()));
    const until = (text: string) => waitFor(() => seen.includes(text), 20_000, `${text} in the console output`);
    await until('login: ');
    line.write('root\r');
    await until('root\r');
    expect(commands.at(-1)).toBe('console com2');
    line.end();
    await bmc.close();
    await trust.store.close();
    rmSync(stateDir, { recursive: true, force: true });
  });

  it('a wrong BMC password is AUTH_FAILED without the password in the message', async () => {
    const err = await openSshConsole({ host: '127.0.0.1', port: sshPort, user: mockup.user, password: 'wrong-idrac-pw', command: 'console com2' }).catch((e: unknown) => e);
    expect(isBmcError(err, 'AUTH_FAILED')).toBe(true);
    expect(String(err)).not.toContain('wrong-idrac-pw');
  });
});
