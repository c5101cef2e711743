/**
 * One BMC read for a report: connect (reads start at connect), the report, the connection closed.
 * The same function runs in the main thread and in a report worker (worker-thread.ts). Its
 * deadline counts the BMC's time, not the time its answers waited for this thread's event loop
 * (loop-clock.ts): at most one more deadline is given back for that, and only what the BMC's signs
 * of life (connect's `onAnswer`) can have waited: a BMC that says nothing costs its deadline.
 */
import { MAX_TIMER_MS } from '../deadline.js';
import { abortError, BmcError } from '../errors.js';
import type { BmcReport, Outband } from '../outband/types.js';
import type { SecondConnectionSwitch } from '../redfish/second-connection.js';
import { bmcDeadline, type LoopStall } from './loop-clock.js';

/**
 * Opens a BMC for a read: `onAnswer` is to be called at every sign of life of the BMC
 * (connectOutband's option of that name); `secondConnection`, the cycle's switch that ends the wait
 * before a second Redfish connection once every BMC has started (connectOutband's `redfishSecondConnection`).
 */
export type ConnectForRead = (ip: string, signal: AbortSignal, onAnswer: () => void, secondConnection?: SecondConnectionSwitch) => Promise<Outband>;

/**
 * A read as the cycle needs it. `late`: a BMC that would have missed its deadline but for the time
 * given back for the loop's stall (read after it), or missed it although a whole deadline was
 * given back. A dead or slow BMC that fails within what it was given is not late: fewer BMCs at once
 * would not have saved it.
 */
export type BmcReadAttempt = (
  | { ok: true; report: BmcReport; vendor: string }
  /**
   * `lostWithWorker`: the report worker running the read exited; the BMC itself said nothing, a second read may well succeed.
   * `notStarted`: the read had to wait before it could start (a suspect's turn: worker-pool.ts) and its `mayStart` said no then; nothing was asked of the BMC
   */
  | { ok: false; error: unknown; lostWithWorker?: true; notStarted?: true }
) & { durationMs: number; late: boolean };

export interface ReadBmcOptions {
  /** the BMC's own time for connect and report */
  timeoutMs: number;
  clock: LoopStall;
  /** shutdown: aborts at once */
  signal?: AbortSignal | undefined;
  /** where the connection's close goes, to finish in the background; awaited here when absent */
  closes?: Array<Promise<void>>;
  /** the cycle's switch for second Redfish connections (ConnectForRead's) */
  secondConnection?: SecondConnectionSwitch | undefined;
}

/**
 * A read that has not ended this long after twice its deadline ignored its signal (a bug in some
 * path, or a worker whose loop hangs): the cycle goes on without it. The main thread's guard
 * (readBmcGuarded) and the worker pool's are the same.
 */
export const READ_GUARD_EXTRA_MS = 5000;

/** When a read of deadline `timeoutMs` is given up on: twice the deadline and READ_GUARD_EXTRA_MS. */
export function readGuardMs(timeoutMs: number): number {
  return Math.min(2 * timeoutMs + READ_GUARD_EXTRA_MS, MAX_TIMER_MS);
}

/**
 * `readBmcOnce` with a guard, for reads in the main thread (a worker's reads have the pool's): a
 * read that ignores its deadline fails as TIMEOUT at twice the deadline and 5 s and is left
 * behind, and its BMC is not read again (BUSY) until that read ends, since a second read would
 * log in beside it and one of the two sessions would be lost on the BMC. `leftBehind` holds the
 * BMCs of such reads, across cycles.
 */
export async function readBmcGuarded(connect: ConnectForRead, ip: string, o: ReadBmcOptions, leftBehind: Set<string>): Promise<BmcReadAttempt> {
  const started = Date.now();
  if (leftBehind.has(ip)) return { ok: false, error: new BmcError('BUSY', `reading BMC ${ip}: its last read, left behind past its deadline, still runs; read again once it ends`), durationMs: 0, late: false };
  const guardMs = readGuardMs(o.timeoutMs);
  let timer: NodeJS.Timeout | undefined;
  const guard = new Promise<BmcReadAttempt>((resolve) => {
    timer = setTimeout(() => {
      leftBehind.add(ip);
      resolve({ ok: false, error: new BmcError('TIMEOUT', `reading BMC ${ip}: no end within ${guardMs} ms although its deadline fired; left behind`), durationMs: Date.now() - started, late: false });
    }, guardMs);
    timer.unref();
  });
  const read = readBmcOnce(connect, ip, o).finally(() => {
    clearTimeout(timer);
    leftBehind.delete(ip);
  });
  return Promise.race([read, guard]);
}

export async function readBmcOnce(connect: ConnectForRead, ip: string, o: ReadBmcOptions): Promise<BmcReadAttempt> {
  const bmcTime = bmcDeadline(o.timeoutMs, `reading BMC ${ip}`, o.clock, o.timeoutMs, o.signal);
  const started = Date.now();
  const late = (ok: boolean) => (ok ? bmcTime.extendedMs > 0 && Date.now() - started > o.timeoutMs : bmcTime.extendedMs >= o.timeoutMs);
  const combined = bmcTime.signal;
  let bmc: Outband | undefined;
  try {
    bmc = await connect(ip, combined, bmcTime.heard, o.secondConnection);
    const report = await bmc.info({ signal: combined });
    return { ok: true, report, vendor: bmc.vendor, durationMs: Date.now() - started, late: late(true) };
  } catch (caught) {
    // Anything that escapes as a bare abort is the per-BMC deadline (or shutdown) firing.
    const error = caught instanceof BmcError || !combined.aborted ? caught : abortError(combined, `reading BMC ${ip}`);
    return { ok: false, error, durationMs: Date.now() - started, late: late(false) };
  } finally {
    bmcTime.dispose();
    const closing = bmc?.close();
    if (closing && o.closes) o.closes.push(closing.catch(() => undefined));
    else await closing?.catch(() => undefined);
  }
}
