/**
 * One switch for the connections of many BMCs (connections.ts): while it is on, a request that
 * finds its BMC's connection busy opens another at once instead of after `openAfterMs`, and those
 * already waiting do so when it turns on. A report cycle turns its own on once every BMC of the
 * cycle has started and a read has ended since (report/cycle.ts, adaptive-limit.ts `onAllStarted`):
 * the CPU a TLS handshake costs is spare then, and the reads still running, some with a request
 * behind a slow answer on their one connection, are what the cycle waits for.
 * Its own module, without imports: a report cycle makes one without loading the HTTP transport.
 */
export class SecondConnectionSwitch {
  private on = false;
  private readonly listeners = new Set<() => void>();

  get atOnce(): boolean {
    return this.on;
  }

  /** connections waiting to hear it turn on (each BMC with a request waiting for a busy connection) */
  get waiting(): number {
    return this.listeners.size;
  }

  /** Turns it on and tells every listener; one that throws does not keep the others from hearing, and its error is thrown after them. */
  turnOn(): void {
    if (this.on) return;
    this.on = true;
    const listeners = [...this.listeners];
    this.listeners.clear();
    let failure: { err: unknown } | undefined;
    for (const listener of listeners) {
      try {
        listener();
      } catch (err) {
        failure ??= { err };
      }
    }
    if (failure) throw failure.err;
  }

  /** Calls `listener` when the switch turns on (never if it is on already); returns what stops that. */
  whenOn(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}

/**
 * A report worker's copy of the cycle's switch, for a read sent with the cycle's switch `atOnce`
 * (worker-protocol.ts): turned on by a read sent after the cycle's turned on; a read sent while it
 * was off, after this copy turned on, is the next cycle's, which gets a new copy (the reads of the
 * last one keep theirs). Cycles run one after the other. A cycle that ended without turning its
 * switch on (stopped early) leaves its copy to the next cycle, whose switch then moves the reads
 * the last one left behind too.
 */
export function switchOfRead(copy: SecondConnectionSwitch, atOnce: boolean): SecondConnectionSwitch {
  if (!atOnce) return copy.atOnce ? new SecondConnectionSwitch() : copy;
  copy.turnOn();
  return copy;
}
