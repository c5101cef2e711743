/**
 * TLS policy for BMC connections, as a connector (undici's connector signature, which h1-connection.ts calls).
 *  - `insecure`: accept any certificate (BMCs ship self-signed ones; the default).
 *  - `ca`: verify the chain against this PEM bundle (and the host name).
 *  - `pinnedSha256`: accept exactly the certificate with this SHA-256 fingerprint,
 *    self-signed or not. Checked after every full handshake; a session is resumed only from the
 *    pin's own cache, filled by connections that showed the pinned certificate.
 * The connect timeout bounds TCP connect plus the TLS handshake.
 *
 * `legacyTls` (off by default) reaches old BMCs that offer only TLS 1.2 with RSA key exchange
 * and CBC ciphers, and present RSA-1024 or SHA-1-signed certificates (iDRAC 7/8, older AMI
 * MegaRAC and H3C HDM firmware): OpenSSL's whole cipher list at security level 0. TLS 1.2 stays
 * the minimum; nothing older is ever offered.
 *
 * Connectors come from tls-context.ts: one SecureContext and one TLS session cache per option set,
 * for every BMC.
 */
import { createHash } from 'node:crypto';
import { isIP, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import type { buildConnector } from 'undici';
import { abortError, BmcError } from '../errors.js';
import { sharedConnector } from './tls-context.js';

export type TlsPolicy = { kind: 'insecure' } | { kind: 'ca'; ca: string | Buffer } | { kind: 'pinned'; sha256: string };

export interface TlsOptions {
  insecure?: boolean;
  ca?: string | Buffer;
  pinnedSha256?: string;
  /** Accept legacy ciphers, RSA-1024 keys and SHA-1 signatures (OpenSSL security level 0). Default false. */
  legacyTls?: boolean;
}

/** The cipher list of `legacyTls`: OpenSSL's default list, with the security level lowered to 0. */
export const LEGACY_TLS_CIPHERS = 'DEFAULT:@SECLEVEL=0';

/** "AB:CD:…" or "abcd…" → 64 lower-case hex digits, or undefined when malformed. */
export function normalizeFingerprint(value: string): string | undefined {
  const hex = value.replace(/[:\s]/g, '').toLowerCase();
  return /^[0-9a-f]{64}$/.test(hex) ? hex : undefined;
}

/** Validated once when the client is built. `ca` and `pinnedSha256` exclude each other. */
export function tlsPolicy(options: TlsOptions): TlsPolicy {
  if (options.ca !== undefined && options.pinnedSha256 !== undefined) {
    throw new BmcError('INVALID_ARGUMENT', 'give either ca or pinnedSha256, not both');
  }
  if (options.pinnedSha256 !== undefined) {
    const sha256 = normalizeFingerprint(options.pinnedSha256);
    if (sha256 === undefined) throw new BmcError('INVALID_ARGUMENT', 'pinnedSha256 must be 64 hex digits (colons allowed)');
    return { kind: 'pinned', sha256 };
  }
  if (options.ca !== undefined) {
    if (options.ca.length === 0) throw new BmcError('INVALID_ARGUMENT', 'ca is empty');
    return { kind: 'ca', ca: options.ca };
  }
  if (options.insecure === false) return { kind: 'ca', ca: '' }; // system trust store
  return { kind: 'insecure' };
}

/**
 * Bounds connect plus handshake with a precise timer of our own: the only one a connect has
 * (the shared connector does not use the `timeout` option).
 */
function withConnectTimeout(connect: buildConnector.connector, ms: number): buildConnector.connector {
  // returns the socket it opened (the connection ignores it): the transport watches its TCP connect (http.ts heedingConnects)
  return ((options: buildConnector.Options, callback: buildConnector.Callback) => {
    const ref: { socket?: Socket } = {};
    let settled = false;
    const timer = setTimeout(() => {
      ref.socket?.destroy(new BmcError('TIMEOUT', `connect to ${options.hostname}:${options.port}: no TLS session within ${ms} ms`));
    }, ms);
    timer.unref();
    ref.socket = (connect as (o: typeof options, cb: buildConnector.Callback) => Socket | undefined)(options, (...args) => {
      settled = true;
      clearTimeout(timer);
      callback(...args);
    });
    if (settled) clearTimeout(timer);
    return ref.socket;
  }) as buildConnector.connector;
}

export function tlsConnector(policy: TlsPolicy, connectTimeoutMs: number, legacyTls = false): buildConnector.connector {
  return withConnectTimeout(baseConnector(policy, legacyTls), connectTimeoutMs);
}

/** The shared connector's options (the SecureContext and session cache are per option set; no timeout: withConnectTimeout bounds a connect, the probe its own). */
function commonOptions(legacyTls: boolean) {
  return { keepAlive: true, minVersion: 'TLSv1.2' as const, ...(legacyTls ? { ciphers: LEGACY_TLS_CIPHERS } : {}) };
}

/**
 * A BMC presenting another certificate than the pinned one: refused before anything is sent. The
 * presented fingerprint is kept for whoever must tell why (a BMC back from a firmware update with a
 * new certificate: redfish/task.ts).
 */
export class PinMismatchError extends BmcError {
  constructor(
    message: string,
    readonly presentedSha256: string | undefined,
  ) {
    super('UNTRUSTED', message);
    this.name = 'PinMismatchError';
  }
}

/** The session-cache scope of connections pinned to this certificate. */
const pinScope = (sha256: string) => `pin:${sha256}`;

function baseConnector(policy: TlsPolicy, legacyTls: boolean): buildConnector.connector {
  const common = commonOptions(legacyTls);
  switch (policy.kind) {
    case 'insecure':
      return sharedConnector({ ...common, rejectUnauthorized: false }).connector;
    case 'ca':
      return sharedConnector({ ...common, rejectUnauthorized: true, ...(policy.ca === '' ? {} : { ca: policy.ca }) }).connector;
    case 'pinned':
      // a resumed session was made with the pinned certificate: scoped() keeps only sessions of
      // connections that showed it (Node shows no certificate on a resumed session)
      return sharedConnector({ ...common, rejectUnauthorized: false }).scoped(pinScope(policy.sha256), (socket) => {
        if (socket.isSessionReused()) return undefined;
        const cert = socket.getPeerCertificate?.();
        const got = cert?.fingerprint256 === undefined ? undefined : normalizeFingerprint(cert.fingerprint256);
        if (got === policy.sha256) return undefined;
        const where = `${socket.remoteAddress ?? 'the BMC'}:${socket.remotePort ?? ''}`;
        return new PinMismatchError(`TLS certificate of ${where} is not the pinned one: presented sha256 ${fingerprintPrefix(got)}, pinned ${fingerprintPrefix(policy.sha256)}`, got);
      });
  }
}

/** The first 16 hex digits of a fingerprint, for messages and logs ("none" when there is none). */
export function fingerprintPrefix(sha256: string | undefined): string {
  return sha256 === undefined ? 'none' : `${sha256.slice(0, 16)}…`;
}

export interface ProbeOptions {
  host: string;
  port: number;
  timeoutMs: number;
  signal?: AbortSignal;
  /** the TLS options of the connections that will be pinned to the probed certificate (legacyTls) */
  legacyTls?: boolean;
  /** the TCP connection made: a sign of life of the BMC (a report read's deadline, report/loop-clock.ts) */
  onConnect?: () => void;
}

/** How long a probe's connection waits for the server's session ticket after its handshake (TLS 1.3 sends it afterwards). */
export const PROBE_SESSION_WAIT_MS = 2000;

/**
 * The SHA-256 fingerprint (hex, of the leaf certificate's DER) that a TLS server presents: a
 * handshake and nothing else, so nothing is sent that the peer could collect. The handshake is
 * a full one through the shared SecureContext of pinned connections, and its TLS session is kept
 * under the pin of the certificate it showed: the login pinned to that certificate right after
 * (trust on first use) resumes it instead of paying a second full handshake. The fingerprint is
 * given at once; the connection stays open in the background until the session ticket arrives
 * (TLS 1.3 sends it after the handshake) or `PROBE_SESSION_WAIT_MS`.
 */
export function probeCertificate(o: ProbeOptions): Promise<string> {
  const what = `TLS certificate of ${o.host}:${o.port}`;
  if (o.signal?.aborted) return Promise.reject(abortError(o.signal, what));
  const shared = sharedConnector({ ...commonOptions(o.legacyTls === true), rejectUnauthorized: false });
  return new Promise((resolve, reject) => {
    let done = false;
    let presented: string | undefined;
    let session: Buffer | undefined;
    let lingering: NodeJS.Timeout | undefined;
    const socket = tlsConnect({
      ...(o.legacyTls === true ? { ciphers: LEGACY_TLS_CIPHERS } : {}),
      secureContext: shared.context,
      host: o.host,
      port: o.port,
      rejectUnauthorized: false,
      minVersion: 'TLSv1.2',
      ...(isIP(o.host) === 0 ? { servername: o.host } : {}),
    });
    if (o.onConnect) socket.once('connect', o.onConnect);
    const keep = () => {
      if (presented !== undefined && session !== undefined) shared.keep(pinScope(presented), o.host, o.port, session);
    };
    const end = () => {
      clearTimeout(lingering);
      socket.destroy();
    };
    const finish = (err: Error | undefined, sha256?: string) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      // the caller's signal is done with: waiting for the ticket is bounded by its own timer
      o.signal?.removeEventListener('abort', onAbort);
      if (err) {
        end();
        return reject(err);
      }
      presented = sha256;
      keep();
      if (session !== undefined) end();
      else {
        socket.unref();
        lingering = setTimeout(end, PROBE_SESSION_WAIT_MS);
        lingering.unref();
      }
      resolve(sha256!);
    };
    const onAbort = () => finish(abortError(o.signal!, what));
    o.signal?.addEventListener('abort', onAbort, { once: true });
    const timer = setTimeout(() => finish(new BmcError('TIMEOUT', `${what}: no TLS session within ${o.timeoutMs} ms`)), o.timeoutMs);
    timer.unref();
    // TLS 1.2 gives the session before secureConnect, TLS 1.3 after it
    socket.on('session', (s: Buffer) => {
      session = s;
      if (done) {
        keep();
        end();
      }
    });
    socket.once('secureConnect', () => {
      const raw = socket.getPeerCertificate()?.raw;
      if (!raw || raw.length === 0) return finish(new BmcError('PROTOCOL', `${what}: the server presented no certificate`));
      socket.resume(); // read on, so a ticket sent after the handshake arrives; nothing else is expected
      finish(undefined, createHash('sha256').update(raw).digest('hex'));
    });
    socket.on('error', (err) => (done ? end() : finish(new BmcError('CLOSED', `${what}: ${err.message}`, { cause: err }))));
  });
}
