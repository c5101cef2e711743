/**
 * The outcome of a BMC image whose task vanished or was never named. A BMC reboots itself to run
 * new firmware and forgets its tasks and sessions, so its task may never read Completed: bmcweb
 * (update_service.hpp: "as firmware update often results in a reboot, the task may never
 * 'complete' unless it is an error"), bmclib PR #222 (ASRockRack: "the BMC resets a few seconds
 * after an update"). When the task is lost that way (TaskLostError), the Manager's
 * FirmwareVersion, read before and after, decides: changed is Completed, unchanged is a failure.
 * A BMC that took the image without naming a task at all (UntracedUpdateError: iLO 5's
 * SimpleUpdate answers 200 and flashes in the background) is still flashing when it answers: the
 * Manager is read every `pollMs` until its FirmwareVersion differs from the one before, for at most
 * `versionWaitMs`; a version that never changes (a bad image, the same version again) fails as
 * unverified, as an operator checking by hand would find.
 */
import { checkMs, deadline, sleep } from '../deadline.js';
import { BmcError, isBmcError } from '../errors.js';
import { readManager } from '../redfish/resources.js';
import type { RedfishClient } from '../redfish/session.js';
import { isTransient, TaskLostError, UntracedUpdateError } from '../redfish/task.js';

type Reader = Pick<RedfishClient, 'get'>;

