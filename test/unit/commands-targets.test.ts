/**
 * The target guard of machine commands (src/commands/targets.ts): which BMC an event may reach.
 * Above all, an event for a BMC whose address is now leased to another BMC (another MAC) must
 * not reach the machine that holds the address now.
 */
import { describe, expect, it } from 'vitest';
import type { EventIpmi } from '../../src/commands/event.js';
import { createTargetGuard, type CommandTargets, type LeaseHolder } from '../../src/commands/targets.js';
import { HandBackError, isBmcError, type BmcError } from '../../src/errors.js';
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

describe('command target guard: addresses that are never a BMC (METAL_BMC_COMMAND_TARGETS=any)', () => {
  const catchAll = (cidrs = ['0.0.0.0/0'], more: Array<[string, LeaseHolder]> = []) =>
    createTargetGuard({ mode: 'any', allowedCidrs: cidrs.map((c) => parseCidr(c)), leaseAt: (ip) => new Map(more).get(ip) });

  it.each([
    ['0.0.0.0', /^BMC 0\.0\.0\.0 is an unspecified \("this network"\) address \(0\.0\.0\.0\/8\), never a BMC; the command was not sent \(to allow it, list a block inside 0\.0\.0\.0\/8 in METAL_BMC_ALLOWED_CIDRS\)$/],
    ['0.1.2.3', /is an unspecified \("this network"\) address \(0\.0\.0\.0\/8\)/],
    ['255.255.255.255', /is the limited broadcast address \(255\.255\.255\.255\/32\)/],
    ['224.0.0.1', /is a multicast address \(224\.0\.0\.0\/4\)/],
    ['239.255.255.250', /is a multicast address \(224\.0\.0\.0\/4\)/],
    ['169.254.169.254', /is a link-local address \(169\.254\.0\.0\/16\)/],
    ['127.0.0.1', /^BMC 127\.0\.0\.1 is a loopback address \(127\.0\.0\.0\/8\), never a BMC; the command was not sent \(to allow it, list a block inside 127\.0\.0\.0\/8 in METAL_BMC_ALLOWED_CIDRS\)$/],
    ['127.11.0.5', /is a loopback address/],
    ['::', /^BMC :: is the unspecified address \(::\/128\), never a BMC; the command was not sent$/],
    ['::1', /^BMC ::1 is a loopback address \(::1\/128\), never a BMC; the command was not sent$/],
    ['0:0:0:0:0:0:0:1', /is a loopback address \(::1\/128\)/],
    ['fe80::1', /is a link-local address \(fe80::\/10\)/],
    ['FEBF::1%eth0', /is a link-local address \(fe80::\/10\)/],
    ['ff02::1', /is a multicast address \(ff00::\/8\)/],
    ['::ffff:127.0.0.1', /^BMC ::ffff:127\.0\.0\.1 is the IPv4-mapped form of a loopback address \(127\.0\.0\.0\/8\), never a BMC; the command was not sent$/],
    ['::ffff:7f00:1', /IPv4-mapped form of a loopback address/],
    ['::FFFF:169.254.169.254', /IPv4-mapped form of a link-local address/],
    ['::ffff:0.0.0.0', /IPv4-mapped form of an unspecified/],
    ['::ffff:ffff:ffff', /IPv4-mapped form of the limited broadcast address/],
    ['::ffff:e000:1', /IPv4-mapped form of a multicast address/],
  ])('refuses %s under the catch-all, saying what it is', (host, why) => {
    expect(refusal(catchAll(), ipmi(host))).toMatch(why);
  });

  it('lets through what lies next to those ranges, and leaves other IPv6 addresses to the CIDR check', () => {
    for (const host of ['1.0.0.0', '126.255.255.255', '128.0.0.1', '169.253.255.255', '169.255.0.1', '223.255.255.255', '240.0.0.1', '255.255.255.254', '10.1.0.77']) {
      expect(refusal(catchAll(), ipmi(host)), host).toBeUndefined();
    }
    for (const host of ['2001:db8::1', 'fec0::1', '::2', '::ffff:10.0.0.1', 'bmc.example']) {
      expect(refusal(catchAll(), ipmi(host)), host).toMatch(/outside METAL_BMC_ALLOWED_CIDRS/);
    }
  });

  it('allows a range the operator named: a block of METAL_BMC_ALLOWED_CIDRS inside it that holds the address; not the catch-all or a wider block', () => {
    expect(refusal(catchAll(['127.0.0.0/8']), ipmi('127.0.0.99'))).toBeUndefined();
    expect(refusal(catchAll(['0.0.0.0/0', '127.11.0.0/16']), ipmi('127.11.0.5'))).toBeUndefined();
    expect(refusal(catchAll(['0.0.0.0/0', '127.11.0.0/16']), ipmi('127.0.0.1'))).toMatch(/is a loopback address/);
    expect(refusal(catchAll(['0.0.0.0/1']), ipmi('127.0.0.1'))).toMatch(/is a loopback address/);
    expect(refusal(catchAll(['96.0.0.0/3']), ipmi('127.0.0.1'))).toMatch(/is a loopback address/);
    expect(refusal(catchAll(['169.254.0.0/16']), ipmi('169.254.0.17'))).toBeUndefined();
    expect(refusal(catchAll(['255.255.255.255/32']), ipmi('255.255.255.255'))).toBeUndefined();
    // the mapped form is not an IPv4 literal: no block of the (IPv4) CIDRs names it
    expect(refusal(catchAll(['127.0.0.0/8']), ipmi('::ffff:127.0.0.1'))).toMatch(/IPv4-mapped form of a loopback address/);
  });

  it('leaves leased targets to the lease file, as the report cycle does, and METAL_BMC_COMMAND_TARGETS=leases as it was', () => {
    expect(refusal(catchAll(['0.0.0.0/0'], [['127.11.0.5', { mac: HOLDER_MAC }]]), ipmi('127.11.0.5', { mac: HOLDER_MAC }))).toBeUndefined();
    const leased = createTargetGuard({ mode: 'leases', allowedCidrs: [parseCidr('0.0.0.0/0')], leaseAt: (ip) => (ip === '127.11.0.5' ? { mac: HOLDER_MAC } : undefined) });
    expect(refusal(leased, ipmi('127.11.0.5'))).toBeUndefined();
    expect(refusal(leased, ipmi('127.0.0.1'))).toMatch(/holds no current lease/);
  });
});

