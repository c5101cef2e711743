import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { EventEmitter } from 'node:events';
import type { Server } from 'node:net';
import { limitConnections, prefix64Of, PREFIX64_SOURCES, type ConnectionLimits } from '../../src/net/connection-limits.js';
import { OPS_CONNECTION_LIMITS } from '../../src/ops/http.js';

const hextet = fc.integer({ min: 0, max: 0xffff }).map((n) => n.toString(16));

describe("an IPv6 address's /64, which a connection also counts against", () => {
  it('is none for an IPv4 address (plain or IPv4-mapped)', () => {
    expect(prefix64Of('10.0.0.1')).toBeUndefined();
    expect(prefix64Of('::ffff:10.0.0.1')).toBeUndefined();
  });

  it('is the same whatever the rest, the zone or the form (compressed or not)', () => {
    expect(prefix64Of('2001:db8:1:2:3:4:5:6')).toBe('2001:db8:1:2::/64');
    expect(prefix64Of('2001:db8:1:2::7')).toBe('2001:db8:1:2::/64');
    expect(prefix64Of('fe80::1%eth0')).toBe('fe80:0:0:0::/64');
    fc.assert(
      fc.property(fc.array(hextet, { minLength: 8, maxLength: 8 }), fc.array(hextet, { minLength: 4, maxLength: 4 }), (a, rest) => {
        const full = a.join(':');
        const sibling = [...a.slice(0, 4), ...rest].join(':');
        expect(prefix64Of(full)).toBe(prefix64Of(sibling));
        // the same address compressed (a zero run written as ::) counts the same
        const zeros = [...a.slice(0, 4), '0', '0', ...a.slice(6)];
        expect(prefix64Of(zeros.join(':'))).toBe(prefix64Of(`${a.slice(0, 4).join(':')}::${a.slice(6).join(':')}`));
      }),
    );
  });
});

describe('connection bounds', () => {
  class FakeSocket extends EventEmitter {
    destroyed = false;
    constructor(readonly remoteAddress: string) {
      super();
    }
    destroy() {
      this.destroyed = true;
      this.emit('close');
    }
  }
  function listener(limits: ConnectionLimits) {
    const server = new EventEmitter();
    const refused: string[] = [];
    const bound = limitConnections(server as unknown as Server, limits, (_s, why) => refused.push(why));
    const connect = (address: string) => {
      const socket = new FakeSocket(address);
      server.emit('connection', socket);
      return socket;
    };
    return { connect, refused, bound };
  }

  it('count per address, and an IPv6 /64 holds PREFIX64_SOURCES times that: clients sharing a /64 do not share one bound, one host holding it cannot open without end', () => {
    const l = listener({ perSource: 2, total: 1000 });
    const first = [l.connect('2001:db8:1:2::1'), l.connect('2001:db8:1:2::1')];
    expect(l.connect('2001:db8:1:2::1').destroyed).toBe(true);
    expect(l.refused).toEqual(['per-source']);
    // other addresses of the /64 (other clients on the LAN) are served, up to the /64's bound
    const others = Array.from({ length: 2 * PREFIX64_SOURCES - 2 }, (_, i) => l.connect(`2001:db8:1:2::${(i + 2).toString(16)}`));
    expect(others.every((s) => !s.destroyed)).toBe(true);
    expect(l.connect('2001:db8:1:2::ffff').destroyed).toBe(true);
    expect(l.connect('2001:db8:1:3::1').destroyed).toBe(false); // another /64
    // closing frees the address and the /64
    first[0]!.destroy();
    expect(l.connect('2001:db8:1:2::1').destroyed).toBe(false);
    expect(l.bound.open()).toBe(2 * PREFIX64_SOURCES + 1);
  });

  it("a /64 bound of its own: the operations listener's is below its total, so one IPv6 host cannot take every slot", () => {
    expect(OPS_CONNECTION_LIMITS.perPrefix64).toBeLessThan(OPS_CONNECTION_LIMITS.total);
    const l = listener({ perSource: 2, perPrefix64: 3, total: 1000 });
    const held = [l.connect('2001:db8:1:2::1'), l.connect('2001:db8:1:2::2'), l.connect('2001:db8:1:2::3')];
    expect(held.every((s) => !s.destroyed)).toBe(true);
    expect(l.connect('2001:db8:1:2::4').destroyed).toBe(true);
    expect(l.refused).toEqual(['per-source']);
    expect(l.connect('2001:db8:1:3::1').destroyed).toBe(false);
  });

  it('IPv4 addresses count each for itself, and the total holds across them', () => {
    const l = listener({ perSource: 2, total: 3 });
    l.connect('10.0.0.1');
    l.connect('10.0.0.1');
    expect(l.connect('10.0.0.1').destroyed).toBe(true);
    expect(l.connect('10.0.0.2').destroyed).toBe(false);
    expect(l.connect('10.0.0.3').destroyed).toBe(true);
    expect(l.refused).toEqual(['per-source', 'total']);
  });
});