export interface BmcImageOptions {
  signal?: AbortSignal;
  /** Wait between reads of the Manager while the restarted BMC still answers 5xx. Default 2000. */
  retryMs?: number;
  /** How long the restarted BMC may take to answer the Manager read. Default 10 minutes. */
  readTimeoutMs?: number;
  /** Told the version the BMC restarted with, when it changed. */
  onRestarted?: (version: string) => void;
  /** Told once that the BMC named no task and its FirmwareVersion is watched instead. */
  onWatching?: (before: string) => void;
  /** Without a task: between reads of the Manager while its version is the old one. Default 15 s. */
  pollMs?: number;
  /** Without a task: how long the version may take to change (flash, restart). Default 20 minutes. */
  versionWaitMs?: number;
  /** The version before the update, known already (a job watched again after a restart of metal-bmc): not read again. */
  before?: string;
  /** Told the version read before the update (kept to watch the update again after a restart). */
  onBefore?: (version: string) => void;
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

/**
 * Reads the Manager's FirmwareVersion every `everyMs`, for at most `forMs`, until `wanted` takes a
 * read's version; reads that fail as a restarting BMC's do (5xx, refused, timed out, a login refused
 * while the client will ask again: redfish/session.ts ReloginPendingError) are waited through. Resolves with that version, or with `timedOut` (the deadline's error, and the last
 * version read) when the wait's own deadline ends first; a read failing otherwise and the
 * caller's abort reject.
 */
async function pollVersion(
  client: Reader,
  managerPath: string,
  o: { everyMs: number; forMs: number; what: string; signal: AbortSignal | undefined; wanted: (version: string | undefined) => boolean },
): Promise<{ version: string | undefined } | { timedOut: Error; last: string | undefined }> {
  const dl = deadline(o.forMs, o.what, o.signal);
  let last: string | undefined;
  try {
    for (;;) {
      try {
        const version = (await readManager(client, managerPath, { signal: dl.signal })).firmwareVersion;
        if (o.wanted(version)) return { version };
        last = version ?? last;
      } catch (err) {
        if (!dl.signal.aborted && !isTransient(err)) throw err;
      }
      try {
        if (!dl.signal.aborted) await sleep(o.everyMs, dl.signal, o.what);
      } catch (err) {
        if (!dl.signal.aborted) throw err;
      }
      if (dl.signal.aborted) {
        // the caller's own end (shutdown, the job's deadline) is theirs, not the wait's
        if (o.signal?.aborted) throw o.signal.reason instanceof Error ? o.signal.reason : new BmcError('ABORTED', `${o.what}: aborted`);
        return { timedOut: dl.signal.reason instanceof Error ? dl.signal.reason : new BmcError('TIMEOUT', `${o.what}: no answer within ${o.forMs} ms`), last };
      }
    }
  } finally {
    dl.dispose();
  }
}

/**
 * The Manager's FirmwareVersion once the restarted BMC answers; the client logs in again by itself
 * on a 401, and asks again a minute later where the BMC back from its restart refused that login.
 */
async function versionAfterRestart(client: Reader, managerPath: string, options: BmcImageOptions): Promise<string | undefined> {
  const polled = await pollVersion(client, managerPath, {
    everyMs: checkMs('retryMs', options.retryMs, 2000, 600_000),
    forMs: checkMs('readTimeoutMs', options.readTimeoutMs, 600_000),
    what: `firmware version of ${managerPath} after the BMC restarted`,
    signal: options.signal,
    wanted: () => true,
  });
  if ('timedOut' in polled) throw polled.timedOut;
  return polled.version;
}

/**
 * The Manager's FirmwareVersion once it is no longer `before`, read every `pollMs` for at most
 * `versionWaitMs` (pollVersion). Throws when the wait ends with the version unchanged or a read
 * failing otherwise.
 */
async function versionChangedFrom(client: Reader, managerPath: string, before: string, options: BmcImageOptions, why = 'the BMC named no task'): Promise<string> {
  const waitMs = checkMs('versionWaitMs', options.versionWaitMs, 20 * 60_000);
  let polled;
  try {
    polled = await pollVersion(client, managerPath, {
      everyMs: checkMs('pollMs', options.pollMs, 15_000, 600_000),
      forMs: waitMs,
      what: `firmware version of ${managerPath} to change from ${before}`,
      signal: options.signal,
      wanted: (version) => version !== undefined && version !== before,
    });
  } catch (err) {
    if (options.signal?.aborted) throw err;
    throw new BmcError('PROTOCOL', `${why}; its firmware version could not be read (outcome unverified): ${(err as Error).message}`, { cause: err });
  }
  if ('version' in polled) return polled.version!;
  throw new BmcError('PROTOCOL', `${why}; firmware version unchanged after ${Math.round(waitMs / 1000)} s (outcome unverified): ${managerPath} FirmwareVersion ${polled.last ?? before}`);
}

/**
 * Runs `update` (a BMC image); if its task is lost, compares the Manager's FirmwareVersion with
 * the one read before: a new version means the update worked, the same one (or none) fails as
 * unverified. If the BMC named no task, waits for the version to change (versionChangedFrom).
 * Other failures pass through unchanged.
 */
export async function updateBmcImage(client: Reader, managerPath: string | undefined, update: () => Promise<unknown>, options: BmcImageOptions = {}): Promise<void> {
  const before = options.before ?? (managerPath === undefined ? undefined : await versionBefore(client, managerPath, options.signal));
  if (before !== undefined && options.before === undefined) options.onBefore?.(before);
  try {
    await update();
    return;
  } catch (err) {
    if (managerPath === undefined || before === undefined) throw err;
    if (err instanceof UntracedUpdateError) {
      options.onWatching?.(before);
      const after = await versionChangedFrom(client, managerPath, before, options);
      options.onRestarted?.(after);
      return;
    }
    if (!(err instanceof TaskLostError)) throw err;
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

/**
 * A BMC image sent by an earlier run of metal-bmc before the BMC named its task (a restart cut the
 * job there): the Manager's FirmwareVersion decides as for an update without a task
 * (versionChangedFrom): a version other than `before` is Completed; unchanged for `versionWaitMs`
 * fails as unverified.
 */
export async function watchBmcVersion(client: Reader, managerPath: string, before: string, options: BmcImageOptions = {}): Promise<void> {
  options.onWatching?.(before);
  const after = await versionChangedFrom(client, managerPath, before, options, 'no task of the update is known (metal-bmc restarted before the BMC named one)');
  options.onRestarted?.(after);
}
