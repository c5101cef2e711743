/** The advisory lock between processes over a state file (src/outband/file-lock.ts). */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { parseLockOwner, withFileLock } from '../../src/outband/file-lock.js';
import { isBmcError } from '../../src/errors.js';
import { makeUnreadable } from '../helpers/unreadable-file.js';

const dirs: string[] = [];
const lockIn = () => {
  const dir = mkdtempSync(join(tmpdir(), 'file-lock-'));
  dirs.push(dir);
  return join(dir, 'state', 'x.json.lock');
};
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** a live process other than this one: the test runner's parent */
const livePid = process.ppid;

/** a pid that no process has now: a child's, after it exited */
function deadPid(): number {
  return Number(spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' }).stdout);
}

describe('file lock', () => {
  it('one holder at a time: the second runs after the first ended, and the lock file is gone afterwards', async () => {
    const lock = lockIn();
    const order: string[] = [];
    let releaseFirst!: () => void;
    const first = withFileLock(lock, async () => {
      order.push('first in');
      await new Promise<void>((resolve) => (releaseFirst = resolve));
      order.push('first out');
    });
    while (order.length === 0) await new Promise((r) => setTimeout(r, 5));
    const second = withFileLock(lock, async () => void order.push('second in'));
    // while the first holds it, the second does not get in (a window, not a wait for an event: nothing is to happen in it)
    expect(await Promise.race([second.then(() => 'second ran'), new Promise((r) => setTimeout(() => r('still waiting'), 100))])).toBe('still waiting');
    expect(order).toEqual(['first in']);
    releaseFirst();
    await Promise.all([first, second]);
    expect(order).toEqual(['first in', 'first out', 'second in']);
    expect(existsSync(lock)).toBe(false);
  });

  it('a lock held by a live process past the timeout is BUSY, naming the process; its lock file is not removed by the one that gave up', async () => {
    const lock = lockIn();
    await withFileLock(lock, async () => undefined); // makes the folder
    writeFileSync(lock, `${livePid} ${Date.now()} 0123456789abcdef\n`);
    const err = await withFileLock(lock, async () => 1, { timeoutMs: 100 }).then(() => undefined, (e: unknown) => e);
    expect(isBmcError(err, 'BUSY')).toBe(true);
    expect((err as Error).message).toMatch(new RegExp(`x\\.json\\.lock is held by process ${livePid} since \\d{4}-`));
    expect(existsSync(lock)).toBe(true);
    rmSync(lock);
    // this process's own lock in flight is not taken for a crashed run's
    await withFileLock(lock, async () => {
      const err = await withFileLock(lock, async () => 1, { timeoutMs: 100 }).then(() => undefined, (e: unknown) => e);
      expect(isBmcError(err, 'BUSY')).toBe(true);
      expect((err as Error).message).toMatch(new RegExp(`x\\.json\\.lock is held by process ${process.pid} since \\d{4}-`));
    });
    expect(existsSync(lock)).toBe(false);
  });

  it('a lock left by a process that is gone, or older than staleMs, is taken', async () => {
    const lock = lockIn();
    await withFileLock(lock, async () => undefined); // makes the folder
    writeFileSync(lock, `${deadPid()} ${Date.now()} 0123456789abcdef\n`);
    expect(await withFileLock(lock, async () => 'taken', { timeoutMs: 1000 })).toBe('taken');
    writeFileSync(lock, `${livePid} ${Date.now() - 60_000} 0123456789abcdef\n`);
    expect(await withFileLock(lock, async () => 'taken', { timeoutMs: 1000, staleMs: 30_000 })).toBe('taken');
    // our own pid with a token we never wrote: a run before a restart (in a container, pid 1 again)
    writeFileSync(lock, `${process.pid} ${Date.now()} 0123456789abcdef\n`);
    expect(await withFileLock(lock, async () => 'taken', { timeoutMs: 1000 })).toBe('taken');
    // an unreadable lock file: taken once the wait is nearly over
    writeFileSync(lock, 'garbage');
    expect(await withFileLock(lock, async () => 'taken', { timeoutMs: 200 })).toBe('taken');
  });

  it('parseLockOwner: any text gives an owner or undefined; an owner it wrote reads back', () => {
    fc.assert(fc.property(fc.string({ maxLength: 64 }), (text) => void parseLockOwner(text)));
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 4_194_304 }), fc.integer({ min: 0, max: 2 ** 45 }), fc.stringMatching(/^[0-9a-f]{16}$/), (pid, takenAt, token) => {
        expect(parseLockOwner(`${pid} ${takenAt} ${token}\n`)).toEqual({ pid, takenAt, token });
      }),
    );
  });

  it('a lock it cannot read (root\'s 0600 to the daemon): BUSY at the timeout while it is young, taken once it is stale, never spun on', async () => {
    const lock = lockIn();
    mkdirSync(dirname(lock), { recursive: true });
    await makeUnreadable(lock);
    let ran = false;
    const young = await withFileLock(lock, async () => void (ran = true), { timeoutMs: 200, staleMs: 60_000 }).catch((err: unknown) => err);
    expect(isBmcError(young) && young.code).toBe('BUSY');
    expect((young as Error).message).toMatch(/cannot be read \(ENXIO\)/);
    expect(ran).toBe(false);
    const old = (Date.now() - 120_000) / 1000;
    utimesSync(lock, old, old);
    await withFileLock(lock, async () => void (ran = true), { timeoutMs: 200, staleMs: 60_000 });
    expect(ran).toBe(true);
    expect(existsSync(lock)).toBe(false);
  });
});
