/**
 * Redfish sessions kept from one report read of a BMC to the next (METAL_BMC_REPORT_REDFISH_SESSION_MAX_AGE).
 * A report read used to log in and log out every cycle: two of a BMC's six or seven requests, and
 * the login the dearest of them on the BMC (a password check, PAM on OpenBMC), and each login and
 * logout a line in the BMC's audit log (iDRAC's Lifecycle Log) every cycle. A kept session is resumed by the next read instead, which also reuses the service root
 * read in that session, so the read starts at the collections: one round trip fewer on its path.
 *
 * The rules (`sessionPlan`):
 * - a session is resumed only by a read of the same BMC (address and port, and its MAC where the
 *   lease names one: `redfishSessionKey`), for the same user, over the same pinned certificate
 *   (trust on first use): its token goes nowhere else;
 * - it is used for at most `maxAgeMs`, then deleted and replaced by a new login (the service root
 *   is read again with it);
 * - a BMC that dropped the resumed session `MAX_MISSES` reads in a row (an idle timeout shorter
 *   than the report interval, reboots) gets a login and a logout every read, as before, until
 *   `maxAgeMs` has passed;
 * - a resumed session the BMC answered with errors only, none with success, is forgotten: a BMC
 *   that answers a token it no longer knows with 403 or 500 instead of 401 gets a login in the
 *   next read (the client logs in again at once on a 401, and on a 403 before any success).
 *
 * The sessions are kept in the state folder (`openRedfishSessionFile`, mode 0600, tokens only, no
 * service roots), so a restarted or crashed daemon resumes them rather than leaving one open
 * session per BMC behind on every start: a BMC has few session slots. They are not logged out at
 * shutdown for the same reason; the BMC ends a session nobody uses after its own idle timeout.
 */
import type { Logger } from '../log.js';
import { setNewest } from '../net/newest-map.js';
import { obj, odataId, prop, str } from '../redfish/json.js';
import { keptLayout, type InventoryLayout } from '../redfish/layout.js';
import { loadStateEntries, stateFileWriter } from './private-file.js';
import { trustKey } from './trust-key.js';

export interface KeptRedfishSession {
  user: string;
  /** the session's token; absent: no session kept for now (see `misses`) */
  token?: string;
  /** where the session is deleted */
  location?: string;
  /** SHA-256 of the certificate it was made over, when certificates are pinned (trust on first use) */
  pin?: string;
  /** when it was made (ms since the epoch) */
  since: number;
  /** resumed sessions the BMC had dropped, in a row */
  misses: number;
  /** the service root read in this session (memory only): the next read starts at the collections */
  root?: Record<string, unknown>;
  /**
   * where the last read in this session found the System, Manager, Chassis and power data (memory
   * only, redfish/layout.ts): the next read asks for them by path instead of walking the collections
   */
  layout?: InventoryLayout;
}

export interface RedfishSessionKeeper {
  /** how long one session serves */
  readonly maxAgeMs: number;
  get(bmc: string): KeptRedfishSession | undefined;
  /** keeps `session` for `bmc`; undefined forgets it */
  set(bmc: string, session: KeptRedfishSession | undefined): void;
}

/**
 * A BMC's key among the kept sessions: its Redfish address and port (443 when not given) and, when
 * its MAC is known (its lease), its trust key (`trustKey`: the MAC as the trust store keys it). The
 * pin alone does not tell BMCs apart where a CA verifies the certificates (none is pinned): a BMC
 * replaced at the same leased address would be offered its predecessor's token. Under its own key
 * it logs in; the predecessor's entry is never sent, and swept out with the BMCs no read touches.
 */
export function redfishSessionKey(host: string, port: number | undefined, mac?: string): string {
  const where = `${host}:${port ?? 443}`;
  return mac ? `${where} ${trustKey({ mac, ip: host })}` : where;
}

/** Dropped resumed sessions in a row after which a BMC logs in and out every read for `maxAgeMs`. */
export const MAX_MISSES = 2;

