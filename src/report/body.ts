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
import type { UuidOwner, UuidOwners } from './owners.js';

/**
 * Report fields the Go daemon never sends from Redfish (go-hal's redfish BMC() leaves them empty):
 * metal-api then keeps what metal-hammer registered in-band, the FRU's board part number (by which
 * metal-api finds firmware for the machine, with board_mfg) and ipmitool's firmware revision
 * (which metalctl compares). Redfish's chassis Model or serial and its Manager FirmwareVersion
 * (`7.10.30.00` where ipmitool says `7.10`) would replace them every cycle. Taken from IPMI
 * (Supermicro, Novarion) they are sent.
 */
export const NOT_SENT_FROM_REDFISH = ['bmcVersion', 'board_part_number', 'board_mfg_serial'] as const;

/** The report's FRU and BMC version without the NOT_SENT_FROM_REDFISH fields that came from Redfish. */
function goCompatibleFields(report: BmcReport): { bmcVersion: string; fru: BmcReport['fru'] } {
  const fromRedfish = (field: (typeof NOT_SENT_FROM_REDFISH)[number]) => report.fieldSources?.[field] === 'redfish';
  const fru = { ...report.fru };
  for (const field of NOT_SENT_FROM_REDFISH) if (field !== 'bmcVersion' && fromRedfish(field)) delete fru[field];
  return { bmcVersion: fromRedfish('bmcVersion') ? '' : report.bmcVersion, fru };
}

