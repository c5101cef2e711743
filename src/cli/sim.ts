/** `metal-bmc sim`: a simulated fleet of BMCs on loopback addresses, until SIGINT/SIGTERM. */
import { startControlServer } from '../sim/control.js';
import { startFleet } from '../sim/fleet.js';
import { parseLatencySpec, type LatencyModel } from '../sim/latency.js';
import { DEFAULT_VARIANTS, isSimVariant, SIM_VARIANTS, type SimVariantName } from '../sim/machine.js';
import { parseIntegerOption, parseOptions, UsageError } from './args.js';
import { parseQuirkList, SIM_QUIRKS } from '../sim/quirks.js';

export const SIM_USAGE = `usage: metal-bmc sim --count N [options]

  --count N              machines to simulate (required)
  --cidr CIDR            BMC addresses (default 127.10.0.0/16; all of 127/8 is loopback on Linux)
  --ipmi-port P          IPMI UDP port of every BMC (default 623; non-root users pick > 1023)
  --redfish-port P       Redfish HTTPS port of every BMC (default 443)
  --ssh-port P           SSH port of the Dell-like BMCs, whose serial console is 'console com2' over SSH
                         (default 22; only machines of the dell variants listen)
  --no-redfish           IPMI only
  --user U --password P  BMC credentials (default ADMIN / ADMIN)
  --seed S               seed of the machines' UUIDs, MACs, FRU and versions (default metal-bmc)
  --variants A,B,...      vendor variants the machines are drawn from (default ${DEFAULT_VARIANTS.join(',')};
                         all: ${Object.keys(SIM_VARIANTS).join(', ')})
  --quirks A,B,...       protocol quirks of real BMCs to show (beside each variant's own; all:
                         ${Object.keys(SIM_QUIRKS).join(', ') || 'none yet'})
  --quirks-share S       share of the fleet that shows --quirks, 0..1 (default 1: every machine)
  --lease-file PATH      write an ISC dhcpd.leases file with one active lease per BMC
  --state-file PATH      keep power/boot/LED state across restarts
  --tls-file PATH        keep the Redfish certificate and SSH host key across restarts, as a real BMC does (default
                         with --state-file: PATH.tls.json beside it; else a new one per start)
  --latency SPEC         answer delays per protocol, slow and dead shares, deterministic from --seed,
                         e.g. 'redfish=p50:150ms,p99:2s ipmi=p50:5ms,p99:50ms slow=3%:2s-5s dead=2%'
                         (one quoted SPEC, or --latency repeated per part; also POST /latency)
  --control-port P       fault-injection API on 127.0.0.1:P (default 0: off)
  --serial-stream        every serial line prints without pause at 115200 baud (console load tests;
                         also switchable per machine through the control API, POST /serial)`;

/** `--variants A,B,...` (sim and lab): known vendor variants, at least one. */
export function parseVariants(value: string): SimVariantName[] {
  const variants = value.split(',').map((v) => v.trim()).filter((v) => v !== '');
  const unknownVariant = variants.find((v) => !isSimVariant(v));
  if (unknownVariant !== undefined || variants.length === 0) throw new UsageError(`--variants: ${unknownVariant ?? '(none)'} is not one of ${Object.keys(SIM_VARIANTS).join(', ')}`);
  return variants as SimVariantName[];
}

export async function simMain(argv: string[], io: { stdout: NodeJS.WritableStream }): Promise<number> {
  const { values } = parseOptions({
    args: argv,
    options: {
      count: { type: 'string' },
      cidr: { type: 'string', default: '127.10.0.0/16' },
      'ipmi-port': { type: 'string', default: '623' },
      'redfish-port': { type: 'string', default: '443' },
      'ssh-port': { type: 'string', default: '22' },
      'no-redfish': { type: 'boolean', default: false },
      user: { type: 'string', default: 'ADMIN' },
      password: { type: 'string', default: 'ADMIN' },
      seed: { type: 'string', default: 'metal-bmc' },
      variants: { type: 'string', default: DEFAULT_VARIANTS.join(',') },
      quirks: { type: 'string', default: '' },
      'quirks-share': { type: 'string', default: '1' },
      'lease-file': { type: 'string' },
      'state-file': { type: 'string' },
      'tls-file': { type: 'string' },
      'control-port': { type: 'string', default: '0' },
      'serial-stream': { type: 'boolean', default: false },
      latency: { type: 'string', multiple: true, default: [] },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help) {
    io.stdout.write(`${SIM_USAGE}\n`);
    return 0;
  }
  const count = parseIntegerOption(values.count, '--count', 1, 65000);
  if (count === undefined) throw new UsageError('--count is required');
  const variants = parseVariants(values.variants);
  let quirks;
  try {
    quirks = parseQuirkList(values.quirks);
  } catch (err) {
    throw new UsageError(`--quirks: ${(err as Error).message}`);
  }
  const quirksShare = Number(values['quirks-share']);
  if (!(quirksShare >= 0 && quirksShare <= 1)) throw new UsageError(`--quirks-share must be a number from 0 to 1, got ${values['quirks-share']}`);
  let latency: LatencyModel | undefined;
  try {
    latency = values.latency.length > 0 ? parseLatencySpec(values.latency.join(' ')) : undefined;
  } catch (err) {
    throw new UsageError(`--latency: ${(err as Error).message}`);
  }
  const fleet = await startFleet({
    ...(latency ? { latency } : {}),
    quirks,
    quirksShare,
    count,
    cidr: values.cidr,
    ipmiPort: parseIntegerOption(values['ipmi-port'], '--ipmi-port', 1, 65535)!,
    redfishPort: parseIntegerOption(values['redfish-port'], '--redfish-port', 1, 65535)!,
    sshPort: parseIntegerOption(values['ssh-port'], '--ssh-port', 1, 65535)!,
    redfish: !values['no-redfish'],
    user: values.user,
    password: values.password,
    seed: values.seed,
    variants,
    serialStream: values['serial-stream'],
    ...(values['lease-file'] ? { leaseFile: values['lease-file'] } : {}),
    ...(values['state-file'] ? { stateFile: values['state-file'] } : {}),
    ...(values['tls-file'] || values['state-file'] ? { tlsFile: values['tls-file'] ?? `${values['state-file']}.tls.json` } : {}),
  }).catch((err: Error & { code?: string }) => {
    if (/EACCES/.test(err.message) || err.code === 'EACCES') throw new UsageError(`cannot bind the BMC ports (${err.message}); as a non-root user pass --ipmi-port, --redfish-port and (with Dell-like variants) --ssh-port above 1023`);
    throw err;
  });
  const controlPort = parseIntegerOption(values['control-port'], '--control-port', 0, 65535)!;
  const control = controlPort > 0 ? await startControlServer(fleet, controlPort) : undefined;
  const first = fleet.machines[0]!.state.address;
  const last = fleet.machines[fleet.machines.length - 1]!.state.address;
  io.stdout.write(
    `simulating ${count} BMCs ${first} .. ${last}: IPMI udp/${fleet.ipmiPort}` +
      (fleet.redfish ? `, Redfish https/${fleet.redfishPort}` : '') +
      (fleet.ssh ? `, SSH console tcp/${fleet.sshPort} (Dell-like)` : '') +
      `, user ${values.user}` +
      (values['lease-file'] ? `, leases in ${values['lease-file']}` : '') +
      (control ? `, control API http://127.0.0.1:${control.port}` : '') +
      '\n',
  );
  await new Promise<void>((resolve) => {
    process.once('SIGINT', () => resolve());
    process.once('SIGTERM', () => resolve());
  });
  await control?.close();
  await fleet.close();
  return 0;
}
