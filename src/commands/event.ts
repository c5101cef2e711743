/**
 * metal-api's machine events (docs/architecture.md, machine commands): a pure, total decoder
 * and the event → BMC actions table. Any input gives a MachineEvent or an EventDecodeError
 * whose `reason` names what is wrong; nothing here touches the network.
 */
import { DecodeError } from '../errors.js';
import type { FirmwareKind } from '../outband/types.js';
import { FIRMWARE_KINDS, isEventCommand, type BmcAction, type EventCommand } from './actions.js';

export const EVENT_TYPES = ['create', 'update', 'delete', 'command'] as const;
export type EventType = (typeof EVENT_TYPES)[number];

/** The BMC data metal-api sends with an event (v1.MachineIPMI). Fields are omitted when empty. */
export interface EventIpmi {
  /** `host:port` as sent; `host` and `port` are parsed from it (port 623 when absent) */
  address: string;
  host: string;
  port: number;
  user?: string;
  password?: string;
  interface?: string;
  mac?: string;
  fru?: Record<string, unknown>;
  bmcversion?: string;
  powerstate?: string;
  last_updated?: string;
}

/** The BMC of a plan as one key, `host:port` ("10.0.0.1" and "10.0.0.1:623" are one BMC); empty when the event named none. */
export const bmcKeyOf = (plan: { ipmi?: EventIpmi | undefined }): string => (plan.ipmi ? `${plan.ipmi.host}:${plan.ipmi.port}` : '');

export interface EventFirmwareUpdate {
  kind: FirmwareKind;
  url: string;
}

export interface EventCmd {
  target?: string;
  /** absent on create and delete events */
  cmd?: EventCommand;
  ipmi?: EventIpmi;
  firmwareupdate?: EventFirmwareUpdate;
}

export interface MachineEvent {
  type: EventType;
  old?: string;
  new?: string;
  cmd?: EventCmd;
}

/** Why an event was refused; also the `reason` label of metal_bmc_events_rejected_total. */
export type EventRejectReason =
  | 'not-json' // not UTF-8 or not JSON
  | 'not-object' // JSON, but not an object
  | 'unknown-type' // `type` missing or not one of EVENT_TYPES
  | 'invalid-field' // a field has the wrong JSON type
  | 'missing-ipmi' // an event that acts on a BMC without `cmd.ipmi`
  | 'missing-address' // `cmd.ipmi.address` missing or empty
  | 'invalid-address' // `cmd.ipmi.address` is not host[:port]
  | 'unknown-command' // `command` event whose `cmd.cmd` is missing or unknown
  | 'invalid-firmware' // UPDATE-FIRMWARE without kind bios|bmc or without an http(s) url
  | 'too-large'; // more than MAX_EVENT_BYTES, or a field longer than its bound

export const EVENT_REJECT_REASONS: readonly EventRejectReason[] = ['not-json', 'not-object', 'unknown-type', 'invalid-field', 'missing-ipmi', 'missing-address', 'invalid-address', 'unknown-command', 'invalid-firmware', 'too-large'];

/**
 * The most an event may hold: metal-api's are a few hundred bytes. Larger ones (NATS allows up to
 * 64 MB) are refused before they are parsed, and no field is longer than FIELD_CHARS (a firmware
 * URL URL_CHARS): what an event holds ends up in logs, results and state files.
 */
export const MAX_EVENT_BYTES = 64 * 1024;
const FIELD_CHARS = 256;
const URL_CHARS = 4096;

/** a value of the event as it is quoted in an error: a string cut to 64 characters, else its type */
function shown(v: unknown): string {
  return typeof v === 'string' ? JSON.stringify(v.length > 64 ? `${v.slice(0, 64)}…` : v) : v === null || v === undefined ? 'null' : `a ${Array.isArray(v) ? 'list' : typeof v}`;
}

/** A DecodeError (BmcError code 'DECODE') that says which rule the event broke. */
export class EventDecodeError extends DecodeError {
  readonly reason: EventRejectReason;
  constructor(reason: EventRejectReason, message: string, options: { cause?: unknown } = {}) {
    super(`machine event: ${message}`, options);
    this.name = 'EventDecodeError';
    this.reason = reason;
  }
}

type Json = Record<string, unknown>;

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

