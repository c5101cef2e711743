/**
 * Another instance's firmware claims as this instance's view sees them (src/bus/firmware-claim-view.ts)
 * where only a real nats-server shows it: a bucket deleted and made again numbers its revisions
 * from 1, and a watch from before (an ordered consumer) never delivers them (kv.ts). The view's
 * logic on the in-memory bucket is in test/unit/bus-firmware-claim-view.test.ts.
 */
import { jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, expect } from 'vitest';
import { createFirmwareClaimView } from '../../src/bus/firmware-claim-view.js';
import { createFirmwareClaims, type ClaimOutcome, type HeldClaim } from '../../src/bus/firmware-claims.js';
import { kvStreamName, openKvBucket } from '../../src/bus/kv.js';
import { captureLog } from '../helpers/log.js';
import { startTestNatsServer, type TestNatsServer } from '../helpers/nats-server.js';
import { withPeers } from '../helpers/peers.js';
import { waitFor } from '../helpers/wait.js';

const { it } = withPeers('nats-server');

let server: TestNatsServer;
let nc: NatsConnection;
beforeAll(async () => {
  server = await startTestNatsServer({ jetstream: true });
  nc = await connect({ servers: server.url });
});
afterAll(async () => {
  await nc?.close();
  await server?.dispose();
});

const held = (o: ClaimOutcome): HeldClaim => {
  if (!('held' in o)) throw new Error(`expected the claim, got busy: ${o.busy}`);
  return o.held;
};
const job = (jobId: string, machineKey: string) => ({ jobId, kind: 'bios', machineKey, bmc: '' });

it("a bucket another instance made again is watched anew: a claim written there after the remake is seen, and its release ends the wait", async () => {
  const bucket = 'metal-bmc-remade-firmware';
  const jsm = await jetstreamManager(nc);
  // the other instance writes through its own handle, which makes the bucket again when it is gone
  const theirs = await openKvBucket(nc, jsm, bucket, { onRemade: () => undefined });
  const holder = createFirmwareClaims({ kv: theirs, instanceId: 'mgmt-a', logger: captureLog().logger });
  // revisions before the remake, so that the new bucket's numbers stay below the view's place
  for (let i = 0; i < 30; i++) await theirs.put(`noise.${i}`, new TextEncoder().encode('x'));
  held(await holder.claim(job('job-1', 'm-1')));
  const log = captureLog();
  const view = createFirmwareClaimView({ kv: await openKvBucket(nc, jsm, bucket), isOwn: () => false, logger: log.logger, recheckMs: 100 });
  await view.start();
  expect(view.heldElsewhere({ machineKey: 'm-1', bmc: '' })).toMatchObject({ claim: { job: 'job-1' } });

  // the bucket is lost (a server's state) and made again by the other instance's next write
  await jsm.streams.delete(kvStreamName(bucket));
  const second = held(await holder.claim(job('job-2', 'm-2')));
  await waitFor(() => view.heldElsewhere({ machineKey: 'm-2', bmc: '' }) !== undefined, 10_000, "the new bucket's claim seen");
  expect(log.find(/^the firmware claims' key-value bucket was made again/)).toHaveLength(1);
  const sighting = view.heldElsewhere({ machineKey: 'm-2', bmc: '' })!;
  await second.release();
  await sighting.ended;
  view.close();
  holder.close();
});
