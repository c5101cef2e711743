/** `metal-bmc bmc owners` as an operator runs it: its output, and its exit codes (0, 1 for an unknown UUID, 2 for bad arguments). */
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openUuidOwnersFile, UUID_OWNERS_FILE } from '../../src/report/owners.js';
import { runCli } from '../helpers/cli.js';

const U1 = '00000000-0000-4000-8000-000000000001';
const U2 = '00000000-0000-4000-8000-000000000002';
let stateDir: string;
beforeAll(async () => {
  stateDir = mkdtempSync(join(tmpdir(), 'cli-bmc-owners-'));
  const owners = openUuidOwnersFile({ file: join(stateDir, UUID_OWNERS_FILE) });
  owners.set(U1, { ip: '10.0.0.1', mac: 'aa:00:00:00:00:01' });
  owners.set(U2, { ip: '10.0.0.2', mac: 'aa:00:00:00:00:02' });
  await owners.close();
});
afterAll(() => rmSync(stateDir, { recursive: true, force: true }));

describe('metal-bmc bmc owners', () => {
  it('lists from METAL_BMC_STATE_DIR, resets one UUID, and exits 1 for an unknown UUID and 2 for a bad MAC', async () => {
    const listed = await runCli(['bmc', 'owners', '--list', '--json'], { env: { METAL_BMC_STATE_DIR: stateDir } });
    expect(listed).toMatchObject({ code: 0, stderr: '' });
    expect((JSON.parse(listed.stdout) as Array<{ uuid: string }>).map((r) => r.uuid)).toEqual([U1, U2]);

    const reset = await runCli(['bmc', 'owners', '--uuid', U1, '--reset', '--state-dir', stateDir]);
    expect(reset).toMatchObject({ code: 0, stderr: '' });
    expect(reset.stdout).toContain(`${U1}: owner aa:00:00:00:00:01 10.0.0.1 forgotten`);
    const file = join(stateDir, UUID_OWNERS_FILE);
    expect(Object.keys((JSON.parse(readFileSync(file, 'utf8')) as { owners: object }).owners)).toEqual([U2]);
    expect(statSync(file).mode & 0o777).toBe(0o600);

    const unknown = await runCli(['bmc', 'owners', '--uuid', U1, '--reset', '--state-dir', stateDir]);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toBe(`metal-bmc bmc: error: no owner recorded for machine UUID ${U1} in ${file}; nothing changed (bmc owners --list shows them)\n`);

    const bad = await runCli(['bmc', 'owners', '--mac', 'zz', '--reset', '--state-dir', stateDir]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toBe('metal-bmc bmc: --mac "zz" is not a MAC address\n');
  }, 60_000);
});
