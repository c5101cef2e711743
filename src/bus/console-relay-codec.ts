/**
 * What the two sides of a relayed console (console-relay.ts) say besides the console's bytes:
 * the open request, and control messages on `ctl.f` (owner → viewer side) and `ctl.n` (viewer
 * side → owner). Every decoder is bounded, validates and never throws; text from the other side is
 * cut and loses its control characters (it ends up on a viewer's terminal).
 *
 *   ping      both ways, every pingMs
 *   end       both ways: the side let go, with why
 *   notice    owner → viewer side: a notice of the owner's console session to the relay's client
 *             (keyboard holder, reconnecting, refused input), as its viewers get it
 *   takeover  viewer side → owner: the relayed viewer takes the keyboard of the owner's session
 *   break     viewer side → owner: the relayed viewer, holding the keyboard, sends a serial break
 *             (after the keystrokes it sent before)
 */
import { TERMINAL_CONTROLS } from '../terminal-text.js';

export const MAX_OPEN_BYTES = 1024;
export const MAX_CONTROL_BYTES = 4096;
export const NOTICE_MESSAGE_CHARS = 256;
export const NOTICE_OWNER_CHARS = 128;
const MAX_CLIENTS = 1_000_000;
const MACHINE_RE = /^[A-Za-z0-9_:.-]{1,128}$/;
const RELAY_RE = /^[0-9a-f]{32}$/;
const INSTANCE_RE = /^[A-Za-z0-9_-]{1,64}$/;
const STATES: ReadonlySet<string> = new Set(['connecting', 'open', 'reconnecting']);

export interface OpenRequest {
  machine: string;
  relay: string;
  from: string;
}

/** A notice of the owner's console session, as its client the relay got it (the machine is the relay's). */
export type RelayNotice =
  | { type: 'status'; state: 'connecting' | 'open' | 'reconnecting'; keyboard: boolean; owner: string | null; clients: number; message?: string }
  | { type: 'error'; message: string };

export type RelayControl = { t: 'ping' } | { t: 'end'; m: string } | { t: 'notice'; n: RelayNotice } | { t: 'takeover' } | { t: 'break' };

function parse(data: Uint8Array, max: number): Record<string, unknown> | undefined {
  if (data.length > max) return undefined;
  try {
    const v: unknown = JSON.parse(Buffer.from(data).toString('utf8'));
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** text of the other side for a viewer's terminal: each run of characters that act there (terminal-text.ts) one space, at most `chars` */
function text(v: string, chars: number): string {
  return v.slice(0, chars).replace(TERMINAL_CONTROLS, ' ');
}

/** The open request, or undefined for anything else. */
export function decodeOpenRequest(data: Uint8Array): OpenRequest | undefined {
  const v = parse(data, MAX_OPEN_BYTES);
  if (!v) return undefined;
  const { machine, relay, from } = v;
  if (typeof machine !== 'string' || !MACHINE_RE.test(machine) || machine.includes('..')) return undefined;
  if (typeof relay !== 'string' || !RELAY_RE.test(relay)) return undefined;
  if (typeof from !== 'string' || !INSTANCE_RE.test(from)) return undefined;
  return { machine, relay, from };
}

/** A notice cut to its bounds, or undefined when it is not one. */
export function boundNotice(v: unknown): RelayNotice | undefined {
  if (typeof v !== 'object' || v === null) return undefined;
  const n = v as Record<string, unknown>;
  if (n.type === 'error') return typeof n.message === 'string' ? { type: 'error', message: text(n.message, NOTICE_MESSAGE_CHARS) } : undefined;
  if (n.type !== 'status') return undefined;
  const { state, keyboard, owner, clients, message } = n;
  if (typeof state !== 'string' || !STATES.has(state) || typeof keyboard !== 'boolean') return undefined;
  if (owner !== null && typeof owner !== 'string') return undefined;
  if (!Number.isSafeInteger(clients) || (clients as number) < 0 || (clients as number) > MAX_CLIENTS) return undefined;
  if (message !== undefined && typeof message !== 'string') return undefined;
  return {
    type: 'status',
    state: state as 'connecting' | 'open' | 'reconnecting',
    keyboard,
    owner: owner === null ? null : text(owner, NOTICE_OWNER_CHARS),
    clients: clients as number,
    ...(message === undefined ? {} : { message: text(message, NOTICE_MESSAGE_CHARS) }),
  };
}

/** A control message, or undefined for anything else. */
export function decodeControl(data: Uint8Array): RelayControl | undefined {
  const v = parse(data, MAX_CONTROL_BYTES);
  switch (v?.t) {
    case 'ping':
      return { t: 'ping' };
    case 'takeover':
      return { t: 'takeover' };
    case 'break':
      return { t: 'break' };
    case 'end':
      return { t: 'end', m: typeof v.m === 'string' ? text(v.m, 200) : '' };
    case 'notice': {
      const n = boundNotice(v.n);
      return n ? { t: 'notice', n } : undefined;
    }
    default:
      return undefined;
  }
}

/** The control message as sent; a notice is cut to its bounds first, so it always decodes. */
export function encodeControl(c: RelayControl): Buffer {
  if (c.t !== 'notice') return Buffer.from(JSON.stringify(c));
  return Buffer.from(JSON.stringify({ t: 'notice', n: boundNotice(c.n) }));
}
