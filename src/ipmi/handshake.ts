/**
 * Establishing an RMCP+ session: channel capabilities, cipher suite choice, Open Session and
 * RAKP 1-4. The BMC must prove it knows the password (RAKP2 code, RAKP4 check value);
 * a BMC that cannot is an AUTH_FAILED error, never a session.
 */
import { randomBytes, randomInt, timingSafeEqual } from 'node:crypto';
import { BmcError, DecodeError } from '../errors.js';
import { cipherSuite, deriveKeys, SUPPORTED_SUITE_IDS, type CipherSuite } from './cipher.js';
import { exchange, type RetryPolicy } from './exchange.js';
import { datagramKind, decodeV15, decodeV2, encodeV15, encodeV2, PayloadType, peekPayloadType, type SessionKeys } from './lan.js';
import { decodeResponse, describeCompletionCode, encodeRequest, NetFn } from './message.js';
import {
  decodeOpenSessionResponse,
  decodeRakp2,
  decodeRakpCode,
  describeRmcpPlusStatus,
  encodeOpenSessionRequest,
  encodeRakp1,
  encodeRakpCode,
  NAME_ONLY_LOOKUP,
  passwordKey,
  rakp2Code,
  rakp3Code,
  rakp4Icv,
  sessionIntegrityKey,
  suiteAlgorithms,
  type HandshakeParameters,
} from './rakp.js';
import type { DatagramChannel } from './transport.js';

export interface HandshakeOptions {
  user: string;
  password: string;
  /** BMC key (Kg); defaults to the password key */
  kg?: Buffer;
  privilege: number;
  /** a fixed suite, or 'auto' to ask the BMC and pick the strongest one we speak */
  cipherSuite: number | 'auto';
  /** allow cipher suite 0 and other suites without authentication */
  allowInsecure: boolean;
  retry: RetryPolicy;
  signal?: AbortSignal;
}

export interface EstablishedSession {
  suite: CipherSuite;
  consoleSessionId: number;
  bmcSessionId: number;
  keys: SessionKeys;
  privilege: number;
  /** the next outbound session sequence number (the handshake used the first ones) */
  nextSeq: number;
}

const AUTH_CAPS_CMD = 0x38;
const CIPHER_SUITES_CMD = 0x54;
const SET_SESSION_PRIVILEGE_CMD = 0x3b;
/** Open Session statuses meaning "not this suite", after which the next candidate is tried. */
const SUITE_REJECTED = new Set([0x03, 0x04, 0x05, 0x06, 0x07, 0x10, 0x11]);
/** Statuses that mean the credentials or the requested role were refused. */
const AUTH_REJECTED = new Set([0x09, 0x0a, 0x0d, 0x0f]);

/** A pre-session IPMI request in the IPMI 1.5 wrapper without authentication. */
async function preSessionCommand(channel: DatagramChannel, cmd: number, data: Buffer, options: HandshakeOptions, what: string): Promise<Buffer> {
  let seq = randomInt(1, 63);
  const response = await exchange(
    channel,
    () => {
      seq = (seq % 63) + 1;
      return encodeV15(0, 0, encodeRequest({ netFn: NetFn.app, cmd, seq, data }));
    },
    (d) => {
      try {
        if (datagramKind(d) !== 'v15') return undefined;
        const r = decodeResponse(decodeV15(d).message);
        return r.cmd === cmd ? r : undefined;
      } catch (err) {
        if (err instanceof DecodeError) return undefined;
        throw err;
      }
    },
    options.retry,
    () => `${what} from BMC ${channel.remote}`,
    options.signal,
  );
  if (response.completionCode !== 0) {
    throw new BmcError('COMPLETION_CODE', `${what}: ${describeCompletionCode(response.completionCode)}`, { completionCode: response.completionCode });
  }
  return response.data;
}

export async function getChannelAuthCapabilities(channel: DatagramChannel, options: HandshakeOptions): Promise<{ ipmi20: boolean }> {
  const data = await preSessionCommand(channel, AUTH_CAPS_CMD, Buffer.from([0x8e, options.privilege]), options, 'Get Channel Authentication Capabilities');
  if (data.length < 8) throw new DecodeError('Get Channel Authentication Capabilities answer is truncated');
  return { ipmi20: (data[1]! & 0x80) !== 0 && (data[3]! & 0x02) !== 0 };
}

