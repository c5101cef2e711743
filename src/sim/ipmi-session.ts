/**
 * Server-side RMCP+ sessions of a simulated BMC: the phases a session goes through, the inbound
 * sequence-number window, and the session table with its slot limit. No I/O here.
 */
import { hmac, type AuthAlgorithm, type CipherSuite } from '../ipmi/cipher.js';
import type { SessionKeys } from '../ipmi/lan.js';
import type { HandshakeParameters } from '../ipmi/rakp.js';

export interface Remote {
  address: string;
  port: number;
  /** the datagram came in on (and the answer goes out of) the BMC's separate SOL port */
  via?: 'sol';
}

/** After Open Session: waiting for RAKP 1. */
export interface OpenedPhase {
  kind: 'opened';
}

/** After RAKP 2: waiting for RAKP 3. `params` holds everything the codes are computed from. */
export interface ChallengedPhase {
  kind: 'challenged';
  params: HandshakeParameters;
  kuid: Buffer;
}

/** After RAKP 4: an established session. */
export interface ActivePhase {
  kind: 'active';
  params: HandshakeParameters;
  /** the RAKP 3 code accepted and the RAKP 4 answer sent, to answer a retransmitted RAKP 3 alike */
  rakp3: Buffer;
  rakp4: Buffer;
  keys: SessionKeys;
  /** the highest privilege this session may take (the role of RAKP 1) */
  maxPrivilege: number;
  /** the current privilege; starts at User (IPMI 2.0 section 13.22) */
  privilege: number;
  inbound: SequenceWindow;
  outboundSeq: number;
}

export type SessionPhase = OpenedPhase | ChallengedPhase | ActivePhase;

export interface ServerSession {
  bmcSessionId: number;
  consoleSessionId: number;
  suite: CipherSuite;
  /** message tag of the handshake, echoed in every handshake answer */
  tag: number;
  /** maximum privilege granted by Open Session */
  requestedPrivilege: number;
  remote: Remote;
  lastActivity: number;
  phase: SessionPhase;
}

const KEY_CONSTANT_LENGTH = 20;

/**
 * K1 (integrity) and K2 (confidentiality) from the session integrity key: HMAC_SIK over a
 * constant of 20 bytes of 0x01 resp. 0x02 — 20 bytes for every algorithm, HMAC-SHA256 included,
 * as ipmitool (lanplus_generate_k1) and FreeIPMI (IPMI_KEY_CONSTANT_LENGTH) compute them.
 */
export function deriveSessionKeys(auth: AuthAlgorithm, sik: Buffer): { k1: Buffer; k2: Buffer } {
  return { k1: hmac(auth, sik, Buffer.alloc(KEY_CONSTANT_LENGTH, 0x01)), k2: hmac(auth, sik, Buffer.alloc(KEY_CONSTANT_LENGTH, 0x02)) };
}

/** The BMC's outbound sequence number for the session: 1, 2, …, never 0. */
export function nextOutboundSeq(phase: ActivePhase): number {
  phase.outboundSeq = phase.outboundSeq >= 0xffffffff ? 1 : phase.outboundSeq + 1;
  return phase.outboundSeq;
}

/**
 * The inbound sliding window of IPMI 2.0 section 6.12.13: a packet is accepted when its sequence
 * number lies within `size` of the highest one seen and was not seen before; 0 is never valid.
 */
export class SequenceWindow {
  private highest = 0;
  private seen = 0n;

  constructor(private readonly size = 16) {}

  accept(seq: number): boolean {
    if (seq === 0) return false;
    if (this.highest === 0) {
      this.highest = seq;
      this.seen = 1n;
      return true;
    }
    const ahead = (seq - this.highest) >>> 0; // wraps at 2^32
    if (ahead !== 0 && ahead <= this.size) {
      this.seen = ((this.seen << BigInt(ahead)) | 1n) & ((1n << BigInt(this.size)) - 1n);
      this.highest = seq;
      return true;
    }
    const behind = (this.highest - seq) >>> 0;
    if (behind >= this.size) return false;
    const bit = 1n << BigInt(behind);
    if (this.seen & bit) return false;
    this.seen |= bit;
    return true;
  }
}

/** The sessions of one BMC, keyed by the BMC's session id. */
export class SessionTable {
  private readonly sessions = new Map<number, ServerSession>();

  constructor(readonly maxSessions: number) {}

  get(bmcSessionId: number): ServerSession | undefined {
    return this.sessions.get(bmcSessionId);
  }

  all(): ServerSession[] {
    return [...this.sessions.values()];
  }

  get full(): boolean {
    return this.sessions.size >= this.maxSessions;
  }

  /** A session still in its handshake, opened by the same console with the same id (a retransmitted Open Session). */
  findHalfOpen(consoleSessionId: number, remote: Remote): ServerSession | undefined {
    return this.all().find(
      (s) => s.phase.kind !== 'active' && s.consoleSessionId === consoleSessionId && s.remote.address === remote.address && s.remote.port === remote.port,
    );
  }

  /** A fresh non-zero session id not in use. */
  newId(random: () => number): number {
    for (;;) {
      const id = random() >>> 0;
      if (id !== 0 && !this.sessions.has(id)) return id;
    }
  }

  add(session: ServerSession): void {
    this.sessions.set(session.bmcSessionId, session);
  }

  delete(bmcSessionId: number): boolean {
    return this.sessions.delete(bmcSessionId);
  }

  count(kind?: SessionPhase['kind']): number {
    if (kind === undefined) return this.sessions.size;
    return this.all().filter((s) => s.phase.kind === kind).length;
  }
}
