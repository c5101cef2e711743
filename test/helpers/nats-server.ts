/**
 * A real nats-server (Debian's, v2.9) on a free loopback port for the bus and command tests,
 * optionally with JetStream and a temporary store directory that survives `restart()`.
 * The process handling is the lab's (src/lab/nats-server.ts); this adds the store directory.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startNatsServer, type NatsServer } from '../../src/lab/nats-server.js';

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
