/**
 * `metal-bmc bmc info|command|console`: an operator's direct line to one BMC.
 */
import { terminalSafe } from '../terminal-text.js';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { COMMAND_ACTIONS, isMachineCommand, MACHINE_COMMANDS, type MachineCommand } from '../commands/actions.js';
import { bool, readableFile } from '../config/env.js';
import { GUID_ORDERS } from '../config/guid-orders.js';
import type { GuidEncoding } from '../ipmi/guid.js';
import { connectOutband, preloadProtocol, type Protocol } from '../outband/connect.js';
import type { BmcReport, BootOverride, FirmwareKind, Outband } from '../outband/types.js';
import type { TrustStore } from '../outband/trust.js';
import { describeError, parseAddress, parseIntegerOption, parseOptions, resolvePassword, UsageError } from './args.js';
import { runConsole } from './console.js';
import type { TextOutput } from './direct-stdout.js';

/** bmc's options (exported for test/unit/cli-options.test.ts, which checks parseOptions against parseArgs with them). */
export const COMMON_OPTIONS = {
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
  once: { type: 'boolean', default: false },
  protocol: { type: 'string', default: 'auto' },
  'redfish-port': { type: 'string', default: '443' },
  'ssh-port': { type: 'string', default: '22' },
  'redfish-legacy-tls': { type: 'boolean', default: false },
  'redfish-ca-file': { type: 'string' },
  'require-proof': { type: 'boolean', default: false },
  url: { type: 'string' },
  mac: { type: 'string' },
  uuid: { type: 'string' },
  reset: { type: 'boolean', default: false },
  list: { type: 'boolean', default: false },
  'state-dir': { type: 'string' },
  help: { type: 'boolean', short: 'h', default: false },
} as const;

export const BMC_USAGE = `usage: metal-bmc bmc <info|command CMD|console|firmware bios|bmc> --address HOST[:PORT] [options]
       metal-bmc bmc trust --mac MAC|--address IP [--reset] | --list
       metal-bmc bmc owners --uuid UUID|--mac MAC [--reset] | --list [--json]

  info                 print uuid, power state, BMC and BIOS versions, LED, FRU, power metric and supplies,
                       and the boot override read back from the BMC (--json)
  command CMD          run a machine command: ${MACHINE_COMMANDS.join(' ')}
                       (PXE, DISK and REINSTALL set the boot device for all future boots, BIOS for the next one)
  console              interactive serial console; type ~. at the start of a line to leave
  firmware bios|bmc    update firmware from --url URL (Redfish), showing progress
  trust                the BMC trust file (certificate and SSH host key fingerprints recorded on first use):
                       show one BMC's record, --reset it to accept a legitimate change, or --list all
  owners               the BMC (MAC, address, since when) the report keeps for each machine UUID: show one
                       UUID's owner or a BMC's UUIDs, --reset to forget them (a BMC that moved to another NIC,
                       a wrong owner: the next report cycle gives the UUID to the BMC that reports it;
                       a running daemon takes it without a restart), or --list all

options:
  --address HOST[:PORT]   BMC address (IPMI port 623 by default)
  --protocol P            auto (default: Redfish first, IPMI fallback) | redfish | ipmi
  --redfish-port P        Redfish HTTPS port (default 443)
  --ssh-port P            console of BMCs whose console is SSH (Dell iDRAC: console com2): their SSH port (default 22)
  --redfish-legacy-tls    old BMCs: TLS 1.2 with legacy ciphers, RSA-1024 or SHA-1 certificates
                          (also env METAL_BMC_REDFISH_LEGACY_TLS=true)
  --redfish-ca-file F     verify BMC certificates against this CA bundle instead of trusting them on first use
                          (also env METAL_BMC_REDFISH_CA_FILE; env METAL_BMC_REDFISH_INSECURE=false: the system's CAs)
  --require-proof         a BMC met for the first time (or recorded without proof) must prove over IPMI that it
                          knows the password before it gets one; needs the trust file (--state-dir or
                          METAL_BMC_STATE_DIR), except for console, which has one of its own for the run
                          (also env METAL_BMC_TRUST_REQUIRE_PROOF=true)
  --url URL               firmware: the image URL
  --user U                BMC user (default ADMIN)
  --password P | --password-file F | env IPMI_PASSWORD
  --cipher-suite N|auto|encrypted
                          RMCP+ cipher suite (default auto: ask the BMC, prefer 17, then 3;
                          encrypted: as auto, never a suite without encryption)
  --allow-insecure        permit cipher suite 0 / no authentication (refused by default)
  --guid-encoding E       smbios (default) | rfc4122 | ipmi: byte order of the BMC's system GUID
  --timeout SECONDS       deadline per BMC operation (default 10)
  --take-over             console: deactivate a SOL session left active by another client
  --once                  command PXE|DISK|REINSTALL: boot device for the next boot only
  --json                  info, owners: print JSON
  --mac MAC               the BMC's MAC: its trust record (without it the record is by IP address); owners: its UUIDs
  --uuid UUID             owners: the machine UUID
  --state-dir DIR         trust and owners files' directory (default env METAL_BMC_STATE_DIR, else /var/lib/metal-bmc);
                          info/command/console/firmware pin certificates only when one of the two is given
                          (and no CA verifies them), with the daemon's trust settings from the environment;
                          a console over SSH (Dell) needs it: its host key is pinned even where a CA verifies
                          Redfish, and without the trust file the console is refused, no password sent`;

