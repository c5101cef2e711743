/**
 * A BMC's confirmed IPMI GUID kept between report reads (METAL_BMC_REPORT_GUID_MAX_AGE,
 * outband/guid-memory.ts), against the simulator, which records every request a machine gets:
 * a BMC whose report needs nothing else from IPMI is read without an IPMI session while its
 * remembered GUID confirms the UUID Redfish reports; a GUID that does not confirm it (another BMC
 * at the address) is read again; Supermicro (report fields from IPMI) keeps its identity (firmware
 * revision, FRU) with the GUID while Redfish names the same Manager FirmwareVersion.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectOutband } from '../../src/outband/connect.js';
import { createGuidMemory, type GuidMemory } from '../../src/outband/guid-memory.js';
import { createRedfishSessionMemory, redfishSessionKey, type RedfishSessionKeeper } from '../../src/outband/redfish-sessions.js';
import type { BmcReport } from '../../src/outband/types.js';
import type { Fleet } from '../../src/sim/fleet.js';
import { startTestFleet } from '../helpers/fleet.js';

let fleet: Fleet;

beforeAll(async () => {
  // this seed draws one machine of each variant
  fleet = await startTestFleet({ count: 3, variants: ['supermicro', 'lenovo', 'gigabyte'], seed: 'latency-test', recordRequests: true });
  for (const m of ['Supermicro', 'Lenovo', 'Gigabyte']) if (index(m) < 0) throw new Error(`the test fleet has no ${m} machine`);
});
afterAll(async () => {
  await fleet?.close();
});

const index = (manufacturer: string) => fleet.machines.findIndex((m) => m.state.manufacturer === manufacturer);
const hostOf = (i: number) => fleet.machines[i]!.state.address;

/** One report read as a cycle does it; the report and how many IPMI datagrams the machine got meanwhile. */
async function read(i: number, guidMemory?: GuidMemory, redfishSessions?: RedfishSessionKeeper): Promise<{ report: BmcReport; ipmiDatagrams: number }> {
  const before = fleet.requestLog(i).length;
  const bmc = await connectOutband({ host: hostOf(i), user: fleet.user, password: fleet.password, ipmiPort: fleet.ipmiPort, redfishPort: fleet.redfishPort, timeoutMs: 20_000, readAhead: true, ...(guidMemory ? { guidMemory } : {}), ...(redfishSessions ? { redfishSessions } : {}) });
  try {
    const report = await bmc.info();
    return { report, ipmiDatagrams: fleet.requestLog(i).slice(before).filter((r) => r.protocol === 'ipmi').length };
  } finally {
    await bmc.close();
  }
}

