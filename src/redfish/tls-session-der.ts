/**
 * A TLS session as Node hands it out (the `session` event): OpenSSL's DER encoding of
 * SSL_SESSION (ssl/ssl_asn1.c), a SEQUENCE whose field `peer [3] EXPLICIT Certificate OPTIONAL`
 * holds the server's whole certificate. Setting the session on the next connection decodes it
 * again, certificate included: with OpenSSL 3 that is most of a resumed connection's CPU on the
 * client (~0.25–0.3 ms of ~0.35 ms, EC or RSA alike).
 *
 * `withoutPeerCertificate` drops that field. The session resumes as before (the server sees the
 * same ticket or id); Node then shows no peer certificate on the resumed connection, which it
 * does not show for a full session either, and its `authorizationError` may read "unable to get
 * issuer certificate" under TLS 1.2. So only connections that do not verify through Node
 * (`rejectUnauthorized: false`: no check, or a pin checked by us on full handshakes) may use it.
 * Pure; anything that is not a well-formed DER SEQUENCE of whole elements comes back unchanged.
 *
 * Node 20 only, in effect: Node 22 and later wrap the DER in an envelope of their own (a
 * "nodejs:tls:session:1" header and the server name), which this leaves whole, and their OpenSSL
 * (3.5) decodes a session with its certificate in ~0.05 ms, against ~0.3 ms with Node 20's 3.0.
 */
import { derElementAt } from '../net/der.js';

/** tag of SSL_SESSION's `peer` field: context-specific, constructed, number 3 */
const PEER_TAG = 0xa3;
const SEQUENCE_TAG = 0x30;

/** A DER length field for `n`. */
function lengthField(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

/** The session without the server's certificate; the session itself when it has none or is not DER as expected. */
export function withoutPeerCertificate(session: Buffer): Buffer {
  const outer = derElementAt(session, 0, session.length);
  if (outer === undefined || outer.tag !== SEQUENCE_TAG || outer.end !== session.length) return session;
  const kept: Buffer[] = [];
  let dropped = false;
  for (let at = outer.body; at < outer.end; ) {
    const e = derElementAt(session, at, outer.end);
    if (e === undefined) return session;
    if (e.tag === PEER_TAG) dropped = true;
    else kept.push(session.subarray(e.start, e.end));
    at = e.end;
  }
  if (!dropped) return session;
  const body = Buffer.concat(kept);
  return Buffer.concat([Buffer.from([SEQUENCE_TAG]), lengthField(body.length), body]);
}

