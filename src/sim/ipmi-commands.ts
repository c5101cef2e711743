/**
 * The IPMI commands a simulated BMC answers, as a table: (netFn, cmd) → required privilege and
 * handler. Handlers read and change the shared machine state; what needs the BMC itself
 * (sessions, SOL, the identify timer) goes through the small `BmcControl` interface.
 */
import { BOOT_DEVICE_BYTE, BootParameter, decodeBootFlagsParam, encodeBootFlagsParam, SetInProgress } from '../ipmi/boot.js';
import { Cmd, type ChassisAction } from '../ipmi/commands.js';
import { NetFn } from '../ipmi/message.js';
import { Privilege } from '../ipmi/rakp.js';
import { deviceIdData, fruImage, systemGuid } from './ipmi-device.js';
import type { ActivePhase, ServerSession } from './ipmi-session.js';
import { hasQuirk, type SimBoot, type SimMachine, type SimPower } from './machine.js';

export const SessionCmd = {
  getChannelAuthCapabilities: 0x38,
  getChannelCipherSuites: 0x54,
  setSessionPrivilegeLevel: 0x3b,
  closeSession: 0x3c,
} as const;

export const CC = {
  ok: 0x00,
  /** command-specific 0x80-0x87, meaning per command */
  specific80: 0x80,
  specific81: 0x81,
  invalidSessionId: 0x87,
  invalidCommand: 0xc1,
  lengthInvalid: 0xc7,
  outOfRange: 0xc9,
  cannotReturnBytes: 0xca,
  notPresent: 0xcb,
  invalidField: 0xcc,
  /** cannot execute a duplicated request: a repeat of a request the BMC already handled */
  duplicateRequest: 0xcf,
  insufficientPrivilege: 0xd4,
} as const;

export const SOL_PAYLOAD_TYPE = 0x01;
export const SOL_INSTANCE = 1;
/** Largest SOL payload either side may send (header included). */
export const SOL_MAX_PAYLOAD = 255;
/** Largest Read FRU Data count this BMC serves in one answer. */
export const MAX_FRU_READ = 32;
/**
 * The FRU device's size, as Get FRU Inventory Area Info reports it: a real BMC reports its
 * EEPROM's (2–4 KiB is common), of which the areas fill a few hundred bytes; the rest reads as
 * erased (0xFF).
 */
export const FRU_DEVICE_BYTES = 2048;

/** FRU device 0's size: the machine's image, then erased EEPROM up to FRU_DEVICE_BYTES. */
function fruDeviceSize(image: Buffer): number {
  return Math.max(image.length, FRU_DEVICE_BYTES);
}

/** What a command may ask of the BMC beyond the machine state. */
export interface BmcControl {
  /** the UDP port the BMC listens on */
  readonly port: number;
  /** the UDP port it serves SOL on (Activate Payload names it) */
  readonly solPort: number;
  hasSession(bmcSessionId: number): boolean;
  closeSession(bmcSessionId: number): void;
  /** the session holding the SOL payload, if any */
  solOwner(): ServerSession | undefined;
  /** makes `session` the SOL owner; the returned function starts the data flow */
  activateSol(session: ServerSession): () => void;
  /** ends the SOL payload; `by` is the session asking */
  deactivateSol(by: ServerSession): void;
  /** identify LED: on for `seconds` (undefined = until turned off), or off */
  identify(on: boolean, seconds?: number): void;
  /** 0 off, 1 temporary on, 2 on indefinitely */
  identifyState(): 0 | 1 | 2;
}

export interface CommandContext {
  machine: SimMachine;
  session: ServerSession & { phase: ActivePhase };
  bmc: BmcControl;
}

export interface CommandResult {
  cc: number;
  data?: Buffer;
  /** runs after the answer went out (Close Session drops the session it was sent in) */
  after?: () => void;
}

export interface CommandSpec {
  name: string;
  privilege: number;
  handle(ctx: CommandContext, data: Buffer): CommandResult;
}

const ok = (data?: Buffer): CommandResult => (data ? { cc: CC.ok, data } : { cc: CC.ok });
const fail = (cc: number): CommandResult => ({ cc });
const bytes = (...b: number[]) => Buffer.from(b);

