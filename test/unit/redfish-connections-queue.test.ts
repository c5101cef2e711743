/**
 * The queue of src/redfish/connections.ts over stand-in connections and a hand-moved clock: what
 * waits, when a further connection opens, and what a close or destroy does to requests still
 * waiting. Against a real HTTPS server: redfish-connections.test.ts.
 */
import type { Dispatcher } from 'undici';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { Connections } from '../../src/redfish/connections.js';
import { SecondConnectionSwitch } from '../../src/redfish/second-connection.js';

/** A Client that records what it was given; `finish(i)` ends its i-th request. */
class StandInClient {
  readonly handlers: Dispatcher.DispatchHandler[] = [];
  destroyed = false;
  closed = false;
  get connected(): boolean {
    return !this.destroyed && !this.closed;
  }
  dispatch(_options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    this.handlers.push(handler);
    return true;
  }
  async close(): Promise<void> {
    this.closed = true;
  }
  async destroy(reason: Error): Promise<void> {
    this.destroyed = true;
    for (const h of this.handlers) h.onResponseError?.(controller, reason);
  }
}

const controller = { aborted: false, paused: false, reason: null, abort: () => undefined, pause: () => undefined, resume: () => undefined } as Dispatcher.DispatchController;
const options: Dispatcher.DispatchOptions = { path: '/redfish/v1/', method: 'GET' };

/** A request's handler that records how it ended. */
function request(): { handler: Dispatcher.DispatchHandler; ended: () => string | undefined } {
  let end: string | undefined;
  return {
    handler: {
      onResponseEnd: () => void (end = 'answered'),
      onResponseError: (_c, err) => void (end = err.constructor.name),
    },
    ended: () => end,
  };
}

let clock = 0;
let clients: StandInClient[] = [];
/** the microtask that frees a connection after undici's callback */
const settle = () => new Promise<void>((r) => setImmediate(r));

function connections(max: number, openAfterMs: number, secondConnection?: SecondConnectionSwitch): Connections {
  return new Connections(() => {
    const c = new StandInClient();
    clients.push(c);
    return c;
  }, max, openAfterMs, { now: () => clock, secondConnection });
}

/** moves the clock and the timers on together */
function advance(ms: number): void {
  clock += ms;
  vi.advanceTimersByTime(ms);
}

function answer(client: StandInClient, i: number): void {
  client.handlers[i]!.onResponseEnd?.(controller, {});
}

beforeEach(() => {
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
  clock = 0;
  clients = [];
});
afterEach(() => {
  vi.useRealTimers();
});

