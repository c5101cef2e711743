/**
 * DCMI Get Power Reading (DCMI 1.5 section 6.6.1): the power statistics many BMCs offer
 * over IPMI when Redfish is absent. Group extension netFn 0x2C, group id 0xDC.
 */
import { DecodeError } from '../errors.js';
import type { CommandOptions, IpmiSession } from './session.js';

const NETFN_GROUP_EXTENSION = 0x2c;
const DCMI_GROUP = 0xdc;
const GET_POWER_READING = 0x02;

/** Get Power Reading's answer in DCMI's own words (DCMI 1.5 table 6-16). */
export interface DcmiPowerReading {
  currentWatts: number;
  minimumWatts: number;
  maximumWatts: number;
  averageWatts: number;
  /** the statistics reporting time period */
  periodMs: number;
  /** power measurement active; the statistics mean nothing when it is clear */
  active: boolean;
}

export function decodePowerReading(d: Buffer): DcmiPowerReading {
  if (d.length < 18 || d[0] !== DCMI_GROUP) throw new DecodeError('DCMI Get Power Reading answer is truncated or not DCMI');
  return {
    currentWatts: d.readUInt16LE(1),
    minimumWatts: d.readUInt16LE(3),
    maximumWatts: d.readUInt16LE(5),
    averageWatts: d.readUInt16LE(7),
    periodMs: d.readUInt32LE(13),
    active: (d[17]! & 0x40) !== 0,
  };
}

/** The BMC's power statistics, or undefined when it refuses the command or measures nothing. */
export async function getPowerReading(s: IpmiSession, o?: CommandOptions): Promise<DcmiPowerReading | undefined> {
  const r = await s.request(NETFN_GROUP_EXTENSION, GET_POWER_READING, Buffer.from([DCMI_GROUP, 0x01, 0x00, 0x00]), o);
  if (r.completionCode !== 0) return undefined;
  const reading = decodePowerReading(r.data);
  return reading.active ? reading : undefined;
}
