/**
 * The UpdateService: firmware inventory, `#UpdateService.SimpleUpdate` (the image is not
 * fetched; its URI decides the outcome) and the multipart push (the image is counted, not
 * kept), both answered 202 with a task monitor in Location. The task runs for the
 * configured duration; on completion the machine records the firmware (bios or bmc, from
 * `Targets` or else from the image name). An image whose name contains "fail" ends the
 * task in Exception. Quirks of real BMCs' tasks are shown here too: a 204 task monitor
 * (bmcweb), Completed with TaskStatus Critical for a failure and the 202 push answer naming
 * its task in a message (Supermicro), a BMC that restarts after a BMC image, task states outside
 * DSP0268 (iDRAC's UserIntervention, a lower-case "failed"). A vendor with
 * `startUpdate` (Supermicro) also takes a push with apply time OnStartUpdateRequest: a verify task
 * stages the image, and `#UpdateService.StartUpdate` starts the update task that flashes it.
 */
import { DecodeError } from '../../errors.js';
import { link, paths, type MachineContext, type Rq } from './context.js';
import { asObject, notFound, readJson, RedfishFault, type Reply } from './http.js';
import { collection, mockup, mockupPick, type Json } from './mockup.js';
import { multipartBoundary, multipartReader, type MultipartPart } from './multipart.js';
import { quirk } from './quirks.js';
import type { SimTask, TaskView } from './tasks.js';

const UPDATE = '/redfish/v1/UpdateService';
const INVENTORY = `${UPDATE}/FirmwareInventory`;
const TASKS = '/redfish/v1/TaskService/Tasks';
export const START_UPDATE = `${UPDATE}/Actions/UpdateService.StartUpdate`;

type Target = 'bios' | 'bmc';

/** redfish-simpleupdate-sftp-tftp-only: what Lenovo XCC's SimpleUpdate allows. */
const XCC_PROTOCOLS = ['SFTP', 'TFTP'];
const XCC_TARGETS = [`${INVENTORY}/BMC-Backup`];

/** The protocols and Targets SimpleUpdate takes: every path firmwareTarget accepts, or XCC's short lists under the quirk. */
function simpleUpdateAllowed(ctx: MachineContext): { protocols: string[]; targets: string[] } {
  if (quirk(ctx, 'redfish-simpleupdate-sftp-tftp-only')) return { protocols: XCC_PROTOCOLS, targets: XCC_TARGETS };
  const p = paths(ctx.vendor);
  return { protocols: ['FTP', 'SFTP', 'HTTP', 'HTTPS', 'SCP', 'TFTP'], targets: [`${INVENTORY}/BMC`, `${INVENTORY}/BIOS`, p.manager, p.system, `${p.system}/Bios`] };
}

export function updateService(ctx: MachineContext): Json {
  const json = mockupPick('UpdateService', ctx.vendor, ['Id', 'Name', 'Status', 'ServiceEnabled', 'FirmwareInventory', 'Actions']);
  if (quirk(ctx, 'redfish-simpleupdate-sftp-tftp-only')) {
    // XCC lists the allowable values on the action itself
    const actions = json.Actions as Json;
    const simple = { ...(actions['#UpdateService.SimpleUpdate'] as Json), 'TransferProtocol@Redfish.AllowableValues': XCC_PROTOCOLS, 'Targets@Redfish.AllowableValues': XCC_TARGETS };
    json.Actions = { ...actions, '#UpdateService.SimpleUpdate': simple };
  }
  if (ctx.vendor.startUpdate) json.Actions = { ...(json.Actions as Json), '#UpdateService.StartUpdate': { target: START_UPDATE } };
  if (quirk(ctx, 'redfish-hpe-update-state')) json.Oem = { Hpe: hpeFlashOem(ctx) };
  // redfish-no-multipart-push: an UpdateService before v1_6_0 names only the deprecated HttpPushUri
  if (quirk(ctx, 'redfish-no-multipart-push')) return { ...json, '@odata.type': '#UpdateService.v1_5_0.UpdateService', HttpPushUri: UPDATE };
  return { ...json, MultipartHttpPushUri: ctx.vendor.multipartPushUri };
}