describe('Redfish connections: the queue', () => {
  it('a request waits for the busy connection until openAfterMs, then opens the next; the next waiter re-arms the timer up to max', () => {
    const pool = connections(3, 1000);
    const signal = new AbortController().signal;
    pool.dispatch(options, request().handler, signal);
    pool.dispatch(options, request().handler, signal);
    pool.dispatch(options, request().handler, signal);
    expect(pool.opened).toBe(1);
    advance(999);
    expect(pool.opened).toBe(1);
    advance(1);
    expect(pool.opened).toBe(2);
    expect(clients[1]!.handlers).toHaveLength(1);
    // the third waited as long as the second: its timer runs from when it came, so it opens the third in the next turn, not a second later
    advance(1);
    expect(pool.opened).toBe(3);
    expect(pool.pending).toBe(3);
  });

  it('a waiting request that is aborted leaves the queue: it opens no connection and is not counted', async () => {
    const pool = connections(2, 1000);
    pool.dispatch(options, request().handler, new AbortController().signal);
    const abort = new AbortController();
    pool.dispatch(options, request().handler, abort.signal);
    expect(pool.pending).toBe(2);
    abort.abort(new Error('gone'));
    expect(pool.pending).toBe(1);
    advance(5000);
    expect(pool.opened).toBe(1);
    answer(clients[0]!, 0);
    await settle();
    expect(pool.pending).toBe(0);
    expect(clients[0]!.handlers).toHaveLength(1);
  });

  it('an urgent request (a hedge) opens a further connection at once, and where none may open it waits ahead of the queue', async () => {
    const pool = connections(2, 1000);
    const signal = new AbortController().signal;
    pool.dispatch(options, request().handler, signal);
    pool.dispatch(options, request().handler, signal, true);
    expect(pool.opened).toBe(2);
    expect(clients[1]!.handlers).toHaveLength(1);
    const waiting = request();
    const hedge = request();
    pool.dispatch(options, waiting.handler, signal);
    pool.dispatch(options, hedge.handler, signal, true);
    expect(pool.opened).toBe(2);
    answer(clients[0]!, 0);
    await settle();
    answer(clients[0]!, 1);
    expect(hedge.ended()).toBe('answered');
    expect(waiting.ended()).toBeUndefined();
  });

  it('a freed connection still connected is taken before one whose socket closed', async () => {
    const pool = connections(2, 0);
    const signal = new AbortController().signal;
    pool.dispatch(options, request().handler, signal);
    pool.dispatch(options, request().handler, signal);
    answer(clients[0]!, 0);
    await settle();
    clients[1]!.closed = true; // its request cut off: the socket went with it
    clients[1]!.handlers[0]!.onResponseError?.(controller, new Error('cut off'));
    await settle();
    pool.dispatch(options, request().handler, signal);
    expect(clients[0]!.handlers).toHaveLength(2);
    expect(clients[1]!.handlers).toHaveLength(1);
  });

  it('a freed connection takes the longest waiting request', async () => {
    const pool = connections(1, 1000);
    const second = request();
    pool.dispatch(options, request().handler, new AbortController().signal);
    pool.dispatch(options, second.handler, new AbortController().signal);
    answer(clients[0]!, 0);
    await settle();
    expect(clients[0]!.handlers).toHaveLength(2);
    answer(clients[0]!, 1);
    expect(second.ended()).toBe('answered');
    await settle();
    await pool.drained();
    expect(pool.pending).toBe(0);
  });

  it('close() fails requests still waiting and every later one (ClientClosedError), and opens nothing', async () => {
    const pool = connections(2, 1000);
    const waiting = request();
    pool.dispatch(options, request().handler, new AbortController().signal);
    pool.dispatch(options, waiting.handler, new AbortController().signal);
    await pool.close();
    expect(waiting.ended()).toBe('ClientClosedError');
    const later = request();
    pool.dispatch(options, later.handler, new AbortController().signal);
    expect(later.ended()).toBe('ClientClosedError');
    advance(5000);
    expect(pool.opened).toBe(1);
    expect(clients[0]!.closed).toBe(true);
  });

  it('destroy() fails running and waiting requests with its reason, and settles drained()', async () => {
    const pool = connections(2, 1000);
    const running = request();
    const waiting = request();
    pool.dispatch(options, running.handler, new AbortController().signal);
    pool.dispatch(options, waiting.handler, new AbortController().signal);
    const drained = pool.drained();
    class Gone extends Error {}
    await pool.destroy(new Gone('destroyed'));
    expect([running.ended(), waiting.ended()]).toEqual(['Gone', 'Gone']);
    await settle();
    await drained;
    expect(pool.pending).toBe(0);
    advance(5000);
    expect(pool.opened).toBe(1);
  });
});