/** Get Channel Authentication Capabilities: RMCP+ only, non-null user names, no Kg. */
export function channelAuthCapabilities(data: Buffer): CommandResult {
  if (data.length < 2) return fail(CC.lengthInvalid);
  const channel = data[0]! & 0x0f;
  if (channel !== 0x0e && channel !== 1) return fail(CC.invalidField);
  const v2 = (data[0]! & 0x80) !== 0;
  return ok(bytes(1, v2 ? 0x80 : 0x00, 0x04, v2 ? 0x02 : 0x00, 0, 0, 0, 0));
}

/** Cipher suite records of the suites this BMC accepts: id, auth, integrity (0x40|), confidentiality (0x80|). */
export const OFFERED_SUITE_RECORDS = Buffer.from([0xc0, 3, 0x01, 0x41, 0x81, 0xc0, 17, 0x03, 0x44, 0x81]);

/** Get Channel Cipher Suites: the records in pages of 16 bytes. */
export function channelCipherSuites(data: Buffer): CommandResult {
  if (data.length < 3) return fail(CC.lengthInvalid);
  const channel = data[0]! & 0x0f;
  if (channel !== 0x0e && channel !== 1) return fail(CC.invalidField);
  if (data[1] !== 0) return fail(CC.invalidField); // payload type IPMI only
  const index = data[2]! & 0x3f;
  return ok(Buffer.concat([bytes(1), OFFERED_SUITE_RECORDS.subarray(index * 16, index * 16 + 16)]));
}

const POWER_ACTIONS: Partial<Record<number, { power: SimPower; action: ChassisAction }>> = {
  0: { power: 'off', action: 'down' },
  1: { power: 'on', action: 'up' },
  2: { power: 'on', action: 'cycle' },
  3: { power: 'on', action: 'reset' },
  5: { power: 'off', action: 'soft' },
};

/**
 * Boot flags data byte 2 per device as this BMC reads and writes it. Supermicro-like BMCs read
 * 0x24 (selector 9) as UEFI hard disk, as metal-stack's go-hal relies on, and report disk so;
 * others know only the standard selector 2 (0x08) and refuse 9.
 */
function diskBytes(machine: SimMachine): readonly number[] {
  return machine.state.manufacturer === 'Supermicro' ? [BOOT_DEVICE_BYTE.supermicroDisk, BOOT_DEVICE_BYTE.disk] : [BOOT_DEVICE_BYTE.disk];
}

function deviceOfByte(machine: SimMachine, device: number): SimBoot | undefined {
  if (diskBytes(machine).includes(device)) return 'disk';
  const selector = (device >> 2) & 0x0f;
  return ({ 0: 'none', 1: 'pxe', 2: 'disk', 6: 'bios' } as const)[selector];
}

function byteOfDevice(machine: SimMachine, boot: SimBoot): number {
  return boot === 'disk' ? diskBytes(machine)[0]! : { none: 0, pxe: BOOT_DEVICE_BYTE.pxe, bios: BOOT_DEVICE_BYTE.bios }[boot];
}

/** Boot parameters the BMC keeps beyond the machine's override: the set-in-progress lock and the boot info acknowledge. */
interface BootParams {
  setInProgress: 0 | 1;
  ack: number;
}
const bootParams = new WeakMap<SimMachine, BootParams>();

function paramsOf(machine: SimMachine): BootParams {
  let p = bootParams.get(machine);
  if (p === undefined) bootParams.set(machine, (p = { setInProgress: 0, ack: 0 }));
  return p;
}

function setBootOptions({ machine }: CommandContext, data: Buffer): CommandResult {
  if (data.length < 1) return fail(CC.lengthInvalid);
  const parameter = data[0]! & 0x7f;
  const value = data.subarray(1);
  const params = paramsOf(machine);
  switch (parameter) {
    case BootParameter.setInProgress: {
      if (machine.state.bootQuirks.noSetInProgress) return fail(CC.specific80); // parameter not supported
      if (value.length < 1) return fail(CC.lengthInvalid);
      const v = value[0]! & 0x03;
      if (v === SetInProgress.inProgress && params.setInProgress === 1) return fail(CC.specific81); // someone else holds it
      if (v === 3) return fail(CC.invalidField);
      // commit write: every write is committed at once here, so the lock just stays
      if (v !== SetInProgress.commitWrite) params.setInProgress = v as 0 | 1;
      return ok();
    }
    case BootParameter.validBitClearing:
      return value.length >= 1 ? ok() : fail(CC.lengthInvalid);
    case BootParameter.infoAck: {
      if (value.length < 2) return fail(CC.lengthInvalid);
      const mask = value[0]!;
      params.ack = (params.ack & ~mask) | (value[1]! & mask);
      return ok();
    }
    case BootParameter.flags: {
      if (value.length < 5) return fail(CC.lengthInvalid);
      const flags = decodeBootFlagsParam(value);
      const device = flags.valid ? deviceOfByte(machine, flags.device) : 'none';
      if (device === undefined) return fail(CC.invalidField);
      machine.setBoot(device, flags.persistent, flags.uefi, 'ipmi');
      return ok();
    }
    default:
      return fail(CC.specific80); // parameter not supported
  }
}

