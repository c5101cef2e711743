/**
 * The IPMI commands metal-bmc uses, as request encoders and response decoders over an
 * established session. Decoders are pure and exported for the tests and the simulator.
 */
import { sleep } from '../deadline.js';
import { BmcError, DecodeError } from '../errors.js';
import { fruBytesNeeded } from './fru.js';
import { describeCompletionCode, NetFn } from './message.js';
import type { CommandOptions, IpmiSession } from './session.js';

export const Cmd = {
  getDeviceId: 0x01,
  getSystemGuid: 0x37,
  getChassisStatus: 0x01,
  chassisControl: 0x02,
  chassisIdentify: 0x04,
  setSystemBootOptions: 0x08,
  getSystemBootOptions: 0x09,
  getFruInventoryAreaInfo: 0x10,
  readFruData: 0x11,
  activatePayload: 0x48,
  deactivatePayload: 0x49,
  getPayloadActivationStatus: 0x4a,
  getPayloadInstanceInfo: 0x4b,
} as const;

export interface DeviceId {
  deviceId: number;
  deviceRevision: number;
  /** "major.minor" as ipmitool prints the firmware revision, e.g. "1.74" */
  firmwareRevision: string;
  ipmiVersion: string;
  manufacturerId: number;
  productId: number;
  auxFirmwareRevision?: Buffer;
}

export function decodeDeviceId(d: Buffer): DeviceId {
  if (d.length < 11) throw new DecodeError(`Get Device ID answer of ${d.length} bytes is shorter than 11`);
  const major = d[2]! & 0x7f;
  const minor = d[3]!.toString(16).padStart(2, '0');
  return {
    deviceId: d[0]!,
    deviceRevision: d[1]! & 0x0f,
    firmwareRevision: `${major}.${minor}`,
    ipmiVersion: `${d[4]! & 0x0f}.${d[4]! >> 4}`,
    manufacturerId: d[6]! | (d[7]! << 8) | ((d[8]! & 0x0f) << 16),
    productId: d.readUInt16LE(9),
    ...(d.length >= 15 ? { auxFirmwareRevision: Buffer.from(d.subarray(11, 15)) } : {}),
  };
}

export type ChassisPower = 'on' | 'off';
export type IdentifyState = 'off' | 'temporary' | 'on' | 'unknown';

export interface ChassisStatus {
  power: ChassisPower;
  powerFault: boolean;
  identify: IdentifyState;
}

const IDENTIFY_STATES: readonly IdentifyState[] = ['off', 'temporary', 'on', 'unknown'];

export function decodeChassisStatus(d: Buffer): ChassisStatus {
  if (d.length < 3) throw new DecodeError(`Get Chassis Status answer of ${d.length} bytes is shorter than 3`);
  const misc = d[2]!;
  return {
    power: (d[0]! & 0x01) !== 0 ? 'on' : 'off',
    powerFault: (d[0]! & 0x1e) !== 0,
    identify: (misc & 0x40) !== 0 ? IDENTIFY_STATES[(misc >> 4) & 0x03]! : 'unknown',
  };
}

export type ChassisAction = 'down' | 'up' | 'cycle' | 'reset' | 'diag' | 'soft';
export const CHASSIS_CONTROL: Record<ChassisAction, number> = { down: 0, up: 1, cycle: 2, reset: 3, diag: 4, soft: 5 };

export type BootDevice = 'none' | 'pxe' | 'disk' | 'safe' | 'diag' | 'cdrom' | 'bios' | 'floppy';
/** Boot device selector, bits 5:2 of boot flags data byte 2. */
export const BOOT_DEVICE_SELECTOR: Record<BootDevice, number> = { none: 0, pxe: 1, disk: 2, safe: 3, diag: 4, cdrom: 5, bios: 6, floppy: 15 };

export interface BootFlags {
  valid: boolean;
  persistent: boolean;
  uefi: boolean;
  device: BootDevice;
}

export function encodeBootFlags(f: Omit<BootFlags, 'valid'>): Buffer {
  return Buffer.from([0x80 | (f.persistent ? 0x40 : 0) | (f.uefi ? 0x20 : 0), BOOT_DEVICE_SELECTOR[f.device] << 2, 0, 0, 0]);
}

