/**
 * The client's inbound sequence-number window of an RMCP+ session (IPMI 2.0 section 6.12.13):
 * a packet is accepted when its number is ahead of the highest seen, or within `size` behind it
 * and not seen before; 0 is never valid. Numbers compare modulo 2^32, so the wrap from
 * 0xffffffff to 1 is a step forward. Pure state, no I/O.
 *
 * Some BMCs restart their outbound numbers within a session (after Set Session Privilege
 * Level, after a SOL activation). Such packets pass the integrity check but fall far behind the
 * window. Two consecutive small ones (n, then n + 1, at most 32: BMCs start again at 1) are taken
 * as a restart: the window moves there, `restarts` counts it, and the second one is accepted. A
 * lone old number, or a pair from the middle of the session (a replay), stays refused; a replay of
 * the session's first packets is what following restarts still lets in.
 */
export type InboundVerdict = 'accepted' | 'duplicate' | 'too-old' | 'restarted' | 'invalid';

const HALF = 0x80000000;
/** the highest number a restart may go back to (BMCs start again at 1) */
const RESTART_MAX_SEQ = 32;

export class InboundWindow {
  private highest = 0;
  private seen = 0n;
  private restartCandidate: number | undefined;
  /** how often the BMC restarted its numbers */
  restarts = 0;

  constructor(readonly size = 16) {
    if (!Number.isInteger(size) || size < 1 || size > 64) throw new RangeError(`inbound window size must be 1..64, got ${size}`);
  }

  /** Whether `seq` is accepted; records it when it is. */
  accept(seq: number): boolean {
    const v = this.check(seq);
    return v === 'accepted' || v === 'restarted';
  }

  check(seq: number): InboundVerdict {
    if (!Number.isInteger(seq) || seq <= 0 || seq > 0xffffffff) return 'invalid';
    if (this.highest === 0) return this.reset(seq);
    const ahead = (seq - this.highest) >>> 0;
    if (ahead !== 0 && ahead < HALF) {
      const shift = BigInt(Math.min(ahead, 64));
      this.seen = ((this.seen << shift) | 1n) & ((1n << BigInt(this.size)) - 1n);
      this.highest = seq;
      this.restartCandidate = undefined;
      return 'accepted';
    }
    const behind = (this.highest - seq) >>> 0;
    if (behind >= this.size) {
      // a BMC restarts its numbers from the start (1): only a pair of small numbers counts as one,
      // so two recorded packets from the middle of the session cannot move the window back there
      if (this.restartCandidate !== undefined && seq === ((this.restartCandidate % 0xffffffff) + 1) && seq <= RESTART_MAX_SEQ) {
        this.restarts++;
        this.restartCandidate = undefined;
        this.reset(seq);
        return 'restarted';
      }
      this.restartCandidate = seq;
      return 'too-old';
    }
    const bit = 1n << BigInt(behind);
    if (this.seen & bit) return 'duplicate';
    this.seen |= bit;
    return 'accepted';
  }

  private reset(seq: number): 'accepted' {
    this.highest = seq;
    this.seen = 1n;
    return 'accepted';
  }
}
