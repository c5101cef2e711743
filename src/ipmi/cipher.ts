/**
 * RMCP+ cipher suites and the three algorithm families they combine
 * (IPMI 2.0 tables 13-17 and 22-19). Data, not branching: adding a suite is one row.
 */
import { createCipheriv, createDecipheriv, createHmac, randomBytes, type Cipher, type Decipher } from 'node:crypto';
import { DecodeError } from '../errors.js';

export type AuthAlgorithm = 'none' | 'hmac-sha1' | 'hmac-md5' | 'hmac-sha256';
export type IntegrityAlgorithm = 'none' | 'hmac-sha1-96' | 'hmac-md5-128' | 'md5-128' | 'hmac-sha256-128';
export type ConfidentialityAlgorithm = 'none' | 'aes-cbc-128' | 'xrc4-128' | 'xrc4-40';

export const AUTH_ALGORITHM_IDS: Record<AuthAlgorithm, number> = { none: 0, 'hmac-sha1': 1, 'hmac-md5': 2, 'hmac-sha256': 3 };
export const INTEGRITY_ALGORITHM_IDS: Record<IntegrityAlgorithm, number> = {
  none: 0,
  'hmac-sha1-96': 1,
  'hmac-md5-128': 2,
  'md5-128': 3,
  'hmac-sha256-128': 4,
};
export const CONFIDENTIALITY_ALGORITHM_IDS: Record<ConfidentialityAlgorithm, number> = { none: 0, 'aes-cbc-128': 1, 'xrc4-128': 2, 'xrc4-40': 3 };

export interface CipherSuite {
  id: number;
  auth: AuthAlgorithm;
  integrity: IntegrityAlgorithm;
  confidentiality: ConfidentialityAlgorithm;
}

/** The standard suites; this client implements the HMAC-SHA1 and HMAC-SHA256 ones with AES. */
export const CIPHER_SUITES: readonly CipherSuite[] = [
  { id: 0, auth: 'none', integrity: 'none', confidentiality: 'none' },
  { id: 1, auth: 'hmac-sha1', integrity: 'none', confidentiality: 'none' },
  { id: 2, auth: 'hmac-sha1', integrity: 'hmac-sha1-96', confidentiality: 'none' },
  { id: 3, auth: 'hmac-sha1', integrity: 'hmac-sha1-96', confidentiality: 'aes-cbc-128' },
  { id: 6, auth: 'hmac-md5', integrity: 'none', confidentiality: 'none' },
  { id: 7, auth: 'hmac-md5', integrity: 'hmac-md5-128', confidentiality: 'none' },
  { id: 8, auth: 'hmac-md5', integrity: 'hmac-md5-128', confidentiality: 'aes-cbc-128' },
  { id: 15, auth: 'hmac-sha256', integrity: 'none', confidentiality: 'none' },
  { id: 16, auth: 'hmac-sha256', integrity: 'hmac-sha256-128', confidentiality: 'none' },
  { id: 17, auth: 'hmac-sha256', integrity: 'hmac-sha256-128', confidentiality: 'aes-cbc-128' },
];

/** Suites this implementation can speak, strongest first (the order tried when the BMC lists none). */
export const SUPPORTED_SUITE_IDS: readonly number[] = [17, 3, 16, 2, 15, 1];

/**
 * How a session picks its suite: a suite named by its number; `auto`, ask the BMC and take the
 * strongest with integrity protection (only encrypted ones where the BMC lists any); `encrypted`,
 * as auto but never a suite without encryption (a BMC offering none is refused).
 */
export type CipherChoice = number | 'auto' | 'encrypted';

export function cipherSuite(id: number): CipherSuite {
  const suite = CIPHER_SUITES.find((s) => s.id === id);
  if (!suite) throw new DecodeError(`unknown cipher suite ${id}`);
  return suite;
}

const HASH_OF: Record<Exclude<AuthAlgorithm, 'none'>, 'sha1' | 'md5' | 'sha256'> = {
  'hmac-sha1': 'sha1',
  'hmac-md5': 'md5',
  'hmac-sha256': 'sha256',
};

export function hmac(auth: AuthAlgorithm, key: Buffer, ...parts: Buffer[]): Buffer {
  if (auth === 'none') return Buffer.alloc(0);
  const h = createHmac(HASH_OF[auth], key);
  for (const p of parts) h.update(p);
  return h.digest();
}

/** Length of the truncated integrity check value carried after each authenticated packet. */
export const INTEGRITY_LENGTH: Record<IntegrityAlgorithm, number> = {
  none: 0,
  'hmac-sha1-96': 12,
  'hmac-md5-128': 16,
  'md5-128': 16,
  'hmac-sha256-128': 16,
};

