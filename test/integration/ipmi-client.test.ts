/**
 * The native IPMI client against OpenIPMI's ipmi_sim, cross-checked with ipmitool.
 */
import { afterAll, beforeAll, expect } from 'vitest';
import { chassisControl, getChassisStatus, getDeviceId, getSystemGuid, readFruData } from '../../src/ipmi/commands.js';
import { parseFru } from '../../src/ipmi/fru.js';
import { guidToUuid } from '../../src/ipmi/guid.js';
import { openSession, openSessionCount, type SessionOptions } from '../../src/ipmi/session.js';
import { Cmd } from '../../src/ipmi/commands.js';
import { NetFn } from '../../src/ipmi/message.js';
import { ipmiOutband } from '../../src/outband/ipmi.js';
import { COMMAND_ACTIONS } from '../../src/commands/actions.js';
import { BmcError, isBmcError } from '../../src/errors.js';
import { handMadeFru, startIpmiSim, type IpmiSim } from '../helpers/ipmisim.js';
import { startUdpProxy } from '../helpers/udp-proxy.js';
import { freeTcpPort, freeUdpPort } from '../helpers/ports.js';
import { connectOutband } from '../../src/outband/connect.js';
import { toIpmiReport } from '../../src/report/body.js';
import { waitFor } from '../helpers/wait.js';
import { withPeers } from '../helpers/peers.js';

const { describe, it } = withPeers('ipmi_sim', 'ipmitool');

const FRU_VALUES = {
  chassisPart: 'CSE-819UTS',
  chassisSerial: 'C8190LK22AB0123',
  boardMfg: 'Supermicro',
  boardProduct: 'X11DPT-B',
  boardSerial: 'ZM19AS012345',
  boardPart: 'X11DPT-B',
  productMfg: 'Supermicro',
  productName: 'SYS-2029BT-HNR',
  productPart: 'SYS-2029BT-HNR',
  productSerial: 'S12345678901234',
};

let sim: IpmiSim;
const opts = (): SessionOptions => ({ host: sim.host, port: sim.port, user: sim.user, password: sim.password, cipherSuite: 3, retry: { deadlineMs: 5000 } });

beforeAll(async () => {
  sim = await startIpmiSim({ fru: handMadeFru(FRU_VALUES), firmware: [1, 0x74] });
});

afterAll(async () => {
  await sim?.stop();
});

describe('session against ipmi_sim', () => {
  it('establishes cipher suite 3, reads device id and GUID, and closes the session', async () => {
    const before = await sim.activeSessions();
    const s = await openSession(opts());
    expect(await sim.activeSessions()).toBe(before + 1);
    const id = await getDeviceId(s);
    expect(id.firmwareRevision).toBe('1.74');
    expect(id.manufacturerId).toBe(0x1291);
    const guid = await getSystemGuid(s);
    expect(guid.toString('hex')).toBe(sim.guidHex);
    await s.close();
    expect(s.state.kind).toBe('closed');
    expect(await sim.activeSessions()).toBe(before);
  });

  it('tells onAnswer of every datagram from the BMC, the handshake\'s and the commands\'', async () => {
    let answers = 0;
    const s = await openSession({ ...opts(), onAnswer: () => answers++ });
    // the RMCP+ handshake: Get Channel Authentication Capabilities, Open Session, RAKP 2 and 4, Set Session Privilege Level
    const afterHandshake = answers;
    expect(afterHandshake).toBeGreaterThanOrEqual(4);
    await getDeviceId(s);
    expect(answers).toBe(afterHandshake + 1);
    await s.close();
  });

  it('with cipher suite auto, asks the BMC and picks 3 (ipmi_sim has no SHA-256 suites)', async () => {
    const s = await openSession({ ...opts(), cipherSuite: 'auto' });
    expect(s.cipherSuite).toBe(3);
    await s.close();
  });

  it('speaks the weaker suites 1 and 2 when named explicitly, but auto never picks them', async () => {
    for (const suite of [1, 2]) {
      const s = await openSession({ ...opts(), cipherSuite: suite });
      expect(s.cipherSuite).toBe(suite);
      expect((await getChassisStatus(s)).power).toMatch(/on|off/);
      await s.close();
    }
  });

  it('reports cipher suite 17 as unsupported by this BMC, with a clear error', async () => {
    const err = await openSession({ ...opts(), cipherSuite: 17 }).catch((e: unknown) => e);
    expect(isBmcError(err, 'UNSUPPORTED')).toBe(true);
    expect(String((err as Error).message)).toMatch(/cipher suite 17 refused/);
  });

  it('refuses cipher suite 0 unless explicitly allowed', async () => {
    const err = await openSession({ ...opts(), cipherSuite: 0 }).catch((e: unknown) => e);
    expect(isBmcError(err, 'INSECURE_REFUSED')).toBe(true);
  });

  it('shows the GUID as ipmitool does in its ipmi encoding, and converts it to the SMBIOS UUID', async () => {
    const r = await sim.ipmitool(['mc', 'guid']);
    const shown = /System GUID\s*:\s*([0-9a-f-]+)/.exec(r.stdout)?.[1];
    const s = await openSession(opts());
    const guid = await getSystemGuid(s);
    await s.close();
    expect(guidToUuid(guid, 'ipmi')).toBe(shown);
    expect(guidToUuid(guid, 'smbios')).toBe('674523a1-ab89-efcd-a123-456789abcdef');
  });
});

