/**
 * Revocation of console clients beyond the handshake: node:tls checks the CRL only in the
 * handshake, and `setSecureContext()` leaves the connections already open alone. So each listener
 * keeps its certificate-authenticated connections (`trackCertifiedConnections`) with their
 * certificates as a CRL names them (issuer and serial number), and a reloaded CRL, read here with
 * a small DER reader (`readCrlFile`; Node 20 has no CRL parser), ends those it revokes.
 */
import type { DetailedPeerCertificate, TLSSocket } from 'node:tls';
import { BmcError } from '../errors.js';
import { derElementAt } from '../net/der.js';
import { remoteOf } from './remote.js';

/**
 * A certificate as a CRL names it: the DER bytes of its issuer's name (hex) and its serial number
 * (upper-case hex without leading zero bytes). `issuer` is undefined for a certificate that could
 * not be read; then a CRL of any issuer that lists the serial revokes it.
 */
export interface CertificateId {
  issuer: string | undefined;
  serial: string;
}

/** Serial numbers revoked per issuer (the issuer's name as DER hex), over every CRL of the file. */
export type Revocations = ReadonlyMap<string, ReadonlySet<string>>;

export const NO_REVOCATIONS: Revocations = new Map();

// The few DER tags a certificate's issuer and serial, and a CRL's revoked serials, are read from.
const DER_INTEGER = 0x02;
const DER_OCTET_STRING = 0x04;
const DER_OID = 0x06;
const DER_ENUMERATED = 0x0a;
const DER_UTC_TIME = 0x17;
const DER_GENERALIZED_TIME = 0x18;
const DER_SEQUENCE = 0x30;
/** [0] EXPLICIT: a certificate's version */
const DER_CONTEXT_0 = 0xa0;
/** id-ce-cRLReasons, 2.5.29.21 */
const REASON_CODE_OID = '551d15';
/** CRLReason removeFromCRL: OpenSSL does not count such an entry as a revocation, nor do we */
const REMOVE_FROM_CRL = 8;

interface DerElement {
  tag: number;
  /** the element with its header: what a name is compared by */
  whole: Buffer;
  content: Buffer;
}

/** The DER element at `offset`; throws on lengths past the end and on what X.509 does not use (high tag numbers, indefinite lengths). */
function derAt(der: Buffer, offset: number): DerElement {
  const e = derElementAt(der, offset);
  if (e === undefined) throw new Error('truncated or unsupported DER');
  return { tag: e.tag, whole: der.subarray(e.start, e.end), content: der.subarray(e.body, e.end) };
}

function derChildren(parent: DerElement): DerElement[] {
  const children: DerElement[] = [];
  for (let offset = 0; offset < parent.content.length; offset += children[children.length - 1]!.whole.length) children.push(derAt(parent.content, offset));
  return children;
}

function expectTag(element: DerElement | undefined, tag: number, what: string): DerElement {
  if (element?.tag !== tag) throw new Error(`${what} expected`);
  return element;
}

const isTime = (element: DerElement | undefined) => element?.tag === DER_UTC_TIME || element?.tag === DER_GENERALIZED_TIME;

/**
 * UTCTime YYMMDDHHMM[SS] and GeneralizedTime YYYYMMDDHH[MM[SS[.fff]]], each ending in Z or an offset
 * ±HHMM: what OpenSSL reads (RFC 5280 4.1.2.5 writes only YYMMDDHHMMSSZ and YYYYMMDDHHMMSSZ, YY 50–99
 * being 19YY and else 20YY; CAs do not all keep to it)
 */
const UTC_TIME = /^(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})?(Z|[+-]\d{4})$/;
const GENERALIZED_TIME = /^(\d{4})(\d{2})(\d{2})(\d{2})(?:(\d{2})(?:(\d{2})(?:[.,](\d+))?)?)?(Z|[+-]\d{4})$/;

