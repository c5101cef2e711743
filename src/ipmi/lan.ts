/**
 * Session wrappers of the IPMI LAN interface: the IPMI 1.5 wrapper (used here only
 * without authentication, for Get Channel Authentication Capabilities before a session)
 * and the IPMI 2.0 / RMCP+ wrapper with integrity and confidentiality (section 13.6).
 */
import { timingSafeEqual } from 'node:crypto';
import { DecodeError } from '../errors.js';
import { aesDecrypt, aesEncrypt, integrityCode, INTEGRITY_LENGTH, type ConfidentialityAlgorithm, type IntegrityAlgorithm } from './cipher.js';
import { decodeRmcp, RMCP_CLASS_IPMI, rmcpHeader } from './rmcp.js';

export const AUTH_TYPE_NONE = 0x00;
export const AUTH_TYPE_RMCP_PLUS = 0x06;

export const PayloadType = {
  ipmi: 0x00,
  sol: 0x01,
  oem: 0x02,
  openSessionRequest: 0x10,
  openSessionResponse: 0x11,
  rakp1: 0x12,
  rakp2: 0x13,
  rakp3: 0x14,
  rakp4: 0x15,
} as const;

const NEXT_HEADER = 0x07;

/** The keys of an established session; absent before RAKP completes. */
export interface SessionKeys {
  integrity: IntegrityAlgorithm;
  confidentiality: ConfidentialityAlgorithm;
  k1: Buffer;
  k2: Buffer;
}

export interface V2Packet {
  payloadType: number;
  sessionId: number;
  seq: number;
  payload: Buffer;
  authenticated: boolean;
  encrypted: boolean;
}

export interface V15Packet {
  authType: number;
  sessionId: number;
  seq: number;
  message: Buffer;
}

export function encodeV15(sessionId: number, seq: number, message: Buffer): Buffer {
  const header = Buffer.alloc(10);
  header[0] = AUTH_TYPE_NONE;
  header.writeUInt32LE(seq >>> 0, 1);
  header.writeUInt32LE(sessionId >>> 0, 5);
  header[9] = message.length;
  return Buffer.concat([rmcpHeader(RMCP_CLASS_IPMI), header, message]);
}

/** Encodes an RMCP+ packet; with keys, the payload is encrypted and/or authenticated as the suite says. */
export function encodeV2(packet: { payloadType: number; sessionId: number; seq: number; payload: Buffer }, keys?: SessionKeys, iv?: Buffer): Buffer {
  const encrypt = keys !== undefined && keys.confidentiality === 'aes-cbc-128' && isSessionPayload(packet.payloadType);
  const authenticate = keys !== undefined && keys.integrity !== 'none' && isSessionPayload(packet.payloadType);
  const payload = encrypt ? aesEncrypt(keys.k2, packet.payload, iv) : packet.payload;
  // one buffer for the whole datagram (a SOL stream sends one per packet it acknowledges):
  // RMCP header, session header (12), payload, then if authenticated the pad, its length, the next
  // header byte and the integrity code over everything from the session header on
  const rmcp = rmcpHeader(RMCP_CLASS_IPMI);
  const headerAt = rmcp.length;
  const payloadEnd = headerAt + 12 + payload.length;
  const padLength = authenticate ? (4 - ((payloadEnd - headerAt + 2) % 4)) % 4 : 0;
  const signedEnd = authenticate ? payloadEnd + padLength + 2 : payloadEnd;
  const out = Buffer.allocUnsafe(signedEnd + (authenticate ? INTEGRITY_LENGTH[keys.integrity] : 0));
  rmcp.copy(out, 0);
  out[headerAt] = AUTH_TYPE_RMCP_PLUS;
  out[headerAt + 1] = (encrypt ? 0x80 : 0) | (authenticate ? 0x40 : 0) | (packet.payloadType & 0x3f);
  out.writeUInt32LE(packet.sessionId >>> 0, headerAt + 2);
  out.writeUInt32LE(packet.seq >>> 0, headerAt + 6);
  out.writeUInt16LE(payload.length, headerAt + 10);
  payload.copy(out, headerAt + 12);
  if (!authenticate) return out;
  out.fill(0xff, payloadEnd, payloadEnd + padLength);
  out[signedEnd - 2] = padLength;
  out[signedEnd - 1] = NEXT_HEADER;
  integrityCode(keys.integrity, keys.k1, out.subarray(headerAt, signedEnd)).copy(out, signedEnd);
  return out;
}

function isSessionPayload(payloadType: number): boolean {
  return payloadType === PayloadType.ipmi || payloadType === PayloadType.sol || payloadType === PayloadType.oem;
}

