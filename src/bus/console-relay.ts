/**
 * A console relayed over core NATS between metal-bmc instances (issue 13, item 4): a viewer who
 * reaches an instance that does not hold the machine is served from the one that does, so the
 * BMC keeps one SOL session. The viewer's instance ("near") asks the owner ("far") on
 * `<prefix>.open.<owner>` with a random relay id; the owner joins its own console session as a
 * client and both sides then talk on `<prefix>.relay.<id>.`:
 *
 *   out    far → near  console output, at most 16 KiB a message
 *   in     near → far  keystrokes, at most 4 KiB a message and `inputBytesPerSecond` a relay
 *   ctl.f  far → near  {"t":"ping"} every pingMs, {"t":"end","m":..} when the far side let go,
 *                      {"t":"notice","n":..} the owner session's notices to the relay's client
 *   ctl.n  near → far  ping and end from the near side, {"t":"takeover"} for the keyboard,
 *                      {"t":"break"} for a serial break (after the keystrokes sent before it on
 *                      `in`: one connection's messages reach the owner in the order sent)
 *
 * (console-relay-codec.ts). The near side hands the owner's notices to its hub's session
 * (`onNotice`, at most `noticesPerSecond` a relay) and asks the owner for the keyboard
 * (`takeover`) or sends a break (`sendBreak`), each counted against the relay's input rate on the
 * owner's side, where the owner's session decides as for its own viewers (the keyboard's holder
 * only).
 *
 * Either side ends the relay after `idleMs` without a message from the other. The owner serves at
 * most `maxRelays` at once and answers at most `opensPerSecond` open requests (more are refused).
 * Who may use the relay is who may publish on the prefix: NATS's credentials are the boundary, as
 * for machine commands. The near side is a Duplex, so its instance's hub treats it as a BMC console.
 */
import { randomBytes } from 'node:crypto';
import { Duplex } from 'node:stream';
import type { Msg, NatsConnection, Subscription } from '@nats-io/transport-node';
import { BmcError, abortError } from '../errors.js';
import type { Logger } from '../log.js';
import { decodeControl, decodeOpenRequest, encodeControl, type RelayControl, type RelayNotice } from './console-relay-codec.js';
import { createTokenBucket, type TokenBucket } from '../net/token-bucket.js';

export { decodeControl, decodeOpenRequest, encodeControl, type RelayNotice } from './console-relay-codec.js';

export const RELAY_OUT_CHUNK = 16 * 1024;
export const RELAY_IN_CHUNK = 4 * 1024;
/** what a takeover or break request costs of the relay's input rate */
const CONTROL_COST_BYTES = 256;
/** notices buffered on the near side until its session listens (the owner's first ones come before the open answer) */
const EARLY_NOTICES = 8;

export interface RelayTiming {
  /** keepalive interval, default 5 s */
  pingMs?: number;
  /** silence after which a relay ends, default 15 s */
  idleMs?: number;
}

const json = (v: unknown) => Buffer.from(JSON.stringify(v));
const control = (c: RelayControl) => encodeControl(c);

function* chunks(data: Buffer, size: number): Generator<Buffer> {
  for (let i = 0; i < data.length; i += size) yield data.subarray(i, i + size);
}

export interface OpenRelayOptions extends RelayTiming {
  nc: NatsConnection;
  prefix: string;
  /** this instance, for the owner's logs */
  from: string;
  owner: string;
  machineId: string;
  signal: AbortSignal;
  /** how long the owner may take to join its console, default 30 s */
  openTimeoutMs?: number;
  /** the owner's notices taken a second, default 20 (a burst of twice that); more are dropped */
  noticesPerSecond?: number;
  /** told each notice dropped over that rate (a metric) */
  onNoticeDropped?: () => void;
}

/**
 * The near side's stream: the owner's console as a Duplex, and what else the owner's session
 * says. The console hub's session sees it as a `ForeignSession` (console/types.ts).
 */
