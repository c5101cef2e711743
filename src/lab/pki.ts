/**
 * A throw-away PKI for the lab and the tests, made with the `openssl` command line (independent
 * of node:crypto, which the console code uses): a CA, a server certificate for localhost/127.0.0.1 with an ECDSA
 * P-256 key (SEC1 "EC PRIVATE KEY", as cfssl writes it), the same certificate subject with an
 * RSA key (PKCS#8 "PRIVATE KEY", as openssl 3 writes it), a client certificate signed by the CA
 * (CN=metal-console) and a client certificate from another CA (CN=intruder). More client
 * certificates (`issueClientCert`) and a CRL of the CA (`revokeClientCerts`) on request.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface Pki {
  dir: string;
  /** the CA that client and server certificates chain to */
  ca: string;
  /** ECDSA P-256 server certificate and key (SEC1 PEM) */
  serverCert: string;
  serverKey: string;
  /** RSA 2048 server certificate and key (PKCS#8 PEM) */
  serverRsaCert: string;
  serverRsaKey: string;
  /** client certificate signed by `ca`, CN=metal-console */
  clientCert: string;
  clientKey: string;
  /** client certificate signed by another CA, CN=intruder */
  otherClientCert: string;
  otherClientKey: string;
  otherCa: string;
  remove(): void;
}

async function openssl(dir: string, args: string[]): Promise<void> {
  await run('openssl', args, { cwd: dir, timeout: 30_000 });
}

async function makeCa(dir: string, name: string, cn: string): Promise<void> {
  await openssl(dir, ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${name}-key.pem`, '-out', `${name}.pem`, '-days', '2', '-subj', `/CN=${cn}`]);
}

async function sign(dir: string, ca: string, key: string, out: string, subject: string, extensions: string): Promise<void> {
  const ext = `${out}.ext`;
  writeFileSync(join(dir, ext), `${extensions}\n`);
  await openssl(dir, ['req', '-new', '-key', key, '-subj', subject, '-out', `${out}.csr`]);
  await openssl(dir, ['x509', '-req', '-in', `${out}.csr`, '-CA', `${ca}.pem`, '-CAkey', `${ca}-key.pem`, '-CAcreateserial', '-days', '2', '-out', out, '-extfile', ext]);
}

const SERVER_EXT = 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\nkeyUsage=digitalSignature,keyEncipherment';
const CLIENT_EXT = 'extendedKeyUsage=clientAuth\nkeyUsage=digitalSignature';

export async function createPki(into?: string): Promise<Pki> {
  const dir = into ?? mkdtempSync(join(tmpdir(), 'console-pki-'));
  mkdirSync(dir, { recursive: true });
  await Promise.all([makeCa(dir, 'ca', 'metal-bmc test CA'), makeCa(dir, 'other-ca', 'some other CA')]);
  await Promise.all([
    openssl(dir, ['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'server-key.pem']),
    openssl(dir, ['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', 'server-rsa-key.pem']),
    openssl(dir, ['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'client-key.pem']),
    openssl(dir, ['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'other-client-key.pem']),
  ]);
  // Sequential per CA: -CAcreateserial writes one serial file per CA.
  await sign(dir, 'ca', 'server-key.pem', 'server.pem', '/CN=localhost', SERVER_EXT);
  await sign(dir, 'ca', 'server-rsa-key.pem', 'server-rsa.pem', '/CN=localhost', SERVER_EXT);
  await sign(dir, 'ca', 'client-key.pem', 'client.pem', '/CN=metal-console/O=metal-stack', CLIENT_EXT);
  await sign(dir, 'other-ca', 'other-client-key.pem', 'other-client.pem', '/CN=intruder', CLIENT_EXT);
  const p = (f: string) => join(dir, f);
  return {
    dir,
    ca: p('ca.pem'),
    serverCert: p('server.pem'),
    serverKey: p('server-key.pem'),
    serverRsaCert: p('server-rsa.pem'),
    serverRsaKey: p('server-rsa-key.pem'),
    clientCert: p('client.pem'),
    clientKey: p('client-key.pem'),
    otherClientCert: p('other-client.pem'),
    otherClientKey: p('other-client-key.pem'),
    otherCa: p('other-ca.pem'),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** A client certificate signed by the PKI's CA with `subject` (e.g. `/CN=<machine id>/OU=ops`) and optional DNS/URI SANs. */
export async function issueClientCert(pki: Pki, name: string, subject: string, altNames: string[] = []): Promise<{ cert: string; key: string }> {
  const key = `${name}-key.pem`;
  await openssl(pki.dir, ['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', key]);
  const san = altNames.length > 0 ? `\nsubjectAltName=${altNames.join(',')}` : '';
  await sign(pki.dir, 'ca', key, `${name}.pem`, subject, `${CLIENT_EXT}${san}`);
  return { cert: join(pki.dir, `${name}.pem`), key: join(pki.dir, key) };
}

/**
 * Revokes the given certificates of the PKI's CA and writes the CA's CRL (PEM); returns its path.
 * `validity`: its lastUpdate and nextUpdate (`YYYYMMDDHHMMSSZ`), else from now for two days.
 */
export async function revokeClientCerts(pki: Pki, certs: string[], validity?: { lastUpdate: string; nextUpdate: string }): Promise<string> {
  const config = join(pki.dir, 'crl-ca.cnf');
  writeFileSync(config, ['[ca]', 'default_ca = ca_default', '[ca_default]', 'database = crl-index.txt', 'crlnumber = crl-number', 'certificate = ca.pem', 'private_key = ca-key.pem', 'default_md = sha256', 'default_crl_days = 2', ''].join('\n'));
  writeFileSync(join(pki.dir, 'crl-index.txt'), '');
  writeFileSync(join(pki.dir, 'crl-number'), '01\n');
  for (const cert of certs) await openssl(pki.dir, ['ca', '-config', config, '-revoke', cert]);
  const dates = validity ? ['-crl_lastupdate', validity.lastUpdate, '-crl_nextupdate', validity.nextUpdate] : [];
  await openssl(pki.dir, ['ca', '-config', config, '-gencrl', '-out', 'crl.pem', ...dates]);
  return join(pki.dir, 'crl.pem');
}
