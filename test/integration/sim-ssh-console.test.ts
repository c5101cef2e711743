/**
 * The simulator's iDRAC-like SSH console (src/sim/ssh-console-server.ts), checked with the real
 * OpenSSH client: password login with the fleet's BMC credentials (through SSH_ASKPASS, as no
 * terminal is there to type it), `console com2` attached to the machine's serial line (the one
 * SOL serves), Ctrl+\ to leave it, a wrong password refused, an unknown command exit status 1,
 * and the bounds on connections and password attempts.
 */
import { spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ssh2 from 'ssh2';
import { afterAll, beforeAll, expect } from 'vitest';
import type { Fleet } from '../../src/sim/fleet.js';
import type { SimMachine } from '../../src/sim/machine.js';
import { startTestFleet } from '../helpers/fleet.js';
import { withPeers } from '../helpers/peers.js';
import { waitFor } from '../helpers/wait.js';

const { describe, it } = withPeers('ssh');

let dir: string;
let fleet: Fleet;
let dell: SimMachine;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'metal-bmc-sim-ssh-'));
  // Dell-like machines, whose console is SSH, beside Supermicro-like ones, which have none
  fleet = await startTestFleet({ count: 4, variants: ['dell', 'supermicro'] });
  dell = fleet.machines.find((m) => m.state.variant === 'dell')!;
  if (dell.state.power === 'off') dell.setPower('on', 'on');
});

afterAll(async () => {
  await fleet?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** OpenSSH's ssh with a password from SSH_ASKPASS, no keys, no known_hosts; the command's output and exit status. */
function ssh(password: string, args: string[], o: { stdin?: string; tty?: boolean } = {}) {
  const askpass = join(dir, `askpass-${Math.random().toString(36).slice(2)}`);
  writeFileSync(askpass, `#!/bin/sh\necho '${password}'\n`);
  chmodSync(askpass, 0o700);
  const { host, port } = fleet.ssh!.endpoint(dell.state.index)!;
  const child = spawn(
    'ssh',
    [
      '-F', '/dev/null',
      ...(o.tty ? ['-tt'] : ['-T']),
      '-e', 'none',
      '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'LogLevel=ERROR',
      '-o', 'PubkeyAuthentication=no', '-o', 'PreferredAuthentications=password', '-o', 'NumberOfPasswordPrompts=1',
      '-p', String(port), `${fleet.user}@${host}`, ...args,
    ],
    { env: { ...process.env, SSH_ASKPASS: askpass, SSH_ASKPASS_REQUIRE: 'force', DISPLAY: ':0' }, stdio: ['pipe', 'pipe', 'pipe'] },
  );
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString('latin1')));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString('latin1')));
  const exit = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  if (o.stdin !== undefined) child.stdin.write(o.stdin);
  return { child, exit, stdout: () => stdout, stderr: () => stderr };
}

describe('the simulated iDRAC serves the host console over SSH (OpenSSH client)', () => {
  it('console com2 shows the boot log and login prompt, echoes what is typed and what the SOL side types, and Ctrl+\\ leaves it', async () => {
    const run = ssh(fleet.password, ['console com2'], { tty: true });
    await waitFor(() => run.stdout().includes(`Debian GNU/Linux 12`) && run.stdout().includes('login: '), 20_000, 'the serial line history over SSH');
    expect(run.stdout()).toContain(`System UUID ${dell.state.uuid}`);
    // a reset prints the boot log again, live
    const boots = () => run.stdout().split('Linux version 6.6.58-metal').length - 1;
    const before = boots();
    dell.setPower('on', 'reset');
    await waitFor(() => boots() > before && run.stdout().endsWith('login: '), 20_000, 'the boot log of the reset');
    run.child.stdin.write('root-over-ssh\r');
    await waitFor(() => run.stdout().includes('root-over-ssh'), 10_000, 'the echo of what was typed');
    // the same serial line SOL serves: input from there shows here
    fleet.ipmi.serial(dell.state.index).write(Buffer.from('typed-on-sol'));
    await waitFor(() => run.stdout().includes('typed-on-sol'), 10_000, 'what SOL typed');
    expect(fleet.ssh!.consoleSessions(dell.state.index)).toBe(1);
    run.child.stdin.write(Buffer.from([0x1c]));
    expect(await run.exit).toBe(0);
    await waitFor(() => fleet.ssh!.consoleSessions(dell.state.index) === 0, 5000, 'the console released');
  });

  it('a wrong password is refused', async () => {
    const run = ssh('not-the-bmc-password', ['console com2']);
    expect(await run.exit).toBe(255);
    expect(run.stderr()).toMatch(/Permission denied/);
    expect(run.stdout()).toBe('');
  });

  it('an unknown command gets an error line and exit status 1', async () => {
    const run = ssh(fleet.password, ['racadm getsysinfo']);
    expect(await run.exit).toBe(1);
    expect(run.stderr()).toMatch(/^ERROR: unknown command "racadm getsysinfo"/m);
  });

  it('a second console com2 takes the line over; the first is told and ended', async () => {
    const first = ssh(fleet.password, ['console com2'], { tty: true });
    await waitFor(() => first.stdout().includes('login: '), 20_000, 'the first console');
    const second = ssh(fleet.password, ['console com2'], { tty: true });
    await waitFor(() => second.stdout().includes('login: '), 20_000, 'the second console');
    expect(await first.exit).toBe(0);
    expect(first.stdout()).toContain('[serial console taken over by another session]');
    second.child.stdin.write(Buffer.from([0x1c]));
    expect(await second.exit).toBe(0);
  });

  it('only machines whose console is SSH listen', () => {
    expect(new Set(fleet.machines.map((m) => m.state.variant))).toEqual(new Set(['dell', 'supermicro']));
    for (const m of fleet.machines) expect(fleet.ssh!.endpoint(m.state.index) !== undefined, m.state.variant).toBe(m.state.variant === 'dell');
  });

  it('closes a connection after three wrong passwords, and takes at most four connections per machine', async () => {
    const { host, port } = fleet.ssh!.endpoint(dell.state.index)!;
    // three wrong passwords, then the right one: the connection is closed before it is taken
    const client = new ssh2.Client();
    const offered: string[] = [];
    let ready = false;
    const closed = new Promise<void>((resolve) => client.on('close', () => resolve()));
    client.on('ready', () => (ready = true));
    client.on('error', () => undefined);
    client.connect({
      host,
      port,
      username: fleet.user,
      readyTimeout: 10_000,
      authHandler: (_methods, _partial, next) => {
        const password = offered.length < 3 ? `wrong-${offered.length}` : fleet.password;
        offered.push(password);
        return next({ type: 'password', username: fleet.user, password });
      },
    });
    await closed;
    expect(ready).toBe(false);
    expect(offered.slice(0, 3)).toEqual(['wrong-0', 'wrong-1', 'wrong-2']);

    const sockets = Array.from({ length: 5 }, () => connect(port, host));
    const ended = sockets.map((s) => new Promise<boolean>((resolve) => {
      let banner = false;
      s.on('data', () => (banner = true));
      s.on('error', () => undefined);
      s.on('close', () => resolve(banner));
    }));
    // the fifth is closed at once, before the server's SSH banner; the others get it
    expect(await ended[4]).toBe(false);
    await waitFor(() => sockets.slice(0, 4).every((s) => s.bytesRead > 0), 5000, 'the banner on the first four');
    for (const s of sockets) s.destroy();
    await Promise.all(ended);
  });
});
