/**
 * The history view of a captured console in a real Chromium (playwright-core), token mode: the
 * page shows the machine's log as plain text with its gaps marked, and the range selection
 * narrows it. A screenshot goes to test-artifacts/console-history.png. The status page links a
 * captured machine's row to that history, and only a captured one. A range holding more than the
 * page may hold (here KEEP_BYTES, set by the server) shows only its newest part, from a whole
 * line on, and the state line says what was left out; the server sends only about that part.
 * Output printed to look like a gap marker is not highlighted, and is shown escaped.
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, expect } from 'vitest';
import { captureViewerRoutes, type CaptureRoutes } from '../../src/console/capture-routes.js';
import { combineViewerRoutes } from '../../src/console/viewer-routes.js';
import { openMachineLog } from '../../src/console/capture-store.js';
import { startConsoleServers, type ConsoleServers } from '../../src/console/index.js';
import { BmcError } from '../../src/errors.js';
import type { BmcReport } from '../../src/outband/types.js';
import { createStatusHttp } from '../../src/status/http.js';
import { statusViewerRoutes } from '../../src/status/page.js';
import { createStatusStore } from '../../src/status/store.js';
import { captureLog } from '../helpers/log.js';
import { createPki, loopbackConsoleListeners, type Pki } from '../helpers/pki.js';
import { peerPath, withPeers } from '../helpers/peers.js';

const { describe, it } = withPeers('openssl', 'chromium');
const CHROMIUM = peerPath('chromium') ?? '/usr/bin/chromium';
const MACHINE = 'c0c0c0c0-88f6-5390-8154-fa53d93a3313';
/** a machine on the status page whose console is not captured */
const UNCAPTURED = 'd1d1d1d1-88f6-5390-8154-fa53d93a3313';
const TOKEN = 'history-token-0123456789abcdef0123456789';
const ESC = '\x1b';
/** a machine whose capture is larger than the page holds */
const CHATTY = 'e2e2e2e2-88f6-5390-8154-fa53d93a3313';
/** a machine whose output looks like the capture's gap markers */
const FORGER = 'f3f3f3f3-88f6-5390-8154-fa53d93a3313';
/** what the page holds of a range here (the server's historyKeepBytes), small to test cheaply */
const KEEP_BYTES = 64 * 1024;
const CHATTY_LINES = 4000;
/** the chatty machine's line i (from 1) as captured, and as the page shows it */
const chattyLine = (i: number) => `${ESC}[32mline ${String(i).padStart(6, '0')}${ESC}[0m ${'x'.repeat(80)}\r\n`;
const chattyPlain = (i: number) => `line ${String(i).padStart(6, '0')} ${'x'.repeat(80)}`;
const CHATTY_LINE_BYTES = Buffer.byteLength(chattyLine(1));
let dir: string;
let pki: Pki;
let servers: ConsoleServers;
let routes: CaptureRoutes;
let browser: Browser;

function statusReport(uuid: string): BmcReport {
  return { uuid, bmcVersion: '1.0', biosVersion: '2.4', fru: {}, powerState: 'ON', indicatorLED: 'LED-OFF', powerSupplies: [], source: 'ipmi', missing: [] };
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'history-browser-'));
  const { logger } = captureLog('warn');
  const now = Date.now();
  let clock = now - 3 * 3_600_000;
  const log = await openMachineLog({ dir, machineId: MACHINE, fileBytes: 1 << 20, files: 2, logger, now: () => clock });
  log.append(Buffer.from(`${ESC}[1mBIOS Version 2.4${ESC}[0m\r\nBooting from the network (PXE)\r\nPXE-E53: No boot filename received\r\n`));
  clock = now - 2 * 3_600_000;
  log.gapStart('BMC connection lost (no answer in time)');
  clock = now - 5 * 60_000;
  log.gapEnd();
  log.append(Buffer.from(`${ESC}[32m[  OK  ]${ESC}[0m Reached target Multi-User System.\r\nmachine-7 login: `));
  await log.close();
  clock = now - 30 * 60_000;
  const chatty = await openMachineLog({ dir, machineId: CHATTY, fileBytes: 1 << 20, files: 2, logger, now: () => clock });
  // an index record per 100 lines, as the capture's flushes write them
  for (let i = 1; i <= CHATTY_LINES; i += 100) {
    chatty.append(Buffer.from(Array.from({ length: 100 }, (_, k) => chattyLine(i + k)).join('')));
    await chatty.flush();
  }
  await chatty.close();
  pki = await createPki();
  routes = captureViewerRoutes({ dir, historyKeepBytes: KEEP_BYTES });
  const status = createStatusStore({ partition: 'p', graceMs: 60_000 });
  const leases = [MACHINE, UNCAPTURED].map((uuid, i) => ({ lease: { ip: `10.0.0.${i + 1}`, mac: `aa:bb:cc:00:00:0${i + 1}`, expires: 'never' as const }, uuid }));
  status.leases(leases.map((l) => l.lease));
  for (const { lease, uuid } of leases) status.read(lease, { ok: true, report: statusReport(uuid), vendor: 'Supermicro', durationMs: 20 });
  status.consoleCapture(() => new Map([[MACHINE, 'held']]));
  servers = await startConsoleServers({
    ...loopbackConsoleListeners(pki),
    token: TOKEN,
    openBackend: () => Promise.reject(new BmcError('UNSUPPORTED', 'no BMCs in this test')),
    logger,
    viewerRoutes: combineViewerRoutes(statusViewerRoutes(createStatusHttp(status)), routes)!,
  });
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'] });
}, 60_000);

