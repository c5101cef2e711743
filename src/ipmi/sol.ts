/**
 * Serial-over-LAN as a Node duplex stream: Activate Payload, packets with sequence numbers,
 * acknowledgements and retransmission both ways, character accumulation, break, and
 * Deactivate Payload when the stream ends. A stale payload left by a crashed client can be
 * taken over on request.
 */
import { Duplex } from 'node:stream';
import { BmcError } from '../errors.js';
import { cipherSuite } from './cipher.js';
import { Cmd } from './commands.js';
import { PayloadType } from './lan.js';
import { NetFn } from './message.js';
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
  /** retransmissions before the stream fails */
  maxRetransmits?: number;
  /** also close the IPMI session when the stream ends */
  closeSession?: boolean;
  /** the BMC did something unusual that the console works around or ends on (one line for the log) */
  onEvent?: (event: IpmiEvent) => void;
  signal?: AbortSignal;
}

export interface SolStream extends Duplex {
  sendBreak(): void;
}

const PAYLOAD_ALREADY_ACTIVE = 0x80;
/** last outbound SOL sequence number per BMC endpoint, kept across activations (bounded) */
const lastTxSeq = new Map<string, number>();
const LAST_TX_SEQ_LIMIT = 10_000;
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
  }
  if (r.completionCode === PAYLOAD_ALREADY_ACTIVE) {
    throw new BmcError('BUSY', `SOL is already active on BMC ${session.remote} in another session (take it over to deactivate it)`, { completionCode: r.completionCode });
  }
  if (r.completionCode !== 0) {
    throw new BmcError('COMPLETION_CODE', `Activate Payload (SOL) on BMC ${session.remote} failed with completion code 0x${r.completionCode.toString(16)}`, {
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

function createSolStream(session: IpmiSession, inboundPayloadSize: number, options: SolOptions): SolStream {
  const retransmitMs = options.retransmitMs ?? 1000;
  const maxRetransmits = options.maxRetransmits ?? 5;
  const maxData = Math.max(16, Math.min(inboundPayloadSize > 4 ? inboundPayloadSize - 4 : 200, 255));
  let pending = Buffer.alloc(0);
  let inFlight: { packet: SolPacket; sentAt: number; attempts: number; timer: NodeJS.Timeout } | undefined;
  // Carry the sequence number over from this BMC's previous activation: some BMCs (ipmi_sim)
  // remember the last acknowledged number and would take a restart at 1 for a retransmission.
  let txSeq = lastTxSeq.get(session.remote) ?? 0;
  let lastRxSeq = 0;
  let breakRequested = false;
  let flushScheduled = false;
  let ended = false;
  const writeCallbacks: Array<(err?: Error | null) => void> = [];

  const stream = new Duplex({
    read() {},
    write(chunk: Buffer, _encoding, callback) {
      pending = Buffer.concat([pending, chunk]);
      writeCallbacks.push(callback);
      scheduleFlush();
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
    breakRequested = true;
    scheduleFlush();
  };

  function scheduleFlush(): void {
    if (flushScheduled || inFlight) return;
    flushScheduled = true;
    // Character accumulation: everything written in this turn of the event loop goes in one packet.
    setImmediate(() => {
      flushScheduled = false;
      sendNext();
    });
  }

  function sendNext(): void {
    if (inFlight || ended) return;
    if (pending.length === 0 && !breakRequested) {
      for (const cb of writeCallbacks.splice(0)) cb();
      return;
    }
    txSeq = nextSolSeq(txSeq);
    if (!lastTxSeq.has(session.remote) && lastTxSeq.size >= LAST_TX_SEQ_LIMIT) lastTxSeq.delete(lastTxSeq.keys().next().value as string);
    lastTxSeq.set(session.remote, txSeq);
    const data = pending.subarray(0, maxData);
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
      if (inFlight.attempts >= maxRetransmits) {
        return fail(new BmcError('TIMEOUT', `SOL on BMC ${session.remote}: no acknowledgement after ${maxRetransmits} retransmissions`));
      }
      transmit(inFlight.packet, inFlight.attempts + 1);
    }, retransmitMs);
    inFlight = { packet, sentAt: Date.now(), attempts, timer };
  }

  function onAck(p: SolPacket): void {
    if (!inFlight || p.ackSeq !== inFlight.packet.seq) return;
    clearTimeout(inFlight.timer);
    const sent = inFlight.packet.data.length;
    if (p.flags & SolStatus.nack) {
      // The BMC could not take the characters now; retry after the retransmit interval.
      const retry = inFlight;
      inFlight = undefined;
      setTimeout(() => {
        if (!ended) transmit(retry.packet, retry.attempts + 1);
      }, retransmitMs / 4).unref();
      return;
    }
    const accepted = Math.min(p.acceptedChars || sent, sent);
    pending = pending.subarray(accepted);
    inFlight = undefined;
    if (pending.length === 0) for (const cb of writeCallbacks.splice(0)) cb();
    sendNext();
  }

  const unsubscribe = session.onPayload(PayloadType.sol, (payload) => {
    let p: SolPacket;
    try {
      p = decodeSolPacket(payload);
    } catch {
      return;
    }
    if (p.ackSeq !== 0) onAck(p);
    if (p.seq !== 0 && p.data.length > 0) {
      const duplicate = p.seq === lastRxSeq;
      lastRxSeq = p.seq;
      session.sendPayload(PayloadType.sol, encodeSolPacket({ seq: 0, ackSeq: p.seq, acceptedChars: p.data.length, flags: 0, data: Buffer.alloc(0) }));
      if (!duplicate) stream.push(p.data);
    }
    if (p.flags & SolStatus.deactivating) {
      if (!ended) options.onEvent?.({ kind: 'sol-deactivated', message: `BMC ${session.remote} deactivated SOL on its own; the console ends` });
      ended = true;
      stream.push(null);
      void shutdown();
    }
  });

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
      unsubscribe();
      for (const cb of writeCallbacks.splice(0)) cb(new BmcError('CLOSED', 'SOL stream closed'));
      if (session.state.kind === 'established') await deactivateSol(session).catch(() => undefined);
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
