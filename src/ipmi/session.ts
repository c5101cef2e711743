/**
 * An established RMCP+ session: numbered, authenticated and encrypted requests with
 * request-sequence matching, retransmission, the inbound sliding window, keepalive, payloads
 * (SOL) and Close Session on every path. One owner closes it; `closeAllSessions()` closes every
 * session of the process (shutdown hook).
 */
import { randomInt } from 'node:crypto';
import type { CipherChoice } from './cipher.js';
import { abortError, BmcError, isBmcError } from '../errors.js';
import { DEFAULT_RETRY, exchange, validateRetryPolicy, type RetryPolicy } from './exchange.js';
import { establish, sessionAnswer, type EstablishedSession, type IpmiEvent } from './handshake.js';
import { InboundWindow } from './inbound-window.js';
import { createKeepalive } from './keepalive.js';
import { RQ_SEQ_RETENTION_MS, RqSeqAllocator } from './rq-seq.js';

export type { IpmiEvent } from './handshake.js';
import { datagramKind, decodeV2, encodeV2, PayloadType } from './lan.js';
import { describeCompletionCode, DUPLICATE_REQUEST, encodeRequest, NetFn, type IpmiResponse } from './message.js';
import { Privilege, type PrivilegeName } from './rakp.js';
import { defaultUdpPool, type DatagramChannel, type UdpPool } from './transport.js';

export interface SessionOptions {
  host: string;
  port?: number;
  user: string;
  password: string;
  kg?: Buffer;
  privilege?: PrivilegeName;
  cipherSuite?: CipherChoice;
  allowInsecure?: boolean;
  /** retransmission and deadline of the handshake and of each command */
  retry?: Partial<RetryPolicy>;
  /** deadline of the handshake and of each command (shorthand for `retry.deadlineMs`) */
  timeoutMs?: number;
  /** the BMC did something unusual that the session works around (one line for the log) */
  onEvent?: (event: IpmiEvent) => void;
  /** idle time after which a keepalive request is sent; 0 disables it */
  keepaliveMs?: number;
  /** how long to keep retrying Close Session in the background when the BMC did not confirm it; 0 disables */
  closeLingerMs?: number;
  pool?: UdpPool;
  /** for tests: an already open channel instead of the UDP pool */
  channel?: DatagramChannel;
  signal?: AbortSignal;
  /** called for every datagram from the BMC, before it is decoded: a sign of life of the BMC (a report read's deadline, report/loop-clock.ts) */
  onAnswer?: () => void;
}

export interface CommandOptions {
  signal?: AbortSignal;
  /** overrides the session's deadline for this command */
  deadlineMs?: number;
}

export type SessionState =
  | { kind: 'established'; session: EstablishedSession }
  | { kind: 'closing' }
  | { kind: 'closed'; reason: string };

export interface IpmiSession {
  readonly remote: string;
  readonly cipherSuite: number;
  /** the privilege level the session holds (it may be below the one asked for, see handshake.ts) */
  readonly privilege: number;
  /** the id the BMC gave this session in Open Session (Get Payload Instance Info names a payload's owner by it) */
  readonly bmcSessionId: number;
  readonly state: SessionState;
  /** Sends a request; resolves with the raw response, whatever its completion code. */
  request(netFn: number, cmd: number, data?: Buffer, options?: CommandOptions): Promise<IpmiResponse>;
  /** Sends a request; a non-zero completion code is a COMPLETION_CODE error naming `what`. */
  command(what: string, netFn: number, cmd: number, data?: Buffer, options?: CommandOptions): Promise<Buffer>;
  /** Sends a non-IPMI payload (SOL) in the session, protected as the suite requires. */
  sendPayload(payloadType: number, payload: Buffer): void;
  /** Sends and receives payloads of one type over another UDP port of the BMC, in this session (SOL on another port). */
  routePayload(payloadType: number, port: number): Promise<void>;
  /** Receives payloads of one type (SOL); returns an unsubscribe function. */
  onPayload(payloadType: number, handler: (payload: Buffer) => void): () => void;
  /**
   * The request the keepalive sends when the session is idle, instead of Get Device ID (SOL asks
   * whether the payload is still its own); `undefined` restores Get Device ID. A ping that times
   * out ends the session as the BMC's silence.
   */
  keepaliveWith(ping: (() => Promise<unknown>) | undefined): void;
  /** Called once when the session ends, for whatever reason. */
  onClose(handler: (reason: string) => void): void;
  /** Close Session at the BMC (bounded by a short deadline), then release the socket. Never throws. */
  close(): Promise<void>;
}

