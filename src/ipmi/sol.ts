/**
 * Serial-over-LAN as a Node duplex stream: Activate Payload, packets with sequence numbers,
 * acknowledgements and retransmission both ways, character accumulation, break, and
 * Deactivate Payload when we end the stream (not when the BMC deactivated it, stopped answering
 * or names another owner: the payload may be another client's by then). While the stream is
 * idle the session's keepalive asks Get Payload Instance Info whether the payload is still ours.
 * A stale payload left by a crashed client can be taken over on request.
 */
import { Duplex } from 'node:stream';
import { BmcError } from '../errors.js';
import { cipherSuite } from './cipher.js';
import { Cmd, getDeviceId } from './commands.js';
import { PayloadType } from './lan.js';
import { describeCompletionCode, NetFn } from './message.js';
import type { IpmiEvent, IpmiSession } from './session.js';
import {
  decodeActivateSolResponse,
  decodeSolPacket,
  encodeActivateSol,
  encodeSolPacket,
  nextSolSeq,
  SolOperation,
  SolStatus,
  type SolPacket,
} from './sol-packet.js';

export interface SolOptions {
  /** deactivate a payload left active by another (crashed) client, then activate */
  takeOver?: boolean;
  /** wait for an ack before retransmitting a packet */
  retransmitMs?: number;
  /** retransmissions of an unanswered packet before the stream fails (a NACK is an answer) */
  maxRetransmits?: number;
  /** a BMC that refuses our characters (NACK, or none accepted) for this long gets them dropped, once told (default 30 s) */
  maxRefusalMs?: number;
  /** also close the IPMI session when the stream ends */
  closeSession?: boolean;
  /** the BMC did something unusual that the console works around or ends on (one line for the log) */
  onEvent?: (event: IpmiEvent) => void;
  signal?: AbortSignal;
}

export interface SolStream extends Duplex {
  /** a serial break, after every character written before it and before any written after it; false once the stream ended */
  sendBreak(): boolean;
  /**
   * Set before the stream ends when another client took SOL from us: the keepalive found another
   * session named as the payload's owner, or the BMC said it is deactivating. A console that
   * reopens with takeover would take it back from that client (README "Consoles").
   */
  readonly takenOver: boolean;
}

/**
 * A break travels through the stream's write queue as this marker (never sent as a character),
 * so it keeps its place among the writes: it goes once the characters written before it are
 * accepted, before those written after it.
 */
const BREAK_MARK = Buffer.from([0]);

const PAYLOAD_ALREADY_ACTIVE = 0x80;
/** Activate Payload's own completion codes (IPMI 2.0 table 24-2), named as ipmitool and pyghmi name them */
const ACTIVATE_REFUSALS: Record<number, string> = {
  0x81: 'SOL is disabled on the BMC (payload type disabled)',
  0x82: 'the payload activation limit is reached',
  0x83: 'SOL cannot be activated with encryption',
  0x84: 'SOL cannot be activated without encryption',
};
/** after a takeover's Deactivate Payload, Activate Payload answered "already active" is asked again this often */
const TAKEOVER_ATTEMPTS = 3;
const TAKEOVER_PAUSE_MS = 200;
const INSTANCE = 1;

function payloadRequest(instance: number): Buffer {
  return Buffer.from([PayloadType.sol, instance, 0, 0, 0, 0]);
}

export async function deactivateSol(session: IpmiSession, signal?: AbortSignal): Promise<void> {
  const r = await session.request(NetFn.app, Cmd.deactivatePayload, payloadRequest(INSTANCE), signal ? { signal } : {});
  // 0x80: payload already deactivated, which is what we want.
  if (r.completionCode !== 0 && r.completionCode !== 0x80) {
    throw new BmcError('COMPLETION_CODE', `Deactivate Payload (SOL) on BMC ${session.remote} failed with completion code 0x${r.completionCode.toString(16)}`, {
      completionCode: r.completionCode,
    });
  }
}

