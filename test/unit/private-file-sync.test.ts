/**
 * The firmware job file (and its `.starting` note) was written with writeFileSync and a rename,
 * neither the file nor its folder synced: after a power loss during an update XFS or ext4 can
 * leave it empty, recover() keeps it aside, and the interrupted job is never reported. It is now
 * written as the other state files are (writePrivateFile), synchronously: a temporary file beside
 * it, synced, renamed over it, the folder synced. node:fs is Node's own, watched: every call goes
 * through to it, and the test sees which file each fsync was of (and can make one fail, as a disk
 * does).
 */
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createEventJournal } from '../../src/bus/event-journal.js';
import { createFirmwareJobs } from '../../src/commands/firmware-jobs.js';
import { writePrivateFileSync } from '../../src/outband/private-file-sync.js';
import type { Outband } from '../../src/outband/types.js';
import { captureLog } from '../helpers/log.js';
import { createMemoryKv } from '../helpers/memory-kv.js';

const watch = vi.hoisted(() => ({ calls: [] as string[], paths: new Map<number, string>(), failFsync: undefined as string | undefined }));

vi.mock('node:fs', async (importOriginal) => {
  const fs = await importOriginal<typeof import('node:fs')>();
  const watched = {
    openSync: ((path: string, ...rest: never[]) => {
      const fd = (fs.openSync as (...a: unknown[]) => number)(path, ...rest);
      watch.paths.set(fd, String(path));
      return fd;
    }) as typeof fs.openSync,
    fsyncSync: ((fd: number) => {
      const path = watch.paths.get(fd) ?? `fd ${fd}`;
      if (watch.failFsync !== undefined && path.startsWith(watch.failFsync)) throw Object.assign(new Error(`EIO: i/o error, fsync`), { code: 'EIO' });
      watch.calls.push(`fsync ${path}`);
      fs.fsyncSync(fd);
    }) as typeof fs.fsyncSync,
    renameSync: ((from: string, to: string) => {
      watch.calls.push(`rename ${String(from)} ${String(to)}`);
      fs.renameSync(from, to);
    }) as typeof fs.renameSync,
  };
  return { ...fs, ...watched, default: { ...fs, ...watched } };
});

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'private-file-sync-'));
  watch.calls.length = 0;
  watch.failFsync = undefined;
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** the calls of the write of `file`: fsync of its temporary file, rename over it, fsync of its folder */
function syncedWriteOf(file: string): string[] {
  const tmp = `${file}.${process.pid}.tmp`;
  return [`fsync ${tmp}`, `rename ${tmp} ${file}`, `fsync ${dirname(file)}`];
}

describe('writePrivateFileSync', () => {
  it('replaces the file whole, mode 0600 whatever the old one had, the data synced before the rename and the folder after', () => {
    const file = join(dir, 'state', 'jobs.json');
    writePrivateFileSync(file, 'first');
    chmodSync(file, 0o644);
    watch.calls.length = 0;
    writePrivateFileSync(file, '{"version":1}');
    expect(readFileSync(file, 'utf8')).toBe('{"version":1}');
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(watch.calls).toEqual(syncedWriteOf(file));
    expect(readdirSync(dirname(file))).toEqual(['jobs.json']);
  });

  it('a write that fails (the disk answers EIO to the sync) throws, leaves the old file as it was and no temporary file', () => {
    const file = join(dir, 'jobs.json');
    writePrivateFileSync(file, 'old');
    watch.failFsync = `${file}.`;
    expect(() => writePrivateFileSync(file, 'new')).toThrow(/EIO/);
    expect(readFileSync(file, 'utf8')).toBe('old');
    expect(readdirSync(dir)).toEqual(['jobs.json']);
  });
});

describe('firmware jobs', () => {
  it('the job file and its starting note reach the disk before they are relied on: synced, renamed, the folder synced', async () => {
    const file = join(dir, 'state', 'firmware-jobs.json');
    const updates: Array<() => void> = [];
    const connect = (): Outband =>
      ({
        address: 'm1',
        vendor: 'fake',
        updateFirmware: () => new Promise<void>((resolve) => updates.push(resolve)),
        close: async () => undefined,
      }) as unknown as Outband;
    // with the event journal: the starting note is written before the job begins
    const journal = createEventJournal({ kv: createMemoryKv('p-events').client(), instanceId: 'a', logger: captureLog().logger });
    const jobs = createFirmwareJobs({ connect, timeoutMs: 60_000, stateFile: file, journal, instanceId: 'a', logger: captureLog().logger, publish: () => undefined });
    jobs.recover();
    const started = await jobs.start({
      eventId: 'ev-1',
      machineId: 'm1',
      key: 'm1',
      type: 'command',
      command: 'UPDATE-FIRMWARE',
      ipmi: { address: 'm1:623', host: 'm1', port: 623, password: 'pw' },
      actions: [{ kind: 'firmware', firmware: 'bios', url: 'https://images.example/fw/bios.bin' }],
    });
    expect(started.accepted).toBe(true);
    expect(JSON.parse(readFileSync(file, 'utf8'))).toMatchObject({ version: 1, jobs: [{ machineId: 'm1', state: 'running' }] });
    expect(statSync(file).mode & 0o777).toBe(0o600);
    // the starting note, then the job file: each synced, renamed, its folder synced
    const calls = watch.calls.join('\n');
    expect(calls).toContain(syncedWriteOf(`${file}.starting`).join('\n'));
    expect(calls).toContain(syncedWriteOf(file).join('\n'));
    for (const resolve of updates) resolve();
    await vi.waitFor(() => expect(jobs.running()).toBe(0));
    expect(JSON.parse(readFileSync(file, 'utf8'))).toMatchObject({ jobs: [{ state: 'completed' }] });
  });
});
