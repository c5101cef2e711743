/**
 * The status page on the console listener (behind its authentication, viewer-routes.ts):
 *   GET /status                  the page: partition summary and a table of every BMC the client
 *                                may open, problems first; sortable (buttons in the header),
 *                                filterable, live through /v1/status/events; each machine links to
 *                                its console page
 *   GET /status/assets/status.js its script (page-script.ts)
 *   GET /v1/status[/events]      the document and its live stream (http.ts)
 * Same Content-Security-Policy as the console page: no inline script, nothing from elsewhere.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { CSP, SECURITY_HEADERS } from '../console/page.js';
import type { ViewerRoutes } from '../console/viewer-routes.js';
import type { StatusHttp } from './http.js';
import { STATUS_SCRIPT } from './page-script.js';
import { requestUrl } from '../net/request-url.js';

export const STATUS_PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>BMC status - metal-bmc</title>
<link rel="icon" href="data:,">
<style>
  body { margin: 0; background: #fff; color: #111; font: 14px system-ui, sans-serif; }
  header, main { padding: 8px 14px; }
  header { border-bottom: 1px solid #999; }
  h1 { font-size: 18px; margin: 0 0 6px; }
  #summary { display: flex; flex-wrap: wrap; gap: 4px 18px; margin: 0; }
  #summary div { display: flex; gap: 4px; } #summary dt { font-weight: 600; } #summary dd { margin: 0; }
  .controls { display: flex; gap: 14px; align-items: center; margin: 8px 0; }
  #live { font-size: 12px; color: #444; }
  table { border-collapse: collapse; width: 100%; font-size: 13px; }
  th, td { text-align: left; padding: 3px 6px; border-bottom: 1px solid #ddd; vertical-align: top; }
  th button { font: inherit; font-weight: 600; background: none; border: 0; padding: 0; cursor: pointer; text-decoration: underline dotted; }
  th button:focus-visible, a:focus-visible, input:focus-visible { outline: 2px solid #06c; outline-offset: 2px; }
  td.mono { font-family: monospace; white-space: nowrap; }
  tr[data-state="failing"] td.state { color: #a00; font-weight: 600; }
  tr[data-state="degraded"] td.state { color: #850; font-weight: 600; }
  tr[data-state="ok"] td.state { color: #060; }
  tr[data-state="vanished"] td, tr[data-state="pending"] td.state { color: #555; }
  .msg { display: block; color: #444; font-size: 12px; max-width: 40em; overflow-wrap: anywhere; }
</style>
</head>
<body>
<header>
  <h1>BMC status <span id="partition"></span></h1>
  <dl id="summary" aria-label="partition summary"></dl>
</header>
<main>
  <div class="controls">
    <label>Filter <input id="filter" type="search" placeholder="IP, MAC, vendor, reason, ..." autocomplete="off"></label>
    <label><input id="problems" type="checkbox"> problems only</label>
    <span id="live" role="status" aria-live="polite">connecting...</span>
  </div>
  <table id="bmcs">
    <caption id="count" style="text-align:left"></caption>
    <thead><tr>
      <th scope="col" aria-sort="none"><button type="button" data-sort="state">State</button></th>
      <th scope="col" aria-sort="none"><button type="button" data-sort="ip">IP</button></th>
      <th scope="col" aria-sort="none"><button type="button" data-sort="mac">MAC</button></th>
      <th scope="col" aria-sort="none"><button type="button" data-sort="machine">Machine</button></th>
      <th scope="col" aria-sort="none"><button type="button" data-sort="vendor">Vendor / model</button></th>
      <th scope="col" aria-sort="none"><button type="button" data-sort="power">Power</button></th>
      <th scope="col" aria-sort="none"><button type="button" data-sort="via">Via</button></th>
      <th scope="col" aria-sort="none"><button type="button" data-sort="read">Last read</button></th>
      <th scope="col" aria-sort="none"><button type="button" data-sort="fails">Failures</button></th>
      <th scope="col" aria-sort="none"><button type="button" data-sort="reason">Reason</button></th>
      <th scope="col" aria-sort="none"><button type="button" data-sort="reported">Reported</button></th>
      <th scope="col" aria-sort="none"><button type="button" data-sort="command">Last command</button></th>
      <th scope="col" aria-sort="none"><button type="button" data-sort="viewers">Console</button></th>
    </tr></thead>
    <tbody></tbody>
  </table>
</main>
<script src="/status/assets/status.js"></script>
</body>
</html>
`;

const PAGE = Buffer.from(STATUS_PAGE);
const SCRIPT = Buffer.from(STATUS_SCRIPT);

function send(req: IncomingMessage, res: ServerResponse, body: Buffer, type: string, csp: boolean): void {
  res.writeHead(200, { 'content-type': type, 'content-length': body.length, ...(csp ? { 'content-security-policy': CSP } : {}), ...SECURITY_HEADERS });
  res.end(req.method === 'HEAD' ? undefined : body);
}

/** The page, its script and the status endpoints, for the console listener. */
export function statusViewerRoutes(http: StatusHttp): ViewerRoutes {
  return {
    owns: (path) => path === '/status' || path === '/status/assets/status.js' || path === '/v1/status' || path === '/v1/status/events',
    handle(req, res, viewer) {
      const path = requestUrl(req.url).pathname;
      if (path === '/v1/status' || path === '/v1/status/events') {
        // a client that may open every machine gets the whole document, built once for all of them;
        // a BMC not read yet has no machine id: shown to those who may open every machine only
        http.handle(req, res, viewer.mayOpenEvery ? undefined : { mayView: (uuid) => uuid !== undefined && viewer.mayOpen(uuid) });
        return;
      }
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.writeHead(405, { allow: 'GET, HEAD', ...SECURITY_HEADERS }).end();
        return;
      }
      if (path === '/status') send(req, res, PAGE, 'text/html; charset=utf-8', true);
      else send(req, res, SCRIPT, 'text/javascript; charset=utf-8', false);
    },
  };
}