export function simpleUpdateActionInfo(ctx: MachineContext): Json {
  const json = mockup('UpdateService/SimpleUpdateActionInfo', ctx.vendor);
  const allowed = simpleUpdateAllowed(ctx);
  const parameters = (json.Parameters as Json[]).map((x) => (x.Name === 'TransferProtocol' ? { ...x, AllowableValues: allowed.protocols } : x));
  const targets = { Name: 'Targets', Required: false, DataType: 'StringArray', AllowableValues: allowed.targets };
  json.Parameters = [...parameters, targets];
  return json;
}

/**
 * redfish-simpleupdate-sftp-tftp-only: XCC's 400 for a protocol it does not fetch with, or a
 * Targets value it does not list.
 */
function checkXccSimpleUpdate(ctx: MachineContext, protocol: string, targets: unknown): void {
  if (!quirk(ctx, 'redfish-simpleupdate-sftp-tftp-only')) return;
  if (!XCC_PROTOCOLS.includes(protocol)) {
    throw new RedfishFault(400, 'ActionParameterNotSupported', `The parameter TransferProtocol with the value ${protocol} is not supported by the action SimpleUpdate.`, [protocol, 'SimpleUpdate']);
  }
  if (targets === undefined) return;
  const listed = Array.isArray(targets) && targets.every((t) => typeof t === 'string' && XCC_TARGETS.includes(t));
  if (!listed) throw new RedfishFault(400, 'PropertyValueNotInList', `The value ${JSON.stringify(targets)} for the property Targets is not in the list of acceptable values.`, [JSON.stringify(targets), 'Targets']);
}

export function firmwareInventory(ctx: MachineContext): Json {
  return collection('UpdateService/FirmwareInventory', ctx.vendor, INVENTORY, [`${INVENTORY}/BMC`, `${INVENTORY}/BIOS`]);
}

export function firmware(ctx: MachineContext, id: string): Json | undefined {
  if (id !== 'BMC' && id !== 'BIOS') return undefined;
  const { state } = ctx.machine;
  const p = paths(ctx.vendor);
  const json = mockupPick(`UpdateService/FirmwareInventory/${id}`, ctx.vendor, ['Id', 'Name', 'Status', 'Updateable']);
  return {
    ...json,
    Name: `${state.manufacturer} ${id} firmware`,
    Manufacturer: state.manufacturer,
    Version: id === 'BMC' ? state.bmcVersion : state.biosVersion,
    RelatedItem: [link(id === 'BMC' ? p.manager : p.system)],
  };
}

export function taskService(ctx: MachineContext): Json {
  const json = mockupPick('TaskService', ctx.vendor, ['Id', 'Name', 'CompletedTaskOverWritePolicy', 'Status', 'ServiceEnabled', 'Tasks']);
  return { ...json, DateTime: new Date().toISOString() };
}

export function tasks(ctx: MachineContext): Json {
  return collection('TaskService/Tasks', ctx.vendor, TASKS, ctx.tasks.list().map((t) => `${TASKS}/${t.id}`));
}

const taskName = (target: Target): string => `${target.toUpperCase()} firmware update`;
/** The task of a staged push, as Supermicro names it ("BMC Verify", "BIOS Verify": bmclib's x12 provider). */
const verifyTaskName = (target: Target): string => `${target.toUpperCase()} Verify`;

/** redfish-bmc-reboot-after-update: a good BMC image's task, which reads Running until the BMC restarts and forgets it. */
const endsInReboot = (ctx: MachineContext, t: SimTask): boolean => quirk(ctx, 'redfish-bmc-reboot-after-update') && t.name === taskName('bmc') && !t.fails;

/** How often the host has booted (power-on or restart, over Redfish or IPMI). */
const hostBoots = (ctx: MachineContext): number => ctx.machine.state.lastBoot?.count ?? 0;

/** redfish-job-scheduled-until-reset: a good BIOS image's task, held Scheduled until the host boots again (iDRAC). */
const waitsForHostReset = (ctx: MachineContext, t: SimTask): boolean =>
  quirk(ctx, 'redfish-job-scheduled-until-reset') && t.name === taskName('bios') && !t.fails && hostBoots(ctx) === t.hostBootsAtStart;

