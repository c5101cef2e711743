/**
 * The out-of-band facade against the simulated fleet (Redfish + IPMI of one machine share
 * state) and directly against the DMTF mockup: full reports, vendor routing, fallbacks,
 * faults, and no session left behind.
 */
import { createServer } from 'node:http';
import { createConnection, type AddressInfo } from 'node:net';
import { afterAll, beforeAll, expect } from 'vitest';
import { BmcError, isBmcError } from '../../src/errors.js';
import { connectOutband, type ConnectOptions } from '../../src/outband/connect.js';
import { createGuidMemory } from '../../src/outband/guid-memory.js';
import { REPORT_FIELDS } from '../../src/outband/vendors.js';
import { encodeFirmwareRevision } from '../../src/sim/ipmi-device.js';
import type { Fleet } from '../../src/sim/fleet.js';
import { startTestFleet } from '../helpers/fleet.js';
import { withPeers } from '../helpers/peers.js';
import { waitFor } from '../helpers/wait.js';

const { describe, it } = withPeers('openssl');

let fleet: Fleet;
const optionsFor = (i: number, extra: Partial<ConnectOptions> = {}): ConnectOptions => ({
  host: fleet.machines[i]!.state.address,
  user: fleet.user,
  password: fleet.password,
  ipmiPort: fleet.ipmiPort,
  redfishPort: fleet.redfishPort,
  timeoutMs: 5000,
  ...extra,
});
const byVendor = (name: string) => fleet.machines.findIndex((m) => m.state.manufacturer === name);

beforeAll(async () => {
  fleet = await startTestFleet({ count: 12 });
});
afterAll(async () => {
  await fleet?.close();
});

/** a TCP connection to host:port is refused (nothing listens) */
function connectionRefused(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host, port });
    socket.once('connect', () => (socket.destroy(), resolve(false)));
    socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'ECONNREFUSED'));
  });
}

function noSessionsLeft(i: number) {
  expect(fleet.ipmi.activeSessions(i)).toBe(0);
  expect(fleet.redfish!.openSessions(i)).toBe(0);
}

