/**
 * Every IPMI quirk of the simulator (src/sim/quirks-ipmi.ts), alone on its own machine, against
 * the operator's commands driven through the CLI code path (`bmcMain`, as `metal-bmc bmc` runs
 * it): `info`, `command ON`, `command PXE`, `command LED-ON` and `console`, with the defaults
 * (`--cipher-suite auto`, `--protocol auto`) and, since every quirk here is on the IPMI path, with
 * `--protocol ipmi`. Each cell passes, or is refused with the reason asserted below.
 *
 * The same file runs the real clients against each quirk (ipmitool, FreeIPMI's ipmipower and
 * ipmiconsole): a quirk no real client survives would be a simulator bug, not a BMC behaviour.
 * The fleet listens on UDP port 623 of its own loopback addresses, as real BMCs do: FreeIPMI's
 * ipmiconsole corrects a byte-swapped SOL port only there.
 */
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, expect } from 'vitest';
import { describeError, UsageError } from '../../src/cli/args.js';
import { bmcMain } from '../../src/cli/bmc.js';
import { swapMixedEndian } from '../../src/ipmi/guid.js';
import { NetFn } from '../../src/ipmi/message.js';
import { openSession, type IpmiEvent } from '../../src/ipmi/session.js';
import { VENDOR_PROFILES, vendorOfManufacturer } from '../../src/outband/vendors.js';
import type { Fleet } from '../../src/sim/fleet.js';
import { bmcOwnUuid } from '../../src/sim/ipmi-device.js';
import type { SimEvent } from '../../src/sim/machine.js';
import { IPMI_QUIRKS, type IpmiQuirkName } from '../../src/sim/quirks-ipmi.js';
import { startTestFleet } from '../helpers/fleet.js';
import { peerPath, withPeers, type PeerName } from '../helpers/peers.js';
import { udpDrained } from '../helpers/udp-drained.js';
import { waitFor } from '../helpers/wait.js';

const { describe, it } = withPeers('ipmitool', 'ipmipower', 'ipmiconsole', 'script');

const QUIRKS = Object.keys(IPMI_QUIRKS) as IpmiQuirkName[];
const CELLS = ['info', 'ON', 'PXE', 'LED-ON', 'console'] as const;
type Cell = (typeof CELLS)[number];
type Proto = 'auto' | 'ipmi';

/** Cells a quirk makes metal-bmc refuse, with the reason the operator reads. */
const REFUSED: Partial<Record<IpmiQuirkName, Partial<Record<`${Cell}/${Proto}`, RegExp>>>> = {
  // No identify LED and IPMI only: nothing else can light it.
  'ipmi-no-identify': { 'LED-ON/ipmi': /Chassis Identify \(on\) on BMC .*: invalid or unsupported command \[COMPLETION_CODE\]/ },
};

/** The note metal-bmc prints when it works around the quirk in a session over IPMI. */
const SESSION_NOTES: Partial<Record<IpmiQuirkName, RegExp>> = {
  'ipmi-no-cipher-suites': /note: BMC .* did not list its cipher suites \(Get Channel Cipher Suites: invalid or unsupported command\); trying 17, then 3/,
  'ipmi-cipher-suites-silent': /note: BMC .* did not list its cipher suites \(.*no answer within 1000 ms.*\); trying 17, then 3/,
  'ipmi-cipher-suites-garbage': /note: BMC .* did not list its cipher suites \(unknown suites 238\)/,
  'ipmi-open-session-own-suite': /note: BMC .* answered Open Session for cipher suite 17 with the algorithms of suite 3; using suite 3/,
  'ipmi-operator-only': /note: BMC .* refused RAKP 1 \(unauthorized role or privilege level requested\); asking again by name only at privilege 3/,
  'ipmi-operator-only-late': /note: BMC .* refused privilege level 4 in the session \(requested level exceeds the channel or user privilege limit\); the session runs at privilege 3 \(Operator\)/,
  'ipmi-close-session-error': /note: BMC .* answered Close Session with unspecified error; the session is released here/,
  'ipmi-bad-response-checksum': /note: BMC .* answered netfn 0x06 command 0x3b with a wrong IPMI data checksum; its packets pass the session's integrity check, so such answers are taken/,
  'ipmi-bad-presession-checksum': /note: BMC .* answered Get Channel Authentication Capabilities with a wrong IPMI data checksum; pre-session answers carry no integrity code to check instead, and ipmitool takes them too, so such answers are taken/,
};

