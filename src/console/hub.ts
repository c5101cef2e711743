/**
 * The console hub: at most one BMC console session per machine id, shared by all clients of
 * that machine (see session.ts for what a session does). Options are checked once here.
 * `close()` tells every client and closes every BMC session; `join()` fails afterwards.
 */
import { BmcError } from '../errors.js';
import type { Logger } from '../log.js';
import { createSession, type ConsoleSession, type SessionSettings } from './session.js';
import { createTakeoverBudget } from './takeover-budget.js';
import type { ClientPort, ConsoleHandle, HubEvent, OpenBackend } from './types.js';

export interface HubOptions {
  openBackend: OpenBackend;
  logger: Logger;
  /** scrollback replayed to new clients, default 65536 bytes; 0 disables it */
  scrollbackBytes?: number;
  /** close a session after this long without input or output; default 30 min, 0: never */
  idleTimeoutMs?: number;
  /** deadline for opening the BMC console (metal-api lookup included), default 30 s */
  openTimeoutMs?: number;
  /**
   * reopening a lost BMC console: first delay, cap, attempts; default 1 s, 30 s, 30. `yieldMs`
   * (default 10 min, 0: never): after another client took the console from us, reconnects open
   * without takeover for this long (they fail BUSY while it holds SOL), then take it over as stale
   */
  reconnect?: { initialMs?: number; maxMs?: number; maxAttempts?: number; yieldMs?: number };
  /** output and notices waiting for one client (queued, and unsent in its transport) before it is dropped as too slow, default 1 MiB */
  maxClientQueueBytes?: number;
  /** clients per machine, default 1000 */
  maxClientsPerSession?: number;
  /** BMC console sessions at once (machines with a console open), default 1000 */
  maxSessions?: number;
  /** how long a graceful BMC close may take before the stream is destroyed, default 5 s */
  closeTimeoutMs?: number;
  onEvent?: (event: HubEvent) => void;
  /** the scrollback a new session starts with (the console capture's log, which outlives restarts) */
  seedScrollback?: (machineId: string) => Promise<Buffer>;
}

export interface JoinOptions {
  /** take the keyboard on joining */
  takeover?: boolean;
  /** fires when the client goes away while the BMC console is still being opened */
  signal?: AbortSignal;
  /**
   * a holder (the console capture): keeps the session open without viewers and past the idle
   * timeout, never gets the keyboard, no scrollback, not counted as a viewer
   */
  hold?: boolean;
}

export interface ConsoleHub {
  /** Joins the machine's console, opening it if needed; rejects when it cannot be opened. */
  join(machineId: string, port: ClientPort, options?: JoinOptions): Promise<ConsoleHandle>;
  /** close() was called: joins are refused from now on */
  readonly closed: boolean;
  /** BMC sessions that exist (opening, open or reconnecting) */
  sessionCount(): number;
  clientCount(): number;
  /** viewers (clients other than holders) per machine id with a console session (the daemon's status) */
  viewerCounts(): Map<string, number>;
  close(message?: string): Promise<void>;
}

function intOption(name: string, value: number | undefined, fallback: number, min: number): number {
  const v = value ?? fallback;
  if (!Number.isInteger(v) || v < min) throw new BmcError('INVALID_ARGUMENT', `createConsoleHub: option ${name} must be an integer >= ${min}, got ${String(v)}`);
  return v;
}

export function createConsoleHub(options: HubOptions): ConsoleHub {
  if (typeof options?.openBackend !== 'function') throw new BmcError('INVALID_ARGUMENT', 'createConsoleHub: option openBackend must be a function');
  const maxClients = intOption('maxClientsPerSession', options.maxClientsPerSession, 1000, 1);
  const maxSessions = intOption('maxSessions', options.maxSessions, 1000, 1);
  const settings: SessionSettings = {
    openBackend: options.openBackend,
    logger: options.logger.child({ module: 'console' }),
    scrollbackBytes: intOption('scrollbackBytes', options.scrollbackBytes, 65_536, 0),
    idleTimeoutMs: intOption('idleTimeoutMs', options.idleTimeoutMs, 30 * 60_000, 0),
    openTimeoutMs: intOption('openTimeoutMs', options.openTimeoutMs, 30_000, 1),
    reconnect: {
      initialMs: intOption('reconnect.initialMs', options.reconnect?.initialMs, 1000, 1),
      maxMs: intOption('reconnect.maxMs', options.reconnect?.maxMs, 30_000, 1),
      maxAttempts: intOption('reconnect.maxAttempts', options.reconnect?.maxAttempts, 30, 0),
      yieldMs: intOption('reconnect.yieldMs', options.reconnect?.yieldMs, 10 * 60_000, 0),
    },
    maxClientQueueBytes: intOption('maxClientQueueBytes', options.maxClientQueueBytes, 1 << 20, 1),
    // the hub's, not a session's: a session closing with its last client and opened again by the
    // next join would otherwise refill every bucket
    takeovers: createTakeoverBudget(),
    closeTimeoutMs: intOption('closeTimeoutMs', options.closeTimeoutMs, 5000, 1),
    onEvent: options.onEvent ?? (() => undefined),
    ...(options.seedScrollback ? { seedScrollback: options.seedScrollback } : {}),
  };
  const sessions = new Map<string, ConsoleSession>();
  let closed = false;

  function sessionFor(machineId: string): ConsoleSession {
    const existing = sessions.get(machineId);
    if (existing && !existing.closed) return existing;
    const session = createSession(machineId, settings, () => {
      if (sessions.get(machineId) === session) sessions.delete(machineId);
    });
    sessions.set(machineId, session);
    return session;
  }

  return {
    async join(machineId, port, joinOptions = {}) {
      if (closed) throw new BmcError('CLOSED', 'the console service is shutting down');
      if (typeof machineId !== 'string' || machineId === '') throw new BmcError('INVALID_ARGUMENT', 'machine id must be a non-empty string');
      const existing = sessions.get(machineId);
      if ((!existing || existing.closed) && sessions.size >= maxSessions) {
        throw new BmcError('BUSY', `the console service has the maximum of ${maxSessions} console sessions open`);
      }
      const session = sessionFor(machineId);
      if (session.clientCount >= maxClients) throw new BmcError('BUSY', `console of machine ${machineId} has the maximum of ${maxClients} clients`);
      return session.join(port, joinOptions);
    },
    get closed() {
      return closed;
    },
    sessionCount: () => sessions.size,
    clientCount: () => [...sessions.values()].reduce((n, s) => n + s.viewerCount, 0),
    viewerCounts: () => new Map([...sessions].map(([id, s]) => [id, s.viewerCount])),
    async close(message = 'metal-bmc is shutting down') {
      closed = true;
      await Promise.all([...sessions.values()].map((s) => s.close({ code: 'shutdown', message, error: false })));
    },
  };
}
