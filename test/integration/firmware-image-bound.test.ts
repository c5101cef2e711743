/**
 * The bound of a pushed image, against the simulated BMC with an image server of the test's own:
 * one that streams without end (no Content-Length) is cut at the bound and the upload aborted; one
 * whose Content-Length is over the bound is refused before anything is uploaded. The bound is
 * scaled down (maxImageBytes); the default is DEFAULT_MAX_IMAGE_BYTES (512 MiB).
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, expect } from 'vitest';
import { connectOutband } from '../../src/outband/connect.js';
import { openRedfish, pushUpdate, type RedfishClient } from '../../src/redfish/index.js';
import type { Fleet } from '../../src/sim/fleet.js';
import { startTestFleet } from '../helpers/fleet.js';
import { withPeers } from '../helpers/peers.js';

const { describe, it } = withPeers('openssl');

const BOUND = 1 << 20;
const CHUNK = Buffer.alloc(64 * 1024, 0x5a);

let fleet: Fleet;
let client: RedfishClient | undefined;
let images: Server | undefined;

beforeAll(async () => {
  fleet = await startTestFleet({ count: 1, variants: ['lenovo'] });
});
afterAll(async () => {
  await fleet?.close();
});
afterEach(async () => {
  await client?.close();
  client = undefined;
  images?.closeAllConnections();
  await new Promise((resolve) => (images ? images.close(resolve) : resolve(undefined)));
  images = undefined;
});

/** An image server: `endless` streams 64 KiB chunks as fast as they are taken, until the connection ends; `announce` sends only a Content-Length header and then nothing. */
async function imageServer(kind: { endless: true } | { announce: number }): Promise<{ url: string; sent: () => number }> {
  let sent = 0;
  images = createServer((_req, res) => {
    if ('announce' in kind) {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': kind.announce });
      res.flushHeaders();
      return;
    }
    res.writeHead(200, { 'content-type': 'application/octet-stream' });
    const pump = (): void => {
      while (!res.destroyed && !res.writableEnded) {
        sent += CHUNK.length;
        if (!res.write(CHUNK)) return void res.once('drain', pump);
      }
    };
    res.on('close', () => res.removeAllListeners('drain'));
    pump();
  });
  await new Promise<void>((resolve) => images!.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(images.address() as AddressInfo).port}/fw/bmc-9.1.0.bin`, sent: () => sent };
}

async function connect(): Promise<RedfishClient> {
  const m = fleet.machines[0]!;
  client = await openRedfish({ host: m.state.address, port: fleet.redfishPort, user: fleet.user, password: fleet.password, insecure: true });
  return client;
}

const pushes = (): number => fleet.redfish!.requests.byRoute['POST multipart push'] ?? 0;

describe('the bound of a pushed image', () => {
  it('an endless image without Content-Length is cut at the bound: the upload is aborted with FORBIDDEN, not streamed on until the deadline', async () => {
    const c = await connect();
    const { url, sent } = await imageServer({ endless: true });
    const uploadedBefore = fleet.redfish!.requests.uploadedBytes;
    const failure = await pushUpdate(c, url, { maxImageBytes: BOUND, uploadTimeoutMs: 60_000 }).then(
      () => undefined,
      (err: unknown) => err as { code?: string; name?: string; message: string },
    );
    expect(failure).toMatchObject({ code: 'FORBIDDEN', name: 'ImageTooLargeError' });
    expect(failure!.message).toContain(`passed ${BOUND} bytes (the configured bound) without ending; upload aborted`);
    // the BMC took no more than the bound (and what was in flight), never the whole stream
    expect(fleet.redfish!.requests.uploadedBytes - uploadedBefore).toBeLessThanOrEqual(BOUND);
    expect(sent()).toBeGreaterThan(BOUND);
  }, 30_000);

  it('a Content-Length over the bound is refused before the upload: nothing reaches the BMC', async () => {
    const c = await connect();
    const { url } = await imageServer({ announce: 8 * BOUND });
    const before = pushes();
    await expect(pushUpdate(c, url, { maxImageBytes: BOUND })).rejects.toMatchObject({
      code: 'FORBIDDEN',
      message: expect.stringContaining(`the image is ${8 * BOUND} bytes (Content-Length), over ${BOUND} (the configured bound); nothing uploaded`),
    });
    expect(pushes()).toBe(before);
  }, 30_000);

  it("the facade pushes with the daemon's bound (METAL_BMC_FIRMWARE_MAX_IMAGE_SIZE as firmwareMaxImageBytes)", async () => {
    const m = fleet.machines[0]!;
    // XCC fetches no http image itself: the facade pushes it
    fleet.setQuirks([0], ['redfish-simpleupdate-sftp-tftp-only'], true);
    const { url } = await imageServer({ announce: 8 * BOUND });
    const before = pushes();
    const bmc = await connectOutband({ host: m.state.address, user: fleet.user, password: fleet.password, ipmiPort: fleet.ipmiPort, redfishPort: fleet.redfishPort, timeoutMs: 10_000, firmwareMaxImageBytes: BOUND });
    try {
      await expect(bmc.updateFirmware('bios', url, { signal: AbortSignal.timeout(20_000) })).rejects.toMatchObject({ code: 'FORBIDDEN', message: expect.stringContaining(`over ${BOUND} (the configured bound)`) });
    } finally {
      await bmc.close();
      fleet.setQuirks([0], ['redfish-simpleupdate-sftp-tftp-only'], false);
    }
    expect(pushes()).toBe(before);
  }, 30_000);
});
