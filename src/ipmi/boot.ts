/**
 * IPMI System Boot Options (IPMI 2.0 §28.12/28.13, Table 28-14): the parameter codecs and the
 * write sequence, as pure functions over Buffer, plus the one function that runs the sequence
 * over a session.
 *
 * The sequence, as ipmitool (`chassis bootdev`), FreeIPMI (`ipmi-config` chassis boot flags) and
 * metal-stack's go-hal do it between them:
 *   1. parameter 0 = 01h set in progress (a BMC that refuses it is written to without the lock,
 *      and is then sent neither commit-write nor set-complete)
 *   2. parameter 5 = the boot flags (valid bit set; bytes 3-5 zero, as go-hal sends them)
 *   3. parameter 4 = 01h/01h boot info acknowledge: "BIOS/POST has not handled the boot info yet"
 *      (refusals are tolerated, as ipmitool does)
 *   4. parameter 0 = 02h commit write (optional in the spec; refusals ignored), only when step 2
 *      succeeded
 *   5. parameter 0 = 00h set complete, whenever step 1 was accepted
 * ipmitool and go-hal send the acknowledge before the flags, FreeIPMI after them; the flags are
 * only read by the BIOS at the next boot, so both orders leave the same state.
 */
import { BmcError, DecodeError } from '../errors.js';
import { describeCompletionCode, NetFn } from './message.js';
import type { CommandOptions, IpmiSession } from './session.js';

export const SET_SYSTEM_BOOT_OPTIONS = 0x08;
export const GET_SYSTEM_BOOT_OPTIONS = 0x09;

export const BootParameter = { setInProgress: 0, validBitClearing: 3, infoAck: 4, flags: 5 } as const;
export const SetInProgress = { complete: 0x00, inProgress: 0x01, commitWrite: 0x02 } as const;

/** Data byte 1 of parameter 5. */
export const BOOT_FLAG_VALID = 0x80;
export const BOOT_FLAG_PERSISTENT = 0x40;
export const BOOT_FLAG_EFI = 0x20;

/**
 * Data byte 2 of parameter 5 (boot device selector in bits 5:2) for what metal-bmc sets. Disk is
 * vendor-specific: go-hal sends 0x24 to Supermicro and Novarion boards (selector 9, which their
 * UEFI firmware reads as "UEFI hard disk") and 0x08 (selector 2, "force boot from default hard
 * drive") to everyone else; the vendor table (src/outband/vendors.ts) picks one.
 */
export const BOOT_DEVICE_BYTE = { pxe: 0x04, disk: 0x08, supermicroDisk: 0x24, bios: 0x18 } as const;

/** Completion code of a Set System Boot Options parameter the BMC does not implement. */
export const CC_PARAMETER_NOT_SUPPORTED = 0x80;

export interface BootFlagsParam {
  valid: boolean;
  /** options apply to all future boots (else to the next boot only) */
  persistent: boolean;
  /** BIOS EFI boot (else PC compatible / legacy) */
  uefi: boolean;
  /** data byte 2 as sent: selector in bits 5:2, plus the CMOS-clear/keyboard-lock/screen-blank bits */
  device: number;
  /** bits 5:2 of `device` */
  selector: number;
}

/** The 5 data bytes of parameter 5: flags, device, then zeroes (no console/verbosity overrides). */
export function encodeBootFlagsParam(f: { persistent: boolean; uefi: boolean; device: number }): Buffer {
  if (!Number.isInteger(f.device) || f.device < 0 || f.device > 0xff) throw new DecodeError(`boot device byte ${f.device} is not a byte`);
  return Buffer.from([BOOT_FLAG_VALID | (f.persistent ? BOOT_FLAG_PERSISTENT : 0) | (f.uefi ? BOOT_FLAG_EFI : 0), f.device, 0, 0, 0]);
}

export function decodeBootFlagsParam(data: Buffer): BootFlagsParam {
  if (data.length < 2) throw new DecodeError(`boot flags of ${data.length} bytes are shorter than 2`);
  const b1 = data[0]!;
  const device = data[1]!;
  return {
    valid: (b1 & BOOT_FLAG_VALID) !== 0,
    persistent: (b1 & BOOT_FLAG_PERSISTENT) !== 0,
    uefi: (b1 & BOOT_FLAG_EFI) !== 0,
    device,
    selector: (device >> 2) & 0x0f,
  };
}