/** A token or session path longer than this is not kept (real tokens are 16–64 characters): the session is logged out as before. */
export const MAX_KEPT_TEXT = 4096;

/** A service root larger than this is not kept (real ones are 1–4 KiB). */
export const MAX_KEPT_ROOT_BYTES = 16 * 1024;

/** What one read does with the kept entry: resume its session, delete it, keep its own session at the end. */
export interface SessionPlan {
  /** the entry as the read found it */
  kept?: KeptRedfishSession;
  resume?: KeptRedfishSession;
  retire?: KeptRedfishSession;
  keep: boolean;
}

export function sessionPlan(kept: KeptRedfishSession | undefined, now: { user: string; pin: string | undefined; nowMs: number; maxAgeMs: number }): SessionPlan {
  if (kept === undefined || now.maxAgeMs <= 0) return { keep: now.maxAgeMs > 0 };
  // another certificate at this address: its token is not sent, not even to delete it
  if (kept.pin !== now.pin) return { kept, keep: true };
  const age = now.nowMs - kept.since;
  const current = age >= 0 && age < now.maxAgeMs;
  if (kept.token === undefined) return { kept, keep: !current };
  if (kept.user !== now.user || !current) return { kept, retire: kept, keep: true };
  return { kept, resume: kept, keep: true };
}

/** Where a read leaves the BMC's entry, from what it planned and the session its client ends with. */
export function sessionAfterRead(
  plan: SessionPlan,
  end: {
    user: string;
    pin: string | undefined;
    nowMs: number;
    session: { token: string; location: string | undefined; resumed: boolean; refused?: boolean } | undefined;
    root: unknown;
    /** the layout the read's inventory found; null: it found none; undefined: it read no inventory (the kept one stays) */
    layout?: InventoryLayout | null;
  },
): KeptRedfishSession | undefined {
  if (!plan.keep) return plan.kept;
  if (end.session === undefined) return undefined;
  const { token, location, resumed } = end.session;
  // answered with errors only (a BMC that refuses a token it no longer knows with 403 or 500): the next read logs in
  if (resumed && end.session.refused === true) return undefined;
  if (token.length > MAX_KEPT_TEXT || (location?.length ?? 0) > MAX_KEPT_TEXT) return undefined;
  const pin = end.pin === undefined ? {} : { pin: end.pin };
  const loc = location === undefined ? {} : { location };
  if (resumed && plan.resume) {
    const { layout: before, ...resumedEntry } = plan.resume;
    const layout = end.layout === undefined ? before : (end.layout ?? undefined);
    return { ...resumedEntry, misses: 0, ...(layout ? { layout } : {}) };
  }
  const misses = plan.resume ? plan.resume.misses + 1 : 0;
  // the BMC drops what it is given to keep: no session kept until maxAgeMs has passed
  if (misses >= MAX_MISSES) return { user: end.user, ...pin, since: end.nowMs, misses };
  const root = keptRoot(end.root);
  // a login that replaced a dropped session (a BMC reboot, a firmware update) keeps no layout: it
  // was read through the old session's, and would carry its chassis fields past their age
  return { user: end.user, token, ...loc, ...pin, since: end.nowMs, misses, ...(root && !plan.resume ? { root } : {}), ...(end.layout && !plan.resume ? { layout: end.layout } : {}) };
}

/** Service root properties a report read uses (parseServiceRoot): identity strings, links, `$expand` support. */
const ROOT_STRINGS = ['RedfishVersion', 'UUID', 'Vendor', 'Product'] as const;
const ROOT_LINKS = ['Systems', 'Chassis', 'Managers', 'SessionService', 'UpdateService', 'Tasks'] as const;
const EXPAND_FLAGS = ['ExpandAll', 'NoLinks', 'Levels', 'Links'] as const;

/**
 * The service root to keep: of a JSON object of bounded size, only what a report read uses of it,
 * so a kept root costs a few hundred bytes whatever the BMC sent (a 16 KiB root of small nested
 * objects is ~100 KiB of heap parsed, one per address a device on the BMC network leases).
 */
