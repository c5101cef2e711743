/**
 * The outcome of a BMC image whose task vanished. A BMC reboots itself to run new firmware and
 * forgets its tasks and sessions, so its task may never read Completed: bmcweb
 * (update_service.hpp: "as firmware update often results in a reboot, the task may never
 * 'complete' unless it is an error"), bmclib PR #222 (ASRockRack: "the BMC resets a few seconds
 * after an update"). When the task is lost that way (TaskLostError), the Manager's
 * FirmwareVersion, read before and after, decides: changed is Completed, unchanged is a failure.
 */
import { checkMs, deadline, sleep } from '../deadline.js';
import { BmcError, isBmcError } from '../errors.js';
import { readManager } from '../redfish/resources.js';
import type { RedfishClient } from '../redfish/session.js';
import { isTransient, TaskLostError } from '../redfish/task.js';

type Reader = Pick<RedfishClient, 'get'>;

export interface BmcImageOptions {
  signal?: AbortSignal;
  /** Wait between reads of the Manager while the restarted BMC still answers 5xx. Default 2000. */
  retryMs?: number;
  /** How long the restarted BMC may take to answer the Manager read. Default 10 minutes. */
  readTimeoutMs?: number;
  /** Told the version the BMC restarted with, when it changed. */
  onRestarted?: (version: string) => void;
}

/** The Manager's FirmwareVersion before the update; undefined when unreadable (a lost task then stays unverified). */
async function versionBefore(client: Reader, managerPath: string, signal: AbortSignal | undefined): Promise<string | undefined> {
  try {
    return (await readManager(client, managerPath, signal ? { signal } : {})).firmwareVersion;
  } catch (err) {
    if (isBmcError(err, 'ABORTED') || isBmcError(err, 'TIMEOUT')) throw err;
    return undefined;
  }
}

/** The Manager's FirmwareVersion once the restarted BMC answers; the client logs in again by itself on a 401. */
async function versionAfterRestart(client: Reader, managerPath: string, options: BmcImageOptions): Promise<string | undefined> {
  const retryMs = checkMs('retryMs', options.retryMs, 2000, 600_000);
  const what = `firmware version of ${managerPath} after the BMC restarted`;
  const dl = deadline(checkMs('readTimeoutMs', options.readTimeoutMs, 600_000), what, options.signal);
  try {
    for (;;) {
      try {
        return (await readManager(client, managerPath, { signal: dl.signal })).firmwareVersion;
      } catch (err) {
        if (dl.signal.aborted || !isTransient(err)) throw err;
      }
      await sleep(retryMs, dl.signal, what);
    }
  } finally {
    dl.dispose();
  }
}

/**
 * Runs `update` (a BMC image); if its task is lost, compares the Manager's FirmwareVersion with
 * the one read before: a new version means the update worked, the same one (or none) fails as
 * unverified. Other failures pass through unchanged.
 */
export async function updateBmcImage(client: Reader, managerPath: string | undefined, update: () => Promise<unknown>, options: BmcImageOptions = {}): Promise<void> {
  const before = managerPath === undefined ? undefined : await versionBefore(client, managerPath, options.signal);
  try {
    await update();
    return;
  } catch (err) {
    if (!(err instanceof TaskLostError) || managerPath === undefined || before === undefined) throw err;
    let after: string | undefined;
    try {
      after = await versionAfterRestart(client, managerPath, options);
    } catch (readErr) {
      throw new BmcError('PROTOCOL', `the BMC restarted; its firmware version could not be read (outcome unverified): ${(readErr as Error).message}`, { cause: readErr });
    }
    if (after === undefined || after === before) {
      throw new BmcError('PROTOCOL', `the BMC restarted; firmware version unchanged (outcome unverified): ${managerPath} FirmwareVersion ${after ?? 'missing'}, before the update ${before} (${err.message})`, { cause: err });
    }
    options.onRestarted?.(after);
  }
}