describe('info()', () => {
  it('reports every field, each from the protocol the vendor table names, for each simulated vendor', async () => {
    // A Novarion: a Supermicro board whose Redfish names Novarion-Systems (the BMC's IANA id stays Supermicro's).
    const novarion = fleet.machines.findIndex((m, k) => m.state.manufacturer === 'Supermicro' && k !== byVendor('Supermicro') && k > 4);
    expect(novarion).toBeGreaterThan(4);
    fleet.machines[novarion]!.state.manufacturer = 'Novarion-Systems';
    try {
      for (const vendor of ['Supermicro', 'Novarion-Systems', 'Lenovo', 'Gigabyte']) {
        const i = byVendor(vendor);
        expect(i, vendor).toBeGreaterThanOrEqual(0);
        const s = fleet.machines[i]!.state;
        const bmc = await connectOutband(optionsFor(i));
        const r = await bmc.info();
        await bmc.close();
        expect(r.uuid, vendor).toBe(s.uuid);
        expect(r.biosVersion).toBe(s.biosVersion);
        expect(r.powerState).toBe(s.power === 'on' ? 'ON' : 'OFF');
        expect(r.indicatorLED).toBe(s.identify ? 'LED-ON' : 'LED-OFF');
        expect(r.fru.product_serial).toBe(s.fru.productSerial);
        expect(r.fru.chassis_part_serial).toBe(s.fru.chassisSerial);
        expect(r.powerMetric?.averageconsumedwatts).toBe(s.powerWatts.average);
        expect(r.powerSupplies.map((p) => p.status.health)).toEqual(s.powerSupplies.map((p) => p.health));
        expect(r.source).toBe('redfish+ipmi');
        const ipmiFirst = vendor === 'Supermicro' || vendor === 'Novarion-Systems';
        expect(bmc.vendor).toBe(ipmiFirst ? vendor.toLowerCase().replace('-systems', '') : vendor.toLowerCase());
        // The protocols differ in two fields: IPMI's firmware revision is "major.minor" as ipmitool
        // prints it ("1.74"), Redfish's is the full version ("1.74.11"); the FRU's board serial is
        // the board's, Redfish's chassis serial is the chassis'.
        const { major, minorBcd } = encodeFirmwareRevision(s.bmcVersion);
        const ipmiVersion = `${major}.${minorBcd.toString(16).padStart(2, '0')}`;
        if (ipmiFirst) expect(ipmiVersion).not.toBe(s.bmcVersion);
        expect(r.bmcVersion, vendor).toBe(ipmiFirst ? ipmiVersion : s.bmcVersion);
        expect(r.fru.board_mfg_serial, vendor).toBe(ipmiFirst ? s.fru.boardSerial : s.fru.chassisSerial);
        expect(r.fru.board_mfg, vendor).toBe(ipmiFirst ? s.fru.boardManufacturer : s.manufacturer);
        expect(r.fru.board_part_number, vendor).toBe(s.fru.boardPartNumber);
        expect(Object.keys(r.fru).sort(), vendor).toEqual([...REPORT_FIELDS].filter((f) => f !== 'bmcVersion').sort());
        expect(new Set(Object.values(r.fieldSources ?? {})), vendor).toEqual(new Set([ipmiFirst ? 'ipmi' : 'redfish']));
        expect(Object.keys(r.fieldSources ?? {}).sort(), vendor).toEqual([...REPORT_FIELDS].sort());
        noSessionsLeft(i);
      }
    } finally {
      fleet.machines[novarion]!.state.manufacturer = 'Supermicro';
    }
  });

  it('Supermicro without a readable IPMI FRU: Redfish fills the FRU, IPMI still gives the version', async () => {
    const i = byVendor('Supermicro');
    const s = fleet.machines[i]!.state;
    const saved = s.fru;
    s.fru = { ...saved, boardSerial: '', boardManufacturer: '' };
    try {
      const bmc = await connectOutband(optionsFor(i));
      const r = await bmc.info();
      await bmc.close();
      expect(r.fru.board_mfg_serial).toBe(s.fru.chassisSerial);
      expect(r.fru.board_mfg).toBe(s.manufacturer);
      expect(r.fieldSources).toMatchObject({ board_mfg_serial: 'redfish', board_mfg: 'redfish', board_part_number: 'ipmi', bmcVersion: 'ipmi' });
    } finally {
      s.fru = saved;
    }
  });

  it('falls back to IPMI alone when Redfish is disabled, and says so; the UUID only where a read with Redfish confirmed the GUID or its order is configured', async () => {
    const read = async (extra: Partial<ConnectOptions> = {}) => {
      const bmc = await connectOutband(optionsFor(1, extra));
      try {
        return await bmc.info();
      } finally {
        await bmc.close();
      }
    };
    // a report read with Redfish keeps the GUID that confirmed the UUID
    const guidMemory = createGuidMemory({ maxAgeMs: 60_000 });
    expect((await read({ readAhead: true, guidMemory })).source).toBe('redfish+ipmi');
    fleet.setFaults([1], { redfishDisabled: true });
    // the simulator closes the machine's Redfish listener shortly after (it polls the fault)
    await waitFor(() => connectionRefused(fleet.machines[1]!.state.address, fleet.redfishPort), 10_000, 'the Redfish listener to close');
    const unconfirmed = await read();
    const remembered = await read({ readAhead: true, guidMemory });
    const configured = await read({ guidEncoding: 'smbios' });
    fleet.clearFaults();
    for (const r of [unconfirmed, remembered, configured]) {
      expect(r.source).toBe('ipmi');
      expect(r.missing[0]).toMatch(/^Redfish: /);
    }
    expect(unconfirmed).toMatchObject({ uuid: '', uuidGap: 'unconfirmed-ipmi-uuid' });
    expect(unconfirmed.missing).toContainEqual(expect.stringMatching(/^UUID: over IPMI alone the GUID reads [0-9a-f-]{36} in smbios order, but no earlier read with Redfish confirmed/));
    expect(remembered.uuid).toBe(fleet.machines[1]!.state.uuid);
    expect(configured.uuid).toBe(fleet.machines[1]!.state.uuid);
    noSessionsLeft(1);
  });

  it('a Redfish that answers 500 or 503 still yields an IPMI report; with protocol redfish it is an error', async () => {
    for (const status of [500, 503]) {
      fleet.setFaults([2], { redfishStatus: status });
      const bmc = await connectOutband(optionsFor(2));
      expect((await bmc.info()).source).toBe('ipmi');
      await bmc.close();
      const err = await connectOutband(optionsFor(2, { protocol: 'redfish' })).catch((e: unknown) => e);
      expect(isBmcError(err, 'HTTP')).toBe(true);
      fleet.clearFaults();
    }
    noSessionsLeft(2);
  });

  it('a Redfish that hangs costs no more than the deadline, then IPMI answers', async () => {
    fleet.setFaults([3], { redfishHang: true });
    const started = Date.now();
    const bmc = await connectOutband(optionsFor(3, { timeoutMs: 1500 }));
    const r = await bmc.info();
    await bmc.close();
    fleet.clearFaults();
    expect(r.source).toBe('ipmi');
    // time is the subject (the hang costs no more than the deadline): 1.5 s deadline, 6 s bound for a loaded machine
    expect(Date.now() - started).toBeLessThan(6000);
  });

  it('a report read that hedges gets its whole report over Redfish where the BMC leaves one GET unanswered, and counts the hedge', async () => {
    const i = byVendor('Lenovo');
    fleet.setFaults([i], { redfishStraggler: '/redfish/v1/Systems' });
    try {
      const bmc = await connectOutband(optionsFor(i, { readAhead: true, redfishHedgeAfterMs: 200, timeoutMs: 3000 }));
      const r = await bmc.info().finally(() => bmc.close());
      expect(fleet.machines[i]!.state.faults.redfishStraggler).toBeNull(); // the straggler was met
      expect(r.source).toMatch(/^redfish/);
      expect(r.redfishProblem).toBeUndefined();
      expect(r.uuid).toBe(fleet.machines[i]!.state.uuid);
      expect(r.redfishHedges).toEqual({ won: 1, lost: 0, failed: 0 });
    } finally {
      fleet.clearFaults();
    }
  });

  it('a read that is not a report read (a command, the CLI: no readAhead) never hedges, whatever the setting', async () => {
    const i = byVendor('Lenovo');
    fleet.setFaults([i], { redfishStraggler: '/redfish/v1/Systems' });
    try {
      const bmc = await connectOutband(optionsFor(i, { redfishHedgeAfterMs: 200, timeoutMs: 2000 }));
      const r = await bmc.info().finally(() => bmc.close());
      expect(fleet.machines[i]!.state.faults.redfishStraggler).toBeNull(); // the straggler was met
      expect(r.redfishHedges).toBeUndefined();
    } finally {
      fleet.clearFaults();
    }
  });

  it('wrong credentials are AUTH_FAILED, not a partial report', async () => {
    const err = await connectOutband(optionsFor(4, { password: 'nope' }))
      .then((b) => b.info().finally(() => b.close()))
      .catch((e: unknown) => e);
    expect(isBmcError(err, 'AUTH_FAILED')).toBe(true);
    expect(String(err)).not.toContain('nope');
    noSessionsLeft(4);
  });
});

