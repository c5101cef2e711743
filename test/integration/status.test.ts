/**
 * What the operator sees (issue 14): a simulated fleet with four kinds of trouble - a wrong
 * password, a BMC that does not answer, Redfish answering 503 after a read with Redfish confirmed
 * the BMC's UUID (read over IPMI then), and a BMC whose certificate the configured CA does not sign
 * (it belongs to a second fleet: read over IPMI, but never confirmed, so left out of the report) -
 * and the daemon's status of every
 * BMC: GET /v1/status on the operations listener (schema-valid, each BMC with its reason, after
 * one report cycle), the per-BMC metrics, `metal-bmc status`, the console listener's
 * authentication, the /status page in Chromium (problems first, filter, a live update when a fault
 * is switched off through the simulator's control API), recovery and a vanished lease.
 * A screenshot goes to test-artifacts/status-page.png.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Ajv } from 'ajv';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, expect } from 'vitest';
import { loadConfig } from '../../src/config/config.js';
import { startDaemon, type Daemon } from '../../src/daemon.js';
import { startMetalApiStandIn, type MetalApiStandIn } from '../../src/metalapi/standin.js';
import { ipv4ToNumber } from '../../src/net/cidr.js';
import { loginBudgetKey, processLoginBudget } from '../../src/redfish/login-budget.js';
import { consolePart } from '../../src/parts/console.js';
import { startControlServer } from '../../src/sim/control.js';
import { renderFleetLeases, type Fleet } from '../../src/sim/fleet.js';
import type { BmcStatus, StatusDocument } from '../../src/status/types.js';
import { REPO_ROOT, runCli } from '../helpers/cli.js';
import { fleetBmcEnv, startTestFleet } from '../helpers/fleet.js';
import { captureLog, type CapturedLog } from '../helpers/log.js';
import { createPki, issueClientCert, type Pki } from '../helpers/pki.js';
import { peerPath, withPeers } from '../helpers/peers.js';
import { freeTcpPort } from '../helpers/ports.js';

const { describe, it } = withPeers('openssl', 'chromium');

const CHROMIUM = peerPath('chromium') ?? '/usr/bin/chromium';
const HMAC_KEY = 'status-test-hmac-key';
const TOKEN = 'status-token-0123456789abcdef0123456789';
let fleet: Fleet;
let foreign: Fleet;
let control: { port: number; close(): Promise<void> };
let api: MetalApiStandIn;
let daemon: Daemon;
let log: CapturedLog;
let pki: Pki;
let dir: string;
let leaseFile: string;
let wsPort: number;
let browser: Browser | undefined;

const schema = JSON.parse(readFileSync(join(REPO_ROOT, 'docs/status.schema.json'), 'utf8')) as object;
const ajv = new Ajv({
  allErrors: true,
  formats: {
    'date-time': (s: string) => !Number.isNaN(Date.parse(s)) && /^\d{4}-\d\d-\d\dT/.test(s),
    ipv4: /^(\d{1,3}\.){3}\d{1,3}$/,
  },
});
const validate = ajv.compile(schema);

async function until<T>(check: () => Promise<T | undefined | false> | T | undefined | false, ms = 30_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** What the tests read of the page (the test code has no DOM types). */
interface Dom {
  document: { querySelectorAll(s: string): { length: number }; querySelector(s: string): { getAttribute(name: string): string | null } | null };
  metalStatus: { updates(): number };
}

const ops = () => `http://127.0.0.1:${daemon.opsPort}`;
async function status(): Promise<StatusDocument> {
  return (await (await fetch(`${ops()}/v1/status`)).json()) as StatusDocument;
}
const byIp = (doc: StatusDocument, ip: string): BmcStatus => doc.bmcs.find((b) => b.ip === ip)!;
const ipOf = (f: Fleet, i: number) => f.machines[i]!.state.address;
/** every BMC read at least once after `after` */
const readSince = (doc: StatusDocument, after: number) => doc.bmcs.every((b) => b.state === 'vanished' || (b.lastRead !== undefined && Date.parse(b.lastRead.at) >= after));

