/**
 * Firmware updates through the UpdateService:
 *  - simpleUpdate: the BMC fetches the image itself (`#UpdateService.SimpleUpdate`);
 *  - pushUpdate: we download the image and stream it on to `MultipartHttpPushUri`,
 *    chunk by chunk, so memory stays flat whatever the image size.
 * Both follow the resulting task unless `wait: false`. A push with the `OnStartUpdateRequest` apply
 * time (Supermicro X12 and later, as bmclib's x12 provider and fwupd's redfish-smc plugin do it)
 * has two tasks: the upload's (the BMC verifies and stages the image) is always followed to its
 * end, then `#UpdateService.StartUpdate` applies the staged image and its task is followed as any.
 */
import { Readable } from 'node:stream';
import { request, type Dispatcher } from 'undici';
import { BmcError, abortError } from '../errors.js';
import { ON_START_UPDATE_REQUEST, type OperationApplyTime } from './apply-time.js';
import { checkMs, deadline } from '../deadline.js';
import { transportError } from './http-errors.js';
import { multipartBody, multipartFrame, multipartLength } from './multipart.js';
import type { TaskInfo } from './parse.js';
import { readUpdateService } from './resources.js';
import type { RedfishClient, RedfishReply } from './session.js';
import { TaskLostError, taskLocation, UntracedUpdateError, waitForTask, type TaskProgress } from './task.js';

export type UpdateClient = Pick<RedfishClient, 'get' | 'getReply' | 'post' | 'upload' | 'scrub'>;

export interface UpdateOptions {
  signal?: AbortSignal;
  /** Resource URIs the image applies to (`Targets`). */
  targets?: string[];
  onProgress?: (progress: TaskProgress) => void;
  /** Follow the task to its end. Default true. */
  wait?: boolean;
  /** Deadline of the task. Default one hour. */
  taskTimeoutMs?: number;
  /** Task poll interval. Default 2000. */
  pollMs?: number;
  /** The command that accepts the BMC's new certificate, should it come back with one during the task (waitForTask). */
  trustResetCommand?: string;
}

export interface SimpleUpdateOptions extends UpdateOptions {
  transferProtocol?: string;
}

/** Progress states of a staged push's first task (not `Staged`, which ends a job as applied at the next reboot). */
export const VERIFYING = 'Verifying';
export const VERIFIED = 'Verified';

export interface PushUpdateOptions extends UpdateOptions {
  /**
   * `@Redfish.OperationApplyTime` in UpdateParameters, e.g. Immediate or OnReset;
   * `OnStartUpdateRequest` also posts `#UpdateService.StartUpdate` once the upload's task is done.
   */
  applyTime?: OperationApplyTime;
  /** `Oem` in UpdateParameters (vendor options such as Supermicro's Preserve* flags). */
  oem?: Record<string, unknown>;
  /** JSON parts of their own beside UpdateParameters, by name (`Oem...`; AMI MegaRAC's `OemParameters`). */
  oemParts?: Readonly<Record<string, unknown>>;
  /** Deadline of download plus upload. Default 30 minutes. */
  uploadTimeoutMs?: number;
  /** Dispatcher for the image download (proxy, TLS options); default the global one. */
  dispatcher?: Dispatcher;
  /** File name in the UpdateFile part; default the last segment of the image URL. */
  filename?: string;
  /** Largest image pushed, in bytes; the UpdateService's `MaxImageSizeBytes` lowers it. Default DEFAULT_MAX_IMAGE_BYTES. */
  maxImageBytes?: number;
  /** An image of unknown length (no Content-Length) reports its upload every this many bytes taken. Default UPLOAD_PROGRESS_STEP_BYTES. */
  progressStepBytes?: number;
}

/**
 * An upload of unknown length reports progress by the bytes the BMC's socket took, every 8 MiB:
 * a caller that takes progress for the BMC's sign of life (a firmware job's deadline) must hear
 * it during a long upload too, and a 512 MiB image gives at most 64 reports.
 */
export const UPLOAD_PROGRESS_STEP_BYTES = 8 * 1024 * 1024;

