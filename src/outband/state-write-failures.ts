/**
 * Failed writes of the state files (METAL_BMC_STATE_DIR): a folder that cannot be written (a
 * read-only file system, a full disk) fails every burst, about once a second for the machine
 * event position. Each failure is counted by the file's base name
 * (`metal_bmc_state_write_failures_total{file}`, a bounded set of names), and logged once per
 * episode: the first failure, then one line when the file is written again.
 */
import { basename } from 'node:path';
import type { Logger } from '../log.js';

/**
 * Failures by file base name since the process started. Process-wide, as the files are: each
 * writer counts here without its opener taking the daemon's metrics registry (the daemon reads
 * them when scraped, `registerStateWriteMetrics`).
 */
const failures = new Map<string, number>();

/** the failures of each state file so far, by base name */
export function stateWriteFailureCounts(): Array<[file: string, failures: number]> {
  return [...failures];
}

export interface StateWriteEpisodes {
  /** a write failed: counted; logged when the last write did not fail */
  failed(err: Error): void;
  /** a write succeeded: logged when the ones before it failed */
  succeeded(): void;
}

/** The writes of `file`; `failure` is the error line's message (what is kept where meanwhile). */
export function stateWriteEpisodes(o: { file: string; failure: string; logger?: Pick<Logger, 'error' | 'info'> | undefined }): StateWriteEpisodes {
  const name = basename(o.file);
  /** failures since the last write that succeeded */
  let failing = 0;
  return {
    failed(err) {
      failures.set(name, (failures.get(name) ?? 0) + 1);
      if (failing++ === 0) o.logger?.error({ file: o.file, err: err.message, code: (err as NodeJS.ErrnoException).code }, o.failure);
    },
    succeeded() {
      if (failing === 0) return;
      o.logger?.info({ file: o.file, failures: failing }, 'state file written again');
      failing = 0;
    },
  };
}