describe("Redfish connections: the report cycle's switch for second connections", () => {
  /** Connections (at most two, a wait of 1 s) following `second`, with two requests sent: the second behind the first unless it opened the next. */
  function twoRequests(second: SecondConnectionSwitch): { pool: Connections; signal: AbortSignal } {
    const pool = connections(2, 1000, second);
    const signal = new AbortController().signal;
    pool.dispatch(options, request().handler, signal);
    pool.dispatch(options, request().handler, signal);
    return { pool, signal };
  }

  it('a request waiting for the busy connection when the switch turns on opens the next one then, not at its timer', () => {
    const second = new SecondConnectionSwitch();
    const { pool } = twoRequests(second);
    advance(100);
    expect(pool.opened).toBe(1);
    expect(second.waiting).toBe(1);
    second.turnOn();
    expect(pool.opened).toBe(2);
    expect(clients[1]!.handlers).toHaveLength(1);
    // nothing waits now: the switch holds no listener, and the old timer opens nothing more
    expect(second.waiting).toBe(0);
    advance(5000);
    expect(pool.opened).toBe(2);
    expect(pool.pending).toBe(2);
  });

  it('while the switch is on, a request behind a busy connection opens the next at once', () => {
    const second = new SecondConnectionSwitch();
    second.turnOn();
    const { pool, signal } = twoRequests(second);
    expect(pool.opened).toBe(2);
    expect(clients.map((c) => c.handlers.length)).toEqual([1, 1]);
    // at most `max`: a third waits for one of the two
    pool.dispatch(options, request().handler, signal);
    expect(pool.opened).toBe(2);
    expect(pool.pending).toBe(3);
  });

  it('an off switch changes nothing: the wait is openAfterMs', () => {
    const second = new SecondConnectionSwitch();
    const { pool } = twoRequests(second);
    advance(999);
    expect(pool.opened).toBe(1);
    advance(1);
    expect(pool.opened).toBe(2);
    expect(second.waiting).toBe(0);
  });

  it('the switch holds a listener only while a request waits for a connection that may still open', async () => {
    const second = new SecondConnectionSwitch();
    const pool = connections(2, 1000, second);
    pool.dispatch(options, request().handler, new AbortController().signal);
    const abort = new AbortController();
    pool.dispatch(options, request().handler, abort.signal);
    expect(second.waiting).toBe(1);
    abort.abort(new Error('gone'));
    expect(second.waiting).toBe(0);
    // waiting again, then freed by the answer in front of it
    pool.dispatch(options, request().handler, new AbortController().signal);
    expect(second.waiting).toBe(1);
    answer(clients[0]!, 0);
    await settle();
    expect(second.waiting).toBe(0);
    expect(clients[0]!.handlers).toHaveLength(2);
    // and none after a destroy
    pool.dispatch(options, request().handler, new AbortController().signal);
    expect(second.waiting).toBe(1);
    await pool.destroy(new Error('destroyed'));
    expect(second.waiting).toBe(0);
    second.turnOn();
    expect(pool.opened).toBe(1);
  });

  it('close() with a request waiting stops listening: the switch turning on later opens nothing', async () => {
    const second = new SecondConnectionSwitch();
    const pool = connections(2, 1000, second);
    pool.dispatch(options, request().handler, new AbortController().signal);
    const waiting = request();
    pool.dispatch(options, waiting.handler, new AbortController().signal);
    expect(second.waiting).toBe(1);
    await pool.close();
    expect(waiting.ended()).toBe('ClientClosedError');
    expect(second.waiting).toBe(0);
    second.turnOn();
    expect(pool.opened).toBe(1);
  });

  it('one switch serves the connections of many BMCs: turning it on opens the waiting ones of each', () => {
    const second = new SecondConnectionSwitch();
    const pools = [connections(2, 1000, second), connections(2, 1000, second), connections(2, 1000, second)];
    const signal = new AbortController().signal;
    pools[0]!.dispatch(options, request().handler, signal);
    pools[0]!.dispatch(options, request().handler, signal);
    pools[1]!.dispatch(options, request().handler, signal);
    pools[1]!.dispatch(options, request().handler, signal);
    // the third BMC has nothing waiting: it keeps its one connection
    pools[2]!.dispatch(options, request().handler, signal);
    expect(second.waiting).toBe(2);
    second.turnOn();
    expect(pools.map((p) => p.opened)).toEqual([2, 2, 1]);
  });
});
