/**
 * The console hub against in-memory backends and clients: sharing, keyboard, scrollback,
 * backpressure, reconnect, idle timeout, open failures and shutdown.
 */
import { Duplex } from 'node:stream';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { BmcError } from '../../src/errors.js';
import { createConsoleHub, type ConsoleHub, type HubOptions } from '../../src/console/hub.js';
import type { ClientPort, ConsoleNotice, EndReason, HubEvent } from '../../src/console/types.js';
import { captureLog } from '../helpers/log.js';
import { waitFor } from '../helpers/wait.js';

interface FakeBmc {
  stream: Duplex;
  written: () => string;
  emit(text: string): void;
}

function fakeBmc(): FakeBmc {
  let written = '';
  const stream = new Duplex({
    read() {},
    write(chunk: Buffer, _enc, cb) {
      written += chunk.toString('latin1');
      cb();
    },
    final(cb) {
      cb();
      stream.push(null);
    },
  });
  return { stream, written: () => written, emit: (t) => stream.push(Buffer.from(t, 'latin1')) };
}

interface FakeClient extends ClientPort {
  output: () => string;
  notices: ConsoleNotice[];
  ended: EndReason[];
  full: boolean;
}

function client(subject: string): FakeClient {
  let output = '';
  const c: FakeClient = {
    identity: { subject, remote: '127.0.0.1:1', transport: 'ws' },
    output: () => output,
    notices: [],
    ended: [],
    full: false,
    send(data) {
      output += data.toString('latin1');
      return !c.full;
    },
    notify(n) {
      c.notices.push(n);
    },
    end(r) {
      c.ended.push(r);
    },
  };
  return c;
}

const tick = () => new Promise((r) => setImmediate(r));
const until = (check: () => boolean, ms = 2000) => waitFor(check, ms, 'condition', 5);

let hubs: ConsoleHub[] = [];
afterEach(async () => {
  await Promise.all(hubs.map((h) => h.close()));
  hubs = [];
});

function setup(overrides: Partial<HubOptions> = {}, backends: FakeBmc[] = []) {
  const log = captureLog();
  const events: HubEvent[] = [];
  const opened: string[] = [];
  const hub = createConsoleHub({
    logger: log.logger,
    openBackend: async (id) => {
      opened.push(id);
      const b = fakeBmc();
      backends.push(b);
      return b.stream;
    },
    onEvent: (e) => events.push(e),
    reconnect: { initialMs: 10, maxMs: 40, maxAttempts: 3 },
    ...overrides,
  });
  hubs.push(hub);
  return { hub, log, events, opened, backends };
}

