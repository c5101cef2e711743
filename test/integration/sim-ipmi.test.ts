/**
 * The simulated BMC against real peers: ipmitool 1.8.19 (lanplus, cipher suites 3 and 17) and
 * FreeIPMI's ipmipower. Every server listens on loopback with a random port.
 */
import { execFile, spawn } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { createSocket } from 'node:dgram';
import fc from 'fast-check';
import { afterAll, afterEach, beforeAll, expect } from 'vitest';
import { guidToUuid, uuidToGuid } from '../../src/ipmi/guid.js';
import { encodeFirmwareRevision } from '../../src/sim/ipmi-device.js';
import { startIpmiServer, type IpmiEndpoint, type IpmiServer, type IpmiServerOptions } from '../../src/sim/ipmi-server.js';
import { createMachineState, NO_FAULTS, SimMachine, type SimEvent } from '../../src/sim/machine.js';
import { peerPath, withPeers } from '../helpers/peers.js';

const { describe, it } = withPeers('ipmitool', 'ipmipower');

const IPMITOOL = peerPath('ipmitool') ?? 'ipmitool';
const IPMIPOWER = peerPath('ipmipower') ?? 'ipmipower';

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

function run(file: string, args: string[], timeoutMs = 20_000): Promise<Run> {
  const started = Date.now();
  return new Promise((resolve) => {
    execFile(file, args, { timeout: timeoutMs }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : null) : 0;
      resolve({ code, stdout, stderr, ms: Date.now() - started });
    });
  });
}

interface ToolOptions {
  suite?: number;
  password?: string;
  extra?: string[];
}

function lanplusArgs(at: IpmiEndpoint, o: ToolOptions = {}): string[] {
  return ['-I', 'lanplus', '-H', at.address, '-p', String(at.port), '-U', 'ADMIN', '-P', o.password ?? 'ADMIN', '-C', String(o.suite ?? 17), ...(o.extra ?? [])];
}

function ipmitool(at: IpmiEndpoint, args: string[], o: ToolOptions = {}): Promise<Run> {
  return run(IPMITOOL, [...lanplusArgs(at, o), ...args]);
}

async function waitFor(what: string, condition: () => boolean, timeoutMs = 10_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** `ipmitool sol activate` with stdin and stdout as pipes (ipmitool only warns that stdin is no tty). */
function solActivate(at: IpmiEndpoint, suite: number) {
  const child = spawn(IPMITOOL, [...lanplusArgs(at, { suite }), 'sol', 'activate'], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString('latin1')));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString('latin1')));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return {
    output: () => stdout,
    errors: () => stderr,
    type: (text: string) => child.stdin.write(text),
    exited,
    kill: () => child.kill('SIGKILL'),
  };
}


async function serve(machines: SimMachine[], options: Partial<IpmiServerOptions> = {}): Promise<{ server: IpmiServer; errors: unknown[] }> {
  const errors: unknown[] = [];
  const server = await startIpmiServer({ machines, port: 0, user: 'ADMIN', password: 'ADMIN', onError: (e) => errors.push(e), ...options });
  return { server, errors };
}