/** Which wrapper a datagram carries: 'v2' (RMCP+), 'v15', or 'asf' (presence pong). */
export function datagramKind(datagram: Buffer): 'v2' | 'v15' | 'asf' {
  const { messageClass, body } = decodeRmcp(datagram);
  if (messageClass !== RMCP_CLASS_IPMI) return 'asf';
  if (body.length < 1) throw new DecodeError('IPMI datagram has no session header');
  return body[0] === AUTH_TYPE_RMCP_PLUS ? 'v2' : 'v15';
}

/** The payload type of an RMCP+ datagram, read without decoding or verifying anything else. */
export function peekPayloadType(datagram: Buffer): number | undefined {
  if (datagram.length < 6 || datagram[3] !== RMCP_CLASS_IPMI || datagram[4] !== AUTH_TYPE_RMCP_PLUS) return undefined;
  return datagram[5]! & 0x3f;
}

export function decodeV15(datagram: Buffer): V15Packet {
  const { body } = decodeRmcp(datagram);
  if (body.length < 10) throw new DecodeError('IPMI 1.5 session header is truncated');
  const authType = body[0]!;
  const codeLength = authType === AUTH_TYPE_NONE ? 0 : 16;
  const lengthAt = 9 + codeLength;
  if (body.length < lengthAt + 1) throw new DecodeError('IPMI 1.5 session header is truncated');
  const length = body[lengthAt]!;
  const message = body.subarray(lengthAt + 1, lengthAt + 1 + length);
  if (message.length !== length) throw new DecodeError(`IPMI 1.5 message claims ${length} bytes, ${message.length} present`);
  return { authType, seq: body.readUInt32LE(1), sessionId: body.readUInt32LE(5), message: Buffer.from(message) };
}

/**
 * Decodes an RMCP+ packet. With keys, an authenticated packet's integrity code is verified and
 * an encrypted payload decrypted; a packet that should be protected but is not is rejected.
 */
export function decodeV2(datagram: Buffer, keys?: SessionKeys): V2Packet {
  const { body } = decodeRmcp(datagram);
  if (body.length < 12) throw new DecodeError('RMCP+ session header is truncated');
  if (body[0] !== AUTH_TYPE_RMCP_PLUS) throw new DecodeError(`auth type 0x${body[0]!.toString(16)} is not RMCP+`);
  const encrypted = (body[1]! & 0x80) !== 0;
  const authenticated = (body[1]! & 0x40) !== 0;
  const payloadType = body[1]! & 0x3f;
  if (payloadType === PayloadType.oem) throw new DecodeError('OEM payloads are not supported');
  const sessionId = body.readUInt32LE(2);
  const seq = body.readUInt32LE(6);
  const length = body.readUInt16LE(10);
  if (body.length < 12 + length) throw new DecodeError(`RMCP+ payload claims ${length} bytes, ${body.length - 12} present`);
  let payload = body.subarray(12, 12 + length);
  if (keys && isSessionPayload(payloadType) && sessionId !== 0) {
    if (keys.integrity !== 'none') {
      if (!authenticated) throw new DecodeError('packet of an authenticated session carries no integrity code');
      verifyIntegrity(body, 12 + length, keys);
    }
    if (keys.confidentiality !== 'none' && !encrypted) throw new DecodeError('packet of an encrypted session is not encrypted');
  }
  if (encrypted) {
    if (!keys || keys.confidentiality === 'none') throw new DecodeError('encrypted packet outside an encrypted session');
    payload = aesDecrypt(keys.k2, payload);
  }
  // a copy, so the payload does not hold the datagram; decrypted, it is a buffer of its own already
  return { payloadType, sessionId, seq, payload: encrypted ? payload : Buffer.from(payload), authenticated, encrypted };
}

function verifyIntegrity(body: Buffer, payloadEnd: number, keys: SessionKeys): void {
  const codeLength = INTEGRITY_LENGTH[keys.integrity];
  const signedEnd = body.length - codeLength;
  if (signedEnd < payloadEnd + 2) throw new DecodeError('RMCP+ integrity trailer is truncated');
  if (body[signedEnd - 1] !== NEXT_HEADER) throw new DecodeError('RMCP+ integrity trailer has no next-header byte');
  const padLength = body[signedEnd - 2]!;
  if (payloadEnd + padLength + 2 !== signedEnd) throw new DecodeError('RMCP+ integrity pad length does not match the packet');
  const expected = integrityCode(keys.integrity, keys.k1, body.subarray(0, signedEnd));
  // compared in constant time; lengths first (an algorithm without a hash here gives an empty code, and timingSafeEqual throws on unequal lengths)
  const received = body.subarray(signedEnd);
  if (expected.length !== received.length || !timingSafeEqual(expected, received)) throw new DecodeError('RMCP+ integrity check failed');
}
