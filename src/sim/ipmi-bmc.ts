/**
 * The protocol engine of one simulated BMC: RMCP presence ping, session-less IPMI 1.5 requests,
 * the RMCP+ handshake (Open Session, RAKP 1-4) as the BMC side, established sessions with
 * integrity, confidentiality and the inbound window, and the SOL payload. It shares only the pure
 * codecs with the client (never its session logic) so that a bug cannot cancel itself out.
 * `handle()` is total: a datagram it cannot use is dropped, never thrown.
 */
import { randomBytes, randomInt, timingSafeEqual } from 'node:crypto';
import { BmcError } from '../errors.js';
import { CIPHER_SUITES, type CipherSuite } from '../ipmi/cipher.js';
import { datagramKind, decodeV15, decodeV2, encodeV15, encodeV2, PayloadType, type V2Packet } from '../ipmi/lan.js';
import { decodeRequest, encodeResponse, NetFn, type IpmiRequest } from '../ipmi/message.js';
import {
  decodeOpenSessionRequest,
  decodeRakp1,
  decodeRakpCode,
  encodeOpenSessionResponse,
  encodeRakp2,
  encodeRakpCode,
  passwordKey,
  Privilege,
  rakp2Code,
  rakp3Code,
  rakp4Icv,
  sessionIntegrityKey,
  suiteAlgorithms,
  type OpenSessionRequest,
  type RakpCode,
} from '../ipmi/rakp.js';
import { encodePresencePong, isPresencePing } from '../ipmi/rmcp.js';
import { decodeSolPacket, encodeSolPacket, type SolPacket } from '../ipmi/sol-packet.js';
import { CC, channelAuthCapabilities, channelCipherSuites, runCommand, SessionCmd, SOL_MAX_PAYLOAD, type BmcControl, type CommandResult } from './ipmi-commands.js';
import { systemGuid } from './ipmi-device.js';
import { deriveSessionKeys, nextOutboundSeq, SequenceWindow, SessionTable, type ActivePhase, type Remote, type ServerSession } from './ipmi-session.js';
import { hasQuirk, type SimMachine } from './machine.js';
import type { IpmiQuirkName } from './quirks-ipmi.js';
import { Cmd } from '../ipmi/commands.js';
import type { SerialLine } from './serial.js';
import { SolChannel } from './sol-server.js';

/** RMCP+ status codes this BMC answers with (IPMI 2.0 table 13-15). */
const Status = {
  ok: 0x00,
  noResources: 0x01,
  invalidSessionId: 0x02,
  invalidRole: 0x09,
  unauthorizedRole: 0x0a,
  unauthorizedName: 0x0d,
  invalidIntegrityValue: 0x0f,
  noCipherSuiteMatch: 0x11,
} as const;

/** The suites this BMC accepts: HMAC-SHA1/HMAC-SHA1-96/AES-CBC-128 and HMAC-SHA256/HMAC-SHA256-128/AES-CBC-128. */
/** A pre-session request the BMC leaves unanswered (a quirk). */
const SILENT = Symbol('silent');
const SEQUENCE_RESTART_AFTER = 20;
const SOL_SELF_DEACTIVATE_MS = 1000;
/**
 * How late a BMC with the ipmi-rakp-slow quirk answers RAKP 1: past the 1 s a console first waits
 * (metal-bmc's first wait, ipmitool's IPMI_LAN_TIMEOUT in lanplus.h), within the 1.5 s metal-bmc
 * waits after repeating RAKP 1, and within ipmitool's -N 2.
 */
const RAKP_SLOW_MS = 1200;
/**
 * ipmi-duplicate-cf: how long the BMC remembers a request to tell a repeat (the IPMI
 * specification's sequence number expiration interval, 5 s), and how late it answers Chassis
 * Control: past the 1 s a console first waits (metal-bmc, ipmitool), before its second wait ends.
 */
const DUPLICATE_WINDOW_MS = 5000;
const DUPLICATE_CF_LATE_MS = 1500;

/** Commands a quirk makes the BMC lack: quirk, netFn, commands, completion code. */
const COMMAND_QUIRKS: ReadonlyArray<readonly [IpmiQuirkName, number, readonly number[], number]> = [
  ['ipmi-no-system-guid', NetFn.app, [Cmd.getSystemGuid], CC.invalidCommand],
  ['ipmi-no-fru', NetFn.storage, [Cmd.getFruInventoryAreaInfo, Cmd.readFruData], CC.notPresent],
  ['ipmi-no-identify', NetFn.chassis, [Cmd.chassisIdentify], CC.invalidCommand],
];