describe('commands cross-checked with ipmitool', () => {
  it('powers on and off; ipmitool reads back what we set, and we read back what ipmitool set', async () => {
    const s = await openSession(opts());
    await chassisControl(s, 'up');
    expect((await sim.ipmitool(['power', 'status'])).stdout).toMatch(/is on/);
    expect((await sim.ipmitool(['power', 'off'])).code).toBe(0);
    expect((await getChassisStatus(s)).power).toBe('off');
    await s.close();
  });

  it('runs every machine command through the IPMI outband and the chassis sees it', async () => {
    const bmc = ipmiOutband(opts());
    const expectations: Array<[keyof typeof COMMAND_ACTIONS, string]> = [
      ['ON', 'set power 1'],
      ['OFF', 'set power 0'],
      ['PXE', 'set boot pxe'],
      ['DISK', 'set boot default'],
      ['BIOS', 'set boot bios'],
      ['LED-ON', 'set identify 0 1'],
      ['LED-OFF', 'set identify 0 0'],
    ];
    for (const [cmd, line] of expectations) {
      const before = sim.chassisLog().length;
      await COMMAND_ACTIONS[cmd](bmc, {});
      expect(sim.chassisLog().slice(before), cmd).toContain(line);
    }
    await bmc.close();
  });

  it('sets boot PXE so that ipmitool bootparam shows it', async () => {
    const bmc = ipmiOutband(opts());
    await bmc.bootFrom('PXE', { uefi: true });
    await bmc.close();
    expect(sim.chassisValue('boot')).toBe('pxe');
  });

  it('reads the FRU exactly as ipmitool fru print does', async () => {
    const bmc = ipmiOutband(opts());
    const report = await bmc.info();
    await bmc.close();
    const printed = (await sim.ipmitool(['fru', 'print', '0'])).stdout;
    const field = (label: string) => new RegExp(`${label}\\s*:\\s*(.+)`).exec(printed)?.[1]?.trim();
    expect(report.fru).toEqual({
      board_mfg: field('Board Mfg'),
      board_mfg_serial: field('Board Serial'),
      board_part_number: field('Board Part Number'),
      chassis_part_number: field('Chassis Part Number'),
      chassis_part_serial: field('Chassis Serial'),
      product_manufacturer: field('Product Manufacturer'),
      product_part_number: field('Product Part Number'),
      product_serial: field('Product Serial'),
    });
    expect(report.fru.board_mfg).toBe('Supermicro');
    expect(report.uuid).toBe('674523a1-ab89-efcd-a123-456789abcdef');
    expect(report.bmcVersion).toBe('1.74');
    // the firmware revision as ipmitool prints it, which is what the Go daemon sends as BMCVersion
    expect((await sim.ipmitool(['mc', 'info'])).stdout).toMatch(/Firmware Revision\s+: 1\.74\n/);
  });

  it("mini-lab's BMC (ipmi_sim with mini-lab's mc_add line, no Redfish) is the virtual profile, read over IPMI", async () => {
    const closedPort = await freeTcpPort();
    const bmc = await connectOutband({ host: sim.host, user: sim.user, password: sim.password, ipmiPort: sim.port, redfishPort: closedPort, ipmiCipherSuite: 3, timeoutMs: 5000 });
    const report = await bmc.info();
    await bmc.close();
    expect((await sim.ipmitool(['mc', 'info'])).stdout).toMatch(/Manufacturer ID\s+: 4753\n/);
    expect(bmc.vendor).toBe('virtual');
    expect(report.source).toBe('ipmi');
    // ipmi_sim does not report the identify state (ipmitool prints no "Chassis Identify State"):
    // the reading is UNKNOWN, and metal-api gets LED-OFF (or the last known state), never "".
    expect((await sim.ipmitool(['chassis', 'status'])).stdout).not.toMatch(/Identify/i);
    expect(report.indicatorLED).toBe('UNKNOWN');
    expect(report.missing).toContain('IndicatorLED: the BMC does not report its identify state');
    expect(toIpmiReport(sim.host, report).IndicatorLEDState).toBe('LED-OFF');
    expect(report.fieldSources).toMatchObject({ bmcVersion: 'ipmi', board_mfg: 'ipmi' });
  });
});

