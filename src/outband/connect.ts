/**
 * The out-of-band facade: `connectOutband()` probes Redfish first, detects the vendor, and
 * returns one Outband that routes each action by the vendor table, falls back to IPMI when
 * Redfish is absent or refuses, and fills from IPMI what Redfish lacks (the policy and the merge
 * are pure functions in report-merge.ts). Nothing is read twice: detection and the report share
 * one read cache. With `readAhead` (report cycles) the report's reads start at connect, the IPMI
 * session and GUID beside the Redfish login, so a BMC costs its longest chain of dependent round
 * trips rather than the sum of them.
 */
import type { Duplex } from 'node:stream';
import { listedVendor, type GuidOrdersByVendor } from '../config/guid-orders.js';
import { BmcError, isBmcError, NotSentError, RedfishAwayError, showsNotActed } from '../errors.js';
import type { CipherChoice } from '../ipmi/cipher.js';
import { guidToUuid, isPlaceholderUuid, type GuidEncoding } from '../ipmi/guid.js';
import type { RetryPolicy } from '../ipmi/exchange.js';
import type { IpmiEvent } from '../ipmi/handshake.js';
import type { Logger } from '../log.js';
import { readBootFlags, writeBootFlags } from '../ipmi/boot.js';
import type { BootOverrideTarget } from '../redfish/actions.js';
import type { RedfishInventory } from '../redfish/inventory.js';
import type { HedgeOutcome } from '../redfish/http.js';
import type { LoginBudget } from '../redfish/login-budget.js';
import type { InventoryLayout } from '../redfish/layout.js';
import type { ReadCache } from '../redfish/read-cache.js';
import type { RedfishClient, RedfishReply } from '../redfish/session.js';
import type { SecondConnectionSwitch } from '../redfish/second-connection.js';
import { ON_START_UPDATE_REQUEST } from '../redfish/apply-time.js';
import { biosAtOrBelow, bootOrderFor, bootOverrideOfIpmi, bootOverrideOfRedfish, ipmiBootFlags } from './boot.js';
import { pushParametersFor, SIMPLE_UPDATE_NAMES_TARGETS } from './firmware-push.js';
import type { GuidMemory } from './guid-memory.js';
import type { HedgeMemory } from './hedge-memory.js';
import { redfishSessionKey, sessionAfterRead, sessionPlan, type RedfishSessionKeeper, type SessionPlan } from './redfish-sessions.js';
import { ipmiOutband, type IpmiOutband } from './ipmi.js';
import type * as RedfishLib from './redfish-side.js';
import { guidMemoryAfterRead, ipmiNeed, mergeReport, redfishReading, type IpmiNeed, type IpmiReading } from './report-merge.js';
import type { BootOptions, BootTarget, FirmwareKind, FirmwareProgress, FirmwareWatch, OperationOptions, Outband, Protocol, RedfishProblem } from './types.js';
import type { BmcTrustGate } from './trust.js';
import { decideUuid, GUID_CONFIRMED_BASES, listedGuidOrder, machineUuid, REDFISH_BASES, UUID_BASIS_LOGGED, type IpmiAloneCheck, type UuidDecision, type UuidRule } from './uuid.js';
import { VENDOR_PROFILES, vendorOfIana, vendorOfManufacturer, type ActionProtocol, type Vendor, type VendorProfile } from './vendors.js';

export type { Protocol } from './types.js';

export interface ConnectOptions {
  host: string;
  user: string;
  password: string;
  protocol?: Protocol;
  ipmiPort?: number;
  redfishPort?: number;
  /** accept self-signed BMC certificates (default true), or verify against `redfishCa` */
  redfishInsecure?: boolean;
  redfishCa?: string;
  /** old BMCs: TLS 1.2 with legacy ciphers, RSA-1024 and SHA-1 certificates (src/redfish/tls.ts); default false */
  redfishLegacyTls?: boolean;
  /** deadline of one Redfish request, retries included; default min(timeoutMs, 10 s). Slow BMCs take seconds per request. */
  redfishRequestTimeoutMs?: number;
  /** deadline of one operation on this BMC */
  timeoutMs?: number;
  uuidRule?: UuidRule;
  ipmiCipherSuite?: CipherChoice;
  /** permit IPMI cipher suite 0 / no authentication (refused by default) */
  ipmiAllowInsecure?: boolean;
  /** override the vendor table's IPMI GUID byte order */
  guidEncoding?: GuidEncoding;
  /**
   * The operator's IPMI GUID byte order per vendor (METAL_BMC_GUID_ENCODING), for the vendor this
   * BMC is detected as; `guidEncoding` goes first. Like it, it confirms a UUID from the GUID alone;
   * beside Redfish it settles only `redfish-ambiguous`, and it is checked against every UUID decided
   * from Redfish (a warning where they differ).
   */
  guidEncodingByVendor?: GuidOrdersByVendor;
  ipmiRetry?: Partial<RetryPolicy>;
  sshPort?: number;
  /** trust on first use for this BMC (trust.ts): pins its certificate (unless a CA verifies it) and SSH host key, proves it over IPMI on first contact; an SSH console is refused without it */
  trust?: BmcTrustGate;
  logger?: Logger;
  /** what the BMC did that the IPMI client worked around (default: a warning in `logger`) */
  onIpmiEvent?: (event: IpmiEvent) => void;
  /** a sign of life of the BMC over either protocol (a Redfish connection's TCP connect and TLS handshake, the certificate probe's, an HTTP response or a piece of one, an IPMI datagram): a report read's deadline gives back what each waited for the event loop (report/loop-clock.ts) */
  onAnswer?: () => void;
  signal?: AbortSignal;
  /**
   * Start the report's reads at connect (report cycles): the IPMI session and GUID beside the
   * Redfish login, the service root with the login, the inventory beside vendor detection, and
   * the IPMI identity when the vendor table wants it. info() then uses what is already read.
   */
  readAhead?: boolean;
  /**
   * Redfish connections to this BMC at once (default 2, with readAhead too). A third would let the
   * Managers collection go out beside Systems and Chassis, but each TLS connection costs the event
   * loop ~1 ms and ~14 KiB while open (bench tls-resume), more than that read is worth: it is
   * off the critical path, which the inventory asks first (src/redfish/inventory.ts).
   */
  redfishConnections?: number;
  /**
   * A Redfish request that waited this long for the busy connection opens the next one (default
   * 1000; 0: each opens as requests come). A BMC that answers sooner is read over one connection.
   */
  redfishOpenConnectionAfterMs?: number;
  /** While on, a Redfish request waiting for the busy connection opens the next at once (redfish/second-connection.ts: a report cycle's, once it has started every BMC). */
  redfishSecondConnection?: SecondConnectionSwitch;
  /**
   * With readAhead: a Redfish GET without an answer after this long is sent once more on the other
   * connection, the first answer taken (redfish/http.ts `RedfishHedge`: only to a BMC that answered
   * another request of the read sooner, one per read, never for a path slow in the BMC's last read too).
   * The report counts the hedges (BmcReport.redfishHedges). Default: none.
   */
  redfishHedgeAfterMs?: number;
  /** With redfishHedgeAfterMs: the paths per BMC slow when last asked, kept between reads (without it, within one read only). */
  redfishHedgeMemory?: HedgeMemory;
  /**
   * With readAhead: the IPMI GUIDs of earlier reads that confirmed their BMC's Redfish UUID
   * (guid-memory.ts). A BMC whose report needs nothing else from IPMI then gets no IPMI session
   * while its remembered GUID confirms the UUID Redfish reports now; a fresh GUID that confirms
   * it is remembered, one that does not is forgotten.
   */
  guidMemory?: GuidMemory;
  /**
   * With readAhead: Redfish sessions kept between report reads (redfish-sessions.ts). A read
   * resumes its BMC's kept session (same address and port, user and pinned certificate) instead
   * of logging in, starts at the collections with the service root read in that session, and at
   * close keeps its session open on the BMC for the next read instead of logging out.
   */
  redfishSessions?: RedfishSessionKeeper;
  /**
   * The BMC's MAC (its lease), when known: with `redfishSessions`, its kept session is keyed by it
   * beside the address (redfishSessionKey), so a BMC replaced at the same address is not offered
   * its predecessor's token, certificate pinned or not.
   */
  mac?: string;
  /** The largest image pushed to the BMC (METAL_BMC_FIRMWARE_MAX_IMAGE_SIZE); default redfish/update.ts DEFAULT_MAX_IMAGE_BYTES. */
  firmwareMaxImageBytes?: number;
  /**
   * A BMC image the BMC took without naming a task: how often its Manager's FirmwareVersion is
   * read and how long it may take to change (firmware-outcome.ts; defaults 15 s and 20 minutes).
   */
  firmwareVersionWait?: { pollMs?: number; versionWaitMs?: number };
  /** Logins a BMC back from a restart may refuse before that is final, and the least time between them (redfish/session.ts RELOGIN_AFTER_RESTART: 3, 60 s). */
  redfishReloginAfterRestart?: { refusals?: number; everyMs?: number };
  /** The refused Redfish logins per BMC and user (redfish/login-budget.ts): default the process's; a report worker's read passes the one it brought. */
  redfishLoginBudget?: LoginBudget;
}