export function decodeBootFlags(data: Buffer): BootFlags {
  if (data.length < 2) throw new DecodeError('boot flags are shorter than 2 bytes');
  const selector = (data[1]! >> 2) & 0x0f;
  const device = (Object.entries(BOOT_DEVICE_SELECTOR).find(([, v]) => v === selector)?.[0] ?? 'none') as BootDevice;
  return { valid: (data[0]! & 0x80) !== 0, persistent: (data[0]! & 0x40) !== 0, uefi: (data[0]! & 0x20) !== 0, device };
}

/** Get System Boot Options answer for parameter 5: version, parameter (bit 7 = invalid), 5 data bytes. */
export function decodeBootOptionsResponse(d: Buffer): BootFlags {
  if (d.length < 3) throw new DecodeError('Get System Boot Options answer is truncated');
  if ((d[1]! & 0x7f) !== 5) throw new DecodeError(`Get System Boot Options answered parameter ${d[1]! & 0x7f}, not 5`);
  return decodeBootFlags(d.subarray(2));
}

type Opts = CommandOptions | undefined;

export async function getDeviceId(s: IpmiSession, o?: Opts): Promise<DeviceId> {
  return decodeDeviceId(await s.command('Get Device ID', NetFn.app, Cmd.getDeviceId, undefined, o));
}

export async function getSystemGuid(s: IpmiSession, o?: Opts): Promise<Buffer> {
  const d = await s.command('Get System GUID', NetFn.app, Cmd.getSystemGuid, undefined, o);
  if (d.length < 16) throw new DecodeError(`Get System GUID answer of ${d.length} bytes is shorter than 16`);
  return d.subarray(0, 16);
}

export async function getChassisStatus(s: IpmiSession, o?: Opts): Promise<ChassisStatus> {
  return decodeChassisStatus(await s.command('Get Chassis Status', NetFn.chassis, Cmd.getChassisStatus, undefined, o));
}

export async function chassisControl(s: IpmiSession, action: ChassisAction, o?: Opts): Promise<void> {
  await s.command(`Chassis Control (${action})`, NetFn.chassis, Cmd.chassisControl, Buffer.from([CHASSIS_CONTROL[action]]), o);
}

/**
 * Chassis Identify request data: byte 1 the interval in seconds (0 turns the LED off), byte 2
 * Force Identify On. Byte 2 is optional and not every BMC takes it (ipmitool sends it only for
 * `identify force`, lib/ipmi_chassis.c). Off says both (interval 0, force off), as go-hal sends
 * it: a BMC that keeps the forced state of our on while byte 2 is absent would keep the LED lit;
 * one refusing byte 2 gets the one-byte form. A BMC refusing the forced on gets the longest
 * interval, the closest to "on" it supports.
 */
const IDENTIFY_DATA = { off: [0, 0], offShort: [0], forceOn: [0, 1], longest: [255] } as const;
/**
 * How BMCs refuse the Force Identify On byte: Intel SE7501WV2 firmware 1.2 answers 0xC7 (ipmitool,
 * lib/ipmi_chassis.c); the specification names no code for it, so "invalid data field" counts too.
 */
const FORCE_ON_REFUSED = new Set([0xc7, 0xcc]);

/** Identify LED: on = forced on until turned off (else on for 255 s, see above); off = interval 0 and force off (else interval 0 alone). */
export async function chassisIdentify(s: IpmiSession, on: boolean, o?: Opts): Promise<void> {
  const what = `Chassis Identify (${on ? 'on' : 'off'})`;
  const r = await s.request(NetFn.chassis, Cmd.chassisIdentify, Buffer.from(on ? IDENTIFY_DATA.forceOn : IDENTIFY_DATA.off), o);
  // off is harmless to ask again: any refusal of the two-byte form gets the one-byte form, which
  // every BMC took before off said both
  if (FORCE_ON_REFUSED.has(r.completionCode) || (!on && r.completionCode !== 0)) {
    await s.command(what, NetFn.chassis, Cmd.chassisIdentify, Buffer.from(on ? IDENTIFY_DATA.longest : IDENTIFY_DATA.offShort), o);
    return;
  }
  if (r.completionCode !== 0) {
    throw new BmcError('COMPLETION_CODE', `${what} on BMC ${s.remote}: ${describeCompletionCode(r.completionCode)}`, { completionCode: r.completionCode });
  }
}

