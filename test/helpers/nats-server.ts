/**
 * A real nats-server (Debian's, v2.9) on a free loopback port for the bus and command tests,
 * optionally with JetStream and a temporary store directory that survives `restart()`.
 * The process handling is the lab's (src/lab/nats-server.ts); this adds the store directory.
 */
import { jetstreamManager, type ConsumerInfo } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startNatsServer, type NatsServer } from '../../src/lab/nats-server.js';
import { waitFor } from './wait.js';

export interface TestNatsServer extends NatsServer {
  /** the JetStream store directory (undefined without JetStream) */
  storeDir: string | undefined;
  /** stop and remove the store directory */
  dispose(): Promise<void>;
}

export async function startTestNatsServer(options: { jetstream?: boolean } = {}): Promise<TestNatsServer> {
  const jetstream = options.jetstream ?? true;
  const storeDir = jetstream ? mkdtempSync(join(tmpdir(), 'nats-js-')) : undefined;
  const server = await startNatsServer({ jetstream, ...(storeDir ? { storeDir } : {}) });
  return {
    ...server,
    storeDir,
    async dispose() {
      await server.stop();
      if (storeDir) rmSync(storeDir, { recursive: true, force: true });
    },
  };
}

/**
 * Waits until a durable consumer has nothing left to deliver and nothing unacknowledged, as the
 * server's consumer info says: from then on no event can reach a handler again (acked or
 * terminated events are never redelivered), and whatever the consumer published before its acks
 * (on the same connection) has reached the server. Tests use it instead of waiting a while to see
 * that nothing more happens.
 */
export async function consumerSettled(nc: NatsConnection, stream: string, consumer: string, ms = 15_000): Promise<ConsumerInfo> {
  const jsm = await jetstreamManager(nc);
  let info = await jsm.consumers.info(stream, consumer);
  await waitFor(async () => ((info = await jsm.consumers.info(stream, consumer)), info.num_pending === 0 && info.num_ack_pending === 0), ms, `consumer ${consumer} of ${stream} to settle`, 50);
  return info;
}
