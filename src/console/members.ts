/**
 * The clients of one console session: who is in, who holds the keyboard, and each client's
 * bounded output queue (client-queue.ts). Output reaches every live client; a client that
 * falls more than `maxClientQueueBytes` behind is dropped; the keyboard passes to the next
 * live client when its holder leaves. The BMC side (opening, reconnecting, closing the serial
 * stream) stays in session.ts, which tells the members what to show through `state()`.
 */
import type { Logger } from '../log.js';
import { createTokenBucket, type TokenBucket } from '../net/token-bucket.js';
import { createClientQueue, type ClientQueue } from './client-queue.js';
import type { ClientPort, ConsoleNotice, ConsoleState, EndReason, ForeignNotice, HubEvent } from './types.js';

export interface Member {
  readonly port: ClientPort;
  /** false until the scrollback was replayed to it */
  live: boolean;
  /** its output, bounded while the client does not keep up */
  readonly queue: ClientQueue;
  /** when it was last told that its input is ignored */
  refusedAt: number;
  /** out of the session; every later call about it is a no-op */
  gone: boolean;
  /** a holder (the console capture): never gets the keyboard, not counted as a viewer */
  readonly holder: boolean;
  /** the takeovers it may ask for */
  readonly takeovers: TokenBucket;
}

/** error notices one client gets a second (a burst of twice that); more are dropped */
const NOTICES_PER_SECOND = 10;
const NOTICES_BURST = 20;
/** takeovers one client may ask for a second, and at once */
const TAKEOVERS_PER_SECOND = 1;
const TAKEOVERS_BURST = 5;

export interface MembersOptions {
  machineId: string;
  log: Logger;
  maxClientQueueBytes: number;
  onEvent: (event: HubEvent) => void;
  /** the BMC connection's state, as clients are shown it */
  state: () => ConsoleState;
  /** the last client left or was dropped */
  onEmpty: () => void;
}

export interface Members {
  readonly count: number;
  /** members that are not holders */
  readonly viewers: number;
  /** members that hold the session open */
  readonly holders: number;
  /** the keyboard holder, if any */
  readonly keyboard: Member | undefined;
  /** the longest-standing client, if any */
  readonly first: Member | undefined;
  /** a new member, not live yet (it gets no output until `goLive`) */
  add(port: ClientPort, holder?: boolean): Member;
  /** Scrollback first, then live output; takes the keyboard when nobody holds it or `takeover` is asked. */
  goLive(m: Member, scrollback: Buffer, takeover: boolean): void;
  /** output for every live client */
  broadcast(data: Buffer): void;
  /** `m` holds the keyboard; otherwise it is told (at most every few seconds) that its input is ignored */
  mayType(m: Member): boolean;
  takeover(m: Member): void;
  /** a status notice with `message` to every live client */
  tellAll(message: string): void;
  /** a client leaves or is dropped while the session goes on: its keyboard passes on */
  remove(m: Member, how: 'left' | 'dropped'): void;
  /** the session ends: every client is told `reason` and let go together; no keyboard passes on */
  endAll(reason: EndReason): void;
  /**
   * The BMC side is a client of a session held elsewhere (`via`, see ForeignSession), or not
   * (undefined): what that session says is forgotten either way.
   */
  setForeign(via: string | undefined): void;
  /**
   * A notice of the session held elsewhere: its state and keyboard enter every status from now
   * on (a client holds the keyboard only when it holds it here and this session's client holds
   * it there); its message goes to every client, a refusal to the keyboard holder here (whose
   * input it was).
   */
  foreign(notice: ForeignNotice): void;
  /** whether input from here reaches the BMC: no session elsewhere, or its keyboard is this one's */
  holdsForeignKeyboard(): boolean;

  who(m: Member): Record<string, string>;
}

const REFUSED_NOTICE_INTERVAL_MS = 5000;