describe('failures', () => {
  it('wrong password: AUTH_FAILED, no established session, and the next login works', async () => {
    const err = await openSession({ ...opts(), password: 'wrong-password' }).catch((e: unknown) => e);
    expect(isBmcError(err, 'AUTH_FAILED')).toBe(true);
    expect(String((err as Error).message)).not.toContain('wrong-password');
    expect(openSessionCount()).toBe(0);
    const s = await openSession(opts());
    expect((await getChassisStatus(s)).power).toMatch(/on|off/);
    await s.close();
  });

  it('unreachable BMC: TIMEOUT within the deadline, naming the BMC', async () => {
    const port = await freeUdpPort();
    const started = Date.now();
    const err = await openSession({ ...opts(), port, retry: { deadlineMs: 1500, attemptMs: 300 } }).catch((e: unknown) => e);
    expect(isBmcError(err, 'TIMEOUT')).toBe(true);
    expect((err as Error).message).toMatch(new RegExp(`127\\.0\\.0\\.1:${port} is unreachable`));
    // time is the subject (the deadline holds): 1.5 s deadline, bound 4 s leaves 2.5 s for a loaded machine
    expect(Date.now() - started).toBeLessThan(4000);
  });

  it('survives 30 % packet loss in both directions and still closes its session', async () => {
    let seed = 42;
    const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const proxy = await startUdpProxy(sim.host, sim.port, random);
    proxy.dropRate = 0.3;
    const before = await sim.activeSessions();
    const s = await openSession({ ...opts(), port: proxy.port, retry: { attemptMs: 150, deadlineMs: 8000, maxAttemptMs: 400 } });
    for (let i = 0; i < 10; i++) expect((await getChassisStatus(s)).power).toMatch(/on|off/);
    proxy.dropRate = 0;
    await s.close();
    expect(proxy.dropped).toBeGreaterThan(0);
    expect(await sim.activeSessions()).toBe(before);
    await proxy.close();
  });

  it('a BMC that stops answering mid-session: TIMEOUT, close returns, and the slot is freed once it answers again', async () => {
    const proxy = await startUdpProxy(sim.host, sim.port);
    const before = await sim.activeSessions();
    const s = await openSession({ ...opts(), port: proxy.port, retry: { attemptMs: 200, deadlineMs: 1000, maxAttemptMs: 300 } });
    proxy.blackhole = true;
    const err = await getChassisStatus(s).catch((e: unknown) => e);
    expect(isBmcError(err, 'TIMEOUT')).toBe(true);
    const closeStarted = Date.now();
    await s.close();
    // time is the subject (close does not wait out the BMC): the retry deadline is 1 s, the bound 3 s
    expect(Date.now() - closeStarted).toBeLessThan(3000);
    expect(await sim.activeSessions()).toBe(before + 1);
    proxy.blackhole = false;
    // the background Close Session retry reaches the BMC once it answers again
    await waitFor(async () => (await sim.activeSessions()) === before, 15_000, 'the background Close Session to free the slot', 300);
    expect(await sim.activeSessions()).toBe(before);
    await proxy.close();
  });

  it('an idle session learns from its keepalive that the BMC stopped answering, and tells its users', async () => {
    const proxy = await startUdpProxy(sim.host, sim.port);
    const s = await openSession({ ...opts(), port: proxy.port, keepaliveMs: 300, closeLingerMs: 0, retry: { attemptMs: 100, deadlineMs: 500, maxAttemptMs: 200 } });
    const closed = new Promise<string>((resolve) => s.onClose(resolve));
    proxy.blackhole = true;
    expect(await closed).toMatch(/stopped answering/);
    expect(s.state.kind).toBe('closed');
    await proxy.close();
  });

  it('two callers finding the outband\'s session dropped open one new session between them: none is left open, on the BMC or here', async () => {
    const proxy = await startUdpProxy(sim.host, sim.port);
    const bmc = ipmiOutband({ ...opts(), port: proxy.port, keepaliveMs: 300, closeLingerMs: 0, retry: { attemptMs: 100, deadlineMs: 3000, maxAttemptMs: 200 } });
    try {
      const ours = openSessionCount();
      const first = await bmc.session();
      // the BMC stops answering for a while: the keepalive ends the session (the BMC keeps its slot
      // until its own timeout, counted in what it holds after)
      const dropped = new Promise<string>((resolve) => first.onClose(resolve));
      proxy.blackhole = true;
      expect(await dropped).toMatch(/stopped answering/);
      proxy.blackhole = false;
      const onBmc = await sim.activeSessions();
      // two callers need the session at once: one of them opens the next, the other uses it
      const [status, device] = await Promise.all([bmc.status(), bmc.deviceId()]);
      expect(status.powerState).toMatch(/ON|OFF/);
      expect(device.firmwareRevision).toBe('1.74');
      expect(openSessionCount()).toBe(ours + 1);
      expect(await sim.activeSessions()).toBe(onBmc + 1);
      await bmc.close();
      expect(openSessionCount()).toBe(ours);
      expect(await sim.activeSessions()).toBe(onBmc);
    } finally {
      await bmc.close();
      await proxy.close();
    }
  });

  it.each([
    ['cancelled', undefined],
    ['its deadline', new BmcError('TIMEOUT', 'the other caller\'s deadline ran out')],
  ])('a caller waiting for another caller\'s open of the session is not failed when that caller gives up (%s): it opens its own', async (_why, reason) => {
    const proxy = await startUdpProxy(sim.host, sim.port);
    const bmc = ipmiOutband({ ...opts(), port: proxy.port, keepaliveMs: 0, closeLingerMs: 0, retry: { attemptMs: 100, deadlineMs: 3000, maxAttemptMs: 200 } });
    try {
      // the BMC is silent while the first caller opens: that open waits, the second caller waits for it
      proxy.blackhole = true;
      const giveUp = new AbortController();
      const first = bmc.status({ signal: giveUp.signal });
      const second = bmc.deviceId();
      giveUp.abort(reason);
      await expect(first).rejects.toMatchObject({ code: reason?.code ?? 'ABORTED' });
      proxy.blackhole = false;
      expect((await second).firmwareRevision).toBe('1.74');
    } finally {
      await bmc.close();
      await proxy.close();
    }
  });

  it('a dead BMC does not delay a live one served from the same socket pool', async () => {
    const deadPort = await freeUdpPort();
    // Event order, not milliseconds: the live BMC's whole exchange must finish while the dead
    // BMC's handshake is still retransmitting. The dead deadline (6 s) is far above what a live
    // exchange with ipmi_sim takes even on a loaded machine (tens of ms), so only a live session
    // that waits for the dead one can see it settle first.
    let deadSettled = false;
    const dead = openSession({ ...opts(), port: deadPort, retry: { deadlineMs: 6000, attemptMs: 500 } })
      .catch((e: unknown) => e)
      .finally(() => (deadSettled = true));
    const s = await openSession(opts());
    await getChassisStatus(s);
    await s.close();
    expect(deadSettled).toBe(false);
    expect(isBmcError(await dead, 'TIMEOUT')).toBe(true);
  });

  it('maps a non-zero completion code to a readable error', async () => {
    const s = await openSession(opts());
    const err = await s.command('Bogus', NetFn.app, 0x7f).catch((e: unknown) => e);
    await s.close();
    expect(isBmcError(err, 'COMPLETION_CODE')).toBe(true);
    expect((err as Error).message).toMatch(/Bogus on BMC .*: invalid or unsupported command/);
  });

  it('keeps unanswered Activate Payload state honest: Cmd table matches the spec numbers', () => {
    expect([Cmd.activatePayload, Cmd.deactivatePayload, Cmd.getSystemGuid]).toEqual([0x48, 0x49, 0x37]);
  });
});

