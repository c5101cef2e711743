/**
 * Machine actions on the first ComputerSystem (or `systemPath`): reset, one-time or
 * persistent boot override, identify LED.
 */
import { beforeActing, BmcError, PartlyActedError } from '../errors.js';
import { checkMs, deadline, sleep } from '../deadline.js';
import type { Logger } from '../log.js';
import { redfishMessagesOf, type RedfishMessage } from './http-errors.js';
import { checkApplied, isMessage, NotAppliedError } from './patch-answer.js';
import { bootOrderValue, confirmApplied, ifMatchOf, ledValues, sameValue, type SentValue } from './patch-readback.js';
import { parseBootOption, parseChassis, parseSystem, type BootOptionInfo, type ChassisInfo, type ExpandSupport, type SystemInfo } from './parse.js';
import { readCache } from './read-cache.js';
import { firstSystemPath, readActionInfoAllowable, readSystem } from './resources.js';
import type { PatchOptions, RedfishClient, RedfishReply } from './session.js';

export type ResetType = 'On' | 'ForceOff' | 'GracefulShutdown' | 'ForceRestart' | 'PowerCycle';
export type BootOverrideTarget = 'Pxe' | 'Hdd' | 'BiosSetup';

export type ActionClient = Pick<RedfishClient, 'get' | 'getReply' | 'post' | 'patch' | 'scrub'>;

export interface ActionOptions {
  signal?: AbortSignal;
  /** Skips the discovery of the first system (service root → Systems → first member). */
  systemPath?: string;
  /** where a choice among several Systems, and a write left out or sent again, is logged */
  logger?: Logger;
}

export interface ResetOptions extends ActionOptions {
  /** PowerCycle fallback (neither PowerCycle nor ForceRestart offered): how long to wait for PowerState Off after ForceOff before the On. Default 30 000. */
  offTimeoutMs?: number;
  /** PowerCycle fallback: PowerState poll interval. Default 1000. */
  pollMs?: number;
  /**
   * When the caller gives up (Date.now() scale; its deadline): the PowerCycle fallback's wait for
   * Off ends ON_RESERVE_MS before it, so that the On still goes out within the caller's time.
   */
  deadlineAt?: number;
}

/** What a cycle's On is given before the caller's deadline: one Redfish request's default deadline. */
export const ON_RESERVE_MS = 10_000;
/** The shortest wait for Off before the On, however little time is left. */
const MIN_OFF_WAIT_MS = 1000;

/** The PowerCycle fallback's wait for Off: `offTimeoutMs`, shortened to leave the On its reserve before `deadlineAt`. */
export function offWaitMs(offTimeoutMs: number, deadlineAt: number | undefined, now = Date.now()): number {
  if (deadlineAt === undefined) return offTimeoutMs;
  return Math.max(MIN_OFF_WAIT_MS, Math.min(offTimeoutMs, Math.floor(deadlineAt - now - ON_RESERVE_MS)));
}

export interface BootOverrideOptions extends ActionOptions {
  /** Continuous instead of Once. Default false. */
  persistent?: boolean;
  /** UEFI (true) or Legacy (false); sent only when the system exposes BootSourceOverrideMode. */
  uefi?: boolean;
}

const RESET_TYPES: readonly ResetType[] = ['On', 'ForceOff', 'GracefulShutdown', 'ForceRestart', 'PowerCycle'];
const BOOT_TARGETS: readonly BootOverrideTarget[] = ['Pxe', 'Hdd', 'BiosSetup'];

async function systemPath(client: ActionClient, options: ActionOptions): Promise<string> {
  return options.systemPath ?? firstSystemPath(client, options);
}

/**
 * A resource read before it is PATCHed, with the If-Match to send: its ETag header, else its
 * `@odata.etag`, else `*` (BMCs that require If-Match accept `*`, go-hal sends it on every PATCH;
 * Lenovo XCC answered a PATCH without If-Match 412, fwupd/fwupd#6347).
 */
async function readForPatch(client: ActionClient, path: string, signal: AbortSignal | undefined): Promise<{ body: unknown; ifMatch: string }> {
  const res = await client.getReply(path, { signal });
  return { body: res.body, ifMatch: ifMatchOf(res) };
}

