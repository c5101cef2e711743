/**
 * Request sequence numbers of one session (the 6-bit rqSeq of IPMI LAN messages): each request
 * in flight holds a number no other request in flight holds, so an answer matches one request.
 */
import { BmcError } from '../errors.js';

export const RQ_SEQ_COUNT = 64;

export class RqSeqAllocator {
  private last: number;
  private readonly pending = new Set<number>();

  /** `start`: the number before the first one handed out (random per session) */
  constructor(
    start: number,
    private readonly describe: () => string = () => 'session',
  ) {
    if (!Number.isInteger(start) || start < 0 || start >= RQ_SEQ_COUNT) throw new RangeError(`rqSeq start must be 0..63, got ${start}`);
    this.last = start;
  }

  /** The next free number after the last one handed out; PROTOCOL when all 64 are in flight. */
  allocate(): number {
    for (let i = 0; i < RQ_SEQ_COUNT; i++) {
      this.last = (this.last + 1) & (RQ_SEQ_COUNT - 1);
      if (!this.pending.has(this.last)) {
        this.pending.add(this.last);
        return this.last;
      }
    }
    throw new BmcError('PROTOCOL', `more than 63 requests outstanding on ${this.describe()}`);
  }

  release(seq: number): void {
    this.pending.delete(seq);
  }

  get inFlight(): number {
    return this.pending.size;
  }
}