export interface FacadeOutband extends Outband {
  readonly profile: VendorProfile;
  readonly protocols: { redfish: boolean; ipmi: boolean };
}

/** A Redfish session and the functions that use it, imported only when Redfish is tried. */
interface RedfishSide {
  client: RedfishClient;
  lib: typeof RedfishLib;
  /** with a session keeper: what this read does with the BMC's kept session, and the certificate pin it opened with */
  kept?: { keeper: RedfishSessionKeeper; key: string; plan: SessionPlan; pin: string | undefined; root?: unknown; layout?: InventoryLayout | null };
}

const REDFISH_BOOT: Record<BootTarget, BootOverrideTarget> = { PXE: 'Pxe', DISK: 'Hdd', BIOS: 'BiosSetup' };

const SERVICE_ROOT = '/redfish/v1/';
const signalOf = (x?: { signal?: AbortSignal | undefined }): { signal?: AbortSignal } => (x?.signal ? { signal: x.signal } : {});

/** The facade's progress callback as the Redfish update and task functions take it. */
/**
 * The bound of a firmware task's poll when the caller gives a signal: the caller's deadline (a
 * firmware job's METAL_BMC_FIRMWARE_TIMEOUT, which may be hours) ends it, not the poll's own
 * default hour, which would end a slow flash's watch early and free its machine mid-flash.
 */
const SIGNALLED_TASK_BOUND_MS = 24 * 3600_000;
function taskBound(signal: AbortSignal | undefined): number | undefined {
  return signal === undefined ? undefined : SIGNALLED_TASK_BOUND_MS;
}

/** iLO's state before an update, as a job keeps it (what isLastFlashEnd compares). */
function hpeFlashBefore(before: { state: string; resultMessageId?: string } | undefined): { hpeFlashBefore?: { state: string; resultMessageId?: string } } {
  if (before === undefined) return {};
  return { hpeFlashBefore: { state: before.state, ...(before.resultMessageId !== undefined ? { resultMessageId: before.resultMessageId } : {}) } };
}

function firmwareProgress(onProgress: ((p: FirmwareProgress) => void) | undefined): { onProgress?: (p: { state?: string; percent?: number; message?: string; sentBytes?: number }) => void } {
  if (!onProgress) return {};
  return { onProgress: (p) => onProgress({ state: p.state ?? 'Running', ...(p.percent !== undefined ? { percent: p.percent } : {}), ...(p.message ? { message: p.message } : {}), ...(p.sentBytes !== undefined ? { sentBytes: p.sentBytes } : {}) }) };
}

/** What a BMC image's outcome by version tells as progress (firmware-outcome.ts). */
function bmcImageWatch(onProgress: ((p: FirmwareProgress) => void) | undefined): { onRestarted: (version: string) => void; onWatching: (before: string) => void } {
  return {
    onRestarted: (version) => onProgress?.({ state: 'Completed', percent: 100, message: `the BMC restarted with firmware ${version}` }),
    onWatching: (before) => onProgress?.({ state: 'Running', message: `the BMC named no task to follow; waiting for its firmware version to change from ${before}` }),
  };
}

/**
 * The client an update is sent with, telling `onWatch` the task that the answers to `via` (the
 * SimpleUpdate or StartUpdate POST, or the push's upload) name, so that a job resumed after a
 * restart of metal-bmc can follow it.
 */
function taskNoting(client: RedfishClient, lib: typeof RedfishLib, onWatch: ((w: FirmwareWatch) => void) | undefined, via: 'post' | 'upload'): Pick<RedfishClient, 'get' | 'getReply' | 'post' | 'upload' | 'scrub'> {
  const note = (reply: RedfishReply): RedfishReply => {
    const taskUri = lib.taskLocation(reply);
    if (taskUri !== undefined) onWatch?.({ taskUri });
    return reply;
  };
  return {
    get: (path, options) => client.get(path, options),
    getReply: (path, options) => client.getReply(path, options),
    post: async (path, body, options) => (via === 'post' ? note(await client.post(path, body, options)) : client.post(path, body, options)),
    upload: async (path, stream, options) => (via === 'upload' ? note(await client.upload(path, stream, options)) : client.upload(path, stream, options)),
    scrub: (text) => client.scrub(text),
  };
}

/**
 * The layout a report read keeps for the next one in the session. With the Manager's
 * FirmwareVersion only where the report does not send it to metal-api (BMCVersion from Redfish:
 * report/body.ts leaves it out), so the next reads take it from the layout for the session's hour
 * instead of reading the Manager; where BMCVersion comes from IPMI (Supermicro, Novarion) the
 * Manager is read every time, since its version tells a BMC firmware update, after which the kept
 * IPMI identity is read again.
 */