/** One cycle over every lease, and the status once every BMC was read in it. */
async function cycle(): Promise<StatusDocument> {
  const started = Date.now() - 5;
  daemon.reporter.leasesChanged(daemon.leases());
  return until(async () => {
    const doc = await status();
    return readSince(doc, started) ? doc : undefined;
  });
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'status-'));
  leaseFile = join(dir, 'dhcpd.leases');
  fleet = await startTestFleet({ count: 6 });
  // a BMC with a certificate of its own: the same ports on other addresses
  foreign = await startTestFleet({ count: 1, seed: 'foreign', ipmiPort: fleet.ipmiPort, redfishPort: fleet.redfishPort });
  control = await startControlServer(fleet, 0);
  fleet.setFaults([0], { wrongCredentials: true });
  fleet.setFaults([1], { noAnswer: true });
  writeFileSync(join(dir, 'bmc-ca.pem'), fleet.redfish!.cert);
  writeFileSync(leaseFile, renderFleetLeases([...fleet.machines, ...foreign.machines]));
  api = await startMetalApiStandIn({ hmacKey: HMAC_KEY });
  pki = await createPki();
  wsPort = await freeTcpPort();
  log = captureLog();
  const config = loadConfig({
    METAL_BMC_PARTITION_ID: 'status-partition',
    METAL_BMC_METAL_API_URL: api.url,
    METAL_BMC_METAL_API_HMAC_KEY: HMAC_KEY,
    METAL_BMC_LEASE_FILE: leaseFile,
    METAL_BMC_REPORT_INTERVAL: '1h',
    ...fleetBmcEnv(fleet),
    METAL_BMC_REDFISH_INSECURE: 'false',
    METAL_BMC_REDFISH_CA_FILE: join(dir, 'bmc-ca.pem'),
    METAL_BMC_BMC_TIMEOUT: '3s',
    METAL_BMC_HTTP_ADDRESS: '127.0.0.1:0',
    METAL_BMC_CONSOLE_CA_CERT_FILE: pki.ca,
    METAL_BMC_CONSOLE_CERT_FILE: pki.serverCert,
    METAL_BMC_CONSOLE_KEY_FILE: pki.serverKey,
    METAL_BMC_CONSOLE_PORT: '0',
    METAL_BMC_CONSOLE_WS_PORT: String(wsPort),
    METAL_BMC_CONSOLE_ADDRESS: '127.0.0.1',
    METAL_BMC_CONSOLE_TOKEN: TOKEN,
    METAL_BMC_CONSOLE_AUTHZ: 'machine-id,CN=metal-console',
    METAL_BMC_STATE_DIR: join(dir, 'state'),
    // every read logs in, so a 503 meets the login and the read goes on over IPMI (in a kept session
    // it would meet a GET of the inventory, and the read would fail)
    METAL_BMC_REPORT_REDFISH_SESSION_MAX_AGE: '0',
  });
  daemon = await startDaemon(config, log.logger, [consolePart]);
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await daemon?.stop();
  await api?.close();
  await control?.close();
  await foreign?.close();
  await fleet?.close();
  pki?.remove();
  rmSync(dir, { recursive: true, force: true });
});

