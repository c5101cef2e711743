/**
 * Shared shapes of the lease module: one record type per file format, the common
 * `Lease` that discovery consumes, and the one error a lease parser may raise.
 */
import type { BigIntStats } from 'node:fs';
import { DecodeError, type BmcErrorOptions } from '../errors.js';

export type LeaseFormat = 'isc' | 'kea';

/** One `lease <ip> { ... }` block of an ISC dhcpd.leases file, in file order. */
export interface IscLease {
  ip: string;
  /** `hardware <type> <addr>;` lowercase, colon-separated, two hex digits per byte; absent on e.g. abandoned leases */
  mac?: string;
  starts?: Date;
  /** `ends never;` gives 'never'; undefined when the block has no `ends` */
  ends: Date | 'never' | undefined;
  bindingState?: string;
  nextBindingState?: string;
  /** `client-hostname "...";` */
  hostname?: string;
  /** `uid` as a binary string (one char per byte), escapes decoded */
  uid?: string;
  /** `set <name> = <value>;` lines, e.g. `vendor-class-identifier` */
  vars?: Record<string, string>;
  /** 1-based line of the `lease` keyword */
  line: number;
}

/** Kea lease states (Lease::STATE_* in Kea). Only DEFAULT is an assigned lease. */
export const KEA_STATE = Object.freeze({ DEFAULT: 0, DECLINED: 1, EXPIRED_RECLAIMED: 2, RELEASED: 3, REGISTERED: 4 });

/** Kea's infinite valid lifetime (Lease::INFINITY_LFT, 0xffffffff). */
export const KEA_INFINITE_LIFETIME = 0xffffffff;

/** One row of a Kea memfile `kea-leases4.csv`, in file order. */
export interface KeaLease {
  ip: string;
  /** normalised like IscLease.mac; absent when the hwaddr column is empty */
  mac?: string;
  clientId?: string;
  /** seconds; 0 marks a deleted lease, 0xffffffff an infinite one */
  validLifetime: number;
  /** Unix time of expiry; 'never' for an infinite lifetime */
  expire: Date | 'never';
  subnetId?: number;
  hostname?: string;
  /** 0 assigned, 1 declined, 2 expired-reclaimed, 3 released, 4 registered; 0 when the column is absent */
  state: number;
  /** JSON text, `&#x2c` escapes decoded; not parsed */
  userContext?: string;
  poolId?: number;
  /** 1-based line of the row */
  line: number;
}

/** A lease held by a client now: what discovery works from. */
export interface Lease {
  ip: string;
  mac: string;
  hostname?: string;
  expires: Date | 'never';
}

export type ParsedLeases = { format: 'isc'; leases: IscLease[] } | { format: 'kea'; leases: KeaLease[] };

/**
 * What a LeaseParseError is about:
 * - `malformed`: one entry (an ISC lease declaration, a Kea row) holds something that cannot be
 *   read; the entry is left out and the rest of the file read, as dhcpd and Kea do
 * - `cut-short`: the file stops inside an entry (a block, statement, string or row not finished)
 * - `structure`: the file as a whole cannot be read (a `}` closing nothing, a Kea header without a
 *   column the rows need, a DHCPv6 lease file, Kea's or dhcpd's)
 */
export type LeaseProblem = 'malformed' | 'cut-short' | 'structure';

export interface LeaseParseErrorOptions extends BmcErrorOptions {
  /** the file the text came from, named in the message instead of "lease file" */
  source?: string;
  /** default `malformed` */
  problem?: LeaseProblem;
}

/** A lease file that cannot be parsed; `line` is 1-based and also named in the message. */
export class LeaseParseError extends DecodeError {
  readonly line: number;
  /** the message without the source and line prefix */
  readonly detail: string;
  readonly source: string | undefined;
  readonly problem: LeaseProblem;

  constructor(line: number, detail: string, options: LeaseParseErrorOptions = {}) {
    super(`${options.source ?? 'lease file'} line ${line}: ${detail}`, options);
    this.name = 'LeaseParseError';
    this.line = line;
    this.detail = detail;
    this.source = options.source;
    this.problem = options.problem ?? 'malformed';
  }

  /** The same error, naming the file it came from. */
  withSource(source: string): LeaseParseError {
    return new LeaseParseError(this.line, this.detail, { source, problem: this.problem });
  }
}

/** Which file was read: its device and inode (a file renamed over it is another one). */
export type FileIdentity = Pick<BigIntStats, 'dev' | 'ino'>;

/** An entry a read left out (a LeaseParseError naming its file and line), and the file it was read from where known. */
export interface SkippedEntry {
  error: LeaseParseError;
  file: FileIdentity | undefined;
}
