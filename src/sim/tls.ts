/**
 * A self-signed TLS certificate for the simulated BMCs, made once per process (per name set)
 * with the `openssl` command line tool: an EC P-256 key and an X.509 certificate whose
 * subjectAltName lists the given IP addresses and DNS names. One certificate serves every
 * simulated machine, like a fleet of BMCs that ship the same factory certificate. The TLS file
 * keeps it across restarts, and beside it the SSH host key of the iDRAC-like machines.
 */
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface SelfSignedCertificate {
  /** PEM private key */
  key: string;
  /** PEM certificate */
  cert: string;
  /** SHA-256 fingerprint of the certificate, "AB:CD:…" as node:crypto prints it */
  fingerprint256: string;
}

const cache = new Map<string, SelfSignedCertificate>();

/** `IP:` for addresses, `DNS:` for names; rejects characters that would break the openssl config. */
export function subjectAltName(altNames: readonly string[]): string {
  return altNames
    .map((name) => {
      if (!/^[A-Za-z0-9.:*-]+$/.test(name)) throw new Error(`invalid subjectAltName entry ${JSON.stringify(name)}`);
      return isIP(name) === 0 ? `DNS:${name}` : `IP:${name}`;
    })
    .join(',');
}

/** How the key is made: EC P-256 (today's BMCs), or RSA-1024 signed with SHA-1 (BMCs of about 2012-2016). */
export type CertificateKind = 'modern' | 'legacy';

/**
 * Key and certificate for `commonName` and `altNames`; generated on the first call, then cached.
 * `legacy`: an RSA-1024 key and a SHA-1 signature, as old iDRAC, MegaRAC and Supermicro X9 BMCs ship.
 */
export function selfSignedCertificate(commonName: string, altNames: readonly string[] = ['localhost', '127.0.0.1'], kind: CertificateKind = 'modern'): SelfSignedCertificate {
  if (!/^[A-Za-z0-9. _-]+$/.test(commonName)) throw new Error(`invalid commonName ${JSON.stringify(commonName)}`);
  const key = `${kind}\n${commonName}\n${altNames.join(',')}`;
  const cached = cache.get(key);
  if (cached !== undefined) return cached;
  const dir = mkdtempSync(join(tmpdir(), 'metal-bmc-sim-tls-'));
  try {
    const keyFile = join(dir, 'key.pem');
    const certFile = join(dir, 'cert.pem');
    const keyArgs = kind === 'legacy' ? ['-newkey', 'rsa:1024', '-sha1'] : ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1'];
    const args = ['req', '-x509', ...keyArgs, '-nodes'];
    args.push('-keyout', keyFile, '-out', certFile, '-days', '3650', '-subj', `/CN=${commonName}`);
    if (altNames.length > 0) args.push('-addext', `subjectAltName=${subjectAltName(altNames)}`);
    try {
      execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'], timeout: 30_000 });
    } catch (err) {
      const stderr = (err as { stderr?: Buffer }).stderr?.toString().trim();
      throw new Error(`openssl could not make a self-signed certificate${stderr ? `: ${stderr}` : ''}`, { cause: err });
    }
    const cert = readFileSync(certFile, 'utf8');
    const made = { key: readFileSync(keyFile, 'utf8'), cert, fingerprint256: new X509Certificate(cert).fingerprint256 };
    cache.set(key, made);
    return made;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * The certificate kept in `file` (JSON `{key, cert}`): read when the file holds one, else made by
 * `make` and written (mode 0600, atomically). Without a file, `make`'s certificate.
 */
export function keptCertificate(file: string | undefined, make: () => { key: string; cert: string }): { key: string; cert: string } {
  return keptFields(file, ['key', 'cert'], make);
}

/**
 * The SSH host key kept in `file` beside the certificate (field `sshHostKey`), made by `make` the
 * first time; as the certificate, so that trust on first use of a restarted fleet holds. A kept
 * key that `usable` refuses (one an earlier version's generator wrote malformed) is made again.
 */
export function keptSshHostKey(file: string | undefined, make: () => string, usable: (key: string) => boolean = () => true): string {
  return keptFields(file, ['sshHostKey'], () => ({ sshHostKey: make() }), (kept) => usable(kept.sshHostKey)).sshHostKey;
}

/**
 * String fields kept in the JSON object in `file`: read when it holds them all, else made by
 * `make` and written beside the fields it holds already (mode 0600, atomically).
 */
function keptFields<K extends string>(file: string | undefined, names: readonly K[], make: () => Record<K, string>, usable: (kept: Record<K, string>) => boolean = () => true): Record<K, string> {
  if (file === undefined) return make();
  let kept: Record<string, unknown> = {};
  try {
    const parsed: unknown = JSON.parse(readFileSync(file, 'utf8'));
    if (typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)) kept = parsed as Record<string, unknown>;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT' && !(err instanceof SyntaxError)) throw err;
  }
  if (names.every((name) => typeof kept[name] === 'string')) {
    const fields = Object.fromEntries(names.map((name) => [name, kept[name]])) as Record<K, string>;
    if (usable(fields)) return fields;
  }
  const made = make();
  const picked = Object.fromEntries(names.map((name) => [name, made[name]])) as Record<K, string>;
  writeFileSync(`${file}.tmp`, JSON.stringify({ ...kept, ...picked }), { mode: 0o600 });
  renameSync(`${file}.tmp`, file);
  return picked;
}
