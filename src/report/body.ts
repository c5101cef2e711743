/**
 * The report body: what the BMCs of one cycle said, as metal-api's v1.MachineIpmiReports
 * entries. Pure: the facade's `BmcReport` in, metal-api's `MachineIpmiReport` out, one entry per
 * machine UUID, each bounded (bounds.ts); what was dropped or cut is returned for the caller to
 * log and count.
 */
import { toMetalFru, type MachineIpmiReport } from '../metalapi/types.js';
import type { BmcReport } from '../outband/types.js';
import { boundEntry } from './bounds.js';
import type { LedMemory } from './led-memory.js';
import type { UuidOwners } from './owners.js';

/** One machine's entry of the report body, built from what the outband layer read. */
export function toIpmiReport(bmcIp: string, report: BmcReport): MachineIpmiReport {
  const m = report.powerMetric;
  return {
    BMCIp: bmcIp,
    BMCVersion: report.bmcVersion,
    BIOSVersion: report.biosVersion,
    FRU: toMetalFru(report.fru),
    PowerState: report.powerState,
    // metal-api accepts only LED-ON and LED-OFF; an unread LED goes out as LED-OFF, as the Go
    // metal-bmc sends it (the reporter replaces it with the last known state before this).
    IndicatorLEDState: report.indicatorLED === 'UNKNOWN' ? 'LED-OFF' : report.indicatorLED,
    PowerMetric:
      m === undefined
        ? null
        : {
            averageconsumedwatts: m.averageconsumedwatts,
            intervalinmin: m.intervalinmin,
            maxconsumedwatts: m.maxconsumedwatts,
            minconsumedwatts: m.minconsumedwatts,
          },
    PowerSupplies: report.powerSupplies.map((p) => ({ status: { health: p.status.health, state: p.status.state } })),
  };
}

/** A BMC read in this cycle: its lease address and its report. */
export interface BmcRead {
  ip: string;
  mac?: string;
  report: BmcReport;
}

/** Which BMC holds which machine UUID across cycles, and whether a BMC address holds a lease now. */
export interface UuidOwnership {
  owners: UuidOwners;
  isLeased: (ip: string) => boolean;
}

export interface ReportBody {
  /** keyed by machine UUID */
  reports: Record<string, MachineIpmiReport>;
  /** a second BMC with a UUID already in the body; the first one's entry is kept */
  duplicates: Array<{ uuid: string; bmcs: [kept: string, dropped: string] }>;
  /** entries with values cut by `boundEntry` */
  bounded: Array<{ bmc: string; uuid: string; cut: string[] }>;
  /** a BMC that reports a UUID a known BMC with a lease holds: left out, the known one kept */
  conflicts: Array<{ uuid: string; known: string; claimant: string; mac?: string }>;
  /** a UUID taken over by another BMC because the known one's lease is gone, or it reports another machine now */
  moves: Array<{ uuid: string; previous: string; bmc: string; why: 'lease gone' | 'reports another machine' }>;
}

/**
 * Builds the body in the order the BMCs were read: a UUID stays with the BMC known for it while
 * that BMC holds a lease and does not report another UUID in this cycle (`ownership`, updated
 * here: BMCs whose addresses DHCP swapped, or a BMC back at a new address whose old one went to
 * another BMC, each report their own machine again), else the first BMC of a UUID in this cycle
 * wins; an unread identify LED becomes the machine's last known state (`ledMemory`), every entry
 * is bounded.
 */
export function assembleReportBody(reads: readonly BmcRead[], ledMemory?: LedMemory, ownership?: UuidOwnership): ReportBody {
  const body: ReportBody = { reports: {}, duplicates: [], bounded: [], conflicts: [], moves: [] };
  const uuidAt = new Map(reads.map((r) => [r.ip, r.report.uuid]));
  // the known BMC still holds the UUID: leased, and not read this cycle (unknown) or reporting it again
  const holds = (known: string, uuid: string): boolean => ownership!.isLeased(known) && (uuidAt.get(known) ?? uuid) === uuid;
  for (const { ip, mac, report } of reads) {
    const known = ownership?.owners.get(report.uuid);
    if (known !== undefined && known !== ip && holds(known, report.uuid)) {
      body.conflicts.push({ uuid: report.uuid, known, claimant: ip, ...(mac !== undefined ? { mac } : {}) });
      continue;
    }
    const existing = body.reports[report.uuid];
    if (existing) {
      body.duplicates.push({ uuid: report.uuid, bmcs: [existing.BMCIp, ip] });
      continue;
    }
    if (known !== undefined && known !== ip) body.moves.push({ uuid: report.uuid, previous: known, bmc: ip, why: ownership!.isLeased(known) ? 'reports another machine' : 'lease gone' });
    ownership?.owners.set(report.uuid, ip);
    const indicatorLED = ledMemory?.resolve(report.uuid, report.indicatorLED) ?? report.indicatorLED;
    const { entry, cut } = boundEntry(toIpmiReport(ip, { ...report, indicatorLED }));
    if (cut.length > 0) body.bounded.push({ bmc: ip, uuid: report.uuid, cut });
    body.reports[report.uuid] = entry;
  }
  return body;
}
