/**
 * TLS material and rules shared by both console listeners: TLS 1.3 only, the server certificate
 * and key from the console files, client certificates verified against the console CA, and the
 * certificate subject as the client's identity in logs and keyboard notices.
 * The CRL file is read by crl.ts, which also ends connections a reloaded CRL revokes.
 */
import { readFileSync } from 'node:fs';
import { constants } from 'node:crypto';
import type { PeerCertificate, SecureContextOptions, TLSSocket, TlsOptions } from 'node:tls';
import { BmcError } from '../errors.js';
import { certificatePrincipal, type Principal } from './access.js';
import { NO_REVOCATIONS, readCrlFile, type Revocations } from './crl.js';

export interface ConsoleTlsFiles {
  caCertFile: string;
  certFile: string;
  keyFile: string;
  /** PEM certificate revocation list(s) of the console CA; revoked client certificates are refused */
  crlFile?: string;
}

export interface ConsoleTls {
  ca: Buffer;
  cert: Buffer;
  key: Buffer;
  keyFile: string;
  /** the CRL file's CRLs, one PEM block each: node:tls reads only the first CRL of a buffer */
  crls?: Buffer[];
  crlFile?: string;
  /** what the CRLs revoke, to end connections opened before a reload; empty without a CRL file */
  revocations: Revocations;
  /** the earliest nextUpdate of the CRLs: past it, node:tls refuses every client certificate they cover (CRL_HAS_EXPIRED) */
  crlNextUpdate?: Date;
}

function read(file: string, what: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new BmcError('CONFIG', `console ${what} ${file} cannot be read: ${(err as Error).message}`, { cause: err });
  }
}

export function loadConsoleTls(files: Partial<ConsoleTlsFiles>): ConsoleTls {
  const { caCertFile, certFile, keyFile } = files;
  if (!caCertFile || !certFile || !keyFile) {
    throw new BmcError('CONFIG', 'the console needs a CA file, a certificate file and a key file (METAL_BMC_CONSOLE_CA_CERT_FILE, _CERT_FILE, _KEY_FILE)');
  }
  const tls: ConsoleTls = { ca: read(caCertFile, 'CA file'), cert: read(certFile, 'certificate file'), key: read(keyFile, 'key file'), keyFile, revocations: NO_REVOCATIONS };
  if (!files.crlFile) return tls;
  const { crls, revocations, nextUpdate } = readCrlFile(read(files.crlFile, 'CRL file'), files.crlFile);
  return { ...tls, crls, crlFile: files.crlFile, revocations, ...(nextUpdate ? { crlNextUpdate: nextUpdate } : {}) };
}

/**
 * The same TLS material with the CRL file read again: the CA, certificate and key stay those the
 * listeners started with (the SSH host key is derived from that key; a new key or certificate takes
 * a restart, as it always did for SSH), so a CRL refresh changes the revocations and nothing else.
 */
export function withReloadedCrl(tls: ConsoleTls, crlFile: string): ConsoleTls {
  const { crls, revocations, nextUpdate } = readCrlFile(read(crlFile, 'CRL file'), crlFile);
  const { crlNextUpdate: _previous, ...rest } = tls;
  return { ...rest, crls, crlFile, revocations, ...(nextUpdate ? { crlNextUpdate: nextUpdate } : {}) };
}

/**
 * The secure context of both console listeners: TLS 1.3 only, no renegotiation. Also what
 * `server.setSecureContext()` gets when the CRL is reloaded, which resets every option it is not
 * given: without the version here, the first CRL reload let TLS 1.2 in (and with it
 * renegotiation, in which a client presents another certificate after the first was verified).
 */
export function secureContextOptions(tls: ConsoleTls): SecureContextOptions {
  return { ca: tls.ca, cert: tls.cert, key: tls.key, minVersion: 'TLSv1.3', secureOptions: constants.SSL_OP_NO_RENEGOTIATION, ...(tls.crls ? { crl: tls.crls } : {}) };
}

/**
 * Server options: the secure context above, client certificates requested and verified against
 * the CA. `requireClientCert: false` (bearer-token mode of the WebSocket listener) still asks for
 * a certificate and verifies it, but lets the handshake finish without one; the listener then
 * decides per request (`socket.authorized`).
 */
export function serverTlsOptions(tls: ConsoleTls, requireClientCert: boolean): TlsOptions {
  return { ...secureContextOptions(tls), requestCert: true, rejectUnauthorized: requireClientCert };
}

function formatSubject(subject: PeerCertificate['subject'] | undefined): string {
  if (!subject) return '';
  return Object.entries(subject)
    .map(([k, v]) => `${k}=${Array.isArray(v) ? v.join('+') : String(v)}`)
    .join(',');
}

/** `CN=metal-console,O=metal-stack` for a verified client certificate, undefined otherwise. */
export function verifiedSubject(socket: TLSSocket): string | undefined {
  // authorized is not set back when a later verification fails (a renegotiation): both must hold
  if (!socket.authorized || socket.authorizationError) return undefined;
  const cert = socket.getPeerCertificate();
  if (!cert || Object.keys(cert).length === 0) return undefined;
  return formatSubject(cert.subject) || `serial=${cert.serialNumber}`;
}

/** The verified client certificate as a principal for authorisation, undefined without one. */
export function verifiedPrincipal(socket: TLSSocket): { principal: Principal; subject: string } | undefined {
  const subject = verifiedSubject(socket);
  if (subject === undefined) return undefined;
  return { principal: certificatePrincipal(socket.getPeerCertificate(), subject), subject };
}