describe('console hub', () => {
  it('shares one BMC session among clients; all see output, only the keyboard holder types', async () => {
    const { hub, opened, backends, log } = setup();
    const a = client('CN=alice');
    const b = client('CN=bob');
    const ha = await hub.join('m1', a);
    const hb = await hub.join('m1', b);
    expect(opened).toEqual(['m1']);
    expect(ha.hasKeyboard).toBe(true);
    expect(hb.hasKeyboard).toBe(false);
    backends[0]!.emit('hello\r\n');
    await tick();
    expect(a.output()).toBe('hello\r\n');
    expect(b.output()).toBe('hello\r\n');
    ha.input(Buffer.from('ls\r'));
    hb.input(Buffer.from('rm -rf /\r'));
    await tick();
    expect(backends[0]!.written()).toBe('ls\r');
    expect(b.notices.some((n) => n.type === 'error' && n.message.includes('CN=alice'))).toBe(true);
    expect(hub.sessionCount()).toBe(1);
    expect(hub.clientCount()).toBe(2);
    // the daemon's status reads viewers per machine
    expect(hub.viewerCounts()).toEqual(new Map([['m1', 2]]));
    expect(log.find('console client joined').map((l) => l.client)).toEqual(['CN=alice', 'CN=bob']);
  });

  it('replays the scrollback (bounded) to a client that joins later, before live output', async () => {
    const { hub, backends } = setup({ scrollbackBytes: 16 });
    const a = client('CN=a');
    await hub.join('m1', a);
    backends[0]!.emit('0123456789');
    backends[0]!.emit('abcdefghij');
    await tick();
    const late = client('CN=late');
    await hub.join('m1', late);
    expect(late.output()).toBe('456789abcdefghij');
    backends[0]!.emit('LIVE');
    await tick();
    expect(late.output()).toBe('456789abcdefghijLIVE');
  });

  it('takeover moves the keyboard and tells everyone', async () => {
    const { hub, backends, events, log } = setup();
    const a = client('CN=a');
    const b = client('CN=b');
    const ha = await hub.join('m1', a);
    const hb = await hub.join('m1', b);
    hb.takeover();
    expect(hb.hasKeyboard).toBe(true);
    expect(ha.hasKeyboard).toBe(false);
    const last = (c: FakeClient) => c.notices.filter((n) => n.type === 'status').at(-1);
    expect(last(a)).toMatchObject({ keyboard: false, owner: 'CN=b', message: 'keyboard taken over by CN=b' });
    expect(last(b)).toMatchObject({ keyboard: true, owner: 'CN=b' });
    hb.input(Buffer.from('x'));
    ha.input(Buffer.from('y'));
    await tick();
    expect(backends[0]!.written()).toBe('x');
    expect(events).toContain('takeover');
    expect(log.find('console keyboard taken over')[0]).toMatchObject({ client: 'CN=b', previous: 'CN=a' });
  });

  it('passes the keyboard on when its holder leaves, and closes the BMC session with the last client', async () => {
    const { hub, backends } = setup();
    const a = client('CN=a');
    const b = client('CN=b');
    const ha = await hub.join('m1', a);
    const hb = await hub.join('m1', b);
    ha.leave();
    expect(hb.hasKeyboard).toBe(true);
    hb.leave();
    await until(() => backends[0]!.stream.destroyed);
    expect(hub.sessionCount()).toBe(0);
    // a new client opens a new session
    await hub.join('m1', client('CN=c'));
    expect(backends).toHaveLength(2);
  });

  it('queues output for a client whose transport is full and drops it when the queue overflows, without holding up others', async () => {
    const { hub, backends, events } = setup({ maxClientQueueBytes: 100 });
    const slow = client('CN=slow');
    const fast = client('CN=fast');
    const hs = await hub.join('m1', slow);
    await hub.join('m1', fast);
    slow.full = true;
    backends[0]!.emit('a'.repeat(10)); // accepted, but the transport says it is full
    backends[0]!.emit('b'.repeat(50)); // queued
    await tick();
    slow.full = false;
    hs.drained();
    expect(slow.output()).toBe('a'.repeat(10) + 'b'.repeat(50));
    slow.full = true;
    backends[0]!.emit('c');
    for (let i = 0; i < 5; i++) backends[0]!.emit('d'.repeat(30));
    await tick();
    expect(slow.ended[0]).toMatchObject({ code: 'slow', error: true });
    expect(fast.output().endsWith('d'.repeat(150))).toBe(true);
    expect(events).toContain('client-dropped-slow');
    expect(hub.clientCount()).toBe(1);
  });

  it('rejects joins when the backend cannot be opened, with the backend error', async () => {
    const { hub, events } = setup({
      openBackend: async (id) => {
        throw new BmcError('HTTP', `machine ${id} not found at metal-api`, { httpStatus: 404 });
      },
    });
    const [r1, r2] = await Promise.allSettled([hub.join('nope', client('CN=a')), hub.join('nope', client('CN=b'))]);
    expect(r1.status).toBe('rejected');
    expect(r2.status).toBe('rejected');
    expect(((r1 as PromiseRejectedResult).reason as Error).message).toBe('machine nope not found at metal-api');
    expect(hub.sessionCount()).toBe(0);
    expect(events).toContain('open-failed');
  });

  it('times out a backend that never opens and aborts it', async () => {
    let aborted = false;
    const { hub } = setup({
      openTimeoutMs: 50,
      openBackend: (_id, { signal }) =>
        new Promise((_resolve, reject) => {
          signal.addEventListener('abort', () => {
            aborted = true;
            reject(new BmcError('TIMEOUT', 'BMC did not answer'));
          });
        }),
    });
    await expect(hub.join('m1', client('CN=a'))).rejects.toThrow();
    expect(aborted).toBe(true);
  });

  it('cancels the opening when the only waiting client goes away', async () => {
    let signalSeen: AbortSignal | undefined;
    const { hub } = setup({
      openBackend: (_id, { signal }) => {
        signalSeen = signal;
        return new Promise<Duplex>(() => undefined);
      },
    });
    const gone = new AbortController();
    const joining = hub.join('m1', client('CN=a'), { signal: gone.signal });
    await tick();
    gone.abort();
    await expect(joining).rejects.toThrow();
    expect(signalSeen?.aborted).toBe(true);
    expect(hub.sessionCount()).toBe(0);
  });

  it('reports a lost BMC stream, reconnects with backoff, and carries on', async () => {
    const { hub, backends, events } = setup();
    const a = client('CN=a');
    await hub.join('m1', a);
    backends[0]!.stream.destroy(new Error('SOL retransmissions exhausted'));
    await until(() => backends.length === 2 && a.notices.some((n) => n.type === 'status' && n.state === 'open' && n.message === 'BMC connection re-established'));
    expect(a.notices.some((n) => n.type === 'status' && n.state === 'reconnecting' && /SOL retransmissions exhausted/.test(n.message ?? ''))).toBe(true);
    backends[1]!.emit('back\r\n');
    await tick();
    expect(a.output()).toContain('back');
    expect(events).toEqual(expect.arrayContaining(['bmc-disconnect', 'reconnect']));
  });

  it('gives up after the configured reconnect attempts and ends the clients with an error', async () => {
    let calls = 0;
    const first = fakeBmc();
    const { hub } = setup({
      openBackend: async () => {
        calls++;
        if (calls === 1) return first.stream;
        throw new BmcError('TIMEOUT', 'BMC does not answer');
      },
    });
    const a = client('CN=a');
    await hub.join('m1', a);
    first.stream.push(null);
    await until(() => a.ended.length > 0);
    expect(a.ended[0]).toMatchObject({ code: 'bmc-gone', error: true });
    expect(a.ended[0]!.message).toMatch(/gave up after 3 attempts/);
    expect(calls).toBe(4);
    expect(hub.sessionCount()).toBe(0);
  });

  it('closes an idle session (no input, no output)', async () => {
    // fake timers (and clock): the 80 ms pass only when the test says so, whatever the machine's load
    vi.useFakeTimers();
    let a: ReturnType<typeof client>;
    let backends: ReturnType<typeof setup>['backends'];
    let events: ReturnType<typeof setup>['events'];
    try {
      let hub;
      ({ hub, backends, events } = setup({ idleTimeoutMs: 80 }));
      a = client('CN=a');
      const ha = await hub.join('m1', a);
      await vi.advanceTimersByTimeAsync(50);
      ha.input(Buffer.from('k')); // activity postpones it
      await vi.advanceTimersByTimeAsync(50);
      expect(a.ended).toHaveLength(0);
      await vi.advanceTimersByTimeAsync(30); // 80 ms after the input
      expect(a.ended.length).toBeGreaterThan(0);
    } finally {
      vi.useRealTimers();
    }
    expect(a.ended[0]).toMatchObject({ code: 'idle', error: false });
    expect(events).toContain('idle-timeout');
    await until(() => backends[0]!.stream.destroyed);
  });

  it('close() tells every client, closes every BMC session and refuses new joins', async () => {
    const { hub, backends } = setup();
    const a = client('CN=a');
    const b = client('CN=b');
    await hub.join('m1', a);
    await hub.join('m2', b);
    await hub.close();
    expect(a.ended[0]).toMatchObject({ code: 'shutdown' });
    expect(b.ended[0]).toMatchObject({ code: 'shutdown' });
    expect(backends.every((x) => x.stream.destroyed)).toBe(true);
    await expect(hub.join('m1', client('CN=c'))).rejects.toThrow(/shutting down/);
  });

  it('machines are independent: one BMC failing does not touch another', async () => {
    const { hub, backends } = setup({ reconnect: { initialMs: 10, maxMs: 10, maxAttempts: 0 } });
    const a = client('CN=a');
    const b = client('CN=b');
    await hub.join('m1', a);
    await hub.join('m2', b);
    backends[0]!.stream.destroy(new Error('gone'));
    await until(() => a.ended.length > 0);
    backends[1]!.emit('still here');
    await tick();
    expect(b.output()).toBe('still here');
    expect(b.ended).toHaveLength(0);
  });

  it('refuses a console for another machine as busy at the session bound; the machines already open keep their viewers', async () => {
    const { hub, opened } = setup({ maxSessions: 2 });
    await hub.join('m1', client('CN=a'));
    await hub.join('m2', client('CN=b'));
    await expect(hub.join('m3', client('CN=c'))).rejects.toMatchObject({ code: 'BUSY', message: expect.stringMatching(/maximum of 2 console sessions/) });
    await hub.join('m1', client('CN=d'));
    expect(opened).toEqual(['m1', 'm2']);
    expect(hub.clientCount()).toBe(3);
  });

  it('validates its options', () => {
    const log = captureLog();
    expect(() => createConsoleHub({ logger: log.logger, openBackend: undefined as never })).toThrow(/openBackend/);
    expect(() => createConsoleHub({ logger: log.logger, openBackend: async () => fakeBmc().stream, scrollbackBytes: -1 })).toThrow(/scrollbackBytes/);
    expect(() => createConsoleHub({ logger: log.logger, openBackend: async () => fakeBmc().stream, maxSessions: 0 })).toThrow(/maxSessions/);
  });
});

