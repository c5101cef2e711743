/**
 * What the console transports (SSH over mutual TLS, WebSocket) and the hub say to each other.
 * A transport gives the hub a `ClientPort` per client and gets a `ConsoleHandle` back.
 */
import type { Duplex } from 'node:stream';

/** Who a client is, for logs and for the keyboard owner shown to the others. */
export interface ClientIdentity {
  /** the client certificate's subject (`CN=metal-console,O=metal-stack`), or `bearer-token` */
  subject: string;
  /** `address:port` of the peer */
  remote: string;
  /** `capture`: the console capture (capture.ts), which holds the session and never types; `relay`: a viewer of another metal-bmc instance, over NATS */
  transport: 'ssh' | 'ws' | 'capture' | 'relay';
}

export type ConsoleState = 'connecting' | 'open' | 'reconnecting';

/**
 * Sent by the hub to a client: a status whenever the keyboard owner or the BMC connection
 * changes (`message` says what happened), an error when something the client did was refused.
 */
export type ConsoleNotice =
  | { type: 'status'; machineId: string; state: ConsoleState; keyboard: boolean; owner: string | null; clients: number; message?: string }
  | { type: 'error'; message: string };

/** A notice of a console session held elsewhere, as its client there got it (machine id aside). */
export type ForeignNotice =
  | { type: 'status'; state: ConsoleState; keyboard: boolean; owner: string | null; clients: number; message?: string }
  | { type: 'error'; message: string };

/**
 * What a backend stream may be besides a byte stream: a client of a console session held
 * elsewhere (another metal-bmc instance's, relayed over NATS: bus/console-relay.ts). The session
 * passes that session's notices to its own clients and asks it for the keyboard for them.
 */
export interface ForeignSession {
  /** who holds the session (the owning instance), for the clients' notices */
  readonly via: string;
  /** the notices the session there gives this client, those that came before first */
  onNotice(listener: (notice: ForeignNotice) => void): void;
  /** takes the keyboard there */
  takeover(): void;
}

/** A backend that can send a serial break in order with what was written to it (SOL, a SOL console in a worker thread). */
export interface BreakSender {
  sendBreak(): boolean;
}

export function breakSender(stream: Duplex): (Duplex & BreakSender) | undefined {
  const b = stream as Duplex & Partial<BreakSender>;
  return typeof b.sendBreak === 'function' ? (b as Duplex & BreakSender) : undefined;
}

/**
 * A backend that can say its end came from another client taking the BMC console from us (SOL:
 * another session named the payload's owner, or the BMC's "deactivating" status); read once the
 * stream ended. The session then reconnects without takeover for a while (session.ts).
 */
export interface TakeoverTelling {
  readonly takenOver: boolean;
}

export function takenOverByAnother(stream: Duplex): boolean {
  return (stream as Duplex & Partial<TakeoverTelling>).takenOver === true;
}

export function asForeignSession(stream: Duplex): (Duplex & ForeignSession) | undefined {
  const f = stream as Duplex & Partial<ForeignSession>;
  return typeof f.onNotice === 'function' && typeof f.takeover === 'function' && typeof f.via === 'string' ? (f as Duplex & ForeignSession) : undefined;
}

/** Why the hub let go of a client. `error` is false for an orderly end (the session closed normally). */
export interface EndReason {
  code: 'last-client' | 'idle' | 'slow' | 'bmc-gone' | 'shutdown' | 'too-many';
  message: string;
  error: boolean;
}

/** The transport side of one client, as the hub sees it. None of these may throw. */
export interface ClientPort {
  readonly identity: ClientIdentity;
  /** Terminal output for the client. false: the transport's buffer is full; the hub queues until `drained()`. */
  send(data: Buffer): boolean;
  notify(notice: ConsoleNotice): void;
  /**
   * Bytes given to the transport (output and notices) that it has not sent to the peer yet: an
   * SSH channel whose window the client does not open again, a socket the peer does not read.
   * They count with the client's queue against `maxClientQueueBytes`; without it only the queue counts.
   */
  unsentBytes?(): number;
  /** The hub is done with this client: tell it `reason` and close the transport. */
  end(reason: EndReason): void;
}

/** The client's side of its membership in a console session. Every method is a no-op after the end. */
export interface ConsoleHandle {
  readonly machineId: string;
  readonly hasKeyboard: boolean;
  /** keystrokes; reach the BMC only from the keyboard holder */
  input(data: Buffer): void;
  /**
   * a serial break (SSH "break", RFC 4335) after the keystrokes sent before it; only from the
   * keyboard holder. false: not sent (not the holder, not connected, or a backend without breaks)
   */
  sendBreak(): boolean;
  /** take the keyboard; the others are told */
  takeover(): void;
  /** the terminal size changed (SOL has no window size; kept for logs and future backends) */
  resize(cols: number, rows: number): void;
  /** the transport can take output again after `send()` returned false */
  drained(): void;
  /** the client left; the BMC session closes with the last client */
  leave(): void;
}

/**
 * Opens the serial console of a machine (metal-api lookup, then outband.openConsole({takeOver})).
 * `takeOver` (default true): end a console session that holds the BMC's console (SOL payload
 * active in another session) and open ours; false: such a session makes the open fail BUSY. The
 * hub asks for it except while it yields to another client that took the console from it (session.ts).
 */
export type OpenBackend = (machineId: string, options: { signal: AbortSignal; takeOver?: boolean }) => Promise<Duplex>;

/** Things the hub counts (metal_bmc_console_events_total{event}). */
export type HubEvent =
  | 'session-open'
  | 'session-close'
  | 'open-failed'
  | 'client-join'
  | 'client-leave'
  | 'takeover'
  | 'bmc-disconnect'
  | 'reconnect'
  | 'reconnect-failed'
  | 'client-dropped-slow'
  | 'idle-timeout'
  | 'input-refused';
