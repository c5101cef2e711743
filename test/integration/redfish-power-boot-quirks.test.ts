/**
 * Power and boot commands against the two Redfish quirks of real BMCs that refuse a write the
 * client could have known better than to send: `redfish-reset-state-conflict` (iDRAC 409 PSU501
 * for On while on, iLO 400 InvalidOperationForSystemState for a restart while off) and
 * `redfish-boot-mode-readonly` (iLO 5 refuses a Boot PATCH naming BootSourceOverrideMode). Run
 * through the CLI's own code (bmcMain in-process) with --protocol redfish, so no IPMI fallback
 * can hide a refusal, on Lenovo-like machines whose power and boot go over Redfish.
 */
import { createServer, type AddressInfo } from 'node:net';
import { PassThrough, Writable } from 'node:stream';
import { expect } from 'vitest';
import { bmcMain } from '../../src/cli/bmc.js';
import { createLogger } from '../../src/log.js';
import { connectOutband } from '../../src/outband/connect.js';
import { openRedfish, setBootOverride, type ActionClient } from '../../src/redfish/index.js';
import { NotAppliedError } from '../../src/redfish/patch-answer.js';
import type { Fleet } from '../../src/sim/fleet.js';
import type { SimMachine } from '../../src/sim/machine.js';
import { withPeers } from '../helpers/peers.js';
import { fleetPerFile } from '../helpers/redfish-fleet.js';

const { describe, it } = withPeers('openssl');

let fleet: Fleet;
const { machineWith } = fleetPerFile({ count: 30, variants: ['lenovo'] }, (f) => (fleet = f));

/** `metal-bmc bmc command CMD --protocol redfish` against `m`: its exit code, or the error it threw. */
async function command(m: SimMachine, cmd: string): Promise<{ code: number; error?: string }> {
  const out = new PassThrough().resume();
  const target = ['--address', `${m.state.address}:${fleet.ipmiPort}`, '--redfish-port', String(fleet.redfishPort), '--user', fleet.user, '--password', fleet.password];
  try {
    return { code: await bmcMain(['command', cmd, '--protocol', 'redfish', ...target], { stdout: out, env: {} }) };
  } catch (err) {
    return { code: 1, error: err instanceof Error ? err.message : String(err) };
  }
}

const resetPosts = (): number => fleet.redfish?.requests.byRoute['POST reset'] ?? 0;
const systemPatches = (): number => fleet.redfish?.requests.byRoute['PATCH system'] ?? 0;

/** The power changes `m` sees while `run` runs, whoever makes them (Redfish or IPMI). */
async function powerChanges(m: SimMachine, run: () => Promise<void>): Promise<string[]> {
  const seen: string[] = [];
  const listener = (e: { kind: string; action?: string }) => void (e.kind === 'power' && seen.push(e.action ?? ''));
  m.on('change', listener);
  try {
    await run();
  } finally {
    m.off('change', listener);
  }
  return seen;
}

describe('redfish-reset-state-conflict: a reset that changes nothing is refused (iDRAC 409, iLO 400)', () => {
  it('ON of a machine that is on succeeds over Redfish without posting On', async () => {
    const m = machineWith('redfish-reset-state-conflict');
    m.state.power = 'on';
    const posts = resetPosts();
    const changes = await powerChanges(m, async () => expect(await command(m, 'ON')).toEqual({ code: 0 }));
    expect(resetPosts()).toBe(posts);
    expect(changes).toEqual([]);
    expect(m.state.power).toBe('on');
  });

  it('ON of a machine that is on, with IPMI allowed: no fallback to IPMI and no fallback warning', async () => {
    const m = machineWith('redfish-reset-state-conflict');
    m.state.power = 'on';
    const lines: string[] = [];
    const sink = new Writable({ write: (chunk, _enc, done) => (lines.push(String(chunk)), done()) });
    const logger = createLogger({ level: 'debug' }, sink);
    const bmc = await connectOutband({ host: m.state.address, user: fleet.user, password: fleet.password, ipmiPort: fleet.ipmiPort, redfishPort: fleet.redfishPort, timeoutMs: 10_000, logger });
    try {
      expect(bmc.profile.power).toBe('redfish');
      const changes = await powerChanges(m, () => bmc.powerOn());
      expect(changes).toEqual([]); // neither a Redfish nor an IPMI power change
    } finally {
      await bmc.close();
    }
    const warnings = lines.map((l) => JSON.parse(l) as { level: number; msg: string }).filter((l) => l.level >= 40);
    expect(warnings).toEqual([]);
    expect(lines.join('')).toContain('already in that power state');
  });

  it('OFF of a machine that is off succeeds without posting ForceOff', async () => {
    const m = machineWith('redfish-reset-state-conflict');
    m.state.power = 'off';
    const posts = resetPosts();
    expect(await command(m, 'OFF')).toEqual({ code: 0 });
    expect(resetPosts()).toBe(posts);
    expect(m.state.power).toBe('off');
  });

  it.each(['CYCLE', 'RESET'])('%s of a machine that is off powers it on over Redfish (one POST: On)', async (cmd) => {
    const m = machineWith('redfish-reset-state-conflict');
    m.state.power = 'off';
    const posts = resetPosts();
    const changes = await powerChanges(m, async () => expect(await command(m, cmd)).toEqual({ code: 0 }));
    expect(m.state.power).toBe('on');
    expect(resetPosts()).toBe(posts + 1);
    expect(changes).toEqual(['On']); // the Redfish ResetType the simulator saw
  });
});

