/**
 * The command path against a three-node JetStream cluster (real nats-server processes on
 * loopback, each with its own store and route port) with the stream at three replicas: the
 * stream leader is killed (SIGKILL) while commands flow. Every command must run exactly once on
 * the simulated fleet, none lost. The simulator's own record of identify changes is the ground
 * truth; results on core NATS may be lost while a client reconnects, so they are not counted.
 */
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, expect } from 'vitest';
import { connectBus, type BusConnection } from '../../src/bus/connection.js';
import { streamNameFor } from '../../src/bus/jetstream.js';
import { createCommandMetrics } from '../../src/commands/metrics.js';
import { ipmiOutband } from '../../src/outband/ipmi.js';
import { startCommandService, type CommandService } from '../../src/parts/commands.js';
import type { Fleet } from '../../src/sim/fleet.js';
import { startTestFleet } from '../helpers/fleet.js';
import { captureLog } from '../helpers/log.js';
import { startTestNatsCluster, type TestNatsCluster } from '../helpers/nats-cluster.js';
import { waitFor } from '../helpers/wait.js';
import { withPeers } from '../helpers/peers.js';

const { describe, it } = withPeers('nats-server', 'openssl');

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const enc = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));
const N = 40;
const SUBJECT = 'cluster-machine';

let cluster: TestNatsCluster;
let fleet: Fleet;
let api: NatsConnection;
let bus: BusConnection;
let service: CommandService;
const log = captureLog('info');

beforeAll(async () => {
  [cluster, fleet] = await Promise.all([startTestNatsCluster(3), startTestFleet({ count: N, redfish: false })]);
  api = await connect({ servers: cluster.urls, maxReconnectAttempts: -1, reconnectTimeWait: 100 });
  bus = await connectBus({ servers: cluster.urls, logger: log.logger, name: 'metal-bmc-cluster', reconnectTimeWaitMs: 200 });
  // a clustered JetStream needs a moment to elect its meta leader: retry the setup until it answers
  const metrics = createCommandMetrics(new Registry());
  await waitFor(
    async () => {
      try {
        service = await startCommandService({
          nc: bus.nc,
          subject: SUBJECT,
          resultSubject: 'cluster-machine-result',
          ttlMs: 120_000,
          replicas: 3,
          durableName: 'metal-bmc-cluster',
          ackWaitMs: 4000,
          connect: (ipmi) => ipmiOutband({ host: ipmi.host, port: ipmi.port, user: fleet.user, password: fleet.password, cipherSuite: 3, retry: { deadlineMs: 5000 } }),
          concurrency: 8,
          timeoutMs: 3000,
          logger: log.logger,
          metrics,
        });
        return true;
      } catch {
        return false;
      }
    },
    30_000,
    'JetStream cluster ready',
    500,
  );
}, 60_000);

afterAll(async () => {
  await service?.stop(2000);
  await bus?.close(1000);
  await api?.close();
  await Promise.all([fleet?.close(), cluster?.dispose()]);
});

/** JetStream publish with a message id, retried until the cluster stored it (as metal-api retries). */
async function publishStored(k: number): Promise<void> {
  const m = fleet.machines[k]!.state;
  const event = { type: 'command', cmd: { target: `m-${k}`, cmd: 'LED-ON', ipmi: { address: `${m.address}:${fleet.ipmiPort}`, user: fleet.user, password: fleet.password } } };
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      await jetstream(api, { timeout: 2000 }).publish(SUBJECT, enc(event), { msgID: `cmd-${k}` });
      return;
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await sleep(200);
    }
  }
}

describe('commands on a three-node JetStream cluster, stream replicas 3', () => {
  it('the stream leader is killed while commands flow: every command runs exactly once, none is lost', async () => {
    const jsm = await jetstreamManager(api);
    const info = await jsm.streams.info(streamNameFor(SUBJECT));
    expect(info.config.num_replicas).toBe(3);
    expect(info.cluster?.replicas).toHaveLength(2);
    const leader = info.cluster!.leader!;

    const runs = new Array<number>(N).fill(0);
    fleet.machines.forEach((m, k) => m.on('change', (e) => void (e.kind === 'identify' && e.on && runs[k]!++)));

    for (let k = 0; k < N / 2; k++) await publishStored(k);
    // the first commands are under way when the leader dies
    await waitFor(() => runs.some((r) => r > 0), 20_000, 'first commands executed');
    await cluster.node(leader).kill();
    for (let k = N / 2; k < N; k++) await publishStored(k);

    await waitFor(() => runs.every((r) => r >= 1), 60_000, 'every command executed', 100);
    // settled means nothing is pending or awaiting an ack: no redelivery can follow
    await waitFor(
      async () => {
        try {
          const ci = await (await jetstreamManager(api)).consumers.info(streamNameFor(SUBJECT), 'metal-bmc-cluster');
          return ci.num_pending === 0 && ci.num_ack_pending === 0;
        } catch {
          return false;
        }
      },
      30_000,
      'consumer settled',
      250,
    );
    const after = await jsm.streams.info(streamNameFor(SUBJECT));
    expect(after.cluster?.leader).not.toBe(leader);
    expect(after.state.messages).toBe(N);
    expect(runs).toEqual(new Array<number>(N).fill(1));
    expect(log.text()).not.toContain(fleet.password);
  }, 120_000);
});