/** The time of a DER UTCTime or GeneralizedTime as OpenSSL reads them; throws on any other form or an impossible date. */
export function derTime(tag: number, content: Buffer): Date {
  const text = content.toString('latin1');
  const fail = (): never => {
    throw new Error(`not a time: ${JSON.stringify(text.slice(0, 24))}`);
  };
  let year: number;
  let fields: Array<string | undefined>;
  if (tag === DER_UTC_TIME) {
    const m = UTC_TIME.exec(text) ?? fail();
    const yy = Number(m[1]);
    year = yy >= 50 ? 1900 + yy : 2000 + yy;
    fields = [m[2], m[3], m[4], m[5], m[6], undefined, m[7]];
  } else if (tag === DER_GENERALIZED_TIME) {
    const m = GENERALIZED_TIME.exec(text) ?? fail();
    year = Number(m[1]);
    fields = m.slice(2, 9);
  } else return fail();
  const [month, day, hour, minute, second] = fields.slice(0, 5).map((f) => Number(f ?? 0)) as [number, number, number, number, number];
  const fraction = fields[5];
  const zone = fields[6]!;
  const [offsetHours, offsetMins] = zone === 'Z' ? [0, 0] : [Number(zone.slice(1, 3)), Number(zone.slice(3, 5))];
  if (hour > 23 || minute > 59 || second > 59 || offsetHours > 23 || offsetMins > 59) fail();
  const offsetMinutes = (zone[0] === '-' ? -1 : 1) * (offsetHours * 60 + offsetMins);
  const date = new Date(0);
  date.setUTCFullYear(year, month - 1, day);
  // Date rolls 31 April over into 1 May: such a date is not one
  if (date.getUTCFullYear() !== year || date.getUTCMonth() !== month - 1 || date.getUTCDate() !== day) fail();
  date.setUTCHours(hour, minute, second, fraction === undefined ? 0 : Math.floor(Number(`0.${fraction}`) * 1000));
  return new Date(date.getTime() - offsetMinutes * 60_000);
}

function readableTime(element: DerElement): Date | undefined {
  try {
    return derTime(element.tag, element.content);
  } catch {
    return undefined;
  }
}

function serialHex(integer: DerElement): string {
  let bytes = integer.content;
  while (bytes.length > 1 && bytes[0] === 0) bytes = bytes.subarray(1);
  return bytes.toString('hex').toUpperCase();
}

/** The fields of the signed part of a certificate or CRL (the first element of its outer SEQUENCE). */
function signedFields(der: Buffer, what: string): DerElement[] {
  const outer = expectTag(derAt(der, 0), DER_SEQUENCE, what);
  return derChildren(expectTag(derChildren(outer)[0], DER_SEQUENCE, `${what}: signed part`));
}

/** Issuer and serial number of a DER certificate (RFC 5280 4.1); throws on one that cannot be read. */
export function certificateId(der: Buffer): CertificateId {
  const fields = signedFields(der, 'certificate');
  const at = fields[0]?.tag === DER_CONTEXT_0 ? 1 : 0; // version, absent in v1
  const serial = expectTag(fields[at], DER_INTEGER, 'certificate: serial number');
  expectTag(fields[at + 1], DER_SEQUENCE, 'certificate: signature algorithm');
  const issuer = expectTag(fields[at + 2], DER_SEQUENCE, 'certificate: issuer');
  return { issuer: issuer.whole.toString('hex'), serial: serialHex(serial) };
}

/** The reasonCode of a revoked entry's extensions, undefined without one. */
function reasonCode(extensions: DerElement): number | undefined {
  for (const extension of derChildren(expectTag(extensions, DER_SEQUENCE, 'CRL entry extensions'))) {
    const parts = derChildren(expectTag(extension, DER_SEQUENCE, 'CRL entry extension'));
    if (expectTag(parts[0], DER_OID, 'extension id').content.toString('hex') !== REASON_CODE_OID) continue;
    const value = expectTag(parts[parts.length - 1], DER_OCTET_STRING, 'extension value');
    const reason = expectTag(derAt(value.content, 0), DER_ENUMERATED, 'reason code');
    return reason.content.length === 1 ? reason.content[0] : undefined;
  }
  return undefined;
}