const CLOSE_SESSION_CMD = 0x3c;
const GET_DEVICE_ID_CMD = 0x01;
const INBOUND_WINDOW = 16;

const openSessions = new Set<IpmiSession>();

/** Closes every open session of this process; for shutdown paths. */
export async function closeAllSessions(): Promise<void> {
  await Promise.all([...openSessions].map((s) => s.close()));
}

export function openSessionCount(): number {
  return openSessions.size;
}

/**
 * Has `channel` tell `onAnswer` of each datagram before its handler has it. In place: the UDP pool
 * knows the channel by identity (a payload channel beside it shares its local socket).
 */
function heeding(channel: DatagramChannel, onAnswer: (() => void) | undefined): DatagramChannel {
  if (onAnswer === undefined) return channel;
  const setHandler = channel.onDatagram.bind(channel);
  channel.onDatagram = (handler) =>
    setHandler((datagram) => {
      onAnswer();
      handler(datagram);
    });
  return channel;
}

export async function openSession(options: SessionOptions): Promise<IpmiSession> {
  const settings = sessionSettings(options);
  const privilegeName = options.privilege ?? 'admin';
  const privilege = Privilege[privilegeName];
  if (privilege === undefined) throw new BmcError('INVALID_ARGUMENT', `unknown privilege level ${String(privilegeName)}`);
  const pool = options.channel ? options.pool : (options.pool ?? defaultUdpPool());
  const channel = heeding(options.channel ?? (await pool!.open(options.host, options.port ?? 623, options.signal)), options.onAnswer);
  let established: EstablishedSession;
  try {
    established = await establish(channel, {
      user: options.user,
      password: options.password,
      ...(options.kg ? { kg: options.kg } : {}),
      privilege,
      cipherSuite: options.cipherSuite ?? 'auto',
      allowInsecure: options.allowInsecure ?? false,
      retry: settings.retry,
      onEvent: settings.onEvent,
      ...(options.signal ? { signal: options.signal } : {}),
    });
  } catch (err) {
    channel.close();
    throw err;
  }
  return createSession(channel, established, settings, pool);
}

interface SessionSettings {
  retry: RetryPolicy;
  keepaliveMs: number;
  lingerMs: number;
  onEvent: (event: IpmiEvent) => void;
}

function nonNegative(name: string, value: number | undefined, fallback: number): number {
  const v = value ?? fallback;
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw new BmcError('INVALID_ARGUMENT', `session option ${name} must be a finite number >= 0, got ${String(value)}`);
  return v;
}

/** The session's timing options, checked before any packet goes out. */
export function sessionSettings(options: Pick<SessionOptions, 'retry' | 'timeoutMs' | 'keepaliveMs' | 'closeLingerMs' | 'onEvent'>): SessionSettings {
  if (options.timeoutMs !== undefined && !(typeof options.timeoutMs === 'number' && Number.isFinite(options.timeoutMs) && options.timeoutMs > 0)) {
    throw new BmcError('INVALID_ARGUMENT', `session option timeoutMs must be a finite number > 0, got ${String(options.timeoutMs)}`);
  }
  const retry = validateRetryPolicy({ ...DEFAULT_RETRY, ...(options.timeoutMs !== undefined ? { deadlineMs: options.timeoutMs } : {}), ...options.retry }, 'session retry policy');
  return {
    retry,
    keepaliveMs: nonNegative('keepaliveMs', options.keepaliveMs, 25_000),
    lingerMs: nonNegative('closeLingerMs', options.closeLingerMs, 30_000),
    onEvent: options.onEvent ?? (() => undefined),
  };
}

