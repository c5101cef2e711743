/** Prometheus metrics of BMC discovery and reporting. */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { stateWriteFailureCounts } from '../outband/state-write-failures.js';
import type { TrustMetrics } from '../outband/trust.js';
import { counterOfTotals } from '../net/counter-of-totals.js';
import type { ReportWorkerStats } from './worker-pool.js';

export interface ReportMetrics {
  cycles: Counter<'trigger' | 'outcome'>;
  cycleSeconds: Histogram<'trigger'>;
  bmcsDiscovered: Gauge;
  bmcsReachable: Gauge;
  bmcFailures: Counter<'code'>;
  leaseErrors: Counter;
  leaseEntriesSkipped: Counter;
  lastSuccess: Gauge;
  entriesBounded: Counter;
  entriesRejected: Counter;
  entriesNotApplied: Counter;
  splitsStopped: Counter;
  readHandlingErrors: Counter<'where'>;
  uuidConflicts: Counter;
  bmcsSkipped: Counter<'reason'>;
  guidOrderContradicted: Counter;
  redfishHedges: Counter<'outcome'>;
  concurrencyLimit: Gauge;
}

export function createReportMetrics(registry: Registry): ReportMetrics {
  const registers = [registry];
  return {
    cycles: new Counter({ name: 'metal_bmc_report_cycles_total', help: 'Report cycles by trigger (interval, leases) and outcome (ok, partial, failed)', labelNames: ['trigger', 'outcome'], registers }),
    cycleSeconds: new Histogram({ name: 'metal_bmc_report_cycle_duration_seconds', help: 'Duration of a report cycle: reading every BMC and posting to metal-api', labelNames: ['trigger'], buckets: [0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300], registers }),
    bmcsDiscovered: new Gauge({ name: 'metal_bmc_bmcs_discovered', help: 'BMCs with an active lease after filtering', registers }),
    bmcsReachable: new Gauge({ name: 'metal_bmc_bmcs_reachable', help: 'BMCs read successfully in the last full cycle', registers }),
    bmcFailures: new Counter({ name: 'metal_bmc_bmc_read_failures_total', help: 'BMC reads that failed, by error code', labelNames: ['code'], registers }),
    leaseErrors: new Counter({ name: 'metal_bmc_lease_file_errors_total', help: 'Lease file reads or parses that failed (the last good view is kept)', registers }),
    leaseEntriesSkipped: new Counter({ name: 'metal_bmc_lease_entries_skipped_total', help: 'Lease file entries (ISC lease declarations, Kea rows) that cannot be read and were left out, the rest of the file read (as dhcpd and Kea skip them); each counted once per file and line', registers }),
    entriesBounded: new Counter({ name: 'metal_bmc_report_entries_bounded_total', help: 'BMC report entries with strings, power supplies or readings beyond any real value, cut before sending', registers }),
    entriesRejected: new Counter({ name: 'metal_bmc_report_entries_rejected_total', help: 'BMC report entries metal-api refused even alone (400, 413); left out of the report', registers }),
    entriesNotApplied: new Counter({ name: 'metal_bmc_report_entries_not_applied_total', help: "BMC report entries metal-api answered 200 for but named neither created nor updated: taken, not applied (a machine of another partition, a create or update that failed; metal-api's log says which). Not counted as reported", registers }),
    splitsStopped: new Counter({ name: 'metal_bmc_report_splits_stopped_total', help: 'Refused reports (400, 413) whose split reached its bound of posts in one cycle (1 + 4·⌈log2 entries⌉): the entries not posted yet fail the cycle and go out with the next one', registers }),
    readHandlingErrors: new Counter({ name: 'metal_bmc_report_read_handling_errors_total', help: "Exceptions thrown while a report cycle handled a BMC's finished read, by where: observer (the status page, on a read, the report body or the entries metal-api took; they count as they were), read (a report worker's answer, the read order; the BMC is left out of that report), second-connection (opening the second Redfish connections of the reads still running once every BMC has started). Logged with the BMC; the cycle goes on", labelNames: ['where'], registers }),
    uuidConflicts: new Counter({ name: 'metal_bmc_uuid_conflicts_total', help: 'Reports of a machine UUID that another BMC (another IP) already reports; the known BMC is kept while its address is leased to the same MAC', registers }),
    bmcsSkipped: new Counter({ name: 'metal_bmc_bmcs_skipped_total', help: 'BMCs read but left out of a report, by reason (no-uuid: neither Redfish nor IPMI gave a machine UUID; placeholder-uuid: only all-zero, all-FF or BIOS-default ones; unconfirmed-ipmi-uuid: read over IPMI alone, its GUID not confirmed by an earlier read with Redfish)', labelNames: ['reason'], registers }),
    guidOrderContradicted: new Counter({ name: 'metal_bmc_guid_order_contradicted_total', help: 'BMC reads whose IPMI GUID, in the order METAL_BMC_GUID_ENCODING lists for its vendor, is another UUID than the one decided from Redfish: read over IPMI alone, such a BMC would be reported as another machine (the setting is wrong for it; the report keeps the UUID from Redfish)', registers }),
    redfishHedges: new Counter({ name: 'metal_bmc_redfish_hedges_total', help: 'Redfish GETs of report reads sent a second time after METAL_BMC_REDFISH_HEDGE_AFTER without an answer, by outcome (won: the second copy answered first; lost: the first did; failed: the second copy got no answer, or a server error); counted for the reads that gave a report', labelNames: ['outcome'], registers }),
    lastSuccess: new Gauge({ name: 'metal_bmc_report_last_success_timestamp_seconds', help: 'Unix time of the last report metal-api accepted', registers }),
    concurrencyLimit: new Gauge({ name: 'metal_bmc_report_concurrency_limit', help: 'BMCs read at once when the last report cycle had started all of its BMCs: where the adaptive limit settled, and where the next cycle starts (at most METAL_BMC_REPORT_CONCURRENCY)', registers }),
  };
}

