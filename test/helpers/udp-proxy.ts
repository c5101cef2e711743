/**
 * A UDP proxy between a client and a BMC that drops a share of datagrams (both directions)
 * or all of them, or holds the BMC's answers for a while, to test retransmission, dead and slow
 * BMCs with a real BMC behind it.
 */
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';

export interface UdpProxy {
  port: number;
  /** 0..1: share of datagrams dropped in each direction */
  dropRate: number;
  /** drop everything (the BMC "stops answering") */
  blackhole: boolean;
  /** ms each answer of the BMC is held before it is passed on (a slow BMC) */
  delayMs: number;
  forwarded: number;
  dropped: number;
  close(): Promise<void>;
}

export async function startUdpProxy(targetHost: string, targetPort: number, random: () => number = Math.random): Promise<UdpProxy> {
  const front: Socket = createSocket('udp4');
  const clients = new Map<string, { socket: Socket; rinfo: RemoteInfo }>();
  const proxy: UdpProxy = {
    port: 0,
    dropRate: 0,
    blackhole: false,
    delayMs: 0,
    forwarded: 0,
    dropped: 0,
    async close() {
      for (const c of clients.values()) c.socket.close();
      await new Promise<void>((resolve) => front.close(() => resolve()));
    },
  };
  const pass = () => {
    if (proxy.blackhole || random() < proxy.dropRate) {
      proxy.dropped++;
      return false;
    }
    proxy.forwarded++;
    return true;
  };
  front.on('message', (msg, rinfo) => {
    const key = `${rinfo.address}:${rinfo.port}`;
    let client = clients.get(key);
    if (!client) {
      const socket = createSocket('udp4');
      socket.on('message', (reply) => {
        if (!pass()) return;
        if (proxy.delayMs > 0) setTimeout(() => front.send(reply, rinfo.port, rinfo.address), proxy.delayMs);
        else front.send(reply, rinfo.port, rinfo.address);
      });
      socket.bind(0, '127.0.0.1');
      client = { socket, rinfo };
      clients.set(key, client);
    }
    if (pass()) client.socket.send(msg, targetPort, targetHost);
  });
  await new Promise<void>((resolve) => front.bind(0, '127.0.0.1', resolve));
  proxy.port = front.address().port;
  return proxy;
}
