/**
 * Persistent boot devices end to end: our IPMI sequence against ipmi_sim (a real BMC that refuses
 * set-in-progress) read back with ipmitool; the simulator's boot model cross-checked with ipmitool
 * (`chassis bootparam get 5`, `chassis bootdev ... options=persistent,efiboot`, resets); and per
 * simulated vendor and protocol, metal-api's `create` and `delete` events followed by two resets.
 */
import { execFile } from 'node:child_process';
import { afterAll, beforeAll, expect } from 'vitest';
import { runAction } from '../../src/commands/actions.js';
import { decodeMachineEvent, planEvent } from '../../src/commands/event.js';
import { writeBootFlags } from '../../src/ipmi/boot.js';
import { openSession } from '../../src/ipmi/session.js';
import { ipmiBootFlags } from '../../src/outband/boot.js';
import { connectOutband, type FacadeOutband } from '../../src/outband/connect.js';
import { ipmiOutband } from '../../src/outband/ipmi.js';
import { openRedfish } from '../../src/redfish/session.js';
import { setBootOverride } from '../../src/redfish/actions.js';
import type { Fleet } from '../../src/sim/fleet.js';
import { SIM_VARIANTS, type SimMachine, type SimVariantName } from '../../src/sim/machine.js';
import { startTestFleet } from '../helpers/fleet.js';
import { startIpmiSim, type IpmiSim } from '../helpers/ipmisim.js';
import { withPeers } from '../helpers/peers.js';

const { describe, it } = withPeers('ipmi_sim', 'ipmitool', 'openssl');

function ipmitoolAt(host: string, port: number, user: string, password: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile('ipmitool', ['-I', 'lanplus', '-H', host, '-p', String(port), '-U', user, '-P', password, '-C', '17', ...args], { timeout: 20_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }),
    );
  });
}

describe('ipmi_sim (OpenIPMI) as the BMC', () => {
  let sim: IpmiSim;
  beforeAll(async () => {
    sim = await startIpmiSim();
  });
  afterAll(async () => {
    await sim?.stop();
  });

  it('refuses set-in-progress (0xCC) and still gets the flags; ipmitool reads the device back', async () => {
    const s = await openSession({ host: sim.host, port: sim.port, user: sim.user, password: sim.password, cipherSuite: 3 });
    try {
      const outcome = await writeBootFlags(s, ipmiBootFlags('PXE', { persistent: true, uefi: true, diskDevice: 0x08 }));
      expect(outcome.steps).toEqual([
        { step: 'set-in-progress', completionCode: 0xcc },
        { step: 'boot-flags', completionCode: 0 },
        { step: 'info-ack', completionCode: 0 },
      ]);
    } finally {
      await s.close();
    }
    expect(sim.chassisValue('boot')).toBe('pxe');
    const get = await sim.ipmitool(['chassis', 'bootparam', 'get', '5']);
    expect(get.stdout).toContain('Boot Device Selector : Force PXE');
  });

  it('the IPMI outband sets disk (0x08 for a non-Supermicro BMC) and BIOS; ipmitool shows each', async () => {
    const bmc = ipmiOutband({ host: sim.host, port: sim.port, user: sim.user, password: sim.password, cipherSuite: 3 });
    try {
      await bmc.bootFrom('DISK');
      expect(sim.chassisValue('boot')).toBe('default');
      expect((await sim.ipmitool(['chassis', 'bootparam', 'get', '5'])).stdout).toContain('Force Boot from default Hard-Drive');
      await bmc.bootFrom('BIOS');
      expect((await sim.ipmitool(['chassis', 'bootparam', 'get', '5'])).stdout).toContain('Force Boot into BIOS Setup');
      // ipmi_sim keeps only the device, not the valid, persistent and EFI bits (data 00 18 ...), so those are
      // checked against our simulator below; a flag without the valid bit reads as no override
      expect(await bmc.bootOverride()).toMatchObject({ target: 'NONE', detail: 'boot flags 00 18' });
    } finally {
      await bmc.close();
    }
  });
});

