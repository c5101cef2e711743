/**
 * metal-console's way in, with real peers: OpenSSH's `ssh` whose ProxyCommand is
 * `openssl s_client` (TLS 1.3, optionally with a client certificate) to the console listener.
 */
import { spawn, type ChildProcess } from 'node:child_process';

export interface SshRun {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  exit: Promise<number | null>;
}

export interface SshOptions {
  port: number;
  /** CA file the listener's certificate chains to */
  ca: string;
  cert?: string;
  key?: string;
  /** known_hosts file with the host key under the alias metal-bmc-console; unchecked without */
  knownHosts?: string;
  command?: string;
  /** OpenSSH's escape character (`~`: `~B` at a line's start sends a break); none without */
  escapeChar?: string;
}

export function sshConsole(user: string, o: SshOptions): SshRun {
  const proxy = ['openssl s_client -quiet -verify_return_error -tls1_3', `-connect 127.0.0.1:${o.port}`, `-CAfile ${o.ca}`, o.cert ? `-cert ${o.cert} -key ${o.key}` : '', '2>/dev/null'].join(' ');
  const hostKeyOptions = o.knownHosts
    ? ['-o', 'StrictHostKeyChecking=yes', '-o', `UserKnownHostsFile=${o.knownHosts}`, '-o', 'HostKeyAlias=metal-bmc-console']
    : ['-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null'];
  const args = ['-F', '/dev/null', '-tt', '-e', o.escapeChar ?? 'none', '-o', `ProxyCommand=${proxy}`, '-o', 'BatchMode=yes', '-o', 'LogLevel=ERROR', ...hostKeyOptions, `${user}@metal-bmc-console`];
  if (o.command) args.push(o.command);
  const child = spawn('ssh', args, { stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (d: Buffer) => (stdout += d.toString('latin1')));
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString('latin1')));
  const exit = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, stdout: () => stdout, stderr: () => stderr, exit };
}