export function keptRoot(root: unknown): Record<string, unknown> | undefined {
  if (typeof root !== 'object' || root === null || Array.isArray(root)) return undefined;
  try {
    if (JSON.stringify(root).length > MAX_KEPT_ROOT_BYTES) return undefined;
  } catch {
    return undefined;
  }
  const kept: Record<string, unknown> = {};
  for (const key of ROOT_STRINGS) {
    const v = str(root, key);
    if (v !== undefined) kept[key] = v;
  }
  for (const key of ROOT_LINKS) {
    const id = odataId(prop(root, key));
    if (id !== undefined) kept[key] = { '@odata.id': id };
  }
  const sessions = odataId(prop(obj(root, 'Links'), 'Sessions'));
  if (sessions !== undefined) kept.Links = { Sessions: { '@odata.id': sessions } };
  const expand = obj(obj(root, 'ProtocolFeaturesSupported'), 'ExpandQuery');
  if (expand !== undefined) {
    const query: Record<string, unknown> = {};
    for (const flag of EXPAND_FLAGS) if (typeof expand[flag] === 'boolean') query[flag] = expand[flag];
    if (typeof expand.MaxLevels === 'number') query.MaxLevels = expand.MaxLevels;
    kept.ProtocolFeaturesSupported = { ExpandQuery: query };
  }
  return kept;
}

/** Entries are swept out this long after they were made at the earliest (see createRedfishSessionMemory). */
export const SWEEP_AFTER_MIN_MS = 24 * 3_600_000;

/**
 * A keeper in memory, bounded: the BMCs kept longest ago go first, and entries made more than
 * twice `maxAgeMs` and at least SWEEP_AFTER_MIN_MS ago are swept out (at most once per
 * `maxAgeMs`, on a change). Such an entry belongs to a BMC no read has touched for a whole max age
 * and a day (every read of a BMC replaces an entry past its age): one that left the lease file.
 * Its session, if any, ends on the BMC by the BMC's own idle timeout. The day keeps an entry for
 * the next read even where the max age is far shorter than the report interval, so that read
 * still deletes the old session on the BMC.
 */
export function createRedfishSessionMemory(o: { maxAgeMs: number; maxEntries?: number; onChange?: () => void; now?: () => number }): RedfishSessionKeeper & { entries(): Array<[string, KeptRedfishSession]>; readonly size: number } {
  const max = o.maxEntries ?? 100_000;
  const now = o.now ?? Date.now;
  const kept = new Map<string, KeptRedfishSession>();
  let sweptAt = now();
  function sweep(): void {
    const t = now();
    if (t - sweptAt < o.maxAgeMs) return;
    sweptAt = t;
    let swept = 0;
    for (const [bmc, s] of kept) {
      if (t - s.since > Math.max(2 * o.maxAgeMs, SWEEP_AFTER_MIN_MS)) {
        kept.delete(bmc);
        swept++;
      }
    }
    if (swept > 0) o.onChange?.();
  }
  return {
    maxAgeMs: o.maxAgeMs,
    get: (bmc) => kept.get(bmc),
    set(bmc, session) {
      const before = kept.get(bmc);
      if (session === undefined) {
        if (kept.delete(bmc)) o.onChange?.();
      } else {
        setNewest(kept, bmc, session, max);
        if (!sameOnDisk(before, session)) o.onChange?.();
      }
      sweep();
    },
    entries: () => [...kept.entries()],
    get size() {
      return kept.size;
    },
  };
}

/** the fields the file keeps (the service root and the layout stay in memory) */
const ON_DISK = ['user', 'token', 'location', 'pin', 'since', 'misses'] as const;

function sameOnDisk(a: KeptRedfishSession | undefined, b: KeptRedfishSession): boolean {
  return a !== undefined && ON_DISK.every((k) => a[k] === b[k]);
}

function onDisk(s: KeptRedfishSession): Omit<KeptRedfishSession, 'root' | 'layout'> {
  const { root: _root, layout: _layout, ...rest } = s;
  return rest;
}

