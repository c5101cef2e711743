/**
 * Establishing an RMCP+ session: channel capabilities, cipher suite choice, Open Session and
 * RAKP 1-4. The BMC must prove it knows the password (RAKP2 code, RAKP4 check value);
 * a BMC that cannot is an AUTH_FAILED error, never a session.
 */
import { randomBytes, randomInt, timingSafeEqual } from 'node:crypto';
import { abortError, BmcError, DecodeError, isBmcError } from '../errors.js';
import { CIPHER_SUITES, cipherSuite, deriveKeys, SUPPORTED_SUITE_IDS, type CipherChoice, type CipherSuite } from './cipher.js';
import { exchange, type RetryPolicy } from './exchange.js';
import { datagramKind, decodeV15, decodeV2, encodeV15, encodeV2, PayloadType, peekPayloadType, type SessionKeys } from './lan.js';
import { decodeResponseUnchecked, describeCompletionCode, DUPLICATE_REQUEST, encodeRequest, NetFn, responseTo, type IpmiResponse } from './message.js';
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
  /** a fixed suite, or ask the BMC and pick the strongest one we speak (cipher.ts, CipherChoice) */
  cipherSuite: CipherChoice;
  /** allow cipher suite 0 and other suites without authentication */
  allowInsecure: boolean;
  retry: RetryPolicy;
  /** the BMC did something unusual that the handshake works around (one line for the log) */
  onEvent?: (event: IpmiEvent) => void;
  signal?: AbortSignal;
}

/** Something a BMC did that the client works around; `message` is the log line. */
export interface IpmiEvent {
  kind: 'cipher-suites-fallback' | 'suite-unanswered' | 'suite-changed' | 'rakp-retry' | 'handshake-restart' | 'checksum-ignored' | 'privilege-operator' | 'sequence-restart' | 'close-refused' | 'sol-deactivated' | 'sol-owner-unchecked' | 'sol-port' | 'sol-input-dropped' | 'sol-accepted-zero' | 'fru-defect' | 'rakp-code-padded';
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
  /** an answer with a wrong IPMI checksum was taken and told (once per session, see sessionAnswer) */
  checksumFaultTold: boolean;
}

const AUTH_CAPS_CMD = 0x38;
const CIPHER_SUITES_CMD = 0x54;
const SET_SESSION_PRIVILEGE_CMD = 0x3b;
const CLOSE_SESSION_CMD = 0x3c;
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
/** Set Session Privilege Level requests per level when each answer is 0xCF to a resend (askPrivilege) */
const PRIVILEGE_ASKS = 3;

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

/**
 * A counter that starts at a random value and wraps within [min, max]: the request sequence
 * numbers of pre-session requests (6 bits, 1..63) and the message tags of one session setup
 * (0..255). Every transmission takes the next value, a repeated one too, so an answer names the
 * transmission it answers, and a run of requests sharing one counter (the pages of Get Channel
 * Cipher Suites) never reuses a number of an earlier request of the run: a late answer to that
 * request cannot pass for a later one's. FreeIPMI's ipmipower does the same with its message tags
 * (message_tag_count in _send_packet, ipmipower_check_message_tag).
 */
class WrappingCounter {
  private last: number;

  constructor(
    private readonly min: number,
    private readonly max: number,
  ) {
    this.last = randomInt(min, max + 1);
  }

  next(): number {
    this.last = this.last >= this.max ? this.min : this.last + 1;
    return this.last;
  }
}

const preSessionSeqs = () => new WrappingCounter(1, 63);
const messageTags = () => new WrappingCounter(0, 255);

/**
 * `exchange`'s transmit function for a request that carries a counter's value (a sequence number,
 * a message tag): each transmission takes the next value; `sent` lists them in order, for the
 * matcher to take only answers to this request's transmissions.
 */
function numberedTransmissions(counter: WrappingCounter, encode: (n: number) => Buffer): { transmit: () => Buffer; sent: number[] } {
  const sent: number[] = [];
  return {
    sent,
    transmit: () => {
      const n = counter.next();
      sent.push(n);
      return encode(n);
    },
  };
}

/** the channels (one per session attempt) whose wrong pre-session checksum was told already */
const preSessionChecksumTold = new WeakSet<DatagramChannel>();

/**
 * A pre-session IPMI request in the IPMI 1.5 wrapper without authentication; the answer may come in
 * either framing. Only an answer carrying the sequence number of one of this request's
 * transmissions is taken. Its checksums are not held against it (told once per session attempt):
 * nothing authenticates a pre-session answer, so they add no trust, only a check for bytes garbled
 * on the way, which UDP's own checksum makes; ipmitool and pyghmi never read them, and FreeIPMI's
 * workaround nochecksumcheck (Supermicro X9SCM-iiF, X9DRi-F) skips this answer's as well.
 */
