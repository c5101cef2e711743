/**
 * The report cycle's switch for second Redfish connections (redfish/second-connection.ts): every
 * read of a cycle is handed the cycle's one switch, off while BMCs still wait to start and on once
 * the last has started (a read running then stops waiting 1 s for its BMC's second connection);
 * the next cycle has a switch of its own; a read in a report worker gets the worker's copy, which a
 * read sent after the cycle's turned on turns on and a read of the next cycle replaces.
 * The connections' side: redfish-connections-queue.test.ts and redfish-connections.test.ts.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { Lease } from '../../src/leases/types.js';
import { createMetalApiClient } from '../../src/metalapi/client.js';
import { startMetalApiStandIn, type MetalApiStandIn } from '../../src/metalapi/standin.js';
import type { BmcReport, Outband } from '../../src/outband/types.js';
import { SecondConnectionSwitch, switchOfRead } from '../../src/redfish/second-connection.js';
import { runReportCycle, type BmcReader, type CycleDeps } from '../../src/report/cycle.js';
import { captureLog } from '../helpers/log.js';

let api: MetalApiStandIn | undefined;
afterEach(async () => {
  await api?.close();
  api = undefined;
});

const lease = (i: number): Lease => ({ ip: `10.0.3.${i}`, mac: `aa:bb:cc:00:03:${i.toString(16).padStart(2, '0')}`, expires: 'never' });
const report = (i: number): BmcReport => ({
  uuid: `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`,
  bmcVersion: '1.0',
  biosVersion: '2.1',
  fru: {},
  powerState: 'ON',
  indicatorLED: 'LED-OFF',
  powerSupplies: [],
  source: 'redfish',
  missing: [],
});

/** What each read was handed: the switch, and whether it was on as the read started. */
interface Seen {
  ip: string;
  switch: SecondConnectionSwitch | undefined;
  onAtStart: boolean;
}

async function deps(extra: Partial<CycleDeps>): Promise<CycleDeps> {
  api ??= await startMetalApiStandIn({ hmacKey: 'k' });
  return {
    partitionId: 'p',
    connect: async () => Promise.reject(new Error('not used')),
    metalApi: createMetalApiClient({ baseUrl: api.url, hmacKey: 'k' }),
    concurrency: 2,
    fixedConcurrency: true,
    bmcTimeoutMs: 10_000,
    logger: captureLog('error').logger,
    ...extra,
  };
}

/** Reads that each end when the next turn of the loop comes, so the cycle starts five BMCs two at a time. */
function recordingConnect(seen: Seen[]): CycleDeps['connect'] {
  return async (ip, _signal, _onAnswer, secondConnection) => {
    seen.push({ ip, switch: secondConnection, onAtStart: secondConnection?.atOnce === true });
    await new Promise((r) => setImmediate(r));
    const i = Number(ip.split('.')[3]);
    return { address: ip, vendor: 'test', info: async () => report(i), close: async () => undefined } as unknown as Outband;
  };
}

