/**
 * One machine's console session: a single BMC serial stream shared by every client of that
 * machine. Output goes to all clients (each through its own bounded queue, so a slow client is
 * dropped instead of holding up the others) and into the scrollback ring; input comes only from
 * the keyboard holder. A lost BMC stream is reopened with capped exponential backoff while
 * clients remain, taking the BMC's console over from a stale session of ours, but not from a
 * client that just took it from us (it yields to that one for `reconnect.yieldMs`); the session
 * closes with its last client, after an idle period, or on shutdown.
 * The clients themselves (keyboard, per-client queues, notices) are members.ts; this file holds
 * the BMC side and the session's life.
 */
import { publicText } from '../net/public-text.js';
import type { Duplex } from 'node:stream';
import { raceAbort } from '../deadline.js';
import { BmcError } from '../errors.js';
import type { Logger } from '../log.js';
import { createMembers, type Member } from './members.js';
import { createRing, type Ring } from './ring.js';
import type { TakeoverBudget } from './takeover-budget.js';
import { asForeignSession, breakSender, takenOverByAnother, type ClientPort, type ConsoleHandle, type ConsoleState, type EndReason, type HubEvent, type OpenBackend } from './types.js';

export interface SessionSettings {
  openBackend: OpenBackend;
  logger: Logger;
  scrollbackBytes: number;
  /** 0: never */
  idleTimeoutMs: number;
  openTimeoutMs: number;
  /** `yieldMs`: how long reconnects open without takeover after another client took the console from us (0: never) */
  reconnect: { initialMs: number; maxMs: number; maxAttempts: number; yieldMs: number };
  maxClientQueueBytes: number;
  /** the hub's takeover buckets (by machine, principal and source address) */
  takeovers: TakeoverBudget;
  closeTimeoutMs: number;
  onEvent: (event: HubEvent) => void;
  /** the scrollback a new session starts with (the capture's log); failures leave it empty */
  seedScrollback?: (machineId: string) => Promise<Buffer>;
}

type SessionPhase =
  | { kind: 'opening'; abort: AbortController }
  | { kind: 'open'; backend: Duplex }
  | { kind: 'reconnecting'; attempt: number; timer: NodeJS.Timeout | undefined; abort: AbortController | undefined }
  | { kind: 'closed' };

export interface ConsoleSession {
  readonly machineId: string;
  readonly clientCount: number;
  /** clients other than holders */
  readonly viewerCount: number;
  readonly closed: boolean;
  join(port: ClientPort, options: { takeover?: boolean; signal?: AbortSignal; hold?: boolean }): Promise<ConsoleHandle>;
  close(reason: EndReason): Promise<void>;
}

const MAX_PENDING_INPUT = 64 * 1024;

/** What a console client is told about a BMC failure: no internal URL, no query string. */
function describe(err: unknown): string {
  if (err instanceof Error) return err.name === 'TimeoutError' ? 'no answer in time' : publicText(err.message);
  return publicText(String(err));
}

/** `10 min`, `1.5 min`, `20 s` */
function minutes(ms: number): string {
  return ms >= 60_000 ? `${Math.round(ms / 6000) / 10} min` : `${Math.ceil(ms / 1000)} s`;
}

