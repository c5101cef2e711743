/**
 * Request sequence numbers of one session (the 6-bit rqSeq of IPMI LAN messages): each request
 * in flight holds a number no other request in flight holds, so an answer matches one request.
 *
 * A number is not handed out again for the same netFn and command while the BMC may still
 * remember its last request: a BMC with duplicate detection keys a request by rqSeq, netFn and
 * command for the sequence number's expiration interval (5 s: the IPMB specification's Table 4-1,
 * as uwcms/IPMC's IPMB0::check_duplicate cites it and keeps its own numbers 6 s; the simulator's
 * `ipmi-duplicate-cf`), and answers a new request under the same three within it
 * as a repeat of the old one: 0xCF without carrying it out, or the old answer (another offset's
 * FRU bytes). A late answer to the old request would also pass for the new one's, since both
 * carry the same rqSeq, netFn and command. 64 numbers wrap within a second in a burst (a FRU
 * read, a report's commands), so the count alone never kept them apart. Another command may take
 * the number at once: its answers differ in netFn or command, which `responseTo` checks. Every
 * command sent under a number within the retention is remembered, not only the last: a BMC keeps
 * each (rqSeq, netFn, command) apart, so a number another command took since is still barred to
 * the first one.
 */
import { abortError, BmcError } from '../errors.js';

export const RQ_SEQ_COUNT = 64;

/**
 * How long after its last transmission a number stays away from the same command: the 5 s a BMC
 * keeps it, plus 1 s for the datagram's way there and a BMC that counts from when it handled it.
 */
export const RQ_SEQ_RETENTION_MS = 6000;

/** netFn and command of a request, as one number (netFn in the high byte) */
type CommandKey = number;

function commandKey(netFn: number, cmd: number): CommandKey {
  return (netFn << 8) | cmd;
}

/** for one number: when each command last went out under it, within the retention */
type SentAtByCommand = Map<CommandKey, number>;

export class RqSeqAllocator {
  private last: number;
  /** numbers in flight, with the command holding each */
  private readonly pending = new Map<number, CommandKey>();
  /**
   * Per number, every command sent under it whose retention may still run. Entries past it are
   * dropped whenever the number is written, so this holds at most 64 numbers times the distinct
   * commands sent within one retention.
   */
  private readonly recent = new Map<number, SentAtByCommand>();
  /** requests waiting for a number: a release may free one for their command before a retention ends */
  private readonly waiters = new Set<() => void>();

  /** `start`: the number before the first one handed out (random per session) */
  constructor(
    start: number,
    private readonly describe: () => string = () => 'session',
    private readonly retentionMs = RQ_SEQ_RETENTION_MS,
    private readonly now: () => number = Date.now,
  ) {
    if (!Number.isInteger(start) || start < 0 || start >= RQ_SEQ_COUNT) throw new RangeError(`rqSeq start must be 0..63, got ${start}`);
    this.last = start;
  }

  /**
   * The next number after the last one handed out that is neither in flight nor within the
   * retention of an earlier request of the same netFn and command; undefined when every free
   * number is (`freeInMs` says when one is); PROTOCOL when all 64 are in flight.
   */
  allocate(netFn: number, cmd: number): number | undefined {
    if (this.pending.size >= RQ_SEQ_COUNT) throw new BmcError('PROTOCOL', `more than 63 requests outstanding on ${this.describe()}`);
    const now = this.now();
    for (let i = 1; i <= RQ_SEQ_COUNT; i++) {
      const seq = (this.last + i) & (RQ_SEQ_COUNT - 1);
      if (this.pending.has(seq) || this.retainedFor(seq, netFn, cmd, now) > 0) continue;
      this.last = seq;
      const key = commandKey(netFn, cmd);
      this.pending.set(seq, key);
      this.remember(seq, key, now);
      return seq;
    }
    return undefined;
  }

  /** How long until a number is free for netFn and command, when `allocate` found none (0: one is now). */
  freeInMs(netFn: number, cmd: number): number {
    const now = this.now();
    let soonest = Infinity;
    for (let seq = 0; seq < RQ_SEQ_COUNT; seq++) {
      if (!this.pending.has(seq)) soonest = Math.min(soonest, this.retainedFor(seq, netFn, cmd, now));
    }
    return soonest === Infinity ? this.retentionMs : soonest;
  }

  /**
   * A number for netFn and command, waiting while every free one is retained for that command (a
   * burst of more than 64 of one command within the retention). Resolves with the number and how
   * long it waited; rejects when `signal` aborts, or at once with PROTOCOL when all 64 are in flight.
   */
  async acquire(netFn: number, cmd: number, signal: AbortSignal | undefined, what: () => string): Promise<{ seq: number; waitedMs: number }> {
    const started = this.now();
    for (;;) {
      if (signal?.aborted) throw abortError(signal, what());
      const seq = this.allocate(netFn, cmd);
      if (seq !== undefined) return { seq, waitedMs: this.now() - started };
      await this.untilFreeable(this.freeInMs(netFn, cmd), signal);
    }
  }

  /** Resolves after `ms`, at a release, or when `signal` aborts (the caller looks again). */
  private untilFreeable(ms: number, signal: AbortSignal | undefined): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.waiters.delete(done);
        signal?.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(done, Math.max(1, ms));
      this.waiters.add(done);
      signal?.addEventListener('abort', done, { once: true });
    });
  }

  /** A (re)transmission under `seq` went out: the BMC's memory of it starts again. */
  sent(seq: number): void {
    const key = this.pending.get(seq);
    if (key !== undefined) this.remember(seq, key, this.now());
  }

  release(seq: number): void {
    this.pending.delete(seq);
    for (const wake of [...this.waiters]) wake();
  }

  get inFlight(): number {
    return this.pending.size;
  }

  private retainedFor(seq: number, netFn: number, cmd: number, now: number): number {
    const sentAt = this.recent.get(seq)?.get(commandKey(netFn, cmd));
    return sentAt === undefined ? 0 : Math.max(0, sentAt + this.retentionMs - now);
  }

  /** A transmission of command `key` under `seq` at `now`; drops the number's entries the BMC has forgotten. */
  private remember(seq: number, key: CommandKey, now: number): void {
    let byCommand = this.recent.get(seq);
    if (!byCommand) this.recent.set(seq, (byCommand = new Map()));
    for (const [other, sentAt] of byCommand) if (sentAt + this.retentionMs <= now) byCommand.delete(other);
    byCommand.set(key, now);
  }
}