/** Commands that set a boot device persistently, and with --once for the next boot only. */
const ONCE_COMMANDS: readonly string[] = ['PXE', 'DISK', 'REINSTALL'];

async function runCommand(bmc: Outband, cmd: MachineCommand, once: boolean, signal: AbortSignal): Promise<void> {
  if (!once) return COMMAND_ACTIONS[cmd](bmc, { signal });
  await bmc.bootFrom(cmd === 'DISK' ? 'DISK' : 'PXE', { signal, persistent: false });
  if (cmd === 'REINSTALL') await bmc.powerCycle({ signal });
}

/** METAL_BMC_GUID_ENCODING's byte orders, as the codec's type: the assignment checks each is one it decodes */
const GUID_ENCODINGS: readonly GuidEncoding[] = GUID_ORDERS;
const PROTOCOLS: readonly Protocol[] = ['auto', 'redfish', 'ipmi'];

export interface BmcIo {
  stdout: TextOutput;
  env: NodeJS.ProcessEnv;
  /** notes and the console's status lines (default process.stderr) */
  stderr?: NodeJS.WritableStream;
  /** the console's keyboard (default process.stdin) */
  stdin?: NodeJS.ReadableStream & { isTTY?: boolean; setRawMode?: (raw: boolean) => unknown };
}

