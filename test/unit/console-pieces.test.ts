/** Small pure pieces of the console: token checks, BMC address parsing, page escaping, one-line messages. */
import type { IncomingMessage } from 'node:http';
import { Duplex } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { metalApiConsoleBackend, splitAddress } from '../../src/console/backend.js';
import { consolePage } from '../../src/console/page.js';
import { terminalSafe } from '../../src/terminal-text.js';
import { bearerToken, tokenMatches } from '../../src/console/http-auth.js';
import type { Outband } from '../../src/outband/types.js';
import { createTargetGuard } from '../../src/commands/targets.js';
import { parseCidr } from '../../src/net/cidr.js';

const req = (url: string, authorization?: string) => ({ url, headers: authorization ? { authorization } : {} }) as unknown as IncomingMessage;

describe('console pieces', () => {
  it('takes the token from the Authorization header only, never from the URL', () => {
    expect(bearerToken(req('/v1/machine/x/console?token=q', 'Bearer h'))).toBe('h');
    expect(bearerToken(req('/v1/machine/x/console?token=q'))).toBeUndefined();
    expect(bearerToken(req('/v1/machine/x/console', 'Basic abc'))).toBeUndefined();
    expect(tokenMatches('secret', 'secret')).toBe(true);
    expect(tokenMatches('secret-but-longer', 'secret')).toBe(false);
    expect(tokenMatches(undefined, 'secret')).toBe(false);
  });

  it('splits metal-api BMC addresses', () => {
    expect(splitAddress('10.1.0.17:623', 623)).toEqual({ host: '10.1.0.17', port: 623 });
    expect(splitAddress('10.1.0.17', 6230)).toEqual({ host: '10.1.0.17', port: 6230 });
    expect(splitAddress('[fd00::17]:1623', 623)).toEqual({ host: 'fd00::17', port: 1623 });
    expect(splitAddress('fd00::17', 623)).toEqual({ host: 'fd00::17', port: 623 });
  });

  it('the backend opens the console with takeOver and closes the Outband, on success and on failure', async () => {
    const calls: string[] = [];
    const stream = new Duplex({ read() {}, write(_c, _e, cb) { cb(); } });
    let fail = false;
    const outband = {
      openConsole: async (o: { takeOver?: boolean }) => {
        calls.push(`open takeOver=${String(o.takeOver)}`);
        if (fail) throw new Error('SOL refused');
        return stream;
      },
      close: async () => {
        calls.push('close');
      },
    } as unknown as Outband;
    const open = metalApiConsoleBackend({
      findIpmiMachine: async () => ({ address: '10.0.0.1:623', user: 'ADMIN', password: 'pw', interface: 'lanplus', mac: '', fru: {}, bmcversion: '', powerstate: '' }),
      connect: async (t) => {
        calls.push(`connect ${t.host}:${t.port} ${t.user}`);
        return outband;
      },
    });
    expect(await open('m', { signal: new AbortController().signal })).toBe(stream);
    fail = true;
    await expect(open('m', { signal: new AbortController().signal })).rejects.toThrow('SOL refused');
    expect(calls).toEqual(['connect 10.0.0.1:623 ADMIN', 'open takeOver=true', 'close', 'connect 10.0.0.1:623 ADMIN', 'open takeOver=true', 'close']);
    // while the hub yields to another client that took the console, it opens without takeover
    fail = false;
    calls.length = 0;
    await open('m', { signal: new AbortController().signal, takeOver: false });
    expect(calls).toEqual(['connect 10.0.0.1:623 ADMIN', 'open takeOver=false', 'close']);
  });

  it("the backend gives no credentials to a BMC whose address DHCP moved to another BMC (metal-api's record stale), nor outside the allowed CIDRs: the commands' target guard, before connecting", async () => {
    const connected: string[] = [];
    const leases = new Map([['10.0.0.1', { mac: 'aa:bb:cc:00:00:02' }]]);
    const open = metalApiConsoleBackend({
      findIpmiMachine: async (id) => ({ address: id === 'outside' ? '192.168.1.1:623' : '10.0.0.1:623', user: 'ADMIN', password: 'pw', interface: 'lanplus', mac: 'aa:bb:cc:00:00:01', fru: {}, bmcversion: '', powerstate: '' }),
      connect: async (t) => {
        connected.push(t.host);
        throw new Error('not reached');
      },
      checkTarget: createTargetGuard({ mode: 'leases', allowedCidrs: [parseCidr('10.0.0.0/24')], leaseAt: (ip) => leases.get(ip) }),
    });
    await expect(open('moved', { signal: new AbortController().signal })).rejects.toMatchObject({ code: 'FORBIDDEN', message: expect.stringMatching(/leased to MAC aa:bb:cc:00:00:02/) });
    await expect(open('outside', { signal: new AbortController().signal })).rejects.toMatchObject({ code: 'FORBIDDEN', message: expect.stringMatching(/outside METAL_BMC_ALLOWED_CIDRS/) });
    expect(connected).toEqual([]);
  });

  it("the backend passes the hub's takeOver to a console worker's SOL", async () => {
    const asked: boolean[] = [];
    const stream = new Duplex({ read() {}, write(_c, _e, cb) { cb(); } });
    const outband = { profile: { console: 'ipmi-sol' }, protocols: { ipmi: true }, close: async () => undefined } as unknown as Outband;
    const open = metalApiConsoleBackend({
      findIpmiMachine: async () => ({ address: '10.0.0.1:623', user: 'ADMIN', password: 'pw', interface: 'lanplus', mac: '', fru: {}, bmcversion: '', powerstate: '' }),
      connect: async () => outband,
      openSol: async (_t, _s, takeOver) => {
        asked.push(takeOver);
        return stream;
      },
    });
    await open('m', { signal: new AbortController().signal });
    await open('m', { signal: new AbortController().signal, takeOver: false });
    expect(asked).toEqual([true, false]);
  });

  it('escapes the machine id in the page and keeps messages on one line', () => {
    const html = consolePage('<script>alert(1)</script>');
    expect(html).not.toContain('<script>alert(1)</script>');
    expect(html).toContain('&#60;script&#62;');
    expect(terminalSafe('a\r\nb\x1b[31mc\t')).toBe('a b [31mc');
    // C1 controls too: U+009B acts as CSI in some terminals
    expect(terminalSafe('x\u009b31my\u0085z')).toBe('x 31my z');
    // and the bidirectional overrides and isolates, which show a line in another order
    expect(terminalSafe('file\u202egpj.exe \u2066x\u2069')).toBe('file gpj.exe  x');
  });
});
