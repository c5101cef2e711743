// The simulator's SSH host key: ssh2 1.17's Ed25519 generator drops the public key's leading zero
// bytes (one key in 256), writing a key ssh2 itself refuses to read; CI met one as
// "startSshConsoleServer: host key: Malformed OpenSSH private key".
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ssh2 from 'ssh2';
import { afterEach, describe, expect, it } from 'vitest';
import { isUsableHostKey, newHostKey } from '../../src/sim/ssh-console-server.js';
import { keptSshHostKey } from '../../src/sim/tls.js';

// Written by ssh2.utils.generateKeyPairSync('ed25519'): its public key is 31 bytes, not 32.
const MALFORMED = `-----BEGIN OPENSSH PRIVATE KEY-----
b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMgAAAAtz
c2gtZWQyNTUxOQAAAB/2c7hEBDLw+DyKPaZ6r0RrdkVRx1VDAVE5ret/Z6IvAAAA
iKGMQoShjEKEAAAAC3NzaC1lZDI1NTE5AAAAH/ZzuEQEMvD4PIo9pnqvRGt2RVHH
VUMBUTmt639noi8AAAA/EV4KciijR2QM7zR61ToP515u5kV/ADh35ptSGZm84Nb2
c7hEBDLw+DyKPaZ6r0RrdkVRx1VDAVE5ret/Z6IvAAAAAAECAwQFBgc=
-----END OPENSSH PRIVATE KEY-----
`;

function publicKeyLength(key: string): number {
  const parsed = ssh2.utils.parseKey(key);
  if (parsed instanceof Error) throw parsed;
  const blob = parsed.getPublicSSH();
  const nameLength = blob.readUInt32BE(0);
  return blob.readUInt32BE(4 + nameLength);
}

describe('simulator SSH host key', () => {
  const dirs: string[] = [];
  afterEach(() => dirs.splice(0).forEach((d) => rmSync(d, { recursive: true, force: true })));
  const tlsFile = () => {
    const dir = mkdtempSync(join(tmpdir(), 'sim-host-key-'));
    dirs.push(dir);
    return join(dir, 'tls.json');
  };

  it('the malformed sample is what ssh2 refuses', () => {
    expect(isUsableHostKey(MALFORMED)).toBe(false);
  });

  it('every new key is one ssh2 reads, with a 32-byte public key (3,000 keys; about 12 would be malformed without the check)', () => {
    for (let i = 0; i < 3000; i++) {
      const key = newHostKey();
      expect(isUsableHostKey(key)).toBe(true);
      expect(publicKeyLength(key)).toBe(32);
    }
  });

  it('a kept malformed key is made again and written, the certificate beside it kept', () => {
    const file = tlsFile();
    writeFileSync(file, JSON.stringify({ key: 'KEY', cert: 'CERT', sshHostKey: MALFORMED }));
    const key = keptSshHostKey(file, newHostKey, isUsableHostKey);
    expect(key).not.toBe(MALFORMED);
    expect(isUsableHostKey(key)).toBe(true);
    expect(JSON.parse(readFileSync(file, 'utf8'))).toEqual({ key: 'KEY', cert: 'CERT', sshHostKey: key });
  });

  it('a kept usable key stays, so trust on first use of a restarted fleet holds', () => {
    const file = tlsFile();
    const first = keptSshHostKey(file, newHostKey, isUsableHostKey);
    expect(keptSshHostKey(file, newHostKey, isUsableHostKey)).toBe(first);
  });
});