describe('status of every BMC', () => {
  it('names each troubled BMC with its reason after one report cycle, problems first', async () => {
    // the first full cycle: every BMC has been read once and the report posted (the cycle retries a
    // BMC that timed out before it posts, so the reads can be in well before the report)
    await until(async () => {
      const d = await status();
      return d.bmcs.length === 7 && d.bmcs.every((b) => b.lastRead) && d.bmcs.filter((b) => b.state === 'ok').every((b) => b.lastReportAt) ? d : undefined;
    });
    // the first cycle created the machines: its follow-up report of their BMCs is over before the fault
    await daemon.reporter.idle();
    // Redfish of a BMC read well once starts answering 503: the next read goes over IPMI, with the UUID the first one confirmed
    expect(byIp(await status(), ipOf(fleet, 2)).state).toBe('ok');
    fleet.setFaults([2], { redfishStatus: 503 });
    const faulted = Date.now();
    daemon.reporter.leasesChanged(daemon.leases().filter((l) => l.ip === ipOf(fleet, 2)));
    const doc = await until(async () => {
      const d = await status();
      const read = byIp(d, ipOf(fleet, 2)).lastRead;
      return read && Date.parse(read.at) >= faulted ? d : undefined;
    });
    expect(validate(doc), ajv.errorsText(validate.errors)).toBe(true);
    const expected: Array<[string, string, string]> = [
      [ipOf(fleet, 0), 'failing', 'wrong-credentials'],
      [ipOf(fleet, 1), 'failing', 'no-answer'],
      [ipOf(fleet, 2), 'degraded', 'http-error'],
      // over IPMI alone, its GUID never confirmed by a read with Redfish: left out of the report
      [ipOf(foreign, 0), 'failing', 'certificate'],
    ];
    for (const [ip, state, reason] of expected) {
      const b = byIp(doc, ip);
      expect({ ip, state: b.state, reason: b.lastRead?.problem?.reason }).toEqual({ ip, state, reason });
    }
    expect(byIp(doc, ipOf(fleet, 2)).lastRead?.problem).toMatchObject({ code: 'HTTP', httpStatus: 503 });
    expect(byIp(doc, ipOf(fleet, 2)).protocols?.report).toBe('ipmi');
    expect(byIp(doc, ipOf(fleet, 2)).lastReportAt! >= new Date(faulted).toISOString()).toBe(true);
    expect(byIp(doc, ipOf(foreign, 0)).lastRead?.problem?.message).toMatch(/^Redfish: .*; over IPMI alone its machine UUID is not confirmed .*left out of the report$/);
    expect(byIp(doc, ipOf(fleet, 0)).failures.consecutive).toBe(1);
    // the four problems come first, the healthy ones after, each healthy one reported to metal-api
    expect(doc.bmcs.slice(0, 4).map((b) => b.state).sort()).toEqual(['degraded', 'failing', 'failing', 'failing']);
    for (const b of doc.bmcs.slice(4)) {
      expect(b).toMatchObject({ state: 'ok', uuid: expect.any(String), power: expect.stringMatching(/ON|OFF/), console: { viewers: 0, capture: 'off' } });
      expect(b.lastReportAt).toBeDefined();
    }
    expect(doc.summary).toMatchObject({ bmcs: 7, reachable: 4, failing: 3, degraded: 1, byReason: { 'wrong-credentials': 1, 'no-answer': 1, 'http-error': 1, certificate: 1 } });
    // no message carries a secret
    expect(JSON.stringify(doc)).not.toContain(fleet.password);
  });

  it('exports one up series and one last-success series per BMC of the leases', async () => {
    const metrics = await (await fetch(`${ops()}/metrics`)).text();
    const up = metrics.split('\n').filter((l) => l.startsWith('metal_bmc_bmc_up{'));
    expect(up).toHaveLength(7);
    const m0 = fleet.machines[0]!.state;
    expect(metrics).toContain(`metal_bmc_bmc_up{ip="${m0.address}",mac="${m0.mac}"} 0`);
    const m5 = fleet.machines[5]!.state;
    expect(metrics).toContain(`metal_bmc_bmc_up{ip="${m5.address}",mac="${m5.mac}"} 1`);
    expect(metrics).toMatch(new RegExp(`metal_bmc_bmc_last_success_timestamp_seconds\\{ip="${m5.address.replace(/\./g, '\\.')}",mac="${m5.mac}"\\} \\d+`));
  });

  it('metal-bmc status --problems prints exactly the troubled BMCs; --json validates against the schema', async () => {
    const table = await runCli(['status', '--problems', '--address', ops()], { env: { NO_COLOR: '' } });
    expect(table.stderr).toBe('');
    expect(table.code).toBe(0);
    const lines = table.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^IP\s+MAC\s+STATE\s+REASON/);
    const rows = lines.slice(1, lines.indexOf(''));
    expect(rows.map((l) => l.split(/\s+/)[0]).sort()).toEqual([ipOf(fleet, 0), ipOf(fleet, 1), ipOf(fleet, 2), ipOf(foreign, 0)].sort());
    expect(rows[0]).toMatch(/failing/);
    for (const l of lines) expect(l.length).toBeLessThanOrEqual(120);
    expect(table.stdout).not.toContain('\x1b['); // not a terminal: no colour
    expect(lines[lines.indexOf('') + 1]).toMatch(/^7 BMCs: 4 reachable, 3 failing, 1 degraded/);
    expect(table.stdout).toMatch(/\nproblems by reason: wrong-credentials 1, certificate 1, no-answer 1, http-error 1\n/);

    const json = await runCli(['status', '--json', '--address', ops()]);
    expect(json.code).toBe(0);
    const doc = JSON.parse(json.stdout) as StatusDocument;
    expect(validate(doc), ajv.errorsText(validate.errors)).toBe(true);
    expect(doc.bmcs).toHaveLength(7);

    const bad = await runCli(['status', '--sort', 'nonsense', '--address', ops()]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--sort "nonsense": one of ip, mac, state/);
  });

  it('the console listener serves /v1/status only behind its authentication', async () => {
    const { request } = await import('node:https');
    const get = (headers: Record<string, string>, client?: { cert: string; key: string }) =>
      new Promise<{ status: number; body: string }>((resolve, reject) => {
        const tls = client ? { cert: readFileSync(client.cert), key: readFileSync(client.key) } : {};
        const req = request({ host: '127.0.0.1', port: wsPort, path: '/v1/status', rejectUnauthorized: false, headers, ...tls }, (res) => {
          let body = '';
          res.on('data', (d: Buffer) => (body += d));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        });
        req.on('error', reject);
        req.end();
      });
    expect((await get({})).status).toBe(401);
    expect((await get({ authorization: 'Bearer wrong-token-0123456789abcdef0123456789' })).status).toBe(401);
    const ok = await get({ authorization: `Bearer ${TOKEN}` });
    expect(ok.status).toBe(200);
    const doc = JSON.parse(ok.body) as StatusDocument;
    expect(validate(doc)).toBe(true);
    expect(doc.bmcs).toHaveLength(7);
    // a certificate sees the machines it may open (METAL_BMC_CONSOLE_AUTHZ): metal-console's all of them,
    // a machine's own certificate that machine only
    const all = await get({}, { cert: pki.clientCert, key: pki.clientKey });
    expect((JSON.parse(all.body) as StatusDocument).bmcs).toHaveLength(7);
    const uuid = fleet.machines[5]!.state.uuid;
    const own = await get({}, await issueClientCert(pki, 'machine5', `/CN=${uuid}`));
    expect(own.status).toBe(200);
    expect((JSON.parse(own.body) as StatusDocument).bmcs.map((b) => b.uuid)).toEqual([uuid]);
  });

  it('the /status page: problems first, a filter narrows it, a live update arrives when a fault is switched off', async () => {
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1600, height: 700 } });
    const page = await context.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    // the browser asks for /favicon.ico on the plain-text 401 page; anything else failing is an error
    page.on('response', (r) => {
      if (r.status() >= 400 && !r.url().endsWith('/favicon.ico')) errors.push(`${r.status()} ${r.url()}`);
    });
    const base = `https://127.0.0.1:${wsPort}`;
    expect((await page.goto(`${base}/status`))?.status()).toBe(401);
    errors.length = 0; // the expected 401
    const response = await page.goto(`${base}/status?token=${TOKEN}`);
    expect(response?.status()).toBe(200);
    expect(response?.headers()['content-security-policy']).toContain("script-src 'self'");
    expect(page.url()).toBe(`${base}/status`);
    await page.waitForSelector('#bmcs tbody tr');
    const states = await page.$$eval('#bmcs tbody tr', (rows) => rows.map((r) => r.getAttribute('data-state')));
    expect(states).toHaveLength(7);
    expect(states.slice(0, 4).sort()).toEqual(['degraded', 'failing', 'failing', 'failing']);
    expect(states.slice(4)).toEqual(['ok', 'ok', 'ok']);
    // readable without colour: the state is written out
    expect(await page.textContent('#bmcs tbody tr td.state')).toMatch(/failing/);
    expect(await page.textContent('#summary')).toMatch(/wrong-credentials: 1/);
    // each machine links to its console page
    const uuid = fleet.machines[5]!.state.uuid;
    expect(await page.getAttribute(`#bmcs a[href="/console/${uuid}"]`, 'href')).toBe(`/console/${uuid}`);

    // the filter, typed from the keyboard
    await page.focus('#filter');
    await page.keyboard.type('no-answer');
    await page.waitForFunction(() => (globalThis as unknown as Dom).document.querySelectorAll('#bmcs tbody tr').length === 1);
    expect(await page.getAttribute('#bmcs tbody tr', 'data-ip')).toBe(ipOf(fleet, 1));
    await page.fill('#filter', '');
    // sorting by keyboard: Enter on the IP header button
    await page.focus('th button[data-sort="ip"]');
    await page.keyboard.press('Enter');
    expect(await page.getAttribute('th:has(button[data-sort="ip"])', 'aria-sort')).toBe('ascending');
    // every BMC's row back in the table, now in address order
    const ips = await page.$$eval('#bmcs tbody tr', (rows) => rows.map((r) => r.getAttribute('data-ip') ?? ''));
    expect(ips).toHaveLength(7);
    expect(ips).toEqual([...ips].sort((a, b) => ipv4ToNumber(a) - ipv4ToNumber(b)));
    await page.focus('th button[data-sort="state"]');
    await page.keyboard.press('Enter');

    // the fault is switched off through the simulator's control API; the next cycle reaches the page
    const updates = await page.evaluate(() => (globalThis as unknown as Dom).metalStatus.updates());
    const answer = await fetch(`http://127.0.0.1:${control.port}/faults`, { method: 'POST', body: JSON.stringify({ select: [1], faults: { noAnswer: false } }) });
    expect(answer.status).toBe(200);
    daemon.reporter.leasesChanged(daemon.leases().filter((l) => l.ip === ipOf(fleet, 1)));
    await page.waitForFunction((ip) => (globalThis as unknown as Dom).document.querySelector(`#bmcs tbody tr[data-ip="${ip}"]`)?.getAttribute('data-state') === 'ok', ipOf(fleet, 1), { timeout: 30_000 });
    expect(await page.evaluate(() => (globalThis as unknown as Dom).metalStatus.updates())).toBeGreaterThan(updates);
    mkdirSync(join(REPO_ROOT, 'test-artifacts'), { recursive: true });
    await page.screenshot({ path: join(REPO_ROOT, 'test-artifacts', 'status-page.png'), fullPage: true });
    expect(errors).toEqual([]);
    await context.close();
  }, 60_000);

  it('recovery clears the problems; a vanished lease stays listed for the grace period without metrics', async () => {
    fleet.clearFaults();
    // the wrong-password BMC's refused Redfish logins stand in the process's login budget for its 15 min window
    // (redfish-login-budget.test.ts); forgotten here, as the window would, so that its return is read now
    processLoginBudget.taken(loginBudgetKey(ipOf(fleet, 0), fleet.redfishPort, fleet.user, fleet.password));
    const doc = await cycle();
    for (const i of [0, 1, 2]) expect(byIp(doc, ipOf(fleet, i))).toMatchObject({ state: 'ok', failures: { consecutive: 0 } });
    expect(byIp(doc, ipOf(fleet, 0)).lastRead?.problem).toBeUndefined();
    const problems = await runCli(['status', '--problems', '--address', ops()]);
    const plines = problems.stdout.split('\n');
    expect(plines.slice(1, plines.indexOf('')).map((l) => l.split(/\s+/)[0])).toEqual([ipOf(foreign, 0)]);

    writeFileSync(leaseFile, renderFleetLeases(fleet.machines));
    const after = await until(async () => {
      const d = await status();
      return byIp(d, ipOf(foreign, 0))?.state === 'vanished' ? d : undefined;
    });
    expect(byIp(after, ipOf(foreign, 0)).lease.vanishedAt).toBeDefined();
    expect(after.summary).toMatchObject({ bmcs: 6, vanished: 1 });
    expect(validate(after), ajv.errorsText(validate.errors)).toBe(true);
    const metrics = await (await fetch(`${ops()}/metrics`)).text();
    expect(metrics.split('\n').filter((l) => l.startsWith('metal_bmc_bmc_up{'))).toHaveLength(6);
    expect(metrics).not.toContain(ipOf(foreign, 0));
  });
});