async function preSessionCommand(channel: DatagramChannel, cmd: number, data: Buffer, options: HandshakeOptions, what: string, seqs = preSessionSeqs()): Promise<Buffer> {
  const { transmit, sent } = numberedTransmissions(seqs, (seq) => encodeV15(0, 0, encodeRequest({ netFn: NetFn.app, cmd, seq, data })));
  const response = await exchange(
    channel,
    transmit,
    (d) => {
      const message = preSessionMessage(d);
      if (!message) return undefined;
      try {
        const { response: r, checksumFault } = decodeResponseUnchecked(message);
        if (r.cmd !== cmd || r.netFn !== (NetFn.app | 1) || !sent.includes(r.seq)) return undefined;
        if (checksumFault && !preSessionChecksumTold.has(channel)) {
          preSessionChecksumTold.add(channel);
          options.onEvent?.({ kind: 'checksum-ignored', message: `BMC ${channel.remote} answered ${what} with a wrong IPMI ${checksumFault} checksum; pre-session answers carry no integrity code to check instead, and ipmitool takes them too, so such answers are taken` });
        }
        return r;
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
  const seqs = preSessionSeqs();
  try {
    data = await preSessionCommand(channel, AUTH_CAPS_CMD, Buffer.from([0x8e, options.privilege]), options, 'Get Channel Authentication Capabilities', seqs);
  } catch (err) {
    // An IPMI 1.5 BMC may refuse the "IPMI 2.0 extended data" bit; ask as IPMI 1.5 does (as ipmitool does).
    if (!(err instanceof BmcError && err.code === 'COMPLETION_CODE')) throw err;
    data = await preSessionCommand(channel, AUTH_CAPS_CMD, Buffer.from([0x0e, options.privilege]), options, 'Get Channel Authentication Capabilities', seqs);
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
  // one counter for all pages: a late answer for page n never carries a number the request for page n+1 uses
  const seqs = preSessionSeqs();
  const budget = Math.min(CIPHER_SUITES_RETRY.deadlineMs, options.retry.deadlineMs);
  const until = Date.now() + budget;
  for (let index = 0; index < 64; index++) {
    // The first request gets the whole budget as such, so a silent BMC's message names it exactly.
    const left = index === 0 ? budget : until - Date.now();
    if (left <= 0) throw new BmcError('TIMEOUT', `Get Channel Cipher Suites from BMC ${channel.remote}: no complete list within ${CIPHER_SUITES_RETRY.deadlineMs} ms`);
    const retry: RetryPolicy = { ...CIPHER_SUITES_RETRY, deadlineMs: left };
    const data = await preSessionCommand(channel, CIPHER_SUITES_CMD, Buffer.from([0x0e, 0x00, 0x80 | index]), { ...options, retry }, 'Get Channel Cipher Suites', seqs);
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
 * `auto` picks only suites with integrity protection, strongest first, and only encrypted ones
 * where the BMC offers any; `encrypted` only encrypted ones.
 */
function checkSuiteAllowed(suite: CipherSuite, options: HandshakeOptions): void {
  if (options.allowInsecure || suite.auth !== 'none') return;
  throw new BmcError('INSECURE_REFUSED', `cipher suite ${suite.id} is refused: it has no authentication (allow it explicitly if you must)`);
}

/** Suites `auto` may choose, in order of preference. */
const AUTO_SUITES: readonly number[] = [17, 3, 16, 2];

/** Suites a choice that asks the BMC may settle on, in order of preference. */
function suitesFor(choice: 'auto' | 'encrypted'): CipherSuite[] {
  const suites = AUTO_SUITES.map(cipherSuite);
  return choice === 'encrypted' ? suites.filter(isEncrypted) : suites;
}

const isEncrypted = (suite: CipherSuite): boolean => suite.confidentiality !== 'none';

/** The suites tried when the BMC cannot list its own. */
const FALLBACK_SUITES: readonly number[] = [17, 3];

/**
 * The suites to try, in order. `blind`: the BMC did not list its suites (FALLBACK_SUITES), so a
 * suite it leaves unanswered may be one it lacks rather than a sign the BMC is gone.
 */
interface Candidates {
  suites: CipherSuite[];
  blind: boolean;
}

async function candidateSuites(channel: DatagramChannel, options: HandshakeOptions): Promise<Candidates> {
  if (typeof options.cipherSuite === 'number') {
    const suite = cipherSuite(options.cipherSuite);
    checkSuiteAllowed(suite, options);
    if (!SUPPORTED_SUITE_IDS.includes(suite.id) && suite.id !== 0) {
      throw new BmcError('UNSUPPORTED', `cipher suite ${suite.id} is not implemented (supported: ${SUPPORTED_SUITE_IDS.join(', ')})`);
    }
    return { suites: [suite], blind: false };
  }
  const fallback = (why: string): Candidates => {
    options.onEvent?.({ kind: 'cipher-suites-fallback', message: `BMC ${channel.remote} did not list its cipher suites (${why}); trying ${FALLBACK_SUITES.join(', then ')}` });
    return { suites: FALLBACK_SUITES.map(cipherSuite), blind: true };
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
  const chosen = suitesFor(options.cipherSuite).filter((suite) => known.includes(suite.id));
  if (chosen.length === 0) {
    const wanted = options.cipherSuite === 'encrypted' ? 'is encrypted' : 'has integrity protection';
    throw new BmcError('INSECURE_REFUSED', `BMC ${channel.remote} offers cipher suites ${known.join(', ')}, none of which ${wanted} and is supported; name one explicitly to use it`);
  }
  // A BMC that offers an encrypted suite is not asked for one without encryption: the refusals that
  // move auto to the next suite carry no integrity code, so anyone could send them, and a console
  // in the clear shows what is typed on it (passwords included).
  const encrypted = chosen.filter(isEncrypted);
  return { suites: encrypted.length > 0 ? encrypted : chosen, blind: false };
}

/**
 * The suite an Open Session answer settled on. A BMC may propose other algorithms than asked
 * (IPMI 2.0 section 13.17 lets it pick); that is followed when they form a suite this session may
 * use (`auto`: the suites auto picks; a named suite: only that one), else refused.
 */
export function settledSuite(asked: CipherSuite, answer: { auth: number; integrity: number; confidentiality: number }, cipher: CipherChoice): CipherSuite | undefined {
  const same = (s: CipherSuite) => {
    const a = suiteAlgorithms(s);
    return a.auth === answer.auth && a.integrity === answer.integrity && a.confidentiality === answer.confidentiality;
  };
  if (same(asked)) return asked;
  if (typeof cipher === 'number') return undefined;
  return suitesFor(cipher).find(same);
}

/**
 * How Open Session and RAKP 1 ask for the user: the requested privilege and whether the BMC looks
 * the user up by name only (bit 4 of RAKP 1's role). ipmitool and FreeIPMI ask name-only by
 * default; BMCs that keep users per privilege refuse that (RAKP 2 "unauthorized name"), and users
 * whose maximum is Operator are refused Administrator ("invalid role", "unauthorized role", by
 * RAKP 2 or already by Open Session, which names the privilege too): each is tried again the
 * other way.
 */
export interface UserLookup {
  privilege: number;
  nameOnly: boolean;
}

/** The next way to ask after Open Session or RAKP 2 refused `status` for `tried`, or undefined when none is left. */
export function nextUserLookup(tried: UserLookup, status: number, requested: number): UserLookup | undefined {
  if (status === 0x0d && tried.nameOnly) return { ...tried, nameOnly: false };
  if ((status === 0x09 || status === 0x0a) && tried.privilege === requested && requested > OPERATOR) return { ...tried, privilege: OPERATOR };
  return undefined;
}
const OPERATOR = 3;

/** Open Session or RAKP 2 refused the user or the privilege asked for, with RMCP+ `status`: nextUserLookup may ask again. */
class LookupRefused extends BmcError {
  constructor(
    readonly step: 'Open Session' | 'RAKP 1',
    readonly status: number,
    code: 'AUTH_FAILED' | 'NO_SESSION_SLOTS' | 'PROTOCOL',
    message: string,
  ) {
    super(code, message);
  }
}

/** Open Session statuses that refuse the privilege asked for, not the suite or the BMC's resources (IPMI 2.0 table 13-15). */
const ROLE_REFUSED = new Set([0x09, 0x0a]);

export async function establish(channel: DatagramChannel, options: HandshakeOptions): Promise<EstablishedSession> {
  const caps = await getChannelAuthCapabilities(channel, options).catch((err: unknown) => {
    if (err instanceof BmcError && err.code === 'TIMEOUT') {
      throw new BmcError('TIMEOUT', `BMC ${channel.remote} is unreachable: ${err.message}`, { cause: err });
    }
    throw err;
  });
  if (!caps.ipmi20) throw new BmcError('UNSUPPORTED', `BMC ${channel.remote} speaks IPMI 1.5 only (no IPMI 2.0 / RMCP+ in Get Channel Authentication Capabilities); metal-bmc needs RMCP+`);
  const { suites, blind } = await candidateSuites(channel, options);
  let lastRejection: BmcError | undefined;
  /** a suite left unanswered while the next one may be tried (blind): the failure if no suite opens */
  let unanswered: BmcError | undefined;
  const deadline = Date.now() + options.retry.deadlineMs;
  for (const [index, suite] of suites.entries()) {
    const last = index === suites.length - 1;
    const suiteDeadline: SetupDeadline = blind && !last ? shareOf(deadline, suites.length - index) : { at: deadline, ms: options.retry.deadlineMs };
    let lookup: UserLookup | undefined = { privilege: options.privilege, nameOnly: true };
    while (lookup) {
      try {
        return await openRestarting(channel, suite, options, lookup, suiteDeadline);
      } catch (err) {
        if (err instanceof BmcError && err.code === 'UNSUPPORTED') {
          lastRejection = err;
          break;
        }
        // suites tried blind: one the BMC leaves unanswered may be one it lacks (old firmware
        // without suite 17 that drops its Open Session), as ipmitool goes on to suite 3 when the
        // list fails (ipmitool#363); with the list, silence is the BMC's, and final
        if (blind && !last && isBmcError(err, 'TIMEOUT') && !options.signal?.aborted) {
          unanswered = err;
          const next = suites[index + 1]!;
          options.onEvent?.({ kind: 'suite-unanswered', message: `BMC ${channel.remote} did not answer the session setup with cipher suite ${suite.id} (${err.message}); trying suite ${next.id}` });
          break;
        }
        const next: UserLookup | undefined = err instanceof LookupRefused ? nextUserLookup(lookup, err.status, options.privilege) : undefined;
        if (!next) throw err;
        options.onEvent?.({
          kind: 'rakp-retry',
          message: `BMC ${channel.remote} refused ${(err as LookupRefused).step} (${describeRmcpPlusStatus((err as LookupRefused).status)}); asking again ${next.nameOnly ? 'by name only' : 'by name and privilege'} at privilege ${next.privilege}`,
        });
        lookup = next;
      }
    }
  }
  // a suite left unanswered says more than a later suite's refusal: the BMC may answer it next time
  throw unanswered ?? lastRejection ?? new BmcError('UNSUPPORTED', `BMC ${channel.remote} accepted none of the cipher suites tried`);
}

/** When a suite's session setup gives up (epoch ms), and the time that gave it (for the message). */
interface SetupDeadline {
  at: number;
  ms: number;
}

/**
 * The deadline of a suite tried blind with `suitesLeft` suites to go (itself included): an equal
 * share of the time left, so that a suite the BMC leaves unanswered leaves the next one the same
 * time. A suite refused (UNSUPPORTED) or opened early leaves its unused share to the next; the sum
 * stays the one deadline, so a BMC that answers no suite costs no more than before.
 */
function shareOf(deadline: number, suitesLeft: number): SetupDeadline {
  const now = Date.now();
  const ms = Math.round(Math.max(0, deadline - now) / suitesLeft);
  return { at: now + ms, ms };
}

function v2Matcher<T extends { tag: number }>(payloadType: number, decode: (payload: Buffer) => T, accept: (value: T) => boolean) {
  return (d: Buffer): T | undefined => {
    // Late packets of an earlier attempt or session and damaged datagrams are not ours: ignore them.
    if (peekPayloadType(d) !== payloadType) return undefined;
    try {
      const value = decode(decodeV2(d).payload);
      return accept(value) ? value : undefined;
    } catch (err) {
      if (err instanceof DecodeError) return undefined;
      throw err;
    }
  };
}

/**
 * Whether an Open Session, RAKP 2 or RAKP 4 answer is meant for this attempt's console session id.
 * A success names it; a refusal may name 0, as a BMC that no longer knows the session cannot name
 * it (the simulator does so). Another id is an earlier attempt's answer or another console's:
 * ignored, as pyghmi does ("discard mismatch in the session identifier", pyghmi/ipmi/private/session.py).
 */
function addressedTo(consoleSessionId: number, answer: { status: number; named: number }): boolean {
  return answer.named === consoleSessionId || (answer.status !== 0 && answer.named === 0);
}

/** Attempts of the whole handshake before session setup gives up: ipmitool makes 4 (IPMI_LAN_RETRY, lanplus.h), pyghmi 5 (logontries). */
const HANDSHAKE_ATTEMPTS = 5;

/** Transmissions of each handshake step (and of Set Session Privilege Level) within one attempt. */
const STEP_TRANSMISSIONS = 3;

/** RMCP+ statuses (IPMI 2.0 table 13-15) that may say the BMC lost the half-open session rather than refused us. */
const INVALID_SESSION_ID = 0x02;
const INVALID_INTEGRITY_CHECK_VALUE = 0x0f;

/**
 * The BMC lost the state of this attempt: RAKP 2 "invalid session ID", or RAKP 4 "invalid session
 * ID" or "invalid integrity check value" to the only RAKP 3 sent, after RAKP 2 had proved the
 * password (so that RAKP 3's code was right for the RAKP 2 it answered). A new attempt may work;
 * PROTOCOL when none is left, never AUTH_FAILED: the credentials were not what failed. pyghmi
 * starts over on RAKP 4 status 2 and ignores status 15 while it has tries left (_got_rakp4); it
 * ignores RAKP 2 status 2, which "99% of the time means a retry scenario invalidated an in-flight
 * transaction" (_got_rakp2).
 */
class AttemptLost extends BmcError {
  constructor(message: string) {
    super('PROTOCOL', message);
  }
}

/** One try of Open Session to Set Session Privilege Level, in a BMC session of its own. */
interface Attempt {
  /** 1 for the first */
  number: number;
  consoleSessionId: number;
  /** the first wait for each step's answer; later transmissions wait longer, by the retry policy's backoff */
  waitMs: number;
}

/**
 * The next attempt: a new console session id, so that a late answer to an earlier attempt never
 * passes for this one's, and a longer first wait, by the retry policy's backoff, so that a BMC
 * that answers a step only after a repeat has been sent is waited for on a later attempt.
 */
function nextAttempt(previous: Attempt | undefined, r: RetryPolicy): Attempt {
  const number = (previous?.number ?? 0) + 1;
  return { number, consoleSessionId: randomInt(1, 0xffffffff), waitMs: Math.min(r.attemptMs * r.backoff ** (number - 1), r.maxAttemptMs) };
}

/** Whether a failed attempt may be followed by another: no answer in time, or the BMC lost its state. */
function restartable(err: unknown): err is BmcError {
  return err instanceof AttemptLost || (err instanceof BmcError && err.code === 'TIMEOUT');
}

/**
 * Each attempt runs Open Session, RAKP 1, RAKP 3 and Set Session Privilege Level in one BMC
 * session. A step is repeated after a wait, under a new message tag, and a RAKP 2 is taken only
 * when it answers the latest RAKP 1: a BMC may draw a new random number for every RAKP 1 it gets,
 * and a RAKP 3 answering an earlier RAKP 2 then fails its check, which read as a wrong password.
 * A step left unanswered, or a BMC that lost the half-open session (AttemptLost), starts the
 * whole handshake over with a new Open Session, as ipmitool does ("If the open/rakp1/rakp3
 * sequence encounters a timeout, the whole sequence needs to restart", ipmi_lanplus_open in
 * src/plugins/lanplus/lanplus.c), within the deadline and HANDSHAKE_ATTEMPTS. ipmitool sends each
 * step once per attempt; repeating it within the attempt keeps one BMC session per attempt under
 * packet loss, where a restart would leave another half-open session behind each time.
 *
 * That half-open session of an abandoned attempt cannot be closed: Close Session needs an active
 * session, and a RAKP 3 with an error status is how a console reports a failed proof (OpenIPMI
 * lanserv logs it as a failed session setup), not a timeout. The BMC drops it on its own
 * handshake timeout, as it does for ipmitool, which just restarts. A session that may have become
 * active is closed (abandon).
 */
async function openRestarting(channel: DatagramChannel, suite: CipherSuite, options: HandshakeOptions, lookup: UserLookup, { at: deadline, ms: deadlineMs }: SetupDeadline): Promise<EstablishedSession> {
  const r = options.retry;
  const tags = messageTags();
  let attempt = nextAttempt(undefined, r);
  for (;;) {
    try {
      return await openWithSuite(channel, suite, options, lookup, { attempt, tags, deadline });
    } catch (err) {
      // a TIMEOUT that is the caller's signal (a per-BMC deadline aborts with one) is final: the
      // exchange fails at once on an aborted signal, so a restart would spin without ever waiting
      if (options.signal?.aborted) throw abortError(options.signal, `session setup with BMC ${channel.remote}`);
      if (!restartable(err)) throw err;
      if (attempt.number >= HANDSHAKE_ATTEMPTS || deadline - Date.now() <= r.attemptMs) throw gaveUp(channel, err, attempt, deadlineMs);
      attempt = nextAttempt(attempt, r);
      options.onEvent?.({
        kind: 'handshake-restart',
        message: `${err.message}; the session handshake starts over with a new Open Session (attempt ${attempt.number} of at most ${HANDSHAKE_ATTEMPTS}, first waiting ${Math.round(attempt.waitMs)} ms for each answer)`,
      });
    }
  }
}

function gaveUp(channel: DatagramChannel, err: BmcError, attempt: Attempt, deadlineMs: number): BmcError {
  const attempts = `${attempt.number} attempt${attempt.number === 1 ? '' : 's'}`;
  if (err.code === 'TIMEOUT') return new BmcError('TIMEOUT', `session setup with BMC ${channel.remote} did not complete within ${deadlineMs} ms (${attempts}): ${err.message}`, { cause: err });
  return new BmcError(err.code, `${err.message}; session setup gave up after ${attempts}`, { cause: err });
}

/** What the steps of one attempt share. */
interface AttemptContext {
  attempt: Attempt;
  tags: WrappingCounter;
  /** of the whole session setup (epoch ms) */
  deadline: number;
}

/** The retry policy of one step: STEP_TRANSMISSIONS transmissions from the attempt's first wait, within the session setup deadline. */
function stepPolicy(ctx: AttemptContext, r: RetryPolicy): RetryPolicy {
  const first = ctx.attempt.waitMs;
  let budget = 0;
  let wait = first;
  for (let i = 0; i < STEP_TRANSMISSIONS; i++, wait = Math.min(wait * r.backoff, r.maxAttemptMs)) budget += wait;
  return { ...r, attemptMs: first, deadlineMs: Math.max(1, Math.min(budget, ctx.deadline - Date.now())) };
}

async function openWithSuite(channel: DatagramChannel, asked: CipherSuite, options: HandshakeOptions, lookup: UserLookup, ctx: AttemptContext): Promise<EstablishedSession> {
  const { consoleSessionId } = ctx.attempt;
  const policy = stepPolicy(ctx, options.retry);
  const describe = (step: string) => () => `${step} with BMC ${channel.remote}`;
  const algs = suiteAlgorithms(asked);
  const privilege = lookup.privilege;
  // any answer for this console session id is a session opened for it, whichever transmission it answers
  const openSends = numberedTransmissions(ctx.tags, (tag) =>
    encodeV2({ payloadType: PayloadType.openSessionRequest, sessionId: 0, seq: 0, payload: encodeOpenSessionRequest({ tag, privilege, consoleSessionId, ...algs }) }),
  );
  const open = await exchange(
    channel,
    openSends.transmit,
    v2Matcher(PayloadType.openSessionResponse, decodeOpenSessionResponse, (v) => openSends.sent.includes(v.tag) && addressedTo(consoleSessionId, { status: v.status, named: v.consoleSessionId })),
    policy,
    describe('Open Session'),
    options.signal,
  );
  if (open.status !== 0) {
    const reason = `Open Session with cipher suite ${asked.id} refused by BMC ${channel.remote}: ${describeRmcpPlusStatus(open.status)}`;
    if (SUITE_REJECTED.has(open.status)) throw new BmcError('UNSUPPORTED', reason);
    if (open.status === 0x01 || open.status === 0x0b) throw new BmcError('NO_SESSION_SLOTS', reason);
    // a user limited to Operator, refused Administrator before RAKP: asked again as RAKP 2's refusal is
    if (ROLE_REFUSED.has(open.status)) throw new LookupRefused('Open Session', open.status, 'AUTH_FAILED', reason);
    throw new BmcError(AUTH_REJECTED.has(open.status) ? 'AUTH_FAILED' : 'PROTOCOL', reason);
  }
  const suite = settledSuite(asked, open, options.cipherSuite);
  if (!suite) {
    throw new BmcError(
      'PROTOCOL',
      `BMC ${channel.remote} answered Open Session for cipher suite ${asked.id} with other algorithms (authentication ${open.auth}, integrity ${open.integrity}, confidentiality ${open.confidentiality}), which ${typeof options.cipherSuite === 'number' ? 'is not the suite asked for' : `form no suite metal-bmc picks (${options.cipherSuite})`}`,
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
  // A RAKP 2 proves the BMC's random number as of the RAKP 1 it answers: only one answering the
  // latest RAKP 1 matches the state the BMC holds. A refusal of the user holds whichever it answers.
  const rakp1 = numberedTransmissions(ctx.tags, (tag) =>
    encodeV2({ payloadType: PayloadType.rakp1, sessionId: 0, seq: 0, payload: encodeRakp1({ tag, bmcSessionId: params.bmcSessionId, consoleRandom: params.consoleRandom, role: params.role, username: params.username }) }),
  );
  const rakp2 = await exchange(
    channel,
    rakp1.transmit,
    v2Matcher(PayloadType.rakp2, decodeRakp2, (v) => (v.status === 0 ? v.tag === rakp1.sent.at(-1) : rakp1.sent.includes(v.tag)) && addressedTo(consoleSessionId, { status: v.status, named: v.consoleSessionId })),
    policy,
    describe('RAKP 1'),
    options.signal,
  );
  if (rakp2.status === INVALID_SESSION_ID) throw new AttemptLost(`BMC ${channel.remote} no longer knows the session it opened (RAKP 2: ${describeRmcpPlusStatus(rakp2.status)})`);
  if (rakp2.status !== 0) {
    const code = AUTH_REJECTED.has(rakp2.status) ? 'AUTH_FAILED' : rakp2.status === 0x01 ? 'NO_SESSION_SLOTS' : 'PROTOCOL';
    throw new LookupRefused('RAKP 1', rakp2.status, code, `BMC ${channel.remote} refused user ${JSON.stringify(options.user)}: ${describeRmcpPlusStatus(rakp2.status)}`);
  }
  params.bmcRandom = rakp2.bmcRandom;
  params.bmcGuid = rakp2.bmcGuid;
  const expected = rakp2Code(params, kuid);
  let paddingTold = false;
  /** a code longer than the HMAC whose HMAC-length start matches: told once per attempt */
  const tellPadding = (what: string, got: Buffer, hmacLength: number) => {
    if (paddingTold) return;
    paddingTold = true;
    options.onEvent?.({ kind: 'rakp-code-padded', message: `BMC ${channel.remote} sent its ${what} with ${got.length - hmacLength} byte(s) past the ${hmacLength}-byte HMAC; the HMAC's bytes are checked, as ipmitool does` });
  };
  const rakp2Match = matchRakpCode(expected, rakp2.keyExchangeCode);
  if (rakp2Match === 'padded') tellPadding('RAKP 2 key exchange code', rakp2.keyExchangeCode, expected.length);
  if (rakp2Match === 'mismatch') {
    // Tell the BMC to drop the half-open session, then report the failure.
    channel.send(encodeV2({ payloadType: PayloadType.rakp3, sessionId: 0, seq: 0, payload: encodeRakpCode({ tag: ctx.tags.next(), status: INVALID_INTEGRITY_CHECK_VALUE, sessionId: params.bmcSessionId, code: Buffer.alloc(0) }) }));
    throw new BmcError('AUTH_FAILED', `authentication with BMC ${channel.remote} failed: wrong user name or password (the BMC's RAKP 2 proof does not match)`);
  }

  // The password is proven: from here on, a refusal is the BMC's state, not the credentials.
  const sik = sessionIntegrityKey(params, options.kg ?? kuid);
  const { k1, k2 } = deriveKeys(suite.auth, sik);
  const keys: SessionKeys = { integrity: suite.integrity, confidentiality: suite.confidentiality, k1, k2 };
  const established: EstablishedSession = { suite, consoleSessionId, bmcSessionId: params.bmcSessionId, keys, privilege, nextSeq: 1, checksumFaultTold: false };
  try {
    const rakp3 = numberedTransmissions(ctx.tags, (tag) =>
      encodeV2({ payloadType: PayloadType.rakp3, sessionId: 0, seq: 0, payload: encodeRakpCode({ tag, status: 0, sessionId: params.bmcSessionId, code: rakp3Code(params, kuid) }) }),
    );
    const rakp4 = await exchange(
      channel,
      rakp3.transmit,
      v2Matcher(PayloadType.rakp4, (p) => decodeRakpCode(p, 'RAKP 4'), (v) => rakp3.sent.includes(v.tag) && addressedTo(consoleSessionId, { status: v.status, named: v.sessionId })),
      policy,
      describe('RAKP 3'),
      options.signal,
    ).catch((err: unknown) => {
      // RAKP 4 lost: the BMC may have activated the session and ignore a repeated RAKP 3.
      // The authenticated answer to Set Session Privilege Level below proves the keys instead.
      if (err instanceof BmcError && err.code === 'TIMEOUT') return undefined;
      throw err;
    });
    if (rakp4 && rakp4.status !== 0) {
      const reason = `BMC ${channel.remote} refused RAKP 3: ${describeRmcpPlusStatus(rakp4.status)}`;
      const lost = rakp4.status === INVALID_SESSION_ID || rakp4.status === INVALID_INTEGRITY_CHECK_VALUE;
      if (!lost) throw new BmcError(AUTH_REJECTED.has(rakp4.status) ? 'AUTH_FAILED' : 'PROTOCOL', reason);
      if (rakp3.sent.length === 1) throw new AttemptLost(`${reason}, after its RAKP 2 had proved the password (it lost the handshake's state)`);
      // the refusal of a repeated RAKP 3: the BMC may have activated the session on an earlier
      // copy whose RAKP 4 was lost (pyghmi: "BMC can consider it done"); the privilege answer decides
    } else if (rakp4) {
      const icv = rakp4Icv(params, sik);
      const rakp4Match = matchRakpCode(icv, rakp4.code);
      if (rakp4Match === 'mismatch') throw new BmcError('AUTH_FAILED', `BMC ${channel.remote} failed to prove the session key in RAKP 4 (wrong BMC key?)`);
      if (rakp4Match === 'padded') tellPadding('RAKP 4 integrity check value', rakp4.code, icv.length);
    }
    await activatePrivilege(channel, established, { ...options, retry: stepPolicy(ctx, options.retry) });
    return established;
  } catch (err) {
    abandon(channel, established);
    throw err;
  }
}

/**
 * Closes the session of an attempt that fails after RAKP 3: the BMC may have activated it (its
 * RAKP 4 or privilege answer lost, or the privilege refused), and an active session holds one of
 * the BMC's few slots until its idle timeout. One Close Session, not waited for: a BMC that
 * stopped answering cannot be helped, one that answers frees the slot; one that never activated
 * the session drops the request.
 */
function abandon(channel: DatagramChannel, s: EstablishedSession): void {
  const id = Buffer.alloc(4);
  id.writeUInt32LE(s.bmcSessionId);
  const request = encodeRequest({ netFn: NetFn.app, cmd: CLOSE_SESSION_CMD, seq: randomInt(1, 64), data: id });
  try {
    channel.send(encodeV2({ payloadType: PayloadType.ipmi, sessionId: s.bmcSessionId, seq: s.nextSeq++, payload: request }, s.keys));
  } catch {
    // the channel is closed: nothing to free through it
  }
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
  // each request its own rqSeq: a late copy of an earlier answer must not pass for a later request's
  const rqSeqs = new WrappingCounter(1, 63);
  const code = await askPrivilege(channel, s, s.privilege, rqSeqs, options);
  if (code === 0) return;
  if (!LEVEL_NOT_AVAILABLE.has(code) || s.privilege <= OPERATOR) throw privilegeRefused(channel, s.privilege, code);
  const again = await askPrivilege(channel, s, OPERATOR, rqSeqs, options);
  if (again !== 0) throw privilegeRefused(channel, OPERATOR, again, `${s.privilege} (${describeSetPrivilegeCode(code)}), then`);
  options.onEvent?.({
    kind: 'privilege-operator',
    message: `BMC ${channel.remote} refused privilege level ${s.privilege} in the session (${describeSetPrivilegeCode(code)}); the session runs at privilege ${OPERATOR} (Operator)`,
  });
  s.privilege = OPERATOR;
}

/**
 * Set Session Privilege Level(`level`); resolves with the completion code. 0xCF "duplicated
 * request" answering a resend says the BMC handled the first transmission and its answer was lost,
 * not what that answer was: a refusal (0x80/0x81) as well as the level set. The level is asked
 * again under a new rqSeq, which the BMC carries out as a request of its own (asking for the level
 * a session holds sets it again), and that answer decides. Taken for the answer, 0xCF failed the
 * session although the BMC had set the level. 0xCF to the only transmission stays a refusal.
 */
async function askPrivilege(channel: DatagramChannel, s: EstablishedSession, level: number, rqSeqs: WrappingCounter, options: HandshakeOptions): Promise<number> {
  for (let ask = 1; ; ask++) {
    const { completionCode, transmissions } = await setSessionPrivilege(channel, s, level, rqSeqs.next(), options);
    if (completionCode !== DUPLICATE_REQUEST || transmissions < 2 || ask >= PRIVILEGE_ASKS) return completionCode;
  }
}

/** Sends Set Session Privilege Level(`level`) in the session under `rqSeq`, resent until answered. */
async function setSessionPrivilege(channel: DatagramChannel, s: EstablishedSession, level: number, rqSeq: number, options: HandshakeOptions): Promise<{ completionCode: number; transmissions: number }> {
  let transmissions = 0;
  const response = await exchange(
    channel,
    () => {
      transmissions++;
      return encodeV2({ payloadType: PayloadType.ipmi, sessionId: s.bmcSessionId, seq: s.nextSeq++, payload: encodeRequest({ netFn: NetFn.app, cmd: SET_SESSION_PRIVILEGE_CMD, seq: rqSeq, data: Buffer.from([level]) }) }, s.keys);
    },
    (d) => {
      if (peekPayloadType(d) !== PayloadType.ipmi) return undefined;
      try {
        const p = decodeV2(d, s.keys);
        if (p.sessionId !== s.consoleSessionId) return undefined;
        return sessionAnswer(p.payload, { netFn: NetFn.app, cmd: SET_SESSION_PRIVILEGE_CMD, seq: rqSeq }, s, channel.remote, options.onEvent);
      } catch (err) {
        if (err instanceof DecodeError) return undefined;
        throw err;
      }
    },
    options.retry,
    () => `Set Session Privilege Level with BMC ${channel.remote}`,
    options.signal,
  );
  return { completionCode: response.completionCode, transmissions };
}

/**
 * The answer to an in-session request in `payload`, or undefined when it answers another. In a
 * session whose packets carry an integrity code, an answer whose only fault is a wrong IPMI
 * checksum is taken (message.ts responseTo says why) and told once per session; without
 * integrity the checksums are the only check of the bytes, and a wrong one is refused (DecodeError).
 */
export function sessionAnswer(payload: Buffer, request: { netFn: number; cmd: number; seq: number }, s: EstablishedSession, remote: string, onEvent: ((event: IpmiEvent) => void) | undefined): IpmiResponse | undefined {
  const found = responseTo(payload, request, s.keys.integrity !== 'none');
  if (found?.checksumFault && !s.checksumFaultTold) {
    s.checksumFaultTold = true;
    const hex = (n: number) => `0x${n.toString(16).padStart(2, '0')}`;
    onEvent?.({
      kind: 'checksum-ignored',
      message: `BMC ${remote} answered netfn ${hex(request.netFn)} command ${hex(request.cmd)} with a wrong IPMI ${found.checksumFault} checksum; its packets pass the session's integrity check, so such answers are taken (FreeIPMI's workaround nochecksumcheck)`,
    });
  }
  return found?.response;
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

/**
 * A RAKP 2 or RAKP 4 code against the HMAC we computed, compared over the HMAC's length as
 * ipmitool compares it: some BMCs append a byte (FreeIPMI's workarounds supermicro20, Supermicro
 * with Peppercon firmware, and sun20, Sun Fire 4100: 21 bytes for a 20-byte HMAC-SHA1), which a
 * whole-buffer comparison reported as a wrong password. 'padded': longer, its start matching.
 * Without an HMAC (RAKP-none) the code must be empty.
 */
export function matchRakpCode(expected: Buffer, got: Buffer): 'match' | 'padded' | 'mismatch' {
  if (expected.length === 0 || got.length <= expected.length) return sameBytes(expected, got) ? 'match' : 'mismatch';
  return sameBytes(expected, got.subarray(0, expected.length)) ? 'padded' : 'mismatch';
}

function sameBytes(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && a.length > 0 ? timingSafeEqual(a, b) : a.length === 0 && b.length === 0;
}
