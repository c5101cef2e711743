/** `metal-bmc status` against a small HTTP server serving a status document: colour only on a terminal and without NO_COLOR, the default address, --watch. */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultAddress, statusMain } from '../../src/cli/status.js';
import type { StatusDocument } from '../../src/status/types.js';

const DOC: StatusDocument = {
  version: 1,
  generatedAt: new Date().toISOString(),
  partition: 'p',
  graceSeconds: 3600,
  summary: { bmcs: 2, reachable: 1, failing: 1, degraded: 0, pending: 0, vanished: 0, byReason: { 'no-answer': 1 }, commandsLastHour: 0 },
  bmcs: [
    { ip: '10.0.0.2', mac: 'aa:bb:cc:dd:ee:02', state: 'ok', lease: { seenSince: new Date().toISOString(), ageSeconds: 0, expires: 'never' }, failures: { consecutive: 0 }, console: { viewers: 0, capture: 'off' } },
    { ip: '10.0.0.1', mac: 'aa:bb:cc:dd:ee:01', state: 'failing', lease: { seenSince: new Date().toISOString(), ageSeconds: 0, expires: 'never' }, lastRead: { at: new Date().toISOString(), durationMs: 3000, outcome: 'failed', problem: { reason: 'no-answer', code: 'TIMEOUT', message: 'timed out' } }, failures: { consecutive: 1 }, console: { viewers: 0, capture: 'off' } },
  ],
};

let server: Server;
let base: string;
let requests = 0;

beforeAll(async () => {
  server = createServer((req, res) => {
    requests++;
    if (req.url === '/v1/status') res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(DOC));
    else res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

function sink(tty: boolean): { stream: NodeJS.WritableStream; text: () => string } {
  let text = '';
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      text += chunk.toString();
      done();
    },
  });
  Object.assign(stream, { isTTY: tty });
  return { stream, text: () => text };
}

describe('metal-bmc status', () => {
  it('colours the state on a terminal, not with NO_COLOR, not in a pipe; problems first', async () => {
    const tty = sink(true);
    expect(await statusMain(['--address', base], { stdout: tty.stream, env: {} })).toBe(0);
    expect(tty.text()).toContain('\x1b[31mfailing');
    const lines = tty.text().split('\n');
    expect(lines[1]).toMatch(/^10\.0\.0\.1 /);
    const noColour = sink(true);
    await statusMain(['--address', base], { stdout: noColour.stream, env: { NO_COLOR: '1' } });
    expect(noColour.text()).not.toContain('\x1b[');
    const pipe = sink(false);
    await statusMain(['--address', base, '--problems'], { stdout: pipe.stream, env: {} });
    expect(pipe.text()).not.toContain('\x1b[');
    expect(pipe.text()).not.toContain('10.0.0.2');
  });

  it('reads the local operations listener by default', () => {
    expect(defaultAddress({})).toBe('http://127.0.0.1:2112');
    expect(defaultAddress({ METAL_BMC_HTTP_ADDRESS: ':9100' })).toBe('http://127.0.0.1:9100');
    expect(defaultAddress({ METAL_BMC_HTTP_ADDRESS: '10.1.2.3:2112' })).toBe('http://10.1.2.3:2112');
  });

  it('--watch asks again', async () => {
    const out = sink(false);
    const before = requests;
    void statusMain(['--watch', '--address', base], { stdout: out.stream, env: {} });
    // the second table is written after its answer arrives: wait for the table, not for the request
    await expect.poll(() => out.text().match(/^IP\s+MAC/gm)?.length ?? 0, { timeout: 10_000, interval: 100 }).toBeGreaterThanOrEqual(2);
    expect(requests - before).toBeGreaterThanOrEqual(2);
  });
});