describe('a holder (the console capture)', () => {
  const holder = () => {
    const c = client('console-capture');
    (c as { identity: ClientPort['identity'] }).identity = { subject: 'console-capture', remote: 'metal-bmc', transport: 'capture' };
    return c;
  };

  it('keeps the session past the idle timeout and without viewers; never gets the keyboard; is no viewer', async () => {
    vi.useFakeTimers();
    try {
      const { hub, backends, events } = setup({ idleTimeoutMs: 80 });
      const h = holder();
      const hh = await hub.join('m1', h, { hold: true });
      expect(hh.hasKeyboard).toBe(false);
      const v = client('CN=viewer');
      const hv = await hub.join('m1', v);
      expect(hv.hasKeyboard).toBe(true); // the first viewer gets the keyboard, as without a holder
      expect(hub.viewerCounts()).toEqual(new Map([['m1', 1]]));
      hv.leave();
      await vi.advanceTimersByTimeAsync(500); // six idle timeouts
      expect(events).not.toContain('idle-timeout');
      expect(h.ended).toEqual([]);
      expect(hub.sessionCount()).toBe(1);
      backends[0]!.emit('still here');
      await vi.advanceTimersByTimeAsync(1);
      expect(h.output()).toBe('still here');
      hh.takeover(); // ignored
      hh.input(Buffer.from('x'));
      expect(backends[0]!.written()).toBe('');
      hh.leave(); // the last member: the session closes as before
      await vi.advanceTimersByTimeAsync(1);
      expect(hub.sessionCount()).toBe(0);
    } finally {
      vi.useRealTimers();
    }
  });

  it('gets no scrollback; a new session starts with the seeded scrollback, before live output', async () => {
    const { hub, backends } = setup({ seedScrollback: async () => Buffer.from('from the log|') });
    const h = holder();
    await hub.join('m1', h, { hold: true });
    backends[0]!.emit('live');
    await tick();
    expect(h.output()).toBe('live');
    const v = client('CN=v');
    await hub.join('m1', v);
    expect(v.output()).toBe('from the log|live');
  });

  it('a viewer\'s takeover leaves the holder\'s output untouched', async () => {
    const { hub, backends } = setup();
    const h = holder();
    await hub.join('m1', h, { hold: true });
    const a = client('CN=a');
    const b = client('CN=b');
    await hub.join('m1', a);
    const hb = await hub.join('m1', b);
    hb.takeover();
    backends[0]!.emit('after takeover');
    await tick();
    expect(h.output()).toBe('after takeover');
    expect(h.notices.filter((n) => n.type === 'status').at(-1)).toMatchObject({ keyboard: false, owner: 'CN=b', clients: 2 });
  });
});

