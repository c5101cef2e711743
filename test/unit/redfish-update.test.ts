import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, expect } from 'vitest';
import { openRedfish, pushUpdate, simpleUpdate, waitForTask, type RedfishClient, type TaskProgress } from '../../src/redfish/index.js';
import type { BmcError } from '../../src/errors.js';
import { startMockupServer, type MockupServer, type MockupServerOptions } from '../helpers/redfish-mockup-server.js';
import { withPeers } from '../helpers/peers.js';

const { describe, it } = withPeers('openssl');

let server: MockupServer | undefined;
let client: RedfishClient | undefined;
let imageServer: Server | undefined;

async function setup(options: MockupServerOptions = {}): Promise<{ server: MockupServer; client: RedfishClient }> {
  server = await startMockupServer(options);
  client = await openRedfish({ host: server.host, port: server.port, user: server.user, password: server.password });
  return { server, client };
}

afterEach(async () => {
  await client?.close();
  expect(server?.sessionCount()).toBe(0);
  await server?.close();
  if (imageServer !== undefined) {
    imageServer.closeAllConnections();
    await new Promise((r) => imageServer?.close(r));
  }
  server = client = imageServer = undefined;
});

/** Splits a multipart/form-data body into parts: headers text and raw bytes. */
function parseMultipart(body: Buffer, contentType: string): { headers: string; data: Buffer }[] {
  const boundary = /boundary=(.+)$/.exec(contentType)?.[1];
  expect(boundary).toBeDefined();
  const delimiter = Buffer.from(`--${boundary}`);
  const parts: { headers: string; data: Buffer }[] = [];
  let pos = body.indexOf(delimiter);
  for (;;) {
    const start = pos + delimiter.length;
    if (body.subarray(start, start + 2).toString() === '--') break;
    const next = body.indexOf(delimiter, start);
    const part = body.subarray(start + 2, next - 2); // skip CRLF after the delimiter and before the next one
    const split = part.indexOf('\r\n\r\n');
    parts.push({ headers: part.subarray(0, split).toString(), data: part.subarray(split + 4) });
    pos = next;
  }
  return parts;
}

