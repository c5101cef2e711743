/**
 * The SSH side of the simulated iDRAC-like BMCs: one listener per machine whose vendor variant
 * serves its host console over SSH (`SIM_VARIANTS[...].console === 'ssh'`), on the machine's own
 * loopback address, as the daemon's SSH console backend (outband/ssh-console.ts) reaches a Dell.
 *
 * What it does, after iDRAC:
 *  - password authentication with the fleet's BMC user and password (the same the IPMI and
 *    Redfish sides check; `wrongCredentials` refuses every password); a connection that fails
 *    `maxAuthAttempts` passwords, or is not logged in within `loginGraceMs`, is closed;
 *  - `exec` of `console com2` attaches the channel to the machine's serial line, the one SOL
 *    serves (serial.ts): what the console would have on screen first, then live output; typed
 *    bytes go to the line, so SOL and SSH see the same echo. Ctrl+\ (0x1c) detaches: the
 *    channel ends with exit status 0, as iDRAC's racadm returns to its prompt;
 *  - any other command: one error line on stderr and exit status 1 (no racadm shell, no
 *    interactive shell: a `shell` request is refused);
 *  - one `console com2` per machine at a time: a newer one takes the line over and the older
 *    one is told so and ended. iDRAC's own rule for a second session could not be found in
 *    Dell's public documents; taking over is what a console that reconnects after a cut needs
 *    (its old session may still look alive to the BMC) and what IPMI SOL's takeover does;
 *  - at most `maxConnections` connections per machine (iDRAC allows a handful of SSH sessions);
 *    more are closed before the SSH handshake.
 *
 * The host key is one per fleet (fleet.ts keeps it with the Redfish certificate in the TLS
 * file), so trust on first use in the daemon survives a restart of the fleet.
 */
import { createHash } from 'node:crypto';
import { createServer as createNetServer, type Server, type Socket } from 'node:net';
import ssh2 from 'ssh2';
import { BmcError } from '../errors.js';
import type { SimMachine } from './machine.js';
import type { SerialLine } from './serial.js';

export interface SshConsoleServerOptions {
  /** the machines to serve (those whose console is SSH) */
  machines: readonly SimMachine[];
  /** the serial line of a machine, by `state.index` (the one SOL serves) */
  serial: (machineIndex: number) => SerialLine;
  /** TCP port of every listener; 0: a free port per machine */
  port: number;
  user: string;
  password: string;
  /** host key in OpenSSH or PEM format */
  hostKey: string;
  /** connections per machine at once (default 4) */
  maxConnections?: number;
  /** wrong passwords per connection before it is closed (default 3) */
  maxAuthAttempts?: number;
  /** time from the connection to a successful login (default 20 s) */
  loginGraceMs?: number;
}

export interface SshConsoleServer {
  /** where machine `machineIndex` (its `state.index`) serves SSH; undefined for machines without an SSH console */
  endpoint(machineIndex: number): { host: string; port: number } | undefined;
  /** SHA-256 of the host key blob, hex: what the daemon's trust store records */
  readonly hostKeySha256: string;
  /** live `console com2` sessions of a machine (0 or 1) */
  consoleSessions(machineIndex: number): number;
  /** passwords offered to a machine's SSH so far, right or wrong: a test's proof that a refused host key got none */
  passwordsOffered(machineIndex: number): number;
  close(): Promise<void>;
}

/** the command that attaches the host serial console (Dell: COM2 is the BMC's serial redirection) */
export const SERIAL_CONSOLE_COMMAND = 'console com2';
/** Ctrl+\: iDRAC's key to leave the serial console */
const DETACH_BYTE = 0x1c;

interface Served {
  machine: SimMachine;
  server: Server;
  /** the SSH protocol over the sockets `server` accepts (injected, so that close() can end every one) */
  ssh: ssh2.Server;
  port: number;
  sockets: Set<Socket>;
  /** the channel attached to the serial line, and how to detach it */
  console: { detach(notice?: string): void } | undefined;
}

/** A new ed25519 host key, OpenSSH format. */
/**
 * A new Ed25519 host key in OpenSSH format. ssh2 1.17's generator drops the public key's leading
 * zero bytes as if it were a number, so about one key in 256 comes out 31 bytes long and ssh2's
 * own parser refuses it ("Malformed OpenSSH private key"); such a key is made again.
 */
export function newHostKey(): string {
  for (;;) {
    const key = ssh2.utils.generateKeyPairSync('ed25519').private;
    if (isUsableHostKey(key)) return key;
  }
}

/** Whether ssh2 reads `key` as a private key (a kept key written by the generator's bug is not). */
export function isUsableHostKey(key: string): boolean {
  return !(ssh2.utils.parseKey(key) instanceof Error);
}