/**
 * Issuer and revoked serial numbers of one DER CRL (RFC 5280 5.1). The signature is not checked
 * here: node:tls checks it in every handshake, and a CRL it cannot verify refuses everyone anyway.
 */
export function crlRevocations(der: Buffer): { issuer: string; serials: string[]; nextUpdate: Date | undefined } {
  const fields = signedFields(der, 'CRL');
  let at = fields[0]?.tag === DER_INTEGER ? 1 : 0; // version, absent in v1
  expectTag(fields[at++], DER_SEQUENCE, 'CRL: signature algorithm');
  const issuer = expectTag(fields[at++], DER_SEQUENCE, 'CRL: issuer');
  if (!isTime(fields[at++])) throw new Error('CRL: thisUpdate expected');
  // when the next CRL is due: past it, OpenSSL refuses every certificate this CRL covers (CRL_HAS_EXPIRED);
  // one that cannot be read as a time is left unknown, not a reason to refuse the CRL's revocations
  const next = isTime(fields[at]) ? fields[at++]! : undefined;
  const nextUpdate = next ? readableTime(next) : undefined;
  const list = fields[at]?.tag === DER_SEQUENCE ? derChildren(fields[at]!) : []; // absent when nothing is revoked
  const serials: string[] = [];
  for (const entry of list) {
    const [serial, date, extensions] = derChildren(expectTag(entry, DER_SEQUENCE, 'CRL entry'));
    if (!isTime(date)) throw new Error('CRL entry: revocation date expected');
    if (extensions === undefined || reasonCode(extensions) !== REMOVE_FROM_CRL) serials.push(serialHex(expectTag(serial, DER_INTEGER, 'CRL entry: serial number')));
  }
  return { issuer: issuer.whole.toString('hex'), serials, nextUpdate };
}

const PEM_CRL = /-----BEGIN X509 CRL-----([^-]*)-----END X509 CRL-----/g;

/**
 * The CRLs of a PEM CRL file: each as a PEM block of its own for node:tls, what they revoke
 * together (the serials of several CRLs of one issuer are joined), and when the first of its
 * issuers' CRLs goes out of date: the earliest over the issuers of each one's latest nextUpdate
 * (undefined when none names one). Throws a CONFIG error naming
 * the file when it holds no CRL or one that cannot be read.
 */
export function readCrlFile(pem: Buffer, file: string): { crls: Buffer[]; revocations: Revocations; nextUpdate: Date | undefined } {
  const blocks = [...pem.toString('latin1').matchAll(PEM_CRL)];
  if (blocks.length === 0) throw new BmcError('CONFIG', `console CRL file ${file} holds no PEM CRL (-----BEGIN X509 CRL-----)`);
  const revocations = new Map<string, Set<string>>();
  /** per issuer the latest nextUpdate of its CRLs: of several, OpenSSL uses the one still valid */
  const nextUpdates = new Map<string, Date>();
  for (const [, base64] of blocks) {
    let crl: ReturnType<typeof crlRevocations>;
    try {
      crl = crlRevocations(Buffer.from(base64 ?? '', 'base64'));
    } catch (err) {
      throw new BmcError('CONFIG', `console CRL file ${file} cannot be read: ${(err as Error).message}`, { cause: err });
    }
    const serials = revocations.get(crl.issuer) ?? new Set<string>();
    for (const serial of crl.serials) serials.add(serial);
    revocations.set(crl.issuer, serials);
    const latest = nextUpdates.get(crl.issuer);
    if (crl.nextUpdate && (latest === undefined || crl.nextUpdate > latest)) nextUpdates.set(crl.issuer, crl.nextUpdate);
  }
  const nextUpdate = [...nextUpdates.values()].reduce<Date | undefined>((earliest, d) => (earliest === undefined || d < earliest ? d : earliest), undefined);
  return { crls: blocks.map(([block]) => Buffer.from(block, 'latin1')), revocations, nextUpdate };
}

