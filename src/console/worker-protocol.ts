/**
 * What the main thread and a console worker (worker-thread.ts) say to each other over the
 * worker's port. Output travels as ArrayBuffers moved to the other side (transferred, not
 * copied), one per batch for all consoles of a worker (at most one per OUTPUT_COALESCE_MS while
 * output streams); the main thread acknowledges what it took, once per batch for all of them,
 * so the bytes in flight per console are
 * bounded (`maxInFlightBytes`): a main loop that falls behind costs dropped output, counted and
 * logged, never a stalled BMC session.
 */

import type { CipherChoice } from '../ipmi/cipher.js';
import type { WorkerLogHeld, WorkerLogRecord } from '../outband/worker-log.js';

/** Where the worker opens a console: IPMI SOL on this BMC. Holds the password: never logged. */
export interface SolTarget {
  host: string;
  port: number;
  user: string;
  password: string;
  /** IPMI cipher suite; default 'auto' as the facade uses */
  cipherSuite?: CipherChoice;
  /** deadline of opening the session and activating SOL */
  timeoutMs: number;
  /** the machine whose console this is, for the pool's log lines (not used by the worker) */
  machineId?: string;
}

/** the worker's settings, in workerData (no credentials) */
export interface ConsoleWorkerData {
  metalBmc: 'console-worker';
  /** output bytes per console sent but not yet acknowledged, beyond which output is dropped */
  maxInFlightBytes: number;
}

export type ToWorker =
  /** `takeOver`: deactivate a SOL payload active in another session, then activate (false while the hub yields to another client) */
  | { type: 'open'; id: number; target: SolTarget; takeOver: boolean }
  | { type: 'input'; id: number; data: ArrayBuffer }
  /** a serial break after the input sent before it (the port keeps the order) */
  | { type: 'break'; id: number }
  /** what the main thread took since its last ack, per console: `bytes[i]` of console `ids[i]` */
  | { type: 'ack'; ids: number[]; bytes: number[] }
  | { type: 'close'; id: number }
  /** close every console gracefully, then say `closed` */
  | { type: 'shutdown' }
  /** end as a crash would (tests and diagnostics): no Close Session to the BMCs, the worker exits with code 1 */
  | { type: 'die' };

export type FromWorker =
  | { type: 'opened'; id: number }
  | { type: 'failed'; id: number; code: string; message: string }
  /**
   * one batch of output of every console of the worker, in one transferred buffer: console
   * `ids[i]`'s bytes are the next `lengths[i]` of `data` (one message per batch, not per
   * console: at a boot storm of 100 consoles, one per console and its ack cost the handover
   * about a third of the CPU per MiB captured)
   */
  | { type: 'data'; ids: number[]; lengths: number[]; data: ArrayBuffer }
  | { type: 'dropped'; id: number; bytes: number }
  /** `takenOver`: another client took SOL from us (the SOL stream's `takenOver`) */
  | { type: 'end'; id: number; message: string; takenOver?: boolean }
  /** a log line of the worker (IPMI workarounds of its sessions): bounded and rate-limited, worker-log.ts */
  | WorkerLogRecord
  | WorkerLogHeld
  | { type: 'closed' };

export function isConsoleWorkerData(value: unknown): value is ConsoleWorkerData {
  return typeof value === 'object' && value !== null && (value as { metalBmc?: unknown }).metalBmc === 'console-worker';
}