describe('simpleUpdate and tasks', () => {
  it('posts SimpleUpdate and follows the task to Completed with progress', async () => {
    const { server, client } = await setup({ taskSteps: 2 });
    const progress: TaskProgress[] = [];
    const result = await simpleUpdate(client, 'http://images.example/bios.bin', {
      targets: ['/redfish/v1/UpdateService/FirmwareInventory/BIOS'],
      pollMs: 20,
      onProgress: (p) => progress.push(p),
    });
    expect(server.requests.find((r) => r.path === '/redfish/v1/UpdateService/Actions/SimpleUpdate')?.body).toEqual({
      ImageURI: 'http://images.example/bios.bin',
      Targets: ['/redfish/v1/UpdateService/FirmwareInventory/BIOS'],
    });
    expect(result.taskUri).toBe('/redfish/v1/TaskService/Tasks/upd1');
    expect(result.task?.state).toBe('Completed');
    expect(progress).toEqual([
      { state: 'Running', percent: 50 },
      { state: 'Completed', percent: 100 },
    ]);
  });

  it.each(['https://bmc-r01-01.example', 'http://bmc-r01-01.example:80'])('a task Location %s/... (the BMC by another name, or http:// behind its TLS) is followed by its path on this BMC only', async (origin) => {
    const { server, client } = await setup({ taskSteps: 1, taskLocationOrigin: origin });
    const result = await simpleUpdate(client, 'http://images.example/bios.bin', { pollMs: 20 });
    expect(result.taskUri).toBe('/redfish/v1/TaskService/Tasks/upd1');
    expect(result.task?.state).toBe('Completed');
    expect(server.requests.filter((r) => r.path === '/redfish/v1/TaskService/Tasks/upd1').length).toBeGreaterThan(0);
  });

  it.each([200, 204])('a SimpleUpdate answered %i without a task (iLO 5 flashes in the background) is not Completed: UNSUPPORTED, its result unknown', async (status) => {
    const { server, client } = await setup({ taskSteps: 1 });
    server.addFault({ method: 'POST', path: '/redfish/v1/UpdateService/Actions', fault: { kind: 'status', status, message: 'Success' } });
    const progress: TaskProgress[] = [];
    await expect(simpleUpdate(client, 'http://images.example/bios.bin', { pollMs: 10, onProgress: (p) => progress.push(p) })).rejects.toMatchObject({ code: 'UNSUPPORTED', message: expect.stringContaining(`accepted (HTTP ${status}); the BMC named no task to follow`) });
    expect(progress).toEqual([]);
  });

  it('a task ending in Exception rejects with its messages', async () => {
    const { client } = await setup({ taskOutcome: 'Exception', taskSteps: 1 });
    const err = simpleUpdate(client, 'http://images.example/bmc.bin', { pollMs: 20 });
    await expect(err).rejects.toMatchObject({ code: 'PROTOCOL', message: expect.stringContaining('Image verification failed') });
  });

  it('follows a task monitor not under a Task (202 while running): its final 2xx is the outcome, as DSP0266 has it', async () => {
    // bmcweb's monitors (.../Tasks/N/Monitor) are read back from their Task instead: firmware-outcome.test.ts
    const { client } = await setup({ taskMonitor: true, taskSteps: 3 });
    const progress: TaskProgress[] = [];
    const result = await simpleUpdate(client, 'http://images.example/bmc.bin', { pollMs: 20, onProgress: (p) => progress.push(p) });
    expect(result.taskUri).toBe('/redfish/v1/TaskService/TaskMonitors/upd1');
    expect(result.task?.state).toBe('Completed');
    expect(progress.map((p) => p.state)).toEqual(['Running', 'Completed']);
  });

  it('wait:false returns the task; waitForTask reads the mockup Task 545', async () => {
    const { client } = await setup();
    expect(await simpleUpdate(client, 'http://images.example/x.bin', { wait: false })).toEqual({ taskUri: '/redfish/v1/TaskService/Tasks/upd1' });
    expect(await waitForTask(client, '/redfish/v1/TaskService/Tasks/545')).toEqual({
      path: '/redfish/v1/TaskService/Tasks/545',
      state: 'Completed',
      status: 'OK',
      messages: ['The property SKU is a read only property and cannot be assigned a value'],
      messageIds: ['Base.1.0.PropertyNotWriteable'],
    });
  });

  it('waitForTask tolerates transient errors and honours its deadline', async () => {
    const { server, client } = await setup({ taskSteps: 1000 });
    const { taskUri } = await simpleUpdate(client, 'http://images.example/x.bin', { wait: false });
    server.addFault({ path: '/redfish/v1/TaskService', fault: { kind: 'status', status: 500 }, times: 1 });
    const t0 = performance.now();
    // a 1 s deadline leaves room for several polls (20 ms apart, after the 500 too) even on a loaded machine
    await expect(waitForTask(client, taskUri as string, { pollMs: 20, unreachablePollMs: 20, timeoutMs: 1000 })).rejects.toMatchObject({ code: 'TIMEOUT' });
    // time is the subject (the task never ends, the deadline does): a 2 s margin for a loaded machine
    expect(performance.now() - t0).toBeLessThan(1000 + 2000);
    expect(server.requests.filter((r) => r.path === taskUri).length).toBeGreaterThan(3);
  });
});

