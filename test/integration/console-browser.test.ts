/**
 * The browser terminal in a real Chromium (playwright-core), token mode (no client
 * certificate in the browser): the page loads xterm.js from this server, shows ipmi_sim's serial
 * output, sends typed keys to the serial line (echoed back by the test's side of the line), and
 * shows the status line. A screenshot goes to test-artifacts/console-browser.png.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Socket } from 'node:net';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, expect } from 'vitest';
import { startConsoleServers, type ConsoleServers } from '../../src/console/index.js';
import type { MetalApiStandIn } from '../../src/metalapi/standin.js';
import { machineIpmi, startConsoleBackend } from '../helpers/console-backend.js';
import { startIpmiSim, type IpmiSim } from '../helpers/ipmisim.js';
import { captureLog } from '../helpers/log.js';
import { createPki, loopbackConsoleListeners, type Pki } from '../helpers/pki.js';
import { peerPath, withPeers } from '../helpers/peers.js';

const { describe, it } = withPeers('ipmi_sim', 'ipmitool', 'openssl', 'chromium');

const CHROMIUM = peerPath('chromium') ?? '/usr/bin/chromium';

const MACHINE = 'b0b0b0b0-88f6-5390-8154-fa53d93a3313';
const TOKEN = 'browser-token-0123456789abcdef0123456789';
let pki: Pki;
let sim: IpmiSim;
let standin: MetalApiStandIn;
let servers: ConsoleServers;
let browser: Browser;

beforeAll(async () => {
  [pki, sim] = await Promise.all([createPki(), startIpmiSim()]);
  const line: Socket = await sim.serial.connected();
  // The machine's side of the serial line echoes what it receives, as a getty would.
  line.on('data', (d: Buffer) => line.write(d.toString('latin1').replace(/\r/g, '\r\n')));
  let openBackend;
  ({ standin, openBackend } = await startConsoleBackend({ [MACHINE]: machineIpmi(`127.0.0.1:${sim.port}`, sim.user, sim.password) }, 3000));
  servers = await startConsoleServers({
    ...loopbackConsoleListeners(pki),
    token: TOKEN,
    openBackend,
    logger: captureLog().logger,
  });
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await servers?.close();
  await standin?.close();
  await sim?.stop();
  pki?.remove();
});

describe('console in the browser', () => {
  it('shows serial output, sends keystrokes, and shows the keyboard status', async () => {
    const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1000, height: 600 } });
    const page = await context.newPage();
    const failed: string[] = [];
    page.on('requestfailed', (r) => failed.push(r.url()));
    page.on('pageerror', (e) => failed.push(e.message));

    const unauthorized = await page.goto(`https://127.0.0.1:${servers.wsPort}/console/${MACHINE}`);
    expect(unauthorized?.status()).toBe(401);

    const response = await page.goto(`https://127.0.0.1:${servers.wsPort}/console/${MACHINE}?token=${TOKEN}`);
    expect(response?.status()).toBe(200);
    // the token was exchanged for an HttpOnly session cookie and left the address bar
    expect(page.url()).toBe(`https://127.0.0.1:${servers.wsPort}/console/${MACHINE}`);
    const cookies = await context.cookies();
    expect(cookies.find((c) => c.name === 'metal_bmc_console')).toMatchObject({ httpOnly: true, secure: true, sameSite: 'Strict' });
    const status = page.locator('#status');
    await expect.poll(() => status.textContent(), { timeout: 10_000 }).toMatch(/connected - you have the keyboard/);

    sim.serial.write('\x1b[1;32mDebian GNU/Linux 12\x1b[0m machine ttyS1\r\n\r\nmachine login: ');
    const rows = page.locator('.xterm-rows');
    await expect.poll(() => rows.innerText(), { timeout: 10_000 }).toContain('machine login:');

    await page.locator('.xterm').click();
    await page.keyboard.type('root');
    await page.keyboard.press('Enter');
    await expect.poll(() => sim.serial.received().toString('latin1'), { timeout: 10_000 }).toContain('root\r');
    // the echo travels back through SOL and the WebSocket into xterm.js
    await expect.poll(() => rows.innerText(), { timeout: 10_000 }).toMatch(/machine login: root/);
    sim.serial.write('Password: ');
    await expect.poll(() => rows.innerText(), { timeout: 10_000 }).toContain('Password:');

    // the terminal was sized to the window and the size reported
    const cols = await page.evaluate<number>('window.metalConsole.term.cols');
    expect(cols).toBeGreaterThan(80);

    mkdirSync('test-artifacts', { recursive: true });
    await page.screenshot({ path: join('test-artifacts', 'console-browser.png') });
    expect(failed).toEqual([]);
    await context.close();
    await expect.poll(() => servers.hub.sessionCount(), { timeout: 10_000 }).toBe(0);
  });
});
