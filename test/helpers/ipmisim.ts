/**
 * Starts OpenIPMI's ipmi_sim (Debian package openipmi) as a real IPMI 2.0 BMC on a free port,
 * with its own lan.conf, command file, state directory, a chassis_control script that keeps
 * power/boot/identify in files, and a TCP "serial port" that ipmi_sim connects to for SOL.
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync, chmodSync, rmSync, existsSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freeTcpPort, freeUdpPort } from './ports.js';

const run = promisify(execFile);

export interface IpmiSim {
  host: string;
  port: number;
  user: string;
  password: string;
  /** GUID bytes exactly as configured (ipmi_sim sends them in this order) */
  guidHex: string;
  dir: string;
  /** lines the chassis_control script received: "set power 1", "set boot pxe", ... */
  chassisLog(): string[];
  chassisValue(parm: string): string | undefined;
  /** the far end of the SOL serial line: what the BMC's host would read/write */
  serial: { write(data: string | Buffer): void; received(): Buffer; connected(): Promise<Socket> };
  /** sessions open on the BMC, as `ipmitool session info active` counts them (minus ipmitool's own) */
  activeSessions(): Promise<number>;
  ipmitool(args: string[], options?: { password?: string; suite?: number }): Promise<{ stdout: string; stderr: string; code: number }>;
  /** resident memory of the ipmi_sim process */
  usage(): { rssMiB: number };
  stop(): Promise<void>;
}

export interface IpmiSimOptions {
  user?: string;
  password?: string;
  guidHex?: string;
  fru?: Buffer;
  /**
   * the FRU device's size as Get FRU Inventory Area Info reports it (default: `fru`'s length); a
   * real BMC reports its EEPROM's, larger than what its areas fill
   */
  fruAreaSize?: number;
  /** major, minor (BCD) firmware revision for Get Device ID */
  firmware?: [number, number];
  /** without the chassis_control script, ipmi_sim answers power status itself (no fork per query) */
  chassisScript?: boolean;
}

function checksum(bytes: number[]): number {
  return (0x100 - (bytes.reduce((a, b) => a + b, 0) & 0xff)) & 0xff;
}

function area(fields: string[], fixed: number[]): number[] {
  const body = [0x01, 0, ...fixed];
  for (const f of fields) body.push(0xc0 | f.length, ...Buffer.from(f, 'latin1'));
  body.push(0xc1);
  while ((body.length + 1) % 8 !== 0) body.push(0);
  body[1] = (body.length + 1) / 8;
  body.push(checksum(body));
  return body;
}

/** A FRU image written by hand (independent of src/ipmi/fru.ts): chassis, board and product areas. */
export function handMadeFru(values: { chassisPart: string; chassisSerial: string; boardMfg: string; boardProduct: string; boardSerial: string; boardPart: string; productMfg: string; productName: string; productPart: string; productSerial: string }): Buffer {
  const chassis = area([values.chassisPart, values.chassisSerial], [0x17]);
  const board = area([values.boardMfg, values.boardProduct, values.boardSerial, values.boardPart, ''], [0x19, 0x10, 0x00, 0x00]);
  const product = area([values.productMfg, values.productName, values.productPart, '1.0', values.productSerial, '', ''], [0x19]);
  const header = [0x01, 0, 1, 0, 0, 0, 0, 0];
  header[3] = 1 + chassis.length / 8;
  header[4] = header[3]! + board.length / 8;
  header[7] = checksum(header.slice(0, 7));
  return Buffer.from([...header, ...chassis, ...board, ...product]);
}