describe('actions', () => {
  it('routes power, boot and LED per vendor and the simulated machine follows', async () => {
    for (const vendor of ['Supermicro', 'Lenovo', 'Gigabyte']) {
      const i = byVendor(vendor);
      const m = fleet.machines[i]!;
      const bmc = await connectOutband(optionsFor(i));
      await bmc.powerOff();
      expect(m.state.power, vendor).toBe('off');
      await bmc.powerCycle();
      expect(m.state.power, vendor).toBe('on');
      await bmc.bootFrom('PXE');
      expect(m.state.boot, vendor).toBe('pxe');
      await bmc.bootFrom('DISK');
      expect(m.state.boot, vendor).toBe('disk');
      await bmc.identify(true);
      expect(m.state.identify, vendor).toBe(true);
      await bmc.identify(false);
      expect(m.state.identify, vendor).toBe(false);
      await bmc.close();
      noSessionsLeft(i);
    }
  });

  it('a reset both protocols refuse: the preferred one\'s refusal, with the other\'s in its message; nothing done', async () => {
    const i = byVendor('Lenovo');
    const machine = fleet.machines[i]!;
    const powerEvents: string[] = [];
    const onChange = (c: { kind: string; action?: string }) => void (c.kind === 'power' && powerEvents.push(c.action ?? ''));
    machine.on('change', onChange);
    fleet.setFaults([i], { actRefused: 400, ipmiActRefused: 0xd5 });
    const bmc = await connectOutband(optionsFor(i));
    try {
      const err = await bmc.powerReset().then(() => undefined, (e: unknown) => e);
      // Lenovo resets over Redfish first: its 400 decides (a refusal: the runner may try it again)
      expect(err).toMatchObject({ code: 'HTTP', httpStatus: 400 });
      expect((err as Error).message).toMatch(/HTTP 400: .*; over IPMI too: Chassis Control \(reset\) on BMC .*: command not supported in the present state$/);
      // a copy of the decisive error, of its class, with the whole message in its stack too
      expect(err).toBeInstanceOf(BmcError);
      expect((err as Error).stack).toContain('; over IPMI too: ');
      expect(powerEvents).toEqual([]);
    } finally {
      machine.off('change', onChange);
      fleet.clearFaults();
      await bmc.close();
    }
  });

  it('power cycle on a vendor without PowerCycle ends with the machine on', async () => {
    const i = byVendor('Gigabyte');
    const bmc = await connectOutband(optionsFor(i, { protocol: 'redfish' }));
    await bmc.powerCycle();
    await bmc.close();
    expect(fleet.machines[i]!.state.power).toBe('on');
  });

  it('firmware update: SimpleUpdate (Lenovo) or a streamed multipart push (Supermicro), followed to completion', async () => {
    const image = Buffer.alloc(1 << 20, 0x5a);
    const server = createServer((_req, res) => res.writeHead(200, { 'content-length': image.length }).end(image));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/firmware/X11-3.4.bin`;
    try {
      for (const [vendor, kind] of [['Lenovo', 'bios'], ['Supermicro', 'bmc']] as const) {
        const i = byVendor(vendor);
        const events: string[] = [];
        fleet.machines[i]!.on('change', (e) => e.kind === 'firmware' && events.push(e.target));
        const uploadedBefore = fleet.redfish!.requests.uploadedBytes;
        const bmc = await connectOutband(optionsFor(i));
        const progress: string[] = [];
        await bmc.updateFirmware(kind, url, { onProgress: (p) => progress.push(p.state) });
        await bmc.close();
        expect(events, vendor).toEqual([kind]);
        expect(progress.at(-1), vendor).toBe('Completed');
        const uploaded = fleet.redfish!.requests.uploadedBytes - uploadedBefore;
        expect(uploaded, vendor).toBe(bmc.profile.firmware === 'multipart-push' ? image.length : 0);
        noSessionsLeft(i);
      }
    } finally {
      server.close();
    }
  });
});