describe('command target guard: before the lease file was read', () => {
  let read = false;
  const guard = (mode: CommandTargets) =>
    createTargetGuard({ mode, allowedCidrs: [parseCidr('10.1.0.0/24')], leaseAt: (ip) => (read ? leases.get(ip) : undefined), leasesRead: () => read });
  /** what the guard threw: its class and code, or undefined when it let the event through */
  const outcome = (g: ReturnType<typeof guard>, target: EventIpmi) => {
    try {
      g(target);
      return undefined;
    } catch (err) {
      return { handBack: err instanceof HandBackError, code: (err as BmcError).code, message: (err as Error).message };
    }
  };

  it('hands back what rests on a lease (unleased, the default password) instead of refusing it, and refuses as before once read', () => {
    read = false;
    const early = outcome(guard('leases'), ipmi('10.1.0.5', { mac: HOLDER_MAC }));
    expect(early).toEqual({ handBack: true, code: 'UNAVAILABLE', message: 'BMC 10.1.0.5: the lease file has not been read yet, so whether this BMC holds a lease is not known; nothing was sent, and it is tried again later (not refused)' });
    // METAL_BMC_COMMAND_TARGETS=any: the default password waits for the leases too
    expect(outcome(guard('any'), ipmi('10.1.0.77', { password: undefined }))).toMatchObject({ handBack: true, code: 'UNAVAILABLE' });
    // ... and one bringing its own password needs no lease, as before
    expect(outcome(guard('any'), ipmi('10.1.0.77'))).toBeUndefined();
    read = true;
    expect(outcome(guard('leases'), ipmi('10.1.0.5', { mac: HOLDER_MAC }))).toBeUndefined();
    expect(outcome(guard('leases'), ipmi('10.1.0.77'))).toMatchObject({ handBack: false, code: 'FORBIDDEN', message: expect.stringMatching(/holds no current lease/) });
  });

  it('refuses what needs no lease at once: a BMC outside the allowed CIDRs', () => {
    read = false;
    for (const mode of ['leases', 'any'] as const) {
      expect(outcome(guard(mode), ipmi('10.9.0.5'))).toEqual({ handBack: false, code: 'FORBIDDEN', message: 'BMC 10.9.0.5 is outside METAL_BMC_ALLOWED_CIDRS; the command was not sent' });
    }
  });
});
