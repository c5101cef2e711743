/**
 * Trust on first use for BMCs: the first time a BMC (by MAC, by IP when no MAC is known) is
 * connected, its Redfish certificate fingerprint (SHA-256 of the leaf DER) and, for SSH
 * consoles, its host key hash are recorded in a state file; later connections pin them, so a
 * device that presents another certificate for a known BMC is refused at the TLS handshake,
 * before any credential is sent. On first contact the BMC proves that it knows the password
 * before the Redfish login: the IPMI RAKP 2 message carries an HMAC keyed with the password,
 * which our client checks before it sends anything derived from the password (RAKP 3). A BMC
 * without IPMI cannot prove anything at first contact: it is trusted, and that is logged and
 * counted. `metal-bmc bmc trust --mac M --reset` forgets a record (a legitimate certificate
 * change); a CA file (METAL_BMC_REDFISH_CA_FILE) replaces the Redfish half by chain verification,
 * never the SSH half (`redfishVerified`): a CA vouches for no SSH host key.
 *
 * The state file holds fingerprints only (no credentials), is written atomically (temporary
 * file, then rename) with mode 0600 and asynchronously, one write per burst of changes, holds at
 * most `maxEntries` records (least recently seen go first) and is re-read when another process
 * (the CLI) changed it.
 */
import { stat } from 'node:fs/promises';
import { BmcError, isBmcError } from '../errors.js';
import type { Logger } from '../log.js';
import { trustKey } from './trust-key.js';
import { fingerprintPrefix, normalizeFingerprint, probeCertificate, type TlsOptions } from '../redfish/tls.js';
import { withFileLock } from './file-lock.js';
import { burstWriter, contentUnknown, fileStamp, asideCopy, KEPT_ASIDE, readStateFile, setAsideUnparsable, stampOf, unreadableEpisode, writePrivateFile, type StateFileRead, type UnreadableFile } from './private-file.js';
import { stateWriteEpisodes } from './state-write-failures.js';

export interface TrustRecord {
  /** SHA-256 (hex) of the Redfish leaf certificate's DER */
  redfishSha256?: string;
  /** SHA-256 (hex) of the SSH host key */
  sshSha256?: string;
  /** the IP address it was last seen at */
  ip?: string;
  /** how the first contact was proven: 'ipmi' (RAKP 2) or 'none' (no IPMI answer; trusted on first use) */
  proof?: 'ipmi' | 'none';
  /** ISO 8601 */
  firstSeen: string;
  lastSeen: string;
}

export interface TrustStore {
  readonly file: string;
  get(key: string): TrustRecord | undefined;
  /**
   * merges `patch` into the record of `key` (creating it, unless the patch records no fingerprint);
   * the file is written with the next burst's write, which drops the change when the record
   * existed here and another process has forgotten it meanwhile (`bmc trust --reset`); undefined
   * when nothing was changed (an address or proof of a record that is not there)
   */
  update(key: string, patch: Partial<Omit<TrustRecord, 'firstSeen' | 'lastSeen'>>): TrustRecord | undefined;
  /** forgets `key`; false when nothing was recorded; written like `update` */
  reset(key: string): boolean;
  list(): Array<[string, TrustRecord]>;
  /** why the file's entry of `key` cannot be used (kept in the file as it is, its BMC refused, until it is fixed or reset); undefined when it can */
  problem(key: string): string | undefined;
  /** the file's entries that cannot be used, each with why */
  problems(): Array<[string, string]>;
  /** writes what changed since the last write, now; resolves when it is on disk (or its failure logged) */
  flush(): Promise<void>;
  /** flushes and stops the write timer; later changes are written again at once */
  close(): Promise<void>;
  /** changes not on disk because their last write failed (kept for the next write), with that failure */
  unwritten(): { changes: number; error: string } | undefined;
  /**
   * why the file, which is there, cannot be read (read again first): while so it is not written
   * (changes wait in `unwritten`) and lookups see only what is in memory
   */
  unreadable(): UnreadableFile | undefined;
  /** the copy of a file that did not parse, moved aside by this process, while it is still there */
  keptAside(): string | undefined;
}

interface StateFile {
  version: 1;
  /** records, and entries that cannot be used kept as they were read */
  bmcs: Record<string, unknown>;
}

