/**
 * A push staged with apply time OnStartUpdateRequest, against a stand-in BMC whose answers are
 * scripted: a verify task the BMC drops before it is seen to end goes on to StartUpdate (the BMC
 * did not restart; StartUpdate says whether an image is staged), a StartUpdate answered without a
 * task is not a success, and a vendor part with a bad name is refused before anything is downloaded.
 */
import type { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BmcError } from '../../src/errors.js';
import { pushUpdate, type RedfishReply, type TaskProgress, type UpdateClient } from '../../src/redfish/index.js';
import { startImageServer } from '../helpers/firmware.js';

const START_UPDATE = '/redfish/v1/UpdateService/Actions/UpdateService.StartUpdate';
const VERIFY_TASK = '/redfish/v1/TaskService/Tasks/1';
const UPDATE_TASK = '/redfish/v1/TaskService/Tasks/2';

let images: Awaited<ReturnType<typeof startImageServer>>;
beforeAll(async () => {
  images = await startImageServer(1024);
});
afterAll(async () => {
  await images?.close();
});

const task = (path: string, state: string): RedfishReply => ({ status: 200, headers: {}, body: { '@odata.id': path, '@odata.type': '#Task.v1_4_3.Task', TaskState: state, TaskStatus: 'OK', PercentComplete: state === 'Completed' ? 100 : 40 } });

/** A Supermicro-like UpdateService; `reads` scripts each task's answers in turn (an Error is thrown), `startAnswer` is StartUpdate's (an Error is thrown). */
function stagedBmc(reads: Record<string, Array<RedfishReply | Error>>, startAnswer: RedfishReply | Error) {
  const posts: string[] = [];
  const resources: Record<string, unknown> = {
    '/redfish/v1/': { UpdateService: { '@odata.id': '/redfish/v1/UpdateService' } },
    '/redfish/v1/UpdateService': { MultipartHttpPushUri: '/redfish/v1/UpdateService/upload', Actions: { '#UpdateService.StartUpdate': { target: START_UPDATE } } },
  };
  const client = {
    get: async <T,>(path: string) => resources[path] as T,
    getReply: async (path: string) => {
      const next = reads[path]?.shift();
      if (next === undefined) throw new Error(`unscripted read of ${path}`);
      if (next instanceof Error) throw next;
      return next;
    },
    upload: async (_path: string, stream: Readable) => {
      for await (const chunk of stream) void chunk; // the BMC reads the whole body
      return { status: 202, headers: { location: VERIFY_TASK }, body: undefined };
    },
    post: async (path: string) => {
      posts.push(path);
      if (startAnswer instanceof Error) throw startAnswer;
      return startAnswer;
    },
  } as unknown as UpdateClient;
  return { client, posts };
}

describe('pushUpdate staged OnStartUpdateRequest', () => {
  it('a verify task the BMC drops after it was seen running: StartUpdate is posted and its task decides', async () => {
    const gone = new BmcError('HTTP', `GET ${VERIFY_TASK}: HTTP 404`, { httpStatus: 404 });
    const bmc = stagedBmc({ [VERIFY_TASK]: [task(VERIFY_TASK, 'Running'), gone], [UPDATE_TASK]: [task(UPDATE_TASK, 'Completed')] }, { status: 202, headers: { location: UPDATE_TASK }, body: undefined });
    const progress: TaskProgress[] = [];
    const result = await pushUpdate(bmc.client, `${images.base}/BIOS_X12-2.0.bin`, { applyTime: 'OnStartUpdateRequest', pollMs: 1, onProgress: (p) => progress.push(p) });
    expect(bmc.posts).toEqual([START_UPDATE]);
    expect(result.task?.state).toBe('Completed');
    expect(progress.map((p) => p.state)).toContain('Verifying');
    expect(progress.at(-1)?.state).toBe('Completed');
  });

  it.each([204, 200])('StartUpdate answered %i without a task: UNSUPPORTED, result unknown, never Completed', async (status) => {
    const bmc = stagedBmc({ [VERIFY_TASK]: [task(VERIFY_TASK, 'Completed')] }, { status, headers: {}, body: undefined });
    const progress: string[] = [];
    const result = pushUpdate(bmc.client, `${images.base}/BMC_X12-1.0.bin`, { applyTime: 'OnStartUpdateRequest', pollMs: 1, onProgress: (p) => progress.push(p.state) });
    await expect(result).rejects.toMatchObject({ code: 'UNSUPPORTED', message: expect.stringContaining('the BMC named no task to follow') });
    expect(bmc.posts).toEqual([START_UPDATE]);
    expect(progress).not.toContain('Completed');
  });

  it('StartUpdate whose answer is lost in transit: the error says the BMC may be applying the image', async () => {
    const lost = new BmcError('TIMEOUT', `POST ${START_UPDATE}: no answer within 10000 ms`);
    const bmc = stagedBmc({ [VERIFY_TASK]: [task(VERIFY_TASK, 'Completed')] }, lost);
    const result = pushUpdate(bmc.client, `${images.base}/BMC_X12-1.0.bin`, { applyTime: 'OnStartUpdateRequest', pollMs: 1 });
    await expect(result).rejects.toMatchObject({ code: 'TIMEOUT', message: expect.stringContaining('the BMC may be applying the image: check its firmware version before updating again') });
  });

  it('a vendor part not named Oem...: refused before the image is downloaded', async () => {
    const bmc = stagedBmc({}, { status: 202, headers: {}, body: undefined });
    const before = images.requests();
    await expect(pushUpdate(bmc.client, `${images.base}/bios.bin`, { oemParts: { 'UpdateFile"; x="': {} } })).rejects.toThrow(/named Oem/);
    expect(images.requests()).toBe(before);
  });
});