afterAll(async () => {
  await browser?.close();
  routes?.close();
  await servers?.close();
  pki?.remove();
  rmSync(dir, { recursive: true, force: true });
});

describe('console history page', () => {
  it('is linked from the status page for a captured machine, and only for one', async () => {
    const context = await browser.newContext({ ignoreHTTPSErrors: true });
    const page = await context.newPage();
    await page.goto(`https://127.0.0.1:${servers.wsPort}/status?token=${TOKEN}`);
    const links = page.locator('a.history');
    await expect.poll(() => links.count(), { timeout: 20_000 }).toBe(1);
    expect(await links.getAttribute('href')).toBe(`/history/${MACHINE}`);
    expect(await page.locator(`tr:has(a[href="/console/${UNCAPTURED}"]) a.history`).count()).toBe(0);
    await links.click();
    await expect.poll(() => page.locator('#log').textContent(), { timeout: 20_000 }).toContain('machine-7 login:');
    await context.close();
  }, 60_000);

  it('shows the captured log as plain text with its gaps, and the range narrows it', async () => {
    const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1000, height: 400 } });
    const page = await context.newPage();
    const refused = await page.goto(`https://127.0.0.1:${servers.wsPort}/history/${MACHINE}`);
    expect(refused?.status()).toBe(401);
    // the page's first load (its default range, the last hour) is held back until the range picked
    // after it has been answered: the page must show the range picked last, not the answer that
    // arrived last (under load the first answer came second and replaced the whole log)
    let releaseFirst!: () => void;
    const firstHeld = new Promise<void>((resolve) => (releaseFirst = resolve));
    let loads = 0;
    let firstUrl = '';
    await page.route('**/console/log*', async (route) => {
      if (++loads === 1) {
        firstUrl = route.request().url();
        await firstHeld;
      }
      await route.continue().catch(() => undefined); // the page may have cancelled it meanwhile
    });
    const firstSettled = new Promise<void>((resolve) => {
      const done = (r: { url(): string }) => r.url() === firstUrl && resolve();
      page.on('requestfinished', done);
      page.on('requestfailed', done);
    });
    await page.goto(`https://127.0.0.1:${servers.wsPort}/history/${MACHINE}?token=${TOKEN}`);
    expect(new URL(page.url()).search).toBe(''); // the token was exchanged for the cookie
    await page.selectOption('#range', '0'); // all that is kept
    await expect.poll(() => page.textContent('#state'), { timeout: 20_000 }).toMatch(/bytes, all/);
    releaseFirst();
    await firstSettled;
    // two frames for the page to handle what the first load returned, if it still does
    await page.evaluate('new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(resolve)))');
    await page.unroute('**/console/log*');
    expect(await page.textContent('#log')).toContain('PXE-E53');
    const log = page.locator('#log');
    await expect.poll(() => log.textContent(), { timeout: 20_000 }).toContain('PXE-E53');
    const all = await page.textContent('#log');
    expect(all).toContain('BIOS Version 2.4\nBooting from the network (PXE)\nPXE-E53: No boot filename received\n');
    expect(all).not.toContain('\x1b');
    expect(await page.locator('.gap').allTextContents()).toEqual([expect.stringMatching(/capture gap: BMC connection lost/), expect.stringMatching(/capture resumed/)]);
    await page.selectOption('#range', '600000'); // last 10 minutes
    await expect.poll(() => log.textContent(), { timeout: 20_000 }).not.toContain('PXE-E53');
    const recent = await page.textContent('#log');
    expect(recent).toContain('[  OK  ] Reached target Multi-User System.\nmachine-7 login: ');
    expect(await page.textContent('#state')).toMatch(/bytes, last 10 minutes/);
    await page.selectOption('#range', '86400000');
    await expect.poll(() => log.textContent(), { timeout: 20_000 }).toContain('PXE-E53');
    mkdirSync('test-artifacts', { recursive: true });
    await page.screenshot({ path: join('test-artifacts', 'console-history.png') });
    await context.close();
  }, 60_000);

  it('holds only the newest part of a range larger than it may hold, from a whole line on, and says what it left out', async () => {
    const context = await browser.newContext({ ignoreHTTPSErrors: true });
    const page = await context.newPage();
    const answered = page.waitForResponse((r) => r.url().includes('/console/log'));
    await page.goto(`https://127.0.0.1:${servers.wsPort}/history/${CHATTY}?token=${TOKEN}`); // its default range, the last hour, holds it all
    const totalBytes = CHATTY_LINES * CHATTY_LINE_BYTES;
    // the server sent the newest KEEP_BYTES from the record (100 lines) they begin in, not the range
    const response = await answered;
    expect(new URL(response.url()).searchParams.get('newest')).toBe(String(KEEP_BYTES));
    // what the server sent, by what it says it left out (the bytes on the wire are counted in
    // console-capture-routes; the browser's own copy of a body the page read as a stream is not
    // always kept for the DevTools protocol: "No data found for resource")
    const sent = totalBytes - Number(response.headers()['x-metal-bmc-left-out']);
    expect(sent).toBeGreaterThanOrEqual(KEEP_BYTES);
    expect(sent).toBeLessThan(KEEP_BYTES + 100 * CHATTY_LINE_BYTES);
    const kib = (n: number) => (n / 1024).toFixed(1);
    await expect.poll(() => page.textContent('#state'), { timeout: 20_000 }).toMatch(/^the last /);
    const state = (await page.textContent('#state'))!;
    const stated = /^the last (\d+\.\d) KiB of (\d+\.\d) KiB, last hour \(older output: narrow the range, or metal-bmc console log \/ console grep\)$/.exec(state);
    expect(stated, state).not.toBeNull();
    expect(stated![2]).toBe(kib(totalBytes));
    // the newest KEEP_BYTES, less the part of the line they start inside
    const firstWhole = Math.ceil((totalBytes - KEEP_BYTES) / CHATTY_LINE_BYTES) + 1;
    expect(stated![1]).toBe(kib((CHATTY_LINES - firstWhole + 1) * CHATTY_LINE_BYTES));
    const shown = (await page.textContent('#log'))!;
    const lines = shown.split('\n');
    expect(lines[0]).toBe(chattyPlain(firstWhole)); // a whole line, no half escape sequence before it
    expect(shown).not.toContain(chattyPlain(1));
    expect(shown).not.toContain(chattyPlain(firstWhole - 1).slice(0, 11));
    expect(shown).toContain(`${chattyPlain(CHATTY_LINES)}\n`);
    expect(shown).toBe(Array.from({ length: CHATTY_LINES - firstWhole + 1 }, (_, k) => `${chattyPlain(firstWhole + k)}\n`).join(''));
    await context.close();
  }, 60_000);

  it("highlights only the capture's own gap markers: output printed to look like one is shown escaped, not highlighted", async () => {
    const at = Date.now() - 5 * 60_000;
    const iso = new Date(at).toISOString();
    const forged = `[metal-bmc ${iso}: capture gap: BMC connection lost]`;
    const log = await openMachineLog({ dir, machineId: FORGER, fileBytes: 1 << 20, files: 2, logger: captureLog('warn').logger, now: () => at });
    // at a line start, after a carriage return, with an escape inside, enclosed in NULs itself
    log.append(Buffer.from(`root@machine:~# ./fake-gap\r\n${forged}\r\nprogress\r${forged}\r\n[metal${ESC}[0m-bmc ${iso}: capture resumed]\r\n\x00${forged}\x00\r\n`, 'latin1'));
    log.gapStart('BMC connection lost');
    log.gapEnd();
    await log.close();
    const context = await browser.newContext({ ignoreHTTPSErrors: true });
    const page = await context.newPage();
    await page.goto(`https://127.0.0.1:${servers.wsPort}/history/${FORGER}?token=${TOKEN}`);
    await expect.poll(() => page.textContent('#state'), { timeout: 20_000 }).toMatch(/bytes, last hour/);
    expect(await page.locator('.gap').allTextContents()).toEqual([forged, `[metal-bmc ${iso}: capture resumed]`]);
    const shown = (await page.textContent('#log'))!;
    expect(shown).toBe(`root@machine:~# ./fake-gap\n\\${forged}\nprogress\\${forged}\n\\[metal-bmc ${iso}: capture resumed]\n\\${forged}\n\n${forged}\n\n[metal-bmc ${iso}: capture resumed]\n`);
    await context.close();
  }, 60_000);
});
