/**
 * The Redfish transport's own HTTP/1.1 connections (src/redfish/h1-connection.ts) against a real
 * lighttpd, the web server AMI MegaRAC BMCs (Gigabyte, ASRock Rack and others) answer Redfish
 * through, built as such a BMC builds it: a few requests per connection, idle connections closed
 * after seconds without a word. The unit tests (test/unit/redfish-h1-connection.test.ts) script
 * each edge byte by byte; here the same edges come from the server itself: a recorded AMI tree
 * (test/fixtures/redfish-vendors/gigabyte-h262-z63-ami) read whole, in order and side by side,
 * `Connection: close` on the last request a connection may carry, the idle close, a TLS session
 * resumed across connections, and a chunked body from a CGI program (lighttpd frames a streamed
 * answer of unknown length in chunks).
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { chmodSync, cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, sep } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, afterEach, beforeAll, expect } from 'vitest';
import { createTransport, type HttpTransport, type TransportOptions } from '../../src/redfish/index.js';
import { sharedTlsStats } from '../../src/redfish/tls-context.js';
import { selfSignedCertificate } from '../../src/sim/tls.js';
import { requirePeerPath, withPeers } from '../helpers/peers.js';
import { freeTcpPort } from '../helpers/ports.js';
import { waitFor } from '../helpers/wait.js';

const { describe, it } = withPeers('lighttpd', 'openssl', 'ss');

const TREE = join(import.meta.dirname, '..', 'fixtures', 'redfish-vendors', 'gigabyte-h262-z63-ami');
/** lighttpd's max-keep-alive-requests: the requests after a connection's first (its default is 1,000; BMC builds keep it small) */
const KEPT_ALIVE_REQUESTS = 3;
/** so a connection carries four requests, the last answered with `Connection: close` (curl sees the same) */
const REQUESTS_PER_CONNECTION = KEPT_ALIVE_REQUESTS + 1;
/** lighttpd's max-keep-alive-idle: it checks once a second, so an idle connection goes 2–3 s after its last answer */
const IDLE_SECONDS = 2;
/** a larger body than a Redfish resource, from the CGI program, in chunks */
const CHUNKED_NAME_BYTES = 6000;

let dir: string;
let port: number;
let lighttpd: ChildProcess | undefined;
let fingerprint: string;
const transports: HttpTransport[] = [];

/** every resource of the tree: its Redfish path and its JSON */
function resources(): Array<{ path: string; body: unknown }> {
  const root = join(TREE, 'redfish', 'v1');
  const found: Array<{ path: string; body: unknown }> = [];
  const walk = (folder: string): void => {
    for (const entry of readdirSync(folder, { withFileTypes: true })) {
      const at = join(folder, entry.name);
      if (entry.isDirectory()) walk(at);
      else if (entry.name === 'index.json') {
        const rel = relative(root, folder).split(sep).join('/');
        found.push({ path: rel === '' ? '/redfish/v1/' : `/redfish/v1/${rel}`, body: JSON.parse(readFileSync(at, 'utf8')) });
      }
    }
  };
  walk(root);
  return found.sort((a, b) => a.path.localeCompare(b.path));
}

const exec = promisify(execFile);

/** TCP connections to lighttpd's port in the kernel's table, established ones only */
async function establishedToServer(): Promise<number> {
  const { stdout } = await exec('ss', ['-tnH', 'state', 'established', `( dport = :${port} )`]);
  return stdout.split('\n').filter((l) => l.trim() !== '').length;
}

function transport(extra: Partial<TransportOptions> = {}): HttpTransport {
  const t = createTransport({ host: '127.0.0.1', port, pinnedSha256: fingerprint, retries: 0, timeoutMs: 10_000, ...extra });
  transports.push(t);
  return t;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'metal-bmc-lighttpd-'));
  const www = join(dir, 'www');
  cpSync(join(TREE, 'redfish'), join(www, 'redfish'), { recursive: true });
  // a static file a POST may go to (lighttpd answers it with the file)
  cpSync(join(TREE, 'redfish', 'v1', 'index.json'), join(www, 'redfish', 'v1', 'Oem', 'keep.json'));
  // an answer of unknown length, streamed: lighttpd sends it in chunks
  const cgi = join(www, 'redfish', 'v1', 'Oem', 'Chunked.sh');
  // the head and the body's start first, the rest a moment later: lighttpd streams what it has,
  // so the answer goes out in chunks even when it could have read all of a quick program's output
  writeFileSync(cgi, `printf 'Content-Type: application/json\\r\\n\\r\\n'\nprintf '{"Id":"Chunked","Name":"'\nsleep 0.2\nhead -c ${CHUNKED_NAME_BYTES} /dev/zero | tr '\\0' 'a'\nprintf '"}'\n`);
  chmodSync(cgi, 0o755);
  const cert = selfSignedCertificate('metal-bmc-lighttpd', ['127.0.0.1']);
  fingerprint = cert.fingerprint256;
  writeFileSync(join(dir, 'server.pem'), cert.cert + cert.key, { mode: 0o600 });
  port = await freeTcpPort('127.0.0.1');
  const conf = [
    `server.document-root = "${www}"`,
    'server.bind = "127.0.0.1"',
    `server.port = ${port}`,
    'server.modules = ("mod_openssl", "mod_rewrite", "mod_cgi")',
    'ssl.engine = "enable"',
    `ssl.pemfile = "${join(dir, 'server.pem')}"`,
    `server.max-keep-alive-requests = ${KEPT_ALIVE_REQUESTS}`,
    `server.max-keep-alive-idle = ${IDLE_SECONDS}`,
    'server.stream-response-body = 2',
    `server.errorlog = "${join(dir, 'error.log')}"`,
    'mimetype.assign = (".json" => "application/json")',
    'cgi.assign = (".sh" => "/bin/sh")',
    // a Redfish path is its folder's index.json, as the DMTF mockup server serves a tree
    'url.rewrite-if-not-file = ("^(/redfish/v1(/[^?]*?)?)/?(\\?.*)?$" => "$1/index.json")',
  ].join('\n');
  writeFileSync(join(dir, 'lighttpd.conf'), conf);
  lighttpd = spawn(requirePeerPath('lighttpd'), ['-D', '-f', join(dir, 'lighttpd.conf')], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  lighttpd.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const errorLog = (): string => {
    try {
      return readFileSync(join(dir, 'error.log'), 'utf8');
    } catch {
      return '';
    }
  };
  // lighttpd logs its start once its port is bound and listening; a port another program took
  // makes it exit instead (an open port alone could be that other program's)
  await waitFor(
    () => {
      if (lighttpd!.exitCode !== null) throw new Error(`lighttpd exited (${lighttpd!.exitCode}): ${stderr}${errorLog()}`);
      return errorLog().includes('server started');
    },
    10_000,
    'lighttpd to start',
  );
});