/** An optional string field: absent, null and "" are all "not set" (Go's omitempty). */
function optionalString(o: Json, key: string, where: string, maxChars = FIELD_CHARS): string | undefined {
  const v = o[key];
  if (v === undefined || v === null || v === '') return undefined;
  if (typeof v !== 'string') throw new EventDecodeError('invalid-field', `${where}${key} must be a string, not ${typeof v}`);
  if (v.length > maxChars) throw new EventDecodeError('too-large', `${where}${key} holds ${v.length} characters, more than the ${maxChars} it may`);
  return v;
}

function optionalObject(o: Json, key: string, where: string): Json | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  if (!isObject(v)) throw new EventDecodeError('invalid-field', `${where}${key} must be an object`);
  return v;
}

/** `host`, `host:port`, `[v6]` or `[v6]:port`; the port defaults to 623 as in the Go original. */
export function parseBmcAddress(address: string): { host: string; port: number } {
  const bad = (why: string) => new EventDecodeError('invalid-address', `cmd.ipmi.address ${shown(address)} ${why}`);
  let host: string;
  let portText: string | undefined;
  const v6 = /^\[([^\]]+)\](?::(.*))?$/.exec(address);
  if (v6) {
    host = v6[1]!;
    portText = v6[2];
  } else {
    const parts = address.split(':');
    if (parts.length > 2) throw bad('has more than one colon (write IPv6 as [addr]:port)');
    host = parts[0]!;
    portText = parts[1];
  }
  if (host === '' || /[\s/@]/.test(host)) throw bad('has no usable host');
  if (portText === undefined) return { host, port: 623 };
  if (!/^\d{1,5}$/.test(portText) || Number(portText) < 1 || Number(portText) > 65535) throw bad('has an invalid port');
  return { host, port: Number(portText) };
}

function decodeIpmi(o: Json): EventIpmi {
  const where = 'cmd.ipmi.';
  const address = optionalString(o, 'address', where);
  if (address === undefined) throw new EventDecodeError('missing-address', 'cmd.ipmi.address is missing');
  const ipmi: EventIpmi = { address, ...parseBmcAddress(address) };
  for (const key of ['user', 'password', 'interface', 'mac', 'bmcversion', 'powerstate', 'last_updated'] as const) {
    const v = optionalString(o, key, where);
    if (v !== undefined) ipmi[key] = v;
  }
  const fru = optionalObject(o, 'fru', where);
  if (fru) ipmi.fru = fru;
  return ipmi;
}

