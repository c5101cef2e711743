/**
 * The target guard of machine commands (src/commands/targets.ts): which BMC an event may reach.
 * Above all, an event for a BMC whose address is now leased to another BMC (another MAC) must
 * not reach the machine that holds the address now.
 */
import { describe, expect, it } from 'vitest';
import type { EventIpmi } from '../../src/commands/event.js';
import { createTargetGuard, type CommandTargets, type LeaseHolder } from '../../src/commands/targets.js';
import { isBmcError } from '../../src/errors.js';
import { parseCidr } from '../../src/net/cidr.js';

const HOLDER_MAC = '0c:c4:7a:00:00:01';
const leases = new Map<string, LeaseHolder>([['10.1.0.5', { mac: HOLDER_MAC }]]);

function guardOf(mode: CommandTargets = 'leases') {
  return createTargetGuard({ mode, allowedCidrs: [parseCidr('10.1.0.0/24')], leaseAt: (ip) => leases.get(ip) });
}

const ipmi = (host: string, more: Partial<EventIpmi> = {}): EventIpmi => ({ address: `${host}:623`, host, port: 623, user: 'ADMIN', password: 'event-secret-5', ...more });

/** The FORBIDDEN message the guard refused with, or undefined when it let the event through. */
function refusal(guard: ReturnType<typeof guardOf>, target: EventIpmi): string | undefined {
  try {
    guard(target);
    return undefined;
  } catch (err) {
    expect(isBmcError(err, 'FORBIDDEN')).toBe(true);
    return (err as Error).message;
  }
}

describe('command target guard: the BMC MAC', () => {
  it('refuses an event whose MAC differs from the one leased at its address, naming both and no secret', () => {
    const message = refusal(guardOf(), ipmi('10.1.0.5', { mac: '0c:c4:7a:00:00:99' }));
    expect(message).toBe('BMC 10.1.0.5 is leased to MAC 0c:c4:7a:00:00:01, but the event is for the BMC with MAC 0c:c4:7a:00:00:99: the address has moved to another BMC; the command was not sent');
    expect(message).not.toContain('event-secret-5');
  });

  it('lets through the leased MAC in any spelling', () => {
    for (const mac of [HOLDER_MAC, '0C:C4:7A:00:00:01', '0c-c4-7a-00-00-01', '0cc4.7a00.0001', '0cc47a000001', ' 0c:c4:7a:0:0:1 ']) {
      expect(refusal(guardOf(), ipmi('10.1.0.5', { mac })), mac).toBeUndefined();
    }
  });

  it('lets through an event without a MAC, as before', () => {
    expect(refusal(guardOf(), ipmi('10.1.0.5'))).toBeUndefined();
  });

  it('refuses a MAC that is not a hardware address instead of guessing', () => {
    expect(refusal(guardOf(), ipmi('10.1.0.5', { mac: 'not-a-mac' }))).toMatch(/event's MAC \(cmd\.ipmi\.mac\) is not a hardware address/);
  });

  it('with METAL_BMC_COMMAND_TARGETS=any: no lease, no MAC to compare; a lease by another MAC still refuses', () => {
    const any = guardOf('any');
    expect(refusal(any, ipmi('10.1.0.77', { mac: '0c:c4:7a:00:00:99' }))).toBeUndefined();
    expect(refusal(any, ipmi('10.1.0.5', { mac: '0c:c4:7a:00:00:99' }))).toMatch(/leased to MAC 0c:c4:7a:00:00:01/);
    expect(refusal(any, ipmi('10.1.0.5', { mac: HOLDER_MAC.toUpperCase() }))).toBeUndefined();
  });

  it('keeps the earlier rules: outside the CIDRs, unleased, and the default password only for leased BMCs', () => {
    expect(refusal(guardOf(), ipmi('10.9.0.5', { mac: HOLDER_MAC }))).toMatch(/outside METAL_BMC_ALLOWED_CIDRS/);
    expect(refusal(guardOf(), ipmi('10.1.0.77'))).toMatch(/holds no current lease; the command was not sent/);
    expect(refusal(guardOf('any'), ipmi('10.1.0.77', { password: undefined }))).toMatch(/default password goes only to leased BMCs/);
  });
});