/** Whether a PowerState counts as on or off; the transitional states count as where they lead, as ironic's redfish driver maps them. */
function powerOf(state: string | undefined): 'on' | 'off' | undefined {
  if (state === 'On' || state === 'PoweringOn') return 'on';
  if (state === 'Off' || state === 'PoweringOff') return 'off';
  return undefined;
}

/** The power each reset type leaves a machine in when it is already there: nothing to send then. */
const STATE_REACHED: Partial<Record<ResetType, 'on' | 'off'>> = { On: 'on', ForceOff: 'off', GracefulShutdown: 'off' };
const RESTARTS: readonly ResetType[] = ['ForceRestart', 'PowerCycle'];

/** ResetType values the System accepts: its AllowableValues, else its ActionInfo's; undefined when it names none. */
async function resetAllowable(client: ActionClient, system: SystemInfo, signal: AbortSignal | undefined): Promise<string[] | undefined> {
  if (system.reset?.allowable !== undefined || system.reset?.actionInfo === undefined) return system.reset?.allowable;
  return readActionInfoAllowable(client, system.reset.actionInfo, 'ResetType', { signal }).catch(() => undefined);
}

/**
 * `#ComputerSystem.Reset` of the System, by its PowerState (read once, in the GET that finds the
 * action). Real BMCs refuse a reset that changes nothing: iDRAC answers On on a machine that is
 * on with 409 IDRAC.1.6.PSU501 "Server is already powered ON" (dellemc-openmanage-ansible-modules#132),
 * iLO a restart of a machine that is off with 400 InvalidOperationForSystemState. So, as bmclib's
 * redfishwrapper and ironic's redfish power driver do: On, ForceOff and GracefulShutdown send
 * nothing when the machine is already there, and a restart of a machine that is off powers it on.
 */
export async function reset(client: ActionClient, type: ResetType, options: ResetOptions = {}): Promise<void> {
  if (!RESET_TYPES.includes(type)) throw new BmcError('INVALID_ARGUMENT', `unknown reset type ${String(type)}`);
  const offTimeoutMs = checkMs('offTimeoutMs', options.offTimeoutMs, 30_000);
  const pollMs = checkMs('pollMs', options.pollMs, 1000, 60_000);
  const { signal } = options;
  // what is read before the reset is posted fails as not sent: the BMC did nothing yet
  const path = await beforeActing(systemPath(client, options));
  const system = await beforeActing(readSystem(client, path, { signal }));
  const target = system.reset?.target;
  if (target === undefined) throw new BmcError('UNSUPPORTED', `${path} has no #ComputerSystem.Reset action`);
  const power = powerOf(system.powerState);
  if (power !== undefined && STATE_REACHED[type] === power) {
    options.logger?.debug({ path, resetType: type, powerState: system.powerState }, 'redfish reset not sent: the system is already in that power state');
    return;
  }
  const allowable = await beforeActing(resetAllowable(client, system, signal));
  const allowed = (t: string): boolean => allowable === undefined || allowable.includes(t);
  const post = async (t: string): Promise<void> => {
    await client.post(target, { ResetType: t }, { signal });
  };
  const on = allowed('On') ? 'On' : allowed('ForceOn') ? 'ForceOn' : undefined;
  // a restart of a system that is off: BMCs refuse it or do nothing; power on is what was meant
  if (RESTARTS.includes(type) && power === 'off' && on !== undefined) return post(on);
  if (allowed(type)) return post(type);
  if (type === 'On' && on !== undefined) return post(on);
  // a cycle without PowerCycle (iLO, XCC, MegaRAC list none): ForceRestart, as go-hal sends for
  // every cycle; ForceOff and On only where neither is offered
  if (type === 'PowerCycle' && allowed('ForceRestart')) return post('ForceRestart');
  if (type === 'PowerCycle' && on !== undefined && allowed('ForceOff')) {
    if (power !== 'off') {
      await post('ForceOff');
      // within the caller's deadline, with room left for the On
      const waitMs = offWaitMs(offTimeoutMs, options.deadlineAt);
      try {
        await waitForPowerState(client, path, 'Off', { ...(signal ? { signal } : {}), timeoutMs: waitMs, pollMs });
      } catch (err) {
        // the machine was switched off by this command: it is not left off because its PowerState
        // lagged; only the caller's own end (its deadline, a shutdown) stops the On, and says so
        if (signal?.aborted) throw err instanceof BmcError ? new PartlyActedError(err, `power cycle of ${path}: ForceOff was sent, the ${on} was not (the caller's end came first) and the machine may be left off`) : err;
        options.logger?.warn({ path, offTimeoutMs: waitMs, err }, 'redfish power cycle: the system did not read Off after ForceOff in time; sending On anyway');
      }
      try {
        await post(on);
      } catch (err) {
        // the ForceOff took effect: however the On was refused, the cycle happened in part
        throw err instanceof BmcError ? new PartlyActedError(err, `power cycle of ${path}: ForceOff was sent, the ${on} failed and the machine may be left off`) : err;
      }
      return;
    }
    return post(on);
  }
  throw new BmcError('UNSUPPORTED', `${path}: ResetType ${type} not allowed (allowed: ${(allowable ?? []).join(', ')})`);
}

