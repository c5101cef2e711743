/**
 * The daemon's status of every BMC, fed through small hooks: the lease watcher's view
 * (`leases`), the report cycle (`read`, `placed`, `reported`: a `ReportObserver`), the command
 * runner (`commandResult`) and the console hub (`consoleViewers`). Nothing below it imports it.
 *
 * What is told by machine UUID (the report's times, command results, firmware events) lands on
 * the row of the BMC whose entry went into the report body (`placed`), not on the BMC read last
 * with that UUID: a second BMC claiming it is left out of the report, and shown so.
 *
 * Bounded: one entry per BMC of the current leases (keyed by MAC), plus BMCs whose lease vanished
 * for `graceMs` (at most `maxVanished` of them, the oldest dropped first); command times for the
 * last hour, at most `maxCommandTimes`.
 */
import type { Lease } from '../leases/types.js';
import { boundedText } from '../report/bounds.js';
import { MIN_REDACTED_SECRET_CHARS } from '../secret-text.js';
import type { BmcReadOutcome, BodyBmc, LeftOutBmc, ReportObserver } from '../report/cycle.js';
import { factsOf, problemOf } from './reason.js';
import { isProblem, STATE_ORDER, type BmcState, type BmcStatus, type CaptureState, type LastCommand, type LastRead, type Problem, type ProblemReason, type StatusDocument, type StatusSummary } from './types.js';

/** What the store needs of a command result (commands/runner's CommandResult fits). */
export interface CommandResultLike {
  machineId: string;
  command: string;
  ok: boolean;
  error?: string;
  code?: string;
  durationMs: number;
  startedAt: string;
  dropped?: 'stale' | 'overflow' | 'superseded' | 'firmware-update';
}

/** What the store needs of a firmware job event (commands/firmware-jobs' FirmwareEvent fits). */
export interface FirmwareEventLike {
  machineId: string;
  phase: string;
  ok: boolean;
  error?: string;
  code?: string;
  durationMs?: number;
  job?: { acceptedAt: string };
}

export interface StatusStoreOptions {
  partition: string;
  /** how long a BMC whose lease vanished stays listed */
  graceMs: number;
  /** replaced by [redacted] in every message (BMC password, HMAC key, console token) */
  secrets?: readonly string[];
  maxVanished?: number;
  maxCommandTimes?: number;
  now?: () => number;
}

interface Entry {
  ip: string;
  mac: string;
  hostname?: string;
  expires: string;
  seenSince: number;
  vanishedAt?: number;
  vendor?: string;
  model?: string;
  uuid?: string;
  power?: BmcStatus['power'];
  led?: BmcStatus['led'];
  bmcVersion?: string;
  biosVersion?: string;
  protocols?: BmcStatus['protocols'];
  lastRead?: LastRead;
  /** left out of the last report body that had this BMC's read: until a body takes it, or it reads another UUID */
  leftOut?: { uuid: string; problem: Problem };
  consecutiveFailures: number;
  failingSince?: number;
  lastSuccessAt?: number;
  lastReportAt?: number;
  lastCommand?: LastCommand;
}

export interface StatusView {
  /** which machines the reader may see (the console's authorisation); default all */
  mayView?: (uuid: string | undefined) => boolean;
}

export interface StatusStore extends ReportObserver {
  placed(entries: ReadonlyArray<{ uuid: string; bmc: BodyBmc }>, leftOut: readonly LeftOutBmc[]): void;
  leases(current: readonly Lease[]): void;
  commandResult(result: CommandResultLike): void;
  /** a firmware job's event: its last command is UPDATE-FIRMWARE with the job's phase; counted once, when accepted or refused */
  firmwareEvent(event: FirmwareEventLike): void;
  /** the console hub's viewers per machine id, read when a status is built */
  consoleViewers(count: () => ReadonlyMap<string, number>): void;
  /** every BMC's status; what one console client may see of it is cut from it as JSON (serialised.ts) */
  document(): StatusDocument;
  /** per BMC of the current leases: up (last read succeeded) and the last success, for the metrics */
  liveEntries(): Array<{ ip: string; mac: string; up: boolean | undefined; lastSuccessAt: number | undefined }>;
  /** the console capture's state per machine id (held or gap; off when missing), read when a status is built */
  consoleCapture(states: () => ReadonlyMap<string, Exclude<CaptureState, 'off'>>): void;
  /** changes with every update, and with any change of a machine's console viewers or capture state (seen when called), for live updates */
  revision(): string;
}