function getBootOptions({ machine }: CommandContext, data: Buffer): CommandResult {
  if (data.length < 3) return fail(CC.lengthInvalid);
  const parameter = data[0]! & 0x7f;
  const s = machine.state;
  const params = paramsOf(machine);
  if (parameter === BootParameter.setInProgress && s.bootQuirks.noSetInProgress) return fail(CC.specific80);
  const values: Partial<Record<number, Buffer>> = {
    [BootParameter.setInProgress]: bytes(params.setInProgress),
    [BootParameter.validBitClearing]: bytes(0),
    [BootParameter.infoAck]: bytes(0, params.ack),
    [BootParameter.flags]:
      s.boot === 'none'
        ? Buffer.alloc(5) // no override: the flags are not valid
        : encodeBootFlagsParam({ persistent: s.bootPersistent, uefi: s.bootUefi, device: byteOfDevice(machine, s.boot) }),
  };
  const value = values[parameter];
  return value ? ok(Buffer.concat([bytes(1, parameter), value])) : fail(CC.specific80);
}

/** The FRU image as this BMC ships it: with `ipmi-fru-bad-checksum`, the board area's checksum byte one off. */
function shippedFru(state: SimMachine['state']): Buffer {
  const image = fruImage(state);
  if (!state.quirks.has('ipmi-fru-bad-checksum')) return image;
  const board = (image[3] ?? 0) * 8;
  const end = board + (image[board + 1] ?? 0) * 8 - 1;
  if (board === 0 || end >= image.length) return image;
  const shipped = Buffer.from(image);
  shipped[end] = (shipped[end]! + 1) & 0xff;
  return shipped;
}

function readFru({ machine }: CommandContext, data: Buffer): CommandResult {
  if (data.length < 4) return fail(CC.lengthInvalid);
  if (data[0] !== 0) return fail(CC.notPresent);
  const offset = data.readUInt16LE(1);
  const count = data[3]!;
  if (count > MAX_FRU_READ) return fail(CC.cannotReturnBytes);
  const image = shippedFru(machine.state);
  const size = fruDeviceSize(image);
  if (offset >= size) return fail(CC.outOfRange);
  // the count byte, then the bytes asked for: the image's, 0xFF (erased) past its end
  const answer = Buffer.alloc(1 + Math.min(count, size - offset), 0xff);
  answer[0] = answer.length - 1;
  if (offset < image.length) image.copy(answer, 1, offset, Math.min(image.length, offset + count));
  return ok(answer);
}

function setPrivilege({ session }: CommandContext, data: Buffer): CommandResult {
  if (data.length < 1) return fail(CC.lengthInvalid);
  const level = data[0]! & 0x0f;
  if (level > Privilege.oem) return fail(CC.invalidField);
  if (level === 0) return ok(bytes(session.phase.privilege));
  if (level === Privilege.callback) return fail(CC.specific80);
  if (level > session.phase.maxPrivilege) return fail(CC.specific81);
  session.phase.privilege = level;
  return ok(bytes(level));
}

function closeSession({ bmc }: CommandContext, data: Buffer): CommandResult {
  if (data.length < 4) return fail(CC.lengthInvalid);
  const id = data.readUInt32LE(0);
  if (!bmc.hasSession(id)) return fail(CC.invalidSessionId);
  return { cc: CC.ok, after: () => bmc.closeSession(id) };
}

