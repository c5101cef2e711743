/**
 * What metal-api's answers say, for the daemon's metrics and log: requests by how they ended, and
 * how far this host's clock is from metal-api's. metal-api refuses an HMAC date more than its
 * hmac-edit-lifetime (30 s) old with 403 "the timestamp in your header is too old": a host whose
 * clock is behind metal-api's fails every report, and the gauge and one warning say why before that.
 */
import { Counter, Gauge, type Registry } from 'prom-client';
import type { Logger } from '../log.js';
import type { AttemptEnd } from './client.js';
import { DEFAULT_HMAC_LIFETIME_SECONDS } from './hmac.js';

/** this host's clock further behind metal-api's than this is warned about (a third of metal-api's lifetime: time to fix it before reports fail) */
export const CLOCK_BEHIND_WARN_SECONDS = 10;
/** an episode ends when the clock is back within this: a Date header's whole seconds must not flap the warning at the bound */
export const CLOCK_BACK_SECONDS = 5;

/** This host's clock minus the one that wrote `date` (an HTTP-date, whole seconds), in seconds; undefined for no date that parses. */
export function clockOffsetSeconds(date: string | undefined, nowMs: number): number | undefined {
  if (date === undefined) return undefined;
  const then = Date.parse(date);
  return Number.isFinite(then) ? (nowMs - then) / 1000 : undefined;
}

export interface MetalApiWatch {
  /** the client's onAttemptEnd */
  attemptEnded(info: AttemptEnd): void;
}

export function createMetalApiWatch(registry: Registry, logger: Logger, now: () => number = Date.now): MetalApiWatch {
  const requests = new Counter({ name: 'metal_bmc_metal_api_requests_total', help: 'metal-api requests by how they ended: the HTTP status, or timeout, closed (no answer) and aborted', labelNames: ['status'], registers: [registry] });
  const offset = new Gauge({ name: 'metal_bmc_metal_api_clock_offset_seconds', help: "this host's clock minus metal-api's, from the Date header of its last answer (whole seconds, plus the answer's travel); metal-api refuses HMAC dates more than 30 s old", registers: [registry] });
  let behind = false;
  return {
    attemptEnded({ outcome, serverDate }) {
      requests.inc({ status: outcome });
      const seconds = clockOffsetSeconds(serverDate, now());
      if (seconds === undefined) return;
      offset.set(seconds);
      if (!behind && seconds < -CLOCK_BEHIND_WARN_SECONDS) {
        behind = true;
        logger.warn({ offsetSeconds: Math.round(seconds) }, `this host's clock is behind metal-api's: metal-api refuses a request whose HMAC date is more than ${DEFAULT_HMAC_LIFETIME_SECONDS} s old (by default) with 403 "the timestamp in your header is too old"; check time synchronization (NTP)`);
      } else if (behind && seconds > -CLOCK_BACK_SECONDS) {
        behind = false;
        logger.info({ offsetSeconds: Math.round(seconds) }, "this host's clock is back in step with metal-api's");
      }
    },
  };
}