/** The verified peer certificate and the CA certificates above it, as a CRL names them. */
export function peerCertificateChain(socket: TLSSocket): CertificateId[] {
  const chain: CertificateId[] = [];
  const seen = new Set<DetailedPeerCertificate>();
  // the root's issuerCertificate is itself; an empty object stands for no certificate
  for (let cert: DetailedPeerCertificate | undefined = socket.getPeerCertificate(true); cert?.raw && !seen.has(cert); cert = cert.issuerCertificate) {
    seen.add(cert);
    try {
      chain.push(certificateId(cert.raw));
    } catch {
      chain.push({ issuer: undefined, serial: (cert.serialNumber ?? '').toUpperCase() });
    }
  }
  return chain;
}

export function isRevoked(revocations: Revocations, chain: readonly CertificateId[]): boolean {
  return chain.some(({ issuer, serial }) => (issuer === undefined ? [...revocations.values()].some((serials) => serials.has(serial)) : revocations.get(issuer)?.has(serial) === true));
}

/** How long a connection ended for a revoked certificate may take to close itself (WebSocket close handshake, SSH disconnect) before its socket is destroyed. */
export const REVOKED_CLOSE_GRACE_MS = 1000;

export interface RevokedConnection {
  remote: string;
  /** the client certificate's subject */
  subject: string;
  /** the client certificate's serial number (hex), to match the log line to the CRL entry */
  serial: string;
}

/** A listener's connections authenticated by a client certificate, ended when a reloaded CRL revokes the certificate. */
export interface CertifiedConnections {
  /**
   * Keeps a socket with a verified client certificate until it closes. `end` is how the listener
   * ends it should the certificate be revoked: a last word where the protocol has one, then a
   * close that the socket's destruction follows after REVOKED_CLOSE_GRACE_MS. A certificate the
   * current CRL revokes already (its handshake raced the reload) is ended at once: false.
   */
  add(socket: TLSSocket, subject: string, end: () => void): boolean;
  /** The CRL was reloaded: ends every open connection whose certificate chain it revokes; returns how many. */
  applyRevocations(revocations: Revocations): number;
}

export function trackCertifiedConnections(revocations: Revocations, onRevoked: (connection: RevokedConnection) => void): CertifiedConnections {
  interface Certified {
    remote: string;
    subject: string;
    chain: CertificateId[];
    end: () => void;
  }
  let current = revocations;
  const open = new Map<TLSSocket, Certified>();
  const endRevoked = (socket: TLSSocket, connection: Certified) => {
    open.delete(socket);
    onRevoked({ remote: connection.remote, subject: connection.subject, serial: connection.chain[0]?.serial ?? '' });
    // a peer that never answers the close must not keep the socket (and its input) open
    const grace = setTimeout(() => socket.destroy(), REVOKED_CLOSE_GRACE_MS);
    grace.unref();
    socket.once('close', () => clearTimeout(grace));
    connection.end();
  };
  return {
    add(socket, subject, end) {
      const connection: Certified = { remote: remoteOf(socket), subject, chain: peerCertificateChain(socket), end };
      if (isRevoked(current, connection.chain)) {
        endRevoked(socket, connection);
        return false;
      }
      open.set(socket, connection);
      socket.once('close', () => open.delete(socket));
      return true;
    },
    applyRevocations(next) {
      current = next;
      let ended = 0;
      for (const [socket, connection] of open) {
        if (!isRevoked(next, connection.chain)) continue;
        endRevoked(socket, connection);
        ended++;
      }
      return ended;
    },
  };
}
