/** Results of machine commands, published as JSON on the result subject for metal-api and operators. */
import type { NatsConnection } from '@nats-io/transport-node';

const encoder = new TextEncoder();

/**
 * Publishes one result (core NATS: fire and forget; buffered by the client while reconnecting).
 * The result must not carry credentials; the runner's results never do.
 */
export function publishResult(nc: NatsConnection, subject: string, result: object): void {
  nc.publish(subject, encoder.encode(JSON.stringify(result)));
}
