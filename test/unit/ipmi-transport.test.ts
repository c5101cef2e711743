/** The UDP channels to BMCs (src/ipmi/transport.ts): sockets shared by many BMCs, answers routed by their source. */
import { createSocket } from 'node:dgram';
import { describe, expect, it } from 'vitest';
import { createUdpPool, resolveHost } from '../../src/ipmi/transport.js';
import { waitFor } from '../helpers/wait.js';

describe('UDP channels to BMCs', () => {
  it('an IPv6 BMC address in any spelling is the form answers come from (rinfo.address)', async () => {
    expect(await resolveHost('2001:DB8:0:0:0:0:0:1')).toEqual({ address: '2001:db8::1', family: 6 });
    expect(await resolveHost('::1')).toEqual({ address: '::1', family: 6 });
    expect(await resolveHost('fe80::1%lo')).toEqual({ address: 'fe80::1%lo', family: 6 });
    expect(await resolveHost('10.0.0.1')).toEqual({ address: '10.0.0.1', family: 4 });
  });

  it('two channels to one BMC opened at once each get their answers (not one socket with the second channel routed for both)', async () => {
    // a BMC that echoes every datagram to where it came from
    const bmc = createSocket('udp4');
    bmc.on('message', (msg, rinfo) => bmc.send(msg, rinfo.port, rinfo.address));
    await new Promise<void>((resolve) => bmc.bind(0, '127.0.0.1', resolve));
    const port = bmc.address().port;
    const pool = createUdpPool();
    try {
      // a socket of the pool (another BMC's channel) that both opens find free of their BMC
      const first = await pool.open('127.0.0.2', port);
      const [a, b] = await Promise.all([pool.open('127.0.0.1', port), pool.open('127.0.0.1', port)]);
      const got = { a: [] as string[], b: [] as string[] };
      a.onDatagram((d) => got.a.push(d.toString()));
      b.onDatagram((d) => got.b.push(d.toString()));
      a.send(Buffer.from('to a'));
      b.send(Buffer.from('to b'));
      await waitFor(() => got.a.length + got.b.length >= 2, 2000, 'both echoes').catch(() => undefined);
      expect(got).toEqual({ a: ['to a'], b: ['to b'] });
      first.close();
      a.close();
      b.close();
    } finally {
      pool.close();
      bmc.close();
    }
  });
});
