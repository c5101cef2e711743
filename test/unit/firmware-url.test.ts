/**
 * Where firmware images may come from: the URL rules, and the download's own address check
 * against a real HTTP server on loopback that records every connection.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import fc from 'fast-check';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkFirmwareUrl, forbiddenAddress, guardedLookup, type FirmwareUrlPolicyOptions } from '../../src/commands/firmware-url.js';

const POLICY = { allow: ['images.example.com', 'https://mirror.example.org/firmware/'], metalApiHost: 'metal-api.example.com' };
const refusal = (url: string, policy: FirmwareUrlPolicyOptions = POLICY): string => {
  try {
    checkFirmwareUrl(url, policy);
  } catch (err) {
    expect((err as { code?: string }).code).toBe('FORBIDDEN');
    return (err as Error).message;
  }
  return 'allowed';
};

describe('checkFirmwareUrl', () => {
  it('allows listed hosts and URL prefixes only', () => {
    expect(refusal('https://images.example.com/x11/bios.bin?sig=1')).toBe('allowed');
    expect(refusal('http://IMAGES.example.com/bmc.bin')).toBe('allowed');
    expect(refusal('https://mirror.example.org/firmware/bios.bin')).toBe('allowed');
    expect(refusal('https://mirror.example.org/other/bios.bin')).toMatch(/not in METAL_BMC_FIRMWARE_URL_ALLOW/);
    expect(refusal('https://images.example.com.evil.net/bios.bin')).toMatch(/not in METAL_BMC_FIRMWARE_URL_ALLOW/);
    expect(refusal('https://images.example.com/x', { ...POLICY, allow: [] })).toMatch(/firmware updates are off/);
  });

  it('a URL prefix holds at its host, port and path segments, not at any character', () => {
    const policy = { allow: ['https://images.example.com', 'https://mirror.example.org:8443/firmware'], metalApiHost: 'metal-api.example.com' };
    expect(refusal('https://images.example.com/any/bios.bin', policy)).toBe('allowed');
    expect(refusal('https://IMAGES.example.com:443/bios.bin', policy)).toBe('allowed'); // the default port is the same port
    expect(refusal('https://images.example.com.evil.net/bios.bin', policy)).toMatch(/not in METAL_BMC_FIRMWARE_URL_ALLOW/);
    expect(refusal('https://images.example.com:9999/bios.bin', policy)).toMatch(/not in METAL_BMC_FIRMWARE_URL_ALLOW/);
    expect(refusal('http://images.example.com/bios.bin', policy)).toMatch(/not in METAL_BMC_FIRMWARE_URL_ALLOW/);
    expect(refusal('https://mirror.example.org:8443/firmware', policy)).toBe('allowed');
    expect(refusal('https://mirror.example.org:8443/firmware/x12/bios.bin', policy)).toBe('allowed');
    expect(refusal('https://mirror.example.org:8443/firmware-old/bios.bin', policy)).toMatch(/not in METAL_BMC_FIRMWARE_URL_ALLOW/);
    expect(refusal('https://mirror.example.org:8443/firmware/../secrets/key', policy)).toMatch(/not in METAL_BMC_FIRMWARE_URL_ALLOW/);
    expect(refusal('https://mirror.example.org/firmware/bios.bin', policy)).toMatch(/not in METAL_BMC_FIRMWARE_URL_ALLOW/);
    // whatever the URL, a prefix lets in only URLs of its scheme, host and port
    fc.assert(
      fc.property(fc.webUrl({ withQueryParameters: true, withFragments: true }), (text) => {
        const url = new URL(text);
        if (refusal(text, policy) !== 'allowed') return;
        expect(['https://images.example.com', 'https://mirror.example.org:8443']).toContain(url.origin);
      }),
    );
  });

  it('refuses credentials, other schemes, metal-api, loopback, link-local and unspecified addresses, even when listed', () => {
    const all = { allow: ['metal-api.example.com', '127.0.0.1', '169.254.169.254', '[::1]', '::1', '0.0.0.0', 'images.example.com'], metalApiHost: 'metal-api.example.com' };
    expect(refusal('https://user:pw@images.example.com/b.bin', all)).toMatch(/carries credentials/);
    expect(refusal('ftp://images.example.com/b.bin', all)).toMatch(/is not http or https/);
    expect(refusal('file:///etc/passwd', all)).toMatch(/is not http or https/);
    expect(refusal('https://metal-api.example.com/v1/machine', all)).toMatch(/points at metal-api/);
    expect(refusal('http://127.0.0.1/b.bin', all)).toMatch(/points at a loopback address/);
    expect(refusal('http://[::1]/b.bin', all)).toMatch(/points at a loopback address/);
    expect(refusal('http://169.254.169.254/latest', all)).toMatch(/points at a link-local address/);
    expect(refusal('http://0.0.0.0/b.bin', all)).toMatch(/points at the unspecified address/);
    expect(refusal('http://127.0.0.1/b.bin', { ...all, allowLoopback: true })).toBe('allowed');
    // IPv4-mapped IPv6 (the URL parser writes it as hex) and a trailing dot are the same hosts
    const mapped = { ...all, allow: [...all.allow, '::ffff:7f00:1', '::ffff:a9fe:a9fe', 'metal-api.example.com.'] };
    expect(refusal('http://[::ffff:127.0.0.1]/b.bin', mapped)).toMatch(/points at a loopback address/);
    expect(refusal('http://[::ffff:169.254.169.254]/latest', mapped)).toMatch(/points at a link-local address/);
    expect(refusal('https://metal-api.example.com./v1/machine', mapped)).toMatch(/points at metal-api/);
    // the message never carries a query string
    expect(refusal('https://nope.example/b.bin?token=s3cret')).not.toContain('s3cret');
  });

  it('any text is allowed or FORBIDDEN, never another error', () => {
    fc.assert(fc.property(fc.oneof(fc.string(), fc.webUrl({ withQueryParameters: true })), (text) => void refusal(text)));
  });

  it('classifies addresses', () => {
    expect(forbiddenAddress('127.1.2.3')).toBe('a loopback address');
    expect(forbiddenAddress('::ffff:127.0.0.1')).toBe('a loopback address');
    expect(forbiddenAddress('fe80::1')).toBe('a link-local address');
    expect(forbiddenAddress('10.0.0.1')).toBeUndefined();
    expect(forbiddenAddress('127.0.0.1', true)).toBeUndefined();
  });
});

describe('the download refuses forbidden addresses when it connects', () => {
  let server: Server;
  let connections = 0;
  let port = 0;
  beforeAll(async () => {
    server = createServer((req, res) => {
      if (req.url === '/redirect') res.writeHead(302, { location: `http://127.0.0.1:${port}/image.bin` }).end();
      else res.end('IMAGE');
    });
    server.on('connection', () => (connections += 1));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    port = (server.address() as AddressInfo).port;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it('a name that resolves to loopback is refused before a connection is made; with loopback allowed it is fetched', async () => {
    const guarded = new Agent({ connect: { lookup: guardedLookup(false) } });
    await expect(request(`http://localhost:${port}/image.bin`, { dispatcher: guarded })).rejects.toThrow(/resolves to a loopback address/);
    expect(connections).toBe(0);
    const lab = new Agent({ connect: { lookup: guardedLookup(true) } });
    const res = await request(`http://localhost:${port}/image.bin`, { dispatcher: lab });
    expect(await res.body.text()).toBe('IMAGE');
    expect(connections).toBe(1);
    // redirects are not followed: a 3xx is an answer, not a second fetch
    const redirected = await request(`http://localhost:${port}/redirect`, { dispatcher: lab });
    await redirected.body.dump();
    expect(redirected.statusCode).toBe(302);
    await Promise.all([guarded.close(), lab.close()]);
  });
});