function activatePayload({ session, bmc, machine }: CommandContext, data: Buffer): CommandResult {
  if (data.length < 6) return fail(CC.lengthInvalid);
  if (data[0] !== SOL_PAYLOAD_TYPE || data[1] !== SOL_INSTANCE) return fail(CC.invalidField);
  if (bmc.solOwner()) return fail(CC.specific80); // already active (in this or another session)
  const start = bmc.activateSol(session);
  const d = Buffer.alloc(12);
  d.writeUInt16LE(SOL_MAX_PAYLOAD, 4); // inbound payload size
  d.writeUInt16LE(SOL_MAX_PAYLOAD, 6); // outbound payload size
  // Some BMCs write their port in network byte order (Supermicro X8DTH-iF).
  if (hasQuirk(machine.state, 'ipmi-sol-port-swapped')) d.writeUInt16BE(bmc.solPort, 8);
  else d.writeUInt16LE(bmc.solPort, 8);
  d.writeUInt16LE(0xffff, 10); // no VLAN
  // Serial data flows only after the answer: ipmitool takes any SOL packet that arrives while it
  // waits for an answer as that answer.
  return { cc: CC.ok, data: d, after: start };
}

function deactivatePayload({ session, bmc }: CommandContext, data: Buffer): CommandResult {
  if (data.length < 2) return fail(CC.lengthInvalid);
  if (data[0] !== SOL_PAYLOAD_TYPE || data[1] !== SOL_INSTANCE) return fail(CC.invalidField);
  if (!bmc.solOwner()) return fail(CC.specific80); // already deactivated
  return { cc: CC.ok, after: () => bmc.deactivateSol(session) };
}

/** Get Channel Payload Support (IPMI 2.0 section 24.8): IPMI and SOL, no OEM payloads. FreeIPMI's ipmiconsole asks it before SOL. */
const GET_CHANNEL_PAYLOAD_SUPPORT = 0x4e;
function channelPayloadSupport(_: CommandContext, data: Buffer): CommandResult {
  if (data.length < 1) return fail(CC.lengthInvalid);
  const channel = data[0]! & 0x0f;
  if (channel !== 0x0e && channel !== 1) return fail(CC.invalidField);
  return ok(bytes(0x03, 0, 0, 0, 0, 0, 0, 0));
}

function payloadStatus({ bmc }: CommandContext, data: Buffer): CommandResult {
  if (data.length < 1) return fail(CC.lengthInvalid);
  if (data[0] !== SOL_PAYLOAD_TYPE) return fail(CC.invalidField);
  return ok(bytes(1, bmc.solOwner() ? 0x01 : 0x00, 0));
}

/**
 * Get Payload Instance Info (IPMI 2.0 section 24.5): the id the BMC gave the session that holds the
 * SOL payload, 0 when none does, then 12 bytes of payload-specific information (for SOL the serial
 * port's number, 1). Consoles ask it to learn whether SOL is still theirs (pyghmi's keepalive).
 */
function payloadInstanceInfo({ bmc }: CommandContext, data: Buffer): CommandResult {
  if (data.length < 2) return fail(CC.lengthInvalid);
  if (data[0] !== SOL_PAYLOAD_TYPE || data[1] !== SOL_INSTANCE) return fail(CC.invalidField);
  const d = Buffer.alloc(16);
  d.writeUInt32LE(bmc.solOwner()?.bmcSessionId ?? 0, 0);
  d[4] = 1;
  return ok(d);
}

function chassisStatus({ machine, bmc }: CommandContext): CommandResult {
  const on = machine.state.power === 'on' ? 0x01 : 0x00;
  // bit 6 of the third byte: "Chassis Identify command and state info supported" (optional); a BMC
  // without an identify LED leaves it and the state clear, as ipmi_sim does
  const identify = hasQuirk(machine.state, 'ipmi-no-identify') ? 0 : 0x40 | (bmc.identifyState() << 4);
  return ok(bytes(on | 0x40 /* restore policy: always on */, 0, identify, 0));
}

function chassisControl({ machine }: CommandContext, data: Buffer): CommandResult {
  if (data.length < 1) return fail(CC.lengthInvalid);
  const action = POWER_ACTIONS[data[0]! & 0x0f];
  if (!action) return fail(CC.invalidField);
  const refused = machine.state.faults.ipmiActRefused;
  if (refused !== null) return fail(refused);
  machine.setPower(action.power, action.action);
  return ok();
}