export function createSession(machineId: string, settings: SessionSettings, onClosed: () => void): ConsoleSession {
  const log = settings.logger.child({ machineId });
  const ring: Ring = createRing(settings.scrollbackBytes);
  let phase: SessionPhase = { kind: 'opening', abort: new AbortController() };
  let lastActivity = Date.now();
  let idleTimer: NodeJS.Timeout | undefined;
  let closing: Promise<void> | undefined;
  let everOpened = false;
  /**
   * Another client took the BMC console from us (an operator's `ipmitool sol activate`, another
   * tool): until then reconnects open without takeover, so while it holds SOL they fail BUSY
   * instead of taking it back (the two would take SOL from each other every few seconds), and the
   * first one after it let go opens normally. Past the window its session counts as stale and is
   * taken over. A session of its own: a console opened fresh takes over as ever.
   */
  let yieldingUntil: number | undefined;
  /** the phase as it is now, past TypeScript's narrowing across awaits */
  const current = (): SessionPhase => phase;

  function state(): ConsoleState {
    return phase.kind === 'open' ? 'open' : phase.kind === 'reconnecting' ? 'reconnecting' : 'connecting';
  }

  const members = createMembers({
    machineId,
    log,
    maxClientQueueBytes: settings.maxClientQueueBytes,
    takeovers: (identity) => settings.takeovers(machineId, identity),
    onEvent: settings.onEvent,
    state,
    onEmpty: () => {
      if (phase.kind !== 'closed') void close({ code: 'last-client', message: 'the last client left', error: false });
    },
  });
  const tellAll = (message: string): void => members.tellAll(message);

  // ---- backend lifecycle ----

  async function openBackend(abort: AbortController, takeOver = true): Promise<Duplex> {
    // A timer of our own rather than AbortSignal.timeout(): a timeout signal referenced only
    // through AbortSignal.any() can be garbage-collected before it fires.
    const timer = setTimeout(() => abort.abort(new BmcError('TIMEOUT', `opening the console took longer than ${settings.openTimeoutMs} ms`)), settings.openTimeoutMs);
    try {
      return await raceAbort(settings.openBackend(machineId, { signal: abort.signal, takeOver }), abort.signal, {
        reason: (signal) => (signal.reason instanceof Error ? signal.reason : new BmcError('ABORTED', 'aborted')),
        late: (stream) => stream.destroy(),
      });
    } finally {
      clearTimeout(timer);
    }
  }

  /** the capture log's tail into the ring, before any output of this session */
  async function seed(): Promise<void> {
    if (!settings.seedScrollback) return;
    try {
      const bytes = await settings.seedScrollback(machineId);
      if (bytes.length > 0) ring.push(bytes);
    } catch (err) {
      log.warn({ err }, 'console scrollback not read from the capture log');
    }
  }

  async function openFirst(): Promise<void> {
    if (phase.kind !== 'opening') return;
    try {
      const [backend] = await Promise.all([openBackend(phase.abort), seed()]);
      if (current().kind === 'closed') {
        backend.destroy();
        throw new BmcError('CLOSED', `console of machine ${machineId} was closed while opening`);
      }
      everOpened = true;
      attach(backend);
      settings.onEvent('session-open');
      log.info({ ...(members.first ? members.who(members.first) : {}), clients: members.count }, 'console session opened');
    } catch (err) {
      if (current().kind !== 'closed') {
        settings.onEvent('open-failed');
        log.warn({ err }, 'console session could not be opened');
        finish();
      }
      throw err;
    }
  }

  function attach(backend: Duplex): void {
    phase = { kind: 'open', backend };
    armIdle();
    // a console relayed from the instance that holds it: its session's notices reach our clients
    const foreign = asForeignSession(backend);
    members.setForeign(foreign?.via);
    foreign?.onNotice((n) => {
      if (phase.kind === 'open' && phase.backend === backend) members.foreign(n);
    });
    backend.on('data', (data: Buffer) => output(data));
    backend.on('error', (err: Error) => lost(backend, err));
    backend.on('end', () => lost(backend, new BmcError('CLOSED', 'the BMC ended the console')));
    backend.on('close', () => lost(backend, new BmcError('CLOSED', 'the BMC console closed')));
  }

  function lost(backend: Duplex, err: unknown): void {
    if (phase.kind !== 'open' || phase.backend !== backend) return;
    backend.destroy();
    members.setForeign(undefined);
    settings.onEvent('bmc-disconnect');
    const yieldMs = settings.reconnect.yieldMs;
    if (yieldMs > 0 && takenOverByAnother(backend)) {
      yieldingUntil = Date.now() + yieldMs;
      log.warn({ err, yieldMs }, 'BMC console taken by another session; reconnecting without taking it back while that session holds it');
      scheduleReconnect(1, `another session took the serial console (${describe(err)}); not taking it back for ${minutes(yieldMs)}`);
      return;
    }
    log.warn({ err }, 'BMC console lost');
    scheduleReconnect(1, `BMC connection lost (${describe(err)})`);
  }

  /** whether the next open takes the console over: not while yielding to the client that took it (told once when that ends) */
  function mayTakeOver(): boolean {
    if (yieldingUntil === undefined) return true;
    if (Date.now() < yieldingUntil) return false;
    yieldingUntil = undefined;
    log.info({ yieldMs: settings.reconnect.yieldMs }, 'BMC console still held by another session after the yield window; taking it over as a stale session');
    return true;
  }

  function scheduleReconnect(attempt: number, why: string): void {
    const { initialMs, maxMs, maxAttempts } = settings.reconnect;
    if (attempt > maxAttempts) {
      void close({ code: 'bmc-gone', message: `${why}; gave up after ${maxAttempts} attempts`, error: true });
      return;
    }
    const delayMs = Math.min(maxMs, initialMs * 2 ** (attempt - 1));
    const timer = setTimeout(() => void reconnect(attempt), delayMs);
    phase = { kind: 'reconnecting', attempt, timer, abort: undefined };
    tellAll(`${why}; reconnecting in ${(delayMs / 1000).toFixed(1)} s (attempt ${attempt})`);
  }

  async function reconnect(attempt: number): Promise<void> {
    if (phase.kind !== 'reconnecting') return;
    const abort = new AbortController();
    phase = { kind: 'reconnecting', attempt, timer: undefined, abort };
    const takeOver = mayTakeOver();
    try {
      const backend = await openBackend(abort, takeOver);
      if (phase.kind !== 'reconnecting' || phase.abort !== abort) {
        backend.destroy();
        return;
      }
      // opened without takeover: the other client let go, the yield is over
      yieldingUntil = undefined;
      attach(backend);
      settings.onEvent('reconnect');
      log.info({ attempt, takeOver }, 'BMC console reconnected');
      tellAll('BMC connection re-established');
    } catch (err) {
      if (phase.kind !== 'reconnecting' || phase.abort !== abort) return;
      settings.onEvent('reconnect-failed');
      if (!takeOver && err instanceof BmcError && err.code === 'BUSY' && yieldingUntil !== undefined) {
        // the client that took the console still holds it: said once when it took it (lost())
        log.debug({ attempt, err }, 'BMC console still held by another session; not taking it over');
        scheduleReconnect(attempt + 1, `another session holds the serial console (${describe(err)}); not taking it over for ${minutes(Math.max(0, yieldingUntil - Date.now()))} more`);
        return;
      }
      log.warn({ attempt, err }, 'BMC console reconnect failed');
      scheduleReconnect(attempt + 1, `reconnect failed (${describe(err)})`);
    }
  }

  async function closeBackend(backend: Duplex): Promise<void> {
    if (backend.destroyed) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        backend.destroy();
        resolve();
      }, settings.closeTimeoutMs);
      timer.unref();
      const done = () => {
        clearTimeout(timer);
        resolve();
      };
      backend.once('close', done);
      backend.once('finish', done);
      backend.once('error', done);
      backend.end();
    });
    backend.destroy();
  }

  // ---- output and input ----

  function output(data: Buffer): void {
    lastActivity = Date.now();
    ring.push(data);
    members.broadcast(data);
  }

  function input(m: Member, data: Buffer): void {
    if (m.gone || data.length === 0 || !members.mayType(m)) return;
    lastActivity = Date.now();
    if (phase.kind !== 'open') {
      m.port.notify({ type: 'error', message: 'input ignored: the BMC console is not connected' });
      return;
    }
    if (phase.backend.writableLength > MAX_PENDING_INPUT) {
      m.port.notify({ type: 'error', message: 'input ignored: the BMC does not take input fast enough' });
      return;
    }
    phase.backend.write(data);
  }

  function sendBreak(m: Member): boolean {
    if (m.gone || !members.mayType(m)) return false;
    lastActivity = Date.now();
    if (phase.kind !== 'open') {
      m.port.notify({ type: 'error', message: 'break ignored: the BMC console is not connected' });
      return false;
    }
    const sender = breakSender(phase.backend);
    if (!sender) {
      m.port.notify({ type: 'error', message: 'break ignored: this console cannot send a break (not SOL)' });
      return false;
    }
    // relayed: the owning instance sends it only for the client holding its keyboard
    if (asForeignSession(phase.backend) && !members.holdsForeignKeyboard()) {
      m.port.notify({ type: 'error', message: 'break ignored: another client holds the keyboard at the instance that holds this console; take it over to send a break' });
      return false;
    }
    return sender.sendBreak();
  }

  /** the keyboard here, and where the console is held elsewhere, there too */
  function takeover(m: Member): void {
    const foreign = phase.kind === 'open' ? asForeignSession(phase.backend) : undefined;
    if (!foreign || m.gone || m.holder) return members.takeover(m);
    // holding it here while another client holds it there: only the session there changes hands
    if (members.keyboard !== m || members.holdsForeignKeyboard()) members.takeover(m);
    if (members.keyboard === m && !members.holdsForeignKeyboard()) foreign.takeover();
  }

  // ---- membership ----

  async function join(port: ClientPort, options: { takeover?: boolean; signal?: AbortSignal; hold?: boolean }): Promise<ConsoleHandle> {
    if (phase.kind === 'closed') throw new BmcError('CLOSED', `console of machine ${machineId} is closed`);
    const m = members.add(port, options.hold === true);
    const onAbort = () => members.remove(m, 'left');
    options.signal?.addEventListener('abort', onAbort, { once: true });
    try {
      await firstOpen;
    } catch (err) {
      m.gone = true;
      throw err;
    } finally {
      options.signal?.removeEventListener('abort', onAbort);
    }
    if (m.gone) throw new BmcError(current().kind === 'closed' ? 'CLOSED' : 'ABORTED', `console of machine ${machineId}: the client left while connecting`);
    // Scrollback first, then live output: nothing runs between the snapshot and going live.
    // a holder (the capture) has what went before already; it takes output from now on
    members.goLive(m, m.holder ? Buffer.alloc(0) : ring.snapshot(), options.takeover === true);
    return {
      machineId,
      get hasKeyboard() {
        return members.keyboard === m;
      },
      input: (data) => input(m, data),
      sendBreak: () => sendBreak(m),
      takeover: () => takeover(m),
      resize: (cols, rows) => {
        if (!m.gone) log.debug({ ...members.who(m), cols, rows }, 'console client resized its terminal');
      },
      drained: () => {
        if (!m.gone) m.queue.drain();
      },
      leave: () => members.remove(m, 'left'),
    };
  }

  // ---- idle and close ----

  function armIdle(): void {
    if (settings.idleTimeoutMs <= 0 || idleTimer) return;
    const check = () => {
      idleTimer = undefined;
      if (phase.kind === 'closed') return;
      const idleFor = members.holders > 0 ? 0 : Date.now() - lastActivity;
      if (idleFor >= settings.idleTimeoutMs) {
        settings.onEvent('idle-timeout');
        void close({ code: 'idle', message: `no input and no output for ${Math.round(settings.idleTimeoutMs / 1000)} s`, error: false });
        return;
      }
      idleTimer = setTimeout(check, settings.idleTimeoutMs - idleFor);
      idleTimer.unref();
    };
    idleTimer = setTimeout(check, settings.idleTimeoutMs);
    idleTimer.unref();
  }

  function finish(): void {
    phase = { kind: 'closed' };
    if (idleTimer) clearTimeout(idleTimer);
    onClosed();
  }

  function close(reason: EndReason): Promise<void> {
    closing ??= (async () => {
      const previous = phase;
      finish();
      if (previous.kind === 'opening') previous.abort.abort(new BmcError('CLOSED', reason.message));
      if (previous.kind === 'reconnecting') {
        if (previous.timer) clearTimeout(previous.timer);
        previous.abort?.abort(new BmcError('CLOSED', reason.message));
      }
      // every client is ended together; a port that calls leave() while it is ended finds itself out already
      members.endAll(reason);
      if (everOpened) {
        settings.onEvent('session-close');
        log.info({ reason: reason.code, message: reason.message }, 'console session closed');
      }
      if (previous.kind === 'open') await closeBackend(previous.backend);
    })();
    return closing;
  }

  const firstOpen = openFirst();
  firstOpen.catch(() => undefined);
  return {
    machineId,
    get clientCount() {
      return members.count;
    },
    get viewerCount() {
      return members.viewers;
    },
    get closed() {
      return phase.kind === 'closed';
    },
    join,
    close,
  };
}
