/**
 * A JetStream cluster of real nats-server processes on loopback: each node its own process,
 * client port, route port and store directory; every node lists the others as routes.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startNatsServer, type NatsServer } from '../../src/lab/nats-server.js';
import { freeTcpPort } from './ports.js';

export interface TestNatsNode extends NatsServer {
  name: string;
}

export interface TestNatsCluster {
  nodes: TestNatsNode[];
  /** every node's client URL */
  urls: string[];
  node(name: string): TestNatsNode;
  dispose(): Promise<void>;
}

export async function startTestNatsCluster(size = 3): Promise<TestNatsCluster> {
  const dir = mkdtempSync(join(tmpdir(), 'nats-cluster-'));
  const routePorts: number[] = [];
  for (let i = 0; i < size; i++) routePorts.push(await freeTcpPort());
  const nodes: TestNatsNode[] = [];
  try {
    // started together: a clustered JetStream node waits for its peers before it serves
    const started = await Promise.all(
      routePorts.map(async (port, i) => {
        const name = `n${i + 1}`;
        const server = await startNatsServer({
          jetstream: true,
          storeDir: join(dir, name),
          serverName: name,
          cluster: { name: 'metal-bmc-test', port, routes: routePorts.filter((p) => p !== port) },
        });
        return { ...server, name };
      }),
    );
    nodes.push(...started);
  } catch (err) {
    await Promise.all(nodes.map((n) => n.stop()));
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    nodes,
    urls: nodes.map((n) => n.url),
    node(name) {
      const n = nodes.find((x) => x.name === name);
      if (!n) throw new Error(`no node ${name}`);
      return n;
    },
    async dispose() {
      await Promise.all(nodes.map((n) => n.stop()));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
