/** The README's first command: the lab comes up, the daemon reports the fleet and runs a command. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { freeTcpPort, freeUdpPort } from '../helpers/ports.js';
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

it('metal-bmc lab --variants dell: the daemon reaches the Dell-like consoles on the fleet\'s SSH port, and trusts the same host key after a restart', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'lab-dell-'));
  try {
    // aside of the other lab: its own addresses and ports
    const args = ['lab', '--count', '2', '--once', '--dir', dir, '--variants', 'dell', '--cidr', '127.12.0.0/16', '--ipmi-port', String(await freeUdpPort()), '--redfish-port', String(await freeTcpPort()), '--ssh-port', String(await freeTcpPort()), '--console-port', String(await freeTcpPort()), '--console-ws-port', String(await freeTcpPort())];
    const r = await runCli(args, { timeoutMs: 60_000 });
    expect(r.stdout, `exit ${r.code}; stderr: ${r.stderr.slice(-2000)}`).toMatch(/SSH console \(Dell-like\) tcp\/\d+/);
    // machine 1's console: SSH `console com2` to its simulated iDRAC, through the daemon's WebSocket listener
    expect(r.stdout).toMatch(/demo: console shows the login prompt: "machine-1 login: "/);
    expect(r.stderr).toMatch(/BMC SSH host key recorded on first use/);
    expect(r.code).toBe(0);
    const again = await runCli(args, { timeoutMs: 60_000 });
    expect(again.stdout).toMatch(/demo: console shows the login prompt: "machine-1 login: "/);
    expect(again.stdout + again.stderr).not.toMatch(/UNTRUSTED/);
    expect(again.code).toBe(0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}, 180_000);