function createSession(channel: DatagramChannel, established: EstablishedSession, settings: SessionSettings, pool: UdpPool | undefined): IpmiSession {
  const { retry, keepaliveMs, lingerMs, onEvent } = settings;
  let state: SessionState = { kind: 'established', session: established };
  let outboundSeq = established.nextSeq - 1;
  const rqSeqs = new RqSeqAllocator(randomInt(0, 64), () => `session with ${channel.remote}`);
  const inbound = new InboundWindow(INBOUND_WINDOW);
  const listeners = new Set<(datagram: Buffer) => void>();
  const payloadHandlers = new Map<number, Set<(payload: Buffer) => void>>();
  const closeHandlers: Array<(reason: string) => void> = [];
  /** channels to other UDP ports of the BMC that carry payloads (SOL on another port) */
  const payloadChannels = new Map<number, DatagramChannel>();
  const payloadRoutes = new Map<number, DatagramChannel>();
  const { keys, consoleSessionId, bmcSessionId } = established;
  const getDeviceId = () => request(NetFn.app, GET_DEVICE_ID_CMD);
  let ping: () => Promise<unknown> = getDeviceId;
  const keepalive = createKeepalive({
    intervalMs: keepaliveMs,
    active: () => state.kind === 'established',
    ping: () => ping(),
    onDead: (reason) => finish(reason),
  });

  function nextOutboundSeq(): number {
    outboundSeq = outboundSeq >= 0xffffffff ? 1 : outboundSeq + 1;
    return outboundSeq;
  }

  function receive(datagram: Buffer): void {
    let packet;
    try {
      if (datagramKind(datagram) !== 'v2') return;
      packet = decodeV2(datagram, keys);
    } catch {
      return; // not decodable or failed integrity: never let a bad datagram into the session
    }
    if (packet.sessionId !== consoleSessionId) return;
    // only payloads whose integrity decodeV2 checked (IPMI, SOL) may move the sequence window or
    // count as a sign of life: another type is taken without an integrity code, from anyone
    if (packet.payloadType !== PayloadType.ipmi && packet.payloadType !== PayloadType.sol) return;
    const verdict = inbound.check(packet.seq);
    if (verdict === 'restarted') {
      onEvent({ kind: 'sequence-restart', message: `BMC ${channel.remote} restarted its session sequence numbers (now ${packet.seq}); the session follows` });
    } else if (verdict !== 'accepted') return;
    keepalive.touch();
    // a handler's failure (e.g. an ACK sent while the session closes) must not leave the UDP
    // socket's message handler: it would end the process
    const deliver = (h: (payload: Buffer) => void) => {
      try {
        h(packet.payload);
      } catch {
        // the handler's own state records what it could not do
      }
    };
    if (packet.payloadType === PayloadType.ipmi) {
      for (const l of [...listeners]) deliver(l);
      return;
    }
    for (const h of [...(payloadHandlers.get(packet.payloadType) ?? [])]) deliver(h);
  }
  channel.onDatagram(receive);

  function wrap(payloadType: number, payload: Buffer): Buffer {
    return encodeV2({ payloadType, sessionId: bmcSessionId, seq: nextOutboundSeq(), payload }, keys);
  }

  async function request(netFn: number, cmd: number, data: Buffer = Buffer.alloc(0), options: CommandOptions = {}): Promise<IpmiResponse> {
    if (state.kind !== 'established') throw new BmcError('CLOSED', `session with BMC ${channel.remote} is ${state.kind}`);
    return send(netFn, cmd, data, options);
  }

  /**
   * A request under one rqSeq, resent under the same one until answered. A BMC that detects
   * duplicates answers a resend of a request it already handled with 0xCF "duplicated request"
   * (IPMI 2.0 table 5-2): the answer to the first transmission was lost or is late, and the request
   * was carried out. Such an answer settles nothing: the answer to the original is waited for until
   * the deadline, as ipmitool does (lanplus.c ipmi_lanplus_send_payload: "Duplicate Request ccode
   * most likely indicates a response to a previous retry. Ignore and keep polling."). Taken for the
   * request's own answer, it read as a refusal, and a power cycle was sent again over Redfish. After
   * the first such answer nothing more is sent (a resend past the BMC's duplicate window would run
   * again). When only such answers came, the deadline's TIMEOUT says the BMC got the request and may
   * have acted.
   */
  async function send(netFn: number, cmd: number, data: Buffer, options: CommandOptions): Promise<IpmiResponse> {
    if (options.signal?.aborted) throw abortError(options.signal, `IPMI command 0x${cmd.toString(16)} to ${channel.remote}`);
    const describe = () => `IPMI command netfn 0x${netFn.toString(16)} cmd 0x${cmd.toString(16)} to BMC ${channel.remote}`;
    const deadlineMs = options.deadlineMs ? options.deadlineMs : retry.deadlineMs;
    const free = rqSeqs.allocate(netFn, cmd);
    const { seq, waitedMs } = free !== undefined ? { seq: free, waitedMs: 0 } : await waitForRqSeq(netFn, cmd, deadlineMs, options.signal, describe);
    const message = encodeRequest({ netFn, cmd, seq, data });
    let transmissions = 0;
    let duplicateAnswers = 0;
    try {
      return await exchange(
        channel,
        () => {
          // after a 0xCF the BMC has the request: a later resend could reach it past the time it
          // keeps a request's sequence number (5 s in the spec's example, less on some BMCs) and be
          // carried out again, a second power cycle; so only the original's answer is listened for
          if (duplicateAnswers > 0) return undefined;
          keepalive.touch();
          transmissions++;
          rqSeqs.sent(seq);
          return wrap(PayloadType.ipmi, message);
        },
        (payload) => {
          const answer = sessionAnswer(payload, { netFn, cmd, seq }, established, channel.remote, onEvent);
          if (answer?.completionCode !== DUPLICATE_REQUEST || transmissions < 2) return answer;
          duplicateAnswers++;
          return undefined;
        },
        { ...retry, deadlineMs: Math.max(1, deadlineMs - waitedMs) },
        describe,
        options.signal,
        (handler) => {
          const safe = (d: Buffer) => {
            try {
              handler(d);
            } catch {
              // a response that fails to decode is ignored; the retransmission covers it
            }
          };
          listeners.add(safe);
          return () => listeners.delete(safe);
        },
      );
    } catch (err) {
      if (duplicateAnswers === 0 || !isBmcError(err, 'TIMEOUT') || options.signal?.aborted) throw err;
      const answers = duplicateAnswers === 1 ? 'one answer' : `${duplicateAnswers} answers`;
      throw new BmcError('TIMEOUT', `${describe()}: within ${deadlineMs} ms only ${answers} to its resends, "${describeCompletionCode(DUPLICATE_REQUEST)}" (0xCF): the BMC got the request and handled it, its answer was lost; it may have acted`, { cause: err });
    } finally {
      rqSeqs.release(seq);
    }
  }

  /**
   * A burst of one command (more than 64 within the retention, rq-seq.ts) waits for a number the
   * BMC no longer remembers for it; the wait counts against the command's deadline.
   */
  async function waitForRqSeq(netFn: number, cmd: number, deadlineMs: number, signal: AbortSignal | undefined, describe: () => string): Promise<{ seq: number; waitedMs: number }> {
    const deadline = AbortSignal.timeout(deadlineMs);
    // (Close Session's background retries send in a closed session: only an end during the wait counts)
    const closedBefore = state.kind === 'closed';
    let taken: { seq: number; waitedMs: number };
    try {
      taken = await rqSeqs.acquire(netFn, cmd, signal ? AbortSignal.any([signal, deadline]) : deadline, describe);
    } catch (err) {
      if (signal?.aborted || !deadline.aborted) throw err;
      throw new BmcError('TIMEOUT', `${describe()}: no request sequence number free within ${deadlineMs} ms (each was used for this command within the last ${RQ_SEQ_RETENTION_MS} ms)`, { cause: err });
    }
    if (!closedBefore && state.kind === 'closed') {
      rqSeqs.release(taken.seq);
      throw new BmcError('CLOSED', `session with BMC ${channel.remote} ended while ${describe()} waited for a request sequence number`);
    }
    return taken;
  }

  async function command(what: string, netFn: number, cmd: number, data?: Buffer, options?: CommandOptions): Promise<Buffer> {
    const response = await request(netFn, cmd, data, options);
    if (response.completionCode !== 0) {
      throw new BmcError('COMPLETION_CODE', `${what} on BMC ${channel.remote}: ${describeCompletionCode(response.completionCode)}`, {
        completionCode: response.completionCode,
      });
    }
    return response.data;
  }

  function closePayloadChannels(): void {
    for (const c of payloadChannels.values()) c.close();
    payloadChannels.clear();
    payloadRoutes.clear();
  }

  function finish(reason: string, releaseChannel = true): void {
    keepalive.stop();
    state = { kind: 'closed', reason };
    closePayloadChannels();
    if (releaseChannel) channel.close();
    openSessions.delete(session);
    for (const h of closeHandlers.splice(0)) h(reason);
  }

  function closeSessionRequest(deadlineMs: number): Promise<IpmiResponse> {
    const id = Buffer.alloc(4);
    id.writeUInt32LE(bmcSessionId);
    return send(NetFn.app, CLOSE_SESSION_CMD, id, { deadlineMs });
  }

  /**
   * A BMC that did not confirm Close Session (it stopped answering) keeps the slot until its own
   * timeout; retry in the background for `lingerMs`, so a BMC that comes back gets its slot freed.
   */
  function linger(): void {
    const until = Date.now() + lingerMs;
    const attempt = (wait: number) => {
      const timer = setTimeout(() => {
        closeSessionRequest(Math.min(5000, Math.max(500, until - Date.now()))).then(
          () => channel.close(),
          () => (Date.now() < until ? attempt(Math.min(wait * 2, 5000)) : channel.close()),
        );
      }, wait);
      timer.unref();
    };
    attempt(500);
  }

  let closing: Promise<void> | undefined;
  const session: IpmiSession = {
    remote: channel.remote,
    cipherSuite: established.suite.id,
    privilege: established.privilege,
    bmcSessionId,
    get state() {
      return state;
    },
    request,
    command,
    sendPayload(payloadType, payload) {
      if (state.kind !== 'established') throw new BmcError('CLOSED', `session with BMC ${channel.remote} is ${state.kind}`);
      keepalive.touch();
      (payloadRoutes.get(payloadType) ?? channel).send(wrap(payloadType, payload));
    },
    onPayload(payloadType, handler) {
      const set = payloadHandlers.get(payloadType) ?? new Set();
      set.add(handler);
      payloadHandlers.set(payloadType, set);
      return () => set.delete(handler);
    },
    async routePayload(payloadType, port) {
      if (state.kind !== 'established') throw new BmcError('CLOSED', `session with BMC ${channel.remote} is ${state.kind}`);
      const [host] = channel.remote.split(/:(?=\d+$)/);
      if (!pool || host === undefined) throw new BmcError('UNSUPPORTED', `BMC ${channel.remote} serves payload ${payloadType} on UDP port ${port}, and this session has no socket pool to reach it`);
      let extra = payloadChannels.get(port);
      if (!extra) {
        // on the session's own local socket: the BMC may send SOL from that port to the session's local port
        extra = await pool.open(host.replace(/^\[|\]$/g, ''), port, undefined, channel);
        extra.onDatagram(receive);
        payloadChannels.set(port, extra);
      }
      payloadRoutes.set(payloadType, extra);
    },
    keepaliveWith(p) {
      ping = p ?? getDeviceId;
    },
    onClose(handler) {
      if (state.kind === 'closed') handler(state.reason);
      else closeHandlers.push(handler);
    },
    close() {
      if (closing) return closing;
      if (state.kind !== 'established') return Promise.resolve();
      const ending = closeSessionRequest(2000);
      state = { kind: 'closing' };
      closing = ending.then(
        (answer) => {
          // Some BMCs answer Close Session with an error code although they drop the session;
          // either way it is gone for us.
          if (answer.completionCode !== 0) {
            onEvent({ kind: 'close-refused', message: `BMC ${channel.remote} answered Close Session with ${describeCompletionCode(answer.completionCode)}; the session is released here` });
          }
          finish('closed');
        },
        () => {
          finish('closed (the BMC did not confirm Close Session; retrying in the background)', lingerMs <= 0);
          if (lingerMs > 0) linger();
        },
      );
      return closing;
    },
  };
  keepalive.start();
  openSessions.add(session);
  return session;
}

/** Runs `fn` with a fresh session and closes it afterwards, whatever happens. */
export async function withSession<T>(options: SessionOptions, fn: (session: IpmiSession) => Promise<T>): Promise<T> {
  const session = await openSession(options);
  try {
    return await fn(session);
  } finally {
    await session.close();
  }
}