describe("a report cycle's switch for second Redfish connections", () => {
  it('is one per cycle, handed to every read, off while BMCs wait to start and on once the last has started', async () => {
    const seen: Seen[] = [];
    const d = await deps({ connect: recordingConnect(seen) });
    const leases = [1, 2, 3, 4, 5].map(lease);
    const first = await runReportCycle(d, leases);
    expect(first.read).toBe(5);
    expect(seen.map((s) => s.onAtStart)).toEqual([false, false, false, false, false]);
    const cycleSwitch = seen[0]!.switch!;
    expect(cycleSwitch).toBeInstanceOf(SecondConnectionSwitch);
    for (const s of seen) expect(s.switch).toBe(cycleSwitch);
    // on once the fifth started (its read still running then)
    expect(cycleSwitch.atOnce).toBe(true);

    const again: Seen[] = [];
    await runReportCycle({ ...d, connect: recordingConnect(again) }, leases);
    expect(again[0]!.switch).not.toBe(cycleSwitch);
    expect(again[0]!.onAtStart).toBe(false);
  });

  it('turns on while the reads started before it still run', async () => {
    const seen: Seen[] = [];
    const onWhileRunning: boolean[] = [];
    const connect: CycleDeps['connect'] = async (ip, signal, onAnswer, secondConnection) => {
      const outband = await recordingConnect(seen)(ip, signal, onAnswer, secondConnection);
      return { ...outband, info: async () => {
        // the first read's answer comes only after the other four have started
        if (ip === lease(1).ip) while (seen.length < 5) await new Promise((r) => setImmediate(r));
        onWhileRunning.push(secondConnection?.atOnce === true);
        return outband.info();
      } } as unknown as Outband;
    };
    await runReportCycle(await deps({ connect, concurrency: 4 }), [1, 2, 3, 4, 5].map(lease));
    expect(seen.map((s) => s.ip)).toContain(lease(5).ip);
    // the first read, started with the switch off, saw it on before it ended
    expect(seen[0]!.onAtStart).toBe(false);
    expect(onWhileRunning.at(-1)).toBe(true);
  });

  it('in a cycle that starts all its BMCs at once, stays off until the first read has ended: the handshakes it starts with are not doubled', async () => {
    const seen: Seen[] = [];
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    const ends: boolean[] = [];
    const connect: CycleDeps['connect'] = async (ip, signal, onAnswer, secondConnection) => {
      const outband = await recordingConnect(seen)(ip, signal, onAnswer, secondConnection);
      if (ip !== lease(1).ip) await held;
      ends.push(secondConnection?.atOnce === true);
      return outband;
    };
    const cycle = runReportCycle(await deps({ connect, concurrency: 8 }), [1, 2, 3].map(lease));
    while (seen.length < 3 || ends.length < 1) await new Promise((r) => setImmediate(r));
    // all three started at once; the first read's connect is done while the other two still connect
    expect(seen.map((s) => s.onAtStart)).toEqual([false, false, false]);
    expect(ends).toEqual([false]);
    const cycleSwitch = seen[0]!.switch!;
    // on once the first read has ended
    while (!cycleSwitch.atOnce) await new Promise((r) => setImmediate(r));
    release();
    await cycle;
    expect(ends.slice(1)).toEqual([true, true]);
  });

  it('goes to the report workers with each read', async () => {
    const handed: Array<SecondConnectionSwitch | undefined> = [];
    const reader: BmcReader = {
      read: async (l, o) => {
        handed.push(o.secondConnection);
        return { ok: true, report: report(Number(l.ip.split('.')[3])), vendor: 'test', durationMs: 1, late: false };
      },
    };
    await runReportCycle(await deps({ reader }), [1, 2, 3].map(lease));
    expect(handed).toHaveLength(3);
    expect(handed[0]).toBeInstanceOf(SecondConnectionSwitch);
    expect(new Set(handed).size).toBe(1);
    expect(handed[0]!.atOnce).toBe(true);
  });
});

describe('the switch itself', () => {
  it('tells every listener once when it turns on, though one throws; the error comes after them', () => {
    const cycleSwitch = new SecondConnectionSwitch();
    const heard: string[] = [];
    cycleSwitch.whenOn(() => heard.push('a'));
    cycleSwitch.whenOn(() => {
      throw new Error('cannot open');
    });
    const stop = cycleSwitch.whenOn(() => heard.push('stopped'));
    cycleSwitch.whenOn(() => heard.push('c'));
    stop();
    expect(cycleSwitch.waiting).toBe(3);
    expect(() => cycleSwitch.turnOn()).toThrow('cannot open');
    expect(heard).toEqual(['a', 'c']);
    expect(cycleSwitch.waiting).toBe(0);
    cycleSwitch.turnOn();
    expect(heard).toEqual(['a', 'c']);
  });
});

describe("a report worker's copy of the cycle's switch", () => {
  it('turns on with a read sent after the cycle turned its own on, and is replaced by a read of the next cycle', () => {
    const copy = new SecondConnectionSwitch();
    expect(switchOfRead(copy, false)).toBe(copy);
    expect(copy.atOnce).toBe(false);
    let heard = 0;
    copy.whenOn(() => heard++);
    expect(switchOfRead(copy, true)).toBe(copy);
    expect(copy.atOnce).toBe(true);
    expect(heard).toBe(1);
    expect(switchOfRead(copy, true)).toBe(copy);
    expect(heard).toBe(1);
    // the next cycle: a new copy, off; the last cycle's reads keep theirs, on
    const next = switchOfRead(copy, false);
    expect(next).not.toBe(copy);
    expect(next.atOnce).toBe(false);
    expect(copy.atOnce).toBe(true);
  });
});
