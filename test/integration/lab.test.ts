/** The README's first command: the lab comes up, the daemon reports the fleet and runs a command. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { withPeers } from '../helpers/peers.js';

const { it } = withPeers('nats-server', 'openssl');

it('metal-bmc lab --once: fleet reported to the metal-api stand-in, LED-ON demo succeeds', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'lab-'));
  try {
    const r = await runCli(['lab', '--count', '3', '--once', '--dir', dir], { timeoutMs: 60_000 });
    expect(r.stdout).toContain('lab is up');
    expect(r.stdout).toMatch(/metal-api stand-in: report with 3 machines/);
    expect(r.stdout).toMatch(/demo: result \{.*"command":"LED-ON","ok":true/);
    expect(r.stdout).toContain("identify LED is now on");
    expect(r.stdout).toMatch(/demo: console shows the login prompt: "machine-1 login: "/);
    expect(r.code).toBe(0);
    // a second start in the same folder: the daemon trusts the BMC certificates it recorded on the
    // first (bmc-trust.json), so the simulated BMCs must present the same ones again, as real BMCs do
    const again = await runCli(['lab', '--count', '3', '--once', '--dir', dir], { timeoutMs: 60_000 });
    expect(again.stdout).toMatch(/metal-api stand-in: report with 3 machines/);
    expect(again.stdout + again.stderr).not.toMatch(/UNTRUSTED/);
    expect(again.code).toBe(0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}, 180_000);