describe('FRU device larger than its areas (ipmi_sim)', () => {
  // Get FRU Inventory Area Info answers the EEPROM's size on real BMCs (4 KiB is common), not the
  // few hundred bytes the areas fill
  const AREA_SIZE = 2048;
  let big: IpmiSim;
  beforeAll(async () => {
    big = await startIpmiSim({ fru: handMadeFru(FRU_VALUES), fruAreaSize: AREA_SIZE });
  });
  afterAll(async () => {
    await big?.stop();
  });

  it('reads only as far as the chassis, board and product areas go, and decodes them as from the whole device', async () => {
    const image = handMadeFru(FRU_VALUES);
    const s = await openSession({ ...opts(), host: big.host, port: big.port, user: big.user, password: big.password });
    const fruReads: number[] = [];
    const request = s.request.bind(s);
    s.request = (netFn, cmd, data, o) => {
      if (netFn === NetFn.storage && cmd === Cmd.readFruData) fruReads.push(data?.readUInt16LE(1) ?? -1);
      return request(netFn, cmd, data, o);
    };
    try {
      const read = await readFruData(s);
      expect(read.length).toBe(image.length);
      expect(parseFru(read)).toEqual(parseFru(image));
      // 32 bytes per read: the areas' bytes and no more (the whole device would be 64 reads)
      expect(fruReads.length).toBe(Math.ceil(image.length / 32));
      expect(Math.max(...fruReads)).toBeLessThan(image.length);
    } finally {
      await s.close();
    }
    // the same values as ipmitool prints from the same device
    const printed = (await big.ipmitool(['fru', 'print', '0'])).stdout;
    expect(printed).toMatch(/Product Serial\s*:\s*S12345678901234/);
  });
});
