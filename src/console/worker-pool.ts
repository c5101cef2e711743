/**
 * Console worker threads (METAL_BMC_CONSOLE_WORKERS): IPMI SOL sessions of held consoles run in
 * workers (worker-thread.ts), so the SOL crypto and packet handling of a boot storm use every core
 * while the main loop serves reports and commands. `open()` gives the hub an ordinary Duplex; the
 * bytes travel over the worker's port (worker-protocol.ts). A console goes to the worker with the
 * fewest; a worker that dies ends its consoles with an error (the hub's session reconnects, the
 * capture records the gap) and is started again. Credentials reach a worker in the `open`
 * message only, never in a log line.
 */
import { Duplex } from 'node:stream';
import type { Worker } from 'node:worker_threads';
import { BmcError, type BmcErrorCode } from '../errors.js';
import type { Logger } from '../log.js';
import { killWorker, restartLater, spawnWorker, stopWorkers, workerEntry } from '../worker-entry.js';
import { logWorkerRecord } from '../outband/worker-log.js';
import type { BreakSender, TakeoverTelling } from './types.js';

type RelayStream = Duplex & BreakSender & { -readonly [K in keyof TakeoverTelling]: TakeoverTelling[K] };
import type { ConsoleWorkerData, FromWorker, SolTarget, ToWorker } from './worker-protocol.js';

/** a break's place in the relay's write queue (never sent as a character) */
const BREAK_MARK = Buffer.from([0]);

export interface WorkerPoolOptions {
  workers: number;
  logger: Logger;
  /** output bytes per console in flight from a worker before it drops output, default 1 MiB */
  maxInFlightBytes?: number;
  /** the script a worker runs (tests); default src/cli/main (or the bundle itself) */
  entry?: URL;
}

export interface WorkerStats {
  /** index of the worker slot, stable across restarts */
  worker: number;
  /** the thread's id (0 is the main thread) */
  threadId: number;
  sessions: number;
  bytes: number;
  dropped: number;
  restarts: number;
  /** log records of the worker held back over its rate, or not taken (malformed) */
  logDropped: number;
}

export interface ConsoleWorkerPool {
  /**
   * opens the console in a worker (`takeOver`: deactivate a SOL payload active in another session
   * first); the stream's end or error means the worker lost it, its `takenOver` that another
   * client took SOL
   */
  open(target: SolTarget, signal: AbortSignal, takeOver: boolean): Promise<Duplex>;
  stats(): WorkerStats[];
  /** ends a worker as if it crashed (tests and diagnostics): its consoles end, it is started again */
  kill(worker: number): Promise<void>;
  /** closes every console gracefully (within `deadlineMs`), then stops the workers */
  close(deadlineMs?: number): Promise<void>;
}

interface Slot {
  index: number;
  worker: Worker;
  streams: Map<number, Duplex>;
  opening: Map<number, { resolve: (d: Duplex) => void; reject: (e: Error) => void; stream: Duplex }>;
  bytes: number;
  dropped: number;
  logDropped: number;
  restarts: number;
  /** deaths in a row, each within STABLE_MS of its start: the next start waits longer */
  quickDeaths: number;
  startedAt: number;
  alive: boolean;
  logWarned: boolean;
}

/**
 * The error codes of a worker's failed open that reach the hub as they are: the ways opening an
 * SOL console fails (typed, so a code renamed in errors.ts fails to compile here). Any other code
 * that comes over the port becomes CLOSED: the port is the worker's word, not a type.
 */
const OPEN_FAILURE_CODES: ReadonlySet<BmcErrorCode> = new Set<BmcErrorCode>(['TIMEOUT', 'ABORTED', 'AUTH_FAILED', 'INSECURE_REFUSED', 'UNSUPPORTED', 'COMPLETION_CODE', 'PROTOCOL', 'DECODE', 'CLOSED', 'NO_SESSION_SLOTS', 'BUSY', 'UNTRUSTED']);

function openFailureCode(code: string): BmcErrorCode {
  return OPEN_FAILURE_CODES.has(code as BmcErrorCode) ? (code as BmcErrorCode) : 'CLOSED';
}

/**
 * A console worker's young generation: small. Its garbage is SOL packets and their crypto, short-
 * lived and small; V8's default lets the young generation of every isolate grow to tens of MiB
 * under a burst (a few hundred consoles opened at once) and keeps it. console-idle, 300 consoles,
 * IPMI, one worker: 123 MiB peak (twice) with the default, 116 MiB (twice) with 2 MiB.
 */
