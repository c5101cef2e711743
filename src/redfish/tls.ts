/**
 * TLS policy for BMC connections, as an undici connector.
 *  - `insecure`: accept any certificate (BMCs ship self-signed ones; the default).
 *  - `ca`: verify the chain against this PEM bundle (and the host name).
 *  - `pinnedSha256`: accept exactly the certificate with this SHA-256 fingerprint,
 *    self-signed or not. Checked on every new connection, after the handshake;
 *    TLS session resumption is off so that every connection presents its certificate.
 * The connect timeout bounds TCP connect plus the TLS handshake. Connectors come from
 * tls-context.ts: one SecureContext and one TLS session cache per option set, for every BMC.
 */
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { buildConnector } from 'undici';
import { sharedConnector } from './tls-context.js';
import { BmcError } from '../errors.js';

export type TlsPolicy = { kind: 'insecure' } | { kind: 'ca'; ca: string | Buffer } | { kind: 'pinned'; sha256: string };

export interface TlsOptions {
  insecure?: boolean;
  ca?: string | Buffer;
  pinnedSha256?: string;
}

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
 * Bounds connect plus handshake with a precise timer of our own (undici's connect timer
 * runs on a coarse clock with up to a second of slack).
 */
function withConnectTimeout(connect: buildConnector.connector, ms: number): buildConnector.connector {
  return (options, callback) => {
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
  };
}

export function tlsConnector(policy: TlsPolicy, connectTimeoutMs: number): buildConnector.connector {
  return withConnectTimeout(baseConnector(policy, connectTimeoutMs), connectTimeoutMs);
}

function baseConnector(policy: TlsPolicy, connectTimeoutMs: number): buildConnector.connector {
  // undici's own timer stays as a backstop only.
  const common = { timeout: connectTimeoutMs + 1000, keepAlive: true, minVersion: 'TLSv1.2' as const };
  switch (policy.kind) {
    case 'insecure':
      return sharedConnector({ ...common, rejectUnauthorized: false }).connector;
    case 'ca':
      return sharedConnector({ ...common, rejectUnauthorized: true, ...(policy.ca === '' ? {} : { ca: policy.ca }) }).connector;
    case 'pinned': {
      const base = sharedConnector({ ...common, rejectUnauthorized: false, maxCachedSessions: 0 }).connector;
      return (options, callback) =>
        base(options, (err, socket) => {
          if (err !== null) {
            callback(err, null);
            return;
          }
          const cert = (socket as TLSSocket).getPeerCertificate?.();
          const got = cert?.fingerprint256 === undefined ? undefined : normalizeFingerprint(cert.fingerprint256);
          if (got !== policy.sha256) {
            socket.destroy();
            callback(
              new BmcError('AUTH_FAILED', `TLS certificate of ${options.hostname} does not match the pinned SHA-256 fingerprint (got ${got ?? 'none'})`),
              null,
            );
            return;
          }
          callback(null, socket);
        });
    }
  }
}