export interface RelayedConsole extends Duplex {
  /** the owning instance */
  readonly via: string;
  /** the owner's notices to the relay's client, those that came before first */
  onNotice(listener: (notice: RelayNotice) => void): void;
  /** asks the owner's session for the keyboard */
  takeover(): void;
  /**
   * asks the owner's session for a serial break; true when asked (whether it is sent is the
   * owner's session's decision: the keyboard's holder only, on a connected SOL console)
   */
  sendBreak(): boolean;
}

/**
 * Publishes unless the connection is closed or draining: `publish` throws while NATS drains (a
 * shutdown), and these calls come from timers and stream callbacks, where a throw ends the process.
 */
function publishQuietly(nc: NatsConnection, subject: string, data: Uint8Array): void {
  if (nc.isClosed() || nc.isDraining()) return;
  try {
    nc.publish(subject, data);
  } catch {
    // closing: the other side's idle check ends the relay
  }
}

/** The near side: the owner's console of the machine as a Duplex. */
export async function openRelay(o: OpenRelayOptions): Promise<RelayedConsole> {
  const relay = randomBytes(16).toString('hex');
  const base = `${o.prefix}.relay.${relay}`;
  const pingMs = o.pingMs ?? 5000;
  const idleMs = o.idleMs ?? 15_000;
  let heard = Date.now();
  let timer: NodeJS.Timeout | undefined = undefined;
  const subs: Subscription[] = [];
  let ended = false;
  const noticeRate = o.noticesPerSecond ?? 20;
  const notices = createTokenBucket(noticeRate, noticeRate * 2);
  let listener: ((n: RelayNotice) => void) | undefined;
  const early: RelayNotice[] = [];
  const notice = (n: RelayNotice) => {
    if (!notices.take()) return o.onNoticeDropped?.();
    if (listener) return listener(n);
    if (early.length >= EARLY_NOTICES) early.shift();
    early.push(n);
  };
  const duplex = new Duplex({
    read() {},
    write(chunk: Buffer, _enc, done) {
      if (!ended) for (const c of chunks(chunk, RELAY_IN_CHUNK)) publishQuietly(o.nc, `${base}.in`, c);
      done();
    },
    destroy(err, done) {
      if (!ended) {
        ended = true;
        clearInterval(timer);
        publishQuietly(o.nc, `${base}.ctl.n`, control({ t: 'end', m: 'viewer side closed' }));
        for (const s of subs) s.unsubscribe();
      }
      done(err);
    },
  });
  const stream: RelayedConsole = Object.assign(duplex, {
    via: o.owner,
    onNotice(l: (n: RelayNotice) => void) {
      listener = l;
      for (const n of early.splice(0)) l(n);
    },
    takeover() {
      if (!ended) publishQuietly(o.nc, `${base}.ctl.n`, control({ t: 'takeover' }));
    },
    sendBreak() {
      if (ended) return false;
      publishQuietly(o.nc, `${base}.ctl.n`, control({ t: 'break' }));
      return true;
    },
  });
  /**
   * Ends the stream with `err`; before the open is answered, only records it: nobody listens for the
   * stream's errors yet (an 'error' without a listener ends the process), and the open fails with it.
   */
  let opened = false;
  let endedEarly: BmcError | undefined;
  let stopWaiting: (err: BmcError) => void = () => undefined;
  const ended$ = new Promise<never>((_resolve, reject) => (stopWaiting = reject));
  ended$.catch(() => undefined);
  const endWith = (err: BmcError): void => {
    if (opened) return void stream.destroy(err);
    endedEarly ??= err;
    stopWaiting(err); // the open fails now, not when the owner answers
  };
  subs.push(
    o.nc.subscribe(`${base}.out`, {
      callback: (_err, m: Msg) => {
        heard = Date.now();
        stream.push(Buffer.from(m.data));
      },
    }),
    o.nc.subscribe(`${base}.ctl.f`, {
      callback: (_err, m: Msg) => {
        heard = Date.now();
        const c = decodeControl(m.data);
        if (c?.t === 'end') endWith(new BmcError('CLOSED', `the owning instance ended the console: ${c.m}`));
        else if (c?.t === 'notice' && !ended) notice(c.n);
      },
    }),
  );
  // pinging from the start: the owner ends a relay it hears nothing from, also while its console
  // opens; the owner pings only once it has, so its silence counts after the open (bounded by its timeout)
  timer = setInterval(() => {
    if (opened && Date.now() - heard > idleMs) endWith(new BmcError('TIMEOUT', `metal-bmc instance ${o.owner} went silent`));
    else publishQuietly(o.nc, `${base}.ctl.n`, control({ t: 'ping' }));
  }, pingMs);
  timer.unref();
  try {
    await o.nc.flush();
    if (o.signal.aborted) throw abortError(o.signal, 'opening the relayed console');
    const asked = o.nc.request(`${o.prefix}.open.${o.owner}`, json({ machine: o.machineId, relay, from: o.from }), { timeout: o.openTimeoutMs ?? 30_000 });
    asked.catch(() => undefined);
    const reply = await Promise.race([asked, ended$]);
    const answer = JSON.parse(reply.string()) as { ok?: boolean; error?: string };
    if (!answer.ok) throw new BmcError('BUSY', `metal-bmc instance ${o.owner} cannot serve the console: ${String(answer.error ?? 'refused').slice(0, 200)}`);
  } catch (err) {
    stream.destroy();
    if (err instanceof BmcError) throw err;
    throw new BmcError('CLOSED', `metal-bmc instance ${o.owner} did not answer for the console of machine ${o.machineId}`, { cause: err });
  }
  if (o.signal.aborted) {
    stream.destroy();
    throw abortError(o.signal, 'opening the relayed console');
  }
  if (endedEarly) {
    stream.destroy();
    throw endedEarly;
  }
  opened = true;
  heard = Date.now();
  return stream;
}