function decodeFirmware(o: Json | undefined): EventFirmwareUpdate {
  if (!o) throw new EventDecodeError('invalid-firmware', 'UPDATE-FIRMWARE without cmd.firmwareupdate');
  const kind = o.kind;
  if (typeof kind !== 'string' || !(FIRMWARE_KINDS as readonly string[]).includes(kind)) {
    throw new EventDecodeError('invalid-firmware', `cmd.firmwareupdate.kind must be ${FIRMWARE_KINDS.join(' or ')}, not ${shown(kind)}`);
  }
  const url = o.url;
  if (typeof url !== 'string' || url === '') throw new EventDecodeError('invalid-firmware', 'cmd.firmwareupdate.url is missing');
  if (url.length > URL_CHARS) throw new EventDecodeError('too-large', `cmd.firmwareupdate.url holds ${url.length} characters, more than the ${URL_CHARS} it may`);
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new EventDecodeError('invalid-firmware', 'cmd.firmwareupdate.url is not a URL');
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new EventDecodeError('invalid-firmware', `cmd.firmwareupdate.url has scheme ${parsed.protocol} (use http or https)`);
  return { kind: kind as FirmwareKind, url };
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * The event's JSON value. The parse error is not kept as the cause: V8's message quotes the text
 * around the error, and that text may be a BMC password (`..."password":S3cr3t}"... is not valid
 * JSON`). Only the position is taken from it, when the message gives one.
 */
function parseJson(bytes: Uint8Array): unknown {
  let text: string;
  try {
    text = utf8.decode(bytes);
  } catch {
    throw new EventDecodeError('not-json', `not UTF-8 (${bytes.length} bytes)`);
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    const position = /\bat position (\d+)/.exec(err instanceof Error ? err.message : '')?.[1];
    throw new EventDecodeError('not-json', `not JSON (${bytes.length} bytes${position !== undefined ? `, invalid at character ${position}` : ''})`);
  }
}

export function decodeMachineEvent(bytes: Uint8Array): MachineEvent {
  if (bytes.length > MAX_EVENT_BYTES) throw new EventDecodeError('too-large', `${bytes.length} bytes, more than the ${MAX_EVENT_BYTES} an event may hold; not parsed`);
  const value = parseJson(bytes);
  if (!isObject(value)) throw new EventDecodeError('not-object', `expected a JSON object, got ${Array.isArray(value) ? 'an array' : value === null ? 'null' : typeof value}`);
  const type = value.type;
  if (typeof type !== 'string' || !(EVENT_TYPES as readonly string[]).includes(type)) {
    throw new EventDecodeError('unknown-type', `unknown type ${shown(type)} (expected ${EVENT_TYPES.join(', ')})`);
  }
  const event: MachineEvent = { type: type as EventType };
  const old = optionalString(value, 'old', '');
  const next = optionalString(value, 'new', '');
  if (old !== undefined) event.old = old;
  if (next !== undefined) event.new = next;

  const cmdObject = optionalObject(value, 'cmd', '');
  const ipmiObject = cmdObject ? optionalObject(cmdObject, 'ipmi', 'cmd.') : undefined;
  if (!ipmiObject && event.type !== 'update') throw new EventDecodeError('missing-ipmi', `${event.type} event without cmd.ipmi`);
  if (cmdObject) {
    const cmd: EventCmd = {};
    const target = optionalString(cmdObject, 'target', 'cmd.');
    if (target !== undefined) cmd.target = target;
    if (ipmiObject) cmd.ipmi = decodeIpmi(ipmiObject);
    const name = cmdObject.cmd;
    if (event.type === 'command') {
      if (typeof name !== 'string' || !isEventCommand(name)) throw new EventDecodeError('unknown-command', `unknown command ${shown(name)}`);
      cmd.cmd = name;
      if (name === 'UPDATE-FIRMWARE') cmd.firmwareupdate = decodeFirmware(optionalObject(cmdObject, 'firmwareupdate', 'cmd.'));
    }
    event.cmd = cmd;
  }
  return event;
}

/** The machine an event is about: `cmd.target`, else `new`, else `old` ("" when none is given). */
export function machineIdOf(event: MachineEvent): string {
  return event.cmd?.target ?? event.new ?? event.old ?? '';
}

/** What to do for an event: data only, executed by the runner. */
export interface Plan {
  machineId: string;
  /** the key commands are serialized by: the machine id, or the BMC address when the event names no machine */
  key: string;
  type: EventType;
  /** `cmd.cmd` for command events, the event type otherwise; the `command` label of the metrics */
  command: string;
  ipmi?: EventIpmi;
  actions: BmcAction[];
  /** when the event was published (set by the handler from the bus); the runner checks the TTL against it again when the machine's turn comes */
  publishedAt?: Date;
  /** the event's id in the event journal (JetStream: its stream and sequence), set by the handler; without it no step is journaled */
  eventId?: string;
  /** this delivery of the event is its last allowed one (JetStream max_deliver): handed back, it would not come again, so it is refused instead */
  lastDelivery?: true;
}

const command = (c: Extract<BmcAction, { kind: 'command' }>['command']): BmcAction => ({ kind: 'command', command: c });

/** The event → actions table (metal-interfaces.md §2). Command events take the command table of actions.ts. */
export const EVENT_ACTIONS: Record<Exclude<EventType, 'command'>, readonly BmcAction[]> = {
  create: [command('DISK')],
  delete: [command('PXE'), command('RESET')],
  update: [],
};

function actionsOf(event: MachineEvent): BmcAction[] {
  if (event.type !== 'command') return [...EVENT_ACTIONS[event.type]];
  const cmd = event.cmd?.cmd;
  if (cmd === undefined) return [];
  if (cmd === 'UPDATE-FIRMWARE') {
    const fw = event.cmd?.firmwareupdate;
    return fw ? [{ kind: 'firmware', firmware: fw.kind, url: fw.url }] : [];
  }
  // two steps, as delete is: only the cycle is non-idempotent, so a REINSTALL that failed while
  // setting PXE is an ordinary failure (tried again), not an outcome unknown
  if (cmd === 'REINSTALL') return [command('PXE'), command('CYCLE')];
  return [command(cmd)];
}

export function planEvent(event: MachineEvent): Plan {
  const machineId = machineIdOf(event);
  const ipmi = event.cmd?.ipmi;
  return {
    machineId,
    key: machineId !== '' ? machineId : `bmc:${ipmi?.address ?? ''}`,
    type: event.type,
    command: event.type === 'command' ? (event.cmd?.cmd ?? 'command') : event.type,
    ...(ipmi ? { ipmi } : {}),
    actions: actionsOf(event),
  };
}