/** the state file's name under METAL_BMC_STATE_DIR */
export const TRUST_FILE = 'bmc-trust.json';
const DEFAULT_MAX_ENTRIES = 50_000;
/** changes within this long after the first one go to disk in one write (a report cycle's first contacts) */
const DEFAULT_WRITE_DELAY_MS = 200;

/** Trust on first use applies to self-signed certificates only: a CA file (or the system store, insecure=false) verifies instead. */
export function usesTrustOnFirstUse(redfish: { insecure: boolean; caFile?: string }): boolean {
  return redfish.insecure && (redfish.caFile === undefined || redfish.caFile === '');
}

export { trustKey };

/**
 * An entry of the file as the gate uses it, its fingerprints in the form this process writes
 * (lower-case hex; a hand-pinned `openssl x509 -fingerprint -sha256` form, AB:CD:..., is taken
 * as tlsPolicy takes it), or why it cannot be used: the field, never its value.
 */
function checkRecord(v: unknown): { record: TrustRecord } | { problem: string } {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return { problem: 'the entry is not an object' };
  const r: Record<string, unknown> = { ...(v as Record<string, unknown>) };
  for (const f of ['redfishSha256', 'sshSha256'] as const) {
    if (r[f] === undefined) continue;
    const sha256 = typeof r[f] === 'string' ? normalizeFingerprint(r[f]) : undefined;
    if (sha256 === undefined) return { problem: `${f} is not a SHA-256 fingerprint (64 hex digits, colons allowed)` };
    r[f] = sha256;
  }
  if (r.proof !== undefined && r.proof !== 'ipmi' && r.proof !== 'none') return { problem: 'proof is neither "ipmi" nor "none"' };
  for (const f of ['firstSeen', 'lastSeen'] as const) if (typeof r[f] !== 'string') return { problem: `${f} is missing or not a string` };
  return { record: r as unknown as TrustRecord };
}

/**
 * A change not yet on disk: null for a reset, else what this process changed of the record (not
 * the whole record, so a write laid over a newer file brings back nothing this process did not
 * change). `creates`: the record was absent here when the change began (a first contact); a
 * change of a record that was there (its address, an SSH key beside a pinned certificate) is not
 * written once another process has forgotten the record (`bmc trust --reset`).
 */
type Change = null | { fields: Partial<Omit<TrustRecord, 'firstSeen' | 'lastSeen'>>; firstSeen: string; lastSeen: string; creates: boolean };

/**
 * A patch that records no fingerprint (where a BMC was seen, a pin's proof, a fingerprint
 * forgotten): it describes a record, it never makes one (a record reset while its BMC was being
 * met, `bmc trust --reset`, stays forgotten instead of coming back as an entry without any
 * fingerprint).
 */
export function describesOnly(patch: Partial<Omit<TrustRecord, 'firstSeen' | 'lastSeen'>>): boolean {
  return patch.redfishSha256 === undefined && patch.sshSha256 === undefined;
}

/** a change's fields without what pins the BMC (its fingerprints and the proof they were recorded with): where it was seen, only */
function withoutPin(fields: Partial<Omit<TrustRecord, 'firstSeen' | 'lastSeen'>>): Partial<Omit<TrustRecord, 'firstSeen' | 'lastSeen'>> {
  const { redfishSha256: _r, sshSha256: _s, proof: _p, ...rest } = fields;
  return rest;
}

/** `later` laid over `earlier` (both of one record, in that order) */
function mergeChanges(earlier: Change | undefined, later: Change): Change {
  if (later === null || earlier === undefined || earlier === null) return later;
  return { fields: { ...earlier.fields, ...later.fields }, firstSeen: earlier.firstSeen, lastSeen: later.lastSeen, creates: earlier.creates || later.creates };
}

/**
 * The trust file in memory, written in bursts: `update` and `reset` change memory at once and
 * schedule one asynchronous, atomic write (temporary file, then rename) `writeDelayMs` later, so
 * a report cycle that meets a thousand BMCs for the first time writes the file a few times, not a
 * thousand times, and never blocks the event loop on it. A lookup still sees a change another
 * process (the CLI) made on disk: the file is re-read when it was replaced (another inode, mtime
 * or size), and this process's changes not yet written are laid over what was read: the fields
 * it changed, not whole records, and a change of a record another process has since forgotten
 * only when it is a first contact (`Change`). A write holds the lock `<file>.lock`
 * (file-lock.ts), which the CLI's reset takes too, and reads the file again under it first, so
 * neither process's write undoes what the other wrote meanwhile.
 * `close()` writes what is pending.
 * `keepAsideUnparsable` (default true, the daemon's): a file that does not parse is moved aside;
 * false (the CLI): it is left where it is and taken as unreadable (`NOT_PARSED`), never written
 * over, for a CLI that moved it would leave the daemon reading "missing" and forgetting every pin,
 * its kept-aside gauge at 0.
 */
