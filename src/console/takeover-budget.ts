/**
 * How many takeovers a client may ask for: a token bucket per machine, principal (certificate
 * subject, `bearer-token`, a relaying instance) and source address, kept by the hub for as long
 * as the hub lives. Each takeover is a log line and a notice to every client of the machine, and
 * the keyboard holder's leaving one more: kept per client, each new SSH session or WebSocket got a
 * full bucket, so a client opening `exec takeover` and closing it in a loop sent notices without
 * bound. Keyed without the source port, joining again draws on the same bucket.
 */
import { setNewest } from '../net/newest-map.js';
import { createTokenBucket, type TokenBucket } from '../net/token-bucket.js';
import type { ClientIdentity } from './types.js';

/** takeovers one principal from one address may ask for a second on one machine, and at once */
export const TAKEOVERS_PER_SECOND = 1;
export const TAKEOVERS_BURST = 5;
/** buckets kept; the one used longest ago is forgotten beyond this (a forgotten one starts full) */
export const MAX_TAKEOVER_BUCKETS = 10_000;

/** `[::1]:5000` → `[::1]`, `10.0.0.1:5000` → `10.0.0.1`; a remote without a port (`nats:instance`) as it is */
export function sourceAddress(remote: string): string {
  return remote.replace(/:\d+$/, '');
}

export type TakeoverBudget = (machineId: string, identity: ClientIdentity) => TokenBucket;

export function createTakeoverBudget(max = MAX_TAKEOVER_BUCKETS, now?: () => number): TakeoverBudget {
  const buckets = new Map<string, TokenBucket>();
  return (machineId, identity) => {
    const key = JSON.stringify([machineId, identity.subject, sourceAddress(identity.remote)]);
    const bucket = buckets.get(key) ?? createTokenBucket(TAKEOVERS_PER_SECOND, TAKEOVERS_BURST, now);
    setNewest(buckets, key, bucket, max);
    return bucket;
  };
}