/** Polls the system until PowerState equals `state`; read failures in between are tolerated until the deadline. */
export async function waitForPowerState(
  client: ActionClient,
  path: string,
  state: string,
  options: { signal?: AbortSignal; timeoutMs: number; pollMs: number },
): Promise<void> {
  const what = `waiting for PowerState ${state} of ${path}`;
  const dl = deadline(options.timeoutMs, what, options.signal);
  try {
    for (;;) {
      try {
        if ((await readSystem(client, path, { signal: dl.signal })).powerState === state) return;
      } catch (err) {
        if (dl.signal.aborted) break;
        if (!(err instanceof BmcError) || ['ABORTED', 'AUTH_FAILED', 'CLOSED'].includes(err.code)) throw err;
      }
      await sleep(options.pollMs, dl.signal, what);
    }
    await sleep(0, dl.signal, what); // throws the deadline's error
  } finally {
    dl.dispose();
  }
}

const BOOT_MODE = 'BootSourceOverrideMode';
/** Base registry messages a BMC refuses a property with (their prefix, e.g. `Base.1.8.`, varies). */
const PROPERTY_REFUSALS = ['PropertyNotWritable', 'PropertyUnknown', 'PropertyValueNotInList', 'ActionParameterNotSupported'];

/** Whether one ExtendedInfo entry refuses `property`: it names it in MessageArgs or RelatedProperties, or a property refusal names it in its text. */
function refusesProperty(m: RedfishMessage, property: string): boolean {
  if ([...m.args, ...m.related].some((a) => a.includes(property))) return true;
  return PROPERTY_REFUSALS.some((id) => m.messageId.endsWith(id)) && m.message.includes(property);
}

/**
 * Whether a refused boot override PATCH is worth sending again without BootSourceOverrideMode: a
 * 400 whose answer names the property, or one from a System whose AllowableValues lack the mode.
 * HPE iLO refuses the whole PATCH because Mode is read-only there (community.general#3509, fixed
 * by #3581; ironcore-dev/metal-operator#608; bmclib retries with Target and Enabled only). A 2xx
 * that applied all but the mode (NotAppliedError naming it) is sent again without it too.
 */
function modeRefused(err: unknown, system: SystemInfo, mode: string): boolean {
  if (err instanceof NotAppliedError) return err.properties.includes(`Boot/${BOOT_MODE}`);
  if (!(err instanceof BmcError) || err.httpStatus !== 400) return false;
  const allowable = system.boot?.overrideModeAllowable;
  if (allowable !== undefined && !allowable.includes(mode)) return true;
  return redfishMessagesOf(err).some((m) => refusesProperty(m, BOOT_MODE));
}

/** How a read-back compares each Boot property sent: BootOrder as an order, the others as they are. */
const bootValue = (name: string, value: unknown): SentValue => (name === 'BootOrder' ? bootOrderValue(value as string[]) : sameValue('Boot', name, value));

/**
 * Boot properties a BMC may take on the System as pending values, applied at the next reset:
 * iDRAC answers a BootOrder PATCH 200 (or 202) and creates a BIOS config job that runs when the
 * host restarts; the System shows the old order until then (dell/iDRAC-Redfish-Scripting#91,
 * #250). Compared on the System right after the PATCH, the order it sent would be refused.
 */