export const ACCEPTED_SUITES: readonly CipherSuite[] = CIPHER_SUITES.filter((s) => s.id === 3 || s.id === 17);

export interface SimBmcOptions {
  machine: SimMachine;
  serial: SerialLine;
  user: string;
  password: string;
  maxSessions: number;
  /** idle time after which an established session is dropped */
  sessionTimeoutMs: number;
  /** idle time after which a session still in its handshake is dropped */
  handshakeTimeoutMs: number;
  /** the UDP port the BMC listens on */
  port: () => number;
  /** the other UDP port it serves SOL on, when it does (Activate Payload names it; SOL goes out `via: 'sol'`) */
  solPort?: () => number | undefined;
  send: (datagram: Buffer, remote: Remote) => void;
  /** SOL retransmission interval */
  solRetryMs?: number;
  /** called with an unexpected exception while handling a datagram (a bug; decode errors are not reported) */
  onError?: (err: unknown) => void;
}

type ActiveSession = ServerSession & { phase: ActivePhase };

function isActive(s: ServerSession): s is ActiveSession {
  return s.phase.kind === 'active';
}

function assertNever(value: never): never {
  throw new Error(`unexpected session phase ${JSON.stringify(value)}`);
}

function sameBytes(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && a.length > 0 && timingSafeEqual(a, b);
}

export class SimBmc implements BmcControl {
  private readonly sessions: SessionTable;
  private readonly machine: SimMachine;
  private sol: { owner: ActiveSession; channel: SolChannel } | undefined;
  private solActivationCount = 0;
  private identifyTimer: NodeJS.Timeout | undefined;
  /** answers a slow quirk holds back; cleared with the BMC */
  private readonly delayed = new Set<NodeJS.Timeout>();
  /** ipmi-duplicate-cf: per session, when each request (rqSeq, netFn, command) was last handled */
  private readonly handled = new WeakMap<ServerSession, Map<string, number>>();

  constructor(private readonly options: SimBmcOptions) {
    this.machine = options.machine;
    this.sessions = new SessionTable(options.maxSessions);
  }

  get port(): number {
    return this.options.port();
  }

  get solPort(): number {
    return this.options.solPort?.() ?? this.options.port();
  }

  /** Established sessions. */
  activeSessions(): number {
    return this.sessions.count('active');
  }

  /** Sessions still in their handshake (they hold a slot too). */
  pendingSessions(): number {
    return this.sessions.count() - this.sessions.count('active');
  }

  activeSolPayloads(): number {
    return this.sol ? 1 : 0;
  }

  /** SOL payloads activated since the BMC started (a console that fights another for SOL shows here) */
  solActivations(): number {
    return this.solActivationCount;
  }

  /** Handles one datagram from `remote`. Never throws. */
  handle(datagram: Buffer, remote: Remote): void {
    try {
      if (isPresencePing(datagram)) {
        this.options.send(encodePresencePong(datagram[9]!), remote);
        return;
      }
      const kind = datagramKind(datagram);
      if (kind === 'v15') this.handleV15(datagram, remote);
      else if (kind === 'v2') this.handleV2(datagram, remote);
    } catch (err) {
      // Malformed or failing integrity: dropped, as a BMC does. Anything else is a bug here.
      if (!(err instanceof BmcError)) this.options.onError?.(err);
    }
  }

  /** Drops sessions idle for longer than their timeout. */
  sweep(now = Date.now()): void {
    for (const s of this.sessions.all()) {
      const limit = s.phase.kind === 'active' ? this.options.sessionTimeoutMs : this.options.handshakeTimeoutMs;
      if (now - s.lastActivity > limit) this.closeSession(s.bmcSessionId);
    }
  }

  close(): void {
    for (const s of this.sessions.all()) this.closeSession(s.bmcSessionId);
    clearTimeout(this.identifyTimer);
    for (const timer of this.delayed) clearTimeout(timer);
    this.delayed.clear();
  }

  /** Runs `send` after `delayMs` (a slow BMC), at once without a delay. */
  private later(delayMs: number, send: () => void): void {
    if (delayMs <= 0) return send();
    const timer = setTimeout(() => {
      this.delayed.delete(timer);
      send();
    }, delayMs);
    this.delayed.add(timer);
  }

  // ---- session-less IPMI 1.5 -------------------------------------------------------------

