/**
 * The browser terminal, served by the WebSocket listener's HTTPS server:
 *   GET /console/{id}               the page (authenticated and authorised like the WebSocket); in
 *                                   token mode `?token=` is exchanged once for a session cookie and
 *                                   the browser is redirected to the URL without it
 *   GET /console/assets/xterm.js    xterm.js and its CSS from @xterm/xterm (xterm-assets.ts; no CDN),
 *   GET /console/assets/xterm.css   and the page's script; static files without machine data,
 *   GET /console/assets/console.js  served without authentication so that <script src> works.
 * The page opens wss://<host>/v1/machine/{id}/console (the cookie or certificate authenticates it),
 * writes output into xterm.js, sends keystrokes as binary frames and resizes as JSON, and shows
 * the hub's status lines (keyboard owner, BMC disconnects) above the terminal.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { validMachineId } from './access.js';
import type { HttpAuth, Refusal } from './http-auth.js';
import { CONSOLE_SCRIPT } from './page-script.js';
import { xtermAssets } from './xterm-assets.js';
import { requestUrl } from '../net/request-url.js';

interface Asset {
  body: Buffer;
  type: string;
}

export const SECURITY_HEADERS = {
  'cache-control': 'no-store',
  'referrer-policy': 'no-referrer',
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
};

// xterm.js writes inline styles; scripts only from this server; the WebSocket to this origin.
export const CSP = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function loadAssets(): Map<string, Asset> {
  const xterm = xtermAssets();
  return new Map<string, Asset>([
    ['/console/assets/xterm.js', { body: xterm.js, type: 'text/javascript; charset=utf-8' }],
    ['/console/assets/xterm.css', { body: xterm.css, type: 'text/css; charset=utf-8' }],
    ['/console/assets/console.js', { body: Buffer.from(CONSOLE_SCRIPT), type: 'text/javascript; charset=utf-8' }],
  ]);
}

export function consolePage(machineId: string): string {
  const id = escapeHtml(machineId);
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>console ${id} - metal-bmc</title>
<link rel="stylesheet" href="/console/assets/xterm.css">
<style>
  html, body { margin: 0; height: 100%; background: #111; color: #ddd; font: 14px system-ui, sans-serif; }
  body { display: flex; flex-direction: column; }
  header { display: flex; gap: 1em; align-items: center; padding: 6px 10px; background: #222; border-bottom: 1px solid #333; }
  header .machine { font-family: monospace; color: #8cf; }
  #status { flex: 1; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
  #status.bad { color: #f88; } #status.good { color: #8f8; } #status.warn { color: #fc6; }
  button { background: #333; color: #ddd; border: 1px solid #555; border-radius: 3px; padding: 2px 10px; cursor: pointer; }
  button[hidden] { display: none; }
  #terminal { flex: 1; min-height: 0; padding: 4px; }
</style>
</head>
<body>
<header>
  <span class="machine">${id}</span>
  <span id="status" class="warn">connecting...</span>
  <button id="takeover" type="button" hidden>Take over keyboard</button>
  <button id="reconnect" type="button" hidden>Reconnect</button>
</header>
<div id="terminal" data-machine="${id}"></div>
<script src="/console/assets/xterm.js"></script>
<script src="/console/assets/console.js"></script>
</body>
</html>
`;
}

export type OnRefused = (req: IncomingMessage, reason: Refusal, message: string) => void;

/**
 * Routes under /console/. Returns false when the path is not one of them (the caller answers 404).
 */
export function createPageRoutes(auth: HttpAuth, onRefused: OnRefused): (req: IncomingMessage, res: ServerResponse) => boolean {
  const assets = loadAssets();
  return (req, res) => {
    const path = requestUrl(req.url).pathname;
    if (!path.startsWith('/console/')) return false;
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', ...SECURITY_HEADERS }).end();
      return true;
    }
    const asset = assets.get(path);
    if (asset) {
      // served without authentication: the connection is not kept (a peer asking for an asset
      // every few seconds would otherwise hold one of the listener's capped connections for ever)
      res.writeHead(200, { 'content-type': asset.type, 'content-length': asset.body.length, connection: 'close', ...SECURITY_HEADERS });
      res.end(req.method === 'HEAD' ? undefined : asset.body);
      return true;
    }
    const m = /^\/console\/([^/]+)$/.exec(path);
    if (!m) return false;
    let machineId = '';
    try {
      machineId = decodeURIComponent(m[1] ?? '');
    } catch {
      machineId = '';
    }
    if (!validMachineId(machineId)) {
      res.writeHead(400, { 'content-type': 'text/plain', ...SECURITY_HEADERS }).end('bad machine id\n');
      return true;
    }
    const exchange = auth.exchangeToken(req);
    if (exchange && 'setCookie' in exchange) {
      res.writeHead(303, { location: path, 'set-cookie': exchange.setCookie, ...SECURITY_HEADERS }).end();
      return true;
    }
    const outcome = exchange ?? auth.checkOrigin(req) ?? auth.authorize(req, machineId);
    if (!outcome.ok) {
      onRefused(req, outcome.reason, outcome.message);
      const challenge = outcome.status === 401 ? { 'www-authenticate': 'Bearer' } : {};
      // a refused client does not keep its connection (a slot of the capped ones) by asking again and again
      res.writeHead(outcome.status, { 'content-type': 'text/plain', connection: 'close', ...challenge, ...SECURITY_HEADERS }).end(`${outcome.message}\n`);
      return true;
    }
    const body = Buffer.from(consolePage(machineId));
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'content-length': body.length, 'content-security-policy': CSP, ...SECURITY_HEADERS });
    res.end(req.method === 'HEAD' ? undefined : body);
    return true;
  };
}
