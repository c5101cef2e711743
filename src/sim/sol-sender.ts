/**
 * The BMC → console half of a SOL payload as bookkeeping without I/O: one packet in flight at a
 * time (IPMI 2.0 section 15.9), sequence numbers 1..15, retransmission of the same packet until
 * it is acknowledged or the retry budget is spent, partial acknowledgements (the rest is resent
 * under a new sequence number) and NACKs (the console could not take the characters now; the
 * packet is retried later). The caller owns the timers: it sends what `next()` / `retry()` return
 * and calls `retry()` when no acknowledgement came within the retry interval.
 */
import { nextSolSeq, type SolPacket } from '../ipmi/sol-packet.js';

export interface SolSenderOptions {
  /** largest character count per packet */
  maxChars: number;
  /** transmissions of one packet before it is given up (the first one included) */
  maxAttempts: number;
  /** bytes kept waiting for the console; older ones are dropped beyond this (a serial FIFO overrun) */
  maxBuffered: number;
}

interface InFlight {
  seq: number;
  data: Buffer;
  attempts: number;
}

export class SolSender {
  private pending: Buffer = Buffer.alloc(0);
  private inFlight: InFlight | undefined;
  private lastSeq = 0;
  /** characters dropped because the buffer overflowed or a packet ran out of retries */
  lost = 0;

  constructor(private readonly options: SolSenderOptions) {}

  get idle(): boolean {
    return this.inFlight === undefined && this.pending.length === 0;
  }

  get awaitingAck(): boolean {
    return this.inFlight !== undefined;
  }

  /** Queues serial output. */
  push(data: Buffer): void {
    this.pending = Buffer.concat([this.pending, data]);
    const excess = this.pending.length - this.options.maxBuffered;
    if (excess > 0) {
      this.lost += excess;
      this.pending = this.pending.subarray(excess);
    }
  }

  /** Drops everything not yet acknowledged (console's "flush outbound"). */
  flush(): void {
    this.pending = Buffer.alloc(0);
    this.inFlight = undefined;
  }

  /** The next packet to transmit when none is in flight; undefined when busy or empty. */
  next(): SolPacket | undefined {
    if (this.inFlight || this.pending.length === 0) return undefined;
    const data = Buffer.from(this.pending.subarray(0, this.options.maxChars));
    this.pending = this.pending.subarray(data.length);
    this.lastSeq = nextSolSeq(this.lastSeq);
    this.inFlight = { seq: this.lastSeq, data, attempts: 1 };
    return this.packet(this.inFlight);
  }

  /**
   * Handles the console's acknowledgement of `ackSeq`. Returns true when it matched the packet in
   * flight (which is then settled, or kept for a retry after a NACK).
   */
  ack(ackSeq: number, acceptedChars: number, nack: boolean): boolean {
    const f = this.inFlight;
    if (!f || ackSeq !== f.seq) return false;
    if (nack && acceptedChars === 0) return true; // not taken now: `retry()` sends it again
    const accepted = Math.min(acceptedChars, f.data.length);
    if (accepted < f.data.length) this.pending = Buffer.concat([f.data.subarray(accepted), this.pending]);
    this.inFlight = undefined;
    return true;
  }

  /** The retransmission of the packet in flight, or undefined when there is none or it is given up. */
  retry(): SolPacket | undefined {
    const f = this.inFlight;
    if (!f) return undefined;
    if (f.attempts >= this.options.maxAttempts) {
      this.lost += f.data.length;
      this.inFlight = undefined;
      return undefined;
    }
    f.attempts++;
    return this.packet(f);
  }

  private packet(f: InFlight): SolPacket {
    return { seq: f.seq, ackSeq: 0, acceptedChars: 0, flags: 0, data: f.data };
  }
}