export async function bmcMain(argv: string[], io: BmcIo): Promise<number> {
  const { values, positionals } = parseOptions({ args: argv, options: COMMON_OPTIONS, allowPositionals: true, strict: true });
  if (values.help || positionals.length === 0) {
    io.stdout.write(`${BMC_USAGE}\n`);
    return positionals.length === 0 && !values.help ? 2 : 0;
  }
  const [sub, ...rest] = positionals;
  const stateDir = values['state-dir'] ?? io.env.METAL_BMC_STATE_DIR;
  if (sub === 'trust') {
    const { runTrust } = await import('./bmc-trust.js');
    return runTrust({ mac: values.mac, address: values.address, reset: values.reset, list: values.list, stateDir: stateDir ?? '/var/lib/metal-bmc' }, io.stdout);
  }
  if (sub === 'owners') {
    const { runOwners } = await import('./bmc-owners.js');
    return runOwners({ uuid: values.uuid, mac: values.mac, reset: values.reset, list: values.list, json: values.json, stateDir: stateDir ?? '/var/lib/metal-bmc' }, io.stdout);
  }
  const { host, port } = parseAddress(values.address, 623);
  const suiteOption = values['cipher-suite'];
  const cipherSuite = suiteOption === 'auto' || suiteOption === 'encrypted' ? suiteOption : parseIntegerOption(suiteOption, '--cipher-suite', 0, 255)!;
  const guidEncoding = values['guid-encoding'] as GuidEncoding;
  if (!GUID_ENCODINGS.includes(guidEncoding)) throw new UsageError(`--guid-encoding must be one of ${GUID_ENCODINGS.join(', ')}`);
  const timeoutSeconds = Number(values.timeout);
  if (!(timeoutSeconds > 0 && timeoutSeconds <= 3600)) throw new UsageError('--timeout must be a number of seconds between 0 and 3600');
  const deadlineMs = timeoutSeconds * 1000;
  const password = resolvePassword(values, io.env);

  const protocol = values.protocol as Protocol;
  if (!PROTOCOLS.includes(protocol)) throw new UsageError(`--protocol must be one of ${PROTOCOLS.join(', ')}`);
  const redfishPort = parseIntegerOption(values['redfish-port'], '--redfish-port', 1, 65535)!;
  const sshPort = parseIntegerOption(values['ssh-port'], '--ssh-port', 1, 65535)!;
  if (sub === 'command') {
    const cmd = rest[0]?.toUpperCase();
    if (!cmd) throw new UsageError(`command needs one of: ${MACHINE_COMMANDS.join(' ')}`);
    if (!isMachineCommand(cmd)) throw new UsageError(`unsupported command ${JSON.stringify(rest[0])}; supported: ${MACHINE_COMMANDS.join(' ')}`);
    if (values.once && !ONCE_COMMANDS.includes(cmd)) throw new UsageError(`--once applies to ${ONCE_COMMANDS.join(', ')} (BIOS is always for the next boot only)`);
  } else if (sub === 'firmware') {
    if (rest[0] !== 'bios' && rest[0] !== 'bmc') throw new UsageError('firmware needs a kind: bios or bmc');
    if (!values.url || !/^https?:\/\//.test(values.url)) throw new UsageError('firmware needs --url http(s)://...');
  } else if (sub !== 'info' && sub !== 'console') {
    throw new UsageError(`unknown bmc subcommand ${JSON.stringify(sub)} (info, command, console, firmware, trust, owners)`);
  }

  const verify = redfishVerification(values, io.env);
  const requireProof = values['require-proof'] || bool(io.env, 'METAL_BMC_TRUST_REQUIRE_PROOF', false);
  const verifies = !verify.insecure || verify.caFile !== undefined;
  // without the trust file nothing is proven: refused rather than a silent trust in any certificate
  if (requireProof && !verifies && stateDir === undefined && sub !== 'console') throw new UsageError('--require-proof (METAL_BMC_TRUST_REQUIRE_PROOF) needs the trust file: --state-dir DIR or METAL_BMC_STATE_DIR');
  // the trust gate whenever the operator names the trust file's directory: certificates trusted on first use unless a CA
  // verifies them (as the daemon decides), an SSH console's host key pinned in any case (no CA vouches for one);
  // without it, a console gets a trust file of its own for this run: the BMC's first contact is
  // proven over IPMI before the password goes to an SSH host key, and nothing is kept
  const trustDir = stateDir ?? (sub === 'console' ? ephemeralTrustDir() : undefined);
  const trustStore = trustDir !== undefined ? await cliTrustStore(trustDir) : undefined;
  const trust = trustStore ? await cliTrust(trustStore, host, values.mac, { requireProof, redfishVerified: verifies }) : undefined;
  // process.stderr is a stream Node builds on first use (a socket on a pipe): only when there is something to say
  const stderr = () => io.stderr ?? process.stderr;
  await preloadProtocol(protocol); // the deadline below is the BMC's time, not module loading's
  const signal = AbortSignal.timeout(sub === 'firmware' ? 3 * 3600_000 : deadlineMs * 3);
  const bmc = await connectOutband({
    host,
    user: values.user,
    password,
    protocol,
    ipmiPort: port,
    redfishPort,
    sshPort,
    redfishLegacyTls: values['redfish-legacy-tls'] || /^(true|1|yes)$/i.test(io.env.METAL_BMC_REDFISH_LEGACY_TLS ?? ''),
    redfishInsecure: verify.insecure,
    ...(verify.caFile === undefined ? {} : { redfishCa: readFileSync(verify.caFile, 'utf8') }),
    ipmiCipherSuite: cipherSuite,
    ipmiAllowInsecure: values['allow-insecure'],
    guidEncoding,
    timeoutMs: deadlineMs,
    ipmiRetry: { deadlineMs },
    ...(trust ? { trust } : {}),
    // what the BMC did that the IPMI client worked around: one note each on stderr
    onIpmiEvent: (e) => stderr().write(`metal-bmc bmc: note: ${e.message}\n`),
    ...(sub === 'console' ? {} : { signal }),
  }).catch(async (err: unknown) => {
    await trustStore?.close();
    throw err;
  });
  try {
    if (sub === 'info') {
      const report = await bmc.info({ signal });
      const boot = await bmc.bootOverride({ signal }).catch((err: unknown) => describeError(err));
      io.stdout.write(
        values.json
          ? `${JSON.stringify({ address: bmc.address, vendor: bmc.vendor, ...report, ...(typeof boot === 'string' ? { bootOverrideError: boot } : { bootOverride: boot }) }, null, 2)}\n`
          : formatReport(bmc, report, boot),
      );
      return 0;
    }
    if (sub === 'command') {
      const cmd = rest[0]!.toUpperCase();
      if (!isMachineCommand(cmd)) return 2;
      await runCommand(bmc, cmd, values.once, signal);
      io.stdout.write(`${cmd}: done on ${bmc.address}\n`);
      return 0;
    }
    if (sub === 'firmware') {
      const kind = rest[0] as FirmwareKind;
      await bmc.updateFirmware(kind, values.url!, {
        signal,
        onProgress: (p) => io.stdout.write(`${kind} firmware: ${p.state}${p.percent !== undefined ? ` ${p.percent}%` : ''}${p.message ? ` (${terminalSafe(p.message)})` : ''}\n`),
      });
      io.stdout.write(`${kind} firmware: update done on ${bmc.address}\n`);
      return 0;
    }
    return await runConsole(bmc, { takeOver: values['take-over'], signal: AbortSignal.timeout(deadlineMs * 3), stderr: stderr(), stdout: io.stdout, ...(io.stdin ? { stdin: io.stdin } : {}) });
  } finally {
    await bmc.close();
    await trustStore?.close(); // what this contact recorded is on disk before the process ends
  }
}

/** A folder for one run's trust file, removed as the process exits. */
function ephemeralTrustDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'metal-bmc-trust-'));
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

