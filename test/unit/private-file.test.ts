/** State files (src/outband/private-file.ts): what a failed write leaves, and whose a file root writes is. */
import { chownSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { withFileLock } from '../../src/outband/file-lock.js';
import { writePrivateFile } from '../../src/outband/private-file.js';
import { skipPeersRequested, SKIP_PEERS_VARIABLE } from '../helpers/peers.js';

const dirs: string[] = [];
const folder = () => {
  const dir = mkdtempSync(join(tmpdir(), 'private-file-'));
  dirs.push(dir);
  return dir;
};
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** an owner that is not root: nobody, as on Debian */
const OTHER = 65534;

/**
 * This check needs root, as CI has (only root writes files another user owns). Run as another
 * user it fails, naming why, unless METAL_BMC_TEST_SKIP_PEERS=1 asks to skip what the host lacks.
 */
const asRoot = process.getuid?.() === 0 || !skipPeersRequested() ? it : it.skip;
if (process.getuid?.() !== 0 && skipPeersRequested()) process.stderr.write(`private-file.test.ts: the ownership test needs root; skipped (${SKIP_PEERS_VARIABLE}=1)\n`);

describe('private state files', () => {
  it('a write that fails leaves no temporary file behind (it may hold what the file does: session tokens)', async () => {
    const dir = folder();
    const file = join(dir, 'redfish-sessions.json');
    mkdirSync(join(file, 'in-the-way'), { recursive: true }); // a folder that is not empty where the file goes: the rename fails
    await expect(writePrivateFile(file, '{"secret":"token"}')).rejects.toThrow();
    expect(readdirSync(dir)).toEqual(['redfish-sessions.json']);
  });

  asRoot("written by root into a folder another user owns (sudo metal-bmc bmc trust --reset), the file and its lock get the folder's owner and group, so the daemon can still read them", async () => {
    if (process.getuid?.() !== 0) throw new Error(`this test checks what root writes and must run as root (CI does); set ${SKIP_PEERS_VARIABLE}=1 to skip it`);
    const dir = folder();
    const state = join(dir, 'state');
    mkdirSync(state);
    chownSync(state, OTHER, OTHER + 1);
    const file = join(state, 'bmc-trust.json');
    let lockOwner: { uid: number; gid: number } | undefined;
    await withFileLock(`${file}.lock`, async () => {
      lockOwner = statSync(`${file}.lock`);
      await writePrivateFile(file, '{}');
    });
    expect({ uid: statSync(file).uid, gid: statSync(file).gid, mode: statSync(file).mode & 0o777 }).toEqual({ uid: OTHER, gid: OTHER + 1, mode: 0o600 });
    expect({ uid: lockOwner!.uid, gid: lockOwner!.gid }).toEqual({ uid: OTHER, gid: OTHER + 1 });

    // root's own folder: root's file, as before
    const own = join(dir, 'root-state');
    mkdirSync(own);
    await writePrivateFile(join(own, 'bmc-trust.json'), '{}');
    expect(statSync(join(own, 'bmc-trust.json')).uid).toBe(0);
  });
});