afterEach(async () => {
  await Promise.all(transports.splice(0).map((t) => t.close(0)));
});

afterAll(async () => {
  if (lighttpd && lighttpd.exitCode === null) {
    const exited = once(lighttpd, 'exit');
    lighttpd.kill('SIGTERM');
    const killer = setTimeout(() => lighttpd?.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(killer);
  }
  rmSync(dir, { recursive: true, force: true });
});

describe('lighttpd, as an AMI MegaRAC BMC runs it', () => {
  it(`reads a recorded AMI tree whole, one request after the other: a new connection after every ${REQUESTS_PER_CONNECTION} (lighttpd's Connection: close), its TLS session resumed`, async () => {
    const tree = resources();
    expect(tree.length).toBeGreaterThanOrEqual(10);
    const t = transport();
    const before = sharedTlsStats();
    for (const { path, body } of tree) {
      const res = await t.request({ method: 'GET', path });
      expect(res.status, path).toBe(200);
      expect(res.body, path).toEqual(body);
    }
    const after = sharedTlsStats();
    expect(after.connections - before.connections).toBe(Math.ceil(tree.length / REQUESTS_PER_CONNECTION));
    // the first connection of this test may be a full handshake (another test's session may be there or not); every later one resumes
    expect(after.resumed - before.resumed).toBeGreaterThanOrEqual(after.connections - before.connections - 1);
    expect(t.outages).toBe(0);
  });

  it('reads it side by side on two connections, each closed by lighttpd in turn', async () => {
    const tree = resources();
    const t = transport({ connections: 2, openConnectionAfterMs: 0 });
    const before = sharedTlsStats().connections;
    const answers = await Promise.all(tree.map(({ path }) => t.request({ method: 'GET', path })));
    expect(answers.map((a) => a.body)).toEqual(tree.map((r) => r.body));
    // two at once from the start, and each replaced after its fourth answer
    expect(sharedTlsStats().connections - before).toBeGreaterThanOrEqual(Math.max(2, Math.ceil(tree.length / REQUESTS_PER_CONNECTION)));
    expect(t.outages).toBe(0);
  });

  it('a connection lighttpd closed while idle is not used again: the next GET and a POST go on a new one', async () => {
    const t = transport();
    await t.request({ method: 'GET', path: '/redfish/v1/' });
    expect(await establishedToServer()).toBe(1);
    // lighttpd's max-keep-alive-idle ends the connection from its side
    await waitFor(async () => (await establishedToServer()) === 0, 10_000, 'lighttpd to close the idle connection');
    const before = sharedTlsStats().connections;
    expect((await t.request({ method: 'GET', path: '/redfish/v1/Systems' })).status).toBe(200);
    // a POST is never sent twice: had it gone on the closed connection, it would fail as HTTP_STALE_CONNECTION
    expect((await t.request({ method: 'POST', path: '/redfish/v1/Oem/keep.json', json: {} })).status).toBe(200);
    expect(sharedTlsStats().connections - before).toBe(1);
    expect(t.outages).toBe(0);
  });

  it('a chunked answer of unknown length is read whole, and one past the size bound fails without taking the next request with it', async () => {
    const t = transport();
    const res = await t.request({ method: 'GET', path: '/redfish/v1/Oem/Chunked.sh' });
    expect(res.headers['transfer-encoding']).toBe('chunked');
    expect(res.headers['content-length']).toBeUndefined();
    expect(res.body).toEqual({ Id: 'Chunked', Name: 'a'.repeat(CHUNKED_NAME_BYTES) });
    const bounded = transport({ maxResponseBytes: 4096 });
    const err = await bounded.request({ method: 'GET', path: '/redfish/v1/Oem/Chunked.sh' }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'DECODE', message: expect.stringMatching(/response larger than 4096 bytes/) });
    expect((await bounded.request({ method: 'GET', path: '/redfish/v1/Systems' })).status).toBe(200);
  });
});