/** Get System Boot Options answer: version, parameter (bit 7: invalid/locked), data. */
export function decodeGetBootOptions(d: Buffer, parameter: number): { locked: boolean; data: Buffer } {
  if (d.length < 2) throw new DecodeError(`Get System Boot Options answer of ${d.length} bytes is truncated`);
  if ((d[1]! & 0x7f) !== parameter) throw new DecodeError(`Get System Boot Options answered parameter ${d[1]! & 0x7f}, not ${parameter}`);
  return { locked: (d[1]! & 0x80) !== 0, data: d.subarray(2) };
}

export type BootWriteStep = 'set-in-progress' | 'boot-flags' | 'info-ack' | 'commit-write' | 'set-complete';

/** The request data of each step of the sequence (Set System Boot Options: parameter, then its data). */
export function bootWriteRequests(flags: Buffer): Record<BootWriteStep, Buffer> {
  if (flags.length !== 5) throw new DecodeError(`boot flags must be 5 bytes, got ${flags.length}`);
  return {
    'set-in-progress': Buffer.from([BootParameter.setInProgress, SetInProgress.inProgress]),
    'boot-flags': Buffer.concat([Buffer.from([BootParameter.flags]), flags]),
    // write mask 01h (BIOS/POST bit only), data 01h: the BIOS has not handled the new boot info yet
    'info-ack': Buffer.from([BootParameter.infoAck, 0x01, 0x01]),
    'commit-write': Buffer.from([BootParameter.setInProgress, SetInProgress.commitWrite]),
    'set-complete': Buffer.from([BootParameter.setInProgress, SetInProgress.complete]),
  };
}

/**
 * Which step comes next, given the completion codes so far: the whole sequence as a pure
 * function, so that its order is tested without a BMC. `answers` holds the completion code of
 * each step already sent (undefined: not sent). Returns undefined when the sequence is done.
 */
export function nextBootWriteStep(answers: Partial<Record<BootWriteStep, number>>): BootWriteStep | undefined {
  const sent = (s: BootWriteStep) => answers[s] !== undefined;
  if (!sent('set-in-progress')) return 'set-in-progress';
  const locked = answers['set-in-progress'] === 0;
  if (!sent('boot-flags')) return 'boot-flags';
  const flagsOk = answers['boot-flags'] === 0;
  if (flagsOk && !sent('info-ack')) return 'info-ack';
  if (locked && flagsOk && !sent('commit-write')) return 'commit-write';
  if (locked && !sent('set-complete')) return 'set-complete';
  return undefined;
}

export interface BootWriteOutcome {
  /** completion code per step sent, in order */
  steps: Array<{ step: BootWriteStep; completionCode: number }>;
}

/**
 * Writes boot flags with the sequence above. Throws COMPLETION_CODE when the BMC refuses the
 * flags themselves (after releasing the set-in-progress lock); transport errors propagate.
 */
export async function writeBootFlags(s: IpmiSession, flags: Buffer, o?: CommandOptions): Promise<BootWriteOutcome> {
  const requests = bootWriteRequests(flags);
  const answers: Partial<Record<BootWriteStep, number>> = {};
  const outcome: BootWriteOutcome = { steps: [] };
  for (let step = nextBootWriteStep(answers); step !== undefined; step = nextBootWriteStep(answers)) {
    const r = await s.request(NetFn.chassis, SET_SYSTEM_BOOT_OPTIONS, requests[step], o);
    answers[step] = r.completionCode;
    outcome.steps.push({ step, completionCode: r.completionCode });
  }
  const flagsCode = answers['boot-flags'] ?? 0;
  if (flagsCode !== 0) {
    throw new BmcError('COMPLETION_CODE', `Set System Boot Options (boot flags ${flags.toString('hex')}) on BMC ${s.remote}: ${describeCompletionCode(flagsCode)}`, { completionCode: flagsCode });
  }
  return outcome;
}

/** Reads parameter 5. */
export async function readBootFlags(s: IpmiSession, o?: CommandOptions): Promise<BootFlagsParam> {
  const d = await s.command('Get System Boot Options (boot flags)', NetFn.chassis, GET_SYSTEM_BOOT_OPTIONS, Buffer.from([BootParameter.flags, 0, 0]), o);
  return decodeBootFlagsParam(decodeGetBootOptions(d, BootParameter.flags).data);
}