export function openTrustStore(o: { file: string; logger?: Logger; maxEntries?: number; now?: () => Date; writeDelayMs?: number; lockTimeoutMs?: number; keepAsideUnparsable?: boolean }): TrustStore {
  const maxEntries = o.maxEntries ?? DEFAULT_MAX_ENTRIES;
  const writeDelayMs = o.writeDelayMs ?? DEFAULT_WRITE_DELAY_MS;
  const now = o.now ?? (() => new Date());
  let records = new Map<string, TrustRecord>();
  /**
   * the file's entries that cannot be used, as they were read: written back as they are (an
   * operator's mistyped pin is not erased), their BMCs refused until they are fixed or reset
   */
  let invalid = new Map<string, { entry: unknown; problem: string }>();
  /** what identified the file at the last read or write: a write renames a new file over it (a new inode) */
  let loadedStamp = '';
  /** a file that did not parse, moved aside for the operator */
  const keptCopy = asideCopy(o.file);
  /** changes since the last write started, and those of the write in flight */
  let dirty = new Map<string, Change>();
  let writing = new Map<string, Change>();
  let lastWriteError: string | undefined;

  /** the file's identity now; '' when there is none */
  function stamp(): string {
    return fileStamp(o.file);
  }

  function overlay(changes: Map<string, Change>): void {
    for (const [k, change] of changes) {
      if (change === null) {
        records.delete(k);
        invalid.delete(k);
        continue;
      }
      // an entry that cannot be used was written or edited by another process after this change: it stays until fixed or reset
      if (invalid.has(k)) continue;
      const current = records.get(k);
      // forgotten by another process since this process changed it: only a first contact brings it back
      if (current === undefined && !change.creates) continue;
      // a first contact of a BMC the file holds (met while the file could not be read, or pinned by another process meanwhile): the file's pin came first and stays
      const fields = change.creates && current !== undefined ? withoutPin(change.fields) : change.fields;
      records.set(k, { ...current, ...fields, firstSeen: current?.firstSeen ?? change.firstSeen, lastSeen: change.lastSeen });
    }
  }

  /**
   * a file that is there but cannot be read (root's after `sudo metal-bmc bmc trust --reset`, an
   * I/O error): not written over while so, for this process's records are not all it holds; read
   * again at each use until it can be
   */
  const unreadable = unreadableEpisode({
    file: o.file,
    what: 'BMC trust file',
    consequence: 'it is not written over until it can be read: BMCs are checked against the records in memory, changes are kept there (lost if the process stops first), and it is read again at each use',
    logger: o.logger,
  });

  /** Re-reads the file when it changed on disk since the last read or write, or could not be read then; changes not yet written stay. */
  function refresh(): void {
    const m = stamp();
    if (m === loadedStamp && unreadable.current() === undefined) return;
    loadedStamp = m;
    const read: StateFileRead = m === '' ? { kind: 'missing' } : readStateFile(o.file);
    const wasUnreadable = unreadable.current() !== undefined;
    unreadable.saw(read);
    if (read.kind === 'unreadable') return;
    // what waited for the file goes to it now, not with the next change
    if (wasUnreadable && dirty.size > 0) writer.changed();
    if (read.kind === 'missing') {
      records = new Map();
      invalid = new Map();
    } else {
      try {
        const parsed = JSON.parse(read.text) as Partial<StateFile>;
        const next = new Map<string, TrustRecord>();
        const unusable = new Map<string, { entry: unknown; problem: string }>();
        for (const [k, v] of Object.entries(parsed.bmcs ?? {})) {
          const checked = checkRecord(v);
          if ('record' in checked) next.set(k, checked.record);
          else unusable.set(k, { entry: v, problem: checked.problem });
        }
        records = next;
        invalid = unusable;
        // once per read of a changed file; the gate refuses the BMC (and counts it) at each contact
        for (const [k, { problem }] of unusable) o.logger?.error({ file: o.file, trustKey: k.slice(0, 80), problem }, 'a BMC trust record cannot be used: it is kept in the file as it is and its BMC is refused until the entry is fixed or reset (metal-bmc bmc trust --reset)');
      } catch (err) {
        const moved = setAsideUnparsable(
          {
            file: o.file,
            keepAside: o.keepAsideUnparsable !== false,
            copy: keptCopy,
            unreadable,
            logger: o.logger,
            line: 'cannot read the BMC trust file; it is kept aside, and a BMC without a record in memory (after a start: every BMC) is refused as a first contact until the copy is put back fixed or removed',
          },
          err as Error,
        );
        if (moved) loadedStamp = '';
        return;
      }
    }
    overlay(writing);
    overlay(dirty);
  }

  /** at most `maxEntries`: the least recently seen go first (usually one, after a first contact) */
  function prune(): void {
    while (records.size > maxEntries) {
      let oldest: string | undefined;
      for (const [k, r] of records) if (oldest === undefined || r.lastSeen < records.get(oldest)!.lastSeen) oldest = k;
      records.delete(oldest!);
      dirty.set(oldest!, null);
    }
  }

  // a failed write counted, and logged once until a write succeeds
  const writes = stateWriteEpisodes({ file: o.file, failure: 'cannot write the BMC trust file; records are kept in memory', logger: o.logger });
  async function write(): Promise<void> {
    writing = dirty;
    dirty = new Map();
    try {
      // under the lock the CLI takes too: what another process wrote since our last read is read
      // first and our changes laid over it, so neither write undoes the other's (a reset, a record)
      const held = await withFileLock(`${o.file}.lock`, async () => {
        refresh();
        const cannotRead = unreadable.current();
        if (cannotRead) return cannotRead;
        // entries, not assignments: a key such as "__proto__" stays a key
        const bmcs: Record<string, unknown> = Object.fromEntries([...records, ...[...invalid].map(([k, { entry }]) => [k, entry] as const)]);
        const text = JSON.stringify({ version: 1, bmcs } satisfies StateFile, null, 1);
        await writePrivateFile(o.file, text);
        loadedStamp = stampOf(await stat(o.file));
        return undefined;
      }, { timeoutMs: o.lockTimeoutMs ?? 5000 });
      if (held) {
        // the file is not written over (its episode's one line told it); written once it can be read
        keepWriting(`cannot read ${o.file} (${held.code}); not written over`);
        return;
      }
      writing = new Map();
      lastWriteError = undefined;
      writes.succeeded();
    } catch (err) {
      keepWriting((err as Error).message);
      writes.failed(err as Error);
    }
  }

  /** the changes of a write that did not reach the file, kept in memory and written with the next change (or at close) */
  function keepWriting(why: string): void {
    for (const [k, v] of writing) dirty.set(k, dirty.has(k) ? mergeChanges(v, dirty.get(k)!) : v);
    writing = new Map();
    lastWriteError = why;
  }

  /** One write at a time; a change made while one runs is written by the next. */
  const writer = burstWriter({ delayMs: writeDelayMs, pending: () => dirty.size > 0, write });

  function changed(key: string, change: Change): void {
    dirty.set(key, mergeChanges(dirty.get(key), change));
    prune();
    writer.changed();
  }

  return {
    file: o.file,
    get(key) {
      refresh();
      return records.get(key);
    },
    update(key, patch) {
      refresh();
      const stamp = now().toISOString();
      const current = records.get(key);
      if (current === undefined && describesOnly(patch)) return undefined;
      const record: TrustRecord = { ...current, ...patch, firstSeen: current?.firstSeen ?? stamp, lastSeen: stamp };
      records.set(key, record);
      changed(key, { fields: { ...patch }, firstSeen: record.firstSeen, lastSeen: stamp, creates: current === undefined });
      return record;
    },
    reset(key) {
      refresh();
      const had = records.delete(key);
      if (!invalid.delete(key) && !had) return false;
      changed(key, null);
      return true;
    },
    list() {
      refresh();
      return [...records.entries()];
    },
    problem(key) {
      refresh();
      return invalid.get(key)?.problem;
    },
    problems() {
      refresh();
      return [...invalid].map(([k, { problem }]) => [k, problem]);
    },
    flush: writer.flush,
    close: writer.close,
    unwritten: () => (lastWriteError !== undefined && dirty.size > 0 ? { changes: dirty.size, error: lastWriteError } : undefined),
    unreadable() {
      refresh();
      return unreadable.current();
    },
    keptAside() {
      refresh();
      return keptCopy.current();
    },
  };
}