/** The task's state as the BMC shows it, quirks included. */
function shownView(ctx: MachineContext, t: SimTask): TaskView & { scheduled?: true } {
  const view = ctx.tasks.view(t);
  if (view.state !== 'Running' && endsInReboot(ctx, t)) return { state: 'Running', percent: 99 };
  if (view.state === 'Completed' && waitsForHostReset(ctx, t)) return { state: 'Running', percent: 100, scheduled: true };
  return view;
}

/** redfish-task-state-nonstandard: the TaskState an ended task shows instead of DSP0268's (iDRAC's UserIntervention, a lower-case "failed"). */
const NONSTANDARD_END: Partial<Record<TaskView['state'], string>> = { Completed: 'UserIntervention', Exception: 'failed' };

/** The TaskState shown for `view`, quirks included. */
function shownState(ctx: MachineContext, view: TaskView): string {
  const failed = view.state === 'Exception';
  // redfish-task-completed-critical: Supermicro X12 ends a failure Completed, its TaskStatus says Critical
  if (failed && quirk(ctx, 'redfish-task-completed-critical')) return 'Completed';
  if (quirk(ctx, 'redfish-task-state-nonstandard')) return NONSTANDARD_END[view.state] ?? view.state;
  return view.state;
}

/** iDRAC's JCP001, the message of a job scheduled for the next reboot. */
const SCHEDULED_MESSAGE = { MessageId: 'IDRAC.2.8.JCP001', Message: 'Task successfully scheduled.', Severity: 'OK' };

/** Oem.Dell of an iDRAC job under redfish-job-scheduled-until-reset: its JobState. */
function dellJobOem(view: TaskView & { scheduled?: true }): Json {
  const jobState = view.scheduled ? 'Scheduled' : view.state === 'Exception' ? 'Failed' : view.state;
  return { Dell: { JobState: jobState, JobType: 'FirmwareUpdate', ...(view.scheduled ? { MessageId: 'JCP001', Message: SCHEDULED_MESSAGE.Message } : {}) } };
}

export function task(ctx: MachineContext, t: SimTask): Json {
  const view = shownView(ctx, t);
  const json = mockupPick('TaskService/Tasks/545', ctx.vendor, ['Id', 'Name']);
  const failed = view.state === 'Exception';
  const messages = failed ? [...t.messages, `Update failed: the image was rejected`] : t.messages;
  return {
    ...json,
    Id: t.id,
    Name: t.name,
    TaskState: shownState(ctx, view),
    TaskStatus: failed ? 'Critical' : 'OK',
    PercentComplete: view.percent,
    StartTime: new Date(t.startedAt).toISOString(),
    ...(view.endedAt === undefined ? {} : { EndTime: new Date(view.endedAt).toISOString() }),
    TaskMonitor: `${TASKS}/${t.id}/Monitor`,
    Messages: view.scheduled ? [SCHEDULED_MESSAGE] : messages.map((m) => ({ MessageId: view.state === 'Exception' ? 'Base.1.8.GeneralError' : 'Base.1.8.Success', Message: m, Severity: 'OK' })),
    ...(quirk(ctx, 'redfish-job-scheduled-until-reset') ? { Oem: dellJobOem(view) } : {}),
    '@odata.id': `${TASKS}/${t.id}`,
  };
}

/**
 * GET of a task monitor: 202 with the Task while it runs, then 200 with the finished Task; under
 * redfish-task-monitor-204 (bmcweb) 204 with no body once, then 404.
 */
export function taskMonitor(ctx: MachineContext, t: SimTask): Reply {
  const body = task(ctx, t);
  if (body.TaskState === 'Running') return { status: 202, body, headers: { Location: `${TASKS}/${t.id}/Monitor`, 'Retry-After': '1' } };
  if (!quirk(ctx, 'redfish-task-monitor-204')) return { status: 200, body };
  if (t.monitorEnded === true) return notFound();
  t.monitorEnded = true;
  return { status: 204 };
}

