/**
 * Establishing an RMCP+ session: channel capabilities, cipher suite choice, Open Session and
 * RAKP 1-4. The BMC must prove it knows the password (RAKP2 code, RAKP4 check value);
 * a BMC that cannot is an AUTH_FAILED error, never a session.
 */
import { randomBytes, randomInt, timingSafeEqual } from 'node:crypto';
import { abortError, BmcError, DecodeError } from '../errors.js';
import { CIPHER_SUITES, cipherSuite, deriveKeys, SUPPORTED_SUITE_IDS, type CipherSuite } from './cipher.js';
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
  /** the BMC did something unusual that the handshake works around (one line for the log) */
  onEvent?: (event: IpmiEvent) => void;
  signal?: AbortSignal;
}

/** Something a BMC did that the client works around; `message` is the log line. */
export interface IpmiEvent {
  kind: 'cipher-suites-fallback' | 'suite-changed' | 'rakp-retry' | 'privilege-operator' | 'sequence-restart' | 'close-refused' | 'sol-deactivated' | 'sol-port' | 'fru-defect';
  message: string;
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
/** Set Session Privilege Level's own completion codes (IPMI 2.0 section 22.18). */
const SET_PRIVILEGE_CODES: Readonly<Partial<Record<number, string>>> = {
  0x80: 'requested level not available for this user',
  0x81: 'requested level exceeds the channel or user privilege limit',
  0x82: 'cannot disable user level authentication',
};
/** The codes saying the level is above what this user may hold; Operator is asked for next (see activatePrivilege). */
const LEVEL_NOT_AVAILABLE = new Set([0x80, 0x81]);

/**
 * The IPMI message of a pre-session answer, in whichever framing the BMC chose: the IPMI 1.5
 * wrapper without authentication, or the RMCP+ wrapper with payload type IPMI, session id 0 and
 * neither integrity nor encryption (real BMCs answer either way, whatever the request used).
 * Anything else is not a pre-session answer: undefined. Never throws.
 */
export function preSessionMessage(datagram: Buffer): Buffer | undefined {
  try {
    const kind = datagramKind(datagram);
    if (kind === 'v15') {
      const p = decodeV15(datagram);
      return p.sessionId === 0 && p.authType === 0 ? p.message : undefined;
    }
    if (kind === 'v2') {
      if (peekPayloadType(datagram) !== PayloadType.ipmi) return undefined;
      const p = decodeV2(datagram);
      return p.sessionId === 0 && !p.authenticated && !p.encrypted ? p.payload : undefined;
    }
    return undefined;
  } catch (err) {
    if (err instanceof DecodeError) return undefined;
    throw err;
  }
}

/** A pre-session IPMI request in the IPMI 1.5 wrapper without authentication; the answer may come in either framing. */
async function preSessionCommand(channel: DatagramChannel, cmd: number, data: Buffer, options: HandshakeOptions, what: string): Promise<Buffer> {
  let seq = randomInt(1, 63);
  const response = await exchange(
    channel,
    () => {
      seq = (seq % 63) + 1;
      return encodeV15(0, 0, encodeRequest({ netFn: NetFn.app, cmd, seq, data }));
    },
    (d) => {
      const message = preSessionMessage(d);
      if (!message) return undefined;
      try {
        const r = decodeResponse(message);
        return r.cmd === cmd && r.netFn === (NetFn.app | 1) ? r : undefined;
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
  let data: Buffer;
  try {
    data = await preSessionCommand(channel, AUTH_CAPS_CMD, Buffer.from([0x8e, options.privilege]), options, 'Get Channel Authentication Capabilities');
  } catch (err) {
    // An IPMI 1.5 BMC may refuse the "IPMI 2.0 extended data" bit; ask as IPMI 1.5 does (as ipmitool does).
    if (!(err instanceof BmcError && err.code === 'COMPLETION_CODE')) throw err;
    data = await preSessionCommand(channel, AUTH_CAPS_CMD, Buffer.from([0x0e, options.privilege]), options, 'Get Channel Authentication Capabilities');
  }
  return decodeAuthCapabilities(data);
}

/** Whether a Get Channel Authentication Capabilities answer says IPMI 2.0 (RMCP+) is supported. */
export function decodeAuthCapabilities(data: Buffer): { ipmi20: boolean } {
  if (data.length < 8) throw new DecodeError('Get Channel Authentication Capabilities answer is truncated');
  return { ipmi20: (data[1]! & 0x80) !== 0 && (data[3]! & 0x02) !== 0 };
}

/**
 * Get Channel Cipher Suites is optional (IPMI 2.0 section 22.15): many BMCs lack it, answer it
 * with garbage or not at all. It gets a short deadline of its own, and any failure falls back to
 * the default suites rather than failing the connection.
 */
export const CIPHER_SUITES_RETRY: RetryPolicy = { attemptMs: 250, backoff: 1.5, maxAttemptMs: 500, deadlineMs: 1000 };

/** Lists the channel's cipher suites; records are 0xC0 <id> <auth> <integrity> <confidentiality> (0xC1 adds an OEM IANA). */
export async function getChannelCipherSuites(channel: DatagramChannel, options: HandshakeOptions): Promise<number[]> {
  const chunks: Buffer[] = [];
  const budget = Math.min(CIPHER_SUITES_RETRY.deadlineMs, options.retry.deadlineMs);
  const until = Date.now() + budget;
  for (let index = 0; index < 64; index++) {
    // The first request gets the whole budget as such, so a silent BMC's message names it exactly.
    const left = index === 0 ? budget : until - Date.now();
    if (left <= 0) throw new BmcError('TIMEOUT', `Get Channel Cipher Suites from BMC ${channel.remote}: no complete list within ${CIPHER_SUITES_RETRY.deadlineMs} ms`);
    const retry: RetryPolicy = { ...CIPHER_SUITES_RETRY, deadlineMs: left };
    const data = await preSessionCommand(channel, CIPHER_SUITES_CMD, Buffer.from([0x0e, 0x00, 0x80 | index]), { ...options, retry }, 'Get Channel Cipher Suites');
    if (data.length < 1) throw new DecodeError('Get Channel Cipher Suites answer has no channel number');
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

/** The suites tried when the BMC cannot list its own. */
const FALLBACK_SUITES: readonly number[] = [17, 3];

async function candidateSuites(channel: DatagramChannel, options: HandshakeOptions): Promise<CipherSuite[]> {
  if (options.cipherSuite !== 'auto') {
    const suite = cipherSuite(options.cipherSuite);
    checkSuiteAllowed(suite, options);
    if (!SUPPORTED_SUITE_IDS.includes(suite.id) && suite.id !== 0) {
      throw new BmcError('UNSUPPORTED', `cipher suite ${suite.id} is not implemented (supported: ${SUPPORTED_SUITE_IDS.join(', ')})`);
    }
    return [suite];
  }
  const fallback = (why: string): CipherSuite[] => {
    options.onEvent?.({ kind: 'cipher-suites-fallback', message: `BMC ${channel.remote} did not list its cipher suites (${why}); trying ${FALLBACK_SUITES.join(', then ')}` });
    return FALLBACK_SUITES.map(cipherSuite);
  };
  let offered: number[];
  try {
    offered = await getChannelCipherSuites(channel, options);
  } catch (err) {
    if (err instanceof BmcError && err.code === 'ABORTED') throw err;
    if (options.signal?.aborted) throw err;
    return fallback(err instanceof Error ? err.message : String(err));
  }
  // A list of ids no specification defines is garbage, not a choice: same as no list.
  const known = offered.filter((id) => CIPHER_SUITES.some((s) => s.id === id));
  if (known.length === 0) return fallback(offered.length === 0 ? 'an empty list' : `unknown suites ${offered.slice(0, 8).join(', ')}`);
  const chosen = AUTO_SUITES.filter((id) => known.includes(id)).map(cipherSuite);
  if (chosen.length === 0) {
    throw new BmcError('INSECURE_REFUSED', `BMC ${channel.remote} offers cipher suites ${known.join(', ')}, none of which has integrity protection and is supported; name one explicitly to use it`);
  }
  return chosen;
}

/**
 * The suite an Open Session answer settled on. A BMC may propose other algorithms than asked
 * (IPMI 2.0 section 13.17 lets it pick); that is followed when they form a suite this session may
 * use (`auto`: the suites auto picks; a named suite: only that one), else refused.
 */
export function settledSuite(asked: CipherSuite, answer: { auth: number; integrity: number; confidentiality: number }, cipher: number | 'auto'): CipherSuite | undefined {
  const same = (s: CipherSuite) => {
    const a = suiteAlgorithms(s);
    return a.auth === answer.auth && a.integrity === answer.integrity && a.confidentiality === answer.confidentiality;
  };
  if (same(asked)) return asked;
  if (cipher !== 'auto') return undefined;
  return AUTO_SUITES.map(cipherSuite).find(same);
}

/**
 * How RAKP 1 asks for the user: the requested privilege and whether the BMC looks the user up by
 * name only (bit 4 of the role). ipmitool and FreeIPMI ask name-only by default; BMCs that keep
 * users per privilege refuse that (RAKP 2 "unauthorized name"), and users whose maximum is
 * Operator are refused Administrator ("unauthorized role"): each is tried again the other way.
 */
export interface UserLookup {
  privilege: number;
  nameOnly: boolean;
}

/** The next way to ask after RAKP 2 refused `status` for `tried`, or undefined when none is left. */
export function nextUserLookup(tried: UserLookup, status: number, requested: number): UserLookup | undefined {
  if (status === 0x0d && tried.nameOnly) return { ...tried, nameOnly: false };
  if ((status === 0x09 || status === 0x0a) && tried.privilege === requested && requested > OPERATOR) return { ...tried, privilege: OPERATOR };
  return undefined;
}
const OPERATOR = 3;

class RakpRefused extends BmcError {
  constructor(
    readonly status: number,
    code: 'AUTH_FAILED' | 'NO_SESSION_SLOTS' | 'PROTOCOL',
    message: string,
  ) {
    super(code, message);
  }
}

export async function establish(channel: DatagramChannel, options: HandshakeOptions): Promise<EstablishedSession> {
  const caps = await getChannelAuthCapabilities(channel, options).catch((err: unknown) => {
    if (err instanceof BmcError && err.code === 'TIMEOUT') {
      throw new BmcError('TIMEOUT', `BMC ${channel.remote} is unreachable: ${err.message}`, { cause: err });
    }
    throw err;
  });
  if (!caps.ipmi20) throw new BmcError('UNSUPPORTED', `BMC ${channel.remote} speaks IPMI 1.5 only (no IPMI 2.0 / RMCP+ in Get Channel Authentication Capabilities); metal-bmc needs RMCP+`);
  const suites = await candidateSuites(channel, options);
  let lastRejection: BmcError | undefined;
  const deadline = Date.now() + options.retry.deadlineMs;
  for (const suite of suites) {
    let lookup: UserLookup | undefined = { privilege: options.privilege, nameOnly: true };
    while (lookup) {
      try {
        return await openRestarting(channel, suite, options, lookup, deadline);
      } catch (err) {
        if (err instanceof BmcError && err.code === 'UNSUPPORTED') {
          lastRejection = err;
          break;
        }
        const next: UserLookup | undefined = err instanceof RakpRefused ? nextUserLookup(lookup, err.status, options.privilege) : undefined;
        if (!next) throw err;
        options.onEvent?.({
          kind: 'rakp-retry',
          message: `BMC ${channel.remote} refused RAKP 1 (${describeRmcpPlusStatus((err as RakpRefused).status)}); asking again ${next.nameOnly ? 'by name only' : 'by name and privilege'} at privilege ${next.privilege}`,
        });
        lookup = next;
      }
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
async function openRestarting(channel: DatagramChannel, suite: CipherSuite, options: HandshakeOptions, lookup: UserLookup, deadline: number): Promise<EstablishedSession> {
  for (;;) {
    const left = deadline - Date.now();
    const r = options.retry;
    let step = 0;
    let wait = r.attemptMs;
    for (let i = 0; i < STEP_ATTEMPTS; i++, wait = Math.min(wait * r.backoff, r.maxAttemptMs)) step += wait;
    const stepPolicy: RetryPolicy = { ...r, deadlineMs: Math.max(1, Math.min(step, left)) };
    try {
      return await openWithSuite(channel, suite, { ...options, retry: stepPolicy }, lookup);
    } catch (err) {
      // a TIMEOUT that is the caller's signal (a per-BMC deadline aborts with one) is final: the
      // exchange fails at once on an aborted signal, so a restart would spin without ever waiting
      if (options.signal?.aborted) throw abortError(options.signal, `session setup with BMC ${channel.remote}`);
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

async function openWithSuite(channel: DatagramChannel, asked: CipherSuite, options: HandshakeOptions, lookup: UserLookup): Promise<EstablishedSession> {
  const consoleSessionId = randomInt(1, 0xffffffff);
  const tag = randomInt(0, 256);
  const algs = suiteAlgorithms(asked);
  const privilege = lookup.privilege;
  const describe = (step: string) => () => `${step} with BMC ${channel.remote}`;
  const open = await exchange(
    channel,
    () => encodeV2({ payloadType: PayloadType.openSessionRequest, sessionId: 0, seq: 0, payload: encodeOpenSessionRequest({ tag, privilege, consoleSessionId, ...algs }) }),
    v2Matcher(PayloadType.openSessionResponse, decodeOpenSessionResponse, tag),
    options.retry,
    describe('Open Session'),
    options.signal,
  );
  if (open.status !== 0) {
    const reason = `Open Session with cipher suite ${asked.id} refused by BMC ${channel.remote}: ${describeRmcpPlusStatus(open.status)}`;
    if (SUITE_REJECTED.has(open.status)) throw new BmcError('UNSUPPORTED', reason);
    if (open.status === 0x01 || open.status === 0x0b) throw new BmcError('NO_SESSION_SLOTS', reason);
    throw new BmcError(AUTH_REJECTED.has(open.status) ? 'AUTH_FAILED' : 'PROTOCOL', reason);
  }
  if (open.consoleSessionId !== consoleSessionId) throw new BmcError('PROTOCOL', `BMC ${channel.remote} answered Open Session for another session`);
  const suite = settledSuite(asked, open, options.cipherSuite);
  if (!suite) {
    throw new BmcError(
      'PROTOCOL',
      `BMC ${channel.remote} answered Open Session for cipher suite ${asked.id} with other algorithms (authentication ${open.auth}, integrity ${open.integrity}, confidentiality ${open.confidentiality}), which ${options.cipherSuite === 'auto' ? 'form no suite metal-bmc picks' : 'is not the suite asked for'}`,
    );
  }
  if (suite !== asked) options.onEvent?.({ kind: 'suite-changed', message: `BMC ${channel.remote} answered Open Session for cipher suite ${asked.id} with the algorithms of suite ${suite.id}; using suite ${suite.id}` });

  const params: HandshakeParameters = {
    auth: suite.auth,
    consoleSessionId,
    bmcSessionId: open.bmcSessionId,
    consoleRandom: randomBytes(16),
    bmcRandom: Buffer.alloc(16),
    bmcGuid: Buffer.alloc(16),
    role: privilege | (lookup.nameOnly ? NAME_ONLY_LOOKUP : 0),
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
    throw new RakpRefused(rakp2.status, code, `BMC ${channel.remote} refused user ${JSON.stringify(options.user)}: ${describeRmcpPlusStatus(rakp2.status)}`);
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
  const established: EstablishedSession = { suite, consoleSessionId, bmcSessionId: params.bmcSessionId, keys, privilege, nextSeq: 1 };
  await activatePrivilege(channel, established, options);
  return established;
}

/**
 * Set Session Privilege Level, the first message inside the session. Its answer must pass the
 * session's integrity check, which proves the BMC holds the session keys.
 *
 * Some BMCs accept RAKP 1 for Administrator with a name-only lookup and refuse the level only
 * here, for a user whose limit is Operator: 0x80 or 0x81. Operator is then asked for in the same
 * session, as pyghmi does ("some implementations will let us get this far, but suddenly get
 * skiddish", pyghmi/ipmi/private/session.py _req_priv_level), and the session runs at Operator.
 */
async function activatePrivilege(channel: DatagramChannel, s: EstablishedSession, options: HandshakeOptions): Promise<void> {
  const rqSeq = randomInt(1, 64);
  const code = await setSessionPrivilege(channel, s, s.privilege, rqSeq, options);
  if (code === 0) return;
  if (!LEVEL_NOT_AVAILABLE.has(code) || s.privilege <= OPERATOR) throw privilegeRefused(channel, s.privilege, code);
  // another rqSeq: a late copy of the refusal above must not pass for the answer to this request
  const again = await setSessionPrivilege(channel, s, OPERATOR, (rqSeq % 63) + 1, options);
  if (again !== 0) throw privilegeRefused(channel, OPERATOR, again, `${s.privilege} (${describeSetPrivilegeCode(code)}), then`);
  options.onEvent?.({
    kind: 'privilege-operator',
    message: `BMC ${channel.remote} refused privilege level ${s.privilege} in the session (${describeSetPrivilegeCode(code)}); the session runs at privilege ${OPERATOR} (Operator)`,
  });
  s.privilege = OPERATOR;
}

/** Sends Set Session Privilege Level(`level`) in the session; resolves with the completion code. */
async function setSessionPrivilege(channel: DatagramChannel, s: EstablishedSession, level: number, rqSeq: number, options: HandshakeOptions): Promise<number> {
  const response = await exchange(
    channel,
    () => encodeV2({ payloadType: PayloadType.ipmi, sessionId: s.bmcSessionId, seq: s.nextSeq++, payload: encodeRequest({ netFn: NetFn.app, cmd: SET_SESSION_PRIVILEGE_CMD, seq: rqSeq, data: Buffer.from([level]) }) }, s.keys),
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
  return response.completionCode;
}

function describeSetPrivilegeCode(code: number): string {
  return SET_PRIVILEGE_CODES[code] ?? describeCompletionCode(code);
}

/**
 * The error of a refused level. 0x82 (cannot disable user level authentication) is the channel's
 * set-up, which no retry changes: final, as before. 0x80 and 0x81 (no Operator either) are the
 * account's privilege, not a wrong password: a COMPLETION_CODE.
 */
function privilegeRefused(channel: DatagramChannel, level: number, code: number, before = ''): BmcError {
  return new BmcError(code === 0x82 ? 'AUTH_FAILED' : 'COMPLETION_CODE', `BMC ${channel.remote} refused privilege level ${before ? `${before} ` : ''}${level}: ${describeSetPrivilegeCode(code)}`, {
    completionCode: code,
  });
}

function sameBytes(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && a.length > 0 ? timingSafeEqual(a, b) : a.length === 0 && b.length === 0;
}
