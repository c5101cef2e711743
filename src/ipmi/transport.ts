/**
 * UDP transport for IPMI: a pool of sockets shared by many BMC sessions.
 * Each socket carries at most `maxPerSocket` channels and never two channels to the same
 * remote endpoint, so incoming datagrams are demultiplexed by their source address alone.
 * The session layer sees only the small `DatagramChannel` interface (send, receive, close),
 * so tests can substitute an in-memory pair.
 */
import { createSocket, type Socket } from 'node:dgram';
import { isIP } from 'node:net';
import { abortError, BmcError } from '../errors.js';

export interface DatagramChannel {
  readonly remote: string;
  send(datagram: Buffer): void;
  /** Replaces the receive handler; datagrams arriving before one is set are dropped. */
  onDatagram(handler: (datagram: Buffer) => void): void;
  close(): void;
}

export interface UdpPool {
  /**
   * A channel to host:port. With `beside`, on the same local socket as that channel when it can
   * be: a BMC serving SOL on another port sends it to the session's local port (IPMI 2.0 24.1).
   */
  open(host: string, port: number, signal?: AbortSignal, beside?: DatagramChannel): Promise<DatagramChannel>;
  /** Number of sockets and channels in use, for metrics and tests. */
  stats(): { sockets: number; channels: number };
  close(): void;
}

interface PooledSocket {
  socket: Socket;
  family: 4 | 6;
  channels: Map<string, (datagram: Buffer) => void>;
}

export async function resolveHost(host: string): Promise<{ address: string; family: 4 | 6 }> {
  const literal = isIP(host);
  if (literal === 4 || literal === 6) return { address: host, family: literal };
  try {
    // imported here: an address given as an IP literal (every one-shot CLI call with one) needs no resolver
    const { lookup } = await import('node:dns/promises');
    const found = await lookup(host);
    return { address: found.address, family: found.family === 6 ? 6 : 4 };
  } catch (cause) {
    throw new BmcError('INVALID_ARGUMENT', `cannot resolve BMC host ${host}`, { cause });
  }
}

/**
 * The sockets' address lookup: channels send only to addresses resolved when they opened (IP
 * literals, resolveHost), which dgram would otherwise pass through dns.lookup and a tick of the
 * event loop on every datagram (a SOL stream acknowledges each packet it receives).
 */
function literalLookup(host: string, _options: unknown, callback: (err: Error | null, address: string, family: number) => void): void {
  const family = isIP(host);
  if (family === 4 || family === 6) callback(null, host, family);
  else callback(new BmcError('INVALID_ARGUMENT', `UDP datagrams go to resolved addresses only, not ${host}`), '', 0);
}

export function createUdpPool(options: { maxPerSocket?: number } = {}): UdpPool {
  const maxPerSocket = options.maxPerSocket ?? 64;
  const sockets = new Set<PooledSocket>();
  const socketOf = new WeakMap<DatagramChannel, PooledSocket>();

  async function socketFor(family: 4 | 6, key: string, beside?: DatagramChannel): Promise<PooledSocket> {
    const near = beside ? socketOf.get(beside) : undefined;
    if (near && sockets.has(near) && near.family === family && !near.channels.has(key)) return near;
    for (const s of sockets) {
      if (s.family === family && s.channels.size < maxPerSocket && !s.channels.has(key)) return s;
    }
    const socket = createSocket({ type: family === 6 ? 'udp6' : 'udp4', lookup: literalLookup });
    const pooled: PooledSocket = { socket, family, channels: new Map() };
    socket.on('message', (msg, rinfo) => {
      const handler = pooled.channels.get(`${rinfo.address}:${rinfo.port}`);
      if (handler) handler(msg);
    });
    // ICMP port-unreachable and friends surface here; the session layer's deadline reports them.
    socket.on('error', () => undefined);
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(0, () => {
        socket.off('error', reject);
        resolve();
      });
    });
    socket.unref();
    sockets.add(pooled);
    return pooled;
  }

  return {
    async open(host, port, signal, beside) {
      if (!Number.isInteger(port) || port < 1 || port > 65535) throw new BmcError('INVALID_ARGUMENT', `invalid BMC port ${port}`);
      const { address, family } = await resolveHost(host);
      if (signal?.aborted) throw abortError(signal, `opening a channel to BMC ${host}:${port}`);
      const key = `${address}:${port}`;
      const pooled = await socketFor(family, key, beside);
      let handler: (datagram: Buffer) => void = () => undefined;
      pooled.channels.set(key, (d) => handler(d));
      let open = true;
      const channel: DatagramChannel = {
        remote: key,
        send(datagram) {
          if (!open) return;
          pooled.socket.send(datagram, port, address);
        },
        onDatagram(h) {
          handler = h;
        },
        close() {
          if (!open) return;
          open = false;
          pooled.channels.delete(key);
          if (pooled.channels.size === 0) {
            sockets.delete(pooled);
            pooled.socket.close();
          }
        },
      };
      socketOf.set(channel, pooled);
      return channel;
    },
    stats() {
      let channels = 0;
      for (const s of sockets) channels += s.channels.size;
      return { sockets: sockets.size, channels };
    },
    close() {
      for (const s of sockets) s.socket.close();
      sockets.clear();
    },
  };
}

let sharedPool: UdpPool | undefined;

/** The process-wide pool used when a session is opened without one. */
export function defaultUdpPool(): UdpPool {
  sharedPool ??= createUdpPool();
  return sharedPool;
}