const PENDING_UNTIL_RESET = new Set(['BootOrder']);

/**
 * Where a boot write goes (the System or its settings object), the If-Match to send there, and
 * where the values of PENDING_UNTIL_RESET are read back: `target` itself (the write goes to the
 * settings object already), the settings object the System names (pending values show there), or
 * nowhere (a System that names none shows them only after the reset).
 */
interface PatchTarget {
  path: string;
  etag: string;
  pending: { at: 'target' } | { at: 'settings'; path: string } | { at: 'nowhere' };
}

/** The read-back of a write to the System: pending values on the settings object it names, else none. */
const onSystem = (path: string, etag: string, system: SystemInfo): PatchTarget => ({
  path,
  etag,
  pending: system.settingsObject === undefined ? { at: 'nowhere' } : { at: 'settings', path: system.settingsObject },
});

type WriteOptions = { signal: AbortSignal | undefined; logger: Logger | undefined };

/**
 * Compares `boot` as sent to `target` with what the BMC shows (confirmApplied): the values it
 * applies at once on the resource PATCHed (its ETag then becomes the target's, for a PATCH sent
 * after it without a 412 first), those it may apply at the next reset where `target.pending` says.
 */
async function confirmBoot(client: ActionClient, target: PatchTarget, reply: RedfishReply, boot: Record<string, unknown>, o: WriteOptions): Promise<void> {
  const isPending = (name: string): boolean => target.pending.at !== 'target' && PENDING_UNTIL_RESET.has(name);
  const entries = Object.entries(boot);
  const now = entries.filter(([name]) => !isPending(name)).map(([name, value]) => bootValue(name, value));
  await confirmApplied(client, target.path, reply, now, { ...o, onRead: (ifMatch) => (target.etag = ifMatch) });
  const pending = entries.filter(([name]) => isPending(name)).map(([name, value]) => bootValue(name, value));
  if (pending.length > 0 && target.pending.at === 'settings') await confirmApplied(client, target.path, reply, pending, { ...o, readFrom: target.pending.path });
}

/**
 * PATCH of `{ Boot: boot }` to `target`. A 2xx is read, not only its status: one whose messages say
 * a Boot property sent was not applied (DSP0266's partial PATCH) is NotAppliedError, a refusal; one
 * that does not show the values sent is read back and compared (confirmBoot): a BMC that answered
 * 200 or 204 and kept other values is NotAppliedError too.
 */
async function patchBoot(client: ActionClient, target: PatchTarget, boot: Record<string, unknown>, o: WriteOptions): Promise<void> {
  const options: PatchOptions = { signal: o.signal, etag: target.etag };
  const reply = await client.patch(target.path, { Boot: boot }, options);
  checkApplied(target.path, reply, 'Boot', Object.keys(boot), client.scrub);
  await confirmBoot(client, target, reply, boot, o);
}

/** AMI MegaRAC's refusal of Boot properties on the System: "moved to FutureState URI(…/SD)" (its registry prefix may vary). */
const SETTINGS_OBJECT_ONLY = ['OperationSupportedInFutureStateURI'];

/** Whether the BMC refused Boot on the System because it takes it on the System's settings object only. */
function wantsSettingsObject(err: unknown): boolean {
  return err instanceof BmcError && err.httpStatus === 400 && redfishMessagesOf(err).some((m) => isMessage(m, SETTINGS_OBJECT_ONLY));
}

/**
 * Writes `{ Boot }` of the System at `path` (patchBoot), read with `etag`. AMI MegaRAC "Redfish
 * Server" builds refuse Boot properties there with 400 Ami.1.0.OperationSupportedInFutureStateURI
 * and take them on the System's settings object (`@Redfish.Settings.SettingsObject`, e.g.
 * `/redfish/v1/Systems/Self/SD`) with If-Match (DMTF/Redfish-Tacklebox#111, #144;
 * siderolabs/omni-infra-provider-bare-metal#68): on that refusal, and when the System names one,
 * this write and the ones after it go there, with the settings object's own ETag (else `*`; the
 * client's 412/428 handling applies). Its path goes through the transport, which refuses one of
 * another origin before anything is sent. Without a settings object the refusal stands.
 */
