/**
 * An advisory lock between processes of this host over a state file that more than one of them
 * rewrites (the BMC trust file and the UUID owners file: the daemon, and `metal-bmc bmc trust
 * --reset` or `bmc owners --reset`): a lock file created exclusively (`wx`) beside it, holding
 * the owner's pid, when it was taken and a random token.
 * Each writer reads the file again, lays its own changes over it and writes it while it holds the
 * lock, so neither overwrites what the other wrote meanwhile. A lock whose owner is gone (the pid
 * does not exist, or is this process's pid with a token it never wrote: a run before a restart,
 * as a container's pid 1 always is) or that is older than `staleMs` (an owner that hangs; writes
 * take milliseconds) is removed and taken. Only the lock file a writer made is removed after it.
 * Two processes that find the same stale lock at the same moment may both take it (each removes
 * it, then creates its own): a crash during a write, met by two writers at once, is not guarded.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, open, readFile, rm, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { BmcError } from '../errors.js';
import { ownLikeFolder } from './private-file.js';

export interface FileLockOptions {
  /** how long to wait for the lock (default 5 s); then BUSY */
  timeoutMs?: number;
  /** a lock older than this is stale (default 30 s) */
  staleMs?: number;
  /** how often to look again while another process holds it (default 20 ms) */
  retryMs?: number;
}

/** The owner recorded in a lock file: `pid time token` (ms since the epoch; a random token per take). */
export function parseLockOwner(text: string): { pid: number; takenAt: number; token: string } | undefined {
  const m = /^(\d{1,10}) (\d{1,16}) ([0-9a-f]{16})\n?$/.exec(text);
  return m ? { pid: Number(m[1]), takenAt: Number(m[2]), token: m[3]! } : undefined;
}

/** this process's locks in flight, by token: a lock with our pid and another token is a crashed run's (in a container every run is pid 1) */
const ours = new Set<string>();

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it exists, as another user's
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Runs `fn` while this process holds `lockFile`; removes it afterwards. */
export async function withFileLock<T>(lockFile: string, fn: () => Promise<T>, o: FileLockOptions = {}): Promise<T> {
  const timeoutMs = o.timeoutMs ?? 5000;
  const staleMs = o.staleMs ?? 30_000;
  const retryMs = o.retryMs ?? 20;
  const until = Date.now() + timeoutMs;
  await mkdir(dirname(lockFile), { recursive: true });
  const token = randomBytes(8).toString('hex');
  for (;;) {
    try {
      const handle = await open(lockFile, 'wx', 0o600);
      try {
        // root's lock in the daemon's folder (a CLI run as root) stays readable by the daemon, which judges it stale by its pid
        await ownLikeFolder(handle, dirname(lockFile));
        await handle.writeFile(`${process.pid} ${Date.now()} ${token}\n`);
      } finally {
        await handle.close();
      }
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const read = await readLock(lockFile);
    if (read === 'gone') continue; // released meanwhile
    if (typeof read !== 'string') {
      // a lock this process cannot read (root's 0600, left by a CLI run as root before its locks took
      // the folder's owner): judged by its age, not looked at again at once, which spun without end
      const age = await stat(lockFile).then((s) => Date.now() - s.mtimeMs, () => undefined);
      if (age === undefined) continue;
      if (age > staleMs) {
        await rm(lockFile, { force: true });
        continue;
      }
      if (Date.now() > until) throw new BmcError('BUSY', `${lockFile} cannot be read (${read.code}) and is not ${staleMs} ms old yet`);
      await new Promise((resolve) => setTimeout(resolve, retryMs));
      continue;
    }
    const text = read;
    const owner = parseLockOwner(text);
    // our pid with a token that is none of ours: a run of this program before a restart (a
    // container's pid 1 again). An unreadable lock file is judged by its age alone, once it had
    // time to be written.
    const crashedRun = owner !== undefined && owner.pid === process.pid && !ours.has(owner.token);
    const stale = owner ? crashedRun || !alive(owner.pid) || Date.now() - owner.takenAt > staleMs : Date.now() + retryMs > until;
    if (stale) {
      await removeIfStill(lockFile, text);
      continue;
    }
    if (Date.now() > until) throw new BmcError('BUSY', `${lockFile} is held by process ${owner!.pid} since ${new Date(owner!.takenAt).toISOString()}`);
    await new Promise((resolve) => setTimeout(resolve, retryMs));
  }
  ours.add(token);
  try {
    return await fn();
  } finally {
    ours.delete(token);
    // only our own lock: one a stale-lock check removed and another writer took meanwhile stays
    const text = await readFile(lockFile, 'utf8').catch(() => undefined);
    if (text !== undefined && parseLockOwner(text)?.token === token) await rm(lockFile, { force: true });
  }
}

/** The lock file's text, 'gone' when there is none, or why it cannot be read. */
async function readLock(lockFile: string): Promise<string | 'gone' | { code: string }> {
  try {
    return await readFile(lockFile, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'error';
    return code === 'ENOENT' ? 'gone' : { code };
  }
}

/** Removes the lock file if it still holds `text` (not a lock another writer took since it was read). */
async function removeIfStill(lockFile: string, text: string): Promise<void> {
  const now = await readFile(lockFile, 'utf8').catch(() => undefined);
  if (now === text) await rm(lockFile, { force: true });
}
