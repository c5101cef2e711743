/**
 * What a CRL file revokes, as the console reads it to end connections opened before a reload
 * (tls.ts `readCrlFile`, `certificateId`, `isRevoked`): CRLs and certificates made by `openssl ca`
 * and `openssl x509` (v1 and v2 CRLs, entry reasons, GeneralizedTime, serials with the high bit
 * set, several CAs in one file), serials checked against node:crypto's reading of the same
 * certificate; a file that is not a CRL is a CONFIG error and nothing else, whatever its bytes.
 */
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, expect } from 'vitest';
import { BmcError } from '../../src/errors.js';
import { certificateId, derTime, isRevoked, readCrlFile, type CertificateId, type Revocations } from '../../src/console/crl.js';
import { createPki, issueClientCert, type Pki } from '../helpers/pki.js';
import { withPeers } from '../helpers/peers.js';

const { describe, it } = withPeers('openssl');

let pki: Pki;

function openssl(args: string[]): void {
  execFileSync('openssl', args, { cwd: pki.dir, stdio: 'ignore', timeout: 30_000 });
}

/** A client certificate of `ca` with a chosen serial number (`openssl x509 -set_serial`). */
function certWithSerial(name: string, serial: string, ca = 'ca'): string {
  openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', `${name}-key.pem`]);
  openssl(['req', '-new', '-key', `${name}-key.pem`, '-subj', `/CN=${name}`, '-out', `${name}.csr`]);
  openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.pem`, '-CAkey', `${ca}-key.pem`, '-set_serial', serial, '-days', '2', '-out', `${name}.pem`]);
  return join(pki.dir, `${name}.pem`);
}

interface CrlRequest {
  ca?: string;
  revoke?: Array<{ cert: string; reason?: string }>;
  /** v2 with CRL extensions (CRL number, authority key id), as cfssl and most CAs write them; else v1, without a version field */
  v2?: boolean;
  /** extra `openssl ca -gencrl` arguments */
  gencrl?: string[];
}

let crls = 0;
/** A CRL of `ca` (PEM text) from a fresh `openssl ca` database. */
function makeCrl(o: CrlRequest): string {
  const name = `unit-crl-${++crls}`;
  const ca = o.ca ?? 'ca';
  const config = [
    '[ca]',
    'default_ca = c',
    '[c]',
    `database = ${name}-index.txt`,
    `certificate = ${ca}.pem`,
    `private_key = ${ca}-key.pem`,
    'default_md = sha256',
    'default_crl_days = 2',
    // without a CRL number and CRL extensions openssl ca writes a v1 CRL
    ...(o.v2 ? [`crlnumber = ${name}-number`, 'crl_extensions = crl_ext', '[crl_ext]', 'authorityKeyIdentifier = keyid:always'] : []),
    '',
  ].join('\n');
  writeFileSync(join(pki.dir, `${name}.cnf`), config);
  writeFileSync(join(pki.dir, `${name}-index.txt`), '');
  writeFileSync(join(pki.dir, `${name}-number`), '1000\n');
  for (const { cert, reason } of o.revoke ?? []) openssl(['ca', '-config', `${name}.cnf`, '-revoke', cert, ...(reason ? ['-crl_reason', reason] : [])]);
  openssl(['ca', '-config', `${name}.cnf`, '-gencrl', '-out', `${name}.pem`, ...(o.gencrl ?? [])]);
  const pem = readFileSync(join(pki.dir, `${name}.pem`), 'latin1');
  const version = execFileSync('openssl', ['crl', '-noout', '-text'], { input: pem, encoding: 'latin1' });
  expect(version).toContain(o.v2 ? 'Version 2 (0x1)' : 'Version 1 (0x0)');
  return pem;
}

const idOf = (certFile: string): CertificateId => certificateId(new X509Certificate(readFileSync(certFile)).raw);
const revokes = (revocations: Revocations, certFile: string) => isRevoked(revocations, [idOf(certFile)]);

function configError(read: () => unknown): BmcError {
  try {
    read();
  } catch (err) {
    expect(err).toBeInstanceOf(BmcError);
    expect((err as BmcError).code).toBe('CONFIG');
    return err as BmcError;
  }
  throw new Error('expected a CONFIG error');
}

let x: string;
let y: string;
let z: string;

beforeAll(async () => {
  pki = await createPki();
  // one after the other: each signing updates the CA's serial file
  x = (await issueClientCert(pki, 'unit-x', '/CN=unit-x')).cert;
  y = (await issueClientCert(pki, 'unit-y', '/CN=unit-y')).cert;
  z = (await issueClientCert(pki, 'unit-z', '/CN=unit-z')).cert;
}, 60_000);

afterAll(() => pki?.remove());

describe('certificate ids', () => {
  it('reads the serial as node:crypto does, whatever its length and high bit, and the issuer the same for every certificate of a CA', () => {
    for (const [name, serial] of [
      ['serial-small', '5'],
      ['serial-high-bit', '255'],
      ['serial-twenty-bytes', '0x8000000000000000000000000000000000000001'],
    ] as const) {
      const file = certWithSerial(name, serial);
      expect(idOf(file).serial).toBe(new X509Certificate(readFileSync(file)).serialNumber.toUpperCase());
    }
    expect(idOf(x).issuer).toBe(idOf(y).issuer);
    expect(idOf(pki.otherClientCert).issuer).not.toBe(idOf(x).issuer);
  });
});

describe('CRLs from openssl ca', () => {
  it('a v1 CRL (openssl ca without CRL number and extensions) revokes exactly its certificates', () => {
    const { crls: blocks, revocations } = readCrlFile(Buffer.from(makeCrl({ revoke: [{ cert: x }, { cert: y }] })), 'crl.pem');
    expect(blocks).toHaveLength(1);
    expect([revokes(revocations, x), revokes(revocations, y), revokes(revocations, z)]).toEqual([true, true, false]);
    expect([...revocations.keys()]).toEqual([idOf(x).issuer]);
  });

  it('a v2 CRL with entry reasons and GeneralizedTime dates; an entry with reason removeFromCRL revokes nothing, as in OpenSSL', () => {
    const pem = makeCrl({ v2: true, revoke: [{ cert: x, reason: 'keyCompromise' }, { cert: y, reason: 'removeFromCRL' }], gencrl: ['-crl_lastupdate', '20510101000000Z', '-crl_nextupdate', '20510102000000Z'] });
    const { revocations } = readCrlFile(Buffer.from(pem), 'crl.pem');
    expect([revokes(revocations, x), revokes(revocations, y), revokes(revocations, z)]).toEqual([true, false, false]);
  });

  it('a CRL that revokes nothing, and the serial with the high bit set', () => {
    expect(readCrlFile(Buffer.from(makeCrl({})), 'crl.pem').revocations.get(idOf(x).issuer ?? '')).toEqual(new Set());
    const high = certWithSerial('revoked-high-bit', '0x80000000000000000000000000000000000000ff');
    expect(revokes(readCrlFile(Buffer.from(makeCrl({ revoke: [{ cert: high }] })), 'crl.pem').revocations, high)).toBe(true);
  });

  it('several CRLs in one file: each CA revokes only its own certificates, and node:tls gets every CRL as a block of its own', () => {
    const other = certWithSerial('other-ca-client', '0x1234', 'other-ca');
    // the same serial from the first CA: an issuer mismatch must not revoke it
    const sameSerial = certWithSerial('same-serial', '0x1234');
    const text = `some text before\n${makeCrl({ revoke: [{ cert: x }] })}\n${makeCrl({ ca: 'other-ca', revoke: [{ cert: other }] })}`;
    const { crls: blocks, revocations } = readCrlFile(Buffer.from(text), 'crl.pem');
    expect(blocks.map((b) => b.toString('latin1'))).toEqual(text.match(/-----BEGIN X509 CRL-----[^-]*-----END X509 CRL-----/g));
    expect([revokes(revocations, x), revokes(revocations, other), revokes(revocations, sameSerial), revokes(revocations, y)]).toEqual([true, true, false, false]);
  });
});

describe('revocation of a chain', () => {
  const revocations: Revocations = new Map([['issuer-a', new Set(['0A'])]]);
  it('any certificate of the chain revoked by its issuer revokes the connection; an unreadable certificate is matched by serial alone', () => {
    expect(isRevoked(revocations, [{ issuer: 'issuer-b', serial: '01' }, { issuer: 'issuer-a', serial: '0A' }])).toBe(true);
    expect(isRevoked(revocations, [{ issuer: 'issuer-b', serial: '0A' }])).toBe(false);
    expect(isRevoked(revocations, [{ issuer: undefined, serial: '0A' }])).toBe(true);
    expect(isRevoked(revocations, [])).toBe(false);
  });
});

describe('files that are not CRLs', () => {
  it('no PEM CRL, a DER file, a certificate instead of a CRL, truncated base64: a CONFIG error naming the file', () => {
    expect(configError(() => readCrlFile(Buffer.from('not a CRL'), '/etc/crl.pem')).message).toMatch(/\/etc\/crl\.pem holds no PEM CRL/);
    const pem = makeCrl({ revoke: [{ cert: x }] });
    const der = Buffer.from(pem.replace(/-----[A-Z0-9 ]+-----/g, ''), 'base64');
    configError(() => readCrlFile(der, 'crl.der'));
    const cert = readFileSync(x, 'latin1').replace(/CERTIFICATE/g, 'X509 CRL');
    expect(configError(() => readCrlFile(Buffer.from(cert), 'crl.pem')).message).toMatch(/crl\.pem cannot be read/);
    configError(() => readCrlFile(Buffer.from(pem.replace(/\n[^\n]+\n-----END/, '\n-----END')), 'crl.pem'));
  });

  it('any bytes between the PEM lines give revocations or a CONFIG error, never another exception', () => {
    const der = Buffer.from(makeCrl({ v2: true, revoke: [{ cert: x, reason: 'keyCompromise' }, { cert: y }] }).replace(/-----[A-Z0-9 ]+-----/g, ''), 'base64');
    const asPem = (bytes: Uint8Array) => Buffer.from(`-----BEGIN X509 CRL-----\n${Buffer.from(bytes).toString('base64')}\n-----END X509 CRL-----\n`);
    const mangled = fc.oneof(
      fc.uint8Array({ maxLength: 300 }),
      fc.nat(der.length).map((n) => der.subarray(0, n)),
      fc.tuple(fc.nat(der.length - 1), fc.integer({ min: 0, max: 255 })).map(([at, byte]) => {
        const copy = Buffer.from(der);
        copy[at] = byte;
        return copy;
      }),
    );
    fc.assert(
      fc.property(mangled, (bytes) => {
        try {
          readCrlFile(asPem(bytes), 'crl.pem');
        } catch (err) {
          expect(err).toBeInstanceOf(BmcError);
          expect((err as BmcError).code).toBe('CONFIG');
        }
      }),
      { numRuns: 2000 },
    );
  });
});

/** openssl's reading of a CRL's nextUpdate (`nextUpdate=Dec  7 13:10:00 2026 GMT`) */
function opensslNextUpdate(pem: string): Date {
  const text = execFileSync('openssl', ['crl', '-noout', '-nextupdate'], { input: pem, encoding: 'latin1' });
  const m = /nextUpdate=(\w{3}) +(\d+) (\d\d):(\d\d):(\d\d) (\d{4}) GMT/.exec(text);
  if (!m) throw new Error(`openssl printed no nextUpdate: ${text}`);
  const month = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'].indexOf(m[1]!);
  return new Date(Date.UTC(Number(m[6]), month, Number(m[2]), Number(m[3]), Number(m[4]), Number(m[5])));
}

describe("a CRL's nextUpdate", () => {
  it('is read as openssl reads it, as UTCTime (before 2050) and as GeneralizedTime; the latest of one CA, the earliest of several CAs', () => {
    const soon = makeCrl({ revoke: [{ cert: x }] });
    const far = makeCrl({ v2: true, gencrl: ['-crl_lastupdate', '20510101000000Z', '-crl_nextupdate', '20510102030405Z'] });
    const past = makeCrl({ v2: true, gencrl: ['-crl_lastupdate', '20200101000000Z', '-crl_nextupdate', '20200102000000Z'] });
    expect(readCrlFile(Buffer.from(soon), 'crl.pem').nextUpdate).toEqual(opensslNextUpdate(soon));
    expect(readCrlFile(Buffer.from(far), 'crl.pem').nextUpdate).toEqual(new Date('2051-01-02T03:04:05Z'));
    expect(readCrlFile(Buffer.from(far), 'crl.pem').nextUpdate).toEqual(opensslNextUpdate(far));
    // of one CA's CRLs the latest counts (OpenSSL uses the one still valid); of several CAs the earliest
    expect(readCrlFile(Buffer.from(far + soon + past), 'crl.pem').nextUpdate).toEqual(new Date('2051-01-02T03:04:05Z'));
    // a nextUpdate that is no time leaves it unknown, and what the CRL revokes in force
    const der = Buffer.from(soon.replace(/-----[A-Z0-9 ]+-----/g, ''), 'base64');
    const thisUpdateAt = der.indexOf(Buffer.from([0x17, 0x0d]));
    const nextUpdateAt = der.indexOf(Buffer.from([0x17, 0x0d]), thisUpdateAt + 15);
    expect(nextUpdateAt).toBeGreaterThan(thisUpdateAt);
    der.write('XX', nextUpdateAt + 2, 'latin1');
    const mangled = readCrlFile(Buffer.from(`-----BEGIN X509 CRL-----\n${der.toString('base64')}\n-----END X509 CRL-----\n`), 'crl.pem');
    expect(mangled.nextUpdate).toBeUndefined();
    expect(revokes(mangled.revocations, x)).toBe(true);
    const otherCa = makeCrl({ ca: 'other-ca', gencrl: ['-crl_lastupdate', '20200101000000Z', '-crl_nextupdate', '20200102000000Z'] });
    expect(readCrlFile(Buffer.from(far + otherCa), 'crl.pem').nextUpdate).toEqual(new Date('2020-01-02T00:00:00Z'));
  });

  it('derTime reads every time RFC 5280 writes and nothing else', () => {
    const UTC = 0x17;
    const GENERALIZED = 0x18;
    const two = (n: number) => String(n).padStart(2, '0');
    const fields = (d: Date) => `${two(d.getUTCMonth() + 1)}${two(d.getUTCDate())}${two(d.getUTCHours())}${two(d.getUTCMinutes())}${two(d.getUTCSeconds())}Z`;
    const seconds = (d: Date) => new Date(Math.floor(d.getTime() / 1000) * 1000);
    // UTCTime covers 1950-2049 (RFC 5280 4.1.2.5.1), GeneralizedTime any four-digit year
    fc.assert(
      fc.property(fc.date({ min: new Date('1950-01-01T00:00:00Z'), max: new Date('2049-12-31T23:59:59Z'), noInvalidDate: true }).map(seconds), (d) => {
        expect(derTime(UTC, Buffer.from(`${two(d.getUTCFullYear() % 100)}${fields(d)}`))).toEqual(d);
      }),
    );
    fc.assert(
      fc.property(fc.date({ min: new Date('0001-01-01T00:00:00Z'), max: new Date('9999-12-31T23:59:59Z'), noInvalidDate: true }).map(seconds), (d) => {
        expect(derTime(GENERALIZED, Buffer.from(`${String(d.getUTCFullYear()).padStart(4, '0')}${fields(d)}`))).toEqual(d);
      }),
    );
    // any other text: an Error or a real date, nothing else
    fc.assert(
      fc.property(fc.constantFrom(UTC, GENERALIZED, 0x04), fc.oneof(fc.string({ maxLength: 20 }), fc.stringMatching(/^\d{10,18}(Z|[+-]\d{4})$/), fc.stringMatching(/^\d{14}[.,]\d{1,4}Z$/)), (tag, text) => {
        let date: Date;
        try {
          date = derTime(tag, Buffer.from(text, 'latin1'));
        } catch (err) {
          expect(err).toBeInstanceOf(Error);
          return;
        }
        expect(Number.isNaN(date.getTime())).toBe(false);
      }),
      { numRuns: 2000 },
    );
    // what OpenSSL reads beyond RFC 5280: no seconds, an offset, GeneralizedTime without minutes or with a fraction
    expect(derTime(UTC, Buffer.from('2601011200Z'))).toEqual(new Date('2026-01-01T12:00:00Z'));
    expect(derTime(UTC, Buffer.from('260101120000+0130'))).toEqual(new Date('2026-01-01T10:30:00Z'));
    expect(derTime(UTC, Buffer.from('491231235959-0100'))).toEqual(new Date('2050-01-01T00:59:59Z'));
    expect(derTime(GENERALIZED, Buffer.from('2026010112Z'))).toEqual(new Date('2026-01-01T12:00:00Z'));
    expect(derTime(GENERALIZED, Buffer.from('20260101120000.25Z'))).toEqual(new Date('2026-01-01T12:00:00.250Z'));
    for (const bad of ['260230000000Z', '261301000000Z', '260101240000Z', '260101000000.5Z', '260101000000', '260101000000+2400', '2601010000000Z']) expect(() => derTime(UTC, Buffer.from(bad)), bad).toThrow();
    expect(() => derTime(GENERALIZED, Buffer.from('21000229000000Z'))).toThrow();
  });
});