function bootWriter(client: ActionClient, path: string, system: SystemInfo, etag: string, o: WriteOptions): (boot: Record<string, unknown>) => Promise<void> {
  let target: PatchTarget = onSystem(path, etag, system);
  let moved = false;
  const write = (boot: Record<string, unknown>): Promise<void> => patchBoot(client, target, boot, o);
  return async (boot) => {
    try {
      await write(boot);
    } catch (err) {
      const settings = system.settingsObject;
      if (moved || settings === undefined || !wantsSettingsObject(err)) throw err;
      moved = true;
      o.logger?.info({ path, settingsObject: settings }, 'redfish boot properties refused on the System (OperationSupportedInFutureStateURI); writing them to its settings object');
      target = { path: settings, etag: (await readForPatch(client, settings, o.signal)).ifMatch, pending: { at: 'target' } };
      await write(boot);
    }
  };
}

/**
 * PATCH of the System's BootSourceOverride. The mode (UEFI or Legacy) is sent when the System
 * shows BootSourceOverrideMode, since Supermicro boots legacy without it (DMTF/Redfishtool#106);
 * when the BMC refuses it (HPE iLO: read-only), or answers success and leaves it (read back), the
 * PATCH goes once more without it. An answer that applied only part of it (a `Continuous` or a
 * target left unchanged, by its messages or by the read-back of a 204) is a refusal (patchBoot),
 * which the facade answers with IPMI where allowed. A BMC that takes Boot on the
 * System's settings object only (AMI MegaRAC) gets it there (bootWriter).
 */
export async function setBootOverride(client: ActionClient, target: BootOverrideTarget, options: BootOverrideOptions = {}): Promise<void> {
  if (!BOOT_TARGETS.includes(target)) throw new BmcError('INVALID_ARGUMENT', `unknown boot target ${String(target)}`);
  const { signal } = options;
  const path = await systemPath(client, options);
  const { body, ifMatch } = await readForPatch(client, path, signal);
  const system = parseSystem(body);
  const allowable = system.boot?.overrideTargetAllowable;
  if (allowable !== undefined && !allowable.includes(target)) {
    throw new BmcError('UNSUPPORTED', `${path}: boot target ${target} not allowed (allowed: ${allowable.join(', ')})`);
  }
  const boot: Record<string, string> = {
    BootSourceOverrideEnabled: options.persistent === true ? 'Continuous' : 'Once',
    BootSourceOverrideTarget: target,
  };
  const mode = system.boot?.overrideMode !== undefined && options.uefi !== undefined ? (options.uefi ? 'UEFI' : 'Legacy') : undefined;
  const write = bootWriter(client, path, system, ifMatch, { signal, logger: options.logger });
  if (mode === undefined) {
    await write(boot);
    return;
  }
  try {
    await write({ ...boot, [BOOT_MODE]: mode });
  } catch (err) {
    if (!modeRefused(err, system, mode)) throw err;
    options.logger?.info({ path, mode, err: err instanceof Error ? err.message : String(err) }, `redfish boot override refused with ${BOOT_MODE}, sending it again without`);
    // a 400 changed nothing: the ETag read before still holds; after a 2xx read back, the ETag read
    // then is sent (and client.patch reads again on 412, as after a 2xx that applied the rest and
    // moved the ETag)
    await write(boot);
  }
}

/** More boot options than any real System lists; the rest are ignored. */
const MAX_BOOT_OPTIONS = 64;

/** Boot options read at once where the BMC does not inline them: as many as a BMC's client opens connections. */
const BOOT_OPTION_READS_AT_ONCE = 2;

/**
 * The System's BootOptions, each read (members beyond MAX_BOOT_OPTIONS are ignored), with its
 * BootOrder. `system`: the System as the caller just read it (not read again); `expand`: the
 * service root's `$expand` support, with which the collection comes with its members inline in one
 * request (read-cache.ts falls back to reading them where the BMC does not inline them): on an
 * iDRAC8, whose requests take a second or more, the members one by one made this path 15 + N.
 */
