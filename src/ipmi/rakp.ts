/**
 * The RMCP+ session handshake (IPMI 2.0 sections 13.17-13.31): Open Session and the four
 * RAKP messages, both directions (the simulator answers what the client asks), and the
 * key computations both sides perform. Pure functions over Buffer.
 */
import { DecodeError } from '../errors.js';
import {
  AUTH_ALGORITHM_IDS,
  CONFIDENTIALITY_ALGORITHM_IDS,
  hmac,
  INTEGRITY_ALGORITHM_IDS,
  RAKP4_ICV_LENGTH,
  type AuthAlgorithm,
  type CipherSuite,
} from './cipher.js';

export const Privilege = { callback: 1, user: 2, operator: 3, admin: 4, oem: 5 } as const;
export type PrivilegeName = keyof typeof Privilege;
/** RAKP1 role bit: look the user up by name only, not by name and privilege. */
export const NAME_ONLY_LOOKUP = 0x10;

export const RMCP_PLUS_STATUS: Record<number, string> = {
  0x00: 'no errors',
  0x01: 'insufficient resources to create a session',
  0x02: 'invalid session ID',
  0x03: 'invalid payload type',
  0x04: 'invalid authentication algorithm',
  0x05: 'invalid integrity algorithm',
  0x06: 'no matching authentication payload',
  0x07: 'no matching integrity payload',
  0x08: 'inactive session ID',
  0x09: 'invalid role',
  0x0a: 'unauthorized role or privilege level requested',
  0x0b: 'insufficient resources to create a session at the requested role',
  0x0c: 'invalid name length',
  0x0d: 'unauthorized name',
  0x0e: 'unauthorized GUID',
  0x0f: 'invalid integrity check value',
  0x10: 'invalid confidentiality algorithm',
  0x11: 'no cipher suite match with proposed security algorithms',
  0x12: 'illegal or unrecognized parameter',
};

export function describeRmcpPlusStatus(status: number): string {
  return RMCP_PLUS_STATUS[status] ?? `RMCP+ status 0x${status.toString(16)}`;
}

export interface OpenSessionRequest {
  tag: number;
  privilege: number;
  consoleSessionId: number;
  auth: number;
  integrity: number;
  confidentiality: number;
}

export interface OpenSessionResponse {
  tag: number;
  status: number;
  privilege: number;
  consoleSessionId: number;
  bmcSessionId: number;
  auth: number;
  integrity: number;
  confidentiality: number;
}

function algorithmPayload(kind: number, algorithm: number): Buffer {
  return Buffer.from([kind, 0, 0, 8, algorithm, 0, 0, 0]);
}

export function suiteAlgorithms(suite: CipherSuite): { auth: number; integrity: number; confidentiality: number } {
  return {
    auth: AUTH_ALGORITHM_IDS[suite.auth],
    integrity: INTEGRITY_ALGORITHM_IDS[suite.integrity],
    confidentiality: CONFIDENTIALITY_ALGORITHM_IDS[suite.confidentiality],
  };
}

export function encodeOpenSessionRequest(r: OpenSessionRequest): Buffer {
  const head = Buffer.alloc(8);
  head[0] = r.tag;
  head[1] = r.privilege;
  head.writeUInt32LE(r.consoleSessionId >>> 0, 4);
  return Buffer.concat([head, algorithmPayload(0, r.auth), algorithmPayload(1, r.integrity), algorithmPayload(2, r.confidentiality)]);
}

function readAlgorithm(b: Buffer, at: number, kind: number): number {
  if (b[at] !== kind) throw new DecodeError(`algorithm payload type ${b[at]} where ${kind} was expected`);
  return b[at + 4]! & 0x3f;
}

export function decodeOpenSessionRequest(b: Buffer): OpenSessionRequest {
  if (b.length < 32) throw new DecodeError(`Open Session Request of ${b.length} bytes is shorter than 32`);
  return {
    tag: b[0]!,
    privilege: b[1]! & 0x0f,
    consoleSessionId: b.readUInt32LE(4),
    auth: readAlgorithm(b, 8, 0),
    integrity: readAlgorithm(b, 16, 1),
    confidentiality: readAlgorithm(b, 24, 2),
  };
}