/** What the far side needs of its console session: a client that is fed output and may type. */
export interface RelayMember {
  input(data: Buffer): void;
  /** the relayed viewer takes the keyboard */
  takeover(): void;
  /** the relayed viewer sends a serial break; false when its session refused it */
  sendBreak(): boolean;
  leave(): void;
}

export interface RelayPort {
  send(data: Buffer): void;
  /** a notice of the session to the relay's client: it goes to the viewer side */
  notify(notice: RelayNotice): void;
  /** the far session let go of the relay's client */
  end(message: string): void;
}

export interface ServeRelaysOptions extends RelayTiming {
  nc: NatsConnection;
  prefix: string;
  instanceId: string;
  logger: Logger;
  /** joins the machine's console as a client; rejects when it cannot (not held here, unknown) */
  join(machineId: string, from: string, port: RelayPort): Promise<RelayMember>;
  maxRelays?: number;
  opensPerSecond?: number;
  inputBytesPerSecond?: number;
  /** told each refused or dropped input (a metric) */
  onRefused?: (reason: 'open-invalid' | 'open-limit' | 'input-limit') => void;
}

export interface RelayServer {
  /** relays being served, per machine */
  count(): number;
  /** ends the relays of machines `keep` refuses (they moved to another instance) */
  endWhere(drop: (machineId: string) => boolean, message: string): void;
  close(): void;
}

interface Served {
  machine: string;
  base: string;
  member: RelayMember | undefined;
  heard: number;
  /** the relay's input allowance in bytes: inputBytesPerSecond, a second's worth at once */
  input: TokenBucket;
  subs: Subscription[];
  ended: boolean;
}

