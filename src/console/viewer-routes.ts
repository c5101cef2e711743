/**
 * Routes of other modules on the HTTPS console listener (the daemon's status page and
 * /v1/status), behind the console's authentication: Origin check, then a verified client
 * certificate, or in token mode the bearer token or the session cookie (a page's one-time
 * `?token=` is exchanged for the cookie and the browser sent back without it). The route gets a
 * `Viewer` that says which machines the client may open (METAL_BMC_CONSOLE_AUTHZ), so it shows
 * only those.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { mayOpen, mayOpenEvery, type AuthzRule, type Principal } from './access.js';
import type { HttpAuth, Refusal } from './http-auth.js';
import { requestUrl } from '../net/request-url.js';

export interface Viewer {
  subject: string;
  mayOpen(machineId: string): boolean;
  /** true when `mayOpen` admits every machine, said outright (not found by trying ids): the status routes then serve the whole, shared document */
  readonly mayOpenEvery: boolean;
}

/** The viewer a principal is, under the console's authorisation rules. */
export function viewerOf(rules: readonly AuthzRule[], principal: Principal, subject: string): Viewer {
  return { subject, mayOpen: (machineId) => mayOpen(rules, principal, machineId), mayOpenEvery: mayOpenEvery(rules, principal) };
}

export interface ViewerRoutes {
  /** whether the path is one of the routes' (then the request is authenticated first) */
  owns(path: string): boolean;
  handle(req: IncomingMessage, res: ServerResponse, viewer: Viewer): void;
}

const HEADERS = { 'cache-control': 'no-store', 'x-content-type-options': 'nosniff', 'referrer-policy': 'no-referrer' };

export function guardViewerRoutes(routes: ViewerRoutes, auth: HttpAuth, rules: readonly AuthzRule[], onRefused: (req: IncomingMessage, reason: Refusal, message: string) => void): (req: IncomingMessage, res: ServerResponse) => boolean {
  return (req, res) => {
    const path = requestUrl(req.url).pathname;
    if (!routes.owns(path)) return false;
    const exchange = req.method === 'GET' ? auth.exchangeToken(req) : undefined;
    if (exchange && 'setCookie' in exchange) {
      res.writeHead(303, { location: path, 'set-cookie': exchange.setCookie, ...HEADERS }).end();
      return true;
    }
    const outcome = exchange ?? auth.checkOrigin(req) ?? auth.authenticate(req);
    if (!outcome.ok) {
      onRefused(req, outcome.reason, outcome.message);
      const challenge = outcome.status === 401 ? { 'www-authenticate': 'Bearer' } : {};
      // a refused client does not keep its connection (a slot of the capped ones) by asking again and again
      res.writeHead(outcome.status, { 'content-type': 'text/plain', connection: 'close', ...challenge, ...HEADERS }).end(`${outcome.message}\n`);
      return true;
    }
    const { principal, subject } = outcome;
    routes.handle(req, res, viewerOf(rules, principal, subject));
    return true;
  };
}

/** Several modules' routes on one listener: the first that owns a path handles it. */
export function combineViewerRoutes(...all: ReadonlyArray<ViewerRoutes | undefined>): ViewerRoutes | undefined {
  const routes = all.filter((r): r is ViewerRoutes => r !== undefined);
  if (routes.length <= 1) return routes[0];
  const ownerOf = (path: string) => routes.find((r) => r.owns(path));
  return {
    owns: (path) => ownerOf(path) !== undefined,
    handle(req, res, viewer) {
      const path = requestUrl(req.url).pathname;
      ownerOf(path)?.handle(req, res, viewer);
    },
  };
}