/** What the console prints for a quirk that shows there. */
const CONSOLE_NOTES: Partial<Record<IpmiQuirkName, RegExp>> = {
  'ipmi-sol-port-swapped': /note: BMC .* named its SOL port in network byte order \(\d+\); it is the session's port/,
  'ipmi-sol-other-port': /note: BMC .* serves SOL on UDP port \d+; the console uses that port/,
  'ipmi-sol-self-deactivate': /note: BMC .* deactivated SOL on its own; the console ends[\s\S]*\[the BMC ended the console\]/,
};

let fleet: Fleet;
const machineOf = (q: IpmiQuirkName) => fleet.machines[QUIRKS.indexOf(q)]!;
const address = (q: IpmiQuirkName) => machineOf(q).state.address;

beforeAll(async () => {
  fleet = await startTestFleet({ count: QUIRKS.length, ipmiPort: 623 });
  // each machine shows exactly one quirk, whatever its vendor variant is known for
  QUIRKS.forEach((q, i) => (fleet.machines[i]!.state.quirks = new Set([q])));
});
afterAll(async () => {
  await fleet?.close();
});

interface Outcome {
  code: number;
  stdout: string;
  stderr: string;
}

/** `metal-bmc bmc ARGS` in-process: bmcMain with the exit-code mapping of src/cli/main.ts. */
async function cli(q: IpmiQuirkName, args: string[], stdin?: PassThrough, onOutput?: (o: Outcome) => void): Promise<Outcome> {
  const o: Outcome = { code: -1, stdout: '', stderr: '' };
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  stdout.on('data', (d: Buffer) => {
    o.stdout += d.toString();
    onOutput?.(o);
  });
  stderr.on('data', (d: Buffer) => (o.stderr += d.toString()));
  const argv = [...args, '--address', address(q), '--user', fleet.user, '--password', fleet.password, '--redfish-port', String(fleet.redfishPort), '--timeout', '10'];
  try {
    o.code = await bmcMain(argv, { stdout, stderr, env: {}, ...(stdin ? { stdin } : {}) });
  } catch (err) {
    o.code = err instanceof UsageError ? 2 : 1;
    o.stderr += `metal-bmc bmc: error: ${describeError(err)}\n`;
  }
  await new Promise((r) => setImmediate(r));
  return o;
}

async function runCell(q: IpmiQuirkName, cell: Cell, proto: Proto): Promise<Outcome> {
  const m = machineOf(q);
  if (cell === 'info') return cli(q, ['info', '--protocol', proto]);
  if (cell === 'console') {
    const stdin = new PassThrough();
    const ended = q === 'ipmi-sol-self-deactivate'; // the BMC ends this console itself
    const run = cli(q, ['console', '--protocol', proto, '--take-over'], stdin, (o) => {
      // the machine's login prompt came through: leave, as an operator would (stdin ends)
      if (!ended && o.stdout.includes('login:')) stdin.end();
    });
    return run;
  }
  // start from a state the command changes, so that the cell shows it acted
  if (cell === 'ON') m.setPower('off', 'down');
  if (cell === 'PXE') m.setBoot('none', false, true);
  if (cell === 'LED-ON') m.setIdentify(false);
  return cli(q, ['command', cell, '--protocol', proto]);
}

function effectOf(q: IpmiQuirkName, cell: Cell): boolean {
  const s = machineOf(q).state;
  if (cell === 'ON') return s.power === 'on';
  if (cell === 'PXE') return s.boot === 'pxe' && s.bootPersistent;
  if (cell === 'LED-ON') return s.identify;
  return true;
}