function keptLayoutFor(layout: InventoryLayout | undefined, profile: Pick<VendorProfile, 'reportSources'>): InventoryLayout | null {
  if (layout === undefined) return null;
  if (profile.reportSources.bmcVersion === 'redfish' || layout.managerFirmware === undefined) return layout;
  const { managerFirmware: _dropped, ...rest } = layout;
  return rest;
}

const PROTOCOL_NAMES: Record<ActionProtocol, string> = { redfish: 'Redfish', ipmi: 'IPMI' };

/** Failures before the acting request that the other protocol would meet too. */
const NOT_SENT_FINAL: ReadonlySet<string> = new Set(['AUTH_FAILED', 'UNTRUSTED', 'INSECURE_REFUSED', 'FORBIDDEN', 'INVALID_ARGUMENT', 'ABORTED']);

/**
 * Errors after which the other protocol may try the same action. A repeatable one (power on, a
 * boot device) after any failure the other protocol may mend; a reset or cycle only where the
 * failure shows the BMC did not act (errors.ts showsNotActed: a refusal, or a failure before its
 * request was sent): one answered 500, 502 or 504, cut off or garbled may have happened, and a
 * second one would reboot the host again. Credentials refused over HTTP are refused over IPMI too.
 */
function mayFallBack(err: unknown, repeatable = true): boolean {
  if (!(err instanceof BmcError)) return false;
  if (err.code === 'HTTP' && (err.httpStatus === 401 || err.httpStatus === 403)) return false;
  // nothing sent yet (an IPMI session that timed out, a read refused): the other protocol may do
  // it, unless the BMC refused who we are or its identity was not proved
  if (err instanceof NotSentError) return !NOT_SENT_FINAL.has(err.code);
  if (!repeatable) return showsNotActed(err) && (err.code === 'HTTP' || err.code === 'UNSUPPORTED' || err.code === 'COMPLETION_CODE');
  return err.code === 'HTTP' || ['UNSUPPORTED', 'CLOSED', 'DECODE', 'PROTOCOL', 'COMPLETION_CODE'].includes(err.code);
}

/** Codes of a Redfish open that failed for want of an answer (refused, reset, TLS cut, timed out): the BMC may be restarting, not without Redfish. */
const REDFISH_AWAY_CODES: ReadonlySet<string> = new Set(['CLOSED', 'TIMEOUT']);