/** The far side: serves this instance's consoles to the other instances. */
export function serveRelays(o: ServeRelaysOptions): RelayServer {
  const pingMs = o.pingMs ?? 5000;
  const idleMs = o.idleMs ?? 15_000;
  const maxRelays = o.maxRelays ?? 256;
  const opensPerSecond = o.opensPerSecond ?? 20;
  const inputRate = o.inputBytesPerSecond ?? 64 * 1024;
  const log = o.logger.child({ module: 'console-relay' });
  const served = new Set<Served>();
  let opens = { second: 0, n: 0 };

  function end(s: Served, message: string, tellNear: boolean): void {
    if (s.ended) return;
    s.ended = true;
    served.delete(s);
    for (const sub of s.subs) sub.unsubscribe();
    s.member?.leave();
    if (tellNear) publishQuietly(o.nc, `${s.base}.ctl.f`, control({ t: 'end', m: message }));
  }

  async function open(m: Msg): Promise<void> {
    const req = decodeOpenRequest(m.data);
    const refuse = (error: string, reason: 'open-invalid' | 'open-limit') => {
      o.onRefused?.(reason);
      if (m.reply) m.respond(json({ error }));
    };
    if (!req) return refuse('invalid open request', 'open-invalid');
    const second = Math.floor(Date.now() / 1000);
    if (opens.second !== second) opens = { second, n: 0 };
    if (++opens.n > opensPerSecond || served.size >= maxRelays) return refuse('too many relayed consoles', 'open-limit');
    const s: Served = { machine: req.machine, base: `${o.prefix}.relay.${req.relay}`, member: undefined, heard: Date.now(), input: createTokenBucket(inputRate, inputRate), subs: [], ended: false };
    served.add(s);
    s.subs.push(
      o.nc.subscribe(`${s.base}.in`, {
        callback: (_err, msg: Msg) => {
          s.heard = Date.now();
          if (msg.data.length > RELAY_IN_CHUNK || !s.input.take(msg.data.length)) return o.onRefused?.('input-limit');
          s.member?.input(Buffer.from(msg.data));
        },
      }),
      o.nc.subscribe(`${s.base}.ctl.n`, {
        callback: (_err, msg: Msg) => {
          s.heard = Date.now();
          const c = decodeControl(msg.data);
          if (c?.t === 'end') end(s, 'viewer side closed', false);
          else if (c?.t === 'takeover' || c?.t === 'break') {
            if (!s.input.take(CONTROL_COST_BYTES)) {
              o.onRefused?.('input-limit');
              // a refused break is told (a takeover refused shows in the status that does not change)
              if (c.t === 'break') publishQuietly(o.nc, `${s.base}.ctl.f`, control({ t: 'notice', n: { type: 'error', message: "break not sent: over this relay's input rate" } }));
              return;
            }
            if (c.t === 'takeover') s.member?.takeover();
            else if (s.member && !s.member.sendBreak()) log.debug({ machineId: s.machine }, 'relayed break not sent: refused by the console session here (the relayed viewer does not hold the keyboard, or SOL is not connected)');
          }
        },
      }),
    );
    try {
      s.member = await o.join(req.machine, req.from, {
        send: (data) => {
          if (!s.ended) for (const c of chunks(data, RELAY_OUT_CHUNK)) publishQuietly(o.nc, `${s.base}.out`, c);
        },
        notify: (n) => {
          if (!s.ended) publishQuietly(o.nc, `${s.base}.ctl.f`, control({ t: 'notice', n }));
        },
        end: (message) => end(s, message, true),
      });
      if (s.ended) s.member.leave();
      else log.info({ machineId: req.machine, from: req.from }, 'console relayed to another metal-bmc instance');
      m.respond(json({ ok: true }));
    } catch (err) {
      end(s, 'not opened', false);
      m.respond(json({ error: (err as Error).message.slice(0, 200) }));
    }
  }

  const sub = o.nc.subscribe(`${o.prefix}.open.${o.instanceId}`, { callback: (_err, m) => void open(m).catch((err: unknown) => log.warn({ err }, 'console relay open failed')) });
  const timer = setInterval(() => {
    if (o.nc.isClosed()) return;
    const now = Date.now();
    for (const s of [...served]) {
      if (now - s.heard > idleMs) end(s, 'viewer side went silent', true);
      else if (s.member) publishQuietly(o.nc, `${s.base}.ctl.f`, control({ t: 'ping' }));
    }
  }, pingMs);
  timer.unref();

  return {
    count: () => served.size,
    endWhere(drop, message) {
      for (const s of [...served]) if (drop(s.machine)) end(s, message, true);
    },
    close() {
      clearInterval(timer);
      sub.unsubscribe();
      for (const s of [...served]) end(s, 'metal-bmc instance stopping', true);
    },
  };
}