const optionalString = (v: unknown) => v === undefined || (typeof v === 'string' && v.length > 0 && v.length <= MAX_KEPT_TEXT);

/** An entry read from the file, checked field by field; anything else is dropped. */
export function validKept(v: unknown): v is KeptRedfishSession {
  if (typeof v !== 'object' || v === null) return false;
  const r = v as Record<string, unknown>;
  return (
    typeof r.user === 'string' &&
    r.user.length > 0 &&
    optionalString(r.token) &&
    optionalString(r.location) &&
    optionalString(r.pin) &&
    Number.isSafeInteger(r.since) &&
    Number.isSafeInteger(r.misses) &&
    (r.misses as number) >= 0 &&
    r.root === undefined &&
    r.layout === undefined
  );
}

/**
 * An entry a report worker sends back, checked as the state file's are, its service root bounded;
 * undefined when it is not one. Its layout is kept if it is one (keptLayout), else left out.
 */
export function checkedKept(v: KeptRedfishSession): KeptRedfishSession | undefined {
  const { root, layout, ...rest } = v;
  if (!validKept(rest)) return undefined;
  if (root !== undefined && keptRoot(root) === undefined) return undefined;
  // a layout that is not one is dropped, not the session: the worker left that session open on the BMC
  const checkedLayout = layout === undefined ? undefined : keptLayout(layout);
  return { ...rest, ...(root ? { root } : {}), ...(checkedLayout ? { layout: checkedLayout } : {}) };
}

/** the state file's name under METAL_BMC_STATE_DIR */
export const REDFISH_SESSIONS_FILE = 'redfish-sessions.json';

export interface RedfishSessionFile extends RedfishSessionKeeper {
  readonly file: string;
  /** BMCs with an entry (a session, or none for now: see `misses`) */
  readonly size: number;
  /** sessions kept open on BMCs */
  openSessions(): number;
  /** writes what changed, now */
  flush(): Promise<void>;
  /** flushes and stops the write timer */
  close(): Promise<void>;
}

/**
 * The keeper of `metal-bmc serve`: in memory, and in `file` (JSON, mode 0600, written atomically
 * `writeDelayMs` after a change, once per burst; a read that resumes its session changes nothing).
 * Entries past `maxAgeMs` are not loaded.
 */
export function openRedfishSessionFile(o: { file: string; maxAgeMs: number; logger?: Logger; writeDelayMs?: number; maxEntries?: number; now?: () => number }): RedfishSessionFile {
  const now = o.now ?? Date.now;
  const writer = stateFileWriter({
    file: o.file,
    delayMs: o.writeDelayMs ?? 2000,
    text: () => JSON.stringify({ version: 1, sessions: Object.fromEntries(memory.entries().map(([bmc, s]) => [bmc, onDisk(s)])) }),
    failure: 'cannot write the Redfish session file; sessions are kept in memory',
    logger: o.logger,
  });
  const memory = createRedfishSessionMemory({
    maxAgeMs: o.maxAgeMs,
    now,
    ...(o.maxEntries ? { maxEntries: o.maxEntries } : {}),
    onChange: () => writer.changed(),
  });
  const { dropped } = loadStateEntries({
    file: o.file,
    key: 'sessions',
    what: 'Redfish session file; starting without kept sessions',
    writer,
    ...(o.logger ? { logger: o.logger } : {}),
    take: (bmc, s) => {
      if (!validKept(s) || now() - s.since >= o.maxAgeMs) return false;
      memory.set(bmc, s);
      return true;
    },
  });
  o.logger?.info({ file: o.file, sessions: memory.size, dropped }, 'Redfish sessions kept from the last run');

  return {
    file: o.file,
    maxAgeMs: o.maxAgeMs,
    get: (bmc) => memory.get(bmc),
    set: (bmc, session) => memory.set(bmc, session),
    get size() {
      return memory.size;
    },
    openSessions: () => memory.entries().filter(([, s]) => s.token !== undefined).length,
    flush: writer.flush,
    close: writer.close,
  };
}