/** The code of a trust file that did not parse and is kept aside (its copy's path as the error). */
export { KEPT_ASIDE };

/**
 * Why no BMC without a record in memory may be met as a first contact now: the trust file cannot
 * be read, or it did not parse and its copy is kept aside. Either way it may pin the BMC that
 * answers, so the gate fails closed until the file can be read, or the operator put the copy back
 * or removed it (which accepts the loss of its pins). Undefined when first contacts may go on.
 */
export function firstContactBar(store: Pick<TrustStore, 'unreadable' | 'keptAside'>): UnreadableFile | undefined {
  return contentUnknown(store);
}

/** what refused a connection (metal_bmc_trust_refused_total{check}) */
export type TrustCheck = 'redfish' | 'ssh' | 'ipmi-proof' | 'record' | 'unreadable-file';

export interface TrustMetrics {
  /** connections refused: another certificate (redfish), host key (ssh), no proof of the password (ipmi-proof), a record in the file that cannot be used (record), or a first contact while the file cannot be read (unreadable-file) */
  refused: { inc(labels: { check: TrustCheck }): void };
  /** fingerprints recorded on first contact, by proof */
  firstUse: { inc(labels: { what: 'redfish' | 'ssh'; proof: 'ipmi' | 'none' }): void };
}

export interface RedfishTrustContext {
  host: string;
  port: number;
  /** deadline of the certificate probe (TCP connect and TLS handshake) */
  timeoutMs: number;
  /** the probe speaks the TLS of the Redfish connections (legacy ciphers), so the login can resume its session */
  legacyTls?: boolean;
  /** deadline of the IPMI proof; a BMC that has not answered by then counts as one without IPMI */
  proofTimeoutMs: number;
  signal?: AbortSignal;
  /** opens an IPMI session (RAKP 2 checked); absent when IPMI is not used */
  prove?: (signal: AbortSignal) => Promise<void>;
  /** the probe's TCP connection made and its TLS handshake completed: signs of life of the BMC (a report read's deadline, report/loop-clock.ts) */
  onAnswer?: () => void;
}