export async function startIpmiSim(options: IpmiSimOptions = {}): Promise<IpmiSim> {
  const dir = mkdtempSync(join(tmpdir(), 'ipmisim-'));
  const port = await freeUdpPort();
  const serialPort = await freeTcpPort();
  const user = options.user ?? 'ADMIN';
  const password = options.password ?? 'ipmi-secret-1';
  const guidHex = options.guidHex ?? 'a123456789abcdefa123456789abcdef';
  const chassisDir = join(dir, 'chassis');
  const script = join(dir, 'chassis.sh');
  writeFileSync(
    script,
    `#!/bin/sh
d=${chassisDir}
mkdir -p "$d"
op=$1; shift
if [ "$op" = get ]; then
  for p in "$@"; do
    if [ "$p" = boot ]; then v=$(cat "$d/$p" 2>/dev/null || echo none); else v=$(cat "$d/$p" 2>/dev/null || echo 0); fi
    echo "$p:$v"
  done
else
  while [ $# -gt 1 ]; do echo "$2" > "$d/$1"; echo "set $1 $2" >> "$d/log"; shift 2; done
fi
`,
  );
  chmodSync(script, 0o755);
  writeFileSync(
    join(dir, 'lan.conf'),
    `name "sim"
set_working_mc 0x20
  startlan 1
    addr 127.0.0.1 ${port}
    priv_limit admin
    allowed_auths_callback none md2 md5 straight
    allowed_auths_user none md2 md5 straight
    allowed_auths_operator none md2 md5 straight
    allowed_auths_admin none md2 md5 straight
    guid ${guidHex}
  endlan
${options.chassisScript === false ? '' : `  chassis_control "${script}"`}
  sol "tcp:127.0.0.1:${serialPort}" 115200
  user 2 true "${user}" "${password}" admin 10 none md2 md5 straight
`,
  );
  const [major, minor] = options.firmware ?? [1, 0x74];
  const fru = options.fru ? `mc_add_fru_data 0x20 0 ${options.fruAreaSize ?? options.fru.length} data ${[...options.fru].map((b) => `0x${b.toString(16)}`).join(' ')}\n` : '';
  writeFileSync(join(dir, 'cmds.emu'), `mc_setbmc 0x20\nmc_add 0x20 0 no-device-sdrs 0x23 ${major} 0x${minor.toString(16)} 0x9f 0x1291 0xf02 persist_sdr\n${fru}mc_enable 0x20\n`);

  // The serial line: ipmi_sim dials in when SOL is configured and retries until it connects.
  let received = Buffer.alloc(0);
  let socket: Socket | undefined;
  const waiters: Array<(s: Socket) => void> = [];
  const serialServer: Server = createServer((s) => {
    socket = s;
    s.on('data', (d) => (received = Buffer.concat([received, d])));
    s.on('error', () => undefined);
    for (const w of waiters.splice(0)) w(s);
  });
  await new Promise<void>((resolve) => serialServer.listen(serialPort, '127.0.0.1', resolve));

  const child: ChildProcess = spawn('ipmi_sim', ['-c', join(dir, 'lan.conf'), '-f', join(dir, 'cmds.emu'), '-s', dir, '-n'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout?.on('data', (d) => (output += d));
  child.stderr?.on('data', (d) => (output += d));

  const sim: IpmiSim = {
    host: '127.0.0.1',
    port,
    user,
    password,
    guidHex,
    dir,
    chassisLog: () => (existsSync(join(chassisDir, 'log')) ? readFileSync(join(chassisDir, 'log'), 'utf8').trim().split('\n') : []),
    chassisValue: (parm) => (existsSync(join(chassisDir, parm)) ? readFileSync(join(chassisDir, parm), 'utf8').trim() : undefined),
    serial: {
      write: (data) => socket?.write(data),
      received: () => received,
      connected: () => (socket ? Promise.resolve(socket) : new Promise((resolve) => waiters.push(resolve))),
    },
    async activeSessions() {
      const r = await sim.ipmitool(['session', 'info', 'active']);
      const m = /active sessions\s*:\s*(\d+)/.exec(r.stdout);
      if (!m) throw new Error(`cannot read active sessions: ${r.stdout} ${r.stderr}`);
      return Number(m[1]) - 1;
    },
    async ipmitool(args, o = {}) {
      try {
        const { stdout, stderr } = await run('ipmitool', ['-I', 'lanplus', '-H', '127.0.0.1', '-p', String(port), '-U', user, '-P', o.password ?? password, '-C', String(o.suite ?? 3), '-N', '1', '-R', '2', ...args], { timeout: 20_000 });
        return { stdout, stderr, code: 0 };
      } catch (err) {
        const e = err as { stdout?: string; stderr?: string; code?: number };
        return { stdout: e.stdout ?? '', stderr: e.stderr ?? '', code: typeof e.code === 'number' ? e.code : 1 };
      }
    },
    usage() {
      const status = readFileSync(`/proc/${child.pid}/status`, 'utf8');
      return { rssMiB: Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024 };
    },
    async stop() {
      const running = child.exitCode === null && child.signalCode === null;
      if (running) child.kill('SIGTERM');
      await new Promise((resolve) => (!running || child.exitCode !== null || child.signalCode !== null ? resolve(null) : child.once('exit', resolve)));
      socket?.destroy();
      if (serialServer.listening) await new Promise((resolve) => serialServer.close(resolve));
      rmSync(dir, { recursive: true, force: true });
    },
  };

  // Ready when ipmitool gets an answer.
  const deadline = Date.now() + 10_000;
  for (;;) {
    const r = await sim.ipmitool(['mc', 'info']);
    if (r.code === 0) break;
    if (Date.now() > deadline || child.exitCode !== null) {
      await sim.stop();
      throw new Error(`ipmi_sim did not come up: ${output} ${r.stderr}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return sim;
}