  private handleV15(datagram: Buffer, remote: Remote): void {
    const packet = decodeV15(datagram);
    if (packet.sessionId !== 0 || packet.authType !== 0) return; // no IPMI 1.5 sessions here
    const req = decodeRequest(packet.message);
    if ((req.netFn & 1) !== 0) return;
    const result = this.sessionless(req) ?? { cc: CC.invalidCommand };
    if (result === SILENT) return;
    const answer = encodeResponse(req, result.cc, result.data);
    if (this.quirk('ipmi-bad-presession-checksum')) answer[answer.length - 1]! ^= 0x5a;
    // Some BMCs answer pre-session requests in the RMCP+ wrapper whatever the request used.
    if (this.quirk('ipmi-presession-rmcpplus')) this.sendV2(PayloadType.ipmi, 0, 0, answer, remote);
    else this.options.send(encodeV15(0, 0, answer), remote);
  }

  private quirk(name: IpmiQuirkName): boolean {
    return hasQuirk(this.machine.state, name);
  }

  /** The two commands a console may send before it has a session. */
  private sessionless(req: IpmiRequest): CommandResult | typeof SILENT | undefined {
    if (req.netFn !== NetFn.app) return undefined;
    if (req.cmd === SessionCmd.getChannelAuthCapabilities) return channelAuthCapabilities(req.data);
    if (req.cmd === SessionCmd.getChannelCipherSuites) return this.cipherSuites(req.data);
    return undefined;
  }

  private cipherSuites(data: Buffer): CommandResult | typeof SILENT {
    if (this.quirk('ipmi-cipher-suites-silent')) return SILENT;
    if (this.quirk('ipmi-no-cipher-suites')) return { cc: CC.invalidCommand };
    // records whose start bytes name no suite: 0xC0 0xEE ... (id 238) and a stray byte run
    if (this.quirk('ipmi-cipher-suites-garbage')) return { cc: CC.ok, data: Buffer.from([1, 0xc0, 0xee, 0x01, 0x41, 0x81, 0x13, 0x37]) };
    return channelCipherSuites(data);
  }

  // ---- RMCP+ ---------------------------------------------------------------------------

  private handleV2(datagram: Buffer, remote: Remote): void {
    if (datagram.length < 16) return; // RMCP header + RMCP+ session header
    const payloadType = datagram[5]! & 0x3f;
    const sessionId = datagram.readUInt32LE(6);
    switch (payloadType) {
      case PayloadType.openSessionRequest:
        return this.openSession(decodeOpenSessionRequest(decodeV2(datagram).payload), remote);
      case PayloadType.rakp1:
        return this.rakp1(decodeV2(datagram).payload, remote);
      case PayloadType.rakp3:
        return this.rakp3(decodeRakpCode(decodeV2(datagram).payload, 'RAKP 3'), remote);
      case PayloadType.ipmi:
      case PayloadType.sol:
        if (sessionId === 0) return this.sessionlessV2(decodeV2(datagram), remote);
        return this.inSession(sessionId, datagram, remote);
      default:
        return;
    }
  }

  /** ipmitool sends Get Channel Cipher Suites in an RMCP+ wrapper before the session exists. */
  private sessionlessV2(packet: V2Packet, remote: Remote): void {
    if (packet.payloadType !== PayloadType.ipmi || packet.encrypted || packet.authenticated) return;
    const req = decodeRequest(packet.payload);
    const result = this.sessionless(req);
    if (!result || result === SILENT) return;
    this.sendV2(PayloadType.ipmi, 0, 0, encodeResponse(req, result.cc, result.data), remote);
  }

  private sendV2(payloadType: number, sessionId: number, seq: number, payload: Buffer, remote: Remote): void {
    this.options.send(encodeV2({ payloadType, sessionId, seq, payload }), remote);
  }

