/**
 * DCMI Get Power Reading (DCMI 1.5 section 6.6.1): the power statistics many BMCs offer
 * over IPMI when Redfish is absent. Group extension netFn 0x2C, group id 0xDC.
 */
import { DecodeError } from '../errors.js';
import type { PowerMetric } from '../outband/types.js';
import type { CommandOptions, IpmiSession } from './session.js';

const NETFN_GROUP_EXTENSION = 0x2c;
const DCMI_GROUP = 0xdc;
const GET_POWER_READING = 0x02;

export function decodePowerReading(d: Buffer): PowerMetric & { currentWatts: number; active: boolean } {
  if (d.length < 18 || d[0] !== DCMI_GROUP) throw new DecodeError('DCMI Get Power Reading answer is truncated or not DCMI');
  const periodMs = d.readUInt32LE(13);
  return {
    currentWatts: d.readUInt16LE(1),
    minconsumedwatts: d.readUInt16LE(3),
    maxconsumedwatts: d.readUInt16LE(5),
    averageconsumedwatts: d.readUInt16LE(7),
    intervalinmin: Math.max(1, Math.round(periodMs / 60_000)),
    active: (d[17]! & 0x40) !== 0,
  };
}

export async function getPowerReading(s: IpmiSession, o?: CommandOptions): Promise<PowerMetric | undefined> {
  const r = await s.request(NETFN_GROUP_EXTENSION, GET_POWER_READING, Buffer.from([DCMI_GROUP, 0x01, 0x00, 0x00]), o);
  if (r.completionCode !== 0) return undefined;
  const reading = decodePowerReading(r.data);
  if (!reading.active) return undefined;
  const { averageconsumedwatts, intervalinmin, maxconsumedwatts, minconsumedwatts } = reading;
  return { averageconsumedwatts, intervalinmin, maxconsumedwatts, minconsumedwatts };
}
