/**
 * A state file that cannot be written (a read-only or full state folder) failed every burst with an
 * error line each, about once a second for the machine event position, and no counter. Each
 * failure is now counted (`metal_bmc_state_write_failures_total{file}`) and logged once per
 * episode: the first failure, then one line when the file is written again.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { openEventPositionStore } from '../../src/commands/event-position.js';
import { openTrustStore } from '../../src/outband/trust.js';
import { registerStateWriteMetrics } from '../../src/report/metrics.js';
import { openUuidOwnersFile } from '../../src/report/owners.js';
import { captureLog } from '../helpers/log.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
function stateDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'state-write-failures-'));
  dirs.push(d);
  return d;
}

/** the counter's value for `file` as a scrape shows it (0 before its first failure) */
async function failuresOf(registry: Registry, file: string): Promise<number> {
  const m = new RegExp(`^metal_bmc_state_write_failures_total\\{file="${file.replace(/\./g, '\\.')}"\\} (\\d+)$`, 'm').exec(await registry.metrics());
  return Number(m?.[1] ?? 0);
}

/** A folder in the file's place: its rename fails (EISDIR), as root too. */
const block = (file: string) => mkdirSync(join(file, 'in-the-way'), { recursive: true });
const unblock = (file: string) => rmSync(file, { recursive: true });
/** A file in the state folder's place: nothing is written into it, and its files read as missing, as root too. */
const blockFolder = (dir: string) => {
  rmSync(dir, { recursive: true });
  writeFileSync(dir, '');
};
const unblockFolder = (dir: string) => {
  rmSync(dir);
  mkdirSync(dir);
};

describe('state file writes that fail', () => {
  it('the machine event position (a write each second): every failure counted, one error line per episode, one line when written again', async () => {
    const registry = new Registry();
    registerStateWriteMetrics(registry);
    const log = captureLog();
    const file = join(stateDir(), 'machine-event-position.json');
    const before = await failuresOf(registry, 'machine-event-position.json');
    block(file);
    const store = openEventPositionStore({ file, logger: log.logger, writeDelayMs: 60_000 });
    for (let seq = 1; seq <= 5; seq++) {
      store.save({ stream: 's', created: '2026-12-06T00:00:00Z', seq });
      await store.flush();
    }
    expect(await failuresOf(registry, 'machine-event-position.json')).toBe(before + 5);
    const failed = log.find('cannot write the machine event position file; the position is kept in memory');
    expect(failed).toHaveLength(1);
    expect(failed[0]).toMatchObject({ level: 50, file, code: expect.stringMatching(/^E[A-Z]+$/) });

    unblock(file);
    store.save({ stream: 's', created: '2026-12-06T00:00:00Z', seq: 6 });
    await store.flush();
    expect(JSON.parse(readFileSync(file, 'utf8'))).toMatchObject({ seq: 6 });
    expect(log.find('state file written again')).toEqual([expect.objectContaining({ file, failures: 5 })]);
    // written again: no second line for the next good write
    store.save({ stream: 's', created: '2026-12-06T00:00:00Z', seq: 7 });
    await store.flush();
    expect(log.find('state file written again')).toHaveLength(1);

    // a new episode is logged again
    rmSync(file);
    block(file);
    store.save({ stream: 's', created: '2026-12-06T00:00:00Z', seq: 8 });
    await store.flush();
    expect(log.find('cannot write the machine event position file; the position is kept in memory')).toHaveLength(2);
    expect(await failuresOf(registry, 'machine-event-position.json')).toBe(before + 6);
    unblock(file);
    await store.close();
  });

  it('the BMC trust file and the UUID owners file (burst writers of their own): counted by file, logged once per episode', async () => {
    const registry = new Registry();
    registerStateWriteMetrics(registry);
    const log = captureLog();
    const dir = stateDir();
    const trustFile = join(dir, 'bmc-trust.json');
    const ownersFile = join(dir, 'uuid-owners.json');
    const trustBefore = await failuresOf(registry, 'bmc-trust.json');
    const ownersBefore = await failuresOf(registry, 'uuid-owners.json');
    // a folder in their place would be a file they cannot read (never written over, not a failed write)
    blockFolder(dir);
    const trust = openTrustStore({ file: trustFile, logger: log.logger, writeDelayMs: 60_000 });
    const owners = openUuidOwnersFile({ file: ownersFile, logger: log.logger, writeDelayMs: 60_000 });
    for (let i = 1; i <= 3; i++) {
      trust.update(`ip:10.0.0.${i}`, { redfishSha256: String(i).repeat(64) });
      await trust.flush();
      owners.set(`00000000-0000-0000-0000-00000000000${i}`, { ip: `10.0.0.${i}` });
      await owners.flush();
    }
    expect(await failuresOf(registry, 'bmc-trust.json')).toBe(trustBefore + 3);
    expect(await failuresOf(registry, 'uuid-owners.json')).toBe(ownersBefore + 3);
    expect(log.find('cannot write the BMC trust file; records are kept in memory')).toHaveLength(1);
    expect(log.find('cannot write the UUID owners file; known BMCs are kept in memory')).toHaveLength(1);

    unblockFolder(dir);
    await trust.close();
    await owners.close();
    expect(log.find('state file written again').map((l) => [l.file, l.failures]).sort()).toEqual([[trustFile, 3], [ownersFile, 3]]);
    expect(Object.keys((JSON.parse(readFileSync(trustFile, 'utf8')) as { bmcs: object }).bmcs)).toHaveLength(3);
  });
});