function chassisIdentify({ bmc, machine }: CommandContext, data: Buffer): CommandResult {
  // a BMC without the optional Force Identify On byte refuses a request carrying it (Intel SE7501WV2)
  if (data.length > 1 && hasQuirk(machine.state, 'ipmi-identify-no-force')) return fail(CC.lengthInvalid);
  const interval = data[0] ?? 15;
  const force = ((data[1] ?? 0) & 0x01) !== 0;
  if (force) bmc.identify(true);
  else if (interval === 0) bmc.identify(false);
  else bmc.identify(true, interval);
  return ok();
}

const { callback, user, operator } = Privilege;

/** netFn/cmd → command. The key is `netFn << 8 | cmd`. */
export const COMMANDS: ReadonlyMap<number, CommandSpec> = new Map(
  (
    [
      [NetFn.app, Cmd.getDeviceId, 'Get Device ID', user, ({ machine }) => ok(deviceIdData(machine.state))],
      [NetFn.app, Cmd.getSystemGuid, 'Get System GUID', user, ({ machine }) => ok(systemGuid(machine.state))],
      [NetFn.app, SessionCmd.getChannelAuthCapabilities, 'Get Channel Authentication Capabilities', callback, (_, d) => channelAuthCapabilities(d)],
      [NetFn.app, SessionCmd.getChannelCipherSuites, 'Get Channel Cipher Suites', callback, (_, d) => channelCipherSuites(d)],
      [NetFn.app, SessionCmd.setSessionPrivilegeLevel, 'Set Session Privilege Level', callback, setPrivilege],
      [NetFn.app, SessionCmd.closeSession, 'Close Session', callback, closeSession],
      [NetFn.app, Cmd.activatePayload, 'Activate Payload', user, activatePayload],
      [NetFn.app, Cmd.deactivatePayload, 'Deactivate Payload', user, deactivatePayload],
      [NetFn.app, Cmd.getPayloadActivationStatus, 'Get Payload Activation Status', user, payloadStatus],
      [NetFn.app, Cmd.getPayloadInstanceInfo, 'Get Payload Instance Info', user, payloadInstanceInfo],
      [NetFn.app, GET_CHANNEL_PAYLOAD_SUPPORT, 'Get Channel Payload Support', user, channelPayloadSupport],
      [NetFn.chassis, Cmd.getChassisStatus, 'Get Chassis Status', user, chassisStatus],
      [NetFn.chassis, Cmd.chassisControl, 'Chassis Control', operator, chassisControl],
      [NetFn.chassis, Cmd.chassisIdentify, 'Chassis Identify', operator, chassisIdentify],
      [NetFn.chassis, Cmd.setSystemBootOptions, 'Set System Boot Options', operator, setBootOptions],
      [NetFn.chassis, Cmd.getSystemBootOptions, 'Get System Boot Options', user, getBootOptions],
      [NetFn.storage, Cmd.getFruInventoryAreaInfo, 'Get FRU Inventory Area Info', user, fruAreaInfo],
      [NetFn.storage, Cmd.readFruData, 'Read FRU Data', user, readFru],
    ] as const satisfies ReadonlyArray<readonly [number, number, string, number, CommandSpec['handle']]>
  ).map(([netFn, cmd, name, privilege, handle]) => [(netFn << 8) | cmd, { name, privilege, handle }]),
);

function fruAreaInfo({ machine }: CommandContext, data: Buffer): CommandResult {
  if (data.length < 1) return fail(CC.lengthInvalid);
  if (data[0] !== 0) return fail(CC.notPresent);
  const size = Buffer.alloc(3);
  size.writeUInt16LE(fruDeviceSize(fruImage(machine.state)), 0);
  return ok(size); // byte 2 = 0: byte access
}

/** Runs one command: unknown → 0xC1, too little privilege → 0xD4. */
export function runCommand(ctx: CommandContext, netFn: number, cmd: number, data: Buffer): CommandResult {
  const spec = COMMANDS.get((netFn << 8) | cmd);
  if (!spec) return fail(CC.invalidCommand);
  if (ctx.session.phase.privilege < spec.privilege) return fail(CC.insufficientPrivilege);
  return spec.handle(ctx, data);
}