describe('redfish-boot-mode-readonly: a Boot PATCH naming BootSourceOverrideMode is refused (HPE iLO 5)', () => {
  it('PXE sets the persistent PXE override: the PATCH goes again without the mode', async () => {
    const m = machineWith('redfish-boot-mode-readonly');
    Object.assign(m.state, { boot: 'none', bootPersistent: false, bootUefi: false });
    const patches = systemPatches();
    expect(await command(m, 'PXE')).toEqual({ code: 0 });
    expect(m.state).toMatchObject({ boot: 'pxe', bootPersistent: true });
    expect(systemPatches()).toBe(patches + 2); // refused with the mode, accepted without
    expect(m.state.bootUefi).toBe(false); // the accepted PATCH named no mode (UEFI was asked for)
  });

  it('without the quirk the mode is still sent, in one PATCH (Supermicro needs it)', async () => {
    const m = machineWith();
    Object.assign(m.state, { boot: 'none', bootPersistent: false, bootUefi: false });
    const patches = systemPatches();
    expect(await command(m, 'PXE')).toEqual({ code: 0 });
    expect(m.state).toMatchObject({ boot: 'pxe', bootPersistent: true, bootUefi: true });
    expect(systemPatches()).toBe(patches + 1);
  });
});

describe('redfish-no-etag on a BMC that requires If-Match (Lenovo XCC: 412 to a PATCH without it, fwupd/fwupd#6347)', () => {
  it('LED-ON sends If-Match: * to a System without an ETag, in one PATCH, as the boot PATCH does', async () => {
    const m = machineWith('redfish-no-etag');
    m.state.identify = false;
    const patches = systemPatches();
    expect(await command(m, 'LED-ON')).toEqual({ code: 0 });
    expect(m.state.identify).toBe(true);
    expect(systemPatches()).toBe(patches + 1);
  });

  it('PXE too (If-Match: * already): one PATCH', async () => {
    const m = machineWith('redfish-no-etag');
    Object.assign(m.state, { boot: 'none', bootPersistent: false });
    const patches = systemPatches();
    expect(await command(m, 'PXE')).toEqual({ code: 0 });
    expect(m.state).toMatchObject({ boot: 'pxe', bootPersistent: true });
    expect(systemPatches()).toBe(patches + 1);
  });
});

