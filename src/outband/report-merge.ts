/**
 * The facade's report policy as pure functions over typed values, beside `decideUuid`:
 *  - `ipmiNeed`: what IPMI must read beside a Redfish inventory (the fallback policy);
 *  - `mergeReport`: one BmcReport from the Redfish inventory and what IPMI read;
 *  - `guidMemoryAfterRead`: what the read leaves in the GUID memory (guid-memory.ts).
 * No I/O: connect.ts reads, these decide.
 */
import type { RedfishInventory } from '../redfish/inventory.js';
import { fruOf, ledStateOf, powerMetricOf, powerStateOf, powerSuppliesOf } from './redfish-report.js';
import { mergeReportFields, reportFieldValues, type ReportFieldValues } from './report-fields.js';
import type { BmcReport, LedReading, MetalFru, PowerMetric, PowerState, UuidGap } from './types.js';
import type { RememberedIdentity } from './guid-memory.js';
import { GUID_CONFIRMED_BASES, machineUuid, type IpmiAloneCheck, type RememberedUuid, type UuidDecision, type UuidRule } from './uuid.js';
import { REPORT_FIELDS, type ReportSources, type VendorProfile } from './vendors.js';
import type { GuidEncoding } from '../ipmi/guid.js';

/**
 * What IPMI reads beside Redfish, each including the ones before it:
 * `none`; `guid` (evidence for the UUID); `identity` (Get Device ID, GUID, FRU: the report fields);
 * `full` (identity plus chassis status and DCMI power reading).
 */
export type IpmiNeed = 'none' | 'guid' | 'identity' | 'full';

export interface IpmiNeedInput {
  ipmiAllowed: boolean;
  uuidRule: UuidRule;
  reportSources: ReportSources;
  /** what Redfish read; undefined: not known yet (before the inventory) */
  redfish?: { fields: ReportFieldValues; powerState: PowerState; led: LedReading; powerMetric: PowerMetric | undefined };
}

/**
 * Everything when Redfish lacks power state, LED or power metric; the identity when the vendor
 * table makes IPMI authoritative for a report field or Redfish left one empty; otherwise the GUID
 * when the UUID rule wants it as evidence. Before the inventory is known, only what the vendor
 * table and the UUID rule ask for.
 */
export function ipmiNeed(i: IpmiNeedInput): IpmiNeed {
  if (!i.ipmiAllowed) return 'none';
  const r = i.redfish;
  if (r !== undefined && (r.powerState === 'UNKNOWN' || r.led === 'UNKNOWN' || r.powerMetric === undefined)) return 'full';
  const fieldsFromRedfish = REPORT_FIELDS.every((f) => i.reportSources[f] === 'redfish' && (r === undefined || (r.fields[f] ?? '').trim() !== ''));
  if (!fieldsFromRedfish) return 'identity';
  return i.uuidRule === 'auto' || i.uuidRule === 'ipmi' ? 'guid' : 'none';
}

/** The Redfish part of `IpmiNeedInput` from an inventory. */
export function redfishReading(inv: RedfishInventory): NonNullable<IpmiNeedInput['redfish']> {
  return { fields: reportFieldValues(inv.manager?.firmwareVersion, fruOf(inv)), powerState: powerStateOf(inv.system?.powerState), led: ledStateOf(inv), powerMetric: powerMetricOf(inv) };
}

/** What IPMI delivered; each part absent when it was not read or failed. */
export interface IpmiReading {
  guid?: Buffer;
  /** the GUID is one an earlier read of this BMC confirmed (guid-memory.ts), not read now */
  guidRemembered?: boolean;
  identity?: { bmcVersion: string; fru: MetalFru };
  /** the identity is one an earlier read of this BMC kept with its GUID (guid-memory.ts), not read now */
  identityRemembered?: boolean;
  status?: { powerState: PowerState; led: LedReading; powerMetric?: PowerMetric };
  /** problems IPMI met ("IPMI: ...", "FRU: ..."), in the order they happened */
  problems: string[];
}

export interface MergeInput {
  inventory: RedfishInventory;
  ipmi: IpmiReading;
  profile: Pick<VendorProfile, 'reportSources' | 'guidEncoding' | 'swapRedfishUuidUnlessV1'>;
  uuidRule: UuidRule;
  now: Date;
  /** a UUID from the IPMI GUID alone (Redfish gave none) must be confirmed (uuid.ts) */
  ipmiAlone?: IpmiAloneCheck;
  /** the profile's GUID order is the operator's for the vendor (uuid.ts `guidOrderListed`) */
  guidOrderListed?: boolean;
}

/** Without a machine UUID the report is partial: `uuid` is empty, `uuidGap` and `missing` say why (the report cycle skips it). */
export type MergeResult = { ok: true; report: BmcReport; uuid: UuidDecision } | { ok: false; problem: UuidGap; ipmiGuid: boolean; report: BmcReport };