const iso = (ms: number) => new Date(ms).toISOString();
const expiresText = (e: Lease['expires']) => (e === 'never' ? 'never' : e.toISOString());

function ipKey(ip: string): number {
  return ip.split('.').reduce((n, part) => n * 256 + (Number(part) || 0), 0);
}

function sameEntries<V>(a: ReadonlyMap<string, V>, b: ReadonlyMap<string, V>): boolean {
  if (a.size !== b.size) return false;
  for (const [k, v] of a) if (b.get(k) !== v) return false;
  return true;
}

/** Why a BMC read well is not in the report: another BMC holds its machine UUID. */
function leftOutProblem(left: LeftOutBmc): Problem {
  return { reason: left.why, code: 'UUID_CONFLICT', message: `left out of the report: ${whoHolds(left)}` };
}

/** The BMC that holds the UUID, as the left-out one's status names it. */
function whoHolds({ uuid, why, heldBy, heldByMac, heldByMoved, keptAs }: LeftOutBmc): string {
  if (why === 'duplicate') return `BMC ${heldBy} reports machine UUID ${uuid} too and comes first in this cycle`;
  if (why === 'owners-unreadable' && keptAs !== undefined) return `no BMC is known for machine UUID ${uuid} and the UUID owners file ${heldBy}, which may name one, did not parse; it is kept aside as ${keptAs} until it is put back fixed or removed`;
  if (why === 'owners-unreadable') return `no BMC is known for machine UUID ${uuid} and the UUID owners file ${heldBy}, which may name one, cannot be read`;
  // heldBy is the left-out BMC's own address here (the known BMC's old one): the known BMC is named by its MAC
  if (heldByMoved) return `machine UUID ${uuid} is held by the BMC known for it (MAC ${heldByMac ?? 'unknown'}), which had this address and moved to another one, still leased`;
  return `machine UUID ${uuid} is held by BMC ${heldBy}, known for it, whose address is still leased to the same MAC`;
}

/**
 * The last read as shown: a BMC read well but left out of the report (its read after that too,
 * until a body takes it) is degraded with the reason, whatever the read's own problem (a Redfish
 * one gives way to it: the BMC is not reported at all); a failed read shows as it was.
 */
function shownRead(e: Entry, read: LastRead): LastRead {
  if (!e.leftOut || read.outcome === 'failed') return read;
  return { ...read, outcome: 'degraded', problem: e.leftOut.problem };
}

function stateOf(e: Entry): BmcState {
  if (e.vanishedAt !== undefined) return 'vanished';
  if (!e.lastRead) return 'pending';
  const read = shownRead(e, e.lastRead);
  if (read.outcome === 'failed') return 'failing';
  return read.outcome === 'degraded' ? 'degraded' : 'ok';
}

/** The counts of the summary over the rows shown (a console client's view counts only its machines). */
export function summarize(list: readonly BmcStatus[], commandsLastHour: number): StatusSummary {
  const s: StatusSummary = { bmcs: 0, reachable: 0, failing: 0, degraded: 0, pending: 0, vanished: 0, byReason: {}, commandsLastHour };
  for (const b of list) {
    if (b.state === 'vanished') {
      s.vanished++;
      continue;
    }
    s.bmcs++;
    if (b.state === 'ok' || b.state === 'degraded') s.reachable++;
    if (b.state === 'failing') s.failing++;
    if (b.state === 'degraded') s.degraded++;
    if (b.state === 'pending') s.pending++;
    const reason: ProblemReason | undefined = b.lastRead?.problem?.reason;
    if (reason && (b.state === 'failing' || b.state === 'degraded')) s.byReason[reason] = (s.byReason[reason] ?? 0) + 1;
  }
  return s;
}

