/**
 * The console part's ownership (issue 13, item 4), with METAL_BMC_CONSOLE_CAPTURE=all and
 * METAL_BMC_CONSOLE_OWNERSHIP=nats: on the daemon's NATS connection, the JetStream bucket
 * `KV_metal-bmc-<partition>-consoles` decides which instance holds each machine's console
 * (bus/console-owners.ts). The capture holds the reported machines this instance owns; viewers of
 * a machine another instance owns are relayed from it or refused (console/owned-backend.ts).
 * Until NATS and the bucket are reached, this instance holds no console.
 */
import { jetstreamOrUndefined, sanitizeName } from '../bus/jetstream.js';
import { openKvBucket } from '../bus/kv.js';
import { createConsoleOwnership, type ConsoleOwnership } from '../bus/console-owners.js';
import type { BusConnection } from '../bus/connection.js';
import type { Holder } from '../console/owned-backend.js';
import type { DaemonContext } from '../daemon.js';
import { Gauge } from 'prom-client';
import { acquireBus } from './bus.js';

export function consoleBucketName(partitionId: string): string {
  return `metal-bmc-${sanitizeName(partitionId)}-consoles`;
}

export interface ConsoleOwners {
  /** the reported machines (this instance holds those of them it owns) */
  setWanted(ids: readonly string[]): void;
  /** of `ids`, those this instance holds now */
  owned(ids: readonly string[]): string[];
  holder(machineId: string): Holder;
  /** the connection, once there (the relay uses it) */
  bus(): BusConnection | undefined;
  /** resolves with the connection when it is there, with undefined when closed first */
  connected: Promise<BusConnection | undefined>;
  ready(): string | undefined;
  close(): Promise<void>;
}

const RETRY_MS = 2000;

export function startConsoleOwners(ctx: DaemonContext, onChange: () => void): ConsoleOwners {
  const { config, logger } = ctx;
  const nats = acquireBus(ctx);
  const aborter = new AbortController();
  let ownership: ConsoleOwnership | undefined;
  let connection: BusConnection | undefined;
  let wanted: readonly string[] = [];
  let problem: string | undefined = 'console ownership: connecting to NATS';
  const holderOf = (machineId: string): Holder => {
    if (!ownership || !ownership.live()) return { kind: 'unknown' };
    const owner = ownership.ownerOf(machineId);
    if (owner === config.instanceId) return { kind: 'self' };
    // what this instance holds it knows; who holds the rest only while its watch is current
    if (!ownership.viewCurrent()) return { kind: 'unknown', lagging: true };
    return owner === undefined ? { kind: 'free' } : { kind: 'other', instance: owner };
  };
  new Gauge({
    name: 'metal_bmc_console_ownership_machines',
    help: 'reported machines by who holds their console: self (this instance), other (another instance), free (nobody yet), unknown (this instance\'s lease is not renewed)',
    labelNames: ['holder'],
    registers: [ctx.registry],
    collect() {
      const counts = { self: 0, other: 0, free: 0, unknown: 0 };
      for (const id of wanted) counts[holderOf(id).kind]++;
      for (const [holder, n] of Object.entries(counts)) this.set({ holder }, n);
    },
  });

  let connectedNow: (bus: BusConnection | undefined) => void = () => undefined;
  const connected = new Promise<BusConnection | undefined>((resolve) => (connectedNow = resolve));
  const starting = (async () => {
    connection = await nats.connection(aborter.signal);
    connectedNow(connection);
    for (let attempt = 1; !aborter.signal.aborted; attempt++) {
      try {
        const jsm = await jetstreamOrUndefined(connection.nc);
        if (!jsm) throw new Error('the NATS server has no JetStream (console ownership needs it; or set METAL_BMC_CONSOLE_OWNERSHIP=local on a single instance)');
        // a bucket deleted or lost with a server's state is made again by the next read or write, and the ownership starts over on it
        let remadeNow = (): void => undefined;
        const kv = await openKvBucket(connection.nc, jsm, consoleBucketName(config.partitionId), { replicas: config.mq.streamReplicas, onRemade: () => remadeNow() });
        const made = createConsoleOwnership({ kv, instanceId: config.instanceId, leaseMs: config.console.leaseMs, logger, onChange: () => onChange() });
        remadeNow = () => made.bucketRemade();
        await made.start();
        if (aborter.signal.aborted) {
          await made.close();
          return;
        }
        ownership = made;
        made.setWanted(wanted);
        problem = undefined;
        logger.info({ bucket: kv.bucket, instance: config.instanceId, leaseMs: config.console.leaseMs }, 'console ownership through JetStream: this instance holds the consoles it claims');
        return;
      } catch (err) {
        problem = `console ownership: ${(err as Error).message}`;
        if (attempt === 1 || attempt % 30 === 0) logger.error({ err, attempt }, 'console ownership cannot start; holding no console, retrying');
        await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
      }
    }
  })().catch((err: Error) => {
    if (!aborter.signal.aborted) logger.error({ err }, 'console ownership failed');
  });

  return {
    setWanted(ids) {
      wanted = ids;
      ownership?.setWanted(ids);
    },
    owned(ids) {
      const mine = ownership?.owned();
      return mine ? ids.filter((id) => mine.has(id)) : [];
    },
    holder: holderOf,
    bus: () => connection,
    connected,
    ready: () => problem ?? (ownership && !ownership.live() ? 'console ownership: lease not renewed, or starting over on its bucket made again' : undefined),
    async close() {
      aborter.abort();
      connectedNow(undefined);
      await starting;
      await ownership?.close();
      await nats.release();
    },
  };
}
