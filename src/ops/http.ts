/**
 * The operations listener (METAL_BMC_HTTP_ADDRESS, default 127.0.0.1:2112): plain HTTP without
 * authentication, meant for the local Prometheus and systemd/health checks; it exposes no
 * secrets and accepts no commands. /healthz: the process runs. /readyz: every readiness check
 * passes (503 with the failing ones otherwise). /metrics: Prometheus text format. `routes` may
 * add more (the daemon adds /v1/status, see src/status/http.ts).
 *
 * Its connections are bounded as the console listeners' are (OPS_CONNECTION_LIMITS, per source
 * address, per IPv6 /64 at 4 times that, half the total, and in total), a connection must send its
 * first request within OPS_FIRST_REQUEST_MS, and an answer whose peer takes none of it for
 * WRITE_STALL_MS ends the connection (`boundWriteStalls`; a slow peer that keeps reading is not cut): on an address beyond loopback
 * (`--address`, `:2112`) a peer on the management network could otherwise hold connections for
 * ever, each a descriptor of the daemon that also holds the BMC sockets.
 *
 * A request whose Host header is not an IP literal, localhost, or a name of this host or of the
 * operator's choosing is refused with 421 (host-check.ts: DNS rebinding from an operator's
 * browser), each counted and at most one log line a minute.
 */
import { boundWriteStalls, limitConnections, requireFirstRequestWithin, WRITE_STALL_MS, type ConnectionLimits } from '../net/connection-limits.js';
import { listen } from '../net/listen.js';
import type { Logger } from '../log.js';
import { hostCheck, ownHostNamesWithAliases } from './host-check.js';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Registry } from 'prom-client';

export type ReadinessCheck = () => string | undefined;

export interface OpsServer {
  port: number;
  close(): Promise<void>;
}

/**
 * Prometheus, health checks and a few status pages with their live streams (64 at most) need far
 * fewer. One IPv6 /64 (one host may hold all of it) gets half the total, not all of it.
 */
export const OPS_CONNECTION_LIMITS: ConnectionLimits = { perSource: 32, perPrefix64: 128, total: 256 };
export const OPS_FIRST_REQUEST_MS = 10_000;

/** `stalled`: an answer none of which the peer took for WRITE_STALL_MS */
export type OpsRefusal = 'per-source' | 'total' | 'silent' | 'host' | 'stalled';

/** at most one log line per this many ms for requests refused by their Host (a page can send many) */
export const HOST_REFUSAL_LOG_EVERY_MS = 60_000;

export async function startOpsServer(o: {
  host: string;
  port: number;
  registry: Registry;
  readiness: Record<string, ReadinessCheck>;
  routes?: (req: IncomingMessage, res: ServerResponse) => boolean;
  limits?: ConnectionLimits;
  firstRequestMs?: number;
  /** an answer whose peer takes none of it for this long ends its connection; default WRITE_STALL_MS */
  writeStallMs?: number;
  /** told each connection refused or closed for silence or a stalled answer, and each request refused for its Host (a metric) */
  onRefused?: (why: OpsRefusal) => void;
  /** Host names answered besides IP literals, localhost, this host's name and `host` (METAL_BMC_HTTP_ALLOWED_HOSTS; `*`: any) */
  allowedHosts?: readonly string[];
  /** where a request refused for its Host is said (at most once every HOST_REFUSAL_LOG_EVERY_MS) */
  logger?: Logger;
}): Promise<OpsServer> {
  const ownNames = ownHostNamesWithAliases();
  const hostAllowed = hostCheck([...ownNames, o.host, ...(o.allowedHosts ?? [])]);
  o.logger?.info({ names: ownNames.slice(0, 20), allowedHosts: (o.allowedHosts ?? []).slice(0, 20) }, 'operations listener answers IP addresses, localhost, these names of this host and METAL_BMC_HTTP_ALLOWED_HOSTS');
  let lastHostLine: { at: number; since: number } | undefined;
  const refuseHost = (req: IncomingMessage, res: ServerResponse, host: string) => {
    o.onRefused?.('host');
    res.writeHead(421, { 'content-type': 'text/plain', connection: 'close' }).end(`Host ${JSON.stringify(host.slice(0, 100))} is not a name of this listener: use its IP address, localhost, or a name in METAL_BMC_HTTP_ALLOWED_HOSTS\n`);
    const now = performance.now();
    if (lastHostLine && now - lastHostLine.at < HOST_REFUSAL_LOG_EVERY_MS) {
      lastHostLine.since++;
      return;
    }
    o.logger?.warn({ remote: req.socket.remoteAddress, host: host.slice(0, 100), path: (req.url ?? '').slice(0, 100), ...(lastHostLine?.since ? { refusedSinceLastLine: lastHostLine.since } : {}) }, 'operations listener request refused: Host is not a name of this listener (a name to allow goes in METAL_BMC_HTTP_ALLOWED_HOSTS)');
    lastHostLine = { at: now, since: 0 };
  };
  const server: Server = createServer((req, res) => {
    if (!hostAllowed(req.headers.host)) return refuseHost(req, res, req.headers.host ?? '');
    if (o.routes?.(req, res)) return;
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    if (path === '/healthz') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
      return;
    }
    if (path === '/readyz') {
      const failing = Object.entries(o.readiness)
        .map(([name, check]) => [name, check()] as const)
        .filter(([, problem]) => problem !== undefined);
      res.writeHead(failing.length === 0 ? 200 : 503, { 'content-type': 'text/plain' }).end(failing.length === 0 ? 'ready\n' : failing.map(([n, p]) => `${n}: ${p}`).join('\n') + '\n');
      return;
    }
    if (path === '/metrics') {
      o.registry.metrics().then(
        (text) => res.writeHead(200, { 'content-type': o.registry.contentType }).end(text),
        (err: Error) => res.writeHead(500).end(err.message),
      );
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
  });
  limitConnections(server, o.limits ?? OPS_CONNECTION_LIMITS, (_socket, why) => o.onRefused?.(why));
  requireFirstRequestWithin(server, o.firstRequestMs ?? OPS_FIRST_REQUEST_MS, () => o.onRefused?.('silent'));
  boundWriteStalls(server, o.writeStallMs ?? WRITE_STALL_MS, () => o.onRefused?.('stalled'));
  return listen(server, o.port, o.host);
}