describe('simulated BMC with ipmitool', () => {
  let machine: SimMachine;
  let server: IpmiServer;
  let errors: unknown[];
  let at: IpmiEndpoint;
  const events: SimEvent[] = [];

  beforeAll(async () => {
    machine = new SimMachine(createMachineState('sim-ipmi-it', 0));
    machine.on('change', (e) => events.push(e));
    ({ server, errors } = await serve([machine], { host: '127.0.0.1', handshakeTimeoutMs: 1000 }));
    at = server.endpoints[0]!;
  });

  afterEach(async () => {
    Object.assign(machine.state.faults, NO_FAULTS);
    expect(server.activeSessions(0)).toBe(0);
    expect(server.activeSolPayloads(0)).toBe(0);
    expect(errors).toEqual([]);
    events.length = 0;
  });

  afterAll(async () => {
    await server.close();
  });

  describe.each([3, 17])('cipher suite %d', (suite) => {
    it('reports and switches power', async () => {
      machine.state.power = 'on';
      expect((await ipmitool(at, ['power', 'status'], { suite })).stdout).toContain('Chassis Power is on');
      for (const [verb, power, action] of [
        ['off', 'off', 'down'],
        ['on', 'on', 'up'],
        ['cycle', 'on', 'cycle'],
        ['reset', 'on', 'reset'],
        ['soft', 'off', 'soft'],
      ] as const) {
        const r = await ipmitool(at, ['power', verb], { suite });
        expect(r.code, r.stderr).toBe(0);
        expect(machine.state.power).toBe(power);
        expect(events.filter((e) => e.kind === 'power').at(-1)).toEqual({ kind: 'power', power, action });
      }
      expect((await ipmitool(at, ['power', 'status'], { suite })).stdout).toContain('Chassis Power is off');
    });

    it('sets the boot device and reads it back', async () => {
      for (const [device, shown] of [
        ['pxe', 'Force PXE'],
        ['disk', 'Force Boot from default Hard-Drive'],
        ['bios', 'Force Boot into BIOS Setup'],
      ] as const) {
        const set = await ipmitool(at, ['chassis', 'bootdev', device], { suite });
        expect(set.stdout).toContain(`Set Boot Device to ${device}`);
        expect(machine.state.boot).toBe(device);
        const get = await ipmitool(at, ['chassis', 'bootparam', 'get', '5'], { suite });
        expect(get.stdout).toContain(`Boot Device Selector : ${shown}`);
      }
      expect(events.filter((e) => e.kind === 'boot')).toHaveLength(3);
    });

    it('switches the identify LED', async () => {
      expect((await ipmitool(at, ['chassis', 'identify', 'force'], { suite })).stdout).toContain('indefinite');
      expect(machine.state.identify).toBe(true);
      expect((await ipmitool(at, ['chassis', 'identify', '0'], { suite })).stdout).toContain('Chassis identify interval: off');
      expect(machine.state.identify).toBe(false);
    });

    it('describes the BMC in mc info', async () => {
      const r = await ipmitool(at, ['mc', 'info'], { suite });
      const { major, minorBcd } = encodeFirmwareRevision(machine.state.bmcVersion);
      expect(r.stdout).toMatch(new RegExp(`Firmware Revision\\s+: ${major}\\.${minorBcd.toString(16).padStart(2, '0')}\\n`));
      expect(r.stdout).toMatch(/IPMI Version\s+: 2\.0/);
      expect(r.stdout).toMatch(new RegExp(`Manufacturer ID\\s+: ${{ Supermicro: 10876, Lenovo: 19046, Gigabyte: 15370 }[machine.state.manufacturer]}\\n`));
    });

    it('sends the system GUID in SMBIOS order', async () => {
      const guid = uuidToGuid(machine.state.uuid, 'smbios');
      // Decoded as IPMI says (all 16 bytes reversed) ...
      const asIpmi = await ipmitool(at, ['mc', 'guid', 'ipmi'], { suite });
      expect(asIpmi.stdout).toContain(`System GUID   : ${guidToUuid(guid, 'ipmi')}`);
      // ... while ipmitool's default auto-detection recognises the SMBIOS encoding and prints the machine UUID.
      const auto = await ipmitool(at, ['mc', 'guid'], { suite });
      expect(auto.stdout).toContain(`System GUID   : ${machine.state.uuid}`);
      expect(auto.stdout).toContain('GUID Encoding : SMBIOS');
    });

    it('prints the FRU', async () => {
      const r = await ipmitool(at, ['fru', 'print', '0'], { suite });
      const f = machine.state.fru;
      expect(r.code, r.stderr).toBe(0);
      for (const [label, value] of [
        ['Chassis Type', 'Rack Mount Chassis'],
        ['Chassis Part Number', f.chassisPartNumber],
        ['Chassis Serial', f.chassisSerial],
        ['Board Mfg', f.boardManufacturer],
        ['Board Product', f.boardProduct],
        ['Board Serial', f.boardSerial],
        ['Board Part Number', f.boardPartNumber],
        ['Product Manufacturer', f.productManufacturer],
        ['Product Name', f.productName],
        ['Product Part Number', f.productPartNumber],
        ['Product Serial', f.productSerial],
      ]) {
        expect(r.stdout).toMatch(new RegExp(`${label}\\s+: ${value}\\n`));
      }
    });

    it('serves the serial console over SOL: screen, echo, break, and deactivation on ~.', async () => {
      machine.state.power = 'on';
      const serial = server.serial(0);
      const breaks = serial.breaks;
      const sol = solActivate(at, suite);
      try {
        await waitFor('the login prompt', () => sol.output().includes('machine-0 login: '));
        expect(sol.output()).toContain('[SOL Session operational.');
        expect(sol.output()).toContain(`BIOS Version ${machine.state.biosVersion}`);
        expect(server.activeSolPayloads(0)).toBe(1);

        sol.type('root\r');
        await waitFor('the echo and a new prompt', () => sol.output().includes('login: root\r\nmachine-0 login: '));

        const other = await ipmitool(at, ['sol', 'activate'], { suite });
        expect(other.code).not.toBe(0);
        expect(other.stderr).toContain('SOL payload already active on another session');

        sol.type('~B');
        await waitFor('the break', () => serial.breaks === breaks + 1);
        sol.type('~.');
        expect(await sol.exited).toBe(0);
      } finally {
        sol.kill();
      }
      expect(server.activeSolPayloads(0)).toBe(0);
    });
  });

  it('fails with a wrong password and lets the half-open session expire', async () => {
    const r = await ipmitool(at, ['power', 'status'], { password: 'wrong' });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('Unable to establish IPMI v2 / RMCP+ session');
    expect(server.pendingSessions(0)).toBe(1); // ipmitool does not tell the BMC it gave up
    await waitFor('the handshake timeout', () => server.pendingSessions(0) === 0, 5000);
  });

  it('fails like a wrong password under the wrongCredentials fault', async () => {
    machine.state.faults.wrongCredentials = true;
    const r = await ipmitool(at, ['power', 'status']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('Unable to establish IPMI v2 / RMCP+ session');
    machine.state.faults.wrongCredentials = false;
    expect((await ipmitool(at, ['power', 'status'])).code).toBe(0);
    await waitFor('the handshake timeout', () => server.pendingSessions(0) === 0, 5000);
  });

  it('times out under the noAnswer fault', async () => {
    machine.state.faults.noAnswer = true;
    const r = await ipmitool(at, ['power', 'status'], { extra: ['-N', '1', '-R', '1'] });
    expect(r.code).not.toBe(0);
    expect(r.ms).toBeGreaterThanOrEqual(1000);
    expect(server.pendingSessions(0)).toBe(0);
  });

  it('refuses sessions under the sessionsFull fault', async () => {
    machine.state.faults.sessionsFull = true;
    const r = await ipmitool(at, ['power', 'status']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('insufficient resources for session');
  });

  it('answers late under the delayMs fault', async () => {
    machine.state.faults.delayMs = 150;
    const r = await ipmitool(at, ['power', 'status']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.ms).toBeGreaterThanOrEqual(6 * 150); // auth caps, open, RAKP 1, RAKP 3, privilege, status, close
  });

  it('drops what it receives under dropRate 1, and switches back at runtime', async () => {
    machine.state.faults.dropRate = 1;
    expect((await ipmitool(at, ['power', 'status'], { extra: ['-N', '1', '-R', '1'] })).code).not.toBe(0);
    machine.state.faults.dropRate = 0;
    expect((await ipmitool(at, ['power', 'status'])).code).toBe(0);
  });

  it('never crashes on random datagrams', async () => {
    const socket = createSocket('udp4');
    await new Promise<void>((r) => socket.bind(0, '127.0.0.1', () => r()));
    const ipmiLike = fc
      .tuple(fc.constantFrom(0x06, 0x07), fc.constantFrom(0x00, 0x06), fc.integer({ min: 0, max: 0x3f }), fc.uint8Array({ maxLength: 80 }))
      .map(([cls, auth, payloadType, rest]) => Buffer.concat([Buffer.from([0x06, 0, 0xff, cls, auth, payloadType]), Buffer.from(rest)]));
    await fc.assert(
      fc.asyncProperty(fc.array(fc.oneof(ipmiLike, fc.uint8Array({ maxLength: 200 }).map((a) => Buffer.from(a))), { maxLength: 30 }), async (datagrams) => {
        for (const d of datagrams) socket.send(d, at.port, at.address);
        await new Promise((r) => setTimeout(r, 5)); // pacing of the stimulus, not a wait before an assertion
      }),
      { numRuns: 40 },
    );
    socket.close();
    // ipmitool's exchange is answered after the random datagrams sent before it were handled
    expect((await ipmitool(at, ['power', 'status'])).code).toBe(0);
    expect(errors).toEqual([]);
    await waitFor('half-open sessions from random Open Session requests to expire', () => server.pendingSessions(0) === 0, 5000);
  });
});

describe('simulated BMC session slots', () => {
  it('refuses a session while the only slot holds a SOL session', async () => {
    const machine = new SimMachine({ ...createMachineState('sim-ipmi-slots', 0), power: 'on' });
    const { server, errors } = await serve([machine], { host: '127.0.0.1', maxSessions: 1 });
    const at = server.endpoints[0]!;
    const sol = solActivate(at, 3);
    try {
      await waitFor('the login prompt', () => sol.output().includes('login: '));
      const refused = await ipmitool(at, ['power', 'status']);
      expect(refused.stderr).toContain('insufficient resources for session');
      sol.type('~.');
      expect(await sol.exited).toBe(0);
      expect((await ipmitool(at, ['power', 'status'])).code).toBe(0);
      expect(server.activeSessions(0)).toBe(0);
      expect(errors).toEqual([]);
    } finally {
      sol.kill();
      await server.close();
    }
  });
});

describe('simulated fleet with FreeIPMI ipmipower', () => {
  let machines: SimMachine[];
  let server: IpmiServer;
  let errors: unknown[];

  beforeAll(async () => {
    const cidr = `127.77.${randomInt(1, 250)}.0/24`; // own loopback addresses, one per machine
    machines = [0, 1, 2].map((i) => new SimMachine({ ...createMachineState('sim-ipmi-fleet', i, cidr), power: 'on' }));
    ({ server, errors } = await serve(machines));
  });

  afterAll(async () => {
    await server.close();
  });

  const ipmipower = (action: string, suite: number) =>
    run(IPMIPOWER, ['-h', server.endpoints.map((e) => `${e.address}:${e.port}`).join(','), action, '-u', 'ADMIN', '-p', 'ADMIN', '-D', 'LAN_2_0', '-I', String(suite)]);

  it.each([3, 17])('reads and switches the power of several machines at once (cipher suite %d)', async (suite) => {
    const lines = (r: Run) => r.stdout.trim().split('\n').sort();
    const addresses = machines.map((m) => m.state.address);
    expect(new Set(server.endpoints.map((e) => e.address))).toEqual(new Set(addresses));
    expect(lines(await ipmipower('--stat', suite))).toEqual(addresses.map((a) => `${a}: on`).sort());
    expect(lines(await ipmipower('--off', suite))).toEqual(addresses.map((a) => `${a}: ok`).sort());
    expect(machines.map((m) => m.state.power)).toEqual(['off', 'off', 'off']);
    expect(lines(await ipmipower('--stat', suite))).toEqual(addresses.map((a) => `${a}: off`).sort());
    expect(lines(await ipmipower('--on', suite))).toEqual(addresses.map((a) => `${a}: ok`).sort());
    expect(machines.map((m) => m.state.power)).toEqual(['on', 'on', 'on']);
    for (const m of machines) expect(server.activeSessions(m.state.index)).toBe(0);
    expect(errors).toEqual([]);
  });

  it('reports a wrong password', async () => {
    const r = await run(IPMIPOWER, ['-h', `${server.endpoints[0]!.address}:${server.endpoints[0]!.port}`, '--stat', '-u', 'ADMIN', '-p', 'wrong', '-D', 'LAN_2_0', '-I', '17']);
    expect(r.stdout).toContain('password invalid');
  });
});