/** bios or bmc from `Targets` (firmware inventory, manager or system paths), else from the image name. */
function firmwareTarget(ctx: MachineContext, targets: unknown, imageName: string): Target {
  const p = paths(ctx.vendor);
  // an empty list leaves the choice to the service (DSP2062), as no list does: the image's name decides
  if (targets !== undefined && !(Array.isArray(targets) && targets.length === 0)) {
    if (!Array.isArray(targets) || targets.length !== 1 || typeof targets[0] !== 'string') {
      throw new RedfishFault(400, 'ActionParameterValueNotInList', 'Targets must list exactly one firmware inventory path', ['Targets']);
    }
    const t = targets[0].replace(/\/$/, '');
    if (t === `${INVENTORY}/BMC` || t === `${INVENTORY}/BMC-Backup` || t === p.manager) return 'bmc';
    // Supermicro names the BIOS by the System's Bios resource
    if (t === `${INVENTORY}/BIOS` || t === p.system || t === `${p.system}/Bios`) return 'bios';
    throw new RedfishFault(400, 'ActionParameterValueNotInList', `The value ${t} for the parameter Targets is not in the list of acceptable values.`, [t, 'Targets']);
  }
  if (/bmc|ipmi|redfish|idrac/i.test(imageName)) return 'bmc';
  if (/bios|uefi/i.test(imageName)) return 'bios';
  throw new RedfishFault(400, 'ActionParameterMissing', `Targets is missing and the image name ${imageName} names neither BIOS nor BMC.`, ['SimpleUpdate', 'Targets']);
}

