/**
 * The keep-alive connections to one BMC: up to `max` of them (h1-connection.ts), one request at a time on each.
 * The first connection opens with the first request; another opens only when a request has waited
 * `openAfterMs` for a busy one (a slow answer holds the first up). Most BMC reads then use one TLS
 * connection, which costs both ends a handshake less (a BMC's CPU is small, and at partition scale
 * the handshakes are most of metal-bmc's own CPU); a slow BMC still gets its requests side by side.
 * undici's Pool opens every connection it may at once, and allocates a 2,048-slot queue per origin.
 * A `SecondConnectionSwitch` shared by many BMCs' connections ends that wait for all of them at once.
 */
import { errors, type Dispatcher } from 'undici';
import type { Connection, SentHeedingHandler } from './h1-connection.js';
import type { SecondConnectionSwitch } from './second-connection.js';

/** Opens one connection (to the origin, with the transport's connector and timeouts). */
export type OpenConnection = () => Connection;

interface Waiting {
  options: Dispatcher.DispatchOptions;
  handler: SentHeedingHandler;
  signal: AbortSignal;
  since: number;
  onAbort: () => void;
}

/** The controller handed to a request that never reached a connection (the connections were destroyed while it waited). */
const NEVER_STARTED: Dispatcher.DispatchController = {
  aborted: true,
  paused: false,
  reason: null,
  abort: () => undefined,
  pause: () => undefined,
  resume: () => undefined,
};

export class Connections {
  private readonly connections: Connection[] = [];
  private readonly idle: Connection[] = [];
  private readonly waiting: Waiting[] = [];
  private running = 0;
  private timer: NodeJS.Timeout | undefined;
  /** stops listening for the switch (set while a request waits for a connection that may still open) */
  private stopListening: (() => void) | undefined;
  private drainedWaiters: Array<() => void> = [];
  /** close() called: no request is taken any more (undici's Pool answered ClientClosedError too) */
  private closed = false;
  private destroyed = false;

  private readonly now: () => number;
  private readonly secondConnection: SecondConnectionSwitch | undefined;

  /** `secondConnection`: while it is on, no wait before another connection opens (second-connection.ts) */
  constructor(
    private readonly open: OpenConnection,
    private readonly max: number,
    private readonly openAfterMs: number,
    o: { now?: () => number; secondConnection?: SecondConnectionSwitch | undefined } = {},
  ) {
    this.now = o.now ?? performance.now.bind(performance);
    this.secondConnection = o.secondConnection;
  }

  /** Requests running or waiting for a connection. */
  get pending(): number {
    return this.running + this.waiting.length;
  }

  /** Connections opened so far (each reconnects by itself after the BMC closed it). */
  get opened(): number {
    return this.connections.length;
  }

  /**
   * Sends the request on an idle connection, a new one if none is open yet (or `openAfterMs` is 0),
   * or queues it. The handler's onResponseEnd or onResponseError frees the connection. A request
   * aborted while it waits leaves the queue (its handler was settled by whoever aborted it).
   * An `urgent` request (a hedge: the same GET again, its first copy already waited) opens a
   * further connection at once where one may still open, and otherwise waits ahead of the queue.
   */
  dispatch(options: Dispatcher.DispatchOptions, handler: SentHeedingHandler, signal: AbortSignal, urgent = false): void {
    if (this.destroyed || this.closed) {
      handler.onResponseError?.(NEVER_STARTED, this.destroyed ? new errors.ClientDestroyedError() : new errors.ClientClosedError());
      return;
    }
    const connection = this.idle.pop() ?? (this.mayOpen(urgent ? Infinity : 0) ? this.openOne() : undefined);
    if (connection !== undefined) return this.run(connection, options, handler);
    const entry: Waiting = { options, handler, signal, since: urgent ? -Infinity : this.now(), onAbort: () => this.leave(entry) };
    signal.addEventListener('abort', entry.onAbort, { once: true });
    if (urgent) this.waiting.unshift(entry);
    else this.waiting.push(entry);
    this.arm();
  }

  /** Resolves once nothing runs or waits. */
  drained(): Promise<void> {
    if (this.pending === 0) return Promise.resolve();
    return new Promise((resolve) => this.drainedWaiters.push(resolve));
  }

  /** Closes every connection after its request (call once nothing is pending: the queue is not served any more, and later requests fail). */
  async close(): Promise<void> {
    this.closed = true;
    this.failWaiting(new errors.ClientClosedError());
    await Promise.all(this.connections.map((c) => c.close()));
  }

