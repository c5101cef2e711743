/**
 * A console worker thread: opens IPMI SOL consoles (src/outband/ipmi.ts) for the main thread's
 * worker pool (worker-pool.ts) and relays them over its port: the SOL crypto, retransmits and
 * keepalives of these sessions run here, off the main loop. Output is sent as one transferred
 * buffer for all consoles, at most once per OUTPUT_COALESCE_MS while output streams (the first
 * output after a quiet spell goes at the end of its event-loop turn, so an echo is not held back);
 * output beyond `maxInFlightBytes` unacknowledged bytes is
 * dropped and reported (`dropped`, once per flush with the bytes dropped since: a flood of small
 * datagrams is one message, not one each to a main thread already behind), so a main thread that
 * falls behind never stalls a BMC session.
 * Started by src/cli/main.ts when its first argument says so (the bundle starts itself the same way).
 */
import type { Duplex } from 'node:stream';
import { parentPort, workerData } from 'node:worker_threads';
import { BmcError } from '../errors.js';
import { ipmiOutband } from '../outband/ipmi.js';
import { guardWorkerExit } from '../outband/worker-exit.js';
import type { IpmiEvent } from '../ipmi/session.js';
import { createWorkerLogSender } from '../outband/worker-log.js';
import { breakSender, takenOverByAnother } from './types.js';
import { isConsoleWorkerData, type ConsoleWorkerData, type FromWorker, type SolTarget, type ToWorker } from './worker-protocol.js';

interface Held {
  stream: Duplex | undefined;
  abort: AbortController;
  pending: Buffer[];
  pendingBytes: number;
  inFlight: number;
  /** bytes dropped since the last flush: told once per flush, not once per datagram (a flood would post one message each) */
  droppedBytes: number;
  closed: boolean;
}

/**
 * Streaming output waits at most this long to join the next message to the main thread. A boot
 * storm's SOL packets arrive a few per event-loop turn, one per BMC every ~10 ms; a message per
 * turn cost the worker more in postMessage than the SOL crypto, and the main thread handles each
 * console's part of a message on its own (hub, scrollback, capture). 20 ms joins two packets of a
 * BMC in one part and is below what a person watching a console notices; an echo after a quiet
 * spell is not held back at all.
 */
export const OUTPUT_COALESCE_MS = 20;

export interface PortLike {
  postMessage(message: FromWorker, transfer?: ArrayBuffer[]): void;
  on(event: 'message', listener: (message: ToWorker) => void): void;
}

async function openSol(target: SolTarget, signal: AbortSignal, takeOver: boolean, onEvent?: (e: IpmiEvent) => void): Promise<Duplex> {
  const outband = ipmiOutband({ host: target.host, port: target.port, user: target.user, password: target.password, cipherSuite: target.cipherSuite ?? 'auto', allowInsecure: false, retry: { deadlineMs: Math.min(target.timeoutMs, 10_000) }, ...(onEvent ? { onEvent } : {}) });
  try {
    return await outband.openConsole({ takeOver, signal });
  } finally {
    await outband.close();
  }
}

/** How the worker itself ends: after a graceful shutdown, and as a crash would. */
export interface WorkerLifecycle {
  /** after every console closed, before `closed` is said: what else must be let go */
  afterShutdown(): Promise<void>;
  /** end at once, as a crash would */
  die(): void;
}

const NO_LIFECYCLE: WorkerLifecycle = { afterShutdown: async () => undefined, die: () => undefined };