export async function openSol(session: IpmiSession, options: SolOptions = {}): Promise<SolStream> {
  // SOL is protected as much as the session is: encrypted and authenticated when the suite allows.
  const suite = cipherSuite(session.cipherSuite);
  const activate = () =>
    session.request(NetFn.app, Cmd.activatePayload, encodeActivateSol(INSTANCE, suite.confidentiality !== 'none', suite.integrity !== 'none'), options.signal ? { signal: options.signal } : {});
  let r = await activate();
  if (r.completionCode === PAYLOAD_ALREADY_ACTIVE && options.takeOver) {
    await deactivateSol(session, options.signal);
    r = await activate();
    // some BMCs need a moment after Deactivate Payload before the payload is free again
    for (let i = 1; i < TAKEOVER_ATTEMPTS && r.completionCode === PAYLOAD_ALREADY_ACTIVE; i++) {
      await new Promise((resolve) => setTimeout(resolve, TAKEOVER_PAUSE_MS));
      options.signal?.throwIfAborted();
      r = await activate();
    }
  }
  if (r.completionCode === PAYLOAD_ALREADY_ACTIVE) {
    throw new BmcError('BUSY', `SOL is already active on BMC ${session.remote} in another session (take it over to deactivate it)`, { completionCode: r.completionCode });
  }
  if (r.completionCode !== 0) {
    const named = ACTIVATE_REFUSALS[r.completionCode];
    throw new BmcError('COMPLETION_CODE', `Activate Payload (SOL) on BMC ${session.remote} failed with completion code 0x${r.completionCode.toString(16)}${named ? `: ${named}` : ''}`, {
      completionCode: r.completionCode,
    });
  }
  const activation = decodeActivateSolResponse(r.data);
  const [, remotePort] = session.remote.split(/:(?=\d+$)/);
  const port = solPort(activation.port, Number(remotePort));
  if (port !== 'session') {
    // SOL on another UDP port of the BMC: a second socket in the same session, same keys and ids.
    try {
      await session.routePayload(PayloadType.sol, port);
    } catch (err) {
      await deactivateSol(session).catch(() => undefined);
      throw err;
    }
    options.onEvent?.({ kind: 'sol-port', message: `BMC ${session.remote} serves SOL on UDP port ${port}; the console uses that port` });
  } else if (activation.port !== 0 && activation.port !== Number(remotePort)) {
    options.onEvent?.({ kind: 'sol-port', message: `BMC ${session.remote} named its SOL port in network byte order (${activation.port}); it is the session's port` });
  }
  return createSolStream(session, activation.inboundPayloadSize, options);
}

/**
 * The UDP port SOL runs on, from the port Activate Payload names: 'session' when it is the
 * session's own port, also when written in network byte order (several BMCs do, FreeIPMI's
 * ipmiconsole corrects it for Supermicro X8DTH-iF), or 0 (not given); else the other port.
 */
export function solPort(reported: number, sessionPort: number): number | 'session' {
  const swapped = ((reported & 0xff) << 8) | ((reported >> 8) & 0xff);
  if (reported === 0 || reported === sessionPort || swapped === sessionPort) return 'session';
  return reported;
}

/** IANA enterprise number of Intel, the manufacturer id its BMCs name in Get Device ID (ipmitool's IPMI_OEM_INTEL) */
export const INTEL_MANUFACTURER_ID = 343;

/**
 * Whether an ACK that accepts 0 of our characters without the NACK bit means all were accepted.
 * Intel's IPMI 2.0 BMCs answer so: ipmitool's OEM type intelplus ("Intel IPMI 2.0 BMC with RMCP+
 * communication support", chosen with -o intelplus) reads such an ACK as all accepted
 * (is_sol_partial_ack in lanplus.c), and read literally every keystroke went again, the BMC taking
 * it each time. FreeIPMI has no such exception. metal-bmc has no per-BMC OEM setting for an operator
 * to choose it, so Intel's manufacturer id from Get Device ID stands for it, asked once per stream
 * and only when such an ACK first comes (other BMCs never see the question). A failed question
 * leaves the count literal.
 */
function acceptedZeroMeansAll(session: IpmiSession, options: SolOptions): { readonly known: boolean; readonly meansAll: boolean; decide(): Promise<void> } {
  let known = false;
  let meansAll = false;
  let deciding: Promise<void> | undefined;
  return {
    get known() {
      return known;
    },
    get meansAll() {
      return meansAll;
    },
    decide() {
      deciding ??= getDeviceId(session, options.signal ? { signal: options.signal } : {}).then(
        (id) => {
          known = true;
          meansAll = id.manufacturerId === INTEL_MANUFACTURER_ID;
          if (meansAll) {
            options.onEvent?.({
              kind: 'sol-accepted-zero',
              message: `BMC ${session.remote} (Intel, manufacturer id ${INTEL_MANUFACTURER_ID}) acknowledged our characters accepting 0 of them without NACK; as ipmitool's -o intelplus, such an ACK counts as all accepted`,
            });
          }
        },
        () => {
          known = true;
        },
      );
      return deciding;
    },
  };
}