/** Length of the RAKP4 integrity check value for each authentication algorithm. */
export const RAKP4_ICV_LENGTH: Record<AuthAlgorithm, number> = { none: 0, 'hmac-sha1': 12, 'hmac-md5': 16, 'hmac-sha256': 16 };

const INTEGRITY_HASH: Partial<Record<IntegrityAlgorithm, 'sha1' | 'md5' | 'sha256'>> = {
  'hmac-sha1-96': 'sha1',
  'hmac-md5-128': 'md5',
  'hmac-sha256-128': 'sha256',
};

export function integrityCode(alg: IntegrityAlgorithm, k1: Buffer, data: Buffer): Buffer {
  const hash = INTEGRITY_HASH[alg];
  if (!hash) return Buffer.alloc(0);
  return createHmac(hash, k1).update(data).digest().subarray(0, INTEGRITY_LENGTH[alg]);
}

/** Random IVs cut from a pool (one randomBytes call per 256 packets instead of one per packet). */
let ivPool = Buffer.alloc(0);
let ivAt = 0;
function freshIv(): Buffer {
  if (ivAt + 16 > ivPool.length) {
    ivPool = randomBytes(4096);
    ivAt = 0;
  }
  ivAt += 16;
  return ivPool.subarray(ivAt - 16, ivAt);
}

/**
 * The AES-128 block cipher of one session key, both ways, as OpenSSL contexts kept for the
 * session: in ECB mode without padding they hold no state between calls, so CBC is done here on
 * top of them. Setting up a CBC context for each packet cost more than the packet's crypto (a
 * SOL stream decrypts a packet and encrypts its acknowledgement every few milliseconds per BMC).
 * Keyed by the session's K2 buffer, so the contexts go with the session.
 */
interface BlockCipher {
  encrypt: Cipher;
  decrypt: Decipher;
}
const blockCiphers = new WeakMap<Buffer, BlockCipher>();

function blockCipherOf(k2: Buffer): BlockCipher {
  let c = blockCiphers.get(k2);
  if (!c) {
    const key = k2.subarray(0, 16);
    c = { encrypt: createCipheriv('aes-128-ecb', key, null).setAutoPadding(false), decrypt: createDecipheriv('aes-128-ecb', key, null).setAutoPadding(false) };
    blockCiphers.set(k2, c);
  }
  return c;
}

/** AES-CBC-128 as RMCP+ uses it: IV || E(payload || 1,2,..,n || n), padded to 16 bytes. */
export function aesEncrypt(k2: Buffer, payload: Buffer, iv: Buffer = freshIv()): Buffer {
  const padLength = (16 - ((payload.length + 1) % 16)) % 16;
  const plainLength = payload.length + padLength + 1;
  const out = Buffer.allocUnsafe(16 + plainLength);
  iv.copy(out, 0, 0, 16);
  payload.copy(out, 16);
  for (let i = 0; i < padLength; i++) out[16 + payload.length + i] = i + 1;
  out[out.length - 1] = padLength;
  // CBC, a block at a time in place: C[i] = E(P[i] xor C[i-1]), C[-1] = IV
  const { encrypt } = blockCipherOf(k2);
  for (let at = 16; at < out.length; at += 16) {
    for (let j = 0; j < 16; j++) out[at + j]! ^= out[at - 16 + j]!;
    encrypt.update(out.subarray(at, at + 16)).copy(out, at);
  }
  return out;
}

export function aesDecrypt(k2: Buffer, data: Buffer): Buffer {
  if (data.length < 32 || data.length % 16 !== 0) throw new DecodeError(`encrypted payload of ${data.length} bytes is not IV + whole AES blocks`);
  // CBC: P[i] = D(C[i]) xor C[i-1], C[-1] = IV; whole blocks, so the ECB context returns them all
  const plain = blockCipherOf(k2).decrypt.update(data.subarray(16));
  for (let i = 0; i < plain.length; i++) plain[i]! ^= data[i]!;
  const padLength = plain[plain.length - 1]!;
  if (padLength > 15) throw new DecodeError(`AES confidentiality pad length ${padLength} exceeds 15`);
  return plain.subarray(0, plain.length - 1 - padLength);
}

/**
 * Session keys derived from the SIK: K1 keys integrity, K2 keys confidentiality. The constants
 * are 20 bytes of 0x01 / 0x02 for every algorithm, SHA-256 included (as ipmitool and BMCs do).
 */
export function deriveKeys(auth: AuthAlgorithm, sik: Buffer): { k1: Buffer; k2: Buffer } {
  return { k1: hmac(auth, sik, Buffer.alloc(20, 1)), k2: hmac(auth, sik, Buffer.alloc(20, 2)) };
}
