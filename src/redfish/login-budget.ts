/**
 * The logins a BMC refused, per BMC, user and password (loginBudgetKey), shared by every Redfish client of the process: a
 * BMC counts failed logins per account, not per client. A firmware job's client, the commands'
 * clients and each report read's new client each sent their own refused logins before, so one
 * account on one BMC back from a restart could get several times the refusals a client allows
 * itself (RELOGIN_AFTER_RESTART) and be locked out.
 *
 * The record of a (BMC, user) counts its refused logins (401/403 to a session POST or to the
 * Basic check) while each came within `windowMs` of the one before, as a BMC's lockout counter
 * does (Redfish AccountService AccountLockoutCounterResetAfter: the time after the last failed
 * login that resets the count); a login the BMC takes clears it. While it stands, no client of
 * the process sends a login sooner than `everyMs` after the last refusal, nor at all once
 * `refusals` were refused, until the window has passed.
 *
 * Report worker threads have a module instance of their own: each read brings its BMC's record
 * from the main thread's budget and sends what it changes back (report/worker-thread.ts), so the
 * process keeps one record per (BMC, user).
 */
import { createHash } from 'node:crypto';

/** What is remembered of the refused logins of one (BMC, user); plain data, so that it can cross a worker's port. */
export interface LoginRefusals {
  /** refused logins, each within the window of the one before */
  count: number;
  /** when the last one was refused (Date.now() scale) */
  lastAt: number;
  /** the last refusal's HTTP status (401, 403) and message (secrets already scrubbed) */
  status: number;
  message: string;
  /** whether the client refused last had seen the BMC go away before (a restart: the refusal may pass) */
  away: boolean;
  /** the refusal was Basic's after the BMC's session slots were all taken (session-limit.ts): said as NO_SESSION_SLOTS, not a wrong password */
  slotsTaken?: true;
}

/** A refused login as the budget counts it. */
export type Refusal = Omit<LoginRefusals, 'count' | 'lastAt'>;

/** How many refused logins a (BMC, user) may get, how far apart, and how long a refusal is remembered. */
export interface LoginPolicy {
  refusals: number;
  everyMs: number;
}

export interface LoginBudget {
  /** how long a refusal is remembered after the last one */
  readonly windowMs: number;
  /** the record of `key` if one stands at `now` */
  get(key: string, now?: number): LoginRefusals | undefined;
  /** a login of `key` the BMC refused: the record after it */
  refused(key: string, refusal: Refusal, now?: number): LoginRefusals;
  /** a login of `key` the BMC took: its record goes */
  taken(key: string): void;
}

/** Why no login is sent now: until when, and whether the budget is spent (no login until the window passed). */
export interface LoginHold {
  until: number;
  spent: boolean;
}

/**
 * Refused logins are remembered 15 minutes after the last: as long as pam_faillock's default
 * fail_interval (900 s; OpenBMC authenticates through PAM), longer than the one-minute windows of
 * simpler counters. A BMC that counts failures until a successful login only is not outlasted by
 * any window: 3 refusals, then at most 3 more per quarter hour.
 */
export const LOGIN_REFUSALS_WINDOW_MS = 15 * 60_000;
/** (BMC, user) pairs remembered: a partition's BMCs with room to spare; the oldest record goes first. */
export const LOGIN_BUDGET_MAX_KEYS = 20_000;

/**
 * The key of a BMC (its address as given, and its Redfish port), user and password (a digest of
 * it, never the password); the same in the main thread and in a report worker. The password is in
 * it so that one password's refusals do not hold back another's logins: a command event carrying
 * an outdated password for the same user would otherwise stop the report's logins with the
 * daemon's right one for a quarter hour, and a password the operator corrected in the daemon's
 * configuration would wait for the window. Each password gets the budget's refusals of its own:
 * with the two a partition uses (the daemon's and metal-api's events'), at most twice the budget.
 */
export const loginBudgetKey = (host: string, port: number, user: string, password: string): string =>
  `${host}\u0000${port}\u0000${user}\u0000${createHash('sha256').update(password, 'utf8').digest('base64')}`;

/** `record` as it stands at `now`: undefined once `windowMs` passed since its last refusal. */
export function standing(record: LoginRefusals | undefined, now: number, windowMs: number): LoginRefusals | undefined {
  return record !== undefined && now - record.lastAt < windowMs ? record : undefined;
}

/** `record` with one more refusal at `now` (a count afresh once the window passed). */
export function withRefusal(record: LoginRefusals | undefined, refusal: Refusal, now: number, windowMs: number): LoginRefusals {
  const before = standing(record, now, windowMs);
  return { count: (before?.count ?? 0) + 1, lastAt: now, status: refusal.status, message: refusal.message, away: refusal.away, ...(refusal.slotsTaken ? { slotsTaken: true as const } : {}) };
}

/** Why a login is not to be sent at `now` under `policy`, or undefined when it may go. */
export function loginHold(record: LoginRefusals | undefined, policy: LoginPolicy, now: number, windowMs: number): LoginHold | undefined {
  const r = standing(record, now, windowMs);
  if (r === undefined) return undefined;
  if (r.count >= policy.refusals) return { until: r.lastAt + windowMs, spent: true };
  const next = r.lastAt + policy.everyMs;
  return now < next ? { until: next, spent: false } : undefined;
}

/** A budget of its own (tests, a worker's read); the process's is `processLoginBudget`. */
export function createLoginBudget(o: { windowMs?: number; maxKeys?: number } = {}): LoginBudget {
  const windowMs = o.windowMs ?? LOGIN_REFUSALS_WINDOW_MS;
  const maxKeys = o.maxKeys ?? LOGIN_BUDGET_MAX_KEYS;
  const records = new Map<string, LoginRefusals>();

  function makeRoom(now: number): void {
    for (const [key, record] of records) if (standing(record, now, windowMs) === undefined) records.delete(key);
    // still full: the record refused longest ago goes (Map order is the order of the last change)
    for (const key of records.keys()) {
      if (records.size < maxKeys) break;
      records.delete(key);
    }
  }

  return {
    windowMs,
    get(key, now = Date.now()) {
      const record = standing(records.get(key), now, windowMs);
      if (record === undefined) records.delete(key);
      return record;
    },
    refused(key, refusal, now = Date.now()) {
      const record = withRefusal(records.get(key), refusal, now, windowMs);
      records.delete(key);
      if (records.size >= maxKeys) makeRoom(now);
      records.set(key, record);
      return record;
    },
    taken(key) {
      records.delete(key);
    },
  };
}

/**
 * A read's view of the budget in a report worker: the record its BMC had in the main thread when
 * the read was sent, its changes told to `tell` for the main thread's budget.
 */
export function budgetOfRead(key: string, brought: LoginRefusals | undefined, tell: (change: { refused: Refusal } | { taken: true }) => void, windowMs = LOGIN_REFUSALS_WINDOW_MS): LoginBudget {
  let record = brought;
  return {
    windowMs,
    get(k, now = Date.now()) {
      if (k !== key) return undefined;
      record = standing(record, now, windowMs);
      return record;
    },
    refused(k, refusal, now = Date.now()) {
      const next = withRefusal(k === key ? record : undefined, refusal, now, windowMs);
      if (k !== key) return next;
      record = next;
      tell({ refused: refusal });
      return next;
    },
    taken(k) {
      if (k !== key) return;
      record = undefined;
      tell({ taken: true });
    },
  };
}

/** The budget every Redfish client of this thread shares unless given another. */
export const processLoginBudget: LoginBudget = createLoginBudget();
