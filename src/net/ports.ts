/**
 * Free ports on loopback, for the lab and for tests that start real servers.
 *
 * A port is free only until someone else takes it. One the kernel hands out for port 0 lies in the
 * ephemeral range (Linux: 32768–60999, `ip_local_port_range`), the range every outgoing
 * connection's local port is drawn from too: between the probe and the server's own bind, any
 * connection of any process may take it (a lab run beside the test suite's failed "listen
 * EADDRINUSE" so). The ports here are drawn at random below that range instead, where only
 * another such probe can meet them.
 */
import { createSocket } from 'node:dgram';
import { createServer } from 'node:net';

/** below Linux's default ephemeral range, above the well-known and most registered service ports */
export const PROBED_PORTS = { first: 20_000, last: 32_767 } as const;
const TRIES = 64;

const randomPort = (): number => PROBED_PORTS.first + Math.floor(Math.random() * (PROBED_PORTS.last - PROBED_PORTS.first + 1));

async function udpBindable(port: number, host: string): Promise<boolean> {
  const socket = createSocket('udp4');
  const bound = await new Promise<boolean>((resolve) => {
    socket.once('error', () => resolve(false));
    socket.bind(port, host, () => resolve(true));
  });
  await new Promise<void>((resolve) => {
    try {
      socket.close(() => resolve());
    } catch {
      resolve(); // never bound: nothing to close
    }
  });
  return bound;
}

async function tcpBindable(port: number, host: string): Promise<boolean> {
  const server = createServer();
  const bound = await new Promise<boolean>((resolve) => {
    server.once('error', () => resolve(false));
    server.listen(port, host, () => resolve(true));
  });
  if (bound) await new Promise<void>((resolve) => server.close(() => resolve()));
  return bound;
}

async function drawn(bindable: (port: number, host: string) => Promise<boolean>, host: string, what: string): Promise<number> {
  for (let i = 0; i < TRIES; i++) {
    const port = randomPort();
    if (await bindable(port, host)) return port;
  }
  throw new Error(`no free ${what} port on ${host} in ${PROBED_PORTS.first}-${PROBED_PORTS.last} after ${TRIES} tries`);
}

export function freeUdpPort(host = '127.0.0.1'): Promise<number> {
  return drawn(udpBindable, host, 'UDP');
}

export function freeTcpPort(host = '127.0.0.1'): Promise<number> {
  return drawn(tcpBindable, host, 'TCP');
}