export function createStatusStore(o: StatusStoreOptions): StatusStore {
  const now = o.now ?? Date.now;
  const secrets = (o.secrets ?? []).filter((s) => s.length >= MIN_REDACTED_SECRET_CHARS);
  const maxVanished = o.maxVanished ?? 1024;
  const maxCommandTimes = o.maxCommandTimes ?? 100_000;
  const entries = new Map<string, Entry>();
  const byUuid = new Map<string, Entry>();
  const commandTimes: number[] = [];
  let viewers: () => ReadonlyMap<string, number> = () => new Map();
  let captures: () => ReadonlyMap<string, Exclude<CaptureState, 'off'>> = () => new Map();
  /**
   * the viewers and capture states as revision() last saw them: any difference is a change. A
   * count of them missed some (a capture starting in a gap, one in a gap or held elsewhere that
   * ends, a viewer or a held console moving from one machine to another between two looks)
   */
  let seenViewers: ReadonlyMap<string, number> = new Map();
  let seenCaptures: ReadonlyMap<string, Exclude<CaptureState, 'off'>> = new Map();
  let rev = 0;

  function prune(): void {
    const t = now();
    const vanished = [...entries.values()].filter((e) => e.vanishedAt !== undefined).sort((a, b) => a.vanishedAt! - b.vanishedAt!);
    vanished.forEach((e, i) => {
      if (t - e.vanishedAt! > o.graceMs || vanished.length - i > maxVanished) drop(e);
    });
    while (commandTimes.length > 0 && t - commandTimes[0]! > 3_600_000) commandTimes.shift();
  }

  function countCommand(): void {
    commandTimes.push(now());
    if (commandTimes.length > maxCommandTimes) commandTimes.splice(0, commandTimes.length - maxCommandTimes);
    rev++;
  }

  function drop(e: Entry): void {
    entries.delete(e.mac);
    if (e.uuid && byUuid.get(e.uuid) === e) byUuid.delete(e.uuid);
    rev++;
  }

  function toStatus(e: Entry, t: number, v: ReadonlyMap<string, number>, c: ReadonlyMap<string, Exclude<CaptureState, 'off'>>): BmcStatus {
    return {
      ip: e.ip,
      mac: e.mac,
      ...(e.hostname !== undefined ? { hostname: e.hostname } : {}),
      state: stateOf(e),
      lease: { seenSince: iso(e.seenSince), ageSeconds: Math.max(0, Math.round((t - e.seenSince) / 1000)), expires: e.expires, ...(e.vanishedAt !== undefined ? { vanishedAt: iso(e.vanishedAt) } : {}) },
      ...(e.vendor !== undefined ? { vendor: e.vendor } : {}),
      ...(e.model !== undefined ? { model: e.model } : {}),
      ...(e.uuid !== undefined ? { uuid: e.uuid } : {}),
      ...(e.power !== undefined ? { power: e.power } : {}),
      ...(e.led !== undefined ? { led: e.led } : {}),
      ...(e.bmcVersion !== undefined ? { bmcVersion: e.bmcVersion } : {}),
      ...(e.biosVersion !== undefined ? { biosVersion: e.biosVersion } : {}),
      ...(e.protocols ? { protocols: e.protocols } : {}),
      ...(e.lastRead ? { lastRead: shownRead(e, e.lastRead) } : {}),
      failures: { consecutive: e.consecutiveFailures, ...(e.failingSince !== undefined ? { since: iso(e.failingSince) } : {}) },
      ...(e.lastSuccessAt !== undefined ? { lastSuccessAt: iso(e.lastSuccessAt) } : {}),
      ...(e.lastReportAt !== undefined ? { lastReportAt: iso(e.lastReportAt) } : {}),
      ...(e.lastCommand ? { lastCommand: e.lastCommand } : {}),
      // the machine's console is the row's that holds its UUID: a claimant left out of the body shows none
      console: holdsConsole(e) ? { viewers: v.get(e.uuid!) ?? 0, capture: c.get(e.uuid!) ?? 'off' } : { viewers: 0, capture: 'off' },
    };
  }

  /** the row speaks for its machine's console: it has a UUID, no other row holds it, and it was not left out of the body */
  function holdsConsole(e: Entry): boolean {
    return e.uuid !== undefined && (byUuid.get(e.uuid) ?? e) === e && e.leftOut === undefined;
  }

  function readDone(lease: Lease, outcome: BmcReadOutcome): void {
    const e = entries.get(lease.mac);
    if (!e) return; // a lease that vanished while it was read
    const t = now();
    const at = iso(t);
    if (outcome.ok) {
      const r = outcome.report;
      const problem = r.redfishProblem ? problemOf(r.redfishProblem, secrets, 'Redfish: ') : undefined;
      e.lastRead = { at, durationMs: outcome.durationMs, outcome: problem ? 'degraded' : 'ok', ...(problem ? { problem } : {}) };
      e.consecutiveFailures = 0;
      delete e.failingSince;
      e.lastSuccessAt = t;
      e.vendor = outcome.vendor;
      // a BMC's words, bounded as the report's are: the status document holds them for every client
      const model = boundedText(r.fru.product_part_number ?? r.fru.board_part_number);
      if (model !== undefined && model !== '') e.model = model;
      if (e.uuid !== r.uuid) {
        if (e.uuid && byUuid.get(e.uuid) === e) byUuid.delete(e.uuid);
        e.uuid = r.uuid;
        delete e.leftOut;
      }
      // byUuid is set once the body took this BMC's entry (placed): a second BMC claiming the
      // UUID, left out of the report, must not take the machine's report times and commands
      e.power = r.powerState;
      e.led = r.indicatorLED;
      e.bmcVersion = boundedText(r.bmcVersion) ?? '';
      e.biosVersion = boundedText(r.biosVersion) ?? '';
      e.protocols = { report: r.source, fields: { ...(r.fieldSources ?? {}) } as Record<string, 'redfish' | 'ipmi'> };
    } else {
      const problem = problemOf(factsOf(outcome.error), secrets);
      e.lastRead = { at, durationMs: outcome.durationMs, outcome: 'failed', problem };
      if (e.consecutiveFailures === 0) e.failingSince = t;
      e.consecutiveFailures++;
    }
    rev++;
  }

  /** the row of a BMC the report body names: by its MAC (the store's key), else by its address */
  function entryOf(bmc: BodyBmc): Entry | undefined {
    if (bmc.mac !== undefined) return entries.get(bmc.mac);
    for (const e of entries.values()) if (e.ip === bmc.ip && e.vanishedAt === undefined) return e;
    return undefined;
  }

  function placed(inBody: ReadonlyArray<{ uuid: string; bmc: BodyBmc }>, leftOut: readonly LeftOutBmc[]): void {
    for (const { uuid, bmc } of inBody) {
      const e = entryOf(bmc);
      if (!e || e.uuid !== uuid) continue;
      byUuid.set(uuid, e);
      delete e.leftOut;
    }
    for (const left of leftOut) {
      const { uuid, bmc } = left;
      const e = entryOf(bmc);
      if (!e || e.uuid !== uuid) continue;
      if (byUuid.get(uuid) === e) byUuid.delete(uuid);
      e.leftOut = { uuid, problem: leftOutProblem(left) };
    }
    rev++;
  }

  return {
    placed,
    leases(current) {
      const t = now();
      const seen = new Set<string>();
      for (const l of current) {
        seen.add(l.mac);
        const e = entries.get(l.mac);
        if (!e) {
          entries.set(l.mac, { ip: l.ip, mac: l.mac, ...(l.hostname !== undefined ? { hostname: l.hostname } : {}), expires: expiresText(l.expires), seenSince: t, consecutiveFailures: 0 });
          rev++;
          continue;
        }
        const expires = expiresText(l.expires);
        if (e.ip !== l.ip || e.expires !== expires || e.vanishedAt !== undefined || e.hostname !== l.hostname) {
          if (e.vanishedAt !== undefined) e.seenSince = t;
          e.ip = l.ip;
          e.expires = expires;
          if (l.hostname !== undefined) e.hostname = l.hostname;
          else delete e.hostname;
          delete e.vanishedAt;
          rev++;
        }
      }
      for (const e of entries.values()) {
        if (!seen.has(e.mac) && e.vanishedAt === undefined) {
          e.vanishedAt = t;
          rev++;
        }
      }
      prune();
    },
    read: readDone,
    reported(uuids, at) {
      for (const u of uuids) {
        const e = byUuid.get(u);
        if (e) e.lastReportAt = at.getTime();
      }
      rev++;
    },
    commandResult(r) {
      countCommand();
      const e = byUuid.get(r.machineId);
      if (!e) return;
      e.lastCommand = {
        name: r.command,
        at: r.startedAt,
        outcome: r.dropped ? 'dropped' : r.ok ? 'ok' : 'failed',
        durationMs: r.durationMs,
        ...(r.code !== undefined ? { code: r.code } : {}),
        ...(r.error !== undefined ? { message: problemOf({ code: r.code ?? 'UNKNOWN', message: r.error }, secrets).message } : {}),
      };
      rev++;
    },
    firmwareEvent(f) {
      if (f.phase === 'accepted' || f.phase === 'refused') countCommand();
      const e = byUuid.get(f.machineId);
      if (!e || f.phase === 'progress') return;
      e.lastCommand = {
        name: `UPDATE-FIRMWARE (${f.phase})`,
        at: f.job?.acceptedAt ?? iso(now()),
        outcome: f.ok ? 'ok' : 'failed',
        durationMs: Math.max(0, Math.round(f.durationMs ?? 0)),
        ...(f.code !== undefined ? { code: f.code } : {}),
        ...(f.error !== undefined ? { message: problemOf({ code: f.code ?? 'UNKNOWN', message: f.error }, secrets).message } : {}),
      };
      rev++;
    },
    consoleViewers(count) {
      viewers = count;
    },
    consoleCapture(states) {
      captures = states;
    },
    document() {
      prune();
      const t = now();
      // a console session with no viewer (capture on, or one closing) shows as none on the page
      const v = new Map([...viewers()].filter(([, n]) => n > 0));
      const c = captures();
      const list = [...entries.values()].map((e) => toStatus(e, t, v, c));
      list.sort((a, b) => STATE_ORDER.indexOf(a.state) - STATE_ORDER.indexOf(b.state) || ipKey(a.ip) - ipKey(b.ip));
      return { version: 1, generatedAt: iso(t), partition: o.partition, graceSeconds: Math.round(o.graceMs / 1000), summary: summarize(list, commandTimes.length), bmcs: list };
    },
    liveEntries() {
      return [...entries.values()]
        .filter((e) => e.vanishedAt === undefined)
        .map((e) => ({ ip: e.ip, mac: e.mac, up: e.lastRead ? e.lastRead.outcome !== 'failed' : undefined, lastSuccessAt: e.lastSuccessAt }));
    },
    revision() {
      // a console session with no viewer (capture on, or one closing) shows as none on the page
      const v = new Map([...viewers()].filter(([, n]) => n > 0));
      const c = captures();
      if (!sameEntries(v, seenViewers) || !sameEntries(c, seenCaptures)) {
        seenViewers = new Map(v);
        seenCaptures = new Map(c);
        rev++;
      }
      return `${rev}/${commandTimes.length}`;
    },
  };
}

export { isProblem };
