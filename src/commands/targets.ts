/**
 * Which BMCs a machine event may make metal-bmc act on. Whoever may publish on the machine
 * subject could otherwise point the daemon at any host and hand it the partition's BMC
 * password. A target must be inside `METAL_BMC_ALLOWED_CIDRS` and, unless
 * `METAL_BMC_COMMAND_TARGETS=any`, be a BMC of the current leases. The configured default
 * password goes only to leased BMCs: an event for another host must bring its own.
 */
import type { Cidr } from '../net/cidr.js';
import { cidrContains } from '../net/cidr.js';
import { BmcError } from '../errors.js';
import type { EventIpmi } from './event.js';

export type CommandTargets = 'leases' | 'any';

export interface TargetGuardOptions {
  mode: CommandTargets;
  allowedCidrs: readonly Cidr[];
  /** whether a BMC with this IP address holds a current lease */
  isLeased: (ip: string) => boolean;
}

/** Throws FORBIDDEN (one line, no credentials) when the event's BMC is not a target this daemon may act on. */
export type TargetGuard = (ipmi: EventIpmi) => void;

export function createTargetGuard(o: TargetGuardOptions): TargetGuard {
  return (ipmi) => {
    const host = ipmi.host;
    if (!o.allowedCidrs.some((cidr) => cidrContains(cidr, host))) {
      throw new BmcError('FORBIDDEN', `BMC ${host} is outside METAL_BMC_ALLOWED_CIDRS; the command was not sent`);
    }
    const leased = o.isLeased(host);
    if (o.mode === 'leases' && !leased) {
      throw new BmcError('FORBIDDEN', `BMC ${host} holds no current lease; the command was not sent (METAL_BMC_COMMAND_TARGETS=any allows BMCs outside the leases)`);
    }
    if (!leased && !ipmi.password) {
      throw new BmcError('FORBIDDEN', `BMC ${host} holds no current lease and the event has no password; the default password goes only to leased BMCs`);
    }
  };
}
