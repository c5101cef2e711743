/**
 * BMCVersion and the FRU fields, merged from what Redfish and IPMI read, by the vendor table's
 * report sources: per field the authoritative protocol's value, else the other protocol's.
 * Pure: no I/O, blank values count as absent.
 */
import type { MetalFru } from './types.js';
import { REPORT_FIELDS, type ActionProtocol, type ReportField, type ReportSources } from './vendors.js';

/** Values one protocol read; a missing or blank value is a gap. */
export type ReportFieldValues = Partial<Record<ReportField, string | undefined>>;

export interface MergedReportFields {
  bmcVersion: string;
  fru: MetalFru;
  /** which protocol each sent field came from; fields neither protocol delivered are absent */
  origin: Partial<Record<ReportField, ActionProtocol>>;
}

const OTHER: Record<ActionProtocol, ActionProtocol> = { redfish: 'ipmi', ipmi: 'redfish' };

function present(value: string | undefined): value is string {
  return value !== undefined && value.trim() !== '';
}

export function mergeReportFields(sources: ReportSources, read: Partial<Record<ActionProtocol, ReportFieldValues>>): MergedReportFields {
  const merged: MergedReportFields = { bmcVersion: '', fru: {}, origin: {} };
  for (const field of REPORT_FIELDS) {
    const first = sources[field];
    const protocol = [first, OTHER[first]].find((p) => present(read[p]?.[field]));
    if (protocol === undefined) continue;
    const value = read[protocol]![field]!;
    if (field === 'bmcVersion') merged.bmcVersion = value;
    else merged.fru[field] = value;
    merged.origin[field] = protocol;
  }
  return merged;
}

/** The report fields of a report-shaped value (IPMI's or Redfish's). */
export function reportFieldValues(bmcVersion: string | undefined, fru: MetalFru): ReportFieldValues {
  return { bmcVersion, ...fru };
}