/**
 * The largest image pushed unless told otherwise: BMC and BIOS images are 16 to 64 MiB, a Dell
 * update package a few hundred; an image server without Content-Length, or with an endless body,
 * would otherwise stream into the BMC until the upload's deadline (30 minutes).
 */
export const DEFAULT_MAX_IMAGE_BYTES = 512 * 1024 * 1024;

/** The bound of one push and where it comes from, for the refusal's message. */
interface ImageBound {
  bytes: number;
  source: string;
}

function imageBound(maxImageBytes: number | undefined, service: { path: string; maxImageSizeBytes?: number }): ImageBound {
  const own: ImageBound = maxImageBytes === undefined ? { bytes: DEFAULT_MAX_IMAGE_BYTES, source: 'the default bound' } : { bytes: maxImageBytes, source: 'the configured bound' };
  const bmc = service.maxImageSizeBytes;
  return bmc !== undefined && bmc < own.bytes ? { bytes: bmc, source: `${service.path} MaxImageSizeBytes` } : own;
}

/** An image larger than the push's bound: refused before the upload (by its Content-Length), or the upload aborted as its body passes the bound. */
export class ImageTooLargeError extends BmcError {
  constructor(message: string) {
    super('FORBIDDEN', message);
    this.name = 'ImageTooLargeError';
  }
}

/** `file` as it comes, or ImageTooLargeError (kept in `passed`) once more than `bound.bytes` came. */
async function* bounded(file: AsyncIterable<Uint8Array>, bound: ImageBound, what: string, passed: { error?: ImageTooLargeError }): AsyncGenerator<Uint8Array> {
  let bytes = 0;
  for await (const chunk of file) {
    bytes += chunk.length;
    if (bytes > bound.bytes) {
      passed.error = new ImageTooLargeError(`${what}: the image passed ${bound.bytes} bytes (${bound.source}) without ending; upload aborted`);
      throw passed.error;
    }
    yield chunk;
  }
}

export interface UpdateResult {
  /** Task or task monitor the BMC answered with, if any. */
  taskUri?: string;
  /** The finished task when waited for. */
  task?: TaskInfo;
}

/**
 * An answer (202, 200 or 204) that names no task (no Location, no Task body, no task in its
 * messages): the BMC took the image, but nothing tells whether flashing it worked. iLO 5 answers
 * SimpleUpdate 200 and flashes in the background (its progress only in its Oem state): read as
 * done, a BIOS image would be reported Completed while it is still written, and the power cycle
 * that follows could interrupt it. Reported as a failure with code UNSUPPORTED (this BMC's answer
 * cannot be followed) rather than as a new job state, so the job's state file, metrics and result
 * events keep their shape and no one reads it as done. On an HPE BMC the facade follows iLO's
 * UpdateService Oem.Hpe.State instead (outband/hpe-flash.ts); elsewhere, for a BMC image, it waits
 * for the Manager's FirmwareVersion to change (outband/firmware-outcome.ts).
 */
function untraceable(reply: RedfishReply): UntracedUpdateError {
  return new UntracedUpdateError(`firmware update accepted (HTTP ${reply.status}); the BMC named no task to follow, so its result is unknown: check the firmware version`);
}

async function follow(client: UpdateClient, reply: RedfishReply, options: UpdateOptions): Promise<UpdateResult> {
  const taskUri = taskLocation(reply);
  if (taskUri === undefined) {
    if (options.wait === false) return {};
    throw untraceable(reply);
  }
  if (options.wait === false) return { taskUri };
  const task = await waitForTask(client, taskUri, {
    signal: options.signal,
    pollMs: options.pollMs,
    timeoutMs: options.taskTimeoutMs,
    onProgress: options.onProgress,
    ...(options.trustResetCommand === undefined ? {} : { trustResetCommand: options.trustResetCommand }),
  });
  return { taskUri, task };
}