  private openSession(req: OpenSessionRequest, remote: Remote): void {
    const answer = (status: number, session?: ServerSession) => {
      const algs = session ? suiteAlgorithms(session.suite) : { auth: 0, integrity: 0, confidentiality: 0 };
      const payload = encodeOpenSessionResponse({
        tag: req.tag,
        status,
        privilege: session?.requestedPrivilege ?? 0,
        consoleSessionId: req.consoleSessionId,
        bmcSessionId: session?.bmcSessionId ?? 0,
        ...algs,
      });
      this.sendV2(PayloadType.openSessionResponse, 0, 0, payload, remote);
    };
    if (this.machine.state.faults.sessionsFull) return answer(Status.noResources);
    const again = this.sessions.findHalfOpen(req.consoleSessionId, remote);
    if (again && again.phase.kind === 'opened') return answer(Status.ok, again); // a retransmission
    const asked = ACCEPTED_SUITES.find((s) => {
      const a = suiteAlgorithms(s);
      return a.auth === req.auth && a.integrity === req.integrity && a.confidentiality === req.confidentiality;
    });
    if (!asked) return answer(Status.noCipherSuiteMatch);
    // A BMC that settles on its own choice: suite 3 whatever was asked (IPMI 2.0 section 13.17 lets it)
    const suite = this.quirk('ipmi-open-session-own-suite') ? ACCEPTED_SUITES.find((s) => s.id === 3)! : asked;
    const privilege = req.privilege === 0 ? Privilege.admin : req.privilege;
    if (privilege > Privilege.admin) return answer(Status.unauthorizedRole);
    if (this.sessions.full) this.sweep();
    if (this.sessions.full) return answer(Status.noResources);
    const session: ServerSession = {
      bmcSessionId: this.sessions.newId(() => randomInt(1, 0xffffffff)),
      consoleSessionId: req.consoleSessionId,
      suite,
      tag: req.tag,
      requestedPrivilege: privilege,
      remote,
      lastActivity: Date.now(),
      phase: { kind: 'opened' },
    };
    this.sessions.add(session);
    answer(Status.ok, session);
  }

  /** The key the BMC proves and checks with; another one when the `wrongCredentials` fault is on. */
  private kuid(): Buffer {
    const { password } = this.options;
    const other = password === 'not-the-password' ? 'still-not-it' : 'not-the-password';
    return passwordKey(this.machine.state.faults.wrongCredentials ? other : password);
  }

  private rakp1(payload: Buffer, remote: Remote): void {
    const r = decodeRakp1(payload);
    const session = this.sessions.get(r.bmcSessionId);
    // A slow BMC whose state follows every RAKP 1 it gets: each one draws a new random number
    // (the code of a RAKP 3 answering an earlier RAKP 2 no longer matches), answered late.
    const slow = this.quirk('ipmi-rakp-slow');
    const answer = (status: number, consoleSessionId: number, rest?: { bmcRandom: Buffer; bmcGuid: Buffer; keyExchangeCode: Buffer }) => {
      const empty = Buffer.alloc(0);
      const body = encodeRakp2({ tag: r.tag, status, consoleSessionId, bmcRandom: rest?.bmcRandom ?? empty, bmcGuid: rest?.bmcGuid ?? empty, keyExchangeCode: rest?.keyExchangeCode ?? empty });
      this.later(slow ? RAKP_SLOW_MS : 0, () => this.sendV2(PayloadType.rakp2, 0, 0, body, remote));
    };
    if (!session || session.phase.kind === 'active') return answer(Status.invalidSessionId, 0);
    const refuse = (status: number) => {
      this.sessions.delete(session.bmcSessionId);
      answer(status, session.consoleSessionId);
    };
    const privilege = r.role & 0x0f;
    if (privilege < Privilege.callback || privilege > Privilege.admin) return refuse(Status.invalidRole);
    if (privilege > session.requestedPrivilege) return refuse(Status.unauthorizedRole);
    if (this.quirk('ipmi-operator-only') && privilege > Privilege.operator) return refuse(Status.unauthorizedRole);
    if (!r.username.equals(Buffer.from(this.options.user, 'utf8'))) return refuse(Status.unauthorizedName);
    const params = {
      auth: session.suite.auth,
      consoleSessionId: session.consoleSessionId,
      bmcSessionId: session.bmcSessionId,
      consoleRandom: r.consoleRandom,
      bmcRandom: session.phase.kind === 'challenged' && !slow ? session.phase.params.bmcRandom : randomBytes(16),
      bmcGuid: systemGuid(this.machine.state),
      role: r.role,
      username: r.username,
    };
    const kuid = this.kuid();
    session.phase = { kind: 'challenged', params, kuid };
    session.remote = remote;
    session.lastActivity = Date.now();
    answer(Status.ok, session.consoleSessionId, { bmcRandom: params.bmcRandom, bmcGuid: params.bmcGuid, keyExchangeCode: rakp2Code(params, kuid) });
  }