/** The trust decisions for one BMC; connectOutband calls it before it sends credentials. */
export interface BmcTrustGate {
  /** runs `open` with TLS options that accept only the recorded (or, on first contact, the proven) certificate */
  openRedfish<T>(ctx: RedfishTrustContext, open: (tls: TlsOptions) => Promise<T>): Promise<T>;
  /** before an SSH console: on first contact the proof as for Redfish; returns the host key check */
  sshHostKeyCheck(ctx: Omit<RedfishTrustContext, 'port' | 'timeoutMs'>): Promise<(sha256: string) => boolean>;
}

export interface BmcTrust {
  readonly store: TrustStore;
  /**
   * a CA verifies the Redfish certificates (METAL_BMC_REDFISH_CA_FILE, or the system's CAs): the
   * gate records none and leaves the TLS to the CA, but keeps the SSH half, for a CA vouches for a
   * certificate, never for an SSH host key
   */
  readonly redfishVerified: boolean;
  /** a first contact must prove itself over IPMI: a BMC that cannot gets no credentials (METAL_BMC_TRUST_REQUIRE_PROOF) */
  readonly requireProof: boolean;
  forBmc(bmc: { mac?: string; ip: string }): BmcTrustGate;
}

/** Codes after which the IPMI side is taken as absent (first use trusted), not as a failed proof. */
const NO_IPMI: ReadonlySet<string> = new Set(['TIMEOUT', 'CLOSED', 'UNSUPPORTED', 'NO_SESSION_SLOTS', 'INSECURE_REFUSED']);

/** The certificate the BMC of `ctx` presents (`probeCertificate`), its TCP connect and TLS handshake told to `ctx.onAnswer` as signs of life. */
async function probe(ctx: RedfishTrustContext): Promise<string> {
  const presented = await probeCertificate({ host: ctx.host, port: ctx.port, timeoutMs: ctx.timeoutMs, ...(ctx.legacyTls ? { legacyTls: true } : {}), ...(ctx.signal ? { signal: ctx.signal } : {}), ...(ctx.onAnswer ? { onConnect: ctx.onAnswer } : {}) });
  ctx.onAnswer?.();
  return presented;
}