export async function readBootOptions(client: ActionClient, options: ActionOptions & { system?: SystemInfo; expand?: ExpandSupport } = {}): Promise<{ path: string; system: SystemInfo; options: BootOptionInfo[] }> {
  const { signal } = options;
  const path = await systemPath(client, options);
  const system = options.system ?? (await readSystem(client, path, { signal }));
  const collectionPath = system.boot?.bootOptions ?? `${path}/BootOptions`;
  const reader = readCache(client);
  const members = (await reader.members(collectionPath, options.expand, { signal })).slice(0, MAX_BOOT_OPTIONS);
  const list: BootOptionInfo[] = new Array<BootOptionInfo>(members.length);
  let next = 0;
  // a failed read ends the others' too: the caller moves on (another protocol, its next try)
  let failed = false;
  const readNext = async (): Promise<void> => {
    try {
      for (let i = next++; i < members.length && !failed; i = next++) list[i] = { path: members[i]!, ...parseBootOption(await reader.get(members[i]!, { signal })) };
    } catch (err) {
      failed = true;
      throw err;
    }
  };
  await Promise.all(Array.from({ length: Math.min(BOOT_OPTION_READS_AT_ONCE, members.length) }, readNext));
  return { path, system, options: list };
}

/**
 * PATCH of the System's persistent `Boot.BootOrder`. `disableOverride` also switches off a
 * pending BootSourceOverride in the same request, so that the order decides the next boot. Read
 * as the override's PATCH is (patchBoot): an order read back otherwise is a refusal.
 */
export async function setBootOrder(client: ActionClient, order: readonly string[], options: ActionOptions & { disableOverride?: boolean } = {}): Promise<void> {
  if (order.length === 0) throw new BmcError('INVALID_ARGUMENT', 'an empty boot order');
  const { signal } = options;
  const path = await systemPath(client, options);
  const { body, ifMatch } = await readForPatch(client, path, signal);
  const system = parseSystem(body);
  const boot: Record<string, unknown> = { BootOrder: [...order] };
  if (options.disableOverride === true) boot.BootSourceOverrideEnabled = 'Disabled';
  await bootWriter(client, path, system, ifMatch, { signal, logger: options.logger })(boot);
}

function ledBody(resource: SystemInfo | ChassisInfo, on: boolean): Record<string, unknown> | undefined {
  if (resource.locationIndicatorActive !== undefined) return { LocationIndicatorActive: on };
  if (resource.indicatorLED !== undefined) return { IndicatorLED: on ? 'Lit' : 'Off' };
  return undefined;
}

/**
 * PATCH of the identify LED `body` to `path`, read as a boot write is (patchBoot): an answer whose
 * messages leave it unapplied, or a read-back that shows it otherwise (Lit and Blinking both count
 * as on), is NotAppliedError, which the facade answers with IPMI where allowed.
 */
async function patchLed(client: ActionClient, path: string, body: Record<string, unknown>, ifMatch: string, options: ActionOptions): Promise<void> {
  const reply = await client.patch(path, body, { signal: options.signal, etag: ifMatch });
  checkApplied(path, reply, '', Object.keys(body), client.scrub);
  await confirmApplied(client, path, reply, ledValues(body), { signal: options.signal, logger: options.logger });
}

/**
 * Identify LED: the system's LocationIndicatorActive, else its IndicatorLED, else the same on its
 * first chassis. If-Match as for the boot PATCH (readForPatch).
 */
export async function setIndicator(client: ActionClient, on: boolean, options: ActionOptions = {}): Promise<void> {
  const { signal } = options;
  const path = await systemPath(client, options);
  const sys = await readForPatch(client, path, signal);
  const system = parseSystem(sys.body);
  const body = ledBody(system, on);
  if (body !== undefined) return patchLed(client, path, body, sys.ifMatch, options);
  const chassisPath = system.chassis[0];
  if (chassisPath !== undefined) {
    const ch = await readForPatch(client, chassisPath, signal);
    const chassisBody = ledBody(parseChassis(ch.body), on);
    if (chassisBody !== undefined) return patchLed(client, chassisPath, chassisBody, ch.ifMatch, options);
  }
  throw new BmcError('UNSUPPORTED', `${path}: neither the system nor its chassis has LocationIndicatorActive or IndicatorLED`);
}
