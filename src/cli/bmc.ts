/**
 * `metal-bmc bmc info|command|console`: an operator's direct line to one BMC.
 */
import { parseArgs } from 'node:util';
import { COMMAND_ACTIONS, isMachineCommand, MACHINE_COMMANDS } from '../commands/actions.js';
import { BmcError } from '../errors.js';
import type { GuidEncoding } from '../ipmi/guid.js';
import { ipmiOutband } from '../outband/ipmi.js';
import type { BmcReport, Outband } from '../outband/types.js';
import { parseAddress, parseIntegerOption, resolvePassword, UsageError } from './args.js';
import { runConsole } from './console.js';

const COMMON_OPTIONS = {
  address: { type: 'string' },
  user: { type: 'string', default: 'ADMIN' },
  password: { type: 'string' },
  'password-file': { type: 'string' },
  'cipher-suite': { type: 'string', default: 'auto' },
  'allow-insecure': { type: 'boolean', default: false },
  'guid-encoding': { type: 'string', default: 'smbios' },
  timeout: { type: 'string', default: '10' },
  json: { type: 'boolean', default: false },
  'take-over': { type: 'boolean', default: false },
  help: { type: 'boolean', short: 'h', default: false },
} as const;

export const BMC_USAGE = `usage: metal-bmc bmc <info|command CMD|console> --address HOST[:PORT] [options]

  info                 print uuid, power state, BMC version, FRU, LED (--json for JSON)
  command CMD          run a machine command: ${MACHINE_COMMANDS.join(' ')}
  console              interactive Serial-over-LAN; type ~. at the start of a line to leave

options:
  --address HOST[:PORT]   BMC address (IPMI port 623 by default)
  --user U                BMC user (default ADMIN)
  --password P | --password-file F | env IPMI_PASSWORD
  --cipher-suite N|auto   RMCP+ cipher suite (default auto: ask the BMC, prefer 17, then 3)
  --allow-insecure        permit cipher suite 0 / no authentication (refused by default)
  --guid-encoding E       smbios (default) | ipmi | rfc4122: byte order of the BMC's system GUID
  --timeout SECONDS       deadline per BMC operation (default 10)
  --take-over             console: deactivate a SOL session left active by another client
  --json                  info: print JSON`;

const GUID_ENCODINGS: readonly GuidEncoding[] = ['smbios', 'ipmi', 'rfc4122'];

export async function bmcMain(argv: string[], io: { stdout: NodeJS.WritableStream; env: NodeJS.ProcessEnv }): Promise<number> {
  const { values, positionals } = parseArgs({ args: argv, options: COMMON_OPTIONS, allowPositionals: true, strict: true });
  if (values.help || positionals.length === 0) {
    io.stdout.write(`${BMC_USAGE}\n`);
    return positionals.length === 0 && !values.help ? 2 : 0;
  }
  const [sub, ...rest] = positionals;
  const { host, port } = parseAddress(values.address, 623);
  const cipherSuite = values['cipher-suite'] === 'auto' ? 'auto' : parseIntegerOption(values['cipher-suite'], '--cipher-suite', 0, 255)!;
  const guidEncoding = values['guid-encoding'] as GuidEncoding;
  if (!GUID_ENCODINGS.includes(guidEncoding)) throw new UsageError(`--guid-encoding must be one of ${GUID_ENCODINGS.join(', ')}`);
  const timeoutSeconds = Number(values.timeout);
  if (!(timeoutSeconds > 0 && timeoutSeconds <= 3600)) throw new UsageError('--timeout must be a number of seconds between 0 and 3600');
  const deadlineMs = timeoutSeconds * 1000;
  const password = resolvePassword(values, io.env);

  if (sub === 'command') {
    const cmd = rest[0]?.toUpperCase();
    if (!cmd) throw new UsageError(`command needs one of: ${MACHINE_COMMANDS.join(' ')}`);
    if (!isMachineCommand(cmd)) throw new UsageError(`unsupported command ${JSON.stringify(rest[0])}; supported: ${MACHINE_COMMANDS.join(' ')}`);
  } else if (sub !== 'info' && sub !== 'console') {
    throw new UsageError(`unknown bmc subcommand ${JSON.stringify(sub)} (info, command, console)`);
  }

  const bmc = ipmiOutband({
    host,
    port,
    user: values.user,
    password,
    cipherSuite,
    allowInsecure: values['allow-insecure'],
    guidEncoding,
    retry: { deadlineMs },
  });
  try {
    const signal = AbortSignal.timeout(deadlineMs * 2);
    if (sub === 'info') {
      const report = await bmc.info({ signal });
      io.stdout.write(values.json ? `${JSON.stringify(report, null, 2)}\n` : formatReport(bmc, report));
      return 0;
    }
    if (sub === 'command') {
      const cmd = rest[0]!.toUpperCase();
      if (!isMachineCommand(cmd)) return 2;
      await COMMAND_ACTIONS[cmd](bmc, { signal });
      io.stdout.write(`${cmd}: done on ${bmc.address}\n`);
      return 0;
    }
    return await runConsole(bmc, { takeOver: values['take-over'], signal });
  } finally {
    await bmc.close();
  }
}

export function formatReport(bmc: Outband, r: BmcReport): string {
  const lines = [
    ['address', bmc.address],
    ['uuid', r.uuid],
    ['powerState', r.powerState],
    ['bmcVersion', r.bmcVersion],
    ['biosVersion', r.biosVersion || '(unknown)'],
    ['indicatorLED', r.indicatorLED || '(unknown)'],
    ...Object.entries(r.fru).map(([k, v]) => [`fru.${k}`, v ?? '']),
    ...(r.powerMetric ? Object.entries(r.powerMetric).map(([k, v]) => [`powerMetric.${k}`, String(v)]) : []),
    ...r.powerSupplies.map((p, i) => [`powerSupplies[${i}]`, `${p.status.health}/${p.status.state}`]),
    ['source', r.source],
    ...r.missing.map((m) => ['missing', m]),
  ];
  const width = Math.max(...lines.map(([k]) => k!.length));
  return lines.map(([k, v]) => `${k!.padEnd(width)}  ${v}`).join('\n') + '\n';
}

export function describeError(err: unknown): string {
  if (err instanceof BmcError) return `${err.message} [${err.code}]`;
  if (err instanceof Error) return err.message;
  return String(err);
}
