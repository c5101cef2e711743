/**
 * The SSH host key of the console listener, derived from its TLS private key file as the Go
 * metal-bmc does (`ssh.ParsePrivateKey` of the same PEM), so that metal-console's pinned host
 * key keeps matching. Accepted: RSA (PKCS#1 or PKCS#8), ECDSA P-256/P-384/P-521 (SEC1 or
 * PKCS#8) and Ed25519 (PKCS#8), unencrypted. The key is re-encoded into a form ssh2 parses
 * (PKCS#1, SEC1, or the OpenSSH format for Ed25519); the key itself is unchanged.
 */
import { createHash, createPrivateKey, randomBytes, type KeyObject } from 'node:crypto';
import ssh2 from 'ssh2';
import { BmcError } from '../errors.js';

export interface HostKey {
  /** private key in a PEM form that ssh2's Server takes as `hostKeys` */
  privatePem: string;
  /** e.g. `ecdsa-sha2-nistp256` */
  type: string;
  /** OpenSSH public key line, `type base64` (what goes into known_hosts) */
  publicKey: string;
  /** `SHA256:...` as ssh-keygen -l prints it */
  fingerprint: string;
}

const CURVES = new Set(['prime256v1', 'secp384r1', 'secp521r1']);

function sshString(data: Buffer | string): Buffer {
  const body = typeof data === 'string' ? Buffer.from(data) : data;
  const length = Buffer.alloc(4);
  length.writeUInt32BE(body.length);
  return Buffer.concat([length, body]);
}

function uint32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
}

/** The unencrypted `openssh-key-v1` container for one Ed25519 key (PROTOCOL.key in OpenSSH). */
function openSshEd25519(key: KeyObject): string {
  const jwk = key.export({ format: 'jwk' });
  const seed = Buffer.from(jwk.d ?? '', 'base64url');
  const pub = Buffer.from(jwk.x ?? '', 'base64url');
  const publicBlob = Buffer.concat([sshString('ssh-ed25519'), sshString(pub)]);
  const check = randomBytes(4).readUInt32BE();
  let secret = Buffer.concat([uint32(check), uint32(check), sshString('ssh-ed25519'), sshString(pub), sshString(Buffer.concat([seed, pub])), sshString('')]);
  const padding: number[] = [];
  for (let i = 1; (secret.length + padding.length) % 8 !== 0; i++) padding.push(i);
  secret = Buffer.concat([secret, Buffer.from(padding)]);
  const body = Buffer.concat([Buffer.from('openssh-key-v1\0'), sshString('none'), sshString('none'), sshString(''), uint32(1), sshString(publicBlob), sshString(secret)]);
  const lines = body.toString('base64').match(/.{1,70}/g) ?? [];
  return `-----BEGIN OPENSSH PRIVATE KEY-----\n${lines.join('\n')}\n-----END OPENSSH PRIVATE KEY-----\n`;
}

function toSsh2Pem(key: KeyObject, file: string): string {
  switch (key.asymmetricKeyType) {
    case 'rsa':
      return key.export({ format: 'pem', type: 'pkcs1' }).toString();
    case 'ec': {
      const curve = key.asymmetricKeyDetails?.namedCurve ?? 'unknown';
      if (!CURVES.has(curve)) throw new BmcError('CONFIG', `console key ${file}: ECDSA curve ${curve} cannot be an SSH host key (use P-256, P-384 or P-521)`);
      return key.export({ format: 'pem', type: 'sec1' }).toString();
    }
    case 'ed25519':
      return openSshEd25519(key);
    default:
      throw new BmcError('CONFIG', `console key ${file}: a ${key.asymmetricKeyType ?? 'unknown'} key cannot be an SSH host key (use RSA, ECDSA or Ed25519)`);
  }
}

/** Derives the SSH host key from the PEM of the console's TLS private key. */
export function deriveHostKey(pem: string | Buffer, file = 'console key'): HostKey {
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: pem, format: 'pem' });
  } catch (err) {
    throw new BmcError('CONFIG', `console key ${file}: not an unencrypted PEM private key (${(err as Error).message})`, { cause: err });
  }
  const privatePem = toSsh2Pem(key, file);
  const parsed = ssh2.utils.parseKey(privatePem);
  if (parsed instanceof Error) throw new BmcError('CONFIG', `console key ${file}: ssh2 cannot use it as a host key (${parsed.message})`, { cause: parsed });
  const blob = parsed.getPublicSSH();
  return {
    privatePem,
    type: parsed.type,
    publicKey: `${parsed.type} ${blob.toString('base64')}`,
    fingerprint: `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`,
  };
}