describe('pushUpdate (multipart, streamed)', () => {
  async function serveImage(image: Buffer, opts: { contentLength: boolean; waitForUpload?: () => boolean }): Promise<{ url: string; streamed: () => boolean }> {
    let streamed = false;
    imageServer = createServer((req, res) => {
      if (req.url !== '/fw/bmc-1.2.3.bin') {
        res.writeHead(404).end();
        return;
      }
      res.writeHead(200, { 'content-type': 'application/octet-stream', ...(opts.contentLength ? { 'content-length': image.length } : {}) });
      const half = image.length >> 1;
      res.write(image.subarray(0, half));
      const started = Date.now();
      const rest = (): void => {
        // The second half is sent only once the BMC has received bytes of the first: proof of streaming.
        if (opts.waitForUpload?.() === true) streamed = true;
        else if (Date.now() - started < 5000) return void setTimeout(rest, 10);
        res.end(image.subarray(half));
      };
      rest();
    });
    await new Promise<void>((r) => imageServer?.listen(0, '127.0.0.1', r));
    return { url: `http://127.0.0.1:${(imageServer.address() as AddressInfo).port}/fw/bmc-1.2.3.bin`, streamed: () => streamed };
  }

  it.each([true, false])('streams the image into UpdateFile (content-length known: %s)', async (contentLength) => {
    const { server, client } = await setup();
    const image = randomBytes(3 * 1024 * 1024 + 17);
    const { url, streamed } = await serveImage(image, { contentLength, waitForUpload: () => server.uploadBytesReceived() > 512 * 1024 });
    const progress: TaskProgress[] = [];
    const result = await pushUpdate(client, url, {
      targets: ['/redfish/v1/UpdateService/FirmwareInventory/BMC'],
      applyTime: 'Immediate',
      pollMs: 20,
      onProgress: (p) => progress.push(p),
      progressStepBytes: 1024 * 1024,
    });
    expect(streamed()).toBe(true);
    expect(result.task?.state).toBe('Completed');
    const upload = server.uploads[0];
    expect(upload).toBeDefined();
    if (upload === undefined) return;
    expect(upload.contentLength).toBe(contentLength ? String(upload.body.length) : undefined);
    const parts = parseMultipart(upload.body, upload.contentType);
    expect(parts).toHaveLength(2);
    expect(parts[0]?.headers).toContain('name="UpdateParameters"');
    expect(JSON.parse(parts[0]?.data.toString() ?? '')).toEqual({
      Targets: ['/redfish/v1/UpdateService/FirmwareInventory/BMC'],
      '@Redfish.OperationApplyTime': 'Immediate',
    });
    expect(parts[1]?.headers).toContain('name="UpdateFile"; filename="bmc-1.2.3.bin"');
    expect(parts[1]?.data.equals(image)).toBe(true);
    if (contentLength) expect(progress.filter((p) => p.state === 'Uploading').at(-1)).toEqual({ state: 'Uploading', percent: 100 });
    // without a length no percent, but the bytes taken, every step (a firmware job's sign of life during the upload)
    else expect(progress.filter((p) => p.state === 'Uploading').map((p) => p.sentBytes! >> 20)).toEqual([1, 2, 3]);
    expect(progress.at(-1)).toEqual({ state: 'Completed', percent: 100 });
  });

  it('an image that cannot be downloaded is an HTTP error; nothing is uploaded', async () => {
    const { server, client } = await setup();
    const { url } = await serveImage(Buffer.alloc(10), { contentLength: true });
    const failure = (await pushUpdate(client, `${url.replace('bmc-1.2.3', 'missing')}?X-Amz-Signature=sig-s3cret`).then(
      () => undefined,
      (e: unknown) => e,
    )) as BmcError;
    expect(failure).toMatchObject({ code: 'HTTP', httpStatus: 404 });
    // a presigned URL's signature stays out of the message, which a firmware job keeps and publishes
    expect(failure.message).toMatch(/image download http:\/\/[^ ]+\/missing\.bin\?…: HTTP 404/);
    expect(failure.message).not.toContain('sig-s3cret');
    expect(server.uploads).toHaveLength(0);
  });

  it('OnStartUpdateRequest on a service without #UpdateService.StartUpdate: UNSUPPORTED before anything is downloaded or uploaded', async () => {
    const { server, client } = await setup();
    let downloads = 0;
    imageServer = createServer((_req, res) => {
      downloads += 1;
      res.writeHead(200, { 'content-length': 4 }).end('abcd');
    });
    await new Promise<void>((r) => imageServer?.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(imageServer.address() as AddressInfo).port}/fw/bios.bin`;
    await expect(pushUpdate(client, url, { applyTime: 'OnStartUpdateRequest' })).rejects.toMatchObject({ code: 'UNSUPPORTED', message: expect.stringContaining('no #UpdateService.StartUpdate action') });
    expect(downloads).toBe(0);
    expect(server.uploads).toHaveLength(0);
  });

  it("the UpdateService's MaxImageSizeBytes lowers the bound: an image passing it aborts the upload, naming it", async () => {
    const { server, client } = await setup({ maxImageSizeBytes: 256 * 1024 });
    const { url } = await serveImage(randomBytes(1024 * 1024), { contentLength: false });
    await expect(pushUpdate(client, url, { maxImageBytes: 512 * 1024 })).rejects.toMatchObject({
      code: 'FORBIDDEN',
      message: expect.stringContaining('passed 262144 bytes (/redfish/v1/UpdateService MaxImageSizeBytes) without ending; upload aborted'),
    });
    expect(server.uploadBytesReceived()).toBeLessThanOrEqual(256 * 1024 + 4096);
  });

  it('UNSUPPORTED without MultipartHttpPushUri; INVALID_ARGUMENT for a non-http URL', async () => {
    const { client } = await setup({ multipartPushUri: null });
    await expect(pushUpdate(client, 'http://127.0.0.1:1/x.bin')).rejects.toMatchObject({ code: 'UNSUPPORTED' });
    await expect(pushUpdate(client, 'ftp://host/x.bin')).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
  });
});
