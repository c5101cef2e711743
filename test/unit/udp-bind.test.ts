/**
 * bindEphemeral (src/ipmi/transport.ts): a socket bound without dgram's detour through
 * node:cluster, and dgram's own bind(0) wherever the handle class cannot be found or bound.
 * That the bundle's one-shot command loads neither cluster nor net is in cli-startup.test.ts.
 */
import { createSocket, type Socket } from 'node:dgram';
import { once } from 'node:events';
import { afterEach, expect, it, vi } from 'vitest';
import { bindEphemeral } from '../../src/ipmi/transport.js';

const open: Socket[] = [];
afterEach(() => {
  for (const s of open.splice(0)) s.close();
});

async function bound(type: 'udp4' | 'udp6'): Promise<Socket> {
  const socket = createSocket(type);
  open.push(socket);
  await new Promise<void>((resolve) => bindEphemeral(socket, type === 'udp6' ? 6 : 4, resolve));
  return socket;
}

it.each([
  ['udp4', '127.0.0.1', '0.0.0.0'],
  ['udp6', '::1', '::'],
] as const)('%s: bound to an ephemeral port on every address; datagrams go both ways', async (type, loopback, any) => {
  const a = await bound(type);
  const b = await bound(type);
  expect(a.address()).toMatchObject({ address: any });
  expect(a.address().port).toBeGreaterThan(0);
  const atB = once(b, 'message');
  a.send(Buffer.from('ping'), b.address().port, loopback);
  const [msg, rinfo] = (await atB) as [Buffer, { port: number }];
  expect(msg.toString()).toBe('ping');
  expect(rinfo.port).toBe(a.address().port);
  const atA = once(a, 'message');
  b.send(Buffer.from('pong'), rinfo.port, loopback);
  expect(((await atA) as [Buffer])[0].toString()).toBe('pong');
});

it('a socket without a handle it can find is bound by dgram itself', () => {
  const bind = vi.fn((_port: number, cb: () => void) => cb());
  const listening = vi.fn();
  bindEphemeral({ bind } as unknown as Socket, 4, listening);
  expect(bind).toHaveBeenCalledWith(0, listening);
  expect(listening).toHaveBeenCalledOnce();
});

it('a handle that cannot be bound is closed, and dgram binds instead', () => {
  const made: { closed: boolean }[] = [];
  class FakeUdp {
    closed = false;
    constructor() {
      made.push(this);
    }
    recvStart() {}
    bind() {
      return -98; // EADDRINUSE
    }
    bind6() {
      return -98;
    }
    close() {
      this.closed = true;
    }
  }
  const bind = vi.fn((_port: number, cb: () => void) => cb());
  const socket = { bind, [Symbol('state symbol')]: { handle: new FakeUdp() } } as unknown as Socket;
  made.length = 0;
  bindEphemeral(socket, 4, () => undefined);
  expect(made).toHaveLength(1);
  expect(made[0]!.closed).toBe(true);
  expect(bind).toHaveBeenCalledWith(0, expect.any(Function));
});
