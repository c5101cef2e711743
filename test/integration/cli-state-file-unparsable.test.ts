/**
 * `metal-bmc bmc trust` and `bmc owners` on a state file that does not parse: the CLI refuses and
 * leaves it where it is. Moved aside by the CLI, the running daemon would read "missing", forget
 * every pin (or owner) it held, and show nothing kept aside (another process moved it).
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { openTrustStore, TRUST_FILE } from '../../src/outband/trust.js';
import { UUID_OWNERS_FILE } from '../../src/report/owners.js';
import { runCli } from '../helpers/cli.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
function stateDirWith(name: string, text: string): { stateDir: string; file: string } {
  const stateDir = mkdtempSync(join(tmpdir(), 'cli-unparsable-'));
  dirs.push(stateDir);
  const file = join(stateDir, name);
  writeFileSync(file, text, { mode: 0o600 });
  return { stateDir, file };
}
const parseError = (text: string): string => {
  try {
    JSON.parse(text);
  } catch (err) {
    return (err as Error).message;
  }
  throw new Error('parses');
};

describe('a state file that does not parse, met by the CLI', () => {
  it('bmc trust --list and --reset exit 1 naming the file and the parse error, and leave it where it is for the daemon to keep aside', async () => {
    const text = '{"version": 1, "bmcs": {"mac:aa": {"redfishSha256": "';
    const { stateDir, file } = stateDirWith(TRUST_FILE, text);
    for (const args of [['--list'], ['--mac', 'aa:bb:cc:00:00:01', '--reset']]) {
      const cli = await runCli(['bmc', 'trust', ...args, '--state-dir', stateDir]);
      expect(cli.code).toBe(1);
      expect(cli.stderr).toBe(`metal-bmc bmc: error: ${file} does not parse (${parseError(text)}); fix or move it; the daemon keeps it aside itself; nothing changed\n`);
      expect(readFileSync(file, 'utf8')).toBe(text);
      expect(readdirSync(stateDir).filter((n) => n.includes('.unreadable-'))).toEqual([]);
    }
    // the daemon's store keeps it aside itself, and says so
    const daemon = openTrustStore({ file });
    expect(daemon.get('mac:aa')).toBeUndefined();
    expect(daemon.keptAside()).toMatch(/bmc-trust\.json\.unreadable-\d+$/);
    await daemon.close();
  }, 60_000);

  it('bmc owners --list and --reset exit 1 naming the file and the parse error, and leave it where it is', async () => {
    const text = '{"version":1,"owners":{';
    const { stateDir, file } = stateDirWith(UUID_OWNERS_FILE, text);
    for (const args of [['--list'], ['--uuid', '00000000-0000-4000-8000-000000000001', '--reset']]) {
      const cli = await runCli(['bmc', 'owners', ...args, '--state-dir', stateDir]);
      expect(cli.code).toBe(1);
      expect(cli.stderr).toBe(`metal-bmc bmc: error: ${file} does not parse (${parseError(text)}); fix or move it; the daemon keeps it aside itself; nothing changed\n`);
      expect(readFileSync(file, 'utf8')).toBe(text);
      expect(readdirSync(stateDir).filter((n) => n.includes('.unreadable-'))).toEqual([]);
    }
  }, 60_000);
});