async function cliTrustStore(stateDir: string) {
  const [{ openTrustStore }, { trustFileOf }] = await Promise.all([import('../outband/trust.js'), import('./bmc-trust.js')]);
  // a file that does not parse is the daemon's to keep aside (cli/bmc-trust.ts)
  return openTrustStore({ file: trustFileOf(stateDir), keepAsideUnparsable: false });
}

async function cliTrust(store: TrustStore, ip: string, mac: string | undefined, o: { requireProof: boolean; redfishVerified: boolean }) {
  const { createBmcTrust } = await import('../outband/trust.js');
  return createBmcTrust({ store, resetHint: true, ...o }).forBmc({ ip, ...(mac ? { mac } : {}) });
}

/**
 * How BMC certificates are verified, from the flag or the environment the daemon reads (a
 * `docker exec` inherits it): the CLI works on the daemon's trust file, so it decides as the
 * daemon would; a CA file (or METAL_BMC_REDFISH_INSECURE=false) verifies instead of trust on
 * first use, and nothing is recorded.
 */
function redfishVerification(values: { 'redfish-ca-file'?: string | undefined }, env: NodeJS.ProcessEnv): { insecure: boolean; caFile?: string } {
  const caFile = values['redfish-ca-file'] !== undefined ? readableFile({ '--redfish-ca-file': values['redfish-ca-file'] }, '--redfish-ca-file') : readableFile(env, 'METAL_BMC_REDFISH_CA_FILE');
  return { insecure: bool(env, 'METAL_BMC_REDFISH_INSECURE', true), ...(caFile === undefined ? {} : { caFile }) };
}

export function describeBootOverride(b: BootOverride): string {
  if (b.target === 'NONE') return `none (the BIOS boot order decides), ${b.detail}`;
  return `${b.target}, ${b.persistent ? 'persistent (all future boots)' : 'once (next boot only)'}, ${b.uefi ? 'UEFI' : 'legacy'} (${b.source}: ${b.detail})`;
}

export function formatReport(bmc: Outband, r: BmcReport, boot?: BootOverride | string): string {
  const lines = [
    ['address', bmc.address],
    ['vendor', bmc.vendor],
    ['uuid', r.uuid || 'unknown (see missing)'],
    ['powerState', r.powerState],
    ['bmcVersion', r.bmcVersion],
    ['biosVersion', r.biosVersion || '(unknown)'],
    ['indicatorLED', r.indicatorLED || '(unknown)'],
    ...Object.entries(r.fru).map(([k, v]) => [`fru.${k}`, v ?? '']),
    ...(r.powerMetric ? Object.entries(r.powerMetric).map(([k, v]) => [`powerMetric.${k}`, String(v)]) : []),
    ...r.powerSupplies.map((p, i) => [`powerSupplies[${i}]`, `${p.status.health}/${p.status.state}`]),
    ...(boot === undefined ? [] : [['bootOverride', typeof boot === 'string' ? `(unreadable: ${boot})` : describeBootOverride(boot)]]),
    ...(typeof boot === 'object' && boot.bootOrder ? [['bootOrder', boot.bootOrder.join(', ')]] : []),
    ['source', r.source],
    ...r.missing.map((m) => ['missing', m]),
  ];
  const width = Math.max(...lines.map(([k]) => k!.length));
  // every value may be the BMC's text: nothing in it acts in the operator's terminal
  return lines.map(([k, v]) => `${k!.padEnd(width)}  ${terminalSafe(v ?? '')}`).join('\n') + '\n';
}