export async function startSshConsoleServer(o: SshConsoleServerOptions): Promise<SshConsoleServer> {
  if (!Number.isInteger(o.port) || o.port < 0 || o.port > 65535) throw new BmcError('INVALID_ARGUMENT', `startSshConsoleServer: port must be 0..65535, got ${o.port}`);
  const parsed = ssh2.utils.parseKey(o.hostKey);
  if (parsed instanceof Error) throw new BmcError('INVALID_ARGUMENT', `startSshConsoleServer: host key: ${parsed.message}`);
  const hostKeySha256 = createHash('sha256').update(parsed.getPublicSSH()).digest('hex');
  const maxConnections = o.maxConnections ?? 4;
  const maxAuthAttempts = o.maxAuthAttempts ?? 3;
  const loginGraceMs = o.loginGraceMs ?? 20_000;
  const served = new Map<number, Served>();
  const offered = new Map<number, number>();

  /** One SSH connection to `s`'s BMC: the login, then sessions. */
  function serveConnection(s: Served, client: ssh2.Connection): void {
    client.on('error', () => undefined);
    let failures = 0;
    const grace = setTimeout(() => client.end(), loginGraceMs);
    grace.unref();
    client.on('close', () => clearTimeout(grace));
    client.on('authentication', (ctx) => {
      if (ctx.method !== 'password') return ctx.reject(['password']);
      offered.set(s.machine.state.index, (offered.get(s.machine.state.index) ?? 0) + 1);
      if (ctx.username === o.user && ctx.password === o.password && !s.machine.state.faults.wrongCredentials) return ctx.accept();
      failures++;
      ctx.reject(['password']);
      if (failures >= maxAuthAttempts) client.end();
    });
    client.on('ready', () => clearTimeout(grace));
    client.on('session', (accept) => {
      const session = accept();
      session.on('pty', (ok) => ok?.());
      session.on('window-change', (ok) => ok?.());
      session.on('env', (ok) => ok?.());
      session.on('shell', (_ok, reject) => reject?.());
      session.on('exec', (ok, _reject, info) => {
        const channel = ok();
        const command = info.command.trim().replace(/\s+/g, ' ');
        if (command === SERIAL_CONSOLE_COMMAND) return attach(s, channel);
        channel.stderr.write(`ERROR: unknown command ${JSON.stringify(info.command.slice(0, 64))}; this BMC serves only "${SERIAL_CONSOLE_COMMAND}"\r\n`);
        channel.exit(1);
        channel.end();
      });
    });
  }

  /** Connects `channel` to the machine's serial line, taking it from an earlier session. */
  function attach(s: Served, channel: ssh2.ServerChannel): void {
    s.console?.detach('\r\n[serial console taken over by another session]\r\n');
    const line = o.serial(s.machine.state.index);
    const onOutput = (data: Buffer) => channel.write(data);
    let attached = true;
    const detach = (notice?: string) => {
      if (!attached) return;
      attached = false;
      line.off('data', onOutput);
      if (s.console === handle) s.console = undefined;
      if (notice !== undefined) channel.write(notice);
      channel.exit(0);
      channel.end();
    };
    const handle = { detach };
    s.console = handle;
    const history = line.history();
    if (history.length > 0) channel.write(history);
    line.on('data', onOutput);
    channel.on('data', (input: Buffer) => {
      const stop = input.indexOf(DETACH_BYTE);
      if (stop > 0) line.write(input.subarray(0, stop));
      if (stop >= 0) return detach();
      line.write(input);
    });
    channel.on('close', () => detach());
  }

  const listen = (server: Server, host: string, port: number) =>
    new Promise<number>((resolve, reject) => {
      const onError = (err: Error) => reject(new BmcError('CONFIG', `SSH simulator cannot listen on ${host}:${port}: ${err.message}`, { cause: err }));
      server.once('error', onError);
      server.listen(port, host, () => {
        server.off('error', onError);
        const address = server.address();
        resolve(typeof address === 'object' && address !== null ? address.port : port);
      });
    });
  const closeServer = (server: Server) => new Promise<void>((resolve) => (server.listening ? server.close(() => resolve()) : resolve()));

  const machineServer = (machine: SimMachine): Served => {
    const s: Served = { machine, server: createNetServer(), ssh: new ssh2.Server({ hostKeys: [o.hostKey] }), port: o.port, sockets: new Set(), console: undefined };
    s.ssh.on('connection', (client: ssh2.Connection) => serveConnection(s, client));
    s.server.on('connection', (socket: Socket) => {
      // bounded before the handshake, as a BMC's sshd refuses beyond its session limit
      if (s.sockets.size >= maxConnections) return socket.destroy();
      s.sockets.add(socket);
      socket.once('close', () => s.sockets.delete(socket));
      socket.on('error', () => undefined);
      s.ssh.injectSocket(socket);
    });
    return s;
  };

  for (const machine of o.machines) served.set(machine.state.index, machineServer(machine));
  const started = await Promise.allSettled([...served.values()].map(async (s) => (s.port = await listen(s.server, s.machine.state.address, o.port))));
  const failed = started.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  const closeAll = async () => {
    const closed = [...served.values()].map((s) => closeServer(s.server));
    for (const s of served.values()) {
      s.console?.detach();
      for (const socket of s.sockets) socket.destroy();
    }
    await Promise.all(closed);
  };
  if (failed !== undefined) {
    await closeAll();
    throw failed.reason;
  }

  return {
    hostKeySha256,
    endpoint(machineIndex) {
      const s = served.get(machineIndex);
      return s === undefined ? undefined : { host: s.machine.state.address, port: s.port };
    },
    consoleSessions: (machineIndex) => (served.get(machineIndex)?.console === undefined ? 0 : 1),
    passwordsOffered: (machineIndex) => offered.get(machineIndex) ?? 0,
    close: closeAll,
  };
}