/** Lists the channel's cipher suites; records are 0xC0 <id> <auth> <integrity> <confidentiality> (0xC1 adds an OEM IANA). */
export async function getChannelCipherSuites(channel: DatagramChannel, options: HandshakeOptions): Promise<number[]> {
  const chunks: Buffer[] = [];
  for (let index = 0; index < 64; index++) {
    const data = await preSessionCommand(channel, CIPHER_SUITES_CMD, Buffer.from([0x0e, 0x00, 0x80 | index]), options, 'Get Channel Cipher Suites');
    chunks.push(data.subarray(1));
    if (data.length < 17) break;
  }
  return parseCipherSuiteRecords(Buffer.concat(chunks));
}

export function parseCipherSuiteRecords(records: Buffer): number[] {
  const ids: number[] = [];
  let i = 0;
  while (i < records.length) {
    const start = records[i]!;
    if (start === 0xc0 || start === 0xc1) {
      if (i + 1 >= records.length) break;
      ids.push(records[i + 1]!);
      i += start === 0xc0 ? 2 : 5;
      while (i < records.length && records[i]! < 0xc0) i++;
    } else {
      i++;
    }
  }
  return ids;
}

/**
 * Which suites may be used. Suite 0 (no authentication at all) only with `allowInsecure`. A suite
 * named explicitly may lack integrity or encryption (1, 2, 15, 16): the operator asked for it.
 * `auto` picks only suites with integrity protection, strongest first, encrypted ones preferred.
 */
function checkSuiteAllowed(suite: CipherSuite, options: HandshakeOptions): void {
  if (options.allowInsecure || suite.auth !== 'none') return;
  throw new BmcError('INSECURE_REFUSED', `cipher suite ${suite.id} is refused: it has no authentication (allow it explicitly if you must)`);
}

/** Suites `auto` may choose, in order of preference. */
const AUTO_SUITES: readonly number[] = [17, 3, 16, 2];

async function candidateSuites(channel: DatagramChannel, options: HandshakeOptions): Promise<CipherSuite[]> {
  if (options.cipherSuite !== 'auto') {
    const suite = cipherSuite(options.cipherSuite);
    checkSuiteAllowed(suite, options);
    if (!SUPPORTED_SUITE_IDS.includes(suite.id) && suite.id !== 0) {
      throw new BmcError('UNSUPPORTED', `cipher suite ${suite.id} is not implemented (supported: ${SUPPORTED_SUITE_IDS.join(', ')})`);
    }
    return [suite];
  }
  let offered: number[] = [];
  try {
    offered = await getChannelCipherSuites(channel, options);
  } catch (err) {
    if (err instanceof BmcError && (err.code === 'TIMEOUT' || err.code === 'ABORTED')) throw err;
    // BMCs without Get Channel Cipher Suites: fall through to the defaults.
  }
  // A BMC that lists no suites gets 17, then 3.
  if (offered.length === 0) return [17, 3].map(cipherSuite);
  const chosen = AUTO_SUITES.filter((id) => offered.includes(id)).map(cipherSuite);
  if (chosen.length === 0) {
    throw new BmcError('INSECURE_REFUSED', `BMC ${channel.remote} offers cipher suites ${offered.join(', ')}, none of which has integrity protection and is supported; name one explicitly to use it`);
  }
  return chosen;
}

export async function establish(channel: DatagramChannel, options: HandshakeOptions): Promise<EstablishedSession> {
  const caps = await getChannelAuthCapabilities(channel, options).catch((err: unknown) => {
    if (err instanceof BmcError && err.code === 'TIMEOUT') {
      throw new BmcError('TIMEOUT', `BMC ${channel.remote} is unreachable: ${err.message}`, { cause: err });
    }
    throw err;
  });
  if (!caps.ipmi20) throw new BmcError('UNSUPPORTED', `BMC ${channel.remote} does not support IPMI 2.0 (RMCP+)`);
  const suites = await candidateSuites(channel, options);
  let lastRejection: BmcError | undefined;
  const deadline = Date.now() + options.retry.deadlineMs;
  for (const suite of suites) {
    try {
      return await openRestarting(channel, suite, options, deadline);
    } catch (err) {
      if (err instanceof BmcError && err.code === 'UNSUPPORTED') {
        lastRejection = err;
        continue;
      }
      throw err;
    }
  }
  throw lastRejection ?? new BmcError('UNSUPPORTED', `BMC ${channel.remote} accepted none of the cipher suites tried`);
}

function v2Matcher<T>(payloadType: number, decode: (payload: Buffer) => T & { tag: number }, tag: number) {
  return (d: Buffer): T | undefined => {
    // Late packets of an earlier session or damaged datagrams are not ours: ignore them.
    if (peekPayloadType(d) !== payloadType) return undefined;
    try {
      const value = decode(decodeV2(d).payload);
      return value.tag === tag ? value : undefined;
    } catch (err) {
      if (err instanceof DecodeError) return undefined;
      throw err;
    }
  };
}

