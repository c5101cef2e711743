/**
 * `metal-bmc bmc trust`: the operator's view of the BMC trust file (trust on first use,
 * src/outband/trust.ts): list the recorded fingerprints, or forget one BMC's record so that the
 * next contact records its new certificate (after a legitimate certificate change).
 */
import { join } from 'node:path';
import { normalizeMac } from '../leases/mac.js';
import { NOT_PARSED, type UnreadableFile } from '../outband/private-file.js';
import { openTrustStore, TRUST_FILE, trustKey, type TrustRecord, type TrustStore } from '../outband/trust.js';
import { UsageError } from './args.js';
import type { TextOutput } from './direct-stdout.js';

export interface TrustArgs {
  mac?: string | undefined;
  address?: string | undefined;
  reset: boolean;
  list: boolean;
  stateDir: string;
}

export function trustFileOf(stateDir: string): string {
  return join(stateDir, TRUST_FILE);
}

export async function runTrust(a: TrustArgs, out: TextOutput): Promise<number> {
  // a file that does not parse stays where it is: moved aside here, the running daemon would read "missing" and forget every pin
  const store = openTrustStore({ file: trustFileOf(a.stateDir), keepAsideUnparsable: false });
  // a file there that this user cannot read (root's), or that does not parse, is not shown as empty, nor reset in it
  const cannotRead = store.unreadable();
  if (cannotRead) throw new Error(cannotUseStateFile(store.file, cannotRead));
  let code: number;
  try {
    code = show(store, a, out);
  } finally {
    await store.close(); // a reset is on disk before the process ends
  }
  const unwritten = store.unwritten();
  if (unwritten) throw new Error(`the change was not written to ${store.file}: ${unwritten.error}`);
  return code;
}

function show(store: TrustStore, a: TrustArgs, out: TextOutput): number {
  if (a.list) {
    const rows = store.list().sort(([x], [y]) => x.localeCompare(y));
    for (const [key, r] of rows) out.write(describeRecord(key, r));
    const unusable = store.problems().sort(([x], [y]) => x.localeCompare(y));
    for (const [key, problem] of unusable) out.write(describeProblem(key, problem));
    if (rows.length === 0 && unusable.length === 0) out.write(`no BMC recorded in ${store.file}\n`);
    return 0;
  }
  if ((a.mac === undefined) === (a.address === undefined)) throw new UsageError('trust needs --mac MAC or --address IP (or --list)');
  let mac: string | undefined;
  if (a.mac !== undefined) {
    mac = normalizeMac(a.mac);
    if (mac === undefined) throw new UsageError(`--mac ${JSON.stringify(a.mac)} is not a MAC address`);
  }
  const key = trustKey({ ip: a.address ?? '', ...(mac ? { mac } : {}) });
  if (a.reset) {
    const had = store.reset(key);
    out.write(had ? `${key}: record removed; the next contact records the BMC's certificate again (proven over IPMI where it answers)\n` : `${key}: nothing recorded\n`);
    return 0;
  }
  const problem = store.problem(key);
  if (problem !== undefined) {
    out.write(describeProblem(key, problem));
    return 1;
  }
  const r = store.get(key);
  if (!r) {
    out.write(`${key}: nothing recorded\n`);
    return 1;
  }
  out.write(describeRecord(key, r));
  return 0;
}

/** why the CLI leaves a state file alone: it cannot be read, or it does not parse (the daemon keeps that one aside itself) */
export function cannotUseStateFile(file: string, why: UnreadableFile): string {
  if (why.code === NOT_PARSED) return `${file} does not parse (${why.error}); fix or move it; the daemon keeps it aside itself; nothing changed`;
  return `cannot read ${file} (${why.code}): ${why.error}; nothing changed`;
}

function describeRecord(key: string, r: TrustRecord): string {
  return `${key}  ip=${r.ip ?? '-'}  redfish=${r.redfishSha256 ?? '-'}  ssh=${r.sshSha256 ?? '-'}  proof=${r.proof ?? '-'}  first=${r.firstSeen}  last=${r.lastSeen}\n`;
}

/** an entry of the file that cannot be used: the BMC is refused until it is fixed or reset */
function describeProblem(key: string, problem: string): string {
  return `${key}  UNUSABLE: ${problem}; its BMC is refused until the entry is fixed or reset (--reset)\n`;
}
