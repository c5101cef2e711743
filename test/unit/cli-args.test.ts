/**
 * `parseAddress` (the CLI's --address): IPv4 and host names with an optional ":PORT", IPv6
 * literals bare or as "[v6]:PORT". It checks for an IPv6 literal only when the text has two
 * colons or more (net.isIP's IPv6 pattern is costly to compile at start), which must not change
 * any result.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseAddress, UsageError } from '../../src/cli/args.js';

const port = fc.integer({ min: 1, max: 65535 });

describe('parseAddress', () => {
  it('IPv4 with and without a port', () => {
    fc.assert(
      fc.property(fc.ipV4(), port, (ip, p) => {
        expect(parseAddress(`${ip}:${p}`, 623)).toEqual({ host: ip, port: p });
        expect(parseAddress(ip, 623)).toEqual({ host: ip, port: 623 });
      }),
    );
  });

  it('IPv6 bare (default port) and bracketed with a port', () => {
    fc.assert(
      fc.property(fc.ipV6(), port, (ip, p) => {
        expect(parseAddress(ip, 623)).toEqual({ host: ip, port: 623 });
        expect(parseAddress(`[${ip}]:${p}`, 623)).toEqual({ host: ip, port: p });
      }),
    );
  });

  it('host names with a port', () => {
    expect(parseAddress('bmc-1.example:6230', 623)).toEqual({ host: 'bmc-1.example', port: 6230 });
    expect(parseAddress('bmc-1', 623)).toEqual({ host: 'bmc-1', port: 623 });
  });

  it('refuses a bad port or host', () => {
    expect(() => parseAddress('10.0.0.1:0', 623)).toThrow(UsageError);
    expect(() => parseAddress('10.0.0.1:x', 623)).toThrow(UsageError);
    expect(() => parseAddress('bad host:623', 623)).toThrow(UsageError);
    expect(() => parseAddress('1:2:3', 623)).toThrow(UsageError);
    expect(() => parseAddress(undefined, 623)).toThrow(/--address is required/);
  });
});