/** Metrics of trust on first use (src/outband/trust.ts). */
export function createTrustMetrics(registry: Registry): TrustMetrics {
  const registers = [registry];
  return {
    refused: new Counter({ name: 'metal_bmc_trust_refused_total', help: 'BMC connections refused before credentials were sent: another certificate (redfish) or SSH host key (ssh) than recorded, no IPMI proof of the password on first contact (ipmi-proof), a record in the trust file that cannot be used (record), or a first contact while the trust file cannot be read (unreadable-file)', labelNames: ['check'], registers }),
    firstUse: new Counter({ name: 'metal_bmc_trust_first_use_total', help: 'BMC certificates and SSH host keys recorded on first contact, by proof (ipmi: RAKP 2 proved the password; none: no IPMI answer, trusted on first use)', labelNames: ['what', 'proof'], registers }),
  };
}

/** What a state file shared with the CLI says of itself (outband/trust.ts, report/owners.ts). */
export interface StateFileCondition {
  /** there but cannot be read (EACCES: root's, EIO): not written over while so */
  unreadable(): unknown;
  /** changes waiting in memory for a write that failed or was held */
  unwritten(): unknown;
  /** a copy that did not parse, moved aside, still there */
  keptAside(): unknown;
}

/** Whether each state file can be read and holds what memory does (by its name in METAL_BMC_STATE_DIR). */
export function registerStateFileMetrics(registry: Registry, files: Record<string, StateFileCondition>): void {
  new Gauge({
    name: 'metal_bmc_state_file_problem',
    help: 'A state file in METAL_BMC_STATE_DIR that the daemon cannot keep: unreadable (1: it is there but cannot be read, such as root\'s 0600 after a CLI run as root, and is not written over until it can be; BMCs are checked against memory), unwritten (1: changes wait in memory, lost at a stop, because a write failed or the file is unreadable), kept-aside (1: the file did not parse and was moved to <file>.unreadable-<ms>, which is still there: what it recorded is not used, and a BMC without a trust record in memory is refused, a machine UUID without a known BMC left out; put it back fixed or remove it); 0 otherwise',
    labelNames: ['file', 'problem'],
    registers: [registry],
    collect() {
      for (const [file, f] of Object.entries(files)) {
        // unreadable first: the trust file is read again by it, and a read that succeeds writes what waited
        this.set({ file, problem: 'unreadable' }, f.unreadable() ? 1 : 0);
        this.set({ file, problem: 'unwritten' }, f.unwritten() ? 1 : 0);
        this.set({ file, problem: 'kept-aside' }, f.keptAside() ? 1 : 0);
      }
    },
  });
}

/** Metrics of the report worker threads (worker-pool.ts), per worker slot. */
export function registerReportWorkerMetrics(registry: Registry, stats: () => ReportWorkerStats[]): void {
  new Gauge({
    name: 'metal_bmc_report_worker_heap_bytes',
    help: 'JavaScript heap in use of each report worker thread, as it last said with a read',
    labelNames: ['worker', 'thread_id'],
    registers: [registry],
    collect() {
      this.reset();
      for (const s of stats()) if (s.alive) this.set({ worker: String(s.worker), thread_id: String(s.threadId) }, s.heapBytes);
    },
  });
  const total = (name: string, help: string, value: (s: ReportWorkerStats) => number) => counterOfTotals(registry, { name, help, label: 'worker', rows: stats, labelOf: (s) => String(s.worker), value });
  total('metal_bmc_report_worker_reads_total', 'BMC reads handed to each report worker thread', (s) => s.reads);
  total('metal_bmc_report_worker_restarts_total', 'report worker threads started again after they died', (s) => s.restarts);
}

/** The Redfish sessions kept open between report reads (outband/redfish-sessions.ts): one per BMC at most. */
export function registerRedfishSessionMetrics(registry: Registry, kept: () => number): void {
  new Gauge({
    name: 'metal_bmc_report_redfish_sessions_kept',
    help: 'BMCs whose Redfish session metal-bmc keeps open between report reads (METAL_BMC_REPORT_REDFISH_SESSION_MAX_AGE)',
    registers: [registry],
    collect() {
      this.set(kept());
    },
  });
}

/** Failed writes of the state files (outband/state-write-failures.ts: the trust file, the UUID owners, the Redfish sessions, the machine event position, the firmware jobs). */
export function registerStateWriteMetrics(registry: Registry): void {
  counterOfTotals(registry, {
    name: 'metal_bmc_state_write_failures_total',
    help: 'Writes of a state file in METAL_BMC_STATE_DIR that failed (a read-only or full file system), by file base name; kept in memory meanwhile. The first failure of a run is logged, and the write that succeeds after it',
    label: 'file',
    rows: stateWriteFailureCounts,
    labelOf: ([file]) => file,
    value: ([, failures]) => failures,
  });
}