export function createMembers(o: MembersOptions): Members {
  const { machineId, log } = o;
  const members: Member[] = [];
  let keyboard: Member | undefined;
  let via: string | undefined;
  let far: Extract<ForeignNotice, { type: 'status' }> | undefined;

  const viewers = () => members.reduce((n, m) => n + (m.holder ? 0 : 1), 0);

  function who(m: Member): Record<string, string> {
    return { client: m.port.identity.subject, remote: m.port.identity.remote, transport: m.port.identity.transport };
  }

  function statusFor(m: Member, message?: string): ConsoleNotice {
    const here = keyboard ? keyboard.port.identity.subject : null;
    const state = o.state();
    return {
      type: 'status',
      machineId,
      state: far && state === 'open' ? far.state : state,
      keyboard: keyboard === m && (!far || far.keyboard),
      owner: !far || far.keyboard ? here : far.owner,
      // the session elsewhere counts this one's client among its viewers
      clients: viewers() + (far ? Math.max(0, far.clients - 1) : 0),
      ...(message === undefined ? {} : { message }),
    };
  }

  function tellAll(message: string): void {
    for (const m of members) if (m.live) m.port.notify(statusFor(m, message));
  }

  function deliver(m: Member, data: Buffer): void {
    if (!m.queue.push(data)) drop(m);
  }

  function drop(m: Member): void {
    o.onEvent('client-dropped-slow');
    log.warn({ ...who(m), queued: m.queue.queuedBytes }, 'console client too slow, dropped');
    const reason: EndReason = { code: 'slow', message: `client too slow: more than ${o.maxClientQueueBytes} bytes of output waiting`, error: true };
    remove(m, 'dropped');
    m.port.end(reason);
  }

  /** Takes `m` out: no output, no input, what waited for it is forgotten. False when it was out already (a port may call `leave()` while it is being ended). */
  function detach(m: Member): boolean {
    if (m.gone) return false;
    m.gone = true;
    m.queue.clear();
    const i = members.indexOf(m);
    if (i >= 0) members.splice(i, 1);
    o.onEvent('client-leave');
    return true;
  }

  function remove(m: Member, how: 'left' | 'dropped'): void {
    if (!detach(m)) return;
    log.info({ ...who(m), how, clients: members.length }, 'console client left');
    if (keyboard === m) {
      keyboard = members.find((x) => x.live && !x.holder);
      if (keyboard) {
        log.info({ ...who(keyboard) }, 'console keyboard passed on');
        tellAll(`keyboard passed to ${keyboard.port.identity.subject} (${m.port.identity.subject} left)`);
      }
    }
    if (members.length === 0) o.onEmpty();
  }

  function takeover(m: Member): void {
    if (m.gone) return;
    // each takeover is a line in the log and a notice to every client, each one asked for an
    // answer: a client asking in a loop (or two trading the keyboard) is slowed to this
    if (!m.takeovers.take()) {
      m.port.notify({ type: 'error', message: 'takeover ignored: too many takeovers, try again in a second' });
      return;
    }
    if (keyboard === m) {
      m.port.notify(statusFor(m, 'you already hold the keyboard'));
      return;
    }
    const previous = keyboard;
    keyboard = m;
    o.onEvent('takeover');
    log.info({ ...who(m), previous: previous?.port.identity.subject ?? null }, 'console keyboard taken over');
    tellAll(`keyboard taken over by ${m.port.identity.subject}`);
  }

  return {
    get count() {
      return members.length;
    },
    get viewers() {
      return viewers();
    },
    get holders() {
      return members.length - viewers();
    },
    get keyboard() {
      return keyboard;
    },
    get first() {
      return members[0];
    },
    add(client, holder = false) {
      // notices bypass the output queue's bound: a client answered on every frame it sends, never
      // reading, would otherwise grow our buffers without end; so error notices are a few a second
      // error notices only (the answers to a client's own frames, which it can make without end):
      // a status (the console reconnected, the keyboard moved) always goes, takeovers being bounded
      // below, and a holder (the capture, which tracks gaps by them) gets every notice
      const notices = createTokenBucket(NOTICES_PER_SECOND, NOTICES_BURST);
      const port: ClientPort = holder ? client : { ...client, notify: (n) => void ((n.type !== 'error' || notices.take()) && client.notify(n)) };
      const m: Member = { port, live: false, queue: createClientQueue((data) => port.send(data), o.maxClientQueueBytes), refusedAt: 0, gone: false, holder, takeovers: createTokenBucket(TAKEOVERS_PER_SECOND, TAKEOVERS_BURST) };
      members.push(m);
      o.onEvent('client-join');
      return m;
    },
    goLive(m, scrollback, wantsKeyboard) {
      m.live = true;
      if (scrollback.length > 0) deliver(m, scrollback);
      log.info({ ...who(m), clients: members.length, scrollback: scrollback.length }, 'console client joined');
      if (!m.holder && (keyboard === undefined || wantsKeyboard)) {
        if (keyboard !== undefined) takeover(m);
        else keyboard = m;
      }
      m.port.notify(statusFor(m, `connected to the console of machine ${machineId}`));
    },
    broadcast(data) {
      for (const m of [...members]) if (m.live) deliver(m, data);
    },
    mayType(m) {
      if (keyboard === m) return true;
      o.onEvent('input-refused');
      const now = Date.now();
      if (now - m.refusedAt >= REFUSED_NOTICE_INTERVAL_MS) {
        m.refusedAt = now;
        const owner = keyboard ? keyboard.port.identity.subject : 'nobody';
        m.port.notify({ type: 'error', message: `input ignored: the keyboard is held by ${owner}; take it over to type` });
      }
      return false;
    },
    takeover: (m) => {
      if (!m.holder) takeover(m);
    },
    tellAll,
    remove,
    endAll(reason) {
      keyboard = undefined;
      for (const m of [...members]) {
        detach(m);
        if (m.live) m.port.end(reason);
      }
    },
    who,
    setForeign(name) {
      via = name;
      far = undefined;
    },
    foreign(notice) {
      if (via === undefined) return;
      if (notice.type === 'error') {
        if (keyboard?.live) keyboard.port.notify({ type: 'error', message: `metal-bmc ${via}: ${notice.message}` });
        return;
      }
      far = notice;
      if (notice.message !== undefined) tellAll(`metal-bmc ${via}: ${notice.message}`);
    },
    holdsForeignKeyboard: () => !far || far.keyboard,
  };
}