describe('yielding to a client that took the console from us', () => {
  /**
   * A BMC with one SOL payload: held by us (a stream of ours), by another client, or free. An open
   * without takeover fails BUSY while another holds it, as Activate Payload's 0x80 does.
   */
  function solBmc() {
    let holder: 'us' | 'other' | undefined;
    const opens: Array<{ takeOver: boolean; at: number; busy: boolean }> = [];
    const ours: Array<Duplex & { takenOver: boolean }> = [];
    const openBackend: HubOptions['openBackend'] = async (_id, { takeOver = true }) => {
      const busy = holder === 'other' && !takeOver;
      opens.push({ takeOver, at: Date.now(), busy });
      if (busy) throw new BmcError('BUSY', 'SOL is already active on BMC 10.0.0.1:623 in another session (take it over to deactivate it)', { completionCode: 0x80 });
      holder = 'us';
      const stream = Object.assign(fakeBmc().stream, { takenOver: false });
      ours.push(stream);
      return stream;
    };
    return {
      opens,
      openBackend,
      /** another client takes SOL over: our stream ends as sol.ts ends it, saying so */
      takeOver() {
        holder = 'other';
        const s = ours.at(-1)!;
        s.takenOver = true;
        s.destroy(new BmcError('CLOSED', 'SOL on BMC 10.0.0.1:623 ended: SOL taken over by another session (0x00000002, ours is 0x00000001)'));
      },
      letGo: () => (holder = undefined),
      get holder() {
        return holder;
      },
      /** our stream ends for another reason (the BMC stopped answering): the payload may still be ours */
      lose: () => ours.at(-1)!.destroy(new BmcError('TIMEOUT', 'no acknowledgement after 5 retransmissions')),
    };
  }

  it('reconnects without takeover while the other client holds SOL (BUSY, said once), opens normally once it let go, and takes over again after a loss of another kind', async () => {
    const bmc = solBmc();
    const { hub, log } = setup({ openBackend: bmc.openBackend, reconnect: { initialMs: 5, maxMs: 10, maxAttempts: 100, yieldMs: 60_000 } });
    const a = client('CN=a');
    await hub.join('m1', a);
    expect(bmc.opens).toEqual([expect.objectContaining({ takeOver: true })]); // a fresh console takes over
    bmc.takeOver();
    await until(() => bmc.opens.filter((o) => o.busy).length >= 3);
    expect(bmc.opens.slice(1).every((o) => !o.takeOver)).toBe(true);
    expect(bmc.holder).toBe('other');
    const told = a.notices.filter((n) => n.type === 'status' && n.state === 'reconnecting').map((n) => (n.type === 'status' ? n.message : ''));
    expect(told[0]).toMatch(/another session took the serial console \(.*SOL taken over by another session.*\); not taking it back for 1 min/);
    expect(told[1]).toMatch(/another session holds the serial console \(.*in another session.*\); not taking it over for \d+ s more/);
    expect(log.find('BMC console taken by another session; reconnecting without taking it back while that session holds it')).toHaveLength(1);
    expect(log.find('BMC console reconnect failed')).toEqual([]);
    bmc.letGo();
    await until(() => a.notices.some((n) => n.type === 'status' && n.state === 'open' && n.message === 'BMC connection re-established'));
    expect(bmc.opens.at(-1)).toMatchObject({ takeOver: false, busy: false });
    // the yield ended with that open: a stream lost otherwise reconnects with takeover again
    const before = bmc.opens.length;
    bmc.lose();
    await until(() => bmc.opens.length > before);
    expect(bmc.opens[before]).toMatchObject({ takeOver: true });
  });

  it('takes SOL over again once the yield window has passed (the other session counts as stale)', async () => {
    const bmc = solBmc();
    const { hub, log } = setup({ openBackend: bmc.openBackend, reconnect: { initialMs: 5, maxMs: 10, maxAttempts: 1000, yieldMs: 300 } });
    const a = client('CN=a');
    await hub.join('m1', a);
    const lostAt = Date.now();
    bmc.takeOver();
    await until(() => bmc.holder === 'us', 5000);
    const first = bmc.opens.findIndex((o, i) => i > 0 && o.takeOver);
    expect(first).toBe(bmc.opens.length - 1);
    expect(bmc.opens[first]!.at - lostAt).toBeGreaterThanOrEqual(300);
    expect(bmc.opens.slice(1, first).every((o) => o.busy)).toBe(true);
    expect(bmc.opens.slice(1, first).length).toBeGreaterThanOrEqual(2);
    expect(log.find('BMC console still held by another session after the yield window; taking it over as a stale session')).toHaveLength(1);
  });

  it('takes over at once with yieldMs 0', async () => {
    const bmc = solBmc();
    const { hub } = setup({ openBackend: bmc.openBackend, reconnect: { initialMs: 5, maxMs: 10, maxAttempts: 10, yieldMs: 0 } });
    await hub.join('m1', client('CN=a'));
    bmc.takeOver();
    await until(() => bmc.holder === 'us');
    expect(bmc.opens.map((o) => o.takeOver)).toEqual([true, true]);
  });
});
