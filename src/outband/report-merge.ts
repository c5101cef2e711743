/**
 * The facade's report policy as pure functions over typed values, beside `decideUuid`:
 *  - `ipmiNeed`: what IPMI must read beside a Redfish inventory (the fallback policy);
 *  - `mergeReport`: one BmcReport from the Redfish inventory and what IPMI read.
 * No I/O: connect.ts reads, these decide.
 */
import type { RedfishInventory } from '../redfish/inventory.js';
import { fruOf, ledStateOf, powerMetricOf, powerStateOf, powerSuppliesOf } from './redfish-report.js';
import { mergeReportFields, reportFieldValues, type ReportFieldValues } from './report-fields.js';
import type { BmcReport, LedReading, MetalFru, PowerMetric, PowerState, UuidGap } from './types.js';
import { machineUuid, type UuidDecision, type UuidRule } from './uuid.js';
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
}

/** Without a machine UUID the report is partial: `uuid` is empty, `uuidGap` and `missing` say why (the report cycle skips it). */
export type MergeResult = { ok: true; report: BmcReport; uuid: UuidDecision } | { ok: false; problem: UuidGap; ipmiGuid: boolean; report: BmcReport };

export function mergeReport({ inventory: inv, ipmi, profile, uuidRule, now }: MergeInput): MergeResult {
  const missing = [...inv.missing, ...ipmi.problems];
  const outcome = machineUuid({
    ...(inv.system?.uuid ? { redfishUuid: inv.system.uuid } : {}),
    ...(ipmi.guid ? { ipmiGuid: ipmi.guid } : {}),
    guidEncoding: profile.guidEncoding as GuidEncoding,
    rule: uuidRule,
    now,
    ...(profile.swapRedfishUuidUnlessV1 === true ? { swapRedfishUuidUnlessV1: true } : {}),
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