/** Attempts per handshake step before the whole handshake starts over with a new Open Session. */
const STEP_ATTEMPTS = 3;

/**
 * A lost handshake message cannot always be repaired by retransmitting it (a BMC that already
 * answered RAKP 1 may ignore a second one), so each step gets a few attempts and then the
 * handshake starts over, until the overall deadline.
 */
async function openRestarting(channel: DatagramChannel, suite: CipherSuite, options: HandshakeOptions, deadline: number): Promise<EstablishedSession> {
  for (;;) {
    const left = deadline - Date.now();
    const r = options.retry;
    let step = 0;
    let wait = r.attemptMs;
    for (let i = 0; i < STEP_ATTEMPTS; i++, wait = Math.min(wait * r.backoff, r.maxAttemptMs)) step += wait;
    const stepPolicy: RetryPolicy = { ...r, deadlineMs: Math.max(1, Math.min(step, left)) };
    try {
      return await openWithSuite(channel, suite, { ...options, retry: stepPolicy });
    } catch (err) {
      const restartable = err instanceof BmcError && err.code === 'TIMEOUT' && deadline - Date.now() > r.attemptMs;
      if (!restartable) {
        if (err instanceof BmcError && err.code === 'TIMEOUT') {
          throw new BmcError('TIMEOUT', `session setup with BMC ${channel.remote} did not complete within ${r.deadlineMs} ms: ${err.message}`, { cause: err });
        }
        throw err;
      }
    }
  }
}

async function openWithSuite(channel: DatagramChannel, suite: CipherSuite, options: HandshakeOptions): Promise<EstablishedSession> {
  const consoleSessionId = randomInt(1, 0xffffffff);
  const tag = randomInt(0, 256);
  const algs = suiteAlgorithms(suite);
  const describe = (step: string) => () => `${step} with BMC ${channel.remote}`;
  const open = await exchange(
    channel,
    () => encodeV2({ payloadType: PayloadType.openSessionRequest, sessionId: 0, seq: 0, payload: encodeOpenSessionRequest({ tag, privilege: options.privilege, consoleSessionId, ...algs }) }),
    v2Matcher(PayloadType.openSessionResponse, decodeOpenSessionResponse, tag),
    options.retry,
    describe('Open Session'),
    options.signal,
  );
  if (open.status !== 0) {
    const reason = `Open Session with cipher suite ${suite.id} refused by BMC ${channel.remote}: ${describeRmcpPlusStatus(open.status)}`;
    if (SUITE_REJECTED.has(open.status)) throw new BmcError('UNSUPPORTED', reason);
    if (open.status === 0x01 || open.status === 0x0b) throw new BmcError('NO_SESSION_SLOTS', reason);
    throw new BmcError(AUTH_REJECTED.has(open.status) ? 'AUTH_FAILED' : 'PROTOCOL', reason);
  }
  if (open.consoleSessionId !== consoleSessionId) throw new BmcError('PROTOCOL', `BMC ${channel.remote} answered Open Session for another session`);
  if (open.auth !== algs.auth || open.integrity !== algs.integrity || open.confidentiality !== algs.confidentiality) {
    throw new BmcError('PROTOCOL', `BMC ${channel.remote} changed the algorithms of cipher suite ${suite.id}`);
  }

  const params: HandshakeParameters = {
    auth: suite.auth,
    consoleSessionId,
    bmcSessionId: open.bmcSessionId,
    consoleRandom: randomBytes(16),
    bmcRandom: Buffer.alloc(16),
    bmcGuid: Buffer.alloc(16),
    role: options.privilege | NAME_ONLY_LOOKUP,
    username: Buffer.from(options.user, 'utf8'),
  };
  const kuid = passwordKey(options.password);
  const rakp2 = await exchange(
    channel,
    () => encodeV2({ payloadType: PayloadType.rakp1, sessionId: 0, seq: 0, payload: encodeRakp1({ tag, bmcSessionId: params.bmcSessionId, consoleRandom: params.consoleRandom, role: params.role, username: params.username }) }),
    v2Matcher(PayloadType.rakp2, decodeRakp2, tag),
    options.retry,
    describe('RAKP 1'),
    options.signal,
  );
  if (rakp2.status !== 0) {
    const code = AUTH_REJECTED.has(rakp2.status) ? 'AUTH_FAILED' : rakp2.status === 0x01 ? 'NO_SESSION_SLOTS' : 'PROTOCOL';
    throw new BmcError(code, `BMC ${channel.remote} refused user ${JSON.stringify(options.user)}: ${describeRmcpPlusStatus(rakp2.status)}`);
  }
  params.bmcRandom = rakp2.bmcRandom;
  params.bmcGuid = rakp2.bmcGuid;
  const expected = rakp2Code(params, kuid);
  if (!sameBytes(expected, rakp2.keyExchangeCode)) {
    // Tell the BMC to drop the half-open session, then report the failure.
    channel.send(encodeV2({ payloadType: PayloadType.rakp3, sessionId: 0, seq: 0, payload: encodeRakpCode({ tag, status: 0x0f, sessionId: params.bmcSessionId, code: Buffer.alloc(0) }) }));
    throw new BmcError('AUTH_FAILED', `authentication with BMC ${channel.remote} failed: wrong user name or password (the BMC's RAKP 2 proof does not match)`);
  }

  const sik = sessionIntegrityKey(params, options.kg ?? kuid);
  const { k1, k2 } = deriveKeys(suite.auth, sik);
  const keys: SessionKeys = { integrity: suite.integrity, confidentiality: suite.confidentiality, k1, k2 };
  const rakp4 = await exchange(
    channel,
    () => encodeV2({ payloadType: PayloadType.rakp3, sessionId: 0, seq: 0, payload: encodeRakpCode({ tag, status: 0, sessionId: params.bmcSessionId, code: rakp3Code(params, kuid) }) }),
    v2Matcher(PayloadType.rakp4, (p) => decodeRakpCode(p, 'RAKP 4'), tag),
    options.retry,
    describe('RAKP 3'),
    options.signal,
  ).catch((err: unknown) => {
    // RAKP 4 lost: the BMC may have activated the session and ignore a repeated RAKP 3.
    // The authenticated answer to Set Session Privilege Level below proves the keys instead.
    if (err instanceof BmcError && err.code === 'TIMEOUT') return undefined;
    throw err;
  });
  if (rakp4 && rakp4.status !== 0) {
    throw new BmcError(AUTH_REJECTED.has(rakp4.status) ? 'AUTH_FAILED' : 'PROTOCOL', `BMC ${channel.remote} refused RAKP 3: ${describeRmcpPlusStatus(rakp4.status)}`);
  }
  if (rakp4 && !sameBytes(rakp4Icv(params, sik), rakp4.code)) {
    throw new BmcError('AUTH_FAILED', `BMC ${channel.remote} failed to prove the session key in RAKP 4 (wrong BMC key?)`);
  }
  const established: EstablishedSession = { suite, consoleSessionId, bmcSessionId: params.bmcSessionId, keys, privilege: options.privilege, nextSeq: 1 };
  await activatePrivilege(channel, established, options);
  return established;
}