describe('simulated fleet: every vendor variant', () => {
  let fleet: Fleet;
  const byVariant = new Map<SimVariantName, number>();
  const variants = Object.keys(SIM_VARIANTS) as SimVariantName[];

  beforeAll(async () => {
    fleet = await startTestFleet({ count: 20, variants, recordRequests: true });
    for (const [name, v] of Object.entries(SIM_VARIANTS) as Array<[SimVariantName, (typeof SIM_VARIANTS)[SimVariantName]]>) {
      const i = fleet.machines.findIndex((m) => m.state.model === v.model);
      if (i >= 0) byVariant.set(name, i);
    }
  });
  afterAll(async () => {
    await fleet?.close();
  });

  const machine = (variant: SimVariantName): SimMachine => {
    const i = byVariant.get(variant);
    if (i === undefined) throw new Error(`the fleet has no ${variant} machine`);
    return fleet.machines[i]!;
  };
  const ipmitool = (m: SimMachine, args: string[]) => ipmitoolAt(m.state.address, fleet.ipmiPort, fleet.user, fleet.password, args);
  const connect = (m: SimMachine, protocol: 'redfish' | 'ipmi' | 'auto') =>
    connectOutband({ host: m.state.address, user: fleet.user, password: fleet.password, ipmiPort: fleet.ipmiPort, redfishPort: fleet.redfishPort, protocol, timeoutMs: 5000 });
  /** A machine freshly racked: on, no override, the NIC first in its BIOS order. */
  const fresh = (m: SimMachine, order = ['Boot0001', 'Boot0002']) => {
    delete m.state.pendingBootOrder;
    return Object.assign(m.state, { power: 'on', boot: 'none', bootPersistent: false, bootOrder: order, lastBoot: null });
  };

  /** metal-api's event, decoded and planned as the daemon does, run on one connection. */
  async function lifecycle(bmc: FacadeOutband, m: SimMachine, type: 'create' | 'delete'): Promise<void> {
    const event = { type, [type === 'create' ? 'new' : 'old']: `machine-${m.state.index}`, cmd: { ipmi: { address: `${m.state.address}:${fleet.ipmiPort}`, user: fleet.user, password: fleet.password } } };
    const plan = planEvent(decodeMachineEvent(Buffer.from(JSON.stringify(event))));
    for (const action of plan.actions) await runAction(bmc, action, {});
  }

  it('has every variant', () => {
    expect([...byVariant.keys()].sort()).toEqual([...variants].sort());
  });

  it('ipmitool reads our persistent flags as "all future boots", EFI, and the vendor disk byte', async () => {
    for (const [variant, diskData] of [
      ['supermicro', 'e024000000'],
      ['lenovo', 'e008000000'],
    ] as const) {
      const m = machine(variant);
      fresh(m);
      const bmc = await connect(m, 'ipmi');
      try {
        await bmc.bootFrom('DISK');
      } finally {
        await bmc.close();
      }
      const get = await ipmitool(m, ['chassis', 'bootparam', 'get', '5']);
      expect(get.stdout, variant).toContain(`Boot parameter data: ${diskData}`);
      expect(get.stdout).toContain('Options apply to all future boots');
      expect(get.stdout).toContain('BIOS EFI boot');
      // the set-in-progress lock was released: ipmitool can take it again
      expect((await ipmitool(m, ['chassis', 'bootparam', 'get', '0'])).stdout).toContain('Boot parameter data: 00');
    }
  });

  it('ipmitool sets persistent PXE on the simulator; two resets boot PXE; the Redfish view agrees; a one-time override clears after one boot', async () => {
    const m = machine('lenovo');
    fresh(m, ['Boot0002', 'Boot0001']);
    expect((await ipmitool(m, ['chassis', 'bootdev', 'pxe', 'options=persistent,efiboot'])).stdout).toContain('Set Boot Device to pxe');
    for (let i = 0; i < 2; i++) {
      expect((await ipmitool(m, ['chassis', 'power', 'reset'])).code).toBe(0);
      expect(m.state.lastBoot).toMatchObject({ device: 'pxe', via: 'override' });
      const get = await ipmitool(m, ['chassis', 'bootparam', 'get', '5']);
      expect(get.stdout).toContain('Options apply to all future boots');
      expect(get.stdout).toContain('Force PXE');
    }
    const bmc = await connect(m, 'redfish');
    try {
      expect(await bmc.bootOverride()).toMatchObject({ target: 'PXE', persistent: true, uefi: true, source: 'redfish' });
      await bmc.bootFrom('PXE', { persistent: false });
      await bmc.powerReset();
      expect(m.state.lastBoot).toMatchObject({ device: 'pxe', via: 'override' });
      await bmc.powerReset();
      expect(m.state.lastBoot).toMatchObject({ device: 'disk', via: 'boot-order' });
    } finally {
      await bmc.close();
    }
    const get = await ipmitool(m, ['chassis', 'bootparam', 'get', '5']);
    expect(get.stdout).toContain('Boot Flag Invalid');
  });

  describe.each(['redfish', 'ipmi'] as const)('over %s', (protocol) => {
    it.each(variants)('%s: create, then two resets, boots disk; delete, then two resets, boots PXE', async (variant) => {
      const m = machine(variant);
      fresh(m); // NIC first: without a persistent disk override, the second boot would be PXE again
      const bmc = await connect(m, protocol);
      try {
        await lifecycle(bmc, m, 'create');
        for (let i = 0; i < 2; i++) {
          await bmc.powerReset();
          expect(m.state.lastBoot?.device, `${variant} reset ${i + 1} after create`).toBe('disk');
        }
        // an installed machine: metal-hammer put the OS first in the BIOS order
        m.state.bootOrder = ['Boot0002', 'Boot0001'];
        const before = m.state.lastBoot!.count;
        await lifecycle(bmc, m, 'delete');
        expect(m.state.lastBoot, 'delete resets the machine').toMatchObject({ device: 'pxe', count: before + 1 });
        for (let i = 0; i < 2; i++) {
          await bmc.powerReset();
          expect(m.state.lastBoot?.device, `${variant} reset ${i + 1} after delete`).toBe('pxe');
        }
        const read = await bmc.bootOverride();
        if (variant === 'dell-old-bios' && protocol === 'redfish') {
          expect(read).toMatchObject({ target: 'NONE', bootOrder: ['Boot0001', 'Boot0002'] });
        } else {
          expect(read).toMatchObject({ target: 'PXE', persistent: true, uefi: true, source: protocol });
        }
      } finally {
        await bmc.close();
      }
    });

    it('delete powers on a machine that is off, booting PXE', async () => {
      const m = machine('gigabyte');
      fresh(m, ['Boot0002', 'Boot0001']);
      m.state.power = 'off';
      const bmc = await connect(m, protocol);
      try {
        await lifecycle(bmc, m, 'delete');
      } finally {
        await bmc.close();
      }
      expect(m.state.power).toBe('on');
      expect(m.state.lastBoot).toMatchObject({ device: 'pxe', via: 'override' });
    });
  });

  describe('Dell with an old BIOS', () => {
    it('forgets a Redfish Continuous override after one boot (the simulated iDRAC defect); a newer BIOS keeps it', async () => {
      for (const [variant, second] of [
        ['dell-old-bios', 'pxe'],
        ['dell', 'disk'],
      ] as const) {
        const m = machine(variant);
        fresh(m);
        const r = await openRedfish({ host: m.state.address, port: fleet.redfishPort, user: fleet.user, password: fleet.password, insecure: true });
        try {
          await setBootOverride(r, 'Hdd', { persistent: true, uefi: true });
        } finally {
          await r.close();
        }
        m.setPower('on', 'ForceRestart');
        expect(m.state.lastBoot?.device, variant).toBe('disk');
        m.setPower('on', 'ForceRestart');
        expect(m.state.lastBoot?.device, variant).toBe(second);
      }
    });

    it.each([
      ['DISK', ['Boot0001', 'Boot0002'], 'disk'],
      ['PXE', ['Boot0002', 'Boot0001'], 'pxe'],
    ] as const)('persistent %s over Redfish alone: the BootOrder PATCH, pending until the next reset as on iDRAC, is taken as done, and each reset from then boots it', async (target, before, device) => {
      const m = machine('dell-old-bios');
      fresh(m, [...before]);
      const bmc = await connect(m, 'redfish');
      try {
        await bmc.bootFrom(target);
      } finally {
        await bmc.close();
      }
      const order = [...before].reverse();
      expect(m.state, 'the System shows the old order until the reset').toMatchObject({ bootOrder: before, pendingBootOrder: order, boot: 'none' });
      for (let i = 0; i < 2; i++) {
        m.setPower('on', 'ForceRestart');
        expect(m.state, `reset ${i + 1}`).toMatchObject({ bootOrder: order, lastBoot: { device, via: 'boot-order' } });
      }
    });

    it('the facade takes the BootOrder path there (disk options first, the override switched off) and the override on a newer BIOS', async () => {
      const old = machine('dell-old-bios');
      fresh(old);
      old.state.boot = 'pxe'; // a one-time override left pending: the BootOrder path switches it off
      const bmc = await connect(old, 'auto');
      const requestsBefore = fleet.requestLog(old.state.index).length;
      try {
        expect(bmc.vendor).toBe('dell');
        await bmc.bootFrom('DISK');
      } finally {
        await bmc.close();
      }
      // the order is pending until the next reset (iDRAC's config job), the override switched off at once
      expect(old.state).toMatchObject({ bootOrder: ['Boot0001', 'Boot0002'], pendingBootOrder: ['Boot0002', 'Boot0001'], boot: 'none' });
      // the boot options inline in one request ($expand), none read on its own, nothing read twice but the System (its ETag before the PATCH), nothing read back after it
      const sent = fleet.requestLog(old.state.index).slice(requestsBefore).map((r) => r.what).filter((w) => !/Sessions/.test(w));
      expect(sent.filter((w) => /BootOptions/.test(w))).toEqual([expect.stringMatching(/^GET \/redfish\/v1\/Systems\/System\.Embedded\.1\/BootOptions\?\$expand=/)]);
      expect(sent.filter((w) => w.startsWith('PATCH'))).toHaveLength(1);
      expect(sent.at(-1), sent.join(', ')).toMatch(/^PATCH /);
      expect(sent.length, sent.join(', ')).toBeLessThanOrEqual(6);
      old.setPower('on', 'ForceRestart');
      expect(old.state).toMatchObject({ bootOrder: ['Boot0002', 'Boot0001'], lastBoot: { device: 'disk', via: 'boot-order' } });
      expect(old.state.pendingBootOrder).toBeUndefined();

      const current = machine('dell');
      fresh(current);
      const bmc2 = await connect(current, 'auto');
      try {
        await bmc2.bootFrom('DISK');
      } finally {
        await bmc2.close();
      }
      expect(current.state).toMatchObject({ boot: 'disk', bootPersistent: true, bootSetBy: 'redfish', bootOrder: ['Boot0001', 'Boot0002'] });
    });
  });
});
