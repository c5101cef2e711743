/**
 * Machine UUIDs in report cycles against the simulator (its Redfish and IPMI serve one machine's
 * UUID; `ipmi-guid-rfc4122` sends the GUID in textual order) and the metal-api stand-in, which
 * creates a machine for every UUID it does not know, as metal-api does: each reported UUID must be
 * the machine's own, or metal-api gets a phantom machine. A BMC with no UUID to report is left out
 * with its reason, and its last good data stays in metal-api.
 */
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GuidOrdersByVendor } from '../../src/config/guid-orders.js';
import { swapMixedEndian } from '../../src/ipmi/guid.js';
import type { Lease } from '../../src/leases/types.js';
import { createMetalApiClient } from '../../src/metalapi/client.js';
import { startMetalApiStandIn, type MetalApiStandIn } from '../../src/metalapi/standin.js';
import { connectOutband } from '../../src/outband/connect.js';
import { createGuidMemory, type GuidMemory } from '../../src/outband/guid-memory.js';
import { runReportCycle, type CycleResult } from '../../src/report/cycle.js';
import { createReportMetrics, type ReportMetrics } from '../../src/report/metrics.js';
import type { Fleet } from '../../src/sim/fleet.js';
import { bmcOwnUuid } from '../../src/sim/ipmi-device.js';
import { startTestFleet } from '../helpers/fleet.js';
import { captureLog, type CapturedLog } from '../helpers/log.js';

let fleet: Fleet;
let api: MetalApiStandIn;

beforeAll(async () => {
  // vendors whose Redfish UUIDs go-hal reports unchanged
  fleet = await startTestFleet({ count: 4, variants: ['lenovo', 'gigabyte'], seed: 'uuid-evidence' });
  api = await startMetalApiStandIn({ hmacKey: 'k' });
});
afterAll(async () => {
  await api?.close();
  await fleet?.close();
});

const stateOf = (i: number) => fleet.machines[i]!.state;
const leaseOf = (i: number): Lease => ({ ip: stateOf(i).address, mac: stateOf(i).mac, expires: 'never' });

/** A report cycle over machines `indexes`, as the daemon runs it (read-ahead, a GUID memory kept across cycles); the UUIDs of the report it posted. */
async function cycle(indexes: number[], o: { guidMemory: GuidMemory; log: CapturedLog; metrics?: ReportMetrics; guidEncodingByVendor?: GuidOrdersByVendor }): Promise<{ result: CycleResult; uuids: string[] }> {
  const posted = api.reports.length;
  const result = await runReportCycle(
    {
      partitionId: 'p',
      connect: (host, signal, onAnswer) => connectOutband({ host, user: fleet.user, password: fleet.password, ipmiPort: fleet.ipmiPort, redfishPort: fleet.redfishPort, timeoutMs: 5000, readAhead: true, guidMemory: o.guidMemory, ...(o.guidEncodingByVendor ? { guidEncodingByVendor: o.guidEncodingByVendor } : {}), logger: o.log.logger, onAnswer, signal }),
      metalApi: createMetalApiClient({ baseUrl: api.url, hmacKey: 'k', retries: 0 }),
      concurrency: 4,
      bmcTimeoutMs: 5000,
      logger: o.log.logger,
      ...(o.metrics ? { metrics: o.metrics } : {}),
    },
    indexes.map(leaseOf),
  );
  return { result, uuids: api.reports.slice(posted).flatMap((r) => Object.keys(r.reports)) };
}