function createSolStream(session: IpmiSession, inboundPayloadSize: number, options: SolOptions): SolStream {
  const retransmitMs = options.retransmitMs ?? 1000;
  const maxRetransmits = options.maxRetransmits ?? 5;
  /** how long a BMC may refuse our characters (NACK, or none taken) before they are dropped: a serial side that takes nothing */
  const maxRefusalMs = options.maxRefusalMs ?? 30_000;
  /** since when every answer refused the characters in flight */
  let refusedSince: number | undefined;
  const maxData = Math.max(16, Math.min(inboundPayloadSize > 4 ? inboundPayloadSize - 4 : 200, 255));
  /** characters written and not yet accepted by the BMC, the packet in flight included */
  let pending: Buffer = Buffer.alloc(0);
  /** writes not yet in `pending`: characters behind a break (BREAK_MARK) that waits for those before it */
  const queued: Buffer[] = [];
  let inFlight: { packet: SolPacket; sentAt: number; attempts: number; timer: NodeJS.Timeout } | undefined;
  /** the BMC refused characters (NACK, or none accepted): nothing is sent until this timer fires */
  let backOff: NodeJS.Timeout | undefined;
  // Every activation numbers its packets from 1, as ipmitool, FreeIPMI and pyghmi do: OpenBMC
  // (phosphor-net-ipmid) makes a fresh SOL context per activation and drops any other first
  // number. (ipmi_sim keeps its last acknowledged number across activations and takes a first
  // packet numbered like the previous activation's last one for a repeat: README "BMC quirks".)
  let txSeq = 0;
  /** the BMC's last sequence number and how many of its characters the reader already got */
  let lastRx = { seq: 0, delivered: 0 };
  let breakRequested = false;
  let flushScheduled = false;
  let ended = false;
  /**
   * The payload is no longer ours to end: the BMC said it is deactivating, or stopped answering
   * (another client may have taken SOL over, and BMCs such as ipmi_sim deactivate whoever holds
   * it). Then the stream ends without Deactivate Payload, as FreeIPMI's ipmiconsole does.
   */
  let payloadLost = false;
  const writeCallbacks: Array<(err?: Error | null) => void> = [];
  const intelAckZero = acceptedZeroMeansAll(session, options);
  /** an ACK's meaning waits for the BMC's manufacturer id (intelAckZero): nothing is sent meanwhile */
  let deciding = false;

  /**
   * A write completes when the BMC accepted its characters: the stream holds later writes until
   * then, and hands them over together (writev), so keystrokes written one by one while a packet
   * waits for its ACK go in the next packet together, one round trip for all of them, not one each.
   */
  function accept(chunks: Buffer[], callback: (err?: Error | null) => void): void {
    queued.push(...chunks);
    writeCallbacks.push(callback);
    scheduleFlush();
  }

  const stream = new Duplex({
    read() {},
    write(chunk: Buffer, _encoding, callback) {
      accept([chunk], callback);
    },
    writev(chunks, callback) {
      accept(
        chunks.map((c) => c.chunk as Buffer),
        callback,
      );
    },
    final(callback) {
      shutdown().then(() => callback(), callback);
    },
    destroy(err, callback) {
      shutdown().then(
        () => callback(err),
        () => callback(err),
      );
    },
  }) as SolStream;

  stream.sendBreak = () => {
    if (ended || stream.destroyed || stream.writableEnded) return false;
    stream.write(BREAK_MARK);
    return true;
  };
  let takenOver = false;
  Object.defineProperty(stream, 'takenOver', { get: () => takenOver, enumerable: true });

  /** a packet waits for its ACK, the BMC asked for time, or what its ACK means is being found out: what is written now goes in the next packet */
  function busy(): boolean {
    return inFlight !== undefined || backOff !== undefined || deciding;
  }

  function scheduleFlush(): void {
    if (flushScheduled || busy()) return;
    flushScheduled = true;
    // Character accumulation: what the stream handed over in this turn of the event loop (a write,
    // or the writes it held while the packet before waited for its ACK) goes in one packet.
    setImmediate(() => {
      flushScheduled = false;
      sendNext();
    });
  }

  /**
   * Moves what was written into what the next packets carry: the characters up to the next break
   * (a packet carries at most maxData of them), and that break once every character before it
   * was accepted.
   */
  function takeQueued(): void {
    while (queued.length > 0 && !breakRequested) {
      const next = queued[0]!;
      if (next === BREAK_MARK) {
        if (pending.length > 0) return;
        breakRequested = true;
      } else {
        pending = pending.length === 0 ? next : Buffer.concat([pending, next]);
      }
      queued.shift();
    }
  }

  /** The writes handed over so far complete once nothing of them is left to send. */
  function completeWrites(): void {
    if (pending.length === 0 && queued.length === 0 && !breakRequested) for (const cb of writeCallbacks.splice(0)) cb();
  }

  /**
   * Sends what is pending under a new sequence number; a requested break alone, without the
   * characters written after it (a BMC may perform the break before or after a packet's characters).
   */
  function sendNext(): void {
    if (busy() || ended) return;
    takeQueued();
    if (pending.length === 0 && !breakRequested) return completeWrites();
    txSeq = nextSolSeq(txSeq);
    const data = breakRequested ? Buffer.alloc(0) : pending.subarray(0, maxData);
    const packet: SolPacket = { seq: txSeq, ackSeq: 0, acceptedChars: 0, flags: breakRequested ? SolOperation.generateBreak : 0, data };
    breakRequested = false;
    transmit(packet, 0);
  }

  function transmit(packet: SolPacket, attempts: number): void {
    try {
      session.sendPayload(PayloadType.sol, encodeSolPacket(packet));
    } catch (err) {
      return fail(err as Error);
    }
    const timer = setTimeout(() => {
      if (!inFlight) return;
      if (inFlight.attempts >= maxRetransmits) return void failUnacknowledged(inFlight);
      transmit(inFlight.packet, inFlight.attempts + 1);
    }, retransmitMs);
    inFlight = { packet, sentAt: Date.now(), attempts, timer };
  }

  /**
   * The BMC's answer to the packet in flight. The accepted count is taken literally, as FreeIPMI
   * does: 0 means nothing was taken. (Reading 0 as "all" lost keystrokes on BMCs that NACK when
   * their input buffer is full.) What was not accepted is sent again under a NEW sequence number:
   * the BMC has recorded the old one, and OpenIPMI answers a repeat of it as a duplicate, with an
   * ACK of 0 and without taking the characters. The one exception is Intel's (intelAckZero): an
   * ACK without NACK accepting 0 of our characters waits for the BMC's manufacturer id first.
   */
  function onAck(p: SolPacket): void {
    if (!inFlight || p.ackSeq !== inFlight.packet.seq) return;
    clearTimeout(inFlight.timer);
    const { packet } = inFlight;
    inFlight = undefined;
    if (!zeroAckAmbiguous(p, packet) || intelAckZero.known) return settle(p, packet);
    deciding = true;
    void intelAckZero.decide().then(() => {
      deciding = false;
      if (!ended) settle(p, packet);
    });
  }

  /** An ACK (no NACK) that accepted none of a packet's characters: "none" by the specification's words, "all" on Intel's BMCs */
  function zeroAckAmbiguous(p: SolPacket, packet: SolPacket): boolean {
    return p.acceptedChars === 0 && packet.data.length > 0 && (p.flags & SolStatus.nack) === 0;
  }

  /** What the BMC's answer `p` to `packet` leaves to send. */
  function settle(p: SolPacket, packet: SolPacket): void {
    const accepted = zeroAckAmbiguous(p, packet) && intelAckZero.meansAll ? packet.data.length : Math.min(p.acceptedChars, packet.data.length);
    pending = pending.subarray(accepted);
    completeWrites();
    const refused = (p.flags & SolStatus.nack) !== 0 || (accepted === 0 && packet.data.length > 0);
    if (accepted > 0 || !refused) refusedSince = undefined;
    if (!refused) return sendNext(); // all or part accepted: what is left goes at once
    refusedSince ??= Date.now();
    if (Date.now() - refusedSince > maxRefusalMs) {
      // the console goes on (output still flows: the host may be off or in POST, its serial side
      // not taking characters); what was typed meanwhile is dropped, once told, not sent forever
      const dropped = pending.length + queued.reduce((n, c) => n + (c === BREAK_MARK ? 0 : c.length), 0);
      options.onEvent?.({ kind: 'sol-input-dropped', message: `BMC ${session.remote} took none of our characters for ${Math.round(maxRefusalMs / 1000)} s (NACK or nothing accepted); ${dropped} typed bytes dropped` });
      pending = Buffer.alloc(0);
      // a break requested meanwhile is no typed byte: it still goes
      const breaks = queued.filter((c) => c === BREAK_MARK);
      queued.splice(0, queued.length, ...breaks);
      refusedSince = undefined;
      completeWrites();
      if (breaks.length > 0) scheduleFlush();
      return;
    }
    // NACK (its input buffer is full) or nothing taken: give the BMC time before the characters go
    // again, so a BMC that keeps taking nothing gets a few packets per interval, not a flood. A
    // refusal is an answer: the resend starts a fresh count of unanswered transmissions (else a
    // few NACKs from a host off or in POST and one lost datagram ended the console); refusals are
    // bounded by maxRefusalMs instead. A break in the refused packet is not requested again:
    // OpenIPMI performs the break before it looks at its buffer, and FreeIPMI counts a NACKed
    // break as done.
    waitThenResend();
  }

  /** Holds back every packet until the BMC has had time (a break waits behind the refused characters). */
  function waitThenResend(): void {
    backOff = setTimeout(() => {
      backOff = undefined;
      sendNext();
    }, retransmitMs / 4);
    backOff.unref();
  }

  /**
   * Character data from the BMC. A BMC that got no ACK resends the same sequence number, and real
   * ones (OpenIPMI's lanserv, as ipmitool and FreeIPMI expect) append the characters that came in
   * meanwhile: only those past what the reader already got are new.
   */
  function onCharacters(p: SolPacket): void {
    const repeat = p.seq === lastRx.seq;
    const fresh = repeat ? p.data.subarray(lastRx.delivered) : p.data;
    // (a repeat shorter than what was delivered brings nothing new and forgets nothing)
    lastRx = { seq: p.seq, delivered: repeat ? Math.max(lastRx.delivered, p.data.length) : p.data.length };
    // Every non-zero sequence number is acknowledged, also one without characters (status only),
    // or the BMC keeps resending it. The count is the packet's whole character count, repeated
    // ones included, and 0 for a packet without characters: what ipmitool (ack_sol_packet) and
    // FreeIPMI (ipmiconsole_processing.c) send, so the BMC sees everything it sent as taken.
    try {
      session.sendPayload(PayloadType.sol, encodeSolPacket({ seq: 0, ackSeq: p.seq, acceptedChars: p.data.length, flags: 0, data: Buffer.alloc(0) }));
    } catch {
      // the session is closing: the BMC's resend of this packet meets no session any more
    }
    if (fresh.length > 0) stream.push(fresh);
  }

  const unsubscribe = session.onPayload(PayloadType.sol, (payload) => {
    let p: SolPacket;
    try {
      p = decodeSolPacket(payload);
    } catch {
      return;
    }
    if (p.ackSeq !== 0) onAck(p);
    if (p.seq !== 0) onCharacters(p);
    if (p.flags & SolStatus.deactivating) {
      if (!ended) options.onEvent?.({ kind: 'sol-deactivated', message: `BMC ${session.remote} deactivated SOL on its own; the console ends` });
      // (a BMC says so when another client takes SOL over; one that ends SOL for reasons of its
      // own leaves the payload free, and a reopen without takeover then activates it at once)
      if (!ended) takenOver = true;
      payloadLost = true;
      ended = true;
      stream.push(null);
      void shutdown();
    }
  });

  /**
   * The keepalive's request while the stream lives (pyghmi's SOL keepalive): Get Payload Instance
   * Info names the session that holds the payload, 0 when none does. A BMC may take SOL from us
   * without the "deactivating" status (ipmi_sim does on another client's takeover, and some reset
   * SOL on a host reboot) while the session stays alive: an idle console would then wait for
   * output forever. Another owner or none ends the stream without Deactivate Payload, as the
   * status would. A BMC that refuses the command gets Get Device ID again, told once.
   */
  async function checkOwner(): Promise<void> {
    const r = await askOwner();
    if (ended) return;
    if (r.completionCode !== 0 || r.data.length < 4) {
      session.keepaliveWith(undefined);
      const answer = r.completionCode !== 0 ? describeCompletionCode(r.completionCode) : `${r.data.length} data bytes`;
      options.onEvent?.({
        kind: 'sol-owner-unchecked',
        message: `BMC ${session.remote} answered Get Payload Instance Info with ${answer}; the keepalive cannot tell whether SOL is still ours, so a console taken over without notice ends only when it next sends`,
      });
      return;
    }
    const owner = r.data.readUInt32LE(0);
    if (owner !== session.bmcSessionId) lost(owner);
  }
  session.keepaliveWith(checkOwner);

  /** Get Payload Instance Info for our SOL instance: the id of the session that holds it, 0 for none */
  function askOwner(deadlineMs?: number) {
    return session.request(NetFn.app, Cmd.getPayloadInstanceInfo, Buffer.from([PayloadType.sol, INSTANCE]), deadlineMs === undefined ? {} : { deadlineMs });
  }

  /** SOL is held by `owner`, another session (a takeover) or none (0): the stream ends without Deactivate Payload. */
  function lost(owner: number, context = ''): void {
    payloadLost = true;
    takenOver = owner !== 0;
    const hex = (id: number) => `0x${id.toString(16).padStart(8, '0')}`;
    const what = owner === 0 ? 'SOL no longer active' : `SOL taken over by another session (${hex(owner)}, ours is ${hex(session.bmcSessionId)})`;
    fail(new BmcError('CLOSED', `SOL on BMC ${session.remote} ended: ${what}${context}`));
  }

  /**
   * Our characters went unacknowledged through every retransmission. A BMC that gave SOL to
   * another client without telling us (ipmi_sim, and BMCs that reset SOL on a host reboot) drops
   * our packets while the session lives: asked who holds SOL, it names the other session, and the
   * end is a takeover, which a console then yields to instead of taking SOL back from a user typing
   * into it; none named (0) means the BMC dropped SOL: CLOSED "SOL no longer active", not a
   * takeover. No answer (asked for as long as the retransmissions took), or SOL still ours, is the
   * network or the BMC: TIMEOUT, as before. A late ACK that comes while the BMC is asked lets the
   * stream go on. Meanwhile the payload counts as lost: a stream closed while the BMC is asked sends
   * no Deactivate Payload, which would take SOL from whoever holds it now.
   */
  async function failUnacknowledged(waiting: NonNullable<typeof inFlight>): Promise<void> {
    payloadLost = true;
    const owner = await askOwner(Math.max(1000, retransmitMs * (maxRetransmits + 1))).then(
      (r) => (r.completionCode === 0 && r.data.length >= 4 ? r.data.readUInt32LE(0) : undefined),
      () => undefined,
    );
    if (ended) return;
    if (inFlight !== waiting) {
      payloadLost = false;
      return;
    }
    if (owner !== undefined && owner !== session.bmcSessionId) return lost(owner, ', found after our characters went unacknowledged');
    fail(new BmcError('TIMEOUT', `SOL on BMC ${session.remote}: no acknowledgement after ${maxRetransmits} retransmissions`));
  }

  session.onClose((reason) => {
    if (ended) return;
    ended = true;
    stream.destroy(new BmcError('CLOSED', `SOL on BMC ${session.remote} ended: session ${reason}`));
  });

  let shuttingDown: Promise<void> | undefined;
  function shutdown(): Promise<void> {
    shuttingDown ??= (async () => {
      ended = true;
      if (inFlight) clearTimeout(inFlight.timer);
      clearTimeout(backOff);
      unsubscribe();
      session.keepaliveWith(undefined);
      for (const cb of writeCallbacks.splice(0)) cb(new BmcError('CLOSED', 'SOL stream closed'));
      if (session.state.kind === 'established' && !payloadLost) await deactivateSol(session).catch(() => undefined);
      if (options.closeSession) await session.close();
    })();
    return shuttingDown;
  }

  function fail(err: Error): void {
    if (ended) return;
    stream.destroy(err);
  }

  return stream;
}
