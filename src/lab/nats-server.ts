/**
 * Runs Debian's nats-server as a child process on loopback, for the lab and the tests:
 * optional JetStream with a store directory, stop and restart on the same port and store.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { connect as tcpConnect } from 'node:net';
import { BmcError } from '../errors.js';
import { freeTcpPort } from '../net/ports.js';

export interface NatsServerOptions {
  port?: number;
  jetstream?: boolean;
  storeDir?: string;
  binary?: string;
  /** TLS on the client port; with `verify`, clients must present a certificate from `caFile` */
  tls?: { certFile: string; keyFile: string; caFile: string; verify: boolean };
  /** client authentication by user and password */
  user?: string;
  password?: string;
  /** server name (JetStream clustering needs one per node) */
  serverName?: string;
  /** clustering: this node's route port on loopback, the cluster's name and the other nodes' route ports */
  cluster?: { name: string; port: number; routes: number[] };
}

export interface NatsServer {
  port: number;
  url: string;
  stop(): Promise<void>;
  /** SIGKILL: the node dies without a goodbye (cluster failover drills) */
  kill(): Promise<void>;
  restart(): Promise<void>;
  /** what the server printed since it was last (re)started: its log lines (tests read refusals here) */
  output(): string;
}


/**
 * Until this nats-server listens on `port`: its own log line says so, then a connection is taken.
 * A connection alone is not enough: a port found free a moment before can be taken by another
 * process (a parallel test's server) before nats-server binds it; nats-server then exits with
 * "address already in use", and a connect check alone would pass on the other process's socket,
 * leaving every client's dial to time out waiting for an INFO that never comes.
 */
async function waitForPort(port: number, child: ChildProcess, output: () => string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (!output().includes(`Listening for client connections on 127.0.0.1:${port}`)) {
      if (child.exitCode !== null || child.signalCode !== null || Date.now() > deadline) throw new BmcError('CONFIG', `nats-server did not start on port ${port}: ${output().trim().split('\n').slice(-3).join(' | ')}`);
      await new Promise((r) => setTimeout(r, 20));
      continue;
    }
    const open = await new Promise<boolean>((resolve) => {
      const socket = tcpConnect(port, '127.0.0.1');
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (open) return;
    if (child.exitCode !== null || Date.now() > deadline) throw new BmcError('CONFIG', `nats-server did not start on port ${port}: ${output().trim().split('\n').slice(-3).join(' | ')}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export async function startNatsServer(o: NatsServerOptions = {}): Promise<NatsServer> {
  let port = o.port ?? (await freeTcpPort());
  const argsFor = (p: number) => {
    const args = ['-a', '127.0.0.1', '-p', String(p)];
    if (o.jetstream) args.push('-js', ...(o.storeDir ? ['-sd', o.storeDir] : []));
    if (o.tls) args.push('--tls', '--tlscert', o.tls.certFile, '--tlskey', o.tls.keyFile, '--tlscacert', o.tls.caFile, ...(o.tls.verify ? ['--tlsverify'] : []));
    if (o.user !== undefined) args.push('--user', o.user, '--pass', o.password ?? '');
    if (o.serverName !== undefined) args.push('--server_name', o.serverName);
    if (o.cluster) {
      args.push('--cluster_name', o.cluster.name, '--cluster', `nats://127.0.0.1:${o.cluster.port}`);
      if (o.cluster.routes.length > 0) args.push('--routes', o.cluster.routes.map((p) => `nats://127.0.0.1:${p}`).join(','));
    }
    return args;
  };
  let child: ChildProcess;
  let output = '';
  const launch = async () => {
    output = '';
    child = spawn(o.binary ?? 'nats-server', argsFor(port), { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout?.on('data', (d) => (output += d));
    child.stderr?.on('data', (d) => (output += d));
    child.on('error', (err) => (output += String(err)));
    await waitForPort(port, child, () => output);
  };
  const stop = async (signal: NodeJS.Signals = 'SIGTERM') => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill(signal);
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  };
  // a port chosen here and taken by another process before nats-server bound it: another port
  for (let attempt = 1; ; attempt++) {
    try {
      await launch();
      break;
    } catch (err) {
      if (o.port !== undefined || attempt >= 3 || !output.includes('address already in use')) throw err;
      port = await freeTcpPort();
    }
  }
  return { port, url: `${o.tls ? 'tls' : 'nats'}://127.0.0.1:${port}`, stop: () => stop(), kill: () => stop('SIGKILL'), restart: async () => (await stop(), await launch()), output: () => output };
}