describe('redfish-boot-partly-applied: a Boot PATCH answered 200 with Continuous left out (DSP0266 partial PATCH)', () => {
  it('PXE over Redfish only fails naming the property, never reported done with a one-time override', async () => {
    const m = machineWith('redfish-boot-partly-applied');
    Object.assign(m.state, { boot: 'none', bootPersistent: false });
    const patches = systemPatches();
    const r = await command(m, 'PXE');
    expect(r.code).toBe(1);
    expect(r.error).toMatch(/HTTP 200, but the BMC did not apply Boot\/BootSourceOverrideEnabled \(Base\.1\.8\.PropertyValueNotInList/);
    expect(systemPatches()).toBe(patches + 1); // not a mode refusal: not sent again without the mode
  });

  it('PXE with IPMI allowed: the refusal hands the boot device to IPMI, which sets it persistent', async () => {
    const m = machineWith('redfish-boot-partly-applied');
    Object.assign(m.state, { boot: 'none', bootPersistent: false });
    const out = new PassThrough().resume();
    const target = ['--address', `${m.state.address}:${fleet.ipmiPort}`, '--redfish-port', String(fleet.redfishPort), '--user', fleet.user, '--password', fleet.password];
    expect(await bmcMain(['command', 'PXE', ...target], { stdout: out, env: {} })).toBe(0);
    expect(m.state).toMatchObject({ boot: 'pxe', bootPersistent: true });
  });
});

describe('a BMC that quotes the request\'s credentials in the messages of a partly applied PATCH (fault echoCredentials)', () => {
  it.each(['session', 'basic'] as const)('NotAppliedError (%s) carries neither the session token, the Authorization header nor the password, in its text or its messages', async (authMode) => {
    const m = machineWith('redfish-boot-partly-applied');
    m.state.faults.echoCredentials = true;
    const client = await openRedfish({ host: m.state.address, port: fleet.redfishPort, user: fleet.user, password: fleet.password, insecure: true, authMode });
    try {
      const token = client.session()?.token;
      const err = await setBootOverride(client, 'Pxe', { persistent: true }).then(
        () => undefined,
        (e: unknown) => e as NotAppliedError,
      );
      expect(err).toBeInstanceOf(NotAppliedError);
      const shown = JSON.stringify({ message: err?.message, messages: err?.messages });
      expect(shown).toContain('[redacted]');
      const basic = Buffer.from(`${fleet.user}:${fleet.password}`).toString('base64');
      for (const secret of [basic, fleet.password, ...(token ? [token] : [])]) expect(shown).not.toContain(secret);
      if (authMode === 'session') expect(token).toMatch(/^[0-9a-f]{32}$/);
    } finally {
      m.state.faults.echoCredentials = false;
      await client.close();
    }
  });
});

describe('redfish-boot-settings-object: Boot refused on the System, taken on its settings object (AMI MegaRAC)', () => {
  const settingsPatches = (): number => fleet.redfish?.requests.byRoute['PATCH system settings'] ?? 0;

  it('PXE over Redfish only: the System refuses it (Ami.1.0.OperationSupportedInFutureStateURI), its SettingsObject takes it with its own ETag', async () => {
    const m = machineWith('redfish-boot-settings-object');
    Object.assign(m.state, { boot: 'none', bootPersistent: false });
    const [system, settings] = [systemPatches(), settingsPatches()];
    expect(await command(m, 'PXE')).toEqual({ code: 0 });
    expect(m.state).toMatchObject({ boot: 'pxe', bootPersistent: true, bootUefi: true });
    expect(systemPatches()).toBe(system + 1);
    expect(settingsPatches()).toBe(settings + 1); // If-Match with the settings object's ETag: no 428, no retry
  });

  it('with Gigabyte\'s weak ETags beside it: the settings object refuses its own W/ tag once and takes the PATCH without', async () => {
    const m = machineWith('redfish-boot-settings-object', 'redfish-weak-etag');
    Object.assign(m.state, { boot: 'none', bootPersistent: false });
    const settings = settingsPatches();
    expect(await command(m, 'PXE')).toEqual({ code: 0 });
    expect(m.state).toMatchObject({ boot: 'pxe', bootPersistent: true });
    expect(settingsPatches()).toBe(settings + 2);
  });

  it('a SettingsObject on another origin is not followed: refused by the client before anything is sent there', async () => {
    const m = machineWith('redfish-boot-settings-object');
    let connections = 0;
    const elsewhere = createServer((socket) => {
      connections += 1;
      socket.destroy();
    });
    await new Promise<void>((resolve) => elsewhere.listen(0, '127.0.0.1', resolve));
    const foreign = `https://127.0.0.1:${(elsewhere.address() as AddressInfo).port}/redfish/v1/Systems/1/SD`;
    const client = await openRedfish({ host: m.state.address, port: fleet.redfishPort, user: fleet.user, password: fleet.password, insecure: true });
    try {
      // the System as a BMC naming a settings object on another host would show it
      const naming: ActionClient = {
        ...client,
        getReply: async (path, o) => {
          const reply = await client.getReply(path, o);
          return path === '/redfish/v1/Systems/1' ? { ...reply, body: { ...(reply.body as object), '@Redfish.Settings': { SettingsObject: { '@odata.id': foreign } } } } : reply;
        },
      };
      await expect(setBootOverride(naming, 'Pxe', { persistent: true, systemPath: '/redfish/v1/Systems/1' })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringContaining('not a path of') });
      expect(connections).toBe(0);
    } finally {
      await client.close();
      await new Promise((resolve) => elsewhere.close(resolve));
    }
  });

  it('the identify LED stays on the System (only Boot properties moved)', async () => {
    const m = machineWith('redfish-boot-settings-object');
    m.state.identify = false;
    const settings = settingsPatches();
    expect(await command(m, 'LED-ON')).toEqual({ code: 0 });
    expect(m.state.identify).toBe(true);
    expect(settingsPatches()).toBe(settings);
  });
});

