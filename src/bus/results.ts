/** Results of machine commands, published as JSON on the result subject for metal-api and operators. */
import type { NatsConnection } from '@nats-io/transport-node';
import { publicValue } from '../net/public-text.js';

const encoder = new TextEncoder();

const KEEP_PATH: ReadonlySet<string> = new Set(['image']);

/**
 * Publishes one result (core NATS: fire and forget; buffered by the client while reconnecting).
 * The result must not carry credentials; the runner's results never do. URLs in its text are cut
 * to scheme and host and query strings dropped (public-text.ts): results go to other parties.
 */
export function publishResult(nc: NatsConnection, subject: string, result: object): void {
  nc.publish(subject, encoder.encode(JSON.stringify(publicValue(result, KEEP_PATH))));
}