  private rakp3(r: RakpCode, remote: Remote): void {
    const session = this.sessions.get(r.sessionId);
    const answer = (status: number, consoleSessionId: number, code: Buffer = Buffer.alloc(0)) =>
      this.sendV2(PayloadType.rakp4, 0, 0, encodeRakpCode({ tag: r.tag, status, sessionId: consoleSessionId, code }), remote);
    if (!session) return r.status === 0 ? answer(Status.invalidSessionId, 0) : undefined;
    const phase = session.phase;
    switch (phase.kind) {
      case 'opened':
        if (r.status !== 0) this.sessions.delete(session.bmcSessionId);
        else answer(Status.invalidSessionId, 0);
        return;
      case 'challenged': {
        // A non-zero status: the console gave up (it could not verify RAKP 2). Forget the session.
        if (r.status !== 0) return void this.sessions.delete(session.bmcSessionId);
        if (!sameBytes(rakp3Code(phase.params, phase.kuid), r.code)) {
          this.sessions.delete(session.bmcSessionId);
          return answer(Status.invalidIntegrityValue, session.consoleSessionId);
        }
        const sik = sessionIntegrityKey(phase.params, phase.kuid);
        const { k1, k2 } = deriveSessionKeys(session.suite.auth, sik);
        const rakp4 = rakp4Icv(phase.params, sik);
        // a BMC that checks the user's limit only at Set Session Privilege Level: Operator at most
        const role = phase.params.role & 0x0f;
        const maxPrivilege = this.quirk('ipmi-operator-only-late') ? Math.min(role, Privilege.operator) : role;
        session.phase = {
          kind: 'active',
          params: phase.params,
          rakp3: r.code,
          rakp4,
          keys: { integrity: session.suite.integrity, confidentiality: session.suite.confidentiality, k1, k2 },
          maxPrivilege,
          privilege: Math.min(Privilege.user, maxPrivilege),
          inbound: new SequenceWindow(),
          outboundSeq: 0,
        };
        session.remote = remote;
        session.lastActivity = Date.now();
        return answer(Status.ok, session.consoleSessionId, rakp4);
      }
      case 'active':
        // A retransmitted RAKP 3 whose RAKP 4 was lost: answer it again.
        if (r.status === 0 && sameBytes(phase.rakp3, r.code)) answer(Status.ok, session.consoleSessionId, phase.rakp4);
        return;
      default:
        return assertNever(phase);
    }
  }

  // ---- established sessions --------------------------------------------------------------

  private inSession(sessionId: number, datagram: Buffer, remote: Remote): void {
    const session = this.sessions.get(sessionId);
    if (!session || !isActive(session)) return;
    const packet = decodeV2(datagram, session.phase.keys);
    if (!packet.authenticated || !packet.encrypted) return; // both suites protect every packet
    if (!session.phase.inbound.accept(packet.seq)) return;
    // the console's address as the session knows it; a packet on the SOL port is answered there
    if (remote.via === undefined) session.remote = remote;
    session.lastActivity = Date.now();
    if (packet.payloadType === PayloadType.sol) {
      if (this.sol?.owner === session) this.sol.channel.receive(decodeSolPacket(packet.payload));
      return;
    }
    const req = decodeRequest(packet.payload);
    if ((req.netFn & 1) !== 0) return;
    const duplicate = this.quirk('ipmi-duplicate-cf') && this.repeated(session, req);
    const chassisControl = req.netFn === NetFn.chassis && req.cmd === Cmd.chassisControl;
    const result = duplicate ? { cc: CC.duplicateRequest } : (this.quirkAnswer(req) ?? runCommand({ machine: this.machine, session, bmc: this }, req.netFn, req.cmd, req.data));
    // the fault actSilently: a chassis control carried out, its answer lost
    if (chassisControl && !duplicate && this.machine.state.faults.actSilently) return;
    const answer = encodeResponse(req, result.cc, result.data);
    // A BMC that gets the data checksum of its in-session answers wrong (the packet is otherwise valid)
    if (this.quirk('ipmi-bad-response-checksum')) answer[answer.length - 1]! ^= 0x5a;
    const late = chassisControl && !duplicate && this.quirk('ipmi-duplicate-cf') ? DUPLICATE_CF_LATE_MS : 0;
    this.later(late, () => this.sendInSession(session, PayloadType.ipmi, answer, remote));
    result.after?.();
  }

