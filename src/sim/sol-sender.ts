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
  /** serial output not yet sent, oldest first, `pendingBytes` in all (a chunk list: no copying of the backlog per push) */
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private inFlight: InFlight | undefined;
  private lastSeq = 0;
  /** characters dropped because the buffer overflowed or a packet ran out of retries */
  lost = 0;

  constructor(private readonly options: SolSenderOptions) {}

  get idle(): boolean {
    return this.inFlight === undefined && this.pendingBytes === 0;
  }

  get awaitingAck(): boolean {
    return this.inFlight !== undefined;
  }

  /** Queues serial output. */
  push(data: Buffer): void {
    if (data.length === 0) return;
    this.pending.push(data);
    this.pendingBytes += data.length;
    const excess = this.pendingBytes - this.options.maxBuffered;
    if (excess > 0) {
      this.lost += excess;
      this.take(excess);
    }
  }

  /** Drops everything not yet acknowledged (console's "flush outbound"). */
  flush(): void {
    this.pending = [];
    this.pendingBytes = 0;
    this.inFlight = undefined;
  }

  /** The next packet to transmit when none is in flight; undefined when busy or empty. */
  next(): SolPacket | undefined {
    if (this.inFlight || this.pendingBytes === 0) return undefined;
    const data = this.take(Math.min(this.options.maxChars, this.pendingBytes));
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
    if (accepted < f.data.length) {
      const rest = f.data.subarray(accepted);
      this.pending.unshift(rest);
      this.pendingBytes += rest.length;
    }
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

  /** Removes the oldest `n` pending bytes (n <= pendingBytes) and returns them as one copied buffer. */
  private take(n: number): Buffer {
    const out = Buffer.allocUnsafe(n);
    let at = 0;
    while (at < n) {
      const head = this.pending[0]!;
      const part = Math.min(head.length, n - at);
      head.copy(out, at, 0, part);
      at += part;
      if (part === head.length) this.pending.shift();
      else this.pending[0] = head.subarray(part);
    }
    this.pendingBytes -= n;
    return out;
  }

  private packet(f: InFlight): SolPacket {
    return { seq: f.seq, ackSeq: 0, acceptedChars: 0, flags: 0, data: f.data };
  }
}