export function encodeOpenSessionResponse(r: OpenSessionResponse): Buffer {
  const head = Buffer.alloc(12);
  head[0] = r.tag;
  head[1] = r.status;
  head[2] = r.privilege;
  head.writeUInt32LE(r.consoleSessionId >>> 0, 4);
  head.writeUInt32LE(r.bmcSessionId >>> 0, 8);
  if (r.status !== 0) return head.subarray(0, 8);
  return Buffer.concat([head, algorithmPayload(0, r.auth), algorithmPayload(1, r.integrity), algorithmPayload(2, r.confidentiality)]);
}

export function decodeOpenSessionResponse(b: Buffer): OpenSessionResponse {
  if (b.length < 2) throw new DecodeError('Open Session Response is truncated');
  const status = b[1]!;
  if (status !== 0) {
    return { tag: b[0]!, status, privilege: 0, consoleSessionId: b.length >= 8 ? b.readUInt32LE(4) : 0, bmcSessionId: 0, auth: 0, integrity: 0, confidentiality: 0 };
  }
  if (b.length < 36) throw new DecodeError(`Open Session Response of ${b.length} bytes is shorter than 36`);
  return {
    tag: b[0]!,
    status,
    privilege: b[2]! & 0x0f,
    consoleSessionId: b.readUInt32LE(4),
    bmcSessionId: b.readUInt32LE(8),
    auth: readAlgorithm(b, 12, 0),
    integrity: readAlgorithm(b, 20, 1),
    confidentiality: readAlgorithm(b, 28, 2),
  };
}

export interface Rakp1 {
  tag: number;
  bmcSessionId: number;
  consoleRandom: Buffer;
  /** requested role byte as sent, including the name-only lookup bit */
  role: number;
  username: Buffer;
}

export function encodeRakp1(r: Rakp1): Buffer {
  if (r.username.length > 16) throw new DecodeError('IPMI user names are at most 16 bytes');
  const b = Buffer.alloc(28 + r.username.length);
  b[0] = r.tag;
  b.writeUInt32LE(r.bmcSessionId >>> 0, 4);
  r.consoleRandom.copy(b, 8, 0, 16);
  b[24] = r.role;
  b[27] = r.username.length;
  r.username.copy(b, 28);
  return b;
}

export function decodeRakp1(b: Buffer): Rakp1 {
  if (b.length < 28) throw new DecodeError(`RAKP1 of ${b.length} bytes is shorter than 28`);
  const length = b[27]!;
  if (length > 16 || b.length < 28 + length) throw new DecodeError(`RAKP1 user name length ${length} is invalid`);
  return {
    tag: b[0]!,
    bmcSessionId: b.readUInt32LE(4),
    consoleRandom: Buffer.from(b.subarray(8, 24)),
    role: b[24]!,
    username: Buffer.from(b.subarray(28, 28 + length)),
  };
}

export interface Rakp2 {
  tag: number;
  status: number;
  consoleSessionId: number;
  bmcRandom: Buffer;
  bmcGuid: Buffer;
  keyExchangeCode: Buffer;
}

export function encodeRakp2(r: Rakp2): Buffer {
  const b = Buffer.alloc(40);
  b[0] = r.tag;
  b[1] = r.status;
  b.writeUInt32LE(r.consoleSessionId >>> 0, 4);
  if (r.status !== 0) return b.subarray(0, 8);
  r.bmcRandom.copy(b, 8, 0, 16);
  r.bmcGuid.copy(b, 24, 0, 16);
  return Buffer.concat([b, r.keyExchangeCode]);
}

export function decodeRakp2(b: Buffer): Rakp2 {
  if (b.length < 2) throw new DecodeError('RAKP2 is truncated');
  const status = b[1]!;
  const consoleSessionId = b.length >= 8 ? b.readUInt32LE(4) : 0;
  if (status !== 0) return { tag: b[0]!, status, consoleSessionId, bmcRandom: Buffer.alloc(0), bmcGuid: Buffer.alloc(0), keyExchangeCode: Buffer.alloc(0) };
  if (b.length < 40) throw new DecodeError(`RAKP2 of ${b.length} bytes is shorter than 40`);
  return {
    tag: b[0]!,
    status,
    consoleSessionId,
    bmcRandom: Buffer.from(b.subarray(8, 24)),
    bmcGuid: Buffer.from(b.subarray(24, 40)),
    keyExchangeCode: Buffer.from(b.subarray(40)),
  };
}

