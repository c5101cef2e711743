/**
 * One report cycle: read every BMC (bounded concurrency, a deadline each), then post one
 * report to metal-api. A BMC that fails is logged and skipped; it never blocks the others.
 */
import { deadline } from '../deadline.js';
import { abortError, BmcError } from '../errors.js';
import type { Lease } from '../leases/types.js';
import type { Logger } from '../log.js';
import type { MetalApiClient } from '../metalapi/client.js';
import { toIpmiReport, type MachineIpmiReport } from '../metalapi/types.js';
import type { BmcReport, Outband } from '../outband/types.js';
import type { LedMemory } from './led-memory.js';
import { mapLimit } from './limit.js';
import type { ReportMetrics } from './metrics.js';

export interface CycleDeps {
  partitionId: string;
  connect: (ip: string, signal: AbortSignal) => Promise<Outband>;
  metalApi: Pick<MetalApiClient, 'ipmiReport'>;
  concurrency: number;
  bmcTimeoutMs: number;
  logger: Logger;
  metrics?: ReportMetrics;
  /** last known identify LED per machine, for BMCs whose LED cannot be read (the reporter keeps one across cycles) */
  ledMemory?: LedMemory;
}

export interface CycleResult {
  read: number;
  failed: number;
  reported: number;
  created: string[];
  updated: string[];
  durationMs: number;
}

export async function readBmc(deps: CycleDeps, lease: Lease, signal?: AbortSignal): Promise<BmcReport | undefined> {
  const bmcDeadline = deadline(deps.bmcTimeoutMs, `reading BMC ${lease.ip}`, signal);
  const combined = bmcDeadline.signal;
  let bmc: Outband | undefined;
  try {
    bmc = await deps.connect(lease.ip, combined);
    const report = await bmc.info({ signal: combined });
    if (report.missing.length > 0) deps.logger.debug({ bmc: lease.ip, mac: lease.mac, missing: report.missing }, 'BMC report is partial');
    return report;
  } catch (caught) {
    // Anything that escapes as a bare abort is the per-BMC deadline (or shutdown) firing.
    const err = caught instanceof BmcError || !combined.aborted ? caught : abortError(combined, `reading BMC ${lease.ip}`);
    const code = err instanceof BmcError ? err.code : 'UNKNOWN';
    deps.metrics?.bmcFailures.inc({ code });
    deps.logger.warn({ bmc: lease.ip, mac: lease.mac, code, err: err instanceof Error ? err.message : String(err) }, 'cannot read BMC, skipped in this report');
    return undefined;
  } finally {
    bmcDeadline.dispose();
    await bmc?.close();
  }
}

export async function runReportCycle(deps: CycleDeps, leases: readonly Lease[], signal?: AbortSignal): Promise<CycleResult> {
  const started = Date.now();
  const results = await mapLimit(leases, deps.concurrency, (lease) => (signal?.aborted ? Promise.resolve(undefined) : readBmc(deps, lease, signal)));
  const reports: Record<string, MachineIpmiReport> = {};
  let read = 0;
  results.forEach((report, i) => {
    if (!report) return;
    read++;
    const ip = leases[i]!.ip;
    const existing = reports[report.uuid];
    if (existing) deps.logger.warn({ uuid: report.uuid, bmcs: [existing.BMCIp, ip] }, 'two BMCs report the same machine UUID; keeping the first');
    else {
      const indicatorLED = deps.ledMemory?.resolve(report.uuid, report.indicatorLED) ?? report.indicatorLED;
      reports[report.uuid] = toIpmiReport(ip, { ...report, indicatorLED });
    }
  });
  const result: CycleResult = { read, failed: leases.length - read, reported: Object.keys(reports).length, created: [], updated: [], durationMs: 0 };
  if (result.reported > 0) {
    const answer = await deps.metalApi.ipmiReport({ partitionid: deps.partitionId, reports }, signal ? { signal } : {});
    result.created = answer.created;
    result.updated = answer.updated;
    deps.metrics?.lastSuccess.set(Date.now() / 1000);
  }
  result.durationMs = Date.now() - started;
  return result;
}