describe('a PATCH answered 204 that the BMC did not apply, read back (redfish-patch-ignored, redfish-boot-mode-ignored)', () => {
  const systemReads = (): number => fleet.redfish?.requests.byRoute['GET system'] ?? 0;
  const settingsReads = (): number => fleet.redfish?.requests.byRoute['GET system settings'] ?? 0;
  const settingsPatches = (): number => fleet.redfish?.requests.byRoute['PATCH system settings'] ?? 0;

  /** GETs of the System and PATCHes a PXE over Redfish takes on a machine that applies it and answers 200 with the System. */
  async function plainPxe(): Promise<{ reads: number; patches: number }> {
    const m = machineWith();
    Object.assign(m.state, { boot: 'none', bootPersistent: false, bootUefi: false });
    const [reads, patches] = [systemReads(), systemPatches()];
    expect(await command(m, 'PXE')).toEqual({ code: 0 });
    return { reads: systemReads() - reads, patches: systemPatches() - patches };
  }

  it('PXE over Redfish only: the System read back shows nothing applied, so the command fails NotApplied, never reported done', async () => {
    const plain = await plainPxe();
    expect(plain.patches).toBe(1); // the 200 showed the values: nothing read back
    const m = machineWith('redfish-patch-ignored');
    Object.assign(m.state, { boot: 'none', bootPersistent: false, bootUefi: false });
    const [reads, patches] = [systemReads(), systemPatches()];
    const r = await command(m, 'PXE');
    expect(r.code).toBe(1);
    expect(r.error).toMatch(/HTTP 204, but the BMC did not apply Boot\/BootSourceOverrideEnabled \(sent "Continuous", read back "Disabled"\); Boot\/BootSourceOverrideTarget \(sent "Pxe", read back "None"\)/);
    expect(m.state).toMatchObject({ boot: 'none', bootSetBy: expect.anything() });
    // the mode among what was dropped: sent once more without it, also dropped; two read-backs each, a second apart
    expect(systemPatches() - patches).toBe(2);
    expect(systemReads() - reads).toBe(plain.reads + 4);
  });

  it('PXE with IPMI allowed: the refusal hands the boot device to IPMI, which sets it', async () => {
    const m = machineWith('redfish-patch-ignored');
    Object.assign(m.state, { boot: 'none', bootPersistent: false, bootSetBy: 'redfish' });
    const out = new PassThrough().resume();
    const target = ['--address', `${m.state.address}:${fleet.ipmiPort}`, '--redfish-port', String(fleet.redfishPort), '--user', fleet.user, '--password', fleet.password];
    expect(await bmcMain(['command', 'PXE', ...target], { stdout: out, env: {} })).toBe(0);
    expect(m.state).toMatchObject({ boot: 'pxe', bootPersistent: true, bootSetBy: 'ipmi' });
  });

  it('LED-ON over Redfish only fails NotApplied naming the LED property', async () => {
    const m = machineWith('redfish-patch-ignored');
    m.state.identify = false;
    const r = await command(m, 'LED-ON');
    expect(r.code).toBe(1);
    expect(r.error).toMatch(/HTTP 204, but the BMC did not apply (LocationIndicatorActive \(sent true, read back false\)|IndicatorLED \(sent "Lit", read back "Off"\))/);
    expect(m.state.identify).toBe(false);
  });

  it('only the mode dropped (Supermicro): read back, sent again without the mode, read back again: done, the override set, the mode as the BMC keeps it', async () => {
    const plain = await plainPxe();
    const m = machineWith('redfish-boot-mode-ignored');
    Object.assign(m.state, { boot: 'none', bootPersistent: false, bootUefi: false });
    const [reads, patches] = [systemReads(), systemPatches()];
    expect(await command(m, 'PXE')).toEqual({ code: 0 });
    expect(m.state).toMatchObject({ boot: 'pxe', bootPersistent: true, bootUefi: false, bootSetBy: 'redfish' });
    expect(systemPatches() - patches).toBe(2);
    // two read-backs for the first 204 (a second apart), one for the second; the second PATCH sent with the
    // ETag read back: no 412 and no read for it
    expect(systemReads() - reads).toBe(plain.reads + 3);
  });

  it('on AMI\'s settings object: the 204 there is read back there (not on the System), and its unchanged values fail the command', async () => {
    const m = machineWith('redfish-boot-settings-object', 'redfish-patch-ignored');
    Object.assign(m.state, { boot: 'none', bootPersistent: false, bootUefi: true });
    const [sdReads, sdPatches] = [settingsReads(), settingsPatches()];
    const r = await command(m, 'PXE');
    expect(r.code).toBe(1);
    expect(r.error).toMatch(/PATCH \/redfish\/v1\/Systems\/1\/SD: HTTP 204, but the BMC did not apply Boot\/BootSourceOverrideEnabled \(sent "Continuous", read back "Disabled"\); Boot\/BootSourceOverrideTarget \(sent "Pxe", read back "None"\)$/);
    // UEFI was already the mode: not among what was dropped, so not sent again without it
    expect(settingsPatches() - sdPatches).toBe(1);
    // its ETag read once, then two read-backs a second apart
    expect(settingsReads() - sdReads).toBe(3);
  });
});