/** RAKP3 (console → BMC) and RAKP4 (BMC → console) share one layout: tag, status, session id, code. */
export interface RakpCode {
  tag: number;
  status: number;
  sessionId: number;
  code: Buffer;
}

export function encodeRakpCode(r: RakpCode): Buffer {
  const b = Buffer.alloc(8);
  b[0] = r.tag;
  b[1] = r.status;
  b.writeUInt32LE(r.sessionId >>> 0, 4);
  return Buffer.concat([b, r.code]);
}

export function decodeRakpCode(b: Buffer, what: string): RakpCode {
  if (b.length < 2) throw new DecodeError(`${what} is truncated`);
  if (b[1] !== 0) return { tag: b[0]!, status: b[1]!, sessionId: b.length >= 8 ? b.readUInt32LE(4) : 0, code: Buffer.alloc(0) };
  if (b.length < 8) throw new DecodeError(`${what} of ${b.length} bytes is shorter than 8`);
  return { tag: b[0]!, status: 0, sessionId: b.readUInt32LE(4), code: Buffer.from(b.subarray(8)) };
}

/** Kuid: the password as a 20-byte, zero-padded key (IPMI 2.0 passwords are at most 20 bytes). */
export function passwordKey(password: string): Buffer {
  const bytes = Buffer.from(password, 'utf8');
  if (bytes.length > 20) throw new DecodeError('IPMI 2.0 passwords are at most 20 bytes');
  const key = Buffer.alloc(20);
  bytes.copy(key);
  return key;
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n >>> 0);
  return b;
}

/** Everything both sides know after RAKP1/RAKP2, from which all handshake codes are computed. */
export interface HandshakeParameters {
  auth: AuthAlgorithm;
  consoleSessionId: number;
  bmcSessionId: number;
  consoleRandom: Buffer;
  bmcRandom: Buffer;
  bmcGuid: Buffer;
  role: number;
  username: Buffer;
}

function roleAndName(p: HandshakeParameters): Buffer {
  return Buffer.concat([Buffer.from([p.role, p.username.length]), p.username]);
}

/** RAKP2 key exchange code: HMAC_Kuid(SIDm, SIDc, Rm, Rc, GUIDc, ROLEm, ULENGTHm, UNAMEm). */
export function rakp2Code(p: HandshakeParameters, kuid: Buffer): Buffer {
  return hmac(p.auth, kuid, u32(p.consoleSessionId), u32(p.bmcSessionId), p.consoleRandom, p.bmcRandom, p.bmcGuid, roleAndName(p));
}

/** RAKP3 key exchange code: HMAC_Kuid(Rc, SIDm, ROLEm, ULENGTHm, UNAMEm). */
export function rakp3Code(p: HandshakeParameters, kuid: Buffer): Buffer {
  return hmac(p.auth, kuid, p.bmcRandom, u32(p.consoleSessionId), roleAndName(p));
}

/** Session integrity key: HMAC_Kg(Rm, Rc, ROLEm, ULENGTHm, UNAMEm); Kg is Kuid unless a BMC key is set. */
export function sessionIntegrityKey(p: HandshakeParameters, kg: Buffer): Buffer {
  return hmac(p.auth, kg, p.consoleRandom, p.bmcRandom, roleAndName(p));
}

/** RAKP4 integrity check value: HMAC_SIK(Rm, SIDc, GUIDc), truncated per algorithm. */
export function rakp4Icv(p: HandshakeParameters, sik: Buffer): Buffer {
  return hmac(p.auth, sik, p.consoleRandom, u32(p.bmcSessionId), p.bmcGuid).subarray(0, RAKP4_ICV_LENGTH[p.auth]);
}