describe('report reads keep a BMC\'s confirmed IPMI GUID', () => {
  it('reads without an IPMI session while the remembered GUID confirms the Redfish UUID, with the same UUID', async () => {
    for (const manufacturer of ['Lenovo', 'Gigabyte']) {
      const i = index(manufacturer);
      const memory = createGuidMemory({ maxAgeMs: 60_000 });
      const first = await read(i, memory);
      expect(first.ipmiDatagrams, manufacturer).toBeGreaterThan(0);
      expect(first.report.source).toBe('redfish+ipmi');
      expect(memory.get(hostOf(i)), manufacturer).toBeDefined();

      const second = await read(i, memory);
      expect(second.ipmiDatagrams, manufacturer).toBe(0);
      expect(second.report.uuid).toBe(first.report.uuid);
      expect(second.report.uuid).toBe(fleet.machines[i]!.state.uuid);
      expect(second.report.source).toBe('redfish');
      // the rest of the report is read as before
      expect({ ...second.report, source: first.report.source }).toEqual(first.report);
    }
  });

  it('a remembered GUID that does not confirm the Redfish UUID (another BMC at the address) is read again and replaced', async () => {
    const i = index('Lenovo');
    const memory = createGuidMemory({ maxAgeMs: 60_000 });
    const other = Buffer.alloc(16, 0x5a);
    memory.remember(hostOf(i), { guid: other, uuid: '00000000-0000-4000-8000-00000000005a' }, {});
    const { report, ipmiDatagrams } = await read(i, memory);
    expect(ipmiDatagrams).toBeGreaterThan(0);
    expect(report.uuid).toBe(fleet.machines[i]!.state.uuid);
    expect(memory.get(hostOf(i))?.equals(other)).toBe(false);
    expect(memory.get(hostOf(i))).toBeDefined();
  });

  it('Supermicro reads BMCVersion and FRU over IPMI: kept with the GUID while Redfish names the same Manager firmware, read again after a firmware update', async () => {
    const i = index('Supermicro');
    const state = fleet.machines[i]!.state;
    const memory = createGuidMemory({ maxAgeMs: 60_000 });
    const first = await read(i, memory);
    expect(first.ipmiDatagrams).toBeGreaterThan(0);
    expect(first.report.uuid).toBe(state.uuid);
    expect(first.report.fieldSources?.bmcVersion).toBe('ipmi');
    expect(memory.identity(hostOf(i))?.bmcVersion).toBe(first.report.bmcVersion);

    const second = await read(i, memory);
    expect(second.ipmiDatagrams).toBe(0);
    expect(second.report.source).toBe('redfish');
    expect({ ...second.report, source: first.report.source }).toEqual(first.report);

    // a BMC firmware update: Redfish's Manager FirmwareVersion and IPMI's firmware revision change together
    const before = state.bmcVersion;
    state.bmcVersion = '9.87';
    try {
      const updated = await read(i, memory);
      expect(updated.ipmiDatagrams).toBeGreaterThan(0);
      expect(updated.report.bmcVersion).toBe('9.87');
      expect(updated.report.bmcVersion).not.toBe(first.report.bmcVersion);
      const after = await read(i, memory);
      expect(after.ipmiDatagrams).toBe(0);
      expect(after.report.bmcVersion).toBe('9.87');
    } finally {
      state.bmcVersion = before;
    }
  });

  it('Supermicro through a kept layout: the Manager is read every time, also where a layout kept its version (a read that took the BMC for another vendor), so a firmware update is seen', async () => {
    const i = index('Supermicro');
    const state = fleet.machines[i]!.state;
    const memory = createGuidMemory({ maxAgeMs: 60_000 });
    const sessions = createRedfishSessionMemory({ maxAgeMs: 3_600_000 });
    const key = redfishSessionKey(hostOf(i), fleet.redfishPort);
    await read(i, memory, sessions);
    // a Supermicro layout is kept without the Manager's version
    expect(sessions.get(key)?.layout?.manager).toBeDefined();
    expect(sessions.get(key)?.layout?.managerFirmware).toBeUndefined();
    // as a read would have left it whose vendor detection failed ("unknown", Redfish first)
    const kept = sessions.get(key)!;
    const managerFirmware = memory.identity(hostOf(i))?.managerFirmware;
    expect(managerFirmware).toBeDefined();
    sessions.set(key, { ...kept, layout: { ...kept.layout!, managerFirmware: managerFirmware! } });
    const before = state.bmcVersion;
    state.bmcVersion = '9.88';
    try {
      const updated = await read(i, memory, sessions);
      expect(updated.report.bmcVersion).toBe('9.88');
      expect(updated.ipmiDatagrams).toBeGreaterThan(0);
    } finally {
      state.bmcVersion = before;
      fleet.redfish!.dropSessions(i);
    }
  });

  it('an identity read with a problem (no FRU device) is not kept: read again next time', async () => {
    const i = index('Supermicro');
    const memory = createGuidMemory({ maxAgeMs: 60_000 });
    fleet.setQuirks([i], ['ipmi-no-fru'], true);
    try {
      for (let round = 0; round < 2; round++) {
        const { report, ipmiDatagrams } = await read(i, memory);
        expect(ipmiDatagrams).toBeGreaterThan(0);
        expect(report.uuid).toBe(fleet.machines[i]!.state.uuid);
        expect(report.missing.some((m) => m.startsWith('FRU'))).toBe(true);
        expect(memory.identity(hostOf(i))).toBeUndefined();
      }
    } finally {
      fleet.setQuirks([i], ['ipmi-no-fru'], false);
    }
  });

  it('past its age the GUID is read over IPMI again', async () => {
    const i = index('Gigabyte');
    let now = 0;
    const memory = createGuidMemory({ maxAgeMs: 1000, now: () => now });
    expect((await read(i, memory)).ipmiDatagrams).toBeGreaterThan(0);
    now = 999;
    expect((await read(i, memory)).ipmiDatagrams).toBe(0);
    now = 1000;
    expect((await read(i, memory)).ipmiDatagrams).toBeGreaterThan(0);
    expect((await read(i, memory)).ipmiDatagrams).toBe(0);
  });

  it('without a memory every read opens an IPMI session, as before', async () => {
    const i = index('Lenovo');
    expect((await read(i)).ipmiDatagrams).toBeGreaterThan(0);
    expect((await read(i)).ipmiDatagrams).toBeGreaterThan(0);
  });
});
