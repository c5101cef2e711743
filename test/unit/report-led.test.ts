/**
 * The report cycle never sends an empty IndicatorLEDState: an unreadable LED goes out as the
 * last state read for that machine in an earlier cycle, else LED-OFF; the bodies satisfy the
 * swagger and metal-api's LED decoding (LED-ON/LED-OFF only).
 */
import { describe, expect, it } from 'vitest';
import type { Lease } from '../../src/leases/types.js';
import { compileDefinition, loadSwagger } from '../../src/metalapi/schema.js';
import type { MachineIpmiReports } from '../../src/metalapi/types.js';
import type { BmcReport, LedReading, Outband } from '../../src/outband/types.js';
import { runReportCycle, type CycleDeps } from '../../src/report/cycle.js';
import { createLedMemory } from '../../src/report/led-memory.js';
import { rememberIdentify } from '../../src/parts/commands.js';
import { captureLog } from '../helpers/log.js';

const leases: Lease[] = [
  { ip: '10.0.0.1', mac: 'aa:bb:cc:00:00:01', expires: 'never' },
  { ip: '10.0.0.2', mac: 'aa:bb:cc:00:00:02', expires: 'never' },
];

function deps(led: Record<string, LedReading>, bodies: MachineIpmiReports[], ledMemory = createLedMemory()): CycleDeps {
  const report = (ip: string): BmcReport => ({
    uuid: `uuid-${ip}`,
    bmcVersion: '1.74',
    biosVersion: '3.4',
    fru: {},
    powerState: 'ON',
    indicatorLED: led[ip]!,
    powerSupplies: [],
    source: 'ipmi',
    missing: [],
  });
  return {
    partitionId: 'p',
    connect: async (ip) => ({ info: async () => report(ip), close: async () => undefined }) as unknown as Outband,
    metalApi: {
      ipmiReport: async (body) => {
        bodies.push(body);
        return { created: [], updated: Object.keys(body.reports) };
      },
    },
    concurrency: 2,
    bmcTimeoutMs: 1000,
    logger: captureLog().logger,
    ledMemory,
  };
}

describe('IndicatorLEDState in the report cycle', () => {
  it('sends the last known state for an unreadable LED across cycles, LED-OFF when none is known', async () => {
    const bodies: MachineIpmiReports[] = [];
    const memory = createLedMemory();
    await runReportCycle(deps({ '10.0.0.1': 'LED-ON', '10.0.0.2': 'UNKNOWN' }, bodies, memory), leases);
    await runReportCycle(deps({ '10.0.0.1': 'UNKNOWN', '10.0.0.2': 'UNKNOWN' }, bodies, memory), leases);
    await runReportCycle(deps({ '10.0.0.1': 'LED-OFF', '10.0.0.2': 'LED-ON' }, bodies, memory), leases);
    await runReportCycle(deps({ '10.0.0.1': 'UNKNOWN', '10.0.0.2': 'UNKNOWN' }, bodies, memory), leases);
    const sent = bodies.map((b) => [b.reports['uuid-10.0.0.1']!.IndicatorLEDState, b.reports['uuid-10.0.0.2']!.IndicatorLEDState]);
    expect(sent).toEqual([
      ['LED-ON', 'LED-OFF'],
      ['LED-ON', 'LED-OFF'],
      ['LED-OFF', 'LED-ON'],
      ['LED-OFF', 'LED-ON'],
    ]);
    const validate = compileDefinition(loadSwagger(), 'v1.MachineIpmiReports');
    for (const b of bodies) expect(validate(b)).toEqual({ ok: true });
  });

  it('without a memory (a single cycle) an unreadable LED is still LED-OFF, never ""', async () => {
    const bodies: MachineIpmiReports[] = [];
    const d = deps({ '10.0.0.1': 'UNKNOWN', '10.0.0.2': 'UNKNOWN' }, bodies);
    delete d.ledMemory;
    await runReportCycle(d, leases);
    expect(Object.values(bodies[0]!.reports).map((r) => r.IndicatorLEDState)).toEqual(['LED-OFF', 'LED-OFF']);
  });

  it('sends the state of the last identify command the BMC accepted while the LED cannot be read; a read tells it again', async () => {
    // metalctl machine identify on: metal-api sets LED-ON itself, and the report must not undo it
    const bodies: MachineIpmiReports[] = [];
    const memory = createLedMemory();
    const unreadable = { '10.0.0.1': 'UNKNOWN', '10.0.0.2': 'UNKNOWN' } as const;
    await runReportCycle(deps(unreadable, bodies, memory), leases);
    rememberIdentify(memory, { machineId: 'uuid-10.0.0.1', command: 'LED-ON', ok: true });
    rememberIdentify(memory, { machineId: 'uuid-10.0.0.2', command: 'LED-ON', ok: false });
    await runReportCycle(deps(unreadable, bodies, memory), leases);
    rememberIdentify(memory, { machineId: 'uuid-10.0.0.2', command: 'ON', ok: true });
    await runReportCycle(deps({ '10.0.0.1': 'LED-OFF', '10.0.0.2': 'UNKNOWN' }, bodies, memory), leases);
    rememberIdentify(memory, { machineId: 'uuid-10.0.0.1', command: 'LED-OFF', ok: true });
    rememberIdentify(memory, { machineId: 'uuid-10.0.0.1', command: 'LED-ON', ok: true });
    await runReportCycle(deps(unreadable, bodies, memory), leases);
    const sent = bodies.map((b) => [b.reports['uuid-10.0.0.1']!.IndicatorLEDState, b.reports['uuid-10.0.0.2']!.IndicatorLEDState]);
    expect(sent).toEqual([
      ['LED-OFF', 'LED-OFF'],
      // accepted LED-ON; a refused one and another command change nothing
      ['LED-ON', 'LED-OFF'],
      // the BMC's own reading wins over the command
      ['LED-OFF', 'LED-OFF'],
      // the last command counts
      ['LED-ON', 'LED-OFF'],
    ]);
  });
});
