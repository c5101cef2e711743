/**
 * Console metrics: active BMC console sessions and clients (gauges read from the hub when
 * scraped) and a counter of hub events (opens, closes, takeovers, disconnects, drops).
 */
import { Counter, Gauge, type Registry } from 'prom-client';
import type { HubEvent } from './types.js';

export interface ConsoleMetrics {
  event(event: HubEvent): void;
  /** a connection or request refused by a listener, by reason (origin, unauthenticated, forbidden, throttled, per-source, total, tls-handshake, handshake-timeout, write-stall, too-many-sessions; revoked: an open connection ended after a CRL reload; close-unanswered: an SSH connection ended because the client did not close a channel metal-bmc ended) */
  refused(listener: 'ssh' | 'ws', reason: string): void;
}

export function createConsoleMetrics(registry: Registry, read: { sessions(): number; clients(): number; crlNextUpdate?: () => Date | undefined }): ConsoleMetrics {
  const { crlNextUpdate } = read;
  if (crlNextUpdate) {
    new Gauge({
      name: 'metal_bmc_console_crl_next_update_timestamp_seconds',
      help: 'the earliest nextUpdate of the console CRL file in force (Unix time; +Inf when its CRLs name none): past it every client certificate the CRL covers is refused',
      registers: [registry],
      collect() {
        this.set((crlNextUpdate()?.getTime() ?? Number.POSITIVE_INFINITY) / 1000);
      },
    });
  }
  new Gauge({
    name: 'metal_bmc_console_sessions',
    help: 'BMC console sessions open or being (re)opened',
    registers: [registry],
    collect() {
      this.set(read.sessions());
    },
  });
  new Gauge({
    name: 'metal_bmc_console_clients',
    help: 'clients attached to console sessions (SSH and WebSocket)',
    registers: [registry],
    collect() {
      this.set(read.clients());
    },
  });
  const events = new Counter({ name: 'metal_bmc_console_events_total', help: 'console hub events by kind', labelNames: ['event'], registers: [registry] });
  const refusals = new Counter({ name: 'metal_bmc_console_refused_total', help: 'console connections and requests refused, by listener and reason', labelNames: ['listener', 'reason'], registers: [registry] });
  return { event: (event) => events.inc({ event }), refused: (listener, reason) => refusals.inc({ listener, reason }) };
}
