/**
 * `metal-bmc bmc owners`: the operator's view of the report's UUID owners (src/report/owners.ts,
 * `uuid-owners.json` in the state folder): which BMC (lease MAC and address) is known for each
 * machine UUID, and since when. A BMC that moved to another NIC, or a wrong owner in the file,
 * keeps the real BMC's machine out of every report (a conflict) until the old lease expires plus
 * a day; `--reset` forgets such an owner now, and the next report cycle gives the UUID to the BMC
 * that reports it. The change reaches a running daemon as `bmc trust --reset` does: under the
 * file's lock, and the daemon reads the file again before its next cycle's body.
 */
import { join } from 'node:path';
import { normalizeMac } from '../leases/mac.js';
import { openUuidOwnersFile, readUuidOwnersFile, UUID_OWNERS_FILE, type UuidOwnerRecord } from '../report/owners.js';
import { NOT_PARSED } from '../outband/private-file.js';
import { UsageError } from './args.js';
import { cannotUseStateFile } from './bmc-trust.js';
import type { TextOutput } from './direct-stdout.js';

export interface OwnersArgs {
  uuid?: string | undefined;
  mac?: string | undefined;
  reset: boolean;
  list: boolean;
  json: boolean;
  stateDir: string;
}

/** One owner as printed: `mac` and `since` null where the file does not know them. */
interface OwnerRow {
  uuid: string;
  mac: string | null;
  ip: string;
  since: string | null;
}

export function ownersFileOf(stateDir: string): string {
  return join(stateDir, UUID_OWNERS_FILE);
}

/** What the owners are asked about: all of them, one UUID, or the UUIDs of one BMC (by its MAC). */
type Selection = { all: true } | { uuid: string } | { mac: string };

function selectionOf(a: OwnersArgs): Selection {
  if (a.list) {
    if (a.uuid !== undefined || a.mac !== undefined || a.reset) throw new UsageError('owners --list takes no --uuid, --mac or --reset');
    return { all: true };
  }
  if ((a.uuid === undefined) === (a.mac === undefined)) throw new UsageError('owners needs --uuid UUID or --mac MAC (with --reset to forget), or --list');
  if (a.uuid !== undefined) {
    // the file's keys are what BMCs report, 1 to 64 characters (report/owners.ts)
    const uuid = a.uuid.trim().toLowerCase();
    if (uuid.length === 0 || uuid.length > 64) throw new UsageError(`--uuid ${JSON.stringify(a.uuid)} is not a machine UUID`);
    return { uuid };
  }
  const mac = normalizeMac(a.mac!);
  if (mac === undefined) throw new UsageError(`--mac ${JSON.stringify(a.mac)} is not a MAC address`);
  return { mac };
}

/** Whether an owner entry is one the selection names (UUIDs and MACs compared without case). */
function selected(s: Selection, uuid: string, owner: UuidOwnerRecord): boolean {
  if ('all' in s) return true;
  if ('uuid' in s) return uuid.toLowerCase() === s.uuid;
  return owner.mac !== undefined && normalizeMac(owner.mac) === s.mac;
}

function rowOf(uuid: string, owner: UuidOwnerRecord): OwnerRow {
  return { uuid, mac: owner.mac ?? null, ip: owner.ip, since: owner.since ?? null };
}

function describeSelection(s: Selection): string {
  return 'uuid' in s ? `machine UUID ${s.uuid}` : 'mac' in s ? `a BMC with MAC ${s.mac}` : 'any machine UUID';
}

export async function runOwners(a: OwnersArgs, out: TextOutput): Promise<number> {
  const selection = selectionOf(a);
  const file = ownersFileOf(a.stateDir);
  let rows: OwnerRow[];
  if (a.reset) {
    rows = await forget(file, selection);
  } else {
    rows = [...readOwners(file)].filter(([uuid, owner]) => selected(selection, uuid, owner)).map(([uuid, owner]) => rowOf(uuid, owner));
    if (rows.length === 0 && !('all' in selection)) throw new Error(`no owner recorded for ${describeSelection(selection)} in ${file} (bmc owners --list shows them)`);
  }
  rows.sort((x, y) => x.uuid.localeCompare(y.uuid));
  if (a.json) {
    out.write(`${JSON.stringify(a.reset ? { forgotten: rows } : rows, null, 2)}\n`);
  } else if (a.reset) {
    for (const r of rows) out.write(`${r.uuid}: owner ${r.mac ?? '-'} ${r.ip} forgotten\n`);
    out.write(`the daemon takes this at its next report cycle (it reads ${file} again then) and gives each UUID to the BMC that reports it; no restart needed\n`);
  } else if (rows.length === 0) {
    out.write(`no machine UUID owner recorded in ${file}\n`);
  } else {
    out.write(table(rows));
  }
  return 0;
}

/** The file's owners, or an error that names the file (a damaged file is not shown as an empty one). */
function readOwners(file: string): Map<string, UuidOwnerRecord> {
  try {
    return readUuidOwnersFile(file).owners;
  } catch (err) {
    // no code: read, but not an owners file (left where it is: the daemon keeps it aside itself)
    throw new Error(cannotUseStateFile(file, { code: (err as NodeJS.ErrnoException).code ?? NOT_PARSED, error: (err as Error).message }));
  }
}

/**
 * Forgets the selected owners and writes the file under its lock (report/owners.ts), before the
 * process ends; a selection that names no owner changes nothing and is an error.
 */
async function forget(file: string, selection: Selection): Promise<OwnerRow[]> {
  readOwners(file); // a damaged file is an error here, not "no such owner"
  // a file that became unparsable since stays where it is: moved aside here, the running daemon would read "missing" and forget every owner
  const owners = openUuidOwnersFile({ file, keepAsideUnparsable: false });
  const cannotRead = owners.unreadable();
  if (cannotRead) throw new Error(cannotUseStateFile(file, cannotRead));
  const rows: OwnerRow[] = [];
  try {
    for (const [uuid, owner] of owners.entries()) {
      if (!selected(selection, uuid, owner)) continue;
      owners.forget(uuid);
      rows.push(rowOf(uuid, owner));
    }
  } finally {
    await owners.close();
  }
  if (rows.length === 0) throw new Error(`no owner recorded for ${describeSelection(selection)} in ${file}; nothing changed (bmc owners --list shows them)`);
  const unwritten = owners.unwritten();
  if (unwritten) throw new Error(`the change was not written to ${file}: ${unwritten.error}`);
  return rows;
}

function table(rows: OwnerRow[]): string {
  const lines = [['UUID', 'MAC', 'ADDRESS', 'SINCE'], ...rows.map((r) => [r.uuid, r.mac ?? '-', r.ip, r.since ?? '-'])];
  const widths = lines[0]!.map((_, i) => Math.max(...lines.map((l) => l[i]!.length)));
  return lines.map((l) => l.map((cell, i) => (i === l.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  ')).join('\n') + '\n';
}