/**
 * `refusedWhileUnreadable`: the BMCs refused a first contact while the trust file cannot be read,
 * logged once each per episode; given by a report worker, whose gate lives for one read only
 */
export function createBmcTrust(o: { store: TrustStore; logger?: Logger; metrics?: TrustMetrics; resetHint?: boolean; requireProof?: boolean; redfishVerified?: boolean; refusedWhileUnreadable?: Set<string> }): BmcTrust {
  const { store, logger } = o;
  const requireProof = o.requireProof === true;
  const redfishVerified = o.redfishVerified === true;

  /**
   * A first contact without proof: trusted, or, where proof is required, refused before any
   * credential is sent (a device that keeps its IPMI quiet, or says it has none, could be anyone).
   */
  function unproven(ip: string, key: string, why: string, code?: string): 'none' {
    if (requireProof) {
      o.metrics?.refused.inc({ check: 'ipmi-proof' });
      logger?.error({ bmc: ip, trustKey: key, ...(code ? { code } : {}) }, `first contact with a BMC ${why}: it cannot prove it knows the password; refused (METAL_BMC_TRUST_REQUIRE_PROOF), no credentials sent`);
      const recorded = store.get(key) !== undefined ? ' (its record holds no IPMI proof)' : '';
      throw new BmcError('UNTRUSTED', `BMC ${ip}: first contact without proof over IPMI (${code ?? 'no IPMI'})${recorded}; refused as METAL_BMC_TRUST_REQUIRE_PROOF asks, no credentials sent`);
    }
    logger?.warn({ bmc: ip, trustKey: key, ...(code ? { code } : {}) }, `first contact with a BMC ${why}: it cannot prove it knows the password; trusted on first use`);
    return 'none';
  }

  /** First contact: the BMC proves over IPMI that it knows the password, or is trusted without proof (unless proof is required). */
  async function prove(ip: string, key: string, ctx: Omit<RedfishTrustContext, 'port' | 'timeoutMs'>): Promise<'ipmi' | 'none'> {
    if (!ctx.prove) return unproven(ip, key, 'without IPMI');
    const signal = ctx.signal ? AbortSignal.any([ctx.signal, AbortSignal.timeout(ctx.proofTimeoutMs)]) : AbortSignal.timeout(ctx.proofTimeoutMs);
    try {
      await ctx.prove(signal);
      return 'ipmi';
    } catch (err) {
      if (ctx.signal?.aborted) throw err;
      if (isBmcError(err) && (NO_IPMI.has(err.code) || (err.code === 'ABORTED' && signal.aborted))) return unproven(ip, key, 'whose IPMI does not answer', err.code);
      o.metrics?.refused.inc({ check: 'ipmi-proof' });
      const code = isBmcError(err) ? err.code : 'UNKNOWN';
      logger?.error({ bmc: ip, trustKey: key, code }, 'BMC did not prove over IPMI that it knows the password; no credentials sent to it');
      throw new BmcError('UNTRUSTED', `BMC ${ip}: did not prove over IPMI (RAKP 2) that it knows the password (${code}); Redfish login not attempted`, { cause: err });
    }
  }

  /**
   * The record as the gate may rely on it. Where proof is required, a record that says its first
   * contact was not proven (proof "none": written without the setting, by the CLI or the daemon
   * before it was set) counts for nothing: its BMC is met as a first contact, proven before any
   * credential. A record that says nothing of proof (a hand pin, an SSH key an earlier version
   * recorded) is a pin all the same: set aside, any key an IPMI relay to the real BMC let through
   * would replace it.
   */
  function relied(record: TrustRecord | undefined): TrustRecord | undefined {
    return requireProof && record?.proof === 'none' ? undefined : record;
  }

  /** a pin that says nothing of proof, where proof is required: it must match and its BMC prove itself over IPMI before any credential */
  function provesBesidePin(record: TrustRecord | undefined): boolean {
    return requireProof && record !== undefined && record.proof === undefined;
  }

  /** said once per contact of a pin `provesBesidePin` holds */
  function notePinWithoutProof(ip: string, key: string, record: TrustRecord): void {
    logger?.info({ bmc: ip, trustKey: key, redfish: fingerprintPrefix(record.redfishSha256), ssh: fingerprintPrefix(record.sshSha256) }, 'BMC pinned without a recorded proof: the pin must match and the BMC prove itself over IPMI before any credential, as METAL_BMC_TRUST_REQUIRE_PROOF asks');
  }

  /** a record `relied` sets aside, met again as a first contact: said once per contact */
  function noteUnproven(ip: string, key: string, record: TrustRecord): void {
    logger?.warn({ bmc: ip, trustKey: key, proof: record.proof ?? 'none', redfish: fingerprintPrefix(record.redfishSha256), ssh: fingerprintPrefix(record.sshSha256) }, 'BMC recorded without IPMI proof: met as a first contact and proven over IPMI before any credential, as METAL_BMC_TRUST_REQUIRE_PROOF asks');
  }

  /** BMCs refused a first contact while the trust file cannot be read, logged once each until it can be read again */
  const refusedBlind = o.refusedWhileUnreadable ?? new Set<string>();

  return {
    store,
    requireProof,
    redfishVerified,
    forBmc(bmc) {
      const key = trustKey(bmc);
      const ip = bmc.ip;
      const refusal = (check: 'redfish' | 'ssh', err: BmcError) => {
        o.metrics?.refused.inc({ check });
        const record = store.get(key);
        logger?.error({ bmc: ip, trustKey: key, check, recorded: fingerprintPrefix(check === 'redfish' ? record?.redfishSha256 : record?.sshSha256), err: err.message }, 'BMC presents another identity than the one recorded; credentials not sent');
        const hint = o.resetHint ? `; if it changed legitimately: metal-bmc bmc trust ${bmc.mac ? `--mac ${bmc.mac}` : `--address ${ip}`} --reset` : '';
        return new BmcError('UNTRUSTED', `BMC ${ip} (${key}): ${err.message}${hint}`, { cause: err });
      };
      /** a pin the file holds but that cannot be read is no reason to meet the BMC as a first contact */
      const usableRecord = (): void => {
        const problem = store.problem(key);
        if (problem === undefined) return;
        o.metrics?.refused.inc({ check: 'record' });
        logger?.error({ bmc: ip, trustKey: key, problem }, 'the BMC\'s trust record cannot be used; credentials not sent');
        throw new BmcError('UNTRUSTED', `BMC ${ip} (${key}): its record in ${store.file} cannot be used (${problem}); fix the entry or reset it: metal-bmc bmc trust ${bmc.mac ? `--mac ${bmc.mac}` : `--address ${ip}`} --reset`);
      };
      /**
       * No record in memory while the file cannot be read (EACCES after a `sudo` CLI run, EIO): the
       * file may pin this BMC, so whatever answers is not trusted on first use and sent no credentials
       * (fail closed). BMCs read before the file became unreadable keep their records.
       */
      const fileReadable = (): void => {
        const cannot = firstContactBar(store);
        if (cannot === undefined) {
          refusedBlind.clear();
          return;
        }
        o.metrics?.refused.inc({ check: 'unreadable-file' });
        const keptAside = cannot.code === KEPT_ASIDE;
        if (!refusedBlind.has(key)) {
          refusedBlind.add(key);
          logger?.error(
            { bmc: ip, trustKey: key, file: store.file, code: cannot.code, ...(keptAside ? { keptAs: cannot.error } : {}) },
            keptAside
              ? 'first contact with a BMC while the trust file that did not parse is kept aside: it may pin this BMC; refused, no credentials sent, until the copy is put back fixed or removed'
              : 'first contact with a BMC while the trust file cannot be read: it may pin this BMC; refused, no credentials sent, until the file can be read',
          );
        }
        throw new BmcError(
          'UNTRUSTED',
          keptAside
            ? `BMC ${ip} (${key}): no record in memory and the trust file ${store.file} did not parse; it is kept aside as ${cannot.error}: a first contact is refused, no credentials sent, until the copy is put back fixed or removed (which accepts first contacts again)`
            : `BMC ${ip} (${key}): no record in memory and the trust file ${store.file} cannot be read (${cannot.code}); a first contact is refused, no credentials sent, until it can be read`,
        );
      };
      return {
        async openRedfish(ctx, open) {
          // the CA decides on the certificate; nothing is pinned or recorded
          if (redfishVerified) return open({});
          usableRecord();
          const record = store.get(key);
          const recorded = relied(record)?.redfishSha256;
          if (recorded !== undefined) {
            // a pin without proof: the certificate is held against the pin before the BMC is asked to prove itself, the login after both
            const proving = provesBesidePin(record);
            if (proving) {
              notePinWithoutProof(ip, key, record!);
              const presented = await probe(ctx);
              if (presented !== recorded) throw refusal('redfish', new BmcError('UNTRUSTED', `certificate sha256 ${fingerprintPrefix(presented)} is not the recorded ${fingerprintPrefix(recorded)}`));
              await prove(ip, key, ctx);
            }
            let opened: Awaited<ReturnType<typeof open>>;
            try {
              opened = await open({ pinnedSha256: recorded });
            } catch (err) {
              throw isBmcError(err, 'UNTRUSTED') ? refusal('redfish', err) : err;
            }
            // the record as it is now: one reset meanwhile (bmc trust --reset) stays forgotten; a pin proven and matched is proven
            const now = store.get(key);
            const upgrade = proving && now?.proof === undefined && now?.redfishSha256 === recorded;
            if (now !== undefined && (now.ip !== ip || upgrade)) store.update(key, { ip, ...(upgrade ? { proof: 'ipmi' as const } : {}) });
            return opened;
          }
          if (record === undefined) fileReadable();
          const setAside = record !== undefined && relied(record) === undefined;
          if (setAside) noteUnproven(ip, key, record);
          // the probe's TLS session is kept under its certificate's pin: the pinned login resumes it
          const presented = await probe(ctx);
          const proof = await prove(ip, key, ctx);
          // the login goes only to the certificate that was probed (and proven)
          const opened = await open({ pinnedSha256: presented });
          // an unproven SSH host key beside the certificate is not made proven by this proof: met as on first use
          store.update(key, { redfishSha256: presented, ip, proof, ...(setAside && record.sshSha256 !== undefined ? { sshSha256: undefined } : {}) });
          o.metrics?.firstUse.inc({ what: 'redfish', proof });
          logger?.info({ bmc: ip, trustKey: key, sha256: fingerprintPrefix(presented), proof }, 'BMC certificate recorded on first use');
          return opened;
        },
        async sshHostKeyCheck(ctx) {
          usableRecord();
          const record = store.get(key);
          const trusted = relied(record);
          const recorded = trusted?.sshSha256;
          if (recorded !== undefined) {
            // a pin without proof: proven before the connection (the check below runs before the password is sent), matched at it
            const proving = provesBesidePin(trusted);
            if (proving) {
              notePinWithoutProof(ip, key, trusted!);
              await prove(ip, key, ctx);
            }
            return (sha256) => {
              if (sha256 === recorded) {
                const now = store.get(key);
                if (proving && now?.proof === undefined && now?.sshSha256 === recorded) store.update(key, { proof: 'ipmi' });
                return true;
              }
              refusal('ssh', new BmcError('UNTRUSTED', `SSH host key sha256 ${fingerprintPrefix(sha256)} is not the recorded ${fingerprintPrefix(recorded)}`));
              return false;
            };
          }
          if (record === undefined) fileReadable();
          if (record !== undefined && trusted === undefined) noteUnproven(ip, key, record);
          // a BMC whose Redfish certificate is pinned has shown itself already; where proof is required, only with the pin's proof;
          // where a CA verifies Redfish, a certificate recorded earlier pins nothing: the SSH first contact proves itself
          const besidePin = !redfishVerified && trusted?.redfishSha256 !== undefined;
          const provenNow = !besidePin || provesBesidePin(trusted);
          const proof = provenNow ? await prove(ip, key, ctx) : (trusted!.proof ?? 'none');
          return (sha256) => {
            // the record's proof is this contact's when nothing is pinned beside the key (a proof now says nothing of a pin not matched now);
            // a certificate set aside (proof none where proof is required) is met as on first use
            store.update(key, { sshSha256: sha256, ip, ...(besidePin ? {} : { proof }), ...(record?.redfishSha256 !== undefined && trusted === undefined ? { redfishSha256: undefined } : {}) });
            o.metrics?.firstUse.inc({ what: 'ssh', proof });
            logger?.info({ bmc: ip, trustKey: key, sha256: fingerprintPrefix(sha256), proof }, 'BMC SSH host key recorded on first use');
            return true;
          };
        },
      };
    },
  };
}