  /** Ends every connection at once; requests running or waiting fail with `reason`. */
  async destroy(reason: Error): Promise<void> {
    this.destroyed = true;
    this.failWaiting(reason);
    await Promise.all(this.connections.map((c) => c.destroy(reason).catch(() => undefined)));
    this.settleDrained();
  }

  private failWaiting(reason: Error): void {
    this.stopTimer();
    for (const entry of this.waiting.splice(0)) {
      entry.signal.removeEventListener('abort', entry.onAbort);
      entry.handler.onResponseError?.(NEVER_STARTED, reason);
    }
  }

  private mayOpen(waitedMs: number): boolean {
    return this.connections.length === 0 || (this.connections.length < this.max && waitedMs >= this.waitMs());
  }

  /** how long a request waits for a busy connection before it opens another */
  private waitMs(): number {
    return this.secondConnection?.atOnce === true ? 0 : this.openAfterMs;
  }

  private openOne(): Connection {
    const connection = this.open();
    this.connections.push(connection);
    return connection;
  }

  private run(connection: Connection, options: Dispatcher.DispatchOptions, handler: SentHeedingHandler): void {
    this.running += 1;
    let freed = false;
    // freed after the connection's callback has returned: a request dispatched from inside it would
    // re-enter the connection mid-callback (undici's Client, which these were, asserted on it)
    const free = (): void => {
      if (freed) return;
      freed = true;
      queueMicrotask(() => {
        this.running -= 1;
        this.release(connection);
      });
    };
    const relay: SentHeedingHandler = {
      onRequestStart: (c, context) => handler.onRequestStart?.(c, context),
      onRequestSent: () => handler.onRequestSent?.(),
      onResponseStart: (c, status, headers, message) => handler.onResponseStart?.(c, status, headers, message),
      onResponseData: (c, chunk) => handler.onResponseData?.(c, chunk),
      onResponseEnd: (c, trailers) => {
        try {
          handler.onResponseEnd?.(c, trailers);
        } finally {
          free();
        }
      },
      onResponseError: (c, err) => {
        try {
          handler.onResponseError?.(c, err);
        } finally {
          free();
        }
      },
    };
    connection.dispatch(options, relay);
  }

  /** A connection's request ended: it takes the longest waiting request, or idles. */
  private release(connection: Connection): void {
    const next = this.destroyed || this.closed || connection.destroyed ? undefined : this.waiting.shift();
    if (next !== undefined) {
      next.signal.removeEventListener('abort', next.onAbort);
      this.run(connection, next.options, next.handler);
      this.arm();
      return;
    }
    // the next request takes the last one idled: one still connected goes before one whose socket
    // closed (a request cut off, a hedge's loser), which would have to connect again
    if (connection.connected) this.idle.push(connection);
    else if (!connection.destroyed) this.idle.unshift(connection);
    if (this.pending === 0) this.settleDrained();
  }

  private leave(entry: Waiting): void {
    const at = this.waiting.indexOf(entry);
    if (at >= 0) this.waiting.splice(at, 1);
    if (this.waiting.length === 0) this.stopTimer();
    if (this.pending === 0) this.settleDrained();
  }

  /** A timer for the moment the longest waiting request may open another connection. */
  private arm(): void {
    this.stopTimer();
    const head = this.waiting[0];
    if (head === undefined || this.connections.length >= this.max) return;
    const due = Math.max(0, Math.ceil(head.since + this.waitMs() - this.now()));
    this.timer = setTimeout(() => this.openForWaiting(), due);
    this.timer.unref();
    if (due > 0 && this.secondConnection !== undefined) this.stopListening = this.secondConnection.whenOn(() => this.openNow());
  }

  /** The switch turned on: the longest waiting request opens its connection now, not at its timer. */
  private openNow(): void {
    this.stopTimer();
    this.openForWaiting();
  }

  private openForWaiting(): void {
    this.timer = undefined;
    const head = this.waiting[0];
    if (head === undefined || this.destroyed || this.closed) return;
    if (!this.mayOpen(this.now() - head.since)) return this.arm();
    this.waiting.shift();
    head.signal.removeEventListener('abort', head.onAbort);
    this.run(this.openOne(), head.options, head.handler);
    this.arm();
  }

  private stopTimer(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    this.stopListening?.();
    this.stopListening = undefined;
  }

  private settleDrained(): void {
    for (const resolve of this.drainedWaiters.splice(0)) resolve();
  }
}
