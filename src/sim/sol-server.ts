/**
 * The BMC side of an active SOL payload: serial output → SOL packets (one in flight, retransmitted
 * until acknowledged), console packets → acknowledgements and input for the serial line.
 * It sends through a callback, so the session layer decides how packets are wrapped. A channel
 * lives for one activation: console sequence numbers start at 1 in each (OpenBMC's rule).
 */
import { nextSolSeq, SolOperation, SolStatus, type SolPacket } from '../ipmi/sol-packet.js';
import type { SerialLine } from './serial.js';
import { SolSender } from './sol-sender.js';

export interface SolChannelOptions {
  line: SerialLine;
  send: (packet: SolPacket) => void;
  /** characters per packet */
  maxChars: number;
  /** wait for an acknowledgement before retransmitting */
  retryMs?: number;
  /** transmissions per packet, the first included */
  maxAttempts?: number;
  /** the accepted count an ACK names for `taken` characters taken (ipmi-sol-ack-zero: 0 whatever was taken) */
  acceptedCount?: (taken: number) => number;
}

export class SolChannel {
  private readonly sender: SolSender;
  private readonly line: SerialLine;
  private readonly send: (packet: SolPacket) => void;
  private readonly retryMs: number;
  private readonly acceptedCount: (taken: number) => number;
  private timer: NodeJS.Timeout | undefined;
  private lastInboundSeq = 0;
  private stopped = false;
  private readonly onData = (data: Buffer) => {
    this.sender.push(data);
    this.pump();
  };

  constructor(options: SolChannelOptions) {
    this.line = options.line;
    this.send = options.send;
    this.retryMs = options.retryMs ?? 500;
    this.acceptedCount = options.acceptedCount ?? ((taken) => taken);
    this.sender = new SolSender({ maxChars: options.maxChars, maxAttempts: options.maxAttempts ?? 8, maxBuffered: 64 * 1024 });
  }

  /** Starts forwarding: what the console would have on screen first, then live output. */
  start(): void {
    const history = this.line.history();
    if (history.length > 0) this.sender.push(history);
    this.line.on('data', this.onData);
    this.pump();
  }

  /** Stops forwarding; with `notify`, tells the console the payload is being deactivated. */
  stop(notify: boolean): void {
    if (this.stopped) return;
    this.stopped = true;
    this.line.off('data', this.onData);
    clearTimeout(this.timer);
    this.timer = undefined;
    if (notify) this.send({ seq: 0, ackSeq: 0, acceptedChars: 0, flags: SolStatus.deactivating, data: Buffer.alloc(0) });
  }

  /** A SOL packet from the console. */
  receive(p: SolPacket): void {
    if (this.stopped) return;
    if (p.ackSeq !== 0) {
      const nack = (p.flags & SolOperation.nack) !== 0;
      if (this.sender.ack(p.ackSeq, p.acceptedChars, nack) && !(nack && p.acceptedChars === 0)) {
        clearTimeout(this.timer);
        this.timer = undefined;
        this.pump();
      }
    }
    if ((p.flags & SolOperation.flushOutbound) !== 0) {
      this.sender.flush();
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    if (p.seq === 0) return; // acknowledgement only
    const duplicate = p.seq === this.lastInboundSeq; // a retransmission: acknowledge again, act once
    // As OpenBMC (phosphor-net-ipmid sol_context.cpp): a channel is made per activation and
    // expects 1, then each next number; any other is dropped unanswered ("Out of sequence SOL
    // packet - packet is dropped"). A console that carried its numbers over from an earlier
    // activation never gets a keystroke through.
    const expected = this.lastInboundSeq === 0 ? 1 : nextSolSeq(this.lastInboundSeq);
    if (!duplicate && p.seq !== expected) return;
    this.lastInboundSeq = p.seq;
    this.send({ seq: 0, ackSeq: p.seq, acceptedChars: this.acceptedCount(p.data.length), flags: 0, data: Buffer.alloc(0) });
    if (duplicate) return;
    if ((p.flags & SolOperation.generateBreak) !== 0) this.line.sendBreak();
    if (p.data.length > 0) this.line.write(p.data);
  }

  /** Characters lost to overflow or exhausted retries, for tests. */
  get lost(): number {
    return this.sender.lost;
  }

  private pump(): void {
    if (this.stopped || this.timer) return;
    const packet = this.sender.next();
    if (!packet) return;
    this.send(packet);
    this.armRetry();
  }

  private armRetry(): void {
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (this.stopped) return;
      const again = this.sender.retry();
      if (again) {
        this.send(again);
        this.armRetry();
      } else {
        this.pump(); // given up: go on with what follows
      }
    }, this.retryMs);
    this.timer.unref();
  }
}