describe('machine UUIDs in report cycles', () => {
  it('a BMC sending its GUID in RFC 4122 order is reported with its Redfish UUID, not the byte-swapped one', async () => {
    const i = 0;
    fleet.setQuirks([i], ['ipmi-guid-rfc4122'], true);
    try {
      const log = captureLog();
      const { uuids } = await cycle([i], { guidMemory: createGuidMemory({ maxAgeMs: 60_000 }), log });
      expect(uuids).toEqual([stateOf(i).uuid]);
      expect(uuids).not.toContain(swapMixedEndian(stateOf(i).uuid));
    } finally {
      fleet.setQuirks([i], ['ipmi-guid-rfc4122'], false);
    }
  });

  it('where neither byte order is the more plausible one, the Redfish UUID is reported and the guess named once per BMC', async () => {
    const i = 1;
    const own = stateOf(i).uuid;
    // version 4 read either way: byte 7's high nibble is 4 as well
    stateOf(i).uuid = '3f2504e0-4f89-4143-9a0c-0305e82c3301';
    fleet.setQuirks([i], ['ipmi-guid-rfc4122'], true);
    try {
      const log = captureLog();
      const guidMemory = createGuidMemory({ maxAgeMs: 60_000 });
      for (let round = 0; round < 2; round++) expect((await cycle([i], { guidMemory, log })).uuids).toEqual(['3f2504e0-4f89-4143-9a0c-0305e82c3301']);
      const named = log.lines.filter((l) => l.quirk === 'uuid-redfish-ambiguous');
      expect(named.map((l) => l.level)).toEqual([40, 20]); // a warning, then debug
      expect(String(named[0]!.msg)).toContain('e004253f-894f-4341-9a0c-0305e82c3301');
    } finally {
      fleet.setQuirks([i], ['ipmi-guid-rfc4122'], false);
      stateOf(i).uuid = own;
    }
  });

  it('BMCs whose Redfish and IPMI give only a placeholder UUID (all zero, AMI\'s default) are left out, each with its reason; ten zero bytes and a MAC are a machine id', async () => {
    const own = [0, 2, 3].map((i) => stateOf(i).uuid);
    // a Supermicro-style UUID: ten zero bytes and the board's MAC
    stateOf(0).uuid = `00000000-0000-0000-0000-${stateOf(0).mac.replaceAll(':', '')}`;
    stateOf(2).uuid = '00000000-0000-0000-0000-000000000000';
    stateOf(3).uuid = '03000200-0400-0500-0006-000700080009';
    try {
      const log = captureLog();
      const registry = new Registry();
      const { result, uuids } = await cycle([0, 2, 3], { guidMemory: createGuidMemory({ maxAgeMs: 60_000 }), log, metrics: createReportMetrics(registry) });
      expect(uuids).toEqual([stateOf(0).uuid]);
      expect(result.reported).toBe(1);
      expect(await registry.getSingleMetricAsString('metal_bmc_bmcs_skipped_total')).toMatch(/reason="placeholder-uuid"} 2$/m);
      const skipped = log.find('BMC gives only a placeholder machine UUID, skipped in this report');
      expect(skipped.map((l) => l.bmc).sort()).toEqual([stateOf(2).address, stateOf(3).address].sort());
      expect(JSON.stringify(skipped)).toContain('03000200-0400-0500-0006-000700080009');
    } finally {
      [0, 2, 3].forEach((i, k) => (stateOf(i).uuid = own[k]!));
    }
  });

  it('when Redfish fails, a BMC is reported over IPMI alone only with the UUID a read with Redfish decided for its GUID; one without is left out', async () => {
    // Gigabyte (its Redfish lacks power metrics: IPMI is read in full every cycle) with its GUID in RFC 4122
    // order, which decoded in the usual SMBIOS order would be another machine's UUID; Lenovo (the GUID stands
    // in for its IPMI session between cycles)
    const known = [0, 1];
    const unknown = 2;
    expect(known.map((i) => stateOf(i).variant)).toEqual(['gigabyte', 'lenovo']);
    fleet.setQuirks([0], ['ipmi-guid-rfc4122'], true);
    const guidMemory = createGuidMemory({ maxAgeMs: 60_000 });
    const log = captureLog();
    const registry = new Registry();
    const uuidsOf = (indexes: number[]) => indexes.map((i) => stateOf(i).uuid).sort();
    try {
      expect((await cycle(known, { guidMemory, log })).uuids.sort()).toEqual(uuidsOf(known));
      // a session limit, a 503: this cycle reads them over IPMI alone
      fleet.setFaults([...known, unknown], { redfishStatus: 503 });
      const { result, uuids } = await cycle([...known, unknown], { guidMemory, log, metrics: createReportMetrics(registry) });
      expect(uuids.sort()).toEqual(uuidsOf(known));
      expect(uuids).not.toContain(swapMixedEndian(stateOf(0).uuid));
      expect(result.reported).toBe(2);
      expect(await registry.getSingleMetricAsString('metal_bmc_bmcs_skipped_total')).toMatch(/reason="unconfirmed-ipmi-uuid"} 1$/m);
      const skipped = log.find('BMC read over IPMI alone gives a machine UUID no earlier read confirmed, skipped in this report');
      expect(skipped.map((l) => l.bmc)).toEqual([stateOf(unknown).address]);
      expect(JSON.stringify(skipped[0]!.missing)).toContain(`UUID: over IPMI alone the GUID reads ${stateOf(unknown).uuid} in smbios order, but no earlier read with Redfish confirmed a UUID for this BMC`);
      // Redfish back: the unknown one is reported, and confirmed from then on
      fleet.clearFaults();
      expect((await cycle([...known, unknown], { guidMemory, log })).uuids.sort()).toEqual(uuidsOf([...known, unknown]));
      expect(guidMemory.decided(stateOf(unknown).address)?.uuid).toBe(stateOf(unknown).uuid);
    } finally {
      fleet.clearFaults();
      fleet.setQuirks([0], ['ipmi-guid-rfc4122'], false);
    }
  });

  it('METAL_BMC_GUID_ENCODING: a BMC never read with Redfish is reported over IPMI alone with its GUID in its vendor\'s configured order; a vendor not listed is left out; a listed order Redfish contradicts is a warning once', async () => {
    const gigabyte = fleet.machines.findIndex((m) => m.state.variant === 'gigabyte');
    const lenovo = fleet.machines.findIndex((m) => m.state.variant === 'lenovo');
    // the Gigabyte BMC sends its GUID in RFC 4122 order: in SMBIOS order it would be another machine's UUID
    fleet.setQuirks([gigabyte], ['ipmi-guid-rfc4122'], true);
    const both = [gigabyte, lenovo];
    const uuidsOf = (indexes: number[]) => indexes.map((i) => stateOf(i).uuid).sort();
    try {
      // no Redfish (every request a 503) and no earlier read remembered: the configuration alone decides
      fleet.setFaults(both, { redfishStatus: 503 });
      const gigabyteOnly = await cycle(both, { guidMemory: createGuidMemory({ maxAgeMs: 60_000 }), log: captureLog(), guidEncodingByVendor: { gigabyte: 'rfc4122' } });
      expect(gigabyteOnly.uuids).toEqual([stateOf(gigabyte).uuid]);
      expect(gigabyteOnly.result.reported).toBe(1);
      const listed = await cycle(both, { guidMemory: createGuidMemory({ maxAgeMs: 60_000 }), log: captureLog(), guidEncodingByVendor: { gigabyte: 'rfc4122', lenovo: 'smbios' } });
      expect(listed.uuids.sort()).toEqual(uuidsOf(both));
      // without the setting, neither
      expect((await cycle(both, { guidMemory: createGuidMemory({ maxAgeMs: 60_000 }), log: captureLog() })).uuids).toEqual([]);

      // with Redfish: a wrong order for Gigabyte is told once per BMC, and the report keeps the UUID Redfish confirms
      fleet.clearFaults();
      const log = captureLog();
      const wrong = { gigabyte: 'smbios', lenovo: 'smbios' } as const;
      const registry = new Registry();
      const metrics = createReportMetrics(registry);
      for (let k = 0; k < 2; k++) expect((await cycle(both, { guidMemory: createGuidMemory({ maxAgeMs: 60_000 }), log, metrics, guidEncodingByVendor: wrong })).uuids.sort()).toEqual(uuidsOf(both));
      // every read counted (an alert's metric), the log line only once
      expect(await registry.getSingleMetricAsString('metal_bmc_guid_order_contradicted_total')).toMatch(/^metal_bmc_guid_order_contradicted_total 2$/m);
      // once per BMC and process (logQuirk's memory; no other test file's BMC shares this process)
      const warned = log.lines.filter((l) => l.quirk === 'guid-encoding-contradicted' && l.level === 40);
      expect(warned.map((l) => l.bmc)).toEqual([stateOf(gigabyte).address]);
      expect(String(warned[0]!.msg)).toContain(`METAL_BMC_GUID_ENCODING lists gigabyte=smbios, but its GUID in that order is ${swapMixedEndian(stateOf(gigabyte).uuid)}, not ${stateOf(gigabyte).uuid} from its Redfish`);

      // a decision remembered from a read with Redfish goes before a listed order, a wrong one included
      const guidMemory = createGuidMemory({ maxAgeMs: 60_000 });
      expect((await cycle(both, { guidMemory, log })).uuids.sort()).toEqual(uuidsOf(both));
      fleet.setFaults(both, { redfishStatus: 503 });
      expect((await cycle(both, { guidMemory, log, guidEncodingByVendor: wrong })).uuids.sort()).toEqual(uuidsOf(both));
      fleet.clearFaults();

      // a UUID whose two forms are both version 4 (the fields cannot tell): the listed order settles which one it is
      const own = stateOf(gigabyte).uuid;
      stateOf(gigabyte).uuid = '3f2504e0-4f89-4143-9a0c-0305e82c3301';
      try {
        expect((await cycle([gigabyte], { guidMemory: createGuidMemory({ maxAgeMs: 60_000 }), log })).uuids).toEqual(['3f2504e0-4f89-4143-9a0c-0305e82c3301']);
        expect((await cycle([gigabyte], { guidMemory: createGuidMemory({ maxAgeMs: 60_000 }), log, guidEncodingByVendor: { gigabyte: 'rfc4122' } })).uuids).toEqual(['3f2504e0-4f89-4143-9a0c-0305e82c3301']);
        // listed wrongly: the other form, as the operator's check would have said of a mixed-endian Redfish
        expect((await cycle([gigabyte], { guidMemory: createGuidMemory({ maxAgeMs: 60_000 }), log, guidEncodingByVendor: { gigabyte: 'smbios' } })).uuids).toEqual(['e004253f-894f-4341-9a0c-0305e82c3301']);
      } finally {
        stateOf(gigabyte).uuid = own;
      }

      // a BMC whose GUID is its own, the host's UUID in no order (ipmi-guid-unrelated): the UUID is Redfish's, and a listed order is wrong for it
      fleet.setQuirks([lenovo], ['ipmi-guid-unrelated'], true);
      try {
        const unrelated = new Registry();
        expect((await cycle([lenovo], { guidMemory: createGuidMemory({ maxAgeMs: 60_000 }), log, metrics: createReportMetrics(unrelated), guidEncodingByVendor: { lenovo: 'smbios' } })).uuids).toEqual([stateOf(lenovo).uuid]);
        const told = log.lines.filter((l) => l.quirk === 'guid-encoding-contradicted' && l.bmc === stateOf(lenovo).address);
        expect(told.map((l) => l.level)).toEqual([40]);
        expect(String(told[0]!.msg)).toContain(`its GUID in that order is ${bmcOwnUuid(stateOf(lenovo).uuid)}, not ${stateOf(lenovo).uuid} from its Redfish (redfish)`);
        expect(await unrelated.getSingleMetricAsString('metal_bmc_guid_order_contradicted_total')).toMatch(/^metal_bmc_guid_order_contradicted_total 1$/m);
      } finally {
        fleet.setQuirks([lenovo], ['ipmi-guid-unrelated'], false);
      }

      // protocol ipmi: the listed order replaces the vendor table's (SMBIOS)
      const overIpmi = async (guidEncodingByVendor?: GuidOrdersByVendor) => {
        const bmc = await connectOutband({ host: stateOf(gigabyte).address, user: fleet.user, password: fleet.password, ipmiPort: fleet.ipmiPort, protocol: 'ipmi', timeoutMs: 5000, ...(guidEncodingByVendor ? { guidEncodingByVendor } : {}) });
        try {
          return (await bmc.info()).uuid;
        } finally {
          await bmc.close();
        }
      };
      expect(await overIpmi({ gigabyte: 'rfc4122' })).toBe(stateOf(gigabyte).uuid);
      expect(await overIpmi()).toBe(swapMixedEndian(stateOf(gigabyte).uuid));
    } finally {
      fleet.clearFaults();
      fleet.setQuirks([gigabyte], ['ipmi-guid-rfc4122'], false);
    }
  });
});