  /** Whether `req` repeats a request of `session` handled within DUPLICATE_WINDOW_MS; records it when not. */
  private repeated(session: ServerSession, req: IpmiRequest): boolean {
    const now = Date.now();
    let seen = this.handled.get(session);
    if (!seen) this.handled.set(session, (seen = new Map()));
    for (const [key, at] of seen) if (now - at > DUPLICATE_WINDOW_MS) seen.delete(key);
    const key = `${req.seq}/${req.netFn}/${req.cmd}`;
    if (seen.has(key)) return true;
    seen.set(key, now);
    return false;
  }

  /** What a quirk makes of a command: a refusal the BMC lacks it with, or Close Session's error. */
  private quirkAnswer(req: IpmiRequest): CommandResult | undefined {
    for (const [quirk, netFn, cmds, cc] of COMMAND_QUIRKS) {
      if (req.netFn === netFn && cmds.includes(req.cmd) && this.quirk(quirk)) return { cc };
    }
    if (req.netFn === NetFn.app && req.cmd === SessionCmd.closeSession && this.quirk('ipmi-close-session-error') && req.data.length >= 4) {
      const id = req.data.readUInt32LE(0);
      return { cc: 0xff, after: () => this.closeSession(id) };
    }
    return undefined;
  }

  private sendInSession(session: ActiveSession, payloadType: number, payload: Buffer, to: Remote = session.remote): void {
    // A BMC whose counter restarts within the session: 1 again after every 20 packets.
    if (this.quirk('ipmi-sequence-restart') && session.phase.outboundSeq >= SEQUENCE_RESTART_AFTER) session.phase.outboundSeq = 0;
    const datagram = encodeV2({ payloadType, sessionId: session.consoleSessionId, seq: nextOutboundSeq(session.phase), payload }, session.phase.keys);
    this.options.send(datagram, to);
  }

  // ---- BmcControl ------------------------------------------------------------------------

  hasSession(bmcSessionId: number): boolean {
    return this.sessions.get(bmcSessionId) !== undefined;
  }

  closeSession(bmcSessionId: number): void {
    const sol = this.sol;
    if (sol?.owner.bmcSessionId === bmcSessionId) this.deactivateSol(sol.owner);
    this.sessions.delete(bmcSessionId);
  }

  solOwner(): ServerSession | undefined {
    return this.sol?.owner;
  }

  activateSol(session: ServerSession): () => void {
    if (!isActive(session)) return () => undefined;
    const channel = new SolChannel({
      line: this.options.serial,
      maxChars: SOL_MAX_PAYLOAD - 4,
      ...(this.options.solRetryMs ? { retryMs: this.options.solRetryMs } : {}),
      acceptedCount: (taken) => (this.quirk('ipmi-sol-ack-zero') ? 0 : taken),
      send: (p: SolPacket) => {
        if (this.sessions.get(session.bmcSessionId) !== session) return;
        // SOL served on another port goes out of that port
        const viaSol = this.options.solPort?.() !== undefined;
        this.sendInSession(session, PayloadType.sol, encodeSolPacket(p), viaSol ? { ...session.remote, via: 'sol' } : session.remote);
      },
    });
    this.sol = { owner: session, channel };
    this.solActivationCount++;
    return () => {
      if (this.sol?.channel !== channel) return;
      channel.start();
      if (this.quirk('ipmi-sol-self-deactivate')) {
        const timer = setTimeout(() => {
          if (this.sol?.channel !== channel) return;
          this.sol = undefined;
          channel.stop(true); // the owner learns it from the "deactivating" status
        }, SOL_SELF_DEACTIVATE_MS);
        timer.unref();
      }
    };
  }

  /**
   * Ends the SOL payload. When another session ends it, the owner is told with the
   * "deactivating" status; the owner itself is not (ipmitool would take that SOL packet for
   * the answer to the command it is waiting for).
   */
  deactivateSol(by: ServerSession): void {
    const sol = this.sol;
    if (!sol) return;
    this.sol = undefined;
    sol.channel.stop(by !== sol.owner);
  }

  identify(on: boolean, seconds?: number): void {
    clearTimeout(this.identifyTimer);
    this.identifyTimer = undefined;
    this.machine.setIdentify(on);
    if (on && seconds !== undefined) {
      this.identifyTimer = setTimeout(() => {
        this.identifyTimer = undefined;
        this.machine.setIdentify(false);
      }, seconds * 1000);
      this.identifyTimer.unref();
    }
  }

  identifyState(): 0 | 1 | 2 {
    if (!this.machine.state.identify) return 0;
    return this.identifyTimer ? 1 : 2;
  }
}