export async function simpleUpdate(client: UpdateClient, imageUri: string, options: SimpleUpdateOptions = {}): Promise<UpdateResult> {
  if (typeof imageUri !== 'string' || imageUri.trim() === '') throw new BmcError('INVALID_ARGUMENT', 'imageUri must be a non-empty string');
  const { signal } = options;
  const svc = await readUpdateService(client, { signal });
  if (svc.simpleUpdateTarget === undefined) throw new BmcError('UNSUPPORTED', `${svc.path} has no #UpdateService.SimpleUpdate action`);
  const body: Record<string, unknown> = { ImageURI: imageUri };
  if (options.targets !== undefined) body.Targets = options.targets;
  if (options.transferProtocol !== undefined) body.TransferProtocol = options.transferProtocol;
  const reply = await client.post(svc.simpleUpdateTarget, body, { signal });
  return follow(client, reply, options);
}

/** The URL without credentials, query and fragment (a presigned URL's signature), for messages. */
function display(url: URL): string {
  return `${url.protocol}//${url.host}${url.pathname}${url.search === '' ? '' : '?…'}`;
}

function parseImageUrl(imageUrl: string): URL {
  let url: URL;
  try {
    url = new URL(imageUrl);
  } catch {
    throw new BmcError('INVALID_ARGUMENT', 'imageUrl is not a URL');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new BmcError('INVALID_ARGUMENT', `imageUrl must be http or https, got ${url.protocol}`);
  return url;
}

export async function pushUpdate(client: UpdateClient, imageUrl: string, options: PushUpdateOptions = {}): Promise<UpdateResult> {
  const url = parseImageUrl(imageUrl);
  const uploadTimeoutMs = checkMs('uploadTimeoutMs', options.uploadTimeoutMs, 30 * 60_000);
  const progressStep = options.progressStepBytes ?? UPLOAD_PROGRESS_STEP_BYTES;
  if (!(Number.isSafeInteger(progressStep) && progressStep > 0)) throw new BmcError('INVALID_ARGUMENT', `progressStepBytes must be a positive whole number, got ${String(progressStep)}`);
  if (options.maxImageBytes !== undefined && !(Number.isSafeInteger(options.maxImageBytes) && options.maxImageBytes > 0)) {
    throw new BmcError('INVALID_ARGUMENT', `maxImageBytes must be a positive whole number, got ${String(options.maxImageBytes)}`);
  }
  const { signal } = options;
  const svc = await readUpdateService(client, { signal });
  const pushUri = svc.multipartHttpPushUri;
  if (pushUri === undefined) throw new BmcError('UNSUPPORTED', `${svc.path} has no MultipartHttpPushUri`);
  const staged = options.applyTime === ON_START_UPDATE_REQUEST;
  const startUpdate = svc.startUpdateTarget;
  // checked before the upload: a staged image that nothing applies would wait on the BMC for ever
  if (staged && startUpdate === undefined) throw new BmcError('UNSUPPORTED', `${svc.path} has no #UpdateService.StartUpdate action for an image pushed ${ON_START_UPDATE_REQUEST}`);

  const parameters: Record<string, unknown> = { Targets: options.targets ?? [] };
  if (options.applyTime !== undefined) parameters['@Redfish.OperationApplyTime'] = options.applyTime;
  if (options.oem !== undefined) parameters.Oem = options.oem;
  // before the download: a vendor part with a bad name is refused as what it is, not as a transport error
  const frame = multipartFrame(parameters, options.filename ?? url.pathname.split('/').at(-1) ?? '', options.oemParts ? { oemParts: options.oemParts } : {});

  const what = `firmware push ${display(url)} → ${pushUri}`;
  const bound = imageBound(options.maxImageBytes, svc);
  const dl = deadline(uploadTimeoutMs, what, signal);
  let download: Dispatcher.ResponseData | undefined;
  let reply: RedfishReply;
  const passed: { error?: ImageTooLargeError } = {};
  try {
    download = await request(url, { method: 'GET', signal: dl.signal, dispatcher: options.dispatcher });
    if (download.statusCode !== 200) {
      await download.body.dump().catch(() => undefined);
      throw new BmcError('HTTP', `image download ${display(url)}: HTTP ${download.statusCode}`, { httpStatus: download.statusCode });
    }
    const header = download.headers['content-length'];
    const length = typeof header === 'string' && /^\d+$/.test(header) ? Number(header) : undefined;
    if (length !== undefined && length > bound.bytes) {
      throw new ImageTooLargeError(`${what}: the image is ${length} bytes (Content-Length), over ${bound.bytes} (${bound.source}); nothing uploaded`);
    }
    let sent = 0;
    let reported = -1;
    let nextStep = progressStep;
    const onChunk = (bytes: number): void => {
      sent += bytes;
      if (options.onProgress === undefined) return;
      if (length === undefined) {
        if (sent < nextStep) return;
        nextStep = (Math.floor(sent / progressStep) + 1) * progressStep;
        options.onProgress({ state: 'Uploading', sentBytes: sent });
        return;
      }
      if (length === 0) return;
      const percent = Math.min(100, Math.floor((sent * 100) / length));
      if (percent >= reported + 5 || (percent === 100 && reported !== 100)) {
        reported = percent;
        options.onProgress({ state: 'Uploading', percent });
      }
    };
    const stream = Readable.from(multipartBody(frame, bounded(download.body, bound, what, passed), onChunk), { objectMode: false });
    reply = await client.upload(pushUri, stream, {
      contentType: frame.contentType,
      contentLength: length === undefined ? undefined : multipartLength(frame, length),
      signal: dl.signal,
      timeoutMs: uploadTimeoutMs,
    });
  } catch (err) {
    // the transport reports the upload's broken body as its own failure: the bound is the reason
    if (passed.error !== undefined) throw passed.error;
    if (err instanceof BmcError) throw err;
    if (dl.signal.aborted) throw abortError(dl.signal, what);
    throw transportError(`image download ${display(url)}`, err, []);
  } finally {
    dl.dispose();
    download?.body.destroy();
  }
  // a BMC that answered before the body broke off took a cut image: not followed as an update
  if (passed.error !== undefined) throw passed.error;
  if (!staged || startUpdate === undefined) return follow(client, reply, options);
  await followStaging(client, reply, options);
  const started = await postStartUpdate(client, startUpdate, signal);
  // flashing runs on after StartUpdate's answer: without a task to follow nothing tells how it ends
  if (taskLocation(started) === undefined) throw untraceable(started);
  return follow(client, started, options);
}

/**
 * POST StartUpdate. Its answer lost in transit (a deadline, a dropped connection) does not say the
 * BMC did nothing: it may be flashing. The error says so, so that nobody sends the image again
 * into a flash; the code stays the transport's.
 */
async function postStartUpdate(client: UpdateClient, target: string, signal: AbortSignal | undefined): Promise<RedfishReply> {
  try {
    return await client.post(target, {}, { signal });
  } catch (err) {
    if (err instanceof BmcError && (err.code === 'TIMEOUT' || err.code === 'CLOSED') && !signal?.aborted) {
      throw new BmcError(err.code, `${err.message}; StartUpdate was sent and the BMC may be applying the image: check its firmware version before updating again`, { cause: err });
    }
    throw err;
  }
}

/**
 * The upload's task of a staged push, followed to its end whatever `wait` says (StartUpdate finds
 * nothing to apply before it). Its progress is reported as verification, not as the update's own.
 * An answer without a task (nothing to follow), or a task the BMC dropped before it was seen to
 * end (a BMC that forgets finished tasks at once), goes on to StartUpdate, which refuses if
 * nothing is staged: losing the verify task is not the BMC restarting into a new image.
 */
async function followStaging(client: UpdateClient, reply: RedfishReply, options: UpdateOptions): Promise<void> {
  const taskUri = taskLocation(reply);
  if (taskUri === undefined) return;
  const onProgress = options.onProgress;
  try {
    await waitForTask(client, taskUri, {
      signal: options.signal,
      pollMs: options.pollMs,
      timeoutMs: options.taskTimeoutMs,
      ...(options.trustResetCommand === undefined ? {} : { trustResetCommand: options.trustResetCommand }),
      ...(onProgress ? { onProgress: (p: TaskProgress) => onProgress({ ...p, state: p.state === 'Completed' ? VERIFIED : VERIFYING }) } : {}),
    });
  } catch (err) {
    if (!(err instanceof TaskLostError)) throw err;
  }
}