/** The image's file name: the last segment of its URL's path. */
const imageNameOf = (uri: string): string => uri.split(/[/?#]/).filter((s) => s !== '').at(-1) ?? uri;

/** The version an image's name carries (bmc-1.80.3.bin: 1.80.3), if any. */
export function versionInImageName(uri: string): string | undefined {
  return /\d+(?:\.\d+)+/.exec(imageNameOf(uri))?.[0];
}

/**
 * redfish-bmc-reboot-after-update: the BMC runs its new image (the version its name carries; none
 * leaves the version as it was), forgets its tasks and sessions, and answers 503 for a while; under
 * redfish-certificate-renewed-after-update it presents another certificate from then on.
 */
function rebootIntoImage(ctx: MachineContext, uri: string): void {
  const version = versionInImageName(uri);
  if (version !== undefined) ctx.machine.state.bmcVersion = version;
  ctx.tasks.forget();
  ctx.staged = undefined;
  ctx.hpeFlash = undefined;
  for (const s of ctx.sessions.list()) ctx.sessions.delete(s.id);
  ctx.quirkState.rebootedAt = Date.now();
  if (quirk(ctx, 'redfish-certificate-renewed-after-update')) ctx.quirkState.certificateRenewed = true;
}

/**
 * redfish-job-scheduled-until-reset, redfish-task-state-nonstandard: the staged image is applied
 * (recorded) when the host boots next.
 */
function recordAtNextBoot(ctx: MachineContext, target: Target, uri: string): void {
  const onChange = (e: { kind: string }): void => {
    if (e.kind !== 'booted') return;
    ctx.machine.off('change', onChange);
    ctx.machine.recordFirmware(target, uri);
  };
  ctx.machine.on('change', onChange);
}

/** A firmware task for `image` (one whose name says "fail" fails), as long as the machine's firmwareTaskMs fault says, if set. */
function startFirmwareTask(ctx: MachineContext, name: string, image: string, messages: string[], onDone: () => void): SimTask {
  return ctx.tasks.start(name, messages, /fail/i.test(image), onDone, ctx.machine.state.faults.firmwareTaskMs ?? undefined);
}

/** 202 with the started task and its monitor in Location. */
const taskStarted = (ctx: MachineContext, t: SimTask): Reply => ({ status: 202, body: task(ctx, t), headers: { Location: `${TASKS}/${t.id}/Monitor` } });

function startUpdate(rq: Rq, target: Target, uri: string, messages: string[]): Reply {
  const { ctx } = rq;
  const done = (): void => {
    if (target === 'bios' && quirk(ctx, 'redfish-job-scheduled-until-reset')) return recordAtNextBoot(ctx, target, uri);
    if (quirk(ctx, 'redfish-task-state-nonstandard')) return recordAtNextBoot(ctx, target, uri);
    ctx.machine.recordFirmware(target, uri);
    if (target === 'bmc' && quirk(ctx, 'redfish-bmc-reboot-after-update')) rebootIntoImage(ctx, uri);
  };
  if (quirk(ctx, 'redfish-hpe-update-state')) return flashedOnIlo(ctx, target, uri, messages);
  if (quirk(ctx, 'redfish-update-no-task')) return flashedUntraced(ctx, target, uri, messages);
  const t = startFirmwareTask(ctx, taskName(target), uri, messages, done);
  t.hostBootsAtStart = hostBoots(ctx);
  return taskStarted(ctx, t);
}

/**
 * redfish-update-no-task: iLO 5's 200 with Base.Success in an "error" object and no task; the image
 * is flashed as long as a task would run (a failing one changes nothing), a BMC image then restarts
 * the BMC into its version.
 */
function flashedUntraced(ctx: MachineContext, target: Target, uri: string, messages: string[]): Reply {
  startFirmwareTask(ctx, taskName(target), uri, messages, () => {
    ctx.machine.recordFirmware(target, uri);
    if (target === 'bmc') rebootIntoImage(ctx, uri);
  });
  const success = { MessageId: 'Base.1.4.Success' };
  return { status: 200, body: { error: { code: 'iLO.0.10.ExtendedInfo', message: 'See @Message.ExtendedInfo for more information.', '@Message.ExtendedInfo': [success] } } };
}

/** iLO's answer to an update it flashes in the background: Base.Success in an "error" object, no task. */
const ILO_ACCEPTED = { error: { code: 'iLO.0.10.ExtendedInfo', message: 'See @Message.ExtendedInfo for more information.', '@Message.ExtendedInfo': [{ MessageId: 'Base.1.4.Success' }] } };

/**
 * redfish-hpe-update-state: 202 without a task; the flash runs as long as a task would, told in
 * UpdateService Oem.Hpe.State (hpeFlashOem). A BMC image then restarts iLO into its version, which
 * forgets the flash (Idle again).
 */
function flashedOnIlo(ctx: MachineContext, target: Target, uri: string, messages: string[]): Reply {
  ctx.hpeFlash = startFirmwareTask(ctx, taskName(target), uri, messages, () => {
    ctx.machine.recordFirmware(target, uri);
    if (target === 'bmc') rebootIntoImage(ctx, uri);
  });
  return { status: 202, body: ILO_ACCEPTED };
}

/** iLO's MessageId of an image it refused (HPEDevCom/redfishdocs ilo5_msgregs309.md: "the file is not valid"). */
const ILO_INVALID_FILE = 'iLO.2.25.UpdateInvalidFile';

/**
 * redfish-hpe-update-state: UpdateService Oem.Hpe of the flash under way, by the share of its time
 * gone: Idle (not started), Verifying, Updating with FlashProgressPercent (valid only then, as
 * HPE's reference says), then Complete, or Error with a Result for an image that fails; Idle before
 * any flash and after an iLO restart.
 */
function hpeFlashOem(ctx: MachineContext): Json {
  if (ctx.hpeFlash === undefined) return { State: 'Idle' };
  const view = ctx.tasks.view(ctx.hpeFlash);
  if (view.state === 'Completed') return { State: 'Complete' };
  if (view.state === 'Exception') return { State: 'Error', Result: { MessageId: ILO_INVALID_FILE, MessageArgs: [] } };
  if (view.percent < 10) return { State: 'Idle' };
  if (view.percent < 30) return { State: 'Verifying' };
  return { State: 'Updating', FlashProgressPercent: Math.floor(((view.percent - 30) * 100) / 70) };
}

/**
 * A push with apply time OnStartUpdateRequest: a verify task whose good end stages the image for
 * StartUpdate; nothing is flashed yet. A later staged push replaces an earlier one.
 */
function stageUpdate(rq: Rq, target: Target, image: string, messages: string[]): Reply {
  const { ctx } = rq;
  if (!ctx.vendor.startUpdate) {
    throw new RedfishFault(400, 'PropertyValueNotInList', 'The value OnStartUpdateRequest for the property @Redfish.OperationApplyTime is not in the list of acceptable values.', ['OnStartUpdateRequest', '@Redfish.OperationApplyTime']);
  }
  // staged by the verify task's own end (startStagedUpdate reads it), not by a completion callback
  const t = startFirmwareTask(ctx, verifyTaskName(target), image, messages, () => undefined);
  ctx.staged = { target, image, verifyTask: t };
  return taskStarted(ctx, t);
}

/** POST `#UpdateService.StartUpdate`: applies the staged image through the update task, or 400 with nothing staged. */
export function startStagedUpdate(rq: Rq): Reply {
  const { ctx } = rq;
  if (!ctx.vendor.startUpdate) return notFound();
  rq.req.resume();
  // staged once its verify task reads Completed, by the same clock a client's poll of that task sees
  const staged = ctx.staged;
  if (staged === undefined || ctx.tasks.view(staged.verifyTask).state !== 'Completed') throw new RedfishFault(400, 'GeneralError', 'There is no verified firmware image to update.');
  ctx.staged = undefined;
  const started = startUpdate(rq, staged.target, staged.image, [`Updating ${staged.target.toUpperCase()} with ${imageNameOf(staged.image)}`]);
  return smcAcceptedOr(rq, started);
}

/** The reply of a started task, under redfish-smc-upload-accepted Supermicro's 202 that names it only in a message. */
function smcAcceptedOr(rq: Rq, started: Reply): Reply {
  if (!quirk(rq.ctx, 'redfish-smc-upload-accepted')) return started;
  return smcAccepted(String((started.body as Json)['@odata.id']));
}

/** redfish-smc-upload-accepted: Supermicro's 202 to a push, naming the task only in a message. */
function smcAccepted(t: string): Reply {
  const info = { MessageId: 'SMC.1.0.OemSimpleupdateAcceptedMessage', Message: 'The update request has been accepted.', MessageArgs: [t], Severity: 'OK' };
  return { status: 202, body: { Accepted: { code: 'Base.v1_4_0.Accepted', Message: 'Successfully Accepted Request. Please see the location header and ExtendedInfo for more information.', '@Message.ExtendedInfo': [info] } } };
}

export async function simpleUpdate(rq: Rq): Promise<Reply> {
  const body = asObject(await readJson(rq.req), 'request body');
  const uri = body.ImageURI;
  if (typeof uri !== 'string' || uri === '') {
    throw new RedfishFault(400, 'ActionParameterMissing', 'The action SimpleUpdate requires the parameter ImageURI to be present in the request body.', ['SimpleUpdate', 'ImageURI']);
  }
  const protocol = body.TransferProtocol;
  if (protocol !== undefined && !['HTTP', 'HTTPS', 'FTP', 'SFTP', 'SCP', 'TFTP'].includes(String(protocol))) {
    throw new RedfishFault(400, 'ActionParameterValueNotInList', `The value ${String(protocol)} for the parameter TransferProtocol is not in the list of acceptable values.`, [String(protocol), 'TransferProtocol']);
  }
  if (protocol === undefined && !/^[a-z][a-z0-9+.-]*:\/\//i.test(uri)) {
    throw new RedfishFault(400, 'ActionParameterMissing', 'ImageURI has no scheme and TransferProtocol is missing.', ['SimpleUpdate', 'TransferProtocol']);
  }
  if (quirk(rq.ctx, 'redfish-simpleupdate-targets-refused') && body.Targets !== undefined) {
    throw new RedfishFault(400, 'ActionParameterNotSupported', 'The parameter Targets is not supported by the action SimpleUpdate.', ['Targets', 'SimpleUpdate']);
  }
  checkXccSimpleUpdate(rq.ctx, protocol === undefined ? (/^([a-z][a-z0-9+.-]*):/i.exec(uri)?.[1] ?? '').toUpperCase() : String(protocol), body.Targets);
  const target = firmwareTarget(rq.ctx, body.Targets, imageNameOf(uri));
  return startUpdate(rq, target, uri, [`Fetching ${uri}`]);
}

/** redfish-ami-oem-parameters: MegaRAC's 400 for a push without OemParameters.ImageType, or with an apply time. */
function checkAmiPush(parameters: Record<string, unknown>, oemText: string | undefined): void {
  if (parameters['@Redfish.OperationApplyTime'] !== undefined) {
    throw new RedfishFault(400, 'PropertyUnknown', 'The property @Redfish.OperationApplyTime is not in the list of valid properties for the resource.', ['@Redfish.OperationApplyTime']);
  }
  let imageType: unknown;
  try {
    imageType = oemText === undefined ? undefined : (JSON.parse(oemText) as Record<string, unknown>).ImageType;
  } catch {
    imageType = undefined;
  }
  if (imageType !== 'BIOS' && imageType !== 'BMC') {
    throw new RedfishFault(400, 'ActionParameterMissing', 'The action MultipartHttpPushUri requires the parameter OemParameters.ImageType (BIOS or BMC).', ['MultipartHttpPushUri', 'OemParameters']);
  }
}

/** POST to MultipartHttpPushUri: `UpdateParameters` (JSON, optional), AMI's `OemParameters` and one file part. */
export async function multipartPush(rq: Rq): Promise<Reply> {
  if (quirk(rq.ctx, 'redfish-no-multipart-push')) {
    rq.req.resume();
    return notFound();
  }
  const boundary = multipartBoundary(rq.req.headers['content-type']);
  if (boundary === undefined) {
    rq.req.resume();
    throw new RedfishFault(415, 'UnsupportedMediaType', 'MultipartHttpPushUri takes multipart/form-data with a boundary.', [String(rq.req.headers['content-type'])]);
  }
  const reader = multipartReader(boundary, (part) => (part.name === 'UpdateParameters' || part.name === 'OemParameters') && part.filename === undefined);
  let failure: DecodeError | undefined;
  const guard = (fn: () => void): void => {
    try {
      fn();
    } catch (err) {
      if (!(err instanceof DecodeError)) throw err;
      failure = err;
    }
  };
  let parts: MultipartPart[] = [];
  // Read to the end even after a failure: leaving the loop early would destroy the socket.
  for await (const chunk of rq.req as AsyncIterable<Buffer>) if (failure === undefined) guard(() => reader.write(chunk));
  if (failure === undefined) guard(() => (parts = reader.end()));
  if (failure !== undefined) throw new RedfishFault(400, 'GeneralError', `malformed multipart body: ${failure.message}`);
  const file = parts.find((p) => p.filename !== undefined);
  if (file === undefined) {
    throw new RedfishFault(400, 'ActionParameterMissing', 'The multipart push has no file part (UpdateFile).', ['MultipartHttpPushUri', 'UpdateFile']);
  }
  rq.counters.uploadedBytes += file.bytes;
  let parameters: Record<string, unknown> = {};
  const text = parts.find((p) => p.name === 'UpdateParameters')?.text;
  if (text !== undefined) {
    try {
      parameters = asObject(JSON.parse(text) as unknown, 'UpdateParameters');
    } catch (err) {
      if (err instanceof RedfishFault) throw err;
      throw new RedfishFault(400, 'MalformedJSON', 'UpdateParameters is not valid JSON.');
    }
  }
  rq.counters.updateParameters[rq.ctx.index] = parameters;
  if (quirk(rq.ctx, 'redfish-ami-oem-parameters')) checkAmiPush(parameters, parts.find((p) => p.name === 'OemParameters')?.text);
  const filename = file.filename ?? 'image';
  const target = firmwareTarget(rq.ctx, parameters.Targets, filename);
  const messages = [`Received ${file.bytes} bytes of ${filename}`];
  const staged = parameters['@Redfish.OperationApplyTime'] === 'OnStartUpdateRequest';
  return smcAcceptedOr(rq, staged ? stageUpdate(rq, target, filename, messages) : startUpdate(rq, target, filename, messages));
}
