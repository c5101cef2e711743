/**
 * UDP transport for IPMI: a pool of sockets shared by many BMC sessions.
 * Each socket carries at most `maxPerSocket` channels and never two channels to the same
 * remote endpoint, so incoming datagrams are demultiplexed by their source address alone.
 * The session layer sees only the small `DatagramChannel` interface (send, receive, close),
 * so tests can substitute an in-memory pair.
 */
import { createSocket, type Socket } from 'node:dgram';
import { abortError, BmcError } from '../errors.js';
import { formatIpv6, ipFamily, ipv6ToBigInt } from '../net/cidr.js';

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
  const literal = ipFamily(host);
  if (literal === 4) return { address: host, family: 4 };
  if (literal === 6) return { address: canonicalIpv6(host), family: 6 };
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
 * An IPv6 literal in the form answers come from (RFC 5952, as inet_ntop writes `rinfo.address`),
 * so `2001:DB8:0:0::1` finds the answers of `2001:db8::1`. One with a zone, or an IPv4-mapped
 * one (written with a dotted quad there), stays as given.
 */
function canonicalIpv6(host: string): string {
  if (host.includes('%') || host.includes('.')) return host;
  const value = ipv6ToBigInt(host);
  return value === undefined ? host : formatIpv6(value);
}

/**
 * The sockets' address lookup: channels send only to addresses resolved when they opened (IP
 * literals, resolveHost), which dgram would otherwise pass through dns.lookup and a tick of the
 * event loop on every datagram (a SOL stream acknowledges each packet it receives).
 */
function literalLookup(host: string, _options: unknown, callback: (err: Error | null, address: string, family: number) => void): void {
  const family = ipFamily(host);
  if (family === 4 || family === 6) callback(null, host, family);
  else callback(new BmcError('INVALID_ARGUMENT', `UDP datagrams go to resolved addresses only, not ${host}`), '', 0);
}

/** What dgram's sockets keep their native handle in, as far as `bindEphemeral` needs to know it. */
interface UdpHandle {
  recvStart(): unknown;
  bind(address: string, port: number, flags: number): number;
  bind6(address: string, port: number, flags: number): number;
  close(): void;
}

/**
 * Binds `socket` to an ephemeral port on every address, as `socket.bind(0)` does, but without
 * dgram's first step: bind() loads node:cluster to ask a cluster primary for the handle, and
 * cluster loads child_process, net and the streams, ~5 ms of a one-shot `metal-bmc bmc` command
 * (bench/cli-startup.ts). metal-bmc never runs as a cluster worker. So a new handle of the
 * socket's own native class is bound here and given to bind(), which takes a bound handle as it
 * is (the path cluster workers use). Where the handle class cannot be found (another Node's
 * internals) or binding it fails, this is `socket.bind(0)`.
 */
export function bindEphemeral(socket: Socket, family: 4 | 6, onListening: () => void): void {
  const handle = newHandleLike(socket);
  const status = handle && (family === 6 ? handle.bind6('::', 0, 0) : handle.bind('0.0.0.0', 0, 0));
  if (handle && status === 0) {
    socket.bind(handle as unknown as number, onListening);
    return;
  }
  handle?.close();
  socket.bind(0, onListening);
}

function newHandleLike(socket: Socket): UdpHandle | undefined {
  for (const key of Object.getOwnPropertySymbols(socket)) {
    const state = (socket as unknown as Record<symbol, { handle?: unknown } | undefined>)[key];
    const current = state !== null && typeof state === 'object' ? state.handle : undefined;
    if (!isUdpHandle(current)) continue;
    try {
      const created: unknown = new (current.constructor as new () => unknown)();
      return isUdpHandle(created) ? created : undefined;
    } catch {
      return undefined;
    }
  }
  return undefined;
}

function isUdpHandle(value: unknown): value is UdpHandle {
  const h = value as Partial<UdpHandle> | null;
  return typeof h === 'object' && h !== null && typeof h.recvStart === 'function' && typeof h.bind === 'function' && typeof h.bind6 === 'function' && typeof h.close === 'function';
}

export function createUdpPool(options: { maxPerSocket?: number } = {}): UdpPool {
  const maxPerSocket = options.maxPerSocket ?? 64;
  const sockets = new Set<PooledSocket>();
  const socketOf = new WeakMap<DatagramChannel, PooledSocket>();

  async function socketFor(family: 4 | 6, key: string, beside?: DatagramChannel): Promise<PooledSocket> {
    // the key is taken on the socket chosen in the same step that chose it: two channels to one
    // BMC opened at once must not both pick a socket before either holds its key there
    const reserve = (s: PooledSocket): PooledSocket => (s.channels.set(key, () => undefined), s);
    const near = beside ? socketOf.get(beside) : undefined;
    if (near && sockets.has(near) && near.family === family && !near.channels.has(key)) return reserve(near);
    for (const s of sockets) {
      if (s.family === family && s.channels.size < maxPerSocket && !s.channels.has(key)) return reserve(s);
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
      bindEphemeral(socket, family, () => {
        socket.off('error', reject);
        resolve();
      });
    });
    socket.unref();
    sockets.add(pooled);
    return reserve(pooled);
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
