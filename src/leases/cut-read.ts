/**
 * Reads of a lease file that end inside an entry, while the file is written in place: a sidecar
 * copying the DHCP server's file over the one the daemon reads (`cp`, `rsync --inplace`), read
 * mid-copy, holds the complete entries before the copy's front and nothing after it. Taken as it
 * is, every BMC whose lease lies after the cut dropped out of the view for a read and came back
 * with the next: a `removed` and an `added` for each, and a report cycle without them.
 *
 * A read that ends inside an entry is the evidence of a file being written (dhcpd appends whole
 * declarations, Kea whole rows; a copy stops anywhere), and so is an empty file (a copy truncates
 * the file first; no DHCP server leaves its lease file empty, each writes its header). Such a read
 * gives the view before it, each address's entry as it was, with the entries of the addresses that
 * view did not have added after them (a BMC leased for the first time, before the cut). The part
 * read is not taken for the addresses both have: between dhcpd's rewrites its file holds every
 * renewal, so the part before a cut holds an older entry of most addresses (their lease ended, or
 * the BMC moved, in an entry after it), and taken, those BMCs would drop out just the same. A read
 * that ends cleanly gives what it read alone. So that a file left cut for good (a copy that
 * failed, a truncated file) still converges, the hold lasts at most `holdMs` from the first read
 * in a row that ended inside an entry: later reads give what they read alone, and `release` gives
 * the last read alone once the time is over with no read since (the file standing still).
 *
 * A copy read exactly between two entries cannot be told from a whole file: that read gives what
 * it read (its BMCs after the cut drop out until the next read), as does one that ends inside the
 * comments before an ISC file's first declaration.
 */
import { ipv4ToNumber } from '../net/cidr.js';
import type { ParsedLeases } from './types.js';

/** the longest reads ending inside an entry keep the view before them: a copy of a large lease file over a slow link takes seconds */
export const CUT_READ_HOLD_MS = 60_000;

/** `kept`'s entries, then `read`'s for the addresses `kept` has none of. */
function withNew<L extends { ip: string }>(kept: readonly L[], read: readonly L[]): L[] {
  const known = new Set(kept.map((l) => ipv4ToNumber(l.ip)));
  return [...kept, ...read.filter((l) => !known.has(ipv4ToNumber(l.ip)))];
}

/** `kept` with the entries of `read` for the addresses it does not have; `read` alone when their formats differ (the file is another one). */
export function keptWithNew(kept: ParsedLeases, read: ParsedLeases): ParsedLeases {
  if (read.format === 'isc' && kept.format === 'isc') return { format: 'isc', leases: withNew(kept.leases, read.leases) };
  if (read.format === 'kea' && kept.format === 'kea') return { format: 'kea', leases: withNew(kept.leases, read.leases) };
  // an empty file's format is a guess
  return read.leases.length === 0 ? kept : read;
}

export class CutReadHold {
  /** what the last read gave (held or not) */
  private given: ParsedLeases | undefined;
  /** when the first read of the current row of reads ending inside an entry came; undefined after a clean read */
  private since: number | undefined;
  /** what the last read read alone, while what it gave is the view before it (with new addresses) */
  private own: ParsedLeases | undefined;

  constructor(
    private readonly holdMs = CUT_READ_HOLD_MS,
    private readonly now: () => number = Date.now,
  ) {}

  /** What a read gives, `parsed` being what it read; `cut`: it ended inside an entry. */
  take(parsed: ParsedLeases, cut: boolean): ParsedLeases {
    this.own = undefined;
    if (!cut) {
      this.since = undefined;
      return (this.given = parsed);
    }
    this.since ??= this.now();
    const kept = this.given;
    if (kept === undefined || this.over()) return (this.given = parsed);
    this.own = parsed;
    return (this.given = keptWithNew(kept, parsed));
  }

  /** Once the hold is over with no read since: what the last read read alone (once); else undefined. */
  release(): ParsedLeases | undefined {
    const own = this.own;
    if (own === undefined || !this.over()) return undefined;
    this.own = undefined;
    return (this.given = own);
  }

  private over(): boolean {
    return this.since !== undefined && this.now() - this.since >= this.holdMs;
  }
}
