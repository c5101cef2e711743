/** `metal-bmc bmc ...` as an operator runs it, against ipmi_sim. */
import { afterAll, beforeAll, expect } from 'vitest';
import { freeUdpPort } from '../helpers/ports.js';
import { handMadeFru, startIpmiSim, type IpmiSim } from '../helpers/ipmisim.js';
import { runCli, spawnCli } from '../helpers/cli.js';
import { withPeers } from '../helpers/peers.js';
import { waitFor } from '../helpers/wait.js';

const { describe, it } = withPeers('ipmi_sim', 'ipmitool');

let sim: IpmiSim;
const target = () => ['--address', `${sim.host}:${sim.port}`, '--user', sim.user];
const withPassword = () => [...target(), '--password', sim.password];

beforeAll(async () => {
  sim = await startIpmiSim({
    fru: handMadeFru({
      chassisPart: 'CSE-1',
      chassisSerial: 'CS-1',
      boardMfg: 'Supermicro',
      boardProduct: 'X11',
      boardSerial: 'BS-1',
      boardPart: 'X11DPT-B',
      productMfg: 'Supermicro',
      productName: 'SYS',
      productPart: 'SYS-1',
      productSerial: 'PS-1',
    }),
  });
  await sim.serial.connected();
});
afterAll(async () => {
  await sim?.stop();
});

describe('metal-bmc bmc info', () => {
  it('prints the report as JSON with metal-api FRU field names', async () => {
    const r = await runCli(['bmc', 'info', ...withPassword(), '--json']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const report = JSON.parse(r.stdout);
    expect(report).toMatchObject({
      uuid: '674523a1-ab89-efcd-a123-456789abcdef',
      powerState: expect.stringMatching(/^(ON|OFF)$/),
      bmcVersion: '1.74',
      fru: { board_mfg: 'Supermicro', board_part_number: 'X11DPT-B', product_serial: 'PS-1', chassis_part_serial: 'CS-1' },
    });
  });

  it('reads the password from IPMI_PASSWORD like ipmitool -E', async () => {
    const r = await runCli(['bmc', 'info', ...target()], { env: { IPMI_PASSWORD: sim.password } });
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^uuid\s+674523a1-/m);
  });
});

describe('metal-bmc bmc command', () => {
  it('REINSTALL sets PXE and power-cycles (or powers on a machine that is off)', async () => {
    const before = sim.chassisLog().length;
    const r = await runCli(['bmc', 'command', 'REINSTALL', ...withPassword()]);
    expect(r.code).toBe(0);
    const log = sim.chassisLog().slice(before);
    expect(log[0]).toBe('set boot pxe');
    expect(log.some((l) => /^set power 1$/.test(l) || /^set (cycle|reset)/.test(l))).toBe(true);
  });

  it('exit codes and one clear line on stderr for each failure', async () => {
    const wrong = await runCli(['bmc', 'info', ...target(), '--password', 'not-the-password']);
    expect(wrong.code).toBe(1);
    expect(wrong.stderr.trim().split('\n')).toHaveLength(1);
    expect(wrong.stderr).toMatch(/wrong user name or password.*\[AUTH_FAILED\]/);
    expect(wrong.stderr).not.toContain('not-the-password');

    const port = await freeUdpPort();
    const dead = await runCli(['bmc', 'info', '--address', `127.0.0.1:${port}`, '--password', 'x', '--timeout', '1']);
    expect(dead.code).toBe(1);
    expect(dead.stderr).toMatch(/unreachable.*\[TIMEOUT\]/);

    const unsupported = await runCli(['bmc', 'command', 'EXPLODE', ...withPassword()]);
    expect(unsupported.code).toBe(2);
    expect(unsupported.stderr).toMatch(/unsupported command "EXPLODE"/);

    const malformed = await runCli(['bmc', 'info', '--address', 'bmc:99999', '--password', 'x']);
    expect(malformed.code).toBe(2);
    expect(malformed.stderr).toMatch(/port must be 1-65535/);
  });
});

describe('metal-bmc bmc console', () => {
  it('shows serial output, sends keystrokes, and leaves on ~.', async () => {
    const child = spawnCli(['bmc', 'console', ...withPassword()]);
    let stdout = '';
    child.stdout.on('data', (d) => (stdout += d));
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    // a CLI process starts slowly on a loaded machine: wait for each event, up to 30 s
    const until = (check: () => boolean) => waitFor(check, 30_000, 'the console').catch((err: Error) => {
      throw new Error(`${err.message}; stdout=${stdout} stderr=${stderr}`);
    });
    await until(() => stderr.includes('connected'));
    sim.serial.write('ubuntu login: ');
    await until(() => stdout.includes('ubuntu login: '));
    child.stdin.write('admin\r');
    await until(() => sim.serial.received().toString().includes('admin\r'));
    child.stdin.write('~.');
    const code = await new Promise((resolve) => child.on('close', resolve));
    expect(code).toBe(0);
    expect(sim.serial.received().toString()).not.toContain('~.');
    // the payload was deactivated: a new console needs no takeover
    const again = spawnCli(['bmc', 'console', ...withPassword()]);
    let err2 = '';
    again.stderr.on('data', (d) => (err2 += d));
    await waitFor(() => err2.includes('connected') || err2.includes('error'), 30_000, `the second console to connect: ${err2}`);
    expect(err2).toContain('connected');
    again.stdin.end();
    await new Promise((resolve) => again.on('close', resolve));
  });
});