const WORKER_LIMITS = { maxYoungGenerationSizeMb: 2 } as const;

export function createConsoleWorkerPool(options: WorkerPoolOptions): ConsoleWorkerPool {
  if (!Number.isInteger(options.workers) || options.workers < 1) throw new BmcError('INVALID_ARGUMENT', `createConsoleWorkerPool: workers must be an integer >= 1, got ${String(options.workers)}`);
  const log = options.logger.child({ module: 'console-workers' });
  const data: ConsoleWorkerData = { metalBmc: 'console-worker', maxInFlightBytes: options.maxInFlightBytes ?? 1 << 20 };
  const entry = options.entry ?? workerEntry();
  const slots: Slot[] = [];
  let nextId = 1;
  let closing = false;

  const send = (slot: Slot, m: ToWorker, transfer: ArrayBuffer[] = []) => slot.worker.postMessage(m, transfer);
  /** the machine of each console (opening or open, found through `streams` or `opening`), for the worker's log lines */
  const machineOf = new WeakMap<Duplex, string>();

  function relay(slot: Slot, id: number): RelayStream {
    const stream: RelayStream = new Duplex({
      read() {},
      write(chunk: Buffer, _enc, cb) {
        // a break keeps its place among the writes: it travels through the write queue
        if (chunk === BREAK_MARK) {
          send(slot, { type: 'break', id });
          return cb();
        }
        const copy = new Uint8Array(chunk.length);
        copy.set(chunk);
        send(slot, { type: 'input', id, data: copy.buffer }, [copy.buffer]);
        cb();
      },
      final(cb) {
        send(slot, { type: 'close', id });
        cb();
      },
      destroy(err, cb) {
        if (slot.streams.get(id) === stream || slot.opening.has(id)) send(slot, { type: 'close', id });
        slot.streams.delete(id);
        cb(err);
      },
    }) as RelayStream;
    stream.takenOver = false;
    stream.sendBreak = () => {
      if (stream.destroyed || stream.writableEnded) return false;
      stream.write(BREAK_MARK);
      return true;
    };
    return stream;
  }

  function onMessage(slot: Slot, m: FromWorker): void {
    switch (m.type) {
      case 'opened': {
        const o = slot.opening.get(m.id);
        slot.opening.delete(m.id);
        if (!o) return send(slot, { type: 'close', id: m.id });
        slot.streams.set(m.id, o.stream);
        o.resolve(o.stream);
        return;
      }
      case 'failed': {
        const o = slot.opening.get(m.id);
        slot.opening.delete(m.id);
        o?.reject(new BmcError(openFailureCode(m.code), m.message));
        return;
      }
      case 'data': {
        // one batch of the worker's output for all its consoles, acknowledged in one message;
        // each console's bytes are a view of the one buffer (the scrollback ring copies what it keeps)
        send(slot, { type: 'ack', ids: m.ids, bytes: m.lengths });
        let at = 0;
        m.ids.forEach((id, i) => {
          const length = Math.max(0, Math.min(m.lengths[i] ?? 0, m.data.byteLength - at));
          const chunk = Buffer.from(m.data, at, length);
          at += length;
          const stream = slot.streams.get(id);
          if (!stream || length === 0) return;
          slot.bytes += length;
          stream.push(chunk);
        });
        return;
      }
      case 'dropped': {
        if (slot.dropped === 0) log.warn({ worker: slot.index }, 'console output dropped: the main thread did not take it fast enough');
        slot.dropped += m.bytes;
        return;
      }
      case 'end': {
        const stream = slot.streams.get(m.id) as RelayStream | undefined;
        slot.streams.delete(m.id);
        if (stream && m.takenOver === true) stream.takenOver = true;
        stream?.destroy(new BmcError('CLOSED', m.message));
        return;
      }
      case 'log': {
        const stream = m.id === undefined ? undefined : (slot.streams.get(m.id) ?? slot.opening.get(m.id)?.stream);
        const machineId = stream ? machineOf.get(stream) : undefined;
        if (!logWorkerRecord(log, m, { worker: slot.index, threadId: slot.worker.threadId, ...(machineId ? { machineId } : {}) })) dropLog(slot, 1);
        return;
      }
      case 'log-held':
        dropLog(slot, Number.isSafeInteger(m.count) && m.count > 0 ? m.count : 1);
        return;
      case 'closed':
        return;
      default: {
        const never: never = m;
        return never;
      }
    }
  }

  /** a worker's log records it held back or that were not records: counted, said once per worker start */
  function dropLog(slot: Slot, n: number): void {
    if (!slot.logWarned) log.warn({ worker: slot.index, threadId: slot.worker.threadId, records: n }, 'console worker log records dropped: over their rate or malformed');
    slot.logWarned = true;
    slot.logDropped += n;
  }

  function start(index: number, restarts: number, quickDeaths: number): Slot {
    const worker = spawnWorker('console', entry, { workerData: data, resourceLimits: WORKER_LIMITS });
    worker.unref();
    const before = slots[index];
    const slot: Slot = { index, worker, streams: new Map(), opening: new Map(), bytes: before?.bytes ?? 0, dropped: before?.dropped ?? 0, logDropped: before?.logDropped ?? 0, logWarned: false, restarts, quickDeaths, startedAt: Date.now(), alive: true };
    slots[index] = slot;
    worker.on('message', (m: FromWorker) => onMessage(slot, m));
    worker.on('error', (err) => log.error({ worker: index, err }, 'console worker failed'));
    worker.on('exit', (code) => lost(slot, code));
    return slot;
  }

  function lost(slot: Slot, code: number): void {
    slot.alive = false;
    const error = new BmcError('CLOSED', `console worker ${slot.index} exited (code ${code})`);
    for (const o of slot.opening.values()) o.reject(error);
    slot.opening.clear();
    const streams = [...slot.streams.values()];
    slot.streams.clear();
    for (const s of streams) s.destroy(error);
    if (closing || slots[slot.index] !== slot) return;
    // until then the slot keeps its dead worker: opens go to the others, or fail and are retried by the hub
    const delayMs = restartLater(slot, () => !closing && slots[slot.index] === slot, (restarts, quickDeaths) => start(slot.index, restarts, quickDeaths));
    log.warn({ worker: slot.index, code, consoles: streams.length, delayMs }, 'console worker exited; starting it again, its consoles reconnect');
  }

  for (let i = 0; i < options.workers; i++) start(i, 0, 0);

  return {
    open(target, signal, takeOver) {
      if (closing) return Promise.reject(new BmcError('CLOSED', 'the console workers are shutting down'));
      const alive = slots.filter((s) => s.alive);
      if (alive.length === 0) return Promise.reject(new BmcError('CLOSED', 'no console worker is running (restarting)'));
      const slot = alive.reduce((best, s) => (s.streams.size + s.opening.size < best.streams.size + best.opening.size ? s : best));
      const id = nextId++;
      const stream = relay(slot, id);
      if (target.machineId) machineOf.set(stream, target.machineId);
      return new Promise<Duplex>((resolve, reject) => {
        const onAbort = () => {
          if (!slot.opening.delete(id)) return;
          send(slot, { type: 'close', id });
          reject(signal.reason instanceof Error ? signal.reason : new BmcError('ABORTED', 'aborted'));
        };
        if (signal.aborted) return onAbort();
        signal.addEventListener('abort', onAbort, { once: true });
        const done = () => signal.removeEventListener('abort', onAbort);
        slot.opening.set(id, {
          stream,
          resolve: (d) => {
            done();
            resolve(d);
          },
          reject: (e) => {
            done();
            reject(e);
          },
        });
        send(slot, { type: 'open', id, target, takeOver });
      });
    },
    stats: () => slots.map((s) => ({ worker: s.index, threadId: s.worker.threadId, sessions: s.streams.size, bytes: s.bytes, dropped: s.dropped, restarts: s.restarts, logDropped: s.logDropped })),
    async kill(index) {
      const slot = slots[index];
      if (!slot) throw new BmcError('INVALID_ARGUMENT', `no console worker ${index}`);
      // not terminate(): the worker closes its UDP sockets before it ends (worker-thread.ts)
      await killWorker(slot.worker, { type: 'die' } satisfies ToWorker);
    },
    async close(deadlineMs = 5000) {
      closing = true;
      await stopWorkers(slots.filter((s) => s.alive).map((s) => s.worker), { shutdown: { type: 'shutdown' } satisfies ToWorker, die: { type: 'die' } satisfies ToWorker, isDone: (m) => (m as FromWorker).type === 'closed', deadlineMs });
    },
  };
}
