/**
 * A handshake whose caller aborts with a TIMEOUT reason (a report cycle's per-BMC deadline does)
 * ends at once. It used to restart the handshake in a loop of already-failed exchanges, every
 * turn a microtask, until its own IPMI deadline: the event loop was blocked that long, and every
 * other BMC of the cycle ran into its deadline.
 */
import { describe, expect, it } from 'vitest';
import { BmcError } from '../../src/errors.js';
import { establish } from '../../src/ipmi/handshake.js';
import { datagramKind } from '../../src/ipmi/lan.js';
import type { DatagramChannel } from '../../src/ipmi/transport.js';
import { SimBmc } from '../../src/sim/ipmi-bmc.js';
import { createMachineState, SimMachine } from '../../src/sim/machine.js';
import { SerialLine } from '../../src/sim/serial.js';

/** A BMC that answers the pre-session questions and then goes silent (RMCP+ datagrams are lost). */
function silentAfterCapabilities(): DatagramChannel & { sentV2: number } {
  let handler: (d: Buffer) => void = () => undefined;
  const machine = new SimMachine(createMachineState('abort-unit', 0));
  const bmc = new SimBmc({
    machine,
    serial: new SerialLine(machine, { hostname: 'unit' }),
    user: 'ADMIN',
    password: 'secret',
    maxSessions: 4,
    sessionTimeoutMs: 60_000,
    handshakeTimeoutMs: 10_000,
    port: () => 623,
    send: (d) => setImmediate(() => handler(d)),
    solRetryMs: 100,
    onError: () => undefined,
  });
  const channel = {
    remote: '192.0.2.9:623',
    sentV2: 0,
    send(d: Buffer) {
      if (datagramKind(d) === 'v2') channel.sentV2++;
      else bmc.handle(d, { address: '192.0.2.1', port: 40000 });
    },
    onDatagram(h: (d: Buffer) => void) {
      handler = h;
    },
    close: () => undefined,
  };
  return channel;
}

describe('IPMI handshake under a caller deadline', () => {
  it('ends at once when the caller aborts with a TIMEOUT, long before its own IPMI deadline', async () => {
    const channel = silentAfterCapabilities();
    const caller = new AbortController();
    const opening = establish(channel, {
      user: 'ADMIN',
      password: 'secret',
      privilege: 4,
      cipherSuite: 'auto',
      allowInsecure: false,
      // its own deadline is a minute: a restart loop would run (and block the loop) that long, past the test's timeout
      retry: { attemptMs: 1000, backoff: 1.5, maxAttemptMs: 3000, deadlineMs: 60_000 },
      signal: caller.signal,
    });
    const outcome = opening.catch((err: unknown) => err);
    // the handshake reached Open Session (RMCP+), which the BMC leaves unanswered
    while (channel.sentV2 === 0) await new Promise<void>((resolve) => setImmediate(resolve));
    caller.abort(new BmcError('TIMEOUT', 'reading BMC 192.0.2.9: no answer within 4000 ms'));
    expect(await outcome).toMatchObject({ code: 'TIMEOUT', message: 'reading BMC 192.0.2.9: no answer within 4000 ms' });
    expect(channel.sentV2).toBe(1); // no restart after the abort
  }, 20_000);
});
