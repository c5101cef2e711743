/**
 * The clients of one console session: who is in, who holds the keyboard, and each client's
 * bounded output queue (client-queue.ts). Output and notices reach every live client through
 * that queue; a client that falls more than `maxClientQueueBytes` behind (queued here and held
 * unsent by its transport together) is dropped; the keyboard passes to the next live client when
 * its holder leaves. The BMC side (opening, reconnecting, closing the serial
 * stream) stays in session.ts, which tells the members what to show through `state()`.
 */
import type { Logger } from '../log.js';
import { createTokenBucket, type TokenBucket } from '../net/token-bucket.js';
import { createClientQueue, type ClientQueue } from './client-queue.js';
import type { ClientIdentity, ClientPort, ConsoleNotice, ConsoleState, EndReason, ForeignNotice, HubEvent } from './types.js';

/** A notice waiting in a client's queue; `length`: its size as output, for the queue's bound */
interface QueuedNotice {
  readonly notice: ConsoleNotice;
  readonly length: number;
}
/** what a client's queue holds: output, or a notice in its turn */
type Outgoing = Buffer | QueuedNotice;

export interface Member {
  readonly port: ClientPort;
  /** false until the scrollback was replayed to it */
  live: boolean;
  /** its output and notices, bounded while the client does not keep up */
  readonly queue: ClientQueue<Outgoing>;
  /** when it was last told that its input is ignored */
  refusedAt: number;
  /** out of the session; every later call about it is a no-op */
  gone: boolean;
  /** a holder (the console capture): never gets the keyboard, not counted as a viewer */
  readonly holder: boolean;
  /** the takeovers it may ask for (shared with its principal's other joins from the same address) */
  readonly takeovers: TokenBucket;
}

/** error notices one client gets a second (a burst of twice that); more are dropped */
const NOTICES_PER_SECOND = 10;
const NOTICES_BURST = 20;

export interface MembersOptions {
  machineId: string;
  log: Logger;
  maxClientQueueBytes: number;
  /** the takeover budget of a client (takeover-budget.ts: the hub's, by principal and source address) */
  takeovers: (identity: ClientIdentity) => TokenBucket;
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

/** a notice's size as output: about what a transport sends for it (SSH a line of its message, WebSocket its JSON) */
function noticeBytes(n: ConsoleNotice): number {
  return Buffer.byteLength(JSON.stringify(n));
}

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
    // a copy: a client the notice finds too slow is dropped meanwhile
    for (const m of [...members]) if (m.live) m.port.notify(statusFor(m, message));
  }

  function deliver(m: Member, item: Outgoing): void {
    if (!m.gone && !m.queue.push(item)) drop(m);
  }

  /** the scrollback on joining: larger than the bound is allowed (a large scrollback is the operator's setting), see client-queue.ts */
  function replay(m: Member, scrollback: Buffer): void {
    if (!m.gone && !m.queue.replay(scrollback)) drop(m);
  }

  function drop(m: Member): void {
    o.onEvent('client-dropped-slow');
    log.warn({ ...who(m), queued: m.queue.queuedBytes, unsent: m.port.unsentBytes?.() ?? 0 }, 'console client too slow, dropped');
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
      // Notices go through the client's queue as output does and count against its bound: a
      // client that reads nothing while keyboard notices reach it is dropped as a slow reader is.
      // Error notices (the answers to a client's own frames, which it can make without end) are a
      // few a second besides; a status (the console reconnected, the keyboard moved) always goes,
      // takeovers being bounded by the takeover budget, and a holder (the capture, which tracks
      // gaps by them) gets every notice.
      const notices = createTokenBucket(NOTICES_PER_SECOND, NOTICES_BURST);
      const unsent = () => client.unsentBytes?.() ?? 0;
      const send = (item: Outgoing) => (Buffer.isBuffer(item) ? client.send(item) : (client.notify(item.notice), true));
      const notify = (n: ConsoleNotice) => {
        if (holder || n.type !== 'error' || notices.take()) deliver(m, { notice: n, length: noticeBytes(n) });
      };
      const m: Member = {
        port: { ...client, notify },
        live: false,
        queue: createClientQueue<Outgoing>(send, o.maxClientQueueBytes, unsent),
        refusedAt: 0,
        gone: false,
        holder,
        takeovers: o.takeovers(client.identity),
      };
      members.push(m);
      o.onEvent('client-join');
      return m;
    },
    goLive(m, scrollback, wantsKeyboard) {
      m.live = true;
      if (scrollback.length > 0) replay(m, scrollback);
      if (m.gone) return;
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