/** "FRU device busy" (0x81): the spec lets the requester try again after 30 ms; coreboot does so 5 times. */
const FRU_BUSY = 0x81;
const FRU_BUSY_RETRIES = 5;
const FRU_BUSY_WAIT_MS = 30;

/**
 * Reads a FRU device as far as its chassis, board and product areas go (`fruBytesNeeded`: the
 * unused rest of the EEPROM is not asked for), in chunks that shrink when the BMC refuses their
 * size; "device busy" is asked again after 30 ms, up to 5 times. A read that fails once some bytes
 * are in (a completion code, an answer without data) ends there: what was read comes back, and
 * why it stopped goes to `stopped` (ipmitool and pyghmi parse what they have, area by area), so
 * the areas read before are not lost with the one that failed.
 */
export async function readFruData(s: IpmiSession, fruId = 0, o?: Opts, stopped?: string[]): Promise<Buffer> {
  const info = await s.command('Get FRU Inventory Area Info', NetFn.storage, Cmd.getFruInventoryAreaInfo, Buffer.from([fruId]), o);
  if (info.length < 3) throw new DecodeError('Get FRU Inventory Area Info answer is truncated');
  const size = info.readUInt16LE(0);
  const wordAccess = (info[2]! & 1) === 1;
  const out = Buffer.alloc(size);
  let offset = 0;
  let chunk = 32;
  let busy = 0;
  // what was read so far, with why the read stopped early; nothing read yet: the error itself
  const stop = (err: BmcError): Buffer => {
    if (offset === 0) throw err;
    stopped?.push(`${err.message}; the ${offset} bytes before are used`);
    return out.subarray(0, offset);
  };
  for (;;) {
    const need = fruBytesNeeded(out.subarray(0, offset), size);
    if (offset >= need.bytes) break;
    const count = Math.min(chunk, size - offset, need.known ? need.bytes - offset : chunk);
    const unitOffset = wordAccess ? offset / 2 : offset;
    const req = Buffer.from([fruId, unitOffset & 0xff, unitOffset >> 8, wordAccess ? Math.ceil(count / 2) : count]);
    const r = await s.request(NetFn.storage, Cmd.readFruData, req, o);
    if (r.completionCode !== 0) {
      // 0xC7/0xC8/0xCA: the BMC wants smaller reads; 0x81: busy, ask again shortly; anything else is an error.
      if ([0xc7, 0xc8, 0xca].includes(r.completionCode) && chunk > 8) {
        chunk = Math.floor(chunk / 2);
        continue;
      }
      if (r.completionCode === FRU_BUSY && busy < FRU_BUSY_RETRIES) {
        busy++;
        await sleep(FRU_BUSY_WAIT_MS, o?.signal, 'Read FRU Data');
        continue;
      }
      return stop(new BmcError('COMPLETION_CODE', `Read FRU Data at offset ${offset} on BMC ${s.remote}: ${describeCompletionCode(r.completionCode)}`, { completionCode: r.completionCode }));
    }
    busy = 0;
    // the count byte names what came back; an answer with fewer data bytes than it names is cut to them
    // in word access only whole words count: an odd byte would put the next offset between words
    const bytes = Math.min((r.data[0] ?? 0) * (wordAccess ? 2 : 1), r.data.length - 1, size - offset);
    const returned = wordAccess && offset + bytes < size ? bytes - (bytes % 2) : bytes;
    if (returned <= 0) return stop(new DecodeError(`Read FRU Data returned no data at offset ${offset} (count byte ${r.data[0] ?? 'absent'})`));
    r.data.subarray(1, 1 + returned).copy(out, offset);
    offset += returned;
  }
  return out.subarray(0, offset);
}