export function serveConsoles(port: PortLike, settings: ConsoleWorkerData, open: typeof openSol = openSol, lifecycle: WorkerLifecycle = NO_LIFECYCLE): void {
  const held = new Map<number, Held>();
  /** the flush waiting to run; a flush called directly (a console's end) cancels it */
  let scheduled: { timer: NodeJS.Timeout } | { immediate: NodeJS.Immediate } | undefined;
  let lastFlush = -Infinity;
  const post = (m: FromWorker, transfer?: ArrayBuffer[]) => port.postMessage(m, transfer);
  // the IPMI workarounds of these sessions, as log records for the main thread (worker-log.ts)
  const logs = createWorkerLogSender((m) => post(m));

  /** consoles with output not sent yet, in the order it came */
  const dirty = new Set<number>();

  function flush(): void {
    if (scheduled && 'timer' in scheduled) clearTimeout(scheduled.timer);
    else if (scheduled) clearImmediate(scheduled.immediate);
    scheduled = undefined;
    lastFlush = performance.now();
    const ids: number[] = [];
    const lengths: number[] = [];
    let total = 0;
    const drops: Array<{ id: number; bytes: number }> = [];
    for (const id of dirty) {
      const h = held.get(id);
      if (h && h.droppedBytes > 0) {
        drops.push({ id, bytes: h.droppedBytes });
        h.droppedBytes = 0;
      }
      if (!h || h.pendingBytes === 0) continue;
      ids.push(id);
      lengths.push(h.pendingBytes);
      total += h.pendingBytes;
    }
    // the output kept went out before what was dropped after it
    const tellDrops = () => {
      for (const d of drops) post({ type: 'dropped', id: d.id, bytes: d.bytes });
    };
    if (ids.length === 0) {
      dirty.clear();
      return tellDrops();
    }
    const data = new Uint8Array(total);
    let at = 0;
    for (const id of ids) {
      const h = held.get(id)!;
      for (const b of h.pending) {
        data.set(b, at);
        at += b.length;
      }
      h.inFlight += h.pendingBytes;
      h.pending = [];
      h.pendingBytes = 0;
    }
    dirty.clear();
    post({ type: 'data', ids, lengths, data: data.buffer }, [data.buffer]);
    tellDrops();
  }

  function output(id: number, h: Held, chunk: Buffer): void {
    if (h.inFlight + h.pendingBytes + chunk.length > settings.maxInFlightBytes) h.droppedBytes += chunk.length;
    else {
      h.pending.push(chunk);
      h.pendingBytes += chunk.length;
    }
    dirty.add(id);
    if (!scheduled) {
      const wait = lastFlush + OUTPUT_COALESCE_MS - performance.now();
      scheduled = wait <= 0 ? { immediate: setImmediate(flush) } : { timer: setTimeout(flush, wait) };
    }
  }

  function end(id: number, h: Held, message: string): void {
    if (h.closed) return;
    h.closed = true;
    flush();
    held.delete(id);
    post({ type: 'end', id, message, ...(h.stream && takenOverByAnother(h.stream) ? { takenOver: true } : {}) });
  }

  async function start(id: number, target: SolTarget, takeOver: boolean): Promise<void> {
    const h: Held = { stream: undefined, abort: new AbortController(), pending: [], pendingBytes: 0, inFlight: 0, droppedBytes: 0, closed: false };
    held.set(id, h);
    const timer = setTimeout(() => h.abort.abort(new BmcError('TIMEOUT', `opening the console took longer than ${target.timeoutMs} ms`)), target.timeoutMs);
    try {
      const stream = await open(target, h.abort.signal, takeOver, (e) => logs.quirk(id, target.host, e));
      if (h.closed) {
        stream.destroy();
        return;
      }
      h.stream = stream;
      stream.on('data', (chunk: Buffer) => output(id, h, chunk));
      stream.on('error', (err: Error) => end(id, h, err.message));
      stream.on('end', () => end(id, h, 'the BMC ended the console'));
      stream.on('close', () => end(id, h, 'the BMC console closed'));
      post({ type: 'opened', id });
    } catch (err) {
      held.delete(id);
      h.closed = true;
      post({ type: 'failed', id, code: err instanceof BmcError ? err.code : 'CLOSED', message: err instanceof Error ? err.message : String(err) });
    } finally {
      clearTimeout(timer);
    }
  }

  /** ends the SOL payload and its session (the BMC frees the slot), as the in-thread path does */
  function close(id: number): Promise<void> {
    const h = held.get(id);
    if (!h) return Promise.resolve();
    h.closed = true;
    held.delete(id);
    h.abort.abort(new BmcError('CLOSED', 'the console was closed'));
    const stream = h.stream;
    if (!stream || stream.destroyed) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        stream.destroy();
        resolve();
      }, 5000);
      const done = () => {
        clearTimeout(timer);
        resolve();
      };
      stream.once('close', done);
      stream.once('error', done);
      stream.end();
    });
  }

  port.on('message', (m) => {
    switch (m.type) {
      case 'open':
        void start(m.id, m.target, m.takeOver);
        return;
      case 'input': {
        const h = held.get(m.id);
        if (h?.stream && !h.stream.destroyed) h.stream.write(Buffer.from(m.data));
        return;
      }
      case 'break': {
        const h = held.get(m.id);
        if (h?.stream && !h.stream.destroyed) breakSender(h.stream)?.sendBreak();
        return;
      }
      case 'ack': {
        m.ids.forEach((id, i) => {
          const h = held.get(id);
          if (h) h.inFlight = Math.max(0, h.inFlight - (m.bytes[i] ?? 0));
        });
        return;
      }
      case 'close':
        void close(m.id);
        return;
      case 'shutdown':
        void Promise.all([...held.keys()].map(close))
          .then(() => lifecycle.afterShutdown())
          .then(() => post({ type: 'closed' }));
        return;
      case 'die':
        lifecycle.die();
        return;
      default: {
        const never: never = m;
        return never;
      }
    }
  });
}

/** the worker's entry: serve the pool on the parent port */
export function runConsoleWorker(): void {
  if (!parentPort || !isConsoleWorkerData(workerData)) throw new BmcError('INVALID_ARGUMENT', 'the console worker runs only as a worker thread of metal-bmc serve');
  const port = parentPort;
  serveConsoles({ postMessage: (m, transfer) => port.postMessage(m, transfer ?? []), on: (event, listener) => port.on(event, listener) }, workerData, openSol, guardWorkerExit());
}