/**
 * Set Session Privilege Level, the first message inside the session. Its answer must pass the
 * session's integrity check, which proves the BMC holds the session keys.
 */
async function activatePrivilege(channel: DatagramChannel, s: EstablishedSession, options: HandshakeOptions): Promise<void> {
  const rqSeq = randomInt(1, 64);
  const response = await exchange(
    channel,
    () => encodeV2({ payloadType: PayloadType.ipmi, sessionId: s.bmcSessionId, seq: s.nextSeq++, payload: encodeRequest({ netFn: NetFn.app, cmd: SET_SESSION_PRIVILEGE_CMD, seq: rqSeq, data: Buffer.from([options.privilege]) }) }, s.keys),
    (d) => {
      if (peekPayloadType(d) !== PayloadType.ipmi) return undefined;
      try {
        const p = decodeV2(d, s.keys);
        if (p.sessionId !== s.consoleSessionId) return undefined;
        const r = decodeResponse(p.payload);
        return r.cmd === SET_SESSION_PRIVILEGE_CMD && r.seq === rqSeq ? r : undefined;
      } catch (err) {
        if (err instanceof DecodeError) return undefined;
        throw err;
      }
    },
    options.retry,
    () => `Set Session Privilege Level with BMC ${channel.remote}`,
    options.signal,
  );
  if (response.completionCode !== 0) {
    throw new BmcError(response.completionCode === 0x81 || response.completionCode === 0x82 ? 'AUTH_FAILED' : 'COMPLETION_CODE', `BMC ${channel.remote} refused privilege level ${options.privilege}: ${describeCompletionCode(response.completionCode)}`, {
      completionCode: response.completionCode,
    });
  }
}

function sameBytes(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && a.length > 0 ? timingSafeEqual(a, b) : a.length === 0 && b.length === 0;
}
