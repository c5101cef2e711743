/**
 * Which BMCs a machine event may make metal-bmc act on. Whoever may publish on the machine
 * subject could otherwise point the daemon at any host and hand it the partition's BMC
 * password. A target must be inside `METAL_BMC_ALLOWED_CIDRS` and, unless
 * `METAL_BMC_COMMAND_TARGETS=any`, be a BMC of the current leases. The configured default
 * password goes only to leased BMCs: an event for another host must bring its own.
 *
 * An address alone does not name a BMC: when a BMC loses its lease, DHCP may give its address
 * to another machine's BMC while metal-api still has the old one. metal-api sends the BMC's
 * MAC with the address (`cmd.ipmi.mac`), so an event whose MAC differs from the lease's at
 * that address is refused instead of powering off or resetting whichever machine holds it now.
 *
 * With `METAL_BMC_COMMAND_TARGETS=any` and the default `METAL_BMC_ALLOWED_CIDRS` (0.0.0.0/0) an
 * event could also name an address that is never a BMC (src/net/special-ranges.ts: unspecified,
 * loopback, link-local, multicast, limited broadcast, and their IPv4-mapped forms): this host's
 * own services, or whatever answers on the local link, with the event's password. Such a target
 * holding no lease (what only `any` lets through) is refused, unless the operator allowed its
 * range by name: a block of `METAL_BMC_ALLOWED_CIDRS` that lies inside the range and holds the
 * address (127.0.0.0/8 or 127.11.0.0/16 for loopback, as a test fleet on loopback is configured);
 * neither the catch-all nor any block wider than the range does. A leased target is not checked
 * so: the DHCP server's lease file is the daemon's list of BMCs, which the report cycle contacts
 * with the default password anyway (the lab leases 127.x addresses); keeping such leases out
 * would be lease selection's business.
 *
 * Before the lease file's first good read the leases are not known, not empty: a decision that
 * rests on a lease (no lease held, the default password, the MAC) is not taken then. The target is
 * handed back (HandBackError, UNAVAILABLE) instead of refused, so that a backlog of late create and
 * delete events delivered right after a restart goes back to the stream rather than being
 * terminated FORBIDDEN. What the allowed CIDRs decide needs no lease and is refused as before.
 */
import type { Cidr } from '../net/cidr.js';
import { cidrContains } from '../net/cidr.js';
import { specialRange } from '../net/special-ranges.js';
import { BmcError, HandBackError } from '../errors.js';
import { normalizeMac } from '../leases/mac.js';
import type { EventIpmi } from './event.js';

export type CommandTargets = 'leases' | 'any';

/** The current lease of a BMC address: who holds it. */
export interface LeaseHolder {
  mac: string;
}

/** The current lease of the BMC with this IP address, or undefined when none holds one. */
export type LeaseAt = (ip: string) => LeaseHolder | undefined;

export interface TargetGuardOptions {
  mode: CommandTargets;
  allowedCidrs: readonly Cidr[];
  leaseAt: LeaseAt;
  /** whether the lease file has been read successfully at least once (default: yes, `leaseAt` is the whole truth) */
  leasesRead?: () => boolean;
}

/**
 * Throws FORBIDDEN (one line, no credentials) when the event's BMC is not a target this daemon may
 * act on; HandBackError (UNAVAILABLE) when that depends on a lease file not read yet.
 */
export type TargetGuard = (ipmi: EventIpmi) => void;

/** Why an event's MAC does not name the BMC holding the lease, or undefined when it does. */
function macMismatch(host: string, eventMac: string, lease: LeaseHolder): string | undefined {
  const wanted = normalizeMac(eventMac);
  if (wanted === undefined) return `BMC ${host}: the event's MAC (cmd.ipmi.mac) is not a hardware address; the command was not sent`;
  const holder = normalizeMac(lease.mac) ?? lease.mac;
  if (wanted === holder) return undefined;
  return `BMC ${host} is leased to MAC ${holder}, but the event is for the BMC with MAC ${wanted}: the address has moved to another BMC; the command was not sent`;
}

/**
 * Why an address that holds no lease is never a BMC, or undefined when it may be one: outside the
 * special ranges, or in one the operator allowed by a block of `allowedCidrs` inside it.
 */
function neverBmc(host: string, allowedCidrs: readonly Cidr[]): string | undefined {
  const range = specialRange(host);
  if (!range) return undefined;
  const block = range.block;
  if ('family' in block) return `BMC ${host} is ${range.what} (${block.text}), never a BMC; the command was not sent`;
  if (range.mapped) return `BMC ${host} is the IPv4-mapped form of ${range.what} (${block.text}), never a BMC; the command was not sent`;
  const named = allowedCidrs.some((cidr) => cidr.prefix >= block.prefix && cidrContains(block, cidr.network) && cidrContains(cidr, host));
  if (named) return undefined;
  return `BMC ${host} is ${range.what} (${block.text}), never a BMC; the command was not sent (to allow it, list a block inside ${block.text} in METAL_BMC_ALLOWED_CIDRS)`;
}

const outsideCidrs = (host: string) => new BmcError('FORBIDDEN', `BMC ${host} is outside METAL_BMC_ALLOWED_CIDRS; the command was not sent`);

/** Thrown instead of a refusal that rests on the leases while the lease file has not been read yet. */
function leasesNotRead(host: string): HandBackError {
  return new HandBackError(`BMC ${host}: the lease file has not been read yet, so whether this BMC holds a lease is not known; nothing was sent, and it is tried again later (not refused)`);
}

export function createTargetGuard(o: TargetGuardOptions): TargetGuard {
  const leasesRead = o.leasesRead ?? (() => true);
  const allowed = (host: string) => o.allowedCidrs.some((cidr) => cidrContains(cidr, host));
  return (ipmi) => {
    const host = ipmi.host;
    const lease = o.leaseAt(host);
    // no lease in a view not read yet says nothing: only the CIDR check (no lease needed) may refuse
    if (!lease && !leasesRead()) {
      if (!allowed(host)) throw outsideCidrs(host);
      if (o.mode === 'leases' || !ipmi.password || neverBmc(host, o.allowedCidrs)) throw leasesNotRead(host);
    }
    // what only METAL_BMC_COMMAND_TARGETS=any lets through (no lease) is checked for what is never
    // a BMC before the CIDR check, which an IPv6 literal never passes: its refusal then says why
    if (o.mode === 'any' && !lease) {
      const why = neverBmc(host, o.allowedCidrs);
      if (why) throw new BmcError('FORBIDDEN', why);
    }
    if (!allowed(host)) throw outsideCidrs(host);
    if (o.mode === 'leases' && !lease) {
      throw new BmcError('FORBIDDEN', `BMC ${host} holds no current lease; the command was not sent (METAL_BMC_COMMAND_TARGETS=any allows BMCs outside the leases)`);
    }
    // Only a lease of this address by another MAC refuses the command. An event without a MAC
    // is taken as before; and with METAL_BMC_COMMAND_TARGETS=any the BMC may hold no lease at
    // all (a static address), so there is no MAC to compare and the address alone decides.
    if (lease && ipmi.mac !== undefined) {
      const mismatch = macMismatch(host, ipmi.mac, lease);
      if (mismatch) throw new BmcError('FORBIDDEN', mismatch);
    }
    if (!lease && !ipmi.password) {
      throw new BmcError('FORBIDDEN', `BMC ${host} holds no current lease and the event has no password; the default password goes only to leased BMCs`);
    }
  };
}