/** One machine's entry of the report body, built from what the outband layer read. */
export function toIpmiReport(bmcIp: string, report: BmcReport): MachineIpmiReport {
  const m = report.powerMetric;
  const { bmcVersion, fru } = goCompatibleFields(report);
  return {
    BMCIp: bmcIp,
    BMCVersion: bmcVersion,
    BIOSVersion: report.biosVersion,
    FRU: toMetalFru(fru),
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

/** Which BMC holds which machine UUID across cycles, whether a BMC address holds a lease now, and for which MAC. */
export interface UuidOwnership {
  owners: UuidOwners;
  isLeased: (ip: string) => boolean;
  /** the MAC the address is leased to now, when the lease names one */
  macAt?: (ip: string) => string | undefined;
  /** whether a MAC holds a lease now, at any address */
  macLeased?: (mac: string) => boolean;
}

export interface ReportBody {
  /** keyed by machine UUID */
  reports: Record<string, MachineIpmiReport>;
  /** the BMC each entry came from, in body order */
  placed: Array<{ uuid: string; ip: string; mac?: string }>;
  /** a second BMC with a UUID already in the body; the first one's entry is kept (`mac`: the dropped one's) */
  duplicates: Array<{ uuid: string; bmcs: [kept: string, dropped: string]; mac?: string }>;
  /** entries with values cut by `boundEntry` */
  bounded: Array<{ bmc: string; uuid: string; cut: string[] }>;
  /**
   * a BMC that reports a UUID a known BMC with a lease holds: left out, the known one kept.
   * `known` is the known BMC's address as recorded, `knownMac` its MAC; `knownMoved`: the claimant
   * sits at that address (DHCP gave it the address) while the known BMC's MAC holds a lease
   * elsewhere, so `known` is the claimant's own address, not where the known BMC is now
   */
  conflicts: Array<{ uuid: string; known: string; knownMac?: string; knownMoved?: true; claimant: string; mac?: string }>;
  /**
   * a BMC that reports a UUID no known BMC holds while the owners file (`file`) cannot be read, or
   * its copy that did not parse is kept aside (`keptAs`): left out, not made its owner, for the
   * file may name another BMC for it
   */
  held: Array<{ uuid: string; claimant: string; mac?: string; file: string; code: string; keptAs?: string }>;
  /** a UUID taken over by another BMC because the known one's lease is gone, or its address is leased to another MAC now */
  moves: Array<{ uuid: string; previous: string; bmc: string; why: 'lease gone' | 'address leased to another MAC' }>;
}

/**
 * Another device reads from the known BMC's address (DHCP gave the address to it) while the known
 * BMC's MAC still holds a lease elsewhere: the BMC moved, the newcomer at its old address is not it.
 */
function otherDeviceAtAddress(owner: UuidOwner, mac: string | undefined, ownership: UuidOwnership): boolean {
  if (owner.mac === undefined || mac === undefined || owner.mac.toLowerCase() === mac.toLowerCase()) return false;
  return ownership.macLeased?.(owner.mac) === true;
}

/** The address is leased to another MAC than the one the BMC had (DHCP moved the BMC elsewhere). */
function anotherMac(owner: UuidOwner, ownership: UuidOwnership): boolean {
  const now = ownership.macAt?.(owner.ip);
  return owner.mac !== undefined && now !== undefined && now.toLowerCase() !== owner.mac.toLowerCase();
}

/**
 * Builds the body in the order the BMCs were read: a UUID stays with the BMC known for it while
 * that BMC's address is leased to the same MAC, and while its MAC holds a lease when another
 * device reads from its old address (`ownership`, updated here: BMCs whose addresses
 * DHCP swapped, or a BMC back at a new address whose old one went to another BMC, report their
 * own machines again), else the first BMC of a UUID in this cycle wins; an unread identify LED
 * becomes the machine's last known state (`ledMemory`), every entry is bounded.
 */
export function assembleReportBody(reads: readonly BmcRead[], ledMemory?: LedMemory, ownership?: UuidOwnership): ReportBody {
  const body: ReportBody = { reports: {}, placed: [], duplicates: [], bounded: [], conflicts: [], held: [], moves: [] };
  for (const { ip, mac, report } of reads) {
    const owner = ownership?.owners.get(report.uuid);
    const atOldAddress = owner !== undefined && owner.ip === ip;
    const claimsKnown = owner !== undefined && (atOldAddress ? otherDeviceAtAddress(owner, mac, ownership!) : ownership!.isLeased(owner.ip) && !anotherMac(owner, ownership!));
    if (owner !== undefined && claimsKnown) {
      body.conflicts.push({
        uuid: report.uuid,
        known: owner.ip,
        ...(owner.mac !== undefined ? { knownMac: owner.mac } : {}),
        ...(atOldAddress ? { knownMoved: true as const } : {}),
        claimant: ip,
        ...(mac !== undefined ? { mac } : {}),
      });
      continue;
    }
    const unknownHeld = owner === undefined ? ownership?.owners.newOwnersHeld?.() : undefined;
    if (unknownHeld !== undefined) {
      body.held.push({ uuid: report.uuid, claimant: ip, ...(mac !== undefined ? { mac } : {}), ...unknownHeld });
      continue;
    }
    const existing = body.reports[report.uuid];
    if (existing) {
      body.duplicates.push({ uuid: report.uuid, bmcs: [existing.BMCIp, ip], ...(mac !== undefined ? { mac } : {}) });
      continue;
    }
    if (owner !== undefined && owner.ip !== ip) body.moves.push({ uuid: report.uuid, previous: owner.ip, bmc: ip, why: ownership!.isLeased(owner.ip) ? 'address leased to another MAC' : 'lease gone' });
    else if (owner?.mac !== undefined && mac !== undefined && owner.mac.toLowerCase() !== mac.toLowerCase()) body.moves.push({ uuid: report.uuid, previous: owner.ip, bmc: ip, why: 'lease gone' });
    ownership?.owners.set(report.uuid, { ip, ...(mac !== undefined ? { mac } : {}) });
    const indicatorLED = ledMemory?.resolve(report.uuid, report.indicatorLED) ?? report.indicatorLED;
    const { entry, cut } = boundEntry(toIpmiReport(ip, { ...report, indicatorLED }));
    if (cut.length > 0) body.bounded.push({ bmc: ip, uuid: report.uuid, cut });
    body.reports[report.uuid] = entry;
    body.placed.push({ uuid: report.uuid, ip, ...(mac !== undefined ? { mac } : {}) });
  }
  return body;
}