describe('IPMI quirk matrix through the CLI', () => {
  const rows = QUIRKS.flatMap((q) => (['auto', 'ipmi'] as const).flatMap((proto) => CELLS.map((cell) => [q, cell, proto] as const)));

  it.each(rows)('%s: bmc %s with --protocol %s', async (q, cell, proto) => {
    const r = await runCell(q, cell, proto);
    const refused = REFUSED[q]?.[`${cell}/${proto}`];
    if (refused) {
      expect(r.code, r.stderr).toBe(1);
      expect(r.stderr).toMatch(refused);
      return;
    }
    expect(r.code, `stderr: ${r.stderr}`).toBe(0);
    expect(r.stderr).not.toMatch(/error:/);
    expect(effectOf(q, cell)).toBe(true);
    if (cell === 'info') {
      expect(r.stdout).toMatch(/^powerState\s+(ON|OFF)$/m);
      if (q === 'ipmi-no-system-guid' && proto === 'ipmi') {
        // a partial report: exit 0, no UUID, and the reason among the missing parts
        expect(r.stdout).toMatch(/^uuid\s+unknown \(see missing\)$/m);
        expect(r.stdout).toMatch(/^missing\s+UUID: Get System GUID on BMC .*: invalid or unsupported command$/m);
      } else {
        expect(r.stdout).toMatch(/^uuid\s+[0-9a-f]{8}-/m);
      }
      if (q === 'ipmi-guid-rfc4122') {
        // auto: the Redfish UUID, which the GUID matches byte-swapped: kept, or swapped where go-hal swaps this vendor's UUIDs
        // (Supermicro, Novarion); IPMI alone: the GUID in the order `--guid-encoding` names (smbios by default)
        const { uuid, manufacturer } = machineOf(q).state;
        const swaps = VENDOR_PROFILES[vendorOfManufacturer(manufacturer)].swapRedfishUuidUnlessV1 === true;
        expect(r.stdout).toMatch(new RegExp(`^uuid\\s+${proto === 'auto' && !swaps ? uuid : swapMixedEndian(uuid)}$`, 'm'));
      }
      if (q === 'ipmi-guid-unrelated') {
        // auto: the GUID confirms nothing, the UUID is Redfish's; IPMI alone: the GUID is all there is
        const own = bmcOwnUuid(machineOf(q).state.uuid);
        if (proto === 'ipmi') expect(r.stdout).toMatch(new RegExp(`^uuid\\s+${own}$`, 'm'));
        else expect(r.stdout).not.toContain(own);
      }
      if (q === 'ipmi-no-fru' && proto === 'ipmi') expect(r.stdout).toMatch(/^missing\s+FRU: .*not present$/m);
      if (q === 'ipmi-fru-bad-checksum' && proto === 'ipmi') {
        // the board fields are used, the defect is a note, nothing is missing for it
        expect(r.stderr).toMatch(/note: BMC .* FRU: board area at offset \d+: bad checksum .*; its fields are used/);
        expect(r.stdout).not.toMatch(/^missing\s+FRU/m);
      }
    }
    if (cell === 'console') {
      expect(r.stdout).toContain('login:');
      const note = CONSOLE_NOTES[q];
      if (note) expect(r.stderr).toMatch(note);
    } else if (proto === 'ipmi') {
      const note = SESSION_NOTES[q];
      if (note) expect(r.stderr).toMatch(note);
    }
    expect(fleet.ipmi.activeSolPayloads(machineOf(q).state.index)).toBe(0);
  });
});

// ---- the real clients ------------------------------------------------------------------------

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(program: PeerName, args: string[], options: { input?: (child: ReturnType<typeof spawn>, out: () => string) => void; timeoutMs?: number } = {}): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(peerPath(program) ?? program, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    if (options.input) options.input(child, () => stdout);
    else child.stdin.end();
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 30_000);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

const ipmitool = (q: IpmiQuirkName, ...args: string[]) => run('ipmitool', ['-I', 'lanplus', '-H', address(q), '-U', fleet.user, '-P', fleet.password, ...args]);
const ipmipower = (q: IpmiQuirkName, ...args: string[]) => run('ipmipower', ['-h', address(q), '-u', fleet.user, '-p', fleet.password, '-D', 'LAN_2_0', '--stat', ...args]);

/**
 * A SOL client that leaves once the login prompt came through (after `hold`, when given).
 * ipmiconsole wants a terminal: it runs under util-linux's `script`, which gives it a pty.
 */
