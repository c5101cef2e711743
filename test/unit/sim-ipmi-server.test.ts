import { createSocket } from 'node:dgram';
import { describe, expect, it } from 'vitest';
import { isBmcError } from '../../src/errors.js';
import { decodePresencePong, encodePresencePing } from '../../src/ipmi/rmcp.js';
import { startIpmiServer, type IpmiEndpoint, type IpmiServerOptions } from '../../src/sim/ipmi-server.js';
import { createMachineState, SimMachine } from '../../src/sim/machine.js';
import { SerialLine } from '../../src/sim/serial.js';

const machine = (i = 0) => new SimMachine(createMachineState('sim-ipmi-server', i, '127.78.0.0/16'));

/** Sends an ASF presence ping and resolves with the pong's tag, or undefined after `waitMs`. */
async function ping(at: IpmiEndpoint, tag: number, waitMs = 300): Promise<number | undefined> {
  const socket = createSocket('udp4');
  await new Promise<void>((r) => socket.bind(0, '127.0.0.1', () => r()));
  try {
    return await new Promise<number | undefined>((resolve) => {
      const timer = setTimeout(() => resolve(undefined), waitMs);
      socket.on('message', (d) => {
        clearTimeout(timer);
        resolve(decodePresencePong(d).tag);
      });
      socket.send(encodePresencePing(tag), at.port, at.address);
    });
  } finally {
    socket.close();
  }
}

describe('startIpmiServer', () => {
  it('listens on 127.0.0.1 with a random port in test mode', async () => {
    const server = await startIpmiServer({ machines: [machine()], port: 0, host: '127.0.0.1', user: 'ADMIN', password: 'ADMIN' });
    try {
      expect(server.endpoints[0]).toMatchObject({ address: '127.0.0.1' });
      expect(server.endpoints[0]!.port).toBeGreaterThan(0);
      expect(await ping(server.endpoint(0), 5)).toBe(5);
    } finally {
      await server.close();
    }
  });

  it('binds every machine on its own loopback address, and on the wildcard address with bindAll', async () => {
    const machines = [machine(0), machine(1)];
    const own = await startIpmiServer({ machines, port: 0, user: 'ADMIN', password: 'ADMIN' });
    const all = await startIpmiServer({ machines: [machine(5)], port: 0, bindAll: true, user: 'ADMIN', password: 'ADMIN' });
    try {
      expect(own.endpoints.map((e) => e.address)).toEqual(['127.78.0.1', '127.78.0.2']);
      expect(await ping(own.endpoint(1), 9)).toBe(9);
      expect(all.endpoints[0]!.address).toBe('127.0.0.1');
      expect(await ping(all.endpoints[0]!, 3)).toBe(3);
    } finally {
      await own.close();
      await all.close();
    }
  });

  it('reads faults on every datagram', async () => {
    const m = machine();
    const server = await startIpmiServer({ machines: [m], port: 0, host: '127.0.0.1', user: 'ADMIN', password: 'ADMIN', random: () => 0.5 });
    try {
      m.state.faults.noAnswer = true;
      // "no answer" can only be seen as silence for a while: 300 ms, where the answer takes well under 1 ms
      expect(await ping(server.endpoint(0), 1)).toBeUndefined();
      m.state.faults.noAnswer = false;
      m.state.faults.dropRate = 0.6;
      expect(await ping(server.endpoint(0), 2)).toBeUndefined();
      m.state.faults.dropRate = 0.4;
      m.state.faults.delayMs = 120;
      const started = Date.now();
      expect(await ping(server.endpoint(0), 3, 5000)).toBe(3);
      // time is the subject (the delay fault): a lower bound, which load cannot break
      expect(Date.now() - started).toBeGreaterThanOrEqual(100);
    } finally {
      await server.close();
    }
  });

  it('rejects unusable options naming them', async () => {
    const base = { machines: [machine()], port: 0, user: 'ADMIN', password: 'ADMIN' };
    const cases: Array<[Partial<IpmiServerOptions>, string]> = [
      [{ port: 70000 }, 'port'],
      [{ password: 'x'.repeat(21) }, 'password'],
      [{ user: 'u'.repeat(17) }, 'user'],
      [{ maxSessions: 0 }, 'maxSessions'],
      [{ machines: [] }, 'machines'],
      [{ serialLines: [] }, 'serialLines'],
    ];
    for (const [over, words] of cases) {
      const err = await startIpmiServer({ ...base, ...over }).catch((e: unknown) => e);
      expect(isBmcError(err, 'INVALID_ARGUMENT')).toBe(true);
      expect((err as Error).message).toContain(words);
    }
  });

  it('fails with CONFIG when the port is taken, and releases what it bound', async () => {
    const first = await startIpmiServer({ machines: [machine()], port: 0, host: '127.0.0.1', user: 'ADMIN', password: 'ADMIN' });
    try {
      const err = await startIpmiServer({ machines: [machine()], port: first.endpoints[0]!.port, host: '127.0.0.1', user: 'ADMIN', password: 'ADMIN' }).catch((e: unknown) => e);
      expect(isBmcError(err, 'CONFIG')).toBe(true);
    } finally {
      await first.close();
    }
  });

  it('uses the serial lines it is given and leaves them open', async () => {
    const m = machine();
    const line = new SerialLine(m, { hostname: 'given' });
    const server = await startIpmiServer({ machines: [m], port: 0, host: '127.0.0.1', user: 'ADMIN', password: 'ADMIN', serialLines: [line] });
    expect(server.serial(0)).toBe(line);
    await server.close();
    expect(m.listenerCount('change')).toBe(1);
    line.close();
  });
});
