/**
 * The SSH host key derived from the console TLS key: same key material as the PEM (checked
 * against OpenSSH's `ssh-keygen -y`, which reads the PEM independently), usable by ssh2 for
 * signatures, for RSA and ECDSA in both PEM flavours, Ed25519 in PKCS#8; others refused.
 */
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ssh2 from 'ssh2';
import { afterAll, expect } from 'vitest';
import { deriveHostKey } from '../../src/console/host-key.js';
import { withPeers } from '../helpers/peers.js';

const { describe, it } = withPeers('ssh-keygen');

const dir = mkdtempSync(join(tmpdir(), 'hostkey-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function sshKeygenPublic(pem: string): string {
  const file = join(dir, `k${Math.random().toString(36).slice(2)}.pem`);
  writeFileSync(file, pem, { mode: 0o600 });
  return execFileSync('ssh-keygen', ['-y', '-f', file], { encoding: 'utf8' }).trim().split(' ').slice(0, 2).join(' ');
}

function canSign(privatePem: string): boolean {
  const key = ssh2.utils.parseKey(privatePem);
  if (key instanceof Error) return false;
  const sig = key.sign(Buffer.from('data'));
  return key.verify(Buffer.from('data'), sig);
}

const cases: Array<[string, () => string, string]> = [
  ['ECDSA P-256, SEC1', () => generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'pem', type: 'sec1' }).toString(), 'ecdsa-sha2-nistp256'],
  ['ECDSA P-384, PKCS#8', () => generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(), 'ecdsa-sha2-nistp384'],
  ['RSA, PKCS#1', () => generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'pem', type: 'pkcs1' }).toString(), 'ssh-rsa'],
  ['RSA, PKCS#8', () => generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(), 'ssh-rsa'],
];

describe('SSH host key from the console TLS key', () => {
  for (const [name, make, type] of cases) {
    it(`${name}: the public key ssh-keygen derives from the same PEM`, () => {
      const pem = make();
      const key = deriveHostKey(pem);
      expect(key.type).toBe(type);
      expect(key.publicKey).toBe(sshKeygenPublic(pem));
      expect(key.fingerprint).toMatch(/^SHA256:[A-Za-z0-9+/]{43}$/);
      expect(canSign(key.privatePem)).toBe(true);
    });
  }

  it('Ed25519 in PKCS#8 becomes an OpenSSH-format key with the same public key', () => {
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    const key = deriveHostKey(privateKey.export({ format: 'pem', type: 'pkcs8' }));
    const raw = Buffer.from(publicKey.export({ format: 'jwk' }).x ?? '', 'base64url');
    expect(key.type).toBe('ssh-ed25519');
    expect(Buffer.from(key.publicKey.split(' ')[1] ?? '', 'base64').subarray(-32).equals(raw)).toBe(true);
    expect(canSign(key.privatePem)).toBe(true);
    // OpenSSH reads the container too
    expect(sshKeygenPublic(key.privatePem)).toBe(key.publicKey);
  });

  it('refuses what cannot be a host key, naming the file', () => {
    const p224 = generateKeyPairSync('ec', { namedCurve: 'P-224' }).privateKey.export({ format: 'pem', type: 'sec1' }).toString();
    expect(() => deriveHostKey(p224, '/etc/console/key.pem')).toThrow(/key\.pem: ECDSA curve secp224r1/);
    expect(() => deriveHostKey('not a key', '/etc/console/key.pem')).toThrow(/not an unencrypted PEM private key/);
    const x448 = generateKeyPairSync('x448').privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
    expect(() => deriveHostKey(x448)).toThrow(/x448 key cannot be an SSH host key/);
  });
});