function solClient(program: 'ipmitool' | 'ipmiconsole', q: IpmiQuirkName, hold?: (pid: number) => Promise<void>): Promise<Run> {
  const ipmiconsole = [peerPath('ipmiconsole') ?? 'ipmiconsole', '-h', address(q), '-u', fleet.user, '-p', fleet.password].join(' ');
  const [cmd, args]: [PeerName, string[]] =
    program === 'ipmitool'
      ? ['ipmitool', ['-I', 'lanplus', '-H', address(q), '-U', fleet.user, '-P', fleet.password, 'sol', 'activate']]
      : ['script', ['-qec', ipmiconsole, '/dev/null']];
  return run(cmd, args, {
    input: (child, out) => {
      void waitFor(() => out().includes('login:'), 20_000, `${program} to show the login prompt`)
        .then(() => hold?.(child.pid!))
        .catch(() => undefined)
        .finally(() => {
          // ipmiconsole leaves on its escape sequence &. (and deactivates SOL), ipmitool at the end of its input
          if (program === 'ipmiconsole') child.stdin!.write('\r&.');
          child.stdin!.end();
        });
    },
  });
}

describe('the real clients survive each simulated quirk', () => {
  const survivors: Record<IpmiQuirkName, () => Promise<void>> = {
    'ipmi-presession-rmcpplus': async () => {
      expect((await ipmitool('ipmi-presession-rmcpplus', 'power', 'status')).stdout).toMatch(/Chassis Power is (on|off)/);
      // FreeIPMI insists on the IPMI 1.5 wrapper: what the quirk does is real, not what every client takes
      expect((await ipmipower('ipmi-presession-rmcpplus', '--session-timeout', '5000')).stdout).toMatch(/connection timeout/);
    },
    'ipmi-no-cipher-suites': async () => {
      const r = await ipmitool('ipmi-no-cipher-suites', 'power', 'status');
      expect(r.stderr).toMatch(/Get Channel Cipher Suites failed: Invalid command/);
      expect(r.stdout).toMatch(/Chassis Power is (on|off)/);
      expect((await ipmipower('ipmi-no-cipher-suites')).stdout).toMatch(/: (on|off)$/m);
    },
    'ipmi-cipher-suites-silent': async () => {
      // by default ipmitool asks five times (10 s in all) before it goes on without the list; once shows the same
      const r = await ipmitool('ipmi-cipher-suites-silent', '-R', '1', 'power', 'status');
      expect(r.stderr).toMatch(/Unable to Get Channel Cipher Suites/);
      expect(r.stdout).toMatch(/Chassis Power is (on|off)/);
      expect((await ipmipower('ipmi-cipher-suites-silent')).stdout).toMatch(/: (on|off)$/m);
    },
    'ipmi-cipher-suites-garbage': async () => {
      expect((await ipmitool('ipmi-cipher-suites-garbage', 'power', 'status')).stdout).toMatch(/Chassis Power is (on|off)/);
      expect((await ipmipower('ipmi-cipher-suites-garbage')).stdout).toMatch(/: (on|off)$/m);
    },
    'ipmi-open-session-own-suite': async () => {
      // both clients insist on the suite they asked for: they work when asked for the BMC's choice
      expect((await ipmitool('ipmi-open-session-own-suite', '-C', '17', 'power', 'status')).stderr).toMatch(/Unable to establish IPMI v2 \/ RMCP\+ session/);
      expect((await ipmitool('ipmi-open-session-own-suite', '-C', '3', 'power', 'status')).stdout).toMatch(/Chassis Power is (on|off)/);
      expect((await ipmipower('ipmi-open-session-own-suite', '-I', '3')).stdout).toMatch(/: (on|off)$/m);
    },
    'ipmi-no-system-guid': async () => {
      expect((await ipmitool('ipmi-no-system-guid', 'mc', 'guid')).stderr).toMatch(/Invalid command/);
      expect((await ipmitool('ipmi-no-system-guid', 'power', 'status')).stdout).toMatch(/Chassis Power is (on|off)/);
      expect((await ipmipower('ipmi-no-system-guid')).stdout).toMatch(/: (on|off)$/m);
    },
    'ipmi-guid-rfc4122': async () => {
      // ipmitool guesses the order from the version digit ("GUID Encoding : RFC4122" here) and decodes it as asked
      const uuid = machineOf('ipmi-guid-rfc4122').state.uuid;
      expect((await ipmitool('ipmi-guid-rfc4122', 'mc', 'guid', 'rfc4122')).stdout).toMatch(new RegExp(`^System GUID\\s*: ${uuid}$`, 'm'));
      expect((await ipmitool('ipmi-guid-rfc4122', 'mc', 'guid', 'smbios')).stdout).toMatch(new RegExp(`^System GUID\\s*: ${swapMixedEndian(uuid)}$`, 'm'));
      expect((await ipmipower('ipmi-guid-rfc4122')).stdout).toMatch(/: (on|off)$/m);
    },
    'ipmi-guid-unrelated': async () => {
      // both clients print the BMC's own GUID, which is the host's UUID in no byte order
      const own = bmcOwnUuid(machineOf('ipmi-guid-unrelated').state.uuid);
      expect((await ipmitool('ipmi-guid-unrelated', 'mc', 'guid', 'smbios')).stdout).toMatch(new RegExp(`^System GUID\\s*: ${own}$`, 'm'));
      expect((await ipmipower('ipmi-guid-unrelated')).stdout).toMatch(/: (on|off)$/m);
    },
    'ipmi-no-fru': async () => {
      const fru = await ipmitool('ipmi-no-fru', 'fru', 'print', '0');
      expect(`${fru.stdout}${fru.stderr}`).toMatch(/not present/i);
      expect((await ipmitool('ipmi-no-fru', 'power', 'status')).stdout).toMatch(/Chassis Power is (on|off)/);
      expect((await ipmipower('ipmi-no-fru')).stdout).toMatch(/: (on|off)$/m);
    },
    'ipmi-fru-bad-checksum': async () => {
      // ipmitool prints the board fields of an area whose checksum is wrong (as metal-bmc uses them)
      const fru = await ipmitool('ipmi-fru-bad-checksum', 'fru', 'print', '0');
      expect(fru.stdout).toMatch(/^\s*Board Mfg\s*:\s*\S/m);
      expect((await ipmipower('ipmi-fru-bad-checksum')).stdout).toMatch(/: (on|off)$/m);
    },
    'ipmi-no-identify': async () => {
      expect((await ipmitool('ipmi-no-identify', 'chassis', 'identify', '5')).stderr).toMatch(/Set Chassis Identify failed: Invalid command/);
      // Get Chassis Status's third byte: bit 6 (identify command and state supported) clear, as ipmi_sim
      // answers (00 00 00); a BMC with the LED sets it (ipmitool's chassis status prints neither)
      const identifyByte = async (q: IpmiQuirkName) => parseInt((await ipmitool(q, 'raw', '0x00', '0x01')).stdout.trim().split(/\s+/)[2]!, 16);
      expect((await identifyByte('ipmi-no-identify')) & 0x40).toBe(0);
      expect((await identifyByte('ipmi-identify-no-force')) & 0x40).toBe(0x40);
      expect((await ipmitool('ipmi-no-identify', 'power', 'status')).stdout).toMatch(/Chassis Power is (on|off)/);
      expect((await ipmipower('ipmi-no-identify')).stdout).toMatch(/: (on|off)$/m);
    },
    'ipmi-operator-only': async () => {
      // Administrator is refused, as the quirk says; Operator works for both clients
      expect((await ipmitool('ipmi-operator-only', 'power', 'status')).stderr).toMatch(/Unable to establish IPMI v2 \/ RMCP\+ session/);
      expect((await ipmitool('ipmi-operator-only', '-L', 'OPERATOR', 'power', 'status')).stdout).toMatch(/Chassis Power is (on|off)/);
      expect((await ipmipower('ipmi-operator-only', '-l', 'OPERATOR')).stdout).toMatch(/: (on|off)$/m);
    },
    'ipmi-identify-no-force': async () => {
      // ipmitool sends Force Identify On only for `identify force`, and warns when it is refused
      const force = await ipmitool('ipmi-identify-no-force', 'chassis', 'identify', 'force');
      expect(force.stderr).toMatch(/Set Chassis Identify failed: Request data length invalid\nChassis may not support Force Identify On/);
      expect((await ipmitool('ipmi-identify-no-force', 'chassis', 'identify', '255')).stdout).toMatch(/Chassis identify interval: 255 seconds/);
      expect((await ipmitool('ipmi-identify-no-force', 'chassis', 'identify', '0')).stdout).toMatch(/Chassis identify interval: off/);
      expect((await ipmipower('ipmi-identify-no-force')).stdout).toMatch(/: (on|off)$/m);
    },
    'ipmi-operator-only-late': async () => {
      // ipmitool asks Administrator by default and gives up when Set Session Privilege Level refuses it
      const admin = await ipmitool('ipmi-operator-only-late', 'power', 'status');
      expect(admin.stderr).toMatch(/Set Session Privilege Level to ADMINISTRATOR failed: Unknown \(0x81\)\nError: Unable to establish IPMI v2 \/ RMCP\+ session/);
      expect((await ipmitool('ipmi-operator-only-late', '-L', 'OPERATOR', 'power', 'status')).stdout).toMatch(/Chassis Power is (on|off)/);
      // ipmipower asks Operator by default; with -l ADMIN it closes the session after 0x81 and prints nothing for the host
      expect((await ipmipower('ipmi-operator-only-late')).stdout).toMatch(/: (on|off)$/m);
      expect(await ipmipower('ipmi-operator-only-late', '-l', 'ADMIN')).toMatchObject({ stdout: '' });
    },
    'ipmi-rakp-slow': async () => {
      // ipmitool waits 1 s for RAKP 2 and restarts with a new Open Session, then takes the first
      // attempt's late RAKP 2 for the second's (-vv shows "RAKP 2 HMAC is invalid") and gives up;
      // with -N 2 it waits long enough
      const tool = await ipmitool('ipmi-rakp-slow', 'power', 'status');
      expect(tool.stderr).toMatch(/no response from RAKP 1 message\nError: Unable to establish IPMI v2 \/ RMCP\+ session/);
      expect((await ipmitool('ipmi-rakp-slow', '-N', '2', 'power', 'status')).stdout).toMatch(/Chassis Power is (on|off)/);
      // ipmipower repeats RAKP 1 every 500 ms and takes only the answer to the latest: it never sees one
      expect((await ipmipower('ipmi-rakp-slow', '--session-timeout', '5000')).stdout).toMatch(/: session timeout$/m);
      expect((await ipmipower('ipmi-rakp-slow', '--retransmission-timeout', '2000')).stdout).toMatch(/: (on|off)$/m);
    },
    'ipmi-bad-response-checksum': async () => {
      // ipmitool never reads the checksums of an RMCP+ answer; ipmipower needs its workaround flag
      expect((await ipmitool('ipmi-bad-response-checksum', 'power', 'status')).stdout).toMatch(/Chassis Power is (on|off)/);
      expect((await ipmipower('ipmi-bad-response-checksum', '--session-timeout', '5000')).stdout).toMatch(/: session timeout$/m);
      expect((await ipmipower('ipmi-bad-response-checksum', '-W', 'nochecksumcheck')).stdout).toMatch(/: (on|off)$/m);
    },
    'ipmi-bad-presession-checksum': async () => {
      // ipmitool never reads the checksums of an answer; ipmipower checks Get Channel Authentication Capabilities' unless told not to
      expect((await ipmitool('ipmi-bad-presession-checksum', 'power', 'status')).stdout).toMatch(/Chassis Power is (on|off)/);
      // (FreeIPMI: "without it 'connection timeout'": the pre-session step never completes)
      expect((await ipmipower('ipmi-bad-presession-checksum', '--session-timeout', '5000')).stdout).toMatch(/: connection timeout$/m);
      expect((await ipmipower('ipmi-bad-presession-checksum', '-W', 'nochecksumcheck')).stdout).toMatch(/: (on|off)$/m);
    },
    'ipmi-close-session-error': async () => {
      const r = await ipmitool('ipmi-close-session-error', 'power', 'status');
      expect(r.stderr).toMatch(/Close Session command failed: Unspecified error/);
      expect(r.stdout).toMatch(/Chassis Power is (on|off)/);
      expect(r.code).toBe(0);
      expect((await ipmipower('ipmi-close-session-error')).stdout).toMatch(/: (on|off)$/m);
      await waitFor(() => fleet.ipmi.activeSessions(machineOf('ipmi-close-session-error').state.index) === 0, 10_000, 'the sessions to be gone');
    },
    'ipmi-sequence-restart': async () => {
      // 30 commands in one ipmitool session: its numbers restart at least once on the way
      const file = join(tmpdir(), `metal-bmc-quirk-exec-${process.pid}.txt`);
      writeFileSync(file, 'power status\n'.repeat(30));
      const r = await ipmitool('ipmi-sequence-restart', 'exec', file);
      expect(r.stdout.match(/Chassis Power is (on|off)/g)).toHaveLength(30);
      // and ours: the same 30 requests, one log line for the restart, every answer arrives
      const events: IpmiEvent[] = [];
      const s = await openSession({ host: address('ipmi-sequence-restart'), port: 623, user: fleet.user, password: fleet.password, onEvent: (e) => events.push(e) });
      try {
        for (let i = 0; i < 30; i++) expect((await s.request(NetFn.app, 0x01)).completionCode).toBe(0);
      } finally {
        await s.close();
      }
      expect(events.map((e) => e.kind)).toContain('sequence-restart');
      expect(events.find((e) => e.kind === 'sequence-restart')!.message).toMatch(/restarted its session sequence numbers \(now \d+\); the session follows/);
    },
    'ipmi-duplicate-cf': async () => {
      const machine = machineOf('ipmi-duplicate-cf');
      /** the power actions the machine carries out while `work` runs */
      const actionsDuring = async (work: () => Promise<Run>): Promise<[Run, string[]]> => {
        const actions: string[] = [];
        const onChange = (c: SimEvent) => void (c.kind === 'power' && actions.push(c.action));
        machine.on('change', onChange);
        try {
          return [await work(), actions];
        } finally {
          machine.off('change', onChange);
        }
      };
      // ipmitool resends under the same rqSeq and means to ignore 0xCF ("keep polling"), but the
      // 0xCF it matched ends its request, so the late answer to the original is not taken: by
      // default it resends until the BMC forgot the request and cycles twice (seen here; not
      // asserted, its waits are whole seconds of time()). With -N 3 its first resend comes after
      // the late answer: one cycle.
      const [tool, toolActions] = await actionsDuring(() => ipmitool('ipmi-duplicate-cf', '-N', '3', 'power', 'cycle'));
      expect(tool.stdout).toMatch(/Chassis Power Control: Cycle/);
      expect(toolActions).toEqual(['cycle']);
      // ipmipower resends every 500 ms under a new rqSeq: each is a new request to the BMC, carried
      // out, and the answer to its latest never comes in time; waiting 2 s, it cycles once
      const [hasty, hastyActions] = await actionsDuring(() => ipmipower('ipmi-duplicate-cf', '--cycle', '--session-timeout', '5000'));
      expect(hasty.stdout).toMatch(/: session timeout$/m);
      expect(hastyActions.length).toBeGreaterThan(1);
      const [patient, patientActions] = await actionsDuring(() => ipmipower('ipmi-duplicate-cf', '--cycle', '--retransmission-timeout', '2000'));
      expect(patient.stdout).toMatch(/: ok$/m);
      expect(patientActions).toEqual(['cycle']);
    },
    'ipmi-sol-ack-zero': async () => {
      const index = machineOf('ipmi-sol-ack-zero').state.index;
      /** ipmitool types a word at the login prompt and leaves; how often the machine's serial line echoed it */
      const typedTimes = async (...options: string[]) => {
        await waitFor(() => fleet.ipmi.activeSolPayloads(index) === 0, 10_000, 'no SOL payload left on the machine');
        let echoed = '';
        const serial = fleet.ipmi.serial(index);
        const onData = (d: Buffer) => (echoed += d.toString('latin1'));
        serial.on('data', onData);
        const tool = await run('ipmitool', ['-I', 'lanplus', '-H', address('ipmi-sol-ack-zero'), '-U', fleet.user, '-P', fleet.password, ...options, 'sol', 'activate'], {
          input: (child, out) => {
            void waitFor(() => out().includes('login:'), 20_000, 'ipmitool to show the login prompt')
              .then(() => child.stdin!.write('xyzzy'))
              .catch(() => undefined)
              .finally(() => child.stdin!.end()); // ipmitool reads its input after the ACK of what it sent: it leaves once that is settled
          },
        });
        serial.off('data', onData);
        expect(tool.stdout).toContain('login:');
        return echoed.split('xyzzy').length - 1;
      };
      // -o intelplus reads the ACK of 0 as all accepted; it needs suite 3 (it asserts an HMAC-SHA1 or
      // MD5 integrity) and no name-only lookup (`+`: it hashes RAKP 3 without that bit)
      expect(await typedTimes('-o', 'intelplus', '-C', '3', '-L', 'ADMINISTRATOR+')).toBe(1);
      // without it, ipmitool sends the word again: the machine gets it twice or more. ipmitool
      // resends only when the ACK is the next packet it reads (lanplus.c ipmi_lanplus_send_payload):
      // a console packet the BMC resent first (its ACK of the prompt read late under load) or a
      // 1 s receive timeout ends its wait without a resend. Up to three tries; with the quirk
      // off, the BMC accepts all five characters and no try sees a resend.
      const tries: number[] = [];
      while (tries.length < 3 && !tries.some((n) => n > 1)) tries.push(await typedTimes('-C', '3', '-N', '3'));
      expect(Math.max(...tries), `characters seen per try: ${tries.join(', ')}`).toBeGreaterThan(1);
    },
    'ipmi-sol-port-swapped': async () => {
      const freeipmi = await solClient('ipmiconsole', 'ipmi-sol-port-swapped');
      expect(freeipmi.stdout).toContain('login:');
      const tool = await solClient('ipmitool', 'ipmi-sol-port-swapped');
      expect(tool.stdout).toContain('login:');
      expect(tool.code).toBe(0);
    },
    'ipmi-sol-other-port': async () => {
      const freeipmi = await solClient('ipmiconsole', 'ipmi-sol-other-port');
      expect(freeipmi.stdout).toContain('login:');
      // ipmitool 1.8.19 refuses another port: the quirk is on, and not every client takes it
      const tool = await solClient('ipmitool', 'ipmi-sol-other-port');
      expect(`${tool.stdout}${tool.stderr}`).toMatch(/BMC requests SOL session on different port/);
    },
    'ipmi-sol-self-deactivate': async () => {
      const machine = machineOf('ipmi-sol-self-deactivate');
      const index = machine.state.index;
      // a running machine, whose console shows its login prompt; the matrix above may have left it off
      if (machine.state.power !== 'on') machine.setPower('on', 'On');
      // the matrix's own console on this machine must be gone first, or ipmitool takes its payload over
      await waitFor(() => fleet.ipmi.activeSolPayloads(index) === 0, 10_000, 'no SOL payload left on the machine');
      // ipmitool ignores the "deactivating" status and leaves at the end of its input; it must
      // have read that status packet first, or the packet is taken for the answer to its own
      // Deactivate Payload (and that answer for the Close Session's), as under a loaded suite
      const tool = await solClient('ipmitool', 'ipmi-sol-self-deactivate', async (pid) => {
        await waitFor(() => fleet.ipmi.activeSolPayloads(index) === 0, 30_000, 'the BMC to deactivate SOL');
        await waitFor(() => udpDrained(pid), 10_000, 'ipmitool to read what the BMC sent');
      });
      expect(tool.stdout).toContain('login:');
      expect(`${tool.stdout}${tool.stderr}`).toMatch(/SOL payload already de-activated/);
      expect(tool.code).toBe(0);
    },
  };

  it('every quirk in the catalogue has a real-client check here', () => {
    expect(Object.keys(survivors).sort()).toEqual([...QUIRKS].sort());
  });

  it.each(QUIRKS)('%s', async (q) => {
    await survivors[q]();
  });
});