export function mergeReport({ inventory: inv, ipmi, profile, uuidRule, now, ipmiAlone, guidOrderListed }: MergeInput): MergeResult {
  const missing = [...inv.missing, ...ipmi.problems];
  const outcome = machineUuid({
    ...(inv.system?.uuid ? { redfishUuid: inv.system.uuid } : {}),
    ...(ipmi.guid ? { ipmiGuid: ipmi.guid } : {}),
    guidEncoding: profile.guidEncoding as GuidEncoding,
    rule: uuidRule,
    now,
    ...(profile.swapRedfishUuidUnlessV1 === true ? { swapRedfishUuidUnlessV1: true } : {}),
    ...(ipmiAlone ? { ipmiAlone } : {}),
    ...(guidOrderListed === true ? { guidOrderListed } : {}),
  });
  if (!outcome.ok) missing.push(outcome.detail);
  const reading = redfishReading(inv);
  const ipmiFields = ipmi.identity ? reportFieldValues(ipmi.identity.bmcVersion, ipmi.identity.fru) : undefined;
  const fields = mergeReportFields(profile.reportSources, { redfish: reading.fields, ...(ipmiFields ? { ipmi: ipmiFields } : {}) });
  const powerMetric = reading.powerMetric ?? ipmi.status?.powerMetric;
  const powerState = reading.powerState === 'UNKNOWN' && ipmi.status ? ipmi.status.powerState : reading.powerState;
  const indicatorLED = reading.led === 'UNKNOWN' && ipmi.status ? ipmi.status.led : reading.led;
  if (indicatorLED === 'UNKNOWN') missing.push('IndicatorLED: neither Redfish nor IPMI reports the identify LED');
  const usedIpmi = (ipmi.guid !== undefined && ipmi.guidRemembered !== true) || (ipmi.identity !== undefined && ipmi.identityRemembered !== true) || ipmi.status !== undefined;
  const report: BmcReport = {
    uuid: outcome.ok ? outcome.decision.uuid : '',
    ...(outcome.ok ? {} : { uuidGap: outcome.gap }),
    bmcVersion: fields.bmcVersion,
    biosVersion: inv.system?.biosVersion ?? '',
    fru: fields.fru,
    powerState,
    indicatorLED,
    powerSupplies: powerSuppliesOf(inv),
    source: usedIpmi ? 'redfish+ipmi' : 'redfish',
    fieldSources: fields.origin,
    missing,
    ...(powerMetric ? { powerMetric } : {}),
  };
  if (!outcome.ok) return { ok: false, problem: outcome.gap, ipmiGuid: ipmi.guid !== undefined, report };
  const { decision } = outcome;
  return { ok: true, report, uuid: ipmi.guidRemembered ? { ...decision, basis: `${decision.basis} (the GUID of an earlier read)` } : decision };
}

/** What a read changes in the GUID memory for its BMC. */
export type GuidMemoryChange = { kind: 'remember'; decided: RememberedUuid; spare?: { identity?: RememberedIdentity } } | { kind: 'forget' } | { kind: 'keep' };

export interface GuidMemoryInput {
  need: IpmiNeed;
  /** what IPMI delivered in this read (read now, not taken from the memory) */
  reading: IpmiReading;
  merged: MergeResult;
  /** Redfish's Manager FirmwareVersion now: an identity is kept only with it */
  managerFirmware: string | undefined;
  /** what the memory holds for the BMC before this read */
  before: RememberedUuid | undefined;
}

/**
 * A GUID that confirmed the UUID is the decision, kept for reads over IPMI alone whatever IPMI the
 * report needs; it also stands in for the next reads' IPMI session where the report needs nothing
 * else from IPMI (`guid`, or `identity` read without a problem: one with a problem, no FRU device,
 * is read again). A GUID other than the one remembered, or a UUID other than the one decided, ends
 * what was remembered; a read that learnt nothing (IPMI failed, no UUID) leaves it.
 */
export function guidMemoryAfterRead({ need, reading, merged, managerFirmware, before }: GuidMemoryInput): GuidMemoryChange {
  const { guid } = reading;
  if (guid !== undefined && merged.ok && GUID_CONFIRMED_BASES.has(merged.uuid.kind)) {
    const decided = { guid, uuid: merged.uuid.uuid };
    if (need === 'guid') return { kind: 'remember', decided, spare: {} };
    if (need === 'identity' && reading.identity && reading.problems.length === 0 && managerFirmware !== undefined) return { kind: 'remember', decided, spare: { identity: { ...reading.identity, managerFirmware } } };
    return { kind: 'remember', decided };
  }
  if (before === undefined) return { kind: 'keep' };
  const otherGuid = guid !== undefined && !guid.equals(before.guid);
  const otherUuid = merged.ok && merged.uuid.uuid !== before.uuid;
  return otherGuid || otherUuid ? { kind: 'forget' } : { kind: 'keep' };
}