/** The typed part of a Redfish failure (the message was already scrubbed of secrets by the Redfish client). */
function problemOf(err: unknown, text: string): RedfishProblem {
  const causeCode = (err as { cause?: { code?: unknown } } | null)?.cause?.code;
  return {
    code: err instanceof BmcError ? err.code : 'UNKNOWN',
    ...(err instanceof BmcError && err.httpStatus !== undefined ? { httpStatus: err.httpStatus } : {}),
    ...(typeof causeCode === 'string' ? { causeCode } : {}),
    message: text,
  };
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** A read started ahead: its failure is seen by whoever awaits the same read later. */
function ahead(p: Promise<unknown>): void {
  p.catch(() => undefined);
}

let redfishModule: Promise<typeof RedfishLib> | undefined;
/** The Redfish side, imported once: a dynamic import per BMC costs a module resolution each time (through the loader hooks, where there are any). */
function redfishSide(): Promise<typeof RedfishLib> {
  return (redfishModule ??= import('./redfish-side.js'));
}

/**
 * Imports the code `protocol` needs (Redfish's undici) ahead of time, so that a one-shot caller
 * can start its deadline afterwards: loading modules on a busy machine is not the BMC's time.
 */
export async function preloadProtocol(protocol: Protocol): Promise<void> {
  if (protocol !== 'ipmi') await redfishSide();
}

/** BMC and quirk pairs already logged as a warning; bounded, for a daemon that reads its BMCs every minute. */
const quirksLogged = new Set<string>();
const QUIRKS_LOGGED_LIMIT = 10_000;

/**
 * A quirk the IPMI client worked around: a warning the first time this process sees it on this
 * BMC, debug afterwards (the daemon opens sessions to the same BMC every report cycle). Console
 * worker threads send theirs here too (console/worker-log.ts), so the rule holds process-wide.
 */
export function logQuirk(logger: Logger | undefined, host: string, e: Pick<IpmiEvent, 'message'> & { kind: string }): void {
  const key = `${host}\u0000${e.kind}`;
  if (quirksLogged.has(key)) return logger?.debug({ bmc: host, quirk: e.kind }, e.message);
  if (quirksLogged.size >= QUIRKS_LOGGED_LIMIT) quirksLogged.clear();
  quirksLogged.add(key);
  logger?.warn({ bmc: host, quirk: e.kind }, e.message);
}

/** The IPMI reads `need` names; a failure is a problem of the report, not its end (unless aborted). */
async function readIpmi(ipmi: IpmiOutband, need: IpmiNeed, x: OperationOptions | undefined): Promise<IpmiReading> {
  const reading: IpmiReading = { problems: [] };
  if (need === 'none') return reading;
  try {
    if (need === 'guid') reading.guid = await ipmi.guid(x);
    else {
      const identity = await ipmi.identity(x);
      reading.guid = identity.guid;
      reading.identity = { bmcVersion: identity.bmcVersion, fru: identity.fru };
      // a BMC without Get System GUID: the reason stays in the report whatever else was read
      reading.problems.push(...(need === 'identity' ? identity.problems : identity.problems.filter((m) => m.startsWith('UUID: '))));
    }
    if (need === 'full') {
      const status = await ipmi.status(x);
      reading.status = { powerState: status.powerState, led: status.led, ...(status.powerMetric ? { powerMetric: status.powerMetric } : {}) };
    }
  } catch (err) {
    if (isBmcError(err, 'ABORTED')) throw err;
    reading.problems.push(`IPMI: ${message(err)}`);
  }
  return reading;
}

/** Redfish for this BMC, or the reason there is none; thrown when Redfish is required or the caller aborted. */
async function openRedfishSide(o: ConnectOptions, protocol: Protocol, timeoutMs: number, ipmi: IpmiOutband, hedges: Record<HedgeOutcome, number>): Promise<{ redfish?: RedfishSide; problem?: string; failure?: RedfishProblem }> {
  if (protocol === 'ipmi') return {};
  const lib = await redfishSide();
  const keeper = o.readAhead ? o.redfishSessions : undefined;
  const port = o.redfishPort ?? 443;
  const key = redfishSessionKey(o.host, port, o.mac);
  let kept: RedfishSide['kept'];
  try {
    const open = (tls: { pinnedSha256?: string }) => {
      const plan = keeper ? sessionPlan(keeper.get(key), { user: o.user, pin: tls.pinnedSha256, nowMs: Date.now(), maxAgeMs: keeper.maxAgeMs }) : undefined;
      if (keeper && plan) kept = { keeper, key, plan, pin: tls.pinnedSha256 };
      const session = (s: { token?: string; location?: string } | undefined) => (s?.token === undefined ? undefined : { token: s.token, location: s.location });
      const resumeSession = session(plan?.resume);
      const retireSession = session(plan?.retire);
      return lib.openRedfish({
        host: o.host,
        port,
        user: o.user,
        password: o.password,
        insecure: o.redfishInsecure ?? o.redfishCa === undefined,
        ...(o.redfishCa ? { ca: o.redfishCa } : {}),
        ...tls,
        timeoutMs: Math.min(o.redfishRequestTimeoutMs ?? 10_000, timeoutMs),
        ...(o.redfishLegacyTls === true ? { legacyTls: true } : {}),
        connections: o.redfishConnections ?? 2,
        ...(o.redfishOpenConnectionAfterMs !== undefined ? { openConnectionAfterMs: o.redfishOpenConnectionAfterMs } : {}),
        ...(o.redfishSecondConnection ? { secondConnection: o.redfishSecondConnection } : {}),
        ...(o.readAhead && o.redfishHedgeAfterMs !== undefined ? { hedge: { afterMs: o.redfishHedgeAfterMs, slowPaths: o.redfishHedgeMemory?.slowPathsOf(key) ?? new Set<string>(), onOutcome: (outcome: HedgeOutcome) => (hedges[outcome] += 1) } } : {}),
        // a resumed session comes with the service root read in it
        ...(o.readAhead && plan?.resume?.root === undefined ? { serviceRootAtLogin: true } : {}),
        ...(resumeSession ? { resumeSession } : {}),
        ...(retireSession ? { retireSession } : {}),
        ...(o.signal ? { signal: o.signal } : {}),
        ...(o.logger ? { logger: o.logger } : {}),
        ...(o.onAnswer ? { onAnswer: o.onAnswer } : {}),
        ...(o.redfishReloginAfterRestart ? { reloginAfterRestart: o.redfishReloginAfterRestart } : {}),
        ...(o.redfishLoginBudget ? { loginBudget: o.redfishLoginBudget } : {}),
      });
    };
    const client = o.trust ? await o.trust.openRedfish(trustContext(o, protocol, ipmi, port), open) : await open({});
    if (kept && client.serviceRootAtLogin) {
      const side = kept;
      client.serviceRootAtLogin.then((root) => (side.root = root)).catch(() => undefined);
    }
    return { redfish: { client, lib, ...(kept ? { kept } : {}) } };
  } catch (err) {
    // a BMC that is not the one recorded gets nothing more, over no protocol
    if (protocol === 'redfish' || isBmcError(err, 'ABORTED') || isBmcError(err, 'UNTRUSTED')) throw err;
    const problem = message(err);
    o.logger?.debug({ bmc: o.host, reason: problem }, 'Redfish unavailable, using IPMI');
    return { problem, failure: problemOf(err, problem) };
  }
}

export async function connectOutband(o: ConnectOptions): Promise<FacadeOutband> {
  const protocol = o.protocol ?? 'auto';
  const timeoutMs = o.timeoutMs ?? 20_000;
  const ipmi = ipmiOutband({
    host: o.host,
    port: o.ipmiPort ?? 623,
    user: o.user,
    password: o.password,
    cipherSuite: o.ipmiCipherSuite ?? 'auto',
    allowInsecure: o.ipmiAllowInsecure ?? false,
    ...(o.guidEncoding ? { guidEncoding: o.guidEncoding } : {}),
    retry: { deadlineMs: Math.min(timeoutMs, 10_000), ...o.ipmiRetry },
    // what the BMC did that the IPMI client worked around: one line each
    onEvent: (e) => (o.onIpmiEvent ? o.onIpmiEvent(e) : logQuirk(o.logger, o.host, e)),
    ...(o.onAnswer ? { onAnswer: o.onAnswer } : {}),
  });
  const ipmiAllowed = protocol !== 'redfish';
  const uuidRule = o.uuidRule ?? 'auto';
  const guidMemory = o.readAhead && ipmiAllowed ? o.guidMemory : undefined;
  const rememberedGuid = guidMemory?.get(o.host);
  const rememberedIdentity = guidMemory?.identity(o.host);
  if (o.readAhead && rememberedGuid === undefined && ipmiNeed({ ipmiAllowed, uuidRule, reportSources: VENDOR_PROFILES.unknown.reportSources }) !== 'none') ahead(ipmi.guid(signalOf(o)));
  const hedges: Record<HedgeOutcome, number> = { won: 0, lost: 0, failed: 0 };
  let opened: Awaited<ReturnType<typeof openRedfishSide>>;
  try {
    opened = await openRedfishSide(o, protocol, timeoutMs, ipmi, hedges);
  } catch (err) {
    await ipmi.close();
    throw err;
  }
  const { redfish, problem: redfishProblem, failure: redfishFailure } = opened;
  /** A firmware step without Redfish: a Redfish service that could not be reached may only be away (RedfishAwayError). */
  const needsRedfish = (kind: FirmwareKind): BmcError => {
    const text = `firmware update (${kind}) of BMC ${o.host} needs Redfish: ${redfishProblem ?? 'disabled'}`;
    return redfishFailure && REDFISH_AWAY_CODES.has(redfishFailure.code) ? new RedfishAwayError(text) : new BmcError('UNSUPPORTED', text);
  };
  let reader: ReadCache | undefined = redfish ? redfish.lib.readCache(redfish.client) : undefined;
  if (reader && redfish?.client.serviceRootAtLogin) reader.seed(SERVICE_ROOT, redfish.client.serviceRootAtLogin, signalOf(o));
  const keptRoot = redfish?.kept?.plan.resume?.root;
  if (reader && keptRoot) reader.seed(SERVICE_ROOT, Promise.resolve(keptRoot), signalOf(o));
  // where the last read in this session found the report's resources: asked by path, not by walking the collections
  const layout = redfish?.kept?.plan.resume?.layout;
  let inventory: Promise<RedfishInventory> | undefined;
  // a layout kept with the Manager's FirmwareVersion (keptLayoutFor) spares the Manager's read
  if (o.readAhead && redfish && reader) ahead((inventory = redfish.lib.readInventory(reader, { ...signalOf(o), ...(o.logger ? { logger: o.logger } : {}), ...(layout ? { layout, keepManager: true } : {}) })));
  /** undefined: the vendor could not be read (a deadline, a failed request), as opposed to one the table lacks */
  let detected: Vendor | undefined;
  try {
    detected = redfish && reader ? await detectVendorRedfish(redfish.lib, reader, o.signal, layout ? (layout.firstSystem ?? layout.system) : undefined) : await detectVendorIpmi(ipmi, o.signal);
  } catch (err) {
    // aborted during detection (shutdown, the cycle giving up on the read; a deadline is read as an
    // unknown vendor instead) or a refused IPMI password: no facade for the caller to close, so the
    // sessions are closed here, in the background (the caller is done waiting)
    Promise.all([redfish ? closeRedfish(redfish) : undefined, ipmi.close()]).catch(() => undefined);
    throw err;
  }
  const vendor: Vendor = detected ?? 'unknown';
  // the operator's order for the vendor (listedGuidOrder), where the BMC has no order of its own
  // (`guidEncoding`, the CLI's default included); none where the vendor could not be read
  const listedEncoding = o.guidEncoding === undefined ? listedGuidOrder(detected, o.guidEncodingByVendor) : undefined;
  const configuredEncoding = o.guidEncoding ?? listedEncoding;
  /** the vendor's listed order decides the UUID beside Redfish where the bytes cannot (uuid.ts `guidOrderListed`); a BMC's own order does not */
  const orderListed = listedEncoding !== undefined ? ({ guidOrderListed: true } as const) : {};
  const profile = configuredEncoding ? { ...VENDOR_PROFILES[vendor], guidEncoding: configuredEncoding } : VENDOR_PROFILES[vendor];
  // how the BMC inlines a collection's members ($expand), from the service root detection read
  // (in the read cache: no request); for actions that walk a collection (the BootOrder path)
  const expand = redfish && reader ? (await redfish.lib.readServiceRoot(reader, signalOf(o)).catch(() => undefined))?.expand : undefined;
  /**
   * A UUID from the IPMI GUID alone (Redfish failed in this read, or gave no UUID) is reported only
   * when confirmed (uuid.ts): by what an earlier read with Redfish decided for this BMC, or by a GUID
   * order configured for it (`guidEncoding`) or proven for its vendor. Not with protocol ipmi: there
   * the operator chose the GUID, in the configured or the vendor table's order, as the machine id.
   */
  const decidedBefore = guidMemory?.decided(o.host);
  const ipmiAlone: IpmiAloneCheck | undefined = protocol === 'ipmi' ? undefined : { ...(decidedBefore ? { remembered: decidedBefore } : {}), encodingConfigured: configuredEncoding !== undefined || profile.guidEncodingProven === true };
  // a kept identity is read again only if Redfish shows the BMC changed (rememberedReading): then after the inventory
  if (o.readAhead && rememberedIdentity === undefined && ipmiNeed({ ipmiAllowed, uuidRule, reportSources: profile.reportSources }) === 'identity') ahead(ipmi.identity(signalOf(o)));

  /**
   * The remembered GUID as this read's IPMI reading, if it confirms the UUID Redfish reports now;
   * for `identity`, with the identity kept beside it, if Redfish names the same Manager
   * FirmwareVersion as when it was read.
   */
  function rememberedReading(inv: RedfishInventory, now: Date, need: 'guid' | 'identity'): IpmiReading | undefined {
    if (rememberedGuid === undefined || !inv.system?.uuid) return undefined;
    const managerFirmware = inv.manager?.firmwareVersion;
    if (need === 'identity' && (rememberedIdentity === undefined || managerFirmware === undefined || managerFirmware !== rememberedIdentity.managerFirmware)) return undefined;
    const decision = decideUuid({ redfishUuid: inv.system.uuid, ipmiGuid: rememberedGuid, guidEncoding: profile.guidEncoding, rule: uuidRule, now, ...(profile.swapRedfishUuidUnlessV1 === true ? { swapRedfishUuidUnlessV1: true } : {}), ...orderListed });
    if (!decision || !GUID_CONFIRMED_BASES.has(decision.kind)) return undefined;
    if (need === 'guid') return { guid: rememberedGuid, guidRemembered: true, problems: [] };
    const { bmcVersion, fru } = rememberedIdentity!;
    return { guid: rememberedGuid, guidRemembered: true, identity: { bmcVersion, fru: { ...fru } }, identityRemembered: true, problems: [] };
  }

  /** What this read leaves in the GUID memory (guidMemoryAfterRead). */
  function rememberAfterRead(need: IpmiNeed, reading: IpmiReading, merged: ReturnType<typeof mergeReport>, inv: RedfishInventory): void {
    if (!guidMemory) return;
    const change = guidMemoryAfterRead({ need, reading, merged, managerFirmware: inv.manager?.firmwareVersion, before: guidMemory.decided(o.host) });
    if (change.kind === 'remember') guidMemory.remember(o.host, change.decided, change.spare);
    else if (change.kind === 'forget') guidMemory.forget(o.host);
  }

  /** The decision's log line, as UUID_BASIS_LOGGED says: none, one with every read, or a warning once per BMC (then debug). */
  function logUuidDecision(d: UuidDecision): void {
    const logged = UUID_BASIS_LOGGED[d.kind];
    if (logged === 'each-read') o.logger?.info({ bmc: o.host, uuid: d.uuid, basis: d.basis }, 'machine UUID decided');
    else if (logged === 'once-per-bmc') logQuirk(o.logger, o.host, { kind: `uuid-${d.kind}`, message: `BMC ${o.host}: machine UUID ${d.uuid}: ${d.basis}` });
  }

  /**
   * The operator's GUID order for this vendor (METAL_BMC_GUID_ENCODING) against the UUID decided
   * from Redfish: where that order decodes this BMC's GUID to another UUID, a read of it over IPMI
   * alone would report another machine (unless an earlier read is remembered), so the setting is
   * wrong for it. A warning once per BMC (then debug); the report stands, marked for the cycle's metric.
   */
  function checkListedGuidOrder(d: UuidDecision, guid: Buffer | undefined): boolean {
    if (listedEncoding === undefined || guid === undefined || !REDFISH_BASES.has(d.kind)) return false;
    const decoded = guidToUuid(guid, listedEncoding);
    if (decoded === d.uuid || isPlaceholderUuid(decoded)) return false;
    logQuirk(o.logger, o.host, { kind: 'guid-encoding-contradicted', message: `BMC ${o.host} (${vendor}): METAL_BMC_GUID_ENCODING lists ${listedVendor(vendor) ?? vendor}=${listedEncoding}, but its GUID in that order is ${decoded}, not ${d.uuid} from its Redfish (${d.kind}): over IPMI alone it would be reported as another machine` });
    return true;
  }

  /** What was read for detection and read-ahead serves the first report only: after an action it is stale. */
  function forgetReads(): void {
    reader = undefined;
    inventory = undefined;
  }

  /**
   * `what` through the protocol the vendor table prefers for `kind`, then the other where the
   * failure allows (mayFallBack); not once the caller's signal has ended (its deadline, a
   * shutdown): the other protocol would fail at once, and its failure would hide the first's.
   */
  async function route<T = void>(kind: 'power' | 'boot' | 'identify', what: string, viaRedfish: (r: RedfishSide) => Promise<T>, viaIpmi: () => Promise<T>, { x, repeatable = true }: { x: OperationOptions | undefined; repeatable?: boolean }): Promise<T> {
    const order: ActionProtocol[] = profile[kind] === 'redfish' ? ['redfish', 'ipmi'] : ['ipmi', 'redfish'];
    const available = order.filter((p) => (p === 'redfish' ? redfish !== undefined : ipmiAllowed));
    if (available.length === 0) throw new BmcError('UNSUPPORTED', `${what} on BMC ${o.host}: no protocol available (${redfishProblem ?? 'IPMI disabled'})`);
    forgetReads();
    const failures: Array<{ protocol: ActionProtocol; err: unknown }> = [];
    for (const p of available) {
      try {
        return await (p === 'redfish' ? viaRedfish(redfish!) : viaIpmi());
      } catch (err) {
        failures.push({ protocol: p, err });
        if (!mayFallBack(err, repeatable) || p === available[available.length - 1] || x?.signal?.aborted === true) break;
        o.logger?.warn({ bmc: o.host, action: what, protocol: p, err: message(err) }, 'action failed, trying the other protocol');
      }
    }
    // the first protocol's failure says most (why the preferred way failed), but for a reset or
    // cycle a later attempt that may have acted decides: thrown as a refusal, the command would
    // be tried again and the host reset twice
    const decisive = (repeatable ? undefined : failures.find((f) => !showsNotActed(f.err))) ?? failures[0]!;
    throw withOthers(decisive, failures);
  }

  /**
   * The failure that decides, its message followed by the other protocol's (both refused, say):
   * the result then tells why each way failed. A copy of the same class with the same fields (code,
   * status), on which retries and fallbacks decide; the error itself may be shared (a deadline's or
   * a shutdown's reason, thrown to every action it cut) and is left as it is.
   */
  function withOthers(decisive: { protocol: ActionProtocol; err: unknown }, failures: ReadonlyArray<{ protocol: ActionProtocol; err: unknown }>): unknown {
    const others = failures.filter((f) => f !== decisive);
    const err = decisive.err;
    // only our own errors are copied (fields of their own, no private state); anything else as it is
    if (others.length === 0 || !(err instanceof BmcError)) return err;
    const text = `${err.message}${others.map((f) => `; over ${PROTOCOL_NAMES[f.protocol]} too: ${message(f.err)}`).join('')}`;
    const copy = Object.assign(Object.create(Object.getPrototypeOf(err) as object) as Error, err);
    Object.defineProperty(copy, 'message', { value: text, writable: true, configurable: true, enumerable: false });
    // a function as the replacement: the BMCs' text may hold $' or $& patterns
    const stack = err.message === '' ? err.stack : err.stack?.replace(err.message, () => text);
    Object.defineProperty(copy, 'stack', { value: stack, writable: true, configurable: true, enumerable: false });
    if (err.cause !== undefined) Object.defineProperty(copy, 'cause', { value: err.cause, writable: true, configurable: true, enumerable: false });
    return copy;
  }

  const sig = signalOf;
  /** read options of the Redfish side: the signal, and the logger for choices such as which of several Systems */
  const rd = (x?: OperationOptions) => ({ ...sig(x), ...(o.logger ? { logger: o.logger } : {}) });

  /** Redfish: the override, or on BIOS versions with the Continuous defect (vendor table) the System's BootOrder. */
  async function redfishBoot({ client: r, lib }: RedfishSide, target: BootTarget, x: BootOptions | undefined): Promise<void> {
    const persistent = target !== 'BIOS' && (x?.persistent ?? true);
    if (target !== 'BIOS' && persistent && profile.bootOrderUpToBios !== undefined) {
      const systemPath = await lib.firstSystemPath(r, rd(x));
      const system = await lib.readSystem(r, systemPath, sig(x));
      if (biosAtOrBelow(system.biosVersion, profile.bootOrderUpToBios)) {
        const found = await lib.readBootOptions(r, { ...sig(x), systemPath, system, ...(expand ? { expand } : {}) });
        const order = bootOrderFor(target, found.options, found.system.boot?.bootOrder ?? []);
        const overrideActive = (found.system.boot?.overrideEnabled ?? 'Disabled') !== 'Disabled';
        o.logger?.debug({ bmc: o.host, biosVersion: system.biosVersion, target, order }, 'persistent boot through BootOrder (BIOS with the Continuous defect)');
        await lib.setBootOrder(r, order, { ...rd(x), systemPath, disableOverride: overrideActive });
        return;
      }
    }
    await lib.setBootOverride(r, REDFISH_BOOT[target], { persistent, uefi: x?.uefi ?? true, ...rd(x) });
  }

  async function ipmiBoot(target: BootTarget, x: BootOptions | undefined): Promise<void> {
    const flags = ipmiBootFlags(target, { persistent: x?.persistent ?? true, uefi: x?.uefi ?? true, diskDevice: profile.ipmiDiskDevice });
    await writeBootFlags(await ipmi.session(x), flags, sig(x));
  }

  const facade: FacadeOutband = {
    address: o.host,
    vendor,
    profile,
    protocols: { redfish: redfish !== undefined, ipmi: ipmiAllowed },
    async info(x) {
      if (!redfish) {
        const { report, guid } = await ipmi.report(x);
        // the UUID by the same rule as beside Redfish, in the vendor table's GUID order (the IPMI client, made before the vendor was known, decoded it in its own)
        const outcome = machineUuid({ ...(guid ? { ipmiGuid: guid } : {}), guidEncoding: profile.guidEncoding, rule: uuidRule, now: new Date(), ...(ipmiAlone ? { ipmiAlone } : {}) });
        report.uuid = outcome.ok ? outcome.decision.uuid : '';
        if (!outcome.ok) {
          report.uuidGap = outcome.gap;
          // a BMC without Get System GUID: its reason is among the missing parts already
          if (!report.missing.some((m) => m.startsWith('UUID: '))) report.missing.push(outcome.detail);
        }
        if (redfishProblem && protocol === 'auto') {
          report.missing.unshift(`Redfish: ${redfishProblem}`);
          if (redfishFailure) report.redfishProblem = redfishFailure;
        }
        return report;
      }
      const inv = await (inventory ?? redfish.lib.readInventory(reader ?? redfish.client, rd(x)));
      // a version kept by a read that took this BMC for another vendor (its detection failed):
      // where the version tells a BMC firmware update (the kept IPMI identity), it is read now
      if (inv.managerKept && profile.reportSources.bmcVersion !== 'redfish' && inv.manager?.path) inv.manager = await redfish.lib.readManager(reader ?? redfish.client, inv.manager.path, sig(x)).catch(() => undefined);
      forgetReads(); // the report's reads are done: release them
      if (redfish.kept) redfish.kept.layout = keptLayoutFor(inv.layout, profile);
      const need = ipmiNeed({ ipmiAllowed, uuidRule, reportSources: profile.reportSources, redfish: redfishReading(inv) });
      const now = new Date();
      const remembered = need === 'guid' || need === 'identity' ? rememberedReading(inv, now, need) : undefined;
      const reading = remembered ?? (await readIpmi(ipmi, need, x));
      const merged = mergeReport({ inventory: inv, ipmi: reading, profile, uuidRule, now, ...(ipmiAlone ? { ipmiAlone } : {}), ...orderListed });
      // kept for a BMC that needs at most its identity from IPMI: one that also needs its status reads IPMI anyway
      if (!remembered) rememberAfterRead(need, reading, merged, inv);
      if (Object.values(hedges).some((n) => n > 0)) merged.report.redfishHedges = { ...hedges };
      // no UUID evidence at all: a partial report with the reason; the report cycle skips it
      if (!merged.ok) return merged.report;
      logUuidDecision(merged.uuid);
      if (checkListedGuidOrder(merged.uuid, reading.guid)) merged.report.guidOrderContradicted = true;
      return merged.report;
    },
    powerOn: (x) => route('power', 'power on', (r) => r.lib.reset(r.client, 'On', rd(x)), () => ipmi.powerOn(x), { x }),
    powerOff: (x) => route('power', 'power off', (r) => r.lib.reset(r.client, 'ForceOff', rd(x)), () => ipmi.powerOff(x), { x }),
    powerReset: (x) => route('power', 'power reset', (r) => r.lib.reset(r.client, 'ForceRestart', rd(x)), () => ipmi.powerReset(x), { x, repeatable: false }),
    powerCycle: (x) => route('power', 'power cycle', (r) => r.lib.reset(r.client, 'PowerCycle', { ...rd(x), ...(x?.deadlineAt === undefined ? {} : { deadlineAt: x.deadlineAt }) }), () => ipmi.powerCycle(x), { x, repeatable: false }),
    bootFrom: (target, x) => route('boot', `boot ${target}`, (r) => redfishBoot(r, target, x), () => ipmiBoot(target, x), { x }),
    bootOverride: (x) =>
      route(
        'boot',
        'read boot override',
        async ({ client, lib }) => bootOverrideOfRedfish((await lib.readSystem(client, await lib.firstSystemPath(client, rd(x)), sig(x))).boot),
        async () => bootOverrideOfIpmi(await readBootFlags(await ipmi.session(x), sig(x)), profile.ipmiDiskDevice),
        { x },
      ),
    identify: (on, x) => route('identify', `identify LED ${on ? 'on' : 'off'}`, (r) => r.lib.setIndicator(r.client, on, rd(x)), () => ipmi.identify(on, x), { x }),
    async openConsole(x): Promise<Duplex> {
      if (profile.console === 'ssh') {
        const { openSshConsole } = await import('./ssh-console.js');
        // without a trust file ssh2 would take any host key and send it the password: no CA vouches for one
        if (!o.trust) throw new BmcError('UNTRUSTED', `console on BMC ${o.host} is over SSH and there is no trust file to check its host key against; password not sent (the daemon: METAL_BMC_STATE_DIR; metal-bmc bmc: --state-dir DIR or METAL_BMC_STATE_DIR)`);
        const checkHostKey = await o.trust.sshHostKeyCheck(trustContext(o, protocol, ipmi, 0));
        return openSshConsole({ host: o.host, port: o.sshPort ?? 22, user: o.user, password: o.password, command: profile.sshConsoleCommand ?? 'console com2', ...(profile.sshConsoleDetachByte !== undefined ? { dropInputByte: profile.sshConsoleDetachByte } : {}), ...sig(x), checkHostKey });
      }
      if (!ipmiAllowed) throw new BmcError('UNSUPPORTED', `console on BMC ${o.host} needs IPMI SOL, which is disabled`);
      return ipmi.openConsole(x);
    },
    async updateFirmware(kind: FirmwareKind, url, x) {
      if (!redfish) throw needsRedfish(kind);
      const { client, lib } = redfish;
      const service = await lib.readUpdateService(client, sig(x));
      const onProgress = x?.onProgress;
      const progress = firmwareProgress(onProgress);
      const bound = taskBound(x?.signal);
      // Targets: the System for BIOS images, its Manager for BMC images (SimpleUpdate on iDRAC: none)
      const systemPath = await lib.firstSystemPath(client, rd(x));
      const system = await lib.readSystem(client, systemPath, sig(x));
      const target = kind === 'bios' ? systemPath : system.managedBy[0];
      const targets = target && SIMPLE_UPDATE_NAMES_TARGETS[profile.vendor] ? { targets: [target] } : {};
      // what a job resumed after a restart needs to watch this update again (firmware-jobs.ts)
      const onWatch = x?.onWatch;
      if (target !== undefined) onWatch?.({ target, ...(kind === 'bios' && system.biosVersion !== undefined ? { versionBefore: system.biosVersion } : {}) });
      const preferPush = profile.firmware === 'multipart-push' ? service?.multipartHttpPushUri !== undefined : service?.simpleUpdateTarget === undefined;
      const fit = preferPush ? undefined : lib.simpleUpdateFit(await lib.readSimpleUpdateAllowed(client, service, sig(x)), url, targets.targets);
      if (fit?.usable === false && service.multipartHttpPushUri === undefined) {
        throw new BmcError('UNSUPPORTED', `firmware update (${kind}) of BMC ${o.host}: SimpleUpdate accepts only ${fit.accepted.join(', ')}, not ${fit.protocol || 'this URL'}, and the UpdateService has no MultipartHttpPushUri`);
      }
      // a BMC back from its update with another certificate: the job names the command that accepts it
      const trustReset = { trustResetCommand: `metal-bmc bmc trust ${o.mac ? `--mac ${o.mac}` : `--address ${o.host}`} --reset` };
      // SimpleUpdate where it fits the URL, else the push (preferred, or SimpleUpdate refuses the URL)
      const send = async (): Promise<unknown> => {
        if (fit?.usable === true) return lib.simpleUpdate(taskNoting(client, lib, onWatch, 'post'), url, { ...sig(x), ...progress, ...trustReset, ...(bound ? { taskTimeoutMs: bound } : {}), ...(fit.targets ? { targets: fit.targets } : {}) });
        if (!service?.multipartHttpPushUri) throw new BmcError('UNSUPPORTED', `BMC ${o.host} offers neither SimpleUpdate nor multipart push`);
        const parameters = pushParametersFor(profile.vendor, kind, { system: systemPath, manager: system.managedBy[0] }, { startUpdate: service.startUpdateTarget !== undefined });
        // a staged push's upload names the verify task; the update's own is the one StartUpdate's POST names
        const staged = parameters.applyTime === ON_START_UPDATE_REQUEST;
        return lib.pushUpdate(taskNoting(client, lib, onWatch, staged ? 'post' : 'upload'), url, {
          ...sig(x),
          ...progress,
          ...trustReset,
          ...(bound ? { taskTimeoutMs: bound } : {}),
          ...(o.firmwareMaxImageBytes !== undefined ? { maxImageBytes: o.firmwareMaxImageBytes } : {}),
          ...(x?.dispatcher ? { dispatcher: x.dispatcher } : {}),
          targets: parameters.targets,
          ...(parameters.applyTime ? { applyTime: parameters.applyTime } : {}),
          ...(parameters.oem ? { oem: parameters.oem } : {}),
          ...(parameters.oemParts ? { oemParts: parameters.oemParts } : {}),
        });
      };
      // iLO answers without a task and tells the flash in its UpdateService's Oem.Hpe.State (hpe-flash.ts)
      const update =
        profile.vendor === 'hpe'
          ? () => lib.updateOnIlo(send, client, service.path, { ...sig(x), ...progress, ...(bound ? { timeoutMs: bound } : {}), restartsBmc: kind === 'bmc', ...(service.hpeFlash ? { before: service.hpeFlash } : {}), ...(onWatch ? { onFollowed: () => onWatch({ hpeFlash: true, ...hpeFlashBefore(service.hpeFlash) }), onStarted: () => onWatch({ hpeFlashStarted: true }) } : {}) })
          : send;
      if (kind === 'bios') {
        await update();
        return;
      }
      // a BMC image restarts the BMC, which may forget the task: its Manager's version decides then
      await lib.updateBmcImage(client, system.managedBy[0], update, { ...sig(x), ...bmcImageWatch(onProgress), ...(onWatch ? { onBefore: (versionBefore: string) => onWatch({ versionBefore }) } : {}), ...(o.firmwareVersionWait ?? {}) });
    },
    async watchFirmware(kind: FirmwareKind, watch, x) {
      if (!redfish) throw needsRedfish(kind);
      const { client, lib } = redfish;
      const { taskUri, target, versionBefore } = watch;
      const progress = firmwareProgress(x?.onProgress);
      // the job's own deadline bounds the task's poll (its signal), not the task's default hour
      const bound = taskBound(x?.signal);
      // the caller's pace (a hold asks a BMC busy flashing less often), else each poll's own
      const pace = x?.pollMs !== undefined ? { pollMs: x.pollMs } : {};
      const followTask = async (uri: string): Promise<unknown> => lib.waitForTask(client, uri, { ...sig(x), ...progress, ...pace, ...(bound ? { timeoutMs: bound } : {}) });
      // the version is read every 15 s (or as configured) already: a slower pace only slows it further
      const versionPace = x?.pollMs !== undefined ? { pollMs: Math.max(x.pollMs, o.firmwareVersionWait?.pollMs ?? 0) } : {};
      const versionWatch = { ...sig(x), ...bmcImageWatch(x?.onProgress), ...(o.firmwareVersionWait ?? {}), ...versionPace };
      // an iLO flash without a task, sent before metal-bmc restarted: its Oem.Hpe.State tells it (hpe-flash.ts)
      const followIlo = (): Promise<void> =>
        lib.followHpeFlashAgain(client, `firmware update (${kind}) of BMC ${o.host}`, {
          ...sig(x),
          ...progress,
          ...pace,
          ...(bound ? { timeoutMs: bound } : {}),
          restartsBmc: kind === 'bmc',
          started: watch.hpeFlashStarted === true,
          ...(watch.hpeFlashBefore ? { before: watch.hpeFlashBefore } : {}),
          ...(x?.onWatch ? { onStarted: () => x.onWatch?.({ hpeFlashStarted: true }) } : {}),
        });
      if (kind === 'bmc' && target !== undefined && versionBefore !== undefined) {
        // the same rules as the update's: a task lost to the BMC's restart is decided by the version
        if (taskUri !== undefined) return lib.updateBmcImage(client, target, () => followTask(taskUri), { ...versionWatch, before: versionBefore });
        if (watch.hpeFlash === true) return lib.updateBmcImage(client, target, followIlo, { ...versionWatch, before: versionBefore });
        return lib.watchBmcVersion(client, target, versionBefore, versionWatch);
      }
      if (taskUri === undefined && watch.hpeFlash === true) return followIlo();
      if (taskUri === undefined) throw new BmcError('UNSUPPORTED', `firmware update (${kind}) of BMC ${o.host}: no task of it is known${kind === 'bmc' ? ', nor the firmware version before it' : ''}, so its outcome cannot be watched`);
      await followTask(taskUri);
    },
    async close() {
      await Promise.all([redfish ? closeRedfish(redfish) : undefined, ipmi.close()]);
    },
  };

  /** Logs out, or with a session keeper leaves the session open for the next read and keeps it. */
  function closeRedfish({ client, kept }: RedfishSide): Promise<void> {
    if (!kept) return client.close();
    const session = client.session();
    const next = sessionAfterRead(kept.plan, { user: o.user, pin: kept.pin, nowMs: Date.now(), session, root: kept.root, ...(kept.layout === undefined ? {} : { layout: kept.layout }) });
    kept.keeper.set(kept.key, next);
    return client.close({ keepSession: session !== undefined && next?.token === session.token });
  }
  return facade;
}

/**
 * The vendor from the first System's Manufacturer (the Systems collection's first member, or where
 * the inventory has a layout the one it names, without reading the collection), else the service
 * root's Vendor; reads go through the report's cache.
 */
async function detectVendorRedfish(lib: typeof RedfishLib, reader: ReadCache, signal?: AbortSignal, systemPath?: string) {
  const options = signalOf({ signal });
  try {
    const root = await lib.readServiceRoot(reader, options);
    // the reported System's path may be gone (the BMC's tree changed): then the collection's first
    const known = systemPath === undefined ? undefined : await lib.readSystem(reader, systemPath, options).catch((err: unknown) => (isBmcError(err, 'ABORTED') ? Promise.reject(err) : undefined));
    const first = known !== undefined || root.systems === undefined ? undefined : (await reader.members(root.systems, root.expand, options))[0];
    const system = known ?? (first === undefined ? undefined : await lib.readSystem(reader, first, options));
    return vendorOfManufacturer(system?.manufacturer || root.vendor);
  } catch (err) {
    if (isBmcError(err, 'ABORTED')) throw err;
    return undefined;
  }
}

/** What the trust gate needs: where, how long (the probe as a Redfish connect; the IPMI proof a third of the deadline, 1 to 3 s), and the IPMI proof. */
function trustContext(o: ConnectOptions, protocol: Protocol, ipmi: IpmiOutband, port: number) {
  const timeoutMs = o.timeoutMs ?? 20_000;
  return {
    host: o.host,
    port,
    timeoutMs: Math.min(timeoutMs, 10_000),
    ...(o.redfishLegacyTls === true ? { legacyTls: true } : {}),
    proofTimeoutMs: Math.round(Math.min(3000, Math.max(1000, timeoutMs / 3))),
    ...(o.signal ? { signal: o.signal } : {}),
    ...(protocol === 'redfish' ? {} : { prove: async (signal: AbortSignal) => void (await ipmi.session({ signal })) }),
    ...(o.onAnswer ? { onAnswer: o.onAnswer } : {}),
  };
}

async function detectVendorIpmi(ipmi: IpmiOutband, signal?: AbortSignal) {
  try {
    return vendorOfIana((await ipmi.deviceId(signal ? { signal } : {})).manufacturerId);
  } catch (err) {
    if (isBmcError(err, 'AUTH_FAILED')) throw err;
    return undefined;
  }
}
